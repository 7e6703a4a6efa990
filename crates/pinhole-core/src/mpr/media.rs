//! Media intents, the leg table (Fig. 5), latching and inactivity.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Call, Engine, Event, IntentError, NetIdx, Owner, Stream, TimerKey};
use crate::intent::{IntentKind, MediaEndpoint, MediaIntent, MediaPlan, Origin, PlannedEndpoint};
use crate::relay::{Admission, RelayCommand, RelayReport, Remote};
use crate::types::{CallKey, Component, LegId, Side};
use crate::wire::RtcpMode;

impl Engine {
    pub(super) fn plan(
        &mut self,
        now: Instant,
        key: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError> {
        if intent.endpoints.len() > self.max_streams {
            return Err(IntentError::TooManyStreams(intent.endpoints.len()));
        }
        let origin = self.owner_of(intent.origin)?;
        let toward = self.owner_of(intent.toward)?;
        let call_id = match (self.call_ids.get(key).copied(), intent.kind) {
            (Some(id), _) => id,
            (None, IntentKind::Offer) => {
                let id = self.next_id;
                self.next_id += 1;
                let unanswered = self.unanswered_for(now, intent, toward);
                self.call_ids.insert(key.clone(), id);
                self.calls.insert(
                    id,
                    Call {
                        key: key.clone(),
                        streams: Vec::new(),
                        last_activity: now,
                        unanswered,
                    },
                );
                self.arm(now + self.timers_cfg.leg_inactivity, TimerKey::Call(id));
                if let Some(u) = unanswered {
                    self.arm(u.deadline, TimerKey::Call(id));
                }
                id
            }
            (None, _) => return Err(IntentError::UnknownCall),
        };
        if let Some(c) = self.calls.get_mut(&call_id) {
            c.last_activity = now;
        }
        let created = intent.kind == IntentKind::Offer
            && self
                .calls
                .get(&call_id)
                .is_some_and(|c| c.streams.is_empty());
        if let Err(err) = self.admit_unanswered(call_id, intent) {
            if created {
                self.teardown(now, key);
            }
            return Err(err);
        }
        let mut plan = MediaPlan {
            endpoints: Vec::with_capacity(intent.endpoints.len()),
        };
        for e in intent.endpoints {
            match self.plan_stream(now, call_id, intent.from, origin, toward, e) {
                Ok(p) => plan.endpoints.push(p),
                Err(err) => {
                    // A new call that cannot be planned leaves nothing behind.
                    if created {
                        self.teardown(now, key);
                    } else {
                        self.recount_unanswered(call_id);
                    }
                    return Err(err);
                }
            }
        }
        self.recount_unanswered(call_id);
        Ok(plan)
    }

    fn plan_stream(
        &mut self,
        now: Instant,
        call: u64,
        from: Side,
        origin: Owner,
        toward: Owner,
        e: &MediaEndpoint,
    ) -> Result<PlannedEndpoint, IntentError> {
        if e.is_disabled() {
            // RFC 3264 §8.2: port 0 removes the stream; its legs go.
            let legs = self
                .stream_mut(call, e.index)
                .map(|s| std::mem::take(&mut s.legs));
            for id in legs.into_iter().flatten().flatten() {
                self.close_leg(now, id);
            }
            return Ok(PlannedEndpoint {
                index: e.index,
                addr: e.addr,
                rtcp_addr: e.rtcp_addr,
            });
        }
        let sender = self.sender_leg(now, call, from, origin, e)?;
        let receiver = match self.stream_leg(call, e.index, from.peer()) {
            Some(id) => {
                self.adopt(id, toward)?;
                id
            }
            None => {
                let id = self.open_leg(
                    now,
                    toward,
                    self.family_hint(toward, e.addr.ip()),
                    RtcpMode::Pair,
                )?;
                self.attach(call, from.peer(), e.index, id);
                id
            }
        };
        self.connect(sender, receiver);
        self.renew_latch(now, receiver);
        let Some(r) = self.legs.get(&receiver) else {
            return Err(IntentError::UnknownCall);
        };
        let mut addr = r.rtp_addr();
        if e.is_hold() {
            // Keep the old-style hold visible to the other party.
            addr.set_ip(e.addr.ip());
        }
        let rtcp_addr = match (e.rtcp_addr, e.rtcp) {
            (None, _) => None,
            (Some(_), RtcpMode::Mux) => Some(addr),
            (Some(_), _) => Some(r.rtcp_addr().unwrap_or(addr)),
        };
        Ok(PlannedEndpoint {
            index: e.index,
            addr,
            rtcp_addr,
        })
    }

    /// A leg planned toward the public side moves to the network the
    /// description finally reaches. An MGCP call agent sits on the public
    /// side and copies the relay address it got into its command to the
    /// other gateway: only then does the ALG learn that gateway's network,
    /// whose CMPH must be able to bind the leg. A leg with a bound pinhole,
    /// a LEG-KEY or a fixed remote (a public party's own) stays as it is.
    fn adopt(&mut self, id: LegId, toward: Owner) -> Result<(), IntentError> {
        let Owner::Network(n) = toward else {
            return Ok(());
        };
        let Some(leg) = self.legs.get(&id) else {
            return Ok(());
        };
        let fixed = leg.remote.iter().any(|r| r.target().is_some());
        if leg.owner != Owner::Public || leg.pinhole != [None; 2] || leg.key.is_some() || fixed {
            return Ok(());
        }
        if self.networks[n].legs >= self.networks[n].cfg.max_legs {
            return Err(IntentError::QuotaReached);
        }
        self.networks[n].legs += 1;
        if let Some(l) = self.legs.get_mut(&id) {
            l.owner = toward;
        }
        Ok(())
    }

    /// The sender's own leg for a stream, bound the way its origin allows.
    fn sender_leg(
        &mut self,
        now: Instant,
        call: u64,
        from: Side,
        origin: Owner,
        e: &MediaEndpoint,
    ) -> Result<LegId, IntentError> {
        let current = self.stream_leg(call, e.index, from);
        if let Owner::Network(n) = origin {
            // A pinhole already bound by CMPH (Figs. 7, 8, 11): the message
            // carries the pinhole address the CMPH Response reported, or,
            // from a client that binds with indications, the listening
            // address its reserve named.
            let found = self
                .by_pinhole
                .get(&e.addr)
                .or_else(|| self.by_local.get(&(n, e.addr)))
                .copied();
            if let Some(bound) = found {
                let owned = self
                    .legs
                    .get(&bound)
                    .is_some_and(|l| l.owner == Owner::Network(n));
                if owned && current != Some(bound) {
                    if let Some(old) = current {
                        self.close_leg(now, old);
                    }
                    self.detach(bound);
                    self.attach(call, from, e.index, bound);
                    return Ok(bound);
                }
            }
        }
        let id = match current {
            Some(id) => id,
            None => {
                let id = self.open_leg(
                    now,
                    origin,
                    self.family_hint(origin, e.addr.ip()),
                    RtcpMode::Pair,
                )?;
                self.attach(call, from, e.index, id);
                id
            }
        };
        if e.is_hold() {
            return Ok(id);
        }
        match origin {
            Owner::Public => {
                // The public side's signaling is trusted: its address is its own.
                self.set_remote(id, Component::Rtp, Remote::Fixed(e.addr));
                let rtcp = e.rtcp_target().map_or(Remote::Unbound, Remote::Fixed);
                self.set_remote(id, Component::Rtcp, rtcp);
            }
            Owner::Network(n) => {
                let pinned = self.legs.get(&id).map(|l| l.pinhole).unwrap_or_default();
                let rtcp_port = e.rtcp_target().map(|a| a.port());
                if let Some(l) = self.legs.get_mut(&id) {
                    l.sdp = [Some(e.addr.port()), rtcp_port];
                }
                if pinned[0].is_none() {
                    self.arm_latch(now, id, Component::Rtp, n);
                }
                if pinned[1].is_none() && e.rtcp == RtcpMode::Pair {
                    if pinned[0].is_none() {
                        self.rtcp_follows(now, id);
                    } else {
                        self.arm_latch(now, id, Component::Rtcp, n);
                    }
                }
            }
        }
        Ok(id)
    }

    /// A plain terminal: learn its pinhole from its first packet, from the
    /// network's public IP only (or the IP the ALG vouched for, see
    /// [`Engine::handle_intent_latching`]), within the window. A latched
    /// leg stays put.
    fn arm_latch(&mut self, now: Instant, id: LegId, comp: Component, net: NetIdx) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let rearm = match leg.remote[super::component_index(comp)] {
            Remote::Unbound => true,
            Remote::Latch { until, .. } => until <= now,
            Remote::Fixed(_) | Remote::Provisional { .. } => false,
        };
        let Some(ip) = self.latch_hint.or_else(|| self.network_ip(net)) else {
            return;
        };
        if rearm {
            let until = now + self.timers_cfg.latch_window;
            self.set_remote(id, comp, Remote::Latch { ip, until });
        }
    }

    /// The other party's leg still waits for its first packet: a message
    /// of the call (an answer after long ringing, say) opens its latch
    /// window again, for the same IP. A plain terminal starts sending only
    /// when the call is answered.
    fn renew_latch(&mut self, now: Instant, id: LegId) {
        let Some(remote) = self.legs.get(&id).map(|l| l.remote) else {
            return;
        };
        let until = now + self.timers_cfg.latch_window;
        for comp in [Component::Rtp, Component::Rtcp] {
            let renewed = match remote[super::component_index(comp)] {
                Remote::Latch { ip, until: old } if old < until => Remote::Latch { ip, until },
                // The terminal's own port may still take over.
                Remote::Provisional {
                    source,
                    expected,
                    until: old,
                } if old < until => Remote::Provisional {
                    source,
                    expected,
                    until,
                },
                _ => continue,
            };
            self.set_remote(id, comp, renewed);
        }
    }

    /// A plain terminal's RTCP follows its RTP: nothing is accepted on it
    /// before RTP latched, and then only from the IP RTP latched to. When
    /// RTP came from the very port the SDP announced, the path keeps ports
    /// and RTCP is fixed to that IP and the SDP's RTCP port: nobody else,
    /// same IP or not, can latch it (the unused-RTCP-port attack). Otherwise
    /// (a NAT that changes ports) RTCP latches within the window like RTP,
    /// preferring the SDP's RTCP port.
    fn rtcp_follows(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let Some(rtcp_port) = leg.sdp[1] else {
            return;
        };
        if leg.pinhole[1].is_some() || leg.rtcp_mode != RtcpMode::Pair {
            return;
        }
        let next = match (leg.remote[0], leg.remote[1]) {
            (Remote::Fixed(s), _) if Some(s.port()) == leg.sdp[0] => {
                Remote::Fixed(SocketAddr::new(s.ip(), rtcp_port))
            }
            (Remote::Fixed(s) | Remote::Provisional { source: s, .. }, rtcp) => match rtcp {
                Remote::Fixed(r) | Remote::Provisional { source: r, .. } if r.ip() == s.ip() => {
                    return;
                }
                Remote::Latch { ip, until } if ip == s.ip() && now < until => return,
                _ => Remote::Latch {
                    ip: s.ip(),
                    until: now + self.timers_cfg.latch_window,
                },
            },
            _ => Remote::Unbound,
        };
        self.set_remote(id, Component::Rtcp, next);
    }

    fn network_ip(&self, net: NetIdx) -> Option<IpAddr> {
        self.networks[net].ip
    }

    fn family_hint(&self, owner: Owner, fallback: IpAddr) -> IpAddr {
        match owner {
            Owner::Network(n) => self.network_ip(n).unwrap_or(fallback),
            Owner::Public => fallback,
        }
    }

    fn owner_of(&self, o: Origin<'_>) -> Result<Owner, IntentError> {
        match o {
            Origin::Public => Ok(Owner::Public),
            Origin::Network(name) => self
                .by_name
                .get(name)
                .map(|n| Owner::Network(*n))
                .ok_or(IntentError::UnknownNetwork),
        }
    }

    fn stream_mut(&mut self, call: u64, index: u16) -> Option<&mut Stream> {
        self.calls
            .get_mut(&call)?
            .streams
            .iter_mut()
            .find(|s| s.index == index)
    }

    pub(super) fn stream_leg(&self, call: u64, index: u16, side: Side) -> Option<LegId> {
        self.calls
            .get(&call)?
            .streams
            .iter()
            .find(|s| s.index == index)?
            .legs[side.index()]
    }

    fn attach(&mut self, call: u64, side: Side, index: u16, id: LegId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let pos = match c.streams.iter().position(|s| s.index == index) {
            Some(p) => p,
            None => {
                c.streams.push(Stream {
                    index,
                    legs: [None, None],
                });
                c.streams.len() - 1
            }
        };
        c.streams[pos].legs[side.index()] = Some(id);
        if let Some(l) = self.legs.get_mut(&id) {
            l.call = Some((call, side, index));
        }
    }

    /// Takes a reserved leg out of whatever call held it before.
    fn detach(&mut self, id: LegId) {
        let Some((call, side, index)) = self.legs.get(&id).and_then(|l| l.call) else {
            return;
        };
        if let Some(s) = self.stream_mut(call, index)
            && s.legs[side.index()] == Some(id)
        {
            s.legs[side.index()] = None;
        }
    }

    fn connect(&mut self, a: LegId, b: LegId) {
        if self.legs.get(&a).and_then(|l| l.peer) == Some(b) {
            return;
        }
        if let Some(l) = self.legs.get_mut(&a) {
            l.peer = Some(b);
        }
        if let Some(l) = self.legs.get_mut(&b) {
            l.peer = Some(a);
        }
        self.commands
            .push_back(RelayCommand::Connect { leg: a, peer: b });
    }

    pub(super) fn teardown(&mut self, now: Instant, key: &CallKey) {
        let Some(id) = self.call_ids.remove(key) else {
            return; // A retransmitted BYE: already gone.
        };
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.forget_unanswered(call.unanswered);
        for s in call.streams {
            for leg in s.legs.into_iter().flatten() {
                self.close_leg(now, leg);
            }
        }
    }

    /// Marks a leg (and its call) active.
    pub(super) fn touch(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.last_activity = leg.last_activity.max(now);
        if let Some((call, _, _)) = leg.call
            && let Some(c) = self.calls.get_mut(&call)
        {
            c.last_activity = c.last_activity.max(now);
        }
    }

    pub(super) fn relay_report(&mut self, now: Instant, report: RelayReport) {
        match report {
            RelayReport::Activity { leg, at } => self.touch(at.min(now), leg),
            RelayReport::OpenFailed { leg } => {
                tracing::warn!(%leg, "relay could not open the leg's ports; dropping the leg");
                self.stats.relay_open_failures += 1;
                let pending = self.pending_reserves.iter().position(|p| p.leg == leg);
                match pending {
                    Some(i) => {
                        let p = self.pending_reserves.swap_remove(i);
                        self.reanswer_reserve(now, p);
                    }
                    None => {
                        self.detach(leg);
                        self.close_leg(now, leg);
                    }
                }
                self.refresh_gauges();
            }
            // A client relay's report; nothing for the MPR.
            RelayReport::LocalActivity { .. } => {}
            RelayReport::Latched {
                leg,
                component,
                source,
            } => {
                let c = super::component_index(component);
                let expected = self.legs.get(&leg).map(|l| (l.remote[c], l.sdp[c]));
                match expected {
                    Some((r, sdp)) if r.admit(source, now) == Admission::Latch => {
                        // A source on another port than the SDP's holds the
                        // leg only until the SDP's port shows up.
                        let next = match (r, sdp) {
                            (Remote::Latch { until, .. }, Some(expected))
                                if expected != source.port() =>
                            {
                                Remote::Provisional {
                                    source,
                                    expected,
                                    until,
                                }
                            }
                            _ => Remote::Fixed(source),
                        };
                        if let Remote::Provisional { source: old, .. } = r {
                            self.stats.latch_takeovers += 1;
                            tracing::warn!(%leg, from = %old, to = %source, "the port the SDP announced took over a leg latched to another port of its IP");
                        } else {
                            self.stats.latches += 1;
                        }
                        self.set_remote(leg, component, next);
                        self.touch(now, leg);
                        self.events.push_back(Event::Latched {
                            leg,
                            component,
                            source,
                        });
                        if component == Component::Rtp {
                            self.rtcp_follows(now, leg);
                        }
                    }
                    Some((actual, _)) => {
                        // The relay acted on a stale view: put it right.
                        self.stats.relay_corrections += 1;
                        tracing::warn!(%leg, %source, "relay latched against the engine's table; correcting");
                        self.commands.push_back(RelayCommand::SetRemote {
                            leg,
                            component,
                            remote: actual,
                        });
                    }
                    None => {
                        self.stats.relay_corrections += 1;
                        self.commands.push_back(RelayCommand::CloseLeg { leg });
                    }
                }
            }
        }
    }

    pub(super) fn call_timer(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let inactive = call.last_activity + self.timers_cfg.leg_inactivity;
        // An unanswered call's media cannot keep it: its sender could.
        let due = call
            .unanswered
            .map_or(inactive, |u| u.deadline.min(inactive));
        if due > now {
            self.arm(due, TimerKey::Call(id));
            return;
        }
        let key = call.key.clone();
        if call.unanswered.is_some() {
            tracing::info!("call from a stranger expired unanswered");
            self.stats.unanswered_expired += 1;
        } else {
            tracing::info!("call expired after inactivity");
        }
        self.teardown(now, &key);
        self.stats.calls_expired += 1;
        self.events.push_back(Event::CallExpired { call: key });
    }

    pub(super) fn leg_timer(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        if leg.call.is_some() {
            return; // The call's timer governs it now.
        }
        let due = leg.last_activity + self.timers_cfg.leg_inactivity;
        if due > now {
            self.arm(due, TimerKey::Leg(id.0));
            return;
        }
        self.close_leg(now, id);
        self.events.push_back(Event::LegExpired { leg: id });
    }

    /// For diagnostics and tests: the legs of a call's stream.
    pub fn call_legs(&self, key: &CallKey, index: u16) -> Option<[Option<LegId>; 2]> {
        let id = self.call_ids.get(key)?;
        let s = self
            .calls
            .get(id)?
            .streams
            .iter()
            .find(|s| s.index == index)?;
        Some(s.legs)
    }
}
