//! Attribute types and value limits (spec §2), shared by encoder and decoder
//! so that anything the [`Builder`](super::Builder) makes the decoder accepts.

/// USERNAME: the network id.
pub const USERNAME: u16 = 0x0006;
/// ERROR-CODE (RFC 8489 §14.8).
pub const ERROR_CODE: u16 = 0x0009;
/// UNKNOWN-ATTRIBUTES: list of 16-bit types (420 responses).
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
/// LIFETIME in seconds (RFC 8656 §18.2).
pub const LIFETIME: u16 = 0x000D;
/// NONCE issued by the MPR.
pub const NONCE: u16 = 0x0015;
/// XOR-RELAYED-ADDRESS: the leg's relay address.
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
/// XOR-MAPPED-ADDRESS: the source address the MPR observed.
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// SIGNALING-PROTOCOL (comprehension-required, Pinhole-specific).
pub const SIGNALING_PROTOCOL: u16 = 0x4C01;
/// SUBSCRIBER-DOMAIN, repeatable (comprehension-required).
pub const SUBSCRIBER_DOMAIN: u16 = 0x4C02;
/// LEG-KEY: the client's name for a media stream (comprehension-required).
pub const LEG_KEY: u16 = 0x4C03;
/// RTCP-MODE (comprehension-required).
pub const RTCP_MODE: u16 = 0x4C04;
/// XOR-LOCAL-ADDRESS: the client's own listening address for a stream,
/// XORed so that no NAT ALG rewrites it (comprehension-required).
pub const XOR_LOCAL_ADDRESS: u16 = 0x4C05;
/// SOFTWARE (comprehension-optional).
pub const SOFTWARE: u16 = 0x8022;
/// PADDING: bytes that only make a request large enough to be answered
/// (spec §2.3); its value means nothing. Comprehension-optional, so an MPR
/// that predates it ignores it.
pub const PADDING: u16 = 0xCC01;
/// FINGERPRINT (RFC 8489 §14.7).
pub const FINGERPRINT: u16 = 0x8028;

/// Maximum USERNAME length in bytes.
pub const MAX_USERNAME: usize = 128;
/// Maximum NONCE length in bytes.
pub const MAX_NONCE: usize = 128;
/// Maximum SUBSCRIBER-DOMAIN length in bytes.
pub const MAX_DOMAIN: usize = 253;
/// Maximum number of SUBSCRIBER-DOMAIN attributes in one message.
pub const MAX_DOMAINS: usize = 16;
/// Maximum LEG-KEY length in bytes.
pub const MAX_LEG_KEY: usize = 64;
/// Maximum SOFTWARE and error reason length, in characters (RFC 8489).
pub const MAX_TEXT_CHARS: usize = 127;
/// Maximum number of unknown comprehension-required types recorded by
/// [`Message::unknown_required`](super::Message::unknown_required); further
/// ones are dropped (a 420 listing eight is as good as one listing all).
pub const MAX_UNKNOWN_RECORDED: usize = 8;
/// Length of the MESSAGE-INTEGRITY-SHA256 value (only the full HMAC is used).
pub const INTEGRITY_LEN: usize = 32;

/// Human-readable attribute name, for logs and error messages.
pub const fn name(attr: u16) -> &'static str {
    match attr {
        USERNAME => "USERNAME",
        ERROR_CODE => "ERROR-CODE",
        UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
        LIFETIME => "LIFETIME",
        NONCE => "NONCE",
        XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
        MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
        XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
        SIGNALING_PROTOCOL => "SIGNALING-PROTOCOL",
        SUBSCRIBER_DOMAIN => "SUBSCRIBER-DOMAIN",
        LEG_KEY => "LEG-KEY",
        RTCP_MODE => "RTCP-MODE",
        XOR_LOCAL_ADDRESS => "XOR-LOCAL-ADDRESS",
        SOFTWARE => "SOFTWARE",
        PADDING => "PADDING",
        FINGERPRINT => "FINGERPRINT",
        _ => "unknown",
    }
}

/// Whether `attr` is comprehension-required (RFC 8489 §14: 0x0000–0x7FFF).
pub const fn is_comprehension_required(attr: u16) -> bool {
    attr < 0x8000
}

/// Maximum value length in bytes of the length-limited opaque and string
/// attributes (all of which must also be non-empty).
pub const fn max_len(attr: u16) -> Option<usize> {
    match attr {
        USERNAME => Some(MAX_USERNAME),
        NONCE => Some(MAX_NONCE),
        SUBSCRIBER_DOMAIN => Some(MAX_DOMAIN),
        LEG_KEY => Some(MAX_LEG_KEY),
        _ => None,
    }
}

/// Checks a value against its attribute's length and content rules; the
/// error is the `what` of a decode error or an encode error.
pub(crate) fn check_bytes(attr: u16, v: &[u8]) -> Result<(), &'static str> {
    let Some(max) = max_len(attr) else {
        return Ok(());
    };
    if v.is_empty() || v.len() > max {
        return Err(match attr {
            USERNAME => "USERNAME must be 1-128 bytes",
            NONCE => "NONCE must be 1-128 bytes",
            SUBSCRIBER_DOMAIN => "SUBSCRIBER-DOMAIN must be 1-253 bytes",
            _ => "LEG-KEY must be 1-64 bytes",
        });
    }
    if attr == NONCE && !v.iter().all(|b| (0x20..=0x7E).contains(b)) {
        return Err("NONCE must be printable ASCII");
    }
    Ok(())
}

/// Checks a SOFTWARE value or an error reason: at most 127 characters.
pub(crate) fn check_text(s: &str) -> Result<(), &'static str> {
    // Byte length bounds the char count: skip counting for short strings.
    if s.len() > MAX_TEXT_CHARS && s.chars().count() > MAX_TEXT_CHARS {
        return Err("text longer than 127 characters");
    }
    Ok(())
}
