//! What a SIP message means for the media (RFC 3264 offer/answer in RFC
//! 3261, 3262 and 3311 transactions), and writing a plan into its SDP.

use std::net::IpAddr;
use std::ops::Range;

use pinhole_core::Side;
use pinhole_core::intent::{IntentKind, MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp};

use crate::Message;

/// Offer/answer state of one dialog.
#[derive(Clone, Debug, Default)]
pub(crate) struct Negotiation {
    /// CSeq of the latest INVITE, and whether it carried the offer.
    invite: Option<(u32, bool)>,
    /// The dialog has planned media (later offers are modifications).
    pub(crate) has_media: bool,
    /// A 2xx to the initial INVITE passed: the dialog is established.
    pub(crate) confirmed: bool,
}

/// The sender of a message: for a request the From party, for a response
/// the To party. A is the party that sent the dialog's first INVITE.
pub(crate) fn sender(msg: &Message<'_>, caller_tag: &[u8]) -> Side {
    let from_is_caller = msg.from_tag() == Some(caller_tag);
    match (msg.is_request(), from_is_caller) {
        (true, true) | (false, false) => Side::A,
        _ => Side::B,
    }
}

impl Negotiation {
    /// What the message does to the media: the intent kind, or `None`
    /// when it carries no session change. `has_sdp` says whether it has an
    /// SDP body. Call before forwarding; it records the message.
    pub(crate) fn classify(&mut self, msg: &Message<'_>, has_sdp: bool) -> Option<IntentKind> {
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

/// The message's SDP, parsed once: where it sits (in message offsets), its
/// span view, and its streams.
pub(crate) struct Body<'a> {
    span: Range<usize>,
    sdp: Sdp<'a>,
    pub(crate) endpoints: Vec<MediaEndpoint>,
}

/// Finds the first SDP body (whole body or a multipart part) and reads its
/// streams. An FQDN in `c=` stands for `fallback` (the sender's address).
pub(crate) fn body<'a>(msg: &Message<'a>, fallback: IpAddr) -> Result<Option<Body<'a>>, String> {
    let spans = msg.sdp_bodies().map_err(|e| e.to_string())?;
    let Some(span) = spans.into_iter().next() else {
        return Ok(None);
    };
    let bytes = msg.buf().get(span.clone()).unwrap_or_default();
    if bytes.trim_ascii().is_empty() {
        return Ok(None);
    }
    let sdp = Sdp::parse(bytes).map_err(|e| e.to_string())?;
    let endpoints = sdp.endpoints(fallback).map_err(|e| e.to_string())?;
    Ok(Some(Body {
        span,
        sdp,
        endpoints,
    }))
}

impl Body<'_> {
    /// Records the edits that write `plan` into this SDP (the caller fixes
    /// Content-Length once all edits are in).
    pub(crate) fn rewrite(
        &self,
        plan: &[PlannedEndpoint],
        patch: &mut Patch,
    ) -> Result<(), String> {
        let mut part = Patch::new();
        self.sdp
            .rewrite(plan, &RewriteOptions::default(), &mut part)
            .map_err(|e| e.to_string())?;
        patch.extend_shifted(&part, self.span.start);
        Ok(())
    }
}
