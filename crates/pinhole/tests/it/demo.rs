//! `pinhole demo --json` end to end: the built binary, bounded in time.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_json_media_both_ways() {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["demo", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pinhole demo");
    // Bounded: poll for exit for at most 30 s, then kill.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("pinhole demo took more than 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "exit {status}: {stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    for dir in ["a_to_b", "b_to_a"] {
        let sent = v[dir]["sent"].as_u64().unwrap();
        assert!(sent >= 100, "{dir}: {v}");
        assert_eq!(v[dir]["received"].as_u64().unwrap(), sent, "{dir}: {v}");
    }
    let p50 = v["latency_us"]["p50"].as_u64().unwrap();
    let p99 = v["latency_us"]["p99"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= p99, "{v}");
    assert!(
        v["firewall_drops_before_pinhole"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}
