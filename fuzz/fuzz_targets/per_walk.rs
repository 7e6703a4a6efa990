//! Walks arbitrary bytes as aligned PER of H.225.0 or H.245 (the first
//! byte picks the PDU type); see `pinhole_h323::fuzzing::per_walk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_h323::fuzzing::per_walk(data));
