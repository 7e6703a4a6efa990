//! Bodies of the fuzz targets under `fuzz/`, kept here so that they compile
//! with the crate and the checked-in corpus runs as an ordinary test.
//!
//! These functions panic when the property they check fails: that is how a
//! fuzzer reports a finding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::wire::{Builder, Message};

/// Key used to re-sign re-encoded messages; any key works.
const REENCODE_KEY: &[u8] = b"fuzzing";

/// Every accessor value of a message, for comparison.
#[derive(Debug, PartialEq)]
struct Snapshot<'a> {
    head: (
        crate::wire::Method,
        crate::wire::Class,
        crate::wire::TransactionId,
    ),
    username: Option<&'a str>,
    protocol: Option<crate::wire::Protocol>,
    domains: Vec<&'a str>,
    leg_key: Option<&'a [u8]>,
    rtcp_mode: Option<crate::wire::RtcpMode>,
    lifetime: Option<u32>,
    nonce: Option<&'a [u8]>,
    software: Option<&'a str>,
    mapped: Option<std::net::SocketAddr>,
    relayed: Option<std::net::SocketAddr>,
    error: Option<(crate::wire::ErrorCode, &'a str)>,
    unknown_attributes: Vec<u16>,
}

fn snapshot<'a>(m: &Message<'a>) -> Snapshot<'a> {
    Snapshot {
        head: (m.method(), m.class(), m.transaction_id()),
        username: m.username(),
        protocol: m.protocol(),
        domains: m.domains().collect(),
        leg_key: m.leg_key(),
        rtcp_mode: m.rtcp_mode(),
        lifetime: m.lifetime(),
        nonce: m.nonce(),
        software: m.software(),
        mapped: m.xor_mapped_address(),
        relayed: m.xor_relayed_address(),
        error: m.error_code(),
        unknown_attributes: m.unknown_attributes().collect(),
    }
}

/// Re-encodes the accessor values of `m` (MI-SHA256 keyed with `key` if the
/// original had integrity) into `buf`; returns the length written.
fn reencode(m: &Message<'_>, buf: &mut [u8]) -> Result<usize, crate::wire::EncodeError> {
    let mut b = Builder::new(buf, m.method(), m.class(), m.transaction_id())?;
    if let Some(v) = m.username() {
        b.username(v)?;
    }
    if let Some(v) = m.protocol() {
        b.protocol(v)?;
    }
    for d in m.domains() {
        b.domain(d)?;
    }
    if let Some(v) = m.leg_key() {
        b.leg_key(v)?;
    }
    if let Some(v) = m.rtcp_mode() {
        b.rtcp_mode(v)?;
    }
    if let Some(v) = m.lifetime() {
        b.lifetime(v)?;
    }
    if let Some(v) = m.nonce() {
        b.nonce(v)?;
    }
    if let Some(v) = m.software() {
        b.software(v)?;
    }
    if let Some(v) = m.xor_mapped_address() {
        b.xor_mapped_address(v)?;
    }
    if let Some(v) = m.xor_relayed_address() {
        b.xor_relayed_address(v)?;
    }
    if let Some((code, reason)) = m.error_code() {
        b.error_code(code, reason)?;
    }
    // An empty UNKNOWN-ATTRIBUTES is invisible to the accessors: skip it.
    if m.unknown_attributes().next().is_some() {
        let types: Vec<u16> = m.unknown_attributes().collect();
        b.unknown_attributes(&types)?;
    }
    b.finish(m.has_integrity().then_some(REENCODE_KEY))
}

/// Fuzz target `control_decode`: decoding never panics; a decoded message
/// answers every accessor, and re-encoding its values with [`Builder`] and
/// decoding again gives the same values.
pub fn control_decode(data: &[u8]) {
    let control = crate::wire::is_control(data);
    let Ok(m) = Message::decode(data) else {
        return;
    };
    // Decode accepts exactly the framing is_control checks (plus more rules).
    assert!(control, "decoded a datagram is_control rejects");
    assert_eq!(m.as_bytes(), data);
    let before = snapshot(&m);
    let _ = m.unknown_required();
    let _ = m.has_fingerprint();
    let _ = m.verify(REENCODE_KEY);

    let mut buf = vec![0u8; data.len() + 64];
    let len = match reencode(&m, &mut buf) {
        Ok(len) => len,
        // Only a message already near the 64 KiB limit can outgrow it.
        Err(crate::wire::EncodeError::MessageTooLong { .. }) => return,
        Err(e) => panic!("re-encoding decoded values failed: {e}"),
    };
    let again = Message::decode(&buf[..len]).expect("re-encoded message must decode");
    assert_eq!(snapshot(&again), before);
    assert!(again.has_fingerprint());
    assert!(again.unknown_required().is_empty());
    assert_eq!(again.has_integrity(), m.has_integrity());
    if again.has_integrity() {
        again
            .verify(REENCODE_KEY)
            .expect("re-signed message must verify");
    }
}
