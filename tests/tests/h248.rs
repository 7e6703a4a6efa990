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

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pinhole_tests::daemon;

/// The daemon runs of Figs. 13 and 14 take turns: each is two or three
/// Erlang VMs and up to three daemons, too much at once on two cores.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A literal address of the tests.
fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

/// `{target tmp}/h248-{run}`, created.
fn log_dir(run: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("h248-{run}"));
    std::fs::create_dir_all(&d).expect("log folder");
    d
}

/// After a call through the `pinhole mpr` daemon whose metrics are at
/// `metrics`: every relay leg freed (waiting up to `wait`), both answers
/// rewritten, the call counted and torn down, and none of the H.248 ALG's
/// error counters moved. `logs` is shown on a failure.
fn assert_mpr_done(metrics: SocketAddr, wait: Duration, logs: &str) {
    let m = daemon::wait_metric(metrics, "pinhole_legs_open 0", wait);
    let key =
        |event: &str| format!("pinhole_signaling_total{{protocol=\"h248\",event=\"{event}\"}}");
    for (event, at_least) in [("sdp_rewritten", 2.0), ("calls", 1.0), ("teardowns", 1.0)] {
        let v = daemon::metric(&m, &key(event)).unwrap_or(0.0);
        assert!(v >= at_least, "{event} = {v}\n{m}\n{logs}");
    }
    for event in [
        "malformed",
        "sdp_errors",
        "plan_errors",
        "no_route",
        "unknown_mg",
        "mid_conflicts",
    ] {
        assert_eq!(
            daemon::metric(&m, &key(event)),
            Some(0.0),
            "{event}\n{m}\n{logs}"
        );
    }
}

#[path = "h248/fig13.rs"]
mod fig13;
#[path = "h248/fig14.rs"]
mod fig14;
#[path = "h248/sim.rs"]
mod sim;
