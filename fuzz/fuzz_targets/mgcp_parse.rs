//! Parses arbitrary bytes as an MGCP datagram and rewrites its SDP; see
//! `pinhole_mgcp::fuzzing::mgcp_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_mgcp::fuzzing::mgcp_parse(data));
