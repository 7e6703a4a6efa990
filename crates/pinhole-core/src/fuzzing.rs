//! Bodies of the fuzz targets under `fuzz/`, kept here so that they compile
//! with the crate and the checked-in corpus runs as an ordinary test.
//!
//! These functions panic when the property they check fails: that is how a
//! fuzzer reports a finding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::wire::{Builder, Message};

/// Key used to re-sign re-encoded messages; any key works.
const REENCODE_KEY: &[u8] = b"fuzzing";

/// Every accessor value of a message, for comparison.
#[derive(Debug, PartialEq)]
struct Snapshot<'a> {
    head: (
        crate::wire::Method,
        crate::wire::Class,
        crate::wire::TransactionId,
    ),
    username: Option<&'a str>,
    protocol: Option<crate::wire::Protocol>,
    domains: Vec<&'a str>,
    leg_key: Option<&'a [u8]>,
    rtcp_mode: Option<crate::wire::RtcpMode>,
    lifetime: Option<u32>,
    nonce: Option<&'a [u8]>,
    software: Option<&'a str>,
    mapped: Option<std::net::SocketAddr>,
    relayed: Option<std::net::SocketAddr>,
    error: Option<(crate::wire::ErrorCode, &'a str)>,
    unknown_attributes: Vec<u16>,
}

fn snapshot<'a>(m: &Message<'a>) -> Snapshot<'a> {
    Snapshot {
        head: (m.method(), m.class(), m.transaction_id()),
        username: m.username(),
        protocol: m.protocol(),
        domains: m.domains().collect(),
        leg_key: m.leg_key(),
        rtcp_mode: m.rtcp_mode(),
        lifetime: m.lifetime(),
        nonce: m.nonce(),
        software: m.software(),
        mapped: m.xor_mapped_address(),
        relayed: m.xor_relayed_address(),
        error: m.error_code(),
        unknown_attributes: m.unknown_attributes().collect(),
    }
}

/// Re-encodes the accessor values of `m` (MI-SHA256 keyed with `key` if the
/// original had integrity) into `buf`; returns the length written.
fn reencode(m: &Message<'_>, buf: &mut [u8]) -> Result<usize, crate::wire::EncodeError> {
    let mut b = Builder::new(buf, m.method(), m.class(), m.transaction_id())?;
    if let Some(v) = m.username() {
        b.username(v)?;
    }
    if let Some(v) = m.protocol() {
        b.protocol(v)?;
    }
    for d in m.domains() {
        b.domain(d)?;
    }
    if let Some(v) = m.leg_key() {
        b.leg_key(v)?;
    }
    if let Some(v) = m.rtcp_mode() {
        b.rtcp_mode(v)?;
    }
    if let Some(v) = m.lifetime() {
        b.lifetime(v)?;
    }
    if let Some(v) = m.nonce() {
        b.nonce(v)?;
    }
    if let Some(v) = m.software() {
        b.software(v)?;
    }
    if let Some(v) = m.xor_mapped_address() {
        b.xor_mapped_address(v)?;
    }
    if let Some(v) = m.xor_relayed_address() {
        b.xor_relayed_address(v)?;
    }
    if let Some((code, reason)) = m.error_code() {
        b.error_code(code, reason)?;
    }
    // An empty UNKNOWN-ATTRIBUTES is invisible to the accessors: skip it.
    if m.unknown_attributes().next().is_some() {
        let types: Vec<u16> = m.unknown_attributes().collect();
        b.unknown_attributes(&types)?;
    }
    b.finish(m.has_integrity().then_some(REENCODE_KEY))
}

/// Fuzz target `control_decode`: decoding never panics; a decoded message
/// answers every accessor, and re-encoding its values with [`Builder`] and
/// decoding again gives the same values.
pub fn control_decode(data: &[u8]) {
    let control = crate::wire::is_control(data);
    let Ok(m) = Message::decode(data) else {
        return;
    };
    // Decode accepts exactly the framing is_control checks (plus more rules).
    assert!(control, "decoded a datagram is_control rejects");
    assert_eq!(m.as_bytes(), data);
    let before = snapshot(&m);
    let _ = m.unknown_required();
    let _ = m.has_fingerprint();
    let _ = m.verify(REENCODE_KEY);

    let mut buf = vec![0u8; data.len() + 64];
    let len = match reencode(&m, &mut buf) {
        Ok(len) => len,
        // Only a message already near the 64 KiB limit can outgrow it.
        Err(crate::wire::EncodeError::MessageTooLong { .. }) => return,
        Err(e) => panic!("re-encoding decoded values failed: {e}"),
    };
    let again = Message::decode(&buf[..len]).expect("re-encoded message must decode");
    assert_eq!(snapshot(&again), before);
    assert!(again.has_fingerprint());
    assert!(again.unknown_required().is_empty());
    assert_eq!(again.has_integrity(), m.has_integrity());
    if again.has_integrity() {
        again
            .verify(REENCODE_KEY)
            .expect("re-signed message must verify");
    }
}

/// The MPR engine under hostile and half-valid traffic. The input is a
/// sequence of operations: raw datagrams at the control address or at a
/// relay port, correctly signed REGISTER/CMPH messages with fuzzed fields
/// (the fuzzer cannot forge an HMAC, so the body signs for it), media
/// intents, relay reports and time steps. After every step the engine's
/// accounting must hold: one port pair per open leg, and free + in use +
/// quarantined = capacity. Any panic is a finding. Returns the engine's
/// counters so the seed-corpus test can check that the seeds reach deep.
pub fn mpr_datagrams(data: &[u8]) -> crate::mpr::Stats {
    use crate::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
    use crate::mpr::{Config, Engine, NetworkConfig};
    use crate::ports::PortRange;
    use crate::relay::RelayReport;
    use crate::wire::{Class, Method, Protocol, RtcpMode, TransactionId};
    use crate::{CallKey, Component, LegId, Receive, Side};
    use std::net::SocketAddr;
    use std::time::Duration;

    const KEY: &[u8] = b"fuzz-credential";
    let mut now = crate::fuzz_instant();
    let mut cfg = Config::new([203, 0, 113, 10].into(), [9; 32]);
    cfg.ports = PortRange {
        first: 30_000,
        last: 30_015,
    };
    cfg.replay_capacity = 8;
    cfg.networks.push(NetworkConfig::new("corp1", KEY.to_vec()));
    let Ok(mut mpr) = Engine::new(cfg, now) else {
        return crate::mpr::Stats::default();
    };
    let control: SocketAddr = ([203, 0, 113, 10], 5060).into();
    let sources: [SocketAddr; 3] = [
        ([198, 51, 100, 1], 20_000).into(),
        ([198, 51, 100, 1], 20_002).into(),
        ([192, 0, 2, 66], 4000).into(),
    ];
    let mut nonce: Vec<u8> = Vec::new();
    // Relay addresses the engine has named (CMPH responses, plans): the
    // fuzzer aims at them, as an attacker who read the SDP would.
    let mut known: Vec<SocketAddr> = Vec::new();
    let mut tid = 0u32;
    let mut rest = data;
    // Bounded work per input keeps the executions per second up.
    let mut budget = 200u32;
    while let [op, a, b, tail @ ..] = rest {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let len = usize::from(*b & 0x3f).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let src = sources[usize::from(*a) % sources.len()];
        let relay: SocketAddr = match known.len() {
            0 => ([203, 0, 113, 10], 30_000 + u16::from(*a & 0x0f)).into(),
            n => known[usize::from(*a & 0x0f) % n],
        };
        match op % 6 {
            0 => {
                let _ = mpr.handle_datagram(
                    now,
                    Receive {
                        local: control,
                        remote: src,
                        bytes: chunk,
                        flow: Default::default(),
                    },
                );
            }
            1 => {
                let _ = mpr.handle_datagram(
                    now,
                    Receive {
                        local: relay,
                        remote: src,
                        bytes: chunk,
                        flow: Default::default(),
                    },
                );
            }
            2 => {
                // A signed REGISTER or CMPH with fuzzed fields.
                tid += 1;
                let mut id = [0u8; 12];
                id[..4].copy_from_slice(&tid.to_be_bytes());
                let mut buf = [0u8; crate::wire::MAX_MESSAGE];
                let method = if *a & 0x80 == 0 {
                    Method::Register
                } else {
                    Method::Cmph
                };
                let class = if *a & 0x40 == 0 {
                    Class::Request
                } else {
                    Class::Indication
                };
                let Ok(mut m) = Builder::new(&mut buf, method, class, TransactionId(id)) else {
                    continue;
                };
                let _ = m.username("corp1");
                if method == Method::Register {
                    let _ = m.protocol(Protocol::Sip);
                    let _ = m.lifetime(u32::from(*b));
                } else if !chunk.is_empty() {
                    let _ = m.leg_key(&chunk[..chunk.len().min(64)]);
                    let _ = m.rtcp_mode(if *b & 1 == 0 {
                        RtcpMode::Pair
                    } else {
                        RtcpMode::Mux
                    });
                }
                if *a & 0x20 == 0 && !nonce.is_empty() {
                    let _ = m.nonce(&nonce);
                }
                // Padded as a client pads requests (spec §2.3), so the
                // challenge comes back and the deep paths stay reachable.
                if class == Class::Request {
                    let _ = m.pad_to(crate::wire::ANSWERABLE_LEN, true);
                }
                let Ok(n) = m.finish(Some(KEY)) else {
                    continue;
                };
                let local = if *a & 0x10 == 0 { control } else { relay };
                let _ = mpr.handle_datagram(
                    now,
                    Receive {
                        local,
                        remote: src,
                        bytes: &buf[..n],
                        flow: Default::default(),
                    },
                );
            }
            3 => {
                now += Duration::from_millis(u64::from(u16::from_be_bytes([*a, *b])) * 10);
                mpr.handle_timeout(now);
            }
            4 => {
                let kind = [
                    IntentKind::Offer,
                    IntentKind::Answer,
                    IntentKind::Modify,
                    IntentKind::Teardown,
                ][usize::from(*a & 3)];
                let eps: Vec<MediaEndpoint> = chunk
                    .chunks(2)
                    .take(4)
                    .map(|c| {
                        let port = [0, 4000, 7000][usize::from(c[0]) % 3];
                        let ip = [[192, 0, 2, 7], [10, 1, 0, 5], [0, 0, 0, 0]]
                            [usize::from(c[0] >> 4) % 3];
                        MediaEndpoint::rtp(
                            u16::from(c.get(1).copied().unwrap_or(0) & 3),
                            (ip, port).into(),
                        )
                    })
                    .collect();
                let origin = if *a & 4 == 0 {
                    Origin::Public
                } else {
                    Origin::Network("corp1")
                };
                let toward = if *a & 8 == 0 {
                    Origin::Public
                } else {
                    Origin::Network("corp1")
                };
                let intent = MediaIntent {
                    kind,
                    from: if *a & 16 == 0 { Side::A } else { Side::B },
                    origin,
                    toward,
                    endpoints: &eps,
                    stranger: None,
                };
                if let Ok(plan) = mpr.handle_intent(now, &CallKey::new([*b >> 6]), &intent) {
                    known.extend(
                        plan.endpoints
                            .iter()
                            .map(|p| p.addr)
                            .filter(|a| a.port() != 0),
                    );
                }
            }
            _ => {
                let leg = LegId(u64::from(*b));
                let report = if *a & 1 == 0 {
                    RelayReport::Activity { leg, at: now }
                } else {
                    RelayReport::Latched {
                        leg,
                        component: if *a & 2 == 0 {
                            Component::Rtp
                        } else {
                            Component::Rtcp
                        },
                        source: src,
                    }
                };
                mpr.handle_relay(now, report);
            }
        }
        while let Some(t) = mpr.poll_transmit() {
            // Keep the latest nonce the MPR handed out, as a client would.
            if let Ok(m) = Message::decode(&t.payload) {
                if let Some(n) = m.nonce() {
                    nonce = n.to_vec();
                }
                known.extend(m.xor_relayed_address());
            }
        }
        while mpr.poll_command().is_some() {}
        while mpr.poll_event().is_some() {}
        let (free, in_use, quarantined, cap) = mpr.port_usage();
        assert_eq!(free + in_use + quarantined, cap, "port accounting");
        assert_eq!(
            in_use as u64,
            mpr.stats().legs_open,
            "a port pair per open leg"
        );
    }
    mpr.stats()
}

/// What a stream reader got from one feeding of a stream.
#[derive(Debug, PartialEq)]
struct Framed<'a> {
    messages: Vec<&'a [u8]>,
    consumed: usize,
    error: Option<crate::framing::FrameError>,
}

/// Feeds `stream` to a reader in pieces ending at `ends` (then the rest),
/// taking every whole frame after each piece, as a connection would.
fn frame_in_pieces<'a>(
    stream: &'a [u8],
    ends: impl IntoIterator<Item = usize>,
    framer: Option<crate::framing::ProtocolFramer>,
) -> Framed<'a> {
    use crate::framing::{Frame, MAX_CONTROL, next};
    use crate::wire::{MAGIC_COOKIE, is_control};
    let mut out = Framed {
        messages: Vec::new(),
        consumed: 0,
        error: None,
    };
    for end in ends.into_iter().chain([stream.len()]) {
        let end = end.clamp(out.consumed, stream.len());
        loop {
            // What the reader has buffered: arrived and not yet consumed.
            let buf = &stream[out.consumed..end];
            let frame = match next(buf, framer) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            };
            let n = frame.len();
            assert!(
                n > 0 && n <= buf.len(),
                "{frame:?} from {} bytes",
                buf.len()
            );
            let bytes = &buf[..n];
            if let Frame::Message(_) = frame {
                // A frame that starts like STUN was framed as STUN, unless
                // it is a TPKT header with a length under a STUN header's
                // 20 octets (`framing::control` frames those as TPKT).
                let short_tpkt = bytes.len() >= 4
                    && bytes[..2] == [3, 0]
                    && u16::from_be_bytes([bytes[2], bytes[3]]) < 20;
                if !short_tpkt
                    && bytes[0] <= 3
                    && bytes.get(4..8) == Some(&MAGIC_COOKIE.to_be_bytes()[..])
                {
                    assert!(is_control(bytes), "control frame fails is_control");
                    assert!(n <= MAX_CONTROL);
                }
                out.messages.push(bytes);
            }
            out.consumed += n;
        }
    }
    out
}

/// Shared body of the stream-framing fuzz targets: `data[0]` seeds the
/// chunk sizes (1 to 64 bytes) and the rest is the stream. Fed whole and fed
/// in chunks, the stream yields the same messages, consumes the same bytes
/// and fails with the same error (keepalives may split differently); no
/// frame is empty or longer than what is buffered, and a frame that starts
/// like STUN passes `wire::is_control`. Returns the number of messages, so
/// the seed-corpus tests can check that the seeds frame something.
pub fn framing_stream(data: &[u8], framer: Option<crate::framing::ProtocolFramer>) -> usize {
    let Some((&seed, stream)) = data.split_first() else {
        return 0;
    };
    let whole = frame_in_pieces(stream, [], framer);
    let mut state = u32::from(seed) | 1;
    let mut at = 0;
    let mut ends = Vec::new();
    while at < stream.len() {
        // A small LCG: reproducible sizes from one byte.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        at += 1 + (state >> 16) as usize % 64;
        ends.push(at);
    }
    let pieces = frame_in_pieces(stream, ends, framer);
    assert_eq!(whole, pieces, "fed whole and in pieces");
    // Byte by byte is the hardest split; the same again.
    if stream.len() <= 2048 {
        assert_eq!(whole, frame_in_pieces(stream, 1..stream.len(), framer));
    }
    whole.messages.len()
}

/// Fuzz target `framing_control`: a stream with no ALG (control messages
/// only), see [`framing_stream`].
pub fn framing_control(data: &[u8]) -> usize {
    framing_stream(data, None)
}

/// Fuzz target `framing_tpkt`: control messages beside TPKT (H.323), see
/// [`framing_stream`]; TPKT alone never frames more than it was given.
pub fn framing_tpkt(data: &[u8]) -> usize {
    if let Ok(Some(f)) = crate::framing::tpkt(data) {
        assert!(f.len() >= 4 && f.len() <= data.len());
    }
    framing_stream(data, Some(crate::framing::tpkt))
}
