//! `hostport` (RFC 3261 §25.1), shared by URIs and Via sent-by, with one
//! concession to the wild: an IPv6 literal without brackets (seen in real
//! captures, e.g. `fe80:0:0:0:21a:a0ff:fe07:32e0:5060`).

use std::net::Ipv6Addr;
use std::ops::Range;

use crate::error::ParseError;
use crate::scan::{at, parse_port, slice};

fn is_v6(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

fn is_host_char(b: u8) -> bool {
    // `_` is not in RFC 3261's hostname rule but occurs in deployed names.
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Splits `span` into a host (without brackets) and an optional port.
pub(crate) fn hostport(
    buf: &[u8],
    span: Range<usize>,
    err: fn(usize, &'static str) -> ParseError,
) -> Result<(Range<usize>, Option<u16>), ParseError> {
    let bytes = slice(buf, span.clone());
    let s = span.start;
    if bytes.is_empty() {
        return Err(err(s, "empty host"));
    }
    let port_at = |colon: usize| -> Result<Option<u16>, ParseError> {
        parse_port(slice(buf, colon + 1..span.end))
            .map(Some)
            .ok_or_else(|| err(colon + 1, "port is not a number in 0..=65535"))
    };
    if bytes.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', bytes).map(|c| s + c) else {
            return Err(err(s, "'[' without ']'"));
        };
        let host = s + 1..close;
        if !is_v6(slice(buf, host.clone())) {
            return Err(err(s + 1, "bracketed host is not an IPv6 address"));
        }
        return match at(buf, close + 1) {
            _ if close + 1 == span.end => Ok((host, None)),
            Some(b':') => Ok((host, port_at(close + 1)?)),
            _ => Err(err(close + 1, "unexpected bytes after ']'")),
        };
    }
    let colons = memchr::memchr_iter(b':', bytes).count();
    if colons >= 2 {
        // Bare IPv6: the whole is an address, or its last group is a port.
        if is_v6(bytes) {
            return Ok((span, None));
        }
        let last = memchr::memrchr(b':', bytes).map_or(s, |c| s + c);
        if is_v6(slice(buf, s..last)) {
            return Ok((s..last, port_at(last)?));
        }
        return Err(err(s, "host is neither a name nor an IP address"));
    }
    let (host, port) = match memchr::memchr(b':', bytes) {
        Some(c) => (s..s + c, port_at(s + c)?),
        None => (span.clone(), None),
    };
    let h = slice(buf, host.clone());
    if h.is_empty() || !h.iter().all(|&b| is_host_char(b)) {
        return Err(err(s, "host is neither a name nor an IP address"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> Result<(&str, Option<u16>), ParseError> {
        let b = s.as_bytes();
        hostport(b, 0..b.len(), |at, reason| ParseError::Uri { at, reason })
            .map(|(h, p)| (&s[h], p))
    }

    #[test]
    fn names_v4_and_bracketed_v6() {
        assert_eq!(hp("example.com").unwrap(), ("example.com", None));
        assert_eq!(hp("192.0.2.1:5060").unwrap(), ("192.0.2.1", Some(5060)));
        assert_eq!(
            hp("[2001:db8::1]:5060").unwrap(),
            ("2001:db8::1", Some(5060))
        );
        assert_eq!(hp("[2001:db8::1]").unwrap(), ("2001:db8::1", None));
        assert_eq!(hp("host_1.example").unwrap(), ("host_1.example", None));
    }

    #[test]
    fn bare_v6_with_and_without_port() {
        assert_eq!(
            hp("fe80:0:0:0:21a:a0ff:fe07:32e0:5060").unwrap(),
            ("fe80:0:0:0:21a:a0ff:fe07:32e0", Some(5060))
        );
        assert_eq!(hp("2001:db8::1").unwrap(), ("2001:db8::1", None));
    }

    #[test]
    fn malformed_hosts() {
        for bad in [
            "",
            ":5060",
            "h:",
            "h:65536",
            "h:x",
            "[2001:db8::1",
            "[nothost]",
            "[::1]x",
            "a b",
            "a:b:c",
            "h<",
            "[::1]:",
        ] {
            assert!(hp(bad).is_err(), "{bad:?}");
        }
    }
}
