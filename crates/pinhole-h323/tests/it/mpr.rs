//! The MPR's H.323 ALG on its own, with a real MPR engine and two networks
//! registered without NAT, driven by messages rasn's encoder built (the
//! terminals' side, nobody here wrote the codec): the Fig. 16 ladder at the
//! MPR with H.245 on its own connections, with fastStart, and with H.245
//! tunneled; refusals.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::alg::live::{LiveMpr, NoSockets, register_direct};
use pinhole_core::alg::{AlgEvent, MprSignaling};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::types::{ConnId, Flow, Receive, Transmit, Transport};
use pinhole_core::wire::Protocol;
use pinhole_h323::alg::{Mpr, MprConfig};
use pinhole_h323::q931;
use pinhole_h323_oracle::{
    Kind, access, build as b, decode_h245, decode_user_information, inspect,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:1720";
/// The networks' signaling pinholes (no NAT: the APS or terminal itself).
const NET1: &str = "10.1.0.2:1720";
const NET2: &str = "10.2.0.2:1720";
/// Terminal A's and B's own addresses (inside).
const A_H245: &str = "10.1.0.2:1300";
const A_CSA: &str = "10.1.0.2:1720";
const A_RTP: &str = "10.1.0.2:5000";
const A_RTCP: &str = "10.1.0.2:5001";
const B_H245: &str = "10.2.0.2:1400";
const B_RTP: &str = "10.2.0.2:6000";
const B_RTCP: &str = "10.2.0.2:6001";

const GUID: [u8; 16] = [0x42; 16];
const CONF: [u8; 16] = [0x43; 16];
const CRV_A: u16 = 0x0101;

fn pool() -> Vec<SocketAddr> {
    (1730..1734)
        .map(|p| SocketAddr::new(sa(MPR).ip(), p))
        .collect()
}

fn register(
    now: Instant,
    engine: &mut mpr::Engine,
    id: &str,
    at: &str,
    domain: &str,
) -> client::Engine {
    let mut cc = client::Config::new(
        id,
        b"s".to_vec(),
        Protocol::H323,
        sa(at),
        sa(MPR),
        [id.bytes().last().unwrap_or_default(); 32],
    );
    cc.domains = vec![domain.into()];
    let mut cl = client::Engine::new(cc, now).unwrap();
    assert!(register_direct(now, engine, &mut cl));
    cl
}

/// One decoded transmit.
#[derive(Debug)]
struct Out {
    to: SocketAddr,
    flow: Flow,
    /// The Q.931 message, or the H.245 PDU.
    payload: Vec<u8>,
}

impl Out {
    fn q931(&self) -> q931::Message<'_> {
        q931::Message::parse(&self.payload).unwrap()
    }

    fn uuie(&self) -> pinhole_h323_oracle::h225::H323UserInformation {
        decode_user_information(pinhole_h323_oracle::q931_user_user(&self.payload).unwrap())
            .unwrap()
    }

    fn name(&self) -> String {
        if self.payload.first() == Some(&0x08) {
            access::message_name(&self.uuie())
        } else {
            access::h245_name(&decode_h245(&self.payload).unwrap())
        }
    }

    /// Every address in it, as rasn decodes them.
    fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let (kind, per) = if self.payload.first() == Some(&0x08) {
            (
                Kind::UserInformation,
                pinhole_h323_oracle::q931_user_user(&self.payload).unwrap(),
            )
        } else {
            (Kind::H245, &self.payload[..])
        };
        inspect(kind, per)
            .unwrap()
            .addresses
            .into_iter()
            .map(|f| (f.field, SocketAddr::new(f.ip, f.port)))
            .collect()
    }

    fn address(&self, field: &str) -> SocketAddr {
        self.addresses()
            .into_iter()
            .find(|(f, _)| f == field)
            .unwrap_or_else(|| panic!("no {field} in {}", self.name()))
            .1
    }
}

struct Bed {
    now: Instant,
    engine: mpr::Engine,
    alg: Mpr,
    _clients: Vec<client::Engine>,
}

impl Bed {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
        mc.control_ports = vec![1720];
        for id in ["corp1", "corp2"] {
            mc.networks.push(mpr::NetworkConfig::new(id, b"s".to_vec()));
        }
        let mut engine = mpr::Engine::new(mc, now).unwrap();
        let c1 = register(now, &mut engine, "corp1", NET1, "corp1.example");
        let c2 = register(now, &mut engine, "corp2", NET2, "corp2.example");
        let alg = Mpr::new(MprConfig::new(sa(MPR), pool(), [3; 32]));
        Self {
            now,
            engine,
            alg,
            _clients: vec![c1, c2],
        }
    }

    /// Hands the ALG one TPKT frame of `payload` from `remote` on `local`
    /// over TCP connection `conn`; what it sends.
    fn rx(&mut self, local: SocketAddr, remote: SocketAddr, conn: u64, payload: &[u8]) -> Vec<Out> {
        let frame = b::tpkt(payload);
        let mut relay = NoSockets;
        let mut ctx = LiveMpr::new(&mut self.engine, &mut relay);
        self.alg.handle_datagram(
            self.now,
            &mut ctx,
            Receive {
                local,
                remote,
                bytes: &frame,
                flow: Flow::conn(Transport::Tcp, ConnId(conn)),
            },
        );
        let mut out = Vec::new();
        while let Some(Transmit {
            remote,
            payload,
            flow,
            ..
        }) = self.alg.poll_transmit()
        {
            let p = q931::tpkt_payload(&payload).unwrap().to_vec();
            out.push(Out {
                to: remote,
                flow,
                payload: p,
            });
        }
        out
    }

    fn a_sends(&mut self, q931: &[u8]) -> Vec<Out> {
        self.rx(sa(MPR), sa(NET1), 1, q931)
    }

    fn b_sends(&mut self, q931: &[u8]) -> Vec<Out> {
        self.rx(sa(MPR), sa(NET2), 2, q931)
    }

    fn events(&mut self) -> Vec<AlgEvent> {
        std::iter::from_fn(|| self.alg.poll_event()).collect()
    }
}

fn setup(h245: Option<SocketAddr>, fast_start: &[Vec<u8>], tunnel: bool) -> Vec<u8> {
    let per = b::setup(
        GUID,
        CONF,
        "alice",
        "bob@corp2.example",
        h245,
        Some(sa(A_CSA)),
        None,
        fast_start,
        tunnel,
        &[],
    );
    b::q931(CRV_A, false, 0x05, &per)
}

fn in_net(a: SocketAddr, net: &str) -> bool {
    match (a.ip(), sa(net).ip()) {
        (IpAddr::V4(x), IpAddr::V4(n)) => x.octets()[..2] == n.octets()[..2],
        _ => false,
    }
}

/// No message toward one side names an address of the other's network.
fn assert_hidden(outs: &[Out]) {
    for o in outs {
        let other = if in_net(o.to, NET1) { NET2 } else { NET1 };
        for (field, a) in o.addresses() {
            assert!(
                !in_net(a, other),
                "{} to {}: {field}={a} leaks the other network",
                o.name(),
                o.to
            );
        }
    }
}

/// Fig. 16 at the MPR, H.245 on its own connections (steps 1504–1538).
#[test]
fn fig16_separate_h245_every_connection_toward_the_mpr() {
    let mut bed = Bed::new();
    // 1504: A's Setup, offering its own H.245 address.
    let outs = bed.a_sends(&setup(Some(sa(A_H245)), &[], false));
    assert_hidden(&outs);
    let names: Vec<_> = outs.iter().map(|o| (o.to, o.name())).collect();
    assert_eq!(
        names,
        [
            (sa(NET2), "setup".to_string()),          // 1506
            (sa(NET1), "callProceeding".to_string()), // 1508
            (sa(NET1), "facility".to_string()), // startH245: A listens, so it is asked to connect
        ]
    );
    let (fwd, cp, fac) = (&outs[0], &outs[1], &outs[2]);
    // Back down A's connection; into corp2 by its registration's flow.
    assert_eq!(cp.flow, Flow::conn(Transport::Tcp, ConnId(1)));
    assert_eq!(fac.flow, cp.flow);
    assert_eq!(
        fwd.flow.conn, None,
        "registered over UDP here: the route's flow"
    );
    assert_eq!(cp.q931().call_reference_value(), u64::from(CRV_A));
    assert!(cp.q931().from_destination);
    assert_eq!(access::call_identifier(&cp.uuie()), Some(GUID));
    let crv_b = fwd.q931().call_reference_value();
    assert_ne!(crv_b, u64::from(CRV_A));
    assert!(!fwd.q931().from_destination);
    // B is told to connect to a pool address; A to another one.
    let b_lease = fwd.address("h245Address");
    let a_lease = fac.address("h245Address");
    assert!(pool().contains(&b_lease) && pool().contains(&a_lease) && a_lease != b_lease);
    assert_eq!(fwd.address("sourceCallSignalAddress").ip(), sa(MPR).ip());
    assert_eq!(fac.q931().call_reference_value(), u64::from(CRV_A));
    assert_eq!(bed.alg.leases(), 2);

    // 1510–1514: B's CallProceeding is the MPR's to give (dropped); its
    // Alerting and Connect go to A with A's call reference.
    let bq = |t: u8, per: Vec<u8>| b::q931(crv_b as u16, true, t, &per);
    assert!(
        bed.b_sends(&bq(0x02, b::call_proceeding(GUID, None, &[], false)))
            .is_empty()
    );
    let outs = bed.b_sends(&bq(0x01, b::alerting(GUID, None, &[], false)));
    assert_eq!(outs.len(), 1);
    assert_eq!(
        (outs[0].to, outs[0].name().as_str()),
        (sa(NET1), "alerting")
    );
    assert_eq!(outs[0].q931().call_reference_value(), u64::from(CRV_A));
    let outs = bed.b_sends(&bq(0x07, b::connect(GUID, CONF, None, &[], false, &[])));
    assert_eq!(outs[0].name(), "connect");

    // H.245: A connects to its lease from its network's IP; its TCS waits
    // for B, who connects to its own.
    let a_conn = SocketAddr::new(sa(NET1).ip(), 40001);
    let b_conn = SocketAddr::new(sa(NET2).ip(), 40002);
    assert!(bed.rx(a_lease, a_conn, 11, &b::tcs(1)).is_empty());
    let outs = bed.rx(b_lease, b_conn, 12, &b::tcs(1));
    let to: Vec<_> = outs.iter().map(|o| (o.to, o.name())).collect();
    assert_eq!(
        to,
        [
            (b_conn, "request.terminalCapabilitySet".to_string()), // A's, held
            (a_conn, "request.terminalCapabilitySet".to_string()), // B's
        ]
    );
    assert_eq!(bed.alg.leases(), 0);
    assert_eq!(outs[0].flow, Flow::conn(Transport::Tcp, ConnId(12)));
    assert_eq!(outs[1].flow, Flow::conn(Transport::Tcp, ConnId(11)));

    // 1528–1530: A's OLC names its RTCP; B gets a relay address.
    let outs = bed.rx(
        a_lease,
        a_conn,
        11,
        &b::olc_msg(1, Some(sa(A_RTCP)), None, false),
    );
    assert_eq!(outs[0].to, b_conn);
    let relay_a_rtcp = outs[0].address("mediaControlChannel");
    assert_eq!(relay_a_rtcp.ip(), sa(MPR).ip());
    // 1536–1538: B's Ack names where B takes RTP and RTCP; A gets relay
    // addresses, an RTP/RTCP pair.
    let outs = bed.rx(b_lease, b_conn, 12, &b::olc_ack(1, sa(B_RTP), sa(B_RTCP)));
    assert_eq!(outs[0].to, a_conn);
    let (r, c) = (
        outs[0].address("mediaChannel"),
        outs[0].address("mediaControlChannel"),
    );
    assert_eq!(r.ip(), sa(MPR).ip());
    assert_eq!(c.port(), r.port() + 1);
    // And the other direction: B's OLC, A's Ack.
    let outs = bed.rx(
        b_lease,
        b_conn,
        12,
        &b::olc_msg(1, Some(sa(B_RTCP)), None, false),
    );
    assert_eq!(
        outs[0].address("mediaControlChannel"),
        c,
        "B's RTCP relay address is stable"
    );
    let outs = bed.rx(a_lease, a_conn, 11, &b::olc_ack(1, sa(A_RTP), sa(A_RTCP)));
    let a_rtp_relay = outs[0].address("mediaChannel");
    assert_eq!(a_rtp_relay.ip(), sa(MPR).ip());
    assert_eq!(outs[0].address("mediaControlChannel"), relay_a_rtcp);
    let events = bed.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AlgEvent::CallAnchored { .. })),
        "{events:?}"
    );
    // Offer (A's OLC), answer (B's Ack), A's Ack naming its RTP port; B's OLC
    // repeats what B said: no new plan.
    assert_eq!(bed.alg.stats().media_rewritten, 3);

    // Release: forwarded, the call and its media gone.
    let outs = bed.a_sends(&b::q931(
        CRV_A,
        false,
        0x5a,
        &b::release_complete(GUID, false),
    ));
    assert_eq!(
        (outs[0].to, outs[0].name().as_str()),
        (sa(NET2), "releaseComplete")
    );
    assert_eq!(bed.alg.calls(), 0);
    assert!(
        bed.events()
            .iter()
            .any(|e| matches!(e, AlgEvent::CallEnded { .. }))
    );
}

/// fastStart: the Setup's proposals and the Connect's answer carry the
/// media; the callee's echo of the caller's address goes back as the
/// caller's own.
#[test]
fn fast_start_offer_and_answer_with_the_echo_restored() {
    let mut bed = Bed::new();
    let proposals = vec![
        b::olc(1, Some(sa(A_RTCP)), None, false),
        b::olc(2, Some(sa(A_RTCP)), Some(sa(A_RTP)), true),
    ];
    let outs = bed.a_sends(&setup(None, &proposals, false));
    assert_eq!(outs.len(), 2, "no h245Address: no FACILITY");
    let fwd = &outs[0];
    assert_hidden(&outs);
    let media = fwd.addresses();
    let relay_rtcp = media[1].1;
    let relay_rtp = media.iter().find(|(f, _)| f == "mediaChannel").unwrap().1;
    assert_eq!(relay_rtcp.ip(), sa(MPR).ip());
    assert_eq!(relay_rtcp.port(), relay_rtp.port() + 1);
    let crv_b = fwd.q931().call_reference_value() as u16;
    // B accepts: its receive address for A's channel, and the reverse
    // channel echoing where it will send (the relay address it was given).
    let answer = vec![
        b::olc(1, Some(sa(B_RTCP)), Some(sa(B_RTP)), false),
        b::olc(2, Some(sa(B_RTCP)), Some(relay_rtp), true),
    ];
    let outs = bed.b_sends(&b::q931(
        crv_b,
        true,
        0x07,
        &b::connect(GUID, CONF, None, &answer, false, &[]),
    ));
    assert_hidden(&outs);
    let got = outs[0].addresses();
    let channels: Vec<_> = got
        .iter()
        .filter(|(f, _)| f == "mediaChannel")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(channels.len(), 2);
    assert_eq!(
        channels[0].ip(),
        sa(MPR).ip(),
        "B's own address becomes a relay address"
    );
    assert_eq!(
        channels[1],
        sa(A_RTP),
        "the echo of A's address is A's own again"
    );
}

/// Tunneled H.245 (h245Control in a FACILITY) is rewritten in place too.
#[test]
fn tunneled_h245_is_rewritten_in_place() {
    let mut bed = Bed::new();
    let outs = bed.a_sends(&setup(None, &[], true));
    let crv_b = outs[0].q931().call_reference_value() as u16;
    let tunneled = vec![b::olc_msg(1, Some(sa(A_RTCP)), None, false)];
    let fac = b::facility(GUID, CONF, None, None, &[], true, &tunneled);
    let outs = bed.a_sends(&b::q931(CRV_A, false, 0x62, &fac));
    assert_eq!(outs[0].to, sa(NET2));
    assert_eq!(outs[0].q931().call_reference_value(), u64::from(crv_b));
    let rtcp = outs[0].address("mediaControlChannel");
    assert_eq!(rtcp.ip(), sa(MPR).ip());
    let ack = vec![b::olc_ack(1, sa(B_RTP), sa(B_RTCP))];
    let fac = b::facility(GUID, CONF, None, None, &[], true, &ack);
    let outs = bed.b_sends(&b::q931(crv_b, true, 0x62, &fac));
    assert_eq!(outs[0].to, sa(NET1));
    assert_eq!(outs[0].address("mediaChannel").ip(), sa(MPR).ip());
    assert_hidden(&outs);
}

/// A Setup nobody serves is released; an H.245 connection from another
/// IP than the leased side's is refused.
#[test]
fn refusals() {
    let mut bed = Bed::new();
    let per = b::setup(
        GUID,
        CONF,
        "alice",
        "carol@nowhere.example",
        None,
        None,
        None,
        &[],
        false,
        &[],
    );
    let outs = bed.a_sends(&b::q931(CRV_A, false, 0x05, &per));
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].name(), "releaseComplete");
    assert_eq!(bed.alg.calls(), 0);
    assert_eq!(bed.alg.stats().refused, 1);

    let outs = bed.a_sends(&setup(Some(sa(A_H245)), &[], false));
    let lease = outs[0].address("h245Address");
    let stranger = sa("198.51.100.66:40000");
    assert!(bed.rx(lease, stranger, 99, &b::tcs(1)).is_empty());
    assert_eq!(bed.alg.stats().h245_refused, 1);
    assert_eq!(bed.alg.leases(), 2, "the lease still waits for its side");
    let _ = B_H245;
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Frames a call goes through, rasn-built, to damage.
    fn frames() -> Vec<Vec<u8>> {
        let fs = vec![b::olc(1, Some(sa(A_RTCP)), None, false)];
        vec![
            setup(Some(sa(A_H245)), &fs, true),
            b::q931(
                CRV_A,
                false,
                0x62,
                &b::facility(
                    GUID,
                    CONF,
                    None,
                    Some(sa(A_H245)),
                    &fs,
                    true,
                    &[b::olc_ack(1, sa(A_RTP), sa(A_RTCP))],
                ),
            ),
            b::q931(CRV_A, false, 0x5a, &b::release_complete(GUID, false)),
            b::olc_msg(1, Some(sa(A_RTCP)), None, false),
            b::olc_ack(1, sa(B_RTP), sa(B_RTCP)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Damaged frames from a network, from the public side and on an
        /// H.245 listener, after a real Setup: never a panic, and every
        /// frame the MPR sends is a whole TPKT frame that walks.
        #[test]
        fn damaged_frames_never_panic_and_what_leaves_walks(
            picks in proptest::collection::vec((0usize..5, 0u8..3, proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), any::<Option<prop::sample::Index>>()), 1..6),
        ) {
            let mut bed = Bed::new();
            let outs = bed.a_sends(&setup(Some(sa(A_H245)), &[], false));
            let lease = outs[0].address("h245Address");
            let all = frames();
            for (pick, from, flips, cut) in picks {
                let mut f = all[pick].clone();
                for (at, x) in flips {
                    let i = at.index(f.len());
                    f[i] ^= x;
                }
                if let Some(c) = cut {
                    f.truncate(c.index(f.len()).max(1));
                }
                let outs = match from {
                    0 => bed.a_sends(&f),
                    1 => bed.rx(sa(MPR), sa("192.0.2.77:40000"), 5, &f),
                    _ => bed.rx(lease, SocketAddr::new(sa(NET2).ip(), 40002), 12, &f),
                };
                for o in outs {
                    let walks = if o.payload.first() == Some(&0x08) {
                        pinhole_h323::signal::Signal::call_signaling(&o.payload).is_ok()
                    } else {
                        pinhole_h323::signal::Signal::h245(&o.payload).is_ok()
                    };
                    prop_assert!(walks, "sent a frame that does not walk: {:02x?}", o.payload);
                }
            }
        }
    }
}

/// A Setup for no network's alias with a public destCallSignalAddress
/// goes there over a connection the MPR opens from its signaling address
/// (a direct-routed call out of the network); the callee's answers come
/// back on it and reach A.
#[test]
fn a_setup_to_a_public_endpoint_goes_to_its_call_signal_address() {
    let mut bed = Bed::new();
    let public = sa("198.51.100.77:1720");
    let per = b::setup(
        GUID,
        CONF,
        "alice",
        "carol",
        None,
        Some(sa(A_CSA)),
        Some(public),
        &[],
        false,
        &[],
    );
    let outs = bed.a_sends(&b::q931(CRV_A, false, 0x05, &per));
    assert_eq!(outs[0].to, public);
    assert_eq!(outs[0].name(), "setup");
    assert_eq!(
        outs[0].flow,
        Flow::over(Transport::Tcp),
        "a connection the MPR opens"
    );
    assert_eq!(
        outs[0].address("sourceCallSignalAddress"),
        sa(MPR),
        "the MPR is the caller's address"
    );
    let crv_c = outs[0].q931().call_reference_value() as u16;
    // Carol answers on that connection (any source port of hers).
    let alerting = b::q931(crv_c, true, 0x01, &b::alerting(GUID, None, &[], false));
    let back = bed.rx(sa(MPR), public, 77, &alerting);
    assert_eq!(
        (back[0].to, back[0].name().as_str()),
        (sa(NET1), "alerting")
    );
    assert_eq!(back[0].q931().call_reference_value(), u64::from(CRV_A));
}

/// An OLC of `session` (H.245 message), tunneled-ready.
fn olc_in_session(channel: u16, session: u8, rtcp: SocketAddr) -> Vec<u8> {
    use pinhole_h323_oracle::h245;
    let mut olc = b::olc_value(channel, Some(rtcp), None, false);
    if let h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(p) =
        &mut olc.forward_logical_channel_parameters.multiplex_parameters
    {
        p.session_id = session;
    }
    pinhole_h323_oracle::encode(&h245::MultimediaSystemControlMessage::request(
        h245::RequestMessage::openLogicalChannel(olc),
    ))
    .unwrap()
}

/// Closing every channel of one RTP session gives its relay legs back
/// while the call's other session goes on.
#[test]
fn a_session_whose_channels_closed_gives_its_legs_back() {
    let mut bed = Bed::new();
    let outs = bed.a_sends(&setup(None, &[], true));
    let crv_b = outs[0].q931().call_reference_value() as u16;
    let fac = |h245: Vec<Vec<u8>>| b::facility(GUID, CONF, None, None, &[], true, &h245);
    let video_rtcp = sa("10.1.0.2:5003");
    bed.a_sends(&b::q931(
        CRV_A,
        false,
        0x62,
        &fac(vec![
            olc_in_session(1, 1, sa(A_RTCP)),
            olc_in_session(2, 2, video_rtcp),
        ]),
    ));
    bed.b_sends(&b::q931(
        crv_b,
        true,
        0x62,
        &fac(vec![
            b::olc_ack(1, sa(B_RTP), sa(B_RTCP)),
            b::olc_ack(2, sa("10.2.0.2:6002"), sa("10.2.0.2:6003")),
        ]),
    ));
    assert_eq!(
        bed.engine.stats().legs_open,
        4,
        "two sessions, a leg per side each"
    );
    // A closes its video channel: session 2 has no channel left.
    let outs = bed.a_sends(&b::q931(
        CRV_A,
        false,
        0x62,
        &fac(vec![b::close_logical_channel(2)]),
    ));
    assert_eq!(outs[0].to, sa(NET2), "the CLC goes on");
    assert_eq!(bed.engine.stats().legs_open, 2, "the video legs are back");
    assert_eq!(bed.alg.stats().sessions_closed, 1);
    assert_eq!(bed.alg.calls(), 1, "the call goes on");
    // Closing the last channel frees the rest.
    bed.a_sends(&b::q931(
        CRV_A,
        false,
        0x62,
        &fac(vec![b::close_logical_channel(1)]),
    ));
    assert_eq!(bed.engine.stats().legs_open, 0);
}
