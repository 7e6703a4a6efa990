//! The SIP embedding layer: what a SIP message means for the media, and
//! writing relay addresses into its SDP. A B2BUA or proxy that already
//! routes uses these two steps and its own relay (or an `mpr::Engine`),
//! without [`crate::alg`]'s proxies:
//!
//! 1. [`Negotiation::classify`]: the RFC 3264 offer/answer role of a
//!    message in its dialog (RFC 3261 INVITE offers and late offers, RFC
//!    3262 PRACK, RFC 3311 UPDATE, BYE/CANCEL/failed INVITE teardowns);
//! 2. [`sdp_body`]: the first SDP body (whole body or multipart part) and
//!    its streams as [`MediaEndpoint`]s, to plan;
//! 3. [`SdpBody::rewrite`]: the plan written into the SDP's `c=`, `m=` and
//!    `a=rtcp:` fields and Content-Length fixed, as edits to a [`Patch`];
//!    every other byte of the message stays as it came.
//!
//! ```
//! use pinhole_core::intent::{IntentKind, PlannedEndpoint};
//! use pinhole_core::patch::Patch;
//! use pinhole_sip::Message;
//! use pinhole_sip::media::{Negotiation, sdp_body};
//!
//! let invite = b"INVITE sip:b@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
//!     From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\n\
//!     Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
//!     Content-Length: 48\r\n\r\n\
//!     v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
//! let msg = Message::parse(invite).unwrap();
//! let body = sdp_body(&msg, "10.0.0.1".parse().unwrap()).unwrap().unwrap();
//! let mut neg = Negotiation::default();
//! assert_eq!(neg.classify(&msg, true), Some(IntentKind::Offer));
//! assert_eq!(body.endpoints()[0].addr, "10.0.0.1:4000".parse().unwrap());
//! // The relay's address for the stream, as an engine would plan it:
//! let plan = [PlannedEndpoint {
//!     index: 0,
//!     addr: "203.0.113.10:30000".parse().unwrap(),
//!     rtcp_addr: None,
//! }];
//! let mut patch = Patch::new();
//! body.rewrite(&msg, &plan, &mut patch).unwrap();
//! let out = String::from_utf8(patch.apply(invite).unwrap()).unwrap();
//! assert!(out.contains("Content-Length: 53\r\n"));
//! assert!(out.ends_with("c=IN IP4 203.0.113.10\r\nm=audio 30000 RTP/AVP 0\r\n"));
//! ```

use std::net::IpAddr;
use std::ops::Range;

use pinhole_core::Side;
use pinhole_core::intent::{IntentKind, MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp, SdpError};

use crate::{Message, ParseError, fix_content_length};

/// Why a message's SDP could not be read or rewritten.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The body (a multipart one) could not be cut into parts.
    #[error("body: {0}")]
    Body(#[from] ParseError),
    /// The SDP does not parse, or cannot take the plan.
    #[error("SDP: {0}")]
    Sdp(#[from] SdpError),
}

impl MediaError {
    /// A short label, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Body(_) => "body",
            Self::Sdp(_) => "sdp",
        }
    }
}

/// Offer/answer state of one dialog.
#[derive(Clone, Debug, Default)]
pub struct Negotiation {
    /// CSeq of the latest INVITE, and whether it carried the offer.
    invite: Option<(u32, bool)>,
    /// The dialog has had an offer (later offers are modifications).
    has_media: bool,
    /// A 2xx to the initial INVITE passed: the dialog is established.
    confirmed: bool,
}

/// The sender of a message: for a request the From party, for a response
/// the To party. A is the party that sent the dialog's first INVITE (whose
/// From tag is `caller_tag`).
pub fn sender(msg: &Message<'_>, caller_tag: &[u8]) -> Side {
    let from_is_caller = msg.from_tag() == Some(caller_tag);
    match (msg.is_request(), from_is_caller) {
        (true, true) | (false, false) => Side::A,
        _ => Side::B,
    }
}

impl Negotiation {
    /// True once a 2xx to the initial INVITE passed.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// True once the dialog has had an offer.
    pub fn has_media(&self) -> bool {
        self.has_media
    }

    /// What the message does to the media: the intent kind, or `None`
    /// when it carries no session change. `has_sdp` says whether it has an
    /// SDP body. Call before forwarding; it records the message.
    pub fn classify(&mut self, msg: &Message<'_>, has_sdp: bool) -> Option<IntentKind> {
        let (cseq, method) = msg.cseq()?;
        if let Some(status) = msg.status() {
            return self.response(status, cseq, method, has_sdp);
        }
        let m = msg.method()?;
        if m.eq_ignore_ascii_case("BYE") || m.eq_ignore_ascii_case("CANCEL") {
            return Some(IntentKind::Teardown);
        }
        if m.eq_ignore_ascii_case("INVITE") {
            self.invite = Some((cseq, has_sdp));
            return has_sdp.then(|| self.offer());
        }
        if !has_sdp {
            return None;
        }
        if m.eq_ignore_ascii_case("ACK") {
            return Some(IntentKind::Answer);
        }
        if m.eq_ignore_ascii_case("UPDATE") || m.eq_ignore_ascii_case("PRACK") {
            return Some(self.offer());
        }
        None
    }

    fn response(
        &mut self,
        status: u16,
        cseq: u32,
        method: &str,
        has_sdp: bool,
    ) -> Option<IntentKind> {
        let invite = method.eq_ignore_ascii_case("INVITE");
        if invite && status >= 300 && !self.confirmed {
            // The call never started: its media goes.
            return Some(IntentKind::Teardown);
        }
        if invite && (200..300).contains(&status) {
            self.confirmed = true;
        }
        if !has_sdp || !(101..300).contains(&status) {
            return None;
        }
        if invite {
            return match self.invite {
                Some((c, true)) if c == cseq => Some(IntentKind::Answer),
                // Late offer (RFC 3261 §13.2.1): the response offers.
                _ => Some(self.offer()),
            };
        }
        if method.eq_ignore_ascii_case("UPDATE") || method.eq_ignore_ascii_case("PRACK") {
            return Some(IntentKind::Answer);
        }
        None
    }

    fn offer(&mut self) -> IntentKind {
        if std::mem::replace(&mut self.has_media, true) {
            IntentKind::Modify
        } else {
            IntentKind::Offer
        }
    }
}

/// A message's SDP, parsed once: where it sits (in message offsets), its
/// span view, and its streams.
pub struct SdpBody<'a> {
    span: Range<usize>,
    sdp: Sdp<'a>,
    endpoints: Vec<MediaEndpoint>,
}

/// Finds the first SDP body (whole body or a multipart part) and reads its
/// streams; `None` when the message has none (or an empty one). An FQDN in
/// `c=` stands for `fallback` (the sender's address).
pub fn sdp_body<'a>(
    msg: &Message<'a>,
    fallback: IpAddr,
) -> Result<Option<SdpBody<'a>>, MediaError> {
    let spans = msg.sdp_bodies()?;
    let Some(span) = spans.into_iter().next() else {
        return Ok(None);
    };
    let bytes = msg.buf().get(span.clone()).unwrap_or_default();
    if bytes.trim_ascii().is_empty() {
        return Ok(None);
    }
    let sdp = Sdp::parse(bytes)?;
    let endpoints = sdp.endpoints(fallback)?;
    Ok(Some(SdpBody {
        span,
        sdp,
        endpoints,
    }))
}

impl SdpBody<'_> {
    /// The streams, in `m=` order.
    pub fn endpoints(&self) -> &[MediaEndpoint] {
        &self.endpoints
    }

    /// Where the SDP sits in the message.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Records the edits that write `plan` into this SDP of `msg`, and the
    /// Content-Length edit that follows (call once per message, after any
    /// other body edit).
    pub fn rewrite(
        &self,
        msg: &Message<'_>,
        plan: &[PlannedEndpoint],
        patch: &mut Patch,
    ) -> Result<(), MediaError> {
        let mut part = Patch::new();
        self.sdp
            .rewrite(plan, &RewriteOptions::default(), &mut part)?;
        patch.extend_shifted(&part, self.span.start);
        fix_content_length(msg, patch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(start: &str, from_tag: &str, cseq: &str, body: &str) -> Vec<u8> {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm\r\n\
             From: <sip:a@x>;tag={from_tag}\r\nTo: <sip:b@y>;tag=bb\r\nCall-ID: c\r\n\
             CSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    const SDP: &str = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";

    #[test]
    fn offer_answer_late_offer_reinvite_and_teardown() {
        let mut n = Negotiation::default();
        let inv = msg("INVITE sip:b@y SIP/2.0", "aa", "1 INVITE", "");
        assert_eq!(n.classify(&Message::parse(&inv).unwrap(), false), None);
        // Late offer: the 200 offers, the ACK answers.
        let ok = msg("SIP/2.0 200 OK", "aa", "1 INVITE", SDP);
        let ok = Message::parse(&ok).unwrap();
        assert_eq!(sender(&ok, b"aa"), Side::B);
        assert_eq!(n.classify(&ok, true), Some(IntentKind::Offer));
        assert!(n.confirmed() && n.has_media());
        let ack = msg("ACK sip:b@y SIP/2.0", "aa", "1 ACK", SDP);
        assert_eq!(
            n.classify(&Message::parse(&ack).unwrap(), true),
            Some(IntentKind::Answer)
        );
        // A re-INVITE from B is a modification.
        let re = msg("INVITE sip:a@x SIP/2.0", "bb", "7 INVITE", SDP);
        let re = Message::parse(&re).unwrap();
        assert_eq!(sender(&re, b"aa"), Side::B);
        assert_eq!(n.classify(&re, true), Some(IntentKind::Modify));
        // An error to a re-INVITE of a confirmed dialog ends nothing.
        let err = msg("SIP/2.0 488 Not Acceptable Here", "bb", "7 INVITE", "");
        assert_eq!(n.classify(&Message::parse(&err).unwrap(), false), None);
        let bye = msg("BYE sip:b@y SIP/2.0", "aa", "2 BYE", "");
        assert_eq!(
            n.classify(&Message::parse(&bye).unwrap(), false),
            Some(IntentKind::Teardown)
        );
    }

    #[test]
    fn a_failed_initial_invite_tears_down_and_bad_sdp_is_typed() {
        let mut n = Negotiation::default();
        let inv = msg("INVITE sip:b@y SIP/2.0", "aa", "1 INVITE", SDP);
        assert_eq!(
            n.classify(&Message::parse(&inv).unwrap(), true),
            Some(IntentKind::Offer)
        );
        let busy = msg("SIP/2.0 486 Busy Here", "aa", "1 INVITE", "");
        assert_eq!(
            n.classify(&Message::parse(&busy).unwrap(), false),
            Some(IntentKind::Teardown)
        );
        let bad = msg(
            "INVITE sip:b@y SIP/2.0",
            "aa",
            "1 INVITE",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
        );
        let e = sdp_body(&Message::parse(&bad).unwrap(), "10.0.0.1".parse().unwrap())
            .err()
            .expect("a bad port");
        assert_eq!(e.kind(), "sdp");
        let none = msg("INVITE sip:b@y SIP/2.0", "aa", "1 INVITE", "\r\n");
        assert!(
            sdp_body(&Message::parse(&none).unwrap(), "10.0.0.1".parse().unwrap())
                .unwrap()
                .is_none()
        );
    }
}
