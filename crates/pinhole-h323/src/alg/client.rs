//! The H.323 ALG inside a network: the APS of Fig. 15, or beside a smart
//! terminal (Fig. 16, [`Mode::Terminal`]). It proxies each call between an
//! inside terminal and the MPR, up the connection the APS keeps open to the
//! MPR ([`ClientContext::upstream`]), and opens the media pinholes.
//!
//! - A logical channel's addresses **leaving** (the terminal's OLC, OLC
//!   Ack, fastStart) are held until their pinhole is open: CMPH first
//!   (Fig. 15 steps 1444–1450 and 1456–1462), then the message goes up
//!   with the pinhole's addresses ([`ApsMedia::outward`]).
//! - Addresses **entering** (the MPR's relay addresses) become the APS's
//!   media ports B ([`ApsMedia::inward`]); a smart terminal keeps them.
//! - H.245 on its own connection: every `h245Address` from the MPR (its
//!   lease) is remembered and replaced by one of the APS's own listeners
//!   ([`ClientConfig::h245_pool`]); the terminal connects there, and the
//!   APS connects up to the MPR's lease with the first frame. Tunneled
//!   H.245 and fastStart are rewritten in place like any message.
//! - A Setup from the MPR goes to the inside terminal its destination
//!   alias names ([`ClientConfig::aliases`]), else to
//!   [`ClientConfig::inside_default`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use pinhole_core::alg::aps::Mode;
use pinhole_core::alg::aps::{ApsMedia, Outcome, Step};
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox};
use pinhole_core::client;
use pinhole_core::framing::ProtocolFramer;
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::ports::PortRange;
use pinhole_core::rng::Rng;
use pinhole_core::types::{Flow, Receive, Side, Transport};
use pinhole_core::wire::Protocol;

use super::link::{ConnKey, Hop, Leases, conn_key};
use super::media::{self, Channels, Ends, Written};
use super::{Unreadable, idx};
use crate::build::{self, CallRef, ReleaseReason};
use crate::per::Address;
use crate::q931::{self, MessageType};
use crate::signal::Signal;

/// The inside terminal's end of a call (array slot 0).
const INSIDE: Side = Side::A;
/// The MPR's end (slot 1).
const MPR: Side = Side::B;

/// The client ALG's configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// An APS (ports B) or a smart terminal's own ALG.
    pub mode: Mode,
    /// The inside call-signaling address terminals send their Setups to
    /// (TCP): written for call-signal addresses toward them.
    pub inside: SocketAddr,
    /// Inside H.245 listeners leased to terminals.
    pub h245_pool: Vec<SocketAddr>,
    /// Aliases (`h323-ID`, `url-ID`, `email-ID`, `dialedDigits`; a bare
    /// user part matches `user@…`) and the terminal each is at.
    pub aliases: Vec<(String, SocketAddr)>,
    /// The terminal a Setup with no known alias goes to.
    pub inside_default: Option<SocketAddr>,
    /// The APS's media address (ports B are on it).
    pub media_ip: IpAddr,
    /// The APS's media port pairs B.
    pub ports: PortRange,
    /// How long a freed port pair rests.
    pub quarantine: Duration,
    /// What becomes of a message that does not walk.
    pub unreadable: Unreadable,
    /// A call not connected within this is released.
    pub setup_timeout: Duration,
    /// A call with no message for this long is forgotten.
    pub idle_timeout: Duration,
    /// An inside H.245 lease not connected within this returns.
    pub lease_timeout: Duration,
    /// Most calls at once.
    pub max_calls: usize,
    /// Most frames held per call (for pinholes, or a side not connected).
    pub max_held: usize,
    /// Seeds call references and ports.
    pub seed: [u8; 32],
}

impl ClientConfig {
    /// An APS on `inside` with media ports `ports` on `media_ip`.
    pub fn aps(
        inside: SocketAddr,
        h245_pool: Vec<SocketAddr>,
        media_ip: IpAddr,
        ports: PortRange,
        seed: [u8; 32],
    ) -> Self {
        Self {
            mode: Mode::Aps,
            inside,
            h245_pool,
            aliases: Vec::new(),
            inside_default: None,
            media_ip,
            ports,
            quarantine: Duration::from_secs(2),
            unreadable: Unreadable::Drop,
            setup_timeout: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(4 * 3600),
            lease_timeout: Duration::from_secs(30),
            max_calls: 1000,
            max_held: 64,
            seed,
        }
    }

    /// A smart terminal's ALG: its media pinholes open from its own ports.
    pub fn terminal(
        inside: SocketAddr,
        h245_pool: Vec<SocketAddr>,
        media_ip: IpAddr,
        seed: [u8; 32],
    ) -> Self {
        Self {
            mode: Mode::Terminal,
            ..Self::aps(
                inside,
                h245_pool,
                media_ip,
                PortRange { first: 1, last: 1 },
                seed,
            )
        }
    }
}

/// The client ALG's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames handed to the ALG.
    pub received: u64,
    /// Frames sent on.
    pub forwarded: u64,
    /// Messages built (RELEASE COMPLETE).
    pub built: u64,
    /// Calls.
    pub calls: u64,
    /// Setups refused (no terminal, too many calls).
    pub refused: u64,
    /// Messages that did not walk.
    pub unreadable: u64,
    /// Messages for calls not known.
    pub unknown_call: u64,
    /// Frames held for a pinhole or a connection.
    pub held: u64,
    /// Frames dropped: too many held.
    pub dropped: u64,
    /// Media descriptions written (outward and inward).
    pub media_rewritten: u64,
    /// Calls released because a pinhole failed.
    pub pinhole_failures: u64,
    /// Logical-channel addresses of no known RTP session.
    pub no_session: u64,
    /// H.245 frames refused on a listener.
    pub h245_refused: u64,
    /// Calls ended.
    pub released: u64,
}

/// A frame waiting for its call's pinholes (or an H.245 connection).
#[derive(Debug)]
struct Pending {
    from: Side,
    h245: bool,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct H245 {
    /// The connection, once up.
    conn: Option<Hop>,
    /// Where to connect: the MPR's lease (MPR end only).
    target: Option<SocketAddr>,
    /// Our listener leased to the terminal (inside end only).
    lease: Option<SocketAddr>,
    /// Frames for this end, held until it is connected.
    held: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Call {
    /// Call-signaling hops: the terminal's, the MPR's.
    legs: [Hop; 2],
    crv: [u16; 2],
    /// Messages from the end in slot `i` carry the call reference flag.
    flag_from: [bool; 2],
    ends: [Ends; 2],
    channels: Channels,
    written: Written,
    h245: [H245; 2],
    guid: [u8; 16],
    /// Frames waiting in arrival order; the first waits for a pinhole.
    queue: VecDeque<Pending>,
    connected: bool,
    created: Instant,
    last: Instant,
}

/// The H.323 ALG of an APS or a smart terminal.
pub struct Client {
    cfg: ClientConfig,
    media: ApsMedia<u64>,
    calls: HashMap<u64, Call>,
    /// (remote, call reference, flag) → call and end.
    by_leg: HashMap<(SocketAddr, u16, bool), (u64, Side)>,
    by_h245: HashMap<ConnKey, (u64, Side)>,
    /// The MPR's H.245 leases we were given: → call (first frame back
    /// names the connection).
    by_target: HashMap<SocketAddr, u64>,
    leases: Leases,
    next_id: u64,
    rng: Rng,
    out: Outbox,
    stats: ClientStats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("calls", &self.calls.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

enum Done {
    /// The frame went on (or was consumed).
    Sent,
    /// It waits for a pinhole: hold it (first in its call's queue).
    Wait,
}

impl Client {
    /// An ALG with no calls.
    pub fn new(cfg: ClientConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let media = match cfg.mode {
            Mode::Aps => ApsMedia::new(cfg.media_ip, cfg.ports, cfg.quarantine, rng.fork()),
            Mode::Terminal => ApsMedia::terminal(cfg.media_ip),
        };
        Self {
            media,
            leases: Leases::new(cfg.h245_pool.clone()),
            cfg,
            calls: HashMap::new(),
            by_leg: HashMap::new(),
            by_h245: HashMap::new(),
            by_target: HashMap::new(),
            next_id: 1,
            rng,
            out: Outbox::new(),
            stats: ClientStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Calls tracked now.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Media port pairs B in use.
    pub fn ports_in_use(&self) -> usize {
        self.media.ports_in_use()
    }

    fn mpr_hop(ctx: &dyn ClientContext) -> Hop {
        Hop {
            local: ctx.signaling(),
            remote: ctx.mpr(),
            flow: ctx.upstream(),
        }
    }

    fn frame(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: &Receive<'_>) {
        self.stats.received += 1;
        if q931::tpkt_payload(rx.bytes).is_err() {
            // By UDP, RAS: the APS routes none.
            self.stats.unreadable += 1;
            tracing::debug!(remote = %rx.remote, "H.323: not a TPKT frame (RAS is not routed by the APS)");
            return;
        }
        let key = conn_key(rx);
        let h245 = self.by_h245.get(&key).copied().or_else(|| {
            // The first frame back on a connection we opened to the MPR.
            let id = *self.by_target.get(&rx.remote)?;
            Some((id, MPR))
        });
        if let Some((id, side)) = h245 {
            if let Some(c) = self.calls.get_mut(&id)
                && c.h245[idx(side)].conn.is_none()
            {
                c.h245[idx(side)].conn = Some(Hop::of(rx));
                self.by_h245.insert(key, (id, side));
            }
            return self.arrive(now, ctx, id, side, true, rx);
        }
        if self.leases.is_listener(rx.local) {
            return self.h245_accept(now, ctx, rx);
        }
        self.call_signaling(now, ctx, rx);
    }

    /// A frame of a known call: behind a waiting one, or processed now.
    fn arrive(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        id: u64,
        from: Side,
        h245: bool,
        rx: &Receive<'_>,
    ) {
        let max = self.cfg.max_held;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.last = now;
        let p = Pending {
            from,
            h245,

            bytes: rx.bytes.to_vec(),
        };
        if !call.queue.is_empty() {
            if call.queue.len() >= max {
                self.stats.dropped += 1;
                tracing::warn!("H.323: too many frames held for one call; dropped");
                return;
            }
            self.stats.held += 1;
            call.queue.push_back(p);
            return;
        }
        if let Done::Wait = self.process(now, ctx, id, &p, false) {
            self.stats.held += 1;
            if let Some(call) = self.calls.get_mut(&id) {
                call.queue.push_back(p);
            }
        }
    }

    /// Runs the held frames of a call whose pinhole changed.
    fn resume(&mut self, now: Instant, ctx: &mut dyn ClientContext, id: u64) {
        let mut first = true;
        loop {
            let Some(p) = self.calls.get_mut(&id).and_then(|c| c.queue.pop_front()) else {
                return;
            };
            match self.process(now, ctx, id, &p, first) {
                Done::Sent => first = false,
                Done::Wait => {
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.queue.push_front(p);
                    }
                    return;
                }
            }
        }
    }

    fn call_signaling(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: &Receive<'_>) {
        let Ok(payload) = q931::tpkt_payload(rx.bytes) else {
            return;
        };
        let q = match q931::Message::parse(payload) {
            Ok(q) => q,
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "H.323: Q.931 unreadable, dropped");
                return;
            }
        };
        let (true, Ok(crv)) = (
            q.call_reference.len() == 2,
            u16::try_from(q.call_reference_value()),
        ) else {
            self.stats.unreadable += 1;
            return;
        };
        if let Some(&(id, side)) = self.by_leg.get(&(rx.remote, crv, q.from_destination)) {
            return self.arrive(now, ctx, id, side, false, rx);
        }
        match q.kind {
            MessageType::Setup if !q.from_destination => self.setup(now, ctx, rx, &q),
            MessageType::ReleaseComplete => {}
            _ => {
                self.stats.unknown_call += 1;
                let rc = build::release_complete(
                    CallRef {
                        value: crv,
                        from_destination: !q.from_destination,
                    },
                    [0; 16],
                    ReleaseReason::UndefinedReason,
                );
                self.send_built(&Hop::of(rx), rc);
            }
        }
    }

    /// A new call: from an inside terminal up, or from the MPR in.
    fn setup(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        q: &q931::Message<'_>,
    ) {
        let payload = q.buf();
        let crv = q.call_reference_value() as u16;
        let back = Hop::of(rx);
        let reply = CallRef {
            value: crv,
            from_destination: true,
        };
        let sig = match Signal::call_signaling(payload) {
            Ok(s) => s,
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "H.323: Setup does not walk, refused");
                let rc = build::release_complete(reply, [0; 16], ReleaseReason::UndefinedReason);
                return self.send_built(&back, rc);
            }
        };
        let guid: [u8; 16] = sig
            .walk
            .call_id_at
            .and_then(|at| payload.get(sig.per_at + at..sig.per_at + at + 16))
            .and_then(|g| g.try_into().ok())
            .unwrap_or_default();
        let refuse = |me: &mut Self, why: ReleaseReason| {
            me.stats.refused += 1;
            tracing::info!(remote = %rx.remote, reason = why.name(), "H.323: Setup refused");
            let rc = build::release_complete(reply, guid, why);
            me.send_built(&back, rc);
        };
        if self.calls.len() >= self.cfg.max_calls {
            return refuse(self, ReleaseReason::GatekeeperResources);
        }
        let mpr = Self::mpr_hop(ctx);
        let from_mpr = rx.remote == mpr.remote;
        let (legs, crvs, flag_from) = if from_mpr {
            // In: to the terminal the alias names.
            let Some(terminal) = self.terminal_for(&sig, payload) else {
                return refuse(self, ReleaseReason::CalledPartyNotRegistered);
            };
            let hop = Hop {
                local: self.cfg.inside,
                remote: terminal,
                flow: Flow::over(Transport::Tcp),
            };
            let c = self.free_crv(terminal);
            ([hop, back], [c, crv], [true, false])
        } else {
            let c = self.free_crv(mpr.remote);
            ([back, mpr], [crv, c], [false, true])
        };
        let id = self.next_id;
        self.next_id += 1;
        self.calls.insert(
            id,
            Call {
                legs,
                crv: crvs,
                flag_from,
                ends: Default::default(),
                channels: Channels::default(),
                written: Written::default(),
                h245: Default::default(),
                guid,
                queue: VecDeque::new(),
                connected: false,
                created: now,
                last: now,
            },
        );
        for s in [INSIDE, MPR] {
            let i = idx(s);
            self.by_leg
                .insert((legs[i].remote, crvs[i], flag_from[i]), (id, s));
        }
        self.stats.calls += 1;
        self.out
            .arm_sweep(now + self.cfg.setup_timeout.min(self.cfg.lease_timeout));
        let from = if from_mpr { MPR } else { INSIDE };
        self.arrive(now, ctx, id, from, false, rx);
    }

    fn terminal_for(&self, sig: &Signal, payload: &[u8]) -> Option<SocketAddr> {
        let per = &payload[sig.per_at..];
        for t in sig
            .walk
            .texts
            .iter()
            .filter(|t| t.field == "destinationAddress")
        {
            let alias = t.decode(per);
            let user = alias.split('@').next().unwrap_or_default();
            let hit = self
                .cfg
                .aliases
                .iter()
                .find(|(a, _)| *a == alias || (!a.contains('@') && a == user));
            if let Some((_, at)) = hit {
                return Some(*at);
            }
        }
        self.cfg.inside_default
    }

    fn free_crv(&mut self, remote: SocketAddr) -> u16 {
        loop {
            let v = (self.rng.next_u64() & 0x7fff) as u16;
            if v != 0
                && !self.by_leg.contains_key(&(remote, v, true))
                && !self.by_leg.contains_key(&(remote, v, false))
            {
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

    /// One frame of a call from `p.from`: its media through the pinholes,
    /// its H.245 addresses through our listeners, on to the other end.
    fn process(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        id: u64,
        p: &Pending,
        resuming: bool,
    ) -> Done {
        let payload = &p.bytes[4..];
        let sig = if p.h245 {
            Signal::h245(payload)
        } else {
            Signal::call_signaling(payload)
        };
        let mut out = p.bytes.clone();
        let kind = q931::Message::parse(payload)
            .ok()
            .filter(|_| !p.h245)
            .map(|q| q.kind);
        match sig {
            Ok(sig) => {
                match self.rewrite(now, ctx, id, p.from, &sig, payload, &mut out[4..], resuming) {
                    Ok(Done::Sent) => {}
                    Ok(Done::Wait) => return Done::Wait,
                    Err(why) => {
                        self.end(now, ctx, id, Some(why));
                        return Done::Sent;
                    }
                }
            }
            Err(e) => {
                self.stats.unreadable += 1;
                tracing::warn!(error = %e, h245 = p.h245, "H.323: message does not walk");
                if self.cfg.unreadable == Unreadable::Drop {
                    return Done::Sent;
                }
            }
        }
        let to = p.from.peer();
        let Some(call) = self.calls.get_mut(&id) else {
            return Done::Sent;
        };
        if p.h245 {
            let h = &mut call.h245[idx(to)];
            match (h.conn, to, h.target) {
                (Some(hop), _, _) => {
                    self.stats.forwarded += 1;
                    hop.send(&mut self.out, out);
                }
                (None, MPR, Some(target)) => {
                    // Opens our connection to the MPR's lease.
                    let hop = Hop {
                        local: ctx.signaling(),
                        remote: target,
                        flow: Flow::over(Transport::Tcp),
                    };
                    self.stats.forwarded += 1;
                    hop.send(&mut self.out, out);
                }
                _ if h.held.len() < self.cfg.max_held => h.held.push(out),
                _ => self.stats.dropped += 1,
            }
            return Done::Sent;
        }
        // Call signaling: the call reference of the other leg.
        let crv = call.crv[idx(to)];
        if out.len() > 7 {
            out[6] = (out[6] & 0x80) | ((crv >> 8) as u8 & 0x7f);
            out[7] = crv as u8;
        }
        let hop = call.legs[idx(to)];
        if kind == Some(MessageType::Connect) {
            call.connected = true;
        }
        self.stats.forwarded += 1;
        hop.send(&mut self.out, out);
        if kind == Some(MessageType::ReleaseComplete) {
            self.end(now, ctx, id, None);
        }
        Done::Sent
    }

    /// Patches the addresses of a frame from `from` into `out`.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        id: u64,
        from: Side,
        sig: &Signal,
        payload: &[u8],
        out: &mut [u8],
        resuming: bool,
    ) -> Result<Done, ReleaseReason> {
        let addresses: Vec<Address> = sig.addresses().collect();
        // Media first: a frame that waits for its pinhole changes nothing.
        if let Done::Wait =
            self.media(now, ctx, id, from, sig, payload, out, &addresses, resuming)?
        {
            return Ok(Done::Wait);
        }
        self.closes(now, ctx, id, from, sig);
        let to = from.peer();
        for a in &addresses {
            match a.field {
                "mediaChannel" | "mediaControlChannel" => {}
                "h245Address" if from == MPR => {
                    // The MPR's lease: ours to connect to; the terminal
                    // gets one of our listeners.
                    let target = a.get(payload);
                    let call = self
                        .calls
                        .get_mut(&id)
                        .ok_or(ReleaseReason::UndefinedReason)?;
                    let up = &mut call.h245[idx(MPR)];
                    if up.conn.is_none() && up.target.is_none() {
                        up.target = Some(target);
                        self.by_target.insert(target, id);
                        // The terminal's frames that waited for it.
                        let hop = Hop {
                            local: ctx.signaling(),
                            remote: target,
                            flow: Flow::over(Transport::Tcp),
                        };
                        for f in std::mem::take(&mut up.held) {
                            self.stats.forwarded += 1;
                            hop.send(&mut self.out, f);
                        }
                    }
                    let ip = call.legs[idx(INSIDE)].remote.ip();
                    let lease = match call.h245[idx(INSIDE)].lease {
                        Some(l) => Some(l),
                        None if call.h245[idx(INSIDE)].conn.is_none() => {
                            let l = self.leases.lease(
                                (id, INSIDE),
                                Some(ip),
                                now + self.cfg.lease_timeout,
                            );
                            if let Some(call) = self.calls.get_mut(&id) {
                                call.h245[idx(INSIDE)].lease = l;
                            }
                            l
                        }
                        None => self.leases.any(),
                    };
                    if let Some(l) = lease {
                        let _ = a.set(out, l);
                    }
                }
                // The terminal's own listener goes up as it is: the MPR
                // never connects to it, and asks for a connection instead.
                "h245Address" => {}
                _ if to == INSIDE => {
                    let _ = a.set(out, self.cfg.inside);
                }
                _ => {}
            }
        }
        Ok(Done::Sent)
    }

    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        id: u64,
        from: Side,
        sig: &Signal,
        payload: &[u8],
        out: &mut [u8],
        addresses: &[Address],
        resuming: bool,
    ) -> Result<Done, ReleaseReason> {
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(ReleaseReason::UndefinedReason)?;
        let found = match media::media_of(sig, payload, from, &mut call.channels) {
            Ok(m) => m,
            Err(e) => {
                self.stats.no_session += 1;
                tracing::warn!(error = %e, "H.323: media address of no known session");
                return Err(ReleaseReason::UndefinedReason);
            }
        };
        if found.is_empty() {
            return Ok(Done::Sent);
        }
        let (own, echoes) = media::split_echoes(found, from, &call.written);
        if !own.is_empty() {
            call.ends[idx(from)].update(&own);
            let endpoints = call.ends[idx(from)].endpoints();
            let guid = call.guid;
            let step = if from == INSIDE {
                let leg_key = |index: u16| {
                    let mut k = b"h323/".to_vec();
                    k.extend(
                        guid.iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                            .bytes(),
                    );
                    k.extend(format!("/{index}").bytes());
                    k
                };
                self.media
                    .outward(now, ctx, &id, &endpoints, &leg_key, resuming)
            } else {
                // A session whose pinhole is up keeps it: the MPR adopted
                // its leg when our description reached it, so a relay
                // address it wrote earlier (the two directions' channels
                // crossed) is stale, and the terminal gets port B (a smart
                // terminal: the pinhole's relay). Others get port B now.
                let mut plan = Vec::new();
                let mut rest = Vec::new();
                for e in endpoints {
                    match self.media.open_stream(&id, e.index) {
                        Some((rtp, rtcp)) => plan.push(PlannedEndpoint {
                            index: e.index,
                            addr: rtp,
                            rtcp_addr: Some(rtcp),
                        }),
                        None => rest.push(e),
                    }
                }
                match self.media.inward(now, ctx, &id, &rest) {
                    Step::Ready(more) => {
                        plan.extend(more);
                        Step::Ready(plan)
                    }
                    other => other,
                }
            };
            let plan = match step {
                Step::Ready(plan) => plan,
                Step::Wait => return Ok(Done::Wait),
                Step::Failed(e) => {
                    self.stats.pinhole_failures += 1;
                    if !e.is_backing_off() {
                        tracing::error!(error = %e, "H.323: no media pinhole; the call is released");
                    }
                    return Err(ReleaseReason::NoBandwidth);
                }
            };
            self.stats.media_rewritten += 1;
            let call = self
                .calls
                .get_mut(&id)
                .ok_or(ReleaseReason::UndefinedReason)?;
            for m in &own {
                let to = media::planned_for(m, &plan).ok_or(ReleaseReason::UndefinedReason)?;
                addresses[m.index]
                    .set(out, to)
                    .map_err(|_| ReleaseReason::UndefinedReason)?;
                call.written.record(from.peer(), to, m.at);
            }
        }
        for (m, orig) in echoes {
            let _ = addresses[m.index].set(out, orig);
        }
        Ok(Done::Sent)
    }

    /// Channels closed by a frame from `from`: the pinhole and port B of
    /// a session none of whose channels is left open go back.
    fn closes(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
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
            let opener = if message == "closeLogicalChannel" {
                from
            } else {
                from.peer()
            };
            sessions.extend(call.channels.close(opener, channel));
        }
        let open: Vec<u8> = call
            .channels
            .opened_by(INSIDE)
            .chain(call.channels.opened_by(MPR))
            .map(|(_, s)| s)
            .collect();
        for s in sessions {
            if open.contains(&s) {
                continue;
            }
            for e in &mut call.ends {
                e.0.remove(&s);
            }
            self.media.close_stream(now, ctx, &id, u16::from(s));
        }
    }

    /// The terminal's first frame on one of our listeners.
    fn h245_accept(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: &Receive<'_>) {
        let Ok((id, side)) = self.leases.accept(rx.local, rx.remote) else {
            self.stats.h245_refused += 1;
            tracing::warn!(remote = %rx.remote, local = %rx.local, "H.323: H.245 connection nobody was given");
            return;
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
        for f in held {
            self.stats.forwarded += 1;
            hop.send(&mut self.out, f);
        }
        self.arrive(now, ctx, id, side, true, rx);
    }

    /// Ends a call: pinholes closed, ports back, leases returned; with a
    /// reason, RELEASE COMPLETE to both ends.
    fn end(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        id: u64,
        release: Option<ReleaseReason>,
    ) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.media.close(now, ctx, &id);
        self.stats.released += 1;
        for s in [INSIDE, MPR] {
            let i = idx(s);
            self.by_leg
                .remove(&(call.legs[i].remote, call.crv[i], call.flag_from[i]));
            if let Some(h) = call.h245[i].conn {
                self.by_h245.remove(&h.conn_key());
            }
            if let Some(l) = call.h245[i].lease {
                self.leases.release(l);
            }
            if let Some(t) = call.h245[i].target {
                self.by_target.remove(&t);
            }
            if let Some(reason) = release {
                let cr = CallRef {
                    value: call.crv[i],
                    from_destination: !call.flag_from[i],
                };
                let rc = build::release_complete(cr, call.guid, reason);
                self.send_built(&call.legs[i], rc);
            }
        }
    }

    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        self.leases.expire(now);
        self.media.expire(now);
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

impl ClientSignaling for Client {
    fn protocol(&self) -> Protocol {
        Protocol::H323
    }

    fn framer(&self) -> Option<ProtocolFramer> {
        Some(pinhole_core::framing::tpkt)
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.frame(now, ctx, &rx);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &client::Event) {
        match self.media.handle_event(ev, &mut self.out) {
            Some(Outcome::Opened(id) | Outcome::Failed(id)) => self.resume(now, ctx, id),
            None => {}
        }
    }

    fn sweep(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        self.expire(now, ctx);
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
            ("held", s.held),
            ("dropped", s.dropped),
            ("media_rewritten", s.media_rewritten),
            ("pinhole_failures", s.pinhole_failures),
            ("no_session", s.no_session),
            ("h245_refused", s.h245_refused),
            ("released", s.released),
        ]
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }
}
