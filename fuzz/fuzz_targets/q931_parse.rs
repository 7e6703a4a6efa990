//! Parses arbitrary bytes as a TPKT frame of Q.931 (H.225.0 call
//! signaling); see `pinhole_h323::fuzzing::q931_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_h323::fuzzing::q931_parse(data));
