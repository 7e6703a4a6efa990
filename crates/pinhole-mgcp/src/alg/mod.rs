//! The MGCP ALG: sans-IO proxies for the MPR and the APS, and a smart
//! gateway, implementing [`pinhole_core::alg::MprSignaling`] and
//! [`pinhole_core::alg::ClientSignaling`]. A driver feeds them datagrams,
//! engine events and time, and sends what they queue.
//!
//! | type | where | does |
//! | --- | --- | --- |
//! | [`Mpr`] | the MPR, public side | routes the call agent's commands by endpoint domain into registered networks' signaling pinholes, answers go back by transaction id; gateways' commands go to the call agent; plans media with the MPR engine and writes relay addresses into the session descriptions (Figs. 9 and 10, the MPR's column) |
//! | [`Aps`] | inside a network | the inside gateways' call agent as they see it: forwards to the MPR, opens a media pinhole with CMPH before a gateway's LocalConnectionDescriptor leaves (Fig. 9 steps 825–835, 855–865), gives the gateways APS media ports (port B) |
//! | [`SmartGateway`] | a gateway with its own client engine | answers the call agent's commands itself, opens CMPH for its own RTP port before it answers a CRCX (Fig. 10 steps 915–925) |
//!
//! Each is built from the protocol-neutral pieces of
//! [`pinhole_core::alg`]; what stays here is MGCP's own:
//!
//! | piece of core | used by | for |
//! | --- | --- | --- |
//! | [`call::MediaCall`], [`call::Sides`], [`call::Place`] | [`Mpr`] | one MGCP call (per call agent and `C:`) with two parties: offer, modification, re-offer after the engine forgot the call, teardown; its `CallAnchored`, `MediaPlanned`, `PlanRefused` and `CallEnded` events |
//! | [`aps::ApsMedia`], [`aps::Held`] | [`Aps`] (per connection), [`SmartGateway`] (terminal mode, per connection id) | ports B, CMPH before a description leaves, pinhole states, messages held per call; the `PinholeOpened` and `PinholeFailed` events with the stream's LEG-KEY |
//! | [`txn::Transactions`] | [`Mpr`], [`Aps`] | T-hist: what was sent on for each command and final response, keyed by direction and transaction id, replayed for a retransmission |
//! | [`Rejection`] | all | the error a message is answered with |
//!
//! [`call::MediaCall`]: pinhole_core::alg::call::MediaCall
//! [`call::Sides`]: pinhole_core::alg::call::Sides
//! [`call::Place`]: pinhole_core::alg::call::Place
//! [`aps::ApsMedia`]: pinhole_core::alg::aps::ApsMedia
//! [`aps::Held`]: pinhole_core::alg::aps::Held
//! [`txn::Transactions`]: pinhole_core::alg::txn::Transactions
//!
//! MGCP has no length field: only the `c=`, `m=` and `a=rtcp:` bytes of
//! the session descriptions change, as [`pinhole_core::patch::Patch`]
//! edits; every other byte passes as it came, with one exception at the
//! MPR: every network's gateways reach the call agent from its one socket,
//! and RFC 3435 §3.5 makes transaction ids unique only per sender, so a
//! gateway's command gets a transaction id of the MPR's toward the call
//! agent (its `K:` list and `000` follow; ids no longer tracked drop out
//! of `K:`), and the call agent's answer gets the gateway's id back. The
//! call agent's own ids pass unchanged; two call agents using the same id
//! toward one network at the same moment collide, and the second is
//! answered 409.
//!
//! Error codes the proxies answer with (RFC 3435 §2.4): 500 endpoint
//! unknown (no network serves the domain, no inside gateway), 501 endpoint
//! not ready (its network is not registered), 403 insufficient resources
//! now (call table full, relay ports exhausted), 409 internal overload
//! (transaction table full), 502 insufficient resources (the media
//! pinhole could not be opened), 505 unsupported RemoteConnectionDescriptor
//! (an SDP that cannot be read), 510 protocol error (no call agent to send
//! a gateway's command to; messages of one datagram for different
//! destinations).
//!
//! A message whose SDP cannot be read or rewritten never goes on, by
//! [`pinhole_core::alg::unreadable`]: a command is answered 505 (RFC 3435
//! §2.4: the RemoteConnectionDescriptor cannot be used; 510 would say the
//! MGCP itself was broken, and it is not), a response is cut out of its
//! datagram (the rest goes on) and the call agent's retransmissions time
//! out. Both count in `sdp_errors`.
//!
//! ```
//! use std::time::Instant;
//! use pinhole_core::alg::MprSignaling;
//! use pinhole_core::alg::live::{LiveMpr, NoSockets};
//! use pinhole_core::mpr::{Config, Engine, NetworkConfig};
//! use pinhole_core::types::{Flow, Receive};
//! use pinhole_mgcp::alg::{Mpr, MprConfig};
//!
//! let now = Instant::now();
//! let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [7; 32]);
//! let mut net = NetworkConfig::new("corp1", b"s3cret".to_vec());
//! net.domains.push("corp1.example".into());
//! cfg.networks.push(net);
//! let mut engine = Engine::new(cfg, now).unwrap();
//! let mut alg = Mpr::new(MprConfig::new("203.0.113.10:2727".parse().unwrap()));
//! // corp1 has not registered its MGCP pinhole: the call agent is told 501.
//! let crcx = b"CRCX 1001 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: 42\r\n";
//! alg.handle_datagram(now, &mut LiveMpr::new(&mut engine, &mut NoSockets), Receive {
//!     local: "203.0.113.10:2727".parse().unwrap(),
//!     remote: "192.0.2.5:2727".parse().unwrap(),
//!     bytes: crcx,
//!     flow: Flow::UDP,
//! });
//! let answer = alg.poll_transmit().unwrap();
//! assert!(answer.payload.starts_with(b"501 1001"));
//! ```

mod aps;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod mpr;
mod smart;

pub use aps::{Aps, ApsConfig};
pub use mpr::{Mpr, MprConfig};
pub use smart::{Connection, SmartGateway, SmartGatewayConfig};

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use pinhole_core::alg::txn::{Leg, Transactions};
use pinhole_core::alg::{Counters, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::Transmit;

use crate::{Head, Message, Verb};

/// Counters of an MGCP proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the proxy.
    pub received: u64,
    /// Datagrams sent on.
    pub forwarded: u64,
    /// Responses the proxy made itself (500, 501, 409...).
    pub replied: u64,
    /// Unparsable datagrams.
    pub malformed: u64,
    /// Datagrams with several messages (RFC 3435 §3.6).
    pub piggybacked: u64,
    /// Session descriptions rewritten.
    pub sdp_rewritten: u64,
    /// Session descriptions that could not be read or rewritten.
    pub sdp_errors: u64,
    /// Media plans the engine refused.
    pub plan_errors: u64,
    /// Commands for a network with no live MGCP route (answered 501).
    pub no_route: u64,
    /// Commands for an endpoint no network or gateway serves (answered 500).
    pub unknown_endpoint: u64,
    /// Responses to no transaction we forwarded (dropped).
    pub unknown_transaction: u64,
    /// Retransmitted commands and responses (sent on again unchanged).
    pub retransmissions: u64,
    /// Calls whose media was torn down (DLCX, failed CRCX).
    pub teardowns: u64,
    /// Calls tracked since the start.
    pub calls: u64,
    /// New calls refused at the call limit.
    pub calls_refused: u64,
    /// Commands refused at the transaction limit.
    pub transactions_refused: u64,
    /// Calls forgotten for inactivity.
    pub expired: u64,
    /// Gateways' commands with nowhere to go (no call agent).
    pub no_call_agent: u64,
    /// Media pinholes asked for (APS, smart gateway).
    pub pinholes: u64,
    /// Media pinholes that failed (APS, smart gateway).
    pub pinhole_failures: u64,
    /// Messages held until their pinholes opened (APS, smart gateway).
    pub parked: u64,
}

impl Stats {
    /// The counters by name, for metrics.
    pub fn counters(&self) -> Counters {
        vec![
            ("received", self.received),
            ("forwarded", self.forwarded),
            ("replied", self.replied),
            ("malformed", self.malformed),
            ("piggybacked", self.piggybacked),
            ("sdp_rewritten", self.sdp_rewritten),
            ("sdp_errors", self.sdp_errors),
            ("plan_errors", self.plan_errors),
            ("no_route", self.no_route),
            ("unknown_endpoint", self.unknown_endpoint),
            ("unknown_transaction", self.unknown_transaction),
            ("retransmissions", self.retransmissions),
            ("teardowns", self.teardowns),
            ("calls", self.calls),
            ("calls_refused", self.calls_refused),
            ("transactions_refused", self.transactions_refused),
            ("expired", self.expired),
            ("no_call_agent", self.no_call_agent),
            ("pinholes", self.pinholes),
            ("pinhole_failures", self.pinhole_failures),
            ("parked", self.parked),
        ]
    }
}

/// The verbs the proxies treat specially.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Crcx,
    Mdcx,
    Dlcx,
    Other,
}

impl Kind {
    fn of(m: &Message<'_>) -> Self {
        match m.verb() {
            Some(Verb::Crcx) => Self::Crcx,
            Some(Verb::Mdcx) => Self::Mdcx,
            Some(Verb::Dlcx) => Self::Dlcx,
            _ => Self::Other,
        }
    }
}

/// Who sent a transaction's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dir {
    /// The call agent (through the MPR, at an APS), toward a gateway.
    Down,
    /// A gateway, toward the call agent.
    Up,
}

impl Dir {
    /// The transaction a message of `leg` belongs to, from a sender whose
    /// own commands go `commands`: its responses answer the other way's.
    fn of(commands: Self, leg: Leg) -> Self {
        match (leg, commands) {
            (Leg::Request, d) => d,
            (Leg::Response, Self::Down) => Self::Up,
            (Leg::Response, Self::Up) => Self::Down,
        }
    }
}

/// The endpoint a command names, in lower case (the form the proxies
/// compare); empty for a response.
fn endpoint_name(m: &Message<'_>) -> String {
    m.endpoint()
        .map(|e| e.text.to_ascii_lowercase())
        .unwrap_or_default()
}

/// 500: no network or gateway serves the endpoint.
const ENDPOINT_UNKNOWN: Rejection = Rejection::new(500, "Endpoint unknown");
/// 409: the transaction table is full.
const OVERLOAD: Rejection = Rejection::new(409, "Internal overload");
/// 403: the call or connection table is full, or no media port is free.
const NO_RESOURCES: Rejection = Rejection::new(403, "Insufficient resources");
/// 505: a session description that cannot be read or rewritten.
const BAD_SDP: Rejection = Rejection::new(505, "Unsupported RemoteConnectionDescriptor");
/// 502: the media pinhole could not be opened (RFC 3435 §2.4).
const PINHOLE_FAILED: Rejection = Rejection::new(502, "Media pinhole failed");

/// A response the proxy writes itself, RFC 3435 §3.3 style.
fn reply(why: Rejection, transaction_id: u32) -> Vec<u8> {
    crate::response(why.code, transaction_id, Some(why.reason), &[], None)
}

/// Several replies in one datagram (§3.6).
fn replies(list: &[Vec<u8>]) -> Vec<u8> {
    let parts: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
    crate::piggyback(&parts)
}

/// The domain and each parent suffix: `gw1.corp1.example`,
/// `corp1.example`, `example`.
fn suffixes(domain: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(domain);
    std::iter::from_fn(move || {
        let d = next?;
        next = d
            .split_once('.')
            .map(|(_, rest)| rest)
            .filter(|r| !r.is_empty());
        Some(d)
    })
}

/// The call agent address in a NotifiedEntity (`ca@[192.0.2.5]:2727`,
/// `ca@192.0.2.5:2727`, `192.0.2.5`): IP literals only (the proxy never
/// blocks on DNS); the port defaults to 2727 (RFC 3435 §3.6).
fn entity_addr(value: &str) -> Option<SocketAddr> {
    let host = value.rsplit_once('@').map_or(value, |(_, h)| h).trim();
    if let Ok(a) = host.parse::<SocketAddr>() {
        return Some(a);
    }
    let (h, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 2727,
                None => return None,
            };
            (h, port)
        }
        None => match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            _ => (host, 2727),
        },
    };
    Some(SocketAddr::new(h.parse::<IpAddr>().ok()?, port))
}

/// Whether an endpoint named by a DLCX (`local@domain`, lower case)
/// names `have` (RFC 3435 §2.3.9: `*` in the local name names all of the
/// domain's).
fn dlcx_names(endpoint: &str, have: &str) -> bool {
    let (local, domain) = endpoint.split_once('@').unwrap_or((endpoint, ""));
    have == endpoint
        || (local.split('/').any(|t| t == "*")
            && have.rsplit_once('@').is_some_and(|(_, d)| d == domain))
}

/// Where one message of a datagram goes.
enum Route<T> {
    /// On, to this place (a network, a call agent, a gateway).
    To(T),
    /// Answered with this error (when it is a command) and cut out.
    Fail(Rejection),
    /// Cut out without a word.
    Drop,
}

impl<T: Clone + PartialEq> Route<T> {
    /// One datagram goes on to one place: the first message's destination
    /// becomes the datagram's (`dest`); a later message for another place
    /// is refused (510, `why`).
    fn one_place(self, dest: &mut Option<T>, why: &'static str) -> Self {
        match (self, dest.as_ref()) {
            (Self::To(t), Some(d)) if *d != t => Self::Fail(Rejection::new(510, why)),
            (Self::To(t), _) => {
                *dest = Some(t.clone());
                Self::To(t)
            }
            (other, _) => other,
        }
    }

    /// Where message `k` (`m`) goes on to; `None` when it is cut out (a
    /// command refused gets its error in `errors`).
    fn place(
        &self,
        m: &Message<'_>,
        k: usize,
        drop: &mut [bool],
        errors: &mut Vec<Vec<u8>>,
    ) -> Option<&T> {
        match self {
            Self::To(t) => return Some(t),
            Self::Fail(why) if m.command().is_some() => {
                errors.push(reply(*why, m.transaction_id()));
            }
            Self::Fail(_) | Self::Drop => {}
        }
        mark(drop, k);
        None
    }
}

/// Marks message `k` of a datagram to be cut out.
fn mark(drop: &mut [bool], k: usize) {
    if let Some(d) = drop.get_mut(k) {
        *d = true;
    }
}

/// The datagram to send on: the messages marked in `drop` cut out and the
/// edits in `patch` applied; `None` when nothing is left, or (counted as
/// malformed) when the edits do not apply.
fn assemble(
    msgs: &[Message<'_>],
    drop: &[bool],
    patch: &mut Patch,
    bytes: &[u8],
    stats: &mut Stats,
) -> Option<Vec<u8>> {
    if !drop_messages(msgs, drop, patch) {
        return None;
    }
    match patch.apply(bytes) {
        Ok(payload) => Some(payload),
        Err(_) => {
            stats.malformed += 1;
            None
        }
    }
}

/// Removes the messages marked in `drop` from the datagram (each with its
/// separator line), as edits in `patch`. False when nothing is left.
fn drop_messages(msgs: &[Message<'_>], drop: &[bool], patch: &mut Patch) -> bool {
    let Some(first) = drop.iter().position(|d| !d) else {
        return false;
    };
    let span = |k: usize| msgs.get(k).map_or(0..0, Message::span);
    if first > 0 {
        patch.delete(span(0).start..span(first).start);
    }
    for (k, d) in drop.iter().enumerate().skip(first + 1) {
        if *d {
            let r: Range<usize> = span(k - 1).end..span(k).end;
            patch.delete(r);
        }
    }
    true
}

/// Which message of its transaction `m` is, when one worth keeping for
/// retransmissions: a command, or a final response (a provisional one
/// and a response acknowledgement are not repeated as they were).
fn leg_of(m: &Message<'_>) -> Option<Leg> {
    match m.head() {
        Head::Command(_) => Some(Leg::Request),
        Head::Response(r) if r.is_final() => Some(Leg::Response),
        Head::Response(_) => None,
    }
}

/// Keeps the datagram `sent` on for retransmissions, under the
/// transaction of the first message of it that was not cut out (`key`
/// names that transaction, if it is one of ours): a retransmission of the
/// datagram starts with that message.
fn keep_sent<K: Clone + Eq + Hash, V>(
    txns: &mut Transactions<K, V>,
    now: Instant,
    msgs: &[Message<'_>],
    drop: &[bool],
    sent: &Transmit,
    key: impl FnOnce(&Message<'_>, Leg) -> Option<K>,
) {
    let Some(first) = msgs.iter().zip(drop).find(|(_, d)| !**d).map(|(m, _)| m) else {
        return;
    };
    if let Some(leg) = leg_of(first)
        && let Some(k) = key(first, leg)
    {
        txns.remember(now, &k, leg, sent);
    }
}

#[cfg(test)]
mod tests;
