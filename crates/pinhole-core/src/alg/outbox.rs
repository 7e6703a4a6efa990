//! What an ALG hands back to its driver: datagrams, events, and when to
//! sweep. One queue for every ALG, so each protocol writes only what is its
//! own and the `poll_*` tail of the traits comes from here.

use std::collections::VecDeque;
use std::time::Instant;

use crate::types::{CallKey, Transmit};

/// What happened to a call or a stream, beside the counters: for a
/// softswitch that embeds an ALG, for logs and for tests.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AlgEvent {
    /// The MPR planned a call's first media: its relay legs exist.
    CallAnchored {
        /// The engine's key of the call.
        call: CallKey,
    },
    /// A description of the call was planned and rewritten to relay
    /// addresses (offer, answer or modification).
    MediaPlanned {
        /// The engine's key of the call.
        call: CallKey,
        /// Streams in the description.
        streams: usize,
    },
    /// The engine refused to plan a description (ports exhausted, quota).
    PlanRefused {
        /// The engine's key of the call.
        call: CallKey,
        /// Why, as the engine said it.
        reason: String,
    },
    /// A media pinhole of a stream could not be opened (APS, smart terminal).
    PinholeFailed {
        /// The stream's LEG-KEY.
        leg_key: Vec<u8>,
    },
    /// A media pinhole of a stream is open (APS, smart terminal).
    PinholeOpened {
        /// The stream's LEG-KEY.
        leg_key: Vec<u8>,
    },
    /// The call's media was torn down (by signaling, or for inactivity).
    CallEnded {
        /// The engine's key of the call.
        call: CallKey,
    },
}

/// Most events kept undrained: a driver that never polls them loses the
/// oldest, never memory.
const MAX_EVENTS: usize = 4096;

/// An ALG's output: datagrams to send, events, and the next sweep.
#[derive(Debug, Default)]
pub struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<AlgEvent>,
    next_sweep: Option<Instant>,
}

impl Outbox {
    /// An empty outbox with no sweep armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a datagram.
    pub fn send(&mut self, t: Transmit) {
        self.transmits.push_back(t);
    }

    /// The next datagram to send.
    pub fn pop_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Datagrams queued now.
    pub fn pending(&self) -> usize {
        self.transmits.len()
    }

    /// Records an event (the oldest goes when too many wait).
    pub fn event(&mut self, e: AlgEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// The next event.
    pub fn pop_event(&mut self) -> Option<AlgEvent> {
        self.events.pop_front()
    }

    /// Asks for a sweep at `at` at the latest (an earlier one stays).
    pub fn arm_sweep(&mut self, at: Instant) {
        if self.next_sweep.is_none_or(|t| t > at) {
            self.next_sweep = Some(at);
        }
    }

    /// Sets the next sweep (`None`: nothing left to expire).
    pub fn set_sweep(&mut self, at: Option<Instant>) {
        self.next_sweep = at;
    }

    /// When the next sweep is due.
    pub fn next_sweep(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// True, and the timer cleared, when the sweep is due at `now`; the
    /// sweep arms the next one itself.
    pub fn take_sweep(&mut self, now: Instant) -> bool {
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sweep_keeps_the_earliest_and_fires_once() {
        let t0 = crate::test_instant();
        let mut o = Outbox::new();
        o.arm_sweep(t0 + Duration::from_secs(5));
        o.arm_sweep(t0 + Duration::from_secs(9));
        assert_eq!(o.next_sweep(), Some(t0 + Duration::from_secs(5)));
        assert!(!o.take_sweep(t0 + Duration::from_secs(4)));
        assert!(o.take_sweep(t0 + Duration::from_secs(5)));
        assert_eq!(o.next_sweep(), None, "the sweep re-arms itself");
        assert!(!o.take_sweep(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn events_are_bounded_and_ordered() {
        let mut o = Outbox::new();
        for i in 0..MAX_EVENTS + 3 {
            o.event(AlgEvent::CallEnded {
                call: CallKey::new(i.to_string()),
            });
        }
        assert_eq!(
            o.pop_event(),
            Some(AlgEvent::CallEnded {
                call: CallKey::new("3")
            }),
            "the three oldest went"
        );
        let t = Transmit {
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
            payload: b"x".to_vec(),
            flow: Default::default(),
        };
        o.send(t.clone());
        assert_eq!(o.pending(), 1);
        assert_eq!(o.pop_transmit(), Some(t));
        assert_eq!(o.pop_transmit(), None);
    }
}
