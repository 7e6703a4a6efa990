//! [`Error`]: why a datagram could not be read, with the 1-based line of
//! the datagram where the problem is. No variant quotes the message.

use pinhole_sdp::SdpError;

/// Why a datagram, or a part of a message read on request, could not be
/// parsed. `line` counts the lines of the whole datagram from 1, across
/// piggybacked messages and their separators.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MGCP line {line}: {kind}")]
pub struct Error {
    /// The offending line (1-based, in the datagram).
    pub line: usize,
    /// What is wrong with it.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(line: usize, kind: ErrorKind) -> Self {
        Self { line, kind }
    }

    /// A stable short label of what is wrong, for metrics and logs: the
    /// field `kind`'s [`ErrorKind::kind`]. A method named `kind` would read
    /// as the field, hence `label`.
    pub fn label(&self) -> &'static str {
        self.kind.kind()
    }
}

/// What is wrong (see [`Error`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No message where one should be: an empty datagram, or nothing but a
    /// line end before the first line or between two separators.
    #[error("no message")]
    Empty,
    /// A line of the header section is not UTF-8 text (RFC 3435 §3.1).
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The command line does not have its four fields (verb, transaction
    /// id, endpoint, version), or has something after them.
    #[error("bad command line: {0}")]
    BadCommandLine(&'static str),
    /// The verb is not four letters or digits starting with a letter
    /// (RFC 3435 §3.2.1, Appendix A `MGCPVerb`).
    #[error("bad verb")]
    BadVerb,
    /// The transaction id is not a number in 1..=999999999 (§3.2.1).
    #[error("bad transaction id")]
    BadTransactionId,
    /// The endpoint name is not `local@domain[:port]` (§2.1.1, §3.2.1.3).
    #[error("bad endpoint name: {0}")]
    BadEndpoint(&'static str),
    /// The protocol version is not `MGCP <major>.<minor> [profile]` (§3.2.1.4).
    #[error("bad protocol version")]
    BadVersion,
    /// The response code is not three digits (§3.3).
    #[error("bad response code")]
    BadResponseCode,
    /// A line of the header section is not `Name: value` (§3.2.2).
    #[error("bad parameter line: {0}")]
    BadParameterLine(&'static str),
    /// The response acknowledgement `K:` is not a list of transaction ids
    /// and ranges `a-b` with `a <= b` (§3.2.2.19).
    #[error("bad response acknowledgement (K:): {0}")]
    BadResponseAck(&'static str),
    /// [`crate::Message::parse`] was given several piggybacked messages
    /// (§3.6): use [`crate::parse_datagram`].
    #[error("several piggybacked messages where one was expected")]
    Piggybacked,
    /// A rewrite of a message without a session description.
    #[error("the message has no session description")]
    NoSdp,
    /// The session description cannot be read or rewritten; the line is the
    /// datagram line of the SDP error.
    #[error("session description: {0}")]
    Sdp(SdpError),
}

impl ErrorKind {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotUtf8 => "not_utf8",
            Self::BadCommandLine(_) => "bad_command_line",
            Self::BadVerb => "bad_verb",
            Self::BadTransactionId => "bad_transaction_id",
            Self::BadEndpoint(_) => "bad_endpoint",
            Self::BadVersion => "bad_version",
            Self::BadResponseCode => "bad_response_code",
            Self::BadParameterLine(_) => "bad_parameter_line",
            Self::BadResponseAck(_) => "bad_response_ack",
            Self::Piggybacked => "piggybacked",
            Self::NoSdp => "no_sdp",
            Self::Sdp(_) => "sdp",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use pinhole_core::patch::PatchError;
    use pinhole_sdp::SdpError;

    use super::{Error, ErrorKind};
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
        let kinds = [
            ErrorKind::Empty,
            ErrorKind::NotUtf8,
            ErrorKind::BadCommandLine("x"),
            ErrorKind::BadVerb,
            ErrorKind::BadTransactionId,
            ErrorKind::BadEndpoint("x"),
            ErrorKind::BadVersion,
            ErrorKind::BadResponseCode,
            ErrorKind::BadParameterLine("x"),
            ErrorKind::BadResponseAck("x"),
            ErrorKind::Piggybacked,
            ErrorKind::NoSdp,
            ErrorKind::Sdp(SdpError::NotSdp {
                line: 1,
                reason: "x",
            }),
        ];
        assert_distinct(kinds.iter().map(|k| k.kind()));
        for k in &kinds {
            assert_eq!(Error::new(3, k.clone()).label(), k.kind());
        }
        let rewrite = [
            RewriteError::Mgcp(Error::new(1, ErrorKind::Empty)),
            RewriteError::NoSdp,
            RewriteError::PortsExhausted,
            RewriteError::Patch(PatchError::Overlap { a: 0..2, b: 1..3 }),
        ];
        assert_distinct(rewrite.iter().map(|e| e.kind()));
    }
}
