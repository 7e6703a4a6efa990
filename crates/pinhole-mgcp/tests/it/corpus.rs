//! Every message of the corpus `mgcp/` folder (see its MANIFEST.md) with
//! its expected fields, every MGCP datagram of the `mgcp/pcap/` captures,
//! and the rewrite of the two with SDP.

use std::net::SocketAddr;

use pinhole_mgcp::{Head, Host, MediaRole, Message, Verb, parse_datagram, rewrite_all};
use pinhole_testkit::corpus;

enum First {
    Cmd(&'static str, &'static str),
    Resp(u16, Option<&'static str>),
}
use First::{Cmd, Resp};

/// File, first line, transaction id, parameter lines, has SDP.
const TABLE: &[(&str, First, u32, usize, bool)] = &[
    (
        "ndpi-mgcp-f1-RSIP-graceful.mgcp",
        Cmd("RSIP", "*@vg224"),
        262662134,
        2,
        false,
    ),
    (
        "ndpi-mgcp-f2-200-no-reason.mgcp",
        Resp(200, None),
        262662134,
        0,
        false,
    ),
    (
        "ndpi-mgcp-f3-RSIP.mgcp",
        Cmd("RSIP", "*@vg224"),
        262662136,
        1,
        false,
    ),
    (
        "ndpi-mgcp-f5-RQNT.mgcp",
        Cmd("RQNT", "AALN/S2/1@vg224"),
        80,
        3,
        false,
    ),
    (
        "ndpi-mgcp-f6-200-OK.mgcp",
        Resp(200, Some("OK")),
        80,
        0,
        false,
    ),
    (
        "ndpi-mgcp-f7-AUEP.mgcp",
        Cmd("AUEP", "AALN/S2/1@vg224"),
        81,
        1,
        false,
    ),
    (
        "ndpi-mgcp-f8-200-AUEP-capabilities.mgcp",
        Resp(200, None),
        81,
        10,
        false,
    ),
    (
        "ndpi-mgcp-f9-NTFY-empty-O.mgcp",
        Cmd("NTFY", "*@vg224"),
        262662138,
        2,
        false,
    ),
    (
        "restcomm-mgcp-packet-f1-DLCX.mgcp",
        Cmd("DLCX", "mobicents/bridge/1@127.0.0.1:2427"),
        147483656,
        0,
        false,
    ),
    (
        "wiki-SIP_CALL-f1754-NTFY.mgcp",
        Cmd("NTFY", "aaln/1@CPG2"),
        12219,
        2,
        false,
    ),
    (
        "wiki-SIP_CALL-f1756-200-NTFY.mgcp",
        Resp(200, Some("OK")),
        12219,
        0,
        false,
    ),
    (
        "wiki-SIP_CALL-f1758-RQNT.mgcp",
        Cmd("RQNT", "aaln/1@cpg2"),
        10508,
        2,
        false,
    ),
    (
        "wiki-SIP_CALL-f1759-RQNT-signals.mgcp",
        Cmd("RQNT", "aaln/1@cpg2"),
        10509,
        4,
        false,
    ),
    (
        "wiki-SIP_CALL-f2931-NTFY-digits.mgcp",
        Cmd("NTFY", "aaln/1@CPG2"),
        12222,
        2,
        false,
    ),
    (
        "wiki-SIP_CALL-f2945-CRCX-sdp.mgcp",
        Cmd("CRCX", "aaln/1@cpg2"),
        10511,
        3,
        true,
    ),
    (
        "wiki-SIP_CALL-f2946-200-CRCX-sdp.mgcp",
        Resp(200, Some("OK")),
        10511,
        1,
        true,
    ),
    (
        "wiki-SIP_CALL-f2948-RQNT.mgcp",
        Cmd("RQNT", "aaln/1@cpg2"),
        10512,
        2,
        false,
    ),
    (
        "wiki-SIP_CALL-f3926-AUEP.mgcp",
        Cmd("AUEP", "aaln/1@cpg1"),
        10514,
        1,
        false,
    ),
    (
        "wiki-SIP_CALL-f492-RSIP.mgcp",
        Cmd("RSIP", "aaln/4@CPG2"),
        12218,
        1,
        false,
    ),
    (
        "wiki-SIP_CALL-f493-400-to-RSIP.mgcp",
        Resp(400, Some("OK")),
        12218,
        0,
        false,
    ),
    (
        "wiki-SIP_CALL-f546-AUEP.mgcp",
        Cmd("AUEP", "aaln/1@cpg2"),
        10506,
        1,
        false,
    ),
    (
        "wiki-SIP_CALL-f547-200-AUEP.mgcp",
        Resp(200, Some("OK")),
        10506,
        0,
        false,
    ),
];

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus::shared_dir().join("mgcp").join(name)).unwrap()
}

#[test]
fn every_corpus_file_is_in_the_table() {
    let files: Vec<String> = corpus::files("mgcp", ".mgcp")
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let names: Vec<&str> = TABLE.iter().map(|r| r.0).collect();
    assert_eq!(files, names);
}

#[test]
fn corpus_messages_parse_as_expected() {
    for (file, first, txid, params, sdp) in TABLE {
        let raw = read(file);
        let m = Message::parse(&raw).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.transaction_id(), *txid, "{file}");
        assert_eq!(m.params().len(), *params, "{file}");
        assert_eq!(m.has_sdp(), *sdp, "{file}");
        assert_eq!(m.span().start, 0, "{file}");
        match (first, m.head()) {
            (Cmd(verb, ep), Head::Command(c)) => {
                assert_eq!(c.verb.as_str(), *verb, "{file}");
                assert!(!matches!(c.verb, Verb::Other(_)), "{file}");
                assert_eq!(c.endpoint.text, *ep, "{file}");
                assert_eq!(&raw[c.endpoint.span.clone()], ep.as_bytes(), "{file}");
                assert_eq!(c.endpoint.is_wildcard(), ep.starts_with('*'), "{file}");
                assert_eq!(c.version.major, u16::from(!file.starts_with("ndpi")));
                assert_eq!(
                    c.version.profile,
                    file.starts_with("wiki").then_some("NCS 1.0"),
                    "{file}"
                );
            }
            (Resp(code, comment), Head::Response(r)) => {
                assert_eq!(r.code, *code, "{file}");
                assert_eq!(r.commentary, *comment, "{file}");
            }
            _ => panic!("{file}: wrong kind of message"),
        }
        let role = m.media_role();
        let expected = match (first, sdp) {
            (Cmd("CRCX", _), true) => MediaRole::Offer,
            (Cmd("DLCX", _), _) => MediaRole::Teardown,
            (Resp(200, _), true) => MediaRole::Answer,
            _ => MediaRole::None,
        };
        assert_eq!(role, expected, "{file}");
        if *sdp {
            let s = m.sdp().unwrap().unwrap();
            assert_eq!(s.media().len(), 1, "{file}");
        }
    }
}

#[test]
fn corpus_details() {
    let raw = read("restcomm-mgcp-packet-f1-DLCX.mgcp");
    let m = Message::parse(&raw).unwrap();
    let ep = m.endpoint().unwrap();
    assert_eq!(
        (ep.local, ep.domain, ep.port),
        ("mobicents/bridge/1", "127.0.0.1", Some(2427))
    );
    assert_eq!(ep.host, Host::Name("127.0.0.1"), "not bracketed: a name");
    assert_eq!(&raw[ep.port_span.clone().unwrap()], b"2427");

    let raw = read("ndpi-mgcp-f8-200-AUEP-capabilities.mgcp");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.connection_id(), Some(""));
    assert_eq!(m.params_named("l").count(), 7);
    assert!(m.mode().unwrap().starts_with("sendonly, recvonly"));

    let raw = read("wiki-SIP_CALL-f1759-RQNT-signals.mgcp");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.requested_events(), Some("hu, hf, [0-9#*T](D), oc"));
    assert_eq!(m.request_id(), Some("ABCD10509"));
    assert!(m.value("D").unwrap().starts_with("([2-9]11|"));

    let raw = read("ndpi-mgcp-f9-NTFY-empty-O.mgcp");
    assert_eq!(Message::parse(&raw).unwrap().observed_events(), Some(""));
}

/// Rewriting changes exactly the SDP c= and m= values.
#[test]
fn corpus_rewrite_changes_only_the_media_lines() {
    let to: SocketAddr = "203.0.113.10:40000".parse().unwrap();
    for (file, old_ip, old_port) in [
        ("wiki-SIP_CALL-f2945-CRCX-sdp.mgcp", "200.57.7.196", "40362"),
        (
            "wiki-SIP_CALL-f2946-200-CRCX-sdp.mgcp",
            "200.57.7.202",
            "30000",
        ),
    ] {
        let raw = read(file);
        let out = rewrite_all(&raw, to).unwrap();
        let expected = String::from_utf8(raw.clone())
            .unwrap()
            .replace(&format!("c=IN IP4 {old_ip}"), "c=IN IP4 203.0.113.10")
            .replace(&format!("m=audio {old_port} "), "m=audio 40000 ");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected, "{file}");
        let again = Message::parse(&out).unwrap();
        let sdp = again.sdp().unwrap().unwrap();
        assert_eq!(
            sdp.endpoints(to.ip()).unwrap()[0].addr,
            to,
            "{file}: the rewritten SDP reads back"
        );
    }
    for (file, ..) in TABLE.iter().filter(|r| !r.4) {
        assert!(rewrite_all(&read(file), to).is_err(), "{file}: no SDP");
    }
}

/// The MGCP datagrams of the captures, as tshark counts them (MANIFEST.md:
/// mgcp:30, 12, 1): UDP payloads to or from port 2427 or 2727.
#[test]
fn capture_datagrams_all_parse() {
    for (file, tshark) in [
        ("mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap", 30),
        ("mgcp/pcap/ndpi-mgcp.pcapng", 12),
        ("mgcp/pcap/restcomm-mgcp-packet.pcap", 1),
    ] {
        let bytes = std::fs::read(corpus::shared_dir().join(file)).unwrap();
        let cap = pinhole_capture::read(&bytes).unwrap();
        let mut datagrams = 0;
        let mut messages = 0;
        let mut with_sdp = 0;
        for u in &cap.units {
            let mgcp_port =
                [2427, 2727].contains(&u.src.port()) || [2427, 2727].contains(&u.dst.port());
            if u.transport != pinhole_capture::Transport::Udp || !mgcp_port {
                continue;
            }
            let msgs = parse_datagram(&u.payload)
                .unwrap_or_else(|e| panic!("{file} frame {}: {e}", u.frame));
            datagrams += 1;
            messages += msgs.len();
            with_sdp += msgs.iter().filter(|m| m.has_sdp()).count();
            for m in &msgs {
                if let Some(s) = m.sdp().unwrap() {
                    assert!(!s.media().is_empty());
                }
            }
        }
        eprintln!(
            "{file}: {datagrams} datagrams, {messages} messages, {with_sdp} with SDP (tshark: {tshark})"
        );
        assert_eq!(datagrams, tshark, "{file}");
        assert_eq!(messages, tshark, "{file}: none is piggybacked");
    }
}
