//! The MPR engine's configuration and the errors of its inputs.

use std::net::IpAddr;
use std::time::Duration;

use crate::ports::{PortError, PortRange};
use crate::wire::{self, ErrorCode, Protocol};

/// One corporate network the MPR serves.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The network id (USERNAME in control messages).
    pub id: String,
    /// The shared secret that keys MESSAGE-INTEGRITY-SHA256.
    pub credential: Vec<u8>,
    /// Protocols it may register; empty allows all.
    pub protocols: Vec<Protocol>,
    /// Subscriber domains it may claim; empty allows any.
    pub domains: Vec<String>,
    /// Most relay legs it may hold at once.
    pub max_legs: usize,
}

impl NetworkConfig {
    /// A network with every protocol, any domain and 10 000 legs.
    pub fn new(id: impl Into<String>, credential: Vec<u8>) -> Self {
        Self {
            id: id.into(),
            credential,
            protocols: Vec::new(),
            domains: Vec::new(),
            max_legs: 10_000,
        }
    }
}

/// The MPR's timers (wire-format.md §5).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// Shortest registration lifetime granted.
    pub registration_min: Duration,
    /// Longest registration lifetime granted.
    pub registration_max: Duration,
    /// Lifetime when the request asks none.
    pub registration_default: Duration,
    /// How long a nonce stays valid (and transaction ids are remembered).
    pub nonce_lifetime: Duration,
    /// A call, or a reserved leg, with no activity for this long is removed.
    pub leg_inactivity: Duration,
    /// How long a plain-terminal leg waits for its first packet.
    pub latch_window: Duration,
    /// How long a freed port pair rests before reuse.
    pub port_quarantine: Duration,
    /// A call a stranger offered whose called party has neither answered
    /// nor shown signs of life (a provisional response) for this long is
    /// removed with its legs. 32 s is SIP's Timer B (64·T1), the time a
    /// caller waits for any response.
    pub unanswered: Duration,
    /// How long such a call may ring once its called party showed signs of
    /// life, counted from its latest provisional response (SIP's Timer C).
    pub ringing: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            registration_min: Duration::from_secs(60),
            registration_max: Duration::from_secs(3600),
            registration_default: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(600),
            leg_inactivity: Duration::from_secs(60),
            latch_window: Duration::from_secs(10),
            port_quarantine: Duration::from_secs(30),
            unanswered: Duration::from_secs(32),
            ringing: Duration::from_secs(180),
        }
    }
}

/// What calls that strangers offered and nobody answered yet may hold: an
/// unauthenticated sender must not be able to take the relay ports that
/// the networks' own calls need (issue 18). Counted in legs; an offer that
/// would go past a cap is refused with [`IntentError::Unanswered`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Legs that one stranger may hold in unanswered calls: an IPv4
    /// address, or an IPv6 /64 (one subscriber's prefix).
    pub per_source: usize,
    /// Legs that unanswered calls from strangers toward one network may
    /// hold.
    pub per_network: usize,
    /// Legs that all unanswered calls from strangers may hold together;
    /// `None`: half the relay port pairs, so the other half always stays
    /// for answered calls and for calls the networks start.
    pub total: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_source: 32,
            per_network: 1_000,
            total: None,
        }
    }
}

/// Which of the [`Limits`] an offer would have gone past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// [`Limits::per_source`].
    Source,
    /// [`Limits::per_network`].
    Network,
    /// [`Limits::total`].
    Total,
}

impl Cap {
    /// A stable label for metrics.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Source => "unanswered_per_source",
            Self::Network => "unanswered_per_network",
            Self::Total => "unanswered_total",
        }
    }
}

/// Everything the MPR engine needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The networks it serves.
    pub networks: Vec<NetworkConfig>,
    /// The relay address for IPv4 legs (or the only one).
    pub relay_ip: IpAddr,
    /// The relay address for IPv6 legs, if the MPR has one.
    pub relay_ip6: Option<IpAddr>,
    /// Relay port range.
    pub ports: PortRange,
    /// Ports the MPR's own signaling/control sockets use on the relay
    /// addresses. A pair containing one is never handed out, and a control
    /// message arriving on one is a control message, not a bind.
    pub control_ports: Vec<u16>,
    /// Timers.
    pub timers: Timers,
    /// What unanswered calls from strangers may hold.
    pub limits: Limits,
    /// Most transaction ids remembered at once (508 beyond).
    pub replay_capacity: usize,
    /// Most streams in one call.
    pub max_streams: usize,
    /// Seed of the engine's generator (from the OS in production).
    pub rng_seed: [u8; 32],
}

impl Config {
    /// Defaults (ports 20000–39999) with one relay address and a seed.
    pub fn new(relay_ip: IpAddr, rng_seed: [u8; 32]) -> Self {
        Self {
            networks: Vec::new(),
            relay_ip,
            relay_ip6: None,
            ports: PortRange {
                first: 20_000,
                last: 39_999,
            },
            control_ports: vec![3478, 5060],
            timers: Timers::default(),
            limits: Limits::default(),
            replay_capacity: 65_536,
            max_streams: 16,
            rng_seed,
        }
    }
}

/// A configuration the engine refuses.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Two networks share an id.
    #[error("network id {0:?} is configured twice")]
    DuplicateNetwork(String),
    /// A network id or credential is empty or too long.
    #[error("network {0:?}: id must be 1-128 bytes and the credential non-empty")]
    BadNetwork(String),
    /// `registration_min` > `registration_max`, or a zero timer.
    #[error("timer {0} is out of range")]
    BadTimer(&'static str),
    /// The relay port range is unusable.
    #[error("relay ports: {0}")]
    Ports(#[from] PortError),
}

impl ConfigError {
    /// A stable label for metrics and logs. [`ConfigError::Ports`] is
    /// `"ports"` whatever the port error; its own [`PortError::kind`] tells
    /// more.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DuplicateNetwork(_) => "duplicate_network",
            Self::BadNetwork(_) => "bad_network",
            Self::BadTimer(_) => "bad_timer",
            Self::Ports(_) => "ports",
        }
    }
}

/// A datagram the engine did not accept. Each is counted in [`Stats`](super::Stats).
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Not a control message (RFC 7983 demultiplexing): media or signaling.
    #[error("not a control message")]
    NotControl,
    /// Malformed.
    #[error("malformed control message: {0}")]
    Decode(#[from] wire::DecodeError),
    /// Well-formed but not something the MPR accepts here (a response, an
    /// indication of a method that has none).
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// Refused; an error response was sent unless the message was an indication.
    #[error("refused with {} {}: {what}", code.0, code.reason())]
    Refused {
        /// The STUN error code.
        code: ErrorCode,
        /// Why.
        what: &'static str,
    },
    /// A known transaction id from another source: dropped without an answer.
    #[error("replayed transaction from another source")]
    Replayed,
    /// A keepalive from a source that is not the leg's bound one.
    #[error("keepalive from an unbound source")]
    StrayKeepalive,
    /// A Binding request whose answer would be larger than the request:
    /// dropped unanswered, so the MPR cannot amplify a reflection attack
    /// (docs/wire-format.md §2.3).
    #[error("{answer}-byte answer to a {request}-byte request not sent (amplification)")]
    TooSmallToAnswer {
        /// Length of the answer that was not sent.
        answer: usize,
        /// Length of the request.
        request: usize,
    },
}

impl InputError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotControl => "not_control",
            Self::Decode(e) => e.kind(),
            Self::Unexpected(_) => "unexpected",
            Self::Refused { .. } => "refused",
            Self::Replayed => "replayed",
            Self::StrayKeepalive => "stray_keepalive",
            Self::TooSmallToAnswer { .. } => "too_small_to_answer",
        }
    }
}

/// An intent the engine could not plan. Nothing the intent would have
/// created for the failing stream exists afterwards.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IntentError {
    /// The network id is not configured.
    #[error("unknown network")]
    UnknownNetwork,
    /// An answer or modification for a call the engine does not know.
    #[error("answer or modify for an unknown call")]
    UnknownCall,
    /// More streams than `max_streams`.
    #[error("{0} streams exceed the limit")]
    TooManyStreams(usize),
    /// No relay port pair is free.
    #[error("relay ports exhausted")]
    PortsExhausted,
    /// The network holds as many legs as it may.
    #[error("leg quota of the network reached")]
    QuotaReached,
    /// The stream's address family has no relay address.
    #[error("no relay address for this address family")]
    NoRelayAddress,
    /// An unanswered call from a stranger would hold more legs than a
    /// [`Limits`] cap allows.
    #[error("unanswered calls from strangers hold too many legs ({})", .0.kind())]
    Unanswered(Cap),
}

impl IntentError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownNetwork => "unknown_network",
            Self::UnknownCall => "unknown_call",
            Self::TooManyStreams(_) => "too_many_streams",
            Self::PortsExhausted => "ports_exhausted",
            Self::QuotaReached => "quota_reached",
            Self::NoRelayAddress => "no_relay_address",
            Self::Unanswered(c) => c.kind(),
        }
    }
}
