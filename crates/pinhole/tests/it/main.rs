//! Integration tests of the `pinhole` binary: the daemons, the demo,
//! `inspect` and a SIP call through the daemons, each running the built
//! binary. One test binary with a module per suite: the crate and its
//! dependencies link once. (The network-namespace bed, `tests/netns`, is a
//! test target of its own with its own harness.)
//!
//! The suites run in parallel threads of this one process, so a fixed
//! port (a relay's or an APS's range) is only ever bound on an address no
//! other suite uses: `pinhole demo` relays on 127.0.0.3, `daemons` on
//! .44, `sip_daemons` on .43 with its APSs on .47 and .48, `log_flood`
//! on .110 and .111, `h323_daemons` on .94 with its APS on .95. On the shared
//! addresses (127.0.0.1, .2, …) the suites bind ephemeral ports, and only
//! `sip_daemons`' sipp phones fixed ones (6000, 6002, 8888), below the
//! ephemeral range.

mod daemons;
mod demo;
mod h323_daemons;
mod inspect;
mod log_flood;
mod sip_daemons;
