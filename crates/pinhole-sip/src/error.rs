//! [`ParseError`]: why a message, a header value or a stream could not be
//! tokenized. Every variant carries the byte offset where the problem was
//! found and a short reason; none quotes the message.

/// Why input could not be parsed. `at` is a byte offset into the buffer
/// that was parsed (the whole message, or the stream for [`crate::frame`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input ends before a complete start line (no line end).
    #[error("truncated at byte {at}: {reason}")]
    Truncated {
        /// Where the missing part should be.
        at: usize,
        /// What is missing.
        reason: &'static str,
    },
    /// The request line or status line is malformed (RFC 3261 §7.1, §7.2;
    /// RFC 4475 §3.1.2.7–3.1.2.10).
    #[error("bad start line at byte {at}: {reason}")]
    StartLine {
        /// Offset of the offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The status code is not three digits in 100..=699 (RFC 4475 §3.1.2.19).
    #[error("bad status code at byte {at}")]
    StatusCode {
        /// Offset of the code.
        at: usize,
    },
    /// A header line is malformed (no name, no colon).
    #[error("bad header at byte {at}: {reason}")]
    Header {
        /// Offset of the header line.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Content-Length is not a number, too large, or given twice
    /// (RFC 4475 §3.1.2.3, §3.3.9).
    #[error("bad Content-Length at byte {at}: {reason}")]
    ContentLength {
        /// Offset of the header value.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Content-Length promises more bytes than follow the header section
    /// (RFC 4475 §3.1.2.2).
    #[error("Content-Length at byte {at} declares {declared} body bytes but {available} follow")]
    BodyTruncated {
        /// Offset of the Content-Length value.
        at: usize,
        /// The declared length.
        declared: u64,
        /// Bytes present after the blank line.
        available: usize,
    },
    /// CSeq is malformed or its number overflows 32 bits (RFC 4475 §3.1.2.4,
    /// §3.1.2.5).
    #[error("bad CSeq at byte {at}: {reason}")]
    CSeq {
        /// Offset of the header value.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5;
    /// RFC 4475 §3.1.2.17, §3.1.2.18).
    #[error("CSeq method at byte {at} does not match the request method")]
    CSeqMethodMismatch {
        /// Offset of the CSeq method.
        at: usize,
    },
    /// A Via header value is malformed (RFC 3261 §20.42; RFC 4475 §3.1.2.1).
    #[error("bad Via at byte {at}: {reason}")]
    Via {
        /// Offset of the offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A URI is malformed or of a scheme [`crate::Uri`] does not parse.
    #[error("bad URI at byte {at}: {reason}")]
    Uri {
        /// Offset of the offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name-addr / addr-spec list is malformed (RFC 3261 §20.10;
    /// RFC 4475 §3.1.2.13–3.1.2.15).
    #[error("bad name-addr at byte {at}: {reason}")]
    NameAddr {
        /// Offset of the offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header value that must be a number is not one, or is out of range.
    #[error("bad number at byte {at}: {reason}")]
    Number {
        /// Offset of the header value.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A multipart body is malformed (RFC 2046 §5.1).
    #[error("bad multipart body at byte {at}: {reason}")]
    Multipart {
        /// Offset of the offending element.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A stream message has no Content-Length (RFC 3261 §18.3 requires one).
    #[error("stream message at byte {at} has no Content-Length")]
    MissingContentLength {
        /// Offset of the message start.
        at: usize,
    },
    /// A stream message's header section, or its body, is larger than this
    /// crate accepts ([`crate::MAX_HEADER_BYTES`], [`crate::MAX_STREAM_BODY`]).
    #[error("stream message at byte {at} exceeds the {limit}-byte limit")]
    TooLarge {
        /// Offset of the message start.
        at: usize,
        /// The limit.
        limit: usize,
    },
}

impl ParseError {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::StartLine { .. } => "bad_start_line",
            Self::StatusCode { .. } => "bad_status_code",
            Self::Header { .. } => "bad_header",
            Self::ContentLength { .. } => "bad_content_length",
            Self::BodyTruncated { .. } => "body_truncated",
            Self::CSeq { .. } => "bad_cseq",
            Self::CSeqMethodMismatch { .. } => "cseq_method_mismatch",
            Self::Via { .. } => "bad_via",
            Self::Uri { .. } => "bad_uri",
            Self::NameAddr { .. } => "bad_name_addr",
            Self::Number { .. } => "bad_number",
            Self::Multipart { .. } => "bad_multipart",
            Self::MissingContentLength { .. } => "missing_content_length",
            Self::TooLarge { .. } => "too_large",
        }
    }

    /// The byte offset where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { at, .. }
            | Self::StartLine { at, .. }
            | Self::StatusCode { at }
            | Self::Header { at, .. }
            | Self::ContentLength { at, .. }
            | Self::BodyTruncated { at, .. }
            | Self::CSeq { at, .. }
            | Self::CSeqMethodMismatch { at }
            | Self::Via { at, .. }
            | Self::Uri { at, .. }
            | Self::NameAddr { at, .. }
            | Self::Number { at, .. }
            | Self::Multipart { at, .. }
            | Self::MissingContentLength { at }
            | Self::TooLarge { at, .. } => at,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use pinhole_core::patch::PatchError;
    use pinhole_sdp::SdpError;

    use super::ParseError;
    use crate::RewriteError;

    /// Labels of one enum, one per variant: distinct, non-empty snake_case.
    fn assert_distinct(labels: impl IntoIterator<Item = &'static str>) {
        let labels: Vec<&str> = labels.into_iter().collect();
        let set: HashSet<&str> = labels.iter().copied().collect();
        assert_eq!(set.len(), labels.len(), "repeated label in {labels:?}");
        let snake = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        assert!(labels.iter().all(|l| snake(l)), "{labels:?}");
    }

    #[test]
    fn every_variant_has_a_distinct_label() {
        let (at, reason) = (0, "x");
        let parse = [
            ParseError::Truncated { at, reason },
            ParseError::StartLine { at, reason },
            ParseError::StatusCode { at },
            ParseError::Header { at, reason },
            ParseError::ContentLength { at, reason },
            ParseError::BodyTruncated {
                at,
                declared: 2,
                available: 1,
            },
            ParseError::CSeq { at, reason },
            ParseError::CSeqMethodMismatch { at },
            ParseError::Via { at, reason },
            ParseError::Uri { at, reason },
            ParseError::NameAddr { at, reason },
            ParseError::Number { at, reason },
            ParseError::Multipart { at, reason },
            ParseError::MissingContentLength { at },
            ParseError::TooLarge { at, limit: 1 },
        ];
        assert_distinct(parse.iter().map(|e| e.kind()));
        let rewrite = [
            RewriteError::Sip(parse[0].clone()),
            RewriteError::Sdp(SdpError::NotSdp { line: 1, reason }),
            RewriteError::NoSdp,
            RewriteError::PortsExhausted,
            RewriteError::Patch(PatchError::Overlap { a: 0..2, b: 1..3 }),
        ];
        assert_distinct(rewrite.iter().map(|e| e.kind()));
    }
}
