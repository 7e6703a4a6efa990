//! Via header values (RFC 3261 §20.42): every via-parm of a comma list, with
//! the parameters a proxy needs (RFC 3581 `rport` included).

use std::ops::Range;

use crate::error::ParseError;
use crate::host::hostport;
use crate::params;
use crate::scan::{at, eq_ic, is_lws, parse_port, skip_lws, skip_token, slice};

/// One via-parm. Spans are byte offsets into the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// This via-parm only (sent-protocol to the end of its last parameter).
    pub span: Range<usize>,
    /// The transport token (`UDP`, `TCP`, `TLS`, ... as written).
    pub transport: Range<usize>,
    /// `host[:port]` as written, brackets included.
    pub sent_by: Range<usize>,
    /// The host, without brackets for IPv6.
    pub host: Range<usize>,
    /// The port, if given.
    pub port: Option<u16>,
    /// The `branch` parameter's value.
    pub branch: Option<Range<usize>>,
    /// The `received` parameter's value.
    pub received: Option<Range<usize>>,
    /// `rport` (RFC 3581): `Some(None)` for a bare `;rport`.
    pub rport: Option<Option<u16>>,
    /// After the last parameter (where a proxy appends `;received=`).
    pub params_end: usize,
}

fn err(at: usize, reason: &'static str) -> ParseError {
    ParseError::Via { at, reason }
}

/// Reads `SWS "/" SWS` then a token; returns the token span.
fn slash_token(buf: &[u8], i: usize, end: usize) -> Result<Range<usize>, ParseError> {
    let j = skip_lws(buf, i, end);
    if j >= end || at(buf, j) != Some(b'/') {
        return Err(err(j, "expected '/' in sent-protocol"));
    }
    let t0 = skip_lws(buf, j + 1, end);
    let t1 = skip_token(buf, t0, end);
    if t1 == t0 {
        return Err(err(t0, "empty sent-protocol element"));
    }
    Ok(t0..t1)
}

/// Parses one via-parm starting at `i` (LWS allowed). Returns it and the
/// position of the first non-LWS byte after it.
fn via_parm(buf: &[u8], i: usize, end: usize) -> Result<(Via, usize), ParseError> {
    let p0 = skip_lws(buf, i, end);
    let p1 = skip_token(buf, p0, end);
    if p1 == p0 {
        return Err(err(p0, "missing sent-protocol"));
    }
    let version = slash_token(buf, p1, end)?;
    let transport = slash_token(buf, version.end, end)?;
    let h0 = skip_lws(buf, transport.end, end);
    if h0 == transport.end {
        return Err(err(h0, "no white space before sent-by"));
    }
    let mut h1 = h0;
    while h1 < end && at(buf, h1).is_some_and(|b| !is_lws(b) && b != b';' && b != b',') {
        h1 += 1;
    }
    // sent-by = host [ COLON port ], and COLON allows white space around it.
    let mut sent_by = h0..h1;
    let after = skip_lws(buf, h1, end);
    if h1 > h0 && at(buf, h1 - 1) == Some(b':') || after < end && at(buf, after) == Some(b':') {
        let (host_end, c) = if at(buf, h1 - 1) == Some(b':') {
            (h1 - 1, h1 - 1)
        } else {
            (h1, after)
        };
        let d0 = skip_lws(buf, c + 1, end);
        let mut d1 = d0;
        while d1 < end && at(buf, d1).is_some_and(|b| b.is_ascii_digit()) {
            d1 += 1;
        }
        let port = parse_port(slice(buf, d0..d1))
            .ok_or_else(|| err(d0, "port is not a number in 0..=65535"))?;
        let (host, _) = hostport(buf, h0..host_end, err)?;
        sent_by = h0..d1;
        return finish(buf, p0, transport, sent_by, host, Some(port), d1, end);
    }
    let (host, port) = hostport(buf, sent_by.clone(), err)?;
    finish(buf, p0, transport, sent_by, host, port, h1, end)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    buf: &[u8],
    start: usize,
    transport: Range<usize>,
    sent_by: Range<usize>,
    host: Range<usize>,
    port: Option<u16>,
    after: usize,
    end: usize,
) -> Result<(Via, usize), ParseError> {
    let mut branch = None;
    let mut received = None;
    let mut rport = None;
    let mut bad_rport = None;
    let pe = params::scan(buf, after, end, err, |p| {
        let name = slice(buf, p.name.clone());
        if eq_ic(name, b"branch") {
            branch = branch.take().or(p.value);
        } else if eq_ic(name, b"received") {
            received = received.take().or(p.value);
        } else if eq_ic(name, b"rport") && rport.is_none() {
            rport = Some(match p.value {
                None => None,
                Some(v) => match parse_port(slice(buf, v.clone())) {
                    Some(n) => Some(n),
                    None => {
                        bad_rport = Some(v.start);
                        None
                    }
                },
            });
        }
    })?;
    if let Some(at) = bad_rport {
        return Err(err(at, "rport is not a number in 0..=65535"));
    }
    Ok((
        Via {
            span: start..pe.last,
            transport,
            sent_by,
            host,
            port,
            branch,
            received,
            rport,
            params_end: pe.last,
        },
        pe.stop,
    ))
}

/// Parses a Via header value (a comma list of via-parms) in `value`,
/// calling `f` for each one, top first.
pub(crate) fn parse_list(
    buf: &[u8],
    value: Range<usize>,
    mut f: impl FnMut(Via),
) -> Result<(), ParseError> {
    let end = value.end;
    let mut i = value.start;
    loop {
        let (v, stop) = via_parm(buf, i, end)?;
        f(v);
        if stop >= end {
            return Ok(());
        }
        if at(buf, stop) != Some(b',') {
            return Err(err(stop, "expected ',' or ';' after a via-parm"));
        }
        i = stop + 1;
    }
}

impl Via {
    /// Parses every via-parm of one Via header value.
    ///
    /// ```
    /// use pinhole_sip::Via;
    /// let v = b"SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP h";
    /// let vias = Via::parse_value(v, 0..v.len()).unwrap();
    /// assert_eq!(&v[vias[0].host.clone()], b"2001:db8::1");
    /// assert_eq!(vias[0].port, Some(5060));
    /// assert_eq!(vias[0].rport, Some(None));
    /// assert_eq!(&v[vias[1].transport.clone()], b"TCP");
    /// ```
    pub fn parse_value(buf: &[u8], value: Range<usize>) -> Result<Vec<Self>, ParseError> {
        let mut out = Vec::new();
        parse_list(buf, value, |v| out.push(v))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vias(s: &[u8]) -> Result<Vec<Via>, ParseError> {
        Via::parse_value(s, 0..s.len())
    }

    #[test]
    fn wsinv_folded_via() {
        let s = b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw";
        let v = vias(s).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(&s[v[0].transport.clone()], b"UDP");
        assert_eq!(&s[v[0].host.clone()], b"192.0.2.2");
        assert_eq!(&s[v[0].branch.clone().unwrap()], b"390skdjuw");
        assert_eq!(v[0].span, 0..s.len());
        let s = b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239";
        let v = vias(s).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(&s[v[0].branch.clone().unwrap()], b"z9hG4bK9ikj8");
        assert_eq!(&s[v[0].span.clone()][..3], b"SIP");
        assert!(s[v[0].span.clone()].ends_with(b"z9hG4bK9ikj8"));
        assert_eq!(&s[v[1].host.clone()], b"192.168.255.111");
        assert_eq!(&s[v[1].branch.clone().unwrap()], b"z9hG4bK30239");
    }

    #[test]
    fn received_rport_and_ports() {
        let s = b"SIP/2.0/UDP 10.0.0.1:5062;rport=40000;received=198.51.100.7;branch=z9hG4bKx";
        let v = &vias(s).unwrap()[0];
        assert_eq!(v.port, Some(5062));
        assert_eq!(v.rport, Some(Some(40000)));
        assert_eq!(&s[v.received.clone().unwrap()], b"198.51.100.7");
        assert_eq!(&s[v.sent_by.clone()], b"10.0.0.1:5062");
        assert_eq!(v.params_end, s.len());
        let s = b"SIP/2.0/UDP h : 5070 ;rport";
        let v = &vias(s).unwrap()[0];
        assert_eq!((&s[v.host.clone()], v.port), (&b"h"[..], Some(5070)));
        assert_eq!(v.rport, Some(None));
        let s = b"SIP/2.0/UDP fe80:0:0:0:21a:a0ff:fe07:32e0:5060;branch=z9hG4bKkdjuw8376";
        let v = &vias(s).unwrap()[0];
        assert_eq!(&s[v.host.clone()], b"fe80:0:0:0:21a:a0ff:fe07:32e0");
        assert_eq!(v.port, Some(5060));
        let s = b"SIP/2.0/UDP h;received=2001:db8::9";
        assert_eq!(
            &s[vias(s).unwrap()[0].received.clone().unwrap()],
            b"2001:db8::9"
        );
    }

    #[test]
    fn malformed_vias() {
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;,;,,"[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0 h",
            b"SIP/2.0/UDPh",
            b"SIP/2.0/UDP h,",
            b"SIP/2.0/UDP h x",
            b"SIP/2.0/UDP h;rport=99999",
            b"SIP/2.0/UDP h:99999",
            b"SIP/2.0/UDP h;branch=",
            b"",
        ] {
            assert!(vias(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
