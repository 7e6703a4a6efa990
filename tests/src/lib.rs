//! Workspace-level end-to-end tests live in `tests/`. This library holds
//! what those tests share with each other: [`sipp`] runs the sipp phones of
//! the SIP tests (scenarios in `tests/sipp/`), [`osmo_mgw`] runs Osmocom's
//! MGCP media gateway and speaks raw MGCP to it, [`rtp`] sends and
//! checks the media between them, [`daemon`] runs the `pinhole`
//! daemons as child processes on loopback (free ports, configuration
//! files, `/metrics`), [`megaco`] runs Erlang/OTP's H.248 peers, and
//! [`sim`] holds what the in-process deployments behind firewall
//! simulators share (the simulator per network, the APS's router, bounded
//! waits on the drivers).
//!
//! ```
//! use pinhole_tests::sipp::{Keys, scenario};
//!
//! let keys = Keys::new("127.0.0.1:36000".parse().unwrap()).domain("corp2.example");
//! assert_eq!(keys.get("mport"), Some("36000"));
//! assert!(scenario("uac_basic.xml").is_file());
//! ```

pub mod daemon;
pub mod megaco;
pub mod osmo_mgw;
pub mod rtp;
pub mod sim;
pub mod sipp;
