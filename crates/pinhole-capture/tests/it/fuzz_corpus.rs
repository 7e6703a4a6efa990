//! Runs the `capture_read` fuzz target body over its checked-in seed corpus
//! (`fuzz/corpus/capture_read`), so every `cargo test` replays it and any
//! crash input added there later.
//!
//! Regenerate the seeds with
//! `PINHOLE_WRITE_CORPUS=1 cargo test -p pinhole-capture --test it fuzz_corpus -- --ignored`.

use std::path::PathBuf;

use crate::common::*;
use pinhole_capture::Transport;
use pinhole_capture::fuzzing::capture_read;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/capture_read")
}

#[test]
fn seed_corpus_passes_fuzz_property_and_reaches_deep() {
    let mut seen = 0;
    let mut by = std::collections::HashMap::new();
    let mut reassembled = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let c = capture_read(&data);
        for u in &c.units {
            *by.entry(u.transport).or_insert(0) += 1;
        }
        reassembled += c.stats.fragments_reassembled;
        seen += 1;
    }
    assert!(seen >= 3, "seed corpus has only {seen} files");
    // The seeds are worth their bytes only if they reach every decoder.
    for t in [
        Transport::Udp,
        Transport::Tcp,
        Transport::Sctp,
        Transport::WebSocket,
    ] {
        assert!(
            by.get(&t).copied().unwrap_or(0) >= 1,
            "no {t:?} unit: {by:?}"
        );
    }
    assert!(reassembled >= 1);
}

/// Frames mode of the fuzz body: link byte, then length-prefixed frames.
fn frames(link: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![link];
    for f in frames {
        out.extend((f.len() as u16).to_be_bytes());
        out.extend(f);
    }
    out
}

#[test]
#[ignore = "writes fuzz/corpus/capture_read; run with PINHOLE_WRITE_CORPUS=1"]
fn write_seed_corpus() {
    if std::env::var_os("PINHOLE_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rich.pcap"), rich_capture()).unwrap();
    let (a, b) = ("[2001:db8::1]:5060", "[2001:db8::2]:5060");
    let invite = b"INVITE sip:b@x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    let ng = pcapng(
        &[1, 101],
        true,
        &[
            (0, at(0), eth(0x86DD, &tcp(a, b, 1, SYN, b""))),
            (1, at(1), tcp(a, b, 2, 0, &invite[..10])),
            (1, at(2), tcp(a, b, 12, 0, &invite[10..])),
            (
                0,
                at(3),
                eth(
                    0x0800,
                    &udp(
                        "192.0.2.1:5060",
                        "192.0.2.2:5060",
                        b"SIP/2.0 200 OK\r\n\r\n",
                    ),
                ),
            ),
        ],
    );
    std::fs::write(dir.join("tcp-v6.pcapng"), ng).unwrap();
    // Linux cooked v1 frames, through the fuzz body's frames mode.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend(udp(
        "192.0.2.1:2427",
        "192.0.2.2:2727",
        b"RQNT 1201 aaln/1@gw MGCP 1.0\n",
    ));
    std::fs::write(dir.join("sll-frames"), frames(2, &[sll.clone(), sll])).unwrap();
}
