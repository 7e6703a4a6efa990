//! Hostile datagrams into the MPR's and an APS's MGCP ALGs and a smart
//! gateway; see `pinhole_mgcp::alg::fuzzing::mgcp_proxy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_mgcp::alg::fuzzing::mgcp_proxy(data));
