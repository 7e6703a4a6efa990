//! The walker against rasn, compiled from the same ITU modules
//! (`pinhole-h323-oracle`): on PDUs that rasn's encoder built — every
//! H.225.0 message the ALG handles, every RAS message, H.245 OLC, OLC
//! Ack, CLC, close requests, EndSessionCommand, with IPv4 and IPv6, with
//! fastStart and tunneled H.245 — the walker finds the addresses rasn
//! decodes, and after a patch of all of them rasn decodes the same value
//! with only those addresses changed.

use std::net::SocketAddr;

use pinhole_h323::per::{Family, Pdu, walk};
use pinhole_h323_oracle::{Kind, build as b, inspect};
use proptest::prelude::*;

fn kind(p: Pdu) -> Kind {
    match p {
        Pdu::UserInformation => Kind::UserInformation,
        Pdu::Ras => Kind::Ras,
        Pdu::H245 | Pdu::OpenLogicalChannel => Kind::H245,
    }
}

/// The PER of the User-user element of a built Q.931 message.
fn uu(q931: &[u8]) -> Vec<u8> {
    pinhole_h323_oracle::q931_user_user(q931).unwrap().to_vec()
}

/// Every message kind, with addresses drawn from `at` (its port + i).
fn built(at: SocketAddr) -> Vec<(&'static str, Pdu, Vec<u8>)> {
    let a = |i: u16| SocketAddr::new(at.ip(), at.port().wrapping_add(i));
    let id = [7u8; 16];
    let conf = [9u8; 16];
    let fs = vec![
        b::olc(1, Some(a(1)), None, false),
        b::olc(2, Some(a(1)), Some(a(2)), true),
    ];
    let tunneled = vec![
        b::olc_msg(3, Some(a(3)), None, false),
        b::olc_ack(4, a(4), a(5)),
    ];
    let q = |m: Vec<u8>| uu(&b::q931(0x1234, false, 0x05, &m));
    vec![
        (
            "setup",
            Pdu::UserInformation,
            q(b::setup(
                id,
                conf,
                "alice",
                "bob@corp2.example",
                Some(a(6)),
                Some(a(7)),
                Some(a(8)),
                &fs,
                true,
                &tunneled,
            )),
        ),
        (
            "callProceeding",
            Pdu::UserInformation,
            q(b::call_proceeding(id, Some(a(9)), &fs, false)),
        ),
        (
            "alerting",
            Pdu::UserInformation,
            q(b::alerting(id, Some(a(10)), &fs, true)),
        ),
        (
            "progress",
            Pdu::UserInformation,
            q(b::progress(id, Some(a(11)), &fs, false)),
        ),
        (
            "connect",
            Pdu::UserInformation,
            q(b::connect(id, conf, Some(a(12)), &fs, true, &tunneled)),
        ),
        (
            "facility",
            Pdu::UserInformation,
            q(b::facility(
                id,
                conf,
                Some(a(13)),
                Some(a(14)),
                &fs,
                true,
                &tunneled,
            )),
        ),
        (
            "releaseComplete",
            Pdu::UserInformation,
            q(b::release_complete(id, false)),
        ),
        (
            "openLogicalChannel",
            Pdu::H245,
            b::olc_msg(5, Some(a(15)), None, false),
        ),
        (
            "openLogicalChannel",
            Pdu::H245,
            b::olc_msg(6, Some(a(16)), Some(a(17)), true),
        ),
        (
            "openLogicalChannelAck",
            Pdu::H245,
            b::olc_ack(7, a(18), a(19)),
        ),
        (
            "closeLogicalChannel",
            Pdu::H245,
            b::close_logical_channel(7),
        ),
        (
            "requestChannelClose",
            Pdu::H245,
            b::request_channel_close(7),
        ),
        ("endSessionCommand", Pdu::H245, b::end_session_command()),
        ("terminalCapabilitySet", Pdu::H245, b::tcs(1)),
        ("gatekeeperRequest", Pdu::Ras, b::grq(1, a(20), "alice")),
        ("gatekeeperConfirm", Pdu::Ras, b::gcf(2, a(21), "gk")),
        (
            "registrationRequest",
            Pdu::Ras,
            b::rrq(3, &[a(22), a(23)], &[a(24)], "alice"),
        ),
        ("registrationConfirm", Pdu::Ras, b::rcf(4, &[a(25)], "ep1")),
        (
            "admissionRequest",
            Pdu::Ras,
            b::arq(
                5,
                "ep1",
                id,
                conf,
                0x1234,
                "alice",
                Some(a(26)),
                Some(a(27)),
                false,
            ),
        ),
        ("admissionConfirm", Pdu::Ras, b::acf(6, a(28))),
        ("locationRequest", Pdu::Ras, b::lrq(7, "bob", a(29))),
        ("locationConfirm", Pdu::Ras, b::lcf(8, a(30), a(31))),
        (
            "disengageRequest",
            Pdu::Ras,
            b::drq(9, "ep1", id, conf, 0x1234),
        ),
        ("disengageConfirm", Pdu::Ras, b::dcf(10)),
        ("infoRequest", Pdu::Ras, b::irq(11, 0x1234, Some(a(32)))),
        (
            "infoRequestResponse",
            Pdu::Ras,
            b::irr(12, "ep1", a(33), &[a(34)]),
        ),
        (
            "unregistrationRequest",
            Pdu::Ras,
            b::urq(13, &[a(35)], Some("ep1")),
        ),
        ("unregistrationConfirm", Pdu::Ras, b::ucf(14)),
    ]
}

/// The walker's addresses equal rasn's; a patch of all of them changes
/// nothing else in rasn's decoding. Returns how many addresses.
fn agree(name: &str, pdu: Pdu, per: &[u8]) -> usize {
    let w = walk(pdu, per).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = inspect(kind(pdu), per).unwrap_or_else(|e| panic!("{name}: rasn: {e}"));
    let got: Vec<(String, SocketAddr)> = w
        .addresses
        .iter()
        .map(|a| (a.field.to_string(), a.get(per)))
        .collect();
    let want_list: Vec<(String, SocketAddr)> = want
        .addresses
        .iter()
        .map(|f| (f.field.clone(), SocketAddr::new(f.ip, f.port)))
        .collect();
    assert_eq!(got, want_list, "{name}");
    let mut out = per.to_vec();
    let mut moved = Vec::new();
    for (i, a) in w.addresses.iter().enumerate() {
        let to: SocketAddr = match a.family {
            Family::V4 => format!("192.0.2.{}:{}", 100 + i, 30000 + i)
                .parse()
                .unwrap(),
            Family::V6 => format!("[2001:db8:aa::{}]:{}", 100 + i, 30000 + i)
                .parse()
                .unwrap(),
        };
        a.set(&mut out, to).unwrap();
        moved.push((a.field.to_string(), to));
    }
    let after = inspect(kind(pdu), &out).unwrap_or_else(|e| panic!("{name} patched: {e}"));
    assert_eq!(
        after.norm, want.norm,
        "{name}: the patch changed more than addresses"
    );
    let after_list: Vec<(String, SocketAddr)> = after
        .addresses
        .iter()
        .map(|f| (f.field.clone(), SocketAddr::new(f.ip, f.port)))
        .collect();
    assert_eq!(after_list, moved, "{name}");
    got.len()
}

#[test]
fn every_built_message_walks_as_rasn_decodes_it_v4_and_v6() {
    for at in ["10.1.2.3:5000", "[2001:db8:1::3]:5000"] {
        let mut total = 0;
        for (name, pdu, per) in built(at.parse().unwrap()) {
            let w = walk(pdu, &per).unwrap();
            assert_eq!(w.message, name, "{at}");
            total += agree(name, pdu, &per);
        }
        assert_eq!(total, 57, "{at}");
    }
}

#[test]
fn every_corpus_pdu_walks_as_rasn_decodes_it() {
    let mut total = 0;
    for (name, pdu, per) in super::walk::all_pdus() {
        total += agree(&name, pdu, &per);
    }
    assert_eq!(total, 19);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random addresses and ports, either family, in the messages the
    /// ALG rewrites most.
    #[test]
    fn random_addresses_walk_as_rasn_decodes_them(
        v6 in any::<bool>(),
        octets in any::<[u8; 16]>(),
        port in 1u16..60000,
        pick in 0usize..28,
    ) {
        let ip: std::net::IpAddr = if v6 {
            std::net::Ipv6Addr::from(octets).into()
        } else {
            std::net::Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]).into()
        };
        let all = built(SocketAddr::new(ip, port));
        let (name, pdu, per) = &all[pick];
        agree(name, *pdu, per);
    }
}
