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
//! | [`frame`] | TCP/TLS stream framing by Content-Length, CRLF keepalives; [`stream_frame`], the same as a `pinhole_core::framing::ProtocolFramer` |
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
//!
//! # Embedding: the run loop of a softswitch that anchors media
//!
//! A B2BUA or proxy that already routes its calls uses [`media`], the MPR
//! engine and a relay of its own (`docs/embedding.md`; the compiled
//! example is `examples/embed`). For each SIP message it forwards:
//!
//! 1. **Parse** it: [`Message::parse`] (spans only, nothing copied).
//! 2. **Classify** it in its dialog: [`media::Negotiation::classify`] gives
//!    the offer/answer role (offer, answer, modify, teardown, or nothing
//!    for the media); [`media::sender`] which side sent it.
//! 3. **Read its streams**: [`media::sdp_body`] finds the SDP (whole body
//!    or multipart part) and its [`MediaEndpoint`](pinhole_core::intent::MediaEndpoint)s.
//! 4. **Plan** with the engine through the relay contract:
//!    `MediaCall::plan` over a `LiveMpr` (in `pinhole_core::alg`) returns
//!    relay addresses whose ports are already open in your relay.
//! 5. **Rewrite**: [`media::SdpBody::rewrite`] records the SDP edits and
//!    the Content-Length edit in a [`Patch`](pinhole_core::patch::Patch);
//!    `apply` gives the bytes to send, every other byte as it came.
//! 6. **Drain and wait**: feed the relay's reports to
//!    `Engine::handle_relay`, call `Engine::handle_timeout` when
//!    `poll_timeout` says, drain `poll_event` for logs. A teardown
//!    (`MediaCall::teardown`) frees the call's legs.
//!
//! ```
//! use std::time::Instant;
//! use pinhole_core::alg::{Outbox, call::{MediaCall, Place}, live::{LiveMpr, NoSockets}};
//! use pinhole_core::{CallKey, mpr, patch::Patch};
//! use pinhole_sip::{Message, media};
//!
//! let now = Instant::now();
//! let mut engine = mpr::Engine::new(mpr::Config::new("203.0.113.10".parse().unwrap(), [1; 32]), now).unwrap();
//! let mut relay = NoSockets; // a real softswitch passes its relay here
//! let mut out = Outbox::new();
//! let invite = b"INVITE sip:b@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!     From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\n\
//!     Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
//!     Content-Length: 49\r\n\r\n\
//!     v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n";
//! // 1–3: parse, classify, read the streams.
//! let msg = Message::parse(invite).unwrap();
//! let mut neg = media::Negotiation::default();
//! let body = media::sdp_body(&msg, "192.0.2.1".parse().unwrap()).unwrap().unwrap();
//! let kind = neg.classify(&msg, true).unwrap();
//! let from = media::sender(&msg, b"a");
//! // 4: plan; the relay ports are open when this returns.
//! let mut call = MediaCall::new(CallKey::new("c1"));
//! let mut ctx = LiveMpr::new(&mut engine, &mut relay);
//! let planned = call
//!     .plan(now, &mut ctx, &mut out, kind, from, &Place::Public, &Place::Public, body.endpoints())
//!     .unwrap();
//! // 5: rewrite; only the media fields and Content-Length change.
//! let mut patch = Patch::new();
//! body.rewrite(&msg, &planned.plan.endpoints, &mut patch).unwrap();
//! let sent = String::from_utf8(patch.apply(invite).unwrap()).unwrap();
//! assert!(sent.contains("c=IN IP4 203.0.113.10\r\n"));
//! assert!(!sent.contains("192.0.2.1\r\nm="));
//! // 6: the events a softswitch logs.
//! assert!(out.pop_event().is_some()); // CallAnchored
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
pub use frame::{Frame, MAX_HEADER_BYTES, MAX_STREAM_BODY, frame, stream_frame};
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
