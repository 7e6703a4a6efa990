//! `pinhole inspect` on a checked-in control message, raw and as a hex dump.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/control_decode")
        .join(name)
}

fn run(path: &std::path::Path) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    (
        out.status.success(),
        serde_json::from_str(stdout.trim()).unwrap(),
    )
}

#[test]
fn inspect_a_cmph_bind_raw_and_hex() {
    let raw = corpus("cmph_bind");
    let (ok, v) = run(&raw);
    assert!(ok, "{v}");
    assert_eq!(v["protocol"], "pinhole-control");
    assert_eq!(v["kind"], "CMPH request");
    assert_eq!(v["username"], "corp1");
    assert!(v["error"].is_null());

    let bytes = std::fs::read(&raw).unwrap();
    let dump: String = bytes.iter().map(|b| format!("{b:02x} ")).collect();
    let hex = std::env::temp_dir().join(format!("pinhole-inspect-{}.hex", std::process::id()));
    std::fs::write(&hex, dump).unwrap();
    let (ok, w) = run(&hex);
    std::fs::remove_file(&hex).unwrap();
    assert!(ok);
    assert_eq!(v, w);
}

#[test]
fn inspect_garbage_fails_with_an_error_field() {
    let f = std::env::temp_dir().join(format!("pinhole-inspect-{}.bin", std::process::id()));
    std::fs::write(&f, b"HELLO world\r\n\r\n").unwrap();
    let (ok, v) = run(&f);
    assert!(!ok);
    assert!(v["error"].is_string(), "{v}");
    // A SIP status line with an impossible code is SIP, with an error.
    std::fs::write(&f, b"SIP/2.0 4294967301 Huge\r\n\r\n").unwrap();
    let (ok, v) = run(&f);
    std::fs::remove_file(&f).unwrap();
    assert!(!ok);
    assert_eq!(v["protocol"], "sip");
    assert!(v["error"].is_string(), "{v}");
}

#[test]
fn inspect_a_sip_message() {
    let f = std::env::temp_dir().join(format!("pinhole-inspect-{}.sip", std::process::id()));
    std::fs::write(&f, b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").unwrap();
    let (ok, v) = run(&f);
    std::fs::remove_file(&f).unwrap();
    assert!(ok, "{v}");
    assert_eq!(v["kind"], "INVITE");
    assert_eq!(v["call"], "x1");
}

fn lines_of(args: &[&std::ffi::OsStr]) -> (bool, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), out.stdout)
}

#[test]
fn inspect_and_rewrite_an_mgcp_datagram() {
    let f = std::env::temp_dir().join(format!("pinhole-inspect-{}.mgcp", std::process::id()));
    let d = b"200 10511 OK\nI: 7c\n\nv=0\nc=IN IP4 200.57.7.202\nm=audio 30000 RTP/AVP 8\n.\nRQNT 10512 aaln/1@cpg2 MGCP 1.0 NCS 1.0\nK: 10511\nX: ABCD10512\n";
    std::fs::write(&f, d).unwrap();
    let (ok, out) = lines_of(&["inspect".as_ref(), f.as_os_str()]);
    assert!(ok);
    let v: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2, "one line per piggybacked message");
    assert_eq!(v[0]["protocol"], "mgcp");
    assert_eq!(v[0]["kind"], "200");
    assert_eq!(v[0]["transaction"], 10511);
    assert_eq!(v[0]["role"], "answer");
    assert_eq!(v[0]["media"][0]["addr"], "200.57.7.202");
    assert_eq!(v[1]["kind"], "RQNT");
    assert_eq!(v[1]["endpoint"], "aaln/1@cpg2");

    let (ok, out) = lines_of(&[
        "rewrite".as_ref(),
        "--to".as_ref(),
        "203.0.113.10:40000".as_ref(),
        f.as_os_str(),
    ]);
    assert!(ok);
    let expected = String::from_utf8(d.to_vec())
        .unwrap()
        .replace("200.57.7.202", "203.0.113.10")
        .replace("audio 30000", "audio 40000");
    assert_eq!(String::from_utf8(out).unwrap(), expected);

    // A response with no commentary is all hex digits, and still MGCP.
    std::fs::write(&f, b"200 262662134 \n").unwrap();
    let (ok, out) = lines_of(&["inspect".as_ref(), f.as_os_str()]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["transaction"].as_u64()),
        (Some("200"), Some(262662134))
    );
    assert!(v["commentary"].is_null());

    // A broken second message: the first still prints, the exit fails.
    std::fs::write(&f, b"200 1 OK\n.\nCRCX 0 a@gw MGCP 1.0\n").unwrap();
    let (ok, out) = lines_of(&["inspect".as_ref(), f.as_os_str()]);
    std::fs::remove_file(&f).unwrap();
    assert!(!ok);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("MGCP line 3: bad transaction id"), "{text}");
}
