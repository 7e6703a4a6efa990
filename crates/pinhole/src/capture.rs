//! `pinhole inspect CAPTURE`: every SIP and MGCP message, every H.248
//! transaction (and Pinhole control message) in a pcap or pcapng file, one
//! JSON line each, as operators have their captures — any link type,
//! tunnels, IP fragments, TCP streams, WebSocket and SCTP (`pinhole_capture`
//! reads them). MGCP and H.248 text are read from UDP datagrams: MGCP on
//! its ports or with a command line, H.248 on UDP 2944/2945 (or anywhere
//! with the long `MEGACO/` header).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;

use pinhole_capture::{Transport, Unit};

use crate::inspect::h248;
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
    /// Payloads that were neither SIP, MGCP, H.248 nor control messages.
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
        // TPKT (RFC 1006): H.323 call signaling or H.245.
        if buf.starts_with(&[3, 0]) {
            match pinhole_core::framing::tpkt(buf) {
                Ok(Some(f)) => {
                    if let pinhole_core::framing::Frame::Message(n) = f {
                        let mut v = crate::h323::inspect_payload(&buf[4..n]);
                        if !v["error"].is_null() {
                            s.errors += 1;
                        }
                        place(&mut v, unit);
                        writeln!(out, "{v}")?;
                        s.messages += 1;
                    }
                    buf.drain(..f.len());
                    continue;
                }
                Ok(None) => return Ok(()),
                Err(_) => {
                    s.other += 1;
                    buf.clear();
                    return Ok(());
                }
            }
        }
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
    let ras_port = unit.transport == Transport::Udp
        && (crate::h323::RAS_PORTS.contains(&unit.src.port())
            || crate::h323::RAS_PORTS.contains(&unit.dst.port()));
    let mut v = if pinhole_core::wire::is_control(payload) {
        crate::inspect::inspect(payload)
    } else if ras_port {
        crate::h323::inspect_ras(payload)
    } else if unit.transport == Transport::Udp && is_h248(unit, payload) {
        // One line per transaction, reply, pending and ack.
        for mut v in h248::inspect(payload) {
            if !v["error"].is_null() {
                s.errors += 1;
            }
            place(&mut v, unit);
            writeln!(out, "{v}")?;
            s.messages += 1;
        }
        return Ok(());
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

/// An H.248 text header (after white space and comments) on UDP 2944 or
/// 2945; elsewhere only the long `MEGACO/` form, since `!/` is short
/// enough to start other payloads.
fn is_h248(unit: &Unit, payload: &[u8]) -> bool {
    if !h248::looks_like_h248(payload) {
        return false;
    }
    let on_port = h248::PORTS.contains(&unit.src.port()) || h248::PORTS.contains(&unit.dst.port());
    on_port || {
        let start = payload
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        payload
            .get(start..start + 7)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"MEGACO/"))
    }
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
    fn h248_transactions_of_the_capture() {
        let file = "h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap";
        let (s, v) = lines(file);
        let h248: Vec<&Value> = v.iter().filter(|m| m["protocol"] == "h248").collect();
        // 130 datagrams on UDP 2944 (tshark: megaco 130), one transaction
        // or reply each: 65 requests, 65 replies.
        assert_eq!(h248.len(), 130, "{file}");
        assert_eq!(s.errors, 0);
        assert!(
            h248.iter()
                .all(|m| m["error"].is_null() && m["transport"] == "udp")
        );
        let count = |k: &str| h248.iter().filter(|m| m["kind"] == k).count();
        assert_eq!(
            ["Reply", "AuditValue", "Modify", "Notify", "Add", "Subtract"].map(count),
            [65, 53, 8, 2, 1, 1]
        );
        let add = h248.iter().find(|m| m["kind"] == "Add").unwrap();
        assert_eq!(add["frame"], 21);
        assert_eq!(add["context"], "$");
        assert_eq!(add["mid"], "<iMSS>");
        assert_eq!(add["media"][0]["choose"], true);
        let answer = h248.iter().find(|m| m["frame"] == 22).unwrap();
        assert_eq!(answer["kind"], "Reply");
        assert_eq!(answer["role"], "answer");
        assert_eq!(answer["context"], 191);
        assert_eq!(answer["media"][0]["addr"], "10.23.1.52");
        assert_eq!(answer["media"][0]["port"], 16756);
        assert_eq!(answer["media"][0]["descriptor"], "local");
        // The SIP legs of the same call are there too.
        assert!(v.iter().any(|m| m["protocol"] == "sip"));
    }

    /// A pcap of raw IPv4 packets (link type 101), each a UDP datagram.
    fn raw_ip_pcap(datagrams: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend(0xa1b2_c3d4u32.to_le_bytes());
        file.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        file.extend(65535u32.to_le_bytes());
        file.extend(101u32.to_le_bytes());
        for (i, (sport, dport, payload)) in datagrams.iter().enumerate() {
            let udp_len = 8 + payload.len();
            let ip_len = 20 + udp_len;
            let mut p = vec![
                0x45,
                0,
                (ip_len >> 8) as u8,
                ip_len as u8,
                0,
                0,
                0,
                0,
                64,
                17,
                0,
                0,
            ];
            p.extend([192, 0, 2, 1, 192, 0, 2, 2]);
            p.extend(sport.to_be_bytes());
            p.extend(dport.to_be_bytes());
            p.extend([(udp_len >> 8) as u8, udp_len as u8, 0, 0]);
            p.extend(*payload);
            file.extend((1_700_000_000 + i as u32).to_le_bytes());
            file.extend(0u32.to_le_bytes());
            file.extend((p.len() as u32).to_le_bytes());
            file.extend((p.len() as u32).to_le_bytes());
            file.extend(p);
        }
        file
    }

    #[test]
    fn h248_on_its_ports_with_errors_and_comments() {
        let file = raw_ip_pcap(&[
            (
                2944,
                2944,
                b";pinhole-mg=[192.0.2.7]:2944\r\n!/1 [192.0.2.1]:2944 T=5{C=$ {A=RTP/$}} PN=4{}",
            ),
            (40000, 2945, b"MEGACO/1 [192.0.2.1]:2944 T=6{C=1{MF=x{"),
            // `!/` away from the H.248 ports is not taken for H.248.
            (40000, 40002, b"!/1 <mg>\nT=1{C=-{AV=ROOT}}"),
            // The long header is, on any port.
            (40000, 40002, b"MEGACO/1 <mg>\nT=1{C=-{AV=ROOT}}"),
        ]);
        let mut out = Vec::new();
        let s = inspect(&file, &mut out).unwrap();
        let v: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!((s.frames, s.messages, s.errors, s.other), (4, 4, 1, 1));
        let kinds: Vec<&Value> = v.iter().map(|m| &m["kind"]).collect();
        assert_eq!(
            kinds,
            [
                &json!("Add"),
                &json!("TransactionPending"),
                &Value::Null,
                &json!("AuditValue")
            ]
        );
        assert_eq!(v[0]["frame"], 1);
        assert_eq!(v[1]["frame"], 1);
        assert_eq!(v[0]["context"], "$");
        assert_eq!(v[2]["protocol"], "h248");
        assert_eq!(v[2]["frame"], 2);
        assert_eq!(v[2]["dst"], "192.0.2.2:2945");
        assert_eq!(v[2]["error"], "line 1: unterminated {");
        assert_eq!(v[3]["frame"], 4);
    }

    #[test]
    fn h323_call_signaling_and_h245_frames_of_the_capture() {
        let raw = std::fs::read(
            pinhole_testkit::corpus::shared_dir().join("h323/pcap/wiki-rtp_example.pcap"),
        )
        .unwrap();
        let mut out = Vec::new();
        let s = inspect(&raw, &mut out).unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let h323: Vec<&Value> = lines.iter().filter(|v| v["protocol"] == "h323").collect();
        // tshark: 4 Q.931 and 11 H.245 messages (one segment holds two).
        assert_eq!(h323.iter().filter(|v| v["layer"] == "h225").count(), 4);
        assert_eq!(h323.iter().filter(|v| v["layer"] == "h245").count(), 12);
        assert_eq!(s.errors, 0);
        let acks: Vec<_> = h323
            .iter()
            .filter(|v| v["kind"] == "openLogicalChannelAck")
            .collect();
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0]["media"][0]["addr"], "10.1.3.143");
        assert_eq!(acks[0]["transport"], "tcp");
        let connect = h323.iter().find(|v| v["kind"] == "connect").unwrap();
        assert_eq!(
            connect["addresses"][0],
            json!({"field": "h245Address", "addr": "10.1.6.18", "port": 1232})
        );
    }

    #[test]
    fn not_a_capture_is_an_error() {
        assert!(!is_capture(b"INVITE sip:a@b SIP/2.0\r\n"));
        let mut out = Vec::new();
        assert!(inspect(&[0xd4, 0xc3, 0xb2, 0xa1, 0, 0], &mut out).is_err());
    }
}
