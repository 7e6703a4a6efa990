//! Integration tests of `pinhole-net`: the relay, the drivers and the firewall simulator on loopback. One test binary with a module
//! per suite: the crate and its dependencies link once.

mod drivers;
mod firewall_sim;
mod latch_attack;
mod relay;
