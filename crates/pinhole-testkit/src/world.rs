//! A whole deployment on the simulated network: an MPR on the "internet",
//! corporate zones behind NAT firewalls, APS / smart-terminal client engines
//! and plain hosts, with a model of the media relay that carries out the
//! engines' relay commands. Tests drive it with [`World::run_for`] and check
//! what arrived where.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets, Relay};
use pinhole_core::alg::{AlgEvent, ClientSignaling, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::relay::{Admission, RelayCommand, RelayReport, Remote};
use pinhole_core::types::{Component, LegId, Receive};
use pinhole_core::wire::{self, Message, Protocol};

use crate::{Datagram, FirewallConfig, FirewallId, Net, ZoneId};

/// Handle of a client engine in the world.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientId(pub usize);

/// One corporate network: its zone and firewall.
#[derive(Clone, Copy, Debug)]
pub struct Corp {
    /// The inside zone.
    pub zone: ZoneId,
    /// Its firewall.
    pub firewall: FirewallId,
}

/// A line of the message ladder: a control message as it crossed the wire.
#[derive(Clone, Debug)]
pub struct Rung {
    /// Simulated time since the world started.
    pub at: Duration,
    /// Sender (as delivered, after NAT).
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// "REGISTER request", "CMPH success", ...
    pub what: String,
}

/// Counters of the relay model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Media packets forwarded by the MPR relay.
    pub forwarded: u64,
    /// Dropped: the leg had no binding yet.
    pub dropped_unbound: u64,
    /// Dropped: the source was not the bound (or latchable) one.
    pub dropped_source: u64,
    /// Dropped: the peer leg cannot send yet.
    pub dropped_no_peer: u64,
    /// Forwarded by APS local mappings.
    pub aps_forwarded: u64,
}

struct SimLeg {
    local: [Option<SocketAddr>; 2],
    remote: [Remote; 2],
    peer: Option<LegId>,
}

/// The MPR's data plane, as a model of what `pinhole-net` does: strict
/// source checks, latching, forwarding out of the peer leg's own port.
#[derive(Default)]
struct SimRelay {
    legs: HashMap<LegId, SimLeg>,
    by_local: HashMap<SocketAddr, (LegId, usize)>,
    counters: RelayCounters,
}

/// The simulated relay opens every leg at once; the simulated clients need
/// no media sockets bound (the network delivers to any address).
impl Relay for SimRelay {
    fn apply(&mut self, c: RelayCommand) -> std::io::Result<()> {
        self.carry_out(c);
        Ok(())
    }

    fn bind(&mut self, _local: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

impl SimRelay {
    fn carry_out(&mut self, c: RelayCommand) {
        match c {
            RelayCommand::OpenLeg { leg, rtp, rtcp } => {
                self.by_local.insert(rtp, (leg, 0));
                if let Some(r) = rtcp {
                    self.by_local.insert(r, (leg, 1));
                }
                self.legs.insert(
                    leg,
                    SimLeg {
                        local: [Some(rtp), rtcp],
                        remote: [Remote::Unbound; 2],
                        peer: None,
                    },
                );
            }
            RelayCommand::SetRemote {
                leg,
                component,
                remote,
            } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.remote[idx(component)] = remote;
                }
            }
            RelayCommand::Connect { leg, peer } => {
                for (a, b) in [(leg, peer), (peer, leg)] {
                    if let Some(l) = self.legs.get_mut(&a) {
                        l.peer = Some(b);
                    }
                }
            }
            RelayCommand::CloseLeg { leg } => {
                if let Some(l) = self.legs.remove(&leg) {
                    for a in l.local.iter().flatten() {
                        self.by_local.remove(a);
                    }
                }
            }
            RelayCommand::MapLocal { .. }
            | RelayCommand::DeliverLocal { .. }
            | RelayCommand::UnmapLocal { .. } => {}
        }
    }

    /// A media packet at a relay port: where it goes, and any report.
    fn forward(&mut self, now: Instant, d: &Datagram) -> (Option<Datagram>, Vec<RelayReport>) {
        let mut reports = Vec::new();
        let Some(&(id, c)) = self.by_local.get(&d.dst) else {
            return (None, reports);
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return (None, reports);
        };
        match leg.remote[c].admit(d.src, now) {
            Admission::Pass => {}
            Admission::Latch => {
                leg.remote[c] = Remote::Fixed(d.src);
                reports.push(RelayReport::Latched {
                    leg: id,
                    component: if c == 0 {
                        Component::Rtp
                    } else {
                        Component::Rtcp
                    },
                    source: d.src,
                });
            }
            Admission::Unbound => {
                self.counters.dropped_unbound += 1;
                return (None, reports);
            }
            Admission::Foreign => {
                self.counters.dropped_source += 1;
                return (None, reports);
            }
        }
        reports.push(RelayReport::Activity { leg: id, at: now });
        let out = leg.peer.and_then(|p| self.legs.get(&p)).and_then(|p| {
            match (p.local[c], p.remote[c].target()) {
                (Some(local), Some(to)) => Some(Datagram {
                    src: local,
                    dst: to,
                    payload: d.payload.clone(),
                }),
                _ => None,
            }
        });
        match out {
            Some(o) => {
                self.counters.forwarded += 1;
                (Some(o), reports)
            }
            None => {
                self.counters.dropped_no_peer += 1;
                (None, reports)
            }
        }
    }
}

fn idx(c: Component) -> usize {
    match c {
        Component::Rtp => 0,
        Component::Rtcp => 1,
    }
}

struct ClientNode {
    engine: client::Engine,
    events: Vec<client::Event>,
    /// APS mappings: local → (outside, inside).
    maps: HashMap<SocketAddr, (SocketAddr, SocketAddr)>,
    /// The signaling ALG on its signaling socket, if any.
    alg: Option<Box<dyn ClientSignaling>>,
    /// Further addresses of the client's host whose datagrams go to its
    /// ALG (H.323's inside listeners).
    alg_listens: Vec<SocketAddr>,
    /// What the ALG reported (drained as it came).
    alg_events: Vec<AlgEvent>,
}

/// Names a binary signaling payload for the ladder.
pub type Namer = fn(&[u8]) -> Option<String>;

/// The deployment.
pub struct World {
    /// The network (zones, firewalls, clock).
    pub net: Net,
    /// The internet zone.
    pub internet: ZoneId,
    mpr_ip: IpAddr,
    mpr: mpr::Engine,
    mpr_cfg: mpr::Config,
    mpr_events: Vec<mpr::Event>,
    relay: SimRelay,
    /// The MPR's signaling ALGs, each with the socket it listens on.
    mpr_algs: Vec<(SocketAddr, Box<dyn MprSignaling>)>,
    /// Further MPR addresses and the ALG (by its address) they reach.
    mpr_alg_listens: Vec<(SocketAddr, SocketAddr)>,
    /// Names binary signaling on the ladder (H.323), where a test gives one.
    namer: Option<Namer>,
    /// What the MPR's ALGs reported, by protocol (drained as it came).
    mpr_alg_events: Vec<(Protocol, AlgEvent)>,
    clients: Vec<ClientNode>,
    inbox: HashMap<SocketAddr, Vec<Datagram>>,
    ladder: Vec<Rung>,
    captured: Vec<Datagram>,
    names: HashMap<IpAddr, String>,
}

impl World {
    /// A world with the internet zone and an MPR at `mpr_cfg.relay_ip`.
    pub fn new(start: Instant, seed: u64, mpr_cfg: mpr::Config) -> Self {
        let mut net = Net::new(start, seed);
        let internet = net.add_zone("internet");
        let mpr_ip = mpr_cfg.relay_ip;
        net.add_host_ip(internet, mpr_ip);
        let mpr = match mpr::Engine::new(mpr_cfg.clone(), start) {
            Ok(m) => m,
            Err(e) => panic!("test MPR configuration rejected: {e}"),
        };
        let mut names = HashMap::new();
        names.insert(mpr_ip, "MPR".to_string());
        Self {
            net,
            internet,
            mpr_ip,
            mpr,
            mpr_cfg,
            mpr_events: Vec::new(),
            relay: SimRelay::default(),
            mpr_algs: Vec::new(),
            mpr_alg_listens: Vec::new(),
            namer: None,
            mpr_alg_events: Vec::new(),
            clients: Vec::new(),
            inbox: HashMap::new(),
            ladder: Vec::new(),
            captured: Vec::new(),
            names,
        }
    }

    /// Adds a corporate zone behind a firewall with `public_ip`.
    pub fn add_corp(&mut self, name: &str, public_ip: IpAddr, fw: FirewallConfig) -> Corp {
        let zone = self.net.add_zone(name);
        let firewall = self.net.add_firewall(zone, self.internet, public_ip, fw);
        self.names.insert(public_ip, format!("FW({name})"));
        Corp { zone, firewall }
    }

    /// Adds a host address in a zone, with a name for the ladder.
    pub fn add_host(&mut self, zone: ZoneId, ip: IpAddr, name: &str) {
        self.net.add_host_ip(zone, ip);
        self.names.insert(ip, name.to_string());
    }

    /// Adds a client engine (APS or smart terminal) on its signaling host,
    /// which must already exist.
    pub fn add_client(&mut self, cfg: client::Config) -> ClientId {
        let engine = match client::Engine::new(cfg, self.net.now()) {
            Ok(e) => e,
            Err(e) => panic!("test client configuration rejected: {e}"),
        };
        self.clients.push(ClientNode {
            engine,
            events: Vec::new(),
            alg_events: Vec::new(),
            maps: HashMap::new(),
            alg: None,
            alg_listens: Vec::new(),
        });
        ClientId(self.clients.len() - 1)
    }

    /// Puts a signaling ALG on the MPR's socket `at`: every non-control
    /// datagram to it goes to the ALG, which plans media with the engine.
    /// Each protocol's ALG has its own socket; a second ALG on `at`
    /// replaces the first. Datagrams to the ALG's
    /// [`MprSignaling::extra_addresses`] reach it too.
    pub fn set_mpr_alg(&mut self, at: SocketAddr, alg: Box<dyn MprSignaling>) {
        self.mpr_algs.retain(|(a, _)| *a != at);
        self.mpr_algs.push((at, alg));
    }

    /// Puts a signaling ALG on a client's signaling socket.
    pub fn set_client_alg(&mut self, id: ClientId, alg: Box<dyn ClientSignaling>) {
        self.clients[id.0].alg = Some(alg);
    }

    /// Names the rungs of binary signaling the world cannot read itself
    /// (H.323's TPKT frames): `None` leaves a datagram off the ladder.
    pub fn set_namer(&mut self, namer: Namer) {
        self.namer = Some(namer);
    }

    /// Datagrams to `also` go to the MPR ALG on `at` too: the listeners a
    /// real driver opens beside the ALG's socket (H.323's H.245 pool).
    /// Streams are simulated as datagrams, one frame each.
    pub fn listen_mpr_alg(&mut self, at: SocketAddr, also: SocketAddr) {
        self.mpr_alg_listens.push((also, at));
    }

    /// Datagrams to `also` (an address of the client's host) go to its
    /// ALG too: H.323's inside listeners.
    pub fn listen_client_alg(&mut self, id: ClientId, also: SocketAddr) {
        self.clients[id.0].alg_listens.push(also);
    }

    /// The MPR's ALG for `protocol`, to read its counters.
    pub fn mpr_alg(&self, protocol: Protocol) -> Option<&dyn MprSignaling> {
        self.mpr_algs
            .iter()
            .find(|(_, a)| a.protocol() == protocol)
            .map(|(_, a)| &**a)
    }

    /// A client's ALG, to read its counters.
    pub fn client_alg(&self, id: ClientId) -> Option<&dyn ClientSignaling> {
        self.clients[id.0].alg.as_deref()
    }

    /// Events the MPR's ALG for `protocol` raised so far (call anchored,
    /// media planned, call ended...).
    pub fn mpr_alg_events(&self, protocol: Protocol) -> Vec<AlgEvent> {
        self.mpr_alg_events
            .iter()
            .filter(|(p, _)| *p == protocol)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Events a client's ALG raised so far (pinholes opened or failed...).
    pub fn client_alg_events(&self, id: ClientId) -> &[AlgEvent] {
        &self.clients[id.0].alg_events
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The MPR engine.
    pub fn mpr(&mut self) -> &mut mpr::Engine {
        &mut self.mpr
    }

    /// A client engine.
    pub fn client(&mut self, id: ClientId) -> &mut client::Engine {
        &mut self.clients[id.0].engine
    }

    /// Events a client raised so far (drained from the engine as they came).
    pub fn client_events(&self, id: ClientId) -> &[client::Event] {
        &self.clients[id.0].events
    }

    /// Events the MPR raised so far.
    pub fn mpr_events(&self) -> &[mpr::Event] {
        &self.mpr_events
    }

    /// The relay model's counters.
    pub fn relay_counters(&self) -> RelayCounters {
        self.relay.counters
    }

    /// The control-message ladder so far.
    pub fn ladder(&self) -> &[Rung] {
        &self.ladder
    }

    /// How many rungs of the ladder went to `dst` and start with `what`
    /// (`"CMPH request"`, `"REGISTER request"` …).
    pub fn rungs_to(&self, dst: SocketAddr, what: &str) -> usize {
        self.ladder
            .iter()
            .filter(|r| r.dst == dst && r.what.starts_with(what))
            .count()
    }

    /// Every control datagram delivered so far, as an eavesdropper on the
    /// path would have recorded it (for replay tests).
    pub fn captured(&self) -> &[Datagram] {
        &self.captured
    }

    /// A printable name for an address ("APS1:5060").
    pub fn name(&self, a: SocketAddr) -> String {
        match self.names.get(&a.ip()) {
            Some(n) => format!("{n}:{}", a.port()),
            None => a.to_string(),
        }
    }

    /// Datagrams delivered to `addr` that no engine or relay consumed
    /// (media at a terminal, signaling at a host).
    pub fn take_inbox(&mut self, addr: SocketAddr) -> Vec<Datagram> {
        self.inbox.remove(&addr).unwrap_or_default()
    }

    /// Sends a datagram from a host now.
    pub fn send(&mut self, src: SocketAddr, dst: SocketAddr, payload: Vec<u8>) {
        // An APS's outbound traffic through its signaling socket counts as
        // pinhole traffic.
        for c in &mut self.clients {
            if c.engine.config().signaling.ip() == src.ip() {
                c.engine.handle_traffic(self.net.now(), src);
            }
        }
        self.net.send(Datagram { src, dst, payload });
    }

    /// Replaces the MPR with a fresh engine (a restart: every table empty,
    /// a new nonce secret).
    pub fn restart_mpr(&mut self, seed: [u8; 32]) {
        let mut cfg = self.mpr_cfg.clone();
        cfg.rng_seed = seed;
        self.mpr = match mpr::Engine::new(cfg, self.net.now()) {
            Ok(m) => m,
            Err(e) => panic!("test MPR configuration rejected: {e}"),
        };
        self.relay = SimRelay::default();
    }

    /// Runs the world for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.net.now() + d;
        self.run_until(until);
    }

    /// Runs until `until`: every due timer fires, every datagram is delivered.
    pub fn run_until(&mut self, until: Instant) {
        let mut spins = 0u32;
        loop {
            let now = self.net.now();
            self.mpr.handle_timeout(now);
            for (_, alg) in &mut self.mpr_algs {
                if alg.poll_timeout().is_some_and(|t| t <= now) {
                    alg.handle_timeout(now, &mut LiveMpr::new(&mut self.mpr, &mut self.relay));
                }
            }
            for c in &mut self.clients {
                c.engine.handle_timeout(now);
                if let Some(alg) = &mut c.alg
                    && alg.poll_timeout().is_some_and(|t| t <= now)
                {
                    alg.handle_timeout(now, &mut LiveClient::new(&mut c.engine, &mut NoSockets));
                }
            }
            self.drain();
            let mut delivered = false;
            while let Some(d) = self.net.poll_delivery() {
                delivered = true;
                self.deliver(d);
                self.drain();
            }
            if delivered {
                continue;
            }
            let mpr_alg = self
                .mpr_algs
                .iter()
                .filter_map(|(_, a)| a.poll_timeout())
                .min();
            let next = [self.net.next_event_time(), self.mpr.poll_timeout(), mpr_alg]
                .into_iter()
                .chain(self.clients.iter().map(|c| c.engine.poll_timeout()))
                .chain(
                    self.clients
                        .iter()
                        .map(|c| c.alg.as_ref().and_then(|a| a.poll_timeout())),
                )
                .flatten()
                .min();
            match next {
                // A timer armed while handling this instant: run it now.
                Some(t) if t <= now => {
                    spins += 1;
                    assert!(
                        spins < 100_000,
                        "an engine keeps asking for a timeout in the past"
                    );
                }
                Some(t) if t <= until => {
                    spins = 0;
                    self.net.advance_to(t);
                }
                _ => {
                    self.net.advance_to(until);
                    if self.net.now() == now {
                        return;
                    }
                }
            }
        }
    }

    fn drain(&mut self) {
        let now = self.net.now();
        for (_, alg) in &mut self.mpr_algs {
            while let Some(t) = alg.poll_transmit() {
                self.net.send(Datagram {
                    src: t.local,
                    dst: t.remote,
                    payload: t.payload,
                });
            }
            let protocol = alg.protocol();
            while let Some(e) = alg.poll_event() {
                self.mpr_alg_events.push((protocol, e));
            }
        }
        while let Some(t) = self.mpr.poll_transmit() {
            self.net.send(Datagram {
                src: t.local,
                dst: t.remote,
                payload: t.payload,
            });
        }
        while let Some(c) = self.mpr.poll_command() {
            self.relay.carry_out(c);
        }
        while let Some(e) = self.mpr.poll_event() {
            self.mpr_events.push(e);
        }
        for c in &mut self.clients {
            // An ALG answering an event may queue more engine output: go
            // round until a pass moves nothing.
            loop {
                let mut moved = 0;
                while let Some(t) = c.engine.poll_transmit() {
                    moved += 1;
                    self.net.send(Datagram {
                        src: t.local,
                        dst: t.remote,
                        payload: t.payload,
                    });
                }
                while let Some(cmd) = c.engine.poll_command() {
                    moved += 1;
                    match cmd {
                        RelayCommand::MapLocal {
                            local,
                            outside,
                            inside,
                        } => {
                            c.maps.insert(local, (outside, inside));
                        }
                        RelayCommand::UnmapLocal { local } => {
                            c.maps.remove(&local);
                        }
                        _ => {}
                    }
                }
                while let Some(e) = c.engine.poll_event() {
                    moved += 1;
                    if let Some(alg) = &mut c.alg {
                        alg.handle_event(
                            now,
                            &mut LiveClient::new(&mut c.engine, &mut NoSockets),
                            &e,
                        );
                    }
                    c.events.push(e);
                }
                if let Some(alg) = &mut c.alg {
                    while let Some(e) = alg.poll_event() {
                        c.alg_events.push(e);
                    }
                    while let Some(t) = alg.poll_transmit() {
                        moved += 1;
                        c.engine.handle_traffic(now, t.local);
                        self.net.send(Datagram {
                            src: t.local,
                            dst: t.remote,
                            payload: t.payload,
                        });
                    }
                }
                if moved == 0 {
                    break;
                }
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        let now = self.net.now();
        let alg_at = self
            .mpr_alg_listens
            .iter()
            .find(|(also, _)| *also == d.dst)
            .map(|(_, at)| *at);
        if wire::is_control(&d.payload) {
            self.record(&d);
            self.captured.push(d.clone());
        } else {
            self.record_text(&d);
        }
        if !wire::is_control(&d.payload)
            && let Some((_, alg)) = self.mpr_algs.iter_mut().find(|(at, alg)| {
                *at == d.dst || Some(*at) == alg_at || alg.extra_addresses().contains(&d.dst)
            })
        {
            alg.handle_datagram(
                now,
                &mut LiveMpr::new(&mut self.mpr, &mut self.relay),
                Receive {
                    local: d.dst,
                    remote: d.src,
                    bytes: &d.payload,
                    flow: Default::default(),
                },
            );
            return;
        }
        if d.dst.ip() == self.mpr_ip {
            if wire::is_control(&d.payload) {
                let _ = self.mpr.handle_datagram(
                    now,
                    Receive {
                        local: d.dst,
                        remote: d.src,
                        bytes: &d.payload,
                        flow: Default::default(),
                    },
                );
                return;
            }
            if self.relay.by_local.contains_key(&d.dst) {
                let (out, reports) = self.relay.forward(now, &d);
                for r in reports {
                    self.mpr.handle_relay(now, r);
                }
                if let Some(o) = out {
                    self.net.send(o);
                }
                return;
            }
            self.inbox.entry(d.dst).or_default().push(d);
            return;
        }
        for c in &mut self.clients {
            if d.dst.ip() != c.engine.config().signaling.ip() {
                continue;
            }
            if wire::is_control(&d.payload) {
                let _ = c.engine.handle_datagram(
                    now,
                    Receive {
                        local: d.dst,
                        remote: d.src,
                        bytes: &d.payload,
                        flow: Default::default(),
                    },
                );
                return;
            }
            if (d.dst == c.engine.config().signaling || c.alg_listens.contains(&d.dst))
                && let Some(alg) = &mut c.alg
            {
                c.engine.handle_traffic(now, d.dst);
                alg.handle_datagram(
                    now,
                    &mut LiveClient::new(&mut c.engine, &mut NoSockets),
                    Receive {
                        local: d.dst,
                        remote: d.src,
                        bytes: &d.payload,
                        flow: Default::default(),
                    },
                );
                return;
            }
            if let Some(&(outside, inside)) = c.maps.get(&d.dst) {
                c.engine.handle_traffic(now, d.dst);
                let dst = if d.src == outside {
                    inside
                } else if d.src == inside {
                    outside
                } else {
                    return; // Neither side of the mapping: dropped.
                };
                self.relay.counters.aps_forwarded += 1;
                self.net.send(Datagram {
                    src: d.dst,
                    dst,
                    payload: d.payload,
                });
                return;
            }
            c.engine.handle_traffic(now, d.dst);
        }
        self.inbox.entry(d.dst).or_default().push(d);
    }

    /// Signaling in text (SIP, MGCP, H.248): its first line goes on the ladder.
    fn record_text(&mut self, d: &Datagram) {
        let line = d.payload.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let printable = !line.is_empty()
            && line.len() < 200
            && line.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        let sip = line.ends_with(b"SIP/2.0") || line.starts_with(b"SIP/2.0 ");
        let what = if printable && (sip || is_mgcp_line(line)) {
            Some(String::from_utf8_lossy(line).into_owned())
        } else {
            h248_summary(&d.payload).or_else(|| self.namer.and_then(|n| n(&d.payload)))
        };
        if let Some(what) = what {
            self.ladder.push(Rung {
                at: self.net.now().duration_since(self.net.start()),
                src: d.src,
                dst: d.dst,
                what,
            });
        }
    }

    fn record(&mut self, d: &Datagram) {
        let what = match Message::decode(&d.payload) {
            Ok(m) => {
                let class = match m.class() {
                    wire::Class::Request => "request",
                    wire::Class::Indication => "indication",
                    wire::Class::Success => "success",
                    wire::Class::Error => "error",
                };
                let method = match m.method() {
                    wire::Method::Register => "REGISTER",
                    wire::Method::Cmph => "CMPH",
                    _ => "Binding",
                };
                let mut s = format!("{method} {class}");
                if let Some((code, _)) = m.error_code() {
                    s.push_str(&format!(" {} {}", code.0, code.reason()));
                }
                if let Some(a) = m.xor_mapped_address() {
                    s.push_str(&format!(" mapped={a}"));
                }
                if let Some(a) = m.xor_relayed_address() {
                    s.push_str(&format!(" relay={a}"));
                }
                s
            }
            Err(e) => format!("malformed: {e}"),
        };
        self.ladder.push(Rung {
            at: self.net.now().duration_since(self.net.start()),
            src: d.src,
            dst: d.dst,
            what,
        });
    }
}

/// An MGCP command line (`CRCX 1001 aaln/1@gw MGCP 1.0`) or response line
/// (`200 1001 OK`), RFC 3435 §3.2.1 and §3.3.
/// An H.248 text message as a ladder rung: `H.248 Transaction Add`,
/// `H.248 Reply ServiceChange`, `H.248 Reply Error`. Its first
/// transaction and that one's first command, read from the words alone
/// (comment lines first, such as the MPR's line naming a gateway, are
/// skipped); `None` for anything else.
fn h248_summary(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let start = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with(';'))?;
    let upper = start.get(..7).unwrap_or(start).to_ascii_uppercase();
    if !upper.starts_with("MEGACO/") && !upper.starts_with("!/") {
        return None;
    }
    // Past the version and the mId: the transactions.
    let from = text.find(start)?;
    let mut parts = text.get(from..)?.splitn(3, char::is_whitespace);
    let rest = parts.nth(2)?;
    let long = |w: &str| -> Option<&'static str> {
        Some(match w.to_ascii_lowercase().as_str() {
            "transaction" | "t" => "Transaction",
            "reply" | "p" => "Reply",
            "transactionpending" | "pn" => "TransactionPending",
            "transactionresponseack" | "k" => "TransactionResponseAck",
            "add" | "a" => "Add",
            "modify" | "mf" => "Modify",
            "subtract" | "s" => "Subtract",
            "move" | "mv" => "Move",
            "servicechange" | "sc" => "ServiceChange",
            "notify" | "n" => "Notify",
            "auditvalue" | "av" => "AuditValue",
            "auditcapability" | "ac" => "AuditCapability",
            "error" | "er" => "Error",
            _ => return None,
        })
    };
    let mut words = rest
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(long);
    let kind = words.next()?;
    if !matches!(kind, "Transaction" | "Reply") {
        return Some(format!("H.248 {kind}"));
    }
    Some(match words.next() {
        Some(c) => format!("H.248 {kind} {c}"),
        None => format!("H.248 {kind}"),
    })
}

fn is_mgcp_line(line: &[u8]) -> bool {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let (Some(first), Some(second)) = (words.next(), words.next()) else {
        return false;
    };
    let digits = |w: &[u8]| !w.is_empty() && w.iter().all(u8::is_ascii_digit);
    if first.len() == 3 && digits(first) {
        return digits(second);
    }
    first.len() == 4
        && first.iter().all(u8::is_ascii_alphanumeric)
        && digits(second)
        && words.any(|w| w.eq_ignore_ascii_case(b"MGCP"))
}

#[cfg(test)]
mod h248_tests {
    use super::h248_summary;

    #[test]
    fn h248_messages_become_rungs_named_by_their_first_command() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (
                b"MEGACO/1 [192.0.2.5]:2944\r\nTransaction = 3 {\r\n Context = $ {\r\n  Add = RTP/$ {}}}\r\n",
                Some("H.248 Transaction Add"),
            ),
            (
                b";pinhole-mg=[10.1.0.10]:2944\r\nMEGACO/1 [192.0.2.5]:2944\nReply = 3 { Context = 7 { Modify = RTP/1 } }",
                Some("H.248 Reply Modify"),
            ),
            (
                b"!/1 <iMSS>\nT=4{C=-{SC=ROOT{SV{MT=RS}}}}",
                Some("H.248 Transaction ServiceChange"),
            ),
            (
                b"MEGACO/1 [10.1.0.10]:2944\r\nReply = 9 { Error = 510 {\"x\"} }",
                Some("H.248 Reply Error"),
            ),
            (b"MEGACO/1 <mg>\nK { 1-3 }", Some("H.248 TransactionResponseAck")),
            (b"INVITE sip:a@b SIP/2.0\r\n", None),
            (b"\x80\x00\x01", None),
        ];
        for (payload, want) in cases {
            assert_eq!(
                h248_summary(payload).as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
