//! Body of the `mgcp_parse` fuzz target under `fuzz/`, kept here so that
//! it compiles with the crate and the checked-in corpus runs as an
//! ordinary test.
//!
//! It panics when a property fails: that is how a fuzzer reports a finding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;

use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_sdp::RewriteOptions;

use crate::{Head, Message, messages, parse_datagram, rewrite_all};

fn inside(r: &Range<usize>, outer: &Range<usize>) -> bool {
    r.start <= r.end && outer.start <= r.start && r.end <= outer.end
}

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

/// Parses `data` as a datagram; checks that every span stays inside its
/// message, that messages do not overlap, that rewriting each SDP to a
/// relay changes no byte outside the SDP spans and gives a datagram that
/// parses to the same messages, and that [`rewrite_all`]'s output parses.
pub fn mgcp_parse(data: &[u8]) {
    let all: Vec<_> = messages(data).collect();
    let Ok(msgs) = parse_datagram(data) else {
        assert!(all.last().is_some_and(Result::is_err));
        if let Ok(m) = Message::parse(data) {
            panic!("one message parses alone but the datagram does not: {m:?}");
        }
        return;
    };
    assert_eq!(msgs.len(), all.len());
    assert_eq!(Message::parse(data).is_ok(), msgs.len() == 1);
    let mut prev = 0;
    let mut patch = Patch::new();
    let mut sdp_spans = Vec::new();
    for m in &msgs {
        let span = m.span();
        assert!(span.start >= prev && span.end <= data.len() && span.start < span.end);
        prev = span.end;
        check(m, &span);
        if let Ok(Some(sdp)) = m.sdp() {
            let plan: Vec<_> = sdp
                .media()
                .iter()
                .filter(|x| !x.is_disabled())
                .map(|x| PlannedEndpoint {
                    index: x.index,
                    addr: SocketAddr::new(RELAY, 40_000 + 2 * x.index),
                    rtcp_addr: None,
                })
                .collect();
            if m.rewrite_sdp(&sdp, &plan, &RewriteOptions::default(), &mut patch)
                .is_ok()
            {
                sdp_spans.push(m.sdp_span().unwrap());
            }
        }
        let _ = m.response_ack();
        let _ = m.media_role().intent_kind();
    }
    let out = patch
        .apply(data)
        .expect("edits of distinct SDP spans apply");
    // Every byte outside the rewritten SDP spans is kept.
    let mut at_in = 0;
    let mut at_out = 0;
    for s in &sdp_spans {
        let keep = s.start - at_in;
        assert_eq!(&out[at_out..at_out + keep], &data[at_in..s.start]);
        at_out += keep + (s.len() as isize + patch.delta_within(s.clone())) as usize;
        at_in = s.end;
    }
    assert_eq!(&out[at_out..], &data[at_in..]);
    let again = parse_datagram(&out).expect("the rewritten datagram parses");
    assert_eq!(again.len(), msgs.len());
    for (a, b) in msgs.iter().zip(&again) {
        assert_eq!(a.transaction_id(), b.transaction_id());
        assert_eq!(a.params().len(), b.params().len());
        assert_eq!(a.has_sdp(), b.has_sdp());
    }
    if let Ok(out) = rewrite_all(data, SocketAddr::new(RELAY, 40_000)) {
        assert_eq!(parse_datagram(&out).unwrap().len(), msgs.len());
    }
}

fn check(m: &Message<'_>, span: &Range<usize>) {
    let buf = m.buf();
    match m.head() {
        Head::Command(c) => {
            for s in [
                &c.verb_span,
                &c.transaction_span,
                &c.endpoint.span,
                &c.version.span,
            ] {
                assert!(inside(s, span));
            }
            let e = &c.endpoint;
            assert!(inside(&e.local_span, &e.span) && inside(&e.domain_span, &e.span));
            assert_eq!(&buf[e.span.clone()], e.text.as_bytes());
            assert!((1..=crate::MAX_TRANSACTION_ID).contains(&c.transaction_id));
        }
        Head::Response(r) => {
            assert!(inside(&r.code_span, span) && r.code < 1000);
            if let Some(c) = &r.commentary_span {
                assert!(inside(c, span));
            }
        }
    }
    let mut prev = span.start;
    for p in m.params() {
        assert!(inside(&p.name_span, span) && inside(&p.value_span, span));
        assert!(p.name_span.start >= prev);
        assert_eq!(&buf[p.value_span.clone()], p.value.as_bytes());
        prev = p.value_span.end;
    }
    if let Some(s) = m.sdp_span() {
        assert!(inside(&s, span) && s.start >= prev);
    }
}
