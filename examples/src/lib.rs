//! Runnable flows of the patent figures.
//!
//! | module | what |
//! | --- | --- |
//! | [`sip_ua`] | a sans-IO SIP user agent for one call: smart terminal (Fig. 12) or plain phone (Fig. 11) |
//! | [`smart`] | that UA as a smart terminal on real sockets, over `pinhole-net`'s client driver (`sip_smart_ua`) |
//! | [`figures`] | Figs. 11 and 12 on the simulated network with the SIP proxies: the message ladder against the patent's steps (`sip_fig11`, `sip_fig12`) |
//! | [`mgcp`] | a sans-IO MGCP call agent and gateway (Figs. 9 and 10), and the Fig. 10 smart gateway on real sockets (`mgcp_smart_gw`) |
//! | [`rtp`] | test RTP packets that carry a checkable payload, and a tally |
//!
//! ```
//! let run = pinhole_examples::figures::fig12().unwrap();
//! assert!(run.media_ok());
//! assert!(run.steps_in_order().is_ok());
//! ```

pub mod figures;
pub mod mgcp;
pub mod rtp;
pub mod sip_ua;
pub mod smart;
