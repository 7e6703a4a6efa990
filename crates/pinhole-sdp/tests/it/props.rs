//! Properties over generated SDP: sessions with random streams, line ends
//! (CRLF, LF, mixed, none at the end), trailing blanks, attribute order
//! (`c=` among the attributes included), host names, holds and disabled
//! streams. The parser must read back what was generated; rewriting with
//! random plans must pass `fuzzing::check_rewrite` (only located spans
//! change, all other bytes are kept, the output re-parses to the plan); and
//! arbitrary or mangled bytes never panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::wire::RtcpMode;
use pinhole_sdp::fuzzing::{FALLBACK, check_rewrite, sdp_rewrite};
use pinhole_sdp::{Direction, RewriteOptions, Sdp};
use proptest::prelude::*;

/// An address as a `c=` line may carry it.
#[derive(Clone, Debug)]
enum HostGen {
    Ip(IpAddr),
    Fqdn(String),
}

impl HostGen {
    /// `IN IP4 x` / `IN IP6 x`.
    fn text(&self) -> String {
        match self {
            Self::Ip(IpAddr::V4(a)) => format!("IN IP4 {a}"),
            Self::Ip(IpAddr::V6(a)) => format!("IN IP6 {a}"),
            Self::Fqdn(h) => format!("IN IP4 {h}"),
        }
    }

    /// What `endpoints` reports for it.
    fn ip(&self) -> IpAddr {
        match self {
            Self::Ip(ip) => *ip,
            Self::Fqdn(_) => FALLBACK,
        }
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        2 => any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        1 => Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        1 => Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ]
}

fn host() -> impl Strategy<Value = HostGen> {
    prop_oneof![
        6 => ip().prop_map(HostGen::Ip),
        1 => "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}".prop_map(HostGen::Fqdn),
    ]
}

/// One media description and what it should read as.
#[derive(Clone, Debug)]
struct StreamGen {
    kind: &'static str,
    port: u16,
    count: Option<u16>,
    proto: &'static str,
    info: bool,
    conn: Option<HostGen>,
    rtcp: Option<(u16, Option<HostGen>)>,
    mux: bool,
    direction: Option<Direction>,
    /// Every line after the m= (and i=) line, in order.
    lines: Vec<String>,
}

fn direction() -> impl Strategy<Value = Option<Direction>> {
    proptest::option::of(prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ])
}

fn direction_line(d: Direction) -> String {
    match d {
        Direction::SendRecv => "a=sendrecv",
        Direction::SendOnly => "a=sendonly",
        Direction::RecvOnly => "a=recvonly",
        Direction::Inactive => "a=inactive",
    }
    .to_string()
}

const JUNK: [&str; 8] = [
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:0 PCMU/8000",
    "a=fmtp:101 0-15",
    "b=AS:64",
    "a=candidate:1 1 UDP 2130706431 10.1.2.3 5000 typ host",
    "a=ssrc:1 cname:x@y",
    "x=unknown line",
    "a=rtcp-fb:* nack",
];

fn stream() -> impl Strategy<Value = StreamGen> {
    (
        (
            prop_oneof![
                Just("audio"),
                Just("video"),
                Just("image"),
                Just("application"),
                Just("text")
            ],
            prop_oneof![1 => Just(0u16), 6 => 1u16..=65534],
            proptest::option::of(1u16..4),
            prop_oneof![
                Just("RTP/AVP"),
                Just("RTP/SAVPF"),
                Just("udptl"),
                Just("UDP/TLS/RTP/SAVPF")
            ],
            any::<bool>(),
        ),
        (
            proptest::option::weighted(0.5, host()),
            proptest::option::weighted(0.3, (any::<u16>(), proptest::option::of(host()))),
            any::<bool>(),
            direction(),
            proptest::sample::subsequence(JUNK.to_vec(), 0..4),
        ),
    )
        .prop_flat_map(
            |((kind, port, count, proto, info), (conn, rtcp, mux, direction, junk))| {
                let mut lines: Vec<String> = junk.iter().map(|s| s.to_string()).collect();
                if let Some(c) = &conn {
                    lines.push(format!("c={}", c.text()));
                }
                if let Some((p, a)) = &rtcp {
                    match a {
                        Some(a) => lines.push(format!("a=rtcp:{p} {}", a.text())),
                        None => lines.push(format!("a=rtcp:{p}")),
                    }
                }
                if mux {
                    lines.push("a=rtcp-mux".into());
                }
                if let Some(d) = direction {
                    lines.push(direction_line(d));
                }
                Just(lines).prop_shuffle().prop_map(move |lines| StreamGen {
                    kind,
                    port,
                    count,
                    proto,
                    info,
                    conn: conn.clone(),
                    rtcp: rtcp.clone(),
                    mux,
                    direction,
                    lines,
                })
            },
        )
}

/// A whole body and its model.
#[derive(Clone, Debug)]
struct SessionGen {
    origin: Option<HostGen>,
    conn: Option<HostGen>,
    direction: Option<Direction>,
    streams: Vec<StreamGen>,
    body: Vec<u8>,
}

fn session() -> impl Strategy<Value = SessionGen> {
    (
        proptest::option::weighted(0.9, host()),
        proptest::option::weighted(0.7, host()),
        direction(),
        proptest::collection::vec(stream(), 1..5),
        // Line ends: 0 CRLF, 1 LF, 2 mixed (per line, from the bits).
        0u8..3,
        any::<u64>(),
        any::<bool>(), // final line end
        any::<u64>(),  // trailing blanks, per line
    )
        .prop_map(
            |(origin, conn, direction, streams, mode, bits, last, blanks)| {
                let mut lines = vec!["v=0".to_string()];
                if let Some(o) = &origin {
                    lines.push(format!("o=- 3975421861 3975421862 {}", o.text()));
                }
                lines.push("s=-".into());
                if let Some(c) = &conn {
                    lines.push(format!("c={}", c.text()));
                }
                lines.push("t=0 0".into());
                if let Some(d) = direction {
                    lines.push(direction_line(d));
                }
                for s in &streams {
                    let port = match s.count {
                        Some(n) => format!("{}/{n}", s.port),
                        None => s.port.to_string(),
                    };
                    lines.push(format!("m={} {port} {} 0 8", s.kind, s.proto));
                    if s.info {
                        lines.push("i=a stream".into());
                    }
                    lines.extend(s.lines.iter().cloned());
                }
                let mut body = Vec::new();
                let n = lines.len();
                for (i, l) in lines.iter().enumerate() {
                    body.extend_from_slice(l.as_bytes());
                    if blanks >> (i % 64) & 1 == 1 && i % 3 == 0 {
                        body.extend_from_slice(b" \t");
                    }
                    if i + 1 < n || last {
                        let crlf = match mode {
                            0 => true,
                            1 => false,
                            _ => bits >> (i % 64) & 1 == 1,
                        };
                        body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                    }
                }
                SessionGen {
                    origin,
                    conn,
                    direction,
                    streams,
                    body,
                }
            },
        )
}

/// What `endpoints` must report for the model.
fn expected(s: &SessionGen) -> Vec<MediaEndpoint> {
    s.streams
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ip = m
                .conn
                .as_ref()
                .or(s.conn.as_ref())
                .map_or(FALLBACK, HostGen::ip);
            MediaEndpoint {
                index: i as u16,
                addr: SocketAddr::new(ip, m.port),
                rtcp: if m.mux { RtcpMode::Mux } else { RtcpMode::Pair },
                rtcp_addr: m
                    .rtcp
                    .as_ref()
                    .map(|(port, a)| SocketAddr::new(a.as_ref().map_or(ip, HostGen::ip), *port)),
            }
        })
        .collect()
}

/// A random plan: for some streams, a relay address (even port) and maybe
/// an explicit RTCP address.
fn plan() -> impl Strategy<Value = Vec<Option<(IpAddr, u16, bool)>>> {
    let relay = prop_oneof![
        Just(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10))),
        Just(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11))),
        Just(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10
        ))),
        ip(),
    ];
    proptest::collection::vec(
        proptest::option::weighted(
            0.8,
            (relay, (1u16..32767).prop_map(|p| p * 2), any::<bool>()),
        ),
        5,
    )
}

fn to_plan(s: &SessionGen, p: &[Option<(IpAddr, u16, bool)>]) -> Vec<PlannedEndpoint> {
    s.streams
        .iter()
        .zip(p)
        .enumerate()
        .filter_map(|(i, (_, p))| {
            let (ip, port, rtcp) = (*p)?;
            Some(PlannedEndpoint {
                index: i as u16,
                addr: SocketAddr::new(ip, port),
                rtcp_addr: rtcp.then_some(SocketAddr::new(ip, port + 1)),
            })
        })
        .rev() // plan order need not be stream order
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_sdp_reads_back_as_generated(s in session()) {
        let sdp = Sdp::parse(&s.body).unwrap();
        prop_assert_eq!(sdp.media().len(), s.streams.len());
        prop_assert_eq!(sdp.endpoints(FALLBACK).unwrap(), expected(&s));
        prop_assert_eq!(sdp.session_direction(), s.direction);
        prop_assert_eq!(sdp.origin().map(|c| c.ip()), s.origin.as_ref().map(|h| match h {
            HostGen::Ip(ip) => Some(*ip),
            HostGen::Fqdn(_) => None,
        }));
        for (m, g) in sdp.media().iter().zip(&s.streams) {
            prop_assert_eq!(m.kind, g.kind);
            prop_assert_eq!(m.proto, g.proto);
            prop_assert_eq!(m.port_count, g.count);
            prop_assert_eq!(m.direction, g.direction.or(s.direction).unwrap_or_default());
        }
    }

    #[test]
    fn rewrite_gives_the_plan_and_keeps_every_other_byte(
        s in session(),
        p in plan(),
        origin in proptest::option::of(ip()),
    ) {
        let plan = to_plan(&s, &p);
        let opts = RewriteOptions {
            rewrite_origin: origin.filter(|_| s.origin.is_some()),
        };
        check_rewrite(&s.body, &plan, &opts, FALLBACK).unwrap();
    }

    #[test]
    fn an_empty_plan_records_nothing(s in session()) {
        let sdp = Sdp::parse(&s.body).unwrap();
        let mut patch = Patch::new();
        sdp.rewrite(&[], &RewriteOptions::default(), &mut patch).unwrap();
        prop_assert!(patch.is_empty());
        prop_assert_eq!(patch.apply(&s.body).unwrap(), s.body.clone());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        sdp_rewrite(&data);
        let mut v = b"v=0\n".to_vec();
        v.extend_from_slice(&data);
        sdp_rewrite(&v);
    }

    #[test]
    fn mangled_sdp_never_panics(
        s in session(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut body = s.body.clone();
        for (at, byte, op) in edits {
            let i = at.index(body.len() + 1);
            match op {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        sdp_rewrite(&body);
    }
}
