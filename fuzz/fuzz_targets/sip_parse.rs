//! Parses arbitrary bytes as a SIP datagram and stream; see
//! `pinhole_sip::fuzzing::sip_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_sip::fuzzing::sip_parse(data));
