//! The parsed message: transactions, actions, commands, the streams of
//! their Media descriptors and the SDP groups of Local and Remote, every
//! field a span of the datagram or a `&str` borrowed from it.

use std::ops::Range;

use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp, SdpError};

use crate::error::{Error, ErrorKind};

/// One H.248 message: a datagram holds exactly one ([`crate::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) version: u8,
    pub(crate) mid: Mid<'a>,
    pub(crate) items: Vec<Item<'a>>,
    pub(crate) error: Option<ErrorDescriptor<'a>>,
}

/// The sender's message identifier (`mId`), as written after the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mid<'a> {
    /// Which of the grammar's forms it is.
    pub kind: MidKind,
    /// The whole mId as written, e.g. `[10.1.1.1]:2944`.
    pub text: &'a str,
    /// The address, domain, device name or MTP hex digits, without `<>`,
    /// `[]` or `MTP{}`.
    pub host: &'a str,
    /// The port after `:`, for the address and domain forms.
    pub port: Option<u16>,
    /// Where [`Mid::text`] is in the datagram.
    pub span: Range<usize>,
}

/// The form of a [`Mid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MidKind {
    /// `[192.0.2.1]` with an optional port.
    Ip4,
    /// `[2001:db8::1]` with an optional port.
    Ip6,
    /// `<mg1.example.net>` with an optional port.
    Domain,
    /// A device name (`pathNAME`), e.g. `mg1/gw`.
    Device,
    /// `MTP{hex}`: an SS7 MTP address.
    Mtp,
}

/// One entry of a message's transaction list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// `Transaction = id { … }`.
    Request(Request<'a>),
    /// `Reply = id { … }`.
    Reply(Reply<'a>),
    /// `Pending = id { }`: the transaction is still being worked on.
    Pending {
        /// The transaction id.
        id: u32,
        /// The whole item.
        span: Range<usize>,
    },
    /// `TransactionResponseAck { 1-3, 5 }`: replies acknowledged.
    ResponseAck {
        /// The acknowledged ids and ranges, in order.
        ranges: Vec<AckRange>,
        /// The whole item.
        span: Range<usize>,
    },
}

impl Item<'_> {
    /// The transaction id; `None` for a [`Item::ResponseAck`].
    pub fn id(&self) -> Option<u32> {
        match self {
            Self::Request(r) => Some(r.id),
            Self::Reply(r) => Some(r.id),
            Self::Pending { id, .. } => Some(*id),
            Self::ResponseAck { .. } => None,
        }
    }

    /// Where the item is in the datagram, from its token to its `}`.
    pub fn span(&self) -> Range<usize> {
        match self {
            Self::Request(r) => r.span.clone(),
            Self::Reply(r) => r.span.clone(),
            Self::Pending { span, .. } | Self::ResponseAck { span, .. } => span.clone(),
        }
    }
}

/// One transaction id or range of a [`Item::ResponseAck`]: `first..=last`
/// (`first == last` for a single id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckRange {
    /// The first acknowledged id.
    pub first: u32,
    /// The last acknowledged id (inclusive).
    pub last: u32,
}

impl AckRange {
    /// True when `id` is in the range.
    pub fn contains(&self, id: u32) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// A transaction request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The transaction id.
    pub id: u32,
    /// The whole transaction.
    pub span: Range<usize>,
    /// Its actions, in order.
    pub actions: Vec<Action<'a>>,
}

/// A transaction reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The transaction id answered.
    pub id: u32,
    /// The whole transaction.
    pub span: Range<usize>,
    /// `ImmAckRequired`: the receiver must acknowledge at once.
    pub immediate_ack: bool,
    /// Its actions (none when the whole transaction failed).
    pub actions: Vec<Action<'a>>,
    /// The transaction's error descriptor, when it failed as a whole.
    pub error: Option<ErrorDescriptor<'a>>,
}

/// An action: the commands for one context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action<'a> {
    /// The context.
    pub context: ContextId,
    /// The whole action, from `Context` to its `}`.
    pub span: Range<usize>,
    /// Its commands, in order.
    pub commands: Vec<Command<'a>>,
    /// The action's error descriptor (in a reply).
    pub error: Option<ErrorDescriptor<'a>>,
}

/// A context id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextId {
    /// `-`: the null context.
    Null,
    /// `$`: the gateway chooses a new context.
    Choose,
    /// `*`: every context.
    All,
    /// A context number.
    Id(u32),
}

/// A command (request) or command reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// Which command.
    pub kind: CommandKind,
    /// The whole command, from its `O-`/`W-` prefix or token to its `}` (or
    /// the end of the termination id).
    pub span: Range<usize>,
    /// `O-`: an optional command.
    pub optional: bool,
    /// `W-`: a wildcarded response is wanted.
    pub wildcard_reply: bool,
    /// The termination ids: one, or several for a list.
    pub terminations: Vec<TermId<'a>>,
    /// The streams of the Media descriptor, in order.
    pub streams: Vec<Stream<'a>>,
    /// The ServiceChange descriptor's parameters, for a ServiceChange.
    pub service_change: Option<ServiceChange<'a>>,
    /// The command's error descriptor (in a reply).
    pub error: Option<ErrorDescriptor<'a>>,
}

/// The command of a [`Command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// `Add` / `A`.
    Add,
    /// `Modify` / `MF`.
    Modify,
    /// `Subtract` / `S`.
    Subtract,
    /// `Move` / `MV`.
    Move,
    /// `AuditValue` / `AV`.
    AuditValue,
    /// `AuditCapability` / `AC`.
    AuditCapability,
    /// `Notify` / `N`.
    Notify,
    /// `ServiceChange` / `SC`.
    ServiceChange,
}

impl CommandKind {
    /// The long-form token: `"Add"`, `"ServiceChange"`, …
    pub fn long_name(self) -> &'static str {
        match self {
            Self::Add => "Add",
            Self::Modify => "Modify",
            Self::Subtract => "Subtract",
            Self::Move => "Move",
            Self::AuditValue => "AuditValue",
            Self::AuditCapability => "AuditCapability",
            Self::Notify => "Notify",
            Self::ServiceChange => "ServiceChange",
        }
    }

    /// The compact token: `"A"`, `"SC"`, …
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Add => "A",
            Self::Modify => "MF",
            Self::Subtract => "S",
            Self::Move => "MV",
            Self::AuditValue => "AV",
            Self::AuditCapability => "AC",
            Self::Notify => "N",
            Self::ServiceChange => "SC",
        }
    }
}

/// A termination id as written: `ROOT`, a name such as `RTP/1727`, or a
/// wildcard with `*` (all) or `$` (choose).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TermId<'a> {
    /// The id as written.
    pub text: &'a str,
    /// Where it is.
    pub span: Range<usize>,
}

impl TermId<'_> {
    /// `ROOT` (any letter case): the gateway as a whole.
    pub fn is_root(&self) -> bool {
        self.text.eq_ignore_ascii_case("ROOT")
    }

    /// Contains `*` or `$`.
    pub fn is_wildcard(&self) -> bool {
        self.text.bytes().any(|b| b == b'*' || b == b'$')
    }

    /// Contains `$`: the gateway chooses.
    pub fn is_choose(&self) -> bool {
        self.text.contains('$')
    }
}

/// One stream of a termination's Media descriptor. Local/Remote directly
/// inside Media (no Stream) are stream 1 with id `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream<'a> {
    /// The stream id of `Stream = id`; `None` for descriptors directly in
    /// Media.
    pub id: Option<u16>,
    /// The SDP groups of the Local descriptor(s).
    pub local: Vec<SdpGroup>,
    /// The SDP groups of the Remote descriptor(s).
    pub remote: Vec<SdpGroup>,
    /// The `Stream = id { … }` element, or the Media descriptor for the
    /// implicit stream.
    pub span: Range<usize>,
    /// Ties the stream to the message's lifetime, for later borrowed
    /// fields.
    pub(crate) _text: std::marker::PhantomData<&'a str>,
}

impl Stream<'_> {
    /// The stream id, 1 for the implicit stream.
    pub fn number(&self) -> u16 {
        self.id.unwrap_or(1)
    }
}

/// One session description of a Local or Remote descriptor: a descriptor
/// holds one group per `v=` line (alternatives), each read with
/// [`Message::sdp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpGroup {
    /// The group's bytes in the datagram, from its `v=` line to the end of
    /// its last line.
    pub span: Range<usize>,
}

/// The parameters of a ServiceChange descriptor (`Services { … }`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceChange<'a> {
    /// `Method`: `Restart`, `Forced`, `Graceful`, …
    pub method: Option<&'a str>,
    /// `Reason`, without its quotes: `901 Cold Boot`.
    pub reason: Option<&'a str>,
    /// `Profile`: `ResGW/1`.
    pub profile: Option<&'a str>,
    /// `ServiceChangeAddress`'s value as written and its span.
    pub address: Option<(&'a str, Range<usize>)>,
    /// `MgcIdToTry`'s value as written and its span.
    pub mgc_id: Option<(&'a str, Range<usize>)>,
}

/// An error descriptor: `Error = code { "reason" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDescriptor<'a> {
    /// The error code (H.248.8).
    pub code: u16,
    /// The text, without its quotes.
    pub reason: Option<&'a str>,
    /// The whole descriptor.
    pub span: Range<usize>,
}

impl<'a> Message<'a> {
    /// The whole datagram.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The protocol version: the N of `MEGACO/N`.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The sender's message identifier.
    pub fn mid(&self) -> &Mid<'a> {
        &self.mid
    }

    /// The transactions, replies, pendings and acks, in order; empty when
    /// the body is an error descriptor.
    pub fn items(&self) -> &[Item<'a>] {
        &self.items
    }

    /// The message-level error descriptor (`messageBody = errorDescriptor`).
    pub fn error(&self) -> Option<&ErrorDescriptor<'a>> {
        self.error.as_ref()
    }

    /// Every SDP group of the message, Local and Remote, in datagram order.
    pub fn groups(&self) -> impl Iterator<Item = &SdpGroup> + '_ {
        let mut all: Vec<&SdpGroup> = self
            .commands()
            .flat_map(|c| c.streams.iter())
            .flat_map(|s| s.local.iter().chain(s.remote.iter()))
            .collect();
        all.sort_by_key(|g| g.span.start);
        all.into_iter()
    }

    /// Every command of every request and reply, in order.
    pub fn commands(&self) -> impl Iterator<Item = &Command<'a>> + '_ {
        self.items
            .iter()
            .flat_map(|i| match i {
                Item::Request(r) => r.actions.as_slice(),
                Item::Reply(r) => r.actions.as_slice(),
                Item::Pending { .. } | Item::ResponseAck { .. } => &[],
            })
            .flat_map(|a| a.commands.iter())
    }

    /// The 1-based datagram line of byte `at`.
    pub fn line_of(&self, at: usize) -> usize {
        crate::parse::line_at(self.bytes, at)
    }

    /// An SDP error of group `g` as an [`Error`] at the datagram line it
    /// is on.
    pub fn sdp_error(&self, g: &SdpGroup, e: SdpError) -> Error {
        let line = self.line_of(g.span.start);
        let at = e.line().map_or(line, |l| line + l - 1);
        Error::new(at, ErrorKind::Sdp(e))
    }

    /// The SDP of one group, parsed by [`Sdp::parse`] over the datagram's
    /// bytes at `g.span`: its spans are relative to the group.
    pub fn sdp(&self, g: &SdpGroup) -> Result<Sdp<'a>, SdpError> {
        let body = self.bytes.get(g.span.clone()).unwrap_or_default();
        Sdp::parse(body)
    }

    /// Records in `patch` (of the whole datagram) the edits that write
    /// `plan` into group `g`, `sdp` being [`Message::sdp`]'s result for
    /// it: [`pinhole_sdp`]'s rewrite, its offsets shifted to the datagram.
    /// H.248 text has no length field, so nothing else changes. On an error
    /// `patch` is as it was.
    pub fn rewrite_sdp(
        &self,
        g: &SdpGroup,
        sdp: &Sdp<'_>,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        patch: &mut Patch,
    ) -> Result<(), Error> {
        let mut scratch = Patch::new();
        self.rewrite_sdp_with(g, sdp, plan, opts, &mut scratch, patch)
    }

    /// [`Message::rewrite_sdp`] with a caller's scratch patch, reused
    /// across groups so the hot path allocates nothing (it is cleared
    /// first).
    pub fn rewrite_sdp_with(
        &self,
        g: &SdpGroup,
        sdp: &Sdp<'_>,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        scratch: &mut Patch,
        patch: &mut Patch,
    ) -> Result<(), Error> {
        // Lines are counted only for an error: the hot path does not scan.
        if g.span.start > g.span.end || g.span.end > self.bytes.len() {
            return Err(Error::new(self.line_of(g.span.start), ErrorKind::NotAGroup));
        }
        scratch.clear();
        sdp.rewrite(plan, opts, scratch)
            .map_err(|e| self.sdp_error(g, e))?;
        patch.extend_shifted(scratch, g.span.start);
        Ok(())
    }
}
