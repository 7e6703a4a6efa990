//! Hostile datagrams into the MPR's and an APS's SIP proxies; see
//! `pinhole_sip::fuzzing::sip_proxy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_sip::fuzzing::sip_proxy(data));
