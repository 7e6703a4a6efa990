//! Simulated time helpers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One base instant for the whole test process: the first call reads the
/// OS clock, every later call returns the same value. Simulated times are
/// this base plus durations, so only offsets ever matter.
// The one sanctioned clock read: an arbitrary origin for simulated time.
#[allow(clippy::disallowed_methods)]
pub fn base_instant() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// A simulated clock: a start instant and a current instant that only moves
/// forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    start: Instant,
    now: Instant,
}

impl Clock {
    /// A clock standing at `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, now: start }
    }

    /// The current simulated instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The start instant.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// Moves forward by `d`; returns the new now.
    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }

    /// Moves to `t` if it is later than now; returns the (new) now.
    pub fn advance_to(&mut self, t: Instant) -> Instant {
        self.now = self.now.max(t);
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward_only() {
        let mut c = Clock::new(base_instant());
        assert_eq!(base_instant(), c.start());
        c.advance(Duration::from_secs(2));
        assert_eq!(c.elapsed(), Duration::from_secs(2));
        c.advance_to(c.at(Duration::from_secs(1)));
        assert_eq!(c.elapsed(), Duration::from_secs(2));
        c.advance_to(c.at(Duration::from_secs(5)));
        assert_eq!(c.now(), c.start() + Duration::from_secs(5));
    }
}
