//! Every message of the shared corpus (`/work/shared/corpus/sip`, see its
//! MANIFEST.md) with its expected outcome, and properties every parsed one
//! must have.
//!
//! RFC 4475 §3.1.2 ("invalid") files: each either gives a typed error (the
//! `err` rows say why) or parses because the RFC lets a proxy pass it (the
//! comments above those `ok` rows say why, and `invalid_parts_are_reported_when_read`
//! checks the error surfaces where the proxy reads the bad part).

use std::ops::Range;

use pinhole_core::patch::Patch;
use pinhole_sip::{
    Frame, HeaderName, Message, ParseError, Uri, fix_content_length, frame, name_addrs,
};

enum Start {
    Req(&'static str),
    Resp(u16),
}
use Start::{Req, Resp};

enum Expect {
    Ok {
        start: Start,
        call_id: Option<&'static str>,
        cseq: Option<(u32, &'static str)>,
        headers: usize,
        body: usize,
        trailing: usize,
        sdp: usize,
        vias: usize,
    },
    Err(ParseError, &'static str),
}

#[allow(clippy::too_many_arguments)]
fn ok(
    file: &'static str,
    start: Start,
    call_id: Option<&'static str>,
    cseq: Option<(u32, &'static str)>,
    headers: usize,
    body: usize,
    trailing: usize,
    sdp: usize,
    vias: usize,
) -> (&'static str, Expect) {
    let e = Expect::Ok {
        start,
        call_id,
        cseq,
        headers,
        body,
        trailing,
        sdp,
        vias,
    };
    (file, e)
}

fn err(file: &'static str, e: ParseError, why: &'static str) -> (&'static str, Expect) {
    (file, Expect::Err(e, why))
}

/// Columns of `ok`: start line, Call-ID, CSeq, header count, body length,
/// trailing bytes, SDP bodies, via-parms.
fn table() -> Vec<(&'static str, Expect)> {
    vec![
        ok(
            "heplify-sip_ipv4_tcp-f3-INVITE-tcp.sip",
            Req("INVITE"),
            Some("158936656982201062716@10.33.6.100"),
            Some((1, "INVITE")),
            12,
            228,
            0,
            1,
            1,
        ),
        // bare IPv6 with port in Request-URI and Via
        ok(
            "heplify-sip_ipv6_udp-f1-INVITE-ipv6.sip",
            Req("INVITE"),
            Some("c3eF6f58-363323Cd-8058EB88-10300252@fe80:0:0:0:21a:a0ff:fe07:32e0"),
            Some((1, "INVITE")),
            10,
            181,
            0,
            1,
            1,
        ),
        // SDP body without Content-Type: sniffed as SDP (v=0)
        ok(
            "heplify-sip_ipv6_udp-f3-200-ipv6.sip",
            Resp(200),
            Some("c3eF6f58-363323Cd-8058EB88-10300252@fe80:0:0:0:21a:a0ff:fe07:32e0"),
            Some((1, "INVITE")),
            8,
            179,
            0,
            1,
            1,
        ),
        ok(
            "pcapplusplus-sdp-f1-200-audio-image.sip",
            Resp(200),
            Some("1450530377152201062221@10.33.6.101"),
            Some((1, "INVITE")),
            11,
            406,
            0,
            1,
            1,
        ),
        ok(
            "pcapplusplus-sip_non_default_port-f1-INVITE-rtcp-attr.sip",
            Req("INVITE"),
            Some("0c3bab2cebe34ec997a80daa4346b393"),
            Some((12003, "INVITE")),
            14,
            342,
            0,
            1,
            1,
        ),
        ok(
            "pcapplusplus-sip_non_default_port-f2-200-rtcp-attr.sip",
            Resp(200),
            Some("0c1fb1c5-59f5-123f-1ab0-005056a58049"),
            Some((108656438, "INVITE")),
            10,
            319,
            0,
            1,
            1,
        ),
        ok(
            "pcapplusplus-sip_not_sdp-f1-PUBLISH.sip",
            Req("PUBLISH"),
            Some("ZGM3MGRjZWQyMjg0MjRlMjdmZTM4YWZlODIzOGZjZDc."),
            Some((1, "PUBLISH")),
            15,
            273,
            0,
            0,
            1,
        ),
        ok(
            "pcapplusplus-sip_reqs-f2-CANCEL.sip",
            Req("CANCEL"),
            Some("2091060b-146f-e011-809a-0019cb53db77@admind-desktop"),
            Some((2, "CANCEL")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "pcapplusplus-sip_resp-f5-401-tcp.sip",
            Resp(401),
            Some("198676278"),
            Some((1, "REGISTER")),
            8,
            0,
            0,
            0,
            2,
        ),
        ok(
            "rfc4475-3.1.1.1-wsinv.sip",
            Req("INVITE"),
            Some("wsinv.ndaksdj@192.0.2.1"),
            Some((9, "INVITE")),
            14,
            150,
            0,
            1,
            3,
        ),
        ok(
            "rfc4475-3.1.1.10-transports.sip",
            Req("OPTIONS"),
            Some("transports.kijh4akdnaqjkwendsasfdj"),
            Some((60, "OPTIONS")),
            12,
            0,
            0,
            0,
            5,
        ),
        ok(
            "rfc4475-3.1.1.12-unreason.sip",
            Resp(200),
            Some("unreason.1234ksdfak3j2erwedfsASdf"),
            Some((35, "INVITE")),
            8,
            154,
            0,
            1,
            1,
        ),
        ok(
            "rfc4475-3.1.1.13-noreason.sip",
            Resp(100),
            Some("noreason.asndj203insdf99223ndf"),
            Some((35, "INVITE")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.1.1.2-intmeth.sip",
            Req("!interesting-Method0123456789_*+`.%indeed'~"),
            Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"),
            Some((139122385, "!interesting-Method0123456789_*+`.%indeed'~")),
            8,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.1.1.3-esc01.sip",
            Req("INVITE"),
            Some("esc01.239409asdfakjkn23onasd0-3234"),
            Some((234234, "INVITE")),
            9,
            150,
            0,
            1,
            1,
        ),
        ok(
            "rfc4475-3.1.1.5-esc02.sip",
            Req("RE%47IST%45R"),
            Some("esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf"),
            Some((29344, "RE%47IST%45R")),
            10,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.1.1.6-lwsdisp.sip",
            Req("OPTIONS"),
            Some("lwsdisp.1234abcd@funky.example.com"),
            Some((60, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.1.1.7-longreq.sip",
            Req("INVITE"),
            Some(
                "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid",
            ),
            Some((3882340, "INVITE")),
            43,
            150,
            0,
            1,
            34,
        ),
        ok(
            "rfc4475-3.1.1.9-semiuri.sip",
            Req("OPTIONS"),
            Some("semiuri.0ha0isndaksdj"),
            Some((8, "OPTIONS")),
            8,
            0,
            0,
            0,
            1,
        ),
        err(
            "rfc4475-3.1.2.1-badinv01.sip",
            ParseError::Via {
                at: 217,
                reason: "empty or malformed parameter name",
            },
            "3.1.2.1: empty Via parameters after the sent-by: a proxy cannot trust the Via it routes responses by, so 400",
        ),
        err(
            "rfc4475-3.1.2.10-trws.sip",
            ParseError::StartLine {
                at: 47,
                reason: "bad SIP version",
            },
            "3.1.2.10: SP after SIP/2.0: the version element is empty after the last SP",
        ),
        // 3.1.2.11 parses: the RFC allows a liberal element to accept it; Uri::headers exposes '?Route=' so the proxy drops or rejects it
        ok(
            "rfc4475-3.1.2.11-escruri.sip",
            Req("INVITE"),
            Some("escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5"),
            Some((149209342, "INVITE")),
            9,
            150,
            0,
            1,
            1,
        ),
        // 3.1.2.12 parses: Date is not interpreted, and the RFC lets a proxy forward it
        ok(
            "rfc4475-3.1.2.12-baddate.sip",
            Req("INVITE"),
            Some("baddate.239423mnsadf3j23lj42--sedfnm234"),
            Some((1392934, "INVITE")),
            10,
            150,
            0,
            1,
            1,
        ),
        // 3.1.2.13 parses: the bad Contact is reported when read (name_addrs gives NameAddr error, checked below)
        ok(
            "rfc4475-3.1.2.13-regbadct.sip",
            Req("REGISTER"),
            Some("regbadct.k345asrl3fdbv@10.0.0.1"),
            Some((1, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        // 3.1.2.14 parses: the spaces inside <> are reported when To is read (name_addrs, checked below)
        ok(
            "rfc4475-3.1.2.14-badaspec.sip",
            Req("OPTIONS"),
            Some("badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3"),
            Some((3923239, "OPTIONS")),
            8,
            0,
            0,
            0,
            1,
        ),
        // 3.1.2.16 parses: version() is SIP/7.0 and answering 505 is the proxy's job
        ok(
            "rfc4475-3.1.2.16-badvers.sip",
            Req("OPTIONS"),
            Some("badvers.31417@c.example.com"),
            Some((1, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        err(
            "rfc4475-3.1.2.17-mismatch01.sip",
            ParseError::CSeqMethodMismatch { at: 165 },
            "3.1.2.17: CSeq method INVITE on an OPTIONS request (RFC 3261 §8.1.1.5), RFC says 400",
        ),
        err(
            "rfc4475-3.1.2.18-mismatch02.sip",
            ParseError::CSeqMethodMismatch { at: 167 },
            "3.1.2.18: CSeq method INVITE on a NEWMETHOD request, RFC says 400",
        ),
        err(
            "rfc4475-3.1.2.19-bigcode.sip",
            ParseError::StatusCode { at: 8 },
            "3.1.2.19: status code 4294967301 is not three digits; a response like this is dropped",
        ),
        err(
            "rfc4475-3.1.2.4-scalar02.sip",
            ParseError::CSeq {
                at: 174,
                reason: "sequence number larger than 32 bits",
            },
            "3.1.2.4: CSeq 36893488147419103232 overflows 32 bits, RFC says 400",
        ),
        err(
            "rfc4475-3.1.2.5-scalarlg.sip",
            ParseError::CSeq {
                at: 198,
                reason: "sequence number larger than 32 bits",
            },
            "3.1.2.5: CSeq 9292394834772304023312 overflows 32 bits; a response like this is dropped",
        ),
        err(
            "rfc4475-3.1.2.7-ltgtruri.sip",
            ParseError::StartLine {
                at: 7,
                reason: "Request-URI has no scheme",
            },
            "3.1.2.7: Request-URI enclosed in <>: no scheme where the URI starts",
        ),
        err(
            "rfc4475-3.1.2.8-lwsruri.sip",
            ParseError::StartLine {
                at: 28,
                reason: "white space or control byte in the Request-URI",
            },
            "3.1.2.8: SP inside the Request-URI (after ';')",
        ),
        err(
            "rfc4475-3.1.2.9-lwsstart.sip",
            ParseError::StartLine {
                at: 7,
                reason: "white space or control byte in the Request-URI",
            },
            "3.1.2.9: two SPs between request-line elements",
        ),
        ok(
            "rfc4475-3.2.1-badbranch.sip",
            Req("OPTIONS"),
            Some("badbranch.sadonfo23i420jv0as0derf3j3n"),
            Some((8, "OPTIONS")),
            8,
            0,
            0,
            0,
            1,
        ),
        // 3.3.1: no Call-ID/From/To; the proxy answers 400
        ok(
            "rfc4475-3.3.1-insuf.sip",
            Req("INVITE"),
            None,
            Some((193942, "INVITE")),
            4,
            152,
            0,
            1,
            1,
        ),
        ok(
            "rfc4475-3.3.10-bcast.sip",
            Resp(200),
            Some("bcast.0384840201234ksdfak3j2erwedfsASdf"),
            Some((35, "INVITE")),
            9,
            154,
            0,
            1,
            2,
        ),
        ok(
            "rfc4475-3.3.11-zeromf.sip",
            Req("OPTIONS"),
            Some("zeromf.jfasdlfnm2o2l43r5u0asdfas"),
            Some((39234321, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.12-cparam01.sip",
            Req("REGISTER"),
            Some("cparam01.70710@saturn.example.com"),
            Some((2, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.13-cparam02.sip",
            Req("REGISTER"),
            Some("cparam02.70710@saturn.example.com"),
            Some((3, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.14-regescrt.sip",
            Req("REGISTER"),
            Some("regescrt.k345asrl3fdbv@192.0.2.1"),
            Some((14398234, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.2-unkscm.sip",
            Req("OPTIONS"),
            Some("unkscm.nasdfasser0q239nwsdfasdkl34"),
            Some((3923423, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.3-novelsc.sip",
            Req("OPTIONS"),
            Some("novelsc.asdfasser0q239nwsdfasdkl34"),
            Some((3923423, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.4-unksm2.sip",
            Req("REGISTER"),
            Some("unksm2.daksdj@hyphenated-host.example.com"),
            Some((234902, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.5-bext01.sip",
            Req("OPTIONS"),
            Some("bext01.0ha0isndaksdj"),
            Some((8, "OPTIONS")),
            9,
            0,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.6-invut.sip",
            Req("INVITE"),
            Some("invut.0ha0isndaksdjadsfij34n23d"),
            Some((235448, "INVITE")),
            9,
            40,
            0,
            0,
            1,
        ),
        ok(
            "rfc4475-3.3.7-regaut01.sip",
            Req("REGISTER"),
            Some("regaut01.0ha0isndaksdj"),
            Some((9338, "REGISTER")),
            8,
            0,
            0,
            0,
            1,
        ),
        // 3.3.8: duplicated single-value headers; first one wins, the proxy may answer 400
        ok(
            "rfc4475-3.3.8-multi01.sip",
            Req("INVITE"),
            Some("multi01.98asdh@192.0.2.1"),
            Some((5, "INVITE")),
            15,
            154,
            0,
            1,
            1,
        ),
        ok(
            "sngrep-ipip-f1-INVITE-tcp-opus.sip",
            Req("INVITE"),
            Some("1RLuVzzBClYCf2"),
            Some((6, "INVITE")),
            9,
            649,
            0,
            1,
            1,
        ),
        ok(
            "sngrep-ipip-f2-183-tcp.sip",
            Resp(183),
            Some("1RLuVzzBClYCf2"),
            Some((6, "INVITE")),
            8,
            263,
            0,
            1,
            1,
        ),
        // Content-Length 272 < 372 bytes present: body is 272 bytes, 100 trailing
        ok(
            "suricata-verify-sip_compact_form-f1.sip",
            Req("INVITE"),
            Some("105090259-446faf7a@192.168.1.2"),
            Some((1, "INVITE")),
            13,
            272,
            100,
            1,
            1,
        ),
        // Content-Length 272 < 372 bytes present: body is 272 bytes, 100 trailing
        ok(
            "suricata-verify-sip_header_multi_val-f1.sip",
            Req("INVITE"),
            Some("105090259-446faf7a@192.168.1.2"),
            Some((1, "INVITE")),
            14,
            272,
            100,
            1,
            1,
        ),
        ok(
            "wiki-DTMFsipinfo-f1-INVITE-audio-video.sip",
            Req("INVITE"),
            Some("2091060b-146f-e011-809a-0019cb53db77@admind-desktop"),
            Some((1, "INVITE")),
            12,
            471,
            0,
            1,
            1,
        ),
        ok(
            "wiki-DTMFsipinfo-f4-200-video-port0.sip",
            Resp(200),
            Some("2091060b-146f-e011-809a-0019cb53db77@admind-desktop"),
            Some((1, "INVITE")),
            12,
            223,
            0,
            1,
            1,
        ),
        ok(
            "wiki-FAX-Call-f23-INVITE-sdpcapneg.sip",
            Req("INVITE"),
            Some("00e9d4a500e9d48-0015-0001-0000-0000@10.35.40.25"),
            Some((1, "INVITE")),
            11,
            240,
            0,
            1,
            1,
        ),
        ok(
            "wiki-FAX-Call-f2680-OPTIONS.sip",
            Req("OPTIONS"),
            Some("00e9d4a500e9d48-0015-0001-0000-0000@10.35.40.25"),
            Some((2, "OPTIONS")),
            7,
            0,
            0,
            0,
            1,
        ),
        ok(
            "wiki-FAX-Call-f48-200-INVITE.sip",
            Resp(200),
            Some("SD4909701-9ff11bf72eb4a347c92974d8fbbc2668-ao8o3i1"),
            Some((1, "INVITE")),
            12,
            212,
            0,
            1,
            1,
        ),
        ok(
            "wiki-LtoZ-f24-INVITE-forwarded.sip",
            Req("INVITE"),
            Some("738c6ff4-3bef5da0@10.10.10.211"),
            Some((101, "INVITE")),
            17,
            444,
            0,
            1,
            2,
        ),
        ok(
            "wiki-SIP_CALL_RTP_G711-f1-INVITE.sip",
            Req("INVITE"),
            Some("12013223@200.57.7.195"),
            Some((1, "INVITE")),
            9,
            229,
            0,
            1,
            2,
        ),
        ok(
            "wiki-SIP_CALL_RTP_G711-f152-REGISTER.sip",
            Req("REGISTER"),
            Some("46E1C3CB36304F84A020CF6DD3F96461@Verso.com"),
            Some((37764, "REGISTER")),
            10,
            0,
            0,
            0,
            1,
        ),
        ok(
            "wiki-SIP_CALL_RTP_G711-f498-200-INVITE.sip",
            Resp(200),
            Some("12013223@200.57.7.195"),
            Some((1, "INVITE")),
            10,
            298,
            0,
            1,
            2,
        ),
        ok(
            "wiki-SIP_CALL_RTP_G711-f517-ACK.sip",
            Req("ACK"),
            Some("12013223@200.57.7.195"),
            Some((1, "ACK")),
            8,
            0,
            0,
            0,
            2,
        ),
        ok(
            "wiki-T38-f1-INVITE.sip",
            Req("INVITE"),
            Some("call-F1D31B06-6096-2C10-081E-727@84.44.107.78"),
            Some((1, "INVITE")),
            13,
            246,
            0,
            1,
            1,
        ),
        ok(
            "wiki-T38-f11-reINVITE-t38.sip",
            Req("INVITE"),
            Some("call-F1D31B06-6096-2C10-081E-727@84.44.107.78"),
            Some((2, "INVITE")),
            14,
            114,
            0,
            1,
            1,
        ),
        ok(
            "wiki-T38-f16-BYE.sip",
            Req("BYE"),
            Some("call-F1D31B06-6096-2C10-081E-727@84.44.107.78"),
            Some((3, "BYE")),
            9,
            0,
            0,
            0,
            1,
        ),
        ok(
            "wiki-sip-rtp-opus-f4-200.sip",
            Resp(200),
            Some("1-4237@10.0.2.20"),
            Some((1, "INVITE")),
            15,
            283,
            0,
            1,
            1,
        ),
    ]
}

fn read(name: &str) -> Vec<u8> {
    let path = pinhole_testkit::corpus::shared_dir().join("sip").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus_files() -> Vec<String> {
    pinhole_testkit::corpus::files("sip", ".sip")
        .expect("the shared corpus is present")
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn table_covers_every_corpus_file() {
    let mut listed: Vec<&str> = table().iter().map(|(f, _)| *f).collect();
    listed.sort_unstable();
    let files = corpus_files();
    assert_eq!(files.len(), 66, "the MANIFEST counts 66 SIP messages");
    assert_eq!(listed, files.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn every_corpus_file_has_its_expected_outcome() {
    for (file, expect) in table() {
        let raw = read(file);
        let got = Message::parse(&raw);
        match expect {
            Expect::Err(e, why) => {
                assert!(!why.is_empty());
                assert_eq!(got.as_ref().err(), Some(&e), "{file}: {why}");
                // Display names the offset, not the message.
                let shown = e.to_string();
                assert!(
                    shown.contains(&e.offset().to_string()) && shown.len() < 120,
                    "{shown}"
                );
            }
            Expect::Ok {
                start,
                call_id,
                cseq,
                headers,
                body,
                trailing,
                sdp,
                vias,
            } => {
                let m = got.unwrap_or_else(|e| panic!("{file}: {e}"));
                match start {
                    Req(method) => {
                        assert_eq!(m.method(), Some(method), "{file}");
                        assert!(m.is_request() && m.status().is_none());
                    }
                    Resp(code) => {
                        assert_eq!(m.status(), Some(code), "{file}");
                        assert!(!m.is_request() && m.method().is_none());
                    }
                }
                assert_eq!(m.call_id(), call_id.map(str::as_bytes), "{file}");
                assert_eq!(m.cseq(), cseq, "{file}");
                assert_eq!(m.headers().len(), headers, "{file}");
                assert_eq!(m.body().len(), body, "{file}");
                assert_eq!(m.trailing().len(), trailing, "{file}");
                assert_eq!(m.sdp_bodies().unwrap().len(), sdp, "{file}");
                assert_eq!(m.vias().len(), vias, "{file}");
            }
        }
    }
}

fn parsed() -> Vec<(&'static str, Vec<u8>)> {
    table()
        .into_iter()
        .filter(|(_, e)| matches!(e, Expect::Ok { .. }))
        .map(|(f, _)| (f, read(f)))
        .collect()
}

#[test]
fn header_lines_tile_the_header_section() {
    for (file, raw) in parsed() {
        let m = Message::parse(&raw).unwrap();
        let first = raw.iter().position(|&b| b == b'\n').unwrap() + 1;
        let mut at = first;
        for h in m.headers() {
            assert_eq!(h.line.start, at, "{file}: gap before a header");
            assert_eq!(h.name_span.start, h.line.start);
            assert!(h.value.start >= h.name_span.end && h.value.end <= h.line.end);
            assert_eq!(HeaderName::from_bytes(&raw[h.name_span.clone()]), h.name);
            at = h.line.end;
        }
        assert_eq!(at, m.headers_end(), "{file}");
        assert!(
            m.body().start > m.headers_end(),
            "{file}: every corpus file has the empty line"
        );
        let le = m.line_ending();
        assert_eq!(&raw[m.headers_end()..m.body().start], le, "{file}");
    }
}

#[test]
fn an_empty_edit_needs_no_content_length_fix() {
    for (file, raw) in parsed() {
        let m = Message::parse(&raw).unwrap();
        let mut p = Patch::new();
        fix_content_length(&m, &mut p);
        // Only the two Content-Length-shorter-than-body files would change if
        // the fix used the bytes present instead of the declared length.
        assert!(p.is_empty(), "{file}");
    }
}

/// Rewrites every `c=IN IP4 <addr>` line of every SDP body to a longer
/// address, fixes Content-Length, and re-parses.
#[test]
fn sdp_rewrite_keeps_every_other_byte_and_fixes_the_length() {
    let mut rewritten = 0;
    for (file, raw) in parsed() {
        let m = Message::parse(&raw).unwrap();
        let mut p = Patch::new();
        let mut grew = 0usize;
        for sdp in m.sdp_bodies().unwrap() {
            for addr in connection_addresses(&raw, sdp) {
                grew += b"203.000.113.100".len() - addr.len();
                p.replace(addr, b"203.000.113.100");
            }
        }
        if p.is_empty() {
            continue;
        }
        rewritten += 1;
        fix_content_length(&m, &mut p);
        let out = p.apply(&raw).unwrap();
        let again = Message::parse(&out).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(again.body().len(), m.body().len() + grew, "{file}");
        assert_eq!(again.content_length(), Some(again.body().len()), "{file}");
        assert_eq!(again.headers().len(), m.headers().len(), "{file}");
        for (a, b) in m.headers().iter().zip(again.headers()) {
            if a.name != HeaderName::ContentLength {
                assert_eq!(m.value(a), again.value(b), "{file}");
            }
        }
        assert_eq!(&out[again.trailing()], &raw[m.trailing()], "{file}");
    }
    assert!(rewritten >= 25, "only {rewritten} files had IPv4 SDP");
}

/// Spans of the addresses on `c=IN IP4 ` lines of `sdp`.
fn connection_addresses(raw: &[u8], sdp: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = sdp.start;
    for line in raw[sdp.clone()].split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"c=IN IP4 ") {
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .count();
            let start = at + 9;
            out.push(start..start + len);
        }
        at += line.len() + 1;
    }
    out
}

#[test]
fn invalid_parts_are_reported_when_read() {
    let m_raw = read("rfc4475-3.1.2.13-regbadct.sip");
    let m = Message::parse(&m_raw).unwrap();
    let contact = m.header(HeaderName::Contact).unwrap();
    assert!(matches!(
        name_addrs(&m_raw, contact.value.clone()),
        Err(ParseError::NameAddr { .. })
    ));

    let raw = read("rfc4475-3.1.2.14-badaspec.sip");
    let m = Message::parse(&raw).unwrap();
    let to = m.header(HeaderName::To).unwrap();
    assert!(matches!(
        name_addrs(&raw, to.value.clone()),
        Err(ParseError::NameAddr { .. })
    ));
    // From in the same message is fine: a quoted display name with a comma.
    let from = m.header(HeaderName::From).unwrap();
    assert_eq!(name_addrs(&raw, from.value.clone()).unwrap().len(), 1);

    let raw = read("rfc4475-3.1.2.11-escruri.sip");
    let m = Message::parse(&raw).unwrap();
    let uri = Uri::parse(&raw, m.request_uri().unwrap()).unwrap();
    assert_eq!(&raw[uri.headers.unwrap()], b"Route=%3Csip:example.com%3E");

    let raw = read("rfc4475-3.1.2.16-badvers.sip");
    assert_eq!(Message::parse(&raw).unwrap().version(), "SIP/7.0");

    let raw = read("rfc4475-3.3.2-unkscm.sip");
    let m = Message::parse(&raw).unwrap();
    assert!(matches!(
        Uri::parse(&raw, m.request_uri().unwrap()),
        Err(ParseError::Uri { .. })
    ));
}

#[test]
fn wsinv_the_short_tortuous_invite() {
    let raw = read("rfc4475-3.1.1.1-wsinv.sip");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.cseq(), Some((9, "INVITE")));
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.from_tag(), Some(&b"98asjd8"[..]));
    assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
    let subject = m.header(HeaderName::Subject).unwrap();
    assert_eq!(&raw[subject.name_span.clone()], b"s");
    assert!(m.value(subject).is_empty());
    let nf: Vec<_> = m.headers_by_name(b"newfangledheader").collect();
    assert_eq!(
        m.value(nf[0]),
        b"newfangled value\r\n continued newfangled value"
    );
    assert_eq!(
        m.value(
            m.headers_by_name(b"UnknownHeaderWithUnusualValue")
                .next()
                .unwrap()
        ),
        b";;,,;;,;"
    );
    let hosts: Vec<&[u8]> = m.vias().iter().map(|v| &raw[v.host.clone()]).collect();
    assert_eq!(
        hosts,
        [
            &b"192.0.2.2"[..],
            b"spindle.example.com",
            b"192.168.255.111"
        ]
    );
    let branches: Vec<&[u8]> = m
        .vias()
        .iter()
        .map(|v| &raw[v.branch.clone().unwrap()])
        .collect();
    assert_eq!(
        branches,
        [&b"390skdjuw"[..], b"z9hG4bK9ikj8", b"z9hG4bK30239"]
    );
    let route = m.header(HeaderName::Route).unwrap();
    let r = &name_addrs(&raw, route.value.clone()).unwrap()[0];
    assert!(Uri::parse(&raw, r.uri.clone()).unwrap().lr);
    let contact = m.header(HeaderName::Contact).unwrap();
    let c = &name_addrs(&raw, contact.value.clone()).unwrap()[0];
    assert_eq!(c.params(&raw).len(), 3);
}

#[test]
fn every_parsed_file_frames_as_a_stream_when_it_has_content_length() {
    for (file, raw) in parsed() {
        let m = Message::parse(&raw).unwrap();
        match (m.content_length(), frame(&raw)) {
            (Some(_), Ok(Some(Frame::Message(n)))) => assert_eq!(n, m.body().end, "{file}"),
            (None, Err(ParseError::MissingContentLength { .. })) => {}
            (cl, got) => panic!("{file}: Content-Length {cl:?} framed as {got:?}"),
        }
    }
}
