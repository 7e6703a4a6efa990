//! Integration tests of the examples: the demo, the figure runs and their
//! binaries, Fig. 12 on loopback, and the MGCP example binaries. One test
//! binary with a module per suite: the crate and its dependencies link once.
//!
//! The suites run in parallel threads of this one process, so a fixed
//! loopback port is only ever bound on an address no other suite uses:
//! `fig12` on 127.0.0.1, .2 and .31–.33 (and .40, ephemeral), `mgcp` on
//! .61–.63, `mgcp_smart` on .59. `demo` and `figures` run on the simulated
//! network.

mod common;
mod demo;
mod fig12;
mod figures;
mod h323;
mod mgcp;
mod mgcp_smart;
