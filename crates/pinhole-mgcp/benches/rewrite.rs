//! The MGCP ALG's hot path against a naive parse-and-reserialise baseline,
//! in the same run (`docs/benchmarks.md`, "MGCP rewrite").
//!
//! One `alg/*` iteration does what the MPR does to a datagram: parse it
//! into messages, classify each ([`MediaRole`]), read the SDP's endpoints,
//! write a plan of relay addresses as [`Patch`] edits of the datagram and
//! apply them into a reused output buffer. One `baseline/*` iteration does
//! the same job the naive way: every line copied into owned `String`s
//! (command line fields, parameters, SDP lines), the relay address written
//! into the model, and the whole datagram serialised again.
//!
//! Before timing, both outputs are checked equal to the expected bytes, so
//! a benchmark of a broken rewrite fails instead of reporting a number.
//!
//! ```text
//! cargo bench -p pinhole-mgcp --bench rewrite -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, Throughput, criterion_group};
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_mgcp::{MediaRole, messages};
use pinhole_sdp::RewriteOptions;

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const FIRST_PORT: u16 = 40_000;

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        pinhole_testkit::corpus::shared_dir()
            .join("mgcp")
            .join(name),
    )
    .unwrap()
}

/// The ALG's per-datagram state, reused across datagrams.
#[derive(Default)]
struct Alg {
    patch: Patch,
    scratch: Patch,
    plan: Vec<PlannedEndpoint>,
    out: Vec<u8>,
}

impl Alg {
    fn rewrite(&mut self, raw: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
        self.patch.clear();
        for m in messages(raw) {
            let m = m?;
            if m.media_role() == MediaRole::None || !m.has_sdp() {
                continue;
            }
            let Some(sdp) = m.sdp()? else { continue };
            let endpoints = sdp.endpoints(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
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
            m.rewrite_sdp_with(
                &sdp,
                &self.plan,
                &RewriteOptions::default(),
                &mut self.scratch,
                &mut self.patch,
            )?;
        }
        self.out.clear();
        self.patch.apply_into(raw, &mut self.out)?;
        Ok(())
    }
}

/// A message parsed into owned values, the way a straightforward stack
/// holds it.
#[derive(Debug)]
struct Owned {
    first: Vec<String>,
    params: Vec<(String, String)>,
    sdp: Vec<(char, String)>,
    eol: &'static str,
}

fn parse_owned(raw: &[u8]) -> Owned {
    let text = String::from_utf8(raw.to_vec()).expect("UTF-8");
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines = text.lines().map(str::to_owned);
    let first: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut params = Vec::new();
    let mut sdp = Vec::new();
    let mut in_sdp = false;
    for line in lines {
        if in_sdp {
            let (k, v) = line.split_once('=').unwrap();
            sdp.push((k.chars().next().unwrap(), v.to_owned()));
        } else if line.is_empty() {
            in_sdp = true;
        } else {
            let (n, v) = line.split_once(':').unwrap();
            params.push((n.to_owned(), v.trim().to_owned()));
        }
    }
    Owned {
        first,
        params,
        sdp,
        eol,
    }
}

impl Owned {
    fn rewrite(&mut self) {
        let mut port = FIRST_PORT;
        for (k, v) in &mut self.sdp {
            match k {
                'c' => {
                    let mut f: Vec<String> = v.split(' ').map(str::to_owned).collect();
                    f[2] = RELAY.to_string();
                    *v = f.join(" ");
                }
                'm' => {
                    let mut f: Vec<String> = v.split(' ').map(str::to_owned).collect();
                    f[1] = port.to_string();
                    port += 2;
                    *v = f.join(" ");
                }
                _ => {}
            }
        }
    }

    fn serialise(&self) -> String {
        let mut s = self.first.join(" ");
        s.push_str(self.eol);
        for (n, v) in &self.params {
            s.push_str(&format!("{n}: {v}{}", self.eol));
        }
        if !self.sdp.is_empty() {
            s.push_str(self.eol);
            let mut body = String::new();
            for (k, v) in &self.sdp {
                body.push_str(&format!("{k}={v}{}", self.eol));
            }
            s.push_str(&body);
        }
        s
    }
}

fn baseline(raw: &[u8]) -> String {
    let mut m = parse_owned(raw);
    m.rewrite();
    m.serialise()
}

fn check(name: &str, raw: &[u8], old_ip: &str, old_port: &str) {
    let expected = String::from_utf8(raw.to_vec())
        .unwrap()
        .replace(&format!("c=IN IP4 {old_ip}"), "c=IN IP4 203.0.113.10")
        .replace(&format!("m=audio {old_port} "), "m=audio 40000 ");
    let mut alg = Alg::default();
    alg.rewrite(raw).unwrap();
    assert_eq!(String::from_utf8(alg.out).unwrap(), expected, "{name}: alg");
    assert_eq!(baseline(raw), expected, "{name}: baseline");
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "200_crcx_sdp",
            corpus("wiki-SIP_CALL-f2946-200-CRCX-sdp.mgcp"),
            "200.57.7.202",
            "30000",
        ),
        (
            "crcx_sdp",
            corpus("wiki-SIP_CALL-f2945-CRCX-sdp.mgcp"),
            "200.57.7.196",
            "40362",
        ),
    ];
    for (name, raw, ip, port) in &cases {
        check(name, raw, ip, port);
    }
    let mut g = c.benchmark_group("mgcp_rewrite");
    g.throughput(Throughput::Elements(1));
    for (name, raw, ..) in &cases {
        let mut alg = Alg::default();
        g.bench_function(format!("alg/{name}"), |b| {
            b.iter(|| {
                alg.rewrite(black_box(raw)).unwrap();
                black_box(alg.out.len())
            })
        });
        g.bench_function(format!("baseline/{name}"), |b| {
            b.iter(|| black_box(baseline(black_box(raw))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// `PROFILE=part N`: runs one part of the ALG path N times on the 200 to
/// CRCX and nothing else, for `perf stat -e instructions` (part: `parse`,
/// `sdp`, `alg`, `baseline`).
fn profile(part: &str, n: u64) {
    let raw = corpus("wiki-SIP_CALL-f2946-200-CRCX-sdp.mgcp");
    let mut alg = Alg::default();
    for _ in 0..n {
        match part {
            "parse" => {
                black_box(
                    messages(black_box(&raw))
                        .map(|m| m.unwrap().params().len())
                        .sum::<usize>(),
                );
            }
            "sdp" => {
                let m = pinhole_mgcp::Message::parse(black_box(&raw)).unwrap();
                black_box(m.sdp().unwrap().unwrap().media().len());
            }
            "alg" => alg.rewrite(black_box(&raw)).unwrap(),
            _ => {
                black_box(baseline(black_box(&raw)));
            }
        }
    }
}

fn main() {
    if let Ok(p) = std::env::var("PROFILE") {
        let (part, n) = p.split_once(' ').unwrap_or((&p, "1000000"));
        profile(part, n.parse().unwrap());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
