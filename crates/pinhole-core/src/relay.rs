//! The narrow interface between the engines and a media relay data plane.
//!
//! The engine decides; the relay forwards. Commands tell the relay which
//! sockets exist and where each leg's media may come from and goes to;
//! reports tell the engine what the relay saw. The engine keeps the whole
//! mapping table, so a kernel fast path can be programmed from the same
//! commands.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::types::{Component, LegId};

/// Where one component of a leg exchanges media.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Remote {
    /// Nothing bound yet: drop everything that arrives, send nothing.
    Unbound,
    /// Exchange only with this address (an authenticated CMPH pinhole, or a
    /// public party's own address): packets from anyone else are dropped.
    Fixed(SocketAddr),
    /// A plain terminal: bind to the first packet from `ip` that arrives
    /// before `until`, then behave as `Fixed`. Nothing is sent before that.
    Latch {
        /// The only source IP accepted (the network's signaling pinhole IP).
        ip: IpAddr,
        /// End of the learning window.
        until: Instant,
    },
}

/// What the engine asks the relay to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RelayCommand {
    /// Open the leg's sockets (RTP, and RTCP unless `None`).
    OpenLeg {
        /// The leg.
        leg: LegId,
        /// Local RTP address.
        rtp: SocketAddr,
        /// Local RTCP address, if the leg has one.
        rtcp: Option<SocketAddr>,
    },
    /// Set where a component exchanges media.
    SetRemote {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        component: Component,
        /// The new binding.
        remote: Remote,
    },
    /// Forward media arriving on `leg` out of `peer`'s socket to `peer`'s
    /// remote, and the reverse. Replaces any earlier pairing of either leg.
    Connect {
        /// One leg.
        leg: LegId,
        /// The other.
        peer: LegId,
    },
    /// Close the leg's sockets and forget it.
    CloseLeg {
        /// The leg.
        leg: LegId,
    },
    /// Client side (APS): relay between the local media port and the inside
    /// terminal — media from `outside` arriving at `local` goes to `inside`,
    /// and media from `inside` goes out of `local` to `outside` (Fig. 7's
    /// port B → port A mapping, in both directions).
    MapLocal {
        /// The APS's media port (port B).
        local: SocketAddr,
        /// The MPR relay port the pinhole was opened toward.
        outside: SocketAddr,
        /// The terminal's media address (port A).
        inside: SocketAddr,
    },
    /// Client side (smart terminal, Fig. 8): the application itself owns
    /// the media on `local` (port A, which is also the pinhole's port).
    /// Media from `outside` arriving at `local` is handed to the
    /// application; anything else is dropped. The application sends its
    /// own media from `local`.
    DeliverLocal {
        /// The terminal's media port (port A).
        local: SocketAddr,
        /// The MPR relay port the pinhole was opened toward.
        outside: SocketAddr,
    },
    /// Client side: remove the mapping (or delivery) of `local`.
    UnmapLocal {
        /// The APS's media port.
        local: SocketAddr,
    },
}

/// What the relay tells the engine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RelayReport {
    /// A latching component bound itself to its first packet's source.
    Latched {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        component: Component,
        /// The source it latched to.
        source: SocketAddr,
    },
    /// The relay could not open the leg's sockets (a port taken by another
    /// process). The engine drops the leg; planning the same intent again
    /// gives the stream a leg on another port pair.
    OpenFailed {
        /// The leg.
        leg: LegId,
    },
    /// The leg forwarded media; `at` is the time of the latest packet.
    Activity {
        /// The leg.
        leg: LegId,
        /// When the last packet passed.
        at: Instant,
    },
    /// Client side: a [`RelayCommand::MapLocal`] socket sent media out
    /// through its pinhole, so the firewall's idle timer for it restarted.
    /// Only outbound packets count: not every firewall refreshes a flow on
    /// inbound traffic. Coalesced like [`RelayReport::Activity`].
    LocalActivity {
        /// The mapped socket (port B).
        local: SocketAddr,
        /// When the last packet passed.
        at: Instant,
    },
}
