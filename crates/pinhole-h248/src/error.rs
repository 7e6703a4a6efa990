//! [`Error`]: why a datagram could not be read or rewritten, with the
//! 1-based line of the datagram where the problem is. No variant quotes the
//! message.

use pinhole_core::patch::PatchError;
use pinhole_sdp::SdpError;

/// Why a datagram could not be parsed or rewritten. The line counts the
/// datagram's lines from 1; CRLF, LF and a bare CR each end one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct Error {
    line: usize,
    kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(line: usize, kind: ErrorKind) -> Self {
        Self { line, kind }
    }

    /// The offending line (1-based, in the datagram).
    pub fn line(&self) -> usize {
        self.line
    }

    /// A stable short label of what is wrong, for metrics and logs
    /// ([`ErrorKind::kind`]).
    pub fn kind(&self) -> &'static str {
        self.kind.kind()
    }

    /// What is wrong, as a value to match on.
    pub fn reason(&self) -> &ErrorKind {
        &self.kind
    }
}

/// What is wrong (see [`Error`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Nothing but white space, comments or NUL bytes.
    #[error("no message")]
    Empty,
    /// The message does not start with `MEGACO/N` or `!/N`.
    #[error("bad header: {0}")]
    BadHeader(&'static str),
    /// The message identifier (mId) is not `[IP]`, `<domain>` (each with
    /// an optional `:port`), `MTP{hex}` or a device name.
    #[error("bad message identifier: {0}")]
    BadMid(&'static str),
    /// Something other than what the grammar allows here; the text says
    /// what was expected.
    #[error("expected {0}")]
    Expected(&'static str),
    /// A transaction id is not a number in 0..=4294967295.
    #[error("bad transaction id")]
    BadTransactionId,
    /// A context id is not a number in 0..=4294967295, `-`, `$` or `*`.
    #[error("bad context id")]
    BadContextId,
    /// A stream id is not a number in 0..=65535.
    #[error("bad stream id")]
    BadStreamId,
    /// An error code is not one to four digits.
    #[error("bad error code")]
    BadErrorCode,
    /// A `TransactionResponseAck` range `a-b` with `a > b`, or a bad number.
    #[error("bad transaction response ack")]
    BadResponseAck,
    /// A quoted string or text token is not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// A `{`, `[` or `"` is not closed before the end of the datagram.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    /// More nested braces and brackets than [`crate::MAX_DEPTH`].
    #[error("nested too deeply")]
    TooDeep,
    /// More of something than its bound ([`crate::MAX_ITEMS`] and the other
    /// limits); the text names what.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// Bytes after the end of the message.
    #[error("bytes after the end of the message")]
    Trailing,
    /// A group that is not one of this message's SDP groups.
    #[error("not an SDP group of this message")]
    NotAGroup,
    /// No Local or Remote descriptor of the message holds an SDP group
    /// (from [`crate::rewrite_all`]).
    #[error("no SDP group")]
    NoSdp,
    /// The relay ports would run past 65535 (from [`crate::rewrite_all`]).
    #[error("the ports run past 65535")]
    PortsExhausted,
    /// A session description cannot be read or rewritten; the line is the
    /// datagram line of the SDP error.
    #[error("session description: {0}")]
    Sdp(SdpError),
    /// The edits could not be applied (a bug: they overlap).
    #[error("patch: {0}")]
    Patch(PatchError),
}

impl ErrorKind {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::BadHeader(_) => "bad_header",
            Self::BadMid(_) => "bad_mid",
            Self::Expected(_) => "syntax",
            Self::BadTransactionId => "bad_transaction_id",
            Self::BadContextId => "bad_context_id",
            Self::BadStreamId => "bad_stream_id",
            Self::BadErrorCode => "bad_error_code",
            Self::BadResponseAck => "bad_response_ack",
            Self::NotUtf8 => "not_utf8",
            Self::Unterminated(_) => "unterminated",
            Self::TooDeep => "too_deep",
            Self::TooMany(_) => "too_many",
            Self::Trailing => "trailing",
            Self::NotAGroup => "not_a_group",
            Self::NoSdp => "no_sdp",
            Self::PortsExhausted => "ports_exhausted",
            Self::Sdp(_) => "sdp",
            Self::Patch(_) => "patch",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use pinhole_core::patch::PatchError;
    use pinhole_sdp::SdpError;

    use super::{Error, ErrorKind};

    #[test]
    fn every_variant_has_a_distinct_snake_case_label() {
        let kinds = [
            ErrorKind::Empty,
            ErrorKind::BadHeader("x"),
            ErrorKind::BadMid("x"),
            ErrorKind::Expected("x"),
            ErrorKind::BadTransactionId,
            ErrorKind::BadContextId,
            ErrorKind::BadStreamId,
            ErrorKind::BadErrorCode,
            ErrorKind::BadResponseAck,
            ErrorKind::NotUtf8,
            ErrorKind::Unterminated("x"),
            ErrorKind::TooDeep,
            ErrorKind::TooMany("x"),
            ErrorKind::Trailing,
            ErrorKind::NotAGroup,
            ErrorKind::NoSdp,
            ErrorKind::PortsExhausted,
            ErrorKind::Sdp(SdpError::NotSdp {
                line: 1,
                reason: "x",
            }),
            ErrorKind::Patch(PatchError::Overlap { a: 0..2, b: 1..3 }),
        ];
        let labels: Vec<&str> = kinds.iter().map(ErrorKind::kind).collect();
        let set: HashSet<&str> = labels.iter().copied().collect();
        assert_eq!(set.len(), labels.len(), "repeated label in {labels:?}");
        for l in &labels {
            assert!(
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{l}"
            );
        }
        for k in &kinds {
            let e = Error::new(3, k.clone());
            assert_eq!(e.kind(), k.kind());
            assert_eq!(e.reason(), k);
            assert_eq!(e.line(), 3);
            assert!(e.to_string().starts_with("line 3: "), "{e}");
        }
    }
}
