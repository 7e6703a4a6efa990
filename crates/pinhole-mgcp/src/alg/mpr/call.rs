//! The MPR's calls: one record per MGCP call (and per further connection
//! an endpoint holds in it), its two parties ([`Sides`]), its media at the
//! engine ([`MediaCall`]: offer, modification, re-offer, teardown), and the
//! relay addresses written into its descriptions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::Side;
use pinhole_core::alg::call::{MediaCall, Place, Planned, Sides};
use pinhole_core::alg::txn::Leg;
use pinhole_core::alg::unreadable::{Verdict, unreadable_media};
use pinhole_core::alg::{MprContext, Rejection};
use pinhole_core::intent::{IntentKind, MediaEndpoint, PlannedEndpoint};
use pinhole_core::mpr::IntentError;
use pinhole_core::patch::Patch;
use pinhole_core::types::{CallKey, Receive};
use pinhole_core::wire::Protocol;
use pinhole_sdp::{RewriteOptions, Sdp};

use super::Mpr;
use crate::alg::{BAD_SDP, Dir, Kind, NO_RESOURCES, dlcx_names};
use crate::{MediaRole, Message};

/// A call record: the call agent's address and the call id, followed for
/// a further connection on an endpoint by a newline and a number (a
/// newline cannot occur in an MGCP value).
pub(super) type CallId = (IpAddr, String);

/// The MGCP call a record belongs to.
fn base_call(id: &CallId) -> CallId {
    let cid = id.1.split_once('\n').map_or(id.1.as_str(), |(c, _)| c);
    (id.0, cid.to_owned())
}

/// Whether an endpoint name holds a wildcard (`*`, `$`).
fn is_wildcard(endpoint: &str) -> bool {
    endpoint.contains('*') || endpoint.contains('$')
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

    /// A gateway connection that exists, or is being created.
    fn live(&self) -> bool {
        matches!(self.place, Place::Network(_)) && (!self.conns.is_empty() || self.pending > 0)
    }
}

/// One call record.
pub(super) struct Call {
    media: MediaCall,
    parties: Sides<Party>,
    /// Relay addresses written into this call's descriptions: whose
    /// stream (side, index) each reaches.
    written: HashMap<SocketAddr, (Side, u16)>,
    created: Instant,
    last: Instant,
}

impl Call {
    /// The side of a gateway's connection: by connection id, else by
    /// endpoint name.
    fn side_of(&self, place: &Place, endpoint: &str, conn: Option<&str>) -> Option<Side> {
        if let Some(c) = conn
            && let Some(s) = self
                .parties
                .find(|p| p.place == *place && p.conns.iter().any(|x| x == c))
        {
            return Some(s);
        }
        self.parties
            .find(|p| p.place == *place && p.endpoint == endpoint)
    }

    fn live(&self) -> bool {
        self.parties.iter().any(|(_, p)| p.live())
    }
}

impl Mpr {
    /// The call record `id`, created if new (403 at the call limit).
    fn call_or_new(
        &mut self,
        now: Instant,
        id: &CallId,
        source: IpAddr,
    ) -> Result<&mut Call, Rejection> {
        // A command from another than the configured call agent comes from
        // a stranger: its unanswered calls are held to the engine's limits.
        let stranger = self
            .cfg
            .call_agent
            .is_some_and(|ca| ca.ip() != source)
            .then_some(source);
        if !self.calls.contains_key(id) {
            if self.calls.len() >= self.cfg.max_calls {
                self.stats.calls_refused += 1;
                return Err(NO_RESOURCES);
            }
            self.stats.calls += 1;
            self.records
                .entry(base_call(id))
                .or_default()
                .push(id.1.clone());
            let key = CallKey::new(format!("mgcp/{}/{}", id.0, id.1.replace('\n', "#")));
            self.calls.insert(
                id.clone(),
                Call {
                    media: match stranger {
                        Some(ip) => MediaCall::new(key).from_stranger(ip),
                        None => MediaCall::new(key),
                    },
                    parties: Sides::new(),
                    written: HashMap::new(),
                    created: now,
                    last: now,
                },
            );
        }
        self.calls.get_mut(id).ok_or(NO_RESOURCES)
    }

    /// A CRCX or MDCX toward a gateway: which side the gateway is, and the
    /// call agent's SDP (a relay address of this call passes; anything
    /// else is a public party's media, planned).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn down_media(
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
    ) -> Result<(Side, CallId), Rejection> {
        // The call agent's RemoteConnectionDescriptor, if it sent one.
        let sdp = match m.media_role() {
            MediaRole::Offer | MediaRole::Modify => match m.sdp() {
                Ok(s) => s,
                Err(e) => return Err(self.refuse(&e)),
            },
            _ => None,
        };
        let endpoints = match sdp.as_ref().map(|s| s.endpoints(rx.remote.ip())) {
            None => Vec::new(),
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(self.refuse(&e)),
        };
        let place = Place::Network(n.to_owned());
        let id = self.record_for(&id, &place, endpoint, conn, kind, &endpoints);
        let call = self.call_or_new(now, &id, rx.remote.ip())?;
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
                    None => match call.parties.free_side() {
                        Some(s) => s,
                        None => call
                            .parties
                            .find(|p| p.place == Place::Public)
                            .ok_or(Rejection::new(502, "Call has two parties"))?,
                    },
                };
                call.parties.set(s, Party::new(place.clone(), endpoint));
                s
            }
        };
        if let Some(p) = call.parties.get_mut(side)
            && is_wildcard(&p.endpoint)
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
            && let Some(p) = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.parties.get_mut(side))
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
                    .find(|p| mine(p) && p.conns.iter().any(|x| x == c))
                    .is_some()
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
        let wildcard = is_wildcard(endpoint);
        let taken = |call: &Call| {
            call.parties
                .find(|p| mine(p) && p.live() && (wildcard || p.endpoint == endpoint))
                .is_some()
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
        sdp: &Sdp<'_>,
        relayed: &[(MediaEndpoint, Side, u16)],
        public: &[MediaEndpoint],
        patch: &mut Patch,
    ) -> Result<(), Rejection> {
        let mut plan: Vec<PlannedEndpoint> = Vec::new();
        if !public.is_empty() {
            // A public party (media server, public phone) on the other side.
            let ps = side.peer();
            if let Some(call) = self.calls.get_mut(id)
                && call
                    .parties
                    .get(ps)
                    .is_none_or(|p| p.place != Place::Public)
            {
                call.parties.set(ps, Party::new(Place::Public, ""));
            }
            let planned = self
                .plan(now, ctx, id, ps, &Place::Public, place, public)
                .map_err(|_| NO_RESOURCES)?;
            plan.extend(planned);
        }
        for &(e, x, i) in relayed {
            // The other side's description reaches this network: plan it
            // toward here (the relay leg becomes this network's).
            let stored = self.calls.get(id).and_then(|c| {
                let p = c.parties.get(x)?;
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
            if let Err(e) = m.rewrite_sdp(sdp, &plan, &RewriteOptions::default(), patch) {
                return Err(self.refuse(&e));
            }
            self.stats.sdp_rewritten += 1;
        }
        Ok(())
    }

    /// Issue 18's rule ([`unreadable_media`]) for a command whose SDP
    /// cannot be read or rewritten (`e`): it is refused with 505 and never
    /// goes on. Counted and logged there.
    fn refuse(&mut self, e: &dyn std::fmt::Display) -> Rejection {
        match unreadable_media(
            Protocol::Mgcp,
            Leg::Request,
            BAD_SDP,
            e,
            &mut self.stats.sdp_errors,
        ) {
            Verdict::Refuse(why) => why,
            Verdict::Drop => BAD_SDP,
        }
    }

    /// The same rule for a response: dropped, never forwarded. False, for
    /// [`Mpr::down_response`] to return.
    fn drop_response(&mut self, e: &dyn std::fmt::Display) -> bool {
        self.drop_unreadable(e);
        false
    }

    /// [`Mpr::drop_response`] for a response of any direction.
    pub(super) fn drop_unreadable(&mut self, e: &dyn std::fmt::Display) {
        unreadable_media(
            Protocol::Mgcp,
            Leg::Response,
            BAD_SDP,
            e,
            &mut self.stats.sdp_errors,
        );
    }

    /// Plans `endpoints` of side `from` (an offer, or a modification once
    /// the call has media) and records what was written.
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
        let had_media = call.media.planned();
        let r = call.media.plan(
            now,
            ctx,
            &mut self.out,
            IntentKind::Offer,
            from,
            origin,
            toward,
            endpoints,
        );
        match r {
            Ok(Planned { plan, fresh }) => {
                if fresh && had_media {
                    // The engine forgot the call (its media expired) and it
                    // started again: what was written before is no longer
                    // a relay address of it.
                    call.written.clear();
                }
                for p in &plan.endpoints {
                    if p.addr.port() != 0 {
                        call.written.insert(p.addr, (from, p.index));
                    }
                }
                if let Some(party) = call.parties.get_mut(from) {
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

    /// A gateway's response to a call agent's command. False when it must
    /// not go on: its LocalConnectionDescriptor cannot be read or rewritten
    /// (issue 18; a response cannot be refused, so it is dropped and the
    /// call agent's retransmissions time out).
    pub(super) fn down_response(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        rx: &Receive<'_>,
        n: &str,
        m: &Message<'_>,
        patch: &mut Patch,
    ) -> bool {
        // Read first: a description that cannot be read never goes on,
        // whatever the response answers.
        let sdp = match m.sdp() {
            Ok(s) => s,
            Err(e) => return self.drop_response(&e),
        };
        let Some(r) = m.response() else {
            return true;
        };
        let key = (Dir::Down, n.to_owned(), r.transaction_id);
        let Some(e) = self.txns.get_mut(&key) else {
            return true;
        };
        e.last = now;
        let t = &e.data;
        if !r.is_final() || !matches!(t.kind, Kind::Crcx | Kind::Mdcx) {
            return true;
        }
        let (Some(cid), kind, side) = (t.call.clone(), t.kind, t.side) else {
            return true;
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
            return true;
        };
        call.last = now;
        let side = side
            .or_else(|| call.side_of(&place, &endpoint, conn.as_deref()))
            .or_else(|| call.parties.free_side());
        let Some(side) = side else {
            return true;
        };
        if call.parties.get(side).is_none() {
            call.parties.set(side, Party::new(place.clone(), &endpoint));
        }
        if let Some(p) = call.parties.get_mut(side) {
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
            return true;
        }
        // The gateway's LocalConnectionDescriptor: its side's media.
        if m.media_role() != MediaRole::Answer {
            return true;
        }
        let Some(sdp) = sdp else {
            return true;
        };
        let endpoints = match sdp.endpoints(rx.remote.ip()) {
            Ok(e) => e,
            Err(e) => return self.drop_response(&e),
        };
        let toward = call
            .parties
            .get(side.peer())
            .map_or(Place::Public, |p| p.place.clone());
        // A response cannot be refused: on a plan error it passes as it is
        // and the call has no media through us.
        let Ok(plan) = self.plan(now, ctx, &id, side, &place, &toward, &endpoints) else {
            return true;
        };
        if let Err(e) = m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), patch) {
            return self.drop_response(&e);
        }
        self.stats.sdp_rewritten += 1;
        true
    }

    /// DLCX: the connections it names are gone; a call with no gateway
    /// connection left loses its media.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dlcx(
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
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            c.last = now;
            let mut matched = Vec::new();
            for side in [Side::A, Side::B] {
                let Some(p) = c.parties.get_mut(side) else {
                    continue;
                };
                if p.place != place {
                    continue;
                }
                // RFC 3435 §2.3.9: a connection, else every connection of
                // the call (or of any call) on the endpoint.
                let hit = match conn {
                    Some(x) => {
                        let had = p.conns.iter().any(|c| c == x);
                        p.conns.retain(|c| c != x);
                        had
                    }
                    None if dlcx_names(endpoint, &p.endpoint) => {
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
        if c.parties.get(side).is_some_and(|p| !p.live()) {
            c.parties.take(side);
        }
        if !c.live() {
            self.end_call(now, ctx, id);
        }
    }

    fn end_call(&mut self, now: Instant, ctx: &mut dyn MprContext, id: &CallId) {
        let Some(mut c) = self.calls.remove(id) else {
            return;
        };
        let base = base_call(id);
        if let Some(list) = self.records.get_mut(&base) {
            list.retain(|r| *r != id.1);
            if list.is_empty() {
                self.records.remove(&base);
            }
        }
        // Only a call with media has legs to free at the engine.
        if c.media.planned() && c.media.teardown(now, ctx, &mut self.out) {
            self.stats.teardowns += 1;
        }
    }

    /// A CRCX never answered created nothing at the gateway: its party's
    /// pending count goes, and the party and the call with it if nothing
    /// else holds them.
    pub(super) fn unanswered_crcx(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        id: &CallId,
        side: Side,
    ) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let Some(p) = c.parties.get_mut(side) else {
            return;
        };
        p.pending = p.pending.saturating_sub(1);
        if !c.live() {
            self.stats.expired += 1;
        }
        self.forget_party_if_gone(now, ctx, id, side);
    }

    /// Forgets idle calls, and calls with no gateway connection once
    /// their setup time is over.
    pub(super) fn expire_calls(&mut self, now: Instant, ctx: &mut dyn MprContext) {
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
    }
}
