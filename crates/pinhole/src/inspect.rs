//! `pinhole inspect FILE`: decodes one message and prints it as one JSON
//! line: Pinhole's control messages (one STUN-framed datagram, as raw bytes
//! or as a hex dump), SIP (`crate::sip`) and MGCP (`crate::mgcp`).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use pinhole_core::wire::{self, Class, Message, Method, RtcpMode};
use serde_json::{Value, json};

/// Largest input read.
const MAX_INPUT: u64 = 256 << 20;

/// Reads `path` (`-` for stdin), decodes it and prints one JSON line;
/// `Ok(true)` when it decoded.
pub(crate) fn run(path: &Path) -> anyhow::Result<bool> {
    let raw = read(path)?;
    if crate::capture::is_capture(&raw) {
        let s = crate::capture::inspect(&raw, &mut std::io::stdout().lock())
            .with_context(|| format!("{}", path.display()))?;
        eprintln!(
            "{}: {} frames, {} messages ({} with errors), {} other payloads",
            path.display(),
            s.frames,
            s.messages,
            s.errors,
            s.other
        );
        return Ok(true);
    }
    // Before the hex-dump test: `200 262662134` is all hex digits.
    if crate::mgcp::looks_like_mgcp(&raw, true) && !crate::sip::looks_like_sip(&raw) {
        let lines = crate::mgcp::inspect(&raw);
        for v in &lines {
            println!("{v}");
        }
        return Ok(lines.iter().all(|v| v["error"].is_null()));
    }
    let bytes = unhex(&raw).unwrap_or(raw);
    let v = inspect(&bytes);
    let ok = v["error"].is_null();
    println!("{v}");
    Ok(ok)
}

/// `pinhole rewrite --to ADDR:PORT FILE`: prints the message with every
/// media address moved to ADDR and consecutive ports from PORT.
pub(crate) fn rewrite(path: &Path, to: std::net::SocketAddr) -> anyhow::Result<bool> {
    use std::io::Write as _;
    let raw = read(path)?;
    let result = if crate::sip::looks_like_sip(&raw) {
        crate::sip::rewrite(&raw, to)
    } else if crate::mgcp::looks_like_mgcp(&raw, true) {
        crate::mgcp::rewrite(&raw, to)
    } else {
        anyhow::bail!(
            "{}: neither a SIP message nor an MGCP datagram",
            path.display()
        );
    };
    match result {
        Ok(out) => {
            std::io::stdout().write_all(&out)?;
            Ok(true)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Ok(false)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().take(MAX_INPUT).read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .take(MAX_INPUT)
            .read_to_end(&mut raw)?;
    }
    Ok(raw)
}

/// The bytes of a hex dump (whitespace, `:` and a leading `0x` allowed), or
/// `None` if `raw` is not one.
pub(crate) fn unhex(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let digits: Vec<u8> = text
        .split_whitespace()
        .map(|w| w.strip_prefix("0x").unwrap_or(w))
        .flat_map(|w| w.bytes().filter(|b| *b != b':'))
        .collect();
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    let val = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Binding => "Binding",
        Method::Register => "Registration",
        Method::Cmph => "CMPH",
        _ => "unknown method",
    }
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Request => "request",
        Class::Indication => "indication",
        Class::Success => "success response",
        Class::Error => "error response",
    }
}

/// The JSON description of one datagram.
pub(crate) fn inspect(bytes: &[u8]) -> Value {
    // A STUN magic cookie is enough to try: a truncated or damaged control
    // message gets a decode error rather than "not control".
    let cookie = bytes.get(4..8) == Some(&[0x21, 0x12, 0xa4, 0x42][..]);
    if !wire::is_control(bytes) && !cookie {
        if crate::sip::looks_like_sip(bytes) {
            return crate::sip::inspect(bytes);
        }
        return json!({
            "protocol": null,
            "kind": null,
            "length": bytes.len(),
            "error": "neither a Pinhole control message (STUN-framed) nor SIP nor MGCP",
        });
    }
    let m = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            return json!({
                "protocol": "pinhole-control",
                "kind": null,
                "length": bytes.len(),
                "error": e.to_string(),
                "error_kind": e.kind(),
            });
        }
    };
    let rtcp = m.rtcp_mode().map(|r| match r {
        RtcpMode::Pair => "pair",
        RtcpMode::Mux => "mux",
        RtcpMode::None => "none",
    });
    json!({
        "protocol": "pinhole-control",
        "kind": format!("{} {}", method_name(m.method()), class_name(m.class())),
        "length": bytes.len(),
        "transaction_id": hex(&m.transaction_id().0),
        "username": m.username(),
        "signaling_protocol": m.protocol().map(|p| p.name()),
        "domains": m.domains().collect::<Vec<_>>(),
        "leg_key": m.leg_key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "rtcp_mode": rtcp,
        "lifetime": m.lifetime(),
        "nonce": m.nonce().map(hex),
        "software": m.software(),
        "xor_mapped_address": m.xor_mapped_address().map(|a| a.to_string()),
        "xor_relayed_address": m.xor_relayed_address().map(|a| a.to_string()),
        "error_code": m.error_code().map(|(c, r)| json!({"code": c.0, "reason": r})),
        "unknown_required": m.unknown_required(),
        "integrity": m.has_integrity(),
        "fingerprint": m.has_fingerprint(),
        "error": null,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use pinhole_core::wire::{Builder, Protocol, TransactionId};

    fn cmph_request() -> Vec<u8> {
        let mut buf = [0u8; 512];
        let mut b = Builder::new(
            &mut buf,
            Method::Cmph,
            Class::Request,
            TransactionId([7; 12]),
        )
        .unwrap();
        b.username("corp1").unwrap();
        b.leg_key(b"call/A/0").unwrap();
        b.rtcp_mode(RtcpMode::Mux).unwrap();
        let n = b.finish(Some(b"secret")).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn decodes_a_cmph_request() {
        let v = inspect(&cmph_request());
        assert_eq!(v["protocol"], "pinhole-control");
        assert_eq!(v["kind"], "CMPH request");
        assert_eq!(v["username"], "corp1");
        assert_eq!(v["leg_key"], "call/A/0");
        assert_eq!(v["rtcp_mode"], "mux");
        assert_eq!(v["integrity"], true);
        assert!(v["error"].is_null());
    }

    #[test]
    fn decodes_a_registration_from_a_hex_dump() {
        let mut buf = [0u8; 512];
        let mut b = Builder::new(
            &mut buf,
            Method::Register,
            Class::Request,
            TransactionId([1; 12]),
        )
        .unwrap();
        b.username("corp2").unwrap();
        b.protocol(Protocol::Sip).unwrap();
        b.lifetime(600).unwrap();
        let n = b.finish(None).unwrap();
        let dump: String = buf[..n]
            .chunks(16)
            .map(|l| l.iter().map(|x| format!("{x:02x} ")).collect::<String>() + "\n")
            .collect();
        let bytes = unhex(dump.as_bytes()).unwrap();
        let v = inspect(&bytes);
        assert_eq!(v["kind"], "Registration request");
        assert_eq!(v["signaling_protocol"], "SIP");
        assert_eq!(v["lifetime"], 600);
    }

    #[test]
    fn reports_errors() {
        let mut m = cmph_request();
        m.truncate(m.len() - 4);
        let v = inspect(&m);
        assert_eq!(v["protocol"], "pinhole-control");
        assert!(v["error"].is_string(), "{v}");
        let v = inspect(b"HELLO world\r\n\r\n");
        assert!(v["protocol"].is_null() && v["error"].is_string());
        assert_eq!(unhex(b"zz"), None);
        assert_eq!(unhex(b"0x01 02:03"), Some(vec![1, 2, 3]));
    }
}
