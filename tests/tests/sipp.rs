//! End-to-end SIP calls between two sipp phones (scenarios in
//! `tests/sipp/`), with the test sending and checking the RTP. `direct`
//! proves the scenarios and the harness phone to phone on loopback,
//! `middlebox` through an SDP-rewriting stand-in for the proxies, `fig11`
//! through the real MPR and APS proxies behind simulated firewalls, `plain`
//! phones without an APS registering through the MPR, `load` (ignored) the
//! calls per second MPR and APSs carry.
#![allow(missing_docs)]

#[path = "sipp/common.rs"]
mod common;
#[path = "sipp/direct.rs"]
mod direct;
#[path = "sipp/fig11.rs"]
mod fig11;
#[path = "sipp/load.rs"]
mod load;
#[path = "sipp/middlebox.rs"]
mod middlebox;
#[path = "sipp/plain.rs"]
mod plain;
#[path = "sipp/tls.rs"]
mod tls;
