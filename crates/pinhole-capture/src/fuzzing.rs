//! Body of the `capture_read` fuzz target under `fuzz/`, kept here so that
//! it compiles with the crate and the checked-in corpus runs as an ordinary
//! test.
//!
//! It panics when a property it checks fails: that is how a fuzzer reports
//! a finding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::{Capture, Decoder, LinkType, read};

/// Reads `data` as a capture file; if it is none, reads it as a series of
/// frames instead (first byte: link type; then frames, each prefixed by a
/// 2-byte big-endian length), so that the fuzzer reaches the packet
/// decoders without first having to build a file around them. Returns
/// what was decoded, for the corpus replay test to check the seeds' reach.
pub fn capture_read(data: &[u8]) -> Capture {
    let capture = match read(data) {
        Ok(c) => c,
        Err(_) => {
            let Some((&link, mut rest)) = data.split_first() else {
                return Capture::default();
            };
            let link = [
                LinkType::Ethernet,
                LinkType::Raw,
                LinkType::LinuxSll,
                LinkType::LinuxSll2,
                LinkType::Null,
            ][usize::from(link) % 5];
            let mut decoder = Decoder::new();
            let mut frame = 0;
            while let Some((len, tail)) = rest.split_first_chunk::<2>() {
                let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
                let (pkt, tail) = tail.split_at(len);
                frame += 1;
                decoder.packet(frame, Duration::from_millis(frame * 10), link, pkt);
                rest = tail;
            }
            decoder.finish()
        }
    };
    let s = &capture.stats;
    assert!(s.errors.len() <= 100, "errors kept: {}", s.errors.len());
    assert!(s.errors_total >= s.errors.len() as u64);
    assert!(s.skipped <= s.frames, "{s:?}");
    assert!(capture.units.windows(2).all(|w| w[0].frame <= w[1].frame));
    assert!(
        capture
            .units
            .iter()
            .all(|u| u.frame >= 1 && u.frame <= s.frames)
    );
    capture
}
