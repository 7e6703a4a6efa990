//! Tokenizing a typical ~1 KB INVITE with SDP: `pinhole-sip` (parse +
//! Call-ID + CSeq + SDP bodies + Vias; and the same plus an SDP address
//! rewrite with the Content-Length fix, applied into a reused buffer)
//! against `rsip` (`SipMessage::try_from` + `to_string`), in one run.
//! Throughput is reported as messages per second.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhole_core::patch::Patch;
use pinhole_sip::{Message, fix_content_length};

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 10.0.0.10\r\n\
s=-\r\n\
c=IN IP4 10.0.0.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n\
Via: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK74bf9;received=198.51.100.7;rport=5060\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, INFO, UPDATE\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: ExamplePhone/4.2.1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn tokenize(c: &mut Criterion) {
    let raw = invite();
    assert!((900..1300).contains(&raw.len()), "{} bytes", raw.len());
    let mut g = c.benchmark_group("invite_1k");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("pinhole_sip_parse", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&raw)).unwrap();
            black_box((m.call_id(), m.cseq()));
            black_box(m.sdp_bodies().unwrap());
            black_box(m.vias());
        })
    });

    let mut patch = Patch::new();
    let mut out = Vec::with_capacity(2048);
    g.bench_function("pinhole_sip_parse_rewrite", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&raw)).unwrap();
            black_box((m.call_id(), m.cseq(), m.vias()));
            let sdp = m.sdp_bodies().unwrap()[0].clone();
            let body = &raw[sdp.clone()];
            let at = sdp.start + memchr_c(body) + 9;
            patch.clear();
            patch.replace(at..at + 9, b"203.0.113.10");
            fix_content_length(&m, &mut patch);
            out.clear();
            patch.apply_into(&raw, &mut out).unwrap();
            black_box(&out);
        })
    });

    g.bench_function("rsip_try_from_to_string", |b| {
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(raw.as_slice())).unwrap();
            black_box(m.to_string());
        })
    });
    g.finish();
}

/// Offset of the session-level `c=IN IP4 ` line in an SDP body.
fn memchr_c(body: &[u8]) -> usize {
    body.windows(9).position(|w| w == b"c=IN IP4 ").unwrap()
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
