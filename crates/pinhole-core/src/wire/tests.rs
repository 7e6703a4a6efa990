//! Codec tests: every message and attribute of docs/wire-format.md.

use std::net::SocketAddr;

use super::attr::{self, *};
use super::types::message_type;
use super::*;

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

#[test]
fn message_types_match_spec_table() {
    let table = [
        (Method::Binding, [0x0001, 0x0011, 0x0101, 0x0111]),
        (Method::Register, [0x0281, 0x0291, 0x0381, 0x0391]),
        (Method::Cmph, [0x0282, 0x0292, 0x0382, 0x0392]),
    ];
    let classes = [
        Class::Request,
        Class::Indication,
        Class::Success,
        Class::Error,
    ];
    for (method, types) in table {
        assert_eq!(Method::from_code(method.code()), Some(method));
        for (class, ty) in classes.into_iter().zip(types) {
            assert_eq!(message_type(method, class), ty);
            let bytes = enc(method, class, None, Box::new(|_| Ok(())));
            assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), ty);
            assert!(bytes[0] <= 3, "first byte inside RFC 7983's STUN range");
            let m = Message::decode(&bytes).unwrap();
            assert_eq!((m.method(), m.class()), (method, class));
        }
    }
    assert_eq!(Method::from_code(0x0C3), None);
}

/// Spec §6: the example Registration Request; tests/wire_oracle.rs builds
/// the same message and has stun-rs validate it.
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

#[test]
fn registration_request() {
    let bytes = enc(
        Method::Register,
        Class::Request,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?
                .protocol(Protocol::H323)?
                .domain("a.example")?
                .domain("b.example")?
                .lifetime(600)?
                .nonce(NONCE_HEX)?
                .software("pinhole-aps 0.1")?;
            Ok(())
        }),
    );
    let m = check_frame(&bytes, [0x02, 0x81], true);
    assert_eq!(m.username(), Some("corp1"));
    assert_eq!(m.protocol(), Some(Protocol::H323));
    assert_eq!(m.domains().collect::<Vec<_>>(), ["a.example", "b.example"]);
    assert_eq!(m.lifetime(), Some(600));
    assert_eq!(m.nonce(), Some(NONCE_HEX));
    assert_eq!(m.software(), Some("pinhole-aps 0.1"));
    assert_eq!(m.leg_key(), None);
    assert_eq!(m.error_code(), None);
}

#[test]
fn registration_response_success_and_errors() {
    let ok = enc(
        Method::Register,
        Class::Success,
        Some(KEY),
        Box::new(|b| {
            b.xor_mapped_address(sa("198.51.100.7:5060"))?
                .lifetime(3600)?
                .protocol(Protocol::Sip)?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&ok, [0x03, 0x81], true);
    assert_eq!(m.xor_mapped_address(), Some(sa("198.51.100.7:5060")));
    assert_eq!(
        (m.lifetime(), m.protocol()),
        (Some(3600), Some(Protocol::Sip))
    );

    // 401 without integrity (unknown network), with a fresh nonce.
    let e401 = enc(
        Method::Register,
        Class::Error,
        None,
        Box::new(|b| {
            b.error_code(ErrorCode::UNAUTHORIZED, "Unauthorized")?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&e401, [0x03, 0x91], false);
    assert_eq!(
        m.error_code(),
        Some((ErrorCode::UNAUTHORIZED, "Unauthorized"))
    );
    assert_eq!(m.nonce(), Some(NONCE_HEX));

    // 420 listing the unknown comprehension-required types.
    let e420 = enc(
        Method::Register,
        Class::Error,
        Some(KEY),
        Box::new(|b| {
            b.error_code(ErrorCode::UNKNOWN_ATTRIBUTE, "Unknown Attribute")?
                .unknown_attributes(&[0x4C05, 0x7F00, 0x0003])?;
            Ok(())
        }),
    );
    let m = check_frame(&e420, [0x03, 0x91], true);
    assert_eq!(
        m.unknown_attributes().collect::<Vec<_>>(),
        [0x4C05, 0x7F00, 0x0003]
    );
    assert_eq!(m.error_code().unwrap().0, ErrorCode::UNKNOWN_ATTRIBUTE);
}

#[test]
fn cmph_request_indication_success_error() {
    let reserve = enc(
        Method::Cmph,
        Class::Request,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?
                .leg_key(&[0xAB; 20])?
                .rtcp_mode(RtcpMode::None)?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&reserve, [0x02, 0x82], true);
    assert_eq!(m.leg_key(), Some(&[0xAB; 20][..]));
    assert_eq!(m.rtcp_mode(), Some(RtcpMode::None));

    let bind = enc(
        Method::Cmph,
        Class::Request,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?.nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&bind, [0x02, 0x82], true);
    assert_eq!((m.leg_key(), m.rtcp_mode()), (None, None));

    let ind = enc(
        Method::Cmph,
        Class::Indication,
        Some(KEY),
        Box::new(|b| {
            b.username("corp1")?.leg_key(b"k")?.nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&ind, [0x02, 0x92], true);
    assert_eq!(m.leg_key(), Some(&b"k"[..]));

    let ok = enc(
        Method::Cmph,
        Class::Success,
        Some(KEY),
        Box::new(|b| {
            b.xor_mapped_address(sa("[2001:db8::7]:40000"))?
                .xor_relayed_address(sa("203.0.113.1:20000"))?
                .rtcp_mode(RtcpMode::Pair)?
                .lifetime(60)?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&ok, [0x03, 0x82], true);
    assert_eq!(m.xor_mapped_address(), Some(sa("[2001:db8::7]:40000")));
    assert_eq!(m.xor_relayed_address(), Some(sa("203.0.113.1:20000")));
    assert_eq!(
        (m.rtcp_mode(), m.lifetime()),
        (Some(RtcpMode::Pair), Some(60))
    );

    for code in [ErrorCode::ALLOCATION_MISMATCH, ErrorCode::NOT_REGISTERED] {
        let err = enc(
            Method::Cmph,
            Class::Error,
            Some(KEY),
            Box::new(move |b| {
                b.error_code(code, code.reason())?;
                Ok(())
            }),
        );
        let m = check_frame(&err, [0x03, 0x92], true);
        assert_eq!(m.error_code(), Some((code, code.reason())));
    }
}

#[test]
fn binding_messages() {
    let req = enc(Method::Binding, Class::Request, None, Box::new(|_| Ok(())));
    assert_eq!(req.len(), 28, "header + FINGERPRINT");
    check_frame(&req, [0x00, 0x01], false);
    let ind = enc(
        Method::Binding,
        Class::Indication,
        None,
        Box::new(|_| Ok(())),
    );
    check_frame(&ind, [0x00, 0x11], false);
    let ok = enc(
        Method::Binding,
        Class::Success,
        None,
        Box::new(|b| {
            b.xor_mapped_address(sa("192.0.2.1:32853"))?;
            Ok(())
        }),
    );
    let m = check_frame(&ok, [0x01, 0x01], false);
    assert_eq!(m.xor_mapped_address(), Some(sa("192.0.2.1:32853")));
    let err = enc(
        Method::Binding,
        Class::Error,
        None,
        Box::new(|b| {
            b.error_code(ErrorCode::BAD_REQUEST, "Bad Request")?;
            Ok(())
        }),
    );
    check_frame(&err, [0x01, 0x11], false);
}

#[test]
fn address_encoding_matches_rfc5769_vectors() {
    // RFC 5769 §2.2 / §2.3: 192.0.2.1:32853 and 2001:db8:1234:5678:11:2233:4455:6677.
    let id = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);
    let cases: [(&str, &[u8]); 2] = [
        (
            "192.0.2.1:32853",
            &[0, 1, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43],
        ),
        (
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            &[
                0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
                0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
            ],
        ),
    ];
    for (addr, value) in cases {
        let mut buf = [0u8; 128];
        let mut b = Builder::new(&mut buf, Method::Binding, Class::Success, id).unwrap();
        b.xor_mapped_address(sa(addr)).unwrap();
        let n = b.finish(None).unwrap();
        assert_eq!(&buf[24..24 + value.len()], value);
        let m = Message::decode(&buf[..n]).unwrap();
        assert_eq!(m.xor_mapped_address(), Some(sa(addr)));
    }
}

#[test]
fn every_attribute_round_trips() {
    let addrs = [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "10.1.2.3:20000",
        "[::]:0",
        "[::1]:1",
        "[::ffff:192.0.2.9]:5060",
        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
    ];
    for a in addrs {
        for relayed in [false, true] {
            let bytes = enc(
                Method::Cmph,
                Class::Success,
                None,
                Box::new(move |b| {
                    if relayed {
                        b.xor_relayed_address(sa(a))?;
                    } else {
                        b.xor_mapped_address(sa(a))?;
                    }
                    Ok(())
                }),
            );
            let m = Message::decode(&bytes).unwrap();
            let got = if relayed {
                m.xor_relayed_address()
            } else {
                m.xor_mapped_address()
            };
            assert_eq!(got, Some(sa(a)), "{a}");
        }
    }
    for p in Protocol::ALL {
        assert_eq!(Protocol::from_code(p.code()), Some(p));
        let bytes = enc(
            Method::Register,
            Class::Request,
            None,
            Box::new(move |b| {
                b.protocol(p)?;
                Ok(())
            }),
        );
        assert_eq!(&bytes[20..28], &[0x4C, 0x01, 0, 4, p.code(), 0, 0, 0]);
        assert_eq!(Message::decode(&bytes).unwrap().protocol(), Some(p));
    }
    let names: Vec<_> = Protocol::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["SIP", "MGCP", "H.248", "H.323"]);
    for r in RtcpMode::ALL {
        assert_eq!(RtcpMode::from_code(r.code()), Some(r));
        let bytes = enc(
            Method::Cmph,
            Class::Request,
            None,
            Box::new(move |b| {
                b.rtcp_mode(r)?;
                Ok(())
            }),
        );
        assert_eq!(&bytes[20..28], &[0x4C, 0x04, 0, 4, r.code(), 0, 0, 0]);
        assert_eq!(Message::decode(&bytes).unwrap().rtcp_mode(), Some(r));
    }
    assert_eq!(RtcpMode::default(), RtcpMode::Pair);
    // Limits: the longest values the spec allows decode back intact.
    let user = "u".repeat(MAX_USERNAME);
    let nonce = vec![b'~'; MAX_NONCE];
    let domain = "d".repeat(MAX_DOMAIN);
    let sw = "é".repeat(MAX_TEXT_CHARS);
    let reason = "ü".repeat(MAX_TEXT_CHARS);
    let mut buf = vec![0u8; 8192];
    let mut b = Builder::new(&mut buf, Method::Register, Class::Error, ID).unwrap();
    b.username(&user).unwrap().nonce(&nonce).unwrap();
    for _ in 0..MAX_DOMAINS {
        b.domain(&domain).unwrap();
    }
    b.leg_key(&[0; MAX_LEG_KEY])
        .unwrap()
        .lifetime(u32::MAX)
        .unwrap();
    b.software(&sw)
        .unwrap()
        .error_code(ErrorCode(699), &reason)
        .unwrap();
    b.unknown_attributes(&[0x0001]).unwrap();
    let n = b.finish(Some(b"")).unwrap();
    let m = Message::decode(&buf[..n]).unwrap();
    assert_eq!(m.username(), Some(user.as_str()));
    assert_eq!(m.nonce(), Some(&nonce[..]));
    assert_eq!(m.domains().count(), MAX_DOMAINS);
    assert!(m.domains().all(|d| d == domain));
    assert_eq!(m.leg_key(), Some(&[0; MAX_LEG_KEY][..]));
    assert_eq!(m.lifetime(), Some(u32::MAX));
    assert_eq!(m.software(), Some(sw.as_str()));
    assert_eq!(m.error_code(), Some((ErrorCode(699), reason.as_str())));
    assert_eq!(m.unknown_attributes().collect::<Vec<_>>(), [1]);
    m.verify(b"").unwrap();
}

#[test]
fn every_error_code() {
    let table = [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (420, "Unknown Attribute"),
        (437, "Allocation Mismatch"),
        (438, "Stale Nonce"),
        (480, "Not Registered"),
        (486, "Allocation Quota Reached"),
        (500, "Server Error"),
        (508, "Insufficient Capacity"),
    ];
    assert_eq!(ErrorCode::ALL.len(), table.len());
    for (code, (num, reason)) in ErrorCode::ALL.into_iter().zip(table) {
        assert_eq!((code.0, code.reason()), (num, reason));
        let bytes = enc(
            Method::Cmph,
            Class::Error,
            None,
            Box::new(move |b| {
                b.error_code(code, code.reason())?;
                Ok(())
            }),
        );
        assert_eq!(
            &bytes[20..28],
            &[
                0,
                9,
                0,
                (4 + reason.len()) as u8,
                0,
                0,
                (num / 100) as u8,
                (num % 100) as u8
            ]
        );
        assert_eq!(
            Message::decode(&bytes).unwrap().error_code(),
            Some((code, reason))
        );
    }
    assert_eq!(ErrorCode(599).reason(), "Unknown Error");
}

#[test]
fn builder_enforces_limits() {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut b = Builder::new(&mut buf, Method::Register, Class::Request, ID).unwrap();
    let too_long = |attr, len| Err(EncodeError::ValueTooLong { attr, len });
    assert_eq!(b.username("").map(|_| ()).unwrap_err().kind(), "bad_value");
    assert_eq!(
        b.username(&"x".repeat(129)).map(|_| ()),
        too_long(USERNAME, 129)
    );
    assert_eq!(b.nonce(&[b'a'; 129]).map(|_| ()), too_long(NONCE, 129));
    assert!(matches!(
        b.nonce(b"a\x7fb"),
        Err(EncodeError::BadValue { attr: NONCE, .. })
    ));
    assert!(matches!(
        b.nonce(b""),
        Err(EncodeError::BadValue { attr: NONCE, .. })
    ));
    assert_eq!(
        b.domain(&"d".repeat(254)).map(|_| ()),
        too_long(SUBSCRIBER_DOMAIN, 254)
    );
    assert!(b.domain("").is_err());
    assert_eq!(b.leg_key(&[1; 65]).map(|_| ()), too_long(LEG_KEY, 65));
    assert!(b.leg_key(&[]).is_err());
    assert_eq!(
        b.software(&"s".repeat(128)).map(|_| ()),
        too_long(SOFTWARE, 128)
    );
    for bad in [0, 299, 700, 999] {
        assert!(matches!(
            b.error_code(ErrorCode(bad), "x"),
            Err(EncodeError::BadValue {
                attr: ERROR_CODE,
                ..
            })
        ));
    }
    assert_eq!(
        b.error_code(ErrorCode(400), &"r".repeat(128)).map(|_| ()),
        too_long(ERROR_CODE, 128)
    );
    assert!(b.is_empty(), "failed calls leave the builder unchanged");
    for i in 0..MAX_DOMAINS {
        b.domain(&format!("d{i}")).unwrap();
    }
    assert_eq!(
        b.domain("one-too-many").map(|_| ()),
        Err(EncodeError::TooMany {
            attr: SUBSCRIBER_DOMAIN,
            max: MAX_DOMAINS
        })
    );
    let n = b.finish(None).unwrap();
    assert_eq!(Message::decode(&buf[..n]).unwrap().domains().count(), 16);

    let mut small = [0u8; 19];
    assert_eq!(
        Builder::new(&mut small, Method::Binding, Class::Request, ID).map(|_| ()),
        Err(EncodeError::BufferTooSmall { need: 20 })
    );
    let mut small = [0u8; 30];
    let mut b = Builder::new(&mut small, Method::Binding, Class::Request, ID).unwrap();
    assert_eq!(
        b.username("abcdefghi").map(|_| ()),
        Err(EncodeError::BufferTooSmall { need: 36 })
    );
    b.username("abc").unwrap();
    assert_eq!(b.len(), 28);
    assert_eq!(
        b.finish(Some(KEY)),
        Err(EncodeError::BufferTooSmall { need: 72 })
    );
    let mut big = vec![0u8; 70_000];
    let mut b = Builder::new(&mut big, Method::Binding, Class::Request, ID).unwrap();
    assert!(matches!(
        b.unknown_attributes(&[0; 40_000]),
        Err(EncodeError::ValueTooLong { .. })
    ));
    b.unknown_attributes(&[0; 32_000]).unwrap();
    b.unknown_attributes(&[0; 760]).unwrap();
    assert!(matches!(
        b.finish(None),
        Err(EncodeError::MessageTooLong { len: 65_536 })
    ));
}

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
            (0x4C05, b"x"),
            (0x8123, b"optional"),
            (0x0003, b""),
            (0x4C05, b"again"),
            (USERNAME, b"corp1"),
        ],
    );
    let m = Message::decode(&v).unwrap();
    assert_eq!(m.unknown_required(), [0x4C05, 0x0003]);
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
