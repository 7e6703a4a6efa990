//! Parses and rewrites arbitrary SDP; see `pinhole_sdp::fuzzing::sdp_rewrite`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_sdp::fuzzing::sdp_rewrite(data));
