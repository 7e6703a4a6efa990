//! The messages `pinhole_h323::build` writes: byte for byte what Erlang/OTP's
//! asn1 encoder (compiled from the H.225.0 v6 module) writes for the same
//! values; walked by the ALG's own walker; parsed by the Q.931 layer;
//! decoded and re-encoded identically by the Erlang codec; and, for random
//! inputs, always read back as what they were built from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pinhole_h323::build::{
    CAUSE, CallRef, ReleaseReason, call_proceeding, facility_start_h245, release_complete,
};
use pinhole_h323::per::{Family, Pdu, Walk, walk};
use pinhole_h323::q931::{Message, MessageType, X208};
use pinhole_testkit::erlang_asn1::{self, Kind, Oracle};
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The GUID of the Erlang-encoded references: 01 02 … 10.
const GUID: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn v4() -> SocketAddr {
    "192.0.2.1:1720".parse().unwrap()
}

/// `[2021:2223:…:2e2f]:1720` (octets 0x20 … 0x2F).
fn v6() -> SocketAddr {
    let o: [u8; 16] = std::array::from_fn(|i| 0x20 + i as u8);
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), 1720)
}

/// The User-user data (the PER) of a built Q.931 message, checking the
/// Q.931 framing on the way.
fn per_of(q931: &[u8], kind: MessageType, cr: CallRef) -> Vec<u8> {
    let m = Message::parse(q931).unwrap();
    assert_eq!(m.kind, kind);
    assert_eq!(m.call_reference, 2..4);
    assert_eq!(m.from_destination, cr.from_destination);
    assert_eq!(m.call_reference_value(), u64::from(cr.value & 0x7FFF));
    let uu = m.user_user().unwrap();
    assert_eq!(uu.discriminator, X208);
    assert_eq!(uu.data.end, q931.len(), "User-user is the last element");
    q931[uu.data].to_vec()
}

/// The same values encoded by Erlang/OTP asn1 (`'H323-MESSAGES':encode(
/// 'H323-UserInformation', V)`, the codec `pinhole_testkit::erlang_asn1`
/// builds), with GUID 01…10: the canonical v6 encodings.
#[test]
fn per_is_what_the_erlang_encoder_writes() {
    let cr = CallRef {
        value: 0x1234,
        from_destination: true,
    };
    let cases: Vec<(Vec<u8>, MessageType, &str)> = vec![
        (
            call_proceeding(cr, GUID),
            MessageType::CallProceeding,
            "2180060008914A00040008860011000102030405060708090A0B0C0D0E0F100100010010800100",
        ),
        (
            facility_start_h245(cr, GUID, v4()),
            MessageType::Facility,
            "2680060008914A00048101001F058011000102030405060708090A0B0C0D0E0F100700C000020106B80100010010800100",
        ),
        (
            facility_start_h245(cr, GUID, v6()),
            MessageType::Facility,
            "2680060008914A00048101001F058011000102030405060708090A0B0C0D0E0F101330202122232425262728292A2B2C2D2E2F06B80100010010800100",
        ),
    ];
    let reasons = [
        (
            ReleaseReason::NoBandwidth,
            "25C0060008914A000400880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::GatekeeperResources,
            "25C0060008914A000408880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::UnreachableDestination,
            "25C0060008914A000410880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::DestinationRejection,
            "25C0060008914A000418880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::NoPermission,
            "25C0060008914A000428880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::CalledPartyNotRegistered,
            "25C0060008914A0004820100110011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::SecurityDenied,
            "25C0060008914A0004810100110011000102030405060708090A0B0C0D0E0F1010800100",
        ),
        (
            ReleaseReason::UndefinedReason,
            "25C0060008914A000458880011000102030405060708090A0B0C0D0E0F1010800100",
        ),
    ];
    let mut all = cases;
    for (r, hex) in reasons {
        all.push((
            release_complete(cr, GUID, r),
            MessageType::ReleaseComplete,
            hex,
        ));
    }
    for (q931, kind, hex) in &all {
        assert_eq!(per_of(q931, *kind, cr), unhex(hex), "{kind:?} {hex}");
    }
}

#[test]
fn q931_framing_byte_for_byte() {
    let cr = CallRef {
        value: 0x0001,
        from_destination: false,
    };
    let m = release_complete(cr, GUID, ReleaseReason::UnreachableDestination);
    let per = unhex("25C0060008914A000410880011000102030405060708090A0B0C0D0E0F1010800100");
    let mut want = vec![0x08, 0x02, 0x00, 0x01, 0x5A];
    // Cause: ITU-T coding, location 0010 "public network serving the local
    // user" (Q.850 Table 1; 0001 would be the private one), cause 3.
    want.extend_from_slice(&[0x08, 0x02, 0x82, 0x83]);
    want.extend_from_slice(&[0x7E, 0x00, per.len() as u8 + 1, 0x05]);
    want.extend_from_slice(&per);
    assert_eq!(m, want);

    // The flag is the top bit of the first CRV octet; the value's own top
    // bit is not written.
    let cr = CallRef {
        value: 0xF7F4,
        from_destination: true,
    };
    assert_eq!(cr.octets(), [0xF7, 0xF4]);
    assert_eq!(
        call_proceeding(cr, GUID)[..5],
        [0x08, 0x02, 0xF7, 0xF4, 0x02]
    );
    let cr = CallRef {
        value: 0xF7F4,
        from_destination: false,
    };
    assert_eq!(
        facility_start_h245(cr, GUID, v4())[..5],
        [0x08, 0x02, 0x77, 0xF4, 0x62]
    );
}

#[test]
fn cause_values() {
    let causes: Vec<(ReleaseReason, u8)> =
        ReleaseReason::ALL.iter().map(|r| (*r, r.cause())).collect();
    assert_eq!(
        causes,
        [
            (ReleaseReason::NoBandwidth, 34),
            (ReleaseReason::GatekeeperResources, 34),
            (ReleaseReason::UnreachableDestination, 3),
            (ReleaseReason::DestinationRejection, 21),
            (ReleaseReason::NoPermission, 21),
            (ReleaseReason::CalledPartyNotRegistered, 20),
            (ReleaseReason::SecurityDenied, 21),
            (ReleaseReason::UndefinedReason, 31),
        ]
    );
    for r in ReleaseReason::ALL {
        let q = release_complete(
            CallRef {
                value: 9,
                from_destination: true,
            },
            GUID,
            r,
        );
        let m = Message::parse(&q).unwrap();
        assert_eq!(
            m.ies.iter().map(|e| e.id).collect::<Vec<_>>(),
            [CAUSE, 0x7E]
        );
        let cause = m.ie(CAUSE).unwrap();
        assert_eq!(q[cause.value.clone()], [0x82, 0x80 | r.cause()], "{r:?}");
    }
}

/// What the walker must find in every built message.
fn check_walk(per: &[u8], message: &str, guid: [u8; 16], h245: Option<SocketAddr>) -> Walk {
    let w = walk(Pdu::UserInformation, per).unwrap_or_else(|e| panic!("{message}: {e}"));
    assert_eq!(w.message, message);
    let at = w.call_id_at.expect("callIdentifier");
    assert_eq!(per[at..at + 16], guid);
    let found: Vec<(&str, SocketAddr)> =
        w.addresses.iter().map(|a| (a.field, a.get(per))).collect();
    match h245 {
        Some(a) => {
            assert_eq!(found, [("h245Address", a)]);
            let family = if a.is_ipv4() { Family::V4 } else { Family::V6 };
            assert_eq!(w.addresses[0].family, family);
        }
        None => assert!(found.is_empty(), "{found:?}"),
    }
    assert_eq!(w.value("h245Tunneling", None, ""), Some(0));
    assert!(w.nested.is_empty());
    w
}

#[test]
fn the_walker_reads_what_was_built() {
    let cr = CallRef {
        value: 0x4242,
        from_destination: false,
    };
    let guid = *b"\x00\xff\x10pinhole-h323\x80";
    let cp = call_proceeding(cr, guid);
    check_walk(
        &per_of(&cp, MessageType::CallProceeding, cr),
        "callProceeding",
        guid,
        None,
    );
    for a in [v4(), v6()] {
        let f = facility_start_h245(cr, guid, a);
        let per = per_of(&f, MessageType::Facility, cr);
        let w = check_walk(&per, "facility", guid, Some(a));
        // The ALG's patch in place keeps the message walkable.
        let mut out = per.clone();
        let to = match a {
            SocketAddr::V4(_) => "203.0.113.9:40000".parse().unwrap(),
            SocketAddr::V6(_) => "[2001:db8::9]:40000".parse().unwrap(),
        };
        w.addresses[0].set(&mut out, to).unwrap();
        check_walk(&out, "facility", guid, Some(to));
    }
    for r in ReleaseReason::ALL {
        let rc = release_complete(cr, guid, r);
        check_walk(
            &per_of(&rc, MessageType::ReleaseComplete, cr),
            "releaseComplete",
            guid,
            None,
        );
    }
}

/// A varied set of built messages, with what each holds.
fn variety() -> Vec<(Vec<u8>, &'static str, Option<SocketAddr>)> {
    let mut out = Vec::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..60 {
        let mut guid = [0u8; 16];
        guid[..8].copy_from_slice(&next().to_be_bytes());
        guid[8..].copy_from_slice(&next().to_be_bytes());
        let cr = CallRef {
            value: next() as u16,
            from_destination: i % 2 == 0,
        };
        let r = next();
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(r as u32)), (r >> 32) as u16);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(u128::from(next()) << 64 | u128::from(r))),
            (r >> 48) as u16,
        );
        out.push((call_proceeding(cr, guid), "callProceeding", None));
        out.push((facility_start_h245(cr, guid, v4), "facility", Some(v4)));
        out.push((facility_start_h245(cr, guid, v6), "facility", Some(v6)));
        let reason = ReleaseReason::ALL[i % ReleaseReason::ALL.len()];
        out.push((release_complete(cr, guid, reason), "releaseComplete", None));
    }
    out
}

#[test]
fn the_erlang_codec_decodes_and_reencodes_identically() {
    if !erlang_asn1::available() {
        eprintln!("skipped: erl is not installed (CI installs erlang-base and erlang-asn1)");
        return;
    }
    let mut oracle = Oracle::start().unwrap();
    let cases: Vec<(Vec<u8>, &str, Option<SocketAddr>)> = variety();
    let pers: Vec<Vec<u8>> = cases
        .iter()
        .map(|(q, _, _)| {
            let m = Message::parse(q).unwrap();
            q[m.user_user().unwrap().data].to_vec()
        })
        .collect();
    let requests: Vec<(Kind, &[u8])> = pers
        .iter()
        .map(|p| (Kind::UserInformation, p.as_slice()))
        .collect();
    let reports = oracle.inspect_many(&requests);
    for (((_, message, h245), per), report) in cases.iter().zip(&pers).zip(reports) {
        let report = report.unwrap_or_else(|e| panic!("{message}: {e}"));
        assert!(
            report.reencodes_identically,
            "{message}: re-encodes differently ({:?})",
            report.reencode_differs
        );
        let found: Vec<(&str, SocketAddr)> = report
            .addresses
            .iter()
            .map(|f| (f.field.as_str(), SocketAddr::new(f.ip, f.port)))
            .collect();
        let want: Vec<(&str, SocketAddr)> = h245.iter().map(|a| ("h245Address", *a)).collect();
        assert_eq!(found, want, "{message}");
        if h245.is_some() {
            assert_eq!(
                report.addresses[0].path,
                "h323-uu-pdu.h323-message-body.facility.h245Address"
            );
        }
        // The walker agrees with the codec on the same bytes.
        let w = walk(Pdu::UserInformation, per).unwrap();
        assert_eq!(w.message, *message);
        assert_eq!(w.addresses.len(), found.len());
    }

    // The control: the same CALL PROCEEDING with H323-UU-PDU's extension
    // bitmap cut after its last present addition (2 bits, `0 000001 01`,
    // as an encoder of an older module version writes) decodes to the
    // same value but is not what a v6 encoder writes.
    let cr = CallRef {
        value: 1,
        from_destination: true,
    };
    let full = per_of(&call_proceeding(cr, GUID), MessageType::CallProceeding, cr);
    assert_eq!(full[full.len() - 4..], [0x10, 0x80, 0x01, 0x00]);
    let mut short = full.clone();
    let n = short.len();
    short[n - 4..n - 2].copy_from_slice(&[0x02, 0x80]);
    let a = oracle.inspect(Kind::UserInformation, &full).unwrap();
    let b = oracle.inspect(Kind::UserInformation, &short).unwrap();
    assert_eq!(a.norm, b.norm);
    assert!(a.reencodes_identically);
    assert!(!b.reencodes_identically);
    check_walk(&short, "callProceeding", GUID, None);
}

fn address() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

proptest! {
    #[test]
    fn built_messages_read_back_as_built(
        guid in any::<[u8; 16]>(),
        value in any::<u16>(),
        from_destination in any::<bool>(),
        h245 in address(),
        reason in proptest::sample::select(ReleaseReason::ALL.to_vec()),
    ) {
        let cr = CallRef { value, from_destination };
        let cp = call_proceeding(cr, guid);
        check_walk(&per_of(&cp, MessageType::CallProceeding, cr), "callProceeding", guid, None);
        let f = facility_start_h245(cr, guid, h245);
        check_walk(&per_of(&f, MessageType::Facility, cr), "facility", guid, Some(h245));
        let rc = release_complete(cr, guid, reason);
        check_walk(&per_of(&rc, MessageType::ReleaseComplete, cr), "releaseComplete", guid, None);
        let m = Message::parse(&rc).unwrap();
        prop_assert_eq!(&rc[m.ie(CAUSE).unwrap().value.clone()], &[0x82, 0x80 | reason.cause()][..]);
    }
}
