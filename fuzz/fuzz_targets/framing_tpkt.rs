//! Frames a stream of control messages and TPKT whole and in pieces; see
//! `pinhole_core::fuzzing::framing_tpkt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pinhole_core::fuzzing::framing_tpkt(data);
});
