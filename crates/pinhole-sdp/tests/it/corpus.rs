//! The shared corpus (every `sdp/*.sdp` file and the SDP body of every
//! `sip/*.sip` message that has one): each body parses, and is rewritten to
//! IPv4 and to IPv6 relay addresses with `fuzzing::check_rewrite` (only
//! located spans change, every other byte is kept, the result re-parses to
//! the plan). sdp-rs 0.2.1 is the differential oracle: where it accepts the
//! input it must agree with us on ports and connection addresses, and
//! accept and agree on the output too. It is only an oracle: it
//! re-serialises, and it fails on several real bodies (see the last tests).

use std::net::IpAddr;
use std::path::Path;

use pinhole_sdp::fuzzing::{FALLBACK, RELAY4, RELAY6, check_rewrite, plan_all};
use pinhole_sdp::{RewriteOptions, Sdp};
use pinhole_testkit::corpus;

/// The body of a SIP message: the bytes after the first empty line.
fn sip_body(msg: &[u8]) -> Option<&[u8]> {
    let crlf = msg.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = msg.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let at = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    msg.get(at..)
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every SDP body of the corpus, by name.
fn bodies() -> Vec<(String, Vec<u8>)> {
    let sdp = corpus::files("sdp", ".sdp").unwrap_or_else(|e| {
        panic!(
            "the shared corpus is missing at {}: {e}",
            corpus::shared_dir().display()
        )
    });
    assert_eq!(sdp.len(), 23, "the corpus has 23 SDP files");
    let mut out: Vec<(String, Vec<u8>)> = sdp
        .iter()
        .map(|p| (name(p), std::fs::read(p).unwrap()))
        .collect();
    let mut from_sip = 0;
    for p in corpus::files("sip", ".sip").unwrap() {
        let msg = std::fs::read(&p).unwrap();
        if let Some(body) = sip_body(&msg).filter(|b| b.starts_with(b"v=")) {
            out.push((name(&p), body.to_vec()));
            from_sip += 1;
        }
    }
    assert!(from_sip >= 30, "only {from_sip} SIP messages with SDP");
    out
}

/// sdp-rs's view: per stream, its port and connection address.
fn oracle(body: &[u8]) -> Option<Vec<(u16, IpAddr)>> {
    let text = std::str::from_utf8(body).ok()?;
    let sd = sdp_rs::SessionDescription::try_from(text).ok()?;
    Some(
        sd.media_descriptions
            .iter()
            .map(|m| {
                let c = m
                    .connections
                    .first()
                    .or(sd.connection.as_ref())
                    .map_or(FALLBACK, |c| c.connection_address.base);
                (m.media.port, c)
            })
            .collect(),
    )
}

/// Our view, in the oracle's terms.
fn ours(body: &[u8]) -> Vec<(u16, IpAddr)> {
    let sdp = Sdp::parse(body).unwrap();
    sdp.endpoints(FALLBACK)
        .unwrap()
        .iter()
        .map(|e| (e.addr.port(), e.addr.ip()))
        .collect()
}

#[test]
fn corpus_bodies_parse_and_rewrite_byte_faithfully() {
    let mut streams = 0;
    let mut with_rtcp = 0;
    for (name, body) in bodies() {
        let sdp = Sdp::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!sdp.media().is_empty(), "{name}: no m= line found");
        let eps = sdp
            .endpoints(FALLBACK)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        streams += eps.len();
        with_rtcp += eps.iter().filter(|e| e.rtcp_addr.is_some()).count();
        for (ip, rtcp) in [(RELAY4, true), (RELAY6, false)] {
            let plan = plan_all(&eps, ip, 30_000, rtcp);
            assert!(!plan.is_empty(), "{name}: no enabled stream");
            let out = check_rewrite(&body, &plan, &RewriteOptions::default(), FALLBACK)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(out, body, "{name}: nothing rewritten");
            // The sender's addresses are gone from every c= line.
            let again = Sdp::parse(&out).unwrap();
            for e in again.endpoints(FALLBACK).unwrap() {
                assert!(e.is_disabled() || e.addr.ip() == ip, "{name}: {e:?}");
            }
        }
    }
    assert!(streams >= 60, "{streams} streams");
    assert!(with_rtcp >= 5, "{with_rtcp} streams with a=rtcp");
}

#[test]
fn corpus_agrees_with_sdp_rs_where_it_parses() {
    let mut compared = 0;
    let mut refused = Vec::new();
    for (name, body) in bodies() {
        let Some(theirs) = oracle(&body) else {
            refused.push(name);
            continue;
        };
        assert_eq!(ours(&body), theirs, "{name}: input");
        let eps = Sdp::parse(&body).unwrap().endpoints(FALLBACK).unwrap();
        for ip in [RELAY4, RELAY6] {
            let plan = plan_all(&eps, ip, 30_000, true);
            let out = check_rewrite(&body, &plan, &RewriteOptions::default(), FALLBACK).unwrap();
            let theirs = oracle(&out)
                .unwrap_or_else(|| panic!("{name}: sdp-rs accepts the input, not our output"));
            assert_eq!(ours(&out), theirs, "{name}: output");
            for p in &plan {
                assert_eq!(theirs[usize::from(p.index)], (p.addr.port(), ip), "{name}");
            }
        }
        compared += 1;
    }
    eprintln!("sdp-rs compared {compared}, refused {refused:?}");
    // The oracle must actually have run on most of the corpus.
    assert!(
        compared >= 40,
        "sdp-rs compared only {compared}; refused {refused:?}"
    );
}

/// A body sdp-rs 0.2.1 gets wrong, and what it does with it.
fn sdp_rs_roundtrip(body: &str) -> Result<String, String> {
    sdp_rs::SessionDescription::try_from(body)
        .map(|sd| sd.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn where_sdp_rs_fails_we_do_not() {
    // 1. opus/48000/2: sdp-rs re-serialises the rtpmap without the channels.
    let opus = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
    let theirs = sdp_rs_roundtrip(opus).unwrap();
    assert!(
        !theirs.contains("opus/48000/2"),
        "sdp-rs was fixed: {theirs}"
    );
    // 2. c= after a= in a media section: sdp-rs drops it (or refuses).
    let late_c = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nt=0 0\r\n\
                  m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\nc=IN IP4 10.0.0.6\r\n";
    if let Ok(theirs) = sdp_rs_roundtrip(late_c) {
        assert!(!theirs.contains("10.0.0.6"), "sdp-rs was fixed: {theirs}");
    }
    // 3. A host name in c=: sdp-rs refuses the body.
    let fqdn = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 pbx.example.com\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0\r\n";
    assert!(sdp_rs_roundtrip(fqdn).is_err());
    // 4. No final line end, and trailing blanks.
    let ragged = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=- \r\nc=IN IP4 10.0.0.5 \r\nt=0 0\r\n\
                  m=audio 4000 RTP/AVP 0";
    let theirs = sdp_rs_roundtrip(ragged);
    assert!(
        theirs.as_ref().map_or(true, |t| !t.contains("4000")),
        "{theirs:?}"
    );

    let plan = |ip| {
        move |body: &str| {
            let eps = Sdp::parse(body.as_bytes())
                .unwrap()
                .endpoints(FALLBACK)
                .unwrap();
            plan_all(&eps, ip, 30_000, false)
        }
    };
    for body in [opus, late_c, fqdn, ragged] {
        let out = check_rewrite(
            body.as_bytes(),
            &plan(RELAY4)(body),
            &RewriteOptions::default(),
            FALLBACK,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("m=audio 30000 RTP/AVP"), "{out}");
        assert!(out.contains("c=IN IP4 203.0.113.10"), "{out}");
    }
    // Our parser reads what sdp-rs loses.
    let sdp = Sdp::parse(late_c.as_bytes()).unwrap();
    assert_eq!(
        sdp.media()[0].connection.as_ref().unwrap().ip(),
        Some("10.0.0.6".parse().unwrap())
    );
    let out = check_rewrite(
        opus.as_bytes(),
        &plan(RELAY6)(opus),
        &RewriteOptions::default(),
        FALLBACK,
    )
    .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("a=rtpmap:111 opus/48000/2\r\n")
    );
}
