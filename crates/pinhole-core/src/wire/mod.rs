//! The control wire format: STUN-framed REGISTER, CMPH and Binding messages.
//!
//! This module implements `docs/wire-format.md` exactly. It is sans-IO and
//! allocation-free: [`Message`] is a zero-copy view over a received datagram,
//! [`Builder`] encodes into a buffer the caller owns, and [`is_control`]
//! demultiplexes a datagram from RTP, DTLS and signaling (RFC 7983).
//!
//! Every message Pinhole sends ends with FINGERPRINT; authenticated ones carry
//! MESSAGE-INTEGRITY-SHA256 right before it, keyed with the raw bytes of the
//! per-network credential (STUN short-term credentials).
//!
//! # Example
//!
//! Encode a CMPH request, decode it and check its integrity:
//!
//! ```
//! use pinhole_core::wire::{
//!     is_control, Builder, Class, Message, Method, RtcpMode, TransactionId, MAX_MESSAGE,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = b"network secret";
//! let id = TransactionId([7; 12]);
//! let mut buf = [0u8; MAX_MESSAGE];
//! let mut b = Builder::new(&mut buf, Method::Cmph, Class::Request, id)?;
//! b.username("corp1")?
//!     .leg_key(b"call-42/a/0")?
//!     .rtcp_mode(RtcpMode::Mux)?
//!     .nonce(b"000000000000025800112233aabbccdd")?;
//! let len = b.finish(Some(key))?;
//!
//! let datagram = &buf[..len];
//! assert!(is_control(datagram));
//! let msg = Message::decode(datagram)?;
//! assert_eq!((msg.method(), msg.class()), (Method::Cmph, Class::Request));
//! assert_eq!(msg.username(), Some("corp1"));
//! assert_eq!(msg.leg_key(), Some(&b"call-42/a/0"[..]));
//! assert_eq!(msg.rtcp_mode(), Some(RtcpMode::Mux));
//! msg.verify(key)?;
//! assert!(msg.verify(b"wrong key").is_err());
//! # Ok(())
//! # }
//! ```

pub mod attr;
mod decode;
mod encode;
mod error;
mod types;

#[cfg(test)]
mod tests;

pub use decode::{Domains, Message, UnknownAttributes};
pub use encode::Builder;
pub use error::{DecodeError, EncodeError, IntegrityError};
pub use types::{Class, ErrorCode, Method, Protocol, RtcpMode, TransactionId};

/// The STUN magic cookie (RFC 8489 §5), bytes 4–7 of every message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Length of the fixed STUN header.
pub const HEADER_LEN: usize = 20;

/// Size of the buffers the engines allocate for encoding: every message they
/// send fits in an IPv6 minimum-MTU datagram.
pub const MAX_MESSAGE: usize = 1280;

/// The largest answer an MPR sends to a REGISTER or CMPH request whose
/// source it has not verified yet (spec §2.3): a 401 or 438 with
/// ERROR-CODE, a 32-byte NONCE, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT.
/// The MPR answers such a request only when the answer is no larger than
/// the request, so a client pads every request to at least this length
/// ([`Builder::pad_to`]).
pub const ANSWERABLE_LEN: usize = 120;

/// XOR constant of the FINGERPRINT attribute (RFC 8489 §14.7), "STUN".
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Whether `datagram` is a control message (RFC 7983 demultiplexing).
///
/// True when the first byte is 0–3, the datagram is at least [`HEADER_LEN`]
/// bytes, bytes 4–7 hold [`MAGIC_COOKIE`] and the length field is a multiple
/// of 4 matching the datagram. Constant work, no allocation; RTP/RTCP (128–191),
/// DTLS (20–63), TPKT (3, but no cookie) and text protocols all fail it.
#[inline]
pub fn is_control(datagram: &[u8]) -> bool {
    let Some(header) = datagram.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    header[0] <= 3
        && u32::from_be_bytes([header[4], header[5], header[6], header[7]]) == MAGIC_COOKIE
        && len.is_multiple_of(4)
        && HEADER_LEN + len == datagram.len()
}

/// A MESSAGE-INTEGRITY-SHA256 key with the HMAC pads already absorbed, so
/// each message costs only the hashing of its own bytes. Debug output never
/// shows the key.
#[derive(Clone)]
pub struct IntegrityKey(hmac::Hmac<sha2::Sha256>);

impl IntegrityKey {
    /// Prepares a key (any length; HMAC hashes or pads it).
    pub fn new(key: &[u8]) -> Self {
        use hmac::KeyInit;
        // HMAC accepts keys of every length, so this cannot fail; an empty
        // key is still a key.
        match <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) {
            Ok(m) => Self(m),
            Err(_) => Self(<hmac::Hmac<sha2::Sha256> as KeyInit>::new(
                &Default::default(),
            )),
        }
    }

    pub(crate) fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        self.0.clone()
    }
}

impl core::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IntegrityKey(..)")
    }
}
