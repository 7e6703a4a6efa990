//! Builds small captures for the tests: packets with etherparse's
//! builders, files with pcap-file's writers.
#![allow(dead_code, unreachable_pub)]

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// Capture time of the first packet of a built file; each next one is 10
/// ms later.
pub const T0: Duration = Duration::from_secs(1_700_000_000);

pub fn at(i: usize) -> Duration {
    T0 + Duration::from_millis(10 * i as u64)
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A pcap file (little endian, microseconds) of the given link type.
pub fn pcap(link: u32, packets: &[Vec<u8>]) -> Vec<u8> {
    let header = PcapHeader {
        datalink: DataLink::from(link),
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let timed: Vec<_> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| (at(i), p.clone()))
        .collect();
    pcap_with(header, &timed)
}

pub fn pcap_with(header: PcapHeader, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (t, p) in packets {
        w.write_packet(&PcapPacket::new(*t, p.len() as u32, p))
            .unwrap();
    }
    w.into_writer()
}

pub fn pcap_ns_big_endian(link: u32, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    pcap_with(
        PcapHeader {
            datalink: DataLink::from(link),
            endianness: Endianness::Big,
            ts_resolution: TsResolution::NanoSecond,
            ..PcapHeader::default()
        },
        packets,
    )
}

/// A pcapng file: one interface block per link type, then packets as
/// (interface, time, bytes). `nanos`: the interfaces declare
/// `if_tsresol` 9; otherwise they use the default (microseconds).
pub fn pcapng(links: &[u32], nanos: bool, packets: &[(u32, Duration, Vec<u8>)]) -> Vec<u8> {
    let mut w = PcapNgWriter::with_endianness(Vec::new(), Endianness::Little).unwrap();
    for &link in links {
        let options = if nanos {
            vec![InterfaceDescriptionOption::IfTsResol(9)]
        } else {
            vec![]
        };
        w.write_block(
            &InterfaceDescriptionBlock {
                linktype: DataLink::from(link),
                snaplen: 0,
                options,
            }
            .into_block(),
        )
        .unwrap();
    }
    for (interface, t, p) in packets {
        // pcap-file writes the timestamp's nanoseconds as the raw count.
        let raw = if nanos {
            *t
        } else {
            Duration::from_nanos(t.as_micros() as u64)
        };
        w.write_block(
            &EnhancedPacketBlock {
                interface_id: *interface,
                timestamp: raw,
                original_len: p.len() as u32,
                data: Cow::Borrowed(p),
                options: vec![],
            }
            .into_block(),
        )
        .unwrap();
    }
    w.into_inner()
}

/// An Ethernet II frame.
pub fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend(ether_type.to_be_bytes());
    f.extend(payload);
    f
}

/// An IPv4 packet around `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let h = Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), src, dst).unwrap();
    let mut p = Vec::new();
    h.write(&mut p).unwrap();
    p.extend(payload);
    p
}

/// An IPv6 packet around `payload`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    PacketBuilder::ipv6(src, dst, 64)
        .write_to_vec(&mut p, IpNumber(next), payload)
        .unwrap();
    p
}

fn v4(a: SocketAddr) -> [u8; 4] {
    match a.ip() {
        IpAddr::V4(ip) => ip.octets(),
        IpAddr::V6(_) => panic!("{a} is not IPv4"),
    }
}

fn v6(a: SocketAddr) -> [u8; 16] {
    match a.ip() {
        IpAddr::V6(ip) => ip.octets(),
        IpAddr::V4(_) => panic!("{a} is not IPv6"),
    }
}

/// An IP packet (version after the addresses) with a UDP datagram.
pub fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (sa(src), sa(dst));
    let mut p = Vec::new();
    if src.is_ipv4() {
        PacketBuilder::ipv4(v4(src), v4(dst), 64)
            .udp(src.port(), dst.port())
            .write(&mut p, payload)
            .unwrap();
    } else {
        PacketBuilder::ipv6(v6(src), v6(dst), 64)
            .udp(src.port(), dst.port())
            .write(&mut p, payload)
            .unwrap();
    }
    p
}

/// The UDP header and payload alone (for fragmenting by hand).
pub fn udp_datagram(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(src_port.to_be_bytes());
    d.extend(dst_port.to_be_bytes());
    d.extend(((8 + payload.len()) as u16).to_be_bytes());
    d.extend([0, 0]);
    d.extend(payload);
    d
}

/// TCP flags for [`tcp`].
pub const SYN: u8 = 1;
pub const FIN: u8 = 2;
pub const RST: u8 = 4;

/// An IPv4 or IPv6 packet with a TCP segment.
pub fn tcp(src: &str, dst: &str, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (sa(src), sa(dst));
    let mut p = Vec::new();
    let b = if src.is_ipv4() {
        PacketBuilder::ipv4(v4(src), v4(dst), 64).tcp(src.port(), dst.port(), seq, 65535)
    } else {
        PacketBuilder::ipv6(v6(src), v6(dst), 64).tcp(src.port(), dst.port(), seq, 65535)
    };
    let mut b = b.ack(1);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    b.write(&mut p, payload).unwrap();
    p
}

/// IPv4 fragments of `payload` (protocol `proto`), each carrying at most
/// `size` bytes (a multiple of 8).
pub fn ipv4_fragments(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    payload: &[u8],
    size: usize,
) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = Ipv4Header::new(c.len() as u16, 64, IpNumber(proto), src, dst).unwrap();
            h.identification = id;
            h.more_fragments = i != last;
            h.fragment_offset = etherparse::IpFragOffset::try_new((i * size / 8) as u16).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut p = Vec::new();
            h.write(&mut p).unwrap();
            p.extend(*c);
            p
        })
        .collect()
}

/// IPv6 fragments (fragment extension header) of `payload`.
pub fn ipv6_fragments(
    src: [u8; 16],
    dst: [u8; 16],
    next: u8,
    id: u32,
    payload: &[u8],
    size: usize,
) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let offset = (i * size / 8) as u16;
            let mut frag = vec![next, 0];
            frag.extend((offset << 3 | u16::from(i != last)).to_be_bytes());
            frag.extend(id.to_be_bytes());
            frag.extend(*c);
            ipv6(src, dst, 44, &frag)
        })
        .collect()
}

/// One SCTP DATA chunk (RFC 9260 3.3.1), padded.
pub fn sctp_data(tsn: u32, flags: u8, stream: u16, data: &[u8]) -> Vec<u8> {
    let mut c = vec![0, flags];
    c.extend(((16 + data.len()) as u16).to_be_bytes());
    c.extend(tsn.to_be_bytes());
    c.extend(stream.to_be_bytes());
    c.extend(0u16.to_be_bytes()); // stream sequence number
    c.extend(0u32.to_be_bytes()); // payload protocol identifier
    c.extend(data);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

/// One SCTP I-DATA chunk (RFC 8260 2.1), padded.
pub fn sctp_idata(
    tsn: u32,
    flags: u8,
    stream: u16,
    mid: u32,
    fsn_or_ppid: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut c = vec![64, flags];
    c.extend(((20 + data.len()) as u16).to_be_bytes());
    c.extend(tsn.to_be_bytes());
    c.extend(stream.to_be_bytes());
    c.extend([0, 0]);
    c.extend(mid.to_be_bytes());
    c.extend(fsn_or_ppid.to_be_bytes());
    c.extend(data);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

/// An SCTP packet: common header, then the chunks.
pub fn sctp(src_port: u16, dst_port: u16, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(src_port.to_be_bytes());
    p.extend(dst_port.to_be_bytes());
    p.extend(0x1234_5678u32.to_be_bytes()); // verification tag
    p.extend(0u32.to_be_bytes()); // checksum (not checked)
    for c in chunks {
        p.extend(c);
    }
    p
}

/// A capture with a bit of everything, to mutate.
pub fn rich_capture() -> Vec<u8> {
    let mut pkts = vec![
        eth(
            0x0800,
            &tcp("192.0.2.1:40000", "192.0.2.2:5060", 10, SYN, b""),
        ),
        eth(
            0x0800,
            &tcp(
                "192.0.2.1:40000",
                "192.0.2.2:5060",
                11,
                0,
                b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            ),
        ),
        eth(
            0x0800,
            &tcp(
                "192.0.2.2:5060",
                "192.0.2.1:40000",
                99,
                0,
                b"HTTP/1.1 101 OK\r\n\r\n\x81\x03abc",
            ),
        ),
        eth(
            0x0800,
            &tcp(
                "192.0.2.1:40000",
                "192.0.2.2:5060",
                51,
                0,
                b"\x81\x83\x01\x02\x03\x04`a`",
            ),
        ),
        eth(
            0x0800,
            &ipv4(
                [192, 0, 2, 1],
                [192, 0, 2, 2],
                132,
                &sctp(
                    1,
                    2,
                    &[sctp_data(1, 2, 0, b"ab"), sctp_data(2, 1, 0, b"cd")],
                ),
            ),
        ),
    ];
    let dgram = udp_datagram(5060, 5060, &[b'z'; 100]);
    for f in ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, 5, &dgram, 48) {
        pkts.push(eth(0x0800, &f));
    }
    let mut vlan = vec![0, 1, 0x88, 0x64, 0x11, 0, 0, 1];
    let inner = udp("192.0.2.1:5060", "192.0.2.2:5060", b"x");
    vlan.extend(((inner.len() + 2) as u16).to_be_bytes());
    vlan.extend([0, 0x21]);
    vlan.extend(inner);
    pkts.push(eth(0x8100, &vlan));
    let mut g = vec![0x10, 0, 0x22, 0xEB, 0, 0, 0, 1];
    g.extend([0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    g.extend(eth(0x0800, &udp("192.0.2.1:5060", "192.0.2.2:5060", b"y")));
    pkts.push(eth(
        0x0800,
        &ipv4([198, 51, 100, 1], [198, 51, 100, 2], 47, &g),
    ));
    pcap(1, &pkts)
}
