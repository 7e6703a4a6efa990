//! Cross-checks the control codec against an independent STUN stack,
//! stun-rs 0.1.11: it must decode what we encode and validate
//! MESSAGE-INTEGRITY-SHA256 and FINGERPRINT with the short-term credential
//! (key = the credential string), reject tampered copies, and we must decode
//! and verify what it encodes.
//!
//! stun-rs takes custom methods through `MessageMethod::try_from(0x0C1)` and
//! keeps attributes it does not know (0x4C01–0x4C04, and LIFETIME and
//! XOR-RELAYED-ADDRESS since its `turn` feature is off) as
//! `StunAttribute::Unknown`, so Pinhole messages pass through it unchanged.

use std::net::SocketAddr;

use pinhole_core::wire::{
    Builder, Class, ErrorCode, Message, Method, Protocol, RtcpMode, TransactionId,
};
use stun_rs::attributes::stun::{
    ErrorCode as StunErrorCode, Fingerprint, MessageIntegritySha256, Nonce, Software,
    UnknownAttributes, UserName, XorMappedAddress,
};
use stun_rs::{
    DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    MessageMethod, StunAttribute, StunMessage, StunMessageBuilder,
};

const CREDENTIAL: &str = "corp1-secret";
const ID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const NONCE: &str = "0000000000000258a1b2c3d4e5f60718";

/// stun-rs decoder validating MI-SHA256 and FINGERPRINT with `credential`.
fn stun_decode(bytes: &[u8], credential: &str) -> Result<StunMessage, String> {
    let key = HMACKey::new_short_term(credential).unwrap();
    let ctx = DecoderContextBuilder::default()
        .with_key(key)
        .with_validation()
        .build();
    let decoder = MessageDecoderBuilder::default().with_context(ctx).build();
    let (msg, size) = decoder.decode(bytes).map_err(|e| format!("{e:?}"))?;
    assert_eq!(size, bytes.len());
    Ok(msg)
}

fn encode(method: Method, class: Class, f: impl FnOnce(&mut Builder<'_>)) -> Vec<u8> {
    let mut buf = [0u8; 1280];
    let mut b = Builder::new(&mut buf, method, class, ID).unwrap();
    f(&mut b);
    let n = b.finish(Some(CREDENTIAL.as_bytes())).unwrap();
    buf[..n].to_vec()
}

fn types(msg: &StunMessage) -> Vec<u16> {
    msg.attributes()
        .iter()
        .map(|a| a.attribute_type().as_u16())
        .collect()
}

/// Re-seals FINGERPRINT after tampering, so only integrity can catch it.
fn reseal(v: &mut [u8]) {
    let n = v.len();
    let crc = crc32fast::hash(&v[..n - 8]) ^ 0x5354_554E;
    v[n - 4..].copy_from_slice(&crc.to_be_bytes());
}

/// Checks stun-rs accepts `bytes`, validating MI-SHA256 and FINGERPRINT,
/// and rejects a tampered copy, a re-sealed tampered copy and a wrong key.
fn accepted_and_tamper_rejected(bytes: &[u8]) -> StunMessage {
    let msg = stun_decode(bytes, CREDENTIAL).unwrap();
    let t = types(&msg);
    // Both attributes are present, so stun-rs ran their validation.
    assert_eq!(&t[t.len() - 2..], &[0x001C, 0x8028], "{t:x?}");
    assert!(msg.get::<MessageIntegritySha256>().is_some());
    assert!(msg.get::<Fingerprint>().is_some());
    assert_eq!(msg.transaction_id().as_bytes(), &ID.0);

    assert!(stun_decode(bytes, "corp1-secreT").is_err(), "wrong key");
    for at in [1, 8, 20, 24, bytes.len() - 45] {
        let mut v = bytes.to_vec();
        v[at] ^= 0x04;
        assert!(
            stun_decode(&v, CREDENTIAL).is_err(),
            "FP must catch byte {at}"
        );
        reseal(&mut v);
        assert!(
            stun_decode(&v, CREDENTIAL).is_err(),
            "MI must catch byte {at}"
        );
    }
    msg
}

#[test]
fn example_register_matches_stun_rs() {
    // Same message as wire::tests::example_register (spec §6).
    let bytes = encode(Method::Register, Class::Request, |b| {
        b.username("corp1")
            .unwrap()
            .protocol(Protocol::Sip)
            .unwrap()
            .domain("corp1.example")
            .unwrap()
            .nonce(NONCE.as_bytes())
            .unwrap();
    });
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(hex.ends_with(concat!(
        "001c0020",
        "9842cf53aef189b509737969dac14490347605718336d35190cba1e3f92244a5",
        "80280004",
        "89da38d5",
    )));
    let msg = accepted_and_tamper_rejected(&bytes);
    assert_eq!(msg.method().as_u16(), 0x0C1);
    assert_eq!(msg.class(), MessageClass::Request);
    let user = msg.get::<UserName>().unwrap().as_user_name().unwrap();
    assert_eq!(user.as_str(), "corp1");
    let nonce = msg.get::<Nonce>().unwrap().as_nonce().unwrap();
    assert_eq!(nonce.as_str(), NONCE);
    assert_eq!(
        types(&msg),
        [0x0006, 0x4C01, 0x4C02, 0x0015, 0x001C, 0x8028]
    );
    for a in msg.attributes() {
        if matches!(a.attribute_type().as_u16(), 0x4C01 | 0x4C02) {
            assert!(a.is_unknown(), "custom attributes pass as unknown");
        }
    }
}

/// A padded request (spec §2.3): stun-rs keeps PADDING as an unknown
/// comprehension-optional attribute and validates integrity over it.
#[test]
fn padded_request_validates_in_stun_rs() {
    let bytes = encode(Method::Register, Class::Request, |b| {
        b.username("corp1")
            .unwrap()
            .protocol(Protocol::Sip)
            .unwrap();
        b.pad_to(pinhole_core::wire::ANSWERABLE_LEN, true).unwrap();
    });
    assert_eq!(bytes.len(), pinhole_core::wire::ANSWERABLE_LEN);
    let msg = accepted_and_tamper_rejected(&bytes);
    assert_eq!(types(&msg), [0x0006, 0x4C01, 0xCC01, 0x001C, 0x8028]);
}

#[test]
fn cmph_messages_validate_in_stun_rs() {
    let req = encode(Method::Cmph, Class::Request, |b| {
        b.username("corp1")
            .unwrap()
            .leg_key(&[0xAB; 16])
            .unwrap()
            .rtcp_mode(RtcpMode::Mux)
            .unwrap()
            .nonce(NONCE.as_bytes())
            .unwrap()
            .software("pinhole 0.1")
            .unwrap();
    });
    let msg = accepted_and_tamper_rejected(&req);
    assert_eq!(msg.method().as_u16(), 0x0C2);
    let sw = msg.get::<Software>().unwrap().as_software().unwrap();
    assert_eq!(sw.as_str(), "pinhole 0.1");

    let ind = encode(Method::Cmph, Class::Indication, |b| {
        b.username("corp1")
            .unwrap()
            .nonce(NONCE.as_bytes())
            .unwrap();
    });
    let msg = accepted_and_tamper_rejected(&ind);
    assert_eq!(msg.class(), MessageClass::Indication);

    for mapped in ["198.51.100.9:40000", "[2001:db8::42]:40002"] {
        let mapped: SocketAddr = mapped.parse().unwrap();
        let ok = encode(Method::Cmph, Class::Success, |b| {
            b.xor_mapped_address(mapped)
                .unwrap()
                .xor_relayed_address("203.0.113.1:20000".parse().unwrap())
                .unwrap()
                .rtcp_mode(RtcpMode::Pair)
                .unwrap()
                .lifetime(60)
                .unwrap()
                .nonce(NONCE.as_bytes())
                .unwrap();
        });
        let msg = accepted_and_tamper_rejected(&ok);
        assert_eq!(msg.class(), MessageClass::SuccessResponse);
        let xma = msg.get::<XorMappedAddress>().unwrap();
        assert_eq!(
            *xma.as_xor_mapped_address().unwrap().socket_address(),
            mapped
        );
    }
}

#[test]
fn error_responses_validate_in_stun_rs() {
    for code in ErrorCode::ALL {
        let bytes = encode(Method::Register, Class::Error, |b| {
            b.error_code(code, code.reason()).unwrap();
            if code == ErrorCode::UNKNOWN_ATTRIBUTE {
                b.unknown_attributes(&[0x4C05, 0x7F00, 0x0003]).unwrap();
            }
        });
        let msg = accepted_and_tamper_rejected(&bytes);
        assert_eq!(msg.class(), MessageClass::ErrorResponse);
        let e = msg.get::<StunErrorCode>().unwrap().as_error_code().unwrap();
        assert_eq!(e.error_code().error_code(), code.0);
        assert_eq!(e.error_code().reason(), code.reason());
        if code == ErrorCode::UNKNOWN_ATTRIBUTE {
            let u = msg.get::<UnknownAttributes>().unwrap();
            assert_eq!(
                u.as_unknown_attributes().unwrap().attributes(),
                [0x4C05, 0x7F00, 0x0003]
            );
        }
    }
}

/// The reverse direction: stun-rs encodes, Pinhole decodes and verifies.
/// stun-rs cannot encode unknown attributes, so this covers Binding and the
/// RFC 8489 attributes Pinhole shares with it.
fn stun_encode(method: u16, class: MessageClass, attrs: Vec<StunAttribute>) -> Vec<u8> {
    let mut b = StunMessageBuilder::new(MessageMethod::try_from(method).unwrap(), class)
        .with_transaction_id(stun_rs::TransactionId::from(ID.0));
    for a in attrs {
        b = b.with_attribute(a);
    }
    let key = HMACKey::new_short_term(CREDENTIAL).unwrap();
    let msg = b
        .with_attribute(MessageIntegritySha256::new(key))
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = [0u8; 1280];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .unwrap();
    buf[..n].to_vec()
}

#[test]
fn we_decode_what_stun_rs_encodes() {
    let req = stun_encode(
        0x001,
        MessageClass::Request,
        vec![
            UserName::new("corp1").unwrap().into(),
            Nonce::new(NONCE).unwrap().into(),
            Software::new("stun-rs").unwrap().into(),
        ],
    );
    let m = Message::decode(&req).unwrap();
    assert_eq!((m.method(), m.class()), (Method::Binding, Class::Request));
    assert_eq!(m.transaction_id(), ID);
    assert_eq!(m.username(), Some("corp1"));
    assert_eq!(m.nonce(), Some(NONCE.as_bytes()));
    assert_eq!(m.software(), Some("stun-rs"));
    assert!(m.has_fingerprint());
    m.verify(CREDENTIAL.as_bytes()).unwrap();
    assert!(m.verify(b"other").is_err());

    for addr in [
        "192.0.2.1:32853",
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        let ok = stun_encode(
            0x001,
            MessageClass::SuccessResponse,
            vec![XorMappedAddress::from(addr).into()],
        );
        let m = Message::decode(&ok).unwrap();
        assert_eq!(m.xor_mapped_address(), Some(addr));
        m.verify(CREDENTIAL.as_bytes()).unwrap();
    }

    // A custom method with RFC 8489 attributes: a 401 to a CMPH.
    let err = stun_encode(
        0x0C2,
        MessageClass::ErrorResponse,
        vec![
            StunErrorCode::new(stun_rs::ErrorCode::new(401, "Unauthorized").unwrap()).into(),
            Nonce::new(NONCE).unwrap().into(),
        ],
    );
    let m = Message::decode(&err).unwrap();
    assert_eq!((m.method(), m.class()), (Method::Cmph, Class::Error));
    assert_eq!(
        m.error_code(),
        Some((ErrorCode::UNAUTHORIZED, "Unauthorized"))
    );
    m.verify(CREDENTIAL.as_bytes()).unwrap();

    let mut tampered = err.clone();
    tampered[30] ^= 1;
    assert!(Message::decode(&tampered).is_err(), "FINGERPRINT");
    reseal(&mut tampered);
    let m = Message::decode(&tampered).unwrap();
    assert!(
        m.verify(CREDENTIAL.as_bytes()).is_err(),
        "MESSAGE-INTEGRITY-SHA256"
    );
}
