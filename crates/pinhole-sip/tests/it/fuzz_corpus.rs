//! Runs the `sip_parse` fuzz target body over the checked-in seed corpus
//! (`fuzz/corpus/sip_parse`), so every `cargo test` replays it and any
//! crash input added there later.

use std::path::PathBuf;

use pinhole_sip::fuzzing::{framing_next_sip, sip_parse, sip_proxy};
use pinhole_sip::{Frame, Message, frame};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sip_parse")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn seed_corpus_passes_the_fuzz_property() {
    let seeds = seeds();
    assert!(
        seeds.len() >= 12,
        "seed corpus has only {} files",
        seeds.len()
    );
    for (_, data) in &seeds {
        sip_parse(data);
    }
}

#[test]
fn seeds_reach_the_deep_paths() {
    // Worth their bytes only if they get past the start line: most parse,
    // some reach SDP (multipart included), one frames as a stream.
    let mut parsed = 0;
    let mut sdp = 0;
    let mut multipart = 0;
    let mut framed = 0;
    for (name, data) in seeds() {
        if let Ok(m) = Message::parse(&data) {
            parsed += 1;
            let bodies = m.sdp_bodies().unwrap_or_default();
            sdp += usize::from(!bodies.is_empty());
            multipart += usize::from(bodies.first().is_some_and(|b| *b != m.body()));
        }
        if name.starts_with("stream-") {
            let mut rest = &data[..];
            while let Ok(Some(f)) = frame(rest) {
                let n = match f {
                    Frame::Keepalive(n) => n,
                    Frame::Message(n) => {
                        framed += 1;
                        n
                    }
                };
                rest = &rest[n..];
            }
        }
    }
    assert!(parsed >= 10, "{parsed}");
    assert!(sdp >= 5, "{sdp}");
    assert_eq!(multipart, 1);
    assert_eq!(framed, 2);
}

#[test]
fn proxy_seed_corpus_passes_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sip_proxy");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        sip_proxy(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 6, "only {n} seeds");
}

#[test]
fn framing_seed_corpus_passes_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/framing_next_sip");
    let (mut n, mut messages) = (0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        messages += framing_next_sip(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    // SIP and control messages, keepalives between them, one unframeable.
    assert!(n >= 3 && messages >= 6, "{n} seeds, {messages} messages");
}
