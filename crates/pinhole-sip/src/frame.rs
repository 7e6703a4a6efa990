//! Stream framing (RFC 3261 §18.3): where one message ends in a TCP or TLS
//! byte stream, and the CRLF keepalives between messages (RFC 5626 §3.5.1).

use crate::error::ParseError;
use crate::header::{self, HeaderName, Step};
use crate::message::content_length_of;
use crate::scan::line_end;

/// Largest header section [`frame`] waits for (64 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Largest Content-Length [`frame`] accepts (1 MiB): a larger value would
/// make the caller buffer without bound.
pub const MAX_STREAM_BODY: usize = 1024 * 1024;

/// What starts a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// This many bytes of CR/LF keepalive to consume.
    Keepalive(usize),
    /// A whole message of this many bytes (headers and body).
    Message(usize),
}

/// Cuts the next frame from the front of a stream buffer.
///
/// Returns `Ok(Some(Frame::Keepalive(n)))` for leading CR/LF bytes,
/// `Ok(Some(Frame::Message(n)))` when a whole message (header section and
/// Content-Length body) is buffered, `Ok(None)` when more bytes are needed,
/// and an error for a stream that can never frame: no or invalid
/// Content-Length, a malformed header line, a header section over
/// [`MAX_HEADER_BYTES`] or a body over [`MAX_STREAM_BODY`]. After an error
/// the connection should be closed (RFC 4475 §3.3.9).
///
/// ```
/// use pinhole_sip::{frame, Frame};
/// let s = b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhiBYE";
/// assert_eq!(frame(s).unwrap(), Some(Frame::Keepalive(4)));
/// assert_eq!(frame(&s[4..]).unwrap(), Some(Frame::Message(35)));
/// assert_eq!(frame(&s[39..]).unwrap(), None);
/// ```
pub fn frame(stream: &[u8]) -> Result<Option<Frame>, ParseError> {
    let ka = stream
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if ka > 0 {
        return Ok(Some(Frame::Keepalive(ka)));
    }
    let Some((headers_end, body_start)) = blank_line(stream) else {
        if stream.len() > MAX_HEADER_BYTES {
            return Err(ParseError::TooLarge {
                at: 0,
                limit: MAX_HEADER_BYTES,
            });
        }
        return Ok(None);
    };
    if headers_end > MAX_HEADER_BYTES {
        return Err(ParseError::TooLarge {
            at: 0,
            limit: MAX_HEADER_BYTES,
        });
    }
    // The header section is complete: find its one Content-Length.
    let head = stream.get(..body_start).unwrap_or(stream);
    let mut p = line_end(head, 0).map_or(body_start, |(_, next)| next);
    let mut length = None;
    while let Step::Header(h) = header::step(head, p)? {
        if h.name == HeaderName::ContentLength {
            if length.is_some() {
                return Err(ParseError::ContentLength {
                    at: h.value.start,
                    reason: "given more than once",
                });
            }
            length = Some(content_length_of(head, &h)?);
        }
        p = h.line.end;
    }
    let Some(length) = length else {
        return Err(ParseError::MissingContentLength { at: 0 });
    };
    if length > MAX_STREAM_BODY {
        return Err(ParseError::TooLarge {
            at: 0,
            limit: MAX_STREAM_BODY,
        });
    }
    let total = body_start + length;
    Ok((stream.len() >= total).then_some(Frame::Message(total)))
}

/// The first empty line: where it starts and where the body starts.
fn blank_line(s: &[u8]) -> Option<(usize, usize)> {
    let window = s.get(..MAX_HEADER_BYTES + 4).unwrap_or(s);
    memchr::memchr_iter(b'\n', window).find_map(|lf| {
        match (window.get(lf + 1), window.get(lf + 2)) {
            (Some(b'\n'), _) => Some((lf + 1, lf + 2)),
            (Some(b'\r'), Some(b'\n')) => Some((lf + 1, lf + 3)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nhello";
    const BYE: &[u8] = b"BYE sip:b@example.com SIP/2.0\nl: 0\nCSeq: 2 BYE\n\n";

    #[test]
    fn two_messages_in_one_buffer() {
        let s = [INVITE, BYE].concat();
        assert_eq!(frame(&s).unwrap(), Some(Frame::Message(INVITE.len())));
        assert_eq!(
            frame(&s[INVITE.len()..]).unwrap(),
            Some(Frame::Message(BYE.len()))
        );
    }

    #[test]
    fn partial_messages_wait() {
        for cut in 1..INVITE.len() {
            assert_eq!(frame(&INVITE[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(frame(INVITE).unwrap(), Some(Frame::Message(INVITE.len())));
        assert_eq!(frame(b"").unwrap(), None);
    }

    #[test]
    fn keepalives() {
        assert_eq!(frame(b"\r\n\r\nINVITE").unwrap(), Some(Frame::Keepalive(4)));
        assert_eq!(frame(b"\r\n").unwrap(), Some(Frame::Keepalive(2)));
        assert_eq!(frame(b"\r").unwrap(), Some(Frame::Keepalive(1)));
    }

    #[test]
    fn unframeable_streams() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(
            frame(no_cl),
            Err(ParseError::MissingContentLength { at: 0 })
        );
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert!(matches!(frame(two), Err(ParseError::ContentLength { .. })));
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(frame(neg), Err(ParseError::ContentLength { .. })));
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2000000\r\n\r\n";
        assert!(matches!(frame(huge), Err(ParseError::TooLarge { .. })));
        let mut long = b"OPTIONS sip:a@b SIP/2.0\r\nX: ".to_vec();
        long.resize(MAX_HEADER_BYTES + 10, b'a');
        assert!(matches!(frame(&long), Err(ParseError::TooLarge { .. })));
        long.truncate(MAX_HEADER_BYTES - 10);
        assert_eq!(frame(&long).unwrap(), None);
    }
}
