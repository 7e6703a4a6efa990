//! What the proxies refuse rather than forward (issue 18): a message
//! whose SDP cannot be read never crosses with a foreign media address, a
//! message that fails the parse never crosses at all, and the RFC 4475
//! §3.1.2 messages the RFC says to reject get 400 (505 for `badvers`).
//!
//! The MPR runs against a scripted engine
//! ([`pinhole_testkit::scripted::ScriptedMpr`]): every domain of
//! [`SERVED`] is network `corp`, reached through the pinhole [`PINHOLE`];
//! every plan gives relay addresses on [`RELAY_IP`]. "Into the network" is
//! whatever the proxy sends to [`PINHOLE`].

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pinhole_core::alg::{ClientContext, ClientSignaling, MprSignaling, counter as alg_counter};
use pinhole_core::client::{ClientError, PinholeId, PinholeRequest};
use pinhole_core::ports::PortRange;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;
use pinhole_sip::Message;
use pinhole_sip::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_sip::media::sdp_body;
use pinhole_testkit::scripted::ScriptedMpr;
use pinhole_testkit::sip::{Request, Response};
use proptest::prelude::*;

const MPR: &str = "203.0.113.10:5060";
const RELAY_IP: &str = "203.0.113.10";
const PINHOLE: &str = "198.51.100.1:40000";
const ATTACKER: &str = "192.0.2.66:5060";
const SERVED: [&str; 4] = ["example.com", "example.org", "example.net", "corp.example"];

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// An MPR proxy and its scripted engine.
struct Bed {
    now: Instant,
    engine: ScriptedMpr,
    mpr: Mpr,
}

impl Bed {
    fn new() -> Self {
        let now = start();
        Self {
            now,
            engine: ScriptedMpr::new(now, a(MPR), a(PINHOLE), RELAY_IP.parse().unwrap(), &SERVED),
            mpr: Mpr::new(MprConfig::new(a(MPR), [5; 32])),
        }
    }

    /// Feeds `bytes` from `from`; what the proxy sent.
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
        alg_counter(&[(Protocol::Sip, self.mpr.counters())], Protocol::Sip, name)
    }
}

/// What became of one message at the MPR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered with this status back to its source; nothing went on.
    Answered(u16),
    /// Nothing sent at all.
    Dropped,
    /// Sent into the network (its SDP, if any, rewritten to the relay).
    Forwarded,
}

/// The outcome of `sent` for a message from `from`, after checking that
/// whatever went into the network is a message a phone may take: it
/// parses, has a CSeq, and every media address in its SDP is the relay's
/// (or a disabled or held stream's).
fn outcome(from: &str, input: &[u8], sent: &[Transmit]) -> Outcome {
    let mut got = Outcome::Dropped;
    for t in sent {
        if t.remote == a(PINHOLE) {
            assert_into_network_ok(&t.payload, input);
            got = Outcome::Forwarded;
        } else {
            assert_eq!(t.remote, a(from), "an answer goes back to the source");
            let code = std::str::from_utf8(&t.payload[8..11])
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&t.payload)));
            assert!(t.payload.starts_with(b"SIP/2.0 "));
            assert_eq!(got, Outcome::Dropped, "one answer, nothing forwarded");
            got = Outcome::Answered(code);
        }
    }
    got
}

fn assert_into_network_ok(payload: &[u8], input: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let m = Message::parse(payload).unwrap_or_else(|e| {
        panic!(
            "unparsable into the network ({e}) from\n{}\n---\n{text}",
            String::from_utf8_lossy(input)
        )
    });
    assert!(m.cseq().is_some(), "no CSeq into the network:\n{text}");
    let body = sdp_body(&m, "0.0.0.0".parse().unwrap())
        .unwrap_or_else(|e| panic!("unreadable SDP into the network ({e}):\n{text}"));
    if let Some(body) = body {
        for e in body.endpoints() {
            assert!(
                e.addr.ip() == RELAY_IP.parse::<IpAddr>().unwrap()
                    || e.is_disabled()
                    || e.is_hold(),
                "a foreign media address {} into the network:\n{text}",
                e.addr
            );
        }
    }
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(pinhole_testkit::corpus::shared_dir().join("sip").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every RFC 4475 §3.1.2 message of the shared corpus, from the public
/// side: what the RFC says of it, and what the MPR does.
const RFC4475_INVALID: &[(&str, Outcome, &str)] = &[
    (
        "rfc4475-3.1.2.1-badinv01.sip",
        Outcome::Answered(400),
        "'an element receiving this request should respond with a 400': empty Via and Contact parameters",
    ),
    (
        "rfc4475-3.1.2.4-scalar02.sip",
        Outcome::Answered(400),
        "'should respond with a 400 Bad Request due to the CSeq error': CSeq beyond 2^32-1",
    ),
    (
        "rfc4475-3.1.2.5-scalarlg.sip",
        Outcome::Dropped,
        "a response with overlarge scalars: 'will simply discard it'",
    ),
    (
        "rfc4475-3.1.2.7-ltgtruri.sip",
        Outcome::Answered(400),
        "'reasonable always to reject a request with this error with a 400': <> around the Request-URI",
    ),
    (
        "rfc4475-3.1.2.8-lwsruri.sip",
        Outcome::Answered(400),
        "'should respond with a 400': LWS inside the Request-URI",
    ),
    (
        "rfc4475-3.1.2.9-lwsstart.sip",
        Outcome::Answered(400),
        "'acceptable to reject this request as malformed': several SP in the request line; a liberal proxy must not forward them, ours does not rewrite start lines",
    ),
    (
        "rfc4475-3.1.2.10-trws.sip",
        Outcome::Answered(400),
        "'acceptable to reject this request as malformed': SP after SIP/2.0, same reason",
    ),
    (
        "rfc4475-3.1.2.11-escruri.sip",
        Outcome::Answered(400),
        "'acceptable ... to reject this request with a 400': a proxy must not forward the escaped headers in the Request-URI, and ours forwards it untouched",
    ),
    (
        "rfc4475-3.1.2.12-baddate.sip",
        Outcome::Forwarded,
        "'an element shouldn't do that unless the contents of the Date header field were actually important': the MPR never reads Date; its SDP is rewritten",
    ),
    (
        "rfc4475-3.1.2.13-regbadct.sip",
        Outcome::Answered(400),
        "'reasonable ... to respond with a 400': Contact addr-spec with an escaped header not in <>; a proxy would propagate it",
    ),
    (
        "rfc4475-3.1.2.14-badaspec.sip",
        Outcome::Answered(400),
        "'reasonable to reject this request with a 400': spaces inside the To addr-spec",
    ),
    (
        "rfc4475-3.1.2.16-badvers.sip",
        Outcome::Answered(505),
        "'should respond to the request with a 505 Version Not Supported': SIP/7.0",
    ),
    (
        "rfc4475-3.1.2.17-mismatch01.sip",
        Outcome::Answered(400),
        "'any element receiving this request will respond with a 400': CSeq method INVITE on OPTIONS",
    ),
    (
        "rfc4475-3.1.2.18-mismatch02.sip",
        Outcome::Answered(400),
        "'should respond with a 501 ... A 400 Bad Request is also acceptable': CSeq method differs from NEWMETHOD",
    ),
    (
        "rfc4475-3.1.2.19-bigcode.sip",
        Outcome::Dropped,
        "a response with code 4294967301: 'should simply drop it'",
    ),
];

#[test]
fn rfc4475_invalid_messages_are_refused_and_none_enters_the_network() {
    let on_disk: Vec<String> = pinhole_testkit::corpus::files("sip", ".sip")
        .unwrap()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .filter(|n| n.starts_with("rfc4475-3.1.2."))
        .collect();
    for name in &on_disk {
        assert!(
            RFC4475_INVALID.iter().any(|(n, ..)| n == name),
            "{name} has no row in the table"
        );
    }
    let (mut answered, mut dropped, mut forwarded) = (0, 0, 0);
    for &(name, want, why) in RFC4475_INVALID {
        let bytes = corpus(name);
        let mut bed = Bed::new();
        let sent = bed.feed(ATTACKER, &bytes);
        let got = outcome(ATTACKER, &bytes, &sent);
        assert_eq!(got, want, "{name}: {why}");
        match got {
            Outcome::Answered(code) => {
                answered += 1;
                let text = String::from_utf8_lossy(&sent[0].payload);
                assert!(
                    text.contains("CSeq:") && text.contains("Call-ID:"),
                    "{name}: the answer copies the transaction's lines:\n{text}"
                );
                assert!(code == 400 || code == 505);
                assert_eq!(bed.counter("malformed"), 1, "{name}");
                assert_eq!(bed.counter("replied"), 1, "{name}");
            }
            Outcome::Dropped => {
                dropped += 1;
                assert_eq!(bed.counter("malformed"), 1, "{name}");
            }
            Outcome::Forwarded => {
                forwarded += 1;
                assert_eq!(bed.counter("sdp_rewritten"), 1, "{name}");
            }
        }
        assert_eq!(bed.mpr.dialogs(), usize::from(got == Outcome::Forwarded));
    }
    assert_eq!((answered, dropped, forwarded), (12, 2, 1));
}

/// The valid messages of RFC 4475 §3.1.1 are not caught by the checks
/// the invalid ones fail: none is answered 400 or 505.
#[test]
fn rfc4475_valid_requests_are_not_refused_as_malformed() {
    for p in pinhole_testkit::corpus::files("sip", ".sip").unwrap() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("rfc4475-3.1.1.") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let mut bed = Bed::new();
        let sent = bed.feed(ATTACKER, &bytes);
        let got = outcome(ATTACKER, &bytes, &sent);
        assert!(
            !matches!(got, Outcome::Answered(400 | 505)),
            "{name}: {got:?}"
        );
        assert_eq!(bed.counter("malformed"), 0, "{name}");
        assert_eq!(bed.counter("sdp_errors"), 0, "{name}");
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.66\r\ns=-\r\nc=IN IP4 192.0.2.66\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0\r\nm=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

/// The attacker's INVITE toward bob of a served domain, with `sdp`.
fn invite(sdp: &str) -> String {
    Request::new("INVITE", "sip:bob@corp.example")
        .via(ATTACKER, "z9hG4bKatk1")
        .max_forwards(70)
        .from("<sip:mallory@attacker.example>;tag=m1")
        .to("<sip:bob@corp.example>")
        .call_id("attack-1@attacker.example")
        .cseq(1)
        .contact("sip:mallory@192.0.2.66:5060")
        .sdp(sdp)
        .to_string()
}

/// Fixed mutations of [`invite`], each with what the MPR must do.
fn mutations() -> Vec<(&'static str, String, Outcome)> {
    let ok = invite(SDP);
    let sdp_with = |from: &str, to: &str| invite(&SDP.replace(from, to));
    vec![
        ("unmutated", ok.clone(), Outcome::Forwarded),
        (
            "a junk line in the SDP",
            sdp_with("t=0 0\r\n", "t=0 0\r\njunk\r\n"),
            Outcome::Answered(488),
        ),
        (
            "no v= line",
            sdp_with("v=0\r\n", ""),
            Outcome::Answered(488),
        ),
        (
            "a bad port on the second m=",
            sdp_with("m=video 40002", "m=video 4x002"),
            Outcome::Answered(488),
        ),
        (
            "a port beyond 65535",
            sdp_with("m=audio 40000", "m=audio 70000"),
            Outcome::Answered(488),
        ),
        (
            "no address in c=",
            sdp_with("c=IN IP4 192.0.2.66", "c=IN IP4"),
            Outcome::Answered(488),
        ),
        (
            "not an IPv4 address in c= (a name, so the sender's address), rewritten",
            sdp_with("c=IN IP4 192.0.2.66", "c=IN IP4 192.0.2.666"),
            Outcome::Forwarded,
        ),
        (
            "an m= line without a transport",
            sdp_with("m=audio 40000 RTP/AVP 0", "m=audio 40000"),
            Outcome::Answered(488),
        ),
        (
            "a body that is not SDP at all",
            invite("hello, phone: send your media to 192.0.2.66:40000\r\n"),
            Outcome::Answered(488),
        ),
        (
            "no CSeq",
            ok.replace("CSeq: 1 INVITE\r\n", ""),
            Outcome::Answered(400),
        ),
        (
            "no To",
            ok.replace("To: <sip:bob@corp.example>\r\n", ""),
            Outcome::Answered(400),
        ),
        (
            "a CSeq beyond 32 bits",
            ok.replace("CSeq: 1 INVITE", "CSeq: 99999999999 INVITE"),
            Outcome::Answered(400),
        ),
        (
            "a Content-Length past the end",
            ok.replace(
                &format!("Content-Length: {}", SDP.len()),
                &format!("Content-Length: {}", SDP.len() + 40),
            ),
            Outcome::Answered(400),
        ),
        (
            "no Content-Type on the SDP",
            ok.replace("Content-Type: application/sdp\r\n", ""),
            Outcome::Answered(400),
        ),
        (
            "a name in c= (stands for the sender's address), rewritten",
            sdp_with("c=IN IP4 192.0.2.66", "c=IN IP4 media.attacker.example"),
            Outcome::Forwarded,
        ),
        (
            "LF-only line ends in the SDP, rewritten",
            invite(&SDP.replace("\r\n", "\n")),
            Outcome::Forwarded,
        ),
    ]
}

#[test]
fn mutated_invites_are_refused_or_rewritten_never_forwarded_with_a_foreign_address() {
    let mut tally = std::collections::BTreeMap::new();
    for (what, msg, want) in mutations() {
        let mut bed = Bed::new();
        let sent = bed.feed(ATTACKER, msg.as_bytes());
        let got = outcome(ATTACKER, msg.as_bytes(), &sent);
        assert_eq!(got, want, "{what}");
        if want == Outcome::Answered(488) {
            assert_eq!(bed.counter("sdp_errors"), 1, "{what}");
            assert_eq!(bed.engine.plans, 0, "{what}: nothing planned");
            assert_eq!(bed.mpr.dialogs(), 0, "{what}: no state kept");
        }
        *tally.entry(format!("{got:?}")).or_insert(0) += 1;
    }
    assert_eq!(tally.get("Forwarded"), Some(&4), "{tally:?}");
    assert_eq!(tally.get("Answered(488)"), Some(&7), "{tally:?}");
    assert_eq!(tally.get("Answered(400)"), Some(&5), "{tally:?}");
}

/// The attack run's 500 mutated INVITEs, again: 1 to 4 random bytes
/// overwritten, inserted or removed anywhere (SplitMix64, fixed seed).
/// Whatever reaches the network parses, has a CSeq and names only relay
/// media addresses; the rest is answered or dropped.
#[test]
fn randomly_mutated_invites_never_reach_the_network_with_a_foreign_address() {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut tally = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let mut m = invite(SDP).into_bytes();
        for _ in 0..=next() % 4 {
            let i = (next() % m.len() as u64) as usize;
            let b = next() as u8;
            match next() % 3 {
                0 => m[i] = b,
                1 => m.insert(i, b),
                _ => {
                    m.remove(i);
                }
            }
        }
        let mut bed = Bed::new();
        let sent = bed.feed(ATTACKER, &m);
        // Fails on anything wrong that went into the network.
        let got = outcome(ATTACKER, &m, &sent);
        *tally.entry(format!("{got:?}")).or_insert(0u32) += 1;
    }
    eprintln!("500 mutated INVITEs: {tally:?}");
    assert_eq!(tally.values().sum::<u32>(), 500);
    for kind in ["Forwarded", "Dropped", "Answered(400)", "Answered(488)"] {
        assert!(tally.contains_key(kind), "{kind} never happened: {tally:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes from the public side: nothing that enters the network
    /// is unparsable, without a CSeq, or with a foreign media address.
    #[test]
    fn any_mutation_of_an_invite_is_refused_dropped_or_rewritten(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut m = invite(SDP).into_bytes();
        for (at, b, op) in edits {
            let i = at.index(m.len());
            match op {
                0 => m[i] = b,
                1 => m.insert(i, b),
                _ => {
                    m.remove(i);
                }
            }
        }
        let mut bed = Bed::new();
        let sent = bed.feed(ATTACKER, &m);
        outcome(ATTACKER, &m, &sent);
    }
}

/// A public party's 200 to an INVITE from inside, whose SDP the MPR
/// cannot read: dropped (a response cannot be refused), counted; the
/// caller inside gets nothing naming the party's address.
#[test]
fn a_response_with_unreadable_sdp_is_dropped_not_forwarded_into_the_network() {
    let mut bed = Bed::new();
    let inside_sdp = SDP.replace("192.0.2.66", "10.1.0.10");
    let inv = Request::new("INVITE", &format!("sip:mallory@{ATTACKER}"))
        .via("10.1.0.2:5060", "z9hG4bKaps1")
        .max_forwards(70)
        .from("<sip:bob@corp.example>;tag=b1")
        .to(&format!("<sip:mallory@{ATTACKER}>"))
        .call_id("out-1@corp.example")
        .cseq(1)
        .contact("sip:bob@10.1.0.10")
        .sdp(&inside_sdp)
        .build();
    let sent = bed.feed(PINHOLE, &inv);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].remote, a(ATTACKER), "out to the public party");
    let out = sent[0].payload.clone();
    for (what, body) in [
        ("junk line", SDP.replace("t=0 0\r\n", "t=0 0\r\njunk\r\n")),
        ("no v=", SDP.replace("v=0\r\n", "")),
        (
            "bad second port",
            SDP.replace("m=video 40002", "m=video 4x002"),
        ),
    ] {
        let ok = Response::to(&out, 200, "OK")
            .tag("m9")
            .contact("sip:mallory@192.0.2.66")
            .sdp(&body)
            .build();
        let before = bed.counter("sdp_errors");
        let sent = bed.feed(ATTACKER, &ok);
        assert!(
            sent.is_empty(),
            "{what}: nothing forwarded, nothing answered"
        );
        assert_eq!(bed.counter("sdp_errors"), before + 1, "{what}");
    }
    // The readable 200 passes, rewritten.
    let ok = Response::to(&out, 200, "OK")
        .tag("m9")
        .contact("sip:mallory@192.0.2.66")
        .sdp(SDP)
        .build();
    let sent = bed.feed(ATTACKER, &ok);
    assert_eq!(outcome(ATTACKER, &ok, &sent), Outcome::Forwarded);
}

/// The APS follows the same rule: an INVITE from the MPR whose SDP it
/// cannot read is answered 488 and never reaches a phone; a phone's 200
/// with unreadable SDP never leaves for the MPR.
#[test]
fn the_aps_refuses_or_drops_what_it_cannot_read() {
    const APS: &str = "10.1.0.2:5060";
    const PHONE: &str = "10.1.0.10:5060";
    #[derive(Default)]
    struct Client {
        opened: usize,
    }
    impl ClientContext for Client {
        fn open_pinhole(
            &mut self,
            _: Instant,
            _: PinholeRequest,
        ) -> Result<PinholeId, ClientError> {
            self.opened += 1;
            Ok(PinholeId(self.opened as u64))
        }
        fn close_pinhole(&mut self, _: PinholeId) -> Result<(), ClientError> {
            Ok(())
        }
        fn registered_pinhole(&self) -> Option<SocketAddr> {
            Some(a(PINHOLE))
        }
        fn mpr(&self) -> SocketAddr {
            a(MPR)
        }
        fn signaling(&self) -> SocketAddr {
            a(APS)
        }
    }
    let now = start();
    let mut cfg = ApsConfig::new(
        a(APS),
        a(APS).ip(),
        PortRange::new(20_000, 20_099).unwrap(),
        [8; 32],
    );
    cfg.inside_default = Some(a(PHONE));
    let mut aps = Aps::new(cfg);
    let mut ctx = Client::default();
    let mut feed = |aps: &mut Aps, from: &str, bytes: &[u8]| -> Vec<Transmit> {
        aps.handle_datagram(
            now,
            &mut ctx,
            Receive {
                local: a(APS),
                remote: a(from),
                bytes,
                flow: Default::default(),
            },
        );
        std::iter::from_fn(|| aps.poll_transmit()).collect()
    };
    let counter = |aps: &Aps, name: &str| {
        alg_counter(&[(Protocol::Sip, aps.counters())], Protocol::Sip, name)
    };
    // From the MPR, toward the phone.
    let bad = invite(&SDP.replace("m=video 40002", "m=video 4x002"));
    let sent = feed(&mut aps, MPR, bad.as_bytes());
    assert_eq!(sent.len(), 1, "only the answer");
    assert_eq!(sent[0].remote, a(MPR));
    let m = Message::parse(&sent[0].payload).unwrap();
    assert_eq!(m.status(), Some(488));
    assert_eq!(m.cseq(), Some((1, "INVITE")));
    assert_eq!(counter(&aps, "sdp_errors"), 1);

    // From the phone, a 200 with unreadable SDP to the MPR's INVITE.
    let good = invite(&SDP.replace("192.0.2.66", "203.0.113.10"));
    let sent = feed(&mut aps, MPR, good.as_bytes());
    let to_phone: Vec<&Transmit> = sent.iter().filter(|t| t.remote == a(PHONE)).collect();
    assert_eq!(to_phone.len(), 1, "the readable INVITE reaches the phone");
    let ok = Response::to(&to_phone[0].payload, 200, "OK")
        .tag("bob1")
        .contact("sip:bob@10.1.0.10")
        .sdp("v=0\r\nc=IN IP4 10.1.0.10\r\nm=audio 4x00 RTP/AVP 0\r\n")
        .build();
    let sent = feed(&mut aps, PHONE, &ok);
    assert!(
        sent.iter().all(|t| t.remote != a(MPR)),
        "nothing leaves for the MPR"
    );
    assert_eq!(counter(&aps, "sdp_errors"), 2);
}
