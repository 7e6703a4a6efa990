//! The UA against scripted peers: what it sends, when it retransmits, how
//! each call ends, and that hostile input never panics it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::wire::RtcpMode;
use pinhole_sip::{HeaderName, Message, name_addrs};
use pinhole_testkit::sip::{Request, Response};
use proptest::prelude::*;

use super::*;

const SIP: &str = "10.1.0.10:5060";
const PROXY: &str = "203.0.113.10:5060";
const MEDIA: &str = "10.1.0.10:4000";
const PINHOLE: &str = "198.51.100.1:40000";
const RELAY: &str = "203.0.113.10:30000";

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ua(mode: MediaMode) -> Ua {
    Ua::new(UaConfig {
        aor: "alice@corp1.example".into(),
        sip: a(SIP),
        proxy: a(PROXY),
        media: a(MEDIA),
        mode,
        seed: 7,
        transport: pinhole_core::types::Transport::Udp,
    })
}

fn drain(ua: &mut Ua) -> Vec<Output> {
    std::iter::from_fn(|| ua.poll_output()).collect()
}

/// The SIP datagrams among `out`, as (destination, text).
fn sip(out: &[Output]) -> Vec<(SocketAddr, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Sip { to, bytes } => Some((*to, String::from_utf8_lossy(bytes).into_owned())),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<UaEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn closes(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::ClosePinhole))
        .count()
}

fn sdp(addr: &str) -> String {
    media::sdp(a(addr), 9, 1)
}

fn header(text: &str, name: HeaderName) -> String {
    let m = Message::parse(text.as_bytes()).unwrap();
    let values: Vec<String> = m
        .headers_named(name)
        .map(|h| String::from_utf8_lossy(m.value(h)).into_owned())
        .collect();
    values.join(", ")
}

fn branch_of(text: &str) -> String {
    let m = Message::parse(text.as_bytes()).unwrap();
    String::from_utf8(msg::branch(&m).unwrap().to_vec()).unwrap()
}

/// A response to `req` from the callee, as a proxy would pass it back:
/// the UA's own Via on top, our Record-Route set, the callee's tag.
fn respond(req: &str, code: u16, body: Option<&str>) -> Vec<u8> {
    let mut r = Response::to(req.as_bytes(), code, "Whatever").tag("bob9");
    if (180..300).contains(&code) && req.starts_with("INVITE ") {
        r = r
            .header("Record-Route", "<sip:203.0.113.10:5060;lr;ph=1f>")
            .header("Record-Route", "<sip:10.2.0.2:5060;lr>")
            .contact("sip:bob@198.51.100.2:20000");
    }
    r.sdp_opt(body).build()
}

/// An INVITE as the MPR forwards it to a callee: two Vias (the MPR's on
/// top, with rport filled), a Record-Route, an offer naming `relay`.
fn incoming_invite(branch: &str, body: Option<&str>) -> Vec<u8> {
    Request::new("INVITE", "sip:alice@corp1.example")
        .via("203.0.113.10:5060", branch)
        .header(
            "Via",
            "SIP/2.0/UDP 10.2.0.10:5060;branch=z9hG4bKbob;received=198.51.100.2;rport=20000",
        )
        .header("Record-Route", "<sip:203.0.113.10:5060;lr;ph=2a>")
        .max_forwards(69)
        .from("\"Bob\" <sip:bob@corp2.example>;tag=b0b")
        .to("<sip:alice@corp1.example>")
        .call_id("call-in-1")
        .cseq(10)
        .contact("sip:bob@198.51.100.2:20000")
        .sdp_opt(body)
        .build()
}

/// An in-dialog request from the callee side toward us (we answered).
fn from_peer(method: &str, our_tag: &str, cseq: u32, branch: &str, body: Option<&str>) -> Vec<u8> {
    Request::new(method, "sip:alice@198.51.100.1:20000")
        .via("203.0.113.10:5060", branch)
        .max_forwards(69)
        .from("\"Bob\" <sip:bob@corp2.example>;tag=b0b")
        .to(&format!("<sip:alice@corp1.example>;tag={our_tag}"))
        .call_id("call-in-1")
        .cseq(cseq)
        .sdp_opt(body)
        .build()
}

/// A caller whose INVITE is out; returns the INVITE's text.
fn calling(ua: &mut Ua, now: Instant) -> String {
    ua.call(now, "sip:bob@corp2.example").unwrap();
    let out = drain(ua);
    if ua.config().mode == MediaMode::Pinhole {
        assert!(sip(&out).is_empty(), "no SIP before the pinhole");
        ua.pinhole_opened(now, Some(a(PINHOLE)));
    }
    let out = [out, drain(ua)].concat();
    let s = sip(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    s[0].1.clone()
}

#[test]
fn caller_reserves_first_then_offers_the_pinhole_in_a_well_formed_invite() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    u.call(now, "bob@corp2.example").unwrap();
    assert_eq!(u.state(), CallState::Reserving);
    let out = drain(&mut u);
    let [Output::OpenPinhole(req)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (req.local, req.relay, req.inside, req.rtcp),
        (a(MEDIA), None, None, RtcpMode::Mux)
    );
    assert!(!req.key.is_empty() && req.key.len() <= 64);
    assert_eq!(u.call(now, "sip:carol@corp2.example"), Err(UaError::Busy));

    u.pinhole_opened(now, Some(a(PINHOLE)));
    let s = sip(&drain(&mut u));
    assert_eq!(s.len(), 1);
    let (to, text) = &s[0];
    assert_eq!(*to, a(PROXY), "everything goes to the MPR");
    let m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert!(text.starts_with("INVITE sip:bob@corp2.example SIP/2.0\r\n"));
    let via = &m.vias()[0];
    assert_eq!(via.rport, Some(None), "rport asked for");
    assert!(branch_of(text).starts_with("z9hG4bK"));
    assert_eq!(&text.as_bytes()[via.sent_by.clone()], SIP.as_bytes());
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert!(m.from_tag().is_some() && m.to_tag().is_none());
    assert!(m.call_id().is_some());
    assert_eq!(m.cseq(), Some((1, "INVITE")));
    assert_eq!(
        header(text, HeaderName::Contact),
        "<sip:alice@10.1.0.10:5060>"
    );
    assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
    assert_eq!(m.content_length(), Some(m.body().len()));
    assert_eq!(media::media_of(&m, a(SIP).ip()), Some(a(PINHOLE)));
    assert!(text.ends_with("a=rtcp-mux\r\na=sendrecv\r\n"));
    assert_eq!(u.state(), CallState::Calling);
    assert_eq!(u.local_media(), Some(a(PINHOLE)));
}

#[test]
fn caller_dialog_ack_route_retransmitted_200_and_bye() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    u.set_contact(a("198.51.100.1:20000"));
    let invite = calling(&mut u, now);
    assert!(invite.contains("Contact: <sip:alice@198.51.100.1:20000>\r\n"));

    u.handle_sip(now, a(PROXY), &respond(&invite, 100, None))
        .unwrap();
    u.handle_sip(now, a(PROXY), &respond(&invite, 180, None))
        .unwrap();
    assert_eq!(events(&drain(&mut u)), [UaEvent::Ringing]);
    assert_eq!(u.state(), CallState::Ringing);

    let ok = respond(&invite, 200, Some(&sdp(RELAY)));
    u.handle_sip(now, a(PROXY), &ok).unwrap();
    let out = drain(&mut u);
    assert_eq!(
        events(&out),
        [UaEvent::Established {
            remote_media: a(RELAY)
        }]
    );
    let s = sip(&out);
    assert_eq!(s.len(), 1);
    let ack = &s[0].1;
    assert!(
        ack.starts_with("ACK sip:bob@198.51.100.2:20000 SIP/2.0\r\n"),
        "{ack}"
    );
    assert_eq!(
        header(ack, HeaderName::Route),
        "<sip:10.2.0.2:5060;lr>, <sip:203.0.113.10:5060;lr;ph=1f>",
        "the Record-Route set reversed"
    );
    assert!(ack.contains("CSeq: 1 ACK\r\n"));
    assert!(ack.contains(";tag=bob9\r\n"), "To carries the callee's tag");
    assert_ne!(
        branch_of(ack),
        branch_of(&invite),
        "a 2xx ACK is a new transaction"
    );
    assert_eq!(u.state(), CallState::Confirmed);
    assert_eq!(u.remote_media(), Some(a(RELAY)));

    // The 200 again (our ACK was lost): the same ACK again.
    u.handle_sip(now, a(PROXY), &ok).unwrap();
    let again = sip(&drain(&mut u));
    assert_eq!(again, s);

    u.hangup(now).unwrap();
    let s = sip(&drain(&mut u));
    let bye = &s[0].1;
    assert!(bye.starts_with("BYE sip:bob@198.51.100.2:20000 SIP/2.0\r\n"));
    assert!(bye.contains("CSeq: 2 BYE\r\n"));
    assert_eq!(
        header(bye, HeaderName::Route),
        header(ack, HeaderName::Route)
    );
    assert_eq!(u.state(), CallState::Terminating);
    u.handle_sip(now, a(PROXY), &respond(bye, 200, None))
        .unwrap();
    let out = drain(&mut u);
    assert_eq!(closes(&out), 1, "the pinhole is closed");
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::LocalBye
        }]
    );
    assert_eq!(u.state(), CallState::Idle);
    assert_eq!(u.poll_timeout(), None, "nothing left to retransmit");
}

#[test]
fn invite_is_retransmitted_with_doubling_intervals_until_a_provisional() {
    let t0 = Instant::now();
    let mut u = ua(MediaMode::Direct);
    let invite = calling(&mut u, t0);
    let mut at = Vec::new();
    let mut now = t0;
    while let Some(t) = u.poll_timeout() {
        if t > t0 + Duration::from_secs(5) {
            break;
        }
        now = t;
        u.handle_timeout(now);
        if let [(_, again)] = &sip(&drain(&mut u))[..] {
            assert_eq!(*again, invite, "the same bytes");
            at.push(now - t0);
        }
    }
    let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [500, 1500, 3500], "timer A: T1, 2·T1, 4·T1");
    u.handle_sip(now, a(PROXY), &respond(&invite, 100, None))
        .unwrap();
    u.handle_timeout(now + Duration::from_secs(60));
    assert!(sip(&drain(&mut u)).is_empty(), "a provisional stops them");
    assert_eq!(u.state(), CallState::Calling, "and the call may ring on");
}

#[test]
fn unanswered_invite_times_out_after_64_t1() {
    let t0 = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    calling(&mut u, t0);
    u.handle_timeout(t0 + Duration::from_secs(31));
    assert!(events(&drain(&mut u)).is_empty());
    u.handle_timeout(t0 + Duration::from_secs(32));
    let out = drain(&mut u);
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::Timeout
        }]
    );
    assert_eq!(closes(&out), 1);
    assert_eq!(u.state(), CallState::Idle);
}

#[test]
fn a_rejected_call_is_acked_on_the_invite_branch() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    let invite = calling(&mut u, now);
    u.handle_sip(now, a(PROXY), &respond(&invite, 486, None))
        .unwrap();
    let out = drain(&mut u);
    let s = sip(&out);
    let ack = &s[0].1;
    assert!(ack.starts_with("ACK sip:bob@corp2.example SIP/2.0\r\n"));
    assert_eq!(
        branch_of(ack),
        branch_of(&invite),
        "§17.1.1.3: the INVITE's branch"
    );
    assert!(ack.contains("CSeq: 1 ACK\r\n") && ack.contains("tag=bob9"));
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::Rejected(486)
        }]
    );
    assert_eq!(closes(&out), 1);
}

#[test]
fn cancel_while_ringing_ends_with_487() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    let invite = calling(&mut u, now);
    u.handle_sip(now, a(PROXY), &respond(&invite, 180, None))
        .unwrap();
    drain(&mut u);
    u.hangup(now).unwrap();
    let s = sip(&drain(&mut u));
    let cancel = &s[0].1;
    assert!(cancel.starts_with("CANCEL sip:bob@corp2.example SIP/2.0\r\n"));
    assert!(cancel.contains("CSeq: 1 CANCEL\r\n"));
    assert_eq!(branch_of(cancel), branch_of(&invite));
    assert_eq!(u.state(), CallState::Cancelling);
    u.handle_sip(now, a(PROXY), &respond(cancel, 200, None))
        .unwrap();
    assert!(drain(&mut u).is_empty());
    u.handle_sip(now, a(PROXY), &respond(&invite, 487, None))
        .unwrap();
    let out = drain(&mut u);
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::Cancelled
        }]
    );
    assert!(sip(&out)[0].1.starts_with("ACK "));
}

#[test]
fn caller_pinhole_failure_ends_the_call_before_any_sip() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    u.call(now, "sip:bob@corp2.example").unwrap();
    drain(&mut u);
    u.pinhole_failed(now);
    let out = drain(&mut u);
    assert!(sip(&out).is_empty());
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::PinholeFailed
        }]
    );
}

/// A callee that took `invite` and has its pinhole open; returns the
/// outputs of both steps.
fn answering(u: &mut Ua, now: Instant, invite: &[u8]) -> (Vec<Output>, Vec<Output>) {
    u.handle_sip(now, a(PROXY), invite).unwrap();
    let first = drain(u);
    u.pinhole_opened(now, Some(a(PINHOLE)));
    (first, drain(u))
}

#[test]
fn callee_rings_binds_toward_the_offered_relay_then_answers_with_its_pinhole() {
    let t0 = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    let invite = incoming_invite("z9hG4bKmpr1", Some(&sdp(RELAY)));
    u.handle_sip(t0, a(PROXY), &invite).unwrap();
    let out = drain(&mut u);
    assert!(
        matches!(&events(&out)[..], [UaEvent::Incoming { from }] if from.contains("sip:bob@corp2.example"))
    );
    let s = sip(&out);
    assert_eq!(s.len(), 1);
    let (to, ringing) = &s[0];
    assert_eq!(*to, a(PROXY), "back to the top Via (rport)");
    assert!(ringing.starts_with("SIP/2.0 180 Ringing\r\n"));
    let m = Message::parse(invite.as_slice()).unwrap();
    let r = Message::parse(ringing.as_bytes()).unwrap();
    assert_eq!(r.vias().len(), 2, "every Via copied");
    assert_eq!(header(ringing, HeaderName::Via), {
        let t = String::from_utf8(invite.clone()).unwrap();
        header(&t, HeaderName::Via)
    });
    assert_eq!(
        header(ringing, HeaderName::RecordRoute),
        "<sip:203.0.113.10:5060;lr;ph=2a>"
    );
    assert_eq!(r.call_id(), m.call_id());
    assert_eq!(r.from_tag(), Some(&b"b0b"[..]));
    let tag = r.to_tag().unwrap().to_vec();
    let req = out
        .iter()
        .find_map(|o| match o {
            Output::OpenPinhole(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(req.relay, Some(a(RELAY)), "bind toward the offer's relay");
    assert_eq!(req.inside, None);
    assert_eq!(u.state(), CallState::Binding);

    u.pinhole_opened(t0, Some(a(PINHOLE)));
    let s = sip(&drain(&mut u));
    let ok = s[0].1.clone();
    let o = Message::parse(ok.as_bytes()).unwrap();
    assert_eq!(o.status(), Some(200));
    assert_eq!(o.to_tag(), Some(tag.as_slice()), "the same tag as the 180");
    assert_eq!(o.cseq(), Some((10, "INVITE")));
    assert_eq!(media::media_of(&o, a(SIP).ip()), Some(a(PINHOLE)));
    assert_eq!(o.content_length(), Some(o.body().len()));
    assert_eq!(u.state(), CallState::Answered);
    assert_eq!(u.hangup(t0), Err(UaError::NotYet), "no BYE before the ACK");

    // No ACK yet: the 200 goes again at T1, then 2·T1.
    u.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(sip(&drain(&mut u))[0].1, ok);
    u.handle_timeout(t0 + Duration::from_millis(1400));
    assert!(sip(&drain(&mut u)).is_empty());
    u.handle_timeout(t0 + Duration::from_millis(1500));
    assert_eq!(sip(&drain(&mut u))[0].1, ok);

    let tag = String::from_utf8(tag).unwrap();
    let ack = from_peer("ACK", &tag, 10, "z9hG4bKack", None);
    u.handle_sip(t0, a(PROXY), &ack).unwrap();
    assert_eq!(
        events(&drain(&mut u)),
        [UaEvent::Established {
            remote_media: a(RELAY)
        }]
    );
    assert_eq!(u.state(), CallState::Confirmed);
    u.handle_timeout(t0 + Duration::from_secs(10));
    assert!(sip(&drain(&mut u)).is_empty(), "the ACK stopped the 200s");

    let bye = from_peer("BYE", &tag, 11, "z9hG4bKbye", None);
    u.handle_sip(t0, a(PROXY), &bye).unwrap();
    let out = drain(&mut u);
    let s = sip(&out);
    assert!(s[0].1.starts_with("SIP/2.0 200 OK\r\n") && s[0].1.contains("CSeq: 11 BYE"));
    assert_eq!(closes(&out), 1);
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::RemoteBye
        }]
    );
    // The BYE again (our 200 was lost): the same 200 again.
    u.handle_sip(t0, a(PROXY), &bye).unwrap();
    assert_eq!(sip(&drain(&mut u)), s);
}

#[test]
fn callee_answers_a_late_offer_and_takes_the_answer_from_the_ack() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    let (first, second) = answering(&mut u, now, &incoming_invite("z9hG4bKlate", None));
    let req = first
        .iter()
        .find_map(|o| match o {
            Output::OpenPinhole(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(req.relay, None, "no offer: reserve a relay port");
    let ok = &sip(&second)[0].1;
    let tag = {
        let m = Message::parse(ok.as_bytes()).unwrap();
        assert_eq!(
            media::media_of(&m, a(SIP).ip()),
            Some(a(PINHOLE)),
            "we offer"
        );
        String::from_utf8(m.to_tag().unwrap().to_vec()).unwrap()
    };
    let ack = from_peer("ACK", &tag, 10, "z9hG4bKack2", Some(&sdp(RELAY)));
    u.handle_sip(now, a(PROXY), &ack).unwrap();
    assert_eq!(
        events(&drain(&mut u)),
        [UaEvent::Established {
            remote_media: a(RELAY)
        }]
    );
}

#[test]
fn callee_refuses_a_second_call_and_unknown_dialogs() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Direct);
    let (first, second) = answering(
        &mut u,
        now,
        &incoming_invite("z9hG4bKone", Some(&sdp(RELAY))),
    );
    assert_eq!(u.state(), CallState::Answered);
    assert!(second.is_empty(), "a plain phone answers at once");
    let s = sip(&first);
    assert!(s[0].1.starts_with("SIP/2.0 180 Ringing") && s[1].1.starts_with("SIP/2.0 200 OK"));
    let other = String::from_utf8(incoming_invite("z9hG4bKtwo", Some(&sdp(RELAY))))
        .unwrap()
        .replace("call-in-1", "call-in-2");
    u.handle_sip(now, a(PROXY), other.as_bytes()).unwrap();
    assert!(
        sip(&drain(&mut u))[0]
            .1
            .starts_with("SIP/2.0 486 Busy Here\r\n")
    );
    let stray = from_peer("BYE", "not-ours", 3, "z9hG4bKstray", None);
    u.handle_sip(now, a(PROXY), &stray).unwrap();
    assert!(sip(&drain(&mut u))[0].1.starts_with("SIP/2.0 481 "));
    assert_eq!(u.state(), CallState::Answered, "the call goes on");
    let options = String::from_utf8(incoming_invite("z9hG4bKopt", None))
        .unwrap()
        .replace("INVITE", "OPTIONS");
    u.handle_sip(now, a(PROXY), options.as_bytes()).unwrap();
    let ok = &sip(&drain(&mut u))[0].1;
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n") && ok.contains("Allow: INVITE"));
    let message = options.replace("OPTIONS", "MESSAGE");
    u.handle_sip(now, a(PROXY), message.as_bytes()).unwrap();
    assert!(sip(&drain(&mut u))[0].1.starts_with("SIP/2.0 405 "));
}

#[test]
fn cancel_before_the_pinhole_opened_answers_487() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    let invite = incoming_invite("z9hG4bKc1", Some(&sdp(RELAY)));
    u.handle_sip(now, a(PROXY), &invite).unwrap();
    drain(&mut u);
    let cancel = String::from_utf8(invite)
        .unwrap()
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("10 INVITE", "10 CANCEL");
    u.handle_sip(now, a(PROXY), cancel.as_bytes()).unwrap();
    let out = drain(&mut u);
    let s = sip(&out);
    assert!(s[0].1.starts_with("SIP/2.0 200 OK\r\n") && s[0].1.contains("CSeq: 10 CANCEL"));
    assert!(s[1].1.starts_with("SIP/2.0 487 ") && s[1].1.contains("CSeq: 10 INVITE"));
    assert_eq!(closes(&out), 1);
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::Cancelled
        }]
    );
    // The pinhole opening late changes nothing.
    u.pinhole_opened(now, Some(a(PINHOLE)));
    assert!(drain(&mut u).is_empty());
}

#[test]
fn callee_pinhole_failure_answers_503() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Pinhole);
    u.handle_sip(
        now,
        a(PROXY),
        &incoming_invite("z9hG4bKf", Some(&sdp(RELAY))),
    )
    .unwrap();
    drain(&mut u);
    u.pinhole_failed(now);
    let out = drain(&mut u);
    assert!(sip(&out)[0].1.starts_with("SIP/2.0 503 "));
    assert_eq!(
        events(&out),
        [UaEvent::Ended {
            why: EndReason::PinholeFailed
        }]
    );
}

#[test]
fn a_200_never_acked_ends_with_a_bye() {
    let t0 = Instant::now();
    let mut u = ua(MediaMode::Direct);
    answering(
        &mut u,
        t0,
        &incoming_invite("z9hG4bKnoack", Some(&sdp(RELAY))),
    );
    u.handle_timeout(t0 + Duration::from_secs(32));
    let s = sip(&drain(&mut u));
    let bye = &s.last().unwrap().1;
    assert!(
        bye.starts_with("BYE sip:bob@198.51.100.2:20000 SIP/2.0\r\n"),
        "{bye}"
    );
    assert_eq!(
        header(bye, HeaderName::Route),
        "<sip:203.0.113.10:5060;lr;ph=2a>"
    );
    assert!(bye.contains("From: <sip:alice@corp1.example>;tag="));
    assert!(bye.contains("To: \"Bob\" <sip:bob@corp2.example>;tag=b0b\r\n"));
    assert!(bye.contains("CSeq: 1 BYE\r\n"));
}

#[test]
fn a_strict_first_route_takes_the_request_uri() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Direct);
    let invite = calling(&mut u, now);
    let ok = String::from_utf8(respond(&invite, 200, Some(&sdp(RELAY))))
        .unwrap()
        .replace("<sip:10.2.0.2:5060;lr>", "<sip:10.2.0.2:5060>");
    u.handle_sip(now, a(PROXY), ok.as_bytes()).unwrap();
    let ack = &sip(&drain(&mut u))[0].1;
    assert!(
        ack.starts_with("ACK sip:10.2.0.2:5060 SIP/2.0\r\n"),
        "{ack}"
    );
    let m = Message::parse(ack.as_bytes()).unwrap();
    let h = m.header(HeaderName::Route).unwrap();
    let routes: Vec<&[u8]> = name_addrs(ack.as_bytes(), h.value.clone())
        .unwrap()
        .into_iter()
        .map(|n| &ack.as_bytes()[n.uri])
        .collect();
    assert_eq!(
        routes,
        [
            &b"sip:203.0.113.10:5060;lr;ph=1f"[..],
            &b"sip:bob@198.51.100.2:20000"[..]
        ],
        "RFC 3261 §12.2.1.1: the remote target goes last"
    );
}

#[test]
fn bad_targets_and_garbage_are_errors() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Direct);
    assert!(matches!(
        u.call(now, "tel:+15551234"),
        Err(UaError::BadUri(_))
    ));
    assert!(matches!(u.call(now, "sip:"), Err(UaError::BadUri(_))));
    assert!(matches!(
        u.handle_sip(now, a(PROXY), b"HELLO\r\n\r\n"),
        Err(UaError::Parse(_))
    ));
    assert_eq!(
        u.handle_sip(now, a(PROXY), b"\r\n\r\n"),
        Ok(()),
        "a keepalive"
    );
    assert_eq!(u.hangup(now), Err(UaError::NoCall));
    assert!(drain(&mut u).is_empty());
}

#[test]
fn error_kinds_are_stable_snake_case_labels() {
    let now = Instant::now();
    let mut u = ua(MediaMode::Direct);
    let parse = u.handle_sip(now, a(PROXY), b"HELLO\r\n\r\n").unwrap_err();
    let cases = [
        (UaError::Busy, "busy"),
        (UaError::NoCall, "no_call"),
        (UaError::NotYet, "not_yet"),
        (u.call(now, "tel:+15551234").unwrap_err(), "bad_uri"),
        (parse, "parse"),
        (UaError::Missing("CSeq"), "missing"),
    ];
    for (e, kind) in cases {
        assert_eq!(e.kind(), kind, "{e}");
    }
}

/// Messages a peer could send at any point of a call.
fn corpus() -> Vec<Vec<u8>> {
    let invite = Request::new("INVITE", "sip:bob@corp2.example")
        .via("10.1.0.10:5060", "z9hG4bKx")
        .from("<sip:alice@corp1.example>;tag=t")
        .to("<sip:bob@corp2.example>")
        .call_id("c")
        .cseq(1)
        .to_string();
    let invite = invite.as_str();
    vec![
        incoming_invite("z9hG4bKp1", Some(&sdp(RELAY))),
        incoming_invite("z9hG4bKp2", None),
        from_peer("BYE", "x", 2, "z9hG4bKp3", None),
        from_peer("ACK", "x", 1, "z9hG4bKp4", Some(&sdp(RELAY))),
        respond(invite, 180, None),
        respond(invite, 200, Some(&sdp(RELAY))),
        respond(invite, 486, None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes, or a real message with bytes overwritten, in any
    /// call state: an error at worst, never a panic, and whatever the UA
    /// sends in reply is SIP it can parse itself.
    #[test]
    fn hostile_input_never_panics(
        state in 0u8..4,
        pick in 0usize..7,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        junk in proptest::collection::vec(any::<u8>(), 0..300),
        use_junk in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut u = ua(if state % 2 == 0 { MediaMode::Pinhole } else { MediaMode::Direct });
        match state {
            0 | 1 => { calling(&mut u, now); }
            2 => { answering(&mut u, now, &incoming_invite("z9hG4bKs", Some(&sdp(RELAY)))); }
            _ => {}
        }
        drain(&mut u);
        let mut m = corpus().swap_remove(pick);
        for (i, b) in edits {
            let at = i.index(m.len());
            m[at] = b;
        }
        let input = if use_junk { junk } else { m };
        let _ = u.handle_sip(now, a(PROXY), &input);
        u.handle_timeout(now + Duration::from_secs(40));
        for o in drain(&mut u) {
            if let Output::Sip { bytes, .. } = o {
                prop_assert!(Message::parse(&bytes).is_ok(), "{}", String::from_utf8_lossy(&bytes));
            }
        }
    }
}
