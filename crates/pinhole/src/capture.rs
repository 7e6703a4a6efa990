//! `pinhole inspect CAPTURE`: every SIP and MGCP message (and Pinhole
//! control message) in a pcap or pcapng file, one JSON line each, as operators have
//! their captures — any link type, tunnels, IP fragments, TCP streams,
//! WebSocket and SCTP (`pinhole_capture` reads them).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;

use pinhole_capture::{Transport, Unit};
use pinhole_sip::{Frame, frame};
use serde_json::{Value, json};

/// Most bytes buffered per TCP flow direction while a message is incomplete.
const MAX_FLOW_BUFFER: usize = 1 << 20;

/// True for a pcap (either byte order, µs or ns) or pcapng file.
pub(crate) fn is_capture(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

/// What one capture held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Frames in the file.
    pub(crate) frames: u64,
    /// Messages printed.
    pub(crate) messages: u64,
    /// Messages printed with an error.
    pub(crate) errors: u64,
    /// Payloads that were neither SIP nor control messages.
    pub(crate) other: u64,
}

/// Prints one JSON line per message of the capture to `out`.
pub(crate) fn inspect(bytes: &[u8], out: &mut dyn Write) -> anyhow::Result<Summary> {
    let cap = pinhole_capture::read(bytes)?;
    let mut s = Summary {
        frames: cap.stats.frames,
        ..Summary::default()
    };
    let mut flows: HashMap<(SocketAddr, SocketAddr), Vec<u8>> = HashMap::new();
    for unit in &cap.units {
        match unit.transport {
            Transport::Tcp => {
                let buf = flows.entry((unit.src, unit.dst)).or_default();
                if unit.after_gap {
                    buf.clear();
                }
                buf.extend_from_slice(&unit.payload);
                drain_stream(unit, buf, out, &mut s)?;
                if buf.len() > MAX_FLOW_BUFFER {
                    buf.clear();
                }
            }
            _ => one_message(unit, &unit.payload, out, &mut s)?,
        }
    }
    Ok(s)
}

/// Cuts whole SIP messages off the front of a TCP flow's buffer.
fn drain_stream(
    unit: &Unit,
    buf: &mut Vec<u8>,
    out: &mut dyn Write,
    s: &mut Summary,
) -> anyhow::Result<()> {
    loop {
        // A stream that does not start with SIP (TLS, HTTP, ...) is not
        // ours to buffer.
        let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'));
        if let Some(i) = start
            && buf.len() - i >= 8
            && !crate::sip::looks_like_sip(&buf[i..])
            && !buf[i..]
                .windows(8)
                .any(|w| w == b"SIP/2.0\r" || w == b"SIP/2.0\n")
        {
            s.other += 1;
            buf.clear();
            return Ok(());
        }
        match frame(buf) {
            Ok(Some(Frame::Keepalive(n))) => {
                buf.drain(..n.min(buf.len()));
            }
            Ok(Some(Frame::Message(n))) => {
                let n = n.min(buf.len());
                one_message(unit, &buf[..n], out, s)?;
                buf.drain(..n);
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                // The stream cannot be framed any more: report and resync
                // at the next segment.
                let mut v = json!({"protocol": "sip", "kind": null, "call": null, "media": [], "error": e.to_string()});
                place(&mut v, unit);
                writeln!(out, "{v}")?;
                s.messages += 1;
                s.errors += 1;
                buf.clear();
                return Ok(());
            }
        }
    }
}

fn one_message(
    unit: &Unit,
    payload: &[u8],
    out: &mut dyn Write,
    s: &mut Summary,
) -> anyhow::Result<()> {
    let mgcp_port = unit.transport == Transport::Udp
        && (crate::mgcp::PORTS.contains(&unit.src.port())
            || crate::mgcp::PORTS.contains(&unit.dst.port()));
    let mut v = if pinhole_core::wire::is_control(payload) {
        crate::inspect::inspect(payload)
    } else if crate::sip::looks_like_sip(payload) {
        crate::sip::inspect(payload)
    } else if unit.transport == Transport::Udp && crate::mgcp::looks_like_mgcp(payload, mgcp_port) {
        // One line per piggybacked message.
        for mut v in crate::mgcp::inspect(payload) {
            if !v["error"].is_null() {
                s.errors += 1;
            }
            place(&mut v, unit);
            writeln!(out, "{v}")?;
            s.messages += 1;
        }
        return Ok(());
    } else {
        s.other += 1;
        return Ok(());
    };
    if !v["error"].is_null() {
        s.errors += 1;
    }
    place(&mut v, unit);
    writeln!(out, "{v}")?;
    s.messages += 1;
    Ok(())
}

/// Where the message was in the capture.
fn place(v: &mut Value, unit: &Unit) {
    let transport = match unit.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Sctp => "sctp",
        Transport::WebSocket => "ws",
    };
    v["frame"] = json!(unit.frame);
    v["time"] = json!(unit.time.as_secs_f64());
    v["transport"] = json!(transport);
    v["src"] = json!(unit.src.to_string());
    v["dst"] = json!(unit.dst.to_string());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn corpus(path: &str) -> Vec<u8> {
        let dir = pinhole_testkit::corpus::shared_dir();
        std::fs::read(dir.join(path)).unwrap()
    }

    fn lines(file: &str) -> (Summary, Vec<Value>) {
        let bytes = corpus(file);
        assert!(is_capture(&bytes), "{file}");
        let mut out = Vec::new();
        let s = inspect(&bytes, &mut out).unwrap();
        let v = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (s, v)
    }

    #[test]
    fn sip_over_udp_with_ipv6_sdp() {
        let (s, v) = lines("sip/pcap/heplify-sip_ipv6_udp.pcap");
        assert_eq!(s.messages, 6, "{v:?}");
        assert_eq!(v[0]["kind"], "INVITE");
        assert_eq!(v[0]["transport"], "udp");
        assert!(
            v[0]["media"][0]["addr"].as_str().unwrap().contains(':'),
            "{}",
            v[0]
        );
        assert!(v.iter().all(|m| m["error"].is_null()));
        let kinds: Vec<&str> = v.iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert!(
            kinds.contains(&"BYE") && kinds.contains(&"200"),
            "{kinds:?}"
        );
    }

    #[test]
    fn sip_over_tcp_is_framed_from_the_stream() {
        let (s, v) = lines("sip/pcap/heplify-sip_ipv4_tcp.pcap");
        assert_eq!(s.messages, 7, "{v:?}");
        assert!(
            v.iter()
                .all(|m| m["transport"] == "tcp" && m["error"].is_null())
        );
        let invite = v.iter().find(|m| m["kind"] == "INVITE").unwrap();
        assert_eq!(invite["media"].as_array().unwrap().len(), 1);
        // The RTP beside it is not SIP.
        assert!(s.other > 0);
    }

    #[test]
    fn pppoe_and_linux_cooked_captures() {
        let (s, v) = lines("sip/pcap/wiki-DTMFsipinfo.pcap");
        assert_eq!(s.messages, 32, "PPPoE: {v:?}");
        let (s, _) = lines("sip/pcap/wiki-T38.pcap");
        assert_eq!(s.messages, 18, "Linux cooked");
    }

    #[test]
    fn mgcp_datagrams_of_the_captures() {
        for (file, n) in [
            ("mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap", 30),
            ("mgcp/pcap/ndpi-mgcp.pcapng", 12),
            ("mgcp/pcap/restcomm-mgcp-packet.pcap", 1),
        ] {
            let (_, v) = lines(file);
            let mgcp: Vec<&Value> = v.iter().filter(|m| m["protocol"] == "mgcp").collect();
            assert_eq!(mgcp.len(), n, "{file}: tshark's mgcp count");
            assert!(mgcp.iter().all(|m| m["error"].is_null()), "{file}");
        }
        let (_, v) = lines("mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap");
        let crcx = v.iter().find(|m| m["kind"] == "CRCX").unwrap();
        assert_eq!(crcx["media"][0]["port"], 40362);
        assert_eq!(crcx["role"], "offer");
        let answer = v.iter().find(|m| m["role"] == "answer").unwrap();
        assert_eq!(answer["kind"], "200");
        assert_eq!(answer["media"][0]["addr"], "200.57.7.202");
    }

    #[test]
    fn not_a_capture_is_an_error() {
        assert!(!is_capture(b"INVITE sip:a@b SIP/2.0\r\n"));
        let mut out = Vec::new();
        assert!(inspect(&[0xd4, 0xc3, 0xb2, 0xa1, 0, 0], &mut out).is_err());
    }
}
