//! `*( SEMI generic-param )` (RFC 3261 §25.1), shared by Via, name-addr,
//! and Content-Type values. LWS (including folds) is allowed around `;`
//! and `=`, as in RFC 4475 `wsinv`.

use std::ops::Range;

use crate::error::ParseError;
use crate::scan::{at, is_lws, skip_lws, skip_quoted, skip_token};

/// One `name[=value]`; a quoted value keeps its quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The parameter name.
    pub name: Range<usize>,
    /// The value, if `=` was present.
    pub value: Option<Range<usize>>,
}

/// Where a parameter list ends.
pub(crate) struct ParamsEnd {
    /// After the last parameter (before any trailing LWS).
    pub(crate) last: usize,
    /// The first non-LWS byte after the list (a `,`, something unexpected,
    /// or `end`).
    pub(crate) stop: usize,
}

/// Scans parameters from `i` (just after the element they follow) to at most
/// `end`, calling `f` for each one. `err` builds the error for this context.
pub(crate) fn scan(
    buf: &[u8],
    mut i: usize,
    end: usize,
    err: fn(usize, &'static str) -> ParseError,
    mut f: impl FnMut(Param),
) -> Result<ParamsEnd, ParseError> {
    let mut last = i;
    loop {
        let j = skip_lws(buf, i, end);
        if j >= end || at(buf, j) != Some(b';') {
            return Ok(ParamsEnd { last, stop: j });
        }
        let n0 = skip_lws(buf, j + 1, end);
        let n1 = skip_token(buf, n0, end);
        if n1 == n0 {
            return Err(err(n0, "empty or malformed parameter name"));
        }
        let k = skip_lws(buf, n1, end);
        if k < end && at(buf, k) == Some(b'=') {
            let v0 = skip_lws(buf, k + 1, end);
            let v1 = if at(buf, v0) == Some(b'"') && v0 < end {
                skip_quoted(buf, v0, end).ok_or_else(|| err(v0, "unterminated quoted string"))?
            } else {
                let mut v = v0;
                while v < end
                    && at(buf, v).is_some_and(|b| !is_lws(b) && !matches!(b, b';' | b',' | b'"'))
                {
                    v += 1;
                }
                v
            };
            if v1 == v0 {
                return Err(err(v0, "parameter without a value after '='"));
            }
            f(Param {
                name: n0..n1,
                value: Some(v0..v1),
            });
            last = v1;
            i = v1;
        } else {
            f(Param {
                name: n0..n1,
                value: None,
            });
            last = n1;
            i = n1;
        }
    }
}

/// Collects the parameters of a span already known to be well formed;
/// stops quietly at the first malformed one.
pub(crate) fn collect(buf: &[u8], span: Range<usize>) -> Vec<Param> {
    let mut out = Vec::new();
    let _ = scan(
        buf,
        span.start,
        span.end,
        |at, reason| ParseError::Header { at, reason },
        |p| out.push(p),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Run = Result<(Vec<(String, Option<String>)>, usize, usize), ParseError>;

    fn run(s: &[u8]) -> Run {
        let mut v = Vec::new();
        let e = scan(
            s,
            0,
            s.len(),
            |at, reason| ParseError::Via { at, reason },
            |p| {
                v.push((
                    String::from_utf8_lossy(&s[p.name]).into_owned(),
                    p.value.map(|r| String::from_utf8_lossy(&s[r]).into_owned()),
                ))
            },
        )?;
        Ok((v, e.last, e.stop))
    }

    #[test]
    fn lws_around_separators_and_quoted_values() {
        let (v, last, stop) = run(b" ;   tag    = 1918181833n ; lr;q=\"a;,b\" , next").unwrap();
        assert_eq!(
            v,
            vec![
                ("tag".into(), Some("1918181833n".into())),
                ("lr".into(), None),
                ("q".into(), Some("\"a;,b\"".into())),
            ]
        );
        assert_eq!(last, 39);
        assert_eq!(stop, 40);
    }

    #[test]
    fn folded_value_and_errors() {
        let (v, _, _) = run(b"; branch=\r\n z9hG4bK30239").unwrap();
        assert_eq!(v[0].1.as_deref(), Some("z9hG4bK30239"));
        assert!(matches!(run(b";;"), Err(ParseError::Via { at: 1, .. })));
        assert!(run(b";a=").is_err());
        assert!(run(b";a=\"open").is_err());
        let (v, last, stop) = run(b"").unwrap();
        assert!(v.is_empty());
        assert_eq!((last, stop), (0, 0));
    }
}
