//! A span-based SIP (RFC 3261) message tokenizer for Pinhole's SIP ALG.
//!
//! [`Message::parse`] cuts a message into its start line, header fields and
//! body without copying or normalising anything: every result is a byte
//! range of the original buffer. A rewriter records edits against those
//! ranges in a [`pinhole_core::patch::Patch`], so every byte it does not
//! mean to change stays as it was (folding, odd case, compact names, LF-only
//! line ends, unknown headers), and [`fix_content_length`] keeps the body
//! length right.
//!
//! | item | what |
//! | --- | --- |
//! | [`Message`] | one message: start line, [`Header`]s in order, body, trailing bytes |
//! | [`Via`] | every via-parm (sent-by, branch, received, rport) |
//! | [`Uri`] | `sip:`, `sips:`, `tel:` URIs: user, host, port, parameters |
//! | [`name_addrs`] | From / To / Contact / Route values: display name, URI, parameters |
//! | [`Message::sdp_bodies`] | the SDP body, or the SDP parts of a multipart body |
//! | [`frame`] | TCP/TLS stream framing by Content-Length, CRLF keepalives |
//! | [`fix_content_length`] | the Content-Length edit after body edits |
//! | [`media`] | the embedding layer: offer/answer role of a message, its SDP streams, the plan written back |
//! | [`alg`] | the MPR's and the APS's SIP ALGs (stateful proxies that route by themselves) |
//!
//! Parsing is lenient where RFC 4475 says a message is valid (its §3.1.1)
//! and strict where a proxy could not route it (start line, Content-Length,
//! CSeq, Via); other header values are checked only when read. Bad input
//! gives a [`ParseError`] with an offset, never a panic.
//!
//! ```
//! use pinhole_core::patch::Patch;
//! use pinhole_sip::{fix_content_length, HeaderName, Message};
//!
//! let raw = b"INVITE sip:bob@example.com SIP/2.0\n\
//!     v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK77;rport\n\
//!     f: <sip:alice@example.com>;tag=a1\n\
//!     t: <sip:bob@example.com>\n\
//!     i: call-1@10.0.0.1\n\
//!     CSeq: 1 INVITE\n\
//!     c: application/sdp\n\
//!     l: 19\n\
//!     \n\
//!     c=IN IP4 10.0.0.1\r\n";
//! let msg = Message::parse(raw).unwrap();
//! assert_eq!(msg.method(), Some("INVITE"));
//! assert_eq!(msg.call_id(), Some(&b"call-1@10.0.0.1"[..]));
//! assert_eq!(msg.cseq(), Some((1, "INVITE")));
//! assert_eq!(msg.from_tag(), Some(&b"a1"[..]));
//! assert_eq!(msg.line_ending(), b"\n");
//! let via = &msg.vias()[0];
//! assert_eq!(&raw[via.host.clone()], b"10.0.0.1");
//! assert_eq!(via.rport, Some(None));
//!
//! // Rewrite the SDP connection address; Content-Length follows.
//! let sdp = msg.sdp_bodies().unwrap()[0].clone();
//! let mut patch = Patch::new();
//! patch.replace(sdp.start + 9..sdp.start + 17, b"203.0.113.10");
//! fix_content_length(&msg, &mut patch);
//! let out = patch.apply(raw).unwrap();
//! let again = Message::parse(&out).unwrap();
//! assert_eq!(again.content_length(), Some(23));
//! assert_eq!(&out[again.body()], b"c=IN IP4 203.0.113.10\r\n");
//! assert_eq!(again.value(again.header(HeaderName::Via).unwrap()),
//!            msg.value(msg.header(HeaderName::Via).unwrap()));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod alg;
mod error;
mod fix;
mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod host;
pub mod media;
mod message;
mod multipart;
mod name_addr;
mod params;
mod rewrite_all;
mod scan;
mod uri;
mod via;

pub use error::ParseError;
pub use fix::fix_content_length;
pub use frame::{Frame, MAX_HEADER_BYTES, MAX_STREAM_BODY, frame};
pub use header::{Header, HeaderName};
pub use message::{Message, StartLine};
pub use name_addr::{NameAddr, name_addrs};
pub use params::Param;
pub use rewrite_all::{RewriteError, rewrite_all};
pub use uri::{Scheme, Uri};
pub use via::Via;

/// The fuzz bodies need a base instant; they only add durations to it.
#[cfg(feature = "fuzzing")]
#[allow(clippy::disallowed_methods)]
pub(crate) fn fuzz_instant() -> std::time::Instant {
    std::time::Instant::now()
}
