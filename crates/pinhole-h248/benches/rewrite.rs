//! The H.248 ALG's hot path against a naive parse-and-reserialise
//! baseline, in the same run.
//!
//! One `alg/*` iteration does what the MPR does to an Add reply: parse the
//! message, find each command's role ([`MediaRole`]), read the endpoints
//! of the Local SDP groups of the answers, write a plan of relay addresses
//! as [`Patch`] edits of the datagram and apply them into a reused output
//! buffer. One `baseline/*` iteration does the same job the naive way: the
//! whole message copied into an owned tree (every token, separator and
//! SDP line in its own `String`), the relay address written into the
//! tree, and the tree written out again.
//!
//! Before timing, both outputs are checked equal to the expected bytes, so
//! a benchmark of a broken rewrite fails instead of reporting a number.
//!
//! ```text
//! cargo bench -p pinhole-h248 --bench rewrite -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{Criterion, Throughput, criterion_group};
use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_h248::{Item, MediaRole, parse};
use pinhole_sdp::RewriteOptions;

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const FIRST_PORT: u16 = 40_000;

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/h248");
    std::fs::read(dir.join(name)).unwrap()
}

/// A long-form Add reply as RFC 3525's examples are written (LF here,
/// CRLF on the wire: see [`cases`]).
const LONG_ADD_REPLY: &str = "MEGACO/1 [192.0.2.20]:2944
Reply = 10003 {
   Context = 2000 {
      Add = A4444,
      Add = A4445 {
         Media {
            Stream = 1 {
               Local {
v=0
o=- 2890844526 2890842807 IN IP4 192.0.2.20
s=-
t=0 0
c=IN IP4 192.0.2.20
m=audio 2222 RTP/AVP 4
a=ptime:30
a=recvonly
               } ; RTP profile for G.723.1 is 4
            }
         }
      }
   }
}
";

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
        let msg = parse(raw)?;
        let mut port = FIRST_PORT;
        for item in msg.items() {
            let Item::Reply(r) = item else { continue };
            for cmd in r.actions.iter().flat_map(|a| &a.commands) {
                if MediaRole::of(item, cmd) != MediaRole::Answer {
                    continue;
                }
                for g in cmd.streams.iter().flat_map(|s| &s.local) {
                    let sdp = msg.sdp(g)?;
                    let endpoints = sdp.endpoints(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
                    self.plan.clear();
                    for e in endpoints.iter().filter(|e| !e.is_disabled()) {
                        self.plan.push(PlannedEndpoint {
                            index: e.index,
                            addr: SocketAddr::new(RELAY, port),
                            rtcp_addr: e.rtcp_addr.map(|_| SocketAddr::new(RELAY, port + 1)),
                        });
                        port += 2;
                    }
                    msg.rewrite_sdp_with(
                        g,
                        &sdp,
                        &self.plan,
                        &RewriteOptions::default(),
                        &mut self.scratch,
                        &mut self.patch,
                    )?;
                }
            }
        }
        self.out.clear();
        self.patch.apply_into(raw, &mut self.out)?;
        Ok(())
    }
}

/// The baseline's generic tree: every element of a `{ … }` list with the
/// text before its `{` (token, `=`, value, white space), its body and the
/// text after its `}`; Local and Remote bodies as SDP lines.
#[derive(Debug)]
struct Node {
    head: String,
    body: Option<Body>,
    tail: String,
}

#[derive(Debug)]
enum Body {
    List(Vec<Node>),
    /// SDP lines: the text before `=`, the value, the line end.
    Sdp(Vec<(String, String, String)>),
}

fn is_sdp_token(head: &str) -> bool {
    let name = head
        .trim()
        .rsplit([',', ' ', '\t', '\r', '\n'])
        .next()
        .unwrap_or("");
    ["l", "r", "local", "remote"]
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t))
}

/// Reads a list up to its closing `}` (not consumed) or the end.
fn parse_list(s: &[char], i: &mut usize) -> Vec<Node> {
    let mut out = Vec::new();
    loop {
        let mut head = String::new();
        let mut quoted = false;
        while *i < s.len() {
            let c = s[*i];
            if c == '"' {
                quoted = !quoted;
            } else if !quoted && matches!(c, '{' | ',' | '}') {
                break;
            } else if !quoted && c == ';' {
                // A comment runs to the end of the line.
                while *i < s.len() && s[*i] != '\n' {
                    head.push(s[*i]);
                    *i += 1;
                }
                continue;
            }
            head.push(c);
            *i += 1;
        }
        let mut node = Node {
            head,
            body: None,
            tail: String::new(),
        };
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            if is_sdp_token(&node.head) {
                let mut text = String::new();
                while *i < s.len() && !(s[*i] == '}' && s[*i - 1] != '\\') {
                    text.push(s[*i]);
                    *i += 1;
                }
                node.body = Some(Body::Sdp(sdp_lines(&text)));
            } else {
                node.body = Some(Body::List(parse_list(s, i)));
            }
            *i += 1; // `}`
            // White space and comments up to the next `,` or `}`.
            let mut comment = false;
            while *i < s.len() && (comment || s[*i].is_whitespace() || s[*i] == ';') {
                comment = (comment || s[*i] == ';') && s[*i] != '\n';
                node.tail.push(s[*i]);
                *i += 1;
            }
        }
        out.push(node);
        if *i < s.len() && s[*i] == ',' {
            *i += 1;
            continue;
        }
        return out;
    }
}

fn sdp_lines(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find('\n').map_or(rest.len(), |n| n + 1);
        let (line, next) = rest.split_at(end);
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        match body.split_once('=') {
            Some((k, v)) => out.push((k.to_owned(), v.to_owned(), eol.to_owned())),
            None => out.push((body.to_owned(), String::new(), eol.to_owned())),
        }
        rest = next;
    }
    out
}

fn serialise(nodes: &[Node], out: &mut String) {
    for (n, node) in nodes.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&node.head);
        match &node.body {
            None => continue,
            Some(Body::List(children)) => {
                out.push('{');
                serialise(children, out);
            }
            Some(Body::Sdp(lines)) => {
                out.push('{');
                for (k, v, eol) in lines {
                    out.push_str(k);
                    if !v.is_empty() || k.trim_start().len() == 1 {
                        out.push('=');
                    }
                    out.push_str(v);
                    out.push_str(eol);
                }
            }
        }
        out.push('}');
        out.push_str(&node.tail);
    }
}

/// Writes the relay into every enabled stream of the Local groups of the
/// tree: the `c=` of each group with an enabled `m=`, and the ports.
fn rewrite_tree(nodes: &mut [Node], port: &mut u16) {
    for node in nodes {
        let local = {
            let name = node.head.trim().rsplit([',', ' ']).next().unwrap_or("");
            name.eq_ignore_ascii_case("l") || name.eq_ignore_ascii_case("local")
        };
        match &mut node.body {
            Some(Body::List(children)) => rewrite_tree(children, port),
            Some(Body::Sdp(lines)) if local => {
                // One group per `v=` line.
                let starts: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].0.trim() == "v")
                    .chain([lines.len()])
                    .collect();
                for w in starts.windows(2) {
                    let group = &mut lines[w[0]..w[1]];
                    let enabled = group.iter().any(|(k, v, _)| {
                        k == "m" && v.split(' ').nth(1).is_some_and(|p| p != "0" && p != "$")
                    });
                    if !enabled {
                        continue;
                    }
                    for (k, v, _) in group.iter_mut() {
                        let mut f: Vec<String> = v.split(' ').map(str::to_owned).collect();
                        match k.as_str() {
                            "c" => f[2] = RELAY.to_string(),
                            "m" => {
                                f[1] = port.to_string();
                                *port += 2;
                            }
                            _ => continue,
                        }
                        *v = f.join(" ");
                    }
                }
            }
            _ => {}
        }
    }
}

fn baseline(raw: &[u8]) -> String {
    let chars: Vec<char> = String::from_utf8(raw.to_vec()).unwrap().chars().collect();
    let mut i = 0;
    let mut tree = parse_list(&chars, &mut i);
    let mut port = FIRST_PORT;
    rewrite_tree(&mut tree, &mut port);
    let mut out = String::with_capacity(raw.len() + 16);
    serialise(&tree, &mut out);
    out
}

fn check(name: &str, raw: &[u8], old: &str, new: &str) {
    let expected = String::from_utf8(raw.to_vec()).unwrap().replace(old, new);
    assert_ne!(
        expected.as_bytes(),
        raw,
        "{name}: the case rewrites something"
    );
    let mut alg = Alg::default();
    alg.rewrite(raw).unwrap();
    assert_eq!(String::from_utf8(alg.out).unwrap(), expected, "{name}: alg");
    assert_eq!(baseline(raw), expected, "{name}: baseline");
}

fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    vec![
        (
            "f22_add_reply_compact",
            corpus("wiki-FAX-f22-Add-reply-Local-sdp.megaco"),
            "c=IN IP4 10.23.1.52\r\nt=0 0\r\nm=audio 16756",
            "c=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 40000",
        ),
        (
            "add_reply_long",
            LONG_ADD_REPLY.replace('\n', "\r\n").into_bytes(),
            "c=IN IP4 192.0.2.20\r\nm=audio 2222",
            "c=IN IP4 203.0.113.10\r\nm=audio 40000",
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    for (name, raw, old, new) in &cases {
        check(name, raw, old, new);
    }
    let mut g = c.benchmark_group("h248_rewrite");
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

/// `PROFILE=part N`: runs one part N times on the f22 Add reply and
/// nothing else, for `perf stat` (part: `parse`, `sdp`, `alg`,
/// `baseline`).
fn profile(part: &str, n: u64) {
    let raw = corpus("wiki-FAX-f22-Add-reply-Local-sdp.megaco");
    let mut alg = Alg::default();
    for _ in 0..n {
        match part {
            "parse" => {
                black_box(parse(black_box(&raw)).unwrap().items().len());
            }
            "sdp" => {
                let m = parse(black_box(&raw)).unwrap();
                let g = m.groups().next().unwrap().clone();
                black_box(m.sdp(&g).unwrap().media().len());
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
