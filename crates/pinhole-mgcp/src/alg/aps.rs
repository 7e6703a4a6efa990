//! The APS's MGCP ALG (Fig. 9, the APS columns). The inside gateways use
//! the APS as their call agent; it forwards their messages to the MPR
//! through its registered signaling pinhole, and the call agent's commands
//! from the MPR to the gateway that serves the endpoint's domain
//! ([`ApsConfig::gateways`], or the `[ip]:port` the endpoint names).
//!
//! **Media.** A RemoteConnectionDescriptor going in (CRCX/MDCX from the
//! MPR) is rewritten to an APS media port B, which the relay maps to the
//! MPR relay port it named and to the gateway. A LocalConnectionDescriptor
//! coming out (the gateway's 2xx) needs an open media pinhole first: the
//! APS sends CMPH (steps 825, 855) and holds the 2xx — and the call's later
//! messages behind it — until the pinhole opens (830, 860), then forwards
//! it with the pinhole's public address written in (835, 865). Port B is
//! the source of the media the gateway receives, and the address its SDP
//! names: a gateway like osmo-mgw takes RTP only from there.
//!
//! **Failure.** When the pinhole cannot be opened the APS answers the MPR
//! on the gateway's behalf with 502 (RFC 3435 §2.4: the endpoint lacks
//! the resources) and deletes the connection the gateway created with a
//! DLCX of its own (whose answer it keeps), so nothing is left half made.
//!
//! **Retransmissions.** A command seen again goes to the gateway as it was
//! first rewritten; a gateway's 2xx repeated while its pinhole opens is
//! absorbed, and after that gets the first rewritten copy again. DLCX frees
//! the connection's ports B and closes its pinholes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox};
use pinhole_core::client::{Event, PinholeId, PinholeRequest};
use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::ports::{Allocator, PortPair, PortRange};
use pinhole_core::rng::Rng;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;
use pinhole_sdp::RewriteOptions;

use super::{Kind, Stats, assemble, hash, mark, replies, reply, suffixes};
use crate::{Head, Host, Message, parse_datagram};

/// The APS MGCP ALG's settings.
#[derive(Clone, Debug)]
pub struct ApsConfig {
    /// The APS's MGCP socket (inside address, registered with the MPR for
    /// MGCP); the inside gateways send to it as their call agent.
    pub local: SocketAddr,
    /// The inside address media ports B are bound on.
    pub media_ip: IpAddr,
    /// Media ports B.
    pub media_ports: PortRange,
    /// Inside gateways by endpoint domain (`gw1.corp1.example` → its MGCP
    /// address); a domain's parents match too. An endpoint domain that is
    /// itself `[ip]` (with an optional `:port`, default 2427) needs no entry.
    pub gateways: Vec<(String, SocketAddr)>,
    /// Most connections tracked at once; beyond, CRCX gets 403.
    pub max_connections: usize,
    /// Most transactions tracked at once; beyond, commands get 409.
    pub max_transactions: usize,
    /// Most messages held per call while pinholes open.
    pub max_parked: usize,
    /// How long a transaction and its rewritten response are kept (T-hist).
    pub transaction_timeout: Duration,
    /// A connection with no message for this long is forgotten.
    pub connection_idle: Duration,
    /// How long a freed media port pair B rests before reuse.
    pub port_quarantine: Duration,
    /// Keys LEG-KEYs and seeds the port choice.
    pub seed: [u8; 32],
}

impl ApsConfig {
    /// Defaults for an APS at `local` with media ports on `media_ip`.
    pub fn new(
        local: SocketAddr,
        media_ip: IpAddr,
        media_ports: PortRange,
        seed: [u8; 32],
    ) -> Self {
        Self {
            local,
            media_ip,
            media_ports,
            gateways: Vec::new(),
            max_connections: 50_000,
            max_transactions: 100_000,
            max_parked: 16,
            transaction_timeout: Duration::from_secs(30),
            connection_idle: Duration::from_secs(4 * 3600),
            port_quarantine: Duration::from_secs(30),
            seed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhState {
    Opening,
    Open {
        public: Option<SocketAddr>,
        rtcp_public: Option<SocketAddr>,
        relay: SocketAddr,
    },
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Ph {
    id: PinholeId,
    inside: SocketAddr,
    state: PhState,
}

#[derive(Debug, Default)]
struct StreamState {
    b: Option<PortPair>,
    /// The MPR relay address the latest SDP from outside named.
    relay: Option<SocketAddr>,
    pinhole: Option<Ph>,
}

/// A gateway connection (from its CRCX on).
struct Conn {
    call: String,
    gateway: SocketAddr,
    endpoint: String,
    id: Option<String>,
    streams: HashMap<u16, StreamState>,
    last: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dir {
    /// From the MPR (the call agent) to a gateway.
    Down,
    /// From a gateway to the MPR.
    Up,
}

struct Txn {
    gateway: SocketAddr,
    kind: Kind,
    call: Option<String>,
    conn: Option<u64>,
    out: Option<Transmit>,
    response: Option<Transmit>,
    last: Instant,
}

struct Parked {
    local: SocketAddr,
    remote: SocketAddr,
    bytes: Vec<u8>,
}

enum MediaStep {
    Ready,
    Wait,
    Failed,
}

/// The APS's MGCP ALG.
pub struct Aps {
    cfg: ApsConfig,
    ports: Allocator,
    secret: u64,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    by_pinhole: HashMap<PinholeId, u64>,
    txns: HashMap<(Dir, u32), Txn>,
    /// Our own DLCXs to gateways (their answers stay here).
    own: HashMap<u32, Instant>,
    next_own: u32,
    parked: HashMap<String, VecDeque<Parked>>,
    out: Outbox,
    stats: Stats,
}

impl Aps {
    /// An ALG with no connections.
    pub fn new(cfg: ApsConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let ports = Allocator::new(cfg.media_ports, cfg.port_quarantine, rng.fork());
        // Our DLCX ids from the top of the range, away from call agents'.
        let next_own = 900_000_000 + (secret % 90_000_000) as u32;
        Self {
            cfg,
            ports,
            secret,
            conns: HashMap::new(),
            next_conn: 1,
            by_pinhole: HashMap::new(),
            txns: HashMap::new(),
            own: HashMap::new(),
            next_own,
            parked: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Gateway connections tracked now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Media ports B in use now.
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// The inside gateway for an endpoint.
    fn gateway_for(&self, m: &Message<'_>) -> Option<SocketAddr> {
        let ep = m.endpoint()?;
        if let Host::Ip(ip) = ep.host {
            return Some(SocketAddr::new(ip, ep.port.unwrap_or(2427)));
        }
        let d = ep.domain.to_ascii_lowercase();
        suffixes(&d).find_map(|s| {
            self.cfg
                .gateways
                .iter()
                .find(|(g, _)| g.eq_ignore_ascii_case(s))
                .map(|(_, a)| *a)
        })
    }

    fn send(&mut self, t: Transmit) {
        self.stats.forwarded += 1;
        self.out.send(t);
    }

    fn answer(&mut self, rx: &Receive<'_>, errors: &[Vec<u8>]) {
        if errors.is_empty() {
            return;
        }
        self.stats.replied += errors.len() as u64;
        self.out.send(Transmit {
            local: self.cfg.local,
            remote: rx.remote,
            payload: replies(errors),
        });
    }

    /// The call a datagram from a gateway belongs to, for its order.
    fn call_of(&self, m: &Message<'_>) -> Option<String> {
        match m.head() {
            Head::Command(_) => m.call_id().map(str::to_owned),
            Head::Response(r) => self
                .txns
                .get(&(Dir::Down, r.transaction_id))
                .and_then(|t| t.call.clone()),
        }
    }

    fn process(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        resuming: bool,
    ) -> bool {
        let msgs = match parse_datagram(rx.bytes) {
            Ok(m) if !m.is_empty() => m,
            Ok(_) | Err(_) => {
                self.stats.malformed += 1;
                return true;
            }
        };
        if msgs.len() > 1 && !resuming {
            self.stats.piggybacked += 1;
        }
        if rx.remote == ctx.mpr() {
            self.mpr_datagram(now, ctx, rx, &msgs);
            return true;
        }
        let Some(first) = msgs.first() else {
            return true;
        };
        if !resuming {
            if self.retransmission_inside(rx, first) {
                return true;
            }
            if let Some(call) = self.call_of(first)
                && self.parked.get(&call).is_some_and(|q| !q.is_empty())
            {
                self.park(&call, rx);
                return true;
            }
        }
        self.gateway_datagram(now, ctx, rx, &msgs, resuming)
    }

    fn park(&mut self, call: &str, rx: &Receive<'_>) {
        let q = self.parked.entry(call.to_owned()).or_default();
        if q.iter().any(|p| p.bytes == rx.bytes) {
            // A retransmission of a held message adds nothing.
            self.stats.retransmissions += 1;
            return;
        }
        if q.len() >= self.cfg.max_parked {
            tracing::warn!("MGCP: too many messages held for one call; dropped");
            return;
        }
        self.stats.parked += 1;
        q.push_back(Parked {
            local: rx.local,
            remote: rx.remote,
            bytes: rx.bytes.to_vec(),
        });
    }

    /// A gateway's command or final response seen before.
    fn retransmission_inside(&mut self, rx: &Receive<'_>, first: &Message<'_>) -> bool {
        let txid = first.transaction_id();
        if first.response().is_some() && self.own.contains_key(&txid) {
            return true;
        }
        let (key, is_cmd) = match first.head() {
            Head::Command(_) => ((Dir::Up, txid), true),
            Head::Response(r) if r.is_final() => ((Dir::Down, txid), false),
            Head::Response(_) => return false,
        };
        let Some(t) = self.txns.get(&key) else {
            return false;
        };
        if t.gateway != rx.remote {
            return false;
        }
        let cached = if is_cmd {
            t.out.clone()
        } else {
            t.response.clone()
        };
        match cached {
            Some(out) => {
                self.stats.retransmissions += 1;
                self.send(out);
                true
            }
            None => false,
        }
    }

    fn mpr_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
    ) {
        let Some(first) = msgs.first() else {
            return;
        };
        // Seen before: as it went the first time.
        let key = match first.head() {
            Head::Command(_) => Some((Dir::Down, first.transaction_id())),
            Head::Response(r) if r.is_final() => Some((Dir::Up, first.transaction_id())),
            Head::Response(_) => None,
        };
        if let Some(t) = key.and_then(|k| self.txns.get(&k)) {
            let cached = match first.head() {
                Head::Command(_) => t.out.clone(),
                Head::Response(_) => t.response.clone(),
            };
            if let Some(out) = cached {
                self.stats.retransmissions += 1;
                self.send(out);
                return;
            }
        }
        let mut dest: Option<SocketAddr> = None;
        let mut fail: Vec<Option<(u16, &'static str)>> = Vec::with_capacity(msgs.len());
        let mut to: Vec<Option<SocketAddr>> = Vec::with_capacity(msgs.len());
        for m in msgs {
            let (t, f) = match m.head() {
                Head::Command(_) => match self.gateway_for(m) {
                    Some(g) => (Some(g), None),
                    None => {
                        self.stats.unknown_endpoint += 1;
                        (None, Some((500, "Endpoint unknown")))
                    }
                },
                Head::Response(r) => {
                    let dir = if r.is_ack() { Dir::Down } else { Dir::Up };
                    match self.txns.get(&(dir, r.transaction_id)) {
                        Some(t) => (Some(t.gateway), None),
                        None => {
                            self.stats.unknown_transaction += 1;
                            (None, None)
                        }
                    }
                }
            };
            let (t, f) = match t {
                Some(g) if dest.is_some_and(|d| d != g) => {
                    (None, Some((510, "Messages for different gateways")))
                }
                Some(g) => {
                    dest = Some(g);
                    (Some(g), f)
                }
                None => (None, f),
            };
            to.push(t);
            fail.push(f);
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, m) in msgs.iter().enumerate() {
            if let Some(Some((code, why))) = fail.get(k) {
                if m.command().is_some() {
                    errors.push(reply(*code, m.transaction_id(), why));
                }
                mark(&mut drop, k);
                continue;
            }
            let Some(Some(g)) = to.get(k).copied() else {
                mark(&mut drop, k);
                continue;
            };
            if m.command().is_some()
                && let Err((code, why)) = self.down_command(now, ctx, rx, g, m, &mut patch)
            {
                errors.push(reply(code, m.transaction_id(), why));
                mark(&mut drop, k);
            }
        }
        self.answer(rx, &errors);
        let Some(g) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: g,
            payload,
        };
        if let Some(first) = msgs.iter().zip(&drop).find(|(_, d)| !**d).map(|(m, _)| m) {
            let key = match first.head() {
                Head::Command(_) => Some((Dir::Down, first.transaction_id())),
                Head::Response(r) if r.is_final() => Some((Dir::Up, first.transaction_id())),
                Head::Response(_) => None,
            };
            if let Some(t) = key.and_then(|k| self.txns.get_mut(&k)) {
                t.last = now;
                match first.head() {
                    Head::Command(_) => t.out = Some(out.clone()),
                    Head::Response(_) => t.response = Some(out.clone()),
                }
            }
        }
        self.send(out);
    }

    /// A call agent's command for gateway `g`.
    fn down_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        g: SocketAddr,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let txid = m.transaction_id();
        if self.txns.len() >= self.cfg.max_transactions
            && !self.txns.contains_key(&(Dir::Down, txid))
        {
            self.stats.transactions_refused += 1;
            return Err((409, "Internal overload"));
        }
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let endpoint = m
            .endpoint()
            .map(|e| e.text.to_ascii_lowercase())
            .unwrap_or_default();
        let conn_id = m.connection_id();
        let mut conn = None;
        match kind {
            Kind::Dlcx => {
                let gone: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| {
                        c.gateway == g && dlcx_matches(c, call.as_deref(), &endpoint, conn_id)
                    })
                    .map(|(k, _)| *k)
                    .collect();
                if !gone.is_empty() {
                    self.stats.teardowns += 1;
                }
                for k in gone {
                    self.free_conn(now, ctx, k);
                }
            }
            Kind::Crcx | Kind::Mdcx => {
                let Some(cid) = &call else {
                    return self.record(now, txid, g, kind, call, None);
                };
                let existing = conn_id.and_then(|i| {
                    self.conns
                        .iter()
                        .find(|(_, c)| c.gateway == g && c.id.as_deref() == Some(i))
                        .map(|(k, _)| *k)
                });
                let k = match existing {
                    Some(k) => k,
                    None => {
                        if self.conns.len() >= self.cfg.max_connections {
                            self.stats.calls_refused += 1;
                            return Err((403, "Insufficient resources"));
                        }
                        let k = self.next_conn;
                        self.next_conn += 1;
                        self.conns.insert(
                            k,
                            Conn {
                                call: cid.clone(),
                                gateway: g,
                                endpoint: endpoint.clone(),
                                id: conn_id.map(str::to_owned),
                                streams: HashMap::new(),
                                last: now,
                            },
                        );
                        self.stats.calls += 1;
                        k
                    }
                };
                conn = Some(k);
                self.inward(now, ctx, rx, k, m, patch)?;
            }
            Kind::Other => {}
        }
        self.record(now, txid, g, kind, call, conn)
    }

    fn record(
        &mut self,
        now: Instant,
        txid: u32,
        g: SocketAddr,
        kind: Kind,
        call: Option<String>,
        conn: Option<u64>,
    ) -> Result<(), (u16, &'static str)> {
        self.txns.insert(
            (Dir::Down, txid),
            Txn {
                gateway: g,
                kind,
                call,
                conn,
                out: None,
                response: None,
                last: now,
            },
        );
        self.arm_sweep(now);
        Ok(())
    }

    /// SDP going in: each stream gets port B.
    fn inward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        k: u64,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let sdp = match m.sdp() {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(_) => {
                self.stats.sdp_errors += 1;
                return Err((505, "Unsupported RemoteConnectionDescriptor"));
            }
        };
        let Ok(endpoints) = sdp.endpoints(rx.remote.ip()) else {
            self.stats.sdp_errors += 1;
            return Err((505, "Unsupported RemoteConnectionDescriptor"));
        };
        let mut plan = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            match self.inward_stream(now, ctx, k, e) {
                Some(p) => plan.push(p),
                None => return Err((403, "Insufficient resources")),
            }
        }
        if m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), patch)
            .is_err()
        {
            self.stats.sdp_errors += 1;
            return Err((505, "Unsupported RemoteConnectionDescriptor"));
        }
        self.stats.sdp_rewritten += 1;
        Ok(())
    }

    /// SDP entering: the gateway gets port B; the MPR relay address in the
    /// SDP is where B's pinhole will point.
    fn inward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        k: u64,
        e: &MediaEndpoint,
    ) -> Option<PlannedEndpoint> {
        if e.is_disabled() {
            self.close_stream(now, ctx, k, e.index);
            return Some(PlannedEndpoint {
                index: e.index,
                addr: e.addr,
                rtcp_addr: e.rtcp_addr,
            });
        }
        let c = self.conns.get_mut(&k)?;
        c.last = now;
        let st = c.streams.entry(e.index).or_default();
        if !e.is_hold() {
            st.relay = Some(e.addr);
            if let Some(ph) = st.pinhole
                && let PhState::Open { relay, .. } = ph.state
                && relay != e.addr
            {
                // The MPR moved the stream: the next SDP leaving reopens it.
                let _ = ctx.close_pinhole(ph.id);
                self.by_pinhole.remove(&ph.id);
                st.pinhole = None;
            }
        }
        let b = match st.b {
            Some(b) => b,
            None => {
                let b = self
                    .ports
                    .allocate(now)
                    .map_err(|err| tracing::error!(error = %err, "MGCP: no APS media port free"))
                    .ok()?;
                st.b = Some(b);
                b
            }
        };
        let ip = if e.is_hold() {
            e.addr.ip()
        } else {
            self.cfg.media_ip
        };
        Some(PlannedEndpoint {
            index: e.index,
            addr: SocketAddr::new(ip, b.rtp),
            rtcp_addr: e.rtcp_addr.map(|_| SocketAddr::new(ip, b.rtcp())),
        })
    }

    fn gateway_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
        resuming: bool,
    ) -> bool {
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        let registered = ctx.registered_pinhole().is_some();
        for (k, m) in msgs.iter().enumerate() {
            let txid = m.transaction_id();
            match m.head() {
                Head::Command(_) => {
                    if !registered {
                        errors.push(reply(400, txid, "Not registered with the MPR"));
                        mark(&mut drop, k);
                        continue;
                    }
                    if self.txns.len() >= self.cfg.max_transactions {
                        self.stats.transactions_refused += 1;
                        errors.push(reply(409, txid, "Internal overload"));
                        mark(&mut drop, k);
                        continue;
                    }
                    let kind = Kind::of(m);
                    if kind == Kind::Dlcx {
                        let call = m.call_id();
                        let endpoint = m
                            .endpoint()
                            .map(|e| e.text.to_ascii_lowercase())
                            .unwrap_or_default();
                        let gone: Vec<u64> = self
                            .conns
                            .iter()
                            .filter(|(_, c)| {
                                c.gateway == rx.remote
                                    && dlcx_matches(c, call, &endpoint, m.connection_id())
                            })
                            .map(|(k, _)| *k)
                            .collect();
                        for c in gone {
                            self.free_conn(now, ctx, c);
                        }
                    }
                    self.txns.insert(
                        (Dir::Up, txid),
                        Txn {
                            gateway: rx.remote,
                            kind,
                            call: m.call_id().map(str::to_owned),
                            conn: None,
                            out: None,
                            response: None,
                            last: now,
                        },
                    );
                    self.arm_sweep(now);
                }
                Head::Response(r) if r.is_ack() => {}
                Head::Response(r) => {
                    if self.own.contains_key(&txid) {
                        mark(&mut drop, k);
                        continue;
                    }
                    let Some(t) = self.txns.get(&(Dir::Down, txid)) else {
                        self.stats.unknown_transaction += 1;
                        mark(&mut drop, k);
                        continue;
                    };
                    if t.gateway != rx.remote {
                        self.stats.unknown_transaction += 1;
                        mark(&mut drop, k);
                        continue;
                    }
                    let (kind, conn, call) = (t.kind, t.conn, t.call.clone());
                    if !r.is_final() {
                        continue;
                    }
                    let Some(c) = conn else {
                        continue;
                    };
                    if !r.is_success() {
                        if kind == Kind::Crcx {
                            self.free_conn(now, ctx, c);
                        }
                        continue;
                    }
                    if kind == Kind::Crcx
                        && let Some(conn) = self.conns.get_mut(&c)
                    {
                        if let Some(i) = m.connection_id() {
                            conn.id = Some(i.to_owned());
                        }
                        // The specific endpoint a wildcard CRCX reached;
                        // our own DLCX goes to it, so it must be one.
                        if let Some(z) = m.value("Z")
                            && crate::head::is_specific_endpoint(z)
                        {
                            conn.endpoint = z.to_ascii_lowercase();
                        }
                    }
                    match self.outward(now, ctx, rx, c, m, &mut patch, resuming) {
                        MediaStep::Ready => {}
                        MediaStep::Wait => {
                            let call = call.unwrap_or_default();
                            self.park(&call, rx);
                            return false;
                        }
                        MediaStep::Failed => {
                            self.refuse(now, ctx, txid, c);
                            mark(&mut drop, k);
                        }
                    }
                }
            }
        }
        self.answer(rx, &errors);
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return true;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload,
        };
        if let Some(first) = msgs.iter().zip(&drop).find(|(_, d)| !**d).map(|(m, _)| m) {
            let key = match first.head() {
                Head::Command(_) => Some((Dir::Up, first.transaction_id())),
                Head::Response(r) if r.is_final() => Some((Dir::Down, first.transaction_id())),
                Head::Response(_) => None,
            };
            if let Some(t) = key.and_then(|k| self.txns.get_mut(&k)) {
                t.last = now;
                match first.head() {
                    Head::Command(_) => t.out = Some(out.clone()),
                    Head::Response(_) => t.response = Some(out.clone()),
                }
            }
        }
        self.send(out);
        true
    }

    /// The pinhole for a connection failed: 502 to the call agent on the
    /// gateway's behalf, and the connection deleted at the gateway.
    fn refuse(&mut self, now: Instant, ctx: &mut dyn ClientContext, txid: u32, c: u64) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let mut dlcx =
            crate::Command::builder("DLCX", self.next_own, &conn.endpoint).param("C", &conn.call);
        if let Some(i) = &conn.id {
            dlcx = dlcx.param("I", i);
        }
        let gateway = conn.gateway;
        self.own.insert(self.next_own, now);
        self.next_own = if self.next_own >= crate::MAX_TRANSACTION_ID {
            900_000_000
        } else {
            self.next_own + 1
        };
        self.out.send(Transmit {
            local: self.cfg.local,
            remote: gateway,
            payload: dlcx.to_bytes(),
        });
        let answer = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload: reply(502, txid, "Media pinhole failed"),
        };
        if let Some(t) = self.txns.get_mut(&(Dir::Down, txid)) {
            t.response = Some(answer.clone());
        }
        self.stats.replied += 1;
        self.out.send(answer);
        self.free_conn(now, ctx, c);
    }

    /// SDP leaving: every stream needs an open pinhole.
    #[allow(clippy::too_many_arguments)]
    fn outward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        c: u64,
        m: &Message<'_>,
        patch: &mut Patch,
        resuming: bool,
    ) -> MediaStep {
        let sdp = match m.sdp() {
            Ok(Some(s)) => s,
            Ok(None) => return MediaStep::Ready,
            Err(e) => {
                self.stats.sdp_errors += 1;
                tracing::warn!(error = %e, "MGCP: unreadable SDP from a gateway");
                return MediaStep::Failed;
            }
        };
        let Ok(endpoints) = sdp.endpoints(rx.remote.ip()) else {
            self.stats.sdp_errors += 1;
            return MediaStep::Failed;
        };
        let mut plan = Vec::with_capacity(endpoints.len());
        let mut waiting = false;
        for e in &endpoints {
            match self.outward_stream(now, ctx, c, e, resuming) {
                Ok(Some(p)) => plan.push(p),
                Ok(None) => waiting = true,
                Err(()) => return MediaStep::Failed,
            }
        }
        if waiting {
            return MediaStep::Wait;
        }
        if m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), patch)
            .is_err()
        {
            self.stats.sdp_errors += 1;
            return MediaStep::Failed;
        }
        self.stats.sdp_rewritten += 1;
        MediaStep::Ready
    }

    /// One stream leaving: `Ok(None)` while its pinhole opens.
    fn outward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        c: u64,
        e: &MediaEndpoint,
        resuming: bool,
    ) -> Result<Option<PlannedEndpoint>, ()> {
        let unchanged = PlannedEndpoint {
            index: e.index,
            addr: e.addr,
            rtcp_addr: e.rtcp_addr,
        };
        if e.is_disabled() {
            self.close_stream(now, ctx, c, e.index);
            return Ok(Some(unchanged));
        }
        let leg_key = self.leg_key(c, e.index);
        let Some(conn) = self.conns.get_mut(&c) else {
            return Ok(Some(unchanged));
        };
        conn.last = now;
        let st = conn.streams.entry(e.index).or_default();
        if let Some(ph) = st.pinhole
            && ph.state == PhState::Failed
            && resuming
        {
            // The message held for this pinhole: it failed.
            return Err(());
        }
        if let Some(ph) = st.pinhole
            && !e.is_hold()
            && (ph.inside != e.addr || ph.state == PhState::Failed)
        {
            // The gateway moved its media (or the last try failed): again.
            let _ = ctx.close_pinhole(ph.id);
            self.by_pinhole.remove(&ph.id);
            st.pinhole = None;
        }
        if st.pinhole.is_none() {
            if e.is_hold() {
                return Ok(Some(unchanged));
            }
            let b = match st.b {
                Some(b) => b,
                None => {
                    let b = self.ports.allocate(now).map_err(|err| {
                        tracing::error!(error = %err, "MGCP: no APS media port free");
                    })?;
                    st.b = Some(b);
                    b
                }
            };
            let req = PinholeRequest {
                local: SocketAddr::new(self.cfg.media_ip, b.rtp),
                relay: st.relay,
                rtcp: e.rtcp,
                key: leg_key,
                inside: Some(e.addr),
            };
            let id = ctx.open_pinhole(now, req).map_err(|err| {
                self.stats.pinhole_failures += 1;
                tracing::error!(error = %err, "MGCP: cannot open a media pinhole");
            })?;
            self.stats.pinholes += 1;
            st.pinhole = Some(Ph {
                id,
                inside: e.addr,
                state: PhState::Opening,
            });
            self.by_pinhole.insert(id, c);
            return Ok(None);
        }
        let Some(ph) = st.pinhole else {
            return Ok(None);
        };
        match ph.state {
            PhState::Opening => Ok(None),
            PhState::Failed => Err(()),
            PhState::Open {
                public,
                rtcp_public,
                ..
            } => {
                let b = st.b.map(|b| SocketAddr::new(self.cfg.media_ip, b.rtp));
                let Some(mut addr) = public.or(b) else {
                    return Err(());
                };
                if e.is_hold() {
                    addr.set_ip(e.addr.ip());
                }
                let rtcp_addr = e.rtcp_addr.map(|_| {
                    rtcp_public
                        .unwrap_or_else(|| SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)))
                });
                Ok(Some(PlannedEndpoint {
                    index: e.index,
                    addr,
                    rtcp_addr,
                }))
            }
        }
    }

    fn leg_key(&self, c: u64, index: u16) -> Vec<u8> {
        let h = hash(self.secret, &[&c.to_be_bytes()]);
        format!("mgcp/{h:016x}/{index}").into_bytes()
    }

    fn close_stream(&mut self, now: Instant, ctx: &mut dyn ClientContext, c: u64, index: u16) {
        let Some(st) = self
            .conns
            .get_mut(&c)
            .and_then(|x| x.streams.remove(&index))
        else {
            return;
        };
        release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
    }

    fn free_conn(&mut self, now: Instant, ctx: &mut dyn ClientContext, c: u64) {
        let Some(conn) = self.conns.remove(&c) else {
            return;
        };
        for (_, st) in conn.streams {
            release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
        }
        self.arm_sweep(now);
    }

    /// Runs the held messages of a call, in order, until one must wait.
    fn resume(&mut self, now: Instant, ctx: &mut dyn ClientContext, call: &str) {
        loop {
            let Some(p) = self.parked.get_mut(call).and_then(VecDeque::pop_front) else {
                self.parked.remove(call);
                return;
            };
            let rx = Receive {
                local: p.local,
                remote: p.remote,
                bytes: &p.bytes,
            };
            if !self.process(now, ctx, &rx, true) {
                // Parked again at the back: put it first again.
                if let Some(q) = self.parked.get_mut(call)
                    && let Some(again) = q.pop_back()
                {
                    q.push_front(again);
                    self.stats.parked -= 1;
                }
                return;
            }
        }
    }

    fn arm_sweep(&mut self, now: Instant) {
        let at = now + Duration::from_secs(1);
        self.out.arm_sweep(at);
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        let life = self.cfg.transaction_timeout;
        // A CRCX never answered created nothing at the gateway: its ports
        // B go with its transaction.
        let unanswered: Vec<u64> = self
            .txns
            .values()
            .filter(|t| now >= t.last + life && t.kind == Kind::Crcx && t.response.is_none())
            .filter_map(|t| t.conn)
            .filter(|c| self.conns.get(c).is_some_and(|x| x.id.is_none()))
            .collect();
        for c in unanswered {
            self.stats.expired += 1;
            self.free_conn(now, ctx, c);
        }
        self.txns.retain(|_, t| now < t.last + life);
        self.own.retain(|_, at| now < *at + life);
        let idle = self.cfg.connection_idle;
        let stale: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.last + idle)
            .map(|(k, _)| *k)
            .collect();
        for c in stale {
            self.stats.expired += 1;
            self.free_conn(now, ctx, c);
        }
        // Messages held for connections that are gone wait for nothing.
        let calls: std::collections::HashSet<&str> =
            self.conns.values().map(|c| c.call.as_str()).collect();
        self.parked
            .retain(|call, q| !q.is_empty() && calls.contains(call.as_str()));
        self.ports.expire(now);
        let busy = !self.txns.is_empty() || !self.conns.is_empty() || !self.own.is_empty();
        self.out
            .set_sweep(busy.then(|| now + Duration::from_secs(1)));
    }
}

/// Whether a DLCX (call, endpoint, connection) names connection `c`
/// (RFC 3435 §2.3.9; `*` in the endpoint's local name names all).
fn dlcx_matches(c: &Conn, call: Option<&str>, endpoint: &str, conn: Option<&str>) -> bool {
    if let Some(i) = conn {
        return c.id.as_deref() == Some(i);
    }
    if call.is_some_and(|x| x != c.call) {
        return false;
    }
    let (local, domain) = endpoint.split_once('@').unwrap_or((endpoint, ""));
    c.endpoint == endpoint
        || (local.split('/').any(|t| t == "*")
            && c.endpoint
                .rsplit_once('@')
                .is_some_and(|(_, d)| d == domain))
}

fn release(
    now: Instant,
    ctx: &mut dyn ClientContext,
    ports: &mut Allocator,
    by_pinhole: &mut HashMap<PinholeId, u64>,
    st: StreamState,
) {
    if let Some(ph) = st.pinhole {
        let _ = ctx.close_pinhole(ph.id);
        by_pinhole.remove(&ph.id);
    }
    if let Some(b) = st.b {
        let _ = ports.release(now, b);
    }
}

impl ClientSignaling for Aps {
    fn protocol(&self) -> Protocol {
        Protocol::Mgcp
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let _ = self.process(now, ctx, &rx, false);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        let (id, state) = match *ev {
            Event::PinholeOpened {
                id,
                relay,
                pinhole,
                rtcp_pinhole,
            } => (
                id,
                PhState::Open {
                    public: pinhole,
                    rtcp_public: rtcp_pinhole,
                    relay,
                },
            ),
            Event::PinholeFailed { id, .. } => {
                self.stats.pinhole_failures += 1;
                (id, PhState::Failed)
            }
            _ => return,
        };
        let Some(c) = self.by_pinhole.get(&id).copied() else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        for st in conn.streams.values_mut() {
            if let Some(ph) = st.pinhole.as_mut()
                && ph.id == id
            {
                ph.state = state;
                if let PhState::Open { relay, .. } = state {
                    st.relay = Some(relay);
                }
            }
        }
        let call = conn.call.clone();
        self.resume(now, ctx, &call);
    }

    fn sweep(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        self.expire(now, ctx);
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }

    fn counters(&self) -> Counters {
        self.stats.counters()
    }
}
