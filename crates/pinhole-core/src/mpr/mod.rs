//! The Media Proxy Router engine: registrations (Fig. 4 routing table), CMPH,
//! media intents and the relay mapping table (Fig. 5), latching for plain
//! terminals, and expiry. Sans-IO: datagrams, intents, relay reports and time
//! go in; transmits, relay commands and events come out.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pinhole_core::mpr::{Config, Engine, NetworkConfig};
//!
//! let now = Instant::now();
//! let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [7; 32]);
//! cfg.networks.push(NetworkConfig::new("corp1", b"s3cret".to_vec()));
//! let mut mpr = Engine::new(cfg, now).unwrap();
//! // The driver's loop: feed inputs, then drain every output queue.
//! mpr.handle_timeout(now + Duration::from_secs(1));
//! while let Some(_t) = mpr.poll_transmit() {}
//! while let Some(_c) = mpr.poll_command() {}
//! while let Some(_e) = mpr.poll_event() {}
//! assert_eq!(mpr.stats().registrations_accepted, 0);
//! ```

mod config;
mod control;
mod media;
mod nonce;
mod report;
mod unanswered;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::hash::{FastMap, fast_map};
use crate::intent::{IntentKind, MediaIntent, MediaPlan};
use crate::ports::{Allocator, PortPair, PortRange};
use crate::relay::{RelayCommand, RelayReport, Remote};
use crate::rng::Rng;
use crate::types::{CallKey, Component, LegId, Receive, Side, Transmit};
use crate::wire::{self, Protocol, RtcpMode};

use nonce::{Nonces, ReplayCache};

pub use config::{
    Cap, Config, ConfigError, InputError, IntentError, Limits, NetworkConfig, Timers,
};
pub use report::{Event, LegView, Route, Stats};

type NetIdx = usize;

struct Network {
    cfg: NetworkConfig,
    legs: usize,
    /// Live routes, so "is it registered" is O(1).
    routes: usize,
    /// The public IP of its latest route: where its plain terminals' media
    /// is expected from.
    ip: Option<IpAddr>,
    /// The credential, ready for HMAC.
    key: wire::IntegrityKey,
    /// The latest nonce minted for it.
    nonce: nonce::Slot,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    Network(NetIdx),
    Public,
}

struct Leg {
    owner: Owner,
    ports: PortPair,
    ip: IpAddr,
    rtcp_mode: RtcpMode,
    key: Option<Box<[u8]>>,
    /// The client's own listening address (XOR-LOCAL-ADDRESS of its
    /// reserve), when it sends indications and so cannot learn its pinhole.
    local: Option<SocketAddr>,
    call: Option<(u64, Side, u16)>,
    remote: [Remote; 2],
    /// Set by an authenticated CMPH; only another CMPH moves it.
    pinhole: [Option<SocketAddr>; 2],
    /// A plain terminal's leg: the RTP and RTCP ports its SDP announced,
    /// which latching prefers (docs/flows.md, "Latching").
    sdp: [Option<u16>; 2],
    peer: Option<LegId>,
    last_activity: Instant,
}

impl Leg {
    fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.ports.rtp)
    }

    fn rtcp_addr(&self) -> Option<SocketAddr> {
        (self.rtcp_mode == RtcpMode::Pair).then(|| SocketAddr::new(self.ip, self.ports.rtcp()))
    }
}

struct Stream {
    index: u16,
    legs: [Option<LegId>; 2],
}

struct Call {
    key: CallKey,
    streams: Vec<Stream>,
    last_activity: Instant,
    /// Offered by a stranger and not answered yet.
    unanswered: Option<unanswered::Unanswered>,
}

/// Port pairs a CMPH reserve tries when the relay cannot open them (held
/// by another process) before it answers 508.
const RESERVE_ATTEMPTS: u8 = 4;

/// A reserve whose leg is new and whose answer is queued but not yet
/// polled: if the relay reports [`RelayReport::OpenFailed`] for the leg
/// before the driver takes the answer, the answer is rewritten.
#[derive(Clone, Copy, Debug)]
struct PendingReserve {
    leg: LegId,
    id: wire::TransactionId,
    local: SocketAddr,
    remote: SocketAddr,
    net: NetIdx,
    attempts: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TimerKey {
    Route(NetIdx, u8),
    Call(u64),
    Leg(u64),
}

/// The MPR engine. See the module docs for the run loop.
pub struct Engine {
    timers_cfg: Timers,
    limits: Limits,
    holdings: unanswered::Holdings,
    relay_ip: IpAddr,
    relay_ip6: Option<IpAddr>,
    max_streams: usize,
    networks: Vec<Network>,
    by_name: HashMap<String, NetIdx>,
    routes: HashMap<(NetIdx, Protocol), Route>,
    by_route: HashMap<(Protocol, SocketAddr), NetIdx>,
    domains: HashMap<String, NetIdx>,
    legs: FastMap<LegId, Leg>,
    by_port: FastMap<u16, LegId>,
    by_pinhole: FastMap<SocketAddr, LegId>,
    by_key: HashMap<(NetIdx, Box<[u8]>), LegId>,
    by_local: HashMap<(NetIdx, SocketAddr), LegId>,
    calls: HashMap<u64, Call>,
    call_ids: HashMap<CallKey, u64>,
    next_id: u64,
    ports: Allocator,
    port_range: PortRange,
    control_ports: Vec<u16>,
    nonces: Nonces,
    replay: ReplayCache,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    transmits: VecDeque<Transmit>,
    commands: VecDeque<RelayCommand>,
    events: VecDeque<Event>,
    pending_reserves: Vec<PendingReserve>,
    /// While [`Engine::handle_intent_latching`] plans: the IP the sender's
    /// legs latch onto instead of their network's registered address.
    latch_hint: Option<IpAddr>,
    /// Rate limit of the anti-amplification drop's log line.
    amplification_log: Quiet,
    stats: Stats,
}

/// One log line per interval for a per-datagram condition anyone on the
/// internet can trigger at will; the counter stays exact, and the next line
/// says how many were not logged.
#[derive(Default)]
struct Quiet {
    next: Option<Instant>,
    suppressed: u64,
}

impl Quiet {
    const INTERVAL: Duration = Duration::from_secs(10);

    /// `Some(n)`: log now, `n` lines were suppressed since the last one.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|t| now < t) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + Self::INTERVAL);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Engine {
    /// An engine with no routes, legs or calls.
    pub fn new(cfg: Config, now: Instant) -> Result<Self, ConfigError> {
        let t = cfg.timers;
        if t.registration_min > t.registration_max || t.registration_min.is_zero() {
            return Err(ConfigError::BadTimer("registration_min/registration_max"));
        }
        if t.nonce_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::BadTimer("nonce_lifetime"));
        }
        if t.leg_inactivity.is_zero() {
            return Err(ConfigError::BadTimer("leg_inactivity"));
        }
        if t.unanswered.is_zero() || t.ringing < t.unanswered {
            return Err(ConfigError::BadTimer("unanswered/ringing"));
        }
        let range = PortRange::new(cfg.ports.first, cfg.ports.last)?;
        let mut rng = Rng::from_seed(cfg.rng_seed);
        let hash_seed = rng.next_u64();
        let mut ports = Allocator::new(range, t.port_quarantine, rng.fork());
        let mut pairs: Vec<PortPair> = cfg
            .control_ports
            .iter()
            .map(|p| PortPair { rtp: p & !1 })
            .collect();
        pairs.sort();
        pairs.dedup();
        for pair in pairs.into_iter().filter(|p| range.contains(*p)) {
            ports.reserve(pair)?;
        }
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        let mut networks = Vec::with_capacity(cfg.networks.len());
        let mut by_name = HashMap::new();
        let mut domains = HashMap::new();
        for (i, n) in cfg.networks.into_iter().enumerate() {
            if n.id.is_empty() || n.id.len() > 128 || n.credential.is_empty() {
                return Err(ConfigError::BadNetwork(n.id));
            }
            if by_name.insert(n.id.clone(), i).is_some() {
                return Err(ConfigError::DuplicateNetwork(n.id));
            }
            for d in &n.domains {
                domains.insert(d.to_ascii_lowercase(), i);
            }
            networks.push(Network {
                key: wire::IntegrityKey::new(&n.credential),
                nonce: None,
                cfg: n,
                legs: 0,
                routes: 0,
                ip: None,
            });
        }
        Ok(Self {
            timers_cfg: t,
            limits: cfg.limits,
            holdings: unanswered::Holdings::default(),
            relay_ip: cfg.relay_ip,
            relay_ip6: cfg.relay_ip6,
            max_streams: cfg.max_streams,
            networks,
            by_name,
            routes: HashMap::new(),
            by_route: HashMap::new(),
            domains,
            legs: fast_map(hash_seed),
            by_port: fast_map(hash_seed),
            by_pinhole: fast_map(hash_seed),
            by_key: HashMap::new(),
            by_local: HashMap::new(),
            calls: HashMap::new(),
            call_ids: HashMap::new(),
            next_id: 1,
            ports,
            control_ports: cfg.control_ports,
            port_range: range,
            nonces: Nonces::new(secret, now, t.nonce_lifetime),
            replay: ReplayCache::new(cfg.replay_capacity, hash_seed),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            pending_reserves: Vec::new(),
            latch_hint: None,
            amplification_log: Quiet::default(),
            stats: Stats::default(),
        })
    }

    /// A control datagram (STUN-framed) that arrived on `local` — the
    /// signaling/control address or a relay port.
    pub fn handle_datagram(&mut self, now: Instant, rx: Receive<'_>) -> Result<(), InputError> {
        let r = self.datagram(now, rx);
        if let Err(e) = &r {
            tracing::debug!(local = %rx.local, remote = %rx.remote, error = %e, "control datagram not accepted");
        }
        r
    }

    /// A connection-information message's meaning; the plan is what to write
    /// back into it. A retransmitted message gets the same plan.
    pub fn handle_intent(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError> {
        self.stats.intents += 1;
        let r = match intent.kind {
            IntentKind::Teardown => {
                self.teardown(now, call);
                Ok(MediaPlan::default())
            }
            _ => self.plan(now, call, intent),
        };
        if let Err(e) = &r {
            self.stats.intent_errors += 1;
            if *e == IntentError::PortsExhausted {
                self.stats.ports_exhausted += 1;
            }
            tracing::warn!(error = %e, "media intent refused");
        }
        self.refresh_gauges();
        r
    }

    /// Like [`Engine::handle_intent`], for a sender with no registration of
    /// its own: a plain terminal (no APS, no CMPH) whose signaling the ALG
    /// authenticated by other means, such as the soft-switch's 2xx to its
    /// REGISTER. The sender's legs latch onto `latch_ip` (the public address
    /// its signaling comes from) rather than onto its network's registered
    /// address, which it may not share or the network may not have.
    pub fn handle_intent_latching(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
        latch_ip: IpAddr,
    ) -> Result<MediaPlan, IntentError> {
        self.latch_hint = Some(latch_ip);
        let r = self.handle_intent(now, call, intent);
        self.latch_hint = None;
        r
    }

    /// Something the relay saw.
    pub fn handle_relay(&mut self, now: Instant, report: RelayReport) {
        self.relay_report(now, report);
    }

    /// Time passed: expire routes, calls and reserved legs that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Route(net, proto) => self.route_timer(now, net, proto),
                TimerKey::Call(id) => self.call_timer(now, id),
                TimerKey::Leg(id) => self.leg_timer(now, LegId(id)),
            }
        }
        self.replay.prune(now);
        self.ports.expire(now);
        self.refresh_gauges();
    }

    /// The next datagram to send.
    ///
    /// Drain [`Engine::poll_command`] (and report any
    /// [`RelayReport::OpenFailed`]) first: a CMPH reserve's answer names
    /// its new leg's relay address, and it is final only once the relay
    /// has tried to open that leg. A failed open reported before this call
    /// turns the answer into one for another port pair, or a 508.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        // Once answers leave, they can no longer be rewritten.
        self.pending_reserves.clear();
        self.transmits.pop_front()
    }

    /// The next command for the relay.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<RelayCommand> {
        self.commands.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Engine::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        // Quarantined ports come back on a timeout too, so gauges stay true.
        [timer, self.ports.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The signaling route of a network and protocol (Fig. 4), if live.
    pub fn route(&self, network: &str, protocol: Protocol) -> Option<Route> {
        let net = *self.by_name.get(network)?;
        self.routes.get(&(net, protocol)).copied()
    }

    /// The network that serves a subscriber domain (configured, or claimed
    /// in a live registration).
    pub fn network_for_domain(&self, domain: &str) -> Option<&str> {
        let net = *self.domains.get(&domain.to_ascii_lowercase())?;
        Some(self.networks[net].cfg.id.as_str())
    }

    /// The network whose live route for `protocol` is `pinhole`: how an ALG
    /// tells which network a signaling message came from.
    pub fn network_for_pinhole(&self, protocol: Protocol, pinhole: SocketAddr) -> Option<&str> {
        let net = *self.by_route.get(&(protocol, pinhole))?;
        Some(self.networks[net].cfg.id.as_str())
    }

    /// A leg, by id.
    pub fn leg(&self, id: LegId) -> Option<LegView> {
        let l = self.legs.get(&id)?;
        Some(LegView {
            id,
            rtp: l.rtp_addr(),
            rtcp: l.rtcp_addr(),
            remote_rtp: l.remote[0],
            remote_rtcp: l.remote[1],
            peer: l.peer,
        })
    }

    /// The leg whose relay port is `port` (RTP or RTCP).
    pub fn leg_by_port(&self, port: u16) -> Option<LegId> {
        self.by_port.get(&port).copied()
    }

    /// Number of relay port pairs free now.
    pub fn free_port_pairs(&self) -> usize {
        self.ports.free()
    }

    /// Relay port pairs: (free, in use, quarantined, capacity).
    pub fn port_usage(&self) -> (usize, usize, usize, usize) {
        (
            self.ports.free(),
            self.ports.in_use(),
            self.ports.quarantined(),
            self.ports.capacity(),
        )
    }

    fn refresh_gauges(&mut self) {
        self.stats.legs_open = self.legs.len() as u64;
        self.stats.calls_open = self.calls.len() as u64;
        self.stats.routes_live = self.routes.len() as u64;
        self.stats.unanswered_legs = self.holdings.total() as u64;
    }

    /// Adds or replaces a route, keeping the indexes in step.
    fn insert_route(&mut self, net: NetIdx, protocol: Protocol, route: Route) -> Option<Route> {
        let old = self.routes.insert((net, protocol), route);
        match old {
            Some(o) => {
                self.by_route.remove(&(protocol, o.pinhole));
            }
            None => self.networks[net].routes += 1,
        }
        self.by_route.insert((protocol, route.pinhole), net);
        self.networks[net].ip = Some(route.pinhole.ip());
        old
    }

    fn remove_route(&mut self, net: NetIdx, protocol: Protocol) -> Option<Route> {
        let old = self.routes.remove(&(net, protocol))?;
        self.by_route.remove(&(protocol, old.pinhole));
        let n = &mut self.networks[net];
        n.routes = n.routes.saturating_sub(1);
        Some(old)
    }

    fn arm(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
    }

    fn relay_ip_for(&self, family_of: IpAddr) -> Option<IpAddr> {
        match (family_of, self.relay_ip, self.relay_ip6) {
            (IpAddr::V6(_), _, Some(v6)) => Some(v6),
            (IpAddr::V6(_), IpAddr::V6(_), None) => Some(self.relay_ip),
            (IpAddr::V4(_), IpAddr::V4(_), _) => Some(self.relay_ip),
            (IpAddr::V4(_), IpAddr::V6(_), _) => None,
            (IpAddr::V6(_), IpAddr::V4(_), None) => None,
        }
    }

    /// Opens a leg on a fresh port pair. Checks the quota first so a refused
    /// leg leaves nothing behind.
    fn open_leg(
        &mut self,
        now: Instant,
        owner: Owner,
        family_of: IpAddr,
        rtcp_mode: RtcpMode,
    ) -> Result<LegId, IntentError> {
        let ip = self
            .relay_ip_for(family_of)
            .ok_or(IntentError::NoRelayAddress)?;
        if let Owner::Network(n) = owner
            && self.networks[n].legs >= self.networks[n].cfg.max_legs
        {
            return Err(IntentError::QuotaReached);
        }
        let ports = self
            .ports
            .allocate(now)
            .map_err(|_| IntentError::PortsExhausted)?;
        let id = LegId(self.next_id);
        self.next_id += 1;
        if let Owner::Network(n) = owner {
            self.networks[n].legs += 1;
        }
        let leg = Leg {
            owner,
            ports,
            ip,
            rtcp_mode,
            key: None,
            local: None,
            call: None,
            remote: [Remote::Unbound; 2],
            pinhole: [None; 2],
            sdp: [None; 2],
            peer: None,
            last_activity: now,
        };
        self.by_port.insert(ports.rtp, id);
        if rtcp_mode == RtcpMode::Pair {
            self.by_port.insert(ports.rtcp(), id);
        }
        self.commands.push_back(RelayCommand::OpenLeg {
            leg: id,
            rtp: leg.rtp_addr(),
            rtcp: leg.rtcp_addr(),
        });
        self.legs.insert(id, leg);
        Ok(id)
    }

    fn close_leg(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.remove(&id) else {
            return;
        };
        self.by_port.remove(&leg.ports.rtp);
        self.by_port.remove(&leg.ports.rtcp());
        for p in leg.pinhole.iter().flatten() {
            if self.by_pinhole.get(p) == Some(&id) {
                self.by_pinhole.remove(p);
            }
        }
        if let (Owner::Network(n), Some(k)) = (leg.owner, leg.key) {
            self.by_key.remove(&(n, k));
        }
        if let (Owner::Network(n), Some(a)) = (leg.owner, leg.local)
            && self.by_local.get(&(n, a)) == Some(&id)
        {
            self.by_local.remove(&(n, a));
        }
        if let Owner::Network(n) = leg.owner {
            self.networks[n].legs = self.networks[n].legs.saturating_sub(1);
        }
        if let Some(p) = leg.peer.and_then(|p| self.legs.get_mut(&p)) {
            p.peer = None;
        }
        if let Err(e) = self.ports.release(now, leg.ports) {
            // The allocator and the leg table disagree: an internal bug.
            debug_assert!(false, "port release failed: {e}");
            tracing::error!(error = %e, "relay port release failed");
        }
        self.commands.push_back(RelayCommand::CloseLeg { leg: id });
    }

    fn set_remote(&mut self, id: LegId, component: Component, remote: Remote) {
        if let Some(leg) = self.legs.get_mut(&id) {
            let slot = &mut leg.remote[component_index(component)];
            if *slot != remote {
                *slot = remote;
                self.commands.push_back(RelayCommand::SetRemote {
                    leg: id,
                    component,
                    remote,
                });
            }
        }
    }
}

fn component_index(c: Component) -> usize {
    match c {
        Component::Rtp => 0,
        Component::Rtcp => 1,
    }
}

#[cfg(test)]
mod tests;
