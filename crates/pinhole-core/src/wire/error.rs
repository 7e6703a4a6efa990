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

/// One test for the labels of the crate's public error enums (the engines'
/// and the patch's too), so a variant added with a repeated label fails here.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{DecodeError, EncodeError, IntegrityError};
    use crate::patch::PatchError;
    use crate::ports::PortError;
    use crate::wire::ErrorCode;
    use crate::{client, mpr};

    /// Labels of one enum, one per variant: distinct, non-empty snake_case.
    fn assert_distinct(labels: impl IntoIterator<Item = &'static str>) {
        let labels: Vec<&str> = labels.into_iter().collect();
        let set: HashSet<&str> = labels.iter().copied().collect();
        assert_eq!(set.len(), labels.len(), "repeated label in {labels:?}");
        let snake = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        assert!(labels.iter().all(|l| snake(l)), "{labels:?}");
    }

    #[test]
    fn every_variant_has_a_distinct_label() {
        let decode = [
            DecodeError::Truncated {
                offset: 0,
                what: "x",
            },
            DecodeError::NotStun {
                offset: 0,
                what: "x",
            },
            DecodeError::BadLength {
                offset: 0,
                what: "x",
            },
            DecodeError::UnknownMethod {
                offset: 0,
                method: 0,
            },
            DecodeError::BadAttribute {
                offset: 0,
                attr: 0,
                what: "x",
            },
            DecodeError::FingerprintNotLast { offset: 0 },
            DecodeError::FingerprintMismatch { offset: 0 },
        ];
        assert_distinct(decode.iter().map(|e| e.kind()));
        let encode = [
            EncodeError::BufferTooSmall { need: 1 },
            EncodeError::ValueTooLong { attr: 0, len: 1 },
            EncodeError::BadValue { attr: 0, what: "x" },
            EncodeError::TooMany { attr: 0, max: 1 },
            EncodeError::MessageTooLong { len: 1 },
        ];
        assert_distinct(encode.iter().map(|e| e.kind()));
        let integrity = [IntegrityError::Missing, IntegrityError::Mismatch];
        assert_distinct(integrity.iter().map(|e| e.kind()));
        let patch = [
            PatchError::OutOfBounds {
                start: 0,
                end: 2,
                len: 1,
            },
            PatchError::Overlap { a: 0..2, b: 1..3 },
        ];
        assert_distinct(patch.iter().map(|e| e.kind()));

        let client_config = [
            client::ConfigError::RefreshTooLong {
                refresh: std::time::Duration::from_secs(2),
                timeout: std::time::Duration::from_secs(1),
            },
            client::ConfigError::Invalid("x"),
        ];
        assert_distinct(client_config.iter().map(|e| e.kind()));
        let client_call = [
            client::ClientError::NotRegistered,
            client::ClientError::UnknownPinhole,
            client::ClientError::BadLegKey,
        ];
        assert_distinct(client_call.iter().map(|e| e.kind()));
        let client_input = [
            client::InputError::NotControl,
            client::InputError::Decode(decode[0].clone()),
            client::InputError::Unsolicited,
            client::InputError::Unauthenticated,
        ];
        assert_distinct(client_input.iter().map(|e| e.kind()));

        let mpr_config = [
            mpr::ConfigError::DuplicateNetwork("x".into()),
            mpr::ConfigError::BadNetwork("x".into()),
            mpr::ConfigError::BadTimer("x"),
            mpr::ConfigError::Ports(PortError::EmptyRange { first: 1, last: 1 }),
        ];
        assert_distinct(mpr_config.iter().map(|e| e.kind()));
        let mpr_input = [
            mpr::InputError::NotControl,
            mpr::InputError::Decode(decode[0].clone()),
            mpr::InputError::Unexpected("x"),
            mpr::InputError::Refused {
                code: ErrorCode(400),
                what: "x",
            },
            mpr::InputError::Replayed,
            mpr::InputError::StrayKeepalive,
        ];
        assert_distinct(mpr_input.iter().map(|e| e.kind()));
        let mpr_intent = [
            mpr::IntentError::UnknownNetwork,
            mpr::IntentError::UnknownCall,
            mpr::IntentError::TooManyStreams(17),
            mpr::IntentError::PortsExhausted,
            mpr::IntentError::QuotaReached,
            mpr::IntentError::NoRelayAddress,
        ];
        assert_distinct(mpr_intent.iter().map(|e| e.kind()));
    }
}
