//! The MPR's H.248 ALG (Figs. 13 and 14, the MPR's column).
//!
//! **Gateways.** A message from a network's registered H.248 pinhole
//! names its gateway in its header (`mId`). The first time, the gateway
//! gets a port of [`MprConfig::mg_ports`] (on the MPR's address) and is
//! bound to that network: the MGC sees each gateway at an address of its
//! own, and an `mId` another network holds is refused (402). The MGC's
//! messages to a gateway's port go into the pinhole of the gateway's
//! network, with the line naming the gateway before them
//! ([`super::tag`]); only [`MprConfig::mgc`] may send to those ports.
//!
//! **Media** ([`media`]). Each termination an Add, Modify or Move names
//! is a party; a gateway's `Local` descriptor in a reply (its media) is
//! planned with the engine and rewritten to a relay address. The MGC
//! copies that address into the other gateway's `Remote`: the MPR knows
//! it as a relay address of the call, joins the second termination to the
//! call as its other side and plans the first side's media again toward
//! the second gateway's network. A `Remote` with any other address is a
//! public party (a media server), planned as the call's public side.
//! Subtract (of a termination, of `*`, of every termination in a context)
//! ends the parties it names; a call with no termination left loses its
//! legs.
//!
//! **Unreadable media** ([`pinhole_core::alg::unreadable`], issue 18). An
//! MGC request whose `Remote` cannot be read or rewritten is answered
//! error 400 and plans nothing; a gateway reply whose `Local` cannot be
//! read or rewritten is cut out of its message (the rest goes on), and its
//! transaction stays unanswered, so what it created goes when it expires.
//! Neither goes on with an address that is not the relay's.
//!
//! **Retransmissions.** A transaction seen again (same gateway, direction
//! and id) within [`MprConfig::transaction_timeout`] is sent on again as
//! it was rewritten the first time: the same relay ports, the same reply.

mod media;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use pinhole_core::alg::txn::{Leg, Transactions};
use pinhole_core::alg::unreadable::unreadable_media;
use pinhole_core::alg::{Counters, MprContext, MprSignaling, Outbox, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::{
    BAD_SDP, Dir, NO_RESOURCES, NOT_READY, Stats, UNAUTHORIZED, assemble, keep_sent, leg_of,
    mid_key, reply, tag,
};
use crate::{Item, Message, parse};
use media::{Calls, Note};

/// The MPR H.248 ALG's settings.
#[derive(Clone, Debug)]
pub struct MprConfig {
    /// The MPR's H.248 socket: networks register their H.248 pinholes
    /// with it; gateways' messages arrive on it.
    pub local: SocketAddr,
    /// The MPR's own `mId`, in the error replies it writes to gateways.
    pub mid: String,
    /// The media gateway controller.
    pub mgc: SocketAddr,
    /// Ports on the MPR's address, one per gateway toward the MGC.
    pub mg_ports: RangeInclusive<u16>,
    /// Most transactions tracked at once; beyond, requests get 510.
    pub max_transactions: usize,
    /// Most calls tracked at once; beyond, a new call has no media.
    pub max_calls: usize,
    /// Most terminations tracked at once; beyond, an Add gets 510.
    pub max_terminations: usize,
    /// How long a transaction (and what was sent on for it) is kept
    /// after its last message.
    pub transaction_timeout: Duration,
    /// A call whose terminations never got media is forgotten after this.
    pub setup_timeout: Duration,
    /// A call with no H.248 message for this long is forgotten.
    pub call_idle: Duration,
    /// A gateway with no message and no termination for this long gives
    /// its port back.
    pub gateway_idle: Duration,
}

impl MprConfig {
    /// Defaults around the MPR's H.248 socket, the MGC and the gateway
    /// ports.
    pub fn new(local: SocketAddr, mgc: SocketAddr, mg_ports: RangeInclusive<u16>) -> Self {
        let mid = match local {
            SocketAddr::V4(a) => format!("[{}]:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        Self {
            local,
            mid,
            mgc,
            mg_ports,
            max_transactions: 100_000,
            max_calls: 100_000,
            max_terminations: 200_000,
            transaction_timeout: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(180),
            call_idle: Duration::from_secs(4 * 3600),
            gateway_idle: Duration::from_secs(24 * 3600),
        }
    }
}

/// A media gateway the MPR has seen.
struct Gateway {
    /// Its `mId` as it writes it (for the line naming it).
    mid: String,
    network: String,
    port: u16,
    version: u8,
    last: Instant,
}

/// What the MPR keeps per transaction, beside what it sent.
struct Txn {
    /// What each command of an MGC's request was for.
    notes: Vec<Note>,
}

/// The MPR's H.248 ALG.
pub struct Mpr {
    cfg: MprConfig,
    /// By `mId` (lower case).
    gateways: HashMap<String, Gateway>,
    /// Gateway port → `mId` key.
    by_port: HashMap<u16, String>,
    /// By gateway, direction and transaction id.
    txns: Transactions<(String, Dir, u32), Txn>,
    calls: Calls,
    out: Outbox,
    stats: Stats,
}

impl Mpr {
    /// An ALG with no gateways.
    pub fn new(cfg: MprConfig) -> Self {
        Self {
            txns: Transactions::new(cfg.max_transactions),
            calls: Calls::new(cfg.max_calls, cfg.max_terminations),
            cfg,
            gateways: HashMap::new(),
            by_port: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Gateways known now.
    pub fn gateways(&self) -> usize {
        self.gateways.len()
    }

    /// The address the MGC knows gateway `mid` by.
    pub fn gateway_address(&self, mid: &str) -> Option<SocketAddr> {
        let g = self.gateways.get(&mid_key(mid))?;
        Some(SocketAddr::new(self.cfg.local.ip(), g.port))
    }

    /// Calls tracked now.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions tracked now.
    pub fn transactions(&self) -> usize {
        self.txns.len()
    }

    fn send(&mut self, t: Transmit) {
        self.stats.forwarded += 1;
        self.out.send(t);
    }

    fn arm_sweep(&mut self, now: Instant) {
        self.out.arm_sweep(now + Duration::from_secs(1));
    }

    /// The gateway `mid` of network `n`: known, or given a port now.
    fn gateway(&mut self, now: Instant, n: &str, msg: &Message<'_>) -> Result<String, Rejection> {
        let key = mid_key(msg.mid().text);
        if let Some(g) = self.gateways.get_mut(&key) {
            if g.network != n {
                self.stats.mid_conflicts += 1;
                tracing::warn!(mid = %key, network = n, holder = %g.network,
                    "H.248: a gateway mId another network holds");
                return Err(UNAUTHORIZED);
            }
            g.last = now;
            g.version = msg.version();
            return Ok(key);
        }
        let Some(port) = self
            .cfg
            .mg_ports
            .clone()
            .find(|p| !self.by_port.contains_key(p))
        else {
            self.stats.mgs_refused += 1;
            tracing::warn!(mid = %key, "H.248: no gateway port free");
            return Err(NO_RESOURCES);
        };
        self.by_port.insert(port, key.clone());
        self.gateways.insert(
            key.clone(),
            Gateway {
                mid: msg.mid().text.to_owned(),
                network: n.to_owned(),
                port,
                version: msg.version(),
                last: now,
            },
        );
        tracing::info!(mid = %key, network = n, port, "H.248: gateway seen");
        Ok(key)
    }

    /// A message seen before: sent on again as it was.
    fn retransmission(
        &mut self,
        ctx: &dyn MprContext,
        mg: &str,
        requests: Dir,
        first: &Item<'_>,
    ) -> bool {
        let (Some(leg), Some(id)) = (leg_of(first), first.id()) else {
            return false;
        };
        let key = (mg.to_owned(), Dir::of(requests, leg), id);
        let Some(mut out) = self.txns.replay(&key, leg) else {
            return false;
        };
        // Toward a network: its current pinhole.
        if requests == Dir::Down
            && let Some((local, remote)) = self.route(ctx, mg)
        {
            out.local = local;
            out.remote = remote;
        }
        self.stats.retransmissions += 1;
        self.send(out);
        true
    }

    /// The pinhole of gateway `mg`'s network.
    fn route(&self, ctx: &dyn MprContext, mg: &str) -> Option<(SocketAddr, SocketAddr)> {
        let g = self.gateways.get(mg)?;
        ctx.route(&g.network, Protocol::H248)
            .map(|r| (r.local, r.pinhole))
    }

    /// A datagram from network `n`'s pinhole: to the MGC, from the
    /// gateway's port.
    fn network_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        msg: &Message<'_>,
    ) {
        let mg = match self.gateway(now, n, msg) {
            Ok(mg) => mg,
            Err(why) => {
                // Answered in the MPR's name, back into the pinhole.
                let errors = self.refuse_requests(msg, &self.cfg.mid.clone(), why);
                self.answer_network(rx, msg.mid().text, errors);
                return;
            }
        };
        let Some(first) = msg.items().first() else {
            return;
        };
        if self.retransmission(ctx, &mg, Dir::Up, first) {
            return;
        }
        let mut patch = Patch::new();
        let mut drop = vec![false; msg.items().len()];
        for (item, cut) in msg.items().iter().zip(&mut drop) {
            match item {
                Item::Request(r) => {
                    let key = (mg.clone(), Dir::Up, r.id);
                    if self.txns.room(&key, NO_RESOURCES).is_err() {
                        self.stats.transactions_refused += 1;
                        *cut = true;
                        continue;
                    }
                    self.calls
                        .gateway_request(now, ctx, &mut self.out, &mut self.stats, &mg, r);
                    self.txns.insert(now, key, Txn { notes: Vec::new() });
                }
                Item::Reply(r) => {
                    let key = (mg.clone(), Dir::Down, r.id);
                    let Some(t) = self.txns.get_mut(&key) else {
                        self.stats.unknown_transaction += 1;
                        *cut = true;
                        continue;
                    };
                    t.last = now;
                    let notes = std::mem::take(&mut t.data.notes);
                    // Its edits apart, to leave out with it.
                    let mut part = Patch::new();
                    let done = self.calls.gateway_reply(
                        now,
                        ctx,
                        &mut self.out,
                        &mut self.stats,
                        (&mg, n, rx.remote.ip()),
                        msg,
                        item,
                        r,
                        &notes,
                        &mut part,
                    );
                    match done {
                        Ok(()) => patch.extend_shifted(&part, 0),
                        Err(e) => {
                            // Issue 18: a reply cannot be refused; it is cut
                            // out, and its transaction stays unanswered, so
                            // what it created goes when it expires.
                            unreadable_media(
                                Protocol::H248,
                                Leg::Response,
                                BAD_SDP,
                                &e,
                                &mut self.stats.sdp_errors,
                            );
                            *cut = true;
                            if let Some(t) = self.txns.get_mut(&key) {
                                t.data.notes = notes;
                            }
                        }
                    }
                }
                Item::Pending { .. } | Item::ResponseAck { .. } => {}
            }
        }
        let Some(payload) = assemble(msg, &drop, &mut patch) else {
            return;
        };
        let Some(port) = self.gateways.get(&mg).map(|g| g.port) else {
            return;
        };
        let out = Transmit {
            local: SocketAddr::new(self.cfg.local.ip(), port),
            remote: self.cfg.mgc,
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msg, &drop, &out, |first, leg| {
            Some((mg.clone(), Dir::of(Dir::Up, leg), first.id()?))
        });
        self.arm_sweep(now);
        self.send(out);
    }

    /// A datagram from the MGC to gateway `mg`'s port: into its network's
    /// pinhole, with the line naming it.
    fn mgc_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        mg: String,
        msg: &Message<'_>,
    ) {
        let Some(first) = msg.items().first() else {
            return;
        };
        if self.retransmission(ctx, &mg, Dir::Down, first) {
            return;
        }
        let Some((mid, network)) = self.gateways.get_mut(&mg).map(|g| {
            g.last = now;
            (g.mid.clone(), g.network.clone())
        }) else {
            return;
        };
        let Some((local, pinhole)) = self.route(ctx, &mg) else {
            self.stats.no_route += 1;
            let errors = self.refuse_requests(msg, &mid, NOT_READY);
            self.answer_mgc(rx, errors);
            return;
        };
        let mut patch = Patch::new();
        let mut drop = vec![false; msg.items().len()];
        let mut errors = Vec::new();
        for (item, cut) in msg.items().iter().zip(&mut drop) {
            let Item::Request(r) = item else {
                continue;
            };
            let key = (mg.clone(), Dir::Down, r.id);
            let done = self
                .txns
                .room(&key, NO_RESOURCES)
                .inspect_err(|_| self.stats.transactions_refused += 1)
                .and_then(|()| {
                    self.calls.mgc_request(
                        now,
                        ctx,
                        &mut self.out,
                        &mut self.stats,
                        (&mg, &network, rx.remote.ip()),
                        msg,
                        r,
                        &mut patch,
                    )
                });
            match done {
                Ok(notes) => {
                    self.txns.insert(now, key, Txn { notes });
                }
                Err(why) => {
                    tracing::warn!(mid = %mg, transaction = r.id, code = why.code,
                        reason = why.reason, "H.248: MGC request refused");
                    errors.push(reply(msg.version(), &mid, r.id, why));
                    *cut = true;
                }
            }
        }
        self.answer_mgc(rx, errors);
        let Some(payload) = assemble(msg, &drop, &mut patch) else {
            return;
        };
        let out = Transmit {
            local,
            remote: pinhole,
            payload: tag(&mid, &payload),
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msg, &drop, &out, |first, leg| {
            Some((mg.clone(), Dir::of(Dir::Down, leg), first.id()?))
        });
        self.arm_sweep(now);
        self.send(out);
    }

    /// Error replies, in `mid`'s name, for every request of `msg`.
    fn refuse_requests(&mut self, msg: &Message<'_>, mid: &str, why: Rejection) -> Vec<Vec<u8>> {
        msg.items()
            .iter()
            .filter_map(|i| match i {
                Item::Request(r) => Some(reply(msg.version(), mid, r.id, why)),
                _ => None,
            })
            .collect()
    }

    fn answer_mgc(&mut self, rx: &Receive<'_>, errors: Vec<Vec<u8>>) {
        for payload in errors {
            self.stats.replied += 1;
            self.out.send(Transmit {
                local: rx.local,
                remote: rx.remote,
                payload,
                flow: rx.flow,
            });
        }
    }

    /// Error replies back into a pinhole, naming the gateway `mid` they
    /// are for.
    fn answer_network(&mut self, rx: &Receive<'_>, mid: &str, errors: Vec<Vec<u8>>) {
        for payload in errors {
            self.stats.replied += 1;
            self.out.send(Transmit {
                local: rx.local,
                remote: rx.remote,
                payload: tag(mid, &payload),
                flow: rx.flow,
            });
        }
    }

    /// Forgets what timed out: transactions (an Add never answered frees
    /// what it created), idle calls, idle gateways.
    fn expire(&mut self, now: Instant, ctx: &mut dyn MprContext) {
        for (_, e) in self.txns.expire(now, self.cfg.transaction_timeout) {
            if e.response.is_none() {
                self.calls
                    .unanswered(now, ctx, &mut self.out, &mut self.stats, &e.data.notes);
            }
        }
        self.calls.expire(
            now,
            ctx,
            &mut self.out,
            &mut self.stats,
            self.cfg.setup_timeout,
            self.cfg.call_idle,
        );
        let idle = self.cfg.gateway_idle;
        let stale: Vec<String> = self
            .gateways
            .iter()
            .filter(|(k, g)| now >= g.last + idle && !self.calls.holds_gateway(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(g) = self.gateways.remove(&k) {
                self.by_port.remove(&g.port);
                self.stats.expired += 1;
            }
        }
        let busy = !self.txns.is_empty() || !self.calls.is_empty() || !self.gateways.is_empty();
        self.out
            .set_sweep(busy.then(|| now + Duration::from_secs(1)));
    }
}

impl MprSignaling for Mpr {
    fn protocol(&self) -> Protocol {
        Protocol::H248
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let msg = match parse(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::warn!(remote = %rx.remote, error = %e, "H.248: unparsable message dropped");
                return;
            }
        };
        if rx.local == self.cfg.local {
            match mpr.network_for_pinhole(Protocol::H248, rx.remote) {
                Some(n) => self.network_datagram(now, mpr, &rx, &n, &msg),
                None => {
                    self.stats.unknown_source += 1;
                    tracing::debug!(remote = %rx.remote, "H.248: message from no registered pinhole dropped");
                }
            }
            return;
        }
        if rx.remote != self.cfg.mgc {
            self.stats.unknown_source += 1;
            tracing::debug!(remote = %rx.remote, "H.248: message to a gateway port from another than the MGC dropped");
            return;
        }
        match self.by_port.get(&rx.local.port()).cloned() {
            Some(mg) if rx.local.ip() == self.cfg.local.ip() => {
                self.mgc_datagram(now, mpr, &rx, mg, &msg);
            }
            _ => {
                self.stats.unknown_mg += 1;
                tracing::debug!(local = %rx.local, "H.248: MGC message for no gateway dropped");
            }
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

    fn extra_addresses(&self) -> Vec<SocketAddr> {
        let ip = self.cfg.local.ip();
        self.cfg
            .mg_ports
            .clone()
            .map(|p| SocketAddr::new(ip, p))
            .collect()
    }
}

#[cfg(test)]
mod tests;
