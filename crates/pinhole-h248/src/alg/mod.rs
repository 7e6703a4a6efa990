//! The H.248 ALG: sans-IO proxies for the MPR and the APS, implementing
//! [`pinhole_core::alg::MprSignaling`] and
//! [`pinhole_core::alg::ClientSignaling`] (Figs. 13 and 14). A driver feeds
//! them datagrams, engine events and time, and sends what they queue.
//!
//! | type | where | does |
//! | --- | --- | --- |
//! | [`Mpr`] | the MPR, public side | gives each media gateway (by its `mId`) a transport address of its own toward the MGC, routes the MGC's transactions for it into the signaling pinhole it came through, plans media with the MPR engine and writes relay addresses into the `Local` and `Remote` descriptors |
//! | [`Aps`] | inside a network | the inside gateways' MGC as they see it: forwards to the MPR, opens a media pinhole with CMPH before a gateway's `Local` descriptor leaves (Fig. 13 steps 1220–1235, 1250–1265), gives the gateways APS media ports (port B) |
//!
//! **Routing.** Every gateway reaches the MGC through the MPR, and an MGC
//! keys its gateway associations on the peer's transport address (OTP's
//! megaco does), so the MPR gives each `mId` a port of its own
//! ([`MprConfig::mg_ports`]) and talks to the MGC for that gateway from
//! there. The MGC's messages to that port go into the signaling pinhole
//! the gateway's messages came through. Several gateways may sit behind
//! one APS (one pinhole), and the MGC's messages carry the MGC's `mId`,
//! not the gateway's: the MPR names the gateway in a comment line it puts
//! before the message ([`tag`]: `;pinhole-mg=<mId>`, a comment is valid
//! H.248 text wherever white space is, RFC 3525 Annex B `LWSP`), and the
//! APS takes the line off again before the gateway sees the message
//! ([`untag`]). No other byte changes on the way but the media addresses.
//!
//! Error codes the proxies answer with (H.248.8): 400 bad request (a
//! session description that cannot be read), 402 unauthorized (an `mId`
//! that belongs to another network), 503 service unavailable (the
//! gateway's network is not registered), 510 insufficient resources (a
//! table full, no relay or APS port free, the media pinhole failed).

mod aps;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod mpr;
mod streams;

pub use aps::{Aps, ApsConfig};
pub use mpr::{Mpr, MprConfig};

use std::time::Instant;

use pinhole_core::alg::txn::{Leg, Transactions};
use pinhole_core::alg::{Counters, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::Transmit;

use crate::{Item, Message};

/// Counters of an H.248 proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the proxy.
    pub received: u64,
    /// Datagrams sent on.
    pub forwarded: u64,
    /// Error replies the proxy made itself.
    pub replied: u64,
    /// Unparsable datagrams (dropped: H.248 text cannot be answered
    /// without its transaction ids).
    pub malformed: u64,
    /// Session descriptions rewritten.
    pub sdp_rewritten: u64,
    /// Session descriptions that could not be read or rewritten.
    pub sdp_errors: u64,
    /// Media plans the engine refused.
    pub plan_errors: u64,
    /// Messages for a gateway whose network has no live H.248 route.
    pub no_route: u64,
    /// Messages for no gateway the proxy knows (a port with no `mId`, a
    /// message from the MPR without its gateway line).
    pub unknown_mg: u64,
    /// Messages from an address that is neither a registered pinhole nor
    /// the MGC (dropped).
    pub unknown_source: u64,
    /// Gateways' messages naming an `mId` another network holds.
    pub mid_conflicts: u64,
    /// Gateways refused because every gateway port is taken.
    pub mgs_refused: u64,
    /// Replies to no transaction the proxy forwarded (dropped).
    pub unknown_transaction: u64,
    /// Retransmitted transactions (sent on again as first rewritten).
    pub retransmissions: u64,
    /// Calls whose media was torn down (Subtract, a failed Add).
    pub teardowns: u64,
    /// Calls tracked since the start.
    pub calls: u64,
    /// New calls or terminations refused at their table's limit.
    pub calls_refused: u64,
    /// Transactions refused at the transaction limit.
    pub transactions_refused: u64,
    /// Calls, terminations and gateways forgotten for inactivity.
    pub expired: u64,
    /// Media pinholes asked for (APS).
    pub pinholes: u64,
    /// Media pinholes that failed (APS).
    pub pinhole_failures: u64,
    /// Messages held until their pinholes opened (APS).
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
            ("sdp_rewritten", self.sdp_rewritten),
            ("sdp_errors", self.sdp_errors),
            ("plan_errors", self.plan_errors),
            ("no_route", self.no_route),
            ("unknown_mg", self.unknown_mg),
            ("unknown_source", self.unknown_source),
            ("mid_conflicts", self.mid_conflicts),
            ("mgs_refused", self.mgs_refused),
            ("unknown_transaction", self.unknown_transaction),
            ("retransmissions", self.retransmissions),
            ("teardowns", self.teardowns),
            ("calls", self.calls),
            ("calls_refused", self.calls_refused),
            ("transactions_refused", self.transactions_refused),
            ("expired", self.expired),
            ("pinholes", self.pinholes),
            ("pinhole_failures", self.pinhole_failures),
            ("parked", self.parked),
        ]
    }
}

/// Who sent a transaction's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dir {
    /// The MGC, toward a gateway.
    Down,
    /// A gateway, toward the MGC.
    Up,
}

impl Dir {
    /// The transaction an item of `leg` belongs to, from a sender whose
    /// own requests go `requests`: its replies answer the other way's.
    fn of(requests: Self, leg: Leg) -> Self {
        match (leg, requests) {
            (Leg::Request, d) => d,
            (Leg::Response, Self::Down) => Self::Up,
            (Leg::Response, Self::Up) => Self::Down,
        }
    }
}

/// 400: a session description that cannot be read or rewritten.
const BAD_SDP: Rejection = Rejection::new(400, "Unreadable session description");
/// 402: an `mId` another network holds.
const UNAUTHORIZED: Rejection = Rejection::new(402, "Unauthorized");
/// 503: the gateway's network has no live route.
const NOT_READY: Rejection = Rejection::new(503, "Service Unavailable");
/// 510: a table is full, no port is free.
const NO_RESOURCES: Rejection = Rejection::new(510, "Insufficient resources");
/// 510: the media pinhole could not be opened.
const PINHOLE_FAILED: Rejection = Rejection::new(510, "Media pinhole failed");

/// The start of the line the MPR puts before a message it sends into a
/// network's pinhole, naming the gateway it is for.
const TAG: &[u8] = b";pinhole-mg=";

/// `payload` with the line naming gateway `mid` before it.
pub fn tag(mid: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG.len() + mid.len() + 2 + payload.len());
    out.extend_from_slice(TAG);
    out.extend_from_slice(mid.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out
}

/// The gateway a message from the MPR is for, and the message without
/// its line; `None` when it has no such line.
pub fn untag(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let rest = bytes.strip_prefix(TAG)?;
    let eol = rest.iter().position(|&b| b == b'\n')?;
    let line = rest.get(..eol)?;
    let mid = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    if mid.is_empty() || mid.contains(char::is_whitespace) {
        return None;
    }
    Some((mid, rest.get(eol + 1..)?))
}

/// The key under which a gateway is known: its `mId` as written, in lower
/// case (domain names and hex digits compare without case).
fn mid_key(mid: &str) -> String {
    mid.to_ascii_lowercase()
}

/// Which leg of its transaction an item is, when one worth keeping for
/// retransmissions: a request, or a reply (pending and acknowledgements
/// are not repeated as they were).
fn leg_of(item: &Item<'_>) -> Option<Leg> {
    match item {
        Item::Request(_) => Some(Leg::Request),
        Item::Reply(_) => Some(Leg::Response),
        Item::Pending { .. } | Item::ResponseAck { .. } => None,
    }
}

/// The error reply a proxy writes for transaction `id` in the name of
/// `mid`.
fn reply(version: u8, mid: &str, id: u32, why: Rejection) -> Vec<u8> {
    crate::error_reply(version, mid, id, why.code, why.reason)
}

/// The message to send on: the items marked in `drop` cut out and the
/// edits in `patch` applied; `None` when no item is left or the edits do
/// not apply.
fn assemble(msg: &Message<'_>, drop: &[bool], patch: &mut Patch) -> Option<Vec<u8>> {
    let items = msg.items();
    if !items.is_empty() && drop.iter().all(|d| *d) {
        return None;
    }
    for (i, (item, d)) in items.iter().zip(drop).enumerate() {
        if *d {
            // Up to the next item: a comma between transactions (tolerated
            // on the way in) must not be left leading the message.
            let end = items.get(i + 1).map_or(item.span().end, |n| n.span().start);
            patch.delete(item.span().start..end);
        }
    }
    patch.apply(msg.bytes()).ok()
}

/// Keeps `sent` for retransmissions, under the transaction of the first
/// item that went on (`key` names it): a retransmission of the message
/// starts with that item.
fn keep_sent<K: Clone + Eq + std::hash::Hash, V>(
    txns: &mut Transactions<K, V>,
    now: Instant,
    msg: &Message<'_>,
    drop: &[bool],
    sent: &Transmit,
    key: impl FnOnce(&Item<'_>, Leg) -> Option<K>,
) {
    let Some(first) = msg
        .items()
        .iter()
        .zip(drop)
        .find(|(_, d)| !**d)
        .map(|(i, _)| i)
    else {
        return;
    };
    if let Some(leg) = leg_of(first)
        && let Some(k) = key(first, leg)
    {
        txns.remember(now, &k, leg, sent);
    }
}

/// Whether termination id `pattern` names termination `name`, where `*`
/// stands for any run of characters (H.248's ALL wildcard, RFC 3525
/// §6.2).
pub(crate) fn names(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(name),
        Some((head, rest)) => {
            let Some(tail) = name
                .get(..head.len())
                .filter(|h| h.eq_ignore_ascii_case(head))
                .and_then(|_| name.get(head.len()..))
            else {
                return false;
            };
            // `get` is `None` inside a character: only boundaries count.
            (0..=tail.len()).any(|i| tail.get(i..).is_some_and(|t| names(rest, t)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_message_untags_to_its_gateway_and_the_same_bytes() {
        let msg = b"MEGACO/1 [192.0.2.5]:2944\r\nTransaction = 1 {}\r\n";
        let t = tag("[10.1.0.10]:2944", msg);
        assert!(t.starts_with(b";pinhole-mg=[10.1.0.10]:2944\r\n"));
        assert_eq!(untag(&t), Some(("[10.1.0.10]:2944", &msg[..])));
        // The tagged message is still H.248 text: a comment line first.
        assert!(crate::parse(&t).is_ok());
    }

    #[test]
    fn untag_refuses_what_the_mpr_did_not_write() {
        assert_eq!(untag(b"MEGACO/1 [1.2.3.4]\r\n"), None);
        assert_eq!(untag(b";pinhole-mg=\r\nMEGACO/1 [1.2.3.4]\r\n"), None);
        assert_eq!(untag(b";pinhole-mg=a b\r\nMEGACO/1 [1.2.3.4]\r\n"), None);
        assert_eq!(untag(b";pinhole-mg=<mg1>"), None);
        assert_eq!(untag(b";pinhole-mg=<mg1>\nX"), Some(("<mg1>", &b"X"[..])));
    }

    #[test]
    fn a_dropped_transaction_takes_its_separating_comma_along() {
        let msg = b"MEGACO/1 [10.0.1.10]:2944\nP=7{C=5{}},\nT=2{C=-{N=ROOT{}}},\nT=3{C=-{}}\n";
        let m = crate::parse(msg).expect("commas between transactions are tolerated");
        for (drop, want) in [
            (
                [true, false, false],
                &b"MEGACO/1 [10.0.1.10]:2944\nT=2{C=-{N=ROOT{}}},\nT=3{C=-{}}\n"[..],
            ),
            (
                [false, true, false],
                &b"MEGACO/1 [10.0.1.10]:2944\nP=7{C=5{}},\nT=3{C=-{}}\n"[..],
            ),
            (
                [false, false, true],
                &b"MEGACO/1 [10.0.1.10]:2944\nP=7{C=5{}},\nT=2{C=-{N=ROOT{}}},\n\n"[..],
            ),
            (
                [true, true, false],
                &b"MEGACO/1 [10.0.1.10]:2944\nT=3{C=-{}}\n"[..],
            ),
        ] {
            let out = assemble(&m, &drop, &mut Patch::new()).expect("an item stays");
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
            let again = crate::parse(&out).expect("what is left parses");
            assert_eq!(again.items().len(), drop.iter().filter(|d| !**d).count());
        }
        assert_eq!(assemble(&m, &[true; 3], &mut Patch::new()), None);
    }

    #[test]
    fn replies_and_requests_belong_to_opposite_directions() {
        assert_eq!(Dir::of(Dir::Down, Leg::Request), Dir::Down);
        assert_eq!(Dir::of(Dir::Down, Leg::Response), Dir::Up);
        assert_eq!(Dir::of(Dir::Up, Leg::Response), Dir::Down);
    }
}
