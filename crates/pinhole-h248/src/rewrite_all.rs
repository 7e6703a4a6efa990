//! The operator's rewrite (`pinhole rewrite --to ADDR:PORT`): every
//! enabled stream of every SDP group of every Local and Remote descriptor
//! moved to one address with consecutive even ports, every other byte
//! unchanged.

use std::net::SocketAddr;

use pinhole_core::patch::Patch;
use pinhole_sdp::RewriteOptions;

use crate::error::{Error, ErrorKind};
use crate::parse::parse;

/// Rewrites every SDP group of the message to `to`'s address: stream n
/// (counting enabled streams from 0 across the datagram, groups in
/// datagram order) gets RTP on `to.port() + 2n` and, unless it uses
/// `a=rtcp-mux`, RTCP on the port after. Disabled streams (port 0) and the
/// `o=` line are left alone; H.248 text has no length field to fix.
///
/// A message without any SDP group is an [`ErrorKind::NoSdp`] error.
///
/// ```
/// let d = b"!/1 [10.0.0.2]:2944\nP=7{C=5{A=RTP/1{M{L{v=0\nc=IN IP4 10.0.0.2\nm=audio 4000 RTP/AVP 0\n}}}}}";
/// let out = pinhole_h248::rewrite_all(d, "203.0.113.10:40000".parse().unwrap())?;
/// assert_eq!(out, b"!/1 [10.0.0.2]:2944\nP=7{C=5{A=RTP/1{M{L{v=0\nc=IN IP4 203.0.113.10\nm=audio 40000 RTP/AVP 0\n}}}}}");
/// # Ok::<(), pinhole_h248::Error>(())
/// ```
pub fn rewrite_all(d: &[u8], to: SocketAddr) -> Result<Vec<u8>, Error> {
    let msg = parse(d)?;
    let mut patch = Patch::new();
    let mut scratch = Patch::new();
    let mut next = u32::from(to.port());
    let mut any = false;
    for g in msg.groups() {
        let sdp = msg.sdp(g).map_err(|e| msg.sdp_error(g, e))?;
        any = true;
        let plan = pinhole_sdp::plan_consecutive(&sdp, to.ip(), &mut next)
            .map_err(|_| Error::new(msg.line_of(g.span.start), ErrorKind::PortsExhausted))?;
        msg.rewrite_sdp_with(
            g,
            &sdp,
            &plan,
            &RewriteOptions::default(),
            &mut scratch,
            &mut patch,
        )?;
    }
    if !any {
        return Err(Error::new(1, ErrorKind::NoSdp));
    }
    patch
        .apply(d)
        .map_err(|e| Error::new(1, ErrorKind::Patch(e)))
}
