//! The forwarding table and the forwarding decision, without any I/O.
//!
//! Every worker holds a full copy, updated from the same command stream, so
//! the packet path reads it without locks. [`Table::decide`] is the whole
//! per-packet policy: a kernel fast path (nftables NAT rules for
//! established flows) can be programmed from the same commands and latch
//! reports, so this table is never the only place a mapping lives.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_core::relay::{Admission, RelayReport, Remote};
use pinhole_core::types::{Component, LegId};

/// Index of a relay socket in every worker's table (and its mio token).
pub(crate) type SockId = usize;

/// What a socket is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Component `comp` (0 RTP, 1 RTCP) of a leg.
    Leg { leg: LegId, comp: usize },
    /// A client-side mapping: `outside` ⇄ `inside` through this socket.
    Map {
        outside: SocketAddr,
        inside: SocketAddr,
    },
    /// A smart terminal's media port: media from `outside` goes to the
    /// application, not to another socket.
    Deliver { outside: SocketAddr },
    /// Bound for control messages only (a client's media port before its
    /// pinhole is open): media is dropped.
    Bare,
}

/// A socket as every worker knows it.
#[derive(Clone, Debug)]
pub(crate) struct SockEntry {
    pub(crate) sock: Arc<UdpSocket>,
    pub(crate) local: SocketAddr,
    /// The worker that polls it.
    pub(crate) owner: usize,
    pub(crate) role: Role,
}

struct Leg {
    socks: [Option<SockId>; 2],
    remote: [Remote; 2],
    peer: Option<LegId>,
    /// When the last Activity report went out.
    reported: Option<Instant>,
}

/// Why a media packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Not from the bound (or latchable) source.
    Source,
    /// The component has no binding yet.
    Unbound,
    /// The peer leg cannot send this component yet.
    NoPeer,
}

/// The forwarding decision for one media packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send the payload unchanged out of socket `via` to `to`.
    Forward { via: SockId, to: SocketAddr },
    /// Hand the payload to the application (a [`Role::Deliver`] socket).
    Deliver,
    /// Drop it.
    Drop(DropReason),
}

/// One worker's copy of the forwarding table.
pub(crate) struct Table {
    socks: Vec<Option<SockEntry>>,
    /// When each mapped socket last reported outbound activity.
    map_reported: Vec<Option<Instant>>,
    legs: HashMap<LegId, Leg>,
    activity_interval: Duration,
}

pub(crate) fn comp_index(c: Component) -> usize {
    match c {
        Component::Rtp => 0,
        Component::Rtcp => 1,
    }
}

fn component(i: usize) -> Component {
    if i == 0 {
        Component::Rtp
    } else {
        Component::Rtcp
    }
}

impl Table {
    /// An empty table; Activity reports at most once per leg per
    /// `activity_interval`.
    pub(crate) fn new(activity_interval: Duration) -> Self {
        Self {
            socks: Vec::new(),
            map_reported: Vec::new(),
            legs: HashMap::new(),
            activity_interval,
        }
    }

    pub(crate) fn sock(&self, id: SockId) -> Option<&SockEntry> {
        self.socks.get(id).and_then(Option::as_ref)
    }

    /// Adds socket `id`, or changes the role of the one there.
    pub(crate) fn put_sock(&mut self, id: SockId, entry: SockEntry) {
        if self.socks.len() <= id {
            self.socks.resize_with(id + 1, || None);
            self.map_reported.resize(id + 1, None);
        }
        if let Some(slot) = self.socks.get_mut(id) {
            *slot = Some(entry);
        }
        if let Some(r) = self.map_reported.get_mut(id) {
            *r = None;
        }
    }

    pub(crate) fn set_role(&mut self, id: SockId, role: Role) -> bool {
        match self.socks.get_mut(id).and_then(Option::as_mut) {
            Some(e) => {
                e.role = role;
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove_sock(&mut self, id: SockId) -> Option<SockEntry> {
        self.socks.get_mut(id).and_then(Option::take)
    }

    pub(crate) fn open_leg(&mut self, leg: LegId, socks: [Option<SockId>; 2]) {
        self.legs.insert(
            leg,
            Leg {
                socks,
                remote: [Remote::Unbound; 2],
                peer: None,
                reported: None,
            },
        );
    }

    pub(crate) fn set_remote(&mut self, leg: LegId, comp: usize, remote: Remote) {
        if let Some(r) = self.legs.get_mut(&leg).and_then(|l| l.remote.get_mut(comp)) {
            *r = remote;
        }
    }

    /// Another worker latched `leg`'s component to `source`: follow it,
    /// unless a newer command already replaced the latch window.
    pub(crate) fn follow_latch(&mut self, leg: LegId, comp: usize, source: SocketAddr) {
        if let Some(r) = self.legs.get_mut(&leg).and_then(|l| l.remote.get_mut(comp))
            && r.latches_to(source)
        {
            *r = Remote::Fixed(source);
        }
    }

    /// Pairs two legs; their earlier partners lose their back links, so no
    /// third leg keeps sending into this pair.
    pub(crate) fn connect(&mut self, a: LegId, b: LegId) {
        for x in [a, b] {
            let old = self.legs.get(&x).and_then(|l| l.peer);
            if let Some(o) = old
                && let Some(ol) = self.legs.get_mut(&o)
                && ol.peer == Some(x)
            {
                ol.peer = None;
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            if let Some(l) = self.legs.get_mut(&x) {
                l.peer = Some(y);
            }
        }
    }

    /// Forgets a leg; returns its sockets, removed from the table.
    pub(crate) fn close_leg(&mut self, leg: LegId) -> Vec<SockEntry> {
        let Some(l) = self.legs.remove(&leg) else {
            return Vec::new();
        };
        l.socks
            .iter()
            .flatten()
            .filter_map(|&id| self.remove_sock(id))
            .collect()
    }

    /// Media left through mapped socket `at`'s pinhole: report it, at most
    /// once per `activity_interval`.
    fn map_activity(
        &mut self,
        at: SockId,
        local: SocketAddr,
        now: Instant,
        reports: &mut Vec<RelayReport>,
    ) {
        if let Some(r) = self.map_reported.get_mut(at)
            && r.is_none_or(|t| now.saturating_duration_since(t) >= self.activity_interval)
        {
            *r = Some(now);
            reports.push(RelayReport::LocalActivity { local, at: now });
        }
    }

    /// The policy for one media (non-control) datagram from `src` arriving
    /// on socket `at`. Latching and coalesced activity append to `reports`.
    pub(crate) fn decide(
        &mut self,
        at: SockId,
        src: SocketAddr,
        now: Instant,
        reports: &mut Vec<RelayReport>,
    ) -> Verdict {
        let Some(entry) = self.socks.get(at).and_then(Option::as_ref) else {
            return Verdict::Drop(DropReason::Unbound);
        };
        let local = entry.local;
        let (id, c) = match entry.role {
            Role::Leg { leg, comp } => (leg, comp),
            Role::Map { outside, inside } => {
                return if src == outside {
                    Verdict::Forward {
                        via: at,
                        to: inside,
                    }
                } else if src == inside {
                    self.map_activity(at, local, now, reports);
                    Verdict::Forward {
                        via: at,
                        to: outside,
                    }
                } else {
                    Verdict::Drop(DropReason::Source)
                };
            }
            Role::Deliver { outside } if src == outside => return Verdict::Deliver,
            Role::Deliver { .. } | Role::Bare => return Verdict::Drop(DropReason::Source),
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return Verdict::Drop(DropReason::Unbound);
        };
        let Some(remote) = leg.remote.get_mut(c) else {
            return Verdict::Drop(DropReason::Unbound);
        };
        // The source rule is the core's (`Remote::admit`): a latch, or a
        // provisional latch that the SDP's port takes over, binds here and
        // is reported; the engine confirms or corrects it.
        match remote.admit(src, now) {
            Admission::Pass => {}
            Admission::Latch => {
                *remote = Remote::Fixed(src);
                reports.push(RelayReport::Latched {
                    leg: id,
                    component: component(c),
                    source: src,
                });
            }
            Admission::Unbound => return Verdict::Drop(DropReason::Unbound),
            Admission::Foreign => return Verdict::Drop(DropReason::Source),
        }
        if leg
            .reported
            .is_none_or(|t| now.saturating_duration_since(t) >= self.activity_interval)
        {
            leg.reported = Some(now);
            reports.push(RelayReport::Activity { leg: id, at: now });
        }
        let peer = leg.peer;
        let out = peer.and_then(|p| self.legs.get(&p)).and_then(|p| {
            match (p.socks.get(c).copied().flatten(), p.remote.get(c)) {
                (Some(via), Some(r)) => r.target().map(|to| Verdict::Forward { via, to }),
                _ => None,
            }
        });
        out.unwrap_or(Verdict::Drop(DropReason::NoPeer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn sock(table: &mut Table, id: SockId, role: Role) {
        let s = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let local = s.local_addr().unwrap();
        table.put_sock(
            id,
            SockEntry {
                sock: s,
                local,
                owner: 0,
                role,
            },
        );
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    #[test]
    fn decide_matches_the_model() {
        let now = Instant::now();
        let mut t = Table::new(Duration::from_millis(500));
        let (a, b) = (LegId(1), LegId(2));
        sock(&mut t, 0, Role::Leg { leg: a, comp: 0 });
        sock(&mut t, 1, Role::Leg { leg: b, comp: 0 });
        t.open_leg(a, [Some(0), None]);
        t.open_leg(b, [Some(1), None]);
        let mut reports = Vec::new();
        assert_eq!(
            t.decide(0, addr(9), now, &mut reports),
            Verdict::Drop(DropReason::Unbound)
        );
        t.connect(a, b);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let until = now + Duration::from_secs(1);
        t.set_remote(a, 0, Remote::Latch { ip, until });
        assert_eq!(
            t.decide(0, addr(9), now, &mut reports),
            Verdict::Drop(DropReason::NoPeer)
        );
        assert_eq!(reports.len(), 2); // Latched + Activity
        t.set_remote(b, 0, Remote::Fixed(addr(7)));
        assert_eq!(
            t.decide(0, addr(9), now, &mut reports),
            Verdict::Forward {
                via: 1,
                to: addr(7)
            }
        );
        assert_eq!(reports.len(), 2, "activity is coalesced");
        assert_eq!(
            t.decide(0, addr(10), now, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        // A third leg paired with `a` takes `b`'s place.
        sock(
            &mut t,
            2,
            Role::Leg {
                leg: LegId(3),
                comp: 0,
            },
        );
        t.open_leg(LegId(3), [Some(2), None]);
        t.connect(a, LegId(3));
        assert_eq!(
            t.decide(1, addr(7), now, &mut reports),
            Verdict::Drop(DropReason::NoPeer)
        );
        assert_eq!(t.close_leg(a).len(), 1);
        assert!(t.sock(0).is_none());
    }

    #[test]
    fn mappings_report_outbound_activity_coalesced_and_delivery_checks_the_source() {
        let now = Instant::now();
        let mut t = Table::new(Duration::from_millis(500));
        let (outside, inside) = (addr(7), addr(8));
        sock(&mut t, 0, Role::Map { outside, inside });
        sock(&mut t, 1, Role::Deliver { outside });
        let local = t.sock(0).unwrap().local;
        let mut reports = Vec::new();
        // Inbound (outside → inside) does not count: not every firewall
        // refreshes a flow on it.
        assert_eq!(
            t.decide(0, outside, now, &mut reports),
            Verdict::Forward { via: 0, to: inside }
        );
        assert!(reports.is_empty());
        for ms in [0, 100, 499] {
            let at = now + Duration::from_millis(ms);
            assert_eq!(
                t.decide(0, inside, at, &mut reports),
                Verdict::Forward {
                    via: 0,
                    to: outside
                }
            );
        }
        assert_eq!(reports, vec![RelayReport::LocalActivity { local, at: now }]);
        let later = now + Duration::from_millis(500);
        t.decide(0, inside, later, &mut reports);
        assert_eq!(reports.len(), 2, "one report per interval");
        assert_eq!(
            t.decide(0, addr(9), later, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        // Delivery: only from the relay port the pinhole was opened toward.
        assert_eq!(t.decide(1, outside, now, &mut reports), Verdict::Deliver);
        assert_eq!(
            t.decide(1, inside, now, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        assert_eq!(reports.len(), 2);
    }

    #[test]
    fn a_provisional_latch_forwards_and_the_sdp_port_takes_it_over_once() {
        let now = Instant::now();
        let mut t = Table::new(Duration::from_millis(500));
        let (a, b) = (LegId(1), LegId(2));
        sock(&mut t, 0, Role::Leg { leg: a, comp: 0 });
        sock(&mut t, 1, Role::Leg { leg: b, comp: 0 });
        t.open_leg(a, [Some(0), None]);
        t.open_leg(b, [Some(1), None]);
        t.connect(a, b);
        t.set_remote(b, 0, Remote::Fixed(addr(7)));
        let (early, sdp) = (addr(41_000), addr(7_000));
        let until = now + Duration::from_secs(1);
        t.set_remote(
            a,
            0,
            Remote::Provisional {
                source: early,
                expected: sdp.port(),
                until,
            },
        );
        let mut reports = Vec::new();
        // The provisional source passes both ways, unreported.
        assert_eq!(
            t.decide(0, early, now, &mut reports),
            Verdict::Forward {
                via: 1,
                to: addr(7)
            }
        );
        assert_eq!(
            t.decide(1, addr(7), now, &mut reports),
            Verdict::Forward { via: 0, to: early }
        );
        assert!(
            !reports
                .iter()
                .any(|r| matches!(r, RelayReport::Latched { .. }))
        );
        // A third port of the IP: dropped.
        assert_eq!(
            t.decide(0, addr(41_002), now, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        // The SDP's port takes over, is reported, and is fixed from then on.
        assert_eq!(
            t.decide(0, sdp, now, &mut reports),
            Verdict::Forward {
                via: 1,
                to: addr(7)
            }
        );
        assert!(reports.contains(&RelayReport::Latched {
            leg: a,
            component: Component::Rtp,
            source: sdp,
        }));
        assert_eq!(t.legs[&a].remote[0], Remote::Fixed(sdp));
        assert_eq!(
            t.decide(0, early, now, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        // After the window the provisional source stays, nobody takes over.
        t.set_remote(
            a,
            0,
            Remote::Provisional {
                source: early,
                expected: sdp.port(),
                until,
            },
        );
        let late = until + Duration::from_millis(1);
        assert_eq!(
            t.decide(0, sdp, late, &mut reports),
            Verdict::Drop(DropReason::Source)
        );
        // Another worker's take-over is followed.
        t.follow_latch(a, 0, sdp);
        assert_eq!(t.legs[&a].remote[0], Remote::Fixed(sdp));
    }

    #[test]
    fn follow_latch_does_not_override_a_newer_command() {
        let now = Instant::now();
        let mut t = Table::new(Duration::from_millis(500));
        t.open_leg(LegId(1), [None, None]);
        t.set_remote(LegId(1), 0, Remote::Fixed(addr(5)));
        t.follow_latch(LegId(1), 0, addr(6));
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        t.set_remote(LegId(1), 1, Remote::Latch { ip, until: now });
        t.follow_latch(LegId(1), 1, addr(6));
        let l = &t.legs[&LegId(1)];
        assert_eq!(l.remote, [Remote::Fixed(addr(5)), Remote::Fixed(addr(6))]);
    }
}
