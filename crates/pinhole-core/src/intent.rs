//! The protocol-neutral media vocabulary the ALGs speak to the MPR engine.
//!
//! An ALG says what a signaling message *means* — an offer, an answer, a
//! modification or a teardown, with the media endpoints it carries — and the
//! engine answers with a [`MediaPlan`]: the relay addresses to write back into
//! the message before it is forwarded.

use std::net::{IpAddr, SocketAddr};

use crate::types::Side;
use crate::wire::RtcpMode;

/// What a connection-information message does to the call's media.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IntentKind {
    /// A first description from one party (INVITE/18x/200 offer, CRCX, Add, OLC).
    Offer,
    /// The other party's description in reply.
    Answer,
    /// A later change by either party (re-INVITE, UPDATE, MDCX, Modify).
    Modify,
    /// The call ends (BYE, CANCEL, final error, DLCX, Subtract, CLC).
    Teardown,
}

/// Where a signaling message came from or goes to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Origin<'a> {
    /// Through the signaling pinhole of a registered network (by network id).
    Network(&'a str),
    /// From or to the public side (a soft-switch, a public phone).
    Public,
}

/// One media stream as the message describes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MediaEndpoint {
    /// Position of the stream in the message (SDP m-line index, H.245 channel
    /// number); the same stream keeps its index across re-offers.
    pub index: u16,
    /// Where the sender wants to receive RTP. Port 0 disables the stream; an
    /// unspecified IP (`0.0.0.0`) with a port is the old-style hold.
    pub addr: SocketAddr,
    /// How RTCP travels.
    pub rtcp: RtcpMode,
    /// An explicit RTCP address (SDP `a=rtcp:`), when the message has one.
    pub rtcp_addr: Option<SocketAddr>,
}

impl MediaEndpoint {
    /// An RTP endpoint with RTCP on the next port.
    pub fn rtp(index: u16, addr: SocketAddr) -> Self {
        Self {
            index,
            addr,
            rtcp: RtcpMode::Pair,
            rtcp_addr: None,
        }
    }

    /// True for a disabled stream (port 0).
    pub fn is_disabled(&self) -> bool {
        self.addr.port() == 0
    }

    /// True for the old-style hold (`c=0.0.0.0`).
    pub fn is_hold(&self) -> bool {
        self.addr.ip().is_unspecified() && !self.is_disabled()
    }

    /// Where the sender wants RTCP, if it uses a separate port.
    pub fn rtcp_target(&self) -> Option<SocketAddr> {
        match self.rtcp {
            RtcpMode::Pair => Some(self.rtcp_addr.unwrap_or_else(|| {
                SocketAddr::new(self.addr.ip(), self.addr.port().wrapping_add(1))
            })),
            RtcpMode::Mux | RtcpMode::None => None,
        }
    }
}

/// A message's meaning, as the ALG tells it to the engine.
#[derive(Clone, Copy, Debug)]
pub struct MediaIntent<'a> {
    /// Offer, answer, modify or teardown.
    pub kind: IntentKind,
    /// The party that sent the message (whose endpoints these are).
    pub from: Side,
    /// Where the message came from.
    pub origin: Origin<'a>,
    /// Where the message goes.
    pub toward: Origin<'a>,
    /// The streams it describes (empty for a teardown).
    pub endpoints: &'a [MediaEndpoint],
    /// The public IP of a sender nobody authenticated (a public phone or
    /// trunk the MPR does not know). A call it offers holds legs under the
    /// engine's [`Limits`](crate::mpr::Limits) until it is answered. `None`
    /// for networks and for trusted peers (the configured soft-switch, call
    /// agent or MGC).
    pub stranger: Option<IpAddr>,
}

/// The addresses to write into the message in place of the sender's own.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MediaPlan {
    /// One entry per endpoint of the intent, in the same order.
    pub endpoints: Vec<PlannedEndpoint>,
}

/// What to write for one stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PlannedEndpoint {
    /// The stream's index, as in the intent.
    pub index: u16,
    /// The RTP address to write (an MPR relay address; unchanged for a
    /// disabled stream; the unspecified IP is kept for an old-style hold).
    pub addr: SocketAddr,
    /// The RTCP address to write where the message names one explicitly.
    pub rtcp_addr: Option<SocketAddr>,
}
