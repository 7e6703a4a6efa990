//! Parses arbitrary bytes as an H.248 text message and rewrites its SDP;
//! see `pinhole_h248::fuzzing::h248_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_h248::fuzzing::h248_parse(data));
