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
    /// A plain terminal latched to `source`, whose port is not the one its
    /// SDP announced: exchange with `source` as with `Fixed`, but until
    /// `until` the first packet from `source`'s IP and port `expected`
    /// takes its place, once, and is then `Fixed` (docs/flows.md,
    /// "Latching"). An attacker who shares the terminal's public IP and
    /// sends first thus loses the leg to the terminal's first packet.
    Provisional {
        /// The source latched to.
        source: SocketAddr,
        /// The port the terminal's SDP announced for this component.
        expected: u16,
        /// End of the window in which the expected source may take over.
        until: Instant,
    },
}

/// What a relay does with a media packet from `src` on a component, by
/// [`Remote::admit`]: the whole per-packet source rule, shared by every
/// relay so that they cannot disagree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admission {
    /// From the bound source: forward.
    Pass,
    /// The component latches to `src` (it becomes `Fixed(src)`, the relay
    /// reports [`RelayReport::Latched`]): forward.
    Latch,
    /// Nothing bound: drop.
    Unbound,
    /// From another source: drop.
    Foreign,
}

impl Remote {
    /// Where media for this component goes, if anywhere.
    #[inline]
    pub fn target(&self) -> Option<SocketAddr> {
        match *self {
            Self::Fixed(a) | Self::Provisional { source: a, .. } => Some(a),
            Self::Unbound | Self::Latch { .. } => None,
        }
    }

    /// Whether a packet from `src` would latch this component, the window
    /// aside: from the latch IP, or from the expected port of a
    /// provisional source's IP.
    #[inline]
    pub fn latches_to(&self, src: SocketAddr) -> bool {
        match *self {
            Self::Latch { ip, .. } => ip == src.ip(),
            Self::Provisional {
                source, expected, ..
            } => source.ip() == src.ip() && src.port() == expected && source != src,
            Self::Unbound | Self::Fixed(_) => false,
        }
    }

    /// The per-packet source rule for a packet from `src` at `now`.
    #[inline]
    pub fn admit(&self, src: SocketAddr, now: Instant) -> Admission {
        match *self {
            Self::Fixed(a) if a == src => Admission::Pass,
            Self::Provisional { source, .. } if source == src => Admission::Pass,
            Self::Latch { until, .. } | Self::Provisional { until, .. }
                if now <= until && self.latches_to(src) =>
            {
                Admission::Latch
            }
            Self::Unbound => Admission::Unbound,
            _ => Admission::Foreign,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn admission_is_the_source_rule() {
        let now = crate::test_instant();
        let until = now + Duration::from_secs(10);
        let ip = a("198.51.100.7:1").ip();
        let latch = Remote::Latch { ip, until };
        assert_eq!(latch.admit(a("198.51.100.7:4000"), now), Admission::Latch);
        assert_eq!(latch.admit(a("198.51.100.8:4000"), now), Admission::Foreign);
        let later = until + Duration::from_secs(1);
        assert_eq!(
            latch.admit(a("198.51.100.7:4000"), later),
            Admission::Foreign
        );
        assert_eq!(latch.target(), None);
        let p = Remote::Provisional {
            source: a("198.51.100.7:41000"),
            expected: 7000,
            until,
        };
        assert_eq!(p.target(), Some(a("198.51.100.7:41000")));
        assert_eq!(p.admit(a("198.51.100.7:41000"), later), Admission::Pass);
        assert_eq!(p.admit(a("198.51.100.7:7000"), now), Admission::Latch);
        assert_eq!(p.admit(a("198.51.100.7:7000"), later), Admission::Foreign);
        assert_eq!(p.admit(a("198.51.100.8:7000"), now), Admission::Foreign);
        assert_eq!(p.admit(a("198.51.100.7:7002"), now), Admission::Foreign);
        let f = Remote::Fixed(a("198.51.100.7:7000"));
        assert_eq!(f.admit(a("198.51.100.7:7000"), now), Admission::Pass);
        assert_eq!(f.admit(a("198.51.100.7:7001"), now), Admission::Foreign);
        assert!(!f.latches_to(a("198.51.100.7:7001")));
        assert_eq!(
            Remote::Unbound.admit(a("198.51.100.7:7000"), now),
            Admission::Unbound
        );
    }
}
