//! Zero-copy decoding of control messages.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::Mac;

use super::attr::{self, INTEGRITY_LEN, MAX_DOMAINS, MAX_UNKNOWN_RECORDED};
use super::error::{DecodeError, IntegrityError};
use super::types::{Class, ErrorCode, Method, Protocol, RtcpMode, TransactionId, split_type};
use super::{FINGERPRINT_XOR, HEADER_LEN, IntegrityKey, MAGIC_COOKIE};

/// A value's position in the datagram: `start..end`.
type Span = Option<(usize, usize)>;

/// A validated control message: a zero-copy view over the datagram.
///
/// Decoding validates framing, every known attribute's value and FINGERPRINT,
/// so the accessors are infallible. It does not check integrity: call
/// [`verify`](Self::verify) with the network's credential.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    method: Method,
    class: Class,
    id: TransactionId,
    /// End of the attributes honoured: MESSAGE-INTEGRITY-SHA256 or the end.
    honored_end: usize,
    /// Offset of the first SUBSCRIBER-DOMAIN, where [`Domains`] starts.
    domains_start: usize,
    username: Span,
    nonce: Span,
    software: Span,
    leg_key: Span,
    unknown_attributes: Span,
    error: Option<(ErrorCode, usize, usize)>,
    protocol: Option<Protocol>,
    rtcp_mode: Option<RtcpMode>,
    lifetime: Option<u32>,
    xor_mapped: Option<SocketAddr>,
    xor_relayed: Option<SocketAddr>,
    xor_local: Option<SocketAddr>,
    /// Offset of the MESSAGE-INTEGRITY-SHA256 attribute header.
    integrity: Option<usize>,
    fingerprint: bool,
    unknown: [u16; MAX_UNKNOWN_RECORDED],
    unknown_len: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn str_at(bytes: &[u8], span: Span) -> Option<&str> {
    // Validated as UTF-8 during decode; re-checking is cheap and panic-free.
    span.and_then(|(s, e)| core::str::from_utf8(&bytes[s..e]).ok())
}

/// Decodes an XOR-MAPPED-ADDRESS style value (RFC 8489 §14.2).
pub(crate) fn decode_address(v: &[u8], id: &TransactionId) -> Result<SocketAddr, &'static str> {
    if v.len() < 4 {
        return Err("address value shorter than 4 bytes");
    }
    let port = be16(v, 2) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (v[1], v.len()) {
        (1, 8) => IpAddr::V4(Ipv4Addr::from_bits(be32(v, 4) ^ MAGIC_COOKIE)),
        (2, 20) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(&id.0);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(ip))
        }
        (1 | 2, _) => return Err("address length does not match its family"),
        _ => return Err("unknown address family"),
    };
    Ok(SocketAddr::new(ip, port))
}

fn utf8(v: &[u8]) -> Result<&str, &'static str> {
    core::str::from_utf8(v).map_err(|_| "value is not UTF-8")
}

impl<'a> Message<'a> {
    /// Decodes and validates a datagram (spec §1, §2).
    ///
    /// Rejects bad framing, malformed values of known attributes, more than
    /// 16 SUBSCRIBER-DOMAIN, and a FINGERPRINT that is not last or does not
    /// match. Attributes after MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT
    /// are ignored; of a repeated attribute the first counts; unknown
    /// comprehension-required types are recorded, optional ones ignored.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated {
                offset: bytes.len(),
                what: "STUN header",
            });
        };
        if h[0] & 0xC0 != 0 {
            return Err(DecodeError::NotStun {
                offset: 0,
                what: "top two bits of the message type are not zero",
            });
        }
        if be32(h, 4) != MAGIC_COOKIE {
            return Err(DecodeError::NotStun {
                offset: 4,
                what: "no magic cookie",
            });
        }
        let len = usize::from(be16(h, 2));
        if !len.is_multiple_of(4) {
            return Err(DecodeError::BadLength {
                offset: 2,
                what: "message length is not a multiple of 4",
            });
        }
        let end = HEADER_LEN + len;
        if end > bytes.len() {
            return Err(DecodeError::Truncated {
                offset: bytes.len(),
                what: "attributes shorter than the message length",
            });
        }
        if end < bytes.len() {
            return Err(DecodeError::BadLength {
                offset: 2,
                what: "datagram longer than the message length",
            });
        }
        let (code, class) = split_type(be16(h, 0));
        let method = Method::from_code(code).ok_or(DecodeError::UnknownMethod {
            offset: 0,
            method: code,
        })?;
        let mut id = [0u8; 12];
        id.copy_from_slice(&h[8..HEADER_LEN]);

        let mut msg = Self {
            bytes,
            method,
            class,
            id: TransactionId(id),
            honored_end: end,
            domains_start: end,
            username: None,
            nonce: None,
            software: None,
            leg_key: None,
            unknown_attributes: None,
            error: None,
            protocol: None,
            rtcp_mode: None,
            lifetime: None,
            xor_mapped: None,
            xor_relayed: None,
            xor_local: None,
            integrity: None,
            fingerprint: false,
            unknown: [0; MAX_UNKNOWN_RECORDED],
            unknown_len: 0,
        };
        msg.walk(end)?;
        Ok(msg)
    }

    fn walk(&mut self, end: usize) -> Result<(), DecodeError> {
        let bytes = self.bytes;
        let mut pos = HEADER_LEN;
        let mut domains = 0usize;
        // The length is a multiple of 4, so a header always fits when pos < end.
        while pos + 4 <= end {
            let typ = be16(bytes, pos);
            let alen = usize::from(be16(bytes, pos + 2));
            let vstart = pos + 4;
            let next = vstart + ((alen + 3) & !3);
            if vstart + alen > end {
                return Err(DecodeError::Truncated {
                    offset: pos,
                    what: "attribute value runs past the message",
                });
            }
            // Unreachable while the length is a multiple of 4; kept as a guard.
            if next > end {
                return Err(DecodeError::Truncated {
                    offset: pos,
                    what: "attribute padding runs past the message",
                });
            }
            let value = &bytes[vstart..vstart + alen];
            if typ == attr::FINGERPRINT {
                self.check_fingerprint(pos, value, next == end)?;
            } else if self.integrity.is_none() {
                let bad = |what| DecodeError::BadAttribute {
                    offset: pos,
                    attr: typ,
                    what,
                };
                if typ == attr::SUBSCRIBER_DOMAIN {
                    domains += 1;
                    if domains > MAX_DOMAINS {
                        return Err(bad("more than 16 SUBSCRIBER-DOMAIN"));
                    }
                    if domains == 1 {
                        self.domains_start = pos;
                    }
                }
                self.attribute(typ, pos, vstart, value).map_err(bad)?;
            }
            pos = next;
        }
        Ok(())
    }

    fn check_fingerprint(&mut self, pos: usize, v: &[u8], last: bool) -> Result<(), DecodeError> {
        if !last {
            return Err(DecodeError::FingerprintNotLast { offset: pos });
        }
        if v.len() != 4 {
            return Err(DecodeError::BadAttribute {
                offset: pos,
                attr: attr::FINGERPRINT,
                what: "FINGERPRINT must be 4 bytes",
            });
        }
        // The header's length already covers FINGERPRINT because it is last.
        if crc32fast::hash(&self.bytes[..pos]) ^ FINGERPRINT_XOR != be32(v, 0) {
            return Err(DecodeError::FingerprintMismatch { offset: pos });
        }
        self.fingerprint = true;
        Ok(())
    }

    /// Validates one attribute before MESSAGE-INTEGRITY-SHA256 and records
    /// it if it is the first of its type.
    fn attribute(
        &mut self,
        typ: u16,
        pos: usize,
        vstart: usize,
        v: &[u8],
    ) -> Result<(), &'static str> {
        let span = Some((vstart, vstart + v.len()));
        match typ {
            attr::USERNAME | attr::NONCE | attr::LEG_KEY => {
                attr::check_bytes(typ, v)?;
                let slot = match typ {
                    attr::USERNAME => {
                        utf8(v)?;
                        &mut self.username
                    }
                    attr::NONCE => &mut self.nonce,
                    _ => &mut self.leg_key,
                };
                slot.get_or_insert((vstart, vstart + v.len()));
            }
            attr::SUBSCRIBER_DOMAIN => {
                attr::check_bytes(typ, v)?;
                utf8(v)?;
            }
            attr::SOFTWARE => {
                attr::check_text(utf8(v)?)?;
                self.software = self.software.or(span);
            }
            attr::ERROR_CODE => {
                if v.len() < 4 {
                    return Err("ERROR-CODE shorter than 4 bytes");
                }
                let class = u16::from(v[2] & 0x07);
                let number = u16::from(v[3]);
                if !(3..=6).contains(&class) {
                    return Err("ERROR-CODE class not 3-6");
                }
                if number > 99 {
                    return Err("ERROR-CODE number not 0-99");
                }
                attr::check_text(utf8(&v[4..])?)?;
                let code = ErrorCode(class * 100 + number);
                self.error
                    .get_or_insert((code, vstart + 4, vstart + v.len()));
            }
            attr::UNKNOWN_ATTRIBUTES => {
                if !v.len().is_multiple_of(2) {
                    return Err("UNKNOWN-ATTRIBUTES length is odd");
                }
                self.unknown_attributes = self.unknown_attributes.or(span);
            }
            attr::LIFETIME => {
                if v.len() != 4 {
                    return Err("LIFETIME must be 4 bytes");
                }
                self.lifetime.get_or_insert(be32(v, 0));
            }
            attr::SIGNALING_PROTOCOL | attr::RTCP_MODE => {
                if v.len() != 4 {
                    return Err("value must be 4 bytes");
                }
                if typ == attr::SIGNALING_PROTOCOL {
                    let p = Protocol::from_code(v[0]).ok_or("unknown signaling protocol")?;
                    self.protocol.get_or_insert(p);
                } else {
                    let m = RtcpMode::from_code(v[0]).ok_or("unknown RTCP mode")?;
                    self.rtcp_mode.get_or_insert(m);
                }
            }
            attr::XOR_MAPPED_ADDRESS | attr::XOR_RELAYED_ADDRESS | attr::XOR_LOCAL_ADDRESS => {
                let a = decode_address(v, &self.id)?;
                let slot = match typ {
                    attr::XOR_MAPPED_ADDRESS => &mut self.xor_mapped,
                    attr::XOR_RELAYED_ADDRESS => &mut self.xor_relayed,
                    _ => &mut self.xor_local,
                };
                slot.get_or_insert(a);
            }
            attr::MESSAGE_INTEGRITY_SHA256 => {
                if v.len() != INTEGRITY_LEN {
                    return Err("MESSAGE-INTEGRITY-SHA256 must be 32 bytes");
                }
                self.integrity = Some(pos);
                self.honored_end = pos;
            }
            t if attr::is_comprehension_required(t) => self.record_unknown(t),
            _ => {}
        }
        Ok(())
    }

    fn record_unknown(&mut self, t: u16) {
        let seen = &self.unknown[..self.unknown_len];
        if !seen.contains(&t) && self.unknown_len < MAX_UNKNOWN_RECORDED {
            self.unknown[self.unknown_len] = t;
            self.unknown_len += 1;
        }
    }

    /// The message method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The message class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.id
    }

    /// USERNAME: the network id.
    pub fn username(&self) -> Option<&'a str> {
        str_at(self.bytes, self.username)
    }

    /// SIGNALING-PROTOCOL.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Every SUBSCRIBER-DOMAIN before MESSAGE-INTEGRITY-SHA256, in order.
    pub fn domains(&self) -> Domains<'a> {
        Domains {
            bytes: self.bytes,
            pos: self.domains_start,
            end: self.honored_end,
        }
    }

    /// LEG-KEY.
    pub fn leg_key(&self) -> Option<&'a [u8]> {
        self.leg_key.map(|(s, e)| &self.bytes[s..e])
    }

    /// RTCP-MODE.
    pub fn rtcp_mode(&self) -> Option<RtcpMode> {
        self.rtcp_mode
    }

    /// LIFETIME in seconds.
    pub fn lifetime(&self) -> Option<u32> {
        self.lifetime
    }

    /// NONCE (printable ASCII).
    pub fn nonce(&self) -> Option<&'a [u8]> {
        self.nonce.map(|(s, e)| &self.bytes[s..e])
    }

    /// SOFTWARE.
    pub fn software(&self) -> Option<&'a str> {
        str_at(self.bytes, self.software)
    }

    /// XOR-MAPPED-ADDRESS, un-XORed.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped
    }

    /// XOR-RELAYED-ADDRESS, un-XORed.
    pub fn xor_relayed_address(&self) -> Option<SocketAddr> {
        self.xor_relayed
    }

    /// XOR-LOCAL-ADDRESS, un-XORed: the client's own listening address.
    pub fn xor_local_address(&self) -> Option<SocketAddr> {
        self.xor_local
    }

    /// ERROR-CODE: the code and its reason phrase as sent.
    pub fn error_code(&self) -> Option<(ErrorCode, &'a str)> {
        let (code, s, e) = self.error?;
        Some((code, str_at(self.bytes, Some((s, e)))?))
    }

    /// The types listed in an UNKNOWN-ATTRIBUTES attribute.
    pub fn unknown_attributes(&self) -> UnknownAttributes<'a> {
        let v = self
            .unknown_attributes
            .map_or(&[][..], |(s, e)| &self.bytes[s..e]);
        UnknownAttributes(v.chunks_exact(2))
    }

    /// Unknown comprehension-required attribute types met before
    /// MESSAGE-INTEGRITY-SHA256 (distinct, at most
    /// [`attr::MAX_UNKNOWN_RECORDED`]). Non-empty means: answer 420.
    pub fn unknown_required(&self) -> &[u16] {
        &self.unknown[..self.unknown_len]
    }

    /// Whether the message carries MESSAGE-INTEGRITY-SHA256.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether the message carries a (matching) FINGERPRINT.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 against `key` (the raw credential
    /// bytes) in constant time.
    pub fn verify(&self, key: &[u8]) -> Result<(), IntegrityError> {
        self.verify_with(&IntegrityKey::new(key))
    }

    /// [`Message::verify`] with a prepared key (no per-message key setup).
    pub fn verify_with(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let mi = self.integrity.ok_or(IntegrityError::Missing)?;
        // The HMAC covers the header with its length ending at MI-SHA256.
        let len = u16::try_from(mi + 4 + INTEGRITY_LEN - HEADER_LEN)
            .map_err(|_| IntegrityError::Mismatch)?;
        let mut mac = key.mac();
        mac.update(&self.bytes[..2]);
        mac.update(&len.to_be_bytes());
        mac.update(&self.bytes[4..mi]);
        mac.verify_slice(&self.bytes[mi + 4..mi + 4 + INTEGRITY_LEN])
            .map_err(|_| IntegrityError::Mismatch)
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over SUBSCRIBER-DOMAIN values, see [`Message::domains`].
#[derive(Clone, Debug)]
pub struct Domains<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Domains<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Framing was validated by decode, so this walk cannot go astray.
        while self.pos + 4 <= self.end {
            let typ = be16(self.bytes, self.pos);
            let alen = usize::from(be16(self.bytes, self.pos + 2));
            let v = self.bytes.get(self.pos + 4..self.pos + 4 + alen)?;
            self.pos += 4 + ((alen + 3) & !3);
            if typ == attr::SUBSCRIBER_DOMAIN {
                return core::str::from_utf8(v).ok();
            }
        }
        None
    }
}

/// Iterator over the types of UNKNOWN-ATTRIBUTES, see
/// [`Message::unknown_attributes`].
#[derive(Clone, Debug)]
pub struct UnknownAttributes<'a>(core::slice::ChunksExact<'a, u8>);

impl Iterator for UnknownAttributes<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        self.0.next().map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
