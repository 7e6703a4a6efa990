//! `pinhole mpr` with `[h323]` and `pinhole aps` with `protocol = "h323"`
//! as child processes on loopback: the APS registers over its TCP
//! connection to the MPR, a terminal inside sends a Setup to the APS's
//! inside address for an alias that names no network, and the MPR's
//! refusal comes back to it as RELEASE COMPLETE through the APS; both
//! ALGs count on `/metrics` with `protocol="h323"`.
//!
//! The MPR is on 127.0.0.94 and the APS on 127.0.0.95, used by no other
//! suite, so their fixed ports meet nobody's.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pinhole_h323::q931::{Message, MessageType, tpkt_payload};
use pinhole_h323_oracle::build;
use pinhole_tests::daemon::{Daemon, free_tcp, scrape_metrics, wait_metric};

const BIN: &str = env!("CARGO_BIN_EXE_pinhole");
const MPR_IP: &str = "127.0.0.94";
const APS_IP: &str = "127.0.0.95";

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    pinhole_tests::daemon::write_config("pinhole-test", name, text)
}

fn start(cmd: &str, config: &std::path::Path) -> Daemon {
    Daemon::with_config(BIN, &["--log-format", "json", cmd], config, Stdio::piped())
}

/// The next TPKT frame on `s`.
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).expect("a TPKT header");
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut frame = head.to_vec();
    frame.resize(len, 0);
    s.read_exact(&mut frame[4..]).expect("the TPKT payload");
    frame
}

#[test]
fn an_unroutable_setup_through_the_aps_is_released_by_the_mpr() {
    let (mpr_metrics, aps_metrics) = (free_tcp(), free_tcp());
    let mpr_at: SocketAddr = format!("{MPR_IP}:29720").parse().unwrap();
    let inside: SocketAddr = format!("{APS_IP}:29720").parse().unwrap();
    let mpr_cfg = write_config(
        "mpr-h323.toml",
        &format!(
            "relay_ip = \"{MPR_IP}\"\ncontrol_ports = [29720]\nmetrics = \"{mpr_metrics}\"\n\
             [relay]\nports = {{ first = 47200, last = 47249 }}\nworkers = 1\n\
             [sip]\nenabled = false\n\
             [h323]\nport = 29720\nh245_ports = \"29730-29733\"\n\
             [h323.numbers]\n\"4930\" = \"corp3\"\n\
             [[networks]]\nid = \"corp3\"\ncredential = \"test-secret\"\nprotocols = [\"h323\"]\n\
             domains = [\"corp3.example\"]\n"
        ),
    );
    let aps_cfg = write_config(
        "aps-h323.toml",
        &format!(
            "network = \"corp3\"\ncredential = \"test-secret\"\nprotocol = \"h323\"\n\
             signaling = \"{inside}\"\nmpr = \"{mpr_at}\"\nupstream = \"tcp\"\n\
             upstream_keepalive_secs = 1\n\
             domains = [\"corp3.example\"]\nmetrics = \"{aps_metrics}\"\n\
             [relay]\nworkers = 1\n\
             [h323]\nh245_ports = \"29740-29743\"\n\
             media_ports = {{ first = 47300, last = 47349 }}\n"
        ),
    );
    let mut mpr = start("mpr", &mpr_cfg);
    // Its listeners are bound once /metrics answers.
    wait_metric(
        mpr_metrics,
        "pinhole_signaling_total{protocol=\"h323\",event=\"received\"} 0",
        Duration::from_secs(15),
    );
    let mut aps = start("aps", &aps_cfg);

    // Registered over the connection: the route on the MPR, the APS says so.
    let t0 = Instant::now();
    let (mut m, mut a) = (String::new(), String::new());
    while t0.elapsed() < Duration::from_secs(15) {
        m = scrape_metrics(mpr_metrics).unwrap_or_default();
        a = scrape_metrics(aps_metrics).unwrap_or_default();
        if m.contains("pinhole_routes_live 1") && a.contains("pinhole_client_registered 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.contains("pinhole_routes_live 1"), "{m}");
    assert!(a.contains("pinhole_client_registered 1"), "{a}");
    for text in [&m, &a] {
        assert!(
            text.contains("pinhole_signaling_total{protocol=\"h323\",event=\"received\"} 0"),
            "{text}"
        );
    }

    // A terminal inside: a Setup for an alias of no network's domain.
    let mut t = TcpStream::connect(inside).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let per = build::setup(
        [7; 16],
        [8; 16],
        "alice",
        "nobody@nowhere.example",
        None,
        None,
        None,
        &[],
        false,
        &[],
    );
    t.write_all(&build::tpkt(&build::q931(0x0123, false, 0x05, &per)))
        .unwrap();
    let mut kinds = Vec::new();
    let released = loop {
        let frame = read_frame(&mut t);
        let q = Message::parse(tpkt_payload(&frame).unwrap()).unwrap();
        kinds.push(q.kind);
        if q.kind == MessageType::ReleaseComplete {
            assert!(q.from_destination, "from the called side");
            break q.call_reference_value();
        }
        assert!(kinds.len() < 5, "no RELEASE COMPLETE: {kinds:?}");
    };
    assert_eq!(released, 0x0123, "on the terminal's own call reference");

    // The refusal is the MPR's; the APS forwarded both ways.
    wait_metric(
        mpr_metrics,
        "pinhole_signaling_total{protocol=\"h323\",event=\"refused\"} 1",
        Duration::from_secs(10),
    );
    let a = wait_metric(
        aps_metrics,
        "pinhole_signaling_total{protocol=\"h323\",event=\"released\"} 1",
        Duration::from_secs(10),
    );
    assert!(
        a.contains("pinhole_signaling_total{protocol=\"h323\",event=\"calls\"} 1"),
        "{a}"
    );
    drop(t);

    // The MPR's H.245 listeners are bound and the ALG's: a connection
    // nobody was leased is refused and counted. The APS's are bound too.
    let mut h = TcpStream::connect((MPR_IP, 29733)).unwrap();
    h.write_all(&build::tpkt(&build::tcs(1))).unwrap();
    wait_metric(
        mpr_metrics,
        "pinhole_signaling_total{protocol=\"h323\",event=\"h245_refused\"} 1",
        Duration::from_secs(10),
    );
    drop(h);
    drop(TcpStream::connect((APS_IP, 29743)).unwrap());

    // The upstream pings every second with an empty TPKT (a CRLF would be
    // a framing error there) and the MPR answers it: after more than 2.5 s
    // (when an unanswered ping closes it) the connection is the first one.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(t0.elapsed()));
    let a = scrape_metrics(aps_metrics).unwrap();
    assert!(a.contains("pinhole_stream_reconnects_total 0"), "{a}");
    assert!(a.contains("pinhole_client_registered 1"), "{a}");

    let (status, err) = aps.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "aps: {status}\n{err}");
    assert!(err.contains("H.323 ALG on"), "{err}");
    assert!(err.contains("\"deregistered\""), "{err}");
    let (status, err) = mpr.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "mpr: {status}\n{err}");
    assert!(err.contains("H.323 ALG on"), "{err}");
}
