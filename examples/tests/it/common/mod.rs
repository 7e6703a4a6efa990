//! What the MGCP example binaries' tests share.

use std::process::Output;

/// Checks an example binary exited 0 (else fails with its output) and
/// returns its stdout.
pub(crate) fn successful_stdout(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The intact count `K` of a gateway's summary line `RTP sent N (B bytes),
/// received M (K intact)…`; 0 when there is none.
pub(crate) fn intact(text: &str) -> u64 {
    text.split("received ")
        .nth(1)
        .and_then(|s| s.split(" (").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
