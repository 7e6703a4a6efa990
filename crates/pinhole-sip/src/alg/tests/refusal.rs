//! The APS refuses a held message whose media pinhole failed, against a
//! scripted client engine: a request gets one 503 and no second CMPH, a
//! 2xx becomes a 503 toward the MPR while the phone gets ACK and BYE, and
//! only the phone's next message tries again.

use pinhole_core::alg::AlgEvent;
use pinhole_core::alg::{ClientContext, ClientSignaling};
use pinhole_core::client::{ClientError, Event, Failure, PinholeId, PinholeRequest};
use pinhole_core::types::{Receive, Transmit};

use super::*;

/// A client engine that records what the APS asks of it; the test says
/// how each pinhole ends.
#[derive(Default)]
struct Script {
    opened: Vec<PinholeRequest>,
    closed: Vec<PinholeId>,
}

impl ClientContext for Script {
    fn open_pinhole(&mut self, _: Instant, req: PinholeRequest) -> Result<PinholeId, ClientError> {
        self.opened.push(req);
        Ok(PinholeId(self.opened.len() as u64))
    }
    fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError> {
        self.closed.push(id);
        Ok(())
    }
    fn registered_pinhole(&self) -> Option<SocketAddr> {
        Some(a("198.51.100.1:40000"))
    }
    fn mpr(&self) -> SocketAddr {
        a(MPR)
    }
    fn signaling(&self) -> SocketAddr {
        a(APS1)
    }
}

fn failed(id: u64) -> Event {
    Event::PinholeFailed {
        id: PinholeId(id),
        failure: Failure::Timeout,
    }
}

fn opened(id: u64, public: &str) -> Event {
    Event::PinholeOpened {
        id: PinholeId(id),
        relay: a("203.0.113.10:30000"),
        pinhole: Some(a(public)),
        rtcp_pinhole: None,
    }
}

/// An APS at `local` (media on its IP) whose inside default is `phone`.
fn aps(local: &str, phone: &str) -> Aps {
    let mut pc = ApsConfig::new(
        a(local),
        a(local).ip(),
        PortRange::new(20_000, 20_099).unwrap(),
        [8; 32],
    );
    pc.inside_default = Some(a(phone));
    Aps::new(pc)
}

fn feed(aps: &mut Aps, ctx: &mut Script, now: Instant, from: &str, bytes: &[u8]) {
    let local = ctx.signaling();
    aps.handle_datagram(
        now,
        ctx,
        Receive {
            local,
            remote: a(from),
            bytes,
            flow: Default::default(),
        },
    );
}

fn sent(aps: &mut Aps) -> Vec<Transmit> {
    std::iter::from_fn(|| aps.poll_transmit()).collect()
}

fn status(t: &Transmit) -> Option<u16> {
    Message::parse(&t.payload).unwrap().status()
}

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

#[test]
fn a_held_invite_whose_pinhole_failed_gets_one_503_and_no_second_cmph() {
    let now = start();
    let mut ctx = Script::default();
    let mut aps = aps(APS1, PHONE_A);
    let inv = invite(&sdp(a(MEDIA_A)));
    feed(&mut aps, &mut ctx, now, PHONE_A, &inv);
    assert!(sent(&mut aps).is_empty(), "held until the pinhole opens");
    assert_eq!(ctx.opened.len(), 1, "one CMPH");
    assert_eq!(ctx.opened[0].inside, Some(a(MEDIA_A)));

    aps.handle_event(now, &mut ctx, &failed(1));
    let out = sent(&mut aps);
    assert_eq!(out.len(), 1, "exactly one answer");
    assert_eq!(out[0].remote, a(PHONE_A));
    let m = Message::parse(&out[0].payload).unwrap();
    assert_eq!(m.status(), Some(503));
    assert_eq!(m.reason(), Some(&b"Media Pinhole Failed"[..]));
    assert_eq!(m.cseq(), Some((1, "INVITE")));
    assert_eq!(
        ctx.opened.len(),
        1,
        "no second CMPH while the held INVITE resumes"
    );
    assert_eq!(
        ctx.closed,
        [PinholeId(1)],
        "the refused call's media is released"
    );
    assert_eq!(aps.stats().pinhole_failures, 1);
    assert_eq!(aps.stats().parked, 1);
    let Some(AlgEvent::PinholeFailed { leg_key }) = aps.poll_event() else {
        panic!("a PinholeFailed event")
    };
    // LEG-KEY `sip/<16 hex digits>/a/0`: stream 0 of the caller's side.
    let leg_key = String::from_utf8(leg_key).unwrap();
    let parts: Vec<&str> = leg_key.split('/').collect();
    assert_eq!(parts.len(), 4, "{leg_key}");
    assert_eq!((parts[0], parts[2], parts[3]), ("sip", "a", "0"));
    assert!(parts[1].len() == 16 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        ctx.opened[0].key,
        leg_key.as_bytes(),
        "the key the CMPH carried"
    );
    // Time passes: nothing tries again on its own.
    aps.handle_timeout(now + Duration::from_secs(60), &mut ctx);
    assert!(sent(&mut aps).is_empty());
    assert_eq!(ctx.opened.len(), 1);
}

#[test]
fn a_retransmitted_invite_after_the_refusal_starts_one_new_attempt() {
    let now = start();
    let mut ctx = Script::default();
    let mut aps = aps(APS1, PHONE_A);
    let inv = invite(&sdp(a(MEDIA_A)));
    feed(&mut aps, &mut ctx, now, PHONE_A, &inv);
    aps.handle_event(now, &mut ctx, &failed(1));
    assert_eq!(sent(&mut aps).len(), 1);

    // The phone sends its INVITE again: one new CMPH, held again.
    feed(&mut aps, &mut ctx, now, PHONE_A, &inv);
    assert!(sent(&mut aps).is_empty());
    assert_eq!(ctx.opened.len(), 2, "one new attempt");
    aps.handle_event(now, &mut ctx, &failed(2));
    let out = sent(&mut aps);
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [Some(503)]);
    assert_eq!(ctx.opened.len(), 2, "and no loop after it fails too");

    // A third try whose pinhole opens goes to the MPR with its address.
    feed(&mut aps, &mut ctx, now, PHONE_A, &inv);
    assert_eq!(ctx.opened.len(), 3);
    aps.handle_event(now, &mut ctx, &opened(3, "198.51.100.1:41000"));
    let out = sent(&mut aps);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, a(MPR));
    assert_eq!(
        sip::media_of(&out[0].payload).unwrap(),
        a("198.51.100.1:41000")
    );
    assert_eq!(aps.stats().pinhole_failures, 2);
    assert_eq!(aps.stats().pinholes, 3);
}

/// An INVITE from the MPR for B, with the relay address the MPR planned.
fn invite_from_mpr() -> Vec<u8> {
    Request::new("INVITE", "sip:bob@corp2.example")
        .via(MPR, "z9hG4bKph1.77")
        .header(
            "Via",
            format_args!(
                "SIP/2.0/UDP {PHONE_A};received=198.51.100.1;rport=5060;branch=z9hG4bK-a1"
            ),
        )
        .header("Record-Route", format_args!("<sip:{MPR};lr;ph=1>"))
        .max_forwards(69)
        .from("<sip:alice@corp1.example>;tag=alice1")
        .to("<sip:bob@corp2.example>")
        .call_id("refuse-2xx@10.1.0.10")
        .cseq(1)
        .contact(&format!("sip:alice@{PHONE_A}"))
        .sdp(&sdp(a("203.0.113.10:30000")))
        .build()
}

#[test]
fn a_held_2xx_whose_pinhole_failed_becomes_503_upstream_and_the_phone_gets_ack_and_bye() {
    let now = start();
    let mut ctx = Script::default();
    let mut aps = aps(APS2, PHONE_B);
    feed(&mut aps, &mut ctx, now, MPR, &invite_from_mpr());
    let out = sent(&mut aps);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remote, a(PHONE_B));
    let inv_b = out[0].payload.clone();
    assert_eq!(
        sip::media_of(&inv_b).unwrap().ip(),
        ip("10.2.0.2"),
        "port B"
    );

    // B's early media (183 with SDP) waits for its pinhole; the 200
    // queues behind it.
    let ringing = respond(&inv_b, 183, "Session Progress", Some(&sdp(a(MEDIA_B))));
    let ok = respond(&inv_b, 200, "OK", Some(&sdp(a(MEDIA_B))));
    feed(&mut aps, &mut ctx, now, PHONE_B, &ringing);
    feed(&mut aps, &mut ctx, now, PHONE_B, &ok);
    assert!(sent(&mut aps).is_empty());
    assert_eq!(ctx.opened.len(), 1);
    assert_eq!(ctx.opened[0].relay, Some(a("203.0.113.10:30000")));

    aps.handle_event(now, &mut ctx, &failed(1));
    let out = sent(&mut aps);
    assert_eq!(out.len(), 3, "503 up, ACK and BYE down; the 183 dropped");
    assert_eq!(ctx.opened.len(), 1, "no second CMPH");
    assert_eq!(ctx.closed, [PinholeId(1)], "the dialog's media is released");

    let refusal = Message::parse(&out[0].payload).unwrap();
    assert_eq!(out[0].remote, a(MPR), "back along the INVITE's path");
    assert_eq!(refusal.status(), Some(503));
    assert_eq!(refusal.reason(), Some(&b"Media Pinhole Failed"[..]));
    let vias = refusal.vias();
    assert_eq!(vias.len(), 2, "the APS's own Via popped");
    assert!(contains(
        &out[0].payload[vias[0].span.clone()],
        b"z9hG4bKph1.77"
    ));
    assert_eq!(refusal.to_tag(), Some(&b"bob1"[..]));
    assert_eq!(refusal.from_tag(), Some(&b"alice1"[..]));
    assert_eq!(refusal.cseq(), Some((1, "INVITE")));
    assert_eq!(refusal.content_length(), Some(0));
    assert!(!contains(&out[0].payload, b"m=audio"), "no body");

    let contact = format!("sip:bob@{PHONE_B}");
    for (t, method, cseq) in [(&out[1], "ACK", 1), (&out[2], "BYE", 2)] {
        assert_eq!(t.remote, a(PHONE_B), "to where the 2xx came from");
        let m = Message::parse(&t.payload).unwrap();
        assert_eq!(m.method(), Some(method));
        assert_eq!(&t.payload[m.request_uri().unwrap()], contact.as_bytes());
        assert_eq!(m.cseq(), Some((cseq, method)));
        assert_eq!(m.to_tag(), Some(&b"bob1"[..]));
        assert_eq!(m.vias().len(), 1);
        assert!(contains(
            &t.payload,
            format!("Via: SIP/2.0/UDP {APS2};").as_bytes()
        ));
    }
    let stats = aps.stats();
    assert_eq!((stats.pinhole_failures, stats.teardowns), (1, 1));

    // B answers the BYE, the caller ACKs the 503: both end at the APS.
    let malformed = stats.malformed;
    let bye_ok = respond(&out[2].payload, 200, "OK", None);
    feed(&mut aps, &mut ctx, now, PHONE_B, &bye_ok);
    let ack = String::from_utf8(invite_from_mpr())
        .unwrap()
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:bob@corp2.example>",
            "To: <sip:bob@corp2.example>;tag=bob1",
        );
    feed(&mut aps, &mut ctx, now, MPR, ack.as_bytes());
    assert!(sent(&mut aps).is_empty());
    assert_eq!(aps.stats().malformed, malformed);

    // B did not get our ACK and sends its 200 again: the same answer, and
    // still no new pinhole.
    feed(&mut aps, &mut ctx, now, PHONE_B, &ok);
    let again = sent(&mut aps);
    assert_eq!(
        again.iter().map(|t| &t.payload).collect::<Vec<_>>(),
        out.iter().map(|t| &t.payload).collect::<Vec<_>>()
    );
    assert_eq!(ctx.opened.len(), 1);
}
