//! The README's main command works and reports media both ways.
#![allow(missing_docs)]

use std::process::Command;

#[test]
fn demo_json_reports_media_both_ways() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--json")
        .output()
        .expect("demo runs");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(line.lines().count(), 1, "one JSON line: {line}");
    assert!(line.starts_with(r#"{"ok":true,"a_to_b":{"sent":450,"received":450},"b_to_a":{"sent":450,"received":450},"firewall_drops_before_pinhole":10"#), "{line}");
}

#[test]
fn demo_prints_the_ladder() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .output()
        .expect("demo runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for needle in [
        "REGISTER error 401",
        "REGISTER success mapped=198.51.100.1:",
        "CMPH success mapped=198.51.100.2:",
        "result: OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
