//! The narrow interface between a signaling ALG and the engines.
//!
//! A protocol crate (SIP, MGCP, H.248, H.323) implements [`MprSignaling`]
//! for the MPR and [`ClientSignaling`] for the APS or a smart terminal. The
//! driver that owns the sockets feeds it the protocol's datagrams, gives it a
//! context onto its engine ([`MprContext`], [`ClientContext`]), and sends what
//! it queues. Everything stays sans-IO: the ALG never sees a socket or a
//! clock, and a test drives it with an engine and plain function calls.
//!
//! ```
//! use std::time::Instant;
//! use pinhole_core::alg::MprContext;
//! use pinhole_core::mpr::{Config, Engine, NetworkConfig};
//! use pinhole_core::wire::Protocol;
//!
//! let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [7; 32]);
//! let mut net = NetworkConfig::new("corp1", b"s3cret".to_vec());
//! net.domains.push("corp1.example".into());
//! cfg.networks.push(net);
//! let mpr = Engine::new(cfg, Instant::now()).unwrap();
//! // What an ALG asks before it routes a request for sip:bob@corp1.example.
//! let ctx: &dyn MprContext = &mpr;
//! assert_eq!(ctx.network_for_domain("corp1.example").as_deref(), Some("corp1"));
//! assert_eq!(ctx.route("corp1", Protocol::Sip), None); // not registered yet
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::client::{self, ClientError, PinholeId, PinholeRequest};
use crate::intent::{MediaIntent, MediaPlan};
use crate::mpr::{self, IntentError, Route};
use crate::types::{CallKey, Receive, Transmit};
use crate::wire::Protocol;

/// What an MPR-side ALG may ask of the MPR.
pub trait MprContext {
    /// Plans a media intent; the relay ports in the plan are live when this
    /// returns (the driver has opened them).
    fn plan(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError>;
    /// Plans an intent whose sender is a plain terminal the ALG vouches
    /// for (see [`mpr::Engine::handle_intent_latching`]): its legs latch
    /// onto `latch_ip`. A context that cannot plans as usual, so the legs
    /// latch only onto the network's registered address (media fails
    /// closed, never open).
    fn plan_latching(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
        latch_ip: IpAddr,
    ) -> Result<MediaPlan, IntentError> {
        let _ = latch_ip;
        self.plan(now, call, intent)
    }
    /// The network whose signaling route for `protocol` is `pinhole`.
    fn network_for_pinhole(&self, protocol: Protocol, pinhole: SocketAddr) -> Option<String>;
    /// The network that serves a subscriber domain.
    fn network_for_domain(&self, domain: &str) -> Option<String>;
    /// A network's live signaling route.
    fn route(&self, network: &str, protocol: Protocol) -> Option<Route>;
}

impl MprContext for mpr::Engine {
    fn plan(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError> {
        self.handle_intent(now, call, intent)
    }

    fn plan_latching(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
        latch_ip: IpAddr,
    ) -> Result<MediaPlan, IntentError> {
        self.handle_intent_latching(now, call, intent, latch_ip)
    }

    fn network_for_pinhole(&self, protocol: Protocol, pinhole: SocketAddr) -> Option<String> {
        Self::network_for_pinhole(self, protocol, pinhole).map(str::to_owned)
    }

    fn network_for_domain(&self, domain: &str) -> Option<String> {
        Self::network_for_domain(self, domain).map(str::to_owned)
    }

    fn route(&self, network: &str, protocol: Protocol) -> Option<Route> {
        Self::route(self, network, protocol)
    }
}

/// What a client-side ALG (an APS, a smart terminal) may ask of its engine.
pub trait ClientContext {
    /// Opens a media pinhole; the outcome comes back through
    /// [`ClientSignaling::handle_event`].
    fn open_pinhole(&mut self, now: Instant, req: PinholeRequest)
    -> Result<PinholeId, ClientError>;
    /// Closes a media pinhole.
    fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError>;
    /// The signaling pinhole while registered.
    fn registered_pinhole(&self) -> Option<SocketAddr>;
    /// The MPR's signaling address.
    fn mpr(&self) -> SocketAddr;
    /// Our own signaling socket.
    fn signaling(&self) -> SocketAddr;
}

impl ClientContext for client::Engine {
    fn open_pinhole(
        &mut self,
        now: Instant,
        req: PinholeRequest,
    ) -> Result<PinholeId, ClientError> {
        Self::open_pinhole(self, now, req)
    }

    fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError> {
        Self::close_pinhole(self, id)
    }

    fn registered_pinhole(&self) -> Option<SocketAddr> {
        Self::registered_pinhole(self)
    }

    fn mpr(&self) -> SocketAddr {
        self.config().mpr
    }

    fn signaling(&self) -> SocketAddr {
        self.config().signaling
    }
}

/// Labelled counters an ALG keeps, for metrics (`name`, value).
pub type Counters = Vec<(&'static str, u64)>;

/// Each ALG's counters, by the protocol it speaks.
pub type AlgCounters = Vec<(Protocol, Counters)>;

/// One counter of one protocol's ALG, 0 if absent.
pub fn counter(algs: &[(Protocol, Counters)], protocol: Protocol, name: &str) -> u64 {
    algs.iter()
        .filter(|(p, _)| *p == protocol)
        .flat_map(|(_, c)| c.iter())
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, v)| *v)
}

/// A signaling ALG at the MPR.
pub trait MprSignaling: Send + Sync {
    /// The protocol it speaks (registrations for it route its traffic).
    fn protocol(&self) -> Protocol;
    /// A datagram of the protocol arrived on one of the MPR's signaling
    /// sockets (`rx.local`) from `rx.remote`.
    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant, mpr: &mut dyn MprContext);
    /// When to call [`MprSignaling::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Counters by name.
    fn counters(&self) -> Counters;
}

/// A signaling ALG at an APS or a smart terminal.
pub trait ClientSignaling: Send + Sync {
    /// The protocol it speaks (its engine registers a pinhole for it).
    fn protocol(&self) -> Protocol;
    /// A datagram of the protocol arrived on the signaling socket.
    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>);
    /// The client engine reported something (pinholes opened or failed).
    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &client::Event);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant, ctx: &mut dyn ClientContext);
    /// When to call [`ClientSignaling::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next datagram to send (from the signaling socket).
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Counters by name.
    fn counters(&self) -> Counters;
}
