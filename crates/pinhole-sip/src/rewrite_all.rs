//! The operator's rewrite (`pinhole rewrite --to ADDR:PORT`): every
//! enabled stream of every SDP body moved to one address with consecutive
//! even ports, Content-Length fixed, every other byte unchanged.

use std::net::SocketAddr;

use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp};

use crate::{Message, fix_content_length};

/// Why a message could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The SIP message does not parse.
    #[error("SIP: {0}")]
    Sip(#[from] crate::ParseError),
    /// An SDP body does not parse or cannot take the plan.
    #[error("SDP: {0}")]
    Sdp(#[from] pinhole_sdp::SdpError),
    /// The message has no SDP body.
    #[error("the message has no SDP body")]
    NoSdp,
    /// The ports would run past 65535.
    #[error("the ports run past 65535")]
    PortsExhausted,
    /// The edits could not be applied (a bug: they overlap).
    #[error("patch: {0}")]
    Patch(#[from] pinhole_core::patch::PatchError),
}

impl RewriteError {
    /// A stable short label of the variant, for metrics and logs (the
    /// wrapped error's own `kind()` tells more).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sip(_) => "sip",
            Self::Sdp(_) => "sdp",
            Self::NoSdp => "no_sdp",
            Self::PortsExhausted => "ports_exhausted",
            Self::Patch(_) => "patch",
        }
    }
}

/// Rewrites every enabled stream of every SDP body (the whole body, or each
/// SDP part of a multipart body) to `to`'s address: stream n (counting
/// enabled streams from 0 across the message) gets RTP on `to.port() + 2n`
/// and, unless it uses `a=rtcp-mux`, RTCP on the port after. Disabled
/// streams (port 0) and the `o=` line are left alone.
///
/// ```
/// let msg = b"INVITE sip:b@example.com SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
/// Content-Type: application/sdp\r\nContent-Length: 48\r\n\r\n\
/// v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
/// let out = pinhole_sip::rewrite_all(msg, "203.0.113.10:30000".parse().unwrap()).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("c=IN IP4 203.0.113.10\r\nm=audio 30000 "));
/// assert!(text.contains("Content-Length: 53\r\n"));
/// ```
pub fn rewrite_all(buf: &[u8], to: SocketAddr) -> Result<Vec<u8>, RewriteError> {
    let m = Message::parse(buf)?;
    let bodies = m.sdp_bodies()?;
    if bodies.is_empty() {
        return Err(RewriteError::NoSdp);
    }
    let mut patch = Patch::new();
    let mut next = u32::from(to.port());
    for span in bodies {
        let body = buf.get(span.clone()).unwrap_or_default();
        let sdp = Sdp::parse(body)?;
        let plan = pinhole_sdp::plan_consecutive(&sdp, to.ip(), &mut next)
            .map_err(|_| RewriteError::PortsExhausted)?;
        let mut part = Patch::new();
        sdp.rewrite(&plan, &RewriteOptions::default(), &mut part)?;
        patch.extend_shifted(&part, span.start);
    }
    fix_content_length(&m, &mut patch);
    Ok(patch.apply(buf)?)
}
