//! Parameter lines `Name: value` (RFC 3435 §3.2.2) and the values the ALG
//! reads: the response acknowledgement `K:` (§3.2.2.19).

use std::ops::RangeInclusive;

use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{digit1, space0};
use nom::combinator::{all_consuming, opt};
use nom::multi::separated_list1;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Offset, Parser};

use crate::error::ErrorKind;
use crate::head::{MAX_TRANSACTION_ID, Span};

/// One parameter line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param<'a> {
    /// The line (1-based, in the datagram).
    pub line: usize,
    /// The name as written (`C`, `rm`, `X-Foo`, `pkg/name`). Names compare
    /// without regard to letter case.
    pub name: &'a str,
    /// Where the name is.
    pub name_span: Span,
    /// The value, without the blanks after the colon and at the end of the
    /// line; may be empty.
    pub value: &'a str,
    /// Where the value is (empty, at the end of the line, when it is).
    pub value_span: Span,
}

impl Param<'_> {
    /// True when the parameter is called `name` (any letter case).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'+' | b'.')
}

/// Parses the parameter line `text`, at byte `base` of the datagram.
pub(crate) fn parse(text: &str, base: usize, line: usize) -> Result<Param<'_>, ErrorKind> {
    let bytes = text.as_bytes();
    let parsed: IResult<_, _, ()> = (take_while1(is_name_char), tag(":"), space0).parse(bytes);
    let Ok((value, (name, _, _))) = parsed else {
        return Err(ErrorKind::BadParameterLine(
            if bytes.first().is_some_and(|&c| is_name_char(c)) {
                "no colon after the name"
            } else {
                "no parameter name"
            },
        ));
    };
    let value_at = bytes.offset(value);
    let value_text = text
        .get(value_at..)
        .unwrap_or_default()
        .trim_end_matches([' ', '\t']);
    Ok(Param {
        line,
        name: text.get(..name.len()).unwrap_or_default(),
        name_span: base..base + name.len(),
        value: value_text,
        value_span: base + value_at..base + value_at + value_text.len(),
    })
}

/// The transaction ids a response acknowledgement `K:` confirms: a list of
/// ids and ranges `first-last` (§3.2.2.19), e.g. `6234-6255, 6257`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseAck {
    ranges: Vec<RangeInclusive<u32>>,
}

impl ResponseAck {
    /// Reads a `K:` value; an empty value confirms nothing.
    pub fn parse(value: &str) -> Result<Self, ErrorKind> {
        let v = value.trim_matches([' ', '\t']).as_bytes();
        if v.is_empty() {
            return Ok(Self::default());
        }
        let range = (
            digit1,
            opt(preceded(delimited(space0, tag("-"), space0), digit1)),
        );
        let mut list = all_consuming(separated_list1(delimited(space0, tag(","), space0), range));
        let parsed: IResult<_, _, ()> = list.parse(v);
        let Ok((_, items)) = parsed else {
            return Err(ErrorKind::BadResponseAck("not a list of ids and ranges"));
        };
        let id = |d: &[u8]| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|n| (1..=MAX_TRANSACTION_ID).contains(n))
                .ok_or(ErrorKind::BadResponseAck("transaction id out of range"))
        };
        let mut ranges = Vec::with_capacity(items.len());
        for (first, last) in items {
            let first = id(first)?;
            let last = last.map_or(Ok(first), id)?;
            if last < first {
                return Err(ErrorKind::BadResponseAck("a range ends before it starts"));
            }
            ranges.push(first..=last);
        }
        Ok(Self { ranges })
    }

    /// The ids and ranges in the order written (a single id is `n..=n`).
    pub fn ranges(&self) -> &[RangeInclusive<u32>] {
        &self.ranges
    }

    /// True when `transaction_id` is confirmed.
    pub fn contains(&self, transaction_id: u32) -> bool {
        self.ranges.iter().any(|r| r.contains(&transaction_id))
    }

    /// How many transaction ids are confirmed.
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::from(r.end() - r.start()) + 1)
            .sum()
    }

    /// True when nothing is confirmed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lines() {
        let p = parse("C: A3C47F21456789F0  ", 10, 2).unwrap();
        assert_eq!((p.name, p.value), ("C", "A3C47F21456789F0"));
        assert_eq!((p.name_span, p.value_span), (10..11, 13..29));
        let p = parse("I:", 0, 1).unwrap();
        assert_eq!((p.value, p.value_span), ("", 2..2));
        let p = parse("X-Foo/bar:\tv w", 0, 1).unwrap();
        assert_eq!((p.name, p.value), ("X-Foo/bar", "v w"));
        assert!(p.is("x-foo/BAR"));
        assert_eq!(
            parse("C A", 0, 1),
            Err(ErrorKind::BadParameterLine("no colon after the name"))
        );
        assert_eq!(
            parse(": x", 0, 1),
            Err(ErrorKind::BadParameterLine("no parameter name"))
        );
    }

    #[test]
    fn response_acks() {
        let k = ResponseAck::parse("6234-6255, 6257,19030 - 19044").unwrap();
        assert_eq!(k.ranges(), [6234..=6255, 6257..=6257, 19030..=19044]);
        assert!(k.contains(6240) && k.contains(6257) && !k.contains(6256));
        assert_eq!(k.count(), 22 + 1 + 15);
        assert!(ResponseAck::parse(" ").unwrap().is_empty());
        for bad in ["1-", "5-4", "0", "1000000000", "a", "1,,2", "1 2"] {
            assert!(ResponseAck::parse(bad).is_err(), "{bad}");
        }
    }
}
