//! The operator's rewrite (`pinhole rewrite --to ADDR:PORT`): every enabled
//! stream of every session description in the datagram moved to one
//! address with consecutive even ports, every other byte unchanged.

use std::net::SocketAddr;

use pinhole_core::patch::Patch;
use pinhole_sdp::RewriteOptions;

use crate::error::Error;
use crate::message::messages;

/// Why a datagram could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// A message does not parse, or its SDP cannot be read or rewritten.
    #[error("{0}")]
    Mgcp(#[from] Error),
    /// No message of the datagram has a session description.
    #[error("no message has a session description")]
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
    /// wrapped error's own label tells more).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mgcp(_) => "mgcp",
            Self::NoSdp => "no_sdp",
            Self::PortsExhausted => "ports_exhausted",
            Self::Patch(_) => "patch",
        }
    }
}

/// Rewrites every enabled stream of every message's session description
/// to `to`'s address: stream n (counting enabled streams from 0 across the
/// datagram) gets RTP on `to.port() + 2n` and, unless it uses
/// `a=rtcp-mux`, RTCP on the port after. Disabled streams (port 0) and the
/// `o=` line are left alone; MGCP has no length field to fix.
///
/// ```
/// let d = b"200 10511 OK\nI: 7c\n\nv=0\nc=IN IP4 200.57.7.202\nm=audio 30000 RTP/AVP 8\n";
/// let out = pinhole_mgcp::rewrite_all(d, "203.0.113.10:40000".parse().unwrap()).unwrap();
/// assert_eq!(out, b"200 10511 OK\nI: 7c\n\nv=0\nc=IN IP4 203.0.113.10\nm=audio 40000 RTP/AVP 8\n");
/// ```
pub fn rewrite_all(datagram: &[u8], to: SocketAddr) -> Result<Vec<u8>, RewriteError> {
    let mut patch = Patch::new();
    let mut next = u32::from(to.port());
    let mut any = false;
    for msg in messages(datagram) {
        let msg = msg?;
        let Some(sdp) = msg.sdp()? else {
            continue;
        };
        any = true;
        let plan = pinhole_sdp::plan_consecutive(&sdp, to.ip(), &mut next)
            .map_err(|_| RewriteError::PortsExhausted)?;
        msg.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), &mut patch)?;
    }
    if !any {
        return Err(RewriteError::NoSdp);
    }
    Ok(patch.apply(datagram)?)
}
