//! The ALG layer every protocol shares: the narrow interface between a
//! signaling ALG and the engines, and the protocol-neutral pieces every ALG
//! is built from.
//!
//! A protocol crate (SIP, MGCP, H.248, H.323) implements [`MprSignaling`]
//! for the MPR and [`ClientSignaling`] for the APS or a smart terminal. The
//! driver that owns the sockets feeds it the protocol's datagrams, gives it a
//! context onto its engine ([`MprContext`], [`ClientContext`]), and sends what
//! it queues. Everything stays sans-IO: the ALG never sees a socket or a
//! clock, and a test drives it with an engine and plain function calls.
//!
//! | module | what every ALG gets from it |
//! | --- | --- |
//! | [`live`] | the contexts that keep the relay contract: [`live::LiveMpr`] (plan → apply → retry on a port another process holds) and [`live::LiveClient`] (bind the media socket before CMPH), over any [`live::Relay`] |
//! | [`aps`] | the APS's per-stream pinhole machine ([`aps::ApsMedia`]: CMPH before a description leaves, port B for one entering, release) and the held-message queue ([`aps::Held`]) |
//! | [`call`] | the MPR's two-party call model ([`call::Place`], [`call::Sides`], [`call::MediaCall`]: offer or modify, re-offer after the engine forgot, teardown) |
//! | [`txn`] | a transaction table that keeps what was sent, for retransmissions ([`txn::Transactions`]) |
//! | [`unreadable`] | the rule for a message whose media description cannot be read or rewritten: a request is refused with the protocol's error, a response dropped, never forwarded as it came ([`unreadable::unreadable_media`]) |
//! | [`Outbox`] | the output queue, events and sweep timer behind every ALG's `poll_*` methods |
//!
//! ```
//! use std::time::Instant;
//! use pinhole_core::alg::{MprContext, live::{LiveMpr, Relay}};
//! use pinhole_core::mpr::{Config, Engine, NetworkConfig};
//! use pinhole_core::relay::RelayCommand;
//! use pinhole_core::wire::Protocol;
//!
//! /// A relay that opens every leg (a softswitch would program its own).
//! struct Accept;
//! impl Relay for Accept {
//!     fn apply(&mut self, _: RelayCommand) -> std::io::Result<()> { Ok(()) }
//!     fn bind(&mut self, _: std::net::SocketAddr) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [7; 32]);
//! let mut net = NetworkConfig::new("corp1", b"s3cret".to_vec());
//! net.domains.push("corp1.example".into());
//! cfg.networks.push(net);
//! let mut mpr = Engine::new(cfg, Instant::now()).unwrap();
//! let mut relay = Accept;
//! // What an ALG asks before it routes a request for sip:bob@corp1.example.
//! let ctx = LiveMpr::new(&mut mpr, &mut relay);
//! assert_eq!(ctx.network_for_domain("corp1.example").as_deref(), Some("corp1"));
//! assert_eq!(ctx.route("corp1", Protocol::Sip), None); // not registered yet
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub mod aps;
pub mod call;
pub mod live;
mod outbox;
pub mod txn;
pub mod unreadable;

pub use outbox::{AlgEvent, Outbox};

use crate::client::{self, ClientError, PinholeId, PinholeRequest};
use crate::framing::ProtocolFramer;
use crate::intent::{MediaIntent, MediaPlan};
use crate::mpr::{IntentError, Route};
use crate::types::{CallKey, Flow, Receive, Transmit};
use crate::wire::Protocol;

/// What an MPR-side ALG may ask of the MPR.
pub trait MprContext {
    /// Plans a media intent; the relay ports in the plan are live when this
    /// returns ([`live::LiveMpr`] keeps that promise for any relay).
    fn plan(
        &mut self,
        now: Instant,
        call: &CallKey,
        intent: &MediaIntent<'_>,
    ) -> Result<MediaPlan, IntentError>;
    /// Plans an intent whose sender is a plain terminal the ALG vouches
    /// for (see [`crate::mpr::Engine::handle_intent_latching`]): its legs latch
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
    /// The called party of `call` answered provisionally (SIP 1xx): an
    /// unanswered call from a stranger may ring until
    /// [`Timers::ringing`](crate::mpr::Timers::ringing) instead of the
    /// short [`Timers::unanswered`](crate::mpr::Timers::unanswered).
    fn progress(&mut self, now: Instant, call: &CallKey);
    /// The network whose signaling route for `protocol` is `pinhole`.
    fn network_for_pinhole(&self, protocol: Protocol, pinhole: SocketAddr) -> Option<String>;
    /// The network that serves a subscriber domain.
    fn network_for_domain(&self, domain: &str) -> Option<String>;
    /// A network's live signaling route.
    fn route(&self, network: &str, protocol: Protocol) -> Option<Route>;
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
    /// How signaling to [`ClientContext::mpr`] travels: UDP, or the
    /// connection the driver keeps open to the MPR
    /// ([`client::Config::upstream`]).
    fn upstream(&self) -> Flow {
        Flow::UDP
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

/// Why an ALG refused a message: the protocol's status code and reason,
/// sent back to the message's sender (SIP 503 "Service Unavailable", MGCP
/// 502 "Insufficient resources", H.248 error 510...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Rejection {
    /// The protocol's status or error code.
    pub code: u16,
    /// Its reason phrase or commentary.
    pub reason: &'static str,
}

impl Rejection {
    /// A rejection with `code` and `reason`.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

/// A signaling ALG at the MPR.
///
/// An ALG implements what is its own (`protocol`, `handle_datagram`,
/// `sweep`, `counters`) and keeps its output in an [`Outbox`]; the rest of
/// the run loop (`handle_timeout`, `poll_timeout`, `poll_transmit`,
/// `poll_event`) comes from the outbox.
pub trait MprSignaling: Send + Sync {
    /// The protocol it speaks (registrations for it route its traffic).
    fn protocol(&self) -> Protocol;
    /// A datagram of the protocol arrived on one of the MPR's signaling
    /// sockets (`rx.local`) from `rx.remote`.
    fn handle_datagram(&mut self, now: Instant, mpr: &mut dyn MprContext, rx: Receive<'_>);
    /// The sweep the outbox armed is due: expire what timed out.
    fn sweep(&mut self, now: Instant, mpr: &mut dyn MprContext);
    /// Counters by name.
    fn counters(&self) -> Counters;
    /// The ALG's output queue.
    fn outbox(&self) -> &Outbox;
    /// The ALG's output queue, to drain.
    fn outbox_mut(&mut self) -> &mut Outbox;

    /// How the protocol's messages are cut from a TCP or TLS stream, or
    /// `None` for a protocol carried over UDP only (then the driver opens
    /// no stream listener for it). Pinhole's control messages share the
    /// stream and are framed first ([`crate::framing::next`]).
    fn framer(&self) -> Option<ProtocolFramer> {
        None
    }

    /// Further MPR addresses the ALG receives on beside its main socket;
    /// the driver binds them and hands what arrives there to this ALG.
    /// H.248 gives each media gateway one of its own toward the MGC,
    /// which tells gateways apart by their transport address.
    fn extra_addresses(&self) -> Vec<SocketAddr> {
        Vec::new()
    }

    /// Time passed: runs [`MprSignaling::sweep`] when it is due.
    fn handle_timeout(&mut self, now: Instant, mpr: &mut dyn MprContext) {
        if self.outbox_mut().take_sweep(now) {
            self.sweep(now, mpr);
        }
    }
    /// When to call [`MprSignaling::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant> {
        self.outbox().next_sweep()
    }
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox_mut().pop_transmit()
    }
    /// The next thing that happened to a call (anchored, planned, ended).
    fn poll_event(&mut self) -> Option<AlgEvent> {
        self.outbox_mut().pop_event()
    }
}

/// A signaling ALG at an APS or a smart terminal.
///
/// As with [`MprSignaling`], the run loop's tail comes from the [`Outbox`].
pub trait ClientSignaling: Send + Sync {
    /// The protocol it speaks (its engine registers a pinhole for it).
    fn protocol(&self) -> Protocol;
    /// A datagram of the protocol arrived on the signaling socket.
    fn handle_datagram(&mut self, now: Instant, ctx: &mut dyn ClientContext, rx: Receive<'_>);
    /// The client engine reported something (pinholes opened or failed).
    fn handle_event(&mut self, now: Instant, ctx: &mut dyn ClientContext, ev: &client::Event);
    /// The sweep the outbox armed is due: expire what timed out.
    fn sweep(&mut self, now: Instant, ctx: &mut dyn ClientContext);
    /// Counters by name.
    fn counters(&self) -> Counters;
    /// The ALG's output queue.
    fn outbox(&self) -> &Outbox;
    /// The ALG's output queue, to drain.
    fn outbox_mut(&mut self) -> &mut Outbox;

    /// How the protocol's messages are cut from a stream (see
    /// [`MprSignaling::framer`]); `None` keeps the ALG on UDP.
    fn framer(&self) -> Option<ProtocolFramer> {
        None
    }

    /// Time passed: runs [`ClientSignaling::sweep`] when it is due.
    fn handle_timeout(&mut self, now: Instant, ctx: &mut dyn ClientContext) {
        if self.outbox_mut().take_sweep(now) {
            self.sweep(now, ctx);
        }
    }
    /// When to call [`ClientSignaling::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant> {
        self.outbox().next_sweep()
    }
    /// The next datagram to send (from the signaling socket).
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox_mut().pop_transmit()
    }
    /// The next thing that happened to a stream or call.
    fn poll_event(&mut self) -> Option<AlgEvent> {
        self.outbox_mut().pop_event()
    }
}
