//! A flood of garbage at the MPR's SIP port (issue 18 item 4): every
//! datagram is counted on `/metrics`, but the log stays small: five lines
//! per interval and a summary line with the exact number suppressed. And
//! with `--log-burst 0` every datagram has its line again.
//!
//! Loopback only: the garbage comes from 127.0.0.1; the MPRs run on
//! 127.0.0.110 and .111, which no other suite uses.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pinhole_tests::daemon::{Daemon, free_tcp, free_udp, metric, scrape_metrics, wait_metric};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pinhole");

/// Garbage datagrams per flood.
const N: u64 = 5000;

/// Sent before the MPR is waited for: well under a socket's receive
/// buffer, so none is lost and the counters can be exact.
const BATCH: u64 = 100;

const RECEIVED: &str = "pinhole_signaling_total{protocol=\"sip\",event=\"received\"}";
const MALFORMED: &str = "pinhole_signaling_total{protocol=\"sip\",event=\"malformed\"}";

/// What a flood left: the MPR's metrics after it, and its stderr.
struct Flood {
    metrics: String,
    log: String,
}

/// Starts an MPR with SIP on `ip` (`pinhole --log-format json {args…} mpr`,
/// stderr to a file), sends it `N` garbage datagrams from 127.0.0.1 in
/// batches (each batch waited for on `/metrics`, bounded), runs `before_stop`
/// on the log so far, stops it with SIGTERM and returns the metrics and the
/// whole log.
fn flood(ip: &str, name: &str, args: &[&str], before_stop: impl FnOnce(&Path)) -> Flood {
    let sip = free_udp(ip);
    let metrics = free_tcp();
    let cfg = pinhole_tests::daemon::write_config(
        "pinhole-log-flood",
        &format!("{name}.toml"),
        &format!(
            "relay_ip = \"{ip}\"\ncontrol_ports = [{}]\nmetrics = \"{metrics}\"\n\
             [relay]\nports = {{ first = 48100, last = 48149 }}\nworkers = 1\n\
             [[networks]]\nid = \"corp1\"\ncredential = \"s\"\n",
            sip.port()
        ),
    );
    let log_path = cfg.with_file_name(format!("{name}.log"));
    let log_file = File::create(&log_path).unwrap();
    let mut all = vec!["--log-format", "json"];
    all.extend_from_slice(args);
    all.push("mpr");
    let mut mpr = Daemon::with_config(BIN, &all, &cfg, Stdio::from(log_file));
    wait_metric(metrics, &format!("{RECEIVED} 0"), Duration::from_secs(10));

    let t0 = Instant::now();
    let garbage = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0;
    while sent < N {
        let end = (sent + BATCH).min(N);
        for i in sent..end {
            // Start lines the SIP parser rejects: no version, a bad version.
            let d = match i % 2 {
                0 => b"INVITE garbage\r\n\r\n".to_vec(),
                _ => format!("INVITE garbage {i}\r\n\r\n").into_bytes(),
            };
            garbage.send_to(&d, sip).unwrap();
        }
        sent = end;
        loop {
            let m = scrape_metrics(metrics).unwrap_or_default();
            if metric(&m, RECEIVED).is_some_and(|r| r >= sent as f64) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the MPR read fewer than {sent} datagrams in 10 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let m = scrape_metrics(metrics).unwrap();
    before_stop(&log_path);
    let (status, _) = mpr.sigterm_and_wait(Duration::from_secs(10));
    assert!(status.success(), "mpr: {status}");
    Flood {
        metrics: m,
        log: std::fs::read_to_string(&log_path).unwrap(),
    }
}

/// The SIP ALG's lines written, and the lines suppressed by the summaries
/// of its callsites, in a JSON log.
fn sip_lines(log: &str) -> (u64, u64, usize) {
    let (mut written, mut suppressed, mut summaries) = (0, 0, 0);
    for l in log.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let target = v["target"].as_str().unwrap_or_default();
        if target.starts_with("pinhole_sip") {
            written += 1;
        } else if target == "pinhole::logs" {
            let f = &v["fields"];
            let site = f["callsite"].as_str().unwrap();
            assert!(site.starts_with("pinhole_sip::alg::mpr:"), "{l}");
            assert_eq!(v["level"], "WARN", "{l}");
            let message = f["message"].as_str().unwrap();
            assert!(message.contains("similar log lines suppressed"), "{l}");
            suppressed += f["suppressed"].as_u64().unwrap();
            summaries += 1;
        }
    }
    (written, suppressed, summaries)
}

#[test]
fn a_garbage_flood_is_counted_exactly_and_its_log_lines_are_limited() {
    let t0 = Instant::now();
    // A 3 s interval: the flood spans one or a few; the last one's
    // summary comes from the periodic flush, before the stop.
    let f = flood(
        "127.0.0.110",
        "limited",
        &["--log-interval-secs", "3"],
        |log| {
            let deadline = Instant::now() + Duration::from_secs(8);
            loop {
                let text = std::fs::read_to_string(log).unwrap();
                let (written, suppressed, _) = sip_lines(&text);
                if written + suppressed == N {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no summary of the last interval within 8 s: {written} lines, \
                     {suppressed} suppressed\n{text}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
    assert_eq!(
        metric(&f.metrics, RECEIVED),
        Some(N as f64),
        "{}",
        f.metrics
    );
    assert_eq!(
        metric(&f.metrics, MALFORMED),
        Some(N as f64),
        "{}",
        f.metrics
    );
    let (written, suppressed, summaries) = sip_lines(&f.log);
    // Every datagram is a line or counted in a summary, exactly once
    // (the stop's flush found nothing left to report).
    assert_eq!(written + suppressed, N, "{}", f.log);
    assert!(summaries >= 1, "{}", f.log);
    // At most 5 lines per 3 s interval.
    let intervals = t0.elapsed().as_secs() / 3 + 1;
    assert!(written <= 5 * intervals, "{written} lines\n{}", f.log);
    assert!(f.log.len() < 16 * 1024, "{} bytes\n{}", f.log.len(), f.log);
    eprintln!(
        "limited: {} log bytes, {written} SIP lines, {summaries} summaries ({suppressed} suppressed), {:?}",
        f.log.len(),
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

#[test]
fn log_burst_0_writes_every_line() {
    let t0 = Instant::now();
    let f = flood("127.0.0.111", "unlimited", &["--log-burst", "0"], |_| {});
    assert_eq!(
        metric(&f.metrics, MALFORMED),
        Some(N as f64),
        "{}",
        f.metrics
    );
    let (written, suppressed, summaries) = sip_lines(&f.log);
    assert_eq!((written, suppressed, summaries), (N, 0, 0));
    eprintln!(
        "unlimited: {} log bytes, {written} SIP lines, {:?}",
        f.log.len(),
        t0.elapsed()
    );
}
