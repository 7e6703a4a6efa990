//! Stream framing (RFC 3261 §18.3): where one message ends in a TCP or TLS
//! byte stream, and the CRLF keepalives between messages (RFC 5626 §3.5.1).

use pinhole_core::framing::{Frame as CoreFrame, FrameError};

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

/// [`frame`] as a [`pinhole_core::framing::ProtocolFramer`], for a stream
/// that carries Pinhole's control messages beside SIP
/// (`pinhole_core::framing::next(buf, Some(stream_frame))`).
///
/// A header section or body over the limits is
/// [`FrameError::TooLarge`]; every other [`ParseError`] is
/// [`FrameError::Malformed`] at the same offset.
///
/// ```
/// use pinhole_core::framing::{Frame, next};
/// use pinhole_sip::stream_frame;
/// let s = b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhi";
/// assert_eq!(next(s, Some(stream_frame)), Ok(Some(Frame::Keepalive(4))));
/// assert_eq!(next(&s[4..], Some(stream_frame)), Ok(Some(Frame::Message(35))));
/// ```
pub fn stream_frame(buf: &[u8]) -> Result<Option<CoreFrame>, FrameError> {
    match frame(buf) {
        Ok(f) => Ok(f.map(|f| match f {
            Frame::Keepalive(n) => CoreFrame::Keepalive(n),
            Frame::Message(n) => CoreFrame::Message(n),
        })),
        Err(ParseError::TooLarge { limit, .. }) => Err(FrameError::TooLarge { limit }),
        Err(e) => Err(FrameError::Malformed {
            at: e.offset(),
            reason: reason(&e),
        }),
    }
}

/// The parse error's own reason where it has one, else its label.
fn reason(e: &ParseError) -> &'static str {
    match *e {
        ParseError::Truncated { reason, .. }
        | ParseError::StartLine { reason, .. }
        | ParseError::Header { reason, .. }
        | ParseError::ContentLength { reason, .. }
        | ParseError::Via { reason, .. }
        | ParseError::Uri { reason, .. }
        | ParseError::NameAddr { reason, .. }
        | ParseError::Number { reason, .. }
        | ParseError::Multipart { reason, .. }
        | ParseError::CSeq { reason, .. } => reason,
        ParseError::MissingContentLength { .. } => "stream message has no Content-Length",
        _ => e.kind(),
    }
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
    fn stream_frame_adapts_frame() {
        let s = [b"\r\n".as_slice(), INVITE, BYE].concat();
        assert_eq!(stream_frame(&s), Ok(Some(CoreFrame::Keepalive(2))));
        assert_eq!(
            stream_frame(&s[2..]),
            Ok(Some(CoreFrame::Message(INVITE.len())))
        );
        assert_eq!(stream_frame(&INVITE[..10]), Ok(None));
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2000000\r\n\r\n";
        assert_eq!(
            stream_frame(huge),
            Err(FrameError::TooLarge {
                limit: MAX_STREAM_BODY
            })
        );
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert!(matches!(
            stream_frame(no_cl),
            Err(FrameError::Malformed { at: 0, .. })
        ));
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        let Err(FrameError::Malformed { at, .. }) = stream_frame(neg) else {
            panic!("{:?}", stream_frame(neg));
        };
        assert_eq!(at, frame(neg).unwrap_err().offset());
        // It is a ProtocolFramer.
        let _: pinhole_core::framing::ProtocolFramer = stream_frame;
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

    mod mixed {
        use pinhole_core::framing::{Frame, next};
        use pinhole_core::wire::{Builder, Class, Method, TransactionId};
        use proptest::prelude::*;

        use super::super::stream_frame;

        /// One frame of a stream: (bytes, is a message).
        fn any_frame() -> impl Strategy<Value = (Vec<u8>, bool)> {
            prop_oneof![
                (0usize..40, "[a-z]{1,12}").prop_map(|(body, m)| {
                    let method = m.to_uppercase();
                    let mut s = format!(
                        "{method} sip:a@b SIP/2.0\r\nCSeq: 1 {method}\r\nContent-Length: {body}\r\n\r\n"
                    )
                    .into_bytes();
                    s.resize(s.len() + body, b'x');
                    (s, true)
                }),
                "[a-z]{1,30}".prop_map(|sw| {
                    let mut buf = [0u8; 256];
                    let mut b = Builder::new(&mut buf, Method::Binding, Class::Request, TransactionId([1; 12])).unwrap();
                    b.software(&sw).unwrap();
                    let n = b.finish(None).unwrap();
                    (buf[..n].to_vec(), true)
                }),
                prop_oneof![Just(&b"\r\n\r\n"[..]), Just(&b"\r\n"[..])].prop_map(|k| (k.to_vec(), false)),
            ]
        }

        /// The messages a reader gets when `stream` arrives cut at `cut`,
        /// and what is left unframed.
        fn read(stream: &[u8], cut: usize) -> (Vec<Vec<u8>>, usize) {
            let mut buf = Vec::new();
            let mut out = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = next(&buf, Some(stream_frame)).unwrap() {
                    let bytes: Vec<u8> = buf.drain(..f.len()).collect();
                    if let Frame::Message(_) = f {
                        out.push(bytes);
                    }
                }
            }
            (out, buf.len())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn sip_and_control_split_back_exactly(frames in proptest::collection::vec(any_frame(), 1..6)) {
                let stream: Vec<u8> = frames.iter().flat_map(|(b, _)| b.clone()).collect();
                let want: Vec<Vec<u8>> = frames.iter().filter(|(_, m)| *m).map(|(b, _)| b.clone()).collect();
                for cut in 0..=stream.len() {
                    let (got, rest) = read(&stream, cut);
                    prop_assert_eq!(&got, &want, "cut at {}", cut);
                    prop_assert_eq!(rest, 0);
                }
                // Truncated, the last message never comes out.
                let (got, _) = read(&stream[..stream.len() - 1], 0);
                prop_assert!(got.len() + 1 >= want.len());
                if frames.last().is_some_and(|(_, m)| *m) {
                    prop_assert_eq!(got.len() + 1, want.len());
                }
            }
        }
    }
}
