use proptest::prelude::*;

use super::*;
use crate::wire::{Builder, Class, MAX_MESSAGE, Method, Protocol, TransactionId};

/// A signed REGISTER request built with the wire builder.
fn register(software: &str) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut b = Builder::new(
        &mut buf,
        Method::Register,
        Class::Request,
        TransactionId([7; 12]),
    )
    .unwrap();
    b.username("corp1")
        .unwrap()
        .protocol(Protocol::H323)
        .unwrap();
    b.software(software).unwrap();
    let n = b.finish(Some(b"secret")).unwrap();
    buf[..n].to_vec()
}

/// A hand-made STUN header with `len` attribute bytes of `fill`.
fn stun(first: u8, len: u16, fill: u8) -> Vec<u8> {
    let mut m = vec![first, 0x01];
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&[0xAB; 12]);
    m.resize(HEADER_LEN + usize::from(len), fill);
    m
}

/// A TPKT frame around a Q.931-looking payload (protocol discriminator 8).
fn tpkt_frame(payload_len: usize) -> Vec<u8> {
    let len = u16::try_from(4 + payload_len).unwrap();
    let mut m = vec![3, 0];
    m.extend_from_slice(&len.to_be_bytes());
    m.extend((0..payload_len).map(|i| if i == 0 { 8 } else { i as u8 }));
    m
}

/// What a reader gets: (message?, bytes) per frame, and the unframed rest.
type Framed = (Vec<(bool, Vec<u8>)>, Vec<u8>);

/// A reader: appends each chunk, then takes every whole frame.
fn feed<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    framer: Option<ProtocolFramer>,
) -> Result<Framed, FrameError> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(f) = next(&buf, framer)? {
            assert!(
                !f.is_empty() && f.len() <= buf.len(),
                "{f:?} of {}",
                buf.len()
            );
            let bytes: Vec<u8> = buf.drain(..f.len()).collect();
            out.push((matches!(f, Frame::Message(_)), bytes));
        }
    }
    Ok((out, buf))
}

#[test]
fn control_demultiplexes_at_a_frame_boundary() {
    let reg = register("aps");
    assert_eq!(control(&reg), Some(Ok(Some(reg.len()))));
    assert!(crate::wire::is_control(&reg));
    for cut in 0..reg.len() {
        let want = if cut == 0 { None } else { Some(Ok(None)) };
        assert_eq!(control(&reg[..cut]), want, "cut at {cut}");
    }
    let mut two = reg.clone();
    two.extend_from_slice(b"INVITE");
    assert_eq!(control(&two), Some(Ok(Some(reg.len()))));
    // Not a control message: text, RTP, a byte over 3, no cookie.
    assert_eq!(control(b"INVITE sip:b SIP/2.0"), None);
    assert_eq!(control(&[0x80, 0, 0, 0, 0x21, 0x12, 0xA4, 0x42]), None);
    assert_eq!(control(&[4]), None);
    assert_eq!(control(&[3, 0, 0, 0x1C, 8, 2, 0x80, 1]), None);
}

#[test]
fn control_rejects_bad_lengths() {
    let odd = stun(0, 6, 0);
    assert_eq!(
        control(&odd[..8]),
        Some(Err(FrameError::Malformed {
            at: 2,
            reason: "control message length is not a multiple of 4"
        }))
    );
    let big = stun(1, 4080, 0);
    assert_eq!(
        control(&big[..8]),
        Some(Err(FrameError::TooLarge { limit: MAX_CONTROL }))
    );
    // The limit itself is accepted, as soon as the header is there.
    let max = stun(1, (MAX_CONTROL - HEADER_LEN) as u16, 0);
    assert_eq!(control(&max[..8]), Some(Ok(None)));
    assert_eq!(control(&max), Some(Ok(Some(MAX_CONTROL))));
}

#[test]
fn tpkt_frames() {
    assert_eq!(tpkt(b""), Ok(None));
    assert_eq!(tpkt(&[3]), Ok(None));
    assert_eq!(tpkt(&[3, 0, 0]), Ok(None));
    assert_eq!(tpkt(&[3, 0, 0, 4, 3]), Ok(Some(Frame::Keepalive(4))));
    let m = tpkt_frame(30);
    for cut in 0..m.len() {
        assert_eq!(tpkt(&m[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(tpkt(&m), Ok(Some(Frame::Message(34))));
    for short in 0..4u8 {
        assert!(matches!(
            tpkt(&[3, 0, 0, short]),
            Err(FrameError::Malformed { at: 2, .. })
        ));
    }
    assert!(matches!(
        tpkt(b"INVITE"),
        Err(FrameError::Malformed { at: 0, .. })
    ));
    let mut max = vec![3, 0, 0xFF, 0xFF];
    max.resize(MAX_TPKT, 0);
    assert_eq!(tpkt(&max), Ok(Some(Frame::Message(MAX_TPKT))));
}

#[test]
fn next_waits_for_the_cookie_before_choosing_tpkt() {
    let m = tpkt_frame(10);
    // Bytes 0..8 could still be STUN: no decision.
    for cut in 1..8 {
        assert_eq!(next(&m[..cut], Some(tpkt)), Ok(None), "cut at {cut}");
    }
    assert_eq!(next(&m, Some(tpkt)), Ok(Some(Frame::Message(14))));
    // A STUN success starts with 3 too; the cookie picks it.
    let s = stun(3, 8, 9);
    assert_eq!(next(&s, Some(tpkt)), Ok(Some(Frame::Message(28))));
    // The empty TPKT keepalive alone is framed at once (an idle H.323
    // connection sends nothing after it).
    assert_eq!(
        next(&[3, 0, 0, 4], Some(tpkt)),
        Ok(Some(Frame::Keepalive(4)))
    );
    assert_eq!(control(&[3, 0, 0, 4]), None);
    assert_eq!(
        next(&[3, 0, 0, 4, 3, 0, 0, 4], Some(tpkt)),
        Ok(Some(Frame::Keepalive(4)))
    );
    // A short frame alone (an H.245 MSD Ack: 6 octets) is framed at once:
    // no STUN message is under 20 octets, and nothing may follow it.
    let msd_ack = [3, 0, 0, 6, 0x20, 0x80];
    assert_eq!(next(&msd_ack, Some(tpkt)), Ok(Some(Frame::Message(6))));
    assert_eq!(next(&msd_ack[..5], Some(tpkt)), Ok(None));
}

#[test]
fn control_only_streams() {
    let reg = register("x");
    let (frames, rest) = feed([&reg[..], &reg[..]], None).unwrap();
    assert_eq!(frames.len(), 2);
    assert!(rest.is_empty());
    assert!(matches!(
        next(b"\r\n", None),
        Err(FrameError::Malformed { at: 0, .. })
    ));
    assert!(matches!(
        next(&tpkt_frame(8), None),
        Err(FrameError::Malformed { .. })
    ));
    assert_eq!(next(b"", Some(tpkt)), Ok(None));
}

#[test]
fn labels_are_distinct() {
    let a = FrameError::TooLarge { limit: 1 }.kind();
    let b = FrameError::Malformed { at: 0, reason: "x" }.kind();
    assert_ne!(a, b);
    assert_eq!(a, "too_large");
}

/// One frame of a mixed control + TPKT stream.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u16..=64, any::<u8>(), 0u8..=3).prop_map(|(w, fill, first)| stun(first, w * 4, fill)),
        "[a-z]{1,40}".prop_map(|s| register(&s)),
        (1usize..300).prop_map(tpkt_frame),
        Just(vec![3, 0, 0, 4]),
    ]
}

/// Every whole frame comes out: a short TPKT frame (under 20 octets, so
/// no STUN message) needs no cookie to be told apart, and the empty TPKT
/// keepalive is one of them.
fn expected(frames: &[Vec<u8>]) -> (usize, usize) {
    (frames.len(), 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn concatenations_split_back_exactly(
        frames in proptest::collection::vec(any_frame(), 1..8),
        chunks in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let stream = frames.concat();
        let (whole, pending) = expected(&frames);
        // Random chunk sizes, cycling.
        let mut parts = Vec::new();
        let mut at = 0;
        for size in chunks.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + size).min(stream.len());
            parts.push(&stream[at..end]);
            at = end;
        }
        let (got, rest) = feed(parts, Some(tpkt)).unwrap();
        prop_assert_eq!(got.len(), whole);
        for ((msg, bytes), want) in got.iter().zip(&frames) {
            prop_assert_eq!(bytes, want);
            prop_assert_eq!(*msg, want.as_slice() != [3, 0, 0, 4]);
        }
        prop_assert_eq!(rest.len(), pending);
        // Every single split point gives the same frames.
        for cut in 0..=stream.len() {
            let (again, rest) = feed([&stream[..cut], &stream[cut..]], Some(tpkt)).unwrap();
            prop_assert_eq!(&again, &got, "split at {}", cut);
            prop_assert_eq!(rest.len(), pending);
        }
    }

    #[test]
    fn truncation_never_yields_a_frame(frame in any_frame(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(frame.len());
        prop_assert_eq!(next(&frame[..cut], Some(tpkt)), Ok(None));
        if frame.get(4..8) == Some(&MAGIC_COOKIE.to_be_bytes()[..]) {
            prop_assert_eq!(next(&frame[..cut], None), Ok(None));
        }
    }

    #[test]
    fn random_bytes_never_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..200), cookie in any::<bool>()) {
        let mut bytes = bytes;
        if cookie && bytes.len() >= 8 {
            bytes[0] &= 3;
            bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        }
        for framer in [None, Some(tpkt as ProtocolFramer)] {
            if let Ok(Some(f)) = next(&bytes, framer) {
                prop_assert!(!f.is_empty() && f.len() <= bytes.len());
            }
        }
        if let Ok(Some(f)) = tpkt(&bytes) {
            prop_assert!(f.len() >= 4 && f.len() <= bytes.len());
        }
        if let Some(Ok(Some(n))) = control(&bytes) {
            prop_assert!(n >= HEADER_LEN && n <= bytes.len().min(MAX_CONTROL));
        }
    }
}
