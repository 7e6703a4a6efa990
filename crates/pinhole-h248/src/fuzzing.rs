//! Body of the `h248_parse` fuzz target under `fuzz/`, kept here so that
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

use crate::{Item, Message, parse, rewrite_all};

fn inside(r: &Range<usize>, outer: &Range<usize>) -> bool {
    r.start <= r.end && outer.start <= r.start && r.end <= outer.end
}

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

/// Parses `data`; on success checks that every span is in bounds and
/// nested in its parent, that spans of siblings do not overlap, that every
/// `&str` is the datagram's bytes at its span, and that [`rewrite_all`]'s
/// output parses to the same structure with every byte outside the SDP
/// groups unchanged. On failure checks the error's line is in the
/// datagram.
pub fn h248_parse(data: &[u8]) {
    let msg = match parse(data) {
        Ok(m) => m,
        Err(e) => {
            let lines = 1 + data
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
                .count();
            assert!(e.line() >= 1 && e.line() <= lines, "{e} of {lines} lines");
            assert!(!e.kind().is_empty());
            return;
        }
    };
    let all = 0..data.len();
    let mid = msg.mid();
    assert!(inside(&mid.span, &all));
    assert_eq!(&data[mid.span.clone()], mid.text.as_bytes());
    let mut groups = Vec::new();
    let mut prev = mid.span.end;
    for item in msg.items() {
        let span = item.span();
        assert!(inside(&span, &all) && span.start >= prev, "{span:?}");
        prev = span.end;
        check_item(&msg, item, &span, &mut groups);
    }
    if let Some(e) = msg.error() {
        assert!(inside(&e.span, &all) && msg.items().is_empty());
    }
    let listed: Vec<Range<usize>> = msg.groups().map(|g| g.span.clone()).collect();
    assert_eq!(listed, groups);
    let Ok(out) = rewrite_all(data, SocketAddr::new(RELAY, 40_000)) else {
        return;
    };
    // Every byte outside the SDP groups is kept, in order.
    let again = parse(&out).expect("the rewritten message parses");
    assert_eq!(again.items().len(), msg.items().len());
    let (mut at_in, mut at_out) = (0, 0);
    let new: Vec<Range<usize>> = again.groups().map(|g| g.span.clone()).collect();
    assert_eq!(new.len(), groups.len());
    for (old, new) in groups.iter().zip(&new) {
        assert_eq!(&out[at_out..new.start], &data[at_in..old.start]);
        at_in = old.end;
        at_out = new.end;
    }
    assert_eq!(&out[at_out..], &data[at_in..]);
    for (a, b) in msg.commands().zip(again.commands()) {
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.terminations.len(), b.terminations.len());
        assert_eq!(a.streams.len(), b.streams.len());
    }
}

fn check_item(
    msg: &Message<'_>,
    item: &Item<'_>,
    span: &Range<usize>,
    groups: &mut Vec<Range<usize>>,
) {
    let data = msg.bytes();
    let actions = match item {
        Item::Request(r) => &r.actions[..],
        Item::Reply(r) => {
            if let Some(e) = &r.error {
                assert!(inside(&e.span, span));
            }
            &r.actions[..]
        }
        Item::Pending { .. } => &[],
        Item::ResponseAck { ranges, .. } => {
            assert!(ranges.iter().all(|r| r.first <= r.last));
            &[]
        }
    };
    let mut prev = span.start;
    for a in actions {
        assert!(inside(&a.span, span) && a.span.start >= prev);
        prev = a.span.end;
        let mut at = a.span.start;
        for c in &a.commands {
            assert!(inside(&c.span, &a.span) && c.span.start >= at);
            at = c.span.end;
            let _ = crate::MediaRole::of(item, c).intent_kind();
            for t in &c.terminations {
                assert!(inside(&t.span, &c.span));
                assert_eq!(&data[t.span.clone()], t.text.as_bytes());
            }
            for s in &c.streams {
                assert!(inside(&s.span, &c.span));
                for g in s.local.iter().chain(&s.remote) {
                    assert!(inside(&g.span, &c.span) && g.span.start < g.span.end);
                    groups.push(g.span.clone());
                }
            }
            if let Some(sc) = &c.service_change {
                for (text, s) in sc.address.iter().chain(&sc.mgc_id) {
                    assert!(inside(s, &c.span));
                    assert_eq!(&data[s.clone()], text.as_bytes());
                }
            }
            if let Some(e) = &c.error {
                assert!(inside(&e.span, &c.span));
            }
        }
    }
    groups.sort_by_key(|g| g.start);
    for w in groups.windows(2) {
        assert!(w[0].end <= w[1].start, "{groups:?}");
    }
}
