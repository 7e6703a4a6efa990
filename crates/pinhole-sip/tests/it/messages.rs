//! Hand-written messages for each feature the tokenizer promises, and the
//! RFC 4475 cases that live in the hold-out set (written here from the
//! RFC's description, not copied).

use pinhole_core::patch::Patch;
use pinhole_sip::{
    Frame, HeaderName, Message, ParseError, Scheme, StartLine, Uri, fix_content_length, frame,
    name_addrs,
};

fn parse(s: &[u8]) -> Message<'_> {
    Message::parse(s).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(s)))
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[test]
fn compact_forms_map_to_long_names() {
    let raw = format!(
        "INVITE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>\r\ni: abc\r\nm: <sip:a@10.0.0.1>\r\nk: 100rel\r\ne: gzip\r\ns: hi\r\no: presence\r\nu: dialog\r\nr: <sip:c@example.com>\r\nb: <sip:d@example.com>\r\nx: 1800\r\nCSeq: 1 INVITE\r\nC: application/sdp\r\nL: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let m = parse(raw.as_bytes());
    let names: Vec<HeaderName> = m.headers().iter().map(|h| h.name).collect();
    use HeaderName::*;
    assert_eq!(
        names,
        [
            Via,
            From,
            To,
            CallId,
            Contact,
            Supported,
            ContentEncoding,
            Subject,
            Event,
            AllowEvents,
            ReferTo,
            ReferredBy,
            SessionExpires,
            CSeq,
            ContentType,
            ContentLength
        ]
    );
    assert_eq!(m.call_id(), Some(&b"abc"[..]));
    assert_eq!(m.from_tag(), Some(&b"1"[..]));
    assert_eq!(m.to_tag(), None);
    assert_eq!(m.content_length(), Some(SDP.len()));
    assert_eq!(m.sdp_bodies().unwrap(), vec![m.body()]);
    assert_eq!(
        &raw.as_bytes()[m.header(ContentType).unwrap().name_span.clone()],
        b"C"
    );
}

#[test]
fn folded_lines_keep_their_bytes() {
    let raw = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n\ttwo\r\n  three\r\nCSeq: 7\r\n OPTIONS\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    assert_eq!(
        m.value(m.header(HeaderName::Subject).unwrap()),
        b"one\r\n\ttwo\r\n  three"
    );
    assert_eq!(m.cseq(), Some((7, "OPTIONS")));
    assert_eq!(m.headers().len(), 3);
}

#[test]
fn lf_only_and_mixed_line_ends() {
    let lf = format!(
        "INVITE sip:b@h SIP/2.0\nCSeq: 1 INVITE\nc: application/sdp\nl: {}\n\n{SDP}",
        SDP.len()
    );
    let m = parse(lf.as_bytes());
    assert_eq!(m.line_ending(), b"\n");
    assert_eq!(&lf.as_bytes()[m.body()], SDP.as_bytes());
    // Start line CRLF, headers mixed, empty line LF.
    let mixed = format!(
        "INVITE sip:b@h SIP/2.0\r\nCSeq: 1 INVITE\nc: application/sdp\r\nl: {}\n\n{SDP}",
        SDP.len()
    );
    let m = parse(mixed.as_bytes());
    assert_eq!(m.line_ending(), b"\r\n");
    assert_eq!(m.headers().len(), 3);
    assert_eq!(&mixed.as_bytes()[m.body()], SDP.as_bytes());
    assert_eq!(m.headers_end() + 1, m.body().start);
}

#[test]
fn ipv6_via_and_uri() {
    let raw = b"INVITE sip:bob@[2001:db8::1]:5060;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK1;received=2001:db8::9;rport=6000\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    let u = Uri::parse(raw, m.request_uri().unwrap()).unwrap();
    assert_eq!(&raw[u.host.clone()], b"2001:db8::1");
    assert_eq!(&raw[u.host_port.clone()], b"[2001:db8::1]:5060");
    assert_eq!(u.port, Some(5060));
    let v = &m.vias()[0];
    assert_eq!(&raw[v.host.clone()], b"2001:db8::7");
    assert_eq!(&raw[v.sent_by.clone()], b"[2001:db8::7]:5062");
    assert_eq!(v.port, Some(5062));
    assert_eq!(&raw[v.received.clone().unwrap()], b"2001:db8::9");
    assert_eq!(v.rport, Some(Some(6000)));
}

#[test]
fn tel_uri_and_extension_method() {
    let raw = b"FOO-BAR.2 tel:+1-201-555-0123;phone-context=example.com SIP/2.0\r\nCSeq: 3 FOO-BAR.2\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    assert_eq!(m.method(), Some("FOO-BAR.2"));
    assert_eq!(m.cseq(), Some((3, "FOO-BAR.2")));
    let u = Uri::parse(raw, m.request_uri().unwrap()).unwrap();
    assert_eq!(u.scheme, Scheme::Tel);
    assert_eq!(&raw[u.user.unwrap()], b"+1-201-555-0123");
    assert!(matches!(m.start(), StartLine::Request { .. }));
}

#[test]
fn via_lists_across_and_within_headers() {
    let raw = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa;received=192.0.2.1, SIP/2.0/TCP p2.example.com:5070;branch=z9hG4bKb\r\nv: SIP/2.0/UDP 10.0.0.1;rport=5060;branch=z9hG4bKc\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    let v = m.vias();
    assert_eq!(v.len(), 3);
    let hosts: Vec<&[u8]> = v.iter().map(|v| &raw[v.host.clone()]).collect();
    assert_eq!(
        hosts,
        [&b"p1.example.com"[..], b"p2.example.com", b"10.0.0.1"]
    );
    assert_eq!(&raw[v[0].received.clone().unwrap()], b"192.0.2.1");
    assert_eq!(
        &raw[v[0].span.clone()],
        b"SIP/2.0/UDP p1.example.com;branch=z9hG4bKa;received=192.0.2.1"
    );
    assert_eq!(v[1].port, Some(5070));
    assert_eq!(&raw[v[1].transport.clone()], b"TCP");
    assert_eq!(v[2].rport, Some(Some(5060)));
    assert_eq!(v[0].params_end, v[0].span.end);
    assert_eq!(m.reason(), Some(&b"Ringing"[..]));
}

fn multipart(nl: &str) -> String {
    let sdp = SDP.replace("\r\n", nl);
    let body = format!(
        "--unique-boundary-1{nl}Content-Type: application/sdp{nl}{nl}{sdp}{nl}--unique-boundary-1{nl}Content-Type: application/isup; version=itu-t92+{nl}Content-Disposition: signal; handling=optional{nl}{nl}\x01\x00\x49{nl}--unique-boundary-1--{nl}"
    );
    format!(
        "INVITE sip:b@h SIP/2.0{nl}CSeq: 1 INVITE{nl}Content-Type: multipart/mixed;boundary=unique-boundary-1{nl}MIME-Version: 1.0{nl}Content-Length: {}{nl}{nl}{body}",
        body.len()
    )
}

#[test]
fn multipart_mixed_with_an_sdp_part() {
    for nl in ["\r\n", "\n"] {
        let raw = multipart(nl);
        let m = parse(raw.as_bytes());
        let sdps = m.sdp_bodies().unwrap();
        assert_eq!(sdps.len(), 1, "{nl:?}");
        assert_eq!(
            raw.as_bytes()[sdps[0].clone()],
            *SDP.replace("\r\n", nl).as_bytes()
        );
        // Rewriting inside the part keeps the multipart framing valid.
        let at = sdps[0].start + raw[sdps[0].clone()].find("c=IN IP4 ").unwrap() + 9;
        let mut p = Patch::new();
        p.replace(at..at + 8, b"203.0.113.200");
        fix_content_length(&m, &mut p);
        let out = p.apply(raw.as_bytes()).unwrap();
        let again = Message::parse(&out).unwrap();
        assert_eq!(again.content_length(), Some(m.body().len() + 5));
        let s = again.sdp_bodies().unwrap();
        assert!(out[s[0].clone()].windows(13).any(|w| w == b"203.0.113.200"));
    }
}

#[test]
fn fix_content_length_grows_shrinks_inserts_and_keeps_compact() {
    let raw = b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0005\r\n\r\nhello";
    let m = parse(raw);
    // Unchanged length: the leading zeros stay.
    let mut p = Patch::new();
    p.replace(m.body().start..m.body().start + 1, b"j");
    fix_content_length(&m, &mut p);
    assert_eq!(
        p.apply(raw).unwrap(),
        b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0005\r\n\r\njello"
    );
    // Grow.
    let mut p = Patch::new();
    p.insert(m.body().end, b", world");
    fix_content_length(&m, &mut p);
    assert_eq!(
        p.apply(raw).unwrap(),
        b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 12\r\n\r\nhello, world"
    );
    // Shrink to nothing.
    let mut p = Patch::new();
    p.delete(m.body());
    fix_content_length(&m, &mut p);
    assert_eq!(
        p.apply(raw).unwrap(),
        b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    // Compact stays compact.
    let raw = b"MESSAGE sip:a@b SIP/2.0\nl:5\n\nhello";
    let m = parse(raw);
    let mut p = Patch::new();
    p.replace(m.body(), b"hi");
    fix_content_length(&m, &mut p);
    assert_eq!(p.apply(raw).unwrap(), b"MESSAGE sip:a@b SIP/2.0\nl:2\n\nhi");
    // Missing: inserted before the empty line, with the message's line end.
    let raw = b"MESSAGE sip:a@b SIP/2.0\nCSeq: 1 MESSAGE\n\nhello";
    let m = parse(raw);
    assert_eq!(m.content_length(), None);
    let mut p = Patch::new();
    p.replace(m.body(), b"hello there");
    fix_content_length(&m, &mut p);
    let out = p.apply(raw).unwrap();
    assert_eq!(
        out,
        b"MESSAGE sip:a@b SIP/2.0\nCSeq: 1 MESSAGE\nContent-Length: 11\n\nhello there"
    );
    // Missing and unchanged: nothing added.
    let mut p = Patch::new();
    fix_content_length(&m, &mut p);
    assert!(p.is_empty());
    // Edits outside the body do not count.
    let raw = b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nl: 5\r\n\r\nhello";
    let m = parse(raw);
    let mut p = Patch::new();
    p.insert(m.headers_end(), b"X-Added: yes\r\n");
    fix_content_length(&m, &mut p);
    assert_eq!(p.edits().count(), 1);
}

#[test]
fn tcp_framing_two_messages_partial_and_keepalives() {
    let a = format!(
        "INVITE sip:b@h SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let b = "ACK sip:b@h SIP/2.0\r\nCSeq: 1 ACK\r\nl: 0\r\n\r\n";
    let stream = format!("\r\n\r\n{a}\r\n{b}");
    let s = stream.as_bytes();
    assert_eq!(frame(s).unwrap(), Some(Frame::Keepalive(4)));
    assert_eq!(frame(&s[4..]).unwrap(), Some(Frame::Message(a.len())));
    let rest = &s[4 + a.len()..];
    assert_eq!(frame(rest).unwrap(), Some(Frame::Keepalive(2)));
    assert_eq!(frame(&rest[2..]).unwrap(), Some(Frame::Message(b.len())));
    let m = Message::parse(&s[4..4 + a.len()]).unwrap();
    assert_eq!(m.sdp_bodies().unwrap().len(), 1);
    // A body split across reads: the frame appears only with its last byte.
    let whole = a.as_bytes();
    let headers_len = whole.len() - SDP.len();
    for cut in [
        headers_len - 1,
        headers_len,
        headers_len + 1,
        whole.len() - 1,
    ] {
        assert_eq!(frame(&whole[..cut]).unwrap(), None, "cut at {cut}");
    }
    assert_eq!(frame(whole).unwrap(), Some(Frame::Message(whole.len())));
}

// RFC 4475 hold-out cases, written from the RFC's descriptions.

#[test]
fn dblreq_trailing_bytes_are_reported_not_parsed() {
    let second = format!(
        "INVITE sip:joe@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\nl: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let raw = format!(
        "REGISTER sip:example.com SIP/2.0\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n{second}"
    );
    let m = parse(raw.as_bytes());
    assert_eq!(m.method(), Some("REGISTER"));
    assert!(m.body().is_empty());
    assert_eq!(&raw.as_bytes()[m.trailing()], second.as_bytes());
    assert!(m.sdp_bodies().unwrap().is_empty());
}

#[test]
fn content_length_errors() {
    let clerr = b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\nv=0\r\n";
    assert!(matches!(
        Message::parse(clerr),
        Err(ParseError::BodyTruncated {
            declared: 9999,
            available: 5,
            ..
        })
    ));
    let ncl = b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: -999\r\n\r\nv=0\r\n";
    assert!(matches!(
        Message::parse(ncl),
        Err(ParseError::ContentLength { .. })
    ));
    let mcl =
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\nl: 5\r\n\r\nhello";
    assert!(matches!(
        Message::parse(mcl),
        Err(ParseError::ContentLength { .. })
    ));
    let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert!(matches!(
        Message::parse(huge),
        Err(ParseError::ContentLength { .. })
    ));
    let empty = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n\r\n";
    assert!(matches!(
        Message::parse(empty),
        Err(ParseError::ContentLength { .. })
    ));
}

#[test]
fn baddn_without_empty_line_and_bad_display_names() {
    let raw = b"OPTIONS sip:t.watson@example.org SIP/2.0\r\nFrom: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\nTo: Watson, Thomas <sip:t.watson@example.org>\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n";
    let m = parse(raw);
    assert_eq!(m.headers_end(), raw.len());
    assert!(m.body().is_empty() && m.trailing().is_empty());
    for n in [HeaderName::From, HeaderName::To] {
        let h = m.header(n).unwrap();
        assert!(matches!(
            name_addrs(raw, h.value.clone()),
            Err(ParseError::NameAddr { .. })
        ));
    }
    assert_eq!(m.from_tag(), None);
    // Over a stream it never frames: no empty line yet.
    assert_eq!(frame(raw).unwrap(), None);
    // quotbal: unterminated quote in a display name.
    let raw = b"INVITE sip:a@b SIP/2.0\r\nTo: \"Mr. J. User <sip:j.user@example.com>\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    let to = m.header(HeaderName::To).unwrap();
    assert!(matches!(
        name_addrs(raw, to.value.clone()),
        Err(ParseError::NameAddr { .. })
    ));
}

#[test]
fn rfc2543_style_without_content_length_takes_the_rest() {
    let raw = format!(
        "INVITE sip:UserB@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.15\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\n{SDP}"
    );
    let m = parse(raw.as_bytes());
    assert_eq!(m.content_length(), None);
    assert_eq!(&raw.as_bytes()[m.body()], SDP.as_bytes());
    assert_eq!(m.vias()[0].branch, None);
    assert_eq!(
        frame(raw.as_bytes()),
        Err(ParseError::MissingContentLength { at: 0 })
    );
}

#[test]
fn escaped_nul_and_raw_control_bytes_in_quoted_strings() {
    let raw = b"REGISTER sip:example.com SIP/2.0\r\nTo: sip:null-%00-null@example.com\r\nFrom: \"\\\x00 \\\x07\" <sip:a@example.com>;tag=1\r\nCSeq: 1 REGISTER\r\nl: 0\r\n\r\n";
    let m = parse(raw);
    assert_eq!(m.from_tag(), Some(&b"1"[..]));
    let to = m.header(HeaderName::To).unwrap();
    let na = &name_addrs(raw, to.value.clone()).unwrap()[0];
    assert_eq!(
        &raw[Uri::parse(raw, na.uri.clone()).unwrap().user.unwrap()],
        b"null-%00-null"
    );
}

#[test]
fn start_line_errors() {
    let cases: &[(&[u8], ParseError)] = &[
        (
            b"",
            ParseError::Truncated {
                at: 0,
                reason: "no line end after the start line",
            },
        ),
        (
            b"INVITE sip:a@b SIP/2.0",
            ParseError::Truncated {
                at: 22,
                reason: "no line end after the start line",
            },
        ),
        (
            b"\r\nINVITE sip:a@b SIP/2.0\r\n\r\n",
            ParseError::StartLine {
                at: 0,
                reason: "empty start line",
            },
        ),
        (
            b"INVITE\r\n\r\n",
            ParseError::StartLine {
                at: 0,
                reason: "no SP after the method",
            },
        ),
        (
            b"INVITE sip:a@b\r\n\r\n",
            ParseError::StartLine {
                at: 6,
                reason: "no SP between Request-URI and version",
            },
        ),
        (
            b"INV:TE sip:a@b SIP/2.0\r\n\r\n",
            ParseError::StartLine {
                at: 0,
                reason: "method is not a token",
            },
        ),
        (
            b"INVITE sip:a@b HTTP/1.1\r\n\r\n",
            ParseError::StartLine {
                at: 15,
                reason: "bad SIP version",
            },
        ),
        (
            b"INVITE sip:a\tb SIP/2.0\r\n\r\n",
            ParseError::StartLine {
                at: 12,
                reason: "white space or control byte in the Request-URI",
            },
        ),
        (b"SIP/2.0 99 Low\r\n\r\n", ParseError::StatusCode { at: 8 }),
        (
            b"SIP/2.0 700 High\r\n\r\n",
            ParseError::StatusCode { at: 8 },
        ),
        (b"SIP/2.0 2000 OK\r\n\r\n", ParseError::StatusCode { at: 8 }),
        (
            b"SIP/2.0\r\n\r\n",
            ParseError::StartLine {
                at: 7,
                reason: "no status code",
            },
        ),
        (
            b"SIP/2 200 OK\r\n\r\n",
            ParseError::StartLine {
                at: 0,
                reason: "bad SIP version",
            },
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(
            Message::parse(raw).err().as_ref(),
            Some(want),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // A response without reason phrase, with and without the SP.
    assert_eq!(parse(b"SIP/2.0 100 \r\n\r\n").reason(), Some(&b""[..]));
    assert_eq!(parse(b"SIP/2.0 100\r\n\r\n").status(), Some(100));
}

#[test]
fn header_errors_and_cseq_checks() {
    let bad_line = b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n";
    assert_eq!(
        Message::parse(bad_line).err(),
        Some(ParseError::Header {
            at: 25,
            reason: "no ':' after the header name"
        })
    );
    let leading_fold = b"OPTIONS sip:a@b SIP/2.0\r\n continued: x\r\n\r\n";
    assert!(matches!(
        Message::parse(leading_fold),
        Err(ParseError::Header { at: 25, .. })
    ));
    for cseq in [
        &b"CSeq: OPTIONS"[..],
        b"CSeq: 1",
        b"CSeq: 1OPTIONS",
        b"CSeq: 1 OPTIONS x",
        b"CSeq: 4294967296 OPTIONS",
    ] {
        let raw = [&b"OPTIONS sip:a@b SIP/2.0\r\n"[..], cseq, b"\r\n\r\n"].concat();
        assert!(
            matches!(Message::parse(&raw), Err(ParseError::CSeq { .. })),
            "{}",
            String::from_utf8_lossy(cseq)
        );
    }
    let max = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 4294967295 OPTIONS\r\n\r\n";
    assert_eq!(parse(max).cseq(), Some((u32::MAX, "OPTIONS")));
    // Responses carry the request's method in CSeq.
    assert_eq!(
        parse(b"SIP/2.0 200 OK\r\nCSeq: 2 INVITE\r\n\r\n").cseq(),
        Some((2, "INVITE"))
    );
    let bad_via = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP\r\n\r\n";
    assert!(matches!(
        Message::parse(bad_via),
        Err(ParseError::Via { .. })
    ));
    let mf = b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 300\r\n\r\n";
    assert!(matches!(
        parse(mf).max_forwards(),
        Err(ParseError::Number { .. })
    ));
}
