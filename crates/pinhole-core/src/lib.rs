//! Pinhole's sans-IO heart.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod ports;
pub mod rng;
pub mod wire;
