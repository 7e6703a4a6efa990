//! The signaling pinhole's registration (Fig. 6): refresh on idle and before
//! expiry, alarm and back off on failure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::transaction::Purpose;
use super::{Config, Engine, Event, Failure, Timer};
use crate::wire::Message;

pub(super) struct Registration {
    pinhole: Option<SocketAddr>,
    registered_at: Instant,
    granted: Duration,
    last_traffic: Instant,
    retry_at: Instant,
    backoff: Duration,
    retry_min: Duration,
    in_flight: bool,
    alarm: bool,
    force: bool,
    /// Deregistering or deregistered: ask LIFETIME 0, never refresh.
    closing: bool,
}

impl Registration {
    pub(super) fn new(retry_min: Duration, now: Instant) -> Self {
        Self {
            pinhole: None,
            registered_at: now,
            granted: Duration::ZERO,
            last_traffic: now,
            retry_at: now,
            backoff: retry_min,
            retry_min,
            in_flight: false,
            alarm: false,
            force: false,
            closing: false,
        }
    }

    pub(super) fn traffic(&mut self, now: Instant) {
        self.last_traffic = self.last_traffic.max(now);
    }

    pub(super) fn pinhole(&self) -> Option<SocketAddr> {
        self.pinhole
    }

    pub(super) fn alarm(&self) -> bool {
        self.alarm
    }

    pub(super) fn force_refresh(&mut self, now: Instant) {
        self.force = true;
        self.retry_at = self.retry_at.min(now);
    }

    pub(super) fn closing(&self) -> bool {
        self.closing
    }

    pub(super) fn asked_lifetime(&self, cfg: &Config) -> Duration {
        if self.closing {
            Duration::ZERO
        } else {
            cfg.lifetime
        }
    }

    /// When the next Registration Request is due.
    fn due(&self, refresh: Duration) -> Instant {
        if self.pinhole.is_none() || self.force {
            return self.retry_at;
        }
        let idle = self.last_traffic + refresh;
        let renew = self.registered_at + self.granted * 3 / 4;
        idle.min(renew)
    }
}

impl Engine {
    /// Removes the route at the MPR: a Registration Request with LIFETIME 0
    /// (wire-format.md §3.1), retransmitted like any other. Every media
    /// pinhole is closed first (their mappings go), and from now on the
    /// engine neither refreshes nor keeps anything alive: it is for a
    /// graceful shutdown. [`Event::Deregistered`] follows the MPR's
    /// answer; [`Engine::deregistering`] is true until an answer or a
    /// timeout. Returns false, sending nothing, when there is no
    /// registration to remove (never registered, or already closing).
    pub fn deregister(&mut self, now: Instant) -> bool {
        if self.reg.closing {
            return false;
        }
        let ids: Vec<u64> = self.pinholes.keys().copied().collect();
        for id in ids {
            let _ = self.close_pinhole(super::PinholeId(id));
        }
        self.parked.clear();
        let pending = self.reg.pinhole.is_some() || self.reg.in_flight;
        // A refresh in flight must not re-create the route behind us.
        self.txs.retain(|_, tx| tx.purpose != Purpose::Register);
        self.reg.closing = true;
        self.reg.in_flight = false;
        if !pending {
            return false;
        }
        tracing::info!(network = %self.cfg.network, "deregistering");
        self.reg.in_flight = true;
        self.stats.registrations_sent += 1;
        let (local, remote) = (self.cfg.signaling, self.cfg.mpr);
        self.send_request(now, Purpose::Register, local, remote, 0);
        true
    }

    /// True while a deregistration waits for the MPR's answer.
    pub fn deregistering(&self) -> bool {
        self.reg.closing && self.reg.in_flight
    }

    pub(super) fn registration_timer(&mut self, now: Instant) {
        if self.reg.in_flight || self.reg.closing {
            return;
        }
        let due = self.reg.due(self.cfg.effective_refresh());
        if due > now {
            self.arm(due, Timer::Registration);
            return;
        }
        self.reg.in_flight = true;
        self.reg.force = false;
        self.stats.registrations_sent += 1;
        let (local, remote) = (self.cfg.signaling, self.cfg.mpr);
        self.send_request(now, Purpose::Register, local, remote, 0);
    }

    pub(super) fn registered(&mut self, now: Instant, msg: &Message<'_>) {
        let r = &mut self.reg;
        r.in_flight = false;
        r.registered_at = now;
        r.last_traffic = now;
        r.granted = Duration::from_secs(u64::from(msg.lifetime().unwrap_or(0)));
        r.backoff = r.retry_min;
        let pinhole = msg.xor_mapped_address();
        r.pinhole = pinhole;
        self.stats.registrations_ok += 1;
        if r.alarm {
            r.alarm = false;
            tracing::info!(network = %self.cfg.network, "registration recovered; alarm cleared");
            self.events.push_back(Event::AlarmCleared);
        }
        if r.granted.is_zero() {
            // Deregistered (we asked for lifetime 0): nothing to refresh.
            r.pinhole = None;
            if r.closing {
                tracing::info!(network = %self.cfg.network, "deregistered");
                self.events.push_back(Event::Deregistered);
            }
            return;
        }
        if let Some(pinhole) = pinhole {
            self.events.push_back(Event::Registered {
                pinhole,
                lifetime: self.reg.granted,
            });
        }
        let due = self.reg.due(self.cfg.effective_refresh());
        self.arm(due, Timer::Registration);
        self.unpark(now, true);
    }

    pub(super) fn registration_failed(&mut self, now: Instant, failure: Failure) {
        let r = &mut self.reg;
        r.in_flight = false;
        r.pinhole = None;
        if r.closing {
            // Shutting down: the route expires at the MPR on its own.
            tracing::warn!(network = %self.cfg.network, ?failure, "deregistration not confirmed");
            return;
        }
        self.unpark(now, false);
        let r = &mut self.reg;
        r.alarm = true;
        let retry_in = r.backoff;
        r.retry_at = now + retry_in;
        r.backoff = (r.backoff * 2).min(self.cfg.retry_max);
        self.stats.registration_failures += 1;
        tracing::warn!(network = %self.cfg.network, ?failure, ?retry_in, "registration failed; alarm raised");
        self.events.push_back(Event::Alarm { failure, retry_in });
        self.arm(now + retry_in, Timer::Registration);
    }
}
