//! Small value types of the wire format: ids, methods, classes, codes.

/// A 96-bit STUN transaction id. The caller draws it from its own random
/// generator: the core never touches OS randomness.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TransactionId(pub [u8; 12]);

/// The message methods Pinhole speaks (spec §1.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Method {
    /// RFC 8489 Binding (0x001): observed-address query and media keepalive.
    Binding,
    /// REGISTER (0x0C1): registration of a signaling pinhole.
    Register,
    /// CMPH (0x0C2): Create Media Pinhole.
    Cmph,
}

impl Method {
    /// The 12-bit STUN method code.
    pub const fn code(self) -> u16 {
        match self {
            Self::Binding => 0x001,
            Self::Register => 0x0C1,
            Self::Cmph => 0x0C2,
        }
    }

    /// The method with STUN method code `code`, if Pinhole knows it.
    pub const fn from_code(code: u16) -> Option<Self> {
        match code {
            0x001 => Some(Self::Binding),
            0x0C1 => Some(Self::Register),
            0x0C2 => Some(Self::Cmph),
            _ => None,
        }
    }
}

/// The STUN message class.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Class {
    /// Request (0b00): answered with a success or an error.
    Request,
    /// Indication (0b01): never answered.
    Indication,
    /// Success response (0b10).
    Success,
    /// Error response (0b11).
    Error,
}

impl Class {
    /// The two class bits C1 C0.
    pub const fn code(self) -> u16 {
        match self {
            Self::Request => 0b00,
            Self::Indication => 0b01,
            Self::Success => 0b10,
            Self::Error => 0b11,
        }
    }

    const fn from_code(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Self::Request,
            0b01 => Self::Indication,
            0b10 => Self::Success,
            _ => Self::Error,
        }
    }
}

/// The STUN message type (RFC 8489 §5): method bits M11..M0 with the class
/// bits interleaved at bit 4 (C0) and bit 8 (C1).
pub(crate) const fn message_type(method: Method, class: Class) -> u16 {
    let m = method.code();
    let c = class.code();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

/// Splits a message type into (method code, class); the top two bits must be
/// zero, which the caller has checked.
pub(crate) const fn split_type(t: u16) -> (u16, Class) {
    let m = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let c = ((t >> 4) & 1) | ((t >> 7) & 2);
    (m, Class::from_code(c))
}

/// The signaling protocol of a REGISTER (SIGNALING-PROTOCOL attribute).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Protocol {
    /// SIP (code 1).
    Sip,
    /// MGCP (code 2).
    Mgcp,
    /// H.248 / Megaco (code 3).
    H248,
    /// H.323 (code 4).
    H323,
}

impl Protocol {
    /// Every protocol, in code order.
    pub const ALL: [Self; 4] = [Self::Sip, Self::Mgcp, Self::H248, Self::H323];

    /// The one-byte wire code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Sip => 1,
            Self::Mgcp => 2,
            Self::H248 => 3,
            Self::H323 => 4,
        }
    }

    /// The protocol with wire code `code`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Sip),
            2 => Some(Self::Mgcp),
            3 => Some(Self::H248),
            4 => Some(Self::H323),
            _ => None,
        }
    }

    /// Human-readable name, also a stable metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sip => "SIP",
            Self::Mgcp => "MGCP",
            Self::H248 => "H.248",
            Self::H323 => "H.323",
        }
    }

    /// A lowercase token for labels and config keys (`sip`, `mgcp`,
    /// `h248`, `h323`).
    pub const fn token(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::Mgcp => "mgcp",
            Self::H248 => "h248",
            Self::H323 => "h323",
        }
    }
}

/// How a media leg carries RTCP (RTCP-MODE attribute).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum RtcpMode {
    /// RTCP on the port after the RTP port (code 0, the default).
    #[default]
    Pair,
    /// RTCP multiplexed on the RTP port, RFC 5761 (code 1).
    Mux,
    /// No RTCP (code 2).
    None,
}

impl RtcpMode {
    /// Every mode, in code order.
    pub const ALL: [Self; 3] = [Self::Pair, Self::Mux, Self::None];

    /// The one-byte wire code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Pair => 0,
            Self::Mux => 1,
            Self::None => 2,
        }
    }

    /// The mode with wire code `code`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Pair),
            1 => Some(Self::Mux),
            2 => Some(Self::None),
            _ => None,
        }
    }
}

/// A STUN error code (class × 100 + number), spec §4.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 400: malformed message, missing attribute, value out of range.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401: unknown network, bad or missing integrity or nonce.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403: protocol, domain or leg not allowed for this network.
    pub const FORBIDDEN: Self = Self(403);
    /// 420: unknown comprehension-required attributes.
    pub const UNKNOWN_ATTRIBUTE: Self = Self(420);
    /// 437: bind to a relay port that has no leg.
    pub const ALLOCATION_MISMATCH: Self = Self(437);
    /// 438: expired nonce or one from an earlier MPR run.
    pub const STALE_NONCE: Self = Self(438);
    /// 480: CMPH from a network without a live registration.
    pub const NOT_REGISTERED: Self = Self(480);
    /// 486: the network has as many legs as it may.
    pub const QUOTA_REACHED: Self = Self(486);
    /// 500: internal invariant failed; nothing changed.
    pub const SERVER_ERROR: Self = Self(500);
    /// 508: no free relay port pair, or replay cache full.
    pub const INSUFFICIENT_CAPACITY: Self = Self(508);

    /// Every code of spec §4.
    pub const ALL: [Self; 10] = [
        Self::BAD_REQUEST,
        Self::UNAUTHORIZED,
        Self::FORBIDDEN,
        Self::UNKNOWN_ATTRIBUTE,
        Self::ALLOCATION_MISMATCH,
        Self::STALE_NONCE,
        Self::NOT_REGISTERED,
        Self::QUOTA_REACHED,
        Self::SERVER_ERROR,
        Self::INSUFFICIENT_CAPACITY,
    ];

    /// The reason phrase of spec §4 ("Unknown Error" for other codes).
    pub const fn reason(self) -> &'static str {
        match self.0 {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            480 => "Not Registered",
            486 => "Allocation Quota Reached",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "Unknown Error",
        }
    }

    /// Whether the code is encodable: class 3–6, number 0–99.
    pub const fn is_valid(self) -> bool {
        self.0 >= 300 && self.0 <= 699
    }
}
