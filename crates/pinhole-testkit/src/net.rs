//! The simulated network: zones of hosts joined by NAT firewalls, a
//! simulated clock, and a deterministic queue of datagrams in flight.
//!
//! A datagram is routed when it is [sent](Net::send): hop by hop through the
//! zones, each hop checked for partitions and random loss, each firewall
//! translating and filtering it at send time. It then waits in the queue
//! until the clock reaches its delivery time (send time + latency of every
//! hop). Queue order is delivery time, then send order, so a run is
//! reproducible for a seed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::firewall::{Firewall, FirewallConfig};
use crate::prng::SplitMix64;

/// A UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Datagram {
    /// Source address (as seen by the receiver after delivery).
    pub src: SocketAddr,
    /// Destination address (as seen by the receiver after delivery).
    pub dst: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// A routing zone ("internet", "corp1", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(usize);

/// A firewall of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirewallId(usize);

/// Datagrams the network did not deliver, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDrops {
    /// Random loss.
    pub lost: u64,
    /// No route: unknown source or destination, or a routing loop.
    pub unroutable: u64,
    /// Dropped by a partition ([`Net::block`]).
    pub blocked: u64,
    /// Dropped by a firewall (see its counters for the reason).
    pub firewall: u64,
}

#[derive(Clone, Debug)]
struct Zone {
    name: String,
    /// The firewall this zone sits behind, if any.
    upstream: Option<FirewallId>,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Longest zone path a datagram may take (guards against routing loops).
const MAX_HOPS: usize = 16;

/// The simulated network. See the [crate docs](crate).
#[derive(Debug)]
pub struct Net {
    start: Instant,
    now: Instant,
    rng: SplitMix64,
    zones: Vec<Zone>,
    hosts: BTreeMap<IpAddr, ZoneId>,
    firewalls: Vec<Firewall>,
    public_ips: BTreeMap<IpAddr, FirewallId>,
    default_loss: f64,
    loss: BTreeMap<(ZoneId, ZoneId), f64>,
    latency: Duration,
    link_latency: BTreeMap<(ZoneId, ZoneId), Duration>,
    /// Blocked zone pairs (normalised, smaller id first) → until when
    /// (`None`: until [`Net::unblock`]).
    blocks: BTreeMap<(ZoneId, ZoneId), Option<Instant>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    drops: NetDrops,
    delivered: u64,
}

impl Net {
    /// An empty network whose clock starts at `start`; `seed` drives random
    /// loss. Default: no loss, 10 ms latency per hop.
    pub fn new(start: Instant, seed: u64) -> Self {
        Self {
            start,
            now: start,
            rng: SplitMix64::new(seed),
            zones: Vec::new(),
            hosts: BTreeMap::new(),
            firewalls: Vec::new(),
            public_ips: BTreeMap::new(),
            default_loss: 0.0,
            loss: BTreeMap::new(),
            latency: Duration::from_millis(10),
            link_latency: BTreeMap::new(),
            blocks: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            drops: NetDrops::default(),
            delivered: 0,
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the network started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds a routing zone.
    pub fn add_zone(&mut self, name: &str) -> ZoneId {
        self.zones.push(Zone {
            name: name.to_owned(),
            upstream: None,
        });
        ZoneId(self.zones.len() - 1)
    }

    /// The name given to `zone`.
    pub fn zone_name(&self, zone: ZoneId) -> &str {
        &self.zones[zone.0].name
    }

    /// The zone holding host `ip`, if any.
    pub fn zone_of(&self, ip: IpAddr) -> Option<ZoneId> {
        self.hosts.get(&ip).copied()
    }

    /// Puts host `ip` (any port) in `zone`.
    ///
    /// # Panics
    /// If `ip` is already a host or a firewall's public address: addresses
    /// are unique across the whole network.
    pub fn add_host_ip(&mut self, zone: ZoneId, ip: IpAddr) {
        assert!(zone.0 < self.zones.len(), "unknown zone {zone:?}");
        assert!(
            !self.public_ips.contains_key(&ip),
            "{ip} is a firewall's public address"
        );
        let old = self.hosts.insert(ip, zone);
        assert!(old.is_none(), "host {ip} added twice");
    }

    /// Adds a NAT firewall: `inside` sits behind it, `public_ip` is its
    /// address in `outside`. Traffic from `inside` to any address not in
    /// `inside` leaves through it.
    ///
    /// # Panics
    /// If `inside` already has a firewall, the zones are the same, or
    /// `public_ip` is taken.
    pub fn add_firewall(
        &mut self,
        inside: ZoneId,
        outside: ZoneId,
        public_ip: IpAddr,
        cfg: FirewallConfig,
    ) -> FirewallId {
        assert!(inside != outside, "a firewall joins two different zones");
        assert!(
            self.zones[inside.0].upstream.is_none(),
            "zone {} already has a firewall",
            self.zones[inside.0].name
        );
        assert!(outside.0 < self.zones.len(), "unknown zone {outside:?}");
        assert!(
            !self.hosts.contains_key(&public_ip),
            "{public_ip} is a host address"
        );
        let id = FirewallId(self.firewalls.len());
        let old = self.public_ips.insert(public_ip, id);
        assert!(old.is_none(), "public address {public_ip} used twice");
        self.firewalls
            .push(Firewall::new(inside, outside, public_ip, cfg));
        self.zones[inside.0].upstream = Some(id);
        id
    }

    /// The firewall `id`, for assertions on its counters and mappings.
    pub fn firewall(&self, id: FirewallId) -> &Firewall {
        &self.firewalls[id.0]
    }

    /// The firewall `id`, mutably (e.g. to [`clear`](Firewall::clear) it).
    pub fn firewall_mut(&mut self, id: FirewallId) -> &mut Firewall {
        &mut self.firewalls[id.0]
    }

    /// Loss probability of every hop from zone `from` into zone `to`
    /// (directed; `from == to` is delivery inside one zone).
    pub fn set_loss(&mut self, from: ZoneId, to: ZoneId, probability: f64) {
        self.loss.insert((from, to), probability);
    }

    /// Loss probability of hops without a [`set_loss`](Self::set_loss) value.
    pub fn set_default_loss(&mut self, probability: f64) {
        self.default_loss = probability;
    }

    /// Latency of every hop without a [link latency](Self::set_link_latency).
    pub fn set_latency(&mut self, d: Duration) {
        self.latency = d;
    }

    /// Latency of the hop from `from` into `to` (directed).
    pub fn set_link_latency(&mut self, from: ZoneId, to: ZoneId, d: Duration) {
        self.link_latency.insert((from, to), d);
    }

    /// Makes zones `a` and `b` unreachable from each other (both directions)
    /// until [`unblock`](Self::unblock). Datagrams already in flight still
    /// arrive.
    pub fn block(&mut self, a: ZoneId, b: ZoneId) {
        self.blocks.insert(Self::pair(a, b), None);
    }

    /// Like [`block`](Self::block), for `d` of simulated time from now.
    pub fn block_for(&mut self, a: ZoneId, b: ZoneId, d: Duration) {
        self.blocks.insert(Self::pair(a, b), Some(self.now + d));
    }

    /// Lifts a [`block`](Self::block).
    pub fn unblock(&mut self, a: ZoneId, b: ZoneId) {
        self.blocks.remove(&Self::pair(a, b));
    }

    fn pair(a: ZoneId, b: ZoneId) -> (ZoneId, ZoneId) {
        (a.min(b), a.max(b))
    }

    /// Counters of datagrams not delivered.
    pub fn drops(&self) -> &NetDrops {
        &self.drops
    }

    /// Datagrams handed out by [`poll_delivery`](Self::poll_delivery).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Routes `d` now: translated by the firewalls on its path, it arrives
    /// after the latency of every hop, unless dropped (see [`drops`](Self::drops)).
    pub fn send(&mut self, d: Datagram) {
        let mut d = d;
        let Some(mut zone) = self.zone_of(d.src.ip()) else {
            self.drops.unroutable += 1;
            return;
        };
        let mut delay = Duration::ZERO;
        for hop in 0..MAX_HOPS {
            if self.zone_of(d.dst.ip()) == Some(zone) {
                if hop == 0 {
                    match self.cross(zone, zone) {
                        Some(l) => delay += l,
                        None => return,
                    }
                }
                self.enqueue(delay, d);
                return;
            }
            let inbound = self
                .public_ips
                .get(&d.dst.ip())
                .copied()
                .filter(|fw| self.firewalls[fw.0].outside() == zone);
            if let Some(fw) = inbound {
                let next = self.firewalls[fw.0].inside();
                match self.cross(zone, next) {
                    Some(l) => delay += l,
                    None => return,
                }
                match self.firewalls[fw.0].inbound(self.now, d.src, d.dst) {
                    Ok(inside) => d.dst = inside,
                    Err(_) => {
                        self.drops.firewall += 1;
                        return;
                    }
                }
                zone = next;
            } else if let Some(fw) = self.zones[zone.0].upstream {
                let next = self.firewalls[fw.0].outside();
                match self.cross(zone, next) {
                    Some(l) => delay += l,
                    None => return,
                }
                match self.firewalls[fw.0].outbound(self.now, d.src, d.dst) {
                    Some(public) => d.src = public,
                    None => {
                        self.drops.firewall += 1;
                        return;
                    }
                }
                zone = next;
            } else {
                break;
            }
        }
        self.drops.unroutable += 1;
    }

    /// One hop from `from` into `to`: its latency, or `None` (counted) if the
    /// datagram is blocked or lost.
    fn cross(&mut self, from: ZoneId, to: ZoneId) -> Option<Duration> {
        if let Some(until) = self.blocks.get(&Self::pair(from, to))
            && until.is_none_or(|t| self.now < t)
        {
            self.drops.blocked += 1;
            return None;
        }
        let p = self
            .loss
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_loss);
        if self.rng.chance(p) {
            self.drops.lost += 1;
            return None;
        }
        Some(
            self.link_latency
                .get(&(from, to))
                .copied()
                .unwrap_or(self.latency),
        )
    }

    fn enqueue(&mut self, delay: Duration, datagram: Datagram) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: self.now + delay,
            seq: self.seq,
            datagram,
        }));
    }

    /// Delivery time of the next datagram in flight.
    pub fn next_event_time(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// Moves the clock to `t` (never backwards: an earlier `t` is ignored)
    /// and expires idle firewall mappings and timed partitions.
    pub fn advance_to(&mut self, t: Instant) {
        if t <= self.now {
            return;
        }
        self.now = t;
        for fw in &mut self.firewalls {
            fw.expire(t);
        }
        self.blocks.retain(|_, until| until.is_none_or(|u| t < u));
    }

    /// Moves the clock forward by `d`.
    pub fn advance_by(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    /// The next datagram due at or before now, already translated, addressed
    /// to a host of the zone it arrived in.
    pub fn poll_delivery(&mut self) -> Option<Datagram> {
        if self.next_event_time()? > self.now {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.delivered += 1;
        Some(f.datagram)
    }

    /// Advances the clock to the next delivery (if later than now) and
    /// returns it; `None` when nothing is in flight.
    pub fn step(&mut self) -> Option<Datagram> {
        let at = self.next_event_time()?;
        self.advance_to(at);
        self.poll_delivery()
    }
}
