//! What the MPR's MGCP ALG refuses rather than forward (issue 18): a call
//! agent's command whose SDP it cannot read is answered 505 and never
//! reaches the gateway; a gateway's response whose SDP it cannot read is
//! dropped and never reaches the call agent. Against a scripted engine
//! ([`pinhole_testkit::scripted::ScriptedMpr`]): "into the network" is
//! whatever goes to the pinhole.

use std::time::Instant;

use pinhole_core::alg::{MprSignaling, counter};
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;
use pinhole_mgcp::alg::{Mpr, MprConfig};
use pinhole_mgcp::{Command, Message, Response, parse_datagram};
use pinhole_testkit::scripted::ScriptedMpr;

use crate::common::{CA, MPR, MPR_IP, a, ip};

const PINHOLE: &str = "198.51.100.1:40000";
const GW: &str = "aaln/1@gw1.corp.example";

/// The call agent's description of a public party: two streams.
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.66\r\ns=-\r\nc=IN IP4 192.0.2.66\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0\r\nm=video 40002 RTP/AVP 96\r\n";

/// SDPs the ALG cannot read: a junk line, no `v=`, a bad port on the
/// second `m=`, a port beyond 65535, no address in `c=`.
fn unreadable() -> Vec<(&'static str, String)> {
    vec![
        ("junk line", SDP.replace("t=0 0\r\n", "t=0 0\r\njunk\r\n")),
        ("no v=", SDP.replace("v=0\r\n", "")),
        (
            "bad second port",
            SDP.replace("m=video 40002", "m=video 4x002"),
        ),
        (
            "port beyond 65535",
            SDP.replace("m=audio 40000", "m=audio 70000"),
        ),
        (
            "no c= address",
            SDP.replace("c=IN IP4 192.0.2.66", "c=IN IP4"),
        ),
    ]
}

struct Bed {
    now: Instant,
    engine: ScriptedMpr,
    mpr: Mpr,
}

impl Bed {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut cfg = MprConfig::new(a(MPR));
        cfg.call_agent = Some(a(CA));
        Self {
            now,
            engine: ScriptedMpr::new(now, a(MPR), a(PINHOLE), ip(MPR_IP), &["corp.example"]),
            mpr: Mpr::new(cfg),
        }
    }

    fn feed(&mut self, from: &str, bytes: &[u8]) -> Vec<Transmit> {
        self.mpr.handle_datagram(
            self.now,
            &mut self.engine,
            Receive {
                local: a(MPR),
                remote: a(from),
                bytes,
                flow: Default::default(),
            },
        );
        std::iter::from_fn(|| self.mpr.poll_transmit()).collect()
    }

    fn counter(&self, name: &str) -> u64 {
        counter(
            &[(Protocol::Mgcp, self.mpr.counters())],
            Protocol::Mgcp,
            name,
        )
    }
}

/// Every stream address of the datagram's SDPs is the relay's.
fn relay_only(bed: &Bed, d: &[u8]) -> bool {
    parse_datagram(d)
        .unwrap()
        .iter()
        .all(|m| match m.sdp().unwrap() {
            None => true,
            Some(s) => s
                .endpoints(ip("0.0.0.0"))
                .unwrap()
                .iter()
                .all(|e| bed.engine.is_relay(e.addr)),
        })
}

fn crcx(txid: u32, sdp: Option<&str>) -> Vec<u8> {
    let mut b = Command::builder("CRCX", txid, GW)
        .param("C", "A3C47F21456789F0")
        .param("L", "p:20, a:PCMU")
        .param("M", "sendrecv");
    if let Some(s) = sdp {
        b = b.sdp(s.as_bytes());
    }
    b.to_bytes()
}

#[test]
fn a_command_with_unreadable_sdp_is_answered_505_and_never_reaches_the_gateway() {
    for (what, sdp) in unreadable() {
        let mut bed = Bed::new();
        let sent = bed.feed(CA, &crcx(1001, Some(&sdp)));
        assert_eq!(sent.len(), 1, "{what}: only the answer");
        assert_eq!(sent[0].remote, a(CA), "{what}");
        let r = Message::parse(&sent[0].payload).unwrap();
        assert_eq!(r.code(), Some(505), "{what}");
        assert_eq!(r.transaction_id(), 1001, "{what}");
        assert_eq!(bed.counter("sdp_errors"), 1, "{what}");
        assert_eq!(bed.counter("forwarded"), 0, "{what}");
        assert_eq!(bed.engine.plans, 0, "{what}: nothing planned");
    }
    // The readable one goes in, rewritten to the relay.
    let mut bed = Bed::new();
    let sent = bed.feed(CA, &crcx(1001, Some(SDP)));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, a(PINHOLE));
    assert!(relay_only(&bed, &sent[0].payload));
}

#[test]
fn a_gateway_response_with_unreadable_sdp_is_dropped_not_forwarded() {
    let mut bed = Bed::new();
    let sent = bed.feed(CA, &crcx(1002, None));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, a(PINHOLE), "the CRCX goes in");
    let gw_sdp = SDP.replace("192.0.2.66", "10.1.0.20");
    for (n, (what, sdp)) in unreadable().into_iter().enumerate() {
        let sdp = sdp.replace("192.0.2.66", "10.1.0.20");
        let ok = Response::builder(200, 1002)
            .commentary("OK")
            .param("I", "FDE234C8")
            .sdp(sdp.as_bytes())
            .to_bytes();
        let sent = bed.feed(PINHOLE, &ok);
        assert!(sent.is_empty(), "{what}: nothing to the call agent");
        assert_eq!(bed.counter("sdp_errors"), n as u64 + 1, "{what}");
    }
    // The gateway's readable answer reaches the call agent, rewritten.
    let ok = Response::builder(200, 1002)
        .commentary("OK")
        .param("I", "FDE234C8")
        .sdp(gw_sdp.as_bytes())
        .to_bytes();
    let sent = bed.feed(PINHOLE, &ok);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, a(CA));
    assert!(relay_only(&bed, &sent[0].payload));
}

#[test]
fn an_unreadable_response_piggybacked_with_a_command_is_cut_out_alone() {
    let mut bed = Bed::new();
    bed.feed(CA, &crcx(1003, None));
    let bad = Response::builder(200, 1003)
        .commentary("OK")
        .param("I", "FDE234C8")
        .sdp(SDP.replace("v=0\r\n", "").as_bytes())
        .to_bytes();
    let ntfy = Command::builder("NTFY", 77, GW)
        .param("X", "0123456789AC")
        .param("O", "L/hd")
        .to_bytes();
    let both = pinhole_mgcp::piggyback(&[&bad, &ntfy]);
    let sent = bed.feed(PINHOLE, &both);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, a(CA));
    let msgs = parse_datagram(&sent[0].payload).unwrap();
    assert_eq!(msgs.len(), 1, "only the NTFY goes on");
    assert!(msgs[0].command().is_some());
    assert_eq!(bed.counter("sdp_errors"), 1);
}
