//! The H.323 ALGs of the MPR and the APS: sans-IO implementations of
//! [`pinhole_core::alg::MprSignaling`] and
//! [`pinhole_core::alg::ClientSignaling`]. A driver hands them whole TPKT
//! frames (call signaling on its listener or a network's connection, H.245
//! on the MPR's H.245 listeners) and sends what they queue.
//!
//! | module | what is H.323's own |
//! | --- | --- |
//! | [`Mpr`] (`mpr`) | routes a Setup by alias, number or domain (Fig. 4), answers it with its own CALL PROCEEDING, keeps a call reference per leg, points every H.245 connection at itself (leases of [`MprConfig::h245_pool`], FACILITY startH245), plans every logical channel's media with the engine |
//! | [`Client`] (`client`) | the APS (Fig. 15) or a smart terminal's ALG (Fig. 16): proxies each call between an inside terminal and the MPR up the APS's connection, CMPH before a logical channel's addresses leave, ports B for the MPR's, its own H.245 listeners for the terminals |
//! | `media` | which addresses of a message are media, of which RTP session and whose; echoes of what was written told by value |
//!
//! Every rewrite is a patch in place ([`crate::per::Address::set`]): the
//! call reference octets, and each address's octets; nothing else of a
//! message changes.

mod client;
mod link;
mod media;
mod mpr;

pub use client::{Client, ClientConfig, ClientStats, Mode};
pub use media::NoSession;
pub use mpr::{Mpr, MprConfig, Stats};

use pinhole_core::types::Side;

/// What becomes of a message whose PER does not walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unreadable {
    /// Dropped (counted and logged): never half-rewritten.
    #[default]
    Drop,
    /// Forwarded as it came, but for the call reference (a network's
    /// inside addresses may then leak; for peers that send PER the walker
    /// cannot read and that the operator trusts).
    Pass,
}

/// The array slot of a side.
pub(crate) fn idx(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}
