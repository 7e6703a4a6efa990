//! One test per message of the spec, attribute round trips, error codes.

use super::*;
use crate::wire::attr::*;
use crate::wire::types::message_type;

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
    assert_eq!(m.xor_local_address(), None);

    // A reserve from a client that binds with indications names its own
    // listening address, XORed (a NAT ALG must not find it in the bytes).
    let local = sa("10.2.0.10:9200");
    let reserve = enc(
        Method::Cmph,
        Class::Request,
        Some(KEY),
        Box::new(move |b| {
            b.username("corp2")?
                .leg_key(b"k")?
                .xor_local_address(local)?
                .nonce(NONCE_HEX)?;
            Ok(())
        }),
    );
    let m = check_frame(&reserve, [0x02, 0x82], true);
    assert_eq!(m.xor_local_address(), Some(local));
    assert!(
        !reserve.windows(4).any(|w| w == [10, 2, 0, 10]),
        "the private address is not in the clear"
    );

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

/// Spec §2.3: PADDING brings a finished message to at least the asked
/// length, with or without integrity; it decodes, verifies and is ignored.
#[test]
fn pad_to_reaches_the_asked_length_and_nothing_more() {
    for (integrity, base) in [(false, HEADER_LEN + 8), (true, HEADER_LEN + 44)] {
        for want in [
            0,
            base,
            base + 1,
            base + 3,
            base + 4,
            base + 5,
            120,
            121,
            400,
        ] {
            let mut buf = [0u8; 512];
            let mut b = Builder::new(&mut buf, Method::Register, Class::Request, ID).unwrap();
            b.username("corp1").unwrap();
            let before = b.len();
            b.pad_to(want, integrity).unwrap();
            let key: Option<&[u8]> = integrity.then_some(b"k");
            let n = b.finish(key).unwrap();
            let unpadded = before + (n - before).min(if integrity { 44 } else { 8 });
            if want <= unpadded {
                assert_eq!(n, unpadded, "no PADDING when not needed ({want})");
            } else {
                assert!(n >= want && n < want + 4, "{want} → {n}");
            }
            let m = Message::decode(&buf[..n]).unwrap();
            assert!(m.unknown_required().is_empty());
            assert_eq!(m.username(), Some("corp1"));
            if integrity {
                m.verify(b"k").unwrap();
            }
        }
    }
    assert_eq!(name(PADDING), "PADDING");
    assert!(!is_comprehension_required(PADDING));
}
