//! Decodes arbitrary datagrams; see `pinhole_core::fuzzing::control_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_core::fuzzing::control_decode(data));
