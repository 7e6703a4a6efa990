//! What the MPR engine reports: events, counters and read-only views.

use std::net::SocketAddr;
use std::time::Instant;

use crate::relay::Remote;
use crate::types::{CallKey, Component, Flow, LegId};
use crate::wire::Protocol;

/// What happened, for the application and the logs.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A new signaling route (Fig. 4 table entry).
    Registered {
        /// Network id.
        network: String,
        /// Its protocol.
        protocol: Protocol,
        /// The pinhole signaling goes to.
        pinhole: SocketAddr,
    },
    /// A refresh arrived from a different pinhole: the firewall closed the
    /// old one (the client's refresh interval is longer than the firewall's
    /// idle timeout) or re-mapped it. Signaling sent meanwhile was lost.
    RouteMoved {
        /// Network id.
        network: String,
        /// Its protocol.
        protocol: Protocol,
        /// The previous pinhole.
        from: SocketAddr,
        /// The new one.
        to: SocketAddr,
    },
    /// A client removed its route (LIFETIME 0).
    Deregistered {
        /// Network id.
        network: String,
        /// Its protocol.
        protocol: Protocol,
    },
    /// A route was not refreshed in time.
    RegistrationExpired {
        /// Network id.
        network: String,
        /// Its protocol.
        protocol: Protocol,
    },
    /// A CMPH bound a leg component to its pinhole.
    PinholeBound {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        component: Component,
        /// The pinhole.
        pinhole: SocketAddr,
    },
    /// A plain terminal's first packet bound its leg.
    Latched {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        component: Component,
        /// The source.
        source: SocketAddr,
    },
    /// A call saw no activity for `leg_inactivity` and was removed.
    CallExpired {
        /// The call.
        call: CallKey,
    },
    /// A reserved leg was never used and was removed.
    LegExpired {
        /// The leg.
        leg: LegId,
    },
}

/// Counters, as a plain struct for the driver to export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registrations that created a route.
    pub registrations_accepted: u64,
    /// Registrations that refreshed a route.
    pub registrations_refreshed: u64,
    /// Routes removed by expiry.
    pub registrations_expired: u64,
    /// Refreshes from a different pinhole.
    pub routes_moved: u64,
    /// Bad integrity or unknown network.
    pub auth_failures: u64,
    /// 401 challenges for a missing nonce.
    pub challenges: u64,
    /// 438 answers.
    pub stale_nonces: u64,
    /// Replays dropped.
    pub replays: u64,
    /// Retransmissions answered from the cache.
    pub retransmissions: u64,
    /// Other refusals (error responses).
    pub refusals: u64,
    /// Malformed control messages.
    pub decode_errors: u64,
    /// Responses or indications nobody asked for.
    pub unexpected: u64,
    /// CMPH reserves that allocated a leg.
    pub cmph_reserved: u64,
    /// CMPH binds (requests and indications).
    pub cmph_bound: u64,
    /// Binding requests answered.
    pub bindings_answered: u64,
    /// Answers not sent because they would have been larger than a
    /// request whose source was not verified yet (Binding, 401, 420, 438):
    /// the anti-amplification rule of docs/wire-format.md §2.3.
    pub amplification_drops: u64,
    /// Keepalives from bound sources.
    pub keepalives: u64,
    /// Keepalives from other sources, dropped.
    pub stray_keepalives: u64,
    /// Intents planned.
    pub intents: u64,
    /// Intents refused.
    pub intent_errors: u64,
    /// Times no relay port was free.
    pub ports_exhausted: u64,
    /// Plain-terminal latches.
    pub latches: u64,
    /// Latches to another port of the terminal's IP that the port its SDP
    /// announced took over within the latch window (a same-IP attacker,
    /// or another device behind the same NAT, that sent first).
    pub latch_takeovers: u64,
    /// Legs the relay could not open (their ports taken by another process).
    pub relay_open_failures: u64,
    /// Latch reports the engine did not agree with (the relay was corrected).
    pub relay_corrections: u64,
    /// Calls removed by inactivity.
    pub calls_expired: u64,
    /// Offers from strangers refused because unanswered calls held as
    /// many legs as a [`Limits`](super::Limits) cap allows.
    pub unanswered_refused: u64,
    /// Calls from strangers removed because nobody answered in time
    /// ([`Timers::unanswered`](super::Timers::unanswered)).
    pub unanswered_expired: u64,
    /// Legs that unanswered calls from strangers hold now.
    pub unanswered_legs: u64,
    /// Legs currently open.
    pub legs_open: u64,
    /// Calls currently known.
    pub calls_open: u64,
    /// Signaling routes currently live.
    pub routes_live: u64,
}

/// A live signaling route (one row of the Fig. 4 table).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Route {
    /// Where signaling for the network goes: the firewall pinhole.
    pub pinhole: SocketAddr,
    /// The MPR socket the registration arrived on; send from it.
    pub local: SocketAddr,
    /// How the registration came: UDP, or the connection the network
    /// opened from inside. Everything for the network goes down it; a
    /// connection into the network is never opened from outside.
    pub flow: Flow,
    /// When it expires unless refreshed.
    pub expires: Instant,
}

/// A read-only view of a leg (one row of the Fig. 5 table).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LegView {
    /// The leg.
    pub id: LegId,
    /// The MPR relay address (RTP).
    pub rtp: SocketAddr,
    /// The RTCP relay address, if any.
    pub rtcp: Option<SocketAddr>,
    /// Where RTP is exchanged.
    pub remote_rtp: Remote,
    /// Where RTCP is exchanged.
    pub remote_rtcp: Remote,
    /// The leg it forwards to.
    pub peer: Option<LegId>,
}
