//! The parser (skeleton: filled in next).

use crate::error::{Error, ErrorKind};
use crate::message::Message;

/// Parses one H.248 text message (one per datagram).
pub fn parse(d: &[u8]) -> Result<Message<'_>, Error> {
    let _ = d;
    Err(Error::new(1, ErrorKind::Empty))
}

/// The 1-based line of byte `at`: CRLF, LF and a bare CR each end a line.
pub(crate) fn line_at(d: &[u8], at: usize) -> usize {
    let head = d.get(..at.min(d.len())).unwrap_or_default();
    let lf = memchr::memchr_iter(b'\n', head).count();
    let bare_cr = memchr::memchr_iter(b'\r', head)
        .filter(|&i| d.get(i + 1) != Some(&b'\n'))
        .count();
    1 + lf + bare_cr
}

/// Most nested `{` and `[` in a message.
pub const MAX_DEPTH: usize = 32;
/// Most transactions, replies, pendings and acks in a message (and ack
/// ranges in one `TransactionResponseAck`).
pub const MAX_ITEMS: usize = 64;
/// Most actions in one transaction.
pub const MAX_ACTIONS: usize = 64;
/// Most commands in one action.
pub const MAX_COMMANDS: usize = 64;
/// Most termination ids of one command.
pub const MAX_TERMINATIONS: usize = 64;
/// Most streams in one Media descriptor.
pub const MAX_STREAMS: usize = 16;
/// Most SDP groups in one Local or Remote descriptor.
pub const MAX_GROUPS: usize = 16;
