//! Properties: generated messages read back their fields, piggybacked or
//! not; arbitrary and mutated bytes never panic (the fuzz body's checks
//! run on them); a rewrite changes nothing outside the SDP spans.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use pinhole_mgcp::{
    Command, Host, Message, Response, ResponseAck, parse_datagram, piggyback, rewrite_all,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Gen {
    command: Option<(String, String, Option<String>)>, // verb, endpoint, profile
    code: u16,
    commentary: Option<String>,
    txid: u32,
    params: Vec<(String, String)>,
    sdp: Option<(Ipv4Addr, u16)>,
    lf: bool,
}

fn local_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("*".to_owned()),
            Just("$".to_owned()),
            "[a-zA-Z0-9_.-]{1,6}"
        ],
        1..4,
    )
    .prop_map(|parts| parts.join("/"))
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){0,2}",
        any::<[u8; 4]>().prop_map(|o| format!("[{}]", Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
    ]
}

fn endpoint() -> impl Strategy<Value = String> {
    (local_name(), domain(), prop::option::of(any::<u16>())).prop_map(|(l, d, p)| match p {
        Some(p) => format!("{l}@{d}:{p}"),
        None => format!("{l}@{d}"),
    })
}

fn gen_message() -> impl Strategy<Value = Gen> {
    let verb = prop_oneof![
        prop::sample::select(vec![
            "CRCX", "MDCX", "DLCX", "RQNT", "NTFY", "AUEP", "AUCX", "RSIP", "EPCF", "crcx"
        ])
        .prop_map(str::to_owned),
        "X[A-Z0-9]{3}",
    ];
    let command = prop::option::of((
        verb,
        endpoint(),
        prop::option::of(Just("NCS 1.0".to_owned())),
    ));
    let commentary = prop::option::of("[A-Za-z0-9][A-Za-z0-9 ,.]{0,20}[A-Za-z0-9]");
    let params = prop::collection::vec(
        (
            "[A-Z][A-Z0-9]{0,1}|X-[A-Za-z]{1,5}",
            "([!-~]([ -~]{0,30}[!-~])?)?",
        ),
        0..6,
    );
    let sdp = prop::option::of((any::<[u8; 4]>().prop_map(Ipv4Addr::from), 1u16..65000));
    (
        command,
        0u16..1000,
        commentary,
        1u32..=999_999_999,
        params,
        sdp,
        any::<bool>(),
    )
        .prop_map(|(command, code, commentary, txid, params, sdp, lf)| Gen {
            command,
            code,
            commentary,
            txid,
            params,
            sdp,
            lf,
        })
}

fn sdp_body(ip: Ipv4Addr, port: u16, eol: &str) -> String {
    format!(
        "v=0{eol}o=- 1 1 IN IP4 {ip}{eol}s=-{eol}c=IN IP4 {ip}{eol}t=0 0{eol}m=audio {port} RTP/AVP 0 8{eol}a=ptime:20{eol}"
    )
}

impl Gen {
    fn bytes(&self) -> Vec<u8> {
        let eol = if self.lf { "\n" } else { "\r\n" };
        let sdp = self.sdp.map(|(ip, port)| sdp_body(ip, port, eol));
        match &self.command {
            Some((verb, ep, profile)) => {
                let mut b = Command::builder(verb, self.txid, ep);
                if let Some(p) = profile {
                    b = b.version(&format!("MGCP 1.0 {p}"));
                }
                for (n, v) in &self.params {
                    b = b.param(n, v);
                }
                if let Some(s) = &sdp {
                    b = b.sdp(s.as_bytes());
                }
                if self.lf { b.lf() } else { b }.to_bytes()
            }
            None => {
                let mut b = Response::builder(self.code, self.txid);
                if let Some(c) = &self.commentary {
                    b = b.commentary(c);
                }
                for (n, v) in &self.params {
                    b = b.param(n, v);
                }
                if let Some(s) = &sdp {
                    b = b.sdp(s.as_bytes());
                }
                if self.lf { b.lf() } else { b }.to_bytes()
            }
        }
    }

    fn check(&self, m: &Message<'_>) {
        assert_eq!(m.transaction_id(), self.txid);
        match (&self.command, m.command(), m.response()) {
            (Some((verb, ep, profile)), Some(c), None) => {
                assert!(c.verb.as_str().eq_ignore_ascii_case(verb));
                assert_eq!(c.endpoint.text, ep);
                let (local, rest) = ep.split_once('@').unwrap();
                assert_eq!(c.endpoint.local, local);
                assert!(rest.starts_with(c.endpoint.domain));
                if let Host::Ip(ip) = c.endpoint.host {
                    assert!(c.endpoint.domain.contains(&ip.to_string()));
                }
                assert_eq!(c.version.profile, profile.as_deref());
            }
            (None, None, Some(r)) => {
                assert_eq!(r.code, self.code);
                assert_eq!(r.commentary, self.commentary.as_deref());
            }
            _ => panic!("wrong kind"),
        }
        assert_eq!(m.params().len(), self.params.len());
        for (p, (n, v)) in m.params().iter().zip(&self.params) {
            assert_eq!((p.name, p.value), (n.as_str(), v.as_str()));
            assert_eq!(
                m.param(n).map(|x| x.value),
                self.params
                    .iter()
                    .find(|q| q.0.eq_ignore_ascii_case(n))
                    .map(|q| q.1.as_str())
            );
        }
        assert_eq!(m.has_sdp(), self.sdp.is_some());
        if let Some((ip, port)) = self.sdp {
            let sdp = m.sdp().unwrap().unwrap();
            let e = sdp.endpoints(ip.into()).unwrap();
            assert_eq!(e[0].addr, SocketAddr::new(ip.into(), port));
        }
    }
}

/// Bytes that look like MGCP: pieces of real messages in random order.
fn mgcp_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "CRCX ",
        "200 ",
        "1203 ",
        "aaln/1@gw",
        "[10.0.0.1]",
        ":2427",
        " MGCP 1.0",
        " NCS 1.0",
        "\r\n",
        "\n",
        "\r",
        ".\r\n",
        "C: 1",
        "K: 1-5, 7",
        "M: sendrecv",
        "\r\n\r\n",
        "v=0\r\n",
        "c=IN IP4 10.0.0.1\r\n",
        "m=audio 4000 RTP/AVP 0\r\n",
        "a=rtcp:4001\r\n",
        "m=video 0 RTP/AVP 96\r\n",
        " ",
        "\0",
        "*",
        "$",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_round_trip(g in gen_message()) {
        let bytes = g.bytes();
        let m = Message::parse(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        g.check(&m);
        pinhole_mgcp::fuzzing::mgcp_parse(&bytes);
    }

    #[test]
    fn piggybacked_messages_round_trip(gs in prop::collection::vec(gen_message(), 1..4)) {
        let parts: Vec<Vec<u8>> = gs.iter().map(Gen::bytes).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let d = piggyback(&refs);
        let msgs = parse_datagram(&d).unwrap();
        prop_assert_eq!(msgs.len(), gs.len());
        for (g, m) in gs.iter().zip(&msgs) {
            g.check(m);
        }
        pinhole_mgcp::fuzzing::mgcp_parse(&d);
    }

    #[test]
    fn rewriting_keeps_every_byte_outside_the_sdp(g in gen_message(), ip in any::<[u8; 4]>(), port in 1024u16..60000) {
        let bytes = g.bytes();
        let to = SocketAddr::new(Ipv4Addr::from(ip).into(), port);
        let m = Message::parse(&bytes).unwrap();
        match (m.sdp_span(), rewrite_all(&bytes, to)) {
            (Some(span), Ok(out)) => {
                prop_assert_eq!(&out[..span.start], &bytes[..span.start]);
                let again = Message::parse(&out).unwrap();
                g.check(&Message::parse(&bytes).unwrap());
                let s = again.sdp().unwrap().unwrap();
                prop_assert_eq!(s.endpoints(to.ip()).unwrap()[0].addr, to);
                // Inside the SDP only the c= and m= values changed.
                let (old_ip, old_port) = g.sdp.unwrap();
                let eol = if g.lf { "\n" } else { "\r\n" };
                let expected = sdp_body(old_ip, old_port, eol)
                    .replacen(&format!("c=IN IP4 {old_ip}"), &format!("c=IN IP4 {}", to.ip()), 1)
                    .replacen(&format!("m=audio {old_port} "), &format!("m=audio {port} "), 1);
                prop_assert_eq!(&out[span.start..], expected.as_bytes());
            }
            (None, Err(_)) => {}
            (s, r) => prop_assert!(false, "sdp {:?}, rewrite {:?}", s, r.map(|_| ())),
        }
    }

    #[test]
    fn response_acks_round_trip(
        ranges in prop::collection::vec((1u32..=999_999_000, 0u32..1000, any::<bool>()), 1..6),
        sep in prop::sample::select(vec![",", ", ", " , "]),
    ) {
        let text: Vec<String> = ranges
            .iter()
            .map(|&(a, n, single)| if single { a.to_string() } else { format!("{a}-{}", a + n) })
            .collect();
        let raw = format!("RQNT 9 a@gw MGCP 1.0\r\nK: {}\r\n", text.join(sep));
        let k = Message::parse(raw.as_bytes()).unwrap().response_ack().unwrap().unwrap();
        let want: Vec<_> = ranges
            .iter()
            .map(|&(a, n, single)| if single { a..=a } else { a..=a + n })
            .collect();
        prop_assert_eq!(k.ranges(), &want[..]);
        for r in &want {
            prop_assert!(k.contains(*r.start()) && k.contains(*r.end()));
        }
        prop_assert_eq!(ResponseAck::parse(&text.join(sep)).unwrap(), k);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        pinhole_mgcp::fuzzing::mgcp_parse(&bytes);
    }

    #[test]
    fn mgcp_like_bytes_never_panic(bytes in mgcp_like()) {
        pinhole_mgcp::fuzzing::mgcp_parse(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(g in gen_message(), at in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = g.bytes();
        let i = at.index(bytes.len() + 1);
        bytes.splice(i..i, junk);
        pinhole_mgcp::fuzzing::mgcp_parse(&bytes);
    }
}
