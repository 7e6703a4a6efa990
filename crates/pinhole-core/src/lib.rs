//! Pinhole's sans-IO heart: the control wire format, the relay port
//! allocator and the two engines that open firewall pinholes from the
//! inside — the Media Proxy Router's ([`mpr::Engine`]) and the one an
//! Application Proxy Server or a smart terminal runs ([`client::Engine`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`wire`] | Registration and CMPH framed as STUN (RFC 8489): zero-copy [`wire::Message`], [`wire::Builder`] into a caller buffer, RFC 7983 [`wire::is_control`] |
//! | [`mpr`] | registrations (the Fig. 4 table), CMPH, media intents and the leg table (Fig. 5), latching, expiry |
//! | [`alg`] | the ALG layer every protocol shares: the interface a signaling ALG implements and the drivers call, the relay contract ([`alg::live`]), the APS stream machine ([`alg::aps`]), the MPR call model ([`alg::call`]), transactions ([`alg::txn`]) |
//! | [`framing`] | TCP/TLS stream framing: control messages beside a protocol's frames ([`framing::next`]), RFC 1006 TPKT |
//! | [`hash`] | keyed hashes for tables and derived ids |
//! | [`client`] | registration refresh and alarm (Fig. 6), CMPH with retransmission (Figs. 7, 8), keepalives, the APS's B ↔ A mapping |
//! | [`intent`] | what the protocol ALGs tell the MPR: offers, answers, modifications, teardowns → a [`intent::MediaPlan`] |
//! | [`relay`] | the narrow interface to a media data plane: [`relay::RelayCommand`] out, [`relay::RelayReport`] in |
//! | [`patch`] | byte-faithful rewriting: edits to spans of the original, every other byte copied |
//! | [`ports`] | relay port pairs: random choice, quarantine, O(1) |
//!
//! Nothing here opens a socket, reads a clock or the OS random generator:
//! time is a parameter and randomness a seed, so every run can be replayed.
//!
//! # The run loop
//!
//! A driver (a tokio task in `pinhole-net`, or a test) repeats:
//!
//! 1. feed one input: a datagram (`handle_datagram`), a media intent
//!    (`handle_intent`, MPR), a relay report (`handle_relay`, MPR), traffic
//!    seen (`handle_traffic`, client), or time (`handle_timeout`);
//! 2. drain every output queue: `poll_transmit` (datagrams to send, from the
//!    local address given), `poll_command` (relay commands), `poll_event`;
//! 3. sleep until `poll_timeout`, or until the next input.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pinhole_core::{client, mpr, Receive};
//! use pinhole_core::wire::Protocol;
//!
//! let mut now = Instant::now();
//! let mut mpr_cfg = mpr::Config::new("203.0.113.10".parse().unwrap(), [1; 32]);
//! mpr_cfg.networks.push(mpr::NetworkConfig::new("corp1", b"secret".to_vec()));
//! let mut mpr = mpr::Engine::new(mpr_cfg, now).unwrap();
//! let aps_cfg = client::Config::new(
//!     "corp1", b"secret".to_vec(), Protocol::Sip,
//!     "10.0.0.2:5060".parse().unwrap(),      // the APS's signaling socket
//!     "203.0.113.10:5060".parse().unwrap(),  // the MPR
//!     [2; 32],
//! );
//! let mut aps = client::Engine::new(aps_cfg, now).unwrap();
//! // A lossless path through a NAT that maps 10.0.0.2:p to 198.51.100.1:p.
//! let public = |a: std::net::SocketAddr| std::net::SocketAddr::new([198, 51, 100, 1].into(), a.port());
//! for _ in 0..4 {
//!     aps.handle_timeout(now);
//!     while let Some(t) = aps.poll_transmit() {
//!         let rx = Receive { local: t.remote, remote: public(t.local), bytes: &t.payload, flow: Default::default() };
//!         let _ = mpr.handle_datagram(now, rx);
//!     }
//!     while let Some(t) = mpr.poll_transmit() {
//!         let rx = Receive { local: "10.0.0.2:5060".parse().unwrap(), remote: t.local, bytes: &t.payload, flow: Default::default() };
//!         let _ = aps.handle_datagram(now, rx);
//!     }
//!     now += Duration::from_millis(10);
//! }
//! // Fig. 6 done: the MPR routes corp1's SIP to the firewall's pinhole.
//! let route = mpr.route("corp1", Protocol::Sip).unwrap();
//! assert_eq!(route.pinhole, "198.51.100.1:5060".parse().unwrap());
//! assert_eq!(aps.registered_pinhole(), Some(route.pinhole));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod alg;
pub mod client;
pub mod framing;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod intent;
pub mod mpr;
pub mod patch;
pub mod ports;
pub mod relay;
pub mod rng;
pub mod types;
pub mod wire;

pub use types::{CallKey, Component, LegId, Receive, Side, Transmit};

/// A base instant for unit tests. Tests only add durations to it; the
/// engines themselves never read a clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_instant() -> std::time::Instant {
    std::time::Instant::now()
}

/// The fuzz bodies need a base instant; like the tests, they only add
/// durations to it.
#[cfg(feature = "fuzzing")]
#[allow(clippy::disallowed_methods)]
pub(crate) fn fuzz_instant() -> std::time::Instant {
    std::time::Instant::now()
}
