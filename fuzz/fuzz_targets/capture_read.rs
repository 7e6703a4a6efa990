//! Reads arbitrary bytes as a capture file, or as frames; see
//! `pinhole_capture::fuzzing::capture_read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pinhole_capture::fuzzing::capture_read(data);
});
