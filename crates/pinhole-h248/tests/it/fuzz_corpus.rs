//! Runs the `h248_parse` fuzz target body over the checked-in seed corpus
//! (`fuzz/corpus/h248_parse`), so every `cargo test` replays it and any
//! crash input added there later.

use std::path::PathBuf;

use pinhole_h248::fuzzing::h248_parse;
use pinhole_h248::parse;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/h248_parse");
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
    assert!(seeds.len() >= 25, "only {} seeds", seeds.len());
    for (_, data) in &seeds {
        h248_parse(data);
    }
}

#[test]
fn seeds_reach_the_deep_paths() {
    // Worth their bytes only if most parse, many carry SDP groups that
    // read, and the bad one fails. (Crash inputs kept for replay,
    // `regression-*`, are not counted.)
    let (mut parsed, mut groups, mut failed) = (0, 0, 0);
    for (name, data) in seeds()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("regression-"))
    {
        match parse(&data) {
            Ok(m) => {
                parsed += 1;
                groups += m.groups().filter(|g| m.sdp(g).is_ok()).count();
            }
            Err(e) => {
                assert!(name.starts_with("bad-"), "{name}: {e}");
                failed += 1;
            }
        }
    }
    assert_eq!(parsed, 28);
    // 33 in the capture's messages, 2 + 2 in the hand-made ones; the
    // bare-CR seed's group is cut right but pinhole-sdp reads no bare-CR
    // lines.
    assert_eq!(groups, 37);
    assert_eq!(failed, 1);
}

/// The `h248_proxy` seeds (`fuzz/corpus/h248_proxy`) through the ALGs'
/// fuzz body: each must parse, so that it reaches the proxies' paths.
#[test]
fn proxy_seed_corpus_passes_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/h248_proxy");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        assert!(parse(&data).is_ok(), "{}", path.display());
        pinhole_h248::alg::fuzzing::h248_proxy(&data);
        n += 1;
    }
    assert!(n >= 8, "only {n} seeds");
}
