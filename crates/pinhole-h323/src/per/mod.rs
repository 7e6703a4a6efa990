//! The aligned-PER walker (X.691, ALIGNED variant) for H.225.0 and H.245:
//! it finds every IPv4 and IPv6 transport address in a PDU, records its
//! byte offsets, and patches it in place, so every other bit stays as the
//! peer sent it — the design of Linux's netfilter H.323 helper.
//!
//! It walks only the paths that can lead to an address, skipping the rest
//! by the skip tables in `schema.rs` (generated from the ITU modules by
//! `tools/per-tables/gen.py`), stops once nothing of interest can follow,
//! and steps over extension additions by their open-type length, so a
//! newer or older H.225.0/H.245 version still walks. The H.245 PDUs that
//! H.225.0 carries in octet strings (`fastStart`, `h245Control`,
//! `parallelH245Control`) are walked in place.

mod bits;
#[rustfmt::skip]
mod schema;
mod ty;
mod walk;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

/// The PDU types a walk starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pdu {
    /// H.225.0 `H323-UserInformation`: the Q.931 User-user data.
    UserInformation,
    /// H.225.0 `RasMessage`: a RAS datagram.
    Ras,
    /// H.245 `MultimediaSystemControlMessage`: a TPKT frame on an H.245
    /// connection, or an `h245Control` element.
    H245,
    /// H.245 `OpenLogicalChannel`: a `fastStart` element.
    OpenLogicalChannel,
}

impl Pdu {
    /// The ASN.1 type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::UserInformation => "H323-UserInformation",
            Self::Ras => "RasMessage",
            Self::H245 => "MultimediaSystemControlMessage",
            Self::OpenLogicalChannel => "OpenLogicalChannel",
        }
    }
}

/// An address family: the size of the address, which a patch keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Four octets.
    V4,
    /// Sixteen octets.
    V6,
}

/// A transport address found in a PDU: where its octets are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The ASN.1 name of the component holding it (`h245Address`,
    /// `mediaChannel`, `rasAddress`, …).
    pub field: &'static str,
    /// The H.245 parameters it is in (`forwardLogicalChannelParameters`,
    /// `reverseLogicalChannelParameters`, `forwardMultiplexAckParameters`),
    /// or empty.
    pub context: &'static str,
    /// Its family.
    pub family: Family,
    /// The offset of the address octets in the walked buffer.
    pub ip_at: usize,
    /// The offset of the two port octets.
    pub port_at: usize,
    /// The nested PDU it is in (an index into [`Walk::nested`]), if any.
    pub nested: Option<usize>,
}

impl Address {
    /// Its value in `buf` (the buffer that was walked).
    pub fn get(&self, buf: &[u8]) -> SocketAddr {
        let port = u16::from_be_bytes([buf[self.port_at], buf[self.port_at + 1]]);
        let ip = match self.family {
            Family::V4 => {
                let o: [u8; 4] = buf[self.ip_at..self.ip_at + 4]
                    .try_into()
                    .unwrap_or_default();
                IpAddr::V4(Ipv4Addr::from(o))
            }
            Family::V6 => {
                let o: [u8; 16] = buf[self.ip_at..self.ip_at + 16]
                    .try_into()
                    .unwrap_or_default();
                IpAddr::V6(Ipv6Addr::from(o))
            }
        };
        SocketAddr::new(ip, port)
    }

    /// Writes `to` over it in `buf`. The family must stay: another would
    /// change the PDU's length, which a patch in place cannot.
    pub fn set(&self, buf: &mut [u8], to: SocketAddr) -> Result<(), FamilyChange> {
        match (self.family, to.ip()) {
            (Family::V4, IpAddr::V4(ip)) => {
                buf[self.ip_at..self.ip_at + 4].copy_from_slice(&ip.octets())
            }
            (Family::V6, IpAddr::V6(ip)) => {
                buf[self.ip_at..self.ip_at + 16].copy_from_slice(&ip.octets())
            }
            _ => {
                return Err(FamilyChange {
                    field: self.field,
                    from: self.family,
                });
            }
        }
        buf[self.port_at..self.port_at + 2].copy_from_slice(&to.port().to_be_bytes());
        Ok(())
    }
}

/// A patch that would change an address's family.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {from:?}: a patch in place cannot change the address family")]
pub struct FamilyChange {
    /// The component.
    pub field: &'static str,
    /// Its family.
    pub from: Family,
}

/// An H.245 PDU carried in an H.225.0 octet string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedPdu {
    /// The component (`fastStart`, `h245Control`, `parallelH245Control`).
    pub field: &'static str,
    /// Its index in that SEQUENCE OF.
    pub index: usize,
    /// What it is.
    pub pdu: Pdu,
    /// Its octets in the walked buffer.
    pub at: Range<usize>,
    /// Its message (`openLogicalChannel`, `openLogicalChannelAck`, …).
    pub message: &'static str,
}

/// What a walk found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// The message: the alternative of the H.225.0 message body, of the
    /// RAS message, or of the H.245 request/response/command/indication
    /// (`setup`, `registrationRequest`, `openLogicalChannelAck`); empty
    /// for a bare `OpenLogicalChannel`.
    pub message: &'static str,
    /// The transport addresses, in encoding order.
    pub addresses: Vec<Address>,
    /// The nested PDUs, in encoding order.
    pub nested: Vec<NestedPdu>,
    /// The values read on the way (channel numbers, session IDs,
    /// `h245Tunneling`), in encoding order.
    pub values: Vec<Value>,
    /// The alias strings met on the way, in encoding order.
    pub texts: Vec<Text>,
    /// The offset of the call's 16-octet GUID (`callIdentifier`), when
    /// the message has one outside nested PDUs.
    pub call_id_at: Option<usize>,
}

impl Walk {
    /// The first value named `name` in the PDU itself (`nested` None) or
    /// in nested PDU `nested`, in `context` (empty: any).
    pub fn value(&self, name: &str, nested: Option<usize>, context: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|v| {
                v.name == name && v.nested == nested && (context.is_empty() || v.context == context)
            })
            .map(|v| v.value)
    }
}

/// An INTEGER or BOOLEAN a walk read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The component (`forwardLogicalChannelNumber`, `sessionID`,
    /// `h245Tunneling`).
    pub name: &'static str,
    /// Its value (a BOOLEAN is 0 or 1).
    pub value: u64,
    /// The H.245 parameters it is in, or empty (see [`Address::context`]).
    pub context: &'static str,
    /// The nested PDU it is in, if any.
    pub nested: Option<usize>,
}

/// An alias string a walk met (H.225.0 `AliasAddress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    /// The component holding the alias (`destinationAddress`,
    /// `sourceAddress`, `terminalAlias`, …).
    pub field: &'static str,
    /// The alternative: `dialedDigits`, `h323-ID`, `url-ID`, `email-ID`.
    pub alternative: &'static str,
    /// The bit offset of its first character.
    pub bit: usize,
    /// Its characters.
    pub len: usize,
    /// Bits per character.
    pub bits: u8,
    /// The nested PDU it is in, if any.
    pub nested: Option<usize>,
}

impl Text {
    /// The string, from the walked buffer. `dialedDigits` is coded as
    /// indexes into its permitted alphabet (X.691 §30.5.4), the others as
    /// character codes.
    pub fn decode(&self, buf: &[u8]) -> String {
        const DIGITS: &[u8] = b"#*,0123456789";
        let mut out = String::with_capacity(self.len);
        for i in 0..self.len {
            let mut v: u32 = 0;
            for b in 0..usize::from(self.bits) {
                let at = self.bit + i * usize::from(self.bits) + b;
                let bit = buf.get(at / 8).map_or(0, |o| (o >> (7 - at % 8)) & 1);
                v = (v << 1) | u32::from(bit);
            }
            let c = if self.alternative == "dialedDigits" {
                DIGITS.get(v as usize).map_or('?', |&d| char::from(d))
            } else {
                char::from_u32(v).unwrap_or('?')
            };
            out.push(c);
        }
        out
    }
}

/// Walks `per`, a PDU of type `pdu`.
///
/// ```
/// use pinhole_h323::per::{walk, Pdu};
///
/// // An H.245 OpenLogicalChannelAck from a real call (the corpus's
/// // rtp_example, frame 31): RTP at 10.1.3.143:5000, RTCP at :5001.
/// let ack = [
///     0x22, 0xc0, 0x00, 0x3c, 0x02, 0x80, 0x13, 0x5c, 0x00, 0x00, 0x0a, 0x01, 0x03,
///     0x8f, 0x13, 0x88, 0x00, 0x0a, 0x01, 0x03, 0x8f, 0x13, 0x89, 0x01, 0x01, 0x00,
/// ];
/// let w = walk(Pdu::H245, &ack).unwrap();
/// assert_eq!(w.message, "openLogicalChannelAck");
/// let found: Vec<_> = w.addresses.iter().map(|a| (a.field, a.get(&ack).to_string())).collect();
/// assert_eq!(found, [("mediaChannel", "10.1.3.143:5000".to_string()),
///                    ("mediaControlChannel", "10.1.3.143:5001".to_string())]);
///
/// // Patched in place: the same length, only those octets change.
/// let mut out = ack;
/// w.addresses[0].set(&mut out, "203.0.113.9:40000".parse().unwrap()).unwrap();
/// assert_eq!(w.addresses[0].get(&out).to_string(), "203.0.113.9:40000");
/// assert_eq!(out[..10], ack[..10]);
/// assert_eq!(out[16..], ack[16..]);
/// ```
pub fn walk(pdu: Pdu, per: &[u8]) -> Result<Walk, Box<PerError>> {
    let mut out = Walk::default();
    walk_into(pdu, per, &mut out)?;
    Ok(out)
}

/// [`walk`] into `out`, whose vectors are cleared and reused: a data
/// path that keeps one `Walk` allocates nothing per message. On an
/// error `out` holds what was found before it.
pub fn walk_into(pdu: Pdu, per: &[u8], out: &mut Walk) -> Result<(), Box<PerError>> {
    out.message = "";
    out.addresses.clear();
    out.nested.clear();
    out.values.clear();
    out.texts.clear();
    out.call_id_at = None;
    walk::Walker::run(pdu, per, out)
}

/// A step of a path to where a walk failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A component or alternative.
    Name(&'static str),
    /// An element of a SEQUENCE OF.
    Index(usize),
}

/// Why a PDU did not walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PerReason {
    /// The bits ended before the value did.
    #[error("truncated")]
    Truncated,
    /// A choice index or enumeration value out of its range.
    #[error("index out of range")]
    BadIndex,
    /// A length outside its constraint, or a malformed determinant.
    #[error("bad length")]
    BadLength,
    /// A number longer than this walker reads.
    #[error("number too long")]
    TooLong,
    /// A fragmented (16K and more) octet string where the walker must look
    /// inside: no H.323 PDU has one.
    #[error("fragmented value where an address may be")]
    Fragmented,
    /// Values nested deeper than any real PDU.
    #[error("nested too deep")]
    TooDeep,
    /// The schema tables lack a type the walk needed (a defect of ours).
    #[error("schema gap")]
    Unwalked,
}

/// A PDU that did not walk: why, where (bit offset), and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerError {
    /// The bit offset in the walked buffer.
    pub bit: usize,
    /// Why.
    pub reason: PerReason,
    /// Innermost last, once complete (built while the error unwinds).
    path: Vec<Seg>,
}

impl PerError {
    pub(crate) fn within(mut self: Box<Self>, seg: Seg) -> Box<Self> {
        self.path.push(seg);
        self
    }

    /// The path from the PDU type to the value (`H323-UserInformation.
    /// h323-uu-pdu.h323-message-body.setup.fastStart[2].…`).
    pub fn path(&self) -> String {
        let mut s = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Name(n) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(n);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    /// A short name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self.reason {
            PerReason::Truncated => "truncated",
            PerReason::BadIndex => "bad_index",
            PerReason::BadLength => "bad_length",
            PerReason::TooLong => "too_long",
            PerReason::Fragmented => "fragmented",
            PerReason::TooDeep => "too_deep",
            PerReason::Unwalked => "schema_gap",
        }
    }
}

impl fmt::Display for PerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at bit {} (octet {}) in {}",
            self.reason,
            self.bit,
            self.bit / 8,
            self.path()
        )
    }
}

impl std::error::Error for PerError {}
