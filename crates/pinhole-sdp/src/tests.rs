//! One test per feature, each checking exact output bytes.

use std::net::{IpAddr, SocketAddr};

use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::wire::RtcpMode;

use crate::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const FALLBACK: &str = "192.0.2.99";

fn eps(body: &[u8]) -> Vec<MediaEndpoint> {
    Sdp::parse(body).unwrap().endpoints(ip(FALLBACK)).unwrap()
}

fn plan(index: u16, addr: &str) -> PlannedEndpoint {
    PlannedEndpoint {
        index,
        addr: sa(addr),
        rtcp_addr: None,
    }
}

/// Rewrites and returns the new body as text.
fn rewrite_with(body: &[u8], plan: &[PlannedEndpoint], opts: &RewriteOptions) -> String {
    let sdp = Sdp::parse(body).unwrap();
    let mut patch = Patch::new();
    sdp.rewrite(plan, opts, &mut patch).unwrap();
    String::from_utf8(patch.apply(body).unwrap()).unwrap()
}

fn rewrite(body: &[u8], plan: &[PlannedEndpoint]) -> String {
    rewrite_with(body, plan, &RewriteOptions::default())
}

#[test]
fn session_connection_serves_streams_without_their_own() {
    let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\n\
        m=video 4002 RTP/AVP 31\r\nc=IN IP4 10.0.0.6\r\n";
    let sdp = Sdp::parse(body).unwrap();
    assert_eq!(sdp.session_connection().unwrap().ip(), Some(ip("10.0.0.5")));
    assert!(sdp.media()[0].connection.is_none());
    assert_eq!(sdp.media()[1].connection.as_ref().unwrap().line, 8);
    let e = sdp.endpoints(ip(FALLBACK)).unwrap();
    assert_eq!(e[0], MediaEndpoint::rtp(0, sa("10.0.0.5:4000")));
    assert_eq!(e[1], MediaEndpoint::rtp(1, sa("10.0.0.6:4002")));
    // The media-level line is rewritten; the session line serves only the
    // audio stream, which moves too, so it is rewritten in place.
    let out = rewrite(
        body,
        &[plan(0, "203.0.113.10:30000"), plan(1, "203.0.113.10:30002")],
    );
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\n\
         m=video 30002 RTP/AVP 31\r\nc=IN IP4 203.0.113.10\r\n"
    );
    // Moving only the video stream leaves the session line alone.
    let out = rewrite(body, &[plan(1, "203.0.113.10:30002")]);
    assert!(out.contains("c=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 "));
}

#[test]
fn session_connection_shared_by_streams_that_part_gets_media_lines() {
    let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\ni=voice\r\na=sendrecv\r\n\
        m=video 4002 RTP/AVP 31\r\n";
    let out = rewrite(
        body,
        &[plan(0, "203.0.113.10:30000"), plan(1, "203.0.113.11:30002")],
    );
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 203.0.113.10\r\na=sendrecv\r\n\
         m=video 30002 RTP/AVP 31\r\nc=IN IP4 203.0.113.11\r\n"
    );
    // A stream that keeps the session address needs no line of its own.
    let out = rewrite(
        body,
        &[plan(0, "10.0.0.5:30000"), plan(1, "203.0.113.11:30002")],
    );
    assert!(out.contains("m=audio 30000 RTP/AVP 0\r\ni=voice\r\na=sendrecv\r\n"));
    assert!(out.ends_with("m=video 30002 RTP/AVP 31\r\nc=IN IP4 203.0.113.11\r\n"));
    // An enabled stream left out of the plan keeps the session address:
    // the planned one gets its own line.
    let out = rewrite(body, &[plan(1, "203.0.113.11:30002")]);
    assert!(out.starts_with("v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\n"));
    assert!(out.ends_with("c=IN IP4 203.0.113.11\r\n"));
}

#[test]
fn ipv6_addresses_and_family_changes() {
    let body = b"v=0\r\no=- 1 1 IN IP6 fe80:0:0:0:21a:a0ff:fe07:32e0\r\ns=-\r\n\
        c=IN IP6 fe80:0:0:0:21a:a0ff:fe07:32e0\r\nt=0 0\r\nm=audio 5008 RTP/AVP 0\r\n";
    let e = eps(body);
    assert_eq!(e[0].addr, sa("[fe80::21a:a0ff:fe07:32e0]:5008"));
    let out = rewrite(body, &[plan(0, "203.0.113.10:30000")]);
    assert!(out.contains("\r\nc=IN IP4 203.0.113.10\r\n"), "{out}");
    // The origin keeps its IPv6 address and type.
    assert!(out.contains("o=- 1 1 IN IP6 fe80:0:0:0:21a:a0ff:fe07:32e0\r\n"));
    let out = rewrite(body, &[plan(0, "[2001:db8::10]:30000")]);
    assert!(out.contains("\r\nc=IN IP6 2001:db8::10\r\n"), "{out}");
    // And back, from IPv4 to IPv6 in an inserted line.
    let v4 = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(
        rewrite(v4, &[plan(0, "[2001:db8::10]:30000")]),
        "v=0\r\nm=audio 30000 RTP/AVP 0\r\nc=IN IP6 2001:db8::10\r\n"
    );
}

#[test]
fn disabled_streams_are_kept_and_untouched() {
    let body = b"v=0\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 8\r\nm=video 0 RTP/AVP 119\n";
    let e = eps(body);
    assert_eq!(e.len(), 2);
    assert!(e[1].is_disabled() && e[1].index == 1);
    // A plan that names the disabled stream does not touch it, and the
    // session line follows the only enabled stream.
    let out = rewrite(
        body,
        &[plan(0, "203.0.113.10:30000"), plan(1, "203.0.113.10:30002")],
    );
    assert_eq!(
        out,
        "v=0\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\nm=video 0 RTP/AVP 119\n"
    );
}

#[test]
fn rtcp_attribute_with_and_without_address() {
    let body = b"v=0\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4004 RTP/AVP 8\r\nc=IN IP4 192.168.20.68\r\na=rtcp:4005 IN IP4 192.168.20.68\r\n\
        m=video 4006 RTP/AVP 31\r\na=rtcp:4009\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let r = sdp.media()[0].rtcp.as_ref().unwrap();
    assert_eq!((r.port, r.line), (4005, 6));
    assert_eq!(&body[r.port_span.clone()], b"4005");
    assert!(sdp.media()[1].rtcp.as_ref().unwrap().addr.is_none());
    let e = sdp.endpoints(ip(FALLBACK)).unwrap();
    assert_eq!(e[0].rtcp_addr, Some(sa("192.168.20.68:4005")));
    assert_eq!(e[1].rtcp_addr, Some(sa("10.0.0.5:4009")));
    assert_eq!(e[1].rtcp_target(), Some(sa("10.0.0.5:4009")));
    let both = [
        PlannedEndpoint {
            index: 0,
            addr: sa("203.0.113.10:30000"),
            rtcp_addr: Some(sa("203.0.113.10:30001")),
        },
        // No explicit RTCP address planned: the next port.
        plan(1, "203.0.113.10:30002"),
    ];
    assert_eq!(
        rewrite(body, &both),
        "v=0\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 8\r\nc=IN IP4 203.0.113.10\r\na=rtcp:30001 IN IP4 203.0.113.10\r\n\
         m=video 30002 RTP/AVP 31\r\na=rtcp:30003\r\n"
    );
    // RTP on 65535 leaves no port for RTCP.
    let sdp = Sdp::parse(body).unwrap();
    let mut patch = Patch::new();
    let err = sdp
        .rewrite(
            &[plan(1, "203.0.113.10:65535")],
            &RewriteOptions::default(),
            &mut patch,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdpError::BadPlan {
                index: 1,
                line: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(patch.is_empty());
}

#[test]
fn rtcp_mux_streams() {
    let body = b"v=0\nc=IN IP4 127.0.0.1\nt=0 0\n\
        m=audio 63719 RTP/SAVPF 111\nc=IN IP4 127.0.0.1\na=rtcp:63719 IN IP4 192.168.1.65\na=rtcp-mux\n\
        m=video 9 RTP/SAVPF 100\na=rtcp-mux-only\n";
    let sdp = Sdp::parse(body).unwrap();
    assert!(sdp.media()[0].rtcp_mux);
    assert!(
        !sdp.media()[1].rtcp_mux,
        "rtcp-mux-only is another attribute"
    );
    let e = sdp.endpoints(ip(FALLBACK)).unwrap();
    assert_eq!(e[0].rtcp, RtcpMode::Mux);
    assert_eq!(e[0].rtcp_addr, Some(sa("192.168.1.65:63719")));
    assert_eq!(e[1].rtcp, RtcpMode::Pair);
    // With mux and no planned RTCP address, a=rtcp names the RTP address.
    let out = rewrite(body, &[plan(0, "203.0.113.10:30000")]);
    assert!(
        out.contains("m=audio 30000 RTP/SAVPF 111\nc=IN IP4 203.0.113.10\na=rtcp:30000 IN IP4 203.0.113.10\na=rtcp-mux\n"),
        "{out}"
    );
}

#[test]
fn several_media_lines() {
    let body = b"v=0\r\nc=IN IP4 10.33.6.100\r\nt=0 0\r\n\
        m=audio 6010 RTP/AVP 8 96\r\na=sendrecv\r\n\
        m=video 6012/2 RTP/AVP 31\r\n\
        m=image 6016 udptl t38\r\na=T38FaxVersion:0\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let kinds: Vec<(&str, u16, Option<u16>, &str)> = sdp
        .media()
        .iter()
        .map(|m| (m.kind, m.port, m.port_count, m.proto))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("audio", 6010, None, "RTP/AVP"),
            ("video", 6012, Some(2), "RTP/AVP"),
            ("image", 6016, None, "udptl"),
        ]
    );
    let m = &sdp.media()[1];
    assert_eq!((m.index, m.line), (1, 6));
    assert_eq!(&body[m.section.clone()], b"m=video 6012/2 RTP/AVP 31\r\n");
    assert_eq!(&body[m.kind_span.clone()], b"video");
    assert_eq!(&body[m.port_span.clone()], b"6012");
    assert_eq!(&body[m.proto_span.clone()], b"RTP/AVP");
    let out = rewrite(
        body,
        &[
            plan(0, "203.0.113.10:30000"),
            plan(1, "203.0.113.10:30002"),
            plan(2, "203.0.113.10:30006"),
        ],
    );
    // The port count stays after the new port.
    assert_eq!(
        out,
        "v=0\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 8 96\r\na=sendrecv\r\n\
         m=video 30002/2 RTP/AVP 31\r\n\
         m=image 30006 udptl t38\r\na=T38FaxVersion:0\r\n"
    );
}

#[test]
fn hold_directions_and_old_style_hold() {
    let body = b"v=0\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=sendonly\r\n\
        m=audio 4000 RTP/AVP 0\r\n\
        m=audio 4002 RTP/AVP 0\r\na=Inactive\r\n\
        m=audio 4004 RTP/AVP 0\r\nc=IN IP6 ::\r\na=recvonly\r\n";
    let sdp = Sdp::parse(body).unwrap();
    assert_eq!(sdp.session_direction(), Some(Direction::SendOnly));
    let dirs: Vec<Direction> = sdp.media().iter().map(|m| m.direction).collect();
    assert_eq!(
        dirs,
        vec![
            Direction::SendOnly,
            Direction::Inactive,
            Direction::RecvOnly
        ]
    );
    let e = sdp.endpoints(ip(FALLBACK)).unwrap();
    assert!(e.iter().all(MediaEndpoint::is_hold), "{e:?}");
    assert!(e[2].addr.is_ipv6());
    // The engine keeps the unspecified address for a hold: only ports move.
    let out = rewrite(
        body,
        &[
            plan(0, "0.0.0.0:30000"),
            plan(1, "0.0.0.0:30002"),
            plan(2, "[::]:30004"),
        ],
    );
    assert_eq!(
        out,
        "v=0\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=sendonly\r\n\
         m=audio 30000 RTP/AVP 0\r\n\
         m=audio 30002 RTP/AVP 0\r\na=Inactive\r\n\
         m=audio 30004 RTP/AVP 0\r\nc=IN IP6 ::\r\na=recvonly\r\n"
    );
}

#[test]
fn origin_is_untouched_unless_asked() {
    let body = b"v=0\r\no=alice 2890844526 2890844527 IN IP4 10.0.0.5\r\ns=-\r\n\
        c=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let o = sdp.origin().unwrap();
    assert_eq!((o.line, o.ip()), (2, Some(ip("10.0.0.5"))));
    let p = [plan(0, "203.0.113.10:30000")];
    assert!(rewrite(body, &p).contains("o=alice 2890844526 2890844527 IN IP4 10.0.0.5\r\n"));
    let opts = RewriteOptions {
        rewrite_origin: Some(ip("2001:db8::10")),
    };
    let out = rewrite_with(body, &p, &opts);
    assert!(
        out.contains("o=alice 2890844526 2890844527 IN IP6 2001:db8::10\r\n"),
        "{out}"
    );
    // Asked to rewrite a missing or unreadable o= line: an error, no edits.
    for (body, line) in [
        (&b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"[..], 0),
        (b"v=0\r\no=alice\r\nm=audio 4000 RTP/AVP 0\r\n", 2),
    ] {
        let sdp = Sdp::parse(body).unwrap();
        let mut patch = Patch::new();
        let err = sdp.rewrite(&p, &opts, &mut patch).unwrap_err();
        assert!(
            matches!(err, SdpError::BadOrigin { line: l, .. } if l == line),
            "{err}"
        );
        assert!(patch.is_empty());
    }
    // A user name with a blank in it (seen in the wild) still works.
    let odd = b"v=0\r\no=Jane Doe 1 1 IN IP4 10.0.0.5\r\n";
    assert_eq!(
        Sdp::parse(odd).unwrap().origin().unwrap().ip(),
        Some(ip("10.0.0.5"))
    );
}

#[test]
fn line_endings_are_the_bodys_own() {
    let lf = b"v=0\nc=IN IP4 10.0.0.5\nt=0 0\nm=audio 4000 RTP/AVP 0\nm=video 4002 RTP/AVP 31\n";
    let sdp = Sdp::parse(lf).unwrap();
    assert_eq!(sdp.line_ending(), LineEnding::Lf);
    let out = rewrite(
        lf,
        &[plan(0, "203.0.113.10:30000"), plan(1, "203.0.113.11:30002")],
    );
    assert_eq!(
        out,
        "v=0\nc=IN IP4 10.0.0.5\nt=0 0\nm=audio 30000 RTP/AVP 0\nc=IN IP4 203.0.113.10\n\
         m=video 30002 RTP/AVP 31\nc=IN IP4 203.0.113.11\n"
    );
    let crlf = Sdp::parse(b"v=0\r\nm=audio 4000 RTP/AVP 0\n").unwrap();
    assert_eq!(crlf.line_ending(), LineEnding::CrLf);
    assert_eq!(LineEnding::CrLf.as_bytes(), b"\r\n");
    // Mixed: the last line of a CRLF body ends with a bare LF (a real
    // capture); every line still parses.
    let mixed = b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 8\r\nm=video 0 RTP/AVP 119\n";
    assert_eq!(Sdp::parse(mixed).unwrap().media().len(), 2);
}

#[test]
fn missing_final_line_end_trailing_blanks_and_nuls() {
    let body = b"v=0\r\nm=audio 4000 RTP/AVP 0  ";
    assert_eq!(eps(body)[0].addr, sa("192.0.2.99:4000"));
    // The new c= line goes after the last line, starting with a line end.
    assert_eq!(
        rewrite(body, &[plan(0, "203.0.113.10:30000")]),
        "v=0\r\nm=audio 30000 RTP/AVP 0  \r\nc=IN IP4 203.0.113.10"
    );
    let body = b"v=0 \r\nc=IN IP4 10.0.0.5 \t\r\nm=audio 4000 RTP/AVP 0\r\n\0\0";
    let sdp = Sdp::parse(body).unwrap();
    assert_eq!(
        &body[sdp.session_connection().unwrap().address_span.clone()],
        b"10.0.0.5"
    );
    assert_eq!(
        rewrite(body, &[plan(0, "203.0.113.10:30000")]),
        "v=0 \r\nc=IN IP4 203.0.113.10 \t\r\nm=audio 30000 RTP/AVP 0\r\n\0\0"
    );
    let body = b"v=0\nm=audio 4000 RTP/AVP 0\0";
    assert_eq!(
        rewrite(body, &[plan(0, "203.0.113.10:30000")]),
        "v=0\nm=audio 30000 RTP/AVP 0\nc=IN IP4 203.0.113.10\0"
    );
}

#[test]
fn connection_after_attributes_and_host_names() {
    // sdp-rs drops a c= that follows an a= line, and rejects host names.
    let body = b"v=0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
        c=IN IP4 pbx.example.com\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let c = sdp.media()[0].connection.as_ref().unwrap();
    assert_eq!(c.host, Host::Fqdn("pbx.example.com"));
    assert_eq!(c.line, 5);
    // The ALG's fallback (the sender's IP) stands in for the host name.
    assert_eq!(eps(body)[0].addr, sa("192.0.2.99:4000"));
    assert_eq!(
        rewrite(body, &[plan(0, "203.0.113.10:30000")]),
        "v=0\r\nt=0 0\r\nm=audio 30000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
         c=IN IP4 203.0.113.10\r\n"
    );
}

#[test]
fn multicast_suffix_stays_outside_the_address() {
    let body = b"v=0\r\nc=IN IP4 224.2.36.42/127/3\r\nm=audio 4000/2 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let c = sdp.session_connection().unwrap();
    assert_eq!(&body[c.address_span.clone()], b"224.2.36.42");
    assert_eq!(&body[c.suffix_span.clone()], b"/127/3");
    assert_eq!(sdp.media()[0].port_count, Some(2));
    assert_eq!(
        rewrite(body, &[plan(0, "203.0.113.10:30000")]),
        "v=0\r\nc=IN IP4 203.0.113.10/127/3\r\nm=audio 30000/2 RTP/AVP 0\r\n"
    );
}

#[test]
fn not_sdp_is_an_error_with_its_line() {
    let cases: [(&[u8], usize, &str); 8] = [
        (b"", 1, "no v= line"),
        (b"\r\n\r\n", 2, "no v= line"),
        (
            b"o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n",
            1,
            "the first line is not v=",
        ),
        (b"v=0\r\nhello\r\n", 2, "not a <type>=<value> line"),
        (b"v=0\r\n=x\r\n", 2, "not a <type>=<value> line"),
        (b"v=0\r\ns=a\0b\r\n", 2, "control character in a line"),
        (b"v=0\rs=-\r\n", 1, "control character in a line"),
        (
            b"v=0\nm=audio 1 RTP/AVP 0\nv=0\n",
            3,
            "a second v= line: several descriptions in one body",
        ),
    ];
    for (body, line, reason) in cases {
        assert_eq!(
            Sdp::parse(body).unwrap_err(),
            SdpError::NotSdp { line, reason },
            "{body:?}"
        );
    }
    let bad_m: [(&[u8], &str); 6] = [
        (b"v=0\nm=\n", "no media type"),
        (b"v=0\nm=audio\n", "no port"),
        (b"v=0\nm=audio 4000\n", "no transport protocol"),
        (
            b"v=0\nm=audio 70000 RTP/AVP 0\n",
            "port is not a number from 0 to 65535",
        ),
        (
            b"v=0\nm=audio -1 RTP/AVP 0\n",
            "port is not a number from 0 to 65535",
        ),
        (
            b"v=0\nm=audio 4000/x RTP/AVP 0\n",
            "number of ports is not a number",
        ),
    ];
    for (body, reason) in bad_m {
        let err = Sdp::parse(body).unwrap_err();
        assert_eq!(err, SdpError::BadMedia { line: 2, reason });
        assert_eq!(err.line(), Some(2));
    }
    let msg = Sdp::parse(b"v=0\nm=audio\n").unwrap_err().to_string();
    assert_eq!(msg, "line 2: unreadable m= line: no port");
}

#[test]
fn unreadable_lines_fail_only_the_calls_that_need_them() {
    let body = b"v=0\r\no=bogus\r\nc=IN IP4 10.0.0.5\r\n\
        m=audio 4000 RTP/AVP 0\r\nc=IN ATM 1\r\n\
        m=video 4002 RTP/AVP 31\r\na=rtcp:x\r\n\
        m=audio 0 RTP/AVP 0\r\nc=IN IP4 not/a/host?\r\n\
        m=audio 4004 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body).unwrap();
    assert!(sdp.origin().is_none());
    assert_eq!(
        sdp.endpoints(ip(FALLBACK)).unwrap_err(),
        SdpError::BadConnection {
            line: 5,
            reason: "address type is neither IP4 nor IP6"
        }
    );
    let m = sdp.media();
    assert_eq!(
        sdp.endpoint(&m[1], ip(FALLBACK)).unwrap_err(),
        SdpError::BadRtcp {
            line: 7,
            reason: "port is not a number from 0 to 65535"
        }
    );
    // A disabled stream's unreadable c= does not matter.
    assert!(sdp.endpoint(&m[2], ip(FALLBACK)).unwrap().is_disabled());
    assert_eq!(
        sdp.endpoint(&m[3], ip(FALLBACK)).unwrap().addr,
        sa("10.0.0.5:4004")
    );
    // Rewriting only the readable streams works; naming a broken one fails
    // and records nothing.
    let out = rewrite(body, &[plan(3, "203.0.113.10:30000"), plan(2, "1.2.3.4:5")]);
    assert!(
        out.ends_with("m=audio 30000 RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\n"),
        "{out}"
    );
    let mut patch = Patch::new();
    let err = sdp
        .rewrite(
            &[plan(3, "203.0.113.10:30000"), plan(0, "203.0.113.10:30002")],
            &RewriteOptions::default(),
            &mut patch,
        )
        .unwrap_err();
    assert_eq!(err.line(), Some(5));
    assert!(patch.is_empty());
    for (c, reason) in [
        ("c=IN IP4", "expected <nettype> <addrtype> <address>"),
        ("c=ATM NSAP 47.0091", "network type is not IN"),
        (
            "c=IN IP4 10.0.0.1%eth0",
            "address is neither an IP literal nor a host name",
        ),
    ] {
        let body = format!("v=0\n{c}\nm=audio 1 RTP/AVP 0\n");
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(
            sdp.endpoints(ip(FALLBACK)).unwrap_err(),
            SdpError::BadConnection { line: 2, reason }
        );
    }
}

#[test]
fn bad_plans_are_refused_before_anything_is_recorded() {
    let body = b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body).unwrap();
    let mut patch = Patch::new();
    let opts = RewriteOptions::default();
    let err = sdp
        .rewrite(
            &[plan(0, "203.0.113.10:1"), plan(1, "203.0.113.10:3")],
            &opts,
            &mut patch,
        )
        .unwrap_err();
    assert_eq!(
        err,
        SdpError::BadPlan {
            index: 1,
            line: 0,
            reason: "the body has no such m= line"
        }
    );
    assert_eq!(err.line(), None);
    let err = sdp
        .rewrite(
            &[plan(0, "203.0.113.10:1"), plan(0, "203.0.113.10:3")],
            &opts,
            &mut patch,
        )
        .unwrap_err();
    assert_eq!(
        err,
        SdpError::BadPlan {
            index: 0,
            line: 3,
            reason: "planned twice"
        }
    );
    assert!(patch.is_empty());
    // An empty plan is the identity.
    sdp.rewrite(&[], &opts, &mut patch).unwrap();
    assert!(patch.is_empty());
}

#[test]
fn h248_choose_wildcards() {
    let body = b"v=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 8\r\nm=image 4000 udptl t38\r\n";
    let sdp = Sdp::parse(body).unwrap();
    assert!(sdp.session_connection().unwrap().is_choose());
    let m = &sdp.media()[0];
    assert!(m.choose && m.is_disabled() && m.port == 0);
    let e = sdp.endpoints(ip(FALLBACK)).unwrap();
    assert!(e[0].is_disabled());
    assert_eq!(e[1].addr, sa("192.0.2.99:4000"));
    // `$` streams are untouched; the session `$` is replaced for the other.
    assert_eq!(
        rewrite(
            body,
            &[plan(0, "203.0.113.10:1"), plan(1, "203.0.113.10:30000")]
        ),
        "v=0\r\nc=IN IP4 203.0.113.10\r\nm=audio $ RTP/AVP 8\r\nm=image 30000 udptl t38\r\n"
    );
}

#[test]
fn descriptions_split_at_each_version_line() {
    let body = b"L{v=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 8\r\nv=0\r\nc=IN IP4 $\r\nm=image $ udptl t38\r\n";
    // The first line starts with "L{": no description there.
    let d: Vec<_> = descriptions(body).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(
        &body[d[0].clone()],
        b"v=0\r\nc=IN IP4 $\r\nm=image $ udptl t38\r\n"
    );
    let body = &body[2..];
    let d: Vec<_> = descriptions(body).collect();
    assert_eq!(
        d.iter().map(|r| &body[r.clone()]).collect::<Vec<_>>(),
        vec![
            &b"v=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 8\r\n"[..],
            b"v=0\r\nc=IN IP4 $\r\nm=image $ udptl t38\r\n"
        ]
    );
    for r in d {
        assert_eq!(Sdp::parse(&body[r]).unwrap().media().len(), 1);
    }
    assert_eq!(descriptions(b"").count(), 0);
    assert_eq!(descriptions(b"s=x\n").count(), 0);
}

#[test]
fn rewrite_all_gives_consecutive_even_ports() {
    let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\n\
        m=video 0 RTP/AVP 31\r\n\
        m=video 4002 RTP/AVP 31\r\na=rtcp:4003 IN IP4 10.0.0.5\r\n\
        m=application 4004 UDP/DTLS/SCTP webrtc-datachannel\r\na=rtcp-mux\r\na=rtcp:4004\r\n";
    let out = rewrite_all(body, sa("203.0.113.10:40000")).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtcp:40001\r\n\
         m=video 0 RTP/AVP 31\r\n\
         m=video 40002 RTP/AVP 31\r\na=rtcp:40003 IN IP4 203.0.113.10\r\n\
         m=application 40004 UDP/DTLS/SCTP webrtc-datachannel\r\na=rtcp-mux\r\na=rtcp:40004\r\n"
    );
    let err = rewrite_all(body, sa("203.0.113.10:65532")).unwrap_err();
    assert!(
        matches!(
            err,
            SdpError::BadPlan {
                index: 3,
                line: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(rewrite_all(body, sa("203.0.113.10:65530")).is_ok());
    assert!(matches!(
        rewrite_all(b"hello", sa("203.0.113.10:40000")),
        Err(SdpError::NotSdp { line: 1, .. })
    ));
}

#[test]
fn insertion_goes_after_the_information_line_only() {
    // i= right after m= moves the insertion point; i= after an a= does not.
    let body = b"v=0\nm=audio 4000 RTP/AVP 0\na=x\ni=late\nm=video 4002 RTP/AVP 31\ni=cam\n";
    assert_eq!(
        rewrite(
            body,
            &[plan(0, "203.0.113.10:30000"), plan(1, "203.0.113.11:30002")]
        ),
        "v=0\nm=audio 30000 RTP/AVP 0\nc=IN IP4 203.0.113.10\na=x\ni=late\n\
         m=video 30002 RTP/AVP 31\ni=cam\nc=IN IP4 203.0.113.11\n"
    );
}

#[test]
fn many_streams_are_planned_past_the_inline_limit() {
    let mut body = String::from("v=0\r\nc=IN IP4 10.0.0.5\r\n");
    for i in 0..20 {
        body.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i));
    }
    let plan: Vec<PlannedEndpoint> = (0..20u16)
        .map(|i| plan(i, &format!("203.0.113.10:{}", 30_000 + 2 * i)))
        .collect();
    let out = rewrite(body.as_bytes(), &plan);
    assert!(out.starts_with("v=0\r\nc=IN IP4 203.0.113.10\r\nm=audio 30000 RTP/AVP 0\r\n"));
    assert!(out.ends_with("m=audio 30038 RTP/AVP 0\r\n"), "{out}");
    // The duplicate check works there too.
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    let mut twice = plan.clone();
    twice.push(plan[19]);
    let err = sdp
        .rewrite(&twice, &RewriteOptions::default(), &mut Patch::new())
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdpError::BadPlan {
                index: 19,
                line: 22,
                ..
            }
        ),
        "{err}"
    );
}
