//! Feeds the MPR engine operation sequences; see `pinhole_core::fuzzing::mpr_datagrams`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pinhole_core::fuzzing::mpr_datagrams(data);
});
