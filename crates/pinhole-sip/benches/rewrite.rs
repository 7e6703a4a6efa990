//! The SIP ALG's hot path against a parse-and-reserialise baseline, in the
//! same run (`docs/benchmarks.md`, "SIP rewrite").
//!
//! One `alg/*` iteration does what the MPR does to a message carrying SDP:
//! tokenize the SIP message, find its SDP body, locate the media spans,
//! read the endpoints, write a plan of relay addresses into the body as
//! [`Patch`] edits, fix Content-Length and apply the patch into a reused
//! output buffer. One `baseline/*` iteration parses the same message with
//! `rsip` and its body with `sdp-rs` and serialises both again: no rewrite
//! at all, so the ratio understates what a re-serialising ALG would cost.
//! `baseline_rewrite/*` also writes the plan into the `sdp-rs` model and
//! the new body and Content-Length into the `rsip` one: the same job done by
//! re-serialisation.
//!
//! Before timing, each pipeline's output is checked (relay addresses in,
//! everything else byte for byte), so a benchmark of a broken rewrite
//! fails instead of reporting a number.
//!
//! ```text
//! cargo bench -p pinhole-sip --bench rewrite
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, Throughput, criterion_group};
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp};
use pinhole_sip::{Message, fix_content_length};

/// The phone's SDP: audio (Opus, G.711, DTMF) and video (H.264, VP8), each
/// with `a=rtcp`, as a desk video phone sends it.
fn sdp(ip: &str, audio: u16, video: u16, session: &str) -> String {
    format!(
        "v=0\r\n\
         o=- {session} {session} IN IP4 {ip}\r\n\
         s=-\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {audio} RTP/AVP 111 0 8 101\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=rtcp:{}\r\n\
         a=sendrecv\r\n\
         m=video {video} RTP/AVP 96 97\r\n\
         b=AS:1024\r\n\
         a=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n\
         a=rtpmap:97 VP8/90000\r\n\
         a=rtcp:{}\r\n\
         a=rtcp-fb:96 nack pli\r\n\
         a=sendrecv\r\n",
        audio + 1,
        video + 1
    )
}

fn with_body(head: &str, body: &str) -> Vec<u8> {
    format!(
        "{head}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An INVITE as an APS forwards it to the MPR: two Vias, the usual headers.
fn invite() -> Vec<u8> {
    let head = "INVITE sip:bob@corp2.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKpx1a3f2e9c7;rport\r\n\
        Via: SIP/2.0/UDP 10.1.2.30:5062;received=10.1.2.30;branch=z9hG4bK776asdhds;rport=5062\r\n\
        Max-Forwards: 69\r\n\
        From: \"Alice\" <sip:alice@corp1.example>;tag=1928301774\r\n\
        To: \"Bob\" <sip:bob@corp2.example>\r\n\
        Call-ID: a84b4c76e66710@pc33.corp1.example\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@10.1.2.30:5062;transport=udp>\r\n\
        Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, INFO, UPDATE, PRACK\r\n\
        Supported: replaces, timer, 100rel\r\n\
        Session-Expires: 1800\r\n\
        User-Agent: DeskPhone VP-4400 3.1.7\r\n";
    with_body(head, &sdp("10.1.2.30", 49170, 51372, "2890844526"))
}

/// The callee's 200 OK on its way back through the MPR.
fn ok200() -> Vec<u8> {
    let head = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKpx1a3f2e9c7;rport=5060;received=198.51.100.7\r\n\
        Via: SIP/2.0/UDP 10.1.2.30:5062;received=10.1.2.30;branch=z9hG4bK776asdhds;rport=5062\r\n\
        Record-Route: <sip:203.0.113.10:5060;lr>\r\n\
        From: \"Alice\" <sip:alice@corp1.example>;tag=1928301774\r\n\
        To: \"Bob\" <sip:bob@corp2.example>;tag=a6c85cf\r\n\
        Call-ID: a84b4c76e66710@pc33.corp1.example\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:bob@10.7.0.44:5060;transport=udp>\r\n\
        Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, INFO, UPDATE, PRACK\r\n\
        Supported: replaces, timer\r\n\
        Session-Expires: 1800;refresher=uac\r\n\
        Server: DeskPhone VP-4400 3.1.7\r\n";
    with_body(head, &sdp("10.7.0.44", 30000, 30002, "3344556677"))
}

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const FIRST_PORT: u16 = 40_000;

/// The MPR ALG's per-message state, reused across messages as a proxy
/// reuses it: patches, plan and output buffer keep their allocations.
#[derive(Default)]
struct Alg {
    patch: Patch,
    part: Patch,
    plan: Vec<PlannedEndpoint>,
    out: Vec<u8>,
}

impl Alg {
    /// Rewrites every stream of the message's SDP to the relay; the new
    /// message is in `self.out`.
    fn rewrite(&mut self, raw: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
        let msg = Message::parse(raw)?;
        let span = msg.sdp_bodies()?.into_iter().next().ok_or("no SDP body")?;
        let body = raw.get(span.clone()).ok_or("SDP body out of range")?;
        let sdp = Sdp::parse(body)?;
        let endpoints = sdp.endpoints(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
        // The engine's answer: a relay port pair per enabled stream.
        self.plan.clear();
        let mut port = FIRST_PORT;
        for e in endpoints.iter().filter(|e| !e.is_disabled()) {
            self.plan.push(PlannedEndpoint {
                index: e.index,
                addr: SocketAddr::new(RELAY, port),
                rtcp_addr: e.rtcp_addr.map(|_| SocketAddr::new(RELAY, port + 1)),
            });
            port += 2;
        }
        self.part.clear();
        sdp.rewrite(&self.plan, &RewriteOptions::default(), &mut self.part)?;
        self.patch.clear();
        self.patch.extend_shifted(&self.part, span.start);
        fix_content_length(&msg, &mut self.patch);
        self.out.clear();
        self.patch.apply_into(raw, &mut self.out)?;
        Ok(())
    }
}

/// Parse and serialise again with rsip and sdp-rs; nothing rewritten.
fn reserialise(raw: &[u8]) -> (String, String) {
    let msg = rsip::SipMessage::try_from(raw).expect("rsip parses the message");
    let body = std::str::from_utf8(msg.body()).expect("UTF-8 body");
    let sdp = sdp_rs::SessionDescription::try_from(body).expect("sdp-rs parses the body");
    (msg.to_string(), sdp.to_string())
}

/// The same job as [`Alg::rewrite`] through the rsip and sdp-rs models:
/// parse, write the relay addresses into the model, serialise the body,
/// put it and its length into the message, serialise the message.
fn reserialise_rewrite(raw: &[u8]) -> String {
    use rsip::message::HasHeaders as _;
    let mut msg = rsip::SipMessage::try_from(raw).expect("rsip parses the message");
    let body = std::str::from_utf8(msg.body()).expect("UTF-8 body");
    let mut sdp = sdp_rs::SessionDescription::try_from(body).expect("sdp-rs parses the body");
    if let Some(c) = sdp.connection.as_mut() {
        c.connection_address.base = RELAY;
    }
    let mut port = FIRST_PORT;
    for m in &mut sdp.media_descriptions {
        m.media.port = port;
        for a in &mut m.attributes {
            if let sdp_rs::lines::Attribute::Other(name, Some(v)) = a
                && name == "rtcp"
            {
                *v = (port + 1).to_string();
            }
        }
        port += 2;
    }
    let body = sdp.to_string().into_bytes();
    let len = body.len();
    *msg.body_mut() = body;
    msg.headers_mut()
        .unique_push(rsip::Header::ContentLength(len.to_string().into()));
    msg.to_string()
}

/// The ALG's output for `raw` must carry the relay plan and nothing else
/// new; the baselines must at least round-trip the media lines.
fn check(name: &str, raw: &[u8]) {
    let mut alg = Alg::default();
    alg.rewrite(raw).expect("the ALG rewrites the message");
    let out = Message::parse(&alg.out).expect("the output parses");
    let body = out.body();
    assert_eq!(out.content_length(), Some(body.len()), "{name}");
    let sdp = Sdp::parse(&alg.out[body.clone()]).expect("the output's SDP parses");
    let eps = sdp.endpoints(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).unwrap();
    assert_eq!(eps.len(), 2, "{name}");
    for (i, e) in eps.iter().enumerate() {
        let port = FIRST_PORT + 2 * i as u16;
        assert_eq!(e.addr, SocketAddr::new(RELAY, port), "{name}");
        assert_eq!(
            e.rtcp_addr,
            Some(SocketAddr::new(RELAY, port + 1)),
            "{name}"
        );
    }
    // Headers byte for byte, except the Content-Length value.
    let cl = out.content_length_header().unwrap().value.clone();
    assert_eq!(&alg.out[..cl.start], &raw[..cl.start], "{name}");
    let text = String::from_utf8(alg.out.clone()).unwrap();
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"), "{name}");
    assert!(text.contains("o=- "), "{name}: the origin line is kept");

    // The baseline is not byte-faithful: say where it differs (sdp-rs
    // 0.2.1 writes `a=rtpmap:111 opus/48000 2`, losing the channel count's
    // slash), but require that it carried the message and the streams.
    let (sip, body) = reserialise(raw);
    assert!(sip.contains("Call-ID"), "{name}: rsip round trip");
    assert!(body.contains("m=video 51372 ") || body.contains("m=video 30002 "));
    let same_sip = sip.as_bytes() == raw;
    let same_sdp = body.as_bytes() == &raw[Message::parse(raw).unwrap().body()];
    eprintln!("{name}: baseline round trip byte-identical: rsip {same_sip}, sdp-rs {same_sdp}");
    let job = reserialise_rewrite(raw);
    assert!(job.contains("m=audio 40000 "), "{name}: {job}");
    assert!(job.contains("a=rtcp:40003"), "{name}: {job}");
    assert!(job.contains("c=IN IP4 203.0.113.10"), "{name}: {job}");
}

fn bench(c: &mut Criterion) {
    let messages = [("invite", invite()), ("200_ok", ok200())];
    for (name, raw) in &messages {
        check(name, raw);
        eprintln!("{name}: {} bytes", raw.len());
    }
    let mut g = c.benchmark_group("sip_rewrite");
    g.throughput(Throughput::Elements(1));
    for (name, raw) in &messages {
        let mut alg = Alg::default();
        g.bench_function(format!("alg/{name}"), |b| {
            b.iter(|| {
                alg.rewrite(black_box(raw)).unwrap();
                black_box(alg.out.len())
            })
        });
        g.bench_function(format!("baseline/{name}"), |b| {
            b.iter(|| black_box(reserialise(black_box(raw))))
        });
        g.bench_function(format!("baseline_rewrite/{name}"), |b| {
            b.iter(|| black_box(reserialise_rewrite(black_box(raw))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// `PROFILE_ITERS=N` runs N INVITE and N 200 OK rewrites and nothing else,
/// for a profiler: `PROFILE_ITERS=20000 valgrind --tool=callgrind
/// target/release/deps/rewrite-*` gives instructions per rewrite as a
/// function's inclusive count / 2N.
/// `PAIRED_ROUNDS=N`: N rounds, each timing a batch of ALG rewrites and
/// then a batch of baseline re-serialisations of the same message back to
/// back; prints the median per-message times and the median of the
/// per-round ratios. Load from other processes hits both halves of a round
/// alike, so the ratio is steadier than two criterion runs minutes apart.
#[allow(clippy::disallowed_methods)] // a benchmark reads the clock; the library never does
fn paired(rounds: usize) {
    use std::time::Instant;
    for (name, raw) in [("invite", invite()), ("200_ok", ok200())] {
        let mut alg = Alg::default();
        let (mut a_ns, mut b_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..2000 {
                alg.rewrite(black_box(&raw)).unwrap();
            }
            let a = t.elapsed().as_nanos() as f64 / 2000.0;
            let t = Instant::now();
            for _ in 0..200 {
                black_box(reserialise(black_box(&raw)));
            }
            let b = t.elapsed().as_nanos() as f64 / 200.0;
            a_ns.push(a);
            b_ns.push(b);
            ratios.push(b / a);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b, r) = (median(&mut a_ns), median(&mut b_ns), median(&mut ratios));
        println!(
            "{name}: alg {a:.0} ns ({:.0} k/s), baseline {b:.0} ns, ratio {r:.1}x (medians of {rounds} rounds)",
            1e6 / a
        );
    }
}

fn main() {
    if let Some(n) = std::env::var("PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        paired(n.max(1));
        return;
    }
    if let Some(n) = std::env::var("PROFILE_ITERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let (a, b) = (invite(), ok200());
        let mut alg = Alg::default();
        for _ in 0..n {
            alg.rewrite(black_box(&a)).unwrap();
            alg.rewrite(black_box(&b)).unwrap();
        }
        black_box(alg.out.len());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
