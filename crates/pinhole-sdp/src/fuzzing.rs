//! Body of the fuzz target `sdp_rewrite` under `fuzz/`, and the rewrite
//! check the corpus tests and proptests share, kept here so that they
//! compile with the crate and the checked-in seed corpus runs as an ordinary
//! test.
//!
//! These functions panic when a property fails: that is how a fuzzer
//! reports a finding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_core::wire::RtcpMode;

use crate::{AddrType, RewriteOptions, Sdp, SdpError};

/// The address an ALG would pass for host names in `c=` (the sender's).
pub const FALLBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));

/// The IPv4 relay address of the test plans.
pub const RELAY4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

/// The IPv6 relay address of the test plans.
pub const RELAY6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));

/// A plan moving every enabled stream to `ip`, RTP on `first_port + 2n`
/// for the `n`-th enabled stream; an explicit RTCP address (the next port)
/// for streams without `a=rtcp-mux` when `rtcp` is set.
pub fn plan_all(
    endpoints: &[MediaEndpoint],
    ip: IpAddr,
    first_port: u16,
    rtcp: bool,
) -> Vec<PlannedEndpoint> {
    endpoints
        .iter()
        .filter(|e| !e.is_disabled())
        .zip((u32::from(first_port)..).step_by(2))
        .map(|(e, port)| {
            let port = (port % 65_000) as u16;
            PlannedEndpoint {
                index: e.index,
                addr: SocketAddr::new(ip, port),
                rtcp_addr: (rtcp && e.rtcp != RtcpMode::Mux)
                    .then(|| SocketAddr::new(ip, port.wrapping_add(1))),
            }
        })
        .collect()
}

/// Fuzz target `sdp_rewrite`: parsing arbitrary bytes never panics; a body
/// that parses is rewritten with four plans (all streams to IPv4, all to
/// IPv6, alternate streams to two addresses with the `o=` line too, the
/// first stream only) and each rewrite passes [`check_rewrite`].
pub fn sdp_rewrite(data: &[u8]) {
    let Ok(sdp) = Sdp::parse(data) else {
        return;
    };
    let _ = sdp.line_ending();
    let _ = crate::descriptions(data).count();
    let Ok(eps) = sdp.endpoints(FALLBACK) else {
        // An unreadable line an enabled stream needs: rewriting that
        // stream must fail cleanly, and leave the patch empty.
        let mut patch = Patch::new();
        let plan = plan_all(&per_stream(&sdp), RELAY4, 30_000, true);
        if sdp
            .rewrite(&plan, &RewriteOptions::default(), &mut patch)
            .is_err()
        {
            assert!(patch.is_empty(), "a failed rewrite recorded edits");
        }
        return;
    };
    let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
    let alternate: Vec<PlannedEndpoint> = plan_all(&eps, RELAY4, 40_000, false)
        .into_iter()
        .enumerate()
        .map(|(n, mut p)| {
            if n % 2 == 1 {
                p.addr.set_ip(other);
            }
            p
        })
        .collect();
    let first: Vec<PlannedEndpoint> = plan_all(&eps, RELAY6, 50_000, false)
        .into_iter()
        .take(1)
        .collect();
    let plans = [
        (plan_all(&eps, RELAY4, 30_000, true), None),
        (plan_all(&eps, RELAY6, 30_000, true), None),
        (alternate, Some(RELAY4)),
        (first, Some(RELAY6)),
    ];
    for (plan, origin) in plans {
        let opts = RewriteOptions {
            rewrite_origin: origin,
        };
        match check_rewrite(data, &plan, &opts, FALLBACK) {
            Ok(_) => {}
            // Only an o= line that cannot be read may refuse these plans.
            Err(SdpError::BadOrigin { .. }) if origin.is_some() => {}
            Err(e) => panic!("rewrite refused a plan built from its own endpoints: {e}"),
        }
    }
}

/// Endpoints of every stream, with a placeholder for those that cannot be
/// read (to build a plan that names them).
fn per_stream(sdp: &Sdp<'_>) -> Vec<MediaEndpoint> {
    sdp.media()
        .iter()
        .map(|m| {
            sdp.endpoint(m, FALLBACK).unwrap_or(MediaEndpoint::rtp(
                m.index,
                SocketAddr::new(FALLBACK, m.port),
            ))
        })
        .collect()
}

/// Every span [`Sdp::rewrite`] may edit: addresses, address types and
/// ports, and the empty spans where a media-level `c=` line may go.
pub fn located_spans(sdp: &Sdp<'_>) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut conn = |c: &crate::Connection<'_>| {
        spans.push(c.address_span.clone());
        spans.push(c.addrtype_span.clone());
    };
    if let Some(c) = sdp.origin() {
        conn(&c);
    }
    if let Some(c) = sdp.session_connection() {
        conn(c);
    }
    for m in sdp.media() {
        if let Some(c) = &m.connection {
            conn(c);
        }
        if let Some(c) = m.rtcp.as_ref().and_then(|r| r.addr.as_ref()) {
            conn(c);
        }
    }
    for m in sdp.media() {
        spans.push(m.port_span.clone());
        spans.push(m.insert.at..m.insert.at);
        if let Some(r) = &m.rtcp {
            spans.push(r.port_span.clone());
        }
    }
    spans
}

/// Rewrites `body` with `plan` and checks, panicking on a failure:
///
/// 1. every edit is on a span the parser located (an insertion is one
///    `c=` line in the body's line ending);
/// 2. every other byte is kept, in order;
/// 3. the output parses, has the same streams, and gives exactly the
///    planned RTP (and RTCP, where `a=rtcp:` is) addresses for planned
///    enabled streams and the former endpoints for all others;
/// 4. the `o=` address is the requested one, or untouched.
///
/// Returns the output, or the error `rewrite` refused the plan with (then
/// the patch must be empty).
pub fn check_rewrite(
    body: &[u8],
    plan: &[PlannedEndpoint],
    opts: &RewriteOptions,
    fallback: IpAddr,
) -> Result<Vec<u8>, SdpError> {
    let sdp = Sdp::parse(body)?;
    let mut patch = Patch::new();
    if let Err(e) = sdp.rewrite(plan, opts, &mut patch) {
        assert!(patch.is_empty(), "a failed rewrite recorded edits");
        return Err(e);
    }
    let eol = sdp.line_ending().as_bytes();

    // 1. Only located spans are edited.
    let allowed = located_spans(&sdp);
    let mut edits: Vec<(Range<usize>, &[u8])> = patch.edits().collect();
    for (span, with) in &edits {
        assert!(
            allowed.contains(span),
            "edit {span:?} -> {:?} is not on a located span",
            String::from_utf8_lossy(with)
        );
        if span.is_empty() {
            let line = with
                .strip_prefix(eol)
                .or_else(|| with.strip_suffix(eol))
                .unwrap_or_else(|| panic!("inserted line without the body's line ending"));
            assert!(line.starts_with(b"c=IN IP"), "inserted {line:?}");
            assert!(!line.contains(&b'\n'));
        }
    }

    // 2. Every other byte is kept, in order.
    let out = patch
        .apply(body)
        .expect("rewrite recorded overlapping edits");
    edits.sort_by_key(|(span, _)| (span.start, span.end));
    let (mut kept_in, mut kept_out) = (Vec::new(), Vec::new());
    let (mut at_in, mut at_out) = (0, 0);
    for (span, with) in &edits {
        kept_in.extend_from_slice(&body[at_in..span.start]);
        kept_out.extend_from_slice(&out[at_out..at_out + (span.start - at_in)]);
        at_out += span.start - at_in + with.len();
        at_in = span.end;
    }
    kept_in.extend_from_slice(&body[at_in..]);
    kept_out.extend_from_slice(&out[at_out..]);
    assert_eq!(kept_in, kept_out, "bytes outside the edits changed");

    // 3. The output re-parses to the plan.
    let again =
        Sdp::parse(&out).unwrap_or_else(|e| panic!("rewritten body does not parse: {e}\n{out:?}"));
    assert_eq!(again.media().len(), sdp.media().len());
    assert_eq!(again.line_ending(), sdp.line_ending());
    for (m, n) in sdp.media().iter().zip(again.media()) {
        assert_eq!(
            (m.kind, m.proto, m.port_count, m.rtcp_mux, m.direction),
            (n.kind, n.proto, n.port_count, n.rtcp_mux, n.direction)
        );
        assert_eq!(m.rtcp.is_some(), n.rtcp.is_some());
        let before = sdp.endpoint(m, fallback);
        let after = again.endpoint(n, fallback);
        match plan.iter().find(|p| p.index == m.index) {
            Some(p) if !m.is_disabled() => {
                let after = after.unwrap_or_else(|e| panic!("stream {}: {e}", m.index));
                assert_eq!(after.addr, p.addr, "stream {} RTP", m.index);
                // The address type names the new family.
                let conns = again.connection_of(n).unwrap().into_iter();
                let rtcp_conn = n.rtcp.as_ref().and_then(|r| r.addr.as_ref());
                for c in conns.chain(rtcp_conn) {
                    if let Some(ip) = c.ip() {
                        assert_eq!(c.addrtype, AddrType::of(ip), "line {}", c.line);
                    }
                }
                if m.rtcp.is_some() {
                    let rtcp = p.rtcp_addr.unwrap_or_else(|| {
                        if m.rtcp_mux {
                            p.addr
                        } else {
                            SocketAddr::new(p.addr.ip(), p.addr.port() + 1)
                        }
                    });
                    assert_eq!(after.rtcp_addr, Some(rtcp), "stream {} RTCP", m.index);
                }
            }
            // A disabled stream's address means nothing (it may follow a
            // rewritten session c=); it must stay disabled.
            _ if m.is_disabled() => {
                assert!(n.is_disabled(), "stream {} enabled", m.index);
            }
            _ => match before {
                Ok(b) => assert_eq!(after, Ok(b), "unplanned stream {} moved", m.index),
                Err(_) => assert!(after.is_err(), "stream {}", m.index),
            },
        }
    }

    // 4. The o= line.
    match opts.rewrite_origin {
        Some(ip) => assert_eq!(again.origin().and_then(|c| c.ip()), Some(ip)),
        None => assert_eq!(
            again.origin().map(|c| &out[c.address_span.clone()]),
            sdp.origin().map(|c| &body[c.address_span.clone()])
        ),
    }
    Ok(out)
}
