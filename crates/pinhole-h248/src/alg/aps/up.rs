//! What comes from the inside gateways: their own requests to the MGC,
//! and their replies, whose `Local` descriptors leave only once their
//! media pinholes are open.

use std::time::Instant;

use pinhole_core::alg::aps::Step;
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::{ClientContext, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};

use super::{Aps, Gateway, Note, PartyId, Txn};
use crate::alg::streams::{Described, Which};
use crate::alg::{
    Dir, NO_RESOURCES, NOT_READY, PINHOLE_FAILED, assemble, keep_sent, leg_of, mid_key, reply,
};
use crate::{Command, CommandKind, ContextId, Item, MediaRole, Message, Reply, Request};

/// What a gateway's reply needs before it may leave.
enum Flow {
    /// Nothing more: it goes on (with the edits made).
    Go,
    /// A pinhole of party `PartyId` is opening: hold the datagram.
    Wait(PartyId),
    /// A pinhole failed (or the `Local` cannot be read): refuse the
    /// transaction, and take back party `PartyId` at the gateway.
    Refuse(Rejection, PartyId),
}

impl Aps {
    /// The gateway a datagram from inside comes from (its `mId` key):
    /// known, moved by a ServiceChange, or learned now. `None` when the
    /// datagram is dropped or refused.
    pub(super) fn gateway(
        &mut self,
        now: Instant,
        rx: &Receive<'_>,
        msg: &Message<'_>,
    ) -> Option<String> {
        let key = mid_key(msg.mid().text);
        if let Some(g) = self.gateways.get_mut(&key) {
            if g.addr != rx.remote {
                if g.fixed || !is_service_change(msg) {
                    self.stats.mid_conflicts += 1;
                    tracing::warn!(mid = %key, from = %rx.remote, known = %g.addr,
                        "H.248: a gateway mId from another address; dropped");
                    return None;
                }
                // A gateway that restarted at another address says so.
                tracing::info!(mid = %key, from = %g.addr, to = %rx.remote, "H.248: gateway moved");
                g.addr = rx.remote;
            }
            g.last = Some(now);
            return Some(key);
        }
        if self.gateways.len() >= self.cfg.max_gateways {
            self.stats.mgs_refused += 1;
            tracing::warn!(mid = %key, from = %rx.remote, "H.248: too many gateways; refused");
            let errors = self.refuse_requests(msg, NO_RESOURCES);
            self.answer(rx.remote, errors);
            return None;
        }
        tracing::info!(mid = %key, addr = %rx.remote, "H.248: gateway seen");
        self.gateways.insert(
            key.clone(),
            Gateway {
                addr: rx.remote,
                fixed: false,
                last: Some(now),
            },
        );
        self.arm_sweep(now);
        Some(key)
    }

    /// Error replies in the APS's name for every request of `msg`.
    fn refuse_requests(&self, msg: &Message<'_>, why: Rejection) -> Vec<Vec<u8>> {
        msg.items()
            .iter()
            .filter_map(|i| match i {
                Item::Request(r) => Some(reply(msg.version(), &self.cfg.mid, r.id, why)),
                _ => None,
            })
            .collect()
    }

    /// A gateway's transaction seen before: sent on as the first time; a
    /// reply to our own Subtract absorbed.
    pub(super) fn retransmission_inside(&mut self, mg: &str, msg: &Message<'_>) -> bool {
        let Some(first) = msg.items().first() else {
            return false;
        };
        let (Some(leg), Some(id)) = (leg_of(first), first.id()) else {
            return false;
        };
        if leg == Leg::Response && self.own.contains_key(&(mg.to_owned(), id)) {
            return msg.items().len() == 1;
        }
        let key = (mg.to_owned(), Dir::of(Dir::Up, leg), id);
        match self.txns.replay(&key, leg) {
            Some(out) => {
                self.stats.retransmissions += 1;
                self.send(out);
                true
            }
            None => false,
        }
    }

    /// A datagram from gateway `mg`, to the MPR; false when it was held
    /// for a pinhole.
    pub(super) fn gateway_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        mg: &str,
        msg: &Message<'_>,
        resuming: bool,
    ) -> bool {
        let registered = ctx.registered_pinhole().is_some();
        let mut patch = Patch::new();
        let mut drop = vec![false; msg.items().len()];
        let mut errors = Vec::new();
        for (item, cut) in msg.items().iter().zip(&mut drop) {
            match item {
                Item::Request(r) => {
                    if let Err(why) = self.up_request(now, ctx, mg, r, registered) {
                        tracing::warn!(mid = %mg, transaction = r.id, code = why.code,
                            reason = why.reason, "H.248: gateway request refused");
                        errors.push(reply(msg.version(), &self.cfg.mid, r.id, why));
                        *cut = true;
                    }
                }
                Item::Reply(r) => {
                    if self.own.contains_key(&(mg.to_owned(), r.id)) {
                        *cut = true;
                        continue;
                    }
                    let Some(t) = self.txns.get(&(mg.to_owned(), Dir::Down, r.id)) else {
                        self.stats.unknown_transaction += 1;
                        tracing::debug!(mid = %mg, transaction = r.id, "H.248: reply to no MGC request dropped");
                        *cut = true;
                        continue;
                    };
                    if t.response.is_some() {
                        // Refused while an item after it waited: the
                        // refusal stands.
                        *cut = true;
                        continue;
                    }
                    let notes = t.data.notes.clone();
                    let flow =
                        self.up_reply(now, ctx, rx, mg, msg, item, r, &notes, &mut patch, resuming);
                    match flow {
                        Flow::Go => {}
                        Flow::Wait(p) => {
                            self.waiting.insert(mg.to_owned(), p);
                            self.park(mg, rx, resuming);
                            return false;
                        }
                        Flow::Refuse(why, p) => {
                            self.refuse(now, ctx, mg, msg, r.id, why, p, &notes);
                            *cut = true;
                        }
                    }
                }
                Item::Pending { .. } | Item::ResponseAck { .. } => {}
            }
        }
        self.answer(rx.remote, errors);
        let Some(payload) = assemble(msg, &drop, &mut patch) else {
            return true;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, msg, &drop, &out, |first, leg| {
            Some((mg.to_owned(), Dir::of(Dir::Up, leg), first.id()?))
        });
        self.send(out);
        true
    }

    /// A gateway's own request: a transaction toward the MGC (503 before
    /// the APS is registered, 510 when the table is full). A restart of
    /// the whole gateway ends its terminations.
    fn up_request(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        mg: &str,
        r: &Request<'_>,
        registered: bool,
    ) -> Result<(), Rejection> {
        if !registered {
            self.stats.no_route += 1;
            return Err(NOT_READY);
        }
        let key = (mg.to_owned(), Dir::Up, r.id);
        self.txns
            .room(&key, NO_RESOURCES)
            .inspect_err(|_| self.stats.transactions_refused += 1)?;
        if restarts(r) {
            let gone: Vec<PartyId> = self
                .parties
                .iter()
                .filter(|(_, p)| p.mg == mg)
                .map(|(k, _)| *k)
                .collect();
            for p in gone {
                self.free_party(now, ctx, p);
            }
        }
        self.txns.insert(now, key, Txn { notes: Vec::new() });
        self.arm_sweep(now);
        Ok(())
    }

    /// A gateway's reply to an MGC's request: the parties it names learn
    /// their context and termination (or go, when the gateway refused
    /// what created them), and each `Local` needs its pinholes open.
    #[allow(clippy::too_many_arguments)]
    fn up_reply(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        mg: &str,
        msg: &Message<'_>,
        item: &Item<'_>,
        r: &Reply<'_>,
        notes: &[Note],
        patch: &mut Patch,
        resuming: bool,
    ) -> Flow {
        if r.error.is_some() {
            self.free_created(now, ctx, notes);
            return Flow::Go;
        }
        // First every command's termination, so that a refusal below can
        // subtract any of them.
        let mut named: Vec<(&Command<'_>, PartyId)> = Vec::new();
        for (ai, action) in r.actions.iter().enumerate() {
            if action.error.is_some() {
                // The action failed (its commands may not be repeated).
                let mine: Vec<Note> = notes.iter().filter(|n| n.action == ai).copied().collect();
                self.free_created(now, ctx, &mine);
                continue;
            }
            for (ci, cmd) in action.commands.iter().enumerate() {
                let note = notes.iter().find(|n| n.action == ai && n.command == ci);
                if cmd.error.is_some() {
                    if let Some(n) = note {
                        self.free_created(now, ctx, &[*n]);
                    }
                    continue;
                }
                let party = match note {
                    // Gone meanwhile (subtracted): its media passes as it is.
                    Some(n) => self.parties.contains_key(&n.party).then_some(n.party),
                    None => self.known_party(now, mg, action.context, cmd),
                };
                if let Some(p) = party {
                    self.learn(now, p, action.context, cmd);
                    if MediaRole::of(item, cmd) == MediaRole::Answer {
                        named.push((cmd, p));
                    }
                }
            }
        }
        let mut waiting = None;
        for (cmd, p) in named {
            let Ok(local) = Described::read(msg, cmd, Which::Local, rx.remote.ip()) else {
                self.stats.sdp_errors += 1;
                tracing::warn!(mid = %mg, "H.248: unreadable Local from a gateway");
                return Flow::Refuse(PINHOLE_FAILED, p);
            };
            if local.is_empty() {
                continue;
            }
            let leg_key = self.leg_key(p);
            let step = self
                .media
                .outward(now, ctx, &p, &local.endpoints, &leg_key, resuming);
            match step {
                Step::Wait => waiting = waiting.or(Some(p)),
                Step::Ready(plan) => {
                    if local.rewrite(msg, &plan, patch).is_err() {
                        self.stats.sdp_errors += 1;
                        return Flow::Refuse(PINHOLE_FAILED, p);
                    }
                    self.stats.sdp_rewritten += 1;
                }
                Step::Failed(e) => {
                    if e.is_backing_off() {
                        // Logged once, where the back-off began.
                        tracing::debug!(mid = %mg, error = %e, "H.248: a media pinhole failed");
                    } else {
                        tracing::warn!(mid = %mg, error = %e, "H.248: a media pinhole failed");
                    }
                    return Flow::Refuse(PINHOLE_FAILED, p);
                }
            }
        }
        waiting.map_or(Flow::Go, Flow::Wait)
    }

    /// The party of a reply's command that no note names: the termination
    /// already known, else a new party when the reply names it fully (an
    /// Add the APS did not see as one, e.g. from before a restart).
    fn known_party(
        &mut self,
        now: Instant,
        mg: &str,
        context: ContextId,
        cmd: &Command<'_>,
    ) -> Option<PartyId> {
        let ContextId::Id(c) = context else {
            return None;
        };
        let [t] = cmd.terminations.as_slice() else {
            return None;
        };
        if t.is_wildcard() || t.is_choose() {
            return None;
        }
        if let Some(p) = self.party_of(mg, c, t.text) {
            return Some(p);
        }
        if !matches!(
            cmd.kind,
            CommandKind::Add | CommandKind::Modify | CommandKind::Move
        ) {
            return None;
        }
        self.new_party(now, mg, Some(c), Some(t.text)).ok()
    }

    /// The context and termination a gateway's reply gives party `p`.
    fn learn(&mut self, now: Instant, p: PartyId, context: ContextId, cmd: &Command<'_>) {
        let Some(party) = self.parties.get_mut(&p) else {
            return;
        };
        party.last = now;
        party.confirmed = true;
        if let ContextId::Id(c) = context {
            party.context = Some(c);
        }
        if let [t] = cmd.terminations.as_slice()
            && !t.is_wildcard()
            && !t.is_choose()
        {
            party.term = Some(t.text.to_owned());
        }
        self.index(p);
    }

    /// A reply whose pinhole failed: `why` (510) to the MPR in the
    /// gateway's name instead, and what the request created (and the
    /// termination that failed) subtracted at the gateway.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        mg: &str,
        msg: &Message<'_>,
        txid: u32,
        why: Rejection,
        failed: PartyId,
        notes: &[Note],
    ) {
        let answer = Transmit {
            local: self.cfg.local,
            remote: ctx.mpr(),
            payload: reply(msg.version(), msg.mid().text, txid, why),
            flow: Default::default(),
        };
        // A retransmitted reply gets the same refusal.
        self.txns.remember(
            now,
            &(mg.to_owned(), Dir::Down, txid),
            Leg::Response,
            &answer,
        );
        self.stats.replied += 1;
        self.out.send(answer);
        // The MGC hears the whole transaction failed: nothing it created
        // may stay at the gateway.
        let mut gone = vec![failed];
        gone.extend(notes.iter().filter(|n| n.created).map(|n| n.party));
        for p in gone {
            self.subtract_at_gateway(now, msg.version(), p);
            self.free_party(now, ctx, p);
        }
    }

    /// Our own Subtract of party `p`'s termination, to its gateway (when
    /// the gateway told us its context and name).
    fn subtract_at_gateway(&mut self, now: Instant, version: u8, p: PartyId) {
        let Some(party) = self.parties.get(&p) else {
            return;
        };
        let (Some(c), Some(t)) = (party.context, &party.term) else {
            return;
        };
        let Some(to) = self.gateways.get(&party.mg).map(|g| g.addr) else {
            return;
        };
        let id = self.next_own;
        let payload = subtract(version, &self.cfg.mid, id, c, t);
        self.own.insert((party.mg.clone(), id), now);
        self.next_own = if id == u32::MAX {
            super::OWN_IDS
        } else {
            id + 1
        };
        self.out.send(Transmit {
            local: self.cfg.local,
            remote: to,
            payload,
            flow: Default::default(),
        });
        self.arm_sweep(now);
    }
}

/// A Subtract of termination `term` of context `context`, in `mid`'s name.
pub(super) fn subtract(version: u8, mid: &str, id: u32, context: u32, term: &str) -> Vec<u8> {
    format!(
        "MEGACO/{version} {mid}\r\nTransaction = {id} {{\r\n Context = {context} {{\r\n  Subtract = {term}\r\n }}\r\n}}\r\n"
    )
    .into_bytes()
}

/// Whether a message carries a ServiceChange (a gateway announcing
/// itself, possibly from a new address).
fn is_service_change(msg: &Message<'_>) -> bool {
    msg.items().iter().any(|i| match i {
        Item::Request(r) => r
            .actions
            .iter()
            .flat_map(|a| &a.commands)
            .any(|c| c.kind == CommandKind::ServiceChange),
        _ => false,
    })
}

/// Whether a gateway's request restarts the whole gateway (ServiceChange
/// of ROOT, method Restart or Forced): its terminations are gone.
fn restarts(r: &Request<'_>) -> bool {
    r.actions.iter().flat_map(|a| &a.commands).any(|c| {
        c.kind == CommandKind::ServiceChange
            && c.terminations.iter().any(|t| t.is_root())
            && c.service_change
                .as_ref()
                .and_then(|s| s.method)
                .is_some_and(|m| {
                    ["restart", "rs", "forced", "fo"].contains(&m.to_ascii_lowercase().as_str())
                })
    })
}
