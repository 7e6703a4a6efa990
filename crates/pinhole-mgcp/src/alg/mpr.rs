//! The MPR's MGCP ALG (Figs. 9 and 10, the MPR's column).
//!
//! **Routing.** A command from the public side (the call agent) for
//! `local@domain` goes into the signaling pinhole of the network that
//! serves the domain or a parent of it; its response comes back through
//! that pinhole and goes to the command's source (RFC 3435 §3.5), found by
//! (network, transaction id). A command from a network (NTFY, RSIP, a
//! gateway's DLCX) goes to the call agent ([`MprConfig::call_agent`],
//! else the command's NotifiedEntity when it is an address); the call
//! agent's response goes back into that network's pinhole. Response
//! acknowledgements (`000`, `K:`) pass like the rest. A piggybacked
//! datagram goes on as one datagram; a message in it that cannot go to
//! the same place is answered and cut out.
//!
//! **Media.** One MGCP call (`C:`, scoped by the call agent's address) is
//! one [`CallKey`] with two sides: the first party to describe its media
//! is side A. A gateway's LocalConnectionDescriptor (the SDP of a 2xx to
//! CRCX or MDCX) is its side's description: planned with the engine and
//! rewritten to an MPR relay address, remembered per call. The call agent
//! copies that address into its command to the other gateway; such an SDP
//! passes unchanged (the gateway must send to exactly that relay port) and
//! the first side's description is planned again toward the network it now
//! reaches, so that network's CMPH can bind the leg. An SDP from the call
//! agent with any other address is a public party's media (a media server)
//! and is planned as the public side of the call.
//!
//! **Several connections on one endpoint.** A media server or trunking
//! gateway (osmo-mgw's rtpbridge) takes two or more connections on one
//! endpoint in one call, each toward its own party. Each connection beyond
//! the first that an endpoint holds at once gets a call record of its own
//! (its own relay legs); a later MDCX or DLCX finds it by its connection
//! id, a DLCX naming only the call or the endpoint reaches them all. A
//! CRCX whose SDP names a relay address of one of the call's records
//! belongs to that record.
//!
//! **Teardown.** DLCX (from the call agent or a gateway) removes the
//! connections it names (`I:`, else every connection of the endpoint, or
//! of the call); when no gateway connection is left the call's legs go. A
//! CRCX answered with an error frees what it created the same way.
//!
//! **Retransmissions.** A command or response seen again (same sender,
//! same transaction id) within [`MprConfig::transaction_timeout`] (T-hist,
//! 30 s in RFC 3435 §3.5) is sent on again as it was rewritten the first
//! time, without planning anything again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox};
use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin, PlannedEndpoint};
use pinhole_core::mpr::IntentError;
use pinhole_core::patch::Patch;
use pinhole_core::types::{CallKey, Receive, Transmit};
use pinhole_core::wire::Protocol;
use pinhole_sdp::RewriteOptions;

use super::{Kind, Stats, assemble, entity_addr, mark, replies, reply, suffixes};
use crate::{Head, MAX_TRANSACTION_ID, Message, ResponseAck, parse_datagram};

/// The MPR MGCP ALG's settings.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's MGCP control socket: networks register their MGCP
    /// pinholes with it, the call agent sends its commands to it.
    pub local: SocketAddr,
    /// Where gateways' own commands (NTFY, RSIP, DLCX...) go. Without one,
    /// to the command's NotifiedEntity (`N:`) when it is an address; else
    /// the gateway is answered 510.
    pub call_agent: Option<SocketAddr>,
    /// Most transactions tracked at once; beyond, commands get 409.
    pub max_transactions: usize,
    /// Most calls tracked at once; beyond, new calls get 403.
    pub max_calls: usize,
    /// How long a transaction (and its rewritten response, for
    /// retransmissions) is kept after its last message: T-hist.
    pub transaction_timeout: Duration,
    /// A call with no gateway connection is forgotten after this long.
    pub setup_timeout: Duration,
    /// A call with no MGCP message for this long is forgotten (its media
    /// expires earlier on its own if no RTP flows).
    pub call_idle: Duration,
    /// The first transaction id the gateways' commands get toward the call
    /// agent (they are renumbered: every network reaches it from our one
    /// socket). A restarted MPR should start elsewhere, so that the call
    /// agent takes no new command for a retransmission; the daemon seeds
    /// it. Default 1.
    pub first_transaction_id: u32,
}

impl MprConfig {
    /// Defaults around the MPR's MGCP socket.
    pub fn new(local: SocketAddr) -> Self {
        Self {
            local,
            call_agent: None,
            max_transactions: 100_000,
            max_calls: 100_000,
            transaction_timeout: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(180),
            call_idle: Duration::from_secs(4 * 3600),
            first_transaction_id: 1,
        }
    }
}

/// Who sent a transaction's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dir {
    /// The call agent, to a gateway inside a network.
    Down,
    /// A gateway inside a network, to the call agent.
    Up,
}

struct Txn {
    network: String,
    /// The transaction id on the call agent's side: the network's own for
    /// a call agent's command, one of ours for a gateway's (every network
    /// reaches the call agent from our one socket, so their ids are
    /// renumbered into one space).
    wire: u32,
    /// The call agent: the command's source (Down) or destination (Up).
    ca: SocketAddr,
    kind: Kind,
    call: Option<String>,
    endpoint: String,
    conn: Option<String>,
    side: Option<Side>,
    /// The datagram sent on for the command (when it came first in it).
    out: Option<Transmit>,
    /// The final response as sent on.
    response: Option<Transmit>,
    last: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Network(String),
    Public,
}

impl Place {
    fn origin(&self) -> Origin<'_> {
        match self {
            Self::Network(n) => Origin::Network(n),
            Self::Public => Origin::Public,
        }
    }
}

/// One party of a call: a gateway's connection(s) on an endpoint, or a
/// public party the call agent described.
struct Party {
    place: Place,
    endpoint: String,
    conns: Vec<String>,
    /// CRCXs sent and not answered yet.
    pending: u32,
    /// Its latest description, as it described it.
    endpoints: Vec<MediaEndpoint>,
}

impl Party {
    fn new(place: Place, endpoint: &str) -> Self {
        Self {
            place,
            endpoint: endpoint.to_owned(),
            conns: Vec::new(),
            pending: 0,
            endpoints: Vec::new(),
        }
    }

    fn live(&self) -> bool {
        matches!(self.place, Place::Network(_)) && (!self.conns.is_empty() || self.pending > 0)
    }
}

struct Call {
    key: CallKey,
    parties: [Option<Party>; 2],
    /// Relay addresses written into this call's descriptions: whose
    /// stream (side, index) each reaches.
    written: HashMap<SocketAddr, (Side, u16)>,
    /// The engine has planned media for it.
    planned: bool,
    created: Instant,
    last: Instant,
}

impl Call {
    fn slot(&self, side: Side) -> &Option<Party> {
        let [a, b] = &self.parties;
        match side {
            Side::A => a,
            Side::B => b,
        }
    }

    fn slot_mut(&mut self, side: Side) -> &mut Option<Party> {
        let [a, b] = &mut self.parties;
        match side {
            Side::A => a,
            Side::B => b,
        }
    }

    fn party(&self, side: Side) -> Option<&Party> {
        self.slot(side).as_ref()
    }

    fn party_mut(&mut self, side: Side) -> Option<&mut Party> {
        self.slot_mut(side).as_mut()
    }

    /// The side of a gateway's connection: by connection id, else by
    /// endpoint name.
    fn side_of(&self, place: &Place, endpoint: &str, conn: Option<&str>) -> Option<Side> {
        let sides = [Side::A, Side::B];
        let with = |f: &dyn Fn(&Party) -> bool| {
            sides
                .into_iter()
                .find(|s| self.party(*s).is_some_and(|p| p.place == *place && f(p)))
        };
        if let Some(c) = conn
            && let Some(s) = with(&|p| p.conns.iter().any(|x| x == c))
        {
            return Some(s);
        }
        with(&|p| p.endpoint == endpoint)
    }

    fn free_side(&self) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|s| self.party(*s).is_none())
    }

    fn live(&self) -> bool {
        self.parties.iter().flatten().any(Party::live)
    }
}

/// A call record: the call agent's address and the call id, followed for
/// a further connection on an endpoint by a newline and a number (a
/// newline cannot occur in an MGCP value).
type CallId = (IpAddr, String);

/// The MGCP call a record belongs to.
fn base_call(id: &CallId) -> CallId {
    let cid = id.1.split_once('\n').map_or(id.1.as_str(), |(c, _)| c);
    (id.0, cid.to_owned())
}

/// Where a message of a datagram goes, or the error it gets.
enum Route {
    To(String),
    Ca(SocketAddr),
    Fail(u16, &'static str),
    Drop,
}

/// The MPR's MGCP ALG.
pub struct Mpr {
    cfg: MprConfig,
    txns: HashMap<(Dir, String, u32), Txn>,
    /// (direction, call agent, id on its side) → (network, id on the
    /// network's side).
    by_ca: HashMap<(Dir, IpAddr, u32), (String, u32)>,
    /// The next id for a gateway's command toward the call agent.
    next_up: u32,
    calls: HashMap<CallId, Call>,
    /// The records of each MGCP call (the call itself first, then further
    /// connections on an endpoint), by call.
    records: HashMap<CallId, Vec<String>>,
    out: Outbox,
    stats: Stats,
}

impl Mpr {
    /// An ALG with no transactions or calls.
    pub fn new(cfg: MprConfig) -> Self {
        Self {
            next_up: cfg.first_transaction_id.clamp(1, MAX_TRANSACTION_ID),
            cfg,
            txns: HashMap::new(),
            by_ca: HashMap::new(),
            calls: HashMap::new(),
            records: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Call records tracked now: one per call, and one more per further
    /// connection an endpoint holds in it at once.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions tracked now.
    pub fn transactions(&self) -> usize {
        self.txns.len()
    }

    /// The network serving `domain` or its nearest parent.
    fn network_for(ctx: &dyn MprContext, domain: &str) -> Option<String> {
        let d = domain.to_ascii_lowercase();
        suffixes(&d).find_map(|s| ctx.network_for_domain(s))
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
            local: rx.local,
            remote: rx.remote,
            payload: replies(errors),
        });
    }

    /// A network's current pinhole (a re-registration may move it).
    fn route_to(&self, ctx: &dyn MprContext, network: &str) -> Option<(SocketAddr, SocketAddr)> {
        ctx.route(network, Protocol::Mgcp)
            .map(|r| (r.local, r.pinhole))
    }

    /// A command or final response seen before: sent on again as it was.
    fn retransmission(
        &mut self,
        ctx: &dyn MprContext,
        rx: &Receive<'_>,
        net: Option<&str>,
        first: &Message<'_>,
    ) -> bool {
        let txid = first.transaction_id();
        let ip = rx.remote.ip();
        let key = match (first.head(), net) {
            (Head::Command(_), None) => self
                .by_ca
                .get(&(Dir::Down, ip, txid))
                .map(|(n, t)| (Dir::Down, n.clone(), *t)),
            (Head::Command(_), Some(n)) => Some((Dir::Up, n.to_owned(), txid)),
            (Head::Response(r), Some(n)) if r.is_final() => Some((Dir::Down, n.to_owned(), txid)),
            (Head::Response(r), None) if r.is_final() => self
                .by_ca
                .get(&(Dir::Up, ip, txid))
                .map(|(n, t)| (Dir::Up, n.clone(), *t)),
            _ => None,
        };
        let Some(key) = key else {
            return false;
        };
        let Some(t) = self.txns.get(&key) else {
            return false;
        };
        let cached = match first.head() {
            Head::Command(_) if t.ca.ip() == ip || net.is_some() => t.out.clone(),
            Head::Response(_) => t.response.clone(),
            Head::Command(_) => None,
        };
        let Some(mut out) = cached else {
            return false;
        };
        // Toward a network: its current pinhole.
        if out.remote != t.ca
            && let Some((local, remote)) = self.route_to(ctx, &t.network)
        {
            out.local = local;
            out.remote = remote;
        }
        self.stats.retransmissions += 1;
        self.send(out);
        true
    }

    fn public_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        msgs: &[Message<'_>],
    ) {
        let ip = rx.remote.ip();
        let mut dest: Option<String> = None;
        let mut routes = Vec::with_capacity(msgs.len());
        for m in msgs {
            let r = match m.head() {
                Head::Command(c) => match Self::network_for(ctx, c.endpoint.domain) {
                    None => {
                        self.stats.unknown_endpoint += 1;
                        Route::Fail(500, "Endpoint unknown")
                    }
                    Some(n) if self.route_to(ctx, &n).is_none() => {
                        self.stats.no_route += 1;
                        Route::Fail(501, "Endpoint not ready")
                    }
                    Some(n) => Route::To(n),
                },
                Head::Response(r) => {
                    let dir = if r.is_ack() { Dir::Down } else { Dir::Up };
                    match self.by_ca.get(&(dir, ip, r.transaction_id)) {
                        Some((n, _)) => Route::To(n.clone()),
                        None => {
                            self.stats.unknown_transaction += 1;
                            Route::Drop
                        }
                    }
                }
            };
            let r = match r {
                Route::To(n) if dest.as_ref().is_some_and(|d| *d != n) => {
                    Route::Fail(510, "Messages for different networks")
                }
                Route::To(n) => {
                    dest = Some(n.clone());
                    Route::To(n)
                }
                other => other,
            };
            routes.push(r);
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, (m, r)) in msgs.iter().zip(&mut routes).enumerate() {
            let n = match r {
                Route::To(n) => n.clone(),
                Route::Fail(code, why) => {
                    if m.command().is_some() {
                        errors.push(reply(*code, m.transaction_id(), why));
                    }
                    mark(&mut drop, k);
                    continue;
                }
                Route::Ca(_) | Route::Drop => {
                    mark(&mut drop, k);
                    continue;
                }
            };
            let done = match m.head() {
                Head::Command(_) => self.down_command(now, ctx, rx, &n, m, &mut patch),
                Head::Response(r) => {
                    // The gateway's own id back for the answer to its command.
                    if !r.is_ack()
                        && let Some((_, g)) = self.by_ca.get(&(Dir::Up, ip, r.transaction_id))
                        && *g != r.transaction_id
                    {
                        patch.replace_int(r.transaction_span.clone(), u64::from(*g));
                    }
                    Ok(())
                }
            };
            if let Err((code, why)) = done {
                errors.push(reply(code, m.transaction_id(), why));
                mark(&mut drop, k);
                *r = Route::Drop;
            }
        }
        self.answer(rx, &errors);
        let Some(n) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let Some((local, remote)) = self.route_to(ctx, &n) else {
            // A response for a network whose registration just lapsed.
            self.stats.no_route += 1;
            return;
        };
        let out = Transmit {
            local,
            remote,
            payload,
        };
        if let Some(first) = msgs.iter().zip(&drop).find(|(_, d)| !**d).map(|(m, _)| m) {
            let key = match first.head() {
                Head::Command(_) => Some((Dir::Down, n.clone(), first.transaction_id())),
                Head::Response(r) if r.is_final() => self
                    .by_ca
                    .get(&(Dir::Up, ip, first.transaction_id()))
                    .map(|(n, g)| (Dir::Up, n.clone(), *g)),
                Head::Response(_) => None,
            };
            if let Some(t) = key.and_then(|key| self.txns.get_mut(&key)) {
                t.last = now;
                match first.head() {
                    Head::Command(_) => t.out = Some(out.clone()),
                    Head::Response(_) => t.response = Some(out.clone()),
                }
            }
        }
        self.send(out);
    }

    fn network_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        msgs: &[Message<'_>],
    ) {
        let mut dest: Option<SocketAddr> = None;
        let mut routes = Vec::with_capacity(msgs.len());
        for m in msgs {
            let txid = m.transaction_id();
            let r = match m.head() {
                Head::Response(r) if r.is_ack() => {
                    match self.txns.get(&(Dir::Up, n.to_owned(), txid)) {
                        Some(t) => Route::Ca(t.ca),
                        None => self.cfg.call_agent.map_or(Route::Drop, Route::Ca),
                    }
                }
                Head::Response(_) => match self.txns.get(&(Dir::Down, n.to_owned(), txid)) {
                    Some(t) => Route::Ca(t.ca),
                    None => {
                        self.stats.unknown_transaction += 1;
                        Route::Drop
                    }
                },
                Head::Command(_) => {
                    let to = self
                        .cfg
                        .call_agent
                        .or_else(|| m.notified_entity().and_then(entity_addr));
                    match to {
                        Some(a) => Route::Ca(a),
                        None => {
                            self.stats.no_call_agent += 1;
                            Route::Fail(510, "No call agent")
                        }
                    }
                }
            };
            let r = match r {
                Route::Ca(a) if dest.is_some_and(|d| d != a) => {
                    Route::Fail(510, "Messages for different call agents")
                }
                Route::Ca(a) => {
                    dest = Some(a);
                    Route::Ca(a)
                }
                other => other,
            };
            routes.push(r);
        }
        let mut patch = Patch::new();
        let mut errors = Vec::new();
        let mut drop = vec![false; msgs.len()];
        for (k, (m, r)) in msgs.iter().zip(&routes).enumerate() {
            let ca = match r {
                Route::Ca(a) => *a,
                Route::Fail(code, why) => {
                    if m.command().is_some() {
                        errors.push(reply(*code, m.transaction_id(), why));
                    }
                    mark(&mut drop, k);
                    continue;
                }
                Route::To(_) | Route::Drop => {
                    mark(&mut drop, k);
                    continue;
                }
            };
            let done = match m.head() {
                Head::Command(_) => self.up_command(now, ctx, n, ca, m, &mut patch),
                Head::Response(r) if r.is_ack() => {
                    // A 000 for the call agent's answer to our renumbered
                    // command carries the id the call agent knows.
                    if let Some(t) = self.txns.get(&(Dir::Up, n.to_owned(), r.transaction_id))
                        && t.wire != r.transaction_id
                    {
                        patch.replace_int(r.transaction_span.clone(), u64::from(t.wire));
                    }
                    Ok(())
                }
                Head::Response(_) => {
                    self.down_response(now, ctx, rx, n, m, &mut patch);
                    Ok(())
                }
            };
            if let Err((code, why)) = done {
                errors.push(reply(code, m.transaction_id(), why));
                mark(&mut drop, k);
            }
        }
        self.answer(rx, &errors);
        let Some(ca) = dest else {
            return;
        };
        let Some(payload) = assemble(msgs, &drop, &mut patch, rx.bytes, &mut self.stats) else {
            return;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: ca,
            payload,
        };
        if let Some(first) = msgs.iter().zip(&drop).find(|(_, d)| !**d).map(|(m, _)| m) {
            let txid = first.transaction_id();
            let key = match first.head() {
                Head::Command(_) => Some((Dir::Up, n.to_owned(), txid)),
                Head::Response(r) if r.is_final() => Some((Dir::Down, n.to_owned(), txid)),
                Head::Response(_) => None,
            };
            if let Some(t) = key.and_then(|key| self.txns.get_mut(&key)) {
                t.last = now;
                match first.head() {
                    Head::Command(_) => t.out = Some(out.clone()),
                    Head::Response(_) => t.response = Some(out.clone()),
                }
            }
        }
        self.send(out);
    }

    fn room_for(&mut self, key: &(Dir, String, u32)) -> Result<(), (u16, &'static str)> {
        if self.txns.len() >= self.cfg.max_transactions && !self.txns.contains_key(key) {
            self.stats.transactions_refused += 1;
            return Err((409, "Internal overload"));
        }
        Ok(())
    }

    /// A call agent's command for a gateway of network `n`: transaction,
    /// parties, media.
    fn down_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let txid = m.transaction_id();
        let key = (Dir::Down, n.to_owned(), txid);
        self.room_for(&key)?;
        if let Some(old) = self.txns.get(&key)
            && old.ca.ip() != rx.remote.ip()
        {
            // Another call agent's live transaction with this id.
            self.stats.transactions_refused += 1;
            return Err((409, "Transaction id in use"));
        }
        let endpoint = m
            .endpoint()
            .map(|e| e.text.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let conn = m.connection_id().map(str::to_owned);
        let ca_ip = rx.remote.ip();
        let mut side = None;
        let mut record = None;
        match kind {
            Kind::Dlcx => self.dlcx(
                now,
                ctx,
                ca_ip,
                n,
                call.as_deref(),
                &endpoint,
                conn.as_deref(),
            ),
            Kind::Crcx | Kind::Mdcx => {
                if let Some(cid) = &call {
                    let (s, r) = self.down_media(
                        now,
                        ctx,
                        rx,
                        (ca_ip, cid.clone()),
                        n,
                        &endpoint,
                        conn.as_deref(),
                        kind,
                        m,
                        patch,
                    )?;
                    side = Some(s);
                    record = Some(r.1);
                }
            }
            Kind::Other => {}
        }
        self.txns.insert(
            key,
            Txn {
                network: n.to_owned(),
                ca: rx.remote,
                kind,
                // Its answer updates the record the command was for.
                call: record.or(call),
                endpoint,
                conn,
                side,
                out: None,
                response: None,
                last: now,
                wire: txid,
            },
        );
        self.by_ca
            .insert((Dir::Down, ca_ip, txid), (n.to_owned(), txid));
        self.arm_sweep(now);
        Ok(())
    }

    /// The call `id`, created when `create`.
    fn call_mut(
        &mut self,
        now: Instant,
        id: &CallId,
        create: bool,
    ) -> Result<Option<&mut Call>, (u16, &'static str)> {
        if !self.calls.contains_key(id) {
            if !create {
                return Ok(None);
            }
            if self.calls.len() >= self.cfg.max_calls {
                self.stats.calls_refused += 1;
                return Err((403, "Insufficient resources"));
            }
            self.stats.calls += 1;
            self.records
                .entry(base_call(id))
                .or_default()
                .push(id.1.clone());
            self.calls.insert(
                id.clone(),
                Call {
                    key: CallKey::new(format!("mgcp/{}/{}", id.0, id.1.replace('\n', "#"))),
                    parties: [None, None],
                    written: HashMap::new(),
                    planned: false,
                    created: now,
                    last: now,
                },
            );
        }
        Ok(self.calls.get_mut(id))
    }

    /// A CRCX or MDCX toward a gateway: which side the gateway is, and the
    /// call agent's SDP (a relay address of this call passes; anything
    /// else is a public party's media, planned).
    #[allow(clippy::too_many_arguments)]
    fn down_media(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        id: CallId,
        n: &str,
        endpoint: &str,
        conn: Option<&str>,
        kind: Kind,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(Side, CallId), (u16, &'static str)> {
        let sdp = match m.sdp() {
            Ok(s) => s,
            Err(_) => {
                self.stats.sdp_errors += 1;
                return Err((505, "Unsupported RemoteConnectionDescriptor"));
            }
        };
        let endpoints = match sdp.as_ref().map(|s| s.endpoints(rx.remote.ip())) {
            None => Vec::new(),
            Some(Ok(e)) => e,
            Some(Err(_)) => {
                self.stats.sdp_errors += 1;
                return Err((505, "Unsupported RemoteConnectionDescriptor"));
            }
        };
        let place = Place::Network(n.to_owned());
        let id = self.record_for(&id, &place, endpoint, conn, kind, &endpoints);
        let Some(call) = self.call_mut(now, &id, true)? else {
            return Err((403, "Insufficient resources"));
        };
        call.last = now;
        // Streams whose address is a relay address this call wrote.
        let relayed: Vec<(MediaEndpoint, Side, u16)> = endpoints
            .iter()
            .filter(|e| !e.is_disabled() && !e.is_hold())
            .filter_map(|e| call.written.get(&e.addr).map(|&(s, i)| (*e, s, i)))
            .collect();
        // Held (`c=0.0.0.0`) and disabled streams pass as they are.
        let public: Vec<MediaEndpoint> = endpoints
            .iter()
            .filter(|e| !e.is_disabled() && !e.is_hold())
            .filter(|e| !relayed.iter().any(|(r, ..)| r.index == e.index))
            .copied()
            .collect();
        let side = match call.side_of(&place, endpoint, conn) {
            Some(s) => s,
            None => {
                let s = match relayed.first() {
                    Some(&(_, x, _)) => x.peer(),
                    None => match call.free_side() {
                        Some(s) => s,
                        None => [Side::A, Side::B]
                            .into_iter()
                            .find(|s| call.party(*s).is_some_and(|p| p.place == Place::Public))
                            .ok_or((502, "Call has two parties"))?,
                    },
                };
                *call.slot_mut(s) = Some(Party::new(place.clone(), endpoint));
                s
            }
        };
        if let Some(p) = call.party_mut(side)
            && (p.endpoint.contains('*') || p.endpoint.contains('$'))
        {
            p.endpoint = endpoint.to_owned();
        }
        if let Some(sdp) = sdp {
            self.down_sdp(
                now, ctx, &id, side, &place, m, &sdp, &relayed, &public, patch,
            )?;
        }
        // Counted once the command goes on: its answer (or its expiry)
        // settles it.
        if kind == Kind::Crcx
            && let Some(p) = self.calls.get_mut(&id).and_then(|c| c.party_mut(side))
        {
            p.pending += 1;
        }
        Ok((side, id))
    }

    /// The record of call `id` a CRCX or MDCX from `place` for `endpoint`
    /// belongs to: the one holding its connection, else the one whose
    /// relay address its SDP names, else (CRCX) the first with no live
    /// connection on the endpoint, else a new one.
    fn record_for(
        &self,
        id: &CallId,
        place: &Place,
        endpoint: &str,
        conn: Option<&str>,
        kind: Kind,
        endpoints: &[MediaEndpoint],
    ) -> CallId {
        let Some(list) = self.records.get(id) else {
            return id.clone();
        };
        let records = || {
            list.iter()
                .map(|r| (id.0, r.clone()))
                .filter_map(|k| self.calls.get(&k).map(|c| (k, c)))
        };
        let mine = |p: &Party| p.place == *place;
        if let Some(c) = conn
            && let Some((k, _)) = records().find(|(_, call)| {
                call.parties
                    .iter()
                    .flatten()
                    .any(|p| mine(p) && p.conns.iter().any(|x| x == c))
            })
        {
            return k;
        }
        if let Some((k, _)) =
            records().find(|(_, call)| endpoints.iter().any(|e| call.written.contains_key(&e.addr)))
        {
            return k;
        }
        if kind != Kind::Crcx {
            return id.clone();
        }
        let wildcard = endpoint.contains('*') || endpoint.contains('$');
        let taken = |call: &Call| {
            call.parties
                .iter()
                .flatten()
                .any(|p| mine(p) && p.live() && (wildcard || p.endpoint == endpoint))
        };
        if let Some((k, _)) = records().find(|(_, call)| !taken(call)) {
            return k;
        }
        // A further connection on the endpoint: a record of its own.
        (1u32..)
            .map(|k| (id.0, format!("{}\n{k}", id.1)))
            .find(|k| !self.calls.contains_key(k))
            .unwrap_or_else(|| id.clone())
    }

    /// The call agent's SDP toward side `side`'s gateway: public streams
    /// planned, relay addresses of this call planned again toward here.
    #[allow(clippy::too_many_arguments)]
    fn down_sdp(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: &CallId,
        side: Side,
        place: &Place,
        m: &Message<'_>,
        sdp: &pinhole_sdp::Sdp<'_>,
        relayed: &[(MediaEndpoint, Side, u16)],
        public: &[MediaEndpoint],
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let mut plan: Vec<PlannedEndpoint> = Vec::new();
        if !public.is_empty() {
            // A public party (media server, public phone) on the other side.
            let ps = side.peer();
            if let Some(call) = self.calls.get_mut(id)
                && call.party(ps).is_none_or(|p| p.place != Place::Public)
            {
                *call.slot_mut(ps) = Some(Party::new(Place::Public, ""));
            }
            let planned = self
                .plan(now, ctx, id, ps, &Place::Public, place, public)
                .map_err(|_| (403, "Insufficient resources"))?;
            plan.extend(planned);
        }
        for &(e, x, i) in relayed {
            // The other side's description reaches this network: plan it
            // toward here (the relay leg becomes this network's).
            let stored = self.calls.get(id).and_then(|c| {
                let p = c.party(x)?;
                Some((
                    p.place.clone(),
                    p.endpoints.iter().find(|s| s.index == i).copied()?,
                ))
            });
            let Some((xplace, stored)) = stored else {
                continue;
            };
            let Ok(got) = self.plan(now, ctx, id, x, &xplace, place, &[stored]) else {
                continue;
            };
            if let Some(g) = got.first()
                && g.addr != e.addr
            {
                plan.push(PlannedEndpoint {
                    index: e.index,
                    addr: g.addr,
                    rtcp_addr: e.rtcp_addr.map(|_| {
                        g.rtcp_addr.unwrap_or_else(|| {
                            SocketAddr::new(g.addr.ip(), g.addr.port().wrapping_add(1))
                        })
                    }),
                });
            }
        }
        if !plan.is_empty() {
            if m.rewrite_sdp(sdp, &plan, &RewriteOptions::default(), patch)
                .is_err()
            {
                self.stats.sdp_errors += 1;
                return Err((505, "Unsupported RemoteConnectionDescriptor"));
            }
            self.stats.sdp_rewritten += 1;
        }
        Ok(())
    }

    /// Plans `endpoints` of side `from` and records what was written.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: &CallId,
        from: Side,
        origin: &Place,
        toward: &Place,
        endpoints: &[MediaEndpoint],
    ) -> Result<Vec<PlannedEndpoint>, IntentError> {
        let Some(call) = self.calls.get_mut(id) else {
            return Err(IntentError::UnknownCall);
        };
        let kind = if call.planned {
            IntentKind::Modify
        } else {
            IntentKind::Offer
        };
        let intent = |kind| MediaIntent {
            kind,
            from,
            origin: origin.origin(),
            toward: toward.origin(),
            endpoints,
        };
        let r = match ctx.plan(now, &call.key, &intent(kind)) {
            // The engine forgot the call (its media expired): start again.
            Err(IntentError::UnknownCall) => {
                call.written.clear();
                ctx.plan(now, &call.key, &intent(IntentKind::Offer))
            }
            r => r,
        };
        match r {
            Ok(plan) => {
                call.planned = true;
                for p in &plan.endpoints {
                    if p.addr.port() != 0 {
                        call.written.insert(p.addr, (from, p.index));
                    }
                }
                if let Some(party) = call.party_mut(from) {
                    for e in endpoints {
                        party.endpoints.retain(|s| s.index != e.index);
                        party.endpoints.push(*e);
                    }
                }
                Ok(plan.endpoints)
            }
            Err(e) => {
                self.stats.plan_errors += 1;
                tracing::warn!(error = %e, "MGCP: media plan refused");
                Err(e)
            }
        }
    }

    /// A gateway's response to a call agent's command.
    fn down_response(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        m: &Message<'_>,
        patch: &mut Patch,
    ) {
        let Some(r) = m.response() else {
            return;
        };
        let key = (Dir::Down, n.to_owned(), r.transaction_id);
        let Some(t) = self.txns.get_mut(&key) else {
            return;
        };
        t.last = now;
        if !r.is_final() || !matches!(t.kind, Kind::Crcx | Kind::Mdcx) {
            return;
        }
        let (Some(cid), kind, side) = (t.call.clone(), t.kind, t.side) else {
            return;
        };
        let id = (t.ca.ip(), cid);
        let conn = match t.kind {
            Kind::Crcx => m.connection_id().map(str::to_owned),
            _ => t.conn.clone(),
        };
        let specific = m.value("Z").map(str::to_ascii_lowercase);
        let place = Place::Network(n.to_owned());
        let endpoint = t.endpoint.clone();
        let success = r.is_success();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.last = now;
        let side = side
            .or_else(|| call.side_of(&place, &endpoint, conn.as_deref()))
            .or_else(|| call.free_side());
        let Some(side) = side else {
            return;
        };
        if call.party(side).is_none() {
            *call.slot_mut(side) = Some(Party::new(place.clone(), &endpoint));
        }
        if let Some(p) = call.party_mut(side) {
            if kind == Kind::Crcx {
                p.pending = p.pending.saturating_sub(1);
            }
            if success {
                if let Some(c) = &conn
                    && !p.conns.contains(c)
                {
                    p.conns.push(c.clone());
                }
                if let Some(z) = specific {
                    p.endpoint = z;
                }
            }
        }
        if !success {
            if kind == Kind::Crcx {
                self.forget_party_if_gone(now, ctx, &id, side);
            }
            return;
        }
        let Ok(Some(sdp)) = m.sdp() else {
            if m.has_sdp() {
                self.stats.sdp_errors += 1;
            }
            return;
        };
        let Ok(endpoints) = sdp.endpoints(rx.remote.ip()) else {
            self.stats.sdp_errors += 1;
            return;
        };
        let toward = call
            .party(side.peer())
            .map_or(Place::Public, |p| p.place.clone());
        // A response cannot be refused: on a plan error it passes as it is
        // and the call has no media through us.
        let Ok(plan) = self.plan(now, ctx, &id, side, &place, &toward, &endpoints) else {
            return;
        };
        if m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), patch)
            .is_err()
        {
            self.stats.sdp_errors += 1;
            return;
        }
        self.stats.sdp_rewritten += 1;
    }

    /// A gateway's own command, toward the call agent `ca`.
    fn up_command(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        n: &str,
        ca: SocketAddr,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), (u16, &'static str)> {
        let txid = m.transaction_id();
        let key = (Dir::Up, n.to_owned(), txid);
        self.room_for(&key)?;
        // Every network's commands reach the call agent from our one
        // socket, and two gateways may use one id at once: each command
        // gets an id of ours (its K: list follows), and the answer gets the
        // gateway's id back.
        let wire = self.up_id(ca.ip());
        if let Some(c) = m.command() {
            patch.replace_int(c.transaction_span.clone(), u64::from(wire));
        }
        self.renumber_acks(n, m, patch);
        let endpoint = m
            .endpoint()
            .map(|e| e.text.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = Kind::of(m);
        let call = m.call_id().map(str::to_owned);
        let conn = m.connection_id().map(str::to_owned);
        if kind == Kind::Dlcx {
            self.dlcx(
                now,
                ctx,
                ca.ip(),
                n,
                call.as_deref(),
                &endpoint,
                conn.as_deref(),
            );
        }
        self.txns.insert(
            key,
            Txn {
                network: n.to_owned(),
                ca,
                kind,
                call,
                endpoint,
                conn,
                side: None,
                out: None,
                response: None,
                last: now,
                wire,
            },
        );
        self.by_ca
            .insert((Dir::Up, ca.ip(), wire), (n.to_owned(), txid));
        self.arm_sweep(now);
        Ok(())
    }

    /// A free id of ours toward the call agent at `ca_ip`.
    fn up_id(&mut self, ca_ip: IpAddr) -> u32 {
        // The table is bounded, so a free id is at most its size away.
        loop {
            let id = self.next_up;
            self.next_up = if id >= MAX_TRANSACTION_ID { 1 } else { id + 1 };
            if !self.by_ca.contains_key(&(Dir::Up, ca_ip, id)) {
                return id;
            }
        }
    }

    /// A gateway's `K:` names its own ids of answers it got: the call agent
    /// knows them by ours. Ids we no longer track are left out; a list
    /// left empty loses its line.
    fn renumber_acks(&self, n: &str, m: &Message<'_>, patch: &mut Patch) {
        let Some(k) = m.param("K") else { return };
        let Ok(acks) = ResponseAck::parse(k.value) else {
            return;
        };
        let wire = |g: u32| self.txns.get(&(Dir::Up, n.to_owned(), g)).map(|t| t.wire);
        let mut ours: Vec<u32> = if acks.count() <= 256 {
            acks.ranges()
                .iter()
                .flat_map(|r| r.clone())
                .filter_map(wire)
                .collect()
        } else {
            self.txns
                .iter()
                .filter(|((d, net, g), _)| *d == Dir::Up && net == n && acks.contains(*g))
                .map(|(_, t)| t.wire)
                .collect()
        };
        ours.sort_unstable();
        ours.dedup();
        if ours.is_empty() {
            let buf = m.buf();
            let start = k.name_span.start;
            let end = buf
                .get(k.value_span.end..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map_or(k.value_span.end, |i| k.value_span.end + i + 1);
            patch.delete(start..end);
            return;
        }
        let list: Vec<String> = ours.iter().map(u32::to_string).collect();
        patch.replace(k.value_span.clone(), list.join(", ").as_bytes());
    }

    /// DLCX: the connections it names are gone; a call with no gateway
    /// connection left loses its media.
    #[allow(clippy::too_many_arguments)]
    fn dlcx(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        ca_ip: IpAddr,
        n: &str,
        call: Option<&str>,
        endpoint: &str,
        conn: Option<&str>,
    ) {
        let ids: Vec<CallId> = match call {
            Some(c) => {
                let base = (ca_ip, c.to_owned());
                match self.records.get(&base) {
                    Some(list) => list.iter().map(|r| (ca_ip, r.clone())).collect(),
                    None => vec![base],
                }
            }
            None => self
                .calls
                .keys()
                .filter(|(ip, _)| *ip == ca_ip)
                .cloned()
                .collect(),
        };
        let place = Place::Network(n.to_owned());
        let (local, domain) = endpoint.split_once('@').unwrap_or((endpoint, ""));
        let all = local.split('/').any(|t| t == "*");
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            c.last = now;
            let mut matched = Vec::new();
            for side in [Side::A, Side::B] {
                let Some(p) = c.party_mut(side) else {
                    continue;
                };
                if p.place != place {
                    continue;
                }
                // RFC 3435 §2.3.9: a connection, else every connection of
                // the call (or of any call) on the endpoint; `*` names all.
                let same = p.endpoint == endpoint
                    || (all
                        && p.endpoint
                            .rsplit_once('@')
                            .is_some_and(|(_, d)| d == domain));
                let hit = match conn {
                    Some(x) => {
                        let had = p.conns.iter().any(|c| c == x);
                        p.conns.retain(|c| c != x);
                        had
                    }
                    None if same => {
                        p.conns.clear();
                        p.pending = 0;
                        true
                    }
                    None => false,
                };
                if hit {
                    matched.push(side);
                }
            }
            for side in matched {
                self.forget_party_if_gone(now, ctx, &id, side);
            }
        }
    }

    /// Drops a party with no connection left, and the call's media when no
    /// gateway connection is left at all.
    fn forget_party_if_gone(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: &CallId,
        side: Side,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.party(side).is_some_and(|p| !p.live()) {
            *c.slot_mut(side) = None;
        }
        if !c.live() {
            self.end_call(now, ctx, id);
        }
    }

    fn end_call(&mut self, now: Instant, ctx: &mut dyn MprContext, id: &CallId) {
        let Some(c) = self.calls.remove(id) else {
            return;
        };
        let base = base_call(id);
        if let Some(list) = self.records.get_mut(&base) {
            list.retain(|r| *r != id.1);
            if list.is_empty() {
                self.records.remove(&base);
            }
        }
        if c.planned {
            let intent = MediaIntent {
                kind: IntentKind::Teardown,
                from: Side::A,
                origin: Origin::Public,
                toward: Origin::Public,
                endpoints: &[],
            };
            let _ = ctx.plan(now, &c.key, &intent);
            self.stats.teardowns += 1;
        }
    }

    fn arm_sweep(&mut self, now: Instant) {
        let at = now + Duration::from_secs(1);
        self.out.arm_sweep(at);
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        let life = self.cfg.transaction_timeout;
        let gone: Vec<(Dir, String, u32)> = self
            .txns
            .iter()
            .filter(|(_, t)| now >= t.last + life)
            .map(|(k, _)| k.clone())
            .collect();
        let mut unanswered = Vec::new();
        for k in gone {
            if let Some(t) = self.txns.remove(&k) {
                let bk = (k.0, t.ca.ip(), t.wire);
                if self
                    .by_ca
                    .get(&bk)
                    .is_some_and(|(n, g)| *n == k.1 && *g == k.2)
                {
                    self.by_ca.remove(&bk);
                }
                if let (Kind::Crcx, None, Some(cid), Some(side)) =
                    (t.kind, &t.response, t.call, t.side)
                {
                    unanswered.push(((t.ca.ip(), cid), side));
                }
            }
        }
        // A CRCX never answered created nothing at the gateway.
        for (id, side) in unanswered {
            let Some(p) = self.calls.get_mut(&id).and_then(|c| c.party_mut(side)) else {
                continue;
            };
            p.pending = p.pending.saturating_sub(1);
            if self.calls.get(&id).is_some_and(|c| !c.live()) {
                self.stats.expired += 1;
            }
            self.forget_party_if_gone(now, ctx, &id, side);
        }
        let (setup, idle) = (self.cfg.setup_timeout, self.cfg.call_idle);
        let stale: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                now >= c.last + idle || (!c.live() && now >= c.created.max(c.last) + setup)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for id in stale {
            self.stats.expired += 1;
            self.end_call(now, ctx, &id);
        }
        self.out.set_sweep(
            (!self.txns.is_empty() || !self.calls.is_empty()).then(|| now + Duration::from_secs(1)),
        );
    }
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::Mgcp
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let msgs = match parse_datagram(rx.bytes) {
            Ok(m) if !m.is_empty() => m,
            Ok(_) => {
                self.stats.malformed += 1;
                return;
            }
            Err(e) => {
                self.stats.malformed += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "MGCP: unparsable datagram dropped");
                return;
            }
        };
        if msgs.len() > 1 {
            self.stats.piggybacked += 1;
        }
        let net = mpr.network_for_pinhole(Protocol::Mgcp, rx.remote);
        let Some(first) = msgs.first() else {
            return;
        };
        if self.retransmission(mpr, &rx, net.as_deref(), first) {
            return;
        }
        match net {
            Some(n) => self.network_datagram(now, mpr, &rx, &n, &msgs),
            None => self.public_datagram(now, mpr, &rx, &msgs),
        }
    }

    fn sweep(&mut self, now: Instant, mpr: &mut dyn MprContext) {
        self.expire(now, mpr);
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
