//! Exact-byte tests: piggybacking, K:, wildcards and bracketed domains,
//! line endings, commentary, media roles, builders, and errors with their
//! lines.

use std::net::{IpAddr, SocketAddr};

use pinhole_core::intent::{IntentKind, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_mgcp::{
    Command, ErrorKind, Head, Host, MediaRole, Message, Response, Verb, parse_datagram, piggyback,
    response, rewrite_all,
};
use pinhole_sdp::{RewriteOptions, SdpError};

fn err(buf: &[u8]) -> (usize, ErrorKind) {
    let e = parse_datagram(buf).unwrap_err();
    (e.line, e.kind)
}

const SDP: &str = "v=0\r\nc=IN IP4 10.1.2.3\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\n";

#[test]
fn piggybacked_messages_and_their_spans() {
    // RFC 3435 §3.6 style: a response, then a command with SDP, then one
    // more command, in one datagram.
    let d = format!(
        "200 1203 OK\r\n.\r\nMDCX 1209 aaln/1@rgw.example.net MGCP 1.0\r\nC: A3C47F21456789F0\r\nI: FDE234C8\r\nM: sendrecv\r\n\r\n{SDP}.\r\nRQNT 1210 aaln/1@rgw.example.net MGCP 1.0\r\nK: 1200-1202, 1205\r\nX: 0123456789AC\r\nR: hu\r\n"
    );
    let d = d.as_bytes();
    let msgs = parse_datagram(d).unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(&d[msgs[0].span()], b"200 1203 OK\r\n");
    assert_eq!((msgs[1].line(), msgs[2].line()), (3, 13));
    let sdp_span = msgs[1].sdp_span().unwrap();
    assert_eq!(
        &d[sdp_span.clone()],
        SDP.as_bytes(),
        "the SDP stops before the '.' line"
    );
    assert!(d[msgs[1].span()].ends_with(SDP.as_bytes()));
    assert_eq!(msgs[1].media_role(), MediaRole::Modify);
    assert_eq!(msgs[1].connection_id(), Some("FDE234C8"));
    let k = msgs[2].response_ack().unwrap().unwrap();
    assert_eq!(k.ranges(), [1200..=1202, 1205..=1205]);
    assert!(msgs[0].response_ack().unwrap().is_none());
    assert_eq!(
        Message::parse(d).unwrap_err(),
        pinhole_mgcp::Error {
            line: 2,
            kind: ErrorKind::Piggybacked
        }
    );

    // Rewrite the middle message's SDP: only its c=, m= and a=rtcp values
    // change, in the datagram.
    let sdp = msgs[1].sdp().unwrap().unwrap();
    let plan = [PlannedEndpoint {
        index: 0,
        addr: "203.0.113.10:30000".parse().unwrap(),
        rtcp_addr: Some("203.0.113.10:30001".parse().unwrap()),
    }];
    let mut patch = Patch::new();
    msgs[1]
        .rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), &mut patch)
        .unwrap();
    let out = patch.apply(d).unwrap();
    let expected = String::from_utf8(d.to_vec())
        .unwrap()
        .replace("c=IN IP4 10.1.2.3", "c=IN IP4 203.0.113.10")
        .replace("m=audio 4000 ", "m=audio 30000 ")
        .replace("a=rtcp:4001", "a=rtcp:30001");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    // No SDP, no rewrite.
    assert_eq!(
        msgs[0]
            .rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), &mut patch)
            .unwrap_err()
            .kind,
        ErrorKind::NoSdp
    );
}

#[test]
fn rewrite_all_numbers_streams_across_the_datagram() {
    let one = format!("CRCX 1 a@gw MGCP 1.0\nC: 1\n\n{SDP}");
    let two = "200 2 OK\nI: 9\n\nv=0\nc=IN IP4 10.9.9.9\nm=audio 5000 RTP/AVP 0\nm=video 0 RTP/AVP 96\nm=audio 6000 RTP/AVP 8\na=rtcp-mux\n";
    let d = piggyback(&[one.as_bytes(), two.as_bytes()]);
    let out = rewrite_all(&d, "198.51.100.1:20000".parse().unwrap()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        String::from_utf8(d)
            .unwrap()
            .replace("10.1.2.3", "198.51.100.1")
            .replace("audio 4000", "audio 20000")
            .replace("rtcp:4001", "rtcp:20001")
            .replace("10.9.9.9", "198.51.100.1")
            .replace("audio 5000", "audio 20002")
            .replace("audio 6000", "audio 20004")
    );
}

#[test]
fn endpoints_wildcards_and_bracketed_domains() {
    let cases: [(&str, &str, Host<'_>, Option<u16>, bool); 6] = [
        ("*@gw1.example", "*", Host::Name("gw1.example"), None, true),
        (
            "aaln/$@gw1.example:2427",
            "aaln/$",
            Host::Name("gw1.example"),
            Some(2427),
            true,
        ),
        (
            "ds/ds1-1/2@[10.0.0.1]",
            "ds/ds1-1/2",
            Host::Ip(IpAddr::from([10, 0, 0, 1])),
            None,
            false,
        ),
        (
            "aaln/1@[2001:db8::1]:2427",
            "aaln/1",
            Host::Ip("2001:db8::1".parse().unwrap()),
            Some(2427),
            false,
        ),
        ("aaln/1*@gw", "aaln/1*", Host::Name("gw"), None, false),
        ("x@#123", "x", Host::Name("#123"), None, false),
    ];
    for (ep, local, host, port, wild) in cases {
        let line = format!("AUEP 7 {ep} MGCP 1.0\r\n");
        let m = Message::parse(line.as_bytes()).unwrap();
        let e = m.endpoint().unwrap();
        assert_eq!(
            (e.local, e.host, e.port, e.is_wildcard()),
            (local, host, port, wild),
            "{ep}"
        );
        assert_eq!(&line.as_bytes()[e.span.clone()], ep.as_bytes());
        assert_eq!(&line.as_bytes()[e.local_span.clone()], local.as_bytes());
    }
    for (ep, why) in [
        ("aaln1", "no @domain"),
        ("@gw", "no local name"),
        ("a@", "bad domain name or port"),
        ("a@gw:", "bad domain name or port"),
        ("a@gw:99999", "bad port"),
        ("a@[10.0.0.300]", "bad address in brackets"),
        ("a@[::1", "bad domain name or port"),
        ("a@g w", "?"),
    ] {
        let line = format!("AUEP 7 {ep} MGCP 1.0\r\n");
        let (no, kind) = err(line.as_bytes());
        assert_eq!(no, 1, "{ep}");
        if why == "?" {
            // The blank ends the endpoint: "w MGCP 1.0" is no version.
            assert_eq!(kind, ErrorKind::BadVersion, "{ep}");
        } else {
            assert_eq!(kind, ErrorKind::BadEndpoint(why), "{ep}");
        }
    }
}

#[test]
fn command_lines() {
    let m = Message::parse(b"crcx 999999999 a@gw mgcp 1.0 NCS 1.0\n").unwrap();
    let c = m.command().unwrap();
    assert_eq!(c.verb, Verb::Crcx, "verbs compare without letter case");
    assert_eq!(
        (c.transaction_id, c.version.major, c.version.minor),
        (999_999_999, 1, 0)
    );
    assert_eq!(c.version.profile, Some("NCS 1.0"));
    assert_eq!(c.version.text, "mgcp 1.0 NCS 1.0");
    let m = Message::parse(b"X1AB 5 a@gw MGCP 0.1").unwrap();
    assert_eq!(m.verb(), Some(Verb::Other("X1AB")));
    assert_eq!(m.verb().unwrap().as_str(), "X1AB");
    // Tabs and repeated blanks separate fields; trailing blanks are no field.
    let m = Message::parse(b"EPCF\t12  a@gw \tMGCP 1.0 \r\nB: e:mu\r\n").unwrap();
    assert_eq!(m.verb(), Some(Verb::Epcf));
    assert_eq!(m.value("b"), Some("e:mu"));
    assert_eq!(m.command().unwrap().version.profile, None);
}

#[test]
fn response_lines() {
    fn r(raw: &[u8]) -> Response<'_> {
        Message::parse(raw).unwrap().response().unwrap().clone()
    }
    let x = r(b"200 262662134 \n");
    assert_eq!((x.code, x.commentary, x.commentary_span), (200, None, None));
    let x = r(b"200 1");
    assert_eq!((x.transaction_id, x.commentary), (1, None));
    let x = r(b"510 77 Unknown verb, sorry\r\n");
    assert_eq!(x.commentary, Some("Unknown verb, sorry"));
    assert_eq!(x.commentary_span, Some(7..26));
    let x = r(b"805 9 /L rtp-stat\r\n");
    assert_eq!((x.package, x.commentary), (Some("L"), Some("rtp-stat")));
    let x = r(b"000 12\r\n");
    assert!(x.is_ack() && !x.is_final());
    let x = r(b"100 12 pending\r\n");
    assert!(x.is_provisional() && !x.is_final() && !x.is_success());
    let x = r(b"250 12 OK\r\n");
    assert!(x.is_success() && x.is_final());
}

#[test]
fn line_endings_lf_crlf_and_bare_cr() {
    for eol in ["\r\n", "\n", "\r"] {
        let raw = format!("CRCX 5 a@gw MGCP 1.0{eol}C: 7{eol}M: recvonly{eol}{eol}v=0{eol}");
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.params().len(), 2, "{eol:?}");
        assert_eq!(m.mode(), Some("recvonly"));
        assert_eq!(
            &raw.as_bytes()[m.sdp_span().unwrap()],
            format!("v=0{eol}").as_bytes()
        );
    }
    // Trailing NULs are no part of the message.
    let m = Message::parse(b"200 5 OK\n\0\0").unwrap();
    assert_eq!(m.span(), 0..9);
    // An empty line with nothing after it is no SDP.
    let m = Message::parse(b"200 5 OK\r\nI: 1\r\n\r\n").unwrap();
    assert!(!m.has_sdp() && m.sdp().unwrap().is_none());
    assert_eq!(m.media_role(), MediaRole::None);
    // A final separator with nothing after it ends the datagram.
    assert_eq!(parse_datagram(b"200 5 OK\n.\n").unwrap().len(), 1);
    // An empty line right before a separator: no SDP, and the next
    // message still follows.
    let d = b"200 1 OK\r\n\r\n. \r\n200 2 OK\r\n";
    let msgs = parse_datagram(d).unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(!msgs[0].has_sdp());
    assert_eq!(
        (msgs[0].span(), msgs[1].span(), msgs[1].line()),
        (0..12, 16..26, 4)
    );
}

#[test]
fn media_roles() {
    let role = |raw: String| Message::parse(raw.as_bytes()).unwrap().media_role();
    assert_eq!(
        role(format!("CRCX 1 a@gw MGCP 1.0\r\nC: 1\r\n\r\n{SDP}")),
        MediaRole::Offer
    );
    assert_eq!(
        role("CRCX 1 a@gw MGCP 1.0\r\nC: 1\r\n".into()),
        MediaRole::None
    );
    assert_eq!(
        role(format!("MDCX 1 a@gw MGCP 1.0\r\n\r\n{SDP}")),
        MediaRole::Modify
    );
    assert_eq!(
        role("MDCX 1 a@gw MGCP 1.0\r\nM: inactive\r\n".into()),
        MediaRole::None
    );
    assert_eq!(
        role("DLCX 1 a@gw MGCP 1.0\r\nC: 1\r\n".into()),
        MediaRole::Teardown
    );
    assert_eq!(
        role(format!("200 1 OK\r\nI: 1\r\n\r\n{SDP}")),
        MediaRole::Answer
    );
    assert_eq!(role(format!("502 1 busy\r\n\r\n{SDP}")), MediaRole::None);
    assert_eq!(role("250 1 OK\r\n".into()), MediaRole::None);
    assert_eq!(MediaRole::Offer.intent_kind(), Some(IntentKind::Offer));
    assert_eq!(MediaRole::Modify.intent_kind(), Some(IntentKind::Modify));
    assert_eq!(MediaRole::Answer.intent_kind(), Some(IntentKind::Answer));
    assert_eq!(
        MediaRole::Teardown.intent_kind(),
        Some(IntentKind::Teardown)
    );
    assert_eq!(MediaRole::None.intent_kind(), None);
}

#[test]
fn errors_name_their_line() {
    assert_eq!(err(b""), (1, ErrorKind::Empty));
    assert_eq!(err(b"\r\nCRCX 1 a@gw MGCP 1.0\r\n"), (1, ErrorKind::Empty));
    assert_eq!(err(b"CRC 1 a@gw MGCP 1.0\r\n"), (1, ErrorKind::BadVerb));
    assert_eq!(
        err(b"1RCX 1 a@gw MGCP 1.0\r\n").1,
        ErrorKind::BadResponseCode
    );
    assert_eq!(err(b"CR-X 1 a@gw MGCP 1.0\r\n"), (1, ErrorKind::BadVerb));
    assert_eq!(
        err(b"CRCX 0 a@gw MGCP 1.0\r\n"),
        (1, ErrorKind::BadTransactionId)
    );
    assert_eq!(
        err(b"CRCX 1000000000 a@gw MGCP 1.0\r\n"),
        (1, ErrorKind::BadTransactionId)
    );
    assert_eq!(
        err(b"CRCX 12a a@gw MGCP 1.0\r\n"),
        (1, ErrorKind::BadTransactionId)
    );
    assert_eq!(
        err(b"CRCX\r\n"),
        (1, ErrorKind::BadCommandLine("no transaction id"))
    );
    assert_eq!(
        err(b"CRCX 1\r\n"),
        (1, ErrorKind::BadCommandLine("no endpoint name"))
    );
    assert_eq!(
        err(b"CRCX 1 a@gw\r\n"),
        (1, ErrorKind::BadCommandLine("no protocol version"))
    );
    assert_eq!(err(b"CRCX 1 a@gw SIP/2.0\r\n"), (1, ErrorKind::BadVersion));
    assert_eq!(err(b"CRCX 1 a@gw MGCP 1\r\n"), (1, ErrorKind::BadVersion));
    assert_eq!(err(b"20 1 OK\r\n"), (1, ErrorKind::BadResponseCode));
    assert_eq!(err(b"2000 1 OK\r\n"), (1, ErrorKind::BadResponseCode));
    assert_eq!(err(b"200\r\n"), (1, ErrorKind::BadTransactionId));
    assert_eq!(err(b"200 OK\r\n"), (1, ErrorKind::BadTransactionId));
    assert_eq!(
        err(b"CRCX 1 a@gw MGCP 1.0\r\nC: 1\r\nbroken line\r\n"),
        (3, ErrorKind::BadParameterLine("no colon after the name"))
    );
    assert_eq!(err(b"200 1 OK\r\nI: \xff\r\n"), (2, ErrorKind::NotUtf8));
    assert_eq!(err(b"200 1 \xffOK\r\n"), (1, ErrorKind::NotUtf8));
    // Lines count across piggybacked messages.
    assert_eq!(
        err(b"200 1 OK\r\n.\r\n200 2 OK\r\n.\r\nRQNT x a@gw MGCP 1.0\r\n"),
        (5, ErrorKind::BadTransactionId)
    );
    assert_eq!(
        err(b"200 1 OK\r\n.\r\n.\r\n200 2 OK\r\n"),
        (3, ErrorKind::Empty)
    );
    // A bad K: is reported when read, at its line.
    let m = Message::parse(b"RQNT 3 a@gw MGCP 1.0\r\nX: 1\r\nK: 9-2\r\n").unwrap();
    let e = m.response_ack().unwrap_err();
    assert_eq!(e.line, 3);
    assert!(matches!(e.kind, ErrorKind::BadResponseAck(_)));
    assert!(
        e.to_string()
            .starts_with("MGCP line 3: bad response acknowledgement")
    );
    // SDP errors name the datagram line.
    let m = Message::parse(b"200 1 OK\r\nI: 1\r\n\r\nv=0\r\nnot sdp\r\n").unwrap();
    let e = m.sdp().unwrap_err();
    assert_eq!(e.line, 5);
    assert!(matches!(
        e.kind,
        ErrorKind::Sdp(SdpError::NotSdp { line: 2, .. })
    ));
}

#[test]
fn builders_round_trip() {
    let bytes = Command::builder("CRCX", 1204, "aaln/1@gw1.corp1.example")
        .param("C", "A3C47F21456789F0")
        .param("L", "p:10, a:PCMU")
        .param("M", "recvonly")
        .sdp(SDP.as_bytes())
        .to_bytes();
    assert_eq!(
        bytes,
        format!(
            "CRCX 1204 aaln/1@gw1.corp1.example MGCP 1.0\r\nC: A3C47F21456789F0\r\nL: p:10, a:PCMU\r\nM: recvonly\r\n\r\n{SDP}"
        )
        .as_bytes()
    );
    let lf = Command::builder("RSIP", 1, "*@gw")
        .version("MGCP 1.0 NCS 1.0")
        .param("RM", "restart")
        .lf()
        .to_bytes();
    assert_eq!(lf, b"RSIP 1 *@gw MGCP 1.0 NCS 1.0\nRM: restart\n");
    let r = Response::builder(200, 1204)
        .commentary("OK")
        .param("I", "FDE234C8")
        .sdp(SDP.as_bytes())
        .to_bytes();
    assert_eq!(
        r,
        response(
            200,
            1204,
            Some("OK"),
            &[("I", "FDE234C8")],
            Some(SDP.as_bytes())
        )
    );
    let m = Message::parse(&r).unwrap();
    assert_eq!(m.media_role(), MediaRole::Answer);
    assert_eq!(response(0, 5, None, &[], None), b"000 5\r\n");
    let d = piggyback(&[b"200 1 OK", b"200 2 OK\n", b"000 3"]);
    assert_eq!(d, b"200 1 OK\r\n.\r\n200 2 OK\n.\n000 3");
    let msgs = parse_datagram(&d).unwrap();
    assert_eq!(
        msgs.iter().map(Message::transaction_id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(matches!(msgs[2].head(), Head::Response(r) if r.is_ack()));
    let to: SocketAddr = "203.0.113.1:1000".parse().unwrap();
    assert!(rewrite_all(&d, to).is_err(), "no SDP to rewrite");
}

/// The shapes osmo-mgw 1.10 answers with (docs/osmo-mgw.md on main): a
/// wildcard CRCX's 200 naming the endpoint in `Z:`, a DLCX's 250 with
/// connection statistics.
#[test]
fn osmo_mgw_answers() {
    let crcx_200 = b"200 1005 OK\r\nZ: rtpbridge/1@mgw\r\nI: EE6A8C6C\r\n\r\n\
        v=0\r\no=- EE6A8C6C 23 IN IP4 127.0.0.41\r\ns=-\r\nc=IN IP4 127.0.0.41\r\n\
        t=0 0\r\nm=audio 43000 RTP/AVP 0\r\na=ptime:20\r\n";
    let m = Message::parse(crcx_200).unwrap();
    assert_eq!(m.value("z"), Some("rtpbridge/1@mgw"));
    assert_eq!(m.connection_id(), Some("EE6A8C6C"));
    assert_eq!(m.media_role(), MediaRole::Answer);
    let e = m
        .sdp()
        .unwrap()
        .unwrap()
        .endpoints(IpAddr::from([0, 0, 0, 0]))
        .unwrap();
    assert_eq!(e[0].addr, "127.0.0.41:43000".parse().unwrap());
    let out = rewrite_all(crcx_200, "203.0.113.10:30000".parse().unwrap()).unwrap();
    let expected = String::from_utf8(crcx_200.to_vec())
        .unwrap()
        .replace("c=IN IP4 127.0.0.41", "c=IN IP4 203.0.113.10")
        .replace("m=audio 43000 ", "m=audio 30000 ");
    assert_eq!(String::from_utf8(out).unwrap(), expected, "o= is kept");

    let dlcx_250 = b"250 1009 OK\r\nP: PS=10, OS=1720, PR=9, OR=1548, PL=0, JI=0\r\n";
    let m = Message::parse(dlcx_250).unwrap();
    assert!(m.response().unwrap().is_success());
    assert_eq!(
        m.media_role(),
        MediaRole::None,
        "the ALG ends the DLCX by its transaction"
    );
    assert!(m.value("P").unwrap().starts_with("PS=10"));
    let auep = Message::parse(b"AUEP 1 rtpbridge/*@mgw MGCP 1.0\r\n").unwrap();
    assert!(auep.endpoint().unwrap().is_wildcard());
}

/// Found by fuzzing: an SDP whose last line ends with a bare CR right
/// before a piggyback separator. SDP knows no bare-CR line end, so a line
/// the rewrite added at the SDP's end swallowed the separator and two
/// messages became one. The SDP span now stops before that CR.
#[test]
fn a_bare_cr_before_a_separator_stays_outside_the_sdp() {
    let d = b"200 1 OK\nI: 1\n\nv=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\r.\r200 2 OK\n";
    let msgs = pinhole_mgcp::parse_datagram(d).unwrap();
    assert_eq!(msgs.len(), 2);
    let span = msgs[0].sdp_span().unwrap();
    assert!(d[..span.end].ends_with(b"4002 RTP/AVP 0"), "{span:?}");
    // Two streams to different relay addresses: a media-level c= is added
    // at the SDP's end; the separator survives.
    let out = pinhole_mgcp::rewrite_all(d, "203.0.113.10:40000".parse().unwrap()).unwrap();
    let again = pinhole_mgcp::parse_datagram(&out).unwrap();
    assert_eq!(again.len(), 2, "{}", String::from_utf8_lossy(&out));
    assert_eq!(again[1].transaction_id(), 2);
}
