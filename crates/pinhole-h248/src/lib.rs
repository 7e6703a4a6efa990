//! A span-based H.248.1 / MEGACO text-encoding (RFC 3525 Annex B) parser
//! for Pinhole's H.248 ALG.
//!
//! [`parse`] reads one message — a datagram holds one — into its header
//! (version, [`Mid`]), its transactions, replies, pendings and acks
//! ([`Item`]), their actions and commands, and the SDP groups of each
//! command's Local and Remote descriptors, without copying: every field is
//! a byte range of the datagram or a `&str` borrowed from it. Descriptors
//! the ALG does not need (Events, Signals, LocalControl, Statistics, …)
//! are skipped by brace matching. The ALG reads an SDP group with
//! [`pinhole_sdp`] ([`Message::sdp`]) and records the relay addresses as
//! edits of the datagram in a [`Patch`] ([`Message::rewrite_sdp`]); every
//! other byte stays as it was (compact or long tokens, letter case, white
//! space, comments, line ends). H.248 text has no length field, so only
//! SDP bytes change.
//!
//! | item | what |
//! | --- | --- |
//! | [`parse`], [`Message`] | one message: version, [`Mid`], [`Item`]s or a message-level [`ErrorDescriptor`] |
//! | [`Item`] | [`Request`], [`Reply`], `Pending`, `ResponseAck` ([`AckRange`]) |
//! | [`Action`], [`ContextId`] | the commands for one context (`-` null, `$` choose, `*` all) |
//! | [`Command`], [`CommandKind`], [`TermId`] | one command with its `O-`/`W-` flags, terminations, streams, [`ServiceChange`], error |
//! | [`Stream`], [`SdpGroup`] | the Local/Remote SDP groups of one stream, one group per `v=` line |
//! | [`MediaRole`] | offer / modify / answer / teardown, mapped onto [`IntentKind`] |
//! | [`rewrite_all`] | the operator's `pinhole rewrite --to ADDR:PORT` |
//! | [`error_reply`], [`pending`] | the ALG's own replies |
//! | [`Error`], [`ErrorKind`] | what is wrong, on which line |
//! | [`MAX_DEPTH`], [`MAX_ITEMS`], … | the bounds on nesting and counts |
//!
//! Tokens are read in long or compact form in any letter case; white
//! space, comments (`;` to the end of the line) and line ends (CRLF, LF or
//! a bare CR) may stand between any two tokens; NUL bytes at the end of
//! the datagram (some stacks send one) are ignored. Bad input gives an
//! [`Error`] with the datagram's 1-based line and an [`ErrorKind`], never
//! a panic, and the work is linear in the datagram's length.
//!
//! ```
//! use pinhole_core::intent::PlannedEndpoint;
//! use pinhole_core::patch::Patch;
//! use pinhole_h248::{CommandKind, ContextId, Item, MediaRole, MidKind, parse};
//! use pinhole_sdp::RewriteOptions;
//!
//! let d = b"!/1 [10.23.1.42]:2944 P = 555282723{ C = 191 {a=RTP/1727 { m { l {\r\n\
//! v=0\r\n\
//! c=IN IP4 10.23.1.52\r\n\
//! m=audio 16756 RTP/AVP 8\r\n\
//! } } } }}";
//! let msg = parse(d)?;
//! assert_eq!(msg.mid().kind, MidKind::Ip4);
//! assert_eq!(msg.mid().port, Some(2944));
//! let item = &msg.items()[0];
//! let Item::Reply(reply) = item else { unreachable!() };
//! assert_eq!(reply.id, 555282723);
//! assert_eq!(reply.actions[0].context, ContextId::Id(191));
//! let add = &reply.actions[0].commands[0];
//! assert_eq!(add.kind, CommandKind::Add);
//! assert_eq!(add.terminations[0].text, "RTP/1727");
//! assert_eq!(MediaRole::of(item, add), MediaRole::Answer);
//!
//! // The engine's plan: the relay address for stream 0 of the Local group.
//! let group = &add.streams[0].local[0];
//! let sdp = msg.sdp(group)?;
//! let sender = "10.23.1.42".parse().unwrap();
//! assert_eq!(sdp.endpoints(sender)?[0].addr, "10.23.1.52:16756".parse().unwrap());
//! let plan = [PlannedEndpoint {
//!     index: 0,
//!     addr: "203.0.113.10:30000".parse().unwrap(),
//!     rtcp_addr: None,
//! }];
//! let mut patch = Patch::new();
//! msg.rewrite_sdp(group, &sdp, &plan, &RewriteOptions::default(), &mut patch)?;
//! let out = patch.apply(d).unwrap();
//! let expected = String::from_utf8_lossy(d)
//!     .replace("IP4 10.23.1.52", "IP4 203.0.113.10")
//!     .replace("16756", "30000");
//! assert_eq!(out, expected.as_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The header and the mId are `nom` combinators; the nesting of
//! transactions, actions, commands and descriptors is a recursive descent
//! over one cursor, so each span is exact, with plain loops for the ids
//! every message has (they are on the hot path). The bounds ([`MAX_DEPTH`]
//! and the counts) make a hostile message an [`ErrorKind::TooDeep`] or
//! [`ErrorKind::TooMany`] error, not unbounded work.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod alg;
mod build;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod media;
mod message;
mod parse;
mod rewrite_all;

#[cfg(doc)]
use pinhole_core::{intent::IntentKind, patch::Patch};

pub use build::{error_reply, pending};
pub use error::{Error, ErrorKind};
pub use media::MediaRole;
pub use message::{
    AckRange, Action, Command, CommandKind, ContextId, ErrorDescriptor, Item, Message, Mid,
    MidKind, Reply, Request, SdpGroup, ServiceChange, Stream, TermId,
};
pub use parse::{
    MAX_ACTIONS, MAX_COMMANDS, MAX_DEPTH, MAX_GROUPS, MAX_ITEMS, MAX_STREAMS, MAX_TERMINATIONS,
    parse,
};
pub use rewrite_all::rewrite_all;
