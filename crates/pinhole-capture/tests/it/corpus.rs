//! The shared corpus's whole captures (`*/pcap/*`, see its MANIFEST.md):
//! what each yields, checked against what tshark 4.0 finds in it, and the
//! corpus's message files (cut from those captures by frame number) checked
//! byte for byte against the units of those frames.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use pinhole_capture::{Capture, Transport, Unit, read};
use pinhole_testkit::corpus::shared_dir;

fn load(rel: &str) -> Capture {
    let path = shared_dir().join(rel);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (is the shared corpus there?)", path.display()));
    read(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Whether a message's first line is a SIP request or status line.
fn is_sip_start(msg: &[u8]) -> bool {
    let line = msg.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.starts_with(b"SIP/2.0 ") || (line.ends_with(b" SIP/2.0") && !line.starts_with(b" "))
}

/// SIP messages in a TCP byte stream, framed by Content-Length (RFC 3261
/// 18.3); the empty lines between messages (keepalives) are skipped.
fn sip_in_stream(mut rest: &[u8]) -> usize {
    let mut n = 0;
    loop {
        while let [b'\r' | b'\n', tail @ ..] = rest {
            rest = tail;
        }
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return n;
        };
        let head = &rest[..end];
        if is_sip_start(head) {
            n += 1;
        }
        let body = String::from_utf8_lossy(head)
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.trim();
                (k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("l"))
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        rest = rest.get(end + 4 + body..).unwrap_or_default();
    }
}

/// SIP messages in a capture: datagram payloads that start with a SIP line,
/// plus the messages of each TCP flow direction's reassembled bytes.
fn sip_count(c: &Capture) -> usize {
    let mut streams: HashMap<(SocketAddr, SocketAddr), Vec<u8>> = HashMap::new();
    let mut n = 0;
    for u in &c.units {
        match u.transport {
            Transport::Tcp => streams
                .entry((u.src, u.dst))
                .or_default()
                .extend_from_slice(&u.payload),
            _ => n += usize::from(is_sip_start(&u.payload)),
        }
    }
    n + streams.values().map(|s| sip_in_stream(s)).sum::<usize>()
}

fn count(c: &Capture, t: Transport) -> usize {
    c.units.iter().filter(|u| u.transport == t).count()
}

/// Frames of the units in which a SIP message starts.
fn sip_frames(c: &Capture) -> Vec<u64> {
    c.units
        .iter()
        .filter(|u| {
            is_sip_start(&u.payload)
                || (u.transport == Transport::Tcp && sip_in_stream(&u.payload) > 0)
        })
        .map(|u| u.frame)
        .collect()
}

struct Expect {
    file: &'static str,
    frames: u64,
    udp: usize,
    tcp: usize,
    /// Non-IP frames plus ICMP (tshark: `!ip && !ipv6`, plus `icmp`).
    skipped: u64,
    /// tshark `-Y sip` frames, which equals the messages here (no frame
    /// holds two).
    sip: usize,
}

const fn e(
    file: &'static str,
    frames: u64,
    udp: usize,
    tcp: usize,
    skipped: u64,
    sip: usize,
) -> Expect {
    Expect {
        file,
        frames,
        udp,
        tcp,
        skipped,
        sip,
    }
}

/// `udp` is tshark's count of `udp && !icmp`, `tcp` of `tcp.len > 0`
/// (no capture here holds a TCP retransmission of data).
///
/// Where the MANIFEST's `io,phs` line shows fewer SIP frames than here
/// (`sip_reqs` 2, `sip_resp` 6, `ipip` 2), tshark's protocol hierarchy
/// nests: the other SIP frames sit under `pppoes`, under `tcp`, or under
/// the inner IP header of the tunnel, and the MANIFEST lists only the first
/// branch. `tshark -Y sip` shows 4, 7 and 4 frames.
const EXPECTED: &[Expect] = &[
    e(
        "h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
        7217,
        7217,
        0,
        0,
        92,
    ),
    e("h323/pcap/ndpi-h323_tcp.pcap", 10, 0, 4, 0, 0),
    e(
        "h323/pcap/wiki-jul23-fastbusy-at-ccm-when-flex-oh-hook_1.pcap",
        27308,
        23669,
        2019,
        465,
        0,
    ),
    e("h323/pcap/wiki-rtp_example.pcap", 499, 466, 15, 0, 0),
    e("mgcp/pcap/ndpi-mgcp.pcapng", 12, 12, 0, 0, 0),
    e("mgcp/pcap/restcomm-mgcp-packet.pcap", 1, 1, 0, 0, 0),
    e(
        "mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap",
        4269,
        3583,
        198,
        164,
        14,
    ),
    e(
        "sip/pcap/heplify-erspan_sip_ipv4_udp.pcapng",
        140,
        140,
        0,
        0,
        140,
    ),
    e("sip/pcap/heplify-sip_ipv4_tcp.pcap", 84, 68, 7, 0, 7),
    e("sip/pcap/heplify-sip_ipv6_udp.pcap", 6, 6, 0, 0, 6),
    e("sip/pcap/pcapplusplus-sdp.pcap", 1, 1, 0, 0, 1),
    e(
        "sip/pcap/pcapplusplus-sip_non_default_port.pcap",
        2,
        2,
        0,
        0,
        2,
    ),
    e("sip/pcap/pcapplusplus-sip_not_sdp.pcap", 1, 1, 0, 0, 1),
    e("sip/pcap/pcapplusplus-sip_reqs.pcap", 4, 4, 0, 0, 4),
    e("sip/pcap/pcapplusplus-sip_resp.pcap", 7, 6, 1, 0, 7),
    e("sip/pcap/pkts-cancel.pcap", 7, 7, 0, 0, 7),
    // Only the first fragment of the INVITE is in the capture (tshark:
    // "Fragmented IP protocol", not SIP): 5 SIP messages, 1 fragment
    // dropped at the end.
    e("sip/pcap/pkts-fragmented_udp_sip.pcap", 6, 5, 0, 0, 5),
    e("sip/pcap/sngrep-aaa.pcap", 691, 590, 29, 44, 81),
    e("sip/pcap/sngrep-ipip.pcap", 4, 0, 4, 0, 4),
    e("sip/pcap/suricata-verify-sip-tcp.pcap", 11, 0, 3, 0, 2),
    e(
        "sip/pcap/suricata-verify-sip_compact_form.pcap",
        1,
        1,
        0,
        0,
        1,
    ),
    e("sip/pcap/wiki-DTMFsipinfo.pcap", 32, 32, 0, 0, 32),
    e(
        "sip/pcap/wiki-LtoZ_rtpFilter_fail_2.pcap",
        1221,
        1169,
        0,
        52,
        21,
    ),
    e("sip/pcap/wiki-T38.pcap", 18, 18, 0, 0, 18),
    e(
        "sip/pcap/wiki-filenameGRE199-fax-iz-InLife-G711.cap",
        95,
        95,
        0,
        0,
        91,
    ),
    e("sip/pcap/wiki-sip-rtp-opus.pcap", 433, 433, 0, 0, 6),
];

#[test]
fn every_corpus_capture_is_listed() {
    let mut on_disk = Vec::new();
    for sub in ["sip", "sdp", "mgcp", "h248", "h323"] {
        let dir = shared_dir().join(sub).join("pcap");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            on_disk.push(format!("{sub}/pcap/{name}"));
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|e| e.file.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn corpus_captures_match_tshark() {
    for x in EXPECTED {
        let c = load(x.file);
        let s = &c.stats;
        let got = (
            s.frames,
            count(&c, Transport::Udp),
            count(&c, Transport::Tcp),
            s.skipped,
            sip_count(&c),
        );
        assert_eq!(
            got,
            (x.frames, x.udp, x.tcp, x.skipped, x.sip),
            "{}: {s:?}",
            x.file
        );
        assert!(
            s.errors.is_empty() || x.file.contains("fragmented"),
            "{}: {:?}",
            x.file,
            s.errors
        );
        assert!(
            c.units.windows(2).all(|w| w[0].frame <= w[1].frame),
            "{}",
            x.file
        );
    }
}

#[test]
fn sip_frame_numbers_match_tshark() {
    // tshark -Y sip -T fields -e frame.number
    let cases: &[(&str, &[u64])] = &[
        (
            "sip/pcap/heplify-sip_ipv4_tcp.pcap",
            &[3, 5, 7, 9, 11, 81, 83],
        ),
        ("sip/pcap/pkts-fragmented_udp_sip.pcap", &[2, 3, 4, 5, 6]),
        ("sip/pcap/sngrep-ipip.pcap", &[1, 2, 3, 4]),
        (
            "sip/pcap/pcapplusplus-sip_resp.pcap",
            &[1, 2, 3, 4, 5, 6, 7],
        ),
        // tshark puts the REGISTER at frame 6, where its second segment
        // completes it; its start line arrived in frame 4, which is where a
        // unit holds it.
        ("sip/pcap/suricata-verify-sip-tcp.pcap", &[4, 8]),
    ];
    for (file, frames) in cases {
        assert_eq!(sip_frames(&load(file)), *frames, "{file}");
    }
}

#[test]
fn the_fragment_without_its_rest_is_dropped_and_reported() {
    let c = load("sip/pcap/pkts-fragmented_udp_sip.pcap");
    assert_eq!(c.stats.fragments_reassembled, 0);
    assert_eq!(c.stats.fragments_dropped, 1);
    assert_eq!(c.stats.errors.len(), 1);
    assert_eq!(c.stats.errors[0].0, 1);
}

#[test]
fn tunnels_and_links_in_the_corpus() {
    // GRE in pcapng: every SIP datagram comes out of the tunnel. Despite
    // the file's name, tshark shows GRE protocol 0x6558 (transparent
    // Ethernet bridging), not ERSPAN; the inner packets all have port 5260
    // at one end, the outer ones come from 192.168.1.213.
    let c = load("sip/pcap/heplify-erspan_sip_ipv4_udp.pcapng");
    let outer: std::net::IpAddr = "192.168.1.213".parse().unwrap();
    assert!(
        c.units
            .iter()
            .all(|u| { (u.src.port() == 5260 || u.dst.port() == 5260) && u.src.ip() != outer })
    );
    assert_eq!(c.units[0].src, "180.173.83.248:53221".parse().unwrap());
    // IP-in-IP: frames 1 and 2 are tunnelled, 3 and 4 are not; all four
    // carry SIP over TCP between the same inner addresses.
    let c = load("sip/pcap/sngrep-ipip.pcap");
    let peers: Vec<_> = c.units.iter().map(|u| (u.src.ip(), u.dst.ip())).collect();
    let a: std::net::IpAddr = "10.15.197.103".parse().unwrap();
    let b: std::net::IpAddr = "10.15.193.31".parse().unwrap();
    assert_eq!(peers, vec![(a, b), (b, a), (b, a), (a, b)]);
    // BSD null link type.
    let c = load("mgcp/pcap/restcomm-mgcp-packet.pcap");
    assert_eq!(c.units[0].dst, "127.0.0.1:2427".parse().unwrap());
    // Linux cooked captures, PPPoE, IPv6.
    for f in [
        "sip/pcap/wiki-T38.pcap",
        "sip/pcap/wiki-DTMFsipinfo.pcap",
        "sip/pcap/heplify-sip_ipv6_udp.pcap",
    ] {
        let c = load(f);
        assert!(!c.units.is_empty() && c.stats.skipped == 0, "{f}");
    }
    assert!(
        load("sip/pcap/heplify-sip_ipv6_udp.pcap")
            .units
            .iter()
            .all(|u| u.src.is_ipv6())
    );
}

#[test]
fn timestamps_follow_the_file_resolution() {
    // pkts-cancel.pcap frame 1, as tshark prints frame.time_epoch.
    let c = load("sip/pcap/pkts-cancel.pcap");
    let t = c.units[0].time;
    assert_eq!((t.as_secs(), t.subsec_micros()), EPOCH_PKTS_CANCEL_F1);
    // pcapng with the default microsecond resolution.
    let c = load("mgcp/pcap/ndpi-mgcp.pcapng");
    let t = c.units[0].time;
    assert_eq!((t.as_secs(), t.subsec_micros()), EPOCH_NDPI_MGCP_F1);
}

/// `tshark -r <file> -c1 -T fields -e frame.time_epoch`
const EPOCH_PKTS_CANCEL_F1: (u64, u32) = (1_362_867_909, 703_901);
const EPOCH_NDPI_MGCP_F1: (u64, u32) = (1_463_066_849, 887_905);

/// Which capture the corpus's message files named `<prefix>-f<N>-...`
/// were cut from.
const SOURCES: &[(&str, &str)] = &[
    (
        "sip/wiki-SIP_CALL_RTP_G711-f",
        "mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap",
    ),
    (
        "sip/wiki-FAX-Call-f",
        "h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    ),
    ("sip/wiki-T38-f", "sip/pcap/wiki-T38.pcap"),
    (
        "sip/heplify-sip_ipv6_udp-f",
        "sip/pcap/heplify-sip_ipv6_udp.pcap",
    ),
    (
        "sip/heplify-sip_ipv4_tcp-f",
        "sip/pcap/heplify-sip_ipv4_tcp.pcap",
    ),
    ("sip/pcapplusplus-sdp-f", "sip/pcap/pcapplusplus-sdp.pcap"),
    (
        "sip/pcapplusplus-sip_non_default_port-f",
        "sip/pcap/pcapplusplus-sip_non_default_port.pcap",
    ),
    (
        "sip/pcapplusplus-sip_reqs-f",
        "sip/pcap/pcapplusplus-sip_reqs.pcap",
    ),
    (
        "sip/pcapplusplus-sip_resp-f",
        "sip/pcap/pcapplusplus-sip_resp.pcap",
    ),
    (
        "sip/pcapplusplus-sip_not_sdp-f",
        "sip/pcap/pcapplusplus-sip_not_sdp.pcap",
    ),
    ("sip/sngrep-ipip-f", "sip/pcap/sngrep-ipip.pcap"),
    ("sip/wiki-DTMFsipinfo-f", "sip/pcap/wiki-DTMFsipinfo.pcap"),
    ("sip/wiki-sip-rtp-opus-f", "sip/pcap/wiki-sip-rtp-opus.pcap"),
    (
        "sip/wiki-LtoZ-f",
        "sip/pcap/wiki-LtoZ_rtpFilter_fail_2.pcap",
    ),
    (
        "sip/suricata-verify-sip_compact_form-f",
        "sip/pcap/suricata-verify-sip_compact_form.pcap",
    ),
    (
        "sdp/wiki-SIP_CALL_RTP_G711-f",
        "mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap",
    ),
    (
        "sdp/wiki-FAX-Call-f",
        "h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    ),
    ("sdp/wiki-T38-f", "sip/pcap/wiki-T38.pcap"),
    (
        "sdp/heplify-sip_ipv6_udp-f",
        "sip/pcap/heplify-sip_ipv6_udp.pcap",
    ),
    (
        "sdp/heplify-sip_ipv4_tcp-f",
        "sip/pcap/heplify-sip_ipv4_tcp.pcap",
    ),
    ("sdp/pcapplusplus-sdp-f", "sip/pcap/pcapplusplus-sdp.pcap"),
    (
        "sdp/pcapplusplus-sip_non_default_port-f",
        "sip/pcap/pcapplusplus-sip_non_default_port.pcap",
    ),
    ("sdp/sngrep-ipip-f", "sip/pcap/sngrep-ipip.pcap"),
    ("sdp/wiki-DTMFsipinfo-f", "sip/pcap/wiki-DTMFsipinfo.pcap"),
    ("sdp/wiki-sip-rtp-opus-f", "sip/pcap/wiki-sip-rtp-opus.pcap"),
    (
        "sdp/wiki-LtoZ-f",
        "sip/pcap/wiki-LtoZ_rtpFilter_fail_2.pcap",
    ),
    (
        "mgcp/wiki-SIP_CALL-f",
        "mgcp/pcap/wiki-SIP_CALL_RTP_G711.pcap",
    ),
    ("mgcp/ndpi-mgcp-f", "mgcp/pcap/ndpi-mgcp.pcapng"),
    (
        "mgcp/restcomm-mgcp-packet-f",
        "mgcp/pcap/restcomm-mgcp-packet.pcap",
    ),
    (
        "h248/wiki-FAX-f",
        "h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    ),
    (
        "h323/msg/wiki-rtp_example-f",
        "h323/pcap/wiki-rtp_example.pcap",
    ),
    (
        "h323/msg/wiki-jul23-f",
        "h323/pcap/wiki-jul23-fastbusy-at-ccm-when-flex-oh-hook_1.pcap",
    ),
];

/// Every message file cut from a capture that is in the corpus.
fn cut_messages() -> Vec<(PathBuf, &'static str, u64)> {
    let mut out = Vec::new();
    for sub in ["sip", "sdp", "mgcp", "h248", "h323/msg"] {
        for entry in std::fs::read_dir(shared_dir().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let name = format!("{sub}/{}", path.file_name().unwrap().to_string_lossy());
            for (prefix, capture) in SOURCES {
                let Some(rest) = name.strip_prefix(prefix) else {
                    continue;
                };
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(frame) = digits.parse() {
                    out.push((path.clone(), *capture, frame));
                }
            }
        }
    }
    out
}

#[test]
fn corpus_messages_are_the_units_of_their_frames() {
    let cut = cut_messages();
    assert!(
        cut.len() >= 90,
        "only {} cut message files found",
        cut.len()
    );
    let mut captures: HashMap<&str, Vec<Unit>> = HashMap::new();
    for (path, capture, frame) in &cut {
        let units = captures
            .entry(capture)
            .or_insert_with(|| load(capture).units);
        let expect = std::fs::read(path).unwrap();
        let unit = units
            .iter()
            .find(|u| u.frame == *frame)
            .unwrap_or_else(|| panic!("{}: no unit in frame {frame} of {capture}", path.display()));
        if path.extension().is_some_and(|x| x == "sdp") {
            // An SDP file is the body of the SIP message in that frame.
            assert!(unit.payload.ends_with(&expect), "{}", path.display());
        } else {
            assert_eq!(unit.payload, expect, "{}", path.display());
        }
    }
}

#[test]
fn h248_datagrams_match_tshark() {
    // MANIFEST: tshark io,phs megaco:130. Every one is a UDP datagram to or
    // from port 2944 in compact text form, and the corpus's cut messages
    // (frames 1, 21, 22, 56, …) are among them.
    let c = load("h248/pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap");
    let h248: Vec<&Unit> = c
        .units
        .iter()
        .filter(|u| {
            u.transport == Transport::Udp
                && [u.src.port(), u.dst.port()]
                    .iter()
                    .any(|p| *p == 2944 || *p == 2945)
        })
        .collect();
    assert_eq!(h248.len(), 130);
    assert!(h248.iter().all(|u| u.payload.starts_with(b"!/1 ")));
    let frames: Vec<u64> = h248.iter().map(|u| u.frame).collect();
    for f in [1, 21, 22, 56, 7201, 7204] {
        assert!(frames.contains(&f), "frame {f}");
    }
    // One gateway, one call agent.
    let mut peers: Vec<SocketAddr> = h248.iter().flat_map(|u| [u.src, u.dst]).collect();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 2, "{peers:?}");
}
