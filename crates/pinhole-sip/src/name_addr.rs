//! name-addr / addr-spec lists (RFC 3261 §20.10, §25.1) as used by From,
//! To, Contact, Route and Record-Route: display name, URI, parameters.

use std::ops::Range;

use crate::error::ParseError;
use crate::params::{self, Param};
use crate::scan::{at, eq_ic, is_lws, is_token, skip_lws, skip_quoted, slice, trim};

/// One element of a name-addr list. Spans are byte offsets into the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The whole element, without surrounding white space.
    pub span: Range<usize>,
    /// The display name as written (quotes included), if any.
    pub display: Option<Range<usize>>,
    /// The URI: inside `<>` when present; `*` for `Contact: *`.
    pub uri: Range<usize>,
    /// Whether the URI is enclosed in `<>`.
    pub bracketed: bool,
    /// The header parameters after the URI, from the first `;` to the end
    /// of the last one (empty, just after the URI, if none).
    pub params: Range<usize>,
}

fn err(at: usize, reason: &'static str) -> ParseError {
    ParseError::NameAddr { at, reason }
}

impl NameAddr {
    /// The header parameters in order (quoted values keep their quotes).
    pub fn params(&self, buf: &[u8]) -> Vec<Param> {
        params::collect(buf, self.params.clone())
    }

    /// The first header parameter named `name` (case-insensitive).
    pub fn param(&self, buf: &[u8], name: &[u8]) -> Option<Param> {
        self.params(buf)
            .into_iter()
            .find(|p| eq_ic(slice(buf, p.name.clone()), name))
    }

    /// The `tag` parameter's value.
    pub fn tag(&self, buf: &[u8]) -> Option<Range<usize>> {
        self.param(buf, b"tag").and_then(|p| p.value)
    }
}

/// Checks an addr-spec written without `<>`: RFC 3261 §20.10 requires the
/// brackets when the URI holds `,`, `?` or `;` (the latter two reach here).
fn check_addr_spec(buf: &[u8], uri: Range<usize>) -> Result<(), ParseError> {
    let b = slice(buf, uri.clone());
    if b == b"*" {
        return Ok(());
    }
    if let Some(i) = b.iter().position(|&c| is_lws(c) || c == b'?' || c == b'>') {
        return Err(err(
            uri.start + i,
            "addr-spec with white space, '?' or '>' needs <>",
        ));
    }
    let scheme_ok = memchr::memchr(b':', b).is_some_and(|c| {
        c > 0
            && b.first().is_some_and(u8::is_ascii_alphabetic)
            && b.iter()
                .take(c)
                .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'+' | b'-' | b'.'))
    });
    if !scheme_ok {
        return Err(err(uri.start, "addr-spec has no URI scheme"));
    }
    Ok(())
}

/// Parses a comma-separated list of name-addr / addr-spec elements with
/// their parameters in `value` of `buf`. Commas inside quotes and `<>` do
/// not split.
///
/// ```
/// let v = br#""Bob, Jr." <sip:bob@example.com;lr>;tag=a1, sip:carol@example.com;q=0.5"#;
/// let list = pinhole_sip::name_addrs(v, 0..v.len()).unwrap();
/// assert_eq!(list.len(), 2);
/// assert_eq!(&v[list[0].uri.clone()], b"sip:bob@example.com;lr");
/// assert_eq!(&v[list[0].tag(v).unwrap()], b"a1");
/// assert_eq!(&v[list[1].uri.clone()], b"sip:carol@example.com");
/// ```
pub fn name_addrs(buf: &[u8], value: Range<usize>) -> Result<Vec<NameAddr>, ParseError> {
    let end = value.end.min(buf.len());
    let mut out = Vec::new();
    let mut i = value.start;
    loop {
        let s = skip_lws(buf, i, end);
        if s >= end {
            return Err(err(s, "empty list element"));
        }
        let (display, uri, bracketed, after) = if at(buf, s) == Some(b'"') {
            let q = skip_quoted(buf, s, end).ok_or_else(|| err(s, "unterminated quoted string"))?;
            let lt = skip_lws(buf, q, end);
            if lt >= end || at(buf, lt) != Some(b'<') {
                return Err(err(lt, "quoted display name not followed by '<'"));
            }
            let (uri, after) = angle(buf, lt, end)?;
            (Some(s..q), uri, true, after)
        } else {
            let mut k = s;
            while k < end && at(buf, k).is_some_and(|b| !matches!(b, b'<' | b',' | b';' | b'"')) {
                k += 1;
            }
            if k < end && at(buf, k) == Some(b'<') {
                let d = trim(buf, s..k);
                if !slice(buf, d.clone())
                    .iter()
                    .all(|&b| is_token(b) || is_lws(b))
                {
                    return Err(err(
                        d.start,
                        "display name is neither tokens nor a quoted string",
                    ));
                }
                let (uri, after) = angle(buf, k, end)?;
                ((!d.is_empty()).then_some(d), uri, true, after)
            } else if k < end && at(buf, k) == Some(b'"') {
                return Err(err(k, "quote inside an addr-spec"));
            } else {
                let uri = trim(buf, s..k);
                check_addr_spec(buf, uri.clone())?;
                let after = uri.end;
                (None, uri, false, after)
            }
        };
        let pe = params::scan(buf, after, end, err, |_| {})?;
        let params = if pe.last > after {
            skip_lws(buf, after, end)..pe.last
        } else {
            after..after
        };
        out.push(NameAddr {
            span: s..pe.last,
            display,
            uri,
            bracketed,
            params,
        });
        if pe.stop >= end {
            return Ok(out);
        }
        if at(buf, pe.stop) != Some(b',') {
            return Err(err(pe.stop, "expected ',' or ';' after an element"));
        }
        i = pe.stop + 1;
    }
}

/// `<uri>` at `lt`: returns the URI span and the position after `>`.
fn angle(buf: &[u8], lt: usize, end: usize) -> Result<(Range<usize>, usize), ParseError> {
    let inner = slice(buf, lt + 1..end);
    let Some(gt) = memchr::memchr(b'>', inner).map(|g| lt + 1 + g) else {
        return Err(err(lt, "'<' without '>'"));
    };
    let uri = lt + 1..gt;
    if uri.is_empty() {
        return Err(err(lt, "empty <>"));
    }
    // RFC 4475 §3.1.2.14 (badaspec): no white space inside the brackets.
    if let Some(i) = slice(buf, uri.clone()).iter().position(|&b| is_lws(b)) {
        return Err(err(lt + 1 + i, "white space inside <>"));
    }
    Ok((uri, gt + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[u8]) -> Result<Vec<NameAddr>, ParseError> {
        name_addrs(s, 0..s.len())
    }

    #[test]
    fn wsinv_from_and_contact() {
        let s =
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8";
        let l = list(s).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            &s[l[0].display.clone().unwrap()],
            b"\"J Rosenberg \\\\\\\"\""
        );
        assert_eq!(&s[l[0].uri.clone()], b"sip:jdrosen@example.com");
        assert_eq!(&s[l[0].tag(s).unwrap()], b"98asjd8");
        assert_eq!(l[0].span, 0..s.len());
        let s = b"\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33";
        let l = list(s).unwrap();
        let p = l[0].params(s);
        assert_eq!(p.len(), 3);
        assert_eq!(&s[p[0].value.clone().unwrap()], b"newvalue");
        assert_eq!(p[1].value, None);
        assert_eq!(&s[p[2].value.clone().unwrap()], b"0.33");
        assert_eq!(&s[l[0].params.clone()][..1], b";");
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let s = b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n";
        let l = list(s).unwrap();
        assert!(!l[0].bracketed);
        assert_eq!(&s[l[0].uri.clone()], b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(&s[l[0].tag(s).unwrap()], b"1918181833n");
        let s = b"caller<sip:caller@example.com>;tag=323";
        let l = list(s).unwrap();
        assert_eq!(&s[l[0].display.clone().unwrap()], b"caller");
        let s = b"*";
        assert_eq!(list(s).unwrap()[0].uri, 0..1);
    }

    #[test]
    fn commas_inside_quotes_and_brackets_do_not_split() {
        let s = b"\"a, b\" <sip:x@y>, <sip:1,2@h;lr>;p=\"q,r\" , tel:+123";
        let l = list(s).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(&s[l[1].uri.clone()], b"sip:1,2@h;lr");
        assert_eq!(&s[l[1].param(s, b"P").unwrap().value.unwrap()], b"\"q,r\"");
        assert_eq!(&s[l[2].uri.clone()], b"tel:+123");
    }

    #[test]
    fn rfc4475_invalid_elements() {
        for bad in [
            // regbadct: '?' in an addr-spec
            &b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"[..],
            // badaspec: spaces inside <>
            b"\"Watson, Thomas\" < sip:t.watson@example.org >",
            // baddn: unquoted comma splits off a non-URI
            b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            // quotbal: unterminated quote
            b"\"Mr. J. User <sip:j.user@example.com>",
            // badinv01: empty parameters
            b"\"Joe\" <sip:joe@example.org>;;;;",
            b"",
            b"<sip:a@b",
            b"<>",
            b"sip:a@b,",
            b"sip:a@b x",
            b"\"x\" sip:a@b",
            b"a@b\"c",
        ] {
            assert!(list(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
