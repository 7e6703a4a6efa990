//! `sip:`, `sips:` (RFC 3261 §19.1) and `tel:` (RFC 3966) URIs, as spans.
//! Escapes are not decoded: a rewriter edits the bytes as written.

use std::ops::Range;

use crate::error::ParseError;
use crate::host::hostport;
use crate::params::Param;
use crate::scan::{eq_ic, slice};

/// A URI scheme [`Uri`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:`
    Tel,
}

/// A parsed URI. Spans are byte offsets into the buffer given to
/// [`Uri::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// The whole URI.
    pub span: Range<usize>,
    /// The user part (before `:password@`); for `tel:` the telephone
    /// number.
    pub user: Option<Range<usize>>,
    /// The password, if `user:password@` was written.
    pub password: Option<Range<usize>>,
    /// The host, without brackets for IPv6. Empty (at the end of the
    /// number) for `tel:`, which has none.
    pub host: Range<usize>,
    /// `host[:port]` as written, brackets included (what a rewriter
    /// replaces to change the address).
    pub host_port: Range<usize>,
    /// The port, if given.
    pub port: Option<u16>,
    /// The URI parameters, from the first `;` to the `?` or the end
    /// (empty, at the end of `host_port`, if there are none).
    pub params: Range<usize>,
    /// The headers after `?`, if any (RFC 3261 §19.1.1; not allowed in a
    /// Request-URI, RFC 4475 §3.1.2.11, which is the proxy's call).
    pub headers: Option<Range<usize>>,
    /// Whether an `lr` parameter is present (loose routing).
    pub lr: bool,
}

fn err(at: usize, reason: &'static str) -> ParseError {
    ParseError::Uri { at, reason }
}

impl Uri {
    /// Parses the URI at `span` of `buf`.
    ///
    /// ```
    /// use pinhole_sip::{Scheme, Uri};
    /// let b = b"sip:alice@[2001:db8::1]:5070;transport=tcp;lr";
    /// let u = Uri::parse(b, 0..b.len()).unwrap();
    /// assert_eq!(u.scheme, Scheme::Sip);
    /// assert_eq!(&b[u.user.clone().unwrap()], b"alice");
    /// assert_eq!(&b[u.host.clone()], b"2001:db8::1");
    /// assert_eq!(u.port, Some(5070));
    /// assert!(u.lr);
    /// let t = u.param(b, b"transport").unwrap();
    /// assert_eq!(&b[t.value.unwrap()], b"tcp");
    /// ```
    pub fn parse(buf: &[u8], span: Range<usize>) -> Result<Self, ParseError> {
        let bytes = buf
            .get(span.clone())
            .ok_or_else(|| err(span.start, "span outside the buffer"))?;
        if let Some(i) = bytes.iter().position(|&b| b <= b' ' || b == 0x7f) {
            return Err(err(span.start + i, "white space or control byte in URI"));
        }
        let Some(colon) = memchr::memchr(b':', bytes) else {
            return Err(err(span.start, "no scheme"));
        };
        let scheme = match slice(bytes, 0..colon) {
            s if eq_ic(s, b"sip") => Scheme::Sip,
            s if eq_ic(s, b"sips") => Scheme::Sips,
            s if eq_ic(s, b"tel") => Scheme::Tel,
            _ => return Err(err(span.start, "scheme is not sip, sips or tel")),
        };
        let rest = span.start + colon + 1;
        if scheme == Scheme::Tel {
            return Ok(Self::tel(buf, span, rest));
        }
        let (user, password, h0) = match memchr::memchr(b'@', slice(buf, rest..span.end)) {
            Some(a) => {
                let at = rest + a;
                let ui = slice(buf, rest..at);
                let (user, password) = match memchr::memchr(b':', ui) {
                    Some(c) => (rest..rest + c, Some(rest + c + 1..at)),
                    None => (rest..at, None),
                };
                if user.is_empty() {
                    return Err(err(rest, "empty user part before '@'"));
                }
                (Some(user), password, at + 1)
            }
            None => (None, None, rest),
        };
        let tail = slice(buf, h0..span.end);
        let hp_end = h0
            + tail
                .iter()
                .position(|&b| b == b';' || b == b'?')
                .unwrap_or(tail.len());
        let (host, port) = hostport(buf, h0..hp_end, err)?;
        let q = memchr::memchr(b'?', slice(buf, hp_end..span.end)).map(|q| hp_end + q);
        let params = hp_end..q.unwrap_or(span.end);
        let headers = q.map(|q| q + 1..span.end);
        let mut uri = Self {
            scheme,
            span,
            user,
            password,
            host,
            host_port: h0..hp_end,
            port,
            params,
            headers,
            lr: false,
        };
        uri.lr = uri.param(buf, b"lr").is_some();
        Ok(uri)
    }

    fn tel(buf: &[u8], span: Range<usize>, rest: usize) -> Self {
        let tail = slice(buf, rest..span.end);
        let n_end = rest + memchr::memchr(b';', tail).unwrap_or(tail.len());
        let mut uri = Self {
            scheme: Scheme::Tel,
            user: Some(rest..n_end),
            password: None,
            host: n_end..n_end,
            host_port: n_end..n_end,
            port: None,
            params: n_end..span.end,
            headers: None,
            lr: false,
            span,
        };
        uri.lr = uri.param(buf, b"lr").is_some();
        uri
    }

    /// The URI parameters in order (`name[=value]`, split at `;`; empty
    /// segments skipped).
    pub fn params<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = Param> + 'b {
        let base = self.params.start;
        slice(buf, self.params.clone())
            .split(|&b| b == b';')
            .scan(base, |pos, seg| {
                let start = *pos;
                *pos += seg.len() + 1;
                Some((start, seg))
            })
            .filter(|(_, seg)| !seg.is_empty())
            .map(|(start, seg)| match memchr::memchr(b'=', seg) {
                Some(e) => Param {
                    name: start..start + e,
                    value: Some(start + e + 1..start + seg.len()),
                },
                None => Param {
                    name: start..start + seg.len(),
                    value: None,
                },
            })
    }

    /// The first parameter named `name` (case-insensitive).
    pub fn param(&self, buf: &[u8], name: &[u8]) -> Option<Param> {
        self.params(buf)
            .find(|p| eq_ic(slice(buf, p.name.clone()), name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &[u8]) -> Result<Uri, ParseError> {
        Uri::parse(s, 0..s.len())
    }

    #[test]
    fn tel_uri() {
        let s = b"tel:+1-201-555-0123;phone-context=example.com";
        let u = uri(s).unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(&s[u.user.clone().unwrap()], b"+1-201-555-0123");
        assert!(u.host.is_empty());
        let pc = u.param(s, b"PHONE-CONTEXT").unwrap();
        assert_eq!(&s[pc.value.unwrap()], b"example.com");
    }

    #[test]
    fn unusual_user_parts() {
        // RFC 4475 intmeth and semiuri: ';', '?', ',' in the user part.
        let s = b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = uri(s).unwrap();
        assert_eq!(
            &s[u.user.clone().unwrap()],
            b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        );
        assert_eq!(&s[u.host.clone()], b"example.com");
        assert!(u.password.is_some());
        let s = b"sip:user;par=u%40example.net@example.com";
        let u = uri(s).unwrap();
        assert_eq!(&s[u.user.clone().unwrap()], b"user;par=u%40example.net");
        assert_eq!(u.params, s.len()..s.len());
    }

    #[test]
    fn params_headers_and_bare_v6() {
        let s = b"SIP:user@example.com?Route=%3Csip:example.com%3E";
        let u = uri(s).unwrap();
        assert_eq!(
            &s[u.headers.clone().unwrap()],
            b"Route=%3Csip:example.com%3E"
        );
        assert_eq!(u.params.len(), 0);
        let s = b"sip:services.example.com;lr;unknownwith=value;unknown-no-value";
        let u = uri(s).unwrap();
        assert!(u.lr);
        let names: Vec<&[u8]> = u.params(s).map(|p| &s[p.name]).collect();
        assert_eq!(names, [&b"lr"[..], b"unknownwith", b"unknown-no-value"]);
        let s = b"sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060";
        let u = uri(s).unwrap();
        assert_eq!(&s[u.host.clone()], b"fec0:0:0:0:216:d3ff:fe0d:22c");
        assert_eq!(u.port, Some(5060));
        assert_eq!(
            &s[u.host_port.clone()],
            b"fec0:0:0:0:216:d3ff:fe0d:22c:5060"
        );
    }

    #[test]
    fn malformed_uris() {
        for bad in [
            &b"nobodyKnowsThisScheme:totallyopaquecontent"[..],
            b"sip:",
            b"sip:@host",
            b"sip:user@",
            b"sip:host:port",
            b"sip:a b",
            b"<sip:a>",
            b"noscheme",
        ] {
            assert!(uri(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(Uri::parse(b"sip:a", 0..9).is_err());
    }
}
