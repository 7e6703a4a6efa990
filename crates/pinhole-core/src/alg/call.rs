//! The MPR's call model, for every protocol: where each of a call's two
//! parties sits, and what a description of one of them means for the
//! engine (an offer, a modification, an answer, a re-offer after the
//! engine forgot the call, a teardown).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{AlgEvent, MprContext, Outbox};
use crate::intent::{IntentKind, MediaEndpoint, MediaIntent, MediaPlan, Origin};
use crate::mpr::IntentError;
use crate::types::{CallKey, Side};

/// Where a party of a call sits.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Place {
    /// Behind a network's signaling pinhole (an APS, a smart terminal).
    Network(String),
    /// A plain terminal of a network (no APS, no CMPH), at the NAT binding
    /// its registrar-authenticated signaling comes from: its legs latch
    /// onto that IP.
    Phone {
        /// The network it belongs to.
        network: String,
        /// Its NAT binding.
        at: SocketAddr,
    },
    /// The public side (a soft-switch, a public phone, a media server).
    Public,
}

impl Place {
    /// The engine's view of the place.
    pub fn origin(&self) -> Origin<'_> {
        match self {
            Self::Network(n) | Self::Phone { network: n, .. } => Origin::Network(n),
            Self::Public => Origin::Public,
        }
    }

    /// The network the place belongs to.
    pub fn network(&self) -> Option<&str> {
        match self {
            Self::Network(n) | Self::Phone { network: n, .. } => Some(n),
            Self::Public => None,
        }
    }
}

/// Something per side of a two-party call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sides<T>([Option<T>; 2]);

impl<T> Default for Sides<T> {
    fn default() -> Self {
        Self([None, None])
    }
}

impl<T> Sides<T> {
    /// Both sides empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Both sides known.
    pub fn both(a: T, b: T) -> Self {
        Self([Some(a), Some(b)])
    }

    fn at(side: Side) -> usize {
        match side {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// The side's value.
    pub fn get(&self, side: Side) -> Option<&T> {
        self.0[Self::at(side)].as_ref()
    }

    /// The side's value, to change.
    pub fn get_mut(&mut self, side: Side) -> Option<&mut T> {
        self.0[Self::at(side)].as_mut()
    }

    /// Puts a value on a side, giving back the one it replaces.
    pub fn set(&mut self, side: Side, value: T) -> Option<T> {
        self.0[Self::at(side)].replace(value)
    }

    /// Empties a side.
    pub fn take(&mut self, side: Side) -> Option<T> {
        self.0[Self::at(side)].take()
    }

    /// The first side with nothing on it.
    pub fn free_side(&self) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|s| self.get(*s).is_none())
    }

    /// The first side whose value matches.
    pub fn find(&self, mut f: impl FnMut(&T) -> bool) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|s| self.get(*s).is_some_and(&mut f))
    }

    /// The sides' values, A first.
    pub fn iter(&self) -> impl Iterator<Item = (Side, &T)> {
        [Side::A, Side::B]
            .into_iter()
            .filter_map(|s| self.get(s).map(|v| (s, v)))
    }
}

/// A plan and whether the engine's call started with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// What to write into the description.
    pub plan: MediaPlan,
    /// The engine had no media for the call before: a first offer, or a
    /// re-offer after the engine forgot it (addresses written for the
    /// call before are no longer relay addresses of it).
    pub fresh: bool,
}

/// One call's media at the engine: its key and whether it has media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCall {
    key: CallKey,
    planned: bool,
    stranger: Option<IpAddr>,
}

impl MediaCall {
    /// A call with no media yet.
    pub fn new(key: CallKey) -> Self {
        Self {
            key,
            planned: false,
            stranger: None,
        }
    }

    /// A call that an unauthenticated public sender at `ip` starts: until
    /// it is answered, its legs count against the engine's
    /// [`Limits`](crate::mpr::Limits) and it ends on the short
    /// [`Timers::unanswered`](crate::mpr::Timers::unanswered) timer.
    pub fn from_stranger(mut self, ip: IpAddr) -> Self {
        self.stranger = Some(ip);
        self
    }

    /// Tells the engine the called party shows signs of life (a
    /// provisional response): the call may ring as long as a call may
    /// wait for its answer.
    pub fn progress(&self, now: Instant, ctx: &mut dyn MprContext) {
        if self.planned {
            ctx.progress(now, &self.key);
        }
    }

    /// The engine's key of the call.
    pub fn key(&self) -> &CallKey {
        &self.key
    }

    /// True once the engine planned media for it.
    pub fn planned(&self) -> bool {
        self.planned
    }

    /// Plans a description that `from`, sitting at `origin`, sends toward
    /// `toward`. An offer of a call with media is a modification; a
    /// modification of a call the engine forgot (its media expired) is
    /// offered again; an answer stays one. A plain terminal's legs latch
    /// onto its binding's IP. Events go to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        now: Instant,
        ctx: &mut dyn MprContext,
        out: &mut Outbox,
        kind: IntentKind,
        from: Side,
        origin: &Place,
        toward: &Place,
        endpoints: &[MediaEndpoint],
    ) -> Result<Planned, IntentError> {
        let kind = match kind {
            IntentKind::Offer | IntentKind::Modify if self.planned => IntentKind::Modify,
            IntentKind::Offer | IntentKind::Modify => IntentKind::Offer,
            other => other,
        };
        let once = |ctx: &mut dyn MprContext, kind| {
            let intent = MediaIntent {
                kind,
                from,
                origin: origin.origin(),
                toward: toward.origin(),
                endpoints,
                stranger: match origin {
                    Place::Public => self.stranger,
                    _ => None,
                },
            };
            match origin {
                Place::Phone { at, .. } => ctx.plan_latching(now, &self.key, &intent, at.ip()),
                _ => ctx.plan(now, &self.key, &intent),
            }
        };
        let mut fresh = kind == IntentKind::Offer;
        let r = match once(ctx, kind) {
            Err(IntentError::UnknownCall) if kind == IntentKind::Modify => {
                fresh = true;
                once(ctx, IntentKind::Offer)
            }
            r => r,
        };
        match r {
            Ok(plan) => {
                if !self.planned || fresh {
                    out.event(AlgEvent::CallAnchored {
                        call: self.key.clone(),
                    });
                }
                self.planned = true;
                out.event(AlgEvent::MediaPlanned {
                    call: self.key.clone(),
                    streams: plan.endpoints.len(),
                });
                Ok(Planned { plan, fresh })
            }
            Err(e) => {
                out.event(AlgEvent::PlanRefused {
                    call: self.key.clone(),
                    reason: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// Ends the call's media at the engine. True when it had some.
    pub fn teardown(&mut self, now: Instant, ctx: &mut dyn MprContext, out: &mut Outbox) -> bool {
        let intent = MediaIntent {
            kind: IntentKind::Teardown,
            from: Side::A,
            origin: Origin::Public,
            toward: Origin::Public,
            endpoints: &[],
            stranger: None,
        };
        let _ = ctx.plan(now, &self.key, &intent);
        if std::mem::replace(&mut self.planned, false) {
            out.event(AlgEvent::CallEnded {
                call: self.key.clone(),
            });
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
