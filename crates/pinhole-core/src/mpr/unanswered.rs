//! Calls that strangers (unauthenticated public senders) offered and
//! nobody answered yet: what they may hold ([`Limits`]) and for how long
//! ([`Timers::unanswered`], [`Timers::ringing`]). Without this, forty
//! INVITEs from anyone on the internet took every relay port for 90 s and
//! the networks' own calls got none (issue 18).
//!
//! [`Limits`]: super::Limits
//! [`Timers::unanswered`]: super::Timers::unanswered
//! [`Timers::ringing`]: super::Timers::ringing

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::{Cap, Engine, IntentError, NetIdx, Owner, TimerKey};
use crate::intent::{IntentKind, MediaIntent};
use crate::types::CallKey;

/// The source a cap counts: an IPv4 address, or an IPv6 address's /64
/// (one subscriber's prefix, whose 2^64 addresses an attacker can rotate
/// through at will).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !((1u128 << 64) - 1),
        )),
    }
}

/// What an unanswered call holds, and until when.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unanswered {
    source: IpAddr,
    toward: Option<NetIdx>,
    /// Legs counted in [`Holdings`] for it.
    legs: usize,
    pub(super) deadline: Instant,
}

/// Legs held by unanswered calls, by source, by network and in all.
#[derive(Debug, Default)]
pub(super) struct Holdings {
    by_source: HashMap<IpAddr, usize>,
    by_network: HashMap<NetIdx, usize>,
    total: usize,
}

impl Holdings {
    fn add(&mut self, u: &Unanswered, n: usize) {
        *self.by_source.entry(u.source).or_default() += n;
        if let Some(net) = u.toward {
            *self.by_network.entry(net).or_default() += n;
        }
        self.total += n;
    }

    fn sub(&mut self, u: &Unanswered, n: usize) {
        fn dec<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K, n: usize) {
            if let Some(v) = m.get_mut(&k) {
                *v = v.saturating_sub(n);
                if *v == 0 {
                    m.remove(&k);
                }
            }
        }
        dec(&mut self.by_source, u.source, n);
        if let Some(net) = u.toward {
            dec(&mut self.by_network, net, n);
        }
        self.total = self.total.saturating_sub(n);
    }

    /// Legs held in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }
}

impl Engine {
    /// A call `intent` creates: unanswered when a stranger offers it.
    pub(super) fn unanswered_for(
        &self,
        now: Instant,
        intent: &MediaIntent<'_>,
        toward: Owner,
    ) -> Option<Unanswered> {
        let source = source_key(intent.stranger?);
        if intent.kind != IntentKind::Offer {
            return None;
        }
        Some(Unanswered {
            source,
            toward: match toward {
                Owner::Network(n) => Some(n),
                Owner::Public => None,
            },
            legs: 0,
            deadline: now + self.timers_cfg.unanswered,
        })
    }

    /// Before `intent` is planned for unanswered call `id`: the cap it
    /// would go past, if any. An answer releases the call from the caps.
    pub(super) fn admit_unanswered(
        &mut self,
        id: u64,
        intent: &MediaIntent<'_>,
    ) -> Result<(), IntentError> {
        let Some(u) = self.calls.get(&id).and_then(|c| c.unanswered) else {
            return Ok(());
        };
        if intent.kind == IntentKind::Answer {
            self.holdings.sub(&u, u.legs);
            if let Some(c) = self.calls.get_mut(&id) {
                c.unanswered = None;
            }
            return Ok(());
        }
        let mut needed = 0;
        for e in intent.endpoints.iter().filter(|e| !e.is_disabled()) {
            for side in [intent.from, intent.from.peer()] {
                if self.stream_leg(id, e.index, side).is_none() {
                    needed += 1;
                }
            }
        }
        if needed == 0 {
            return Ok(());
        }
        let limits = self.limits;
        let total_cap = limits.total.unwrap_or(self.port_range.pair_count() / 2);
        let h = &self.holdings;
        let cap = if h.by_source.get(&u.source).copied().unwrap_or(0) + needed > limits.per_source {
            Some(Cap::Source)
        } else if u.toward.is_some_and(|n| {
            h.by_network.get(&n).copied().unwrap_or(0) + needed > limits.per_network
        }) {
            Some(Cap::Network)
        } else if h.total + needed > total_cap {
            Some(Cap::Total)
        } else {
            None
        };
        match cap {
            Some(cap) => {
                self.stats.unanswered_refused += 1;
                Err(IntentError::Unanswered(cap))
            }
            None => Ok(()),
        }
    }

    /// After planning unanswered call `id`: count the legs it holds now.
    pub(super) fn recount_unanswered(&mut self, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(u) = call.unanswered else {
            return;
        };
        let legs = call
            .streams
            .iter()
            .map(|s| s.legs.iter().flatten().count())
            .sum();
        self.holdings.sub(&u, u.legs);
        let u = Unanswered { legs, ..u };
        self.holdings.add(&u, legs);
        if let Some(c) = self.calls.get_mut(&id) {
            c.unanswered = Some(u);
        }
    }

    /// A call leaves the table: what it held is free.
    pub(super) fn forget_unanswered(&mut self, u: Option<Unanswered>) {
        if let Some(u) = u {
            self.holdings.sub(&u, u.legs);
        }
    }

    /// The called party of `key` answered provisionally: an unanswered
    /// call may ring for [`Timers::ringing`](super::Timers::ringing) from
    /// now.
    pub fn handle_progress(&mut self, now: Instant, key: &CallKey) {
        let Some(id) = self.call_ids.get(key).copied() else {
            return;
        };
        let ringing = self.timers_cfg.ringing;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.last_activity = call.last_activity.max(now);
        if let Some(u) = call.unanswered.as_mut() {
            u.deadline = u.deadline.max(now + ringing);
            let due = u.deadline;
            self.arm(due, TimerKey::Call(id));
        }
    }
}

#[cfg(test)]
#[path = "unanswered_tests.rs"]
mod tests;
