//! The SIP proxies of the MPR and the APS: sans-IO implementations of
//! [`pinhole_core::alg::MprSignaling`] and
//! [`pinhole_core::alg::ClientSignaling`]. A driver feeds them datagrams,
//! engine events and time, and sends what they queue.
//!
//! | proxy | where | does |
//! | --- | --- | --- |
//! | [`Mpr`] | the MPR, public side | routes by domain into registered networks' pinholes (Fig. 4), record-routes, plans media with the MPR engine and writes relay addresses into SDP |
//! | [`Aps`] | inside a network | forwards the inside phones' signaling to the MPR, opens a media pinhole with CMPH before SDP leaves the network (Fig. 11 steps 1010–1015, 1060–1065), gives the phones APS media ports (port B) |
//!
//! Both edit messages only through spans ([`pinhole_core::patch::Patch`]):
//! Via, Record-Route, Route, Max-Forwards, the SDP media fields and
//! Content-Length change; every other byte passes as it came.

mod aps;
mod edit;
mod mpr;

pub use aps::{Aps, ApsConfig};
pub use mpr::{Mpr, MprConfig};

use pinhole_core::alg::Counters;

/// Counters of a proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the proxy.
    pub received: u64,
    /// Messages sent on.
    pub forwarded: u64,
    /// Responses the proxy made itself (400, 403, 404, 481, 483, 503...).
    pub replied: u64,
    /// Unparsable or unusable messages (no Via, no Call-ID...).
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
    /// SDP that could not be read or rewritten.
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

/// Requests that create a dialog, so the proxy record-routes them.
fn is_dialog_creating(method: &str) -> bool {
    ["INVITE", "SUBSCRIBE", "REFER", "NOTIFY"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// True for an RFC 5626 keepalive (only CRLFs and whitespace).
fn is_keepalive(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

#[cfg(test)]
mod tests;
