//! Pinhole's sans-IO heart.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod intent;
pub mod mpr;
pub mod ports;
pub mod relay;
pub mod rng;
pub mod types;
pub mod wire;

pub use types::{CallKey, Component, LegId, Receive, Side, Transmit};
