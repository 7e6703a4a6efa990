//! Codec errors. Offsets are byte offsets into the datagram, so a log line
//! points at the exact place a peer's message went wrong.

/// Why a datagram is not a valid control message.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The datagram ends before `what` does.
    #[error("truncated at byte {offset}: {what}")]
    Truncated {
        /// Where the missing bytes start.
        offset: usize,
        /// What was cut short.
        what: &'static str,
    },
    /// Not a STUN message at all (top bits of the type, or magic cookie).
    #[error("not a STUN message (byte {offset}): {what}")]
    NotStun {
        /// Offset of the offending field.
        offset: usize,
        /// Which check failed.
        what: &'static str,
    },
    /// The message length field disagrees with the datagram.
    #[error("bad length at byte {offset}: {what}")]
    BadLength {
        /// Offset of the length field.
        offset: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A STUN method Pinhole does not speak.
    #[error("unknown method {method:#05x} at byte {offset}")]
    UnknownMethod {
        /// Offset of the message type.
        offset: usize,
        /// The 12-bit method code.
        method: u16,
    },
    /// A known attribute whose value is malformed or out of range.
    #[error("bad attribute {attr:#06x} at byte {offset}: {what}")]
    BadAttribute {
        /// Offset of the attribute header.
        offset: usize,
        /// Attribute type.
        attr: u16,
        /// What is wrong with the value.
        what: &'static str,
    },
    /// FINGERPRINT is present but not the last attribute.
    #[error("FINGERPRINT at byte {offset} is not the last attribute")]
    FingerprintNotLast {
        /// Offset of the FINGERPRINT attribute header.
        offset: usize,
    },
    /// FINGERPRINT does not match the message.
    #[error("FINGERPRINT at byte {offset} does not match")]
    FingerprintMismatch {
        /// Offset of the FINGERPRINT attribute header.
        offset: usize,
    },
}

impl DecodeError {
    /// A stable label for metrics (`decode_error{kind=...}`).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::NotStun { .. } => "not_stun",
            Self::BadLength { .. } => "bad_length",
            Self::UnknownMethod { .. } => "unknown_method",
            Self::BadAttribute { .. } => "bad_attribute",
            Self::FingerprintNotLast { .. } => "fingerprint_not_last",
            Self::FingerprintMismatch { .. } => "fingerprint_mismatch",
        }
    }

    /// Byte offset of the problem in the datagram.
    pub const fn offset(&self) -> usize {
        match self {
            Self::Truncated { offset, .. }
            | Self::NotStun { offset, .. }
            | Self::BadLength { offset, .. }
            | Self::UnknownMethod { offset, .. }
            | Self::BadAttribute { offset, .. }
            | Self::FingerprintNotLast { offset }
            | Self::FingerprintMismatch { offset } => *offset,
        }
    }
}

/// Why a message could not be encoded. The builder is left unchanged by a
/// failed call, so the caller may go on without the offending attribute.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer needs at least `need` bytes.
    #[error("buffer too small: {need} bytes needed")]
    BufferTooSmall {
        /// Bytes the buffer must hold.
        need: usize,
    },
    /// A value is longer than its attribute allows.
    #[error("value of attribute {attr:#06x} too long: {len} bytes")]
    ValueTooLong {
        /// Attribute type.
        attr: u16,
        /// Length of the rejected value in bytes.
        len: usize,
    },
    /// A value the decoder would reject (empty, bad characters, bad code...).
    #[error("bad value for attribute {attr:#06x}: {what}")]
    BadValue {
        /// Attribute type.
        attr: u16,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An attribute repeated more often than allowed.
    #[error("attribute {attr:#06x} repeated more than {max} times")]
    TooMany {
        /// Attribute type.
        attr: u16,
        /// Maximum number of occurrences.
        max: usize,
    },
    /// The message would exceed the 16-bit STUN length field.
    #[error("message too long: {len} attribute bytes")]
    MessageTooLong {
        /// Attribute bytes the message would hold.
        len: usize,
    },
}

impl EncodeError {
    /// A stable label for metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::BufferTooSmall { .. } => "buffer_too_small",
            Self::ValueTooLong { .. } => "value_too_long",
            Self::BadValue { .. } => "bad_value",
            Self::TooMany { .. } => "too_many",
            Self::MessageTooLong { .. } => "message_too_long",
        }
    }
}

/// Why [`Message::verify`](super::Message::verify) failed.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityError {
    /// The message carries no MESSAGE-INTEGRITY-SHA256.
    #[error("no MESSAGE-INTEGRITY-SHA256")]
    Missing,
    /// MESSAGE-INTEGRITY-SHA256 does not match the key.
    #[error("MESSAGE-INTEGRITY-SHA256 mismatch")]
    Mismatch,
}

impl IntegrityError {
    /// A stable label for metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Mismatch => "mismatch",
        }
    }
}
