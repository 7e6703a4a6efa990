//! Pinhole's sans-IO heart.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hash;
pub mod intent;
pub mod mpr;
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
