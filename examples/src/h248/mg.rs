//! A sans-IO H.248 media gateway (RFC 3525 text): it announces itself with
//! a ServiceChange Restart on ROOT, and answers its MGC's Add (a CHOOSE
//! context and termination get numbers of its own, a CHOOSE `Local` its
//! RTP address), Modify (a new `Remote`), Subtract (by name or `*`) and
//! AuditValue, in the encoding of the request (pretty or compact text).
//! Anything else gets error 501. A repeated request gets the first reply
//! again (RFC 3525 §D.1.2), and a request that fails changes nothing.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use pinhole_core::ports::PortRange;
use pinhole_h248::{CommandKind, ContextId, Item, Message, Request, parse};

use crate::rtp::Tally;

/// Most terminations alive at once: beyond, an Add gets 510.
pub const MAX_LIVE: usize = 32;
/// Most terminations remembered, subtracted ones included (for the
/// report); the oldest subtracted go first.
pub const MAX_KEPT: usize = 256;
/// Replies kept to answer a repeated request with.
const KEPT_REPLIES: usize = 64;
/// Sources of arriving RTP remembered per termination.
const MAX_SOURCES: usize = 8;

/// What the gateway needs.
#[derive(Clone, Debug)]
pub struct MgConfig {
    /// Its `mId`, as H.248 text (`[IP]:PORT`, `<domain>`, a device name).
    pub mid: String,
    /// The address its RTP ports are on.
    pub media_ip: IpAddr,
    /// Its RTP ports: one (even, odd) pair per termination.
    pub media_ports: PortRange,
    /// Its first transaction id (different per run, so a restart is not
    /// taken for a retransmission).
    pub first_transaction: u32,
}

/// One termination the MGC added: its media and what it carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// 1-based, in the order the MGC added them (the report's `call`).
    pub call: u32,
    /// Its context.
    pub context: u32,
    /// Its name (`rtp/N` when the MGC let the gateway choose).
    pub name: String,
    /// Its RTP address (the `Local` the gateway answered with).
    pub media: SocketAddr,
    /// Where its RTP goes: the latest `Remote`.
    pub remote: Option<SocketAddr>,
    /// The MGC subtracted it.
    pub subtracted: bool,
    /// The RTP sent.
    pub sent: Tally,
    /// Everything that arrived on its port.
    pub received: Tally,
    /// Where that came from, in order first seen.
    pub from: Vec<SocketAddr>,
}

impl Termination {
    /// Counts one datagram that arrived on its port from `from`.
    pub fn receive(&mut self, from: SocketAddr, payload: &[u8]) {
        self.received.add(payload);
        if !self.from.contains(&from) && self.from.len() < MAX_SOURCES {
            self.from.push(from);
        }
    }

    /// Its line in the format of `tests/megaco/mg.escript` (docs/megaco.md):
    /// `rtp_received` counts intact test packets, `rtp_bad` the rest.
    pub fn result_line(&self) -> String {
        let remote = self.remote.map_or("none".to_owned(), |r| r.to_string());
        let from: Vec<String> = self.from.iter().map(ToString::to_string).collect();
        format!(
            "RESULT call={} context={} termination={} rtp_sent={} rtp_received={} rtp_bad={} remote={remote} from={} subtracted={}",
            self.call,
            self.context,
            self.name,
            self.sent.packets,
            self.received.intact,
            self.received.packets - self.received.intact,
            from.join(","),
            self.subtracted
        )
    }
}

/// What happened, for the application to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MgEvent {
    /// The MGC answered the ServiceChange.
    Registered {
        /// The protocol version of its reply.
        version: u8,
    },
    /// The MGC refused the ServiceChange.
    Refused {
        /// Its error code.
        code: u16,
    },
    /// An Add created a termination.
    Added {
        /// Which termination ([`Termination::call`]).
        call: u32,
        /// Its context.
        context: u32,
        /// Its name.
        termination: String,
        /// Its RTP address.
        media: SocketAddr,
        /// The `Remote` the Add gave, if any.
        remote: Option<SocketAddr>,
    },
    /// A Modify of a termination (its `Remote` now).
    Modified {
        /// Which termination.
        call: u32,
        /// Its context.
        context: u32,
        /// Its name.
        termination: String,
        /// Its `Remote` after the Modify.
        remote: Option<SocketAddr>,
    },
    /// A Subtract removed a termination.
    Subtracted {
        /// Which termination.
        call: u32,
        /// Its context.
        context: u32,
        /// Its name.
        termination: String,
        /// The termination id of the request (`*` for all).
        request: String,
    },
}

/// A request refused: the H.248.8 code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Refusal(u16, &'static str);

const UNKNOWN_CONTEXT: Refusal = Refusal(411, "Unknown ContextID");
const UNKNOWN_TERMINATION: Refusal = Refusal(430, "Unknown TerminationID");
const BAD_REMOTE: Refusal = Refusal(441, "Missing Remote or Local Descriptor");
const NOT_IMPLEMENTED: Refusal = Refusal(501, "Not Implemented");
const NO_RESOURCES: Refusal = Refusal(510, "Insufficient resources");

/// The text style of a message: long tokens on lines, or compact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Pretty,
    Compact,
}

impl Style {
    /// A compact message starts with `!/`, a pretty one with `MEGACO/`.
    fn of(bytes: &[u8]) -> Self {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'!') => Self::Compact,
            _ => Self::Pretty,
        }
    }
}

/// The state a request may change, copied so a failed one leaves none.
#[derive(Clone)]
struct State {
    terms: Vec<Termination>,
    next_context: u32,
    next_term: u32,
    next_pair: u32,
    events: Vec<MgEvent>,
}

/// The media gateway.
pub struct Gateway {
    cfg: MgConfig,
    st: State,
    /// The ServiceChange's transaction id and bytes (one, retransmitted).
    service_change: (u32, Vec<u8>),
    registered: bool,
    replies: VecDeque<(u32, Vec<u8>)>,
    events: VecDeque<MgEvent>,
}

impl Gateway {
    /// A gateway with no terminations, not yet announced.
    pub fn new(cfg: MgConfig) -> Self {
        let id = cfg.first_transaction.max(1);
        let sc = format!(
            "MEGACO/1 {}\r\nTransaction = {id} {{\r\n  Context = - {{\r\n    ServiceChange = ROOT {{\r\n      Services {{\r\n        Method = Restart,\r\n        Reason = \"901\"\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n",
            cfg.mid
        );
        Self {
            st: State {
                terms: Vec::new(),
                next_context: 1,
                next_term: 1,
                next_pair: 0,
                events: Vec::new(),
            },
            service_change: (id, sc.into_bytes()),
            registered: false,
            replies: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        }
    }

    /// The ServiceChange Restart to send (the same bytes every time: a
    /// retransmission of one transaction).
    pub fn service_change(&self) -> &[u8] {
        &self.service_change.1
    }

    /// The MGC answered the ServiceChange.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// Every termination, in the order added (subtracted ones too).
    pub fn terminations(&self) -> &[Termination] {
        &self.st.terms
    }

    /// The live termination with RTP address `media`, else the latest
    /// subtracted one (late packets still count against their call).
    pub fn termination_at(&mut self, media: SocketAddr) -> Option<&mut Termination> {
        let live = self
            .st
            .terms
            .iter()
            .position(|t| t.media == media && !t.subtracted);
        let i = live.or_else(|| self.st.terms.iter().rposition(|t| t.media == media))?;
        self.st.terms.get_mut(i)
    }

    /// Live terminations that have somewhere to send RTP.
    pub fn sending(&mut self) -> impl Iterator<Item = &mut Termination> {
        self.st
            .terms
            .iter_mut()
            .filter(|t| !t.subtracted && t.remote.is_some())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MgEvent> {
        self.events.pop_front()
    }

    /// One datagram from the MGC: the reply to send back, if any.
    pub fn handle(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let msg = parse(bytes).ok()?;
        let style = Style::of(bytes);
        let mut out = Vec::new();
        for item in msg.items() {
            match item {
                Item::Request(r) => {
                    if let Some((_, kept)) = self.replies.iter().find(|(id, _)| *id == r.id) {
                        out.push(kept.clone());
                        continue;
                    }
                    let reply = self.request(&msg, r, style);
                    if self.replies.len() >= KEPT_REPLIES {
                        self.replies.pop_front();
                    }
                    self.replies.push_back((r.id, reply.clone()));
                    out.push(reply);
                }
                Item::Reply(r) if r.id == self.service_change.0 && !self.registered => {
                    let refused = r
                        .error
                        .as_ref()
                        .or_else(|| r.actions.iter().find_map(|a| a.error.as_ref()))
                        .or_else(|| {
                            r.actions
                                .iter()
                                .flat_map(|a| &a.commands)
                                .find_map(|c| c.error.as_ref())
                        });
                    match refused {
                        Some(e) => self.events.push_back(MgEvent::Refused { code: e.code }),
                        None => {
                            self.registered = true;
                            self.events.push_back(MgEvent::Registered {
                                version: msg.version(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        // One message per reply is what every peer reads; several
        // requests in one datagram (rare) get their replies one after
        // another in one message body.
        merge(out)
    }

    /// The reply to request `r`: every command done, or none and an error.
    fn request(&mut self, msg: &Message<'_>, r: &Request<'_>, style: Style) -> Vec<u8> {
        let mut st = self.st.clone();
        st.events.clear();
        let mut actions = Vec::new();
        for a in &r.actions {
            match self.action(&mut st, msg, a) {
                Ok(done) => actions.push(done),
                Err(Refusal(code, reason)) => {
                    return render_error(style, msg.version(), &self.cfg.mid, r.id, code, reason);
                }
            }
        }
        let events = std::mem::take(&mut st.events);
        self.st = st;
        self.events.extend(events);
        render(style, msg.version(), &self.cfg.mid, r.id, &actions)
    }

    /// One action on `st`: its context and the command replies.
    fn action(
        &self,
        st: &mut State,
        msg: &Message<'_>,
        a: &pinhole_h248::Action<'_>,
    ) -> Result<ActionReply, Refusal> {
        let mut context = match a.context {
            ContextId::Id(c) if st.terms.iter().any(|t| t.context == c && !t.subtracted) => Some(c),
            ContextId::Id(_) | ContextId::All => return Err(UNKNOWN_CONTEXT),
            ContextId::Choose => None,
            ContextId::Null => Some(0),
        };
        let mut replies = Vec::new();
        for c in &a.commands {
            let remote = remote_of(msg, c, self.cfg.media_ip)?;
            let term = c.terminations.first().map_or("", |t| t.text);
            match c.kind {
                CommandKind::Add => {
                    let ctx = match context {
                        Some(0) => return Err(UNKNOWN_CONTEXT),
                        Some(ctx) => ctx,
                        None => {
                            let ctx = st.next_context;
                            st.next_context = st.next_context.wrapping_add(1).max(1);
                            context = Some(ctx);
                            ctx
                        }
                    };
                    let t = self.add(st, ctx, term, remote)?;
                    let stream = c.streams.first().and_then(|s| s.id);
                    replies.push(CmdReply::Add {
                        name: t.name.clone(),
                        stream,
                        media: t.media,
                        session: u64::from(t.call),
                    });
                    st.events.push(MgEvent::Added {
                        call: t.call,
                        context: t.context,
                        termination: t.name.clone(),
                        media: t.media,
                        remote: t.remote,
                    });
                    st.terms.push(t);
                    trim(&mut st.terms);
                }
                CommandKind::Modify => {
                    let ctx = context.ok_or(UNKNOWN_CONTEXT)?;
                    let mut any = false;
                    for t in live_named(&mut st.terms, ctx, term) {
                        any = true;
                        if remote.is_some() {
                            t.remote = remote;
                        }
                        replies.push(CmdReply::Plain("Modify", "MF", t.name.clone()));
                        st.events.push(MgEvent::Modified {
                            call: t.call,
                            context: t.context,
                            termination: t.name.clone(),
                            remote: t.remote,
                        });
                    }
                    if !any {
                        return Err(UNKNOWN_TERMINATION);
                    }
                }
                CommandKind::Subtract => {
                    let ctx = context.ok_or(UNKNOWN_CONTEXT)?;
                    let mut any = false;
                    for t in live_named(&mut st.terms, ctx, term) {
                        any = true;
                        t.subtracted = true;
                        replies.push(CmdReply::Plain("Subtract", "S", t.name.clone()));
                        st.events.push(MgEvent::Subtracted {
                            call: t.call,
                            context: t.context,
                            termination: t.name.clone(),
                            request: term.to_owned(),
                        });
                    }
                    if !any {
                        return Err(UNKNOWN_TERMINATION);
                    }
                }
                CommandKind::AuditValue => {
                    // ROOT and the live terminations exist; nothing more
                    // to report about them (an empty audit).
                    let ctx = context.unwrap_or(0);
                    let known = c.terminations.iter().all(|t| {
                        t.is_root()
                            || t.is_wildcard()
                            || st.terms.iter().any(|x| {
                                !x.subtracted && x.context == ctx && names(t.text, &x.name)
                            })
                    });
                    if !known {
                        return Err(UNKNOWN_TERMINATION);
                    }
                    replies.push(CmdReply::Plain("AuditValue", "AV", term.to_owned()));
                }
                _ => return Err(NOT_IMPLEMENTED),
            }
        }
        Ok(ActionReply {
            context: context.map_or("-".to_owned(), |c| {
                if c == 0 {
                    "-".to_owned()
                } else {
                    c.to_string()
                }
            }),
            replies,
        })
    }

    /// A new termination in context `ctx` (named `term`, or chosen).
    fn add(
        &self,
        st: &mut State,
        ctx: u32,
        term: &str,
        remote: Option<SocketAddr>,
    ) -> Result<Termination, Refusal> {
        let live: Vec<&Termination> = st.terms.iter().filter(|t| !t.subtracted).collect();
        if live.len() >= MAX_LIVE {
            return Err(NO_RESOURCES);
        }
        let name = if term.is_empty() || term.contains('$') || term.contains('*') {
            loop {
                let n = format!("rtp/{}", st.next_term);
                st.next_term = st.next_term.wrapping_add(1).max(1);
                // At most MAX_LIVE names are taken: this ends soon.
                if !live.iter().any(|t| t.name.eq_ignore_ascii_case(&n)) {
                    break n;
                }
            }
        } else if live.iter().any(|t| t.name.eq_ignore_ascii_case(term)) {
            // RFC 3525 §7.2.1: a termination is in one context at a time.
            return Err(Refusal(433, "TerminationID is already in a Context"));
        } else {
            term.to_owned()
        };
        let media = self.free_pair(&mut st.next_pair, &live)?;
        let call = st.terms.last().map_or(1, |t| t.call + 1);
        Ok(Termination {
            call,
            context: ctx,
            name,
            media,
            remote,
            subtracted: false,
            sent: Tally::default(),
            received: Tally::default(),
            from: Vec::new(),
        })
    }

    /// The next (even, odd) port pair of the range no live termination
    /// uses, round robin (a freed pair rests while the others are used).
    fn free_pair(&self, next_pair: &mut u32, live: &[&Termination]) -> Result<SocketAddr, Refusal> {
        let r = self.cfg.media_ports;
        let first = r.first.saturating_add(r.first % 2);
        let pairs = u32::from(r.last.saturating_sub(first).saturating_add(1)) / 2;
        for _ in 0..pairs {
            let k = *next_pair % pairs;
            *next_pair = next_pair.wrapping_add(1);
            let Ok(port) = u16::try_from(u32::from(first) + 2 * k) else {
                continue;
            };
            let addr = SocketAddr::new(self.cfg.media_ip, port);
            if !live.iter().any(|t| t.media == addr) {
                return Ok(addr);
            }
        }
        Err(NO_RESOURCES)
    }
}

/// The first `Remote` endpoint of command `c` (`None` when it has no
/// Remote); an unreadable or CHOOSE Remote is refused.
fn remote_of(
    msg: &Message<'_>,
    c: &pinhole_h248::Command<'_>,
    fallback: IpAddr,
) -> Result<Option<SocketAddr>, Refusal> {
    let Some(g) = c.streams.iter().find_map(|s| s.remote.first()) else {
        return Ok(None);
    };
    let sdp = msg.sdp(g).map_err(|_| BAD_REMOTE)?;
    let e = sdp.endpoints(fallback).map_err(|_| BAD_REMOTE)?;
    let addr = e.first().map(|e| e.addr).ok_or(BAD_REMOTE)?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(BAD_REMOTE);
    }
    Ok(Some(addr))
}

/// Whether termination id `pattern` (with `*` for any run of characters,
/// RFC 3525 §6.2) names `name`.
fn names(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(name),
        Some((head, _)) => name
            .get(..head.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(head)),
    }
}

/// The live terminations of context `ctx` that `pattern` names.
fn live_named<'t>(
    terms: &'t mut [Termination],
    ctx: u32,
    pattern: &'t str,
) -> impl Iterator<Item = &'t mut Termination> {
    terms
        .iter_mut()
        .filter(move |t| !t.subtracted && t.context == ctx && names(pattern, &t.name))
}

/// Drops the oldest subtracted terminations beyond [`MAX_KEPT`].
fn trim(terms: &mut Vec<Termination>) {
    while terms.len() > MAX_KEPT {
        match terms.iter().position(|t| t.subtracted) {
            Some(i) => {
                terms.remove(i);
            }
            None => break,
        }
    }
}

/// One command's reply.
enum CmdReply {
    /// An Add's: the termination and its `Local`.
    Add {
        name: String,
        stream: Option<u16>,
        media: SocketAddr,
        session: u64,
    },
    /// Just the command and termination: long token, compact token, name.
    Plain(&'static str, &'static str, String),
}

/// One action's reply.
struct ActionReply {
    context: String,
    replies: Vec<CmdReply>,
}

/// The gateway's `Local`: one PCMU stream at `media`.
fn local_sdp(session: u64, media: SocketAddr) -> String {
    let (family, ip, port) = match media.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string(), media.port()),
        IpAddr::V6(ip) => ("IP6", ip.to_string(), media.port()),
    };
    format!(
        "v=0\r\no=- {session} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    )
}

/// A successful reply in `style`.
fn render(style: Style, version: u8, mid: &str, id: u32, actions: &[ActionReply]) -> Vec<u8> {
    let mut s = String::new();
    match style {
        Style::Pretty => {
            let _ = write!(s, "MEGACO/{version} {mid}\r\nReply = {id} {{\r\n");
            for (i, a) in actions.iter().enumerate() {
                let sep = if i + 1 < actions.len() { "," } else { "" };
                let _ = write!(s, "  Context = {} {{\r\n", a.context);
                for (j, c) in a.replies.iter().enumerate() {
                    let csep = if j + 1 < a.replies.len() { "," } else { "" };
                    match c {
                        CmdReply::Add {
                            name,
                            stream,
                            media,
                            session,
                        } => {
                            let sdp = local_sdp(*session, *media);
                            let local = format!("Local {{\r\n{sdp}          }}");
                            let body = match stream {
                                Some(n) => {
                                    format!("Stream = {n} {{\r\n          {local}\r\n        }}")
                                }
                                None => local,
                            };
                            let _ = write!(
                                s,
                                "    Add = {name} {{\r\n      Media {{\r\n        {body}\r\n      }}\r\n    }}{csep}\r\n"
                            );
                        }
                        CmdReply::Plain(long, _, name) => {
                            let _ = write!(s, "    {long} = {name}{csep}\r\n");
                        }
                    }
                }
                let _ = write!(s, "  }}{sep}\r\n");
            }
            s.push_str("}\r\n");
        }
        Style::Compact => {
            let _ = write!(s, "!/{version} {mid}\nP={id}{{");
            for (i, a) in actions.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "C={}{{", a.context);
                for (j, c) in a.replies.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    match c {
                        CmdReply::Add {
                            name,
                            stream,
                            media,
                            session,
                        } => {
                            let local = format!("L{{\r\n{}}}", local_sdp(*session, *media));
                            let body = match stream {
                                Some(n) => format!("ST={n}{{{local}}}"),
                                None => local,
                            };
                            let _ = write!(s, "A={name}{{M{{{body}}}}}");
                        }
                        CmdReply::Plain(_, short, name) => {
                            let _ = write!(s, "{short}={name}");
                        }
                    }
                }
                s.push('}');
            }
            s.push_str("}\n");
        }
    }
    s.into_bytes()
}

/// A reply failing transaction `id` as a whole, in `style`.
fn render_error(style: Style, version: u8, mid: &str, id: u32, code: u16, reason: &str) -> Vec<u8> {
    match style {
        Style::Pretty => pinhole_h248::error_reply(version, mid, id, code, reason),
        // The reasons are ours: no quote or backslash to escape.
        Style::Compact => {
            format!("!/{version} {mid}\nP={id}{{ER={code}{{\"{reason}\"}}}}\n").into_bytes()
        }
    }
}

/// Replies to several requests of one datagram as one message: the first
/// whole, the others' bodies after it.
fn merge(mut out: Vec<Vec<u8>>) -> Option<Vec<u8>> {
    if out.len() <= 1 {
        return out.pop();
    }
    let mut it = out.into_iter();
    let mut first = it.next()?;
    for r in it {
        // The body starts after the header line.
        if let Some(nl) = r.iter().position(|&b| b == b'\n') {
            first.extend_from_slice(r.get(nl + 1..).unwrap_or_default());
        }
    }
    Some(first)
}

#[cfg(test)]
mod tests;
