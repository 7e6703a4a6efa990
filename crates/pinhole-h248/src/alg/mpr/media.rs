//! The MPR's H.248 calls. A termination an MGC's Add, Modify or Move names
//! is a party; two parties (or a party and a public one) whose media meet
//! at the relay are one call ([`MediaCall`] with two [`Sides`]). H.248 has
//! no call identifier that both gateways see, so the second party finds
//! its call by the relay address the MGC copied into its `Remote`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::Side;
use pinhole_core::alg::call::{MediaCall, Place, Planned, Sides};
use pinhole_core::alg::{MprContext, Outbox, Rejection};
use pinhole_core::intent::{IntentKind, MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::types::CallKey;

use crate::alg::streams::{Described, Which};
use crate::alg::{BAD_SDP, NO_RESOURCES, Stats, names};
use crate::{Action, Command, CommandKind, ContextId, Item, MediaRole, Message, Reply, Request};

type PartyId = u64;
type CallId = u64;

/// What one command of an MGC's request was for: the party it named, and
/// whether the request created it (its failure or silence frees it).
#[derive(Clone, Debug)]
pub(super) struct Note {
    action: usize,
    command: usize,
    party: PartyId,
    created: bool,
}

/// The gateway, its network and the sender's IP (the fallback for a
/// domain name in `c=`) of a message.
pub(super) type Who<'a> = (&'a str, &'a str, IpAddr);

/// A termination of a gateway.
struct Party {
    mg: String,
    network: String,
    /// Known once the gateway answered (a CHOOSE context gets its id then).
    context: Option<u32>,
    term: Option<String>,
    call: Option<CallId>,
    side: Side,
    last: Instant,
}

/// One side of a call: where it sits, its termination (none for a public
/// party) and its latest description.
struct Member {
    place: Place,
    party: Option<PartyId>,
    endpoints: Vec<MediaEndpoint>,
}

struct Call {
    media: MediaCall,
    members: Sides<Member>,
    /// Relay addresses written for this call: whose stream each reaches.
    written: HashMap<SocketAddr, (Side, u16)>,
    created: Instant,
    last: Instant,
}

/// Every party and call of the MPR's H.248 ALG.
pub(super) struct Calls {
    max_calls: usize,
    max_parties: usize,
    next_id: u64,
    parties: HashMap<PartyId, Party>,
    /// (gateway, context, termination) → party.
    by_term: HashMap<(String, u32, String), PartyId>,
    calls: HashMap<CallId, Call>,
    /// Relay address → the call it was written for.
    relays: HashMap<SocketAddr, CallId>,
}

impl Calls {
    pub(super) fn new(max_calls: usize, max_parties: usize) -> Self {
        Self {
            max_calls,
            max_parties,
            next_id: 1,
            parties: HashMap::new(),
            by_term: HashMap::new(),
            calls: HashMap::new(),
            relays: HashMap::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.parties.is_empty()
    }

    /// Whether gateway `mg` has a termination here.
    pub(super) fn holds_gateway(&self, mg: &str) -> bool {
        self.parties.values().any(|p| p.mg == mg)
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The commands of an MGC's request: parties, media, teardown. An
    /// error refuses the whole transaction (what it created is freed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mgc_request(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        who: Who<'_>,
        msg: &Message<'_>,
        r: &Request<'_>,
        patch: &mut Patch,
    ) -> Result<Vec<Note>, Rejection> {
        let mut notes = Vec::new();
        for (ai, action) in r.actions.iter().enumerate() {
            for (ci, cmd) in action.commands.iter().enumerate() {
                let done = match cmd.kind {
                    CommandKind::Subtract => {
                        self.subtract(now, ctx, out, stats, who.0, action.context, cmd);
                        Ok(None)
                    }
                    CommandKind::Add | CommandKind::Modify | CommandKind::Move => self
                        .describe(now, ctx, out, stats, who, msg, action, cmd, patch)
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
                        self.unanswered(now, ctx, out, stats, &notes);
                        return Err(why);
                    }
                }
            }
        }
        Ok(notes)
    }

    /// An Add, Modify or Move: its termination's party, and the MGC's
    /// `Remote` toward it planned.
    #[allow(clippy::too_many_arguments)]
    fn describe(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        (mg, network, sender): Who<'_>,
        msg: &Message<'_>,
        action: &Action<'_>,
        cmd: &Command<'_>,
        patch: &mut Patch,
    ) -> Result<(PartyId, bool), Rejection> {
        let remote = Described::read(msg, cmd, Which::Remote, sender).map_err(|_| {
            stats.sdp_errors += 1;
            BAD_SDP
        })?;
        let specific = match cmd.terminations.as_slice() {
            [t] if !t.is_wildcard() => Some(t.text),
            _ => None,
        };
        let existing = specific.and_then(|t| {
            if let ContextId::Id(c) = action.context
                && let Some(p) = self.by_term.get(&(mg.to_owned(), c, t.to_owned()))
            {
                return Some(*p);
            }
            // A Move names the termination in the context it goes to.
            self.parties
                .iter()
                .find(|(_, p)| p.mg == mg && p.term.as_deref() == Some(t))
                .map(|(k, _)| *k)
        });
        let (party, created) = match existing {
            Some(p) => (p, false),
            None => {
                if self.parties.len() >= self.max_parties {
                    stats.calls_refused += 1;
                    return Err(NO_RESOURCES);
                }
                let id = self.id();
                self.parties.insert(
                    id,
                    Party {
                        mg: mg.to_owned(),
                        network: network.to_owned(),
                        context: match action.context {
                            ContextId::Id(c) => Some(c),
                            _ => None,
                        },
                        term: specific.map(str::to_owned),
                        call: None,
                        side: Side::A,
                        last: now,
                    },
                );
                (id, true)
            }
        };
        if let Some(p) = self.parties.get_mut(&party) {
            p.last = now;
        }
        let enabled = remote.enabled();
        if !enabled.is_empty()
            && let Err(why) =
                self.remote_sdp(now, ctx, out, stats, party, &remote, &enabled, msg, patch)
        {
            if created {
                self.forget_party(now, ctx, out, stats, party);
            }
            return Err(why);
        }
        Ok((party, created))
    }

    /// The MGC's `Remote` toward `party`: relay addresses of a call join
    /// the party to it (the other side's media planned again toward this
    /// network); any other address is a public party's media, planned.
    #[allow(clippy::too_many_arguments)]
    fn remote_sdp(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        party: PartyId,
        remote: &Described<'_>,
        enabled: &[MediaEndpoint],
        msg: &Message<'_>,
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        let mut relayed = Vec::new();
        let mut public = Vec::new();
        for e in enabled {
            let owner = self.relays.get(&e.addr).and_then(|c| {
                let (s, i) = *self.calls.get(c)?.written.get(&e.addr)?;
                Some((*c, s, i))
            });
            match owner {
                Some(o) => relayed.push((*e, o)),
                None if e.is_hold() => {}
                None => public.push(*e),
            }
        }
        let cid = self.join(
            now,
            stats,
            party,
            relayed.first().map(|(_, (c, s, _))| (*c, s.peer())),
        )?;
        let Some((side, place)) = self.parties.get(&party).map(|p| (p.side, place_of(p))) else {
            return Err(NO_RESOURCES);
        };
        let mut plan: Vec<PlannedEndpoint> = Vec::new();
        if !public.is_empty() {
            let peer = side.peer();
            if let Some(call) = self.calls.get_mut(&cid)
                && call.members.get(peer).is_none_or(|m| m.party.is_none())
            {
                call.members.set(
                    peer,
                    Member {
                        place: Place::Public,
                        party: None,
                        endpoints: Vec::new(),
                    },
                );
            }
            let got = self
                .plan(now, ctx, out, stats, cid, peer, &place, &public)
                .map_err(|()| NO_RESOURCES)?;
            plan.extend(got);
        }
        for (e, (_, x, i)) in relayed {
            let stored = self.calls.get(&cid).and_then(|c| {
                let m = c.members.get(x)?;
                m.endpoints.iter().find(|s| s.index == i).copied()
            });
            let Some(stored) = stored else {
                continue;
            };
            let Ok(got) = self.plan(now, ctx, out, stats, cid, x, &place, &[stored]) else {
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
            remote.rewrite(msg, &plan, patch).map_err(|_| {
                stats.sdp_errors += 1;
                BAD_SDP
            })?;
            stats.sdp_rewritten += 1;
        }
        Ok(())
    }

    /// The call `party` belongs to: its own, else the call (and side) a
    /// relay address named, else a new one with the party on side A.
    fn join(
        &mut self,
        now: Instant,
        stats: &mut Stats,
        party: PartyId,
        named: Option<(CallId, Side)>,
    ) -> Result<CallId, Rejection> {
        let Some(p) = self.parties.get(&party) else {
            return Err(NO_RESOURCES);
        };
        if let Some(c) = p.call
            && self.calls.contains_key(&c)
        {
            return Ok(c);
        }
        let place = place_of(p);
        let (cid, side) = match named {
            Some((c, side)) => {
                let call = self.calls.get(&c).ok_or(NO_RESOURCES)?;
                if call
                    .members
                    .get(side)
                    .is_some_and(|m| m.party.is_some_and(|o| o != party))
                {
                    return Err(Rejection::new(510, "Call has two parties"));
                }
                (c, side)
            }
            None => (self.new_call(now, stats)?, Side::A),
        };
        if let Some(call) = self.calls.get_mut(&cid) {
            call.members.set(
                side,
                Member {
                    place,
                    party: Some(party),
                    endpoints: Vec::new(),
                },
            );
            call.last = now;
        }
        if let Some(p) = self.parties.get_mut(&party) {
            p.call = Some(cid);
            p.side = side;
        }
        Ok(cid)
    }

    fn new_call(&mut self, now: Instant, stats: &mut Stats) -> Result<CallId, Rejection> {
        if self.calls.len() >= self.max_calls {
            stats.calls_refused += 1;
            return Err(NO_RESOURCES);
        }
        stats.calls += 1;
        let id = self.id();
        self.calls.insert(
            id,
            Call {
                media: MediaCall::new(CallKey::new(format!("h248/{id}"))),
                members: Sides::new(),
                written: HashMap::new(),
                created: now,
                last: now,
            },
        );
        Ok(id)
    }

    /// Plans `endpoints` of side `from` of call `cid` toward `toward`, and
    /// records the relay addresses written.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        cid: CallId,
        from: Side,
        toward: &Place,
        endpoints: &[MediaEndpoint],
    ) -> Result<Vec<PlannedEndpoint>, ()> {
        let Some(call) = self.calls.get_mut(&cid) else {
            return Err(());
        };
        let origin = call
            .members
            .get(from)
            .map_or(Place::Public, |m| m.place.clone());
        let had_media = call.media.planned();
        let r = call.media.plan(
            now,
            ctx,
            out,
            IntentKind::Offer,
            from,
            &origin,
            toward,
            endpoints,
        );
        match r {
            Ok(Planned { plan, fresh }) => {
                if fresh && had_media {
                    // The engine forgot the call and started it again:
                    // what was written before is no relay address of it.
                    for a in call.written.keys() {
                        self.relays.remove(a);
                    }
                    call.written.clear();
                }
                for p in &plan.endpoints {
                    if p.addr.port() != 0 {
                        call.written.insert(p.addr, (from, p.index));
                        self.relays.insert(p.addr, cid);
                    }
                }
                if let Some(m) = call.members.get_mut(from) {
                    for e in endpoints {
                        m.endpoints.retain(|s| s.index != e.index);
                        m.endpoints.push(*e);
                    }
                }
                call.last = now;
                Ok(plan.endpoints)
            }
            Err(e) => {
                stats.plan_errors += 1;
                tracing::warn!(error = %e, "H.248: media plan refused");
                Err(())
            }
        }
    }

    /// A gateway's reply to an MGC's request: the parties it created learn
    /// their context and termination (or go, when it failed), and a
    /// `Local` descriptor (the gateway's media) is planned and rewritten
    /// to relay addresses. A reply is never refused: what cannot be
    /// planned passes as it is. A `Local` that cannot be read or rewritten
    /// is an `Err` (issue 18): the caller drops the reply.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gateway_reply(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        (mg, _, sender): Who<'_>,
        msg: &Message<'_>,
        item: &Item<'_>,
        r: &Reply<'_>,
        notes: &[Note],
        patch: &mut Patch,
    ) -> Result<(), &'static str> {
        if r.error.is_some() {
            self.unanswered(now, ctx, out, stats, notes);
            return Ok(());
        }
        for (ai, action) in r.actions.iter().enumerate() {
            if action.error.is_some() {
                // An action's error may stand alone, with no command
                // replies: everything the action created goes.
                let mine: Vec<Note> = notes.iter().filter(|n| n.action == ai).cloned().collect();
                self.unanswered(now, ctx, out, stats, &mine);
                continue;
            }
            for (ci, cmd) in action.commands.iter().enumerate() {
                let Some(note) = notes.iter().find(|n| n.action == ai && n.command == ci) else {
                    continue;
                };
                if cmd.error.is_some() {
                    if note.created {
                        self.forget_party(now, ctx, out, stats, note.party);
                    }
                    continue;
                }
                self.learn(now, mg, note.party, action.context, cmd);
                if MediaRole::of(item, cmd) == MediaRole::Answer {
                    self.local_sdp(now, ctx, out, stats, note.party, msg, cmd, sender, patch)?;
                }
            }
        }
        Ok(())
    }

    /// The context and termination the gateway answered with.
    fn learn(
        &mut self,
        now: Instant,
        mg: &str,
        party: PartyId,
        context: ContextId,
        cmd: &Command<'_>,
    ) {
        let Some(p) = self.parties.get_mut(&party) else {
            return;
        };
        p.last = now;
        if let ContextId::Id(c) = context {
            p.context = Some(c);
        }
        if let [t] = cmd.terminations.as_slice()
            && !t.is_wildcard()
        {
            p.term = Some(t.text.to_owned());
        }
        if let (Some(c), Some(t)) = (p.context, p.term.clone()) {
            self.by_term.retain(|_, v| *v != party);
            self.by_term.insert((mg.to_owned(), c, t), party);
        }
    }

    /// A gateway's `Local`: its side's media, planned toward the other
    /// side (the public side while there is none).
    #[allow(clippy::too_many_arguments)]
    fn local_sdp(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        party: PartyId,
        msg: &Message<'_>,
        cmd: &Command<'_>,
        sender: IpAddr,
        patch: &mut Patch,
    ) -> Result<(), &'static str> {
        let Ok(local) = Described::read(msg, cmd, Which::Local, sender) else {
            return Err("a Local descriptor cannot be read");
        };
        let enabled = local.enabled();
        if enabled.is_empty() {
            return Ok(());
        }
        let Ok(cid) = self.join(now, stats, party, None) else {
            return Ok(());
        };
        let Some(side) = self.parties.get(&party).map(|p| p.side) else {
            return Ok(());
        };
        let toward = self
            .calls
            .get(&cid)
            .and_then(|c| c.members.get(side.peer()))
            .map_or(Place::Public, |m| m.place.clone());
        let Ok(plan) = self.plan(now, ctx, out, stats, cid, side, &toward, &enabled) else {
            return Ok(());
        };
        if local.rewrite(msg, &plan, patch).is_err() {
            return Err("a Local descriptor cannot be rewritten");
        }
        stats.sdp_rewritten += 1;
        Ok(())
    }

    /// A gateway's own request: a ServiceChange of the whole gateway that
    /// restarts it or takes it out of service ends its terminations.
    pub(super) fn gateway_request(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        mg: &str,
        r: &Request<'_>,
    ) {
        let restarted = r.actions.iter().flat_map(|a| &a.commands).any(|c| {
            c.kind == CommandKind::ServiceChange
                && c.terminations.iter().any(|t| t.is_root())
                && c.service_change
                    .as_ref()
                    .and_then(|s| s.method)
                    .is_some_and(|m| {
                        ["restart", "rs", "forced", "fo"].contains(&m.to_ascii_lowercase().as_str())
                    })
        });
        if !restarted {
            return;
        }
        let gone: Vec<PartyId> = self
            .parties
            .iter()
            .filter(|(_, p)| p.mg == mg)
            .map(|(k, _)| *k)
            .collect();
        for p in gone {
            self.forget_party(now, ctx, out, stats, p);
        }
    }

    /// A Subtract: the terminations it names (in a context, or `*` in
    /// every context) end.
    #[allow(clippy::too_many_arguments)]
    fn subtract(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        mg: &str,
        context: ContextId,
        cmd: &Command<'_>,
    ) {
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
                let Some(term) = &p.term else {
                    return false;
                };
                cmd.terminations.iter().any(|t| names(t.text, term))
            })
            .map(|(k, _)| *k)
            .collect();
        for p in gone {
            self.forget_party(now, ctx, out, stats, p);
        }
    }

    /// Parties created by requests that were refused or never answered.
    pub(super) fn unanswered(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        notes: &[Note],
    ) {
        for n in notes.iter().filter(|n| n.created) {
            if self
                .parties
                .get(&n.party)
                .is_some_and(|p| p.context.is_none())
            {
                self.forget_party(now, ctx, out, stats, n.party);
            }
        }
    }

    /// A party ends; its call's media ends with the last termination.
    fn forget_party(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        party: PartyId,
    ) {
        let Some(p) = self.parties.remove(&party) else {
            return;
        };
        self.by_term.retain(|_, v| *v != party);
        let Some(cid) = p.call else {
            return;
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if call
            .members
            .get(p.side)
            .is_some_and(|m| m.party == Some(party))
        {
            call.members.take(p.side);
        }
        if call.members.iter().all(|(_, m)| m.party.is_none()) {
            self.end_call(now, ctx, out, stats, cid);
        }
    }

    fn end_call(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        cid: CallId,
    ) {
        let Some(mut call) = self.calls.remove(&cid) else {
            return;
        };
        for a in call.written.keys() {
            self.relays.remove(a);
        }
        for (_, m) in call.members.iter() {
            if let Some(p) = m.party.and_then(|p| self.parties.get_mut(&p)) {
                p.call = None;
            }
        }
        if call.media.planned() && call.media.teardown(now, ctx, out) {
            stats.teardowns += 1;
        }
    }

    /// Forgets idle calls and parties, and calls that never got media.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        stats: &mut Stats,
        setup: Duration,
        idle: Duration,
    ) {
        let stale: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                now >= c.last + idle || (!c.media.planned() && now >= c.created + setup)
            })
            .map(|(k, _)| *k)
            .collect();
        for c in stale {
            stats.expired += 1;
            self.end_call(now, ctx, out, stats, c);
        }
        let idle_parties: Vec<PartyId> = self
            .parties
            .iter()
            .filter(|(_, p)| now >= p.last + idle)
            .map(|(k, _)| *k)
            .collect();
        for p in idle_parties {
            stats.expired += 1;
            self.forget_party(now, ctx, out, stats, p);
        }
    }
}

/// Where a party sits, for the engine.
fn place_of(p: &Party) -> Place {
    Place::Network(p.network.clone())
}
