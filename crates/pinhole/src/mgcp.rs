//! `pinhole inspect` and `pinhole rewrite` for MGCP (RFC 3435): one JSON
//! line per message of a datagram (piggybacked messages each get theirs),
//! and every media address moved to one place.

use std::net::SocketAddr;

use pinhole_mgcp::{Head, MediaRole, Message, messages};
use serde_json::{Value, json};

/// The MGCP ports: gateways listen on 2427, call agents on 2727.
pub(crate) const PORTS: [u16; 2] = [2427, 2727];

/// True when the first line looks like an MGCP command (`VERB txid
/// endpoint MGCP x.y`) or, with `responses`, like a response (`code txid`).
pub(crate) fn looks_like_mgcp(bytes: &[u8], responses: bool) -> bool {
    let line = bytes
        .split(|&b| b == b'\n' || b == b'\r')
        .next()
        .unwrap_or_default();
    let mut tokens = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty());
    let (Some(first), Some(second)) = (tokens.next(), tokens.next()) else {
        return false;
    };
    let digits = |t: &[u8]| !t.is_empty() && t.len() <= 9 && t.iter().all(u8::is_ascii_digit);
    if first.len() == 3 && first.iter().all(u8::is_ascii_digit) {
        return responses && digits(second);
    }
    first.len() == 4
        && first.iter().all(u8::is_ascii_alphanumeric)
        && digits(second)
        && tokens
            .nth(1)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"MGCP"))
}

/// One JSON object per message of the datagram; a message that does not
/// parse ends the list with an object carrying the error.
pub(crate) fn inspect(bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    for m in messages(bytes) {
        match m {
            Ok(m) => out.push(describe(&m)),
            Err(e) => out.push(json!({
                "protocol": "mgcp", "kind": null, "transaction": null, "endpoint": null,
                "call": null, "media": [], "error": e.to_string(),
            })),
        }
    }
    out
}

fn describe(m: &Message<'_>) -> Value {
    let kind = match m.head() {
        Head::Command(c) => c.verb.as_str().to_owned(),
        Head::Response(r) => format!("{:03}", r.code),
    };
    let role = match m.media_role() {
        MediaRole::Offer => "offer",
        MediaRole::Modify => "modify",
        MediaRole::Answer => "answer",
        MediaRole::Teardown => "teardown",
        MediaRole::None => "none",
    };
    let mut error = Value::Null;
    let mut media = Vec::new();
    if let Some(span) = m.sdp_span() {
        match crate::sip::describe_sdp(m.buf().get(span).unwrap_or_default()) {
            Ok(v) => media = v,
            Err(e) => error = json!(e),
        }
    }
    if let Err(e) = m.response_ack() {
        error = json!(e.to_string());
    }
    json!({
        "protocol": "mgcp",
        "kind": kind,
        "transaction": m.transaction_id(),
        "endpoint": m.endpoint().map(|e| e.text),
        "version": m.command().map(|c| c.version.text),
        "commentary": m.response().and_then(|r| r.commentary),
        "call": m.call_id(),
        "connection": m.connection_id(),
        "mode": m.mode(),
        "role": role,
        "params": m.params().len(),
        "media": media,
        "error": error,
    })
}

/// Rewrites every enabled stream of every message's SDP to `to`'s address
/// with consecutive even ports.
pub(crate) fn rewrite(bytes: &[u8], to: SocketAddr) -> Result<Vec<u8>, String> {
    pinhole_mgcp::rewrite_all(bytes, to).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const CRCX: &[u8] = b"CRCX 10511 aaln/1@cpg2 MGCP 1.0 NCS 1.0\nC: ABCD000068\nM: sendrecv\n\nv=0\nc=IN IP4 200.57.7.196\nm=audio 40362 RTP/AVP 0\n.\n200 10510 OK\n";

    #[test]
    fn inspects_a_piggybacked_datagram() {
        let v = inspect(CRCX);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["protocol"], "mgcp");
        assert_eq!(v[0]["kind"], "CRCX");
        assert_eq!(v[0]["transaction"], 10511);
        assert_eq!(v[0]["endpoint"], "aaln/1@cpg2");
        assert_eq!(v[0]["call"], "ABCD000068");
        assert_eq!(v[0]["role"], "offer");
        assert_eq!(v[0]["media"][0]["addr"], "200.57.7.196");
        assert_eq!(v[0]["media"][0]["port"], 40362);
        assert!(v[0]["error"].is_null());
        assert_eq!(v[1]["kind"], "200");
        assert_eq!(v[1]["commentary"], "OK");
        assert!(v[1]["endpoint"].is_null());
    }

    #[test]
    fn reports_errors_and_rewrites() {
        let v = inspect(b"200 1 OK\n.\nCRCX x a@gw MGCP 1.0\n");
        assert_eq!(v.len(), 2);
        assert!(v[0]["error"].is_null());
        assert!(
            v[1]["error"].as_str().unwrap().contains("line 3"),
            "{}",
            v[1]
        );
        let out = rewrite(CRCX, "203.0.113.10:30000".parse().unwrap()).unwrap();
        let v = inspect(&out);
        assert_eq!(v[0]["media"][0]["addr"], "203.0.113.10");
        assert_eq!(v[0]["media"][0]["port"], 30000);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8_lossy(CRCX)
                .replace("200.57.7.196", "203.0.113.10")
                .replace("40362", "30000")
        );
        assert!(rewrite(b"200 1 OK\n", "1.2.3.4:5".parse().unwrap()).is_err());
    }

    #[test]
    fn recognises_mgcp() {
        assert!(looks_like_mgcp(CRCX, false));
        assert!(looks_like_mgcp(b"rqnt 1 a@b mgcp 0.1\r\n", false));
        assert!(looks_like_mgcp(b"200 1 OK", true));
        assert!(!looks_like_mgcp(b"200 1 OK", false));
        assert!(!looks_like_mgcp(b"200 Command okay\r\n", true));
        assert!(!looks_like_mgcp(b"INVITE sip:a@b SIP/2.0\r\n", true));
        assert!(!looks_like_mgcp(b"HELO 12 x y\r\n", true));
    }
}
