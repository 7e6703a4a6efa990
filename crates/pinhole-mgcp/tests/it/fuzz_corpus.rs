//! Runs the `mgcp_parse` fuzz target body over the checked-in seed corpus
//! (`fuzz/corpus/mgcp_parse`), so every `cargo test` replays it and any
//! crash input added there later.

use std::path::PathBuf;

use pinhole_mgcp::{fuzzing::mgcp_parse, parse_datagram};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mgcp_parse");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
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
    assert!(seeds.len() >= 12, "only {} seeds", seeds.len());
    for (_, data) in &seeds {
        mgcp_parse(data);
    }
}

#[test]
fn seeds_reach_the_deep_paths() {
    // Worth their bytes only if most parse, several carry SDP that reads,
    // one is piggybacked, and a few fail in different places.
    // (Crash inputs kept for replay, `regression-*`, are not counted.)
    let (mut parsed, mut sdp, mut piggy, mut failed) = (0, 0, 0, 0);
    for (_, data) in seeds()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("regression-"))
    {
        match parse_datagram(&data) {
            Ok(msgs) => {
                parsed += 1;
                piggy += usize::from(msgs.len() > 1);
                sdp += msgs
                    .iter()
                    .filter(|m| matches!(m.sdp(), Ok(Some(_))))
                    .count();
            }
            Err(_) => failed += 1,
        }
    }
    assert!(parsed >= 10, "{parsed}");
    // bare-cr-ipv6's SDP is cut right but pinhole-sdp reads no bare-CR
    // lines: the other four read.
    assert_eq!(sdp, 4, "{sdp}");
    assert_eq!(piggy, 1);
    assert_eq!(
        failed, 1,
        "bad-txid; bad-ack and bad-sdp fail only when read"
    );
}
