//! Bodies of the `sip_parse`, `sip_proxy` and `framing_next_sip` fuzz
//! targets under `fuzz/`, kept here so that they compile with the crate and
//! the checked-in corpus runs as an ordinary test.
//!
//! They panic when a property fails: that is how a fuzzer reports a finding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Range;

use pinhole_core::alg::live::{LiveClient, LiveMpr, NoSockets};
use pinhole_core::patch::Patch;

use crate::{Frame, HeaderName, Message, Uri, fix_content_length, frame, name_addrs};

fn inside(r: &Range<usize>, outer: &Range<usize>) -> bool {
    r.start <= r.end && outer.start <= r.start && r.end <= outer.end
}

/// Parses `data` as a datagram and as a stream; checks every accessor's
/// spans stay inside the buffer and that a Content-Length fix after a body
/// edit yields a message that re-parses with the new length.
pub fn sip_parse(data: &[u8]) {
    stream(data);
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    check(&msg);
    grow_body(&msg);
}

/// Body of the `framing_next_sip` fuzz target: `data` (after a first byte
/// that seeds the chunk sizes) as a stream of SIP and control messages fed
/// whole, in random chunks and byte by byte, through
/// `pinhole_core::framing::next(.., Some(stream_frame))`; see
/// `pinhole_core::fuzzing::framing_stream` for the invariants. Returns the
/// number of messages framed.
pub fn framing_next_sip(data: &[u8]) -> usize {
    pinhole_core::fuzzing::framing_stream(data, Some(crate::stream_frame))
}

/// Frames `data` as a stream until it needs more bytes or fails.
fn stream(data: &[u8]) {
    let mut rest = data;
    // Each frame consumes at least one byte, so this ends.
    while let Ok(Some(f)) = frame(rest) {
        let (Frame::Keepalive(n) | Frame::Message(n)) = f;
        assert!(n > 0 && n <= rest.len(), "frame of {n} in {}", rest.len());
        if let Frame::Message(n) = f
            && let Ok(m) = Message::parse(&rest[..n])
        {
            // A framed message has its Content-Length body exactly.
            assert_eq!(m.body().end, n);
            assert!(m.trailing().is_empty());
        }
        rest = &rest[n..];
    }
}

fn check(msg: &Message<'_>) {
    let buf = msg.buf();
    let all = 0..buf.len();
    let mut prev = 0;
    for h in msg.headers() {
        assert!(inside(&h.line, &all) && h.line.start >= prev);
        assert!(inside(&h.name_span, &h.line) && inside(&h.value, &h.line));
        prev = h.line.end;
        let _ = msg.value(h);
        if matches!(
            h.name,
            HeaderName::From
                | HeaderName::To
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
        ) && let Ok(list) = name_addrs(buf, h.value.clone())
        {
            for na in list {
                assert!(inside(&na.uri, &h.value) && inside(&na.params, &h.value));
                let _ = Uri::parse(buf, na.uri.clone()).map(|u| {
                    assert!(inside(&u.host, &na.uri));
                    u.params(buf).count()
                });
                let _ = na.tag(buf);
            }
        }
    }
    assert!(prev <= msg.headers_end());
    let body = msg.body();
    assert!(msg.headers_end() <= body.start && inside(&body, &all));
    assert_eq!(msg.trailing(), body.end..buf.len());
    if let Some(uri) = msg.request_uri() {
        assert!(inside(&uri, &all));
        let _ = Uri::parse(buf, uri);
    }
    let _ = (
        msg.method(),
        msg.status(),
        msg.reason(),
        msg.version(),
        msg.is_request(),
    );
    let _ = (msg.call_id(), msg.cseq(), msg.from_tag(), msg.to_tag());
    let _ = (msg.content_type(), msg.max_forwards(), msg.line_ending());
    for v in msg.vias() {
        assert!(inside(&v.span, &all) && inside(&v.host, &v.span) && v.params_end <= v.span.end);
    }
    if let Ok(sdps) = msg.sdp_bodies() {
        for s in sdps {
            assert!(inside(&s, &body));
        }
    }
}

/// Appends a byte to the body and fixes Content-Length.
fn grow_body(msg: &Message<'_>) {
    let buf = msg.buf();
    let body = msg.body();
    if msg.headers_end() == body.start {
        return; // no empty line: no body to grow
    }
    let mut patch = Patch::new();
    patch.insert(body.end, b"x");
    fix_content_length(msg, &mut patch);
    let out = patch.apply(buf).expect("edits are inside the message");
    let again = Message::parse(&out).expect("a fixed message parses");
    assert_eq!(again.body().len(), body.len() + 1);
    assert_eq!(again.content_length(), Some(body.len() + 1));
    assert_eq!(&out[again.trailing()], &buf[msg.trailing()]);
}

/// Body of the `sip_proxy` fuzz target: `data` arrives at the MPR's SIP
/// proxy (from the public side and from a registered network's pinhole)
/// and at an APS's (from the MPR and from inside), each with its engine.
/// Nothing may panic, and every datagram a proxy sends still parses as SIP
/// (a proxy never turns a message it accepted into garbage), but the 400
/// the MPR answers a request that failed the parse with, which copies that
/// request's Via, From, To, Call-ID and CSeq lines as they came.
pub fn sip_proxy(data: &[u8]) {
    use std::net::SocketAddr;
    use std::time::Duration;

    use pinhole_core::alg::{ClientSignaling, MprSignaling};
    use pinhole_core::types::Receive;
    use pinhole_core::wire::Protocol;
    use pinhole_core::{client, mpr, ports::PortRange};

    use crate::alg::{Aps, ApsConfig, Mpr, MprConfig};

    let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let now = crate::fuzz_instant();
    let mut mc = mpr::Config::new(a("203.0.113.10:0").ip(), [1; 32]);
    let mut n = mpr::NetworkConfig::new("corp2", b"s".to_vec());
    n.domains.push("corp2.example".into());
    mc.networks.push(n);
    let mut engine = mpr::Engine::new(mc, now).unwrap();
    let mut mp = Mpr::new(MprConfig::new(a("203.0.113.10:5060"), [5; 32]));
    let cc = client::Config::new(
        "corp2",
        b"s".to_vec(),
        Protocol::Sip,
        a("10.2.0.2:5060"),
        a("203.0.113.10:5060"),
        [2; 32],
    );
    let mut ce = client::Engine::new(cc, now).unwrap();
    let mut pc = ApsConfig::new(
        a("10.2.0.2:5060"),
        a("10.2.0.2:0").ip(),
        PortRange::new(20_000, 20_099).unwrap(),
        [3; 32],
    );
    pc.inside_default = Some(a("10.2.0.10:5060"));
    let mut ap = Aps::new(pc);
    let garbage = Message::parse(data).is_err();
    let sent_ok = |bytes: &[u8]| {
        // Keepalive pongs are CRLF only; everything else is SIP.
        if !bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            let refused =
                garbage && bytes.starts_with(b"SIP/2.0 400 ") && bytes.len() <= data.len();
            assert!(
                refused || Message::parse(bytes).is_ok(),
                "a proxy sent unparsable SIP"
            );
        }
    };
    for remote in ["192.0.2.9:5060", "198.51.100.2:5060"] {
        let rx = Receive {
            local: a("203.0.113.10:5060"),
            remote: a(remote),
            bytes: data,
            flow: Default::default(),
        };
        mp.handle_datagram(now, &mut LiveMpr::new(&mut engine, &mut NoSockets), rx);
        while let Some(t) = mp.poll_transmit() {
            sent_ok(&t.payload);
        }
    }
    for remote in ["203.0.113.10:5060", "10.2.0.10:5060"] {
        let rx = Receive {
            local: a("10.2.0.2:5060"),
            remote: a(remote),
            bytes: data,
            flow: Default::default(),
        };
        ap.handle_datagram(now, &mut LiveClient::new(&mut ce, &mut NoSockets), rx);
        while let Some(t) = ap.poll_transmit() {
            sent_ok(&t.payload);
        }
    }
    mp.handle_timeout(
        now + Duration::from_secs(3600),
        &mut LiveMpr::new(&mut engine, &mut NoSockets),
    );
    ap.handle_timeout(
        now + Duration::from_secs(3600),
        &mut LiveClient::new(&mut ce, &mut NoSockets),
    );
    refused(data, &sent_ok);
}

/// An APS whose every media pinhole is granted, then fails: `data` from
/// inside (after an INVITE from the MPR of its dialog, when it is a
/// response) reaches the refusals (503, a 2xx turned into a 503 with ACK
/// and BYE to the phone), whose messages must parse too.
fn refused(data: &[u8], sent_ok: &dyn Fn(&[u8])) {
    use std::net::SocketAddr;

    use pinhole_core::alg::{ClientContext, ClientSignaling};
    use pinhole_core::client::{ClientError, Event, Failure, PinholeId, PinholeRequest};
    use pinhole_core::ports::PortRange;
    use pinhole_core::types::Receive;

    use crate::alg::{Aps, ApsConfig};

    struct Grant(u64);
    impl ClientContext for Grant {
        fn open_pinhole(
            &mut self,
            _: std::time::Instant,
            _: PinholeRequest,
        ) -> Result<PinholeId, ClientError> {
            self.0 += 1;
            Ok(PinholeId(self.0))
        }
        fn close_pinhole(&mut self, _: PinholeId) -> Result<(), ClientError> {
            Ok(())
        }
        fn registered_pinhole(&self) -> Option<SocketAddr> {
            "198.51.100.2:5060".parse().ok()
        }
        fn mpr(&self) -> SocketAddr {
            SocketAddr::from(([203, 0, 113, 10], 5060))
        }
        fn signaling(&self) -> SocketAddr {
            SocketAddr::from(([10, 2, 0, 2], 5060))
        }
    }

    let now = crate::fuzz_instant();
    let mut ctx = Grant(0);
    let (me, phone) = (ctx.signaling(), SocketAddr::from(([10, 2, 0, 10], 5060)));
    let mut cfg = ApsConfig::new(
        me,
        me.ip(),
        PortRange::new(20_000, 20_099).unwrap(),
        [6; 32],
    );
    cfg.inside_default = Some(phone);
    let mut ap = Aps::new(cfg);
    let feed = |ap: &mut Aps, ctx: &mut Grant, remote, bytes: &[u8]| {
        let rx = Receive {
            local: me,
            remote,
            bytes,
            flow: Default::default(),
        };
        ap.handle_datagram(now, ctx, rx);
        while let Some(t) = ap.poll_transmit() {
            sent_ok(&t.payload);
        }
    };
    if let Ok(m) = Message::parse(data)
        && !m.is_request()
        && let (Some(call_id), Some(tag)) = (m.call_id(), m.from_tag())
    {
        let invite = [
            &b"INVITE sip:b@corp2.example SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKph1\r\nCall-ID: "[..],
            call_id,
            b"\r\nFrom: <sip:a@x>;tag=",
            tag,
            b"\r\nTo: <sip:b@corp2.example>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        let mpr = ctx.mpr();
        feed(&mut ap, &mut ctx, mpr, &invite);
    }
    feed(&mut ap, &mut ctx, phone, data);
    for id in 1..=ctx.0 {
        let ev = Event::PinholeFailed {
            id: PinholeId(id),
            failure: Failure::Timeout,
        };
        ap.handle_event(now, &mut ctx, &ev);
        while let Some(t) = ap.poll_transmit() {
            sent_ok(&t.payload);
        }
    }
    // A retransmission after the refusal.
    feed(&mut ap, &mut ctx, phone, data);
}
