//! Allocation-free encoding of control messages into a caller buffer.

use core::net::{IpAddr, SocketAddr};

use hmac::Mac;

use super::attr::{self, INTEGRITY_LEN, MAX_DOMAINS};
use super::error::EncodeError;
use super::types::{Class, ErrorCode, Method, Protocol, RtcpMode, TransactionId, message_type};
use super::{FINGERPRINT_XOR, HEADER_LEN, IntegrityKey, MAGIC_COOKIE};

/// Largest value of the 16-bit STUN message length field.
const MAX_BODY: usize = u16::MAX as usize;

/// Encodes one control message into a caller-owned buffer.
///
/// Attributes are written in call order; [`finish`](Self::finish) appends
/// MESSAGE-INTEGRITY-SHA256 (with a key) and FINGERPRINT. Every setter
/// enforces the decoder's value rules, so whatever the builder produces
/// decodes. A failed call leaves the builder unchanged.
#[derive(Debug)]
pub struct Builder<'b> {
    buf: &'b mut [u8],
    pos: usize,
    id: TransactionId,
    domains: usize,
}

fn value_check(typ: u16, v: &[u8]) -> Result<(), EncodeError> {
    if attr::max_len(typ).is_some_and(|max| v.len() > max) {
        return Err(EncodeError::ValueTooLong {
            attr: typ,
            len: v.len(),
        });
    }
    attr::check_bytes(typ, v).map_err(|what| EncodeError::BadValue { attr: typ, what })
}

fn text_check(typ: u16, s: &str) -> Result<(), EncodeError> {
    attr::check_text(s).map_err(|_| EncodeError::ValueTooLong {
        attr: typ,
        len: s.len(),
    })
}

impl<'b> Builder<'b> {
    /// Starts a message: writes the 20-byte header into `buf`.
    pub fn new(
        buf: &'b mut [u8],
        method: Method,
        class: Class,
        id: TransactionId,
    ) -> Result<Self, EncodeError> {
        let Some(h) = buf.first_chunk_mut::<HEADER_LEN>() else {
            return Err(EncodeError::BufferTooSmall { need: HEADER_LEN });
        };
        h[..2].copy_from_slice(&message_type(method, class).to_be_bytes());
        h[2..4].fill(0);
        h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        h[8..].copy_from_slice(&id.0);
        Ok(Self {
            buf,
            pos: HEADER_LEN,
            id,
            domains: 0,
        })
    }

    /// Bytes written so far (header and attributes, without MI and FP).
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no attribute has been written yet.
    pub fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    /// Appends attribute `typ` with a value of `len` bytes that `fill` writes.
    fn push(
        &mut self,
        typ: u16,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<&mut Self, EncodeError> {
        let Ok(alen) = u16::try_from(len) else {
            return Err(EncodeError::ValueTooLong { attr: typ, len });
        };
        let vstart = self.pos + 4;
        let next = vstart + ((len + 3) & !3);
        if next - HEADER_LEN > MAX_BODY {
            return Err(EncodeError::MessageTooLong {
                len: next - HEADER_LEN,
            });
        }
        let Some(out) = self.buf.get_mut(self.pos..next) else {
            return Err(EncodeError::BufferTooSmall { need: next });
        };
        out[..2].copy_from_slice(&typ.to_be_bytes());
        out[2..4].copy_from_slice(&alen.to_be_bytes());
        fill(&mut out[4..4 + len]);
        out[4 + len..].fill(0);
        self.pos = next;
        Ok(self)
    }

    fn push_bytes(&mut self, typ: u16, v: &[u8]) -> Result<&mut Self, EncodeError> {
        self.push(typ, v.len(), |out| out.copy_from_slice(v))
    }

    fn push_code(&mut self, typ: u16, code: u8) -> Result<&mut Self, EncodeError> {
        self.push_bytes(typ, &[code, 0, 0, 0])
    }

    fn push_address(&mut self, typ: u16, a: SocketAddr) -> Result<&mut Self, EncodeError> {
        let port = a.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let id = self.id.0;
        match a.ip() {
            IpAddr::V4(ip) => self.push(typ, 8, |out| {
                out[..2].copy_from_slice(&[0, 1]);
                out[2..4].copy_from_slice(&port.to_be_bytes());
                for (i, b) in ip.octets().into_iter().enumerate() {
                    out[4 + i] = b ^ cookie[i];
                }
            }),
            IpAddr::V6(ip) => self.push(typ, 20, |out| {
                out[..2].copy_from_slice(&[0, 2]);
                out[2..4].copy_from_slice(&port.to_be_bytes());
                let mask = cookie.iter().chain(id.iter());
                for (i, (b, m)) in ip.octets().into_iter().zip(mask).enumerate() {
                    out[4 + i] = b ^ m;
                }
            }),
        }
    }

    /// USERNAME: the network id, 1–128 bytes.
    pub fn username(&mut self, v: &str) -> Result<&mut Self, EncodeError> {
        value_check(attr::USERNAME, v.as_bytes())?;
        self.push_bytes(attr::USERNAME, v.as_bytes())
    }

    /// SIGNALING-PROTOCOL.
    pub fn protocol(&mut self, p: Protocol) -> Result<&mut Self, EncodeError> {
        self.push_code(attr::SIGNALING_PROTOCOL, p.code())
    }

    /// One SUBSCRIBER-DOMAIN, 1–253 bytes; at most 16 per message.
    pub fn domain(&mut self, d: &str) -> Result<&mut Self, EncodeError> {
        if self.domains >= MAX_DOMAINS {
            return Err(EncodeError::TooMany {
                attr: attr::SUBSCRIBER_DOMAIN,
                max: MAX_DOMAINS,
            });
        }
        value_check(attr::SUBSCRIBER_DOMAIN, d.as_bytes())?;
        self.push_bytes(attr::SUBSCRIBER_DOMAIN, d.as_bytes())?;
        self.domains += 1;
        Ok(self)
    }

    /// LEG-KEY, 1–64 bytes.
    pub fn leg_key(&mut self, k: &[u8]) -> Result<&mut Self, EncodeError> {
        value_check(attr::LEG_KEY, k)?;
        self.push_bytes(attr::LEG_KEY, k)
    }

    /// RTCP-MODE.
    pub fn rtcp_mode(&mut self, m: RtcpMode) -> Result<&mut Self, EncodeError> {
        self.push_code(attr::RTCP_MODE, m.code())
    }

    /// LIFETIME in seconds.
    pub fn lifetime(&mut self, secs: u32) -> Result<&mut Self, EncodeError> {
        self.push_bytes(attr::LIFETIME, &secs.to_be_bytes())
    }

    /// NONCE, 1–128 bytes of printable ASCII.
    pub fn nonce(&mut self, n: &[u8]) -> Result<&mut Self, EncodeError> {
        value_check(attr::NONCE, n)?;
        self.push_bytes(attr::NONCE, n)
    }

    /// SOFTWARE, at most 127 characters.
    pub fn software(&mut self, s: &str) -> Result<&mut Self, EncodeError> {
        text_check(attr::SOFTWARE, s)?;
        self.push_bytes(attr::SOFTWARE, s.as_bytes())
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&mut self, a: SocketAddr) -> Result<&mut Self, EncodeError> {
        self.push_address(attr::XOR_MAPPED_ADDRESS, a)
    }

    /// XOR-RELAYED-ADDRESS.
    pub fn xor_relayed_address(&mut self, a: SocketAddr) -> Result<&mut Self, EncodeError> {
        self.push_address(attr::XOR_RELAYED_ADDRESS, a)
    }

    /// XOR-LOCAL-ADDRESS.
    pub fn xor_local_address(&mut self, a: SocketAddr) -> Result<&mut Self, EncodeError> {
        self.push_address(attr::XOR_LOCAL_ADDRESS, a)
    }

    /// ERROR-CODE: `code` must be 300–699, `reason` at most 127 characters
    /// (use [`ErrorCode::reason`] for the standard phrase).
    pub fn error_code(&mut self, code: ErrorCode, reason: &str) -> Result<&mut Self, EncodeError> {
        if !code.is_valid() {
            return Err(EncodeError::BadValue {
                attr: attr::ERROR_CODE,
                what: "error code must be 300-699",
            });
        }
        text_check(attr::ERROR_CODE, reason)?;
        // Class and number are < 7 and < 100 once the code is valid.
        let head = [0, 0, (code.0 / 100) as u8, (code.0 % 100) as u8];
        let r = reason.as_bytes();
        self.push(attr::ERROR_CODE, 4 + r.len(), |out| {
            out[..4].copy_from_slice(&head);
            out[4..].copy_from_slice(r);
        })
    }

    /// UNKNOWN-ATTRIBUTES listing `types`.
    pub fn unknown_attributes(&mut self, types: &[u16]) -> Result<&mut Self, EncodeError> {
        let len = types.len().saturating_mul(2);
        self.push(attr::UNKNOWN_ATTRIBUTES, len, |out| {
            for (c, t) in out.chunks_exact_mut(2).zip(types) {
                c.copy_from_slice(&t.to_be_bytes());
            }
        })
    }

    /// PADDING (spec §2.3), sized so that the finished message —
    /// MESSAGE-INTEGRITY-SHA256 included when `integrity`, and FINGERPRINT
    /// — is at least `len` bytes long. Writes nothing when it already is.
    pub fn pad_to(&mut self, len: usize, integrity: bool) -> Result<&mut Self, EncodeError> {
        let trailer = if integrity { 4 + INTEGRITY_LEN } else { 0 } + 8;
        let done = self.pos + trailer;
        if done >= len {
            return Ok(self);
        }
        // The attribute header counts too; values round up to 4 bytes.
        let value = (len - done).saturating_sub(4).next_multiple_of(4);
        self.push(attr::PADDING, value, |out| out.fill(0))
    }

    fn set_length(&mut self, end: usize) {
        // Callers checked end - HEADER_LEN <= MAX_BODY.
        let len = (end - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 keyed with `key` (the raw credential
    /// bytes) if given, then FINGERPRINT; returns the message length.
    pub fn finish(self, key: Option<&[u8]>) -> Result<usize, EncodeError> {
        match key {
            Some(k) => self.finish_with(Some(&IntegrityKey::new(k))),
            None => self.finish_with(None),
        }
    }

    /// [`Builder::finish`] with a prepared key (no per-message key setup).
    pub fn finish_with(mut self, key: Option<&IntegrityKey>) -> Result<usize, EncodeError> {
        let mi_len = if key.is_some() { 4 + INTEGRITY_LEN } else { 0 };
        let need = self.pos + mi_len + 8;
        if need - HEADER_LEN > MAX_BODY {
            return Err(EncodeError::MessageTooLong {
                len: need - HEADER_LEN,
            });
        }
        if need > self.buf.len() {
            return Err(EncodeError::BufferTooSmall { need });
        }
        if let Some(key) = key {
            let mut mac = key.mac();
            let pos = self.pos;
            // The HMAC covers the header with the length ending at MI-SHA256.
            self.set_length(pos + mi_len);
            mac.update(&self.buf[..pos]);
            let tag = mac.finalize().into_bytes();
            self.buf[pos..pos + 2].copy_from_slice(&attr::MESSAGE_INTEGRITY_SHA256.to_be_bytes());
            self.buf[pos + 2..pos + 4].copy_from_slice(&(INTEGRITY_LEN as u16).to_be_bytes());
            self.buf[pos + 4..pos + mi_len].copy_from_slice(&tag);
            self.pos += mi_len;
        }
        let pos = self.pos;
        self.set_length(pos + 8);
        let crc = crc32fast::hash(&self.buf[..pos]) ^ FINGERPRINT_XOR;
        self.buf[pos..pos + 2].copy_from_slice(&attr::FINGERPRINT.to_be_bytes());
        self.buf[pos + 2..pos + 4].copy_from_slice(&4u16.to_be_bytes());
        self.buf[pos + 4..pos + 8].copy_from_slice(&crc.to_be_bytes());
        Ok(pos + 8)
    }
}
