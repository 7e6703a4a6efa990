//! Decode errors, integrity, demultiplexing.

use super::*;
use crate::wire::attr::{self, *};

fn decode_err(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes).unwrap_err()
}

#[test]
fn framing_errors_have_offsets() {
    let good = example_register_bytes();
    assert_eq!(
        decode_err(&[]),
        DecodeError::Truncated {
            offset: 0,
            what: "STUN header"
        }
    );
    assert_eq!(decode_err(&good[..19]).offset(), 19);
    let cut = decode_err(&good[..good.len() - 4]);
    assert_eq!((cut.kind(), cut.offset()), ("truncated", good.len() - 4));

    let mut bad = good.clone();
    bad[5] ^= 1;
    assert_eq!(
        decode_err(&bad),
        DecodeError::NotStun {
            offset: 4,
            what: "no magic cookie"
        }
    );
    let mut bad = good.clone();
    bad[0] |= 0x40;
    assert!(matches!(
        decode_err(&bad),
        DecodeError::NotStun { offset: 0, .. }
    ));

    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4]);
    assert!(matches!(
        decode_err(&longer),
        DecodeError::BadLength { offset: 2, .. }
    ));
    let mut odd = good.clone();
    odd[3] += 2;
    odd.extend_from_slice(&[0; 2]);
    assert!(matches!(
        decode_err(&odd),
        DecodeError::BadLength { offset: 2, .. }
    ));

    // An unpadded attribute (pre-RFC 5389 style) makes the length odd.
    let mut unpadded = raw(0x0001, &[]);
    unpadded.extend_from_slice(&[0x80, 0x22, 0, 3, b'a', b'b', b'c']);
    unpadded[3] = 7;
    assert_eq!(
        decode_err(&unpadded),
        DecodeError::BadLength {
            offset: 2,
            what: "message length is not a multiple of 4"
        }
    );
    // An attribute length running past the message.
    let mut over = raw(0x0001, &[(SOFTWARE, b"abcd")]);
    over[23] = 9;
    assert!(matches!(
        decode_err(&over),
        DecodeError::Truncated { offset: 20, .. }
    ));

    let unknown_method = raw(0x0283, &[]);
    assert_eq!(
        decode_err(&unknown_method),
        DecodeError::UnknownMethod {
            offset: 0,
            method: 0xC3
        }
    );
}

#[test]
fn bad_attribute_values_are_rejected_at_their_offset() {
    let padding = (SOFTWARE, &b"ok"[..]);
    let cases: &[(u16, &[u8])] = &[
        (USERNAME, b""),
        (USERNAME, &[0xFF, 0xFE]),
        (USERNAME, &[b'u'; 129]),
        (NONCE, b""),
        (NONCE, b"tab\tnonce"),
        (NONCE, &[b'n'; 129]),
        (SUBSCRIBER_DOMAIN, b""),
        (SUBSCRIBER_DOMAIN, &[0xC0]),
        (SUBSCRIBER_DOMAIN, &[b'd'; 254]),
        (LEG_KEY, b""),
        (LEG_KEY, &[0; 65]),
        (SIGNALING_PROTOCOL, &[1, 0, 0]),
        (SIGNALING_PROTOCOL, &[0, 0, 0, 0]),
        (SIGNALING_PROTOCOL, &[5, 0, 0, 0]),
        (RTCP_MODE, &[3, 0, 0, 0]),
        (RTCP_MODE, &[0, 0, 0, 0, 0]),
        (LIFETIME, &[0, 0, 1]),
        (LIFETIME, &[0, 0, 0, 1, 0]),
        (XOR_MAPPED_ADDRESS, &[0, 1, 0, 0, 0, 0, 0]),
        (XOR_MAPPED_ADDRESS, &[0, 2, 0, 0, 0, 0, 0, 0]),
        (XOR_RELAYED_ADDRESS, &[0, 3, 0, 0, 0, 0, 0, 0]),
        (XOR_RELAYED_ADDRESS, &[0, 1]),
        (ERROR_CODE, &[0, 0, 4]),
        (ERROR_CODE, &[0, 0, 2, 0]),
        (ERROR_CODE, &[0, 0, 7, 0]),
        (ERROR_CODE, &[0, 0, 4, 100]),
        (ERROR_CODE, &[0, 0, 4, 0, 0xFF]),
        (UNKNOWN_ATTRIBUTES, &[0, 1, 0]),
        (SOFTWARE, &[0x80]),
        (SOFTWARE, &[b's'; 128]),
        (MESSAGE_INTEGRITY_SHA256, &[0; 16]),
    ];
    for &(attr, value) in cases {
        let bytes = raw(0x0282, &[padding, (attr, value)]);
        let err = decode_err(&bytes);
        assert!(
            matches!(err, DecodeError::BadAttribute { offset: 28, attr: a, .. } if a == attr),
            "{attr:#06x} {value:?}: {err:?}"
        );
        assert_eq!(err.kind(), "bad_attribute");
    }
    let d = (SUBSCRIBER_DOMAIN, &b"x.example"[..]);
    let many = raw(0x0281, &[d; 17]);
    assert!(matches!(
        decode_err(&many),
        DecodeError::BadAttribute { offset: 276, .. }
    ));
    assert_eq!(
        Message::decode(&raw(0x0281, &[d; 16]))
            .unwrap()
            .domains()
            .count(),
        16
    );
}

#[test]
fn fingerprint_rules() {
    let good = example_register_bytes();
    let n = good.len();
    let mut bad = good.clone();
    bad[n - 1] ^= 0x01;
    assert_eq!(
        decode_err(&bad),
        DecodeError::FingerprintMismatch { offset: n - 8 }
    );
    let mut bad = good.clone();
    bad[30] ^= 0x20;
    assert_eq!(decode_err(&bad).kind(), "fingerprint_mismatch");

    let mut not_last = raw(0x0001, &[]);
    add_fp(&mut not_last);
    append(&mut not_last, SOFTWARE, b"after");
    assert_eq!(
        decode_err(&not_last),
        DecodeError::FingerprintNotLast { offset: 20 }
    );
    let long_fp = raw(0x0001, &[(FINGERPRINT, &[0; 8])]);
    assert!(matches!(
        decode_err(&long_fp),
        DecodeError::BadAttribute {
            attr: FINGERPRINT,
            ..
        }
    ));
    // No FINGERPRINT at all is accepted (plain STUN clients may omit it).
    let plain = raw(0x0001, &[]);
    assert!(!Message::decode(&plain).unwrap().has_fingerprint());
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let mut v = enc(
        Method::Cmph,
        Class::Request,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?;
            Ok(())
        }),
    );
    strip_fp(&mut v);
    append(&mut v, USERNAME, b"evil");
    append(&mut v, LEG_KEY, b"evil");
    append(&mut v, LIFETIME, &[1]); // malformed, but ignored
    append(&mut v, 0x7777, b"unknown required");
    append(&mut v, SUBSCRIBER_DOMAIN, b"evil.example");
    append(&mut v, MESSAGE_INTEGRITY_SHA256, &[0; 32]);
    add_fp(&mut v);
    let m = Message::decode(&v).unwrap();
    assert_eq!(m.username(), Some("corp1"));
    assert_eq!((m.leg_key(), m.lifetime()), (None, None));
    assert!(m.unknown_required().is_empty());
    assert_eq!(m.domains().count(), 0);
    assert!(m.has_fingerprint());
    m.verify(KEY).unwrap();
}

#[test]
fn unknown_attributes_required_recorded_optional_ignored() {
    let v = raw(
        0x0282,
        &[
            (0x4C06, b"x"),
            (0x8123, b"optional"),
            (0x0003, b""),
            (0x4C06, b"again"),
            (USERNAME, b"corp1"),
        ],
    );
    let m = Message::decode(&v).unwrap();
    assert_eq!(m.unknown_required(), [0x4C06, 0x0003]);
    assert_eq!(m.username(), Some("corp1"));
    let many: Vec<(u16, &[u8])> = (0..12).map(|i| (0x4C10 + i, &b""[..])).collect();
    let m2 = raw(0x0282, &many);
    let m = Message::decode(&m2).unwrap();
    assert_eq!(
        m.unknown_required(),
        &[
            0x4C10, 0x4C11, 0x4C12, 0x4C13, 0x4C14, 0x4C15, 0x4C16, 0x4C17
        ]
    );
}

#[test]
fn duplicate_attributes_first_wins() {
    let id = ID;
    let xma = |a: &str| {
        let mut buf = [0u8; 64];
        let mut b = Builder::new(&mut buf, Method::Binding, Class::Success, id).unwrap();
        b.xor_mapped_address(sa(a)).unwrap();
        buf[24..32].to_vec()
    };
    let (a1, a2) = (xma("192.0.2.1:1"), xma("192.0.2.2:2"));
    let v = raw(
        0x0382,
        &[
            (USERNAME, b"first"),
            (LIFETIME, &[0, 0, 0, 1]),
            (XOR_MAPPED_ADDRESS, &a1),
            (NONCE, b"n1"),
            (USERNAME, b"second"),
            (LIFETIME, &[0, 0, 0, 2]),
            (XOR_MAPPED_ADDRESS, &a2),
            (NONCE, b"n2"),
        ],
    );
    let m = Message::decode(&v).unwrap();
    assert_eq!(m.username(), Some("first"));
    assert_eq!(m.lifetime(), Some(1));
    assert_eq!(m.xor_mapped_address(), Some(sa("192.0.2.1:1")));
    assert_eq!(m.nonce(), Some(&b"n1"[..]));
    // A malformed duplicate is still malformed.
    let bad = raw(0x0382, &[(LIFETIME, &[0, 0, 0, 1]), (LIFETIME, &[0])]);
    assert!(matches!(
        decode_err(&bad),
        DecodeError::BadAttribute { offset: 28, .. }
    ));
}

#[test]
fn verify_detects_any_bit_flip_and_wrong_key() {
    let good = example_register_bytes();
    let m = Message::decode(&good).unwrap();
    m.verify(KEY).unwrap();
    assert_eq!(m.verify(b"corp1-secreT"), Err(IntegrityError::Mismatch));
    assert_eq!(m.verify(b""), Err(IntegrityError::Mismatch));
    let mi_end = good.len() - 8;
    // Bytes 2-3 (length) are skipped: re-sealing rewrites them, and framing
    // catches a wrong length anyway (framing_errors_have_offsets).
    for byte in (0..2).chain(4..mi_end) {
        for bit in 0..8 {
            let mut v = good.clone();
            v[byte] ^= 1 << bit;
            // Re-seal FINGERPRINT so only the integrity check can catch it.
            v.truncate(mi_end);
            add_fp(&mut v);
            let caught = Message::decode(&v).map_or(true, |m| m.verify(KEY).is_err());
            assert!(caught, "flip of byte {byte} bit {bit} not detected");
        }
    }
}

#[test]
fn is_control_demultiplexes() {
    assert!(is_control(&example_register_bytes()));
    let bind = enc(
        Method::Binding,
        Class::Indication,
        None,
        Box::new(|_| Ok(())),
    );
    assert!(is_control(&bind));
    let mut rtp = vec![0x80, 0x00, 0x00, 0x01];
    rtp.extend_from_slice(&bind[4..]);
    assert!(!is_control(&rtp), "RTP");
    let mut rtcp = bind.clone();
    rtcp[0] = 0x81;
    rtcp[1] = 200;
    assert!(!is_control(&rtcp), "RTCP");
    let mut dtls = vec![0x16, 0xFE, 0xFD, 0x00];
    dtls.extend_from_slice(&bind[4..]);
    assert!(!is_control(&dtls), "DTLS");
    let mut tpkt = vec![0x03, 0x00, 0x00, 0x1C];
    tpkt.extend_from_slice(&[0x08, 0x02, 0x80, 0x01]);
    tpkt.resize(28, 0x7E);
    assert!(!is_control(&tpkt), "TPKT");
    assert!(!is_control(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n"));
    assert!(!is_control(&bind[..19]));
    assert!(!is_control(&bind[..bind.len() - 4]), "length disagrees");
    assert!(!is_control(&[]));
}

#[test]
fn error_kinds_are_stable() {
    let kinds = [
        DecodeError::Truncated {
            offset: 0,
            what: "",
        }
        .kind(),
        DecodeError::NotStun {
            offset: 0,
            what: "",
        }
        .kind(),
        DecodeError::BadLength {
            offset: 0,
            what: "",
        }
        .kind(),
        DecodeError::UnknownMethod {
            offset: 0,
            method: 0,
        }
        .kind(),
        DecodeError::BadAttribute {
            offset: 0,
            attr: 0,
            what: "",
        }
        .kind(),
        DecodeError::FingerprintNotLast { offset: 0 }.kind(),
        DecodeError::FingerprintMismatch { offset: 0 }.kind(),
        EncodeError::BufferTooSmall { need: 0 }.kind(),
        EncodeError::ValueTooLong { attr: 0, len: 0 }.kind(),
        EncodeError::BadValue { attr: 0, what: "" }.kind(),
        EncodeError::TooMany { attr: 0, max: 0 }.kind(),
        EncodeError::MessageTooLong { len: 0 }.kind(),
        IntegrityError::Missing.kind(),
        IntegrityError::Mismatch.kind(),
    ];
    assert_eq!(
        kinds,
        [
            "truncated",
            "not_stun",
            "bad_length",
            "unknown_method",
            "bad_attribute",
            "fingerprint_not_last",
            "fingerprint_mismatch",
            "buffer_too_small",
            "value_too_long",
            "bad_value",
            "too_many",
            "message_too_long",
            "missing",
            "mismatch",
        ]
    );
    assert_eq!(attr::name(LEG_KEY), "LEG-KEY");
    let shown = DecodeError::FingerprintMismatch { offset: 44 }.to_string();
    assert!(shown.contains("44"), "{shown}");
}
