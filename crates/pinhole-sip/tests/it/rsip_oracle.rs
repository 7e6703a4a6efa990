//! `rsip` 0.4 as a differential oracle over the shared corpus: where it
//! accepts a message that `pinhole-sip` also accepts, method or status,
//! Call-ID, CSeq, header count and body must agree. Every disagreement is
//! listed below with its reason, and the list must stay exact, so a change
//! on either side shows up here.

use rsip::headers::UntypedHeader;
use rsip::message::{HasHeaders, HeadersExt};

use pinhole_sip::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// rsip rejects a message RFC 3261 / RFC 4475 call valid, or one seen
    /// in a real capture that a proxy must carry.
    RsipRejectsValid,
    /// Both reject (RFC 4475 §3.1.2 request-line and scalar cases).
    BothReject,
    /// rsip accepts a message `pinhole-sip` rejects (see corpus.rs for why).
    RsipAcceptsInvalid,
    /// rsip takes every byte after the empty line as the body and ignores
    /// Content-Length.
    RsipIgnoresContentLength,
}

const KNOWN: &[(&str, Known, &str)] = &[
    (
        "heplify-sip_ipv6_udp-f1-INVITE-ipv6.sip",
        Known::RsipRejectsValid,
        "bare IPv6 Request-URI host with port",
    ),
    (
        "rfc4475-3.1.1.1-wsinv.sip",
        Known::RsipRejectsValid,
        "folded lines, LWS before ':'",
    ),
    (
        "rfc4475-3.1.1.2-intmeth.sip",
        Known::RsipRejectsValid,
        "extension method with token punctuation",
    ),
    (
        "rfc4475-3.1.1.3-esc01.sip",
        Known::RsipRejectsValid,
        "escaped characters in the Request-URI user part",
    ),
    (
        "rfc4475-3.1.1.5-esc02.sip",
        Known::RsipRejectsValid,
        "extension method RE%47IST%45R",
    ),
    (
        "rfc4475-3.1.1.7-longreq.sip",
        Known::RsipRejectsValid,
        "long header values",
    ),
    (
        "rfc4475-3.1.1.9-semiuri.sip",
        Known::RsipRejectsValid,
        "';' in the URI user part",
    ),
    (
        "rfc4475-3.1.2.11-escruri.sip",
        Known::RsipRejectsValid,
        "headers in the Request-URI (RFC lets a proxy accept)",
    ),
    (
        "rfc4475-3.1.2.16-badvers.sip",
        Known::RsipRejectsValid,
        "SIP/7.0: the proxy answers 505, so it must parse",
    ),
    (
        "rfc4475-3.3.2-unkscm.sip",
        Known::RsipRejectsValid,
        "unknown Request-URI scheme: the proxy answers 416",
    ),
    ("rfc4475-3.1.2.10-trws.sip", Known::BothReject, ""),
    (
        "rfc4475-3.1.2.18-mismatch02.sip",
        Known::BothReject,
        "rsip: unknown method; pinhole-sip: CSeq mismatch",
    ),
    ("rfc4475-3.1.2.19-bigcode.sip", Known::BothReject, ""),
    ("rfc4475-3.1.2.4-scalar02.sip", Known::BothReject, ""),
    ("rfc4475-3.1.2.8-lwsruri.sip", Known::BothReject, ""),
    ("rfc4475-3.1.2.9-lwsstart.sip", Known::BothReject, ""),
    (
        "rfc4475-3.1.2.1-badinv01.sip",
        Known::RsipAcceptsInvalid,
        "empty Via parameters",
    ),
    (
        "rfc4475-3.1.2.17-mismatch01.sip",
        Known::RsipAcceptsInvalid,
        "CSeq method mismatch",
    ),
    (
        "rfc4475-3.1.2.5-scalarlg.sip",
        Known::RsipAcceptsInvalid,
        "CSeq over 32 bits (rsip's cseq() then fails)",
    ),
    (
        "rfc4475-3.1.2.7-ltgtruri.sip",
        Known::RsipAcceptsInvalid,
        "Request-URI in <>",
    ),
    (
        "suricata-verify-sip_compact_form-f1.sip",
        Known::RsipIgnoresContentLength,
        "100 bytes past Content-Length",
    ),
    (
        "suricata-verify-sip_header_multi_val-f1.sip",
        Known::RsipIgnoresContentLength,
        "100 bytes past Content-Length",
    ),
];

fn compare(file: &str, raw: &[u8]) -> Option<Known> {
    let ours = Message::parse(raw);
    let theirs = rsip::SipMessage::try_from(raw);
    let (ours, theirs) = match (ours, theirs) {
        (Ok(o), Ok(t)) => (o, t),
        (Ok(_), Err(_)) => return Some(Known::RsipRejectsValid),
        (Err(_), Err(_)) => return Some(Known::BothReject),
        (Err(_), Ok(_)) => return Some(Known::RsipAcceptsInvalid),
    };
    match &theirs {
        rsip::SipMessage::Request(r) => assert_eq!(
            ours.method(),
            Some(r.method().to_string().as_str()),
            "{file}"
        ),
        rsip::SipMessage::Response(r) => {
            assert_eq!(ours.status(), Some(r.status_code().code()), "{file}")
        }
    }
    let call_id = theirs
        .call_id_header()
        .ok()
        .map(|c| c.value().as_bytes().to_vec());
    assert_eq!(ours.call_id().map(<[u8]>::to_vec), call_id, "{file}");
    let cseq = theirs
        .cseq_header()
        .ok()
        .and_then(|c| Some((c.seq().ok()?, c.method().ok()?.to_string())));
    assert_eq!(ours.cseq().map(|(n, m)| (n, m.to_owned())), cseq, "{file}");
    assert_eq!(
        ours.headers().len(),
        theirs.headers().iter().count(),
        "{file}"
    );
    let body = &raw[ours.body()];
    if theirs.body().as_slice() == body {
        return None;
    }
    // rsip's body is everything after the empty line.
    assert_eq!(
        theirs.body().as_slice(),
        &raw[ours.body().start..],
        "{file}"
    );
    Some(Known::RsipIgnoresContentLength)
}

#[test]
fn rsip_agrees_except_where_listed() {
    let mut agreed = 0;
    let mut seen = Vec::new();
    for path in pinhole_testkit::corpus::files("sip", ".sip").unwrap() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read(&path).unwrap();
        let got = compare(&file, &raw);
        let want = KNOWN
            .iter()
            .find(|(f, _, _)| *f == file)
            .map(|&(_, k, _)| k);
        assert_eq!(got, want, "{file}");
        match got {
            None => agreed += 1,
            Some(_) => seen.push(file),
        }
    }
    assert_eq!(
        seen.len(),
        KNOWN.len(),
        "a listed file is missing from the corpus"
    );
    assert!(agreed >= 40, "rsip agreed on only {agreed} files");
}
