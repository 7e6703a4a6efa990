//! The SIP proxies of the MPR and the APS: sans-IO implementations of
//! [`pinhole_core::alg::MprSignaling`] and
//! [`pinhole_core::alg::ClientSignaling`], built from
//! [`pinhole_core::alg`]'s pieces. A driver feeds them datagrams, engine
//! events and time, and sends what they queue.
//!
//! | module | what is SIP's own | built on |
//! | --- | --- | --- |
//! | [`Mpr`] (`mpr`) | routes by domain into registered networks' pinholes (Fig. 4), record-routes, names each dialog traversal by a token, writes relay addresses into SDP | `call::{Place, Sides, MediaCall}` (offer or modify, re-offer after the engine forgot, teardown, events) |
//! | `registrar` | plain terminals: REGISTER to the soft-switch, bindings from its 2xx, their NAT binding as a `Place::Phone` | — |
//! | [`Aps`] (`aps`) | forwards the inside phones' signaling to the MPR and requests from it to the phone registered for the Request-URI; refuses a message whose media pinhole failed (503 to a request; a 2xx becomes a 503 upstream and the phone's dialog is ended with ACK and BYE) | `aps::{ApsMedia, Held}` (CMPH before SDP leaves, Fig. 11 steps 1010–1015 and 1060–1065; port B for SDP entering; messages held until their pinholes open) |
//! | `edit` | the header edits of a proxy and the messages it builds itself (error responses, the ACK and BYE that end a phone's dialog) | `patch::Patch` |
//!
//! Both edit messages only through spans ([`pinhole_core::patch::Patch`]):
//! Via, Record-Route, Route, Max-Forwards, the SDP media fields and
//! Content-Length change; every other byte passes as it came. Errors a
//! proxy answers itself are [`pinhole_core::alg::Rejection`]s.
//!
//! Nothing either proxy cannot read goes on (issue 18). A message whose
//! SDP cannot be read or rewritten follows
//! [`pinhole_core::alg::unreadable`]: a request gets 488, a response is
//! dropped (`sdp_errors`). At the MPR a message that fails the parse, lacks
//! To, From, Call-ID or CSeq, is not SIP/2.0, has a body without
//! Content-Type, or (a request) has headers in its Request-URI or a
//! malformed To, From or Contact is never forwarded: a request that can
//! be answered gets 400 naming what is broken (505 for the version), the
//! rest is dropped (`malformed`). A request that failed the parse is
//! answered from its raw Via, From, To, Call-ID and CSeq lines, and only
//! when the answer is no larger than it.

mod aps;
mod edit;
mod inside;
mod mpr;
mod registrar;

pub use aps::{Aps, ApsConfig};
pub use mpr::{Mpr, MprConfig};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::{Counters, Outbox, Rejection};
use pinhole_core::patch::Patch;
use pinhole_core::types::{Flow, Receive, Transmit};

use crate::Message;

/// Counters of a proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the proxy.
    pub received: u64,
    /// Messages sent on.
    pub forwarded: u64,
    /// Responses the proxy made itself (400, 403, 404, 481, 483, 503...).
    pub replied: u64,
    /// Unparsable or unusable messages (no Via, no Call-ID, no CSeq, not
    /// SIP/2.0...): a request that can be answered gets 400 (505), the
    /// rest is dropped; none goes on.
    pub malformed: u64,
    /// RFC 5626 CRLF keepalives.
    pub keepalives: u64,
    /// In-dialog requests for dialogs we do not know.
    pub unknown_dialog: u64,
    /// Dialogs (traversals) created.
    pub dialogs: u64,
    /// New calls refused at the dialog limit.
    pub dialogs_refused: u64,
    /// Messages that were not ours to route (a response whose top Via is
    /// not ours, a request for a domain we do not serve).
    pub not_ours: u64,
    /// SDP bodies rewritten.
    pub sdp_rewritten: u64,
    /// SDP that could not be read or rewritten: the request was refused
    /// (488), the response dropped; neither went on.
    pub sdp_errors: u64,
    /// Media plans the engine refused.
    pub plan_errors: u64,
    /// Calls torn down (BYE, CANCEL, failed setup).
    pub teardowns: u64,
    /// Dialogs forgotten for inactivity.
    pub expired: u64,
    /// Media pinholes asked for (APS).
    pub pinholes: u64,
    /// Media pinholes that failed (APS).
    pub pinhole_failures: u64,
    /// Messages held until their pinholes opened (APS).
    pub parked: u64,
    /// Plain terminals' REGISTERs sent to the registrar (MPR).
    pub registrations: u64,
    /// Plain-terminal bindings learned from the registrar's 2xx (MPR).
    pub bindings: u64,
    /// Plain-terminal bindings that expired (MPR).
    pub bindings_expired: u64,
}

impl Stats {
    /// The counters by name, for metrics.
    pub fn counters(&self) -> Counters {
        vec![
            ("received", self.received),
            ("forwarded", self.forwarded),
            ("replied", self.replied),
            ("malformed", self.malformed),
            ("keepalives", self.keepalives),
            ("unknown_dialog", self.unknown_dialog),
            ("dialogs", self.dialogs),
            ("dialogs_refused", self.dialogs_refused),
            ("not_ours", self.not_ours),
            ("sdp_rewritten", self.sdp_rewritten),
            ("sdp_errors", self.sdp_errors),
            ("plan_errors", self.plan_errors),
            ("teardowns", self.teardowns),
            ("expired", self.expired),
            ("pinholes", self.pinholes),
            ("pinhole_failures", self.pinhole_failures),
            ("parked", self.parked),
            ("registrations", self.registrations),
            ("bindings", self.bindings),
            ("bindings_expired", self.bindings_expired),
        ]
    }
}

/// What a proxy answers a request whose SDP it cannot read or rewrite
/// (RFC 3261 §21.4.26: the session description is not acceptable here);
/// the message never goes on ([`pinhole_core::alg::unreadable`]).
const BAD_SDP: Rejection = Rejection::new(488, "Not Acceptable Here");

/// How long a dialog's state lives, at the MPR and the APS alike.
#[derive(Clone, Copy, Debug)]
struct Lifetime {
    setup_timeout: Duration,
    dialog_idle: Duration,
    linger: Duration,
}

impl Lifetime {
    /// True when a dialog last active at `last` is to be forgotten: an
    /// ended one after `linger` (its retransmissions absorbed), one never
    /// confirmed by a 2xx after `setup_timeout`, any other after
    /// `dialog_idle`.
    fn over(&self, now: Instant, last: Instant, ended: Option<Instant>, confirmed: bool) -> bool {
        match ended {
            Some(at) => now >= at + self.linger,
            None if !confirmed => now >= last + self.setup_timeout,
            None => now >= last + self.dialog_idle,
        }
    }

    /// Something changed at `now`: a sweep soon enough for it.
    fn arm(&self, out: &mut Outbox, now: Instant) {
        out.arm_sweep(now + self.linger.min(self.setup_timeout));
    }

    /// After a sweep: the next one while state is left (`busy`).
    fn rearm(&self, out: &mut Outbox, now: Instant, busy: bool) {
        out.set_sweep(busy.then(|| now + Duration::from_secs(1).max(self.linger / 4)));
    }
}

/// Requests that create a dialog, so the proxy record-routes them.
fn is_dialog_creating(method: &str) -> bool {
    ["INVITE", "SUBSCRIBE", "REFER", "NOTIFY"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// An RFC 5626 keepalive (only CRLFs and whitespace): counted, and a
/// double CRLF (ping) answered with a single one (pong). True when `rx`
/// was one.
fn keepalive(out: &mut Outbox, stats: &mut Stats, rx: &Receive<'_>) -> bool {
    let is = rx
        .bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0));
    if is {
        stats.keepalives += 1;
        if rx.bytes.starts_with(b"\r\n\r\n") {
            out.send(Transmit {
                local: rx.local,
                remote: rx.remote,
                payload: b"\r\n".to_vec(),
                flow: rx.flow,
            });
        }
    }
    is
}

/// Where a message goes next: from which of our addresses, to whom, and
/// how (a datagram, a connection the peer opened, or one to open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hop {
    local: SocketAddr,
    remote: SocketAddr,
    flow: Flow,
}

impl Hop {
    /// A datagram from `local` to `remote`.
    fn udp(local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            local,
            remote,
            flow: Flow::UDP,
        }
    }
}

/// Sends `msg` with `patch` applied along `hop`.
fn forward(out: &mut Outbox, stats: &mut Stats, msg: &Message<'_>, patch: &Patch, hop: Hop) {
    match patch.apply(msg.buf()) {
        Ok(payload) => {
            stats.forwarded += 1;
            out.send(Transmit {
                local: hop.local,
                remote: hop.remote,
                payload,
                flow: hop.flow,
            });
        }
        Err(e) => {
            stats.malformed += 1;
            tracing::error!(error = %e, "SIP: edits overlap; message dropped");
        }
    }
}

/// Answers the request `msg` with `why`, back to where it came from (RFC
/// 3581), with `tag` as the To tag it lacks. An ACK gets no answer.
fn reply(
    out: &mut Outbox,
    stats: &mut Stats,
    rx: &Receive<'_>,
    msg: &Message<'_>,
    why: Rejection,
    tag: &str,
) {
    if msg.method().is_some_and(|m| m.eq_ignore_ascii_case("ACK")) {
        return;
    }
    stats.replied += 1;
    tracing::debug!(code = why.code, reason = why.reason, remote = %rx.remote, "SIP: answered by the proxy");
    out.send(Transmit {
        local: rx.local,
        remote: rx.remote,
        payload: edit::response(msg, why, tag),
        flow: rx.flow,
    });
}

#[cfg(test)]
mod tests;
