//! H.248 through the real daemons with real peers: `pinhole mpr` and two
//! `pinhole aps` child processes configured with `[h248]`, Erlang/OTP's
//! megaco MGC on the public side and one megaco MG behind each APS
//! (`pinhole_tests::megaco`), Fig. 13 on loopback. Skipped loudly without
//! escript and megaco unless `CI` is set.
//!
//! Addresses used by no other test: 127.0.0.80–127.0.0.85, signaling
//! ports 29500–29599, media and relay ports 46000–46999 (see
//! [`fig13`]).
//!
//! [`sim`] runs Fig. 13 with the same peers through userspace firewall
//! simulators instead: the MPR and APS drivers with the H.248 ALGs in this
//! process (`pinhole-net`), each APS behind a `FirewallSim`. Its addresses,
//! used by no other test: 127.0.0.100–127.0.0.109 (it takes .100–.107),
//! signaling ports 29700–29799, media and relay ports 48000–48999.
#![allow(missing_docs)]

#[path = "h248/fig13.rs"]
mod fig13;
#[path = "h248/fig14.rs"]
mod fig14;
#[path = "h248/sim.rs"]
mod sim;
