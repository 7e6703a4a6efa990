//! An ALG run by a driver (the simulated [`crate::World`] or a real one)
//! while the test or the application keeps a handle on it, to read its
//! tables: the driver owns a [`Shared`], the holder an `Arc<Mutex<T>>`.
//! After every call the ALG's output moves into the `Shared`'s own
//! [`Outbox`], so the driver drains transmits, events and timers as from
//! the ALG itself.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use pinhole_core::alg::{
    ClientContext, ClientSignaling, Counters, MprContext, MprSignaling, Outbox,
};
use pinhole_core::client;
use pinhole_core::types::Receive;
use pinhole_core::wire::Protocol;

/// The driver's side of a shared ALG.
pub struct Shared<T> {
    alg: Arc<Mutex<T>>,
    out: Outbox,
}

/// The ALG behind a handle (a panic in another holder leaves it readable).
pub fn lock<T>(alg: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    alg.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Shared<T> {
    /// The ALG to give the driver, and the holder's handle on it.
    pub fn new(alg: T) -> (Self, Arc<Mutex<T>>) {
        let alg = Arc::new(Mutex::new(alg));
        (
            Self {
                alg: Arc::clone(&alg),
                out: Outbox::new(),
            },
            alg,
        )
    }

    /// The driver's side of a handle that already exists.
    pub fn of(alg: &Arc<Mutex<T>>) -> Self {
        Self {
            alg: Arc::clone(alg),
            out: Outbox::new(),
        }
    }
}

/// Moves what an ALG queued into `out`.
macro_rules! pump {
    ($trait:ident, $alg:expr, $out:expr) => {{
        let a = &mut *$alg;
        while let Some(t) = $trait::poll_transmit(a) {
            $out.send(t);
        }
        while let Some(e) = $trait::poll_event(a) {
            $out.event(e);
        }
        $out.set_sweep($trait::poll_timeout(a));
    }};
}

impl<T: MprSignaling> MprSignaling for Shared<T> {
    fn protocol(&self) -> Protocol {
        MprSignaling::protocol(&*lock(&self.alg))
    }

    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>) {
        let mut a = lock(&self.alg);
        a.handle_datagram(now, mpr, rx);
        pump!(MprSignaling, a, self.out);
    }

    fn sweep(&mut self, now: Instant, mpr: &mut dyn MprContext) {
        let mut a = lock(&self.alg);
        MprSignaling::handle_timeout(&mut *a, now, mpr);
        pump!(MprSignaling, a, self.out);
    }

    fn counters(&self) -> Counters {
        MprSignaling::counters(&*lock(&self.alg))
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }
}

impl<T: ClientSignaling> ClientSignaling for Shared<T> {
    fn protocol(&self) -> Protocol {
        ClientSignaling::protocol(&*lock(&self.alg))
    }

    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>) {
        let mut a = lock(&self.alg);
        a.handle_datagram(now, ctx, rx);
        pump!(ClientSignaling, a, self.out);
    }

    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &client::Event) {
        let mut a = lock(&self.alg);
        a.handle_event(now, ctx, ev);
        pump!(ClientSignaling, a, self.out);
    }

    fn sweep(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        let mut a = lock(&self.alg);
        ClientSignaling::handle_timeout(&mut *a, now, ctx);
        pump!(ClientSignaling, a, self.out);
    }

    fn counters(&self) -> Counters {
        ClientSignaling::counters(&*lock(&self.alg))
    }

    fn outbox(&self) -> &Outbox {
        &self.out
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }
}
