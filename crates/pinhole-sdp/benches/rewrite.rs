//! What an ALG does per SDP body: parse, read the endpoints, record the
//! plan's edits, apply them. Baseline in the same run: sdp-rs parse +
//! `to_string` (what a re-serialising rewriter would cost at least).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp};

/// A typical offer: audio + video, session-level c=, a=rtcp, ~560 bytes.
const BODY: &[u8] = b"v=0\r\n\
o=- 1303892069 1303892069 IN IP4 178.45.73.241\r\n\
s=Opal SIP Session\r\n\
c=IN IP4 178.45.73.241\r\n\
t=0 0\r\n\
m=audio 5092 RTP/AVP 8 101 120\r\n\
a=sendrecv\r\n\
a=rtcp:5093\r\n\
a=rtpmap:8 PCMA/8000/1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16,32,36\r\n\
a=rtpmap:120 NSE/8000\r\n\
a=fmtp:120 192-193\r\n\
m=video 5094 RTP/AVP 119 31\r\n\
a=sendrecv\r\n\
a=rtpmap:119 theora/90000\r\n\
a=fmtp:119 delivery-method=\"in_band\";height=576;sampling=\"YCbCr-4:2:0\";width=704\r\n\
a=rtpmap:31 h261/90000\r\n\
a=fmtp:31 CIF=1;QCIF=1\r\n";

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const SENDER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// The plan an engine would answer with: one relay port pair per stream.
fn plan_for(eps: &[pinhole_core::intent::MediaEndpoint], out: &mut Vec<PlannedEndpoint>) {
    out.clear();
    out.extend(eps.iter().map(|e| PlannedEndpoint {
        index: e.index,
        addr: (RELAY, 30_000 + 2 * e.index).into(),
        rtcp_addr: Some((RELAY, 30_001 + 2 * e.index).into()),
    }));
}

fn rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdp");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("parse_{}B", BODY.len()), |b| {
        b.iter(|| Sdp::parse(black_box(BODY)).unwrap().media().len())
    });
    // As an ALG runs it: the patch, plan and output buffers are reused.
    let mut patch = Patch::new();
    let mut plan = Vec::new();
    let mut out = Vec::with_capacity(1024);
    let opts = RewriteOptions::default();
    g.bench_function("parse_endpoints_rewrite_apply", |b| {
        b.iter(|| {
            let sdp = Sdp::parse(black_box(BODY)).unwrap();
            let eps = sdp.endpoints(SENDER).unwrap();
            plan_for(&eps, &mut plan);
            patch.clear();
            sdp.rewrite(&plan, &opts, &mut patch).unwrap();
            out.clear();
            patch.apply_into(BODY, &mut out).unwrap();
            out.len()
        })
    });
    // The same with nothing reused.
    g.bench_function("parse_endpoints_rewrite_apply_fresh", |b| {
        b.iter(|| {
            let sdp = Sdp::parse(black_box(BODY)).unwrap();
            let eps = sdp.endpoints(SENDER).unwrap();
            let mut plan = Vec::new();
            plan_for(&eps, &mut plan);
            let mut patch = Patch::new();
            sdp.rewrite(&plan, &opts, &mut patch).unwrap();
            patch.apply(BODY).unwrap()
        })
    });
    let text = std::str::from_utf8(BODY).unwrap();
    g.bench_function("sdp_rs_parse_to_string", |b| {
        b.iter(|| {
            sdp_rs::SessionDescription::try_from(black_box(text))
                .unwrap()
                .to_string()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = rewrite
}
criterion_main!(benches);
