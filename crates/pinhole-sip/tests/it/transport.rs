//! Issue 13: the proxies choose a transport for what they send. Into a
//! network registered over a connection, everything goes down that
//! connection; toward the public side the next URI decides (RFC 3263 §4.1:
//! `;transport=`, `sips:`); a response goes back the way its request came
//! (RFC 3261 §18.2.2); the APS sends up its connection to the MPR and to a
//! phone the way the phone came.

use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::alg::{ClientContext, ClientSignaling, MprSignaling};
use pinhole_core::client::{ClientError, PinholeId, PinholeRequest};
use pinhole_core::ports::PortRange;
use pinhole_core::types::{ConnId, Flow, Receive, Transmit, Transport};
use pinhole_sip::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_testkit::scripted::ScriptedMpr;
use pinhole_testkit::sip::{Request, Response, header};

const MPR: &str = "203.0.113.10:5060";
const MPR_TLS: &str = "203.0.113.10:5061";
const PINHOLE: &str = "198.51.100.1:40000";
const PUBLIC: &str = "192.0.2.9:5060";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0\r\n";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// An MPR proxy whose network `corp` registered over TLS connection 7.
struct Bed {
    now: Instant,
    engine: ScriptedMpr,
    mpr: Mpr,
}

const TLS7: Flow = Flow::conn(Transport::Tls, ConnId(7));

impl Bed {
    fn new() -> Self {
        let now = start();
        let mut engine = ScriptedMpr::new(
            now,
            a(MPR_TLS),
            a(PINHOLE),
            "203.0.113.10".parse().unwrap(),
            &["corp.example"],
        );
        engine.flow = TLS7;
        let mut cfg = MprConfig::new(a(MPR), [5; 32]);
        cfg.tls = Some(a(MPR_TLS));
        Self {
            now,
            engine,
            mpr: Mpr::new(cfg),
        }
    }

    fn feed(&mut self, local: &str, from: &str, flow: Flow, bytes: &[u8]) -> Vec<Transmit> {
        self.mpr.handle_datagram(
            self.now,
            &mut self.engine,
            Receive {
                local: a(local),
                remote: a(from),
                bytes,
                flow,
            },
        );
        std::iter::from_fn(|| self.mpr.poll_transmit()).collect()
    }
}

fn invite(uri: &str, via: &str, transport: &str, from: &str) -> Vec<u8> {
    Request::new("INVITE", uri)
        .header("Via", format!("SIP/2.0/{transport} {via};branch=z9hG4bKt1"))
        .max_forwards(70)
        .from(&format!("<sip:{from}>;tag=a1"))
        .to(&format!("<{uri}>"))
        .call_id("transport-1@example")
        .cseq(1)
        .contact(&format!("sip:alice@{via}"))
        .sdp(SDP)
        .build()
}

#[test]
fn into_a_network_down_its_connection_and_the_answer_back_by_udp() {
    let mut bed = Bed::new();
    let inv = invite("sip:bob@corp.example", PUBLIC, "UDP", "alice@example.net");
    let out = bed.feed(MPR, PUBLIC, Flow::UDP, &inv);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].remote, a(PINHOLE));
    assert_eq!(out[0].flow, TLS7, "down the connection corp opened");
    assert_eq!(
        out[0].local,
        a(MPR_TLS),
        "from the listener it registered on"
    );
    let via = header(&out[0].payload, "Via").unwrap();
    assert!(via.starts_with("SIP/2.0/TLS 203.0.113.10:5061;"), "{via}");

    // The answer comes up the connection and goes back to the caller by UDP,
    // as its request came.
    let ok = Response::to(&out[0].payload, 200, "OK")
        .tag("b1")
        .contact("sip:bob@10.1.0.5")
        .sdp(SDP)
        .build();
    let back = bed.feed(MPR_TLS, PINHOLE, TLS7, &ok);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].remote, a(PUBLIC));
    assert_eq!(back[0].flow, Flow::UDP);
    assert_eq!(back[0].local, a(MPR));
}

#[test]
fn toward_the_public_side_the_uri_names_the_transport() {
    for (uri, flow, local, via, to) in [
        (
            "sip:carol@192.0.2.9;transport=tcp",
            Flow::over(Transport::Tcp),
            MPR,
            "SIP/2.0/TCP 203.0.113.10:5060;",
            "192.0.2.9:5060",
        ),
        (
            "sips:carol@192.0.2.9",
            Flow::over(Transport::Tls),
            MPR_TLS,
            "SIP/2.0/TLS 203.0.113.10:5061;",
            "192.0.2.9:5061",
        ),
        (
            "sip:carol@192.0.2.9:5080;transport=TLS",
            Flow::over(Transport::Tls),
            MPR_TLS,
            "SIP/2.0/TLS 203.0.113.10:5061;",
            "192.0.2.9:5080",
        ),
        (
            "sip:carol@192.0.2.9",
            Flow::UDP,
            MPR,
            "SIP/2.0/UDP 203.0.113.10:5060;",
            "192.0.2.9:5060",
        ),
    ] {
        let mut bed = Bed::new();
        let inv = invite(uri, "10.1.0.5:5060", "TCP", "bob@corp.example");
        let out = bed.feed(MPR_TLS, PINHOLE, TLS7, &inv);
        assert_eq!(out.len(), 1, "{uri}: {out:?}");
        assert_eq!(out[0].flow, flow, "{uri}");
        assert_eq!(out[0].local, a(local), "{uri}");
        assert_eq!(out[0].remote, a(to), "{uri}");
        let vias = pinhole_testkit::sip::headers(&out[0].payload, "Via");
        assert!(vias[0].starts_with(via), "{uri}: {vias:?}");

        // The callee's answer, over whatever it came by, goes down the
        // network's connection.
        let ok = Response::to(&out[0].payload, 180, "Ringing")
            .tag("c1")
            .build();
        let back = bed.feed(local, to, flow, &ok);
        assert_eq!(back.len(), 1, "{uri}: {back:?}");
        assert_eq!(back[0].flow, TLS7, "{uri}");
        assert_eq!(back[0].remote, a(PINHOLE), "{uri}");
    }
}

#[test]
fn a_public_callers_answer_goes_back_over_its_transport() {
    let mut bed = Bed::new();
    let inv = invite("sip:bob@corp.example", PUBLIC, "TCP", "alice@example.net");
    let tcp3 = Flow::conn(Transport::Tcp, ConnId(3));
    let out = bed.feed(MPR, PUBLIC, tcp3, &inv);
    let ok = Response::to(&out[0].payload, 200, "OK")
        .tag("b1")
        .contact("sip:bob@10.1.0.5")
        .sdp(SDP)
        .build();
    let back = bed.feed(MPR_TLS, PINHOLE, TLS7, &ok);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].remote, a(PUBLIC));
    // The driver finds the caller's connection by its address.
    assert_eq!(back[0].flow, Flow::over(Transport::Tcp));
    // A refusal by the proxy itself goes on the very connection.
    let bad = String::from_utf8(invite(
        "sip:bob@nowhere.example",
        PUBLIC,
        "TCP",
        "alice@example.net",
    ))
    .unwrap()
    .replace("transport-1@", "transport-2@");
    let refused = bed.feed(MPR, PUBLIC, tcp3, bad.as_bytes());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].flow, tcp3);
    assert!(refused[0].payload.starts_with(b"SIP/2.0 4"));
}

/// A client context with an upstream TLS connection and no pinholes.
struct Upstream;

impl ClientContext for Upstream {
    fn open_pinhole(&mut self, _: Instant, _: PinholeRequest) -> Result<PinholeId, ClientError> {
        Ok(PinholeId(1))
    }
    fn close_pinhole(&mut self, _: PinholeId) -> Result<(), ClientError> {
        Ok(())
    }
    fn registered_pinhole(&self) -> Option<SocketAddr> {
        Some(a(PINHOLE))
    }
    fn mpr(&self) -> SocketAddr {
        a(MPR_TLS)
    }
    fn signaling(&self) -> SocketAddr {
        a("10.1.0.2:5060")
    }
    fn upstream(&self) -> Flow {
        Flow::over(Transport::Tls)
    }
}

#[test]
fn the_aps_sends_up_its_connection_and_down_the_way_the_phone_came() {
    let now = start();
    let mut aps = Aps::new(ApsConfig::new(
        a("10.1.0.2:5060"),
        "10.1.0.2".parse().unwrap(),
        PortRange::new(42000, 42100).unwrap(),
        [3; 32],
    ));
    let mut ctx = Upstream;
    let phone = a("10.1.0.5:39001");
    let tcp9 = Flow::conn(Transport::Tcp, ConnId(9));
    // A REGISTER from the phone over TCP goes up the TLS connection.
    let reg = String::from_utf8(pinhole_testkit::sip::register(
        "10.1.0.5:39001",
        "bob",
        "corp.example",
        1,
    ))
    .unwrap()
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    aps.handle_datagram(
        now,
        &mut ctx,
        Receive {
            local: a("10.1.0.2:5060"),
            remote: phone,
            bytes: reg.as_bytes(),
            flow: tcp9,
        },
    );
    let up: Vec<Transmit> = std::iter::from_fn(|| aps.poll_transmit()).collect();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].remote, a(MPR_TLS));
    assert_eq!(up[0].flow, Flow::over(Transport::Tls));
    let via = header(&up[0].payload, "Via").unwrap();
    assert!(via.starts_with("SIP/2.0/TLS 10.1.0.2:5060;"), "{via}");
    // Its 200 comes down and goes to the phone over TCP.
    let ok = Response::to(&up[0].payload, 200, "OK").build();
    aps.handle_datagram(
        now,
        &mut ctx,
        Receive {
            local: a("10.1.0.2:5060"),
            remote: a(MPR_TLS),
            bytes: &ok,
            flow: Flow::conn(Transport::Tls, ConnId(1)),
        },
    );
    let down: Vec<Transmit> = std::iter::from_fn(|| aps.poll_transmit()).collect();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0].remote, phone);
    assert_eq!(down[0].flow, Flow::over(Transport::Tcp));
    // A request for bob from the MPR finds him the way he registered.
    let inv = invite(
        "sip:bob@corp.example",
        "203.0.113.10:5061",
        "TLS",
        "alice@example.net",
    );
    aps.handle_datagram(
        now,
        &mut ctx,
        Receive {
            local: a("10.1.0.2:5060"),
            remote: a(MPR_TLS),
            bytes: &inv,
            flow: Flow::conn(Transport::Tls, ConnId(1)),
        },
    );
    let to_phone: Vec<Transmit> = std::iter::from_fn(|| aps.poll_transmit())
        .filter(|t| t.remote == phone)
        .collect();
    assert_eq!(to_phone.len(), 1, "{to_phone:?}");
    assert_eq!(to_phone[0].flow, Flow::over(Transport::Tcp));
}

/// RFC 5658: a caller on TLS, a network on UDP. The MPR record-routes
/// twice, each side's entry naming its transport; in-dialog requests from
/// either side carry both, and both come off before the request goes on.
#[test]
fn different_transports_on_each_side_record_route_twice() {
    let mut bed = Bed::new();
    // corp registered over UDP, on the UDP control socket.
    bed.engine.flow = Flow::UDP;
    bed.engine.local = a(MPR);
    let tls5 = Flow::conn(Transport::Tls, ConnId(5));
    let inv = invite("sip:bob@corp.example", PUBLIC, "TLS", "alice@example.net");
    let out = bed.feed(MPR_TLS, PUBLIC, tls5, &inv);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flow, Flow::UDP);
    let rr = header(&out[0].payload, "Record-Route").unwrap();
    let token = rr
        .split("ph=")
        .nth(1)
        .and_then(|t| t.split([';', '>']).next())
        .unwrap()
        .to_owned();
    assert_eq!(
        rr,
        format!(
            "<sip:203.0.113.10:5060;lr;ph={token}>, <sip:203.0.113.10:5061;lr;ph={token};transport=tls>"
        )
    );
    let ok = Response::to(&out[0].payload, 200, "OK")
        .tag("b1")
        .contact("sip:bob@10.1.0.5")
        .record_route()
        .sdp(SDP)
        .build();
    let back = bed.feed(MPR, PINHOLE, Flow::UDP, &ok);
    assert_eq!(back[0].flow, Flow::over(Transport::Tls));

    // The caller's BYE: its route set is the Record-Route reversed.
    let bye = Request::new("BYE", "sip:bob@10.1.0.5")
        .header("Via", format!("SIP/2.0/TLS {PUBLIC};branch=z9hG4bKbye1"))
        .max_forwards(70)
        .route(&[
            format!("sip:203.0.113.10:5061;lr;ph={token};transport=tls"),
            format!("sip:203.0.113.10:5060;lr;ph={token}"),
        ])
        .from("<sip:alice@example.net>;tag=a1")
        .to("<sip:bob@corp.example>;tag=b1")
        .call_id("transport-1@example")
        .cseq(2)
        .build();
    let sent = bed.feed(MPR_TLS, PUBLIC, tls5, &bye);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].remote, a(PINHOLE), "into the network");
    assert_eq!(
        header(&sent[0].payload, "Route"),
        None,
        "both of ours came off"
    );
    let via = header(&sent[0].payload, "Via").unwrap();
    assert!(via.starts_with("SIP/2.0/UDP 203.0.113.10:5060;"), "{via}");
}
