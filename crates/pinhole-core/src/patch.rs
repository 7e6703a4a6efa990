//! Byte-faithful rewriting: a [`Patch`] is a list of edits — replace this
//! byte range of the original message with these bytes — and applying it
//! copies every other byte unchanged. Every ALG (SDP, SIP, MGCP, H.248,
//! H.323) locates spans and records edits here; none re-serialises a message.
//!
//! ```
//! use pinhole_core::patch::Patch;
//!
//! let msg = b"c=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
//! let mut p = Patch::new();
//! p.replace(9..17, b"203.0.113.10");
//! p.replace_fmt(27..31, format_args!("{}", 40_000));
//! assert_eq!(
//!     p.apply(msg).unwrap(),
//!     b"c=IN IP4 203.0.113.10\r\nm=audio 40000 RTP/AVP 0\r\n".to_vec()
//! );
//! // An empty patch is the identity.
//! assert_eq!(Patch::new().apply(msg).unwrap(), msg.to_vec());
//! ```

use std::fmt::{self, Write as _};
use std::ops::Range;

/// Why a patch could not be applied.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// An edit reaches past the end of the message.
    #[error("edit {start}..{end} is outside the {len}-byte message")]
    OutOfBounds {
        /// Edit start.
        start: usize,
        /// Edit end.
        end: usize,
        /// Message length.
        len: usize,
    },
    /// Two edits touch the same bytes.
    #[error("edits {a:?} and {b:?} overlap")]
    Overlap {
        /// The earlier edit.
        a: Range<usize>,
        /// The later one.
        b: Range<usize>,
    },
}

impl PatchError {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OutOfBounds { .. } => "out_of_bounds",
            Self::Overlap { .. } => "overlap",
        }
    }
}

/// One edit: the original range and where its replacement sits in the
/// patch's byte arena.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Edit {
    span: Range<usize>,
    with: Range<usize>,
    /// Order of recording, so inserts at one position keep their order.
    seq: u32,
}

/// A set of edits to one message. Replacement bytes live in one arena, so a
/// patch costs two allocations however many edits it holds, and none when
/// reused after [`Patch::clear`].
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Patch {
    edits: Vec<Edit>,
    bytes: Vec<u8>,
}

impl Patch {
    /// An empty patch (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Forgets every edit, keeping the allocations.
    pub fn clear(&mut self) {
        self.edits.clear();
        self.bytes.clear();
    }

    /// Replaces `span` of the original with `with`.
    pub fn replace(&mut self, span: Range<usize>, with: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(with);
        self.push(span, start);
    }

    /// Replaces `span` with formatted text, written straight into the arena
    /// (no temporary string).
    pub fn replace_fmt(&mut self, span: Range<usize>, args: fmt::Arguments<'_>) {
        let start = self.bytes.len();
        let mut w = Arena(&mut self.bytes);
        // Writing into a Vec cannot fail; a Display impl that errors leaves
        // what it wrote so far, which is the most faithful outcome.
        let _ = w.write_fmt(args);
        self.push(span, start);
    }

    /// Replaces `span` with the decimal digits of `n`: what
    /// `replace_fmt(span, format_args!("{n}"))` writes, without the
    /// formatting machinery (ports and lengths are most of an ALG's edits).
    pub fn replace_int(&mut self, span: Range<usize>, n: u64) {
        let start = self.bytes.len();
        push_int(&mut self.bytes, n);
        self.push(span, start);
    }

    /// Inserts `with` before byte `at` of the original.
    pub fn insert(&mut self, at: usize, with: &[u8]) {
        self.replace(at..at, with);
    }

    /// Deletes `span` of the original.
    pub fn delete(&mut self, span: Range<usize>) {
        self.replace(span, b"");
    }

    /// Adds every edit of `other`, its spans moved by `offset` (for a patch
    /// of a part, such as an SDP body inside a SIP message).
    pub fn extend_shifted(&mut self, other: &Self, offset: usize) {
        for e in &other.edits {
            let with = &other.bytes[e.with.clone()];
            let span = e.span.start + offset..e.span.end + offset;
            let start = self.bytes.len();
            self.bytes.extend_from_slice(with);
            self.push(span, start);
        }
    }

    /// The edits in recording order: original range and replacement bytes.
    pub fn edits(&self) -> impl Iterator<Item = (Range<usize>, &[u8])> + '_ {
        self.edits
            .iter()
            .map(|e| (e.span.clone(), &self.bytes[e.with.clone()]))
    }

    /// How many bytes the patch adds (negative: removes) overall.
    pub fn delta(&self) -> isize {
        self.edits
            .iter()
            .map(|e| e.with.len() as isize - e.span.len() as isize)
            .sum()
    }

    /// The change in length inside `range` of the original: what an edit
    /// inside a body does to that body's Content-Length.
    pub fn delta_within(&self, range: Range<usize>) -> isize {
        self.edits
            .iter()
            .filter(|e| e.span.start >= range.start && e.span.end <= range.end)
            .map(|e| e.with.len() as isize - e.span.len() as isize)
            .sum()
    }

    /// Applies the patch to `src`, returning the new message.
    pub fn apply(&self, src: &[u8]) -> Result<Vec<u8>, PatchError> {
        let mut out = Vec::new();
        self.apply_into(src, &mut out)?;
        Ok(out)
    }

    /// Applies the patch to `src`, appending the new message to `out`. On an
    /// error `out` is left as it was.
    pub fn apply_into(&self, src: &[u8], out: &mut Vec<u8>) -> Result<(), PatchError> {
        // Edits are usually recorded in order; sorting a handful is cheap and
        // the common already-sorted case allocates nothing.
        let mut order: smallvec_lite::Order = smallvec_lite::Order::new(self.edits.len());
        for i in 0..self.edits.len() {
            order.push(i);
        }
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.edits[a], &self.edits[b]);
            (x.span.start, x.span.end, x.seq).cmp(&(y.span.start, y.span.end, y.seq))
        });
        let mut prev: Option<&Edit> = None;
        for &i in order.as_slice() {
            let e = &self.edits[i];
            if e.span.start > e.span.end || e.span.end > src.len() {
                return Err(PatchError::OutOfBounds {
                    start: e.span.start,
                    end: e.span.end,
                    len: src.len(),
                });
            }
            if let Some(p) = prev
                && e.span.start < p.span.end
            {
                return Err(PatchError::Overlap {
                    a: p.span.clone(),
                    b: e.span.clone(),
                });
            }
            prev = Some(e);
        }
        let total = (src.len() as isize + self.delta()).max(0) as usize;
        out.reserve(total);
        let mut at = 0;
        for &i in order.as_slice() {
            let e = &self.edits[i];
            out.extend_from_slice(&src[at..e.span.start]);
            out.extend_from_slice(&self.bytes[e.with.clone()]);
            at = e.span.end;
        }
        out.extend_from_slice(&src[at..]);
        Ok(())
    }

    fn push(&mut self, span: Range<usize>, start: usize) {
        let seq = self.edits.len() as u32;
        self.edits.push(Edit {
            span,
            with: start..self.bytes.len(),
            seq,
        });
    }
}

/// Appends the decimal digits of `n`.
fn push_int(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is below 10: the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

struct Arena<'a>(&'a mut Vec<u8>);

impl fmt::Write for Arena<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A tiny index buffer: up to 16 edits sort on the stack.
mod smallvec_lite {
    pub(super) enum Order {
        Inline([usize; 16], usize),
        Heap(Vec<usize>),
    }

    impl Order {
        pub(super) fn new(n: usize) -> Self {
            if n <= 16 {
                Self::Inline([0; 16], 0)
            } else {
                Self::Heap(Vec::with_capacity(n))
            }
        }

        pub(super) fn push(&mut self, v: usize) {
            match self {
                Self::Inline(a, n) => {
                    a[*n] = v;
                    *n += 1;
                }
                Self::Heap(v2) => v2.push(v),
            }
        }

        pub(super) fn sort_by(&mut self, f: impl FnMut(&usize, &usize) -> std::cmp::Ordering) {
            match self {
                Self::Inline(a, n) => a[..*n].sort_by(f),
                Self::Heap(v) => v.sort_by(f),
            }
        }

        pub(super) fn as_slice(&self) -> &[usize] {
            match self {
                Self::Inline(a, n) => &a[..*n],
                Self::Heap(v) => v,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edits_apply_in_position_order_whatever_the_recording_order() {
        let mut p = Patch::new();
        p.replace(6..11, b"there");
        p.insert(0, b">> ");
        p.delete(5..6);
        assert_eq!(p.apply(b"hello world").unwrap(), b">> hellothere");
        assert_eq!(p.delta(), 2);
    }

    #[test]
    fn inserts_at_one_position_keep_their_order() {
        let mut p = Patch::new();
        p.insert(3, b"1");
        p.insert(3, b"2");
        p.replace(3..4, b"X");
        assert_eq!(p.apply(b"abcdef").unwrap(), b"abc12Xef");
    }

    #[test]
    fn overlapping_and_out_of_bounds_edits_are_refused() {
        let mut p = Patch::new();
        p.replace(2..5, b"x");
        p.replace(4..6, b"y");
        assert_eq!(
            p.apply(b"0123456789"),
            Err(PatchError::Overlap { a: 2..5, b: 4..6 })
        );
        let mut q = Patch::new();
        q.replace(8..12, b"z");
        assert!(matches!(
            q.apply(b"0123456789"),
            Err(PatchError::OutOfBounds { len: 10, .. })
        ));
        let mut r = Patch::new();
        r.replace(2..5, b"x");
        r.insert(3, b"y");
        assert!(matches!(
            r.apply(b"0123456789"),
            Err(PatchError::Overlap { .. })
        ));
    }

    #[test]
    fn shifted_parts_and_delta_within_a_body() {
        let mut body = Patch::new();
        body.replace(0..1, b"abc");
        let mut whole = Patch::new();
        whole.replace(0..2, b"H");
        whole.extend_shifted(&body, 5);
        assert_eq!(whole.apply(b"hh...x..").unwrap(), b"H...abc..");
        assert_eq!(whole.delta_within(5..8), 2);
        assert_eq!(whole.delta(), 1);
    }

    #[test]
    fn integer_edge_cases() {
        let mut p = Patch::new();
        p.replace_int(0..1, 0);
        p.replace_int(1..3, u64::MAX);
        assert_eq!(
            p.apply(b"xyz!").unwrap(),
            b"018446744073709551615!".to_vec()
        );
    }

    #[test]
    fn more_than_sixteen_edits_sort_on_the_heap() {
        let mut p = Patch::new();
        for i in (0..40).rev() {
            p.replace(i..i + 1, b"#");
        }
        assert_eq!(
            p.apply(&[b'.'; 41]).unwrap(),
            [&[b'#'; 40][..], b"."].concat()
        );
    }

    proptest! {
        #[test]
        fn numbers_are_written_as_display_writes_them(n in any::<u64>()) {
            let mut p = Patch::new();
            p.replace_int(1..2, n);
            prop_assert_eq!(p.apply(b"abc").unwrap(), format!("a{n}c").into_bytes());
        }

        #[test]
        fn bytes_outside_edits_are_untouched(
            src in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::btree_set(0usize..200, 0..12),
        ) {
            // Pairs of sorted cut points become disjoint spans.
            let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= src.len()).collect();
            let mut p = Patch::new();
            let mut spans = Vec::new();
            for pair in cuts.chunks(2) {
                if let [a, b] = *pair {
                    p.replace(a..b, b"<>");
                    spans.push(a..b);
                }
            }
            let out = p.apply(&src).unwrap();
            prop_assert_eq!(out.len() as isize, src.len() as isize + p.delta());
            // Rebuild by hand and compare.
            let mut expect = Vec::new();
            let mut at = 0;
            for s in &spans {
                expect.extend_from_slice(&src[at..s.start]);
                expect.extend_from_slice(b"<>");
                at = s.end;
            }
            expect.extend_from_slice(&src[at..]);
            prop_assert_eq!(out, expect);
        }
    }
}
