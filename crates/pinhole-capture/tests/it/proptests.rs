//! Properties: hostile bytes never panic; TCP, WebSocket and IP
//! reassembly give back what was sent, whatever the order and duplicates.

use crate::common::*;
use pinhole_capture::{Decoder, LinkType, Transport, read};
use proptest::prelude::*;

const A: &str = "192.0.2.1:40000";
const B: &str = "192.0.2.2:5060";

/// Puts items in an order where each moved at most `window` places, from
/// one random key per item.
fn shuffle_within<T: Clone>(items: &[T], keys: &[usize], window: usize) -> Vec<T> {
    let mut keyed: Vec<(usize, usize)> = (0..items.len())
        .map(|i| (i + keys.get(i).copied().unwrap_or(0) % (window + 1), i))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| items[i].clone()).collect()
}

/// Cuts `data` at the given sizes (cycled), 1 byte at least each.
fn cut<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<(usize, &'a [u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].clamp(1, data.len() - at);
        out.push((at, &data[at..at + n]));
        at += n;
        i += 1;
    }
    out
}

fn tcp_stream_of(units: &[pinhole_capture::Unit]) -> Vec<u8> {
    units
        .iter()
        .filter(|u| u.transport == Transport::Tcp && u.src == sa(A))
        .flat_map(|u| u.payload.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read(&data);
        pinhole_capture::fuzzing::capture_read(&data);
    }

    #[test]
    fn arbitrary_records_after_a_valid_header_never_panic(
        nanos in any::<bool>(),
        big in any::<bool>(),
        link in prop_oneof![Just(0u32), Just(1), Just(101), Just(108), Just(113), Just(276), Just(228)],
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut file = Vec::new();
        let w = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        file.extend(w(magic));
        file.extend(if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        file.extend([0; 8]);
        file.extend(w(65535));
        file.extend(w(link));
        file.extend(&body);
        if let Ok(c) = read(&file) {
            prop_assert!(c.stats.skipped <= c.stats.frames);
        }
    }

    #[test]
    fn arbitrary_pcapng_blocks_never_panic(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut file = pcapng(&[1], true, &[]);
        file.extend(&body);
        let _ = read(&file);
    }

    #[test]
    fn arbitrary_frames_never_panic(
        link in 0usize..6,
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
    ) {
        let link = [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null, LinkType::Loop][link];
        let mut d = Decoder::new();
        for (i, f) in frames.iter().enumerate() {
            d.packet(i as u64 + 1, at(i), link, f);
        }
        let c = d.finish();
        prop_assert_eq!(c.stats.frames, frames.len() as u64);
    }

    #[test]
    fn mutated_captures_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let mut file = rich_capture();
        for (i, b) in flips {
            let i = i.index(file.len());
            file[i] = b;
        }
        let _ = read(&file);
    }

    #[test]
    fn tcp_stream_reassembles_whatever_the_order(
        data in proptest::collection::vec(any::<u8>(), 1..3000),
        sizes in proptest::collection::vec(1usize..300, 1..16),
        keys in proptest::collection::vec(any::<usize>(), 64),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        isn in any::<u32>(),
        syn in any::<bool>(),
    ) {
        let segs = cut(&data, &sizes);
        let mut sent: Vec<(usize, &[u8])> = segs.clone();
        // Duplicates, and retransmissions that merge two neighbours.
        for d in &dups {
            let i = d.index(segs.len());
            sent.push(segs[i]);
            if i + 1 < segs.len() {
                let (at, a) = segs[i];
                let both = &data[at..at + a.len() + segs[i + 1].1.len()];
                sent.push((at, both));
            }
        }
        // The first segment stays first when there is no SYN: a capture's
        // first segment starts its stream.
        let (first, rest) = sent.split_first().unwrap();
        let mut order = vec![*first];
        order.extend(shuffle_within(rest, &keys, 4));
        let mut pkts = Vec::new();
        let base = if syn {
            pkts.push(tcp(A, B, isn, SYN, b""));
            isn.wrapping_add(1)
        } else {
            isn
        };
        for (at, bytes) in &order {
            pkts.push(tcp(A, B, base.wrapping_add(*at as u32), 0, bytes));
        }
        let c = read(&pcap(101, &pkts)).unwrap();
        prop_assert_eq!(tcp_stream_of(&c.units), data);
        prop_assert!(c.units.iter().all(|u| !u.after_gap));
        prop_assert_eq!(c.stats.tcp_gaps, 0);
        prop_assert!(c.units.windows(2).all(|w| w[0].frame <= w[1].frame));
        prop_assert_eq!(c.stats.tcp_retransmissions as usize >= dups.len(), true);
    }

    #[test]
    fn websocket_messages_survive_any_segmentation(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..6),
        frame_size in 1usize..200,
        sizes in proptest::collection::vec(1usize..120, 1..8),
        key in any::<[u8; 4]>(),
    ) {
        let mut client = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
        for m in &messages {
            let parts: Vec<&[u8]> = if m.is_empty() { vec![&m[..]] } else { m.chunks(frame_size).collect() };
            for (i, p) in parts.iter().enumerate() {
                let opcode = if i == 0 { 2 } else { 0 };
                let fin = i + 1 == parts.len();
                client.push(u8::from(fin) << 7 | opcode);
                if p.len() < 126 {
                    client.push(0x80 | p.len() as u8);
                } else {
                    client.push(0x80 | 126);
                    client.extend((p.len() as u16).to_be_bytes());
                }
                client.extend(key);
                client.extend(p.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
            }
        }
        // The request's head, the answer, then the frames cut anywhere.
        let head_len = 38;
        let mut pkts = vec![
            tcp(A, B, 1, 0, &client[..head_len]),
            tcp(B, A, 1, 0, b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        ];
        for (at, bytes) in cut(&client[head_len..], &sizes) {
            pkts.push(tcp(A, B, (1 + head_len + at) as u32, 0, bytes));
        }
        let c = read(&pcap(101, &pkts)).unwrap();
        let got: Vec<Vec<u8>> = c
            .units
            .iter()
            .filter(|u| u.transport == Transport::WebSocket)
            .map(|u| u.payload.clone())
            .collect();
        prop_assert_eq!(got, messages);
        prop_assert!(c.stats.errors.is_empty(), "{:?}", c.stats.errors);
    }

    #[test]
    fn ip_fragments_reassemble_in_any_order(
        payload in proptest::collection::vec(any::<u8>(), 1..4000),
        size8 in 1usize..100,
        keys in proptest::collection::vec(any::<usize>(), 64),
        v6 in any::<bool>(),
    ) {
        let dgram = udp_datagram(5060, 5060, &payload);
        let frags = if v6 {
            let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            ipv6_fragments(a, a, 17, 3, &dgram, size8 * 8)
        } else {
            ipv4_fragments([192, 0, 2, 1], [192, 0, 2, 2], 17, 3, &dgram, size8 * 8)
        };
        let order = shuffle_within(&frags, &keys, frags.len());
        let c = read(&pcap(101, &order)).unwrap();
        prop_assert_eq!(c.units.len(), 1);
        prop_assert_eq!(&c.units[0].payload, &payload);
        prop_assert_eq!(c.stats.fragments_reassembled, u64::from(frags.len() > 1));
    }
}
