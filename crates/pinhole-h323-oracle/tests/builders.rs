//! Every builder round-trips through decode, and [`inspect`] reports exactly the addresses given
//! (IPv4 and IPv6); `norm` masks addresses and nothing else.

use std::net::SocketAddr;

use pinhole_h323_oracle::{
    Kind, access, build, decode_h245, decode_ras, decode_user_information, h225, inspect,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn addrs(kind: Kind, per: &[u8]) -> Vec<(String, SocketAddr)> {
    inspect(kind, per)
        .unwrap_or_else(|e| panic!("{e}"))
        .addresses
        .into_iter()
        .map(|f| (f.field, SocketAddr::new(f.ip, f.port)))
        .collect()
}

fn want(v: &[(&str, SocketAddr)]) -> Vec<(String, SocketAddr)> {
    v.iter().map(|(f, a)| ((*f).to_owned(), *a)).collect()
}

const CALL: [u8; 16] = [0x11; 16];
const CONF: [u8; 16] = [0x22; 16];

/// Both families for each test.
fn families() -> [[SocketAddr; 8]; 2] {
    [
        [
            sa("198.51.100.1:1720"),
            sa("198.51.100.2:1721"),
            sa("198.51.100.3:30000"),
            sa("198.51.100.4:5000"),
            sa("198.51.100.5:5001"),
            sa("198.51.100.6:6000"),
            sa("198.51.100.7:6001"),
            sa("198.51.100.8:1719"),
        ],
        [
            sa("[2001:db8::1]:1720"),
            sa("[2001:db8::2]:1721"),
            sa("[2001:db8::3]:30000"),
            sa("[2001:db8::4]:5000"),
            sa("[2001:db8::5]:5001"),
            sa("[2001:db8::6]:6000"),
            sa("[2001:db8::7]:6001"),
            sa("[2001:db8::8]:1719"),
        ],
    ]
}

#[test]
fn call_signalling_builders() {
    for [h245, src, dst, m1, c1, m2, c2, other] in families() {
        let fast = vec![
            build::olc(1, Some(c1), None, false),
            build::olc(1, Some(c2), Some(m2), true),
        ];
        let ctl = vec![build::olc_ack(2, m1, c1), build::tcs(1)];
        let par = vec![build::olc_msg(3, Some(c2), Some(m2), false)];

        let setup = build::setup_with_parallel(
            CALL,
            CONF,
            "alice",
            "bob",
            Some(h245),
            Some(src),
            Some(dst),
            &fast,
            true,
            &ctl,
            &par,
        );
        let ui = decode_user_information(&setup).unwrap();
        assert_eq!(access::message_name(&ui), "setup");
        assert_eq!(access::call_identifier(&ui), Some(CALL));
        assert_eq!(access::h245_address(&ui), Some(h245));
        assert_eq!(access::fast_start(&ui), fast);
        assert_eq!(access::h245_control(&ui), ctl);
        assert!(access::h245_tunnelling(&ui));
        assert_eq!(
            addrs(Kind::UserInformation, &setup),
            want(&[
                ("h245Address", h245),
                ("destCallSignalAddress", dst),
                ("sourceCallSignalAddress", src),
                ("mediaControlChannel", c1),
                ("mediaChannel", m2),
                ("mediaControlChannel", c2),
                ("mediaChannel", m2),
                ("mediaControlChannel", c2),
                ("mediaChannel", m1),
                ("mediaControlChannel", c1),
            ])
        );
        let plain = build::setup(CALL, CONF, "a", "b", None, None, None, &[], false, &[]);
        assert_eq!(addrs(Kind::UserInformation, &plain), want(&[]));

        let cp = build::call_proceeding(CALL, Some(h245), &fast[..1], false);
        assert_eq!(
            addrs(Kind::UserInformation, &cp),
            want(&[("h245Address", h245), ("mediaControlChannel", c1)])
        );
        let al = build::alerting(CALL, Some(other), &[], true);
        assert_eq!(
            access::message_name(&decode_user_information(&al).unwrap()),
            "alerting"
        );
        assert_eq!(
            addrs(Kind::UserInformation, &al),
            want(&[("h245Address", other)])
        );
        let co = build::connect(CALL, CONF, Some(h245), &fast[1..], true, &ctl[..1]);
        assert_eq!(
            addrs(Kind::UserInformation, &co),
            want(&[
                ("h245Address", h245),
                ("mediaChannel", m2),
                ("mediaControlChannel", c2),
                ("mediaChannel", m1),
                ("mediaControlChannel", c1),
            ])
        );
        let fa = build::facility(CALL, CONF, Some(other), Some(h245), &[], false, &[]);
        assert_eq!(
            addrs(Kind::UserInformation, &fa),
            want(&[("alternativeAddress", other), ("h245Address", h245)])
        );
        let pr = build::progress(CALL, Some(h245), &fast[..1], false);
        assert_eq!(
            addrs(Kind::UserInformation, &pr),
            want(&[("h245Address", h245), ("mediaControlChannel", c1)])
        );
        let rc = build::release_complete(CALL, false);
        assert_eq!(
            access::message_name(&decode_user_information(&rc).unwrap()),
            "releaseComplete"
        );
        assert_eq!(addrs(Kind::UserInformation, &rc), want(&[]));

        // The Q.931 wrapping is what q931_user_user unwraps.
        let q = build::tpkt(&build::q931(7, false, 0x05, &setup));
        let frames = pinhole_h323_oracle::tpkt_frames(&q).unwrap();
        assert_eq!(
            pinhole_h323_oracle::q931_user_user(frames[0]).unwrap(),
            &setup[..]
        );
    }
}

#[test]
fn h245_builders() {
    for [_, _, _, m1, c1, m2, c2, _] in families() {
        let fwd = build::olc(5, Some(c1), Some(m1), false);
        let (ch, f, r) = access::olc_media(&pinhole_h323_oracle::decode_olc(&fwd).unwrap());
        assert_eq!((ch, f, r), (5, Some((Some(m1), Some(c1))), None));
        let rev = build::olc(6, Some(c2), Some(m2), true);
        let (ch, f, r) = access::olc_media(&pinhole_h323_oracle::decode_olc(&rev).unwrap());
        assert_eq!((ch, f, r), (6, None, Some((Some(m2), Some(c2)))));

        let msg = build::olc_msg(5, Some(c1), None, false);
        assert_eq!(
            access::h245_name(&decode_h245(&msg).unwrap()),
            "request.openLogicalChannel"
        );
        assert_eq!(
            addrs(Kind::H245, &msg),
            want(&[("mediaControlChannel", c1)])
        );

        let ack = build::olc_ack(5, m2, c2);
        let m = decode_h245(&ack).unwrap();
        assert_eq!(access::h245_name(&m), "response.openLogicalChannelAck");
        let pinhole_h323_oracle::h245::MultimediaSystemControlMessage::response(
            pinhole_h323_oracle::h245::ResponseMessage::openLogicalChannelAck(a),
        ) = &m
        else {
            panic!()
        };
        assert_eq!(access::olc_ack_media(a), (5, (Some(m2), Some(c2))));
        assert_eq!(
            addrs(Kind::H245, &ack),
            want(&[("mediaChannel", m2), ("mediaControlChannel", c2)])
        );
    }
    for (bytes, name) in [
        (
            build::close_logical_channel(5),
            "request.closeLogicalChannel",
        ),
        (
            build::close_logical_channel_ack(5),
            "response.closeLogicalChannelAck",
        ),
        (
            build::request_channel_close(5),
            "request.requestChannelClose",
        ),
        (build::end_session_command(), "command.endSessionCommand"),
        (build::tcs(1), "request.terminalCapabilitySet"),
        (build::tcs_ack(1), "response.terminalCapabilitySetAck"),
        (build::msd(50, 12345), "request.masterSlaveDetermination"),
        (build::msd_ack(true), "response.masterSlaveDeterminationAck"),
    ] {
        assert_eq!(access::h245_name(&decode_h245(&bytes).unwrap()), name);
        assert_eq!(addrs(Kind::H245, &bytes), want(&[]));
    }
}

/// Expected (field, address) list.
type Expected<'a> = Vec<(&'a str, SocketAddr)>;

#[test]
fn ras_builders() {
    for [a, b, c, d, ..] in families() {
        let cases: Vec<(Vec<u8>, &str, Expected<'_>)> = vec![
            (
                build::grq(1, a, "ep"),
                "gatekeeperRequest",
                vec![("rasAddress", a)],
            ),
            (
                build::gcf(1, b, "gk"),
                "gatekeeperConfirm",
                vec![("rasAddress", b)],
            ),
            (
                build::rrq(2, &[a, c], &[b], "ep"),
                "registrationRequest",
                vec![
                    ("callSignalAddress", a),
                    ("callSignalAddress", c),
                    ("rasAddress", b),
                ],
            ),
            (
                build::rcf(2, &[c], "ep-1"),
                "registrationConfirm",
                vec![("callSignalAddress", c)],
            ),
            (
                build::arq(3, "ep-1", CALL, CONF, 7, "alice", Some(d), Some(a), false),
                "admissionRequest",
                vec![("destCallSignalAddress", d), ("srcCallSignalAddress", a)],
            ),
            (
                build::acf(3, d),
                "admissionConfirm",
                vec![("destCallSignalAddress", d)],
            ),
            (
                build::lrq(4, "bob", a),
                "locationRequest",
                vec![("replyAddress", a)],
            ),
            (
                build::lcf(4, c, b),
                "locationConfirm",
                vec![("callSignalAddress", c), ("rasAddress", b)],
            ),
            (
                build::drq(5, "ep-1", CALL, CONF, 7),
                "disengageRequest",
                vec![],
            ),
            (build::dcf(5), "disengageConfirm", vec![]),
            (
                build::irq(6, 7, Some(b)),
                "infoRequest",
                vec![("replyAddress", b)],
            ),
            (
                build::irr(6, "ep-1", b, &[a]),
                "infoRequestResponse",
                vec![("rasAddress", b), ("callSignalAddress", a)],
            ),
            (
                build::urq(7, &[a], Some("ep-1")),
                "unregistrationRequest",
                vec![("callSignalAddress", a)],
            ),
            (build::ucf(7), "unregistrationConfirm", vec![]),
        ];
        for (bytes, name, expected) in cases {
            assert_eq!(access::ras_name(&decode_ras(&bytes).unwrap()), name);
            assert_eq!(addrs(Kind::Ras, &bytes), want(&expected), "{name}");
        }
    }
}

/// Offsets of `needle` in `hay`.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn norm_masks_addresses_only() {
    for v6 in [false, true] {
        let (h245, media, ctl) = if v6 {
            (
                sa("[2001:db8::a1]:1234"),
                sa("[2001:db8::b2]:4000"),
                sa("[2001:db8::c3]:4001"),
            )
        } else {
            (
                sa("192.0.2.161:1234"),
                sa("192.0.2.178:4000"),
                sa("192.0.2.195:4001"),
            )
        };
        let fast = vec![build::olc(1, Some(ctl), Some(media), true)];
        let per = build::setup(
            CALL,
            CONF,
            "alice",
            "bob",
            Some(h245),
            None,
            None,
            &fast,
            false,
            &[],
        );
        let orig = inspect(Kind::UserInformation, &per).unwrap();

        // An address byte, top level (h245Address) and nested (fastStart mediaChannel): the
        // ip is octet-aligned and verbatim in the PER, the port the 2 octets after it.
        for (addr, index) in [(h245, 0), (media, 1)] {
            let ip = match addr.ip() {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            };
            let at = find_all(&per, &ip);
            assert_eq!(at.len(), 1);
            for off in [at[0] + ip.len() - 1, at[0] + ip.len() + 1] {
                let mut p = per.clone();
                p[off] ^= 0x01;
                let r = inspect(Kind::UserInformation, &p).unwrap();
                assert_eq!(r.norm, orig.norm, "v6={v6} byte {off}");
                assert_ne!(r.addresses[index], orig.addresses[index]);
                let mut same = r.addresses.clone();
                same[index] = orig.addresses[index].clone();
                assert_eq!(same, orig.addresses, "only that address changed");
            }
        }

        // A non-address byte: the call identifier GUID, and the alias text.
        let at = find_all(&per, &CALL);
        assert_eq!(at.len(), 1);
        let mut p = per.clone();
        p[at[0] + 3] ^= 0x40;
        let r = inspect(Kind::UserInformation, &p).unwrap();
        assert_ne!(r.norm, orig.norm);
        assert_eq!(r.addresses, orig.addresses);

        let at = find_all(&per, &[0, b'a', 0, b'l', 0, b'i']);
        assert_eq!(at.len(), 1);
        let mut p = per.clone();
        p[at[0] + 1] ^= 0x02;
        assert_ne!(inspect(Kind::UserInformation, &p).unwrap().norm, orig.norm);
    }
}

/// Flipping any single bit outside the addresses changes the decoded value (or breaks the
/// decode), apart from PER padding bits, which decoders ignore.
#[test]
fn bit_flips_outside_addresses_are_seen() {
    let fast = vec![build::olc(
        1,
        Some(sa("192.0.2.5:4001")),
        Some(sa("192.0.2.5:4000")),
        true,
    )];
    let per = build::setup(
        CALL,
        CONF,
        "alice",
        "bob",
        Some(sa("192.0.2.1:1234")),
        Some(sa("192.0.2.2:1720")),
        Some(sa("192.0.2.3:1720")),
        &fast,
        false,
        &[],
    );
    let orig = inspect(Kind::UserInformation, &per).unwrap();
    let mut masked = vec![false; per.len()];
    for ip in [
        [192, 0, 2, 1],
        [192, 0, 2, 2],
        [192, 0, 2, 3],
        [192, 0, 2, 5],
    ] {
        for at in find_all(&per, &ip) {
            masked[at..at + 6].iter_mut().for_each(|m| *m = true);
        }
    }
    let mut unseen = Vec::new();
    for bit in 0..per.len() * 8 {
        if masked[bit / 8] {
            continue;
        }
        let mut p = per.clone();
        p[bit / 8] ^= 0x80 >> (bit % 8);
        match inspect(Kind::UserInformation, &p) {
            Ok(r) if r.norm == orig.norm => unseen.push(bit),
            _ => {}
        }
    }
    // Each unseen bit must be a padding bit: re-encoding the decoded value (the fastStart
    // elements too, which the outer encoding carries as opaque octets) gives the original.
    let canonical = |p: &[u8]| {
        let mut v = decode_user_information(p).unwrap();
        let h225::H323UUPDUH323MessageBody::setup(s) = &mut v.h323_uu_pdu.h323_message_body else {
            panic!()
        };
        for e in s.fast_start.as_mut().unwrap() {
            let olc = pinhole_h323_oracle::decode_olc(e).unwrap();
            *e = pinhole_h323_oracle::encode(&olc).unwrap().into();
        }
        pinhole_h323_oracle::encode(&v).unwrap()
    };
    assert_eq!(canonical(&per), per);
    for bit in &unseen {
        let mut p = per.clone();
        p[bit / 8] ^= 0x80 >> (bit % 8);
        assert_eq!(canonical(&p), per, "bit {bit}");
    }
    eprintln!(
        "{} of {} non-address bits are padding",
        unseen.len(),
        per.len() * 8
    );
}

#[test]
fn a_bad_nested_pdu_is_an_error_naming_its_path() {
    let per = build::setup(
        CALL,
        CONF,
        "a",
        "b",
        None,
        None,
        None,
        &[vec![0xff; 3]],
        false,
        &[],
    );
    let e = inspect(Kind::UserInformation, &per).unwrap_err();
    assert!(e.contains("setup.fastStart[0]"), "{e}");
    let per = build::connect(CALL, CONF, None, &[], true, &[build::tcs(1), vec![0xff; 2]]);
    let e = inspect(Kind::UserInformation, &per).unwrap_err();
    assert!(e.contains("h245Control[1]"), "{e}");
}
