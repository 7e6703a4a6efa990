//! The relay contract, kept in one place for every relay.
//!
//! An ALG writes the relay addresses of a plan into signaling that leaves at
//! once, so the relay ports must be open when the plan returns; an APS sends
//! CMPH from its media port, so that socket must exist before the CMPH
//! leaves. [`LiveMpr`] and [`LiveClient`] are the contexts that keep these
//! promises over any [`Relay`]: `pinhole-net`'s userspace relay, a kernel
//! fast path, or the relay a softswitch already has.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{ClientContext, MprContext};
use crate::client::{self, ClientError, PinholeId, PinholeRequest};
use crate::intent::{MediaIntent, MediaPlan};
use crate::mpr::{self, IntentError, Route};
use crate::relay::{RelayCommand, RelayReport};
use crate::types::CallKey;
use crate::wire::{Protocol, RtcpMode};

/// Whatever carries out relay commands. Sans-IO callers (tests, the
/// simulated network) may accept everything; a real relay opens sockets.
pub trait Relay {
    /// Carries out one MPR engine command now. An `OpenLeg` whose ports
    /// cannot be opened (another process holds one) must fail: the leg is
    /// then dropped and the stream planned on another pair.
    fn apply(&mut self, cmd: RelayCommand) -> std::io::Result<()>;
    /// Client side: makes sure a media socket exists at `local` (the CMPH
    /// for a pinhole leaves from it).
    fn bind(&mut self, local: SocketAddr) -> std::io::Result<()>;
}

/// A relay with no sockets: every command succeeds at once. For the
/// simulated network, fuzzing and tests, where the relay is a model (or
/// nothing) and ports are never taken by another process.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSockets;

impl Relay for NoSockets {
    fn apply(&mut self, _cmd: RelayCommand) -> std::io::Result<()> {
        Ok(())
    }

    fn bind(&mut self, _local: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
}

/// How often a plan is tried again after legs failed to open.
const PLAN_RETRIES: usize = 3;

/// Carries out every command the MPR engine queued; a leg whose ports
/// could not be opened is reported back to the engine, which drops it.
/// Returns how many legs failed. Drivers call this after every input to
/// the engine, not only after plans.
pub fn apply_commands(now: Instant, engine: &mut mpr::Engine, relay: &mut dyn Relay) -> usize {
    let mut failed = 0;
    while let Some(c) = engine.poll_command() {
        if let Err(e) = relay.apply(c) {
            tracing::error!(command = ?c, error = %e, "relay command failed");
            if let RelayCommand::OpenLeg { leg, .. } = c {
                engine.handle_relay(now, RelayReport::OpenFailed { leg });
                failed += 1;
            }
        }
    }
    failed
}

/// Runs a client engine's registration against an MPR engine with no
/// network between them (the client's datagrams reach the MPR from the
/// client's own address): for tests, fuzz targets and embedding demos
/// that need a registered network without sockets. True once the client
/// holds its signaling pinhole.
pub fn register_direct(now: Instant, mpr: &mut mpr::Engine, cl: &mut client::Engine) -> bool {
    cl.handle_timeout(now);
    for _ in 0..8 {
        let mut moved = false;
        while let Some(t) = cl.poll_transmit() {
            moved = true;
            let _ = mpr.handle_datagram(
                now,
                crate::types::Receive {
                    local: t.remote,
                    remote: t.local,
                    bytes: &t.payload,
                    flow: Default::default(),
                },
            );
        }
        while let Some(t) = mpr.poll_transmit() {
            moved = true;
            let _ = cl.handle_datagram(
                now,
                crate::types::Receive {
                    local: t.remote,
                    remote: t.local,
                    bytes: &t.payload,
                    flow: Default::default(),
                },
            );
        }
        if !moved {
            break;
        }
    }
    cl.registered_pinhole().is_some()
}

/// The MPR engine as an ALG sees it, with the relay carrying out its
/// commands before a plan is returned: plan → apply → plan again (at most
/// three times) while legs fail to open.
pub struct LiveMpr<'a> {
    engine: &'a mut mpr::Engine,
    relay: &'a mut dyn Relay,
}

impl<'a> LiveMpr<'a> {
    /// The context for one call into an ALG.
    pub fn new(engine: &'a mut mpr::Engine, relay: &'a mut dyn Relay) -> Self {
        Self { engine, relay }
    }

    fn plan_with(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
        latch: Option<IpAddr>,
    ) -> Result<MediaPlan, IntentError> {
        let once = |engine: &mut mpr::Engine| match latch {
            Some(ip) => engine.handle_intent_latching(now, call, intent, ip),
            None => engine.handle_intent(now, call, intent),
        };
        let mut plan = once(self.engine);
        for attempt in 0..=PLAN_RETRIES {
            if apply_commands(now, self.engine, self.relay) == 0 || plan.is_err() {
                return plan;
            }
            if attempt == PLAN_RETRIES {
                break;
            }
            plan = once(self.engine);
        }
        // Legs still fail after the last try: no plan names a dead port.
        Err(IntentError::PortsExhausted)
    }
}

impl MprContext for LiveMpr<'_> {
    fn plan(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError> {
        self.plan_with(now, call, intent, None)
    }

    fn plan_latching(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
        latch_ip: IpAddr,
    ) -> Result<MediaPlan, IntentError> {
        self.plan_with(now, call, intent, Some(latch_ip))
    }

    fn progress(&mut self, now: Instant, call: &CallKey) {
        self.engine.handle_progress(now, call);
    }

    fn network_for_pinhole(&self, protocol: Protocol, pinhole: SocketAddr) -> Option<String> {
        self.engine
            .network_for_pinhole(protocol, pinhole)
            .map(str::to_owned)
    }

    fn network_for_domain(&self, domain: &str) -> Option<String> {
        self.engine.network_for_domain(domain).map(str::to_owned)
    }

    fn route(&self, network: &str, protocol: Protocol) -> Option<Route> {
        self.engine.route(network, protocol)
    }
}

/// The client engine as an ALG sees it, with the media socket bound
/// before a CMPH leaves from it.
pub struct LiveClient<'a> {
    engine: &'a mut client::Engine,
    relay: &'a mut dyn Relay,
}

impl<'a> LiveClient<'a> {
    /// The context for one call into an ALG.
    pub fn new(engine: &'a mut client::Engine, relay: &'a mut dyn Relay) -> Self {
        Self { engine, relay }
    }
}

impl ClientContext for LiveClient<'_> {
    fn open_pinhole(
        &mut self,
        now: Instant,
        req: PinholeRequest,
    ) -> Result<PinholeId, ClientError> {
        let mut r = self.relay.bind(req.local);
        if r.is_ok() && req.rtcp == RtcpMode::Pair {
            let rtcp = SocketAddr::new(req.local.ip(), req.local.port().wrapping_add(1));
            r = self.relay.bind(rtcp);
        }
        if let Err(e) = r {
            // The pinhole then fails on its own: no response arrives.
            tracing::error!(local = %req.local, error = %e, "cannot bind the media socket");
        }
        self.engine.open_pinhole(now, req)
    }

    fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError> {
        self.engine.close_pinhole(id)
    }

    fn registered_pinhole(&self) -> Option<SocketAddr> {
        self.engine.registered_pinhole()
    }

    fn mpr(&self) -> SocketAddr {
        self.engine.config().mpr
    }

    fn signaling(&self) -> SocketAddr {
        self.engine.config().signaling
    }

    fn upstream(&self) -> crate::types::Flow {
        crate::types::Flow::over(self.engine.config().upstream)
    }
}

#[cfg(test)]
mod tests;
