//! Fig. 15 on loopback with the real daemons: `pinhole mpr` with `[h323]`
//! and a `pinhole aps` with `protocol = "h323"` for each network (each on
//! its TCP connection to the MPR, opened from inside), and two H.323
//! terminals (`pinhole_examples::h323`, every PDU encoded and decoded by
//! rasn, nobody here wrote the codec) calling each other through them,
//! with RTP both ways through the APSs' ports B and the MPR's relay: H.245
//! on its own connections, tunneled, and fastStart. Afterwards every
//! relay leg and port B is free.
//!
//! Addresses: the MPR on 127.0.0.96, APS1 and terminal A on 127.0.0.97,
//! APS2 and terminal B on 127.0.0.98 (no other suite uses them); each
//! mode's call on its own ports, one after the other.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use pinhole_examples::h323::{Config, Mode, Report, run};
use pinhole_tests::daemon::{
    Daemon, free_tcp, pinhole_binary, scrape_metrics, wait_metric, write_config,
};

const MPR_IP: &str = "127.0.0.96";
const NET_IP: [&str; 2] = ["127.0.0.97", "127.0.0.98"];
const PACKETS: u32 = 100;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Bed {
    _mpr: Daemon,
    _aps: Vec<Daemon>,
    metrics: [SocketAddr; 3],
}

/// The MPR and both APSs, registered.
fn bed() -> Bed {
    let bin = pinhole_binary().unwrap();
    let metrics = [free_tcp(), free_tcp(), free_tcp()];
    let mpr_cfg = write_config(
        "pinhole-h323-e2e",
        "mpr.toml",
        &format!(
            "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [28720]\nmetrics = \"{}\"\n\
             [relay]\nports = {{ first = 47400, last = 47449 }}\nworkers = 1\n\
             [sip]\nenabled = false\n\
             [h323]\nport = 28720\nh245_ports = \"28730-28737\"\n\
             [[networks]]\nid = \"corp1\"\ncredential = \"corp1-secret\"\ndomains = [\"corp1.example\"]\n\
             [[networks]]\nid = \"corp2\"\ncredential = \"corp2-secret\"\ndomains = [\"corp2.example\"]\n",
            metrics[0]
        ),
    );
    let mpr = Daemon::with_config(
        bin.to_str().unwrap(),
        &["--log-format", "json", "mpr"],
        &mpr_cfg,
        Stdio::null(),
    );
    wait_metric(
        metrics[0],
        "pinhole_signaling_total{protocol=\"h323\",event=\"received\"} 0",
        Duration::from_secs(20),
    );
    let mut aps = Vec::new();
    for (i, (net, user)) in [("corp1", "alice"), ("corp2", "bob")]
        .into_iter()
        .enumerate()
    {
        let ip = NET_IP[i];
        let cfg = write_config(
            "pinhole-h323-e2e",
            &format!("aps{}.toml", i + 1),
            &format!(
                "network = \"{net}\"\ncredential = \"{net}-secret\"\nprotocol = \"h323\"\n\
                 signaling = \"{ip}:28720\"\nmpr = \"{MPR_IP}:28720\"\nupstream = \"tcp\"\n\
                 domains = [\"{net}.example\"]\nmetrics = \"{}\"\n\
                 [relay]\nworkers = 1\n\
                 [h323]\nh245_ports = \"28740-28747\"\n\
                 media_ports = {{ first = {}, last = {} }}\n\
                 [h323.aliases]\n\"{user}\" = \"{ip}:28701\"\n",
                metrics[i + 1],
                47500 + 100 * i,
                47549 + 100 * i,
            ),
        );
        aps.push(Daemon::with_config(
            bin.to_str().unwrap(),
            &["--log-format", "json", "aps"],
            &cfg,
            Stdio::null(),
        ));
    }
    for m in &metrics[1..] {
        wait_metric(*m, "pinhole_client_registered 1", Duration::from_secs(20));
    }
    Bed {
        _mpr: mpr,
        _aps: aps,
        metrics,
    }
}

/// One call from alice (corp1) to bob (corp2) in `mode`; the terminals'
/// media on `port` (A) and `port + 2` (B).
async fn call(mode: Mode, port: u16) -> (Report, Report) {
    let a_sig = sa(&format!("{}:28701", NET_IP[0]));
    let b_sig = sa(&format!("{}:28701", NET_IP[1]));
    let mut callee = Config::callee(
        "bob@corp2.example",
        b_sig,
        sa(&format!("{}:{}", NET_IP[1], port + 2)),
    );
    callee.mode = mode;
    callee.packets = PACKETS;
    callee.timeout = Duration::from_secs(25);
    let mut caller = Config::caller(
        "alice@corp1.example",
        a_sig,
        sa(&format!("{}:{port}", NET_IP[0])),
        "bob@corp2.example",
        sa(&format!("{}:28720", NET_IP[0])),
    );
    caller.mode = mode;
    caller.packets = PACKETS;
    caller.hold = Duration::from_secs(3);
    caller.timeout = Duration::from_secs(25);
    let b = tokio::spawn(run(callee));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = tokio::spawn(run(caller));
    let a = a.await.unwrap().expect("the caller ran");
    let b = b.await.unwrap().expect("the callee ran");
    (a, b)
}

fn metric(at: SocketAddr, line: &str) -> u64 {
    let text = scrape_metrics(at).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig15_through_the_daemons_separate_tunneled_and_fast_start() {
    let bed = tokio::task::spawn_blocking(bed).await.unwrap();
    for (mode, port) in [
        (Mode::Separate, 47610),
        (Mode::Tunnel, 47620),
        (Mode::FastStart, 47630),
    ] {
        let (a, b) = call(mode, port).await;
        let counters: Vec<String> = bed
            .metrics
            .iter()
            .map(|m| {
                scrape_metrics(*m)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| {
                        l.contains("h323")
                            || l.starts_with("pinhole_legs_open")
                            || l.contains("pinholes")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        let what = format!(
            "{mode:?}: A {} / B {}\n{}",
            a.to_json(),
            b.to_json(),
            counters.join("\n---\n")
        );
        // RTP both ways, through the APSs' ports B: each terminal sent to
        // its own APS and heard from it.
        assert!(a.intact >= u64::from(PACKETS) * 9 / 10, "{what}");
        assert!(b.intact >= u64::from(PACKETS) * 9 / 10, "{what}");
        let dest_a = a.media_dest.expect("A's media destination");
        let dest_b = b.media_dest.expect("B's media destination");
        assert_eq!(
            dest_a.ip().to_string(),
            NET_IP[0],
            "A sends to APS1's port B: {what}"
        );
        assert_eq!(
            dest_b.ip().to_string(),
            NET_IP[1],
            "B sends to APS2's port B: {what}"
        );
        assert!((47500..=47549).contains(&dest_a.port()), "{what}");
        assert!(
            (47600..=47649).contains(&dest_b.port()) || (47500..=47649).contains(&dest_b.port()),
            "{what}"
        );
        assert!(a.released_by.is_some() && b.released_by.is_some(), "{what}");
    }
    // Every call's legs and ports B given back.
    let mut legs = u64::MAX;
    for _ in 0..50 {
        legs = metric(bed.metrics[0], "pinhole_legs_open");
        if legs == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(legs, 0, "relay legs open after the releases");
    assert_eq!(
        metric(
            bed.metrics[0],
            "pinhole_signaling_total{protocol=\"h323\",event=\"calls\"}"
        ),
        3
    );
    assert_eq!(
        metric(
            bed.metrics[0],
            "pinhole_signaling_total{protocol=\"h323\",event=\"released\"}"
        ),
        3
    );
    for m in &bed.metrics[1..] {
        assert_eq!(
            metric(
                *m,
                "pinhole_signaling_total{protocol=\"h323\",event=\"calls\"}"
            ),
            3
        );
    }
}
