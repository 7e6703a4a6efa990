//! Runs the fuzz target body over the checked-in seed corpus
//! (`fuzz/corpus/sdp_rewrite`), so every `cargo test` replays it, and any
//! crash input added there later.

use std::path::PathBuf;

use pinhole_sdp::Sdp;
use pinhole_sdp::fuzzing::{FALLBACK, sdp_rewrite};

#[test]
fn seed_corpus_passes_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sdp_rewrite");
    let mut seen = 0;
    let mut streams = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        sdp_rewrite(&data);
        // The seeds are worth their bytes only if they reach the rewrite:
        // each must parse and give its endpoints.
        let sdp = Sdp::parse(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        streams += sdp
            .endpoints(FALLBACK)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        seen += 1;
    }
    assert!(seen >= 10, "seed corpus has only {seen} files");
    assert!(streams >= 18, "seeds hold only {streams} streams");
}
