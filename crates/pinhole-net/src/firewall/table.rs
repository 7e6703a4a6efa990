//! The simulator's state: routes, mappings and filter entries, and the
//! filtering decisions. Synchronous; the socket tasks call it under one lock
//! and never hold that lock across an `await`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::debug;

use super::config::{Counters, MappingBehavior, MappingInfo};

/// A mapping's key: the inside host, plus the remote for
/// address-and-port-dependent mapping.
pub(super) type MapKey = (SocketAddr, Option<SocketAddr>);

/// How many public ports of closed mappings are kept out of reuse after
/// their socket was closed.
const RETIRED_PORTS: usize = 256;

/// One UDP mapping: a public socket and its filter entries.
#[derive(Debug)]
struct Mapping {
    /// Tells this mapping apart from a later one with the same key.
    id: u64,
    public: SocketAddr,
    socket: Arc<UdpSocket>,
    /// Live filter entries: remote → last traffic.
    remotes: HashMap<SocketAddr, Instant>,
    /// Remotes whose entry idled out.
    expired: HashSet<SocketAddr>,
}

/// The mapping an outbound datagram leaves through.
pub(super) struct Outbound {
    /// The mapping's public socket.
    pub(super) socket: Arc<UdpSocket>,
    /// `Some` when the mapping was created for this datagram: its key and id,
    /// for the task that serves the public socket.
    pub(super) created: Option<(MapKey, u64)>,
}

/// What the public socket's task does after its timer fired.
pub(super) enum Expiry {
    /// Wait again, until this instant.
    Next(Instant),
    /// The mapping is closed; these remotes had been allowed in.
    Closed(HashSet<SocketAddr>),
}

/// Routes, mappings and counters.
#[derive(Debug)]
pub(super) struct Table {
    idle: Duration,
    mapping: MappingBehavior,
    inbound_refreshes: bool,
    /// `(inside, remote)` → the inside-facing socket for that remote.
    routes: HashMap<(SocketAddr, SocketAddr), Arc<UdpSocket>>,
    mappings: HashMap<MapKey, Mapping>,
    next_id: u64,
    /// Public ports of recently closed mappings, oldest first.
    retired: VecDeque<u16>,
    pub(super) counters: Counters,
}

impl Table {
    pub(super) fn new(idle: Duration, mapping: MappingBehavior, inbound_refreshes: bool) -> Self {
        Self {
            idle,
            mapping,
            inbound_refreshes,
            routes: HashMap::new(),
            mappings: HashMap::new(),
            next_id: 0,
            retired: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    pub(super) fn route(&self, inside: SocketAddr, remote: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.routes.get(&(inside, remote))
    }

    pub(super) fn add_route(
        &mut self,
        inside: SocketAddr,
        remote: SocketAddr,
        sock: Arc<UdpSocket>,
    ) {
        self.routes.insert((inside, remote), sock);
    }

    /// Whether a freshly bound public port must not be used (it belonged to
    /// a recently closed mapping).
    pub(super) fn is_retired(&self, port: u16) -> bool {
        self.retired.contains(&port)
    }

    fn key(&self, inside: SocketAddr, remote: SocketAddr) -> MapKey {
        match self.mapping {
            MappingBehavior::EndpointIndependent => (inside, None),
            MappingBehavior::AddressAndPortDependent => (inside, Some(remote)),
        }
    }

    /// Translates an outbound datagram from `inside` to `remote`: refreshes
    /// (or opens) the filter entry and returns the public socket, creating
    /// the mapping with `bind` when there is none.
    pub(super) fn outbound(
        &mut self,
        now: Instant,
        inside: SocketAddr,
        remote: SocketAddr,
        bind: impl FnOnce(&Self) -> std::io::Result<Arc<UdpSocket>>,
    ) -> std::io::Result<Outbound> {
        let key = self.key(inside, remote);
        let (socket, created) = match self.mappings.get_mut(&key) {
            Some(m) => {
                m.remotes.insert(remote, now);
                m.expired.remove(&remote);
                (Arc::clone(&m.socket), None)
            }
            None => {
                let socket = bind(self)?;
                let public = socket.local_addr()?;
                let id = self.next_id;
                self.next_id += 1;
                self.mappings.insert(
                    key,
                    Mapping {
                        id,
                        public,
                        socket: Arc::clone(&socket),
                        remotes: HashMap::from([(remote, now)]),
                        expired: HashSet::new(),
                    },
                );
                self.counters.mappings_created += 1;
                debug!(%inside, %public, "firewall sim: mapping created");
                (socket, Some((key, id)))
            }
        };
        self.counters.outbound += 1;
        Ok(Outbound { socket, created })
    }

    fn live(&mut self, key: MapKey, id: u64) -> Option<&mut Mapping> {
        self.mappings.get_mut(&key).filter(|m| m.id == id)
    }

    /// Filters a datagram from `src` that reached the public socket of
    /// mapping `(key, id)`; returns the route socket to deliver it from and
    /// the inside host, or `None` (counted) when it is dropped.
    pub(super) fn inbound(
        &mut self,
        now: Instant,
        key: MapKey,
        id: u64,
        src: SocketAddr,
    ) -> Option<(Arc<UdpSocket>, SocketAddr)> {
        let (idle, refresh) = (self.idle, self.inbound_refreshes);
        let Some(m) = self.live(key, id) else {
            // The task of a closed mapping does not call this; stay counted.
            self.counters.dropped_no_mapping += 1;
            return None;
        };
        let public = m.public;
        match m.remotes.entry(src) {
            Entry::Occupied(e) if now.saturating_duration_since(*e.get()) >= idle => {
                // Idle, though the timer has not swept it yet.
                e.remove();
                m.expired.insert(src);
                self.counters.dropped_expired += 1;
                debug!(%src, %public, "firewall sim: dropped inbound, entry expired");
                None
            }
            Entry::Occupied(mut e) => {
                if refresh {
                    e.insert(now);
                }
                let inside = key.0;
                match self.routes.get(&(inside, src)) {
                    Some(route) => {
                        self.counters.inbound_passed += 1;
                        Some((Arc::clone(route), inside))
                    }
                    None => {
                        // Entries are only made by traffic through a route.
                        debug_assert!(false, "filter entry without a route");
                        self.counters.dropped_filtered += 1;
                        None
                    }
                }
            }
            Entry::Vacant(_) if m.expired.contains(&src) => {
                self.counters.dropped_expired += 1;
                debug!(%src, %public, "firewall sim: dropped inbound, entry expired");
                None
            }
            Entry::Vacant(_) => {
                self.counters.dropped_filtered += 1;
                debug!(%src, %public, "firewall sim: dropped inbound, not allowed (APDF)");
                None
            }
        }
    }

    /// Removes the idle entries of mapping `(key, id)`; closes the mapping
    /// when none is left.
    pub(super) fn expire(&mut self, now: Instant, key: MapKey, id: u64) -> Expiry {
        let idle = self.idle;
        let Some(m) = self.live(key, id) else {
            return Expiry::Closed(HashSet::new());
        };
        let mut next: Option<Instant> = None;
        m.remotes.retain(|remote, last| {
            let deadline = *last + idle;
            if deadline <= now {
                m.expired.insert(*remote);
                false
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                true
            }
        });
        if let Some(next) = next {
            return Expiry::Next(next);
        }
        let public = m.public;
        let expired = std::mem::take(&mut m.expired);
        self.mappings.remove(&key);
        if self.retired.len() >= RETIRED_PORTS {
            self.retired.pop_front();
        }
        self.retired.push_back(public.port());
        self.counters.mappings_expired += 1;
        debug!(inside = %key.0, %public, "firewall sim: mapping expired");
        Expiry::Closed(expired)
    }

    /// When mapping `(key, id)` next needs [`expire`](Self::expire).
    pub(super) fn deadline(&self, key: MapKey, id: u64) -> Option<Instant> {
        let m = self.mappings.get(&key).filter(|m| m.id == id)?;
        m.remotes.values().min().map(|last| *last + self.idle)
    }

    /// Live mappings, sorted by inside host, then public address.
    pub(super) fn mappings(&self, now: Instant) -> Vec<MappingInfo> {
        let mut out: Vec<MappingInfo> = self
            .mappings
            .iter()
            .filter(|(_, m)| self.is_live(m, now))
            .map(|(key, m)| {
                let mut remotes: Vec<SocketAddr> = m
                    .remotes
                    .iter()
                    .filter(|(_, last)| now.saturating_duration_since(**last) < self.idle)
                    .map(|(r, _)| *r)
                    .collect();
                remotes.sort_unstable();
                MappingInfo {
                    inside: key.0,
                    public: m.public,
                    remotes,
                }
            })
            .collect();
        out.sort_unstable_by_key(|i| (i.inside, i.public));
        out
    }

    /// The public address of `inside`'s mapping toward `remote`, if it has
    /// a live one that allows `remote` in.
    pub(super) fn public_addr_for(
        &self,
        now: Instant,
        inside: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketAddr> {
        let m = self.mappings.get(&self.key(inside, remote))?;
        let last = m.remotes.get(&remote)?;
        (now.saturating_duration_since(*last) < self.idle).then_some(m.public)
    }

    /// Whether any filter entry of `m` is still within the idle timeout
    /// (the timer may not have swept the others yet).
    fn is_live(&self, m: &Mapping, now: Instant) -> bool {
        m.remotes
            .values()
            .any(|last| now.saturating_duration_since(*last) < self.idle)
    }

    /// The public address of `inside`'s oldest live mapping.
    pub(super) fn public_addr(&self, now: Instant, inside: SocketAddr) -> Option<SocketAddr> {
        self.mappings
            .iter()
            .filter(|(k, m)| k.0 == inside && self.is_live(m, now))
            .min_by_key(|(_, m)| m.id)
            .map(|(_, m)| m.public)
    }
}
