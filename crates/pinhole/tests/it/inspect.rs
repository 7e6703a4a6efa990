//! `pinhole inspect` and `pinhole rewrite` on checked-in messages: a
//! control message raw and as a hex dump, SIP, MGCP and H.248.

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

fn h248_corpus(name: &str) -> PathBuf {
    pinhole_testkit::corpus::shared_dir()
        .join("h248")
        .join(name)
}

/// `wiki-FAX-f22-Add-reply-Local-sdp.megaco`: an Add reply (context 191,
/// DS/4/24 and RTP/1727) whose Local holds two groups, audio and a disabled
/// T.38 alternative.
const F22: &str = concat!(
    r#"{"actions":1,"commands":["Add","Add"],"context":191,"error":null,"error_descriptor":null,"immediate_ack":false,"kind":"Reply","media":[{"addr":"10.23.1.52","choose":false,"descriptor":"local","direction":"sendrecv","disabled":false,"group":0,"hold":false,"index":0,"port":16756,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"audio"},"#,
    r#"{"addr":"10.23.1.52","choose":false,"descriptor":"local","direction":"sendrecv","disabled":true,"group":1,"hold":false,"index":0,"port":0,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"image"}],"mid":"[10.23.1.42]:2944","protocol":"h248","role":"answer","terminations":["ds/4/24","RTP/1727"],"transaction":555282723,"version":1}"#,
);

/// `wiki-FAX-f56-Modify-Local-Remote.megaco`: a Modify of RTP/1727 with
/// Local and Remote, two groups each; the Local T.38 port is `$`.
const F56: &str = concat!(
    r#"{"actions":1,"commands":["Modify"],"context":191,"error":null,"error_descriptor":null,"kind":"Modify","media":[{"addr":"10.23.1.52","choose":false,"descriptor":"local","direction":"sendrecv","disabled":false,"group":0,"hold":false,"index":0,"port":16756,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"audio"},"#,
    r#"{"addr":"10.23.1.52","choose":true,"descriptor":"local","direction":"sendrecv","disabled":true,"group":1,"hold":false,"index":0,"port":0,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"image"},"#,
    r#"{"addr":"10.35.60.100","choose":false,"descriptor":"remote","direction":"sendrecv","disabled":false,"group":0,"hold":false,"index":0,"port":15580,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"audio"},"#,
    r#"{"addr":"10.35.60.100","choose":false,"descriptor":"remote","direction":"sendrecv","disabled":true,"group":1,"hold":false,"index":0,"port":0,"rtcp":null,"stream":1,"termination":"RTP/1727","type":"image"}],"mid":"<iMSS>","protocol":"h248","role":"modify","terminations":["RTP/1727"],"transaction":555282730,"version":1}"#,
);

#[test]
fn inspect_h248_messages_exactly() {
    for (file, line) in [
        ("wiki-FAX-f22-Add-reply-Local-sdp.megaco", F22),
        ("wiki-FAX-f56-Modify-Local-Remote.megaco", F56),
    ] {
        let path = h248_corpus(file);
        let (ok, out) = lines_of(&["inspect".as_ref(), path.as_os_str()]);
        assert!(ok, "{file}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{line}\n"),
            "{file}"
        );
    }
}

#[test]
fn inspect_h248_from_stdin_after_the_mpr_comment_line() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["inspect", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let msg = b";pinhole-mg=[10.23.1.42]:2944\r\n!/1 <iMSS>\nT=7{C=-{AV=ROOT}}K{5}";
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2, "one line per transaction and ack");
    assert_eq!(
        (v[0]["kind"].as_str(), v[0]["transaction"].as_u64()),
        (Some("AuditValue"), Some(7))
    );
    assert_eq!(v[0]["context"], "-");
    assert_eq!(v[0]["mid"], "<iMSS>");
    assert_eq!(v[1]["kind"], "TransactionResponseAck");
}

#[test]
fn inspect_a_broken_h248_message_fails_with_an_error_line() {
    let f = std::env::temp_dir().join(format!("pinhole-inspect-{}.megaco", std::process::id()));
    std::fs::write(&f, b"MEGACO/1 [10.0.0.1]:2944\nTransaction = 1 {\n").unwrap();
    let (ok, out) = lines_of(&["inspect".as_ref(), f.as_os_str()]);
    std::fs::remove_file(&f).unwrap();
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["protocol"], "h248");
    assert!(v["kind"].is_null());
    assert!(v["error"].as_str().unwrap().starts_with("line "), "{v}");
}

/// The Add reply rewritten: only the audio group's `c=` address and port
/// change; the `o=` line and the disabled T.38 group stay.
#[test]
fn rewrite_an_h248_add_reply() {
    let path = h248_corpus("wiki-FAX-f22-Add-reply-Local-sdp.megaco");
    let (ok, out) = lines_of(&[
        "rewrite".as_ref(),
        "--to".as_ref(),
        "203.0.113.10:40000".as_ref(),
        path.as_os_str(),
    ]);
    assert!(ok);
    let expected: &[u8] =
        b"!/1 [10.23.1.42]:2944 P = 555282723{ C = 191 {a=ds/4/24  ,a=RTP/1727  { m { l { \r\n\
v=0\r\n\
o=- 191 1228500736 IN IP4 10.23.1.52\r\n\
s=-\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 103 102\r\n\
a=rtpmap:103 G726-32/8000\r\n\
a=ptime:30\r\n\
a=rtpmap:102 telephone-event/8000/1\r\n\
a=fmtp:102 0-15\r\n\
v=0\r\n\
o=- 0 0 IN IP4 -\r\n\
s=-\r\n\
c=IN IP4 10.23.1.52\r\n\
t=0 0\r\n\
m=image 0 UDPTL t38\r\n }  }  } }}";
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected)
    );
}
