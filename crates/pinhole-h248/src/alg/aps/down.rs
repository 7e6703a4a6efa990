//! What comes from the MPR: the MGC's requests to the inside gateways
//! (their `Remote` descriptors get ports B — in the smart gateway mode
//! they pass as they are — their Subtracts free them), and the MGC's
//! replies to the gateways' requests.

use std::time::Instant;

use pinhole_core::alg::aps::{Mode, Step};
use pinhole_core::alg::{ClientContext, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Receive, Transmit};

use super::{Aps, Note, PartyId, Txn};
use crate::alg::streams::{Described, Which};
use crate::alg::{
    BAD_SDP, Dir, NO_RESOURCES, assemble, keep_sent, leg_of, mid_key, names, reply, untag,
};
use crate::{Action, Command, CommandKind, ContextId, Item, Message, Request, parse};

impl Aps {
    /// A datagram from the MPR: to the gateway its line names, without
    /// that line, with only the media edits.
    pub(super) fn mpr_datagram(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
    ) {
        let Some((mid, bytes)) = untag(rx.bytes) else {
            self.stats.unknown_mg += 1;
            tracing::debug!("H.248: message from the MPR without its gateway line dropped");
            return;
        };
        let mg = mid_key(mid);
        let Some(to) = self.gateways.get(&mg).map(|g| g.addr) else {
            self.stats.unknown_mg += 1;
            tracing::debug!(mid = %mg, "H.248: message from the MPR for an unknown gateway dropped");
            return;
        };
        // Spans are relative to the message without the line.
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(mid = %mg, error = %e, "H.248: unparsable message from the MPR dropped");
                return;
            }
        };
        if self.retransmission_outside(&mg, &msg, to) {
            return;
        }
        let mut patch = Patch::new();
        let mut drop = vec![false; msg.items().len()];
        let mut errors = Vec::new();
        for (item, cut) in msg.items().iter().zip(&mut drop) {
            match item {
                Item::Request(r) => {
                    let key = (mg.clone(), Dir::Down, r.id);
                    let done = self
                        .txns
                        .room(&key, NO_RESOURCES)
                        .inspect_err(|_| self.stats.transactions_refused += 1)
                        .and_then(|()| self.down_request(now, ctx, rx, &mg, &msg, r, &mut patch));
                    match done {
                        Ok(notes) => {
                            self.txns.insert(now, key, Txn { notes });
                            self.arm_sweep(now);
                        }
                        Err(why) => {
                            tracing::warn!(mid = %mg, transaction = r.id, code = why.code,
                                reason = why.reason, "H.248: MGC request refused");
                            errors.push(reply(msg.version(), mid, r.id, why));
                            *cut = true;
                        }
                    }
                }
                Item::Reply(r) => {
                    if !self.txns.contains(&(mg.clone(), Dir::Up, r.id)) {
                        self.stats.unknown_transaction += 1;
                        tracing::debug!(mid = %mg, transaction = r.id, "H.248: MGC reply to no gateway request dropped");
                        *cut = true;
                    }
                }
                Item::Pending { .. } | Item::ResponseAck { .. } => {}
            }
        }
        // Refusals go back the way the request came, in the gateway's name.
        self.answer(ctx.mpr(), errors);
        let Some(payload) = assemble(&msg, &drop, &mut patch) else {
            return;
        };
        let out = Transmit {
            local: self.cfg.local,
            remote: to,
            payload,
            flow: Default::default(),
        };
        keep_sent(&mut self.txns, now, &msg, &drop, &out, |first, leg| {
            Some((mg.clone(), Dir::of(Dir::Down, leg), first.id()?))
        });
        self.send(out);
    }

    /// An MGC's transaction seen before: to the gateway as it went the
    /// first time.
    fn retransmission_outside(
        &mut self,
        mg: &str,
        msg: &Message<'_>,
        to: std::net::SocketAddr,
    ) -> bool {
        let Some(first) = msg.items().first() else {
            return false;
        };
        let (Some(leg), Some(id)) = (leg_of(first), first.id()) else {
            return false;
        };
        let key = (mg.to_owned(), Dir::of(Dir::Down, leg), id);
        let Some(mut out) = self.txns.replay(&key, leg) else {
            return false;
        };
        out.remote = to;
        self.stats.retransmissions += 1;
        self.send(out);
        true
    }

    /// The commands of an MGC's request for gateway `mg`: parties and
    /// ports B, teardown. An error refuses the whole transaction (what it
    /// created is freed).
    #[allow(clippy::too_many_arguments)]
    fn down_request(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        mg: &str,
        msg: &Message<'_>,
        r: &Request<'_>,
        patch: &mut Patch,
    ) -> Result<Vec<Note>, Rejection> {
        let mut notes = Vec::new();
        for (ai, action) in r.actions.iter().enumerate() {
            for (ci, cmd) in action.commands.iter().enumerate() {
                let done = match cmd.kind {
                    CommandKind::Subtract => {
                        if self.subtract(now, ctx, mg, action.context, cmd) > 0 {
                            self.stats.teardowns += 1;
                        }
                        Ok(None)
                    }
                    CommandKind::Add | CommandKind::Modify | CommandKind::Move => self
                        .describe(now, ctx, rx, mg, msg, action, cmd, patch)
                        .map(Some),
                    _ => Ok(None),
                };
                match done {
                    Ok(Some((party, created))) => notes.push(Note {
                        action: ai,
                        command: ci,
                        party,
                        created,
                    }),
                    Ok(None) => {}
                    Err(why) => {
                        self.free_created(now, ctx, &notes);
                        return Err(why);
                    }
                }
            }
        }
        Ok(notes)
    }

    /// An Add, Modify or Move: its termination's party, and the MGC's
    /// `Remote` toward it given ports B, which the relay maps to the
    /// relay addresses it names.
    #[allow(clippy::too_many_arguments)]
    fn describe(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        rx: &Receive<'_>,
        mg: &str,
        msg: &Message<'_>,
        action: &Action<'_>,
        cmd: &Command<'_>,
        patch: &mut Patch,
    ) -> Result<(PartyId, bool), Rejection> {
        let remote = Described::read(msg, cmd, Which::Remote, rx.remote.ip()).map_err(|_| {
            self.stats.sdp_errors += 1;
            BAD_SDP
        })?;
        let specific = match cmd.terminations.as_slice() {
            [t] if !t.is_wildcard() && !t.is_choose() => Some(t.text),
            _ => None,
        };
        let context = match action.context {
            ContextId::Id(c) => Some(c),
            _ => None,
        };
        let existing = specific.and_then(|t| {
            context.and_then(|c| self.party_of(mg, c, t)).or_else(|| {
                // A Move names the termination in the context it goes to.
                self.parties
                    .iter()
                    .find(|(_, p)| {
                        p.mg == mg && p.term.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(t))
                    })
                    .map(|(k, _)| *k)
            })
        });
        let (party, created) = match existing {
            Some(p) => (p, false),
            None => (self.new_party(now, mg, context, specific)?, true),
        };
        if let Some(p) = self.parties.get_mut(&party) {
            p.last = now;
        }
        if remote.is_empty() {
            return Ok((party, created));
        }
        let plan = match self.media.inward(now, ctx, &party, &remote.endpoints) {
            // A smart gateway sends straight to the relay address: the
            // stream only notes it (its pinhole opens toward it), and the
            // MGC's bytes go on as they are.
            Step::Ready(_) if self.cfg.mode == Mode::Terminal => return Ok((party, created)),
            Step::Ready(plan) => Ok(plan),
            Step::Wait => Err(NO_RESOURCES),
            Step::Failed(e) => {
                tracing::warn!(mid = %mg, error = %e, "H.248: no media port B for a Remote");
                Err(NO_RESOURCES)
            }
        };
        let written = plan.and_then(|plan| {
            remote.rewrite(msg, &plan, patch).map_err(|_| {
                self.stats.sdp_errors += 1;
                BAD_SDP
            })
        });
        if let Err(why) = written {
            if created {
                self.free_party(now, ctx, party);
            }
            return Err(why);
        }
        self.stats.sdp_rewritten += 1;
        Ok((party, created))
    }

    /// A Subtract: the parties of `mg` it names (a termination, a
    /// wildcard, in a context or in every context with `*`) end; how many.
    fn subtract(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        mg: &str,
        context: ContextId,
        cmd: &Command<'_>,
    ) -> usize {
        let gone: Vec<PartyId> = self
            .parties
            .iter()
            .filter(|(_, p)| p.mg == mg)
            .filter(|(_, p)| match context {
                ContextId::Id(c) => p.context == Some(c),
                ContextId::All => true,
                ContextId::Null | ContextId::Choose => false,
            })
            .filter(|(_, p)| {
                p.term
                    .as_deref()
                    .is_some_and(|term| cmd.terminations.iter().any(|t| names(t.text, term)))
            })
            .map(|(k, _)| *k)
            .collect();
        for &p in &gone {
            self.free_party(now, ctx, p);
        }
        gone.len()
    }
}
