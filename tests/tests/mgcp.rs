//! MGCP on real sockets through the MPR (and the APS): Fig. 9 (example
//! gateways behind APSs and firewall simulators), Fig. 10 (smart gateways,
//! no APS), and osmo-mgw behind the APS bridging two public phones. The
//! call agent is on the public side and sends everything to the MPR's MGCP
//! control socket. Loopback only; every wait is bounded.
#![allow(missing_docs)]

#[path = "mgcp/common.rs"]
mod common;
#[path = "mgcp/fig10.rs"]
mod fig10;
#[path = "mgcp/fig9.rs"]
mod fig9;
#[path = "mgcp/osmo.rs"]
mod osmo;
