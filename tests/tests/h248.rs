//! H.248 through the real daemons with real peers: `pinhole mpr` and two
//! `pinhole aps` child processes configured with `[h248]`, Erlang/OTP's
//! megaco MGC on the public side and one megaco MG behind each APS
//! (`pinhole_tests::megaco`), Fig. 13 on loopback. Skipped loudly without
//! escript and megaco unless `CI` is set.
//!
//! Addresses used by no other test: 127.0.0.80–127.0.0.85, signaling
//! ports 29500–29599, media and relay ports 46000–46999 (see
//! [`fig13`]).
#![allow(missing_docs)]

#[path = "h248/fig13.rs"]
mod fig13;
#[path = "h248/fig14.rs"]
mod fig14;
