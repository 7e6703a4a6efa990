//! The client engine: what an APS or a smart terminal runs (Figs. 6, 7, 8).
//!
//! It registers the signaling pinhole and keeps it open (a refresh when no
//! traffic passed for `refresh_interval`, which is shorter than the
//! firewall's idle timeout), raises an alarm and backs off when registration
//! fails, and opens media pinholes with CMPH (RFC 8489 retransmission),
//! keeping silent ones open with keepalives (media through a pinhole, as
//! [`Engine::handle_traffic`] or [`Engine::handle_relay`] report it,
//! postpones them). For an APS it tells the relay the port B ↔ port A
//! mapping of Fig. 7; for a smart terminal, that the application owns the
//! media on port A (Fig. 8). A CMPH refused as "not registered" (the MPR
//! restarted) makes it re-register at once and send the CMPH again.
//! [`Engine::deregister`] removes the route on a graceful shutdown.
//!
//! ```
//! use std::time::Instant;
//! use pinhole_core::client::{Config, Engine};
//! use pinhole_core::wire::Protocol;
//!
//! let now = Instant::now();
//! let cfg = Config::new(
//!     "corp1", b"s3cret".to_vec(), Protocol::Sip,
//!     "192.168.1.10:5060".parse().unwrap(),  // our signaling socket
//!     "203.0.113.10:5060".parse().unwrap(),  // the MPR
//!     [9; 32],
//! );
//! let mut aps = Engine::new(cfg, now).unwrap();
//! aps.handle_timeout(now);
//! // The first Registration Request leaves from the signaling socket.
//! let t = aps.poll_transmit().unwrap();
//! assert_eq!(t.local.port(), 5060);
//! assert!(pinhole_core::wire::is_control(&t.payload));
//! ```

mod pinhole;
mod registration;
mod transaction;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::relay::{RelayCommand, RelayReport};
use crate::rng::Rng;
use crate::types::{Component, Flow, Receive, Transmit, Transport};
use crate::wire::{self, Class, ErrorCode, Message, Method, Protocol, RtcpMode, TransactionId};

use pinhole::Pinhole;
use registration::Registration;
use transaction::{Purpose, Tx};

/// How CMPH binds are sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum CmphMode {
    /// Request and wait for the CMPH Response (Figs. 7 and 8).
    #[default]
    Request,
    /// Indications, no response: the seed's "no CMPH response" variant.
    Indication,
}

/// RFC 8489 §6.2.1 retransmission parameters.
#[derive(Clone, Copy, Debug)]
pub struct Retransmit {
    /// Initial retransmission timeout.
    pub rto: Duration,
    /// Requests sent in all.
    pub rc: u32,
    /// Multiple of `rto` to wait after the last request.
    pub rm: u32,
}

impl Retransmit {
    /// The same transaction timeout with no retransmission, for a
    /// reliable transport (RFC 8489 §6.2.2: a request over TCP or TLS is
    /// sent once and times out after Ti, 39.5 s with the defaults: the
    /// whole UDP schedule).
    pub fn reliable(self) -> Self {
        let rc = self.rc.max(1);
        let total = self.rto * (2u32.saturating_pow(rc - 1) - 1) + self.rto * self.rm;
        Self {
            rto: total,
            rc: 1,
            rm: 1,
        }
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(500),
            rc: 7,
            rm: 16,
        }
    }
}

/// Everything the client engine needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Network id.
    pub network: String,
    /// The network's shared secret.
    pub credential: Vec<u8>,
    /// The protocol whose signaling pinhole this client registers.
    pub protocol: Protocol,
    /// Subscriber domains to claim.
    pub domains: Vec<String>,
    /// Our signaling socket: registrations leave from it.
    pub signaling: SocketAddr,
    /// The MPR's signaling/control address for the protocol.
    pub mpr: SocketAddr,
    /// How signaling to the MPR travels: UDP from `signaling`, or the one
    /// TCP or TLS connection the driver keeps open from inside. The
    /// Registration and the CMPH reserves go on it; binds and keepalives
    /// to relay ports stay UDP (they open the media pinholes).
    pub upstream: Transport,
    /// The firewall's idle timeout for UDP (what it takes to close a pinhole).
    pub firewall_idle_timeout: Duration,
    /// Refresh after this long without traffic; default 2/3 of the firewall
    /// idle timeout. Must be shorter than the timeout.
    pub refresh_interval: Option<Duration>,
    /// Registration lifetime to ask for.
    pub lifetime: Duration,
    /// Retransmission timing.
    pub retransmit: Retransmit,
    /// First retry delay after a failed registration (doubles).
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How binds are sent.
    pub cmph_mode: CmphMode,
    /// Indication copies (the no-response variant) and their spacing.
    pub indication_copies: u32,
    /// Spacing of indication copies.
    pub indication_spacing: Duration,
    /// Seed of the engine's generator.
    pub rng_seed: [u8; 32],
}

impl Config {
    /// Defaults: firewall timeout 30 s, lifetime 600 s, RFC 8489 timers.
    pub fn new(
        network: impl Into<String>,
        credential: Vec<u8>,
        protocol: Protocol,
        signaling: SocketAddr,
        mpr: SocketAddr,
        rng_seed: [u8; 32],
    ) -> Self {
        Self {
            network: network.into(),
            credential,
            protocol,
            domains: Vec::new(),
            signaling,
            mpr,
            upstream: Transport::Udp,
            firewall_idle_timeout: Duration::from_secs(30),
            refresh_interval: None,
            lifetime: Duration::from_secs(600),
            retransmit: Retransmit::default(),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            cmph_mode: CmphMode::Request,
            indication_copies: 3,
            indication_spacing: Duration::from_millis(50),
            rng_seed,
        }
    }

    /// The refresh interval in effect.
    pub fn effective_refresh(&self) -> Duration {
        self.refresh_interval
            .unwrap_or(self.firewall_idle_timeout * 2 / 3)
    }
}

/// A configuration the client refuses.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The refresh would come after the firewall closed the pinhole.
    #[error(
        "refresh interval {refresh:?} must be shorter than the firewall idle timeout {timeout:?}"
    )]
    RefreshTooLong {
        /// Configured refresh.
        refresh: Duration,
        /// Firewall idle timeout.
        timeout: Duration,
    },
    /// Empty network id or credential, or zero timers.
    #[error("invalid client configuration: {0}")]
    Invalid(&'static str),
}

impl ConfigError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RefreshTooLong { .. } => "refresh_too_long",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// A call the client refuses.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No live registration: the MPR would refuse the CMPH.
    #[error("not registered with the MPR")]
    NotRegistered,
    /// No such pinhole.
    #[error("unknown pinhole")]
    UnknownPinhole,
    /// The LEG-KEY is empty or longer than 64 bytes.
    #[error("leg key must be 1-64 bytes")]
    BadLegKey,
    /// The MPR refused a reserve for lack of ports or quota a moment ago:
    /// no new reserve goes out until the back-off ends, so a flood of
    /// calls (or a phone re-dialling) cannot turn into a CMPH storm.
    #[error("the MPR is out of relay ports: backing off")]
    BackingOff,
}

impl ClientError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotRegistered => "not_registered",
            Self::UnknownPinhole => "unknown_pinhole",
            Self::BadLegKey => "bad_leg_key",
            Self::BackingOff => "backing_off",
        }
    }
}

/// A datagram the client did not accept.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Not a control message.
    #[error("not a control message")]
    NotControl,
    /// Malformed.
    #[error("malformed control message: {0}")]
    Decode(#[from] wire::DecodeError),
    /// No outstanding transaction has this id, or it came from elsewhere.
    #[error("response to no outstanding transaction")]
    Unsolicited,
    /// Integrity missing or wrong on a message that needs it.
    #[error("response failed the integrity check")]
    Unauthenticated,
}

impl InputError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotControl => "not_control",
            Self::Decode(e) => e.kind(),
            Self::Unsolicited => "unsolicited",
            Self::Unauthenticated => "unauthenticated",
        }
    }
}

/// Why registration or a pinhole failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Failure {
    /// No response after all retransmissions.
    Timeout,
    /// The MPR refused.
    Refused(ErrorCode),
}

/// Handle of a media pinhole the client opens.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PinholeId(pub u64);

/// What a media pinhole is for.
#[derive(Clone, Debug)]
pub struct PinholeRequest {
    /// Our media port (port B for an APS, port A for a smart terminal);
    /// RTCP uses the next port unless `rtcp` says otherwise.
    pub local: SocketAddr,
    /// The MPR relay address, when the offer already named it; `None` asks
    /// the MPR for one first (a reserve).
    pub relay: Option<SocketAddr>,
    /// RTCP handling.
    pub rtcp: RtcpMode,
    /// Our name for the stream (LEG-KEY), 1–64 bytes.
    pub key: Vec<u8>,
    /// APS: the terminal's media address (port A) that `local` is mapped
    /// to ([`RelayCommand::MapLocal`]). `None` for a smart terminal, whose
    /// application owns the media on `local` itself
    /// ([`RelayCommand::DeliverLocal`]).
    pub inside: Option<SocketAddr>,
}

/// What happened.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// Registered (or refreshed after a failure): signaling can flow.
    Registered {
        /// The pinhole the MPR observed.
        pinhole: SocketAddr,
        /// Granted lifetime.
        lifetime: Duration,
    },
    /// Registration failed: an alarm until the next success (Fig. 6).
    Alarm {
        /// Why.
        failure: Failure,
        /// When the next attempt goes out.
        retry_in: Duration,
    },
    /// Registration works again.
    AlarmCleared,
    /// The MPR confirmed the deregistration [`Engine::deregister`] asked
    /// for: the route is gone, and the engine sends nothing more.
    Deregistered,
    /// A media pinhole is open: write `pinhole` into the connection information.
    PinholeOpened {
        /// Which.
        id: PinholeId,
        /// The MPR relay address it was opened toward.
        relay: SocketAddr,
        /// The public RTP pinhole, `None` in the no-response variant (write
        /// the actual listening address then).
        pinhole: Option<SocketAddr>,
        /// The public RTCP pinhole, if any.
        rtcp_pinhole: Option<SocketAddr>,
    },
    /// A media pinhole could not be opened.
    PinholeFailed {
        /// Which.
        id: PinholeId,
        /// Why.
        failure: Failure,
    },
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registration Requests sent (first copies).
    pub registrations_sent: u64,
    /// Times the signaling connection to the MPR was reopened.
    pub reconnects: u64,
    /// Successful registrations and refreshes.
    pub registrations_ok: u64,
    /// Failed registrations.
    pub registration_failures: u64,
    /// CMPH requests and indications sent (first copies).
    pub cmph_sent: u64,
    /// Pinholes opened.
    pub pinholes_opened: u64,
    /// Pinholes failed.
    pub pinholes_failed: u64,
    /// Retransmissions sent.
    pub retransmissions: u64,
    /// Keepalives sent.
    pub keepalives: u64,
    /// Reserves the MPR refused for lack of ports or quota, each starting
    /// or lengthening the back-off.
    pub cmph_backoffs: u64,
    /// Pinholes refused locally during a back-off, without a CMPH.
    pub cmph_held_back: u64,
    /// 401/438 answered by retrying with a fresh nonce.
    pub nonce_retries: u64,
    /// Responses dropped: unsolicited, from the wrong source, or unauthenticated.
    pub dropped: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Timer {
    Tx([u8; 12]),
    Registration,
    Keepalive(u64, u8),
    Indication(u64),
}

/// The client engine. See the module docs for the run loop.
pub struct Engine {
    cfg: Config,
    key: wire::IntegrityKey,
    rng: Rng,
    nonce: Option<Vec<u8>>,
    reg: Registration,
    txs: HashMap<TransactionId, Tx>,
    pinholes: HashMap<u64, Pinhole>,
    /// Each pinhole's local sockets (RTP, and RTCP unless mux) → pinhole.
    by_local: HashMap<SocketAddr, u64>,
    next_pinhole: u64,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    transmits: VecDeque<Transmit>,
    commands: VecDeque<RelayCommand>,
    events: VecDeque<Event>,
    /// CMPHs refused with 480, waiting for the re-registration they
    /// triggered: (purpose, local, remote).
    parked: Vec<(Purpose, SocketAddr, SocketAddr)>,
    /// Reserves refused for capacity: no new one before `until`.
    backoff: Backoff,
    stats: Stats,
}

/// The reserve back-off: `retry_min` after the first refusal for lack of
/// relay ports or quota, doubling up to [`Backoff::MAX`] while refusals go
/// on, cleared by the next pinhole that opens.
#[derive(Clone, Copy, Debug, Default)]
struct Backoff {
    until: Option<Instant>,
    next: Duration,
}

impl Backoff {
    /// Longest back-off: a call refused is a call lost, so not longer
    /// than a caller waits for an answer (SIP Timer B, 32 s) by half.
    const MAX: Duration = Duration::from_secs(16);
}

impl Engine {
    /// A client that registers at `now`.
    pub fn new(cfg: Config, now: Instant) -> Result<Self, ConfigError> {
        if cfg.network.is_empty() || cfg.network.len() > 128 || cfg.credential.is_empty() {
            return Err(ConfigError::Invalid(
                "network id must be 1-128 bytes and the credential non-empty",
            ));
        }
        if cfg.retransmit.rto.is_zero() || cfg.retransmit.rc == 0 || cfg.retry_min.is_zero() {
            return Err(ConfigError::Invalid(
                "retransmission timers must be non-zero",
            ));
        }
        let refresh = cfg.effective_refresh();
        if refresh >= cfg.firewall_idle_timeout || refresh.is_zero() {
            return Err(ConfigError::RefreshTooLong {
                refresh,
                timeout: cfg.firewall_idle_timeout,
            });
        }
        let rng = Rng::from_seed(cfg.rng_seed);
        let reg = Registration::new(cfg.retry_min, now);
        let mut engine = Self {
            key: wire::IntegrityKey::new(&cfg.credential),
            cfg,
            rng,
            nonce: None,
            reg,
            txs: HashMap::new(),
            pinholes: HashMap::new(),
            by_local: HashMap::new(),
            next_pinhole: 1,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            parked: Vec::new(),
            backoff: Backoff::default(),
            stats: Stats::default(),
        };
        engine.arm(now, Timer::Registration);
        Ok(engine)
    }

    /// A datagram from the MPR.
    pub fn handle_datagram(&mut self, now: Instant, rx: Receive<'_>) -> Result<(), InputError> {
        let r = self.datagram(now, rx);
        if let Err(e) = &r {
            self.stats.dropped += 1;
            tracing::debug!(remote = %rx.remote, error = %e, "control datagram dropped");
        }
        r
    }

    /// The signaling connection to the MPR was opened again after it
    /// dropped ([`Config::upstream`] TCP or TLS): the MPR's route still
    /// points at the old connection, so register at once over the new one.
    /// Media pinholes and calls are untouched: their legs never depended
    /// on the connection.
    pub fn handle_reconnect(&mut self, now: Instant) {
        if self.reg.closing() {
            return;
        }
        self.stats.reconnects += 1;
        tracing::info!(network = %self.cfg.network, transport = %self.cfg.upstream, "signaling connection to the MPR reopened: registering over it");
        // Requests sent on the old connection may be lost with it, and a
        // reliable transport retransmits nothing: send each once more on
        // the new one (the MPR answers a duplicate from its cache).
        let (signaling, mpr) = (self.cfg.signaling, self.cfg.mpr);
        let again: Vec<Vec<u8>> = self
            .txs
            .values()
            .filter(|tx| tx.local == signaling && tx.remote == mpr)
            .map(Tx::payload)
            .collect();
        for payload in again {
            self.stats.retransmissions += 1;
            self.transmits.push_back(Transmit {
                local: signaling,
                remote: mpr,
                payload,
                flow: Flow::over(self.cfg.upstream),
            });
        }
        self.reg.force_refresh(now);
        self.arm(now, Timer::Registration);
    }

    /// How a message from `local` to `remote` travels: the upstream
    /// connection for signaling to the MPR, UDP for anything else.
    fn flow_to(&self, local: SocketAddr, remote: SocketAddr) -> Flow {
        if local == self.cfg.signaling && remote == self.cfg.mpr {
            Flow::over(self.cfg.upstream)
        } else {
            Flow::UDP
        }
    }

    /// Traffic passed through the pinhole of `local` (signaling or media):
    /// the firewall's idle timer restarted, so ours does too.
    pub fn handle_traffic(&mut self, now: Instant, local: SocketAddr) {
        if local == self.cfg.signaling {
            self.reg.traffic(now);
            return;
        }
        // Per-packet calls must not scan every pinhole: index by socket.
        if let Some(p) = self
            .by_local
            .get(&local)
            .and_then(|id| self.pinholes.get_mut(id))
        {
            p.traffic(now, local);
        }
    }

    /// Something the local relay saw. Media a mapping sent out through a
    /// pinhole ([`RelayReport::LocalActivity`]) counts as traffic on that
    /// port, so a busy pinhole needs no keepalive; other reports concern
    /// the MPR and are ignored.
    pub fn handle_relay(&mut self, now: Instant, report: RelayReport) {
        if let RelayReport::LocalActivity { local, at } = report {
            self.handle_traffic(at.min(now), local);
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, timer))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Tx(id) => self.tx_timer(now, TransactionId(id)),
                Timer::Registration => self.registration_timer(now),
                Timer::Keepalive(p, c) => self.keepalive_timer(now, p, c),
                Timer::Indication(p) => self.indication_timer(now, p),
            }
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next command for the local relay (APS).
    #[must_use]
    pub fn poll_command(&mut self) -> Option<RelayCommand> {
        self.commands.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Engine::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The signaling pinhole, while registered.
    pub fn registered_pinhole(&self) -> Option<SocketAddr> {
        self.reg.pinhole()
    }

    /// True while the registration alarm is raised.
    pub fn alarm(&self) -> bool {
        self.reg.alarm()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn datagram(&mut self, now: Instant, rx: Receive<'_>) -> Result<(), InputError> {
        if !wire::is_control(rx.bytes) {
            return Err(InputError::NotControl);
        }
        let msg = Message::decode(rx.bytes)?;
        let id = msg.transaction_id();
        let Some(tx) = self.txs.get(&id) else {
            return Err(InputError::Unsolicited);
        };
        // The answer must come back the way the request went: from the
        // address we sent to, to the socket we sent from.
        if tx.remote != rx.remote
            || tx.local != rx.local
            || !matches!(msg.class(), Class::Success | Class::Error)
        {
            return Err(InputError::Unsolicited);
        }
        if rx.local == self.cfg.signaling {
            self.reg.traffic(now);
        }
        let authentic = msg.has_integrity() && msg.verify_with(&self.key).is_ok();
        let Some(tx) = self.txs.remove(&id) else {
            return Err(InputError::Unsolicited);
        };
        match msg.class() {
            Class::Success if authentic => {
                if let Some(n) = msg.nonce() {
                    self.nonce = Some(n.to_vec());
                }
                self.on_success(now, tx, &msg);
                Ok(())
            }
            Class::Error => {
                let code = msg.error_code().map(|(c, _)| c);
                let hint = matches!(code, Some(ErrorCode::UNAUTHORIZED | ErrorCode::STALE_NONCE));
                match (code, msg.nonce()) {
                    // 401/438 with a nonce: take it and retry, at most twice
                    // in a row, even unauthenticated (it can only cost us a retry).
                    (Some(_), Some(n)) if hint && tx.auth_retries < 2 => {
                        self.nonce = Some(n.to_vec());
                        self.stats.nonce_retries += 1;
                        self.restart(now, tx);
                        Ok(())
                    }
                    (Some(c), _) if authentic || hint => {
                        let parked = c == ErrorCode::NOT_REGISTERED
                            && authentic
                            && self.park_unregistered(now, &tx);
                        if !parked {
                            self.on_failure(now, tx.purpose, Failure::Refused(c));
                        }
                        Ok(())
                    }
                    _ => {
                        // A forged error must not end the transaction.
                        self.txs.insert(id, tx);
                        Err(InputError::Unauthenticated)
                    }
                }
            }
            _ => {
                self.txs.insert(id, tx);
                Err(InputError::Unauthenticated)
            }
        }
    }

    fn on_success(&mut self, now: Instant, tx: Tx, msg: &Message<'_>) {
        match tx.purpose {
            Purpose::Register => self.registered(now, msg),
            Purpose::Reserve(p) => self.reserved(now, p, msg),
            Purpose::Bind(p, c) => self.bound(now, p, c, msg),
        }
    }

    fn on_failure(&mut self, now: Instant, purpose: Purpose, failure: Failure) {
        match purpose {
            Purpose::Register => self.registration_failed(now, failure),
            Purpose::Reserve(p) | Purpose::Bind(p, _) => {
                if matches!(
                    failure,
                    Failure::Refused(ErrorCode::INSUFFICIENT_CAPACITY | ErrorCode::QUOTA_REACHED)
                ) {
                    self.back_off(now);
                }
                self.pinhole_failed(p, failure);
            }
        }
    }

    /// The MPR is out of ports (or our quota): hold new reserves back.
    fn back_off(&mut self, now: Instant) {
        let b = &mut self.backoff;
        b.next = if b.until.is_some() {
            (b.next * 2).min(Backoff::MAX)
        } else {
            self.cfg.retry_min.min(Backoff::MAX)
        };
        b.until = Some(now + b.next);
        self.stats.cmph_backoffs += 1;
        tracing::warn!(network = %self.cfg.network, backoff = ?b.next,
            "MPR out of relay ports: no media pinhole reserve for a while");
    }

    /// The back-off in effect at `now`, if any.
    pub(super) fn backing_off(&self, now: Instant) -> bool {
        self.backoff.until.is_some_and(|t| now < t)
    }

    /// A pinhole opened: the MPR has ports again.
    pub(super) fn back_on(&mut self) {
        self.backoff = Backoff::default();
    }

    /// A CMPH refused with 480: the MPR lost our route (it restarted).
    /// Register at once and send the CMPH again once registered, rather
    /// than fail the call; a second 480 is final. True if parked.
    fn park_unregistered(&mut self, now: Instant, tx: &Tx) -> bool {
        if tx.requeued || tx.purpose == Purpose::Register || self.reg.closing() {
            return false;
        }
        tracing::info!(network = %self.cfg.network, "CMPH refused as not registered: re-registering");
        self.parked.push((tx.purpose, tx.local, tx.remote));
        self.reg.force_refresh(now);
        self.arm(now, Timer::Registration);
        true
    }

    /// Sends the parked CMPHs again (registered) or fails their pinholes.
    fn unpark(&mut self, now: Instant, registered: bool) {
        for (purpose, local, remote) in std::mem::take(&mut self.parked) {
            let (Purpose::Reserve(p) | Purpose::Bind(p, _)) = purpose else {
                continue;
            };
            if !self.pinholes.contains_key(&p) {
                continue;
            }
            if registered {
                if let Some(id) = self.send_request(now, purpose, local, remote, 0)
                    && let Some(tx) = self.txs.get_mut(&id)
                {
                    tx.requeued = true;
                }
            } else {
                self.pinhole_failed(p, Failure::Refused(ErrorCode::NOT_REGISTERED));
            }
        }
    }

    /// Sends a new transaction and arms its retransmission; `None` if it
    /// could not be encoded (then it has failed).
    fn send_request(
        &mut self,
        now: Instant,
        purpose: Purpose,
        local: SocketAddr,
        remote: SocketAddr,
        auth_retries: u8,
    ) -> Option<TransactionId> {
        let id = TransactionId(self.rng.transaction_id());
        let Some(payload) = self.encode_request(id, purpose, Class::Request) else {
            self.on_failure(now, purpose, Failure::Refused(ErrorCode::SERVER_ERROR));
            return None;
        };
        let flow = self.flow_to(local, remote);
        let params = if flow.transport.is_stream() {
            self.cfg.retransmit.reliable()
        } else {
            self.cfg.retransmit
        };
        let tx = Tx::new(
            purpose,
            local,
            remote,
            payload.clone(),
            now,
            params,
            auth_retries,
        );
        let next = tx.next_at;
        self.txs.insert(id, tx);
        self.arm(next, Timer::Tx(id.0));
        self.transmits.push_back(Transmit {
            local,
            remote,
            payload,
            flow,
        });
        Some(id)
    }

    fn restart(&mut self, now: Instant, tx: Tx) {
        let id = self.send_request(now, tx.purpose, tx.local, tx.remote, tx.auth_retries + 1);
        if let Some(new) = id.and_then(|id| self.txs.get_mut(&id)) {
            new.requeued = tx.requeued;
        }
    }

    fn tx_timer(&mut self, now: Instant, id: TransactionId) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if tx.next_at > now {
            return;
        }
        match tx.step(now) {
            Some(payload) => {
                let (local, remote, next) = (tx.local, tx.remote, tx.next_at);
                self.stats.retransmissions += 1;
                let flow = self.flow_to(local, remote);
                self.transmits.push_back(Transmit {
                    local,
                    remote,
                    payload,
                    flow,
                });
                self.arm(next, Timer::Tx(id.0));
            }
            None => {
                if let Some(tx) = self.txs.remove(&id) {
                    self.on_failure(now, tx.purpose, Failure::Timeout);
                }
            }
        }
    }

    /// Encodes a REGISTER or CMPH for a purpose, with the current nonce.
    fn encode_request(&self, id: TransactionId, purpose: Purpose, class: Class) -> Option<Vec<u8>> {
        let mut buf = [0u8; wire::MAX_MESSAGE];
        let method = match purpose {
            Purpose::Register => Method::Register,
            _ => Method::Cmph,
        };
        let r = wire::Builder::new(&mut buf, method, class, id).and_then(|mut b| {
            b.username(&self.cfg.network)?;
            match purpose {
                Purpose::Register => {
                    b.protocol(self.cfg.protocol)?;
                    for d in &self.cfg.domains {
                        b.domain(d)?;
                    }
                    b.lifetime(
                        u32::try_from(self.reg.asked_lifetime(&self.cfg).as_secs())
                            .unwrap_or(u32::MAX),
                    )?;
                }
                Purpose::Reserve(p) => {
                    if let Some(ph) = self.pinholes.get(&p) {
                        b.leg_key(&ph.req.key)?;
                        b.rtcp_mode(ph.req.rtcp)?;
                        // Without a CMPH Response the client never learns
                        // its pinhole and writes this address into its
                        // offer: the MPR finds the leg by it.
                        if self.cfg.cmph_mode == CmphMode::Indication {
                            b.xor_local_address(ph.req.local)?;
                        }
                    }
                }
                Purpose::Bind(p, _) => {
                    if let Some(ph) = self.pinholes.get(&p) {
                        b.leg_key(&ph.req.key)?;
                    }
                }
            }
            if let Some(n) = &self.nonce {
                b.nonce(n)?;
            }
            // The MPR answers a request whose source it has not verified
            // (the first registration, a stale nonce) only if the answer is
            // no larger (spec §2.3): pad requests to the largest such answer.
            // Indications get no answer.
            if class == Class::Request {
                b.pad_to(wire::ANSWERABLE_LEN, true)?;
            }
            b.finish_with(Some(&self.key))
        });
        match r {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e) => {
                tracing::error!(error = %e, "encoding a control request failed");
                None
            }
        }
    }
}

fn component_of(c: u8) -> Component {
    if c == 0 {
        Component::Rtp
    } else {
        Component::Rtcp
    }
}

#[cfg(test)]
mod tests;
