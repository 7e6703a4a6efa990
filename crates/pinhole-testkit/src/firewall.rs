//! A simulated stateful NAT firewall between an inside and an outside zone.
//!
//! Filtering is always address-and-port-dependent (RFC 4787 APDF, like
//! Linux conntrack): an inbound packet passes only if the inside host sent to
//! exactly that remote `(ip, port)` through the mapping, and that filter
//! entry's idle timer has not run out. Idle timers are per filter entry (per
//! 5-tuple, as in conntrack); a mapping lives while any of its entries does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::net::ZoneId;

/// How the firewall picks the public port for outbound traffic (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MappingBehavior {
    /// One public port per inside `(ip, port)`, whatever the remote.
    #[default]
    EndpointIndependent,
    /// One public port per inside `(ip, port)` *and* remote `(ip, port)`
    /// ("symmetric NAT").
    AddressAndPortDependent,
}

/// Configuration of a [`Firewall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallConfig {
    /// A filter entry with no traffic for this long is gone.
    pub udp_idle_timeout: Duration,
    /// Public ports handed out, inclusive; allocated sequentially (wrapping),
    /// skipping ports of live mappings.
    pub port_range: (u16, u16),
    /// Mapping behaviour; filtering is always address-and-port-dependent.
    pub mapping: MappingBehavior,
    /// Whether inbound packets that pass refresh the idle timer (conntrack
    /// does); when `false` only outbound traffic keeps a pinhole open.
    pub inbound_refreshes: bool,
}

impl Default for FirewallConfig {
    /// 30 s idle timeout (wire-format §5 default), ports 20000–59999,
    /// endpoint-independent mapping, inbound refreshes.
    fn default() -> Self {
        Self {
            udp_idle_timeout: Duration::from_secs(30),
            port_range: (20000, 59999),
            mapping: MappingBehavior::EndpointIndependent,
            inbound_refreshes: true,
        }
    }
}

/// Per-firewall counters, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirewallCounters {
    /// Outbound packets translated and passed.
    pub outbound: u64,
    /// Inbound packets that matched a live filter entry.
    pub inbound_passed: u64,
    /// Inbound packets to a public port with no mapping (never had one).
    pub dropped_no_mapping: u64,
    /// Inbound packets to a live mapping from a remote the inside host never
    /// sent to through it (APDF).
    pub dropped_filtered: u64,
    /// Inbound packets whose mapping or filter entry timed out.
    pub dropped_expired: u64,
    /// Outbound packets dropped because every public port was taken.
    pub dropped_ports_exhausted: u64,
    /// Mappings created.
    pub mappings_created: u64,
    /// Mappings removed after all their filter entries went idle.
    pub mappings_expired: u64,
}

impl FirewallCounters {
    /// All inbound drops together.
    pub fn dropped_inbound(&self) -> u64 {
        self.dropped_no_mapping + self.dropped_filtered + self.dropped_expired
    }
}

/// A live mapping, as listed by [`Firewall::mappings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// The inside host's address.
    pub inside: SocketAddr,
    /// The public address the outside sees.
    pub public: SocketAddr,
    /// Remotes allowed in (live filter entries), sorted.
    pub remotes: Vec<SocketAddr>,
    /// Last time any filter entry saw traffic.
    pub last_active: Instant,
    /// When the mapping goes away unless traffic refreshes it.
    pub expires_at: Instant,
}

/// Why the firewall refused an inbound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InboundDrop {
    NoMapping,
    Filtered,
    Expired,
}

/// Mapping key: inside address, plus the remote for symmetric mapping.
type Key = (SocketAddr, Option<SocketAddr>);

#[derive(Clone, Debug)]
struct Mapping {
    public_port: u16,
    created: Instant,
    /// Live filter entries: remote → last traffic.
    remotes: BTreeMap<SocketAddr, Instant>,
    /// Remotes whose entry timed out (for the `dropped_expired` counter).
    expired_remotes: BTreeSet<SocketAddr>,
}

/// A NAT firewall between two zones. Read its state through
/// [`Net::firewall`](crate::Net::firewall).
#[derive(Clone, Debug)]
pub struct Firewall {
    inside: ZoneId,
    outside: ZoneId,
    public_ip: IpAddr,
    cfg: FirewallConfig,
    mappings: BTreeMap<Key, Mapping>,
    by_port: BTreeMap<u16, Key>,
    /// Public ports whose mapping expired and were not reused since.
    expired_ports: BTreeSet<u16>,
    next_port: u16,
    counters: FirewallCounters,
}

impl Firewall {
    pub(crate) fn new(
        inside: ZoneId,
        outside: ZoneId,
        public_ip: IpAddr,
        cfg: FirewallConfig,
    ) -> Self {
        assert!(
            cfg.port_range.0 <= cfg.port_range.1,
            "firewall port range {:?} is empty",
            cfg.port_range
        );
        Self {
            inside,
            outside,
            public_ip,
            next_port: cfg.port_range.0,
            cfg,
            mappings: BTreeMap::new(),
            by_port: BTreeMap::new(),
            expired_ports: BTreeSet::new(),
            counters: FirewallCounters::default(),
        }
    }

    /// The zone behind the firewall.
    pub fn inside(&self) -> ZoneId {
        self.inside
    }

    /// The zone in front of the firewall.
    pub fn outside(&self) -> ZoneId {
        self.outside
    }

    /// The public address of the firewall in its outside zone.
    pub fn public_ip(&self) -> IpAddr {
        self.public_ip
    }

    /// The configuration.
    pub fn config(&self) -> &FirewallConfig {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &FirewallCounters {
        &self.counters
    }

    /// Live mappings, sorted by public port.
    pub fn mappings(&self) -> Vec<MappingInfo> {
        self.by_port
            .values()
            .filter_map(|key| self.mappings.get(key).map(|m| self.info(key, m)))
            .collect()
    }

    /// The public address through which `inside` reaches `remote`, if a live
    /// mapping allows traffic between them.
    pub fn public_addr(&self, inside: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        let m = self.mappings.get(&self.key(inside, remote))?;
        m.remotes
            .contains_key(&remote)
            .then_some(SocketAddr::new(self.public_ip, m.public_port))
    }

    /// Forgets every mapping (a firewall reboot). Counters are kept; inbound
    /// packets to the forgotten ports count as `dropped_expired`.
    pub fn clear(&mut self) {
        self.expired_ports.extend(self.by_port.keys());
        self.mappings.clear();
        self.by_port.clear();
    }

    fn info(&self, key: &Key, m: &Mapping) -> MappingInfo {
        let last_active = m.remotes.values().max().copied().unwrap_or(m.created);
        MappingInfo {
            inside: key.0,
            public: SocketAddr::new(self.public_ip, m.public_port),
            remotes: m.remotes.keys().copied().collect(),
            last_active,
            expires_at: last_active + self.cfg.udp_idle_timeout,
        }
    }

    fn key(&self, inside: SocketAddr, remote: SocketAddr) -> Key {
        match self.cfg.mapping {
            MappingBehavior::EndpointIndependent => (inside, None),
            MappingBehavior::AddressAndPortDependent => (inside, Some(remote)),
        }
    }

    fn expired(&self, last: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last) >= self.cfg.udp_idle_timeout
    }

    /// Translates an outbound packet from `src` (inside) to `dst`; returns
    /// the public source address, or `None` if no public port is left.
    pub(crate) fn outbound(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<SocketAddr> {
        let key = self.key(src, dst);
        let port = match self.mappings.get_mut(&key) {
            Some(m) => {
                m.remotes.insert(dst, now);
                m.expired_remotes.remove(&dst);
                m.public_port
            }
            None => {
                let Some(port) = self.take_port() else {
                    self.counters.dropped_ports_exhausted += 1;
                    return None;
                };
                self.mappings.insert(
                    key,
                    Mapping {
                        public_port: port,
                        created: now,
                        remotes: BTreeMap::from([(dst, now)]),
                        expired_remotes: BTreeSet::new(),
                    },
                );
                self.by_port.insert(port, key);
                self.counters.mappings_created += 1;
                port
            }
        };
        self.counters.outbound += 1;
        Some(SocketAddr::new(self.public_ip, port))
    }

    /// Filters an inbound packet from `src` (outside) to `dst` (the public
    /// address); returns the inside destination.
    pub(crate) fn inbound(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Result<SocketAddr, InboundDrop> {
        let verdict = self.check_inbound(now, src, dst);
        match verdict {
            Ok(_) => self.counters.inbound_passed += 1,
            Err(InboundDrop::NoMapping) => self.counters.dropped_no_mapping += 1,
            Err(InboundDrop::Filtered) => self.counters.dropped_filtered += 1,
            Err(InboundDrop::Expired) => self.counters.dropped_expired += 1,
        }
        verdict
    }

    fn check_inbound(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Result<SocketAddr, InboundDrop> {
        let port = dst.port();
        let Some(key) = self.by_port.get(&port).copied() else {
            return Err(if self.expired_ports.contains(&port) {
                InboundDrop::Expired
            } else {
                InboundDrop::NoMapping
            });
        };
        let timeout_hit = {
            let Some(m) = self.mappings.get(&key) else {
                return Err(InboundDrop::NoMapping);
            };
            match m.remotes.get(&src) {
                None if m.expired_remotes.contains(&src) => return Err(InboundDrop::Expired),
                None => return Err(InboundDrop::Filtered),
                Some(&last) => self.expired(last, now),
            }
        };
        if timeout_hit {
            // Only reachable if time moved without `expire`; stay consistent.
            self.expire(now);
            return Err(InboundDrop::Expired);
        }
        if self.cfg.inbound_refreshes
            && let Some(last) = self
                .mappings
                .get_mut(&key)
                .and_then(|m| m.remotes.get_mut(&src))
        {
            *last = now;
        }
        Ok(key.0)
    }

    /// Drops filter entries idle for the timeout, and mappings left without
    /// entries.
    pub(crate) fn expire(&mut self, now: Instant) {
        let timeout = self.cfg.udp_idle_timeout;
        let mut dead = Vec::new();
        for (key, m) in &mut self.mappings {
            let gone: Vec<SocketAddr> = m
                .remotes
                .iter()
                .filter(|(_, last)| now.saturating_duration_since(**last) >= timeout)
                .map(|(r, _)| *r)
                .collect();
            for r in gone {
                m.remotes.remove(&r);
                m.expired_remotes.insert(r);
            }
            if m.remotes.is_empty() {
                dead.push((*key, m.public_port));
            }
        }
        for (key, port) in dead {
            self.mappings.remove(&key);
            self.by_port.remove(&port);
            self.expired_ports.insert(port);
            self.counters.mappings_expired += 1;
        }
    }

    /// The next free public port, sequentially from the last one handed out.
    fn take_port(&mut self) -> Option<u16> {
        let (lo, hi) = self.cfg.port_range;
        let span = u32::from(hi) - u32::from(lo) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= hi { lo } else { port + 1 };
            if !self.by_port.contains_key(&port) {
                self.expired_ports.remove(&port);
                return Some(port);
            }
        }
        None
    }
}
