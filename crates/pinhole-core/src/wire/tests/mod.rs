//! Codec tests: every message, attribute and error path of docs/wire-format.md.

use std::net::SocketAddr;

use super::*;

mod errors;
mod messages;
mod props;

const KEY: &[u8] = b"corp1-secret";
const ID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const NONCE_HEX: &[u8] = b"0000000000000258a1b2c3d4e5f60718";

type Fill = dyn FnOnce(&mut Builder<'_>) -> Result<(), EncodeError>;

/// Encodes a message whose attributes `f` adds.
fn enc(method: Method, class: Class, key: Option<&[u8]>, f: Box<Fill>) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut b = Builder::new(&mut buf, method, class, ID).unwrap();
    f(&mut b).unwrap();
    let n = b.finish(key).unwrap();
    buf[..n].to_vec()
}

/// Hand-framed message (no FINGERPRINT) for inputs the builder refuses.
fn raw(ty: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    v.extend_from_slice(&ID.0);
    for (t, val) in attrs {
        append(&mut v, *t, val);
    }
    v
}

/// Appends an attribute and fixes the length field.
fn append(v: &mut Vec<u8>, t: u16, val: &[u8]) {
    v.extend_from_slice(&t.to_be_bytes());
    v.extend_from_slice(&(val.len() as u16).to_be_bytes());
    v.extend_from_slice(val);
    v.resize(v.len().next_multiple_of(4), 0);
    let len = (v.len() - HEADER_LEN) as u16;
    v[2..4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a correct FINGERPRINT.
fn add_fp(v: &mut Vec<u8>) {
    let len = (v.len() + 8 - HEADER_LEN) as u16;
    v[2..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(v) ^ FINGERPRINT_XOR;
    append(v, attr::FINGERPRINT, &crc.to_be_bytes());
}

/// Removes the trailing FINGERPRINT.
fn strip_fp(v: &mut Vec<u8>) {
    assert_eq!(&v[v.len() - 8..v.len() - 4], &[0x80, 0x28, 0, 4]);
    v.truncate(v.len() - 8);
    let len = (v.len() - HEADER_LEN) as u16;
    v[2..4].copy_from_slice(&len.to_be_bytes());
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Checks header bytes, length field, trailer layout; returns the message.
fn check_frame(bytes: &[u8], ty: [u8; 2], integrity: bool) -> Message<'_> {
    assert_eq!(&bytes[..2], &ty);
    assert_eq!(
        usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        bytes.len() - 20
    );
    assert_eq!(&bytes[4..8], &[0x21, 0x12, 0xA4, 0x42]);
    assert_eq!(&bytes[8..20], &ID.0);
    let n = bytes.len();
    assert_eq!(&bytes[n - 8..n - 4], &[0x80, 0x28, 0x00, 0x04], "FP last");
    if integrity {
        assert_eq!(
            &bytes[n - 44..n - 40],
            &[0x00, 0x1C, 0x00, 0x20],
            "MI before FP"
        );
    }
    assert!(is_control(bytes));
    let m = Message::decode(bytes).unwrap();
    assert_eq!(m.transaction_id(), ID);
    assert!(m.has_fingerprint());
    assert_eq!(m.has_integrity(), integrity);
    if integrity {
        m.verify(KEY).unwrap();
    } else {
        assert_eq!(m.verify(KEY), Err(IntegrityError::Missing));
    }
    assert!(m.unknown_required().is_empty());
    assert_eq!(m.as_bytes(), bytes);
    m
}

fn example_register_bytes() -> Vec<u8> {
    enc(
        Method::Register,
        Class::Request,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?
                .protocol(Protocol::Sip)?
                .domain("corp1.example")?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    )
}

#[test]
fn example_register() {
    let bytes = example_register_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let expected = concat!(
        "02810078",
        "2112a442",
        "0102030405060708090a0b0c",
        "00060005636f727031000000",
        "4c01000401000000",
        "4c02000d636f727031",
        "2e6578616d706c65000000",
        "00150020",
        "3030303030303030303030303032353861316232633364346535663630373138",
        // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT: stun-rs validates these
        // same bytes in tests/wire_oracle.rs (example_register_matches_stun_rs).
        "001c0020",
        "9842cf53aef189b509737969dac14490347605718336d35190cba1e3f92244a5",
        "80280004",
        "89da38d5",
    );
    assert_eq!(hex, expected);
    let m = check_frame(&bytes, [0x02, 0x81], true);
    assert_eq!(m.username(), Some("corp1"));
    assert_eq!(m.domains().collect::<Vec<_>>(), ["corp1.example"]);
}
