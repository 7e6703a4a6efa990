//! A span-based MGCP (RFC 3435) message parser for Pinhole's MGCP ALG.
//!
//! [`parse_datagram`] cuts a datagram into its messages — one, or several
//! piggybacked with a `.` line between them (§3.6) — and each message into
//! its command or response line, its parameter lines and its session
//! description, without copying: every field is a byte range of the whole
//! datagram. The ALG reads the session description with [`pinhole_sdp`]
//! ([`Message::sdp`]) and records the relay addresses as edits of the
//! datagram in a [`Patch`] ([`Message::rewrite_sdp`]); every other byte
//! stays as it was (letter case, LF-only or CRLF line ends, unknown
//! parameters). MGCP has no length field, so only SDP bytes change.
//!
//! | item | what |
//! | --- | --- |
//! | [`Message`] | one message: [`Head`] ([`Command`] or [`Response`]), [`Param`]s, SDP span |
//! | [`Command`] | [`Verb`], transaction id, [`Endpoint`] (`local@domain[:port]`, wildcards), [`Version`] |
//! | [`Response`] | code, transaction id, package, commentary |
//! | [`ResponseAck`] | the `K:` list of confirmed transaction ids and ranges |
//! | [`MediaRole`] | offer / modify / answer / teardown, mapped onto [`IntentKind`] |
//! | [`rewrite_all`] | the operator's `pinhole rewrite --to ADDR:PORT` |
//! | [`alg`] | the ALG: [`alg::Mpr`] at the MPR, [`alg::Aps`] at an APS, [`alg::SmartGateway`] (Figs. 9 and 10) |
//! | [`Command::builder`], [`Response::builder`], [`response`], [`piggyback`] | writing messages |
//!
//! Lines end with CRLF, LF or a bare CR. Bad input gives an [`Error`] with
//! the datagram's 1-based line and an [`ErrorKind`], never a panic.
//!
//! ```
//! use pinhole_core::intent::PlannedEndpoint;
//! use pinhole_core::patch::Patch;
//! use pinhole_mgcp::{MediaRole, Verb, parse_datagram};
//! use pinhole_sdp::RewriteOptions;
//!
//! let d = b"CRCX 10511 aaln/1@cpg2 MGCP 1.0 NCS 1.0\n\
//!     C: ABCD000068\n\
//!     L: p:20, a:PCMA, e:on, s:on\n\
//!     M: sendrecv\n\
//!     \n\
//!     v=0\n\
//!     c=IN IP4 200.57.7.196\n\
//!     m=audio 40362 RTP/AVP 0\n\
//!     .\n\
//!     RQNT 10512 aaln/1@cpg2 MGCP 1.0 NCS 1.0\n\
//!     K: 10500-10510\n\
//!     X: ABCD10512\n";
//! let msgs = parse_datagram(d)?;
//! let crcx = &msgs[0];
//! assert_eq!(crcx.verb(), Some(Verb::Crcx));
//! assert_eq!(crcx.transaction_id(), 10511);
//! assert_eq!(crcx.endpoint().unwrap().local, "aaln/1");
//! assert_eq!(crcx.call_id(), Some("ABCD000068"));
//! assert_eq!(crcx.media_role(), MediaRole::Offer);
//! assert!(msgs[1].response_ack()?.unwrap().contains(10505));
//!
//! // The engine's plan: the relay address for stream 0.
//! let sdp = crcx.sdp()?.unwrap();
//! let sender = "200.57.7.196".parse().unwrap();
//! assert_eq!(sdp.endpoints(sender).unwrap()[0].addr, "200.57.7.196:40362".parse().unwrap());
//! let plan = [PlannedEndpoint {
//!     index: 0,
//!     addr: "203.0.113.10:30000".parse().unwrap(),
//!     rtcp_addr: None,
//! }];
//! let mut patch = Patch::new();
//! crcx.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), &mut patch)?;
//! let out = patch.apply(d).unwrap();
//! let expected = String::from_utf8_lossy(d)
//!     .replace("200.57.7.196", "203.0.113.10")
//!     .replace("40362", "30000");
//! assert_eq!(out, expected.as_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The first line, parameter lines and `K:` lists are parsed with `nom`
//! combinators over each line's bytes, so each field's grammar reads like
//! RFC 3435 Appendix A while the spans stay exact.
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
mod head;
mod lines;
mod media;
mod message;
mod params;
mod rewrite_all;

#[cfg(doc)]
use pinhole_core::{intent::IntentKind, patch::Patch};

pub use build::{CommandBuilder, ResponseBuilder, piggyback, response};
pub use error::{Error, ErrorKind};
pub use head::{Command, Endpoint, Head, Host, MAX_TRANSACTION_ID, Response, Span, Verb, Version};
pub use media::MediaRole;
pub use message::{Message, Messages, messages, parse_datagram};
pub use params::{Param, ResponseAck};
pub use rewrite_all::{RewriteError, rewrite_all};
