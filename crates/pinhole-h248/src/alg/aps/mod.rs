//! The APS's H.248 ALG (Fig. 13, the APS columns). The inside gateways
//! use the APS as their MGC; it forwards their messages to the MPR
//! through its registered signaling pinhole ([`up`]), and the MGC's
//! messages from the MPR — each with the line naming its gateway
//! ([`super::untag`]) — to that gateway ([`down`]).
//!
//! **Gateways.** A gateway is known by its `mId` ([`ApsConfig::gateways`],
//! or learned from its messages with the address they came from). An
//! `mId` seen from another address moves there only with a
//! ServiceChange (a gateway that restarted elsewhere); otherwise the
//! message is dropped as a conflict.
//!
//! **Media.** Each termination an MGC's Add, Modify or Move names is a
//! party of core's [`ApsMedia`] (keyed by the APS's number for it). A
//! `Remote` descriptor going in is rewritten to APS media ports B
//! ([`ApsMedia::inward`]). A `Local` descriptor coming out (the gateway's
//! reply) needs an open media pinhole first ([`ApsMedia::outward`]): the
//! APS sends CMPH (steps 1220–1235, 1250–1265) and holds the reply — and
//! the gateway's later messages behind it, in a [`Held`] queue per
//! gateway — until the pinhole opens, then forwards it with the
//! pinhole's public address written in. Each stream's LEG-KEY is
//! `h248/{keyed hash of the party}/{stream index}`.
//!
//! **Failure.** When the pinhole cannot be opened the APS answers the MPR
//! with error 510 in the gateway's name, and subtracts the termination at
//! the gateway with a transaction of its own (whose reply it absorbs): a
//! held reply whose pinhole failed is refused, never offered again.
//!
//! **Retransmissions.** A transaction seen again goes on as it was first
//! rewritten; a gateway's reply repeated while its pinhole opens is
//! absorbed, and after that gets the first rewritten copy again.
//!
//! **Smart gateway (Fig. 14).** With [`ApsConfig::terminal`] the ALG sits
//! beside the media gateway on the gateway's host (or in its process),
//! registered with the MPR by a client engine of its own: core's
//! [`ApsMedia`] in [`Mode::Terminal`]. The pinhole opens from the
//! gateway's own media port (its `Local` address: steps 1315–1320,
//! 1335–1340), a `Remote` going in is not rewritten (the gateway sends
//! straight to the MPR relay address the MGC names), and the `Local`
//! coming out still waits for the CMPH and leaves with the pinhole's
//! public address (1325, 1345). Everything else is the same code.

mod down;
mod up;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::alg::aps::{ApsMedia, Held, Mode, Outcome, Park};
use pinhole_core::alg::txn::Transactions;
use pinhole_core::alg::{ClientContext, ClientSignaling, Counters, Outbox, Rejection};
use pinhole_core::client::Event;
use pinhole_core::hash::keyed;
use pinhole_core::ports::PortRange;
use pinhole_core::rng::Rng;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::{Dir, NO_RESOURCES, Stats, mid_key};
use crate::parse;

/// The APS H.248 ALG's settings.
#[derive(Clone, Debug)]
pub struct ApsConfig {
    /// The APS's H.248 socket (inside address, registered with the MPR
    /// for H.248); the inside gateways use it as their MGC.
    pub local: SocketAddr,
    /// The APS's own `mId`, in its error replies to gateways and its own
    /// Subtracts.
    pub mid: String,
    /// The inside address media ports B are bound on (in
    /// [`Mode::Terminal`], the gateway's host: no port is bound there).
    pub media_ip: IpAddr,
    /// Media ports B (unused in [`Mode::Terminal`]).
    pub media_ports: PortRange,
    /// Whose media ports the pinholes open from: the APS's ports B
    /// ([`Mode::Aps`], Fig. 13), or the gateway's own
    /// ([`Mode::Terminal`], Fig. 14).
    pub mode: Mode,
    /// Inside gateways by `mId` (as they write it) → their H.248 address;
    /// others are learned from the address their messages come from.
    pub gateways: Vec<(String, SocketAddr)>,
    /// Most gateways known at once; beyond, a new gateway's requests get 510.
    pub max_gateways: usize,
    /// Most terminations tracked at once; beyond, an Add gets 510.
    pub max_terminations: usize,
    /// Most transactions tracked at once; beyond, requests get 510.
    pub max_transactions: usize,
    /// Most messages held per gateway while pinholes open.
    pub max_parked: usize,
    /// How long a transaction (and what was sent for it) is kept after
    /// its last message.
    pub transaction_timeout: Duration,
    /// A termination with no message for this long is forgotten, and so
    /// is a learned gateway with no message and no termination.
    pub termination_idle: Duration,
    /// How long a freed media port pair B rests before reuse.
    pub port_quarantine: Duration,
    /// Keys LEG-KEYs and seeds the port choice.
    pub seed: [u8; 32],
}

impl ApsConfig {
    /// Defaults for an APS at `local` with media ports on `media_ip`; its
    /// `mId` is `[ip]:port` of `local`.
    pub fn new(
        local: SocketAddr,
        media_ip: IpAddr,
        media_ports: PortRange,
        seed: [u8; 32],
    ) -> Self {
        Self {
            local,
            mid: format!("[{}]:{}", local.ip(), local.port()),
            media_ip,
            media_ports,
            mode: Mode::Aps,
            gateways: Vec::new(),
            max_gateways: 1000,
            max_terminations: 50_000,
            max_transactions: 100_000,
            max_parked: 16,
            transaction_timeout: Duration::from_secs(30),
            termination_idle: Duration::from_secs(4 * 3600),
            port_quarantine: Duration::from_secs(30),
            seed,
        }
    }

    /// Defaults for the smart gateway mode (Fig. 14): the ALG at `local`
    /// (its client engine's registered signaling socket) beside the media
    /// gateway on host `media_ip`, which lists it as its MGC. Pinholes
    /// open from the gateway's own media ports, so no ports B.
    pub fn terminal(local: SocketAddr, media_ip: IpAddr, seed: [u8; 32]) -> Self {
        Self {
            mode: Mode::Terminal,
            // Never allocated from: the gateway owns its media ports.
            ..Self::new(local, media_ip, PortRange { first: 0, last: 1 }, seed)
        }
    }
}

/// An inside gateway.
struct Gateway {
    addr: SocketAddr,
    /// Configured: never moves, never expires.
    fixed: bool,
    /// Its latest message (none yet for a configured one).
    last: Option<Instant>,
}

type PartyId = u64;

/// A termination of a gateway (from the MGC's Add, Modify or Move on);
/// its streams are in [`Aps::media`] under the same number.
struct Party {
    mg: String,
    /// Known once the gateway answered (a CHOOSE context gets its id then).
    context: Option<u32>,
    term: Option<String>,
    /// The gateway answered for it: it exists there.
    confirmed: bool,
    last: Instant,
}

/// What one command of an MGC's request was for: the party it named, and
/// whether the request created it (its failure or silence frees it).
#[derive(Clone, Copy, Debug)]
struct Note {
    action: usize,
    command: usize,
    party: PartyId,
    created: bool,
}

/// What the APS keeps per transaction, beside what it sent.
struct Txn {
    /// For each command of an MGC's request, its party.
    notes: Vec<Note>,
}

/// The APS's H.248 ALG.
pub struct Aps {
    cfg: ApsConfig,
    secret: u64,
    media: ApsMedia<PartyId>,
    /// By `mId` key.
    gateways: HashMap<String, Gateway>,
    parties: HashMap<PartyId, Party>,
    /// (gateway, context, termination) → party.
    by_term: HashMap<(String, u32, String), PartyId>,
    next_party: PartyId,
    /// By gateway, direction and transaction id.
    txns: Transactions<(String, Dir, u32), Txn>,
    /// Our own Subtracts, by (gateway, transaction id): their replies
    /// stay here.
    own: HashMap<(String, u32), Instant>,
    next_own: u32,
    /// Gateways' messages held while pinholes open, by gateway.
    held: Held<String>,
    /// The party whose pinhole each gateway's held message waits for.
    waiting: HashMap<String, PartyId>,
    out: Outbox,
    stats: Stats,
}

/// The first of our own transaction ids, away from MGCs' (H.248 ids go
/// to 2^32 - 1).
const OWN_IDS: u32 = 900_000_000;

impl Aps {
    /// An ALG with no terminations.
    pub fn new(cfg: ApsConfig) -> Self {
        let mut rng = Rng::from_seed(cfg.seed);
        let secret = rng.next_u64();
        let ports_rng = rng.fork();
        let media = match cfg.mode {
            Mode::Aps => ApsMedia::new(
                cfg.media_ip,
                cfg.media_ports,
                cfg.port_quarantine,
                ports_rng,
            ),
            Mode::Terminal => ApsMedia::terminal(cfg.media_ip),
        };
        let gateways = cfg
            .gateways
            .iter()
            .map(|(mid, addr)| {
                let g = Gateway {
                    addr: *addr,
                    fixed: true,
                    last: None,
                };
                (mid_key(mid), g)
            })
            .collect();
        Self {
            secret,
            media,
            gateways,
            parties: HashMap::new(),
            by_term: HashMap::new(),
            next_party: 1,
            txns: Transactions::new(cfg.max_transactions),
            own: HashMap::new(),
            next_own: OWN_IDS + (secret % 90_000_000) as u32,
            held: Held::new(cfg.max_parked),
            waiting: HashMap::new(),
            out: Outbox::new(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        // Pinholes started and refused are counted where they happen,
        // in the shared stream machine.
        Stats {
            pinholes: self.media.opened(),
            pinhole_failures: self.stats.pinhole_failures + self.media.open_refusals(),
            ..self.stats
        }
    }

    /// Terminations tracked now.
    pub fn terminations(&self) -> usize {
        self.parties.len()
    }

    /// Media ports B in use now.
    pub fn ports_in_use(&self) -> usize {
        self.media.ports_in_use()
    }

    /// The LEG-KEY of stream `index` of party `p`, for the MPR.
    fn leg_key(&self, p: PartyId) -> impl Fn(u16) -> Vec<u8> + use<> {
        let h = keyed(self.secret, &[&p.to_be_bytes()]);
        move |index| format!("h248/{h:016x}/{index}").into_bytes()
    }

    fn send(&mut self, t: Transmit) {
        self.stats.forwarded += 1;
        self.out.send(t);
    }

    /// Error replies the APS wrote, each a datagram of its own to `to`.
    fn answer(&mut self, to: SocketAddr, errors: Vec<Vec<u8>>) {
        for payload in errors {
            self.stats.replied += 1;
            self.out.send(Transmit {
                local: self.cfg.local,
                remote: to,
                payload,
                flow: Default::default(),
            });
        }
    }

    fn arm_sweep(&mut self, now: Instant) {
        self.out.arm_sweep(now + Duration::from_secs(1));
    }

    /// One datagram, new or held (`resuming`); false when it was held
    /// (again) for a pinhole.
    fn process(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        resuming: bool,
    ) -> bool {
        if rx.remote == ctx.mpr() {
            self.mpr_datagram(now, ctx, rx);
            return true;
        }
        let msg = match parse(rx.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(remote = %rx.remote, error = %e, "H.248: unparsable message dropped");
                return true;
            }
        };
        let Some(mg) = self.gateway(now, rx, &msg) else {
            return true;
        };
        if !resuming {
            if self.retransmission_inside(&mg, &msg) {
                return true;
            }
            if self.held.is_holding(&mg) {
                self.park(&mg, rx, false);
                return true;
            }
        }
        self.gateway_datagram(now, ctx, rx, &mg, &msg, resuming)
    }

    /// Holds a gateway's datagram behind its pending pinhole. One held
    /// again while resuming was counted when it was first held.
    fn park(&mut self, mg: &str, rx: &Receive<'_>, resuming: bool) {
        match self.held.park(&mg.to_owned(), rx) {
            Park::Held if !resuming => self.stats.parked += 1,
            // A retransmission of a held message adds nothing.
            Park::Duplicate => self.stats.retransmissions += 1,
            Park::Held | Park::Full => {}
        }
    }

    /// Runs the held messages of a gateway, in order, until one must wait.
    fn resume(&mut self, now: Instant, ctx: &mut dyn ClientContext, mg: &str) {
        Held::resume(
            self,
            |a| &mut a.held,
            &mg.to_owned(),
            |a, rx| a.process(now, ctx, &rx, true),
        );
    }

    /// A new party of gateway `mg` (510 when too many).
    fn new_party(
        &mut self,
        now: Instant,
        mg: &str,
        context: Option<u32>,
        term: Option<&str>,
    ) -> Result<PartyId, Rejection> {
        if self.parties.len() >= self.cfg.max_terminations {
            self.stats.calls_refused += 1;
            tracing::warn!(mid = %mg, "H.248: too many terminations; refused");
            return Err(NO_RESOURCES);
        }
        let id = self.next_party;
        self.next_party += 1;
        self.parties.insert(
            id,
            Party {
                mg: mg.to_owned(),
                context,
                term: term.map(str::to_owned),
                confirmed: false,
                last: now,
            },
        );
        self.index(id);
        self.stats.calls += 1;
        Ok(id)
    }

    /// Files party `p` under its gateway, context and termination once
    /// all are known.
    fn index(&mut self, p: PartyId) {
        let Some(party) = self.parties.get(&p) else {
            return;
        };
        if let (Some(c), Some(t)) = (party.context, &party.term) {
            let key = (party.mg.clone(), c, t.to_ascii_lowercase());
            self.by_term.retain(|_, v| *v != p);
            self.by_term.insert(key, p);
        }
    }

    /// The party of termination `term` of context `context` of `mg`.
    fn party_of(&self, mg: &str, context: u32, term: &str) -> Option<PartyId> {
        self.by_term
            .get(&(mg.to_owned(), context, term.to_ascii_lowercase()))
            .copied()
    }

    /// A party ends: its ports B and pinholes go.
    fn free_party(&mut self, now: Instant, ctx: &mut dyn ClientContext, p: PartyId) {
        if self.parties.remove(&p).is_none() {
            return;
        }
        self.by_term.retain(|_, v| *v != p);
        self.media.close(now, ctx, &p);
        self.arm_sweep(now);
    }

    /// Parties created by a request that failed or was never answered
    /// (the gateway made nothing, so nothing is left to subtract).
    fn free_created(&mut self, now: Instant, ctx: &mut dyn ClientContext, notes: &[Note]) {
        for n in notes.iter().filter(|n| n.created) {
            if self.parties.get(&n.party).is_some_and(|p| !p.confirmed) {
                self.free_party(now, ctx, n.party);
            }
        }
    }

    /// Forgets what timed out: transactions (an Add never answered frees
    /// what it created), idle terminations and gateways, held messages
    /// waiting for nothing, rested ports.
    fn expire(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        for ((_, dir, _), e) in self.txns.expire(now, self.cfg.transaction_timeout) {
            if dir == Dir::Down && e.response.is_none() && e.data.notes.iter().any(|n| n.created) {
                self.stats.expired += 1;
                self.free_created(now, ctx, &e.data.notes);
            }
        }
        let life = self.cfg.transaction_timeout;
        self.own.retain(|_, at| now < *at + life);
        let idle = self.cfg.termination_idle;
        let stale: Vec<PartyId> = self
            .parties
            .iter()
            .filter(|(_, p)| now >= p.last + idle)
            .map(|(k, _)| *k)
            .collect();
        for p in stale {
            self.stats.expired += 1;
            self.free_party(now, ctx, p);
        }
        // A message held for a party that is gone (subtracted while its
        // pinhole opened) waits for no event: dropped, the gateway
        // repeats it.
        let parties = &self.parties;
        self.waiting.retain(|_, p| parties.contains_key(p));
        let waiting = &self.waiting;
        self.held.retain(|mg| waiting.contains_key(mg));
        let held = &self.held;
        self.waiting.retain(|mg, _| held.is_holding(mg));
        let busy_mgs: HashSet<&str> = self
            .parties
            .values()
            .map(|p| p.mg.as_str())
            .chain(self.txns.iter().map(|((mg, _, _), _)| mg.as_str()))
            .collect();
        let before = self.gateways.len();
        self.gateways.retain(|k, g| {
            g.fixed
                || g.last.is_some_and(|l| now < l + idle)
                || busy_mgs.contains(k.as_str())
                || held.is_holding(k)
        });
        self.stats.expired += (before - self.gateways.len()) as u64;
        self.media.expire(now);
        let busy = !self.txns.is_empty()
            || !self.parties.is_empty()
            || !self.own.is_empty()
            || self.gateways.values().any(|g| !g.fixed);
        self.out
            .set_sweep(busy.then(|| now + Duration::from_secs(1)));
    }
}

impl ClientSignaling for Aps {
    fn protocol(&self) -> Protocol {
        Protocol::H248
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        self.stats.received += 1;
        let _ = self.process(now, ctx, &rx, false);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &Event) {
        let p = match self.media.handle_event(ev, &mut self.out) {
            Some(Outcome::Opened(p)) => p,
            Some(Outcome::Failed(p)) => {
                self.stats.pinhole_failures += 1;
                p
            }
            None => return,
        };
        let Some(mg) = self.parties.get(&p).map(|x| x.mg.clone()) else {
            return;
        };
        self.resume(now, ctx, &mg);
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
        self.stats().counters()
    }
}

#[cfg(test)]
mod tests;
