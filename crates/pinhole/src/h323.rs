//! `pinhole inspect` and `pinhole rewrite` for H.323: TPKT frames of
//! H.225.0 call signaling (Q.931 with the User-user data) or of H.245,
//! and RAS datagrams. One JSON line per message, with the logical
//! channels' addresses under `media` and every other transport address
//! under `addresses`.

use std::net::SocketAddr;

use pinhole_core::framing::{Frame, tpkt};
use pinhole_h323::signal::{Layer, Signal, SignalError};
use serde_json::{Value, json};

/// RAS's UDP ports (H.225.0 §7.1: discovery 1718, unicast 1719).
pub(crate) const RAS_PORTS: [u16; 2] = [1718, 1719];

/// True when `raw` is one or more whole TPKT frames and nothing else.
pub(crate) fn looks_like_tpkt(raw: &[u8]) -> bool {
    let mut rest = raw;
    while !rest.is_empty() {
        match tpkt(rest) {
            Ok(Some(f)) => rest = &rest[f.len()..],
            _ => return false,
        }
    }
    !raw.is_empty()
}

/// The TPKT frames of `raw` (whole ones; keepalives skipped).
fn frames(raw: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Ok(Some(f)) = tpkt(rest) {
        if let Frame::Message(n) = f {
            out.push(&rest[4..n]);
        }
        rest = &rest[f.len()..];
    }
    out
}

/// Locates a TPKT payload: Q.931 first (its protocol discriminator), then
/// H.245 — in a file or a capture the connection's kind is not known.
fn locate(payload: &[u8]) -> Result<Signal, SignalError> {
    if payload.first() == Some(&0x08) {
        let q = Signal::call_signaling(payload);
        if q.is_ok() || Signal::h245(payload).is_err() {
            return q;
        }
    }
    Signal::h245(payload)
}

/// One JSON line per TPKT frame of `raw`.
pub(crate) fn inspect(raw: &[u8]) -> Vec<Value> {
    frames(raw)
        .into_iter()
        .map(|p| describe(locate(p), p))
        .collect()
}

/// The JSON line of a RAS datagram.
pub(crate) fn inspect_ras(datagram: &[u8]) -> Value {
    describe(Signal::ras(datagram), datagram)
}

/// The JSON line of one TPKT payload (for captures).
pub(crate) fn inspect_payload(payload: &[u8]) -> Value {
    describe(locate(payload), payload)
}

fn describe(sig: Result<Signal, SignalError>, payload: &[u8]) -> Value {
    let sig = match sig {
        Ok(s) => s,
        Err(e) => {
            return json!({
                "protocol": "h323",
                "kind": null,
                "length": payload.len(),
                "media": [],
                "addresses": [],
                "error": e.to_string(),
                "error_kind": e.kind(),
            });
        }
    };
    let mut media = Vec::new();
    let mut addresses = Vec::new();
    for a in sig.addresses() {
        let at = a.get(payload);
        let mut v = json!({"field": a.field, "addr": at.ip().to_string(), "port": at.port()});
        if let Some(n) = a.nested.and_then(|n| sig.walk.nested.get(n)) {
            v["in"] = json!(format!("{}[{}]", n.field, n.index));
            v["message"] = json!(n.message);
        }
        if matches!(a.field, "mediaChannel" | "mediaControlChannel") {
            media.push(v);
        } else {
            addresses.push(v);
        }
    }
    let (layer, q931) = match sig.layer {
        Layer::Q931 {
            kind,
            call_reference,
            from_destination,
        } => (
            "h225",
            json!({"type": kind.name(), "call_reference": call_reference, "from_destination": from_destination}),
        ),
        Layer::H245 => ("h245", Value::Null),
        Layer::Ras => ("ras", Value::Null),
    };
    let nested: Vec<Value> = sig
        .walk
        .nested
        .iter()
        .map(|n| json!({"field": n.field, "index": n.index, "message": n.message}))
        .collect();
    json!({
        "protocol": "h323",
        "kind": sig.name(),
        "layer": layer,
        "q931": q931,
        "length": payload.len(),
        "media": media,
        "addresses": addresses,
        "nested": nested,
        "error": null,
    })
}

/// Every transport address of `raw` (TPKT frames, or one RAS datagram when
/// `ras`) moved to `to`'s address with consecutive ports from its port;
/// patched in place, so every other octet stays. A message that does not
/// walk is refused whole.
pub(crate) fn rewrite(raw: &[u8], to: SocketAddr, ras: bool) -> Result<Vec<u8>, String> {
    let mut out = raw.to_vec();
    let mut port = to.port();
    let mut patch = |sig: &Signal, at: usize, out: &mut Vec<u8>| -> Result<(), String> {
        for a in sig.addresses() {
            let mut a = a;
            a.ip_at += at;
            a.port_at += at;
            a.set(out, SocketAddr::new(to.ip(), port))
                .map_err(|e| e.to_string())?;
            port = port.wrapping_add(1);
        }
        Ok(())
    };
    if ras {
        let sig = Signal::ras(raw).map_err(|e| e.to_string())?;
        patch(&sig, 0, &mut out)?;
        return Ok(out);
    }
    let mut at = 0;
    while let Ok(Some(f)) = tpkt(&raw[at..]) {
        if let Frame::Message(n) = f {
            let payload = &raw[at + 4..at + n];
            let sig = locate(payload).map_err(|e| format!("frame at octet {at}: {e}"))?;
            patch(&sig, at + 4, &mut out)?;
        }
        at += f.len();
    }
    if at != raw.len() {
        return Err(format!("octets {at}.. are not a whole TPKT frame"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(
            pinhole_testkit::corpus::shared_dir()
                .join("h323/msg")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn a_fast_start_setup_lists_its_media_and_signaling_addresses() {
        let raw = corpus("wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt");
        assert!(looks_like_tpkt(&raw));
        let v = inspect(&raw);
        assert_eq!(v.len(), 1);
        let v = &v[0];
        assert_eq!(v["protocol"], "h323");
        assert_eq!(v["kind"], "setup");
        assert_eq!(v["layer"], "h225");
        assert_eq!(v["q931"]["type"], "Setup");
        assert_eq!(
            v["addresses"][0],
            json!({"field": "destCallSignalAddress", "addr": "177.168.209.10", "port": 1720})
        );
        assert_eq!(v["addresses"][1]["field"], "sourceCallSignalAddress");
        assert_eq!(v["media"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["media"][1],
            json!({"field": "mediaChannel", "addr": "135.16.177.5", "port": 17810, "in": "fastStart[1]", "message": "openLogicalChannel"})
        );
        assert!(v["error"].is_null());
    }

    #[test]
    fn two_h245_frames_in_one_segment_are_two_lines() {
        let v = inspect(&corpus(
            "wiki-rtp_example-f22-h245-TCSAck+MSDAck-two-tpkt.tpkt",
        ));
        let kinds: Vec<_> = v.iter().map(|v| v["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["terminalCapabilitySetAck", "masterSlaveDeterminationAck"]
        );
        assert!(v.iter().all(|v| v["layer"] == "h245"));
    }

    #[test]
    fn rewrite_moves_every_address_and_keeps_the_rest() {
        let raw = corpus("wiki-jul23-f7069-connect-fastStart-h245Address.tpkt");
        let to: SocketAddr = "203.0.113.5:30000".parse().unwrap();
        let out = rewrite(&raw, to, false).unwrap();
        assert_eq!(out.len(), raw.len());
        let v = &inspect(&out)[0];
        assert_eq!(
            v["addresses"][0],
            json!({"field": "h245Address", "addr": "203.0.113.5", "port": 30000})
        );
        let ports: Vec<_> = v["media"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["port"].as_u64().unwrap())
            .collect();
        assert_eq!(ports, [30001, 30002, 30003, 30004]);
        // Only address octets differ: 5 addresses of 6 octets.
        let diff = raw.iter().zip(&out).filter(|(a, b)| a != b).count();
        assert!(diff <= 30, "{diff}");
    }

    #[test]
    fn a_damaged_message_is_an_error_and_is_not_rewritten() {
        let mut raw = corpus("wiki-rtp_example-f31-h245-OLCAck.tpkt");
        raw.truncate(raw.len() - 4);
        raw[3] -= 4;
        let v = &inspect(&raw)[0];
        assert_eq!(v["error_kind"], "truncated");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("MultimediaSystemControlMessage.response.openLogicalChannelAck"),
            "{v}"
        );
        assert!(rewrite(&raw, "203.0.113.5:1".parse().unwrap(), false).is_err());
    }
}
