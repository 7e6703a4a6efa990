//! Hostile datagrams into the MGCP ALGs (the `mgcp_proxy` fuzz body):
//! never a panic, everything they send parses, every call expires. Also
//! replays the fuzz target's seed corpus.
#![allow(missing_docs)]

use std::path::PathBuf;

use pinhole_mgcp::alg::fuzzing::{CRCX, OK, mgcp_proxy};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        mgcp_proxy(&bytes);
    }

    #[test]
    fn mangled_messages_never_panic(
        which in 0usize..2,
        cut in 1usize..400,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
    ) {
        let mut m = [CRCX, OK][which].to_vec();
        for (at, b) in flips {
            if let Some(x) = m.get_mut(at) {
                *x = b;
            }
        }
        m.truncate(cut.min(m.len()));
        mgcp_proxy(&m);
    }
}

#[test]
fn seed_corpus_passes_the_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mgcp_proxy");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        mgcp_proxy(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 6, "only {n} seeds");
}
