//! The MPR's H.323 ALG (Figs. 15 and 16, the MPR's column): a
//! gatekeeper-routed proxy of H.225.0 call signaling and H.245 between
//! two legs of each call, and the media of every logical channel planned
//! with the engine and written as relay addresses.
//!
//! - A Setup is routed by its destination aliases (`url-ID`, `email-ID`,
//!   `h323-ID` with a domain; `dialedDigits` or the Q.931 Called party
//!   number by [`MprConfig::numbers`]) into a registered network, down the
//!   connection the network opened (Fig. 4), or to a public
//!   `destCallSignalAddress`. The MPR answers it with its own CALL
//!   PROCEEDING (Fig. 15 step 1412, Fig. 16 step 1508).
//! - Each leg has its own call reference; messages are forwarded with the
//!   reference rewritten in place and every transport address patched:
//!   media addresses to relay addresses, `h245Address` to an MPR H.245
//!   listener, every other one (call-signal addresses) to the MPR's own.
//! - H.245 connections are only ever opened toward the MPR: the address a
//!   side is given is one of [`MprConfig::h245_pool`], leased to that side
//!   and accepted only from its IP; a side that offered its own
//!   `h245Address` gets a FACILITY `startH245` naming its lease (the
//!   H.460.18 way). Tunneled H.245 and fastStart are rewritten in place.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::call::{MediaCall, Place};
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox};
use pinhole_core::framing::ProtocolFramer;
use pinhole_core::intent::{IntentKind, PlannedEndpoint};
use pinhole_core::rng::Rng;
use pinhole_core::types::{CallKey, Flow, Receive, Side, Transport};
use pinhole_core::wire::Protocol;

use super::link::{ConnKey, Hop, Leases, Refused, conn_key};
use super::media::{self, Channels, Ends, Written};
use super::{Unreadable, idx};
use crate::build::{self, CallRef, ReleaseReason};
use crate::per::Address;
use crate::q931::{self, MessageType};
use crate::signal::Signal;

/// The MPR ALG's configuration.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's H.225.0 call-signaling address (TCP, 1720): written for
    /// the call-signal addresses of messages, and the source of
    /// connections the MPR opens to public endpoints.
    pub signaling: SocketAddr,
    /// The MPR's H.245 listeners: each call side that needs to connect is
    /// leased one until it does.
    pub h245_pool: Vec<SocketAddr>,
    /// Number prefixes and the network each routes to (longest wins).
    pub numbers: Vec<(String, String)>,
    /// Public peers whose calls are trusted (a gatekeeper, a gateway):
    /// their calls are not held to the stranger limits.
    pub trusted: Vec<IpAddr>,
    /// What becomes of a message that does not walk.
    pub unreadable: Unreadable,
    /// A call not connected within this is released on both legs.
    pub setup_timeout: Duration,
    /// A call with no message for this long is forgotten.
    pub idle_timeout: Duration,
    /// An H.245 lease not connected within this returns to the pool.
    pub lease_timeout: Duration,
    /// Most calls at once.
    pub max_calls: usize,
    /// Most H.245 frames held for a side that has not connected yet.
    pub max_held: usize,
    /// Seeds the call references the MPR chooses.
    pub seed: [u8; 32],
}

impl MprConfig {
    /// A configuration with the usual timers and limits.
    pub fn new(signaling: SocketAddr, h245_pool: Vec<SocketAddr>, seed: [u8; 32]) -> Self {
        Self {
            signaling,
            h245_pool,
            numbers: Vec::new(),
            trusted: Vec::new(),
            unreadable: Unreadable::Drop,
            setup_timeout: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(4 * 3600),
            lease_timeout: Duration::from_secs(30),
            max_calls: 10_000,
            max_held: 64,
            seed,
        }
    }
}

/// The MPR ALG's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the ALG (call signaling and H.245).
    pub received: u64,
    /// Frames sent on to the other leg.
    pub forwarded: u64,
    /// Messages the MPR built (CALL PROCEEDING, FACILITY, RELEASE COMPLETE).
    pub built: u64,
    /// Calls set up through the MPR.
    pub calls: u64,
    /// Setups refused: no route, no network, too many calls.
    pub refused: u64,
    /// Messages that did not walk (dropped, or passed as configured).
    pub unreadable: u64,
    /// Messages for calls the MPR does not know.
    pub unknown_call: u64,
    /// Media descriptions planned and written.
    pub media_rewritten: u64,
    /// Media plans the engine refused (the call is released).
    pub plan_errors: u64,
    /// Logical-channel addresses of no known RTP session.
    pub no_session: u64,
    /// H.245 connections accepted on a lease.
    pub h245_connected: u64,
    /// H.245 frames on a connection nobody leased, or from another IP.
    pub h245_refused: u64,
    /// H.245 frames dropped because the other side never connected.
    pub h245_dropped: u64,
    /// RTP sessions whose channels all closed while the call went on:
    /// their relay legs given back.
    pub sessions_closed: u64,
    /// Calls ended (RELEASE COMPLETE, timeouts).
    pub released: u64,
    /// RAS datagrams (not routed by this ALG).
    pub ras: u64,
}

/// A call's H.245 on one side.
#[derive(Debug, Default)]
struct H245 {
    /// The pool address leased to the side, until it connects.
    lease: Option<SocketAddr>,
    /// The side's H.245 connection, once it connected.
    conn: Option<Hop>,
    /// Frames for the side, held until it connects.
    held: Vec<Vec<u8>>,
    /// The side was sent FACILITY startH245 (it offered an h245Address).
    started: bool,
}

#[derive(Debug)]
struct Call {
    /// Each leg's call-signaling hop and call reference.
    legs: [Hop; 2],
    crv: [u16; 2],
    places: [Place; 2],
    media: MediaCall,
    ends: [Ends; 2],
    plans: [Vec<PlannedEndpoint>; 2],
    first: Option<Side>,
    answered: bool,
    channels: Channels,
    written: Written,
    h245: [H245; 2],
    guid: [u8; 16],
    connected: bool,
    created: Instant,
    last: Instant,
}

/// (remote, call reference, sent by the called side).
type LegKey = (SocketAddr, u16, bool);

/// The MPR's H.323 ALG.
#[derive(Debug)]
pub struct Mpr {
    cfg: MprConfig,
    calls: HashMap<u64, Call>,
    by_leg: HashMap<LegKey, (u64, Side)>,
    by_guid: HashMap<[u8; 16], u64>,
    /// H.245 connections: (remote, connection) → call and side.
    by_h245: HashMap<ConnKey, (u64, Side)>,
    /// The H.245 listeners and who may connect to each.
    leases: Leases,
    next_id: u64,
    /// Sides to send FACILITY startH245 once the message in hand is sent.
    starts: Vec<(u64, Side)>,
    rng: Rng,
    out: Outbox,
    stats: Stats,
}

impl Mpr {
    /// An ALG with no calls.
    pub fn new(cfg: MprConfig) -> Self {
        let rng = Rng::from_seed(cfg.seed);
        Self {
            leases: Leases::new(cfg.h245_pool.clone()),
            cfg,
            calls: HashMap::new(),
            by_leg: HashMap::new(),
            by_guid: HashMap::new(),
            by_h245: HashMap::new(),
            next_id: 1,
            starts: Vec::new(),
            rng,
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Calls tracked now.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// H.245 pool addresses leased now.
    pub fn leases(&self) -> usize {
        self.leases.len()
    }

    fn place_of(&self, ctx: &dyn MprContext, remote: SocketAddr) -> Place {
        ctx.network_for_pinhole(Protocol::H323, remote)
            .map_or(Place::Public, Place::Network)
    }

    fn frame(&mut self, now: Instant, ctx: &mut dyn MprContext, rx: &Receive<'_>) {
        self.stats.received += 1;
        // A whole TPKT frame: call signaling or H.245 (a simulated network
        // carries stream frames as datagrams). Else, by UDP, RAS.
        let Ok(payload) = q931::tpkt_payload(rx.bytes) else {
            if rx.flow.transport == Transport::Udp {
                // The walker reads RAS (`pinhole inspect`), but this ALG
                // routes no gatekeeper traffic.
                self.stats.ras += 1;
                tracing::debug!(remote = %rx.remote, "H.323: RAS datagram not routed");
            } else {
                self.stats.unreadable += 1;
                tracing::warn!(remote = %rx.remote, "H.323: not a whole TPKT frame");
            }
            return;
        };
        if let Some(&(id, side)) = self.by_h245.get(&conn_key(rx)) {
            self.h245_frame(now, ctx, id, side, rx.bytes);
            return;
        }
        if self.leases.is_listener(rx.local) {
            self.h245_accept(now, ctx, rx);
            return;
        }
        self.call_signaling(now, ctx, rx, payload);
    }

    fn call_signaling(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        payload: &[u8],
    ) {
        let q = match q931::Message::parse(payload) {
            Ok(q) => q,
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "H.323: Q.931 unreadable, dropped");
                return;
            }
        };
        // H.225.0 §7.2.2.1: a two-octet call reference.
        let (true, Ok(crv)) = (
            q.call_reference.len() == 2,
            u16::try_from(q.call_reference_value()),
        ) else {
            self.stats.unreadable += 1;
            tracing::warn!(remote = %rx.remote, "H.323: call reference not two octets, dropped");
            return;
        };
        let key = (rx.remote, crv, q.from_destination);
        let known = self.by_leg.get(&key).copied();
        let sig = match Signal::call_signaling(payload) {
            Ok(s) => Some(s),
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(remote = %rx.remote, kind = q.kind.name(), error = %e, "H.323: message does not walk");
                if self.cfg.unreadable == Unreadable::Drop || known.is_none() {
                    return;
                }
                None
            }
        };
        match (known, q.kind) {
            (None, MessageType::Setup) if !q.from_destination => {
                if let Some(sig) = sig {
                    self.setup(now, ctx, rx, &q, &sig);
                }
            }
            (None, MessageType::ReleaseComplete) => {}
            (None, _) => {
                self.stats.unknown_call += 1;
                tracing::debug!(remote = %rx.remote, crv, kind = q.kind.name(), "H.323: message for no known call");
                // Q.931 §5.8.3.2: a message for no call gets RELEASE COMPLETE.
                let reply = CallRef {
                    value: crv,
                    from_destination: !q.from_destination,
                };
                let guid = sig
                    .as_ref()
                    .and_then(|s| s.walk.call_id_at.map(|at| s.per_at + at))
                    .and_then(|at| payload.get(at..at + 16))
                    .and_then(|g| <[u8; 16]>::try_from(g).ok())
                    .unwrap_or_default();
                let rc = build::release_complete(reply, guid, ReleaseReason::UndefinedReason);
                self.send_built(&Hop::of(rx), rc);
            }
            (Some((id, side)), kind) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.last = now;
                }
                if kind == MessageType::CallProceeding && side == Side::B {
                    // The MPR answered the Setup with its own; pass B's
                    // only for what it carries.
                    let carries = sig.as_ref().is_some_and(|s| {
                        !s.walk.nested.is_empty() || s.addresses().any(|a| a.field == "h245Address")
                    });
                    if !carries {
                        return;
                    }
                }
                if kind == MessageType::Connect
                    && let Some(c) = self.calls.get_mut(&id)
                {
                    c.connected = true;
                }
                self.forward(now, ctx, id, side, rx.bytes, sig.as_ref());
                self.flush_starts(now);
                if kind == MessageType::ReleaseComplete {
                    self.end(now, ctx, id, None);
                }
            }
        }
    }

    /// Where a Setup goes: a network's connection, or a public address.
    fn route(
        &self,
        ctx: &dyn MprContext,
        q: &q931::Message<'_>,
        sig: &Signal,
    ) -> Option<(Place, Hop)> {
        let payload = q.buf();
        let per = &payload[sig.per_at..];
        let mut network = None;
        for t in sig
            .walk
            .texts
            .iter()
            .filter(|t| t.field == "destinationAddress")
        {
            let s = t.decode(per);
            network = match t.alternative {
                "dialedDigits" => self.by_number(&s),
                _ => s
                    .rsplit_once('@')
                    .and_then(|(_, d)| ctx.network_for_domain(d)),
            };
            if network.is_some() {
                break;
            }
        }
        if network.is_none() {
            network = called_number(q).and_then(|n| self.by_number(&n));
        }
        if let Some(n) = network {
            let r = ctx.route(&n, Protocol::H323)?;
            let hop = Hop {
                local: r.local,
                remote: r.pinhole,
                flow: r.flow,
            };
            return Some((Place::Network(n), hop));
        }
        let dest = sig
            .addresses()
            .find(|a| a.field == "destCallSignalAddress")
            .map(|a| a.get(payload))?;
        if dest.ip() == self.cfg.signaling.ip() || dest.ip().is_unspecified() {
            return None;
        }
        Some((
            Place::Public,
            Hop {
                local: self.cfg.signaling,
                remote: dest,
                flow: Flow::over(Transport::Tcp),
            },
        ))
    }

    fn by_number(&self, digits: &str) -> Option<String> {
        self.cfg
            .numbers
            .iter()
            .filter(|(p, _)| digits.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, n)| n.clone())
    }

    fn setup(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        q: &q931::Message<'_>,
        sig: &Signal,
    ) {
        let payload = q.buf();
        let crv = q.call_reference_value() as u16;
        let guid: [u8; 16] = sig
            .walk
            .call_id_at
            .and_then(|at| payload.get(sig.per_at + at..sig.per_at + at + 16))
            .and_then(|g| g.try_into().ok())
            .unwrap_or_else(|| {
                // H.225.0 v1 has no callIdentifier: the leg names the call.
                let mut g = [0u8; 16];
                g[..2].copy_from_slice(&crv.to_be_bytes());
                g[2..4].copy_from_slice(&rx.remote.port().to_be_bytes());
                g
            });
        let back = Hop::of(rx);
        let reply = CallRef {
            value: crv,
            from_destination: true,
        };
        if self.by_guid.contains_key(&guid) {
            // The same call twice (a loop through the MPR, or a replay).
            self.stats.refused += 1;
            let rc = build::release_complete(reply, guid, ReleaseReason::DestinationRejection);
            self.send_built(&back, rc);
            return;
        }
        let refuse = |me: &mut Self, why: ReleaseReason| {
            me.stats.refused += 1;
            tracing::info!(remote = %rx.remote, reason = ?why, "H.323: Setup refused");
            let rc = build::release_complete(reply, guid, why);
            me.send_built(&back, rc);
        };
        if self.calls.len() >= self.cfg.max_calls {
            return refuse(self, ReleaseReason::GatekeeperResources);
        }
        let Some((toward, hop)) = self.route(ctx, q, sig) else {
            return refuse(self, ReleaseReason::UnreachableDestination);
        };
        let origin = self.place_of(ctx, rx.remote);
        if origin == toward && origin != Place::Public {
            // A call within one network needs no MPR; refuse the hairpin.
            return refuse(self, ReleaseReason::DestinationRejection);
        }
        let crv_b = self.free_crv(hop.remote);
        let mut media = MediaCall::new(CallKey::new(guid));
        if origin == Place::Public && !self.cfg.trusted.contains(&rx.remote.ip()) {
            media = media.from_stranger(rx.remote.ip());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.calls.insert(
            id,
            Call {
                legs: [back, hop],
                crv: [crv, crv_b],
                places: [origin, toward],
                media,
                ends: Default::default(),
                plans: Default::default(),
                first: None,
                answered: false,
                channels: Channels::default(),
                written: Written::default(),
                h245: Default::default(),
                guid,
                connected: false,
                created: now,
                last: now,
            },
        );
        self.by_leg.insert((rx.remote, crv, false), (id, Side::A));
        self.by_leg.insert((hop.remote, crv_b, true), (id, Side::B));
        self.by_guid.insert(guid, id);
        self.stats.calls += 1;
        self.out
            .arm_sweep(now + self.cfg.setup_timeout.min(self.cfg.lease_timeout));
        // Steps 1406–1408 (1504–1506), then 1412 (1508).
        self.forward(now, ctx, id, Side::A, rx.bytes, Some(sig));
        if self.calls.contains_key(&id) {
            let cp = build::call_proceeding(reply, guid);
            self.send_built(&back, cp);
        }
        self.flush_starts(now);
    }

    /// A call reference for a leg toward `remote` that no leg uses.
    fn free_crv(&mut self, remote: SocketAddr) -> u16 {
        loop {
            let v = (self.rng.next_u64() & 0x7fff) as u16;
            if v != 0 && !self.by_leg.contains_key(&(remote, v, true)) {
                return v;
            }
        }
    }

    fn send_built(&mut self, hop: &Hop, q931: Vec<u8>) {
        if let Ok(frame) = q931::tpkt_frame(&q931) {
            self.stats.built += 1;
            hop.send(&mut self.out, frame);
        }
    }

    /// Forwards a call-signaling frame from `from` to the other leg, its
    /// call reference and addresses rewritten.
    fn forward(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        from: Side,
        frame: &[u8],
        sig: Option<&Signal>,
    ) {
        let to = from.peer();
        let mut out = frame.to_vec();
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        // The reference octets follow the discriminator and length octet.
        let crv = call.crv[idx(to)];
        // Two octets (checked on receipt); the flag bit stays.
        if out.len() > 7 {
            out[6] = (out[6] & 0x80) | ((crv >> 8) as u8 & 0x7f);
            out[7] = crv as u8;
        }
        let hop = call.legs[idx(to)];
        if let Some(sig) = sig {
            if self
                .rewrite(now, ctx, id, from, sig, &frame[4..], &mut out[4..])
                .is_err()
            {
                return self.fail(now, ctx, id);
            }
            // Tunneled H.245 closes channels and ends sessions too.
            self.closes(now, ctx, id, from, sig);
            if sig
                .walk
                .nested
                .iter()
                .any(|n| n.message == "endSessionCommand")
            {
                self.teardown(now, ctx, id);
            }
        }
        self.stats.forwarded += 1;
        hop.send(&mut self.out, out);
    }

    /// Sends the FACILITY startH245 the message just forwarded called for.
    fn flush_starts(&mut self, now: Instant) {
        for (id, side) in std::mem::take(&mut self.starts) {
            self.start_h245(now, id, side);
        }
    }

    /// Patches every address of `sig` (located in `payload`) into `out`
    /// for a message from `from`: media to relay addresses, h245Address to
    /// a lease, the rest to the MPR's own address toward the other side.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        from: Side,
        sig: &Signal,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(), ()> {
        let to = from.peer();
        self.media(now, ctx, id, from, sig, payload, out)?;
        let addresses: Vec<Address> = sig.addresses().collect();
        for a in &addresses {
            match a.field {
                "mediaChannel" | "mediaControlChannel" => {}
                "h245Address" => {
                    let lease = self.lease(now, id, to);
                    if let Some(l) = lease {
                        let _ = a.set(out, l);
                    }
                    // After the message itself has gone.
                    self.starts.push((id, from));
                }
                _ => {
                    let Some(call) = self.calls.get(&id) else {
                        return Err(());
                    };
                    let own = call.legs[idx(to)].local;
                    // A family change cannot be patched; the address then
                    // stays (counted as unreadable would hide it).
                    if a.set(out, own).is_err() {
                        tracing::debug!(
                            field = a.field,
                            "H.323: call-signal address of another family kept"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The media of a message: plan the sender's own addresses, restore
    /// its echoes of ours.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        from: Side,
        sig: &Signal,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(), ()> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(());
        };
        let found = match media::media_of(sig, payload, from, &mut call.channels) {
            Ok(m) => m,
            Err(e) => {
                self.stats.no_session += 1;
                tracing::warn!(error = %e, "H.323: media address of no known session");
                return Err(());
            }
        };
        if found.is_empty() {
            return Ok(());
        }
        let addresses: Vec<Address> = sig.addresses().collect();
        let (own, echoes) = media::split_echoes(found, from, &call.written);
        for (m, orig) in echoes {
            let _ = addresses[m.index].set(out, orig);
        }
        if own.is_empty() {
            return Ok(());
        }
        let changed = call.ends[idx(from)].update(&own);
        if changed || call.plans[idx(from)].is_empty() {
            let kind = if !call.media.planned() {
                call.first = Some(from);
                IntentKind::Offer
            } else if call.first != Some(from) && !call.answered {
                call.answered = true;
                IntentKind::Answer
            } else {
                IntentKind::Modify
            };
            let endpoints = call.ends[idx(from)].endpoints();
            let (origin, toward) = (
                call.places[idx(from)].clone(),
                call.places[idx(from.peer())].clone(),
            );
            match call.media.plan(
                now,
                ctx,
                &mut self.out,
                kind,
                from,
                &origin,
                &toward,
                &endpoints,
            ) {
                Ok(p) => {
                    call.plans[idx(from)] = p.plan.endpoints;
                    self.stats.media_rewritten += 1;
                }
                Err(e) => {
                    self.stats.plan_errors += 1;
                    tracing::warn!(error = %e, "H.323: media plan refused; the call is released");
                    return Err(());
                }
            }
        }
        for m in &own {
            let Some(to) = media::planned_for(m, &call.plans[idx(from)]) else {
                return Err(());
            };
            if addresses[m.index].set(out, to).is_err() {
                return Err(());
            }
            call.written.record(from.peer(), to, m.at);
        }
        Ok(())
    }

    /// The pool address `side` of call `id` connects its H.245 to.
    fn lease(&mut self, now: Instant, id: u64, side: Side) -> Option<SocketAddr> {
        let call = self.calls.get_mut(&id)?;
        let h = &mut call.h245[idx(side)];
        if let Some(l) = h.lease {
            return Some(l);
        }
        if h.conn.is_some() {
            // Connected already: it will not connect again.
            return self.leases.any();
        }
        let ip = call.legs[idx(side)].remote.ip();
        let l = self
            .leases
            .lease((id, side), Some(ip), now + self.cfg.lease_timeout)?;
        call.h245[idx(side)].lease = Some(l);
        Some(l)
    }

    /// `side` offered its own H.245 address: it listens, and the MPR never
    /// connects into a network, so it is asked to connect (H.225.0
    /// FACILITY with reason startH245, as H.460.18 does).
    fn start_h245(&mut self, now: Instant, id: u64, side: Side) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let h = &call.h245[idx(side)];
        if h.started || h.conn.is_some() {
            return;
        }
        let Some(lease) = self.lease(now, id, side) else {
            tracing::warn!("H.323: H.245 pool exhausted");
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.h245[idx(side)].started = true;
        let cr = CallRef {
            value: call.crv[idx(side)],
            from_destination: side == Side::A,
        };
        let hop = call.legs[idx(side)];
        let facility = build::facility_start_h245(cr, call.guid, lease);
        self.send_built(&hop, facility);
    }

    /// A first frame on an H.245 listener: the connection of the side the
    /// address was leased to, from that side's IP only.
    fn h245_accept(&mut self, now: Instant, ctx: &mut dyn MprContext, rx: &Receive<'_>) {
        let (id, side) = match self.leases.accept(rx.local, rx.remote) {
            Ok(owner) => owner,
            Err(why) => {
                self.stats.h245_refused += 1;
                match why {
                    Refused::NotLeased => {
                        tracing::info!(remote = %rx.remote, local = %rx.local, "H.323: H.245 on a listener nobody leased")
                    }
                    Refused::WrongIp(ip) => {
                        tracing::warn!(remote = %rx.remote, expected = %ip, "H.323: H.245 connection from the wrong address")
                    }
                }
                return;
            }
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let hop = Hop::of(rx);
        let h = &mut call.h245[idx(side)];
        h.lease = None;
        h.conn = Some(hop);
        let held = std::mem::take(&mut h.held);
        self.by_h245.insert(conn_key(rx), (id, side));
        self.stats.h245_connected += 1;
        for f in held {
            self.stats.forwarded += 1;
            hop.send(&mut self.out, f);
        }
        self.h245_frame(now, ctx, id, side, rx.bytes);
    }

    /// An H.245 frame from `from`'s connection: media rewritten, then on
    /// to the other side's connection (held until it connects).
    fn h245_frame(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        from: Side,
        frame: &[u8],
    ) {
        let payload = &frame[4..];
        let mut out = frame.to_vec();
        match Signal::h245(payload) {
            Ok(sig) => {
                if self
                    .media(now, ctx, id, from, &sig, payload, &mut out[4..])
                    .is_err()
                {
                    return self.fail(now, ctx, id);
                }
                let ends = sig.walk.message == "endSessionCommand";
                self.closes(now, ctx, id, from, &sig);
                if ends {
                    self.teardown(now, ctx, id);
                }
            }
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(error = %e, "H.323: H.245 message does not walk");
                if self.cfg.unreadable == Unreadable::Drop {
                    return;
                }
            }
        }
        let max_held = self.cfg.max_held;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.last = now;
        let to = &mut call.h245[idx(from.peer())];
        match to.conn {
            Some(hop) => {
                self.stats.forwarded += 1;
                hop.send(&mut self.out, out);
            }
            None if to.held.len() < max_held => to.held.push(out),
            None => {
                self.stats.h245_dropped += 1;
                tracing::warn!("H.323: H.245 frame dropped: the other side never connected");
            }
        }
    }

    /// Channels closed by a message from `from`: a session none of whose
    /// channels is left open gives its relay legs back (a modification
    /// naming it with port 0, as RFC 3264 §8.2 removes a stream); when no
    /// channel is left at all, the call's media goes.
    fn closes(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        from: Side,
        sig: &Signal,
    ) {
        let closed = media::closed_channels(sig);
        if closed.is_empty() {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut sessions = Vec::new();
        for (_, message, channel) in closed {
            // A CLC closes the sender's own channel; a request to close
            // or a reject names the other side's.
            let opener = if message == "closeLogicalChannel" {
                from
            } else {
                from.peer()
            };
            sessions.extend(call.channels.close(opener, channel));
        }
        let open: Vec<u8> = call
            .channels
            .opened_by(Side::A)
            .chain(call.channels.opened_by(Side::B))
            .map(|(_, s)| s)
            .collect();
        if open.is_empty() {
            if call.media.planned() {
                self.teardown(now, ctx, id);
            }
            return;
        }
        for s in sessions {
            let known = call.ends.iter().any(|e| e.0.contains_key(&s));
            if open.contains(&s) || !known || !call.media.planned() {
                continue;
            }
            let side = if call.ends[idx(from)].0.contains_key(&s) {
                from
            } else {
                from.peer()
            };
            for e in &mut call.ends {
                e.0.remove(&s);
            }
            for p in &mut call.plans {
                p.retain(|p| p.index != u16::from(s));
            }
            let mut endpoints = call.ends[idx(side)].endpoints();
            let any_ip = call.legs[idx(side)].local.ip();
            endpoints.push(pinhole_core::intent::MediaEndpoint::rtp(
                u16::from(s),
                SocketAddr::new(any_ip, 0),
            ));
            let (origin, toward) = (
                call.places[idx(side)].clone(),
                call.places[idx(side.peer())].clone(),
            );
            match call.media.plan(
                now,
                ctx,
                &mut self.out,
                IntentKind::Modify,
                side,
                &origin,
                &toward,
                &endpoints,
            ) {
                Ok(_) => self.stats.sessions_closed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, session = s, "H.323: closing a session's relay legs failed")
                }
            }
        }
    }

    fn teardown(&mut self, now: Instant, ctx: &mut dyn MprContext, id: u64) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.media.teardown(now, ctx, &mut self.out);
            call.ends = Default::default();
            call.plans = Default::default();
            call.first = None;
            call.answered = false;
        }
    }

    /// A message of the call cannot go on as it is: both legs are released.
    fn fail(&mut self, now: Instant, ctx: &mut dyn MprContext, id: u64) {
        self.end(now, ctx, id, Some(ReleaseReason::NoBandwidth));
    }

    /// Ends a call: media freed, leases returned, and, with a reason, a
    /// RELEASE COMPLETE on both legs.
    fn end(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: u64,
        release: Option<ReleaseReason>,
    ) {
        self.teardown(now, ctx, id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.stats.released += 1;
        for side in [Side::A, Side::B] {
            let i = idx(side);
            self.by_leg
                .remove(&(call.legs[i].remote, call.crv[i], side == Side::B));
            if let Some(l) = call.h245[i].lease {
                self.leases.release(l);
            }
            if let Some(h) = call.h245[i].conn {
                self.by_h245.remove(&h.conn_key());
            }
            if let Some(reason) = release {
                let cr = CallRef {
                    value: call.crv[i],
                    from_destination: side == Side::A,
                };
                let rc = build::release_complete(cr, call.guid, reason);
                self.send_built(&call.legs[i], rc);
            }
        }
        self.by_guid.remove(&call.guid);
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        self.leases.expire(now);
        for call in self.calls.values_mut() {
            for h in &mut call.h245 {
                if h.lease.is_some_and(|l| !self.leases.is_leased(l)) {
                    h.lease = None;
                }
            }
        }
        let stale: Vec<(u64, bool)> = self
            .calls
            .iter()
            .filter_map(|(&id, c)| {
                if !c.connected && now >= c.created + self.cfg.setup_timeout {
                    Some((id, true))
                } else if now >= c.last + self.cfg.idle_timeout {
                    Some((id, false))
                } else {
                    None
                }
            })
            .collect();
        for (id, release) in stale {
            tracing::info!(release, "H.323: call timed out");
            self.end(
                now,
                ctx,
                id,
                release.then_some(ReleaseReason::UndefinedReason),
            );
        }
        let next = self
            .calls
            .values()
            .map(|c| {
                if c.connected {
                    c.last + self.cfg.idle_timeout
                } else {
                    c.created + self.cfg.setup_timeout
                }
            })
            .chain(self.leases.next_expiry())
            .min();
        self.out.set_sweep(next);
    }
}

/// The digits of the Q.931 Called party number element (Q.931 §4.5.8):
/// the octet of type and plan (and, without its extension bit, one more),
/// then IA5 digits.
fn called_number(q: &q931::Message<'_>) -> Option<String> {
    let ie = q.ie(0x70)?;
    let v = q.buf().get(ie.value.clone())?;
    let first = *v.first()?;
    let skip = if first & 0x80 != 0 { 1 } else { 2 };
    let digits = v.get(skip..)?;
    digits
        .iter()
        .all(|d| d.is_ascii_digit() || matches!(d, b'*' | b'#'))
        .then(|| String::from_utf8_lossy(digits).into_owned())
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::H323
    }

    fn framer(&self) -> Option<ProtocolFramer> {
        Some(pinhole_core::framing::tpkt)
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.frame(now, mpr, &rx);
    }

    fn sweep(&mut self, now: Instant, mpr: &mut dyn MprContext) {
        self.expire(now, mpr);
    }

    fn counters(&self) -> Counters {
        let s = self.stats;
        vec![
            ("received", s.received),
            ("forwarded", s.forwarded),
            ("built", s.built),
            ("calls", s.calls),
            ("refused", s.refused),
            ("unreadable", s.unreadable),
            ("unknown_call", s.unknown_call),
            ("media_rewritten", s.media_rewritten),
            ("plan_errors", s.plan_errors),
            ("no_session", s.no_session),
            ("h245_connected", s.h245_connected),
            ("h245_refused", s.h245_refused),
            ("h245_dropped", s.h245_dropped),
            ("sessions_closed", s.sessions_closed),
            ("released", s.released),
            ("ras", s.ras),
        ]
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }
}
