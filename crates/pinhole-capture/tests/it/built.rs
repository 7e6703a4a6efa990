//! Captures built here, one feature each: link types, file variants,
//! tunnels, fragments, TCP reassembly, WebSocket, SCTP, damage.

use std::time::Duration;

use crate::common::*;
use pinhole_capture::{
    Capture, CaptureError, Decoder, Limits, LinkType, Transport, read, read_from, read_with,
};

const SIP: &[u8] = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n";

/// The single unit of a capture, checked to be the SIP datagram from
/// 192.0.2.1:5060 to 192.0.2.2:5080 (or the IPv6 pair).
fn one_sip_datagram(c: &Capture) {
    assert_eq!(c.units.len(), 1, "{:?}", c.stats);
    let u = &c.units[0];
    assert_eq!(u.transport, Transport::Udp);
    assert_eq!(u.payload, SIP);
    assert_eq!((u.src.port(), u.dst.port()), (5060, 5080));
    assert_eq!(c.stats.skipped, 0);
    assert!(c.stats.errors.is_empty(), "{:?}", c.stats.errors);
}

fn sip4() -> Vec<u8> {
    udp("192.0.2.1:5060", "192.0.2.2:5080", SIP)
}

fn sip6() -> Vec<u8> {
    udp("[2001:db8::1]:5060", "[2001:db8::2]:5080", SIP)
}

#[test]
fn ethernet_vlan_and_qinq() {
    let plain = eth(0x0800, &sip4());
    let mut tag = vec![0x00, 0x64];
    tag.extend(0x86DDu16.to_be_bytes());
    tag.extend(sip6());
    let vlan = eth(0x8100, &tag);
    let mut qinq_inner = vec![0x00, 0x0A];
    qinq_inner.extend(0x8100u16.to_be_bytes());
    qinq_inner.extend(&tag);
    let qinq = eth(0x88A8, &qinq_inner);
    for frame in [plain, vlan, qinq] {
        one_sip_datagram(&read(&pcap(1, &[frame])).unwrap());
    }
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A short UDP datagram in a minimum-size frame: the padding after the
    // IP packet must not reach the payload.
    let mut frame = eth(
        0x0800,
        &udp("192.0.2.1:5060", "192.0.2.2:5080", b"\r\n\r\n"),
    );
    frame.resize(60, 0);
    let c = read(&pcap(1, &[frame])).unwrap();
    assert_eq!(c.units[0].payload, b"\r\n\r\n");
}

#[test]
fn linux_cooked_v1_and_v2() {
    // SLL: packet type, ARPHRD_ETHER, address length, address, protocol.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll.extend(0x0800u16.to_be_bytes());
    sll.extend(sip4());
    one_sip_datagram(&read(&pcap(113, &[sll])).unwrap());
    // SLL2: protocol, reserved, interface index, ARPHRD, type, length, address.
    let mut sll2 = Vec::new();
    sll2.extend(0x86DDu16.to_be_bytes());
    sll2.extend([0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    sll2.extend(sip6());
    one_sip_datagram(&read(&pcap(276, &[sll2])).unwrap());
}

#[test]
fn raw_ip_link_types() {
    for link in [101, 12, 14, 228] {
        one_sip_datagram(&read(&pcap(link, &[sip4()])).unwrap());
    }
    for link in [101, 229] {
        one_sip_datagram(&read(&pcap(link, &[sip6()])).unwrap());
    }
}

#[test]
fn loopback_null_in_either_byte_order_and_loop() {
    let mut le = 2u32.to_le_bytes().to_vec();
    le.extend(sip4());
    let mut be = 30u32.to_be_bytes().to_vec(); // macOS AF_INET6, big-endian host
    be.extend(sip6());
    let c = read(&pcap(0, &[le.clone(), be.clone()])).unwrap();
    assert_eq!(c.units.len(), 2);
    assert!(c.units[1].src.is_ipv6());
    let mut lp = 2u32.to_be_bytes().to_vec();
    lp.extend(sip4());
    one_sip_datagram(&read(&pcap(108, &[lp])).unwrap());
    // An address family that is not IP is skipped, silently.
    let mut other = 7u32.to_le_bytes().to_vec();
    other.extend(sip4());
    let c = read(&pcap(0, &[other])).unwrap();
    assert_eq!((c.units.len(), c.stats.skipped), (0, 1));
    assert!(c.stats.errors.is_empty());
}

#[test]
fn pppoe_session_frames() {
    for (proto, packet) in [(0x0021u16, sip4()), (0x0057, sip6())] {
        let mut s = vec![0x11, 0x00, 0x12, 0x34];
        s.extend(((packet.len() + 2) as u16).to_be_bytes());
        s.extend(proto.to_be_bytes());
        s.extend(&packet);
        let mut frame = eth(0x8864, &s);
        frame.extend([0; 6]); // Ethernet padding, cut by the PPPoE length
        one_sip_datagram(&read(&pcap(1, &[frame])).unwrap());
    }
    // LCP inside PPPoE: not IP, skipped.
    let frame = eth(0x8864, &[0x11, 0, 0x12, 0x34, 0, 4, 0xC0, 0x21, 1, 2]);
    let c = read(&pcap(1, &[frame])).unwrap();
    assert_eq!((c.units.len(), c.stats.skipped), (0, 1));
}

#[test]
fn non_ip_and_other_transports_are_skipped() {
    let arp = eth(0x0806, &[0; 28]);
    let icmp = eth(
        0x0800,
        &ipv4([192, 0, 2, 1], [192, 0, 2, 2], 1, &[8, 0, 0, 0, 0, 0, 0, 0]),
    );
    let c = read(&pcap(1, &[arp, icmp, eth(0x0800, &sip4())])).unwrap();
    assert_eq!(c.stats.frames, 3);
    assert_eq!(c.stats.skipped, 2);
    assert_eq!(c.units.len(), 1);
    assert_eq!(c.units[0].frame, 3);
    assert!(c.stats.errors.is_empty());
}

#[test]
fn pcap_byte_orders_and_resolutions() {
    let t = Duration::new(1_600_000_000, 123_456_789);
    let big_ns = pcap_ns_big_endian(101, &[(t, sip4())]);
    assert_eq!(&big_ns[..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
    let c = read(&big_ns).unwrap();
    one_sip_datagram(&c);
    assert_eq!(c.units[0].time, t);
    // Microseconds, little endian: the time is cut to microseconds.
    let le_us = pcap(101, &[sip4()]);
    assert_eq!(&le_us[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let c = read(&le_us).unwrap();
    assert_eq!(c.units[0].time, T0);
}

#[test]
fn pcapng_interfaces_and_resolutions() {
    let t1 = Duration::new(1_650_000_000, 987_654_321);
    let t2 = t1 + Duration::from_micros(1500);
    let file = pcapng(
        &[1, 101],
        true,
        &[(0, t1, eth(0x0800, &sip4())), (1, t2, sip6())],
    );
    let c = read(&file).unwrap();
    assert_eq!(c.units.len(), 2);
    assert_eq!((c.units[0].time, c.units[1].time), (t1, t2));
    assert!(c.units[1].src.is_ipv6());
    // Default resolution (microseconds).
    let file = pcapng(&[101], false, &[(0, t1, sip4())]);
    let c = read(&file).unwrap();
    assert_eq!(c.units[0].time, Duration::new(1_650_000_000, 987_654_000));
    // A packet of an interface no block describes.
    let file = pcapng(&[101], true, &[(0, t1, sip4())]);
    let mut bad = file.clone();
    // interface_id of the enhanced packet block (after SHB and IDB).
    let shb = u32::from_le_bytes(bad[4..8].try_into().unwrap()) as usize;
    let idb = u32::from_le_bytes(bad[shb + 4..shb + 8].try_into().unwrap()) as usize;
    bad[shb + idb + 8] = 7;
    let c = read(&bad).unwrap();
    assert_eq!((c.stats.frames, c.stats.skipped, c.units.len()), (1, 1, 0));
    assert!(
        c.stats.errors[0].1.contains("interface 7"),
        "{:?}",
        c.stats.errors
    );
}

#[test]
fn unsupported_link_types() {
    // The whole pcap file: a typed error.
    match read(&pcap(105, &[sip4()])) {
        Err(CaptureError::UnsupportedLinkType(105)) => {}
        other => panic!("{other:?}"),
    }
    // pcapng: only if no interface is supported; else its frames are skipped.
    assert!(matches!(
        read(&pcapng(&[127], true, &[(0, T0, sip4())])),
        Err(CaptureError::UnsupportedLinkType(127))
    ));
    let c = read(&pcapng(
        &[127, 101],
        true,
        &[(0, T0, sip4()), (1, T0, sip4())],
    ))
    .unwrap();
    assert_eq!((c.stats.frames, c.stats.skipped, c.units.len()), (2, 1, 1));
    assert_eq!(c.units[0].frame, 2);
}

#[test]
fn garbage_empty_and_short_files_are_typed_errors() {
    assert!(matches!(
        read(b"GET / HTTP/1.1\r\n\r\n"),
        Err(CaptureError::NotACapture { magic }) if magic == b"GET "
    ));
    assert!(matches!(read(b""), Err(CaptureError::NotACapture { .. })));
    assert!(matches!(
        read(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
        Err(CaptureError::TruncatedHeader { len: 6, needed: 24 })
    ));
    assert!(matches!(
        read(&[0x34, 0xcd, 0xb2, 0xa1, 0, 0, 0, 0]),
        Err(CaptureError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        read(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]),
        Err(CaptureError::TruncatedHeader { .. })
    ));
    let e = read(b"\x00\x01").unwrap_err();
    assert!(e.to_string().contains("not a pcap or pcapng"), "{e}");
}

#[test]
fn truncated_packet_and_truncated_file() {
    // Captured with a snap length: the IP packet is cut.
    let mut cut = eth(0x0800, &sip4());
    cut.truncate(60);
    let file = pcap(1, &[cut, eth(0x0800, &sip4())]);
    let c = read(&file).unwrap();
    assert_eq!((c.stats.frames, c.stats.skipped, c.units.len()), (2, 1, 1));
    assert_eq!(c.units[0].frame, 2);
    assert_eq!(c.stats.errors[0].0, 1);
    assert!(
        c.stats.errors[0].1.contains("truncated"),
        "{:?}",
        c.stats.errors
    );
    // A file cut inside its last record still yields what came before.
    let file = pcap(1, &[eth(0x0800, &sip4()), eth(0x0800, &sip4())]);
    let c = read(&file[..file.len() - 10]).unwrap();
    assert_eq!((c.stats.frames, c.units.len()), (1, 1));
    assert_eq!(c.stats.errors.len(), 1);
    assert!(
        c.stats.errors[0].1.contains("ends inside record 2"),
        "{:?}",
        c.stats.errors
    );
}

#[test]
fn ipv4_fragments_out_of_order() {
    let body = SIP.repeat(20);
    let dgram = udp_datagram(5060, 5080, &body);
    let mut frags = ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, 77, &dgram, 504);
    assert_eq!(frags.len(), 3);
    frags.swap(0, 2); // last fragment first
    let c = read(&pcap(101, &frags)).unwrap();
    assert_eq!(c.units.len(), 1);
    assert_eq!(c.units[0].payload, body);
    assert_eq!(c.units[0].frame, 3);
    assert_eq!(c.stats.fragments_reassembled, 1);
    assert_eq!(c.stats.fragments_dropped, 0);
    assert!(c.stats.errors.is_empty());
}

#[test]
fn ipv6_fragments_out_of_order_with_a_duplicate() {
    let body = SIP.repeat(30);
    let dgram = udp_datagram(5060, 5080, &body);
    let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let b = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let f = ipv6_fragments(a, b, 17, 0xdead_beef, &dgram, 800);
    assert_eq!(f.len(), 3);
    let order = vec![f[1].clone(), f[1].clone(), f[2].clone(), f[0].clone()];
    let c = read(&pcap(229, &order)).unwrap();
    assert_eq!(c.units.len(), 1);
    assert_eq!(c.units[0].payload, body);
    assert!(c.units[0].src.is_ipv6());
    assert_eq!(c.stats.fragments_reassembled, 1);
}

#[test]
fn fragments_are_bounded_in_count_and_time() {
    let dgram = udp_datagram(5060, 5080, &SIP.repeat(4));
    let first = |id| ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, id, &dgram, 64)[0].clone();
    let limits = Limits {
        max_fragment_datagrams: 2,
        ..Limits::default()
    };
    let c = read_with(&pcap(101, &[first(1), first(2), first(3)]), limits).unwrap();
    // The third datagram found no room; the first two never completed.
    assert_eq!(c.stats.fragments_dropped, 3);
    assert!(
        c.stats.errors[0].1.contains("already pending"),
        "{:?}",
        c.stats.errors
    );
    assert_eq!(c.stats.errors[0].0, 3);

    // Timeout: the rest of a datagram 31 s after its first fragment is too
    // late; it starts a new datagram that never completes.
    let frags = ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, 9, &dgram, 64);
    let mut timed: Vec<(Duration, Vec<u8>)> = vec![(T0, frags[0].clone())];
    for f in &frags[1..] {
        timed.push((T0 + Duration::from_secs(31), f.clone()));
    }
    let c = read(&pcap_ns_big_endian(101, &timed)).unwrap();
    assert!(c.units.is_empty());
    assert_eq!(c.stats.fragments_reassembled, 0);
    assert!(
        c.stats
            .errors
            .iter()
            .any(|e| e.1.contains("fragment timeout")),
        "{:?}",
        c.stats.errors
    );
    // Within the timeout the same fragments make the datagram.
    timed[1..]
        .iter_mut()
        .for_each(|t| t.0 = T0 + Duration::from_secs(29));
    let c = read(&pcap_ns_big_endian(101, &timed)).unwrap();
    assert_eq!(c.stats.fragments_reassembled, 1);
}

/// The bytes of one TCP flow direction, units concatenated.
fn stream(c: &Capture, src: &str, dst: &str) -> Vec<u8> {
    c.units
        .iter()
        .filter(|u| u.transport == Transport::Tcp && u.src == sa(src) && u.dst == sa(dst))
        .flat_map(|u| u.payload.clone())
        .collect()
}

const A: &str = "192.0.2.1:40000";
const B: &str = "192.0.2.2:5060";

#[test]
fn sip_message_split_across_three_tcp_segments() {
    let msg = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/TCP a\r\nContent-Length: 4\r\n\r\nv=0\n";
    let (p1, rest) = msg.split_at(20);
    let (p2, p3) = rest.split_at(30);
    let isn = 1000u32;
    let pkts = [
        tcp(A, B, isn, SYN, b""),
        tcp(B, A, 5000, SYN, b""),
        tcp(A, B, isn + 1, 0, p1),
        tcp(A, B, isn + 21, 0, p2),
        tcp(A, B, isn + 51, 0, p3),
        tcp(B, A, 5001, 0, b"SIP/2.0 100 Trying\r\n\r\n"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), msg);
    let frames: Vec<u64> = c.units.iter().map(|u| u.frame).collect();
    assert_eq!(frames, [3, 4, 5, 6]);
    assert_eq!(stream(&c, B, A), b"SIP/2.0 100 Trying\r\n\r\n");
    assert_eq!(
        (c.stats.tcp_out_of_order, c.stats.tcp_retransmissions),
        (0, 0)
    );
}

#[test]
fn tcp_out_of_order_and_retransmitted_segments() {
    let isn = 7u32;
    let pkts = [
        tcp(A, B, isn, SYN, b""),
        tcp(A, B, isn + 1, 0, b"aaaa"),
        tcp(A, B, isn + 9, 0, b"cccc"),   // ahead of "bbbb": held
        tcp(A, B, isn + 1, 0, b"aaaa"),   // retransmission: dropped
        tcp(A, B, isn + 5, 0, b"bbbb"),   // fills the hole: "bbbbcccc"
        tcp(A, B, isn + 7, 0, b"bbcccc"), // overlaps what was delivered
        tcp(A, B, isn + 13, 0, b"dd"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), b"aaaabbbbccccdd");
    let units: Vec<(u64, &[u8])> = c.units.iter().map(|u| (u.frame, &u.payload[..])).collect();
    assert_eq!(units, [(2, &b"aaaa"[..]), (5, b"bbbbcccc"), (7, b"dd")]);
    assert_eq!(c.stats.tcp_out_of_order, 1);
    assert_eq!(c.stats.tcp_retransmissions, 2);
    assert!(c.units.iter().all(|u| !u.after_gap));
}

#[test]
fn tcp_mid_stream_capture_and_sequence_wrap() {
    // No SYN: the first segment seen starts the stream. The sequence
    // numbers wrap around 2^32 in the middle.
    let s = u32::MAX - 2;
    let pkts = [
        tcp(A, B, s.wrapping_add(4), 0, b"ef"), // ahead
        tcp(A, B, s, 0, b"abcd"),               // before the first seen: too late
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    // "ef" started the stream; "abcd" lies before it and counts as a
    // retransmission.
    assert_eq!(stream(&c, A, B), b"ef");
    let pkts = [
        tcp(A, B, s, 0, b"abcd"),
        tcp(A, B, s.wrapping_add(6), 0, b"gh"),
        tcp(A, B, s.wrapping_add(4), 0, b"ef"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), b"abcdefgh");
    assert_eq!(c.stats.tcp_out_of_order, 1);
}

#[test]
fn tcp_reused_four_tuple_starts_a_new_stream() {
    let pkts = [
        tcp(A, B, 100, SYN, b""),
        tcp(A, B, 101, 0, b"first"),
        tcp(A, B, 101, FIN, b""),
        tcp(A, B, 90_000, SYN, b""),
        tcp(A, B, 90_001, 0, b"second"),
        tcp(A, B, 100, SYN, b""), // an old SYN again: a third connection
        tcp(A, B, 101, 0, b"third"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), b"firstsecondthird");
}

#[test]
fn tcp_hole_that_never_fills_is_skipped_and_flagged() {
    let pkts = [
        tcp(A, B, 1, SYN, b""),
        tcp(A, B, 2, 0, b"one "),
        // bytes 6..10 never captured
        tcp(A, B, 10, 0, b"three"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    let units: Vec<(u64, &[u8], bool)> = c
        .units
        .iter()
        .map(|u| (u.frame, &u.payload[..], u.after_gap))
        .collect();
    assert_eq!(units, [(2, &b"one "[..], false), (3, b"three", true)]);
    assert_eq!(c.stats.tcp_gaps, 1);

    // After the gap timeout, the next segment makes reassembly give up on
    // the hole at once.
    let timed = vec![
        (T0, tcp(A, B, 1, SYN, b"")),
        (T0, tcp(A, B, 2, 0, b"one ")),
        (T0, tcp(A, B, 10, 0, b"three")),
        (T0 + Duration::from_secs(11), tcp(A, B, 15, 0, b" four")),
    ];
    let c = read(&pcap_ns_big_endian(101, &timed)).unwrap();
    let units: Vec<(u64, &[u8], bool)> = c
        .units
        .iter()
        .map(|u| (u.frame, &u.payload[..], u.after_gap))
        .collect();
    assert_eq!(
        units,
        [
            (2, &b"one "[..], false),
            (4, b"three", true),
            (4, b" four", false)
        ]
    );
}

#[test]
fn tcp_flow_buffer_limit_gives_up_waiting() {
    let limits = Limits {
        max_flow_buffer: 10,
        ..Limits::default()
    };
    let pkts = [
        tcp(A, B, 1, SYN, b""),
        tcp(A, B, 12, 0, b"xxxxxx"), // hole at 2..12
        tcp(A, B, 18, 0, b"yyyyyy"), // 12 bytes held: over the limit
    ];
    let c = read_with(&pcap(101, &pkts), limits.clone()).unwrap();
    assert_eq!(stream(&c, A, B), b"xxxxxxyyyyyy");
    assert_eq!(c.stats.tcp_gaps, 1);
    assert!(c.units[0].after_gap);
    // A segment that alone exceeds the limit goes out after its hole at
    // once; an older one arriving later is too late.
    let pkts = [
        tcp(A, B, 1, SYN, b""),
        tcp(A, B, 2, 0, b"ab"),
        tcp(A, B, 8, 0, b"0123456789abcdef"),
        tcp(A, B, 4, 0, b"cdef"),
        tcp(A, B, 24, 0, b"gh"),
    ];
    let c = read_with(&pcap(101, &pkts), limits).unwrap();
    let units: Vec<(u64, &[u8], bool)> = c
        .units
        .iter()
        .map(|u| (u.frame, &u.payload[..], u.after_gap))
        .collect();
    assert_eq!(
        units,
        [
            (2, &b"ab"[..], false),
            (3, b"0123456789abcdef", true),
            (5, b"gh", false)
        ]
    );
    assert_eq!((c.stats.tcp_gaps, c.stats.tcp_retransmissions), (1, 1));
}

/// A WebSocket frame; masked with `key` if given.
fn ws_frame(fin: bool, opcode: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![u8::from(fin) << 7 | opcode];
    let mask = if key.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => f.push(mask | n as u8),
        n => {
            f.push(mask | 126);
            f.extend((n as u16).to_be_bytes());
        }
    }
    match key {
        Some(k) => {
            f.extend(k);
            f.extend(payload.iter().zip(k.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => f.extend(payload),
    }
    f
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: proxy.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";

#[test]
fn websocket_after_upgrade_masked_frames_and_16_bit_length() {
    // RFC 7118: one SIP message per WebSocket message.
    let invite = [
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/WS x.invalid\r\n".as_slice(),
        &[b'X'; 200],
        b"\r\n\r\n",
    ]
    .concat();
    assert!(invite.len() > 125);
    let mut client = UPGRADE.to_vec();
    let first = ws_frame(false, 1, &invite[..100], Some([0x37, 0xfa, 0x21, 0x3d]));
    let ping = ws_frame(true, 9, b"hi", Some([1, 2, 3, 4]));
    let rest = ws_frame(true, 0, &invite[100..], Some([0xde, 0xad, 0xbe, 0xef]));
    client.extend(&first);
    let mut seq = 1u32;
    let mut pkts = vec![tcp(A, B, 0, SYN, b""), tcp(B, A, 0, SYN, b"")];
    // The request and the first frame in one segment, the rest split
    // across segments at odd places.
    pkts.push(tcp(A, B, seq, 0, &client));
    seq += client.len() as u32;
    let mut server = SWITCHING.to_vec();
    server.extend(ws_frame(true, 1, b"SIP/2.0 100 Trying\r\n\r\n", None));
    pkts.push(tcp(B, A, 1, 0, &server));
    let tail = [ping, rest].concat();
    for part in tail.chunks(37) {
        pkts.push(tcp(A, B, seq, 0, part));
        seq += part.len() as u32;
    }
    let c = read(&pcap(101, &pkts)).unwrap();
    let ws: Vec<(&str, &[u8])> = c
        .units
        .iter()
        .map(|u| {
            assert_eq!(
                u.transport,
                Transport::WebSocket,
                "handshake bytes must not show"
            );
            (if u.src == sa(A) { "A" } else { "B" }, &u.payload[..])
        })
        .collect();
    assert_eq!(
        ws,
        [
            ("B", &b"SIP/2.0 100 Trying\r\n\r\n"[..]),
            ("A", &invite[..])
        ]
    );
    assert!(c.stats.errors.is_empty(), "{:?}", c.stats.errors);
}

#[test]
fn http_without_upgrade_or_refused_upgrade_stays_tcp() {
    let get = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    let pkts = [
        tcp(A, B, 1, 0, get),
        tcp(B, A, 1, 0, b"HTTP/1.1 200 OK\r\n\r\n"),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), get);
    assert_eq!(stream(&c, B, A), b"HTTP/1.1 200 OK\r\n\r\n");
    // Upgrade asked, refused: everything is plain TCP, in order.
    let mut client = UPGRADE.to_vec();
    client.extend(b"more");
    let refusal = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    let pkts = [tcp(A, B, 1, 0, &client), tcp(B, A, 1, 0, refusal)];
    let c = read(&pcap(101, &pkts)).unwrap();
    assert_eq!(stream(&c, A, B), client);
    assert_eq!(stream(&c, B, A), refusal);
    assert!(c.units.iter().all(|u| u.transport == Transport::Tcp));
    // Upgrade asked, never answered: plain TCP at the end.
    let c = read(&pcap(101, &[tcp(A, B, 1, 0, UPGRADE)])).unwrap();
    assert_eq!(stream(&c, A, B), UPGRADE);
}

#[test]
fn sctp_data_chunks_fragments_and_duplicates() {
    let src = [192, 0, 2, 1];
    let dst = [192, 0, 2, 2];
    let msg = SIP.repeat(3);
    let (f1, rest) = msg.split_at(50);
    let (f2, f3) = rest.split_at(70);
    let p = |chunks: &[Vec<u8>]| ipv4(src, dst, 132, &sctp(5060, 5061, chunks));
    let pkts = [
        // Two whole messages in one packet.
        p(&[sctp_data(1, 3, 0, b"one"), sctp_data(2, 3, 1, b"two!")]),
        // A fragmented message: middle and end before the beginning.
        p(&[sctp_data(5, 1, 0, f3)]),
        p(&[sctp_data(4, 0, 0, f2)]),
        p(&[sctp_data(3, 2, 0, f1)]),
        // A retransmission of TSN 2.
        p(&[sctp_data(2, 3, 1, b"two!")]),
        // I-DATA: two fragments (the first carries the PPID instead of
        // the fragment sequence number).
        p(&[sctp_idata(7, 1, 2, 9, 1, b"-tail")]),
        p(&[sctp_idata(6, 2, 2, 9, 0xABCD, b"head")]),
    ];
    let c = read(&pcap(101, &pkts)).unwrap();
    let units: Vec<(u64, &[u8])> = c.units.iter().map(|u| (u.frame, &u.payload[..])).collect();
    assert_eq!(
        units,
        [
            (1, &b"one"[..]),
            (1, b"two!"),
            (4, &msg[..]),
            (7, b"head-tail")
        ]
    );
    assert!(c.units.iter().all(|u| u.transport == Transport::Sctp));
    assert_eq!(c.units[0].src, sa("192.0.2.1:5060"));
    assert_eq!(c.units[0].dst, sa("192.0.2.2:5061"));
    assert_eq!(c.stats.sctp_retransmissions, 1);
    assert!(c.stats.errors.is_empty(), "{:?}", c.stats.errors);
}

#[test]
fn sctp_malformed_chunks_are_reported() {
    let bad_len = {
        let mut s = sctp(1, 2, &[sctp_data(1, 3, 0, b"ok")]);
        s.extend([0, 3, 0, 200]); // a chunk claiming 200 bytes
        s
    };
    let c = read(&pcap(
        101,
        &[ipv4([192, 0, 2, 1], [192, 0, 2, 2], 132, &bad_len)],
    ))
    .unwrap();
    assert_eq!(c.units.len(), 1);
    assert!(
        c.stats.errors[0].1.contains("does not fit"),
        "{:?}",
        c.stats.errors
    );
    let c = read(&pcap(
        101,
        &[ipv4([192, 0, 2, 1], [192, 0, 2, 2], 132, &[0; 5])],
    ))
    .unwrap();
    assert_eq!((c.units.len(), c.stats.skipped), (0, 1));
}

fn gre(flags: u16, proto: u16, extra: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut g = flags.to_be_bytes().to_vec();
    g.extend(proto.to_be_bytes());
    g.extend(extra);
    g.extend(inner);
    ipv4([198, 51, 100, 1], [198, 51, 100, 2], 47, &g)
}

#[test]
fn gre_and_erspan_tunnels() {
    let inner_eth = eth(0x0800, &sip4());
    let cases = [
        // Plain GRE with a key, IPv4 inside.
        gre(0x2000, 0x0800, &[0, 0, 0, 42], &sip4()),
        // Checksum and sequence number, IPv6 inside.
        gre(0x9000, 0x86DD, &[0, 0, 0, 0, 0, 0, 0, 1], &sip6()),
        // Transparent Ethernet bridging.
        gre(0, 0x6558, &[], &inner_eth),
        // ERSPAN type I: no ERSPAN header, no sequence number.
        gre(0, 0x88BE, &[], &inner_eth),
        // ERSPAN type II: sequence number, then an 8-byte header.
        gre(
            0x1000,
            0x88BE,
            &[0, 0, 0, 5, 0x10, 0x64, 0, 1, 0, 0, 0, 0],
            &inner_eth,
        ),
        // ERSPAN type III: 12-byte header, frame type Ethernet.
        gre(
            0x1000,
            0x22EB,
            &[0, 0, 0, 6, 0x20, 0x64, 0, 1, 1, 2, 3, 4, 0, 0, 0, 0],
            &inner_eth,
        ),
        // ERSPAN type III with the 8-byte platform sub-header (O flag).
        gre(
            0x1000,
            0x22EB,
            &[
                0, 0, 0, 7, 0x20, 0x64, 0, 1, 1, 2, 3, 4, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9,
            ],
            &inner_eth,
        ),
    ];
    for (i, pkt) in cases.into_iter().enumerate() {
        let c = read(&pcap(1, &[eth(0x0800, &pkt)])).unwrap();
        assert_eq!(c.units.len(), 1, "case {i}: {:?}", c.stats);
        assert_eq!(c.units[0].payload, SIP, "case {i}");
        assert_ne!(
            c.units[0].src.ip(),
            "198.51.100.1".parse::<std::net::IpAddr>().unwrap()
        );
    }
    // A GRE version this crate does not know: reported.
    let c = read(&pcap(101, &[gre(0x0002, 0x0800, &[], &sip4())])).unwrap();
    assert_eq!((c.units.len(), c.stats.skipped), (0, 1));
    assert!(c.stats.errors[0].1.contains("GRE version"));
}

#[test]
fn ip_in_ip_tunnels() {
    let v4_in_v4 = ipv4([198, 51, 100, 1], [198, 51, 100, 2], 4, &sip4());
    let v6_in_v4 = ipv4([198, 51, 100, 1], [198, 51, 100, 2], 41, &sip6());
    let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let v4_in_v6 = ipv6(a, a, 4, &sip4());
    for pkt in [v4_in_v4, v6_in_v4, v4_in_v6] {
        one_sip_datagram(&read(&pcap(101, &[pkt])).unwrap());
    }
    // Nesting is bounded: 20 levels of IP-in-IP are given up, not recursed.
    let mut pkt = sip4();
    for _ in 0..20 {
        pkt = ipv4([198, 51, 100, 1], [198, 51, 100, 2], 4, &pkt);
    }
    let c = read(&pcap(101, &[pkt])).unwrap();
    assert_eq!((c.units.len(), c.stats.skipped), (0, 1));
    assert!(c.stats.errors[0].1.contains("nested"));
}

#[test]
fn decoder_streams_units_and_read_from_reads_a_reader() {
    let mut d = Decoder::new();
    d.packet(1, T0, LinkType::Raw, &sip4());
    assert_eq!(d.take_units().len(), 1);
    d.packet(2, T0, LinkType::from_code(101), &sip6());
    assert_eq!(d.stats().frames, 2);
    let c = d.finish();
    assert_eq!(c.units.len(), 1);
    assert_eq!(c.units[0].frame, 2);
    assert_eq!(LinkType::from_code(0x0400_0001), LinkType::Ethernet);
    assert_eq!(LinkType::from_code(999).code(), 999);

    let file = pcap(1, &[eth(0x0800, &sip4())]);
    one_sip_datagram(&read_from(std::io::Cursor::new(file)).unwrap());
}

#[test]
fn error_list_is_bounded_but_counted() {
    let mut cut = eth(0x0800, &sip4());
    cut.truncate(40);
    let file = pcap(1, &vec![cut; 150]);
    let c = read(&file).unwrap();
    assert_eq!(c.stats.errors.len(), 100);
    assert_eq!(c.stats.errors_total, 150);
    assert_eq!(c.stats.skipped, 150);
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    // pcapng allows timestamps near u64::MAX seconds (if_tsresol 0); the
    // timeouts added to them must not overflow.
    let dgram = udp_datagram(5060, 5080, &SIP.repeat(4));
    let frags = ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, 1, &dgram, 64);
    let mut d = Decoder::new();
    for (i, t) in [Duration::MAX, Duration::MAX, Duration::ZERO]
        .into_iter()
        .enumerate()
    {
        let n = i as u64 + 1;
        d.packet(
            n,
            t,
            LinkType::Raw,
            &tcp(A, B, 100 + 10 * n as u32, 0, b"held"),
        );
        d.packet(n, t, LinkType::Raw, &frags[i]);
    }
    let c = d.finish();
    // Two holes (before seq 120 and before 130) given up at the end.
    assert_eq!(c.stats.tcp_gaps, 2);
    assert_eq!(c.units.iter().filter(|u| u.after_gap).count(), 2);
}
