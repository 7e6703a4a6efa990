//! The UA's media: the pinhole a smart terminal opens before its SDP
//! leaves, the SDP it offers and answers with, and the address it reads
//! out of the other party's.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::client::PinholeRequest;
use pinhole_core::wire::RtcpMode;
use pinhole_sip::Message;

use super::{CallState, EndReason, MediaMode, Output, Ua};

impl Ua {
    /// The media pinhole is open; `pinhole` is the public address the CMPH
    /// Response reported (`None` in the no-response variant: our own port
    /// is written then). The SDP that was waiting for it leaves now.
    pub fn pinhole_opened(&mut self, now: Instant, pinhole: Option<SocketAddr>) {
        let media = pinhole.unwrap_or(self.cfg.media);
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.local_media = Some(media);
        match c.state {
            CallState::Reserving => self.send_invite(now),
            CallState::Binding => self.answer(now),
            _ => {}
        }
    }

    /// The media pinhole could not be opened: the call cannot have media.
    pub fn pinhole_failed(&mut self, now: Instant) {
        match self.state() {
            CallState::Reserving => self.end(EndReason::PinholeFailed),
            CallState::Binding => {
                self.reject_incoming(now, 503, "Service Unavailable");
                self.end(EndReason::PinholeFailed);
            }
            _ => {}
        }
    }

    /// Gets the call's media address ready: a smart terminal opens its
    /// pinhole (toward `relay`, the leg an offer named, or a reserve), a
    /// plain phone has its own address at once.
    pub(super) fn start_media(&mut self, now: Instant, relay: Option<SocketAddr>) {
        match self.cfg.mode {
            MediaMode::Pinhole => self.open_pinhole(relay),
            MediaMode::Direct => self.pinhole_opened(now, Some(self.cfg.media)),
        }
    }

    fn open_pinhole(&mut self, relay: Option<SocketAddr>) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.pinhole = true;
        // The LEG-KEY names the stream: the Call-ID, cut to fit 64 bytes.
        let mut key = format!("{}/0", c.call_id).into_bytes();
        key.truncate(64);
        self.out.push_back(Output::OpenPinhole(PinholeRequest {
            local: self.cfg.media,
            relay,
            rtcp: RtcpMode::Mux,
            key,
            inside: None,
        }));
    }

    /// Our SDP for the call, once its media address is known.
    pub(super) fn local_sdp(&self) -> Option<String> {
        let c = self.call.as_ref()?;
        Some(sdp(c.local_media?, c.sdp_session, 1))
    }
}

/// A one-stream audio SDP naming `addr`, with RTCP multiplexed on the RTP
/// port (RFC 5761): a pinhole is one port.
pub(super) fn sdp(addr: SocketAddr, session: u64, version: u64) -> String {
    let (family, ip) = match addr.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    format!(
        "v=0\r\n\
         o=- {session} {version} IN {family} {ip}\r\n\
         s=pinhole\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n",
        port = addr.port()
    )
}

/// The first enabled stream's address in the message's SDP, if it has one.
/// An unreadable SDP counts as none.
pub(super) fn media_of(msg: &Message<'_>, sender: IpAddr) -> Option<SocketAddr> {
    let span = msg.sdp_bodies().ok()?.into_iter().next()?;
    let bytes = msg.buf().get(span)?;
    let sdp = pinhole_sdp::Sdp::parse(bytes).ok()?;
    sdp.endpoints(sender)
        .ok()?
        .into_iter()
        .find(|e| !e.is_disabled())
        .map(|e| e.addr)
}
