//! Every SIP message of the shared corpus with SDP, rewritten to one relay
//! address (IPv4 and IPv6): the result re-parses to exactly the planned
//! addresses and ports, and every line that changed is a media line (`c=`,
//! `m=`, `a=rtcp:`) or Content-Length — nothing else moved. Messages that do
//! not parse give a typed error, never a panic.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};

use pinhole_sdp::Sdp;
use pinhole_sip::{Message, RewriteError, rewrite_all};

fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split(|&c| c == b'\n').collect()
}

fn is_media_line(l: &[u8]) -> bool {
    let l = l.trim_ascii_start();
    l.starts_with(b"c=") || l.starts_with(b"m=") || l.starts_with(b"a=rtcp:")
}

fn is_length_line(l: &[u8]) -> bool {
    let lower = l.to_ascii_lowercase();
    lower.starts_with(b"content-length") || lower.starts_with(b"l:") || lower.starts_with(b"l ")
}

/// Walks input and output line by line: equal lines pass; a changed line
/// must be a media or length line on both sides; an extra output line may
/// only be an inserted `c=` line.
fn only_media_changed(name: &str, input: &[u8], output: &[u8]) {
    let (a, b) = (lines(input), lines(output));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
        } else if (is_media_line(a[i]) && is_media_line(b[j]))
            || (is_length_line(a[i]) && is_length_line(b[j]))
        {
            assert_eq!(
                a[i].get(..2),
                b[j].get(..2),
                "{name}: a line changed kind: {:?} → {:?}",
                String::from_utf8_lossy(a[i]),
                String::from_utf8_lossy(b[j])
            );
            i += 1;
            j += 1;
        } else if b[j].starts_with(b"c=") {
            j += 1; // an inserted media-level connection line
        } else {
            panic!(
                "{name}: line {i} changed outside the media fields: {:?} → {:?}",
                String::from_utf8_lossy(a[i]),
                String::from_utf8_lossy(b[j])
            );
        }
    }
    assert_eq!((i, j), (a.len(), b.len()), "{name}: lines left over");
}

#[test]
fn every_corpus_message_with_sdp_rewrites_only_its_media_fields() {
    let files = pinhole_testkit::corpus::files("sip", ".sip").unwrap();
    assert!(files.len() >= 60, "corpus missing: {} files", files.len());
    let mut rewritten = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read(path).unwrap();
        for to in ["203.0.113.10:30000", "[2001:db8::10]:30000"] {
            let to: SocketAddr = to.parse().unwrap();
            match rewrite_all(&input, to) {
                Ok(out) => {
                    only_media_changed(&name, &input, &out);
                    let m = Message::parse(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
                    let mut port = 30_000;
                    for span in m.sdp_bodies().unwrap() {
                        let sdp = Sdp::parse(&out[span]).unwrap();
                        let eps = sdp.endpoints(IpAddr::from([0, 0, 0, 0])).unwrap();
                        for e in eps.iter().filter(|e| !e.is_disabled()) {
                            assert_eq!(e.addr, SocketAddr::new(to.ip(), port), "{name}");
                            port += 2;
                        }
                    }
                    rewritten += 1;
                }
                // Typed refusals: no SDP, broken SIP or SDP.
                Err(RewriteError::NoSdp | RewriteError::Sip(_) | RewriteError::Sdp(_)) => {}
                Err(e) => panic!("{name}: unexpected {e}"),
            }
        }
    }
    // 20-odd corpus messages carry SDP; each was rewritten both ways.
    assert!(rewritten >= 40, "only {rewritten} rewrites");
}

#[test]
fn the_rfc4475_invalid_messages_never_rewrite_silently() {
    for path in pinhole_testkit::corpus::files("sip", ".sip").unwrap() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("rfc4475-3.1.2") {
            continue;
        }
        let input = std::fs::read(&path).unwrap();
        // Either a typed error or a rewrite that passes the line check.
        if let Ok(out) = rewrite_all(&input, "203.0.113.10:30000".parse().unwrap()) {
            only_media_changed(&name, &input, &out);
        }
    }
}

#[test]
fn the_line_check_catches_a_change_outside_the_media_fields() {
    let input = b"INVITE sip:a@b SIP/2.0\r\nSubject: hi\r\nContent-Length: 0\r\n\r\n";
    let output = b"INVITE sip:a@b SIP/2.0\r\nSubject: ho\r\nContent-Length: 0\r\n\r\n";
    let caught = std::panic::catch_unwind(|| only_media_changed("t", input, output));
    assert!(caught.is_err(), "a changed Subject must fail the check");
}
