//! Hostile datagrams into the MPR's and an APS's H.248 ALGs; see
//! `pinhole_h248::alg::fuzzing::h248_proxy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_h248::alg::fuzzing::h248_proxy(data));
