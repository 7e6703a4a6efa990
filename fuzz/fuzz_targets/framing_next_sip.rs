//! Frames a stream of control messages and SIP whole and in pieces; see
//! `pinhole_sip::fuzzing::framing_next_sip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pinhole_sip::fuzzing::framing_next_sip(data);
});
