//! Frames a control-only stream whole and in pieces; see
//! `pinhole_core::fuzzing::framing_control`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pinhole_core::fuzzing::framing_control(data);
});
