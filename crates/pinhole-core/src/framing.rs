//! Stream framing: where one message ends in a TCP or TLS byte stream that
//! carries Pinhole's control messages beside a signaling protocol's.
//!
//! A stream has no datagram boundaries, so the reader asks [`next`] what
//! starts its buffer: a whole control message (STUN-framed, `20 + length`
//! bytes, `docs/wire-format.md` §1), a whole
//! protocol message, a keepalive to consume, or nothing yet. The protocol's
//! own framing is a plain function, a [`ProtocolFramer`]: SIP frames by
//! Content-Length (`pinhole_sip::stream_frame`), H.323 by [`tpkt`].
//!
//! Demultiplexing follows `wire::is_control` applied at a frame boundary:
//! a control message starts with a byte 0..=3 and holds the magic cookie at
//! bytes 4..8. Text protocols start with a letter or CR/LF, so one byte
//! tells them apart; TPKT starts with 3, like a STUN byte, so when the
//! first byte is 0..=3 [`next`] waits for 8 bytes and picks STUN only with
//! the cookie.
//!
//! Nothing here buffers: each function reads the front of the caller's
//! buffer and says how many bytes the frame takes. Every limit is checked
//! from the headers, before the bytes arrive, so a reader can bound its
//! buffer by the largest frame its framer accepts.
//!
//! ```
//! use pinhole_core::framing::{Frame, next, tpkt};
//!
//! // A TPKT keepalive, then a 7-byte TPKT message, then half a frame.
//! let stream = [3, 0, 0, 4, 3, 0, 0, 7, 8, 0, 0x05, 3, 0];
//! assert_eq!(next(&stream, Some(tpkt)), Ok(Some(Frame::Keepalive(4))));
//! assert_eq!(next(&stream[4..], Some(tpkt)), Ok(Some(Frame::Message(7))));
//! assert_eq!(next(&stream[11..], Some(tpkt)), Ok(None));
//!
//! // A bare STUN header (length 0) is a 20-byte control frame.
//! let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
//! stun.resize(20, 7);
//! assert_eq!(next(&stun, Some(tpkt)), Ok(Some(Frame::Message(20))));
//! assert_eq!(next(&stun, None), Ok(Some(Frame::Message(20))));
//! ```

use crate::wire::{HEADER_LEN, MAGIC_COOKIE};

/// What starts a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// This many bytes of keepalive to consume (SIP's CR/LF, an empty TPKT).
    Keepalive(usize),
    /// A whole message of this many bytes: deliver it.
    Message(usize),
}

impl Frame {
    /// The bytes the frame takes at the front of the buffer.
    pub fn len(self) -> usize {
        let (Self::Keepalive(n) | Self::Message(n)) = self;
        n
    }

    /// True for a zero-length frame (no framer here returns one).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Why a stream can never frame: the connection should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame announces more bytes than the framer accepts.
    #[error("frame exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The bytes cannot start a frame.
    #[error("malformed frame at byte {at}: {reason}")]
    Malformed {
        /// Offset into the buffer where the problem was found.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl FrameError {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// A protocol's own stream framing (SIP by Content-Length, TPKT...).
///
/// Same contract as [`next`]: `Ok(None)` while more bytes are needed, a
/// frame never longer than the buffer, an error when the stream cannot
/// frame.
pub type ProtocolFramer = fn(&[u8]) -> Result<Option<Frame>, FrameError>;

/// Largest control (STUN) frame accepted on a stream. Pinhole's control
/// messages fit [`crate::wire::MAX_MESSAGE`] (1280 bytes); this leaves room
/// for other STUN methods without letting a peer make a reader buffer 64 KiB
/// for one.
pub const MAX_CONTROL: usize = 4096;

/// Largest TPKT frame: the 16-bit length field, header included.
pub const MAX_TPKT: usize = 65535;

/// An empty TPKT: version 3, length 4 (the header alone).
const EMPTY_TPKT: [u8; 4] = [3, 0, 0, 4];

/// Bytes before the magic cookie's end: what demultiplexing needs.
const COOKIE_END: usize = 8;

/// A STUN-framed control message at the front of `buf`.
///
/// `None` if `buf` does not start one (empty, first byte not 0..=3, or bytes
/// 4..8 not the magic cookie once 8 bytes are there); `Some(Ok(None))` when
/// more bytes are needed (fewer than 8 bytes and the first byte is 0..=3:
/// it may still be TPKT, so wait); `Some(Ok(Some(20 + length)))` when the
/// whole message is buffered; `Some(Err(..))` if the length is not a
/// multiple of 4 or the frame is over [`MAX_CONTROL`].
///
/// ```
/// use pinhole_core::framing::control;
/// assert_eq!(control(b"INVITE"), None);
/// assert_eq!(control(&[3, 0, 0]), Some(Ok(None))); // STUN or TPKT: wait
/// assert_eq!(control(&[3, 0, 0, 8, 1, 2, 3, 4]), None); // no cookie: TPKT
/// assert_eq!(control(&[3, 0, 0, 4]), None); // an empty TPKT keepalive
/// assert_eq!(control(&[3, 0, 0, 6, 0x20, 0x80]), None); // a short TPKT frame
/// ```
pub fn control(buf: &[u8]) -> Option<Result<Option<usize>, FrameError>> {
    if *buf.first()? > 3 {
        return None;
    }
    // An empty TPKT (H.225.0's keepalive) may arrive alone on an idle
    // connection: waiting for a cookie that never comes would hold it until
    // the slow-sender timer closed the connection. As STUN it would be
    // type 0x0300, a method Pinhole never uses.
    if buf.starts_with(&EMPTY_TPKT) {
        return None;
    }
    // Nor a short TPKT frame (an H.245 MSD Ack is 6 octets): a TPKT
    // length under 20 is no STUN message, which takes 20 at least, so it
    // needs no cookie to be told apart (and may never be followed by more
    // bytes to bring one).
    if let [3, 0, hi, lo, ..] = *buf
        && u16::from_be_bytes([hi, lo]) < HEADER_LEN as u16
    {
        return None;
    }
    let Some(head) = buf.first_chunk::<COOKIE_END>() else {
        return Some(Ok(None));
    };
    if u32::from_be_bytes([head[4], head[5], head[6], head[7]]) != MAGIC_COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if !len.is_multiple_of(4) {
        return Some(Err(FrameError::Malformed {
            at: 2,
            reason: "control message length is not a multiple of 4",
        }));
    }
    let total = HEADER_LEN + len;
    if total > MAX_CONTROL {
        return Some(Err(FrameError::TooLarge { limit: MAX_CONTROL }));
    }
    Some(Ok((buf.len() >= total).then_some(total)))
}

/// RFC 1006 TPKT, the framing of H.225.0 call signaling over TCP: version
/// 3, a reserved byte, and a 16-bit length that includes the 4-byte header.
///
/// A length of exactly 4 (a header with no payload) is the keepalive H.323
/// endpoints send on an idle call-signaling connection (H.225.0 "empty
/// TPKT"), so it is a [`Frame::Keepalive`]. A length under 4 cannot even
/// hold its own header and is malformed: accepting it would consume fewer
/// bytes than the header it was read from. Any length from 5 up is a
/// message: TPKT carries other payloads than Q.931 (T.125, RDP), so the
/// minimum of one payload is the payload parser's business, not the
/// framer's. The reserved byte is not checked (RFC 1006 gives it no
/// meaning). The largest frame is [`MAX_TPKT`], the field's maximum, so
/// there is no `TooLarge` here.
///
/// ```
/// use pinhole_core::framing::{Frame, tpkt};
/// assert_eq!(tpkt(&[3, 0, 0, 4]), Ok(Some(Frame::Keepalive(4))));
/// assert_eq!(tpkt(&[3, 0, 0, 6, 8]), Ok(None));
/// assert!(tpkt(&[4, 0, 0, 6]).is_err());
/// ```
pub fn tpkt(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != 3 {
        return Err(FrameError::Malformed {
            at: 0,
            reason: "not a TPKT version 3 header",
        });
    }
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if len < 4 {
        return Err(FrameError::Malformed {
            at: 2,
            reason: "TPKT length shorter than its header",
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(if len == 4 {
        Frame::Keepalive(4)
    } else {
        Frame::Message(len)
    }))
}

/// The next frame of a stream that carries Pinhole's control messages
/// beside a protocol's: a control frame first (by [`control`]), else the
/// protocol's framer. With no protocol (a stream with no ALG) only control
/// frames are valid and anything else is malformed.
///
/// Returns `Ok(None)` for an empty buffer and while more bytes are needed.
///
/// ```
/// use pinhole_core::framing::{FrameError, next, tpkt};
/// assert_eq!(next(b"", None), Ok(None));
/// // An idle H.323 connection's empty TPKT is framed at once.
/// assert_eq!(
///     next(&[3, 0, 0, 4], Some(tpkt)),
///     Ok(Some(pinhole_core::framing::Frame::Keepalive(4)))
/// );
/// assert!(matches!(next(b"GET / HTTP/1.1", None), Err(FrameError::Malformed { at: 0, .. })));
/// ```
pub fn next(buf: &[u8], protocol: Option<ProtocolFramer>) -> Result<Option<Frame>, FrameError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if let Some(control) = control(buf) {
        return control.map(|whole| whole.map(Frame::Message));
    }
    match protocol {
        Some(framer) => framer(buf),
        None => Err(FrameError::Malformed {
            at: 0,
            reason: "not a control message on a control-only stream",
        }),
    }
}

#[cfg(test)]
mod tests;
