//! Runnable flows of the patent figures.
//!
//! | module | what |
//! | --- | --- |
//! | [`sip_ua`] | a sans-IO SIP user agent for one call: smart terminal (Fig. 12) or plain phone (Fig. 11) |
//! | [`smart`] | that UA as a smart terminal on real sockets, over `pinhole-net`'s client driver (`sip_smart_ua`) |
//! | [`figures`] | Figs. 9 to 14 on the simulated network with the SIP, MGCP and H.248 proxies: the message ladder against the patent's steps (`sip_fig11`, `sip_fig12`, `mgcp_fig9`, `mgcp_fig10`, `h248_fig13`, `h248_fig14`) |
//! | [`mgcp`] | a sans-IO MGCP call agent and gateway (Figs. 9 and 10), and the Fig. 10 smart gateway on real sockets (`mgcp_smart_gw`) |
//! | [`h323`] | an H.323 terminal for one call (separate H.245, tunnelled, fastStart), PDUs by rasn; the `h323_terminal` binary |
//! | [`rtp`] | test RTP packets that carry a checkable payload, and a tally |
//!
//! ```
//! let run = pinhole_examples::figures::fig12().unwrap();
//! assert!(run.media_ok());
//! assert!(run.steps_in_order().is_ok());
//! ```

pub mod figures;
pub mod h248;
pub mod h323;
pub mod mgcp;
pub mod rtp;
pub mod sip_ua;
pub mod smart;

/// A seed for a smart terminal's or gateway's engine (its transaction ids)
/// that differs between processes started together on one host: the MPR
/// takes a transaction id it saw from another source as a replay. The pid
/// and `port` take bits of their own (`pid ^ port` collides for
/// consecutive pids and ports); the clock fills the low bits.
pub fn process_seed(port: u16) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from(std::process::id()) << 32) | (u64::from(port) << 16) | u64::from(nanos & 0xffff)
}

#[cfg(test)]
mod seed_tests {
    #[test]
    fn neighbouring_ports_get_different_seeds() {
        let (a, b) = (super::process_seed(4000), super::process_seed(4001));
        assert_ne!(a >> 16, b >> 16);
        assert_eq!(a >> 32, u64::from(std::process::id()));
    }
}
