//! `pinhole inspect` and `pinhole rewrite` for SIP: what a message means
//! for the media, and every media address moved to one place — the
//! operator's view of what the ALG sees and does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pinhole_core::wire::RtcpMode;
use pinhole_sdp::Sdp;
use pinhole_sip::Message;
use serde_json::{Value, json};

/// True when the first line looks like SIP (a request line ending in
/// `SIP/x.y`, or a status line).
pub(crate) fn looks_like_sip(bytes: &[u8]) -> bool {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.trim_ascii();
    let upper = line.to_ascii_uppercase();
    upper.starts_with(b"SIP/")
        || upper
            .rsplit(|&b| b == b' ')
            .next()
            .is_some_and(|v| v.starts_with(b"SIP/"))
}

/// One JSON object for one SIP message.
pub(crate) fn inspect(bytes: &[u8]) -> Value {
    let m = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            return json!({
                "protocol": "sip", "kind": null, "call": null, "media": [],
                "error": e.to_string(),
            });
        }
    };
    let kind = match (m.method(), m.status()) {
        (Some(method), _) => method.to_owned(),
        (None, Some(code)) => code.to_string(),
        (None, None) => String::new(),
    };
    let call = m.call_id().map(|c| String::from_utf8_lossy(c).into_owned());
    let mut media = Vec::new();
    let mut error = Value::Null;
    match m.sdp_bodies() {
        Ok(bodies) => {
            for span in bodies {
                let body = bytes.get(span).unwrap_or_default();
                match describe_sdp(body) {
                    Ok(mut v) => media.append(&mut v),
                    Err(e) => error = json!(e),
                }
            }
        }
        Err(e) => error = json!(e.to_string()),
    }
    json!({
        "protocol": "sip",
        "kind": kind,
        "call": call,
        "cseq": m.cseq().map(|(n, method)| format!("{n} {method}")),
        "media": media,
        "error": error,
    })
}

pub(crate) fn describe_sdp(body: &[u8]) -> Result<Vec<Value>, String> {
    let sdp = Sdp::parse(body).map_err(|e| e.to_string())?;
    let eps = sdp
        .endpoints(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .map_err(|e| e.to_string())?;
    Ok(eps
        .iter()
        .zip(sdp.media())
        .map(|(e, m)| {
            let rtcp = match (e.rtcp, e.rtcp_addr) {
                (RtcpMode::Mux, _) => json!({"mux": true}),
                (_, Some(a)) => json!({"addr": a.ip().to_string(), "port": a.port(), "mux": false}),
                _ => Value::Null,
            };
            json!({
                "index": e.index,
                "type": m.kind,
                "addr": e.addr.ip().to_string(),
                "port": e.addr.port(),
                "rtcp": rtcp,
                "disabled": e.is_disabled(),
                "hold": e.is_hold(),
                "direction": format!("{:?}", m.direction).to_ascii_lowercase(),
            })
        })
        .collect())
}

/// Rewrites every enabled stream of every SDP body of one SIP message to
/// `to`'s address with consecutive even ports, fixing Content-Length.
pub(crate) fn rewrite(bytes: &[u8], to: SocketAddr) -> Result<Vec<u8>, String> {
    pinhole_sip::rewrite_all(bytes, to).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
        Call-ID: abc@10.0.0.1\r\nCSeq: 1 INVITE\r\n\
        Content-Type: application/sdp\r\nContent-Length: 120\r\n\r\n\
        v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\nm=video 0 RTP/AVP 96\r\n";

    #[test]
    fn inspects_an_invite() {
        assert_eq!(INVITE.split("\r\n\r\n").nth(1).unwrap().len(), 120);
        let v = inspect(INVITE.as_bytes());
        assert_eq!(v["protocol"], "sip");
        assert_eq!(v["kind"], "INVITE");
        assert_eq!(v["call"], "abc@10.0.0.1");
        assert_eq!(v["media"][0]["addr"], "10.0.0.1");
        assert_eq!(v["media"][0]["port"], 4000);
        assert_eq!(v["media"][0]["rtcp"]["port"], 4001);
        assert_eq!(v["media"][1]["disabled"], true);
        assert!(v["error"].is_null());
    }

    #[test]
    fn rewrites_and_fixes_the_length() {
        let out = rewrite(INVITE.as_bytes(), "203.0.113.10:30000".parse().unwrap()).unwrap();
        let v = inspect(&out);
        assert!(v["error"].is_null(), "{v}");
        assert_eq!(v["media"][0]["addr"], "203.0.113.10");
        assert_eq!(v["media"][0]["port"], 30000);
        assert_eq!(v["media"][0]["rtcp"]["port"], 30001);
        assert_eq!(v["media"][1]["port"], 0, "a disabled stream stays disabled");
        // The origin line and the headers are untouched.
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("o=- 1 1 IN IP4 10.0.0.1\r\n"));
        assert!(text.contains("Content-Length: 126\r\n"), "{text}");
        assert!(
            rewrite(
                b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n",
                "1.2.3.4:5".parse().unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn reports_a_broken_message() {
        let v = inspect(b"SIP/2.0 4294967301 Huge\r\n\r\n");
        assert_eq!(v["protocol"], "sip");
        assert!(v["error"].is_string());
        assert!(looks_like_sip(b"INVITE sip:a@b SIP/2.0\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
        assert!(!looks_like_sip(b"CRCX 1 aaln/1@gw MGCP 1.0\r\n"));
    }
}
