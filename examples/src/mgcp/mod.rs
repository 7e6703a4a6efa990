//! A minimal MGCP call agent ([`ca`]) and gateway ([`gw`]), sans-IO, for the
//! patent's Figs. 9 and 10: the call agent sits on the public side and
//! connects two endpoints (CRCX A, CRCX B with A's description, MDCX A with
//! B's, RFC 3435 §2.3.5 / Appendix E.3 style), the gateways answer with
//! their RTP address. Both keep RFC 3435 §3.5 UDP reliability: commands are
//! retransmitted with the same transaction id, a repeated command gets the
//! same response. [`smart`] runs the Fig. 10 smart gateway on real sockets
//! (`mgcp_smart_gw`).
//!
//! ```
//! use std::time::Instant;
//! use pinhole_examples::mgcp::ca::{CallAgent, CaEvent, Leg};
//! use pinhole_examples::mgcp::gw::{Gateway, GwConfig};
//!
//! let now = Instant::now();
//! let ca_addr = "203.0.113.5:2727".parse().unwrap();
//! let gw_addr = "10.1.0.20:2427".parse().unwrap();
//! let mut ca = CallAgent::new(ca_addr, 1);
//! let mut gw = Gateway::new(GwConfig::new("gw1.corp1.example", "10.1.0.20:4000".parse().unwrap()));
//! let leg = Leg::new("aaln/1@gw1.corp1.example", gw_addr);
//! let sdp = b"v=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n";
//! ca.connect_public(now, "C1", leg, sdp.to_vec()).unwrap();
//! // Shuttle datagrams until the call agent says the call is up.
//! for _ in 0..4 {
//!     while let Some((to, bytes)) = ca.poll_transmit() {
//!         assert_eq!(to, gw_addr);
//!         gw.handle_datagram(now, ca_addr, &bytes);
//!     }
//!     while let Some((to, bytes)) = gw.poll_transmit() {
//!         ca.handle_datagram(now, gw_addr, &bytes);
//!     }
//! }
//! let Some(CaEvent::Connected { a, .. }) = ca.poll_event() else { panic!() };
//! assert_eq!(a, "10.1.0.20:4000".parse().unwrap());
//! assert_eq!(gw.remote_media(), Some("203.0.113.7:5004".parse().unwrap()));
//! ```

pub mod ca;
pub mod gw;
pub mod smart;

use std::net::{IpAddr, SocketAddr};

/// RFC 3435 §3.5: a response is kept this long to answer a retransmitted
/// command (T-hist).
pub const T_HIST: std::time::Duration = std::time::Duration::from_secs(30);

/// A one-stream audio description (PCMU) naming `media`.
pub fn audio_sdp(session_id: u64, media: SocketAddr) -> Vec<u8> {
    let family = match media.ip() {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let ip = media.ip();
    format!(
        "v=0\r\no=- {session_id} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        media.port()
    )
    .into_bytes()
}

/// The first stream's RTP address in a description, if it has one.
pub fn sdp_media(sdp: &[u8]) -> Option<SocketAddr> {
    let parsed = pinhole_sdp::Sdp::parse(sdp).ok()?;
    // Without a usable c= line there is no address to send to.
    let fallback = IpAddr::from([0, 0, 0, 0]);
    let e = parsed.endpoints(fallback).ok()?;
    let first = e.first()?;
    (!first.addr.ip().is_unspecified()).then_some(first.addr)
}

#[cfg(test)]
mod tests;
