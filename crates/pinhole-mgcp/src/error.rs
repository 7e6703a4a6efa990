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
