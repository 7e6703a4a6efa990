//! Property tests: arbitrary valid messages round-trip, arbitrary bytes never
//! panic, truncation is always detected.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// Values of one arbitrary message; `None`/empty means "attribute absent".
#[derive(Debug, Clone)]
struct Spec {
    head: (Method, Class, [u8; 12]),
    username: Option<String>,
    protocol: Option<Protocol>,
    domains: Vec<String>,
    leg_key: Option<Vec<u8>>,
    rtcp_mode: Option<RtcpMode>,
    lifetime: Option<u32>,
    nonce: Option<Vec<u8>>,
    software: Option<String>,
    mapped: Option<SocketAddr>,
    relayed: Option<SocketAddr>,
    error: Option<(u16, String)>,
    unknown: Vec<u16>,
    key: Option<Vec<u8>>,
}

fn address() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn spec() -> impl Strategy<Value = Spec> {
    let head = (
        prop::sample::select(vec![Method::Binding, Method::Register, Method::Cmph]),
        prop::sample::select(vec![
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ]),
        any::<[u8; 12]>(),
    );
    let registration = (
        prop::option::of("\\PC{1,32}"),
        prop::option::of(prop::sample::select(Protocol::ALL.to_vec())),
        prop::collection::vec("[a-z0-9.-]{1,63}|\\PC{1,20}", 0..=16),
        prop::option::of(any::<u32>()),
    );
    let media = (
        prop::option::of(prop::collection::vec(any::<u8>(), 1..=64)),
        prop::option::of(prop::sample::select(RtcpMode::ALL.to_vec())),
        prop::option::of(address()),
        prop::option::of(address()),
    );
    let misc = (
        prop::option::of(prop::collection::vec(0x20u8..=0x7E, 1..=128)),
        prop::option::of("\\PC{0,127}"),
        prop::option::of((300u16..700, "\\PC{0,40}")),
        prop::collection::vec(any::<u16>(), 0..20),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
    );
    (head, registration, media, misc).prop_map(|(head, r, m, x)| Spec {
        head,
        username: r.0,
        protocol: r.1,
        domains: r.2,
        lifetime: r.3,
        leg_key: m.0,
        rtcp_mode: m.1,
        mapped: m.2,
        relayed: m.3,
        nonce: x.0,
        software: x.1,
        error: x.2,
        unknown: x.3,
        key: x.4,
    })
}

fn encode(s: &Spec) -> Vec<u8> {
    let mut buf = vec![0u8; 16 * 1024];
    let (method, class, id) = s.head;
    let mut b = Builder::new(&mut buf, method, class, TransactionId(id)).unwrap();
    if let Some(v) = &s.username {
        b.username(v).unwrap();
    }
    if let Some(v) = s.protocol {
        b.protocol(v).unwrap();
    }
    for d in &s.domains {
        b.domain(d).unwrap();
    }
    if let Some(v) = &s.leg_key {
        b.leg_key(v).unwrap();
    }
    if let Some(v) = s.rtcp_mode {
        b.rtcp_mode(v).unwrap();
    }
    if let Some(v) = s.lifetime {
        b.lifetime(v).unwrap();
    }
    if let Some(v) = &s.nonce {
        b.nonce(v).unwrap();
    }
    if let Some(v) = &s.software {
        b.software(v).unwrap();
    }
    if let Some(v) = s.mapped {
        b.xor_mapped_address(v).unwrap();
    }
    if let Some(v) = s.relayed {
        b.xor_relayed_address(v).unwrap();
    }
    if let Some((code, reason)) = &s.error {
        b.error_code(ErrorCode(*code), reason).unwrap();
    }
    if !s.unknown.is_empty() {
        b.unknown_attributes(&s.unknown).unwrap();
    }
    let n = b.finish(s.key.as_deref()).unwrap();
    buf.truncate(n);
    buf
}

proptest! {
    #[test]
    fn arbitrary_messages_round_trip(s in spec()) {
        let bytes = encode(&s);
        prop_assert!(is_control(&bytes));
        let m = Message::decode(&bytes).unwrap();
        let (method, class, id) = s.head;
        prop_assert_eq!((m.method(), m.class(), m.transaction_id()), (method, class, TransactionId(id)));
        prop_assert_eq!(m.username(), s.username.as_deref());
        prop_assert_eq!(m.protocol(), s.protocol);
        prop_assert_eq!(m.domains().collect::<Vec<_>>(), s.domains.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(m.leg_key(), s.leg_key.as_deref());
        prop_assert_eq!(m.rtcp_mode(), s.rtcp_mode);
        prop_assert_eq!(m.lifetime(), s.lifetime);
        prop_assert_eq!(m.nonce(), s.nonce.as_deref());
        prop_assert_eq!(m.software(), s.software.as_deref());
        prop_assert_eq!(m.xor_mapped_address(), s.mapped);
        prop_assert_eq!(m.xor_relayed_address(), s.relayed);
        prop_assert_eq!(m.error_code(), s.error.as_ref().map(|(c, r)| (ErrorCode(*c), r.as_str())));
        prop_assert_eq!(m.unknown_attributes().collect::<Vec<_>>(), s.unknown.clone());
        prop_assert!(m.unknown_required().is_empty());
        prop_assert!(m.has_fingerprint());
        match &s.key {
            Some(key) => {
                prop_assert_eq!(m.verify(key), Ok(()));
                let mut wrong = key.clone();
                wrong.push(1); // not 0: HMAC zero-pads short keys
                prop_assert_eq!(m.verify(&wrong), Err(IntegrityError::Mismatch));
            }
            None => prop_assert_eq!(m.verify(b"k"), Err(IntegrityError::Missing)),
        }
        #[cfg(feature = "fuzzing")]
        crate::fuzzing::control_decode(&bytes);
    }

    #[test]
    fn truncated_messages_are_rejected(s in spec()) {
        let bytes = encode(&s);
        for n in 0..bytes.len() {
            prop_assert!(Message::decode(&bytes[..n]).is_err(), "prefix of {} bytes decoded", n);
            prop_assert!(!is_control(&bytes[..n]));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&data);
        #[cfg(feature = "fuzzing")]
        crate::fuzzing::control_decode(&data);
    }

    /// Random attribute soup inside valid framing reaches the attribute
    /// parser, which a random byte string almost never does.
    #[test]
    fn framed_noise_never_panics(
        ty in prop::sample::select(vec![0x0001u16, 0x0111, 0x0281, 0x0382, 0x0292]),
        attrs in prop::collection::vec(
            (prop::sample::select(vec![
                0x0006u16, 0x0009, 0x000A, 0x000D, 0x0015, 0x0016, 0x001C, 0x0020,
                0x4C01, 0x4C02, 0x4C03, 0x4C04, 0x8022, 0x8028, 0x4C7F, 0x8123,
            ]), prop::collection::vec(any::<u8>(), 0..40)),
            0..8,
        ),
        fingerprint in any::<bool>(),
    ) {
        let refs: Vec<(u16, &[u8])> = attrs.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let mut bytes = raw(ty, &refs);
        if fingerprint {
            add_fp(&mut bytes);
        }
        if let Ok(m) = Message::decode(&bytes) {
            let _ = (m.username(), m.domains().count(), m.error_code(), m.verify(b"k"));
        }
        #[cfg(feature = "fuzzing")]
        crate::fuzzing::control_decode(&bytes);
    }
}
