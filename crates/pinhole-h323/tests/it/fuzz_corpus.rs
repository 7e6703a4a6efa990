//! Runs the `q931_parse` fuzz target body over its checked-in seed corpus
//! (`fuzz/corpus/q931_parse`), so every `cargo test` replays it and any
//! crash input added there later.

use std::path::PathBuf;

#[test]
fn seed_corpus_passes_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/q931_parse");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        pinhole_h323::fuzzing::q931_parse(&data);
        n += 1;
    }
    assert!(n >= 6, "only {n} seeds");
}

#[test]
fn per_walk_seeds_pass_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/per_walk");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        pinhole_h323::fuzzing::per_walk(&data);
        n += 1;
    }
    assert!(n >= 17, "only {n} seeds");
}
