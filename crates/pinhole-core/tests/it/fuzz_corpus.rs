//! Runs the fuzz target body over the checked-in seed corpus, so every
//! `cargo test` replays it (and any crash input added there later).
//!
//! Regenerate the seeds with
//! `PINHOLE_WRITE_CORPUS=1 cargo test -p pinhole-core --test it fuzz_corpus -- --ignored`.

use std::path::PathBuf;

use pinhole_core::fuzzing::{control_decode, framing_control, framing_tpkt, mpr_datagrams};
use pinhole_core::wire::{
    Builder, Class, ErrorCode, Message, Method, Protocol, RtcpMode, TransactionId,
};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/control_decode")
}

#[test]
fn seed_corpus_passes_fuzz_property() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        control_decode(&data);
        seen += 1;
    }
    assert!(seen >= 12, "seed corpus has only {seen} files");
}

#[test]
fn mpr_seed_corpus_passes_fuzz_property() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mpr_datagrams");
    let mut seen = 0;
    let mut total = pinhole_core::mpr::Stats::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let s = mpr_datagrams(&data);
        total.registrations_accepted += s.registrations_accepted;
        total.cmph_reserved += s.cmph_reserved;
        total.cmph_bound += s.cmph_bound;
        total.intents += s.intents;
        total.latches += s.latches;
        total.calls_expired += s.calls_expired;
        total.decode_errors += s.decode_errors;
        seen += 1;
    }
    assert!(seen >= 6, "mpr seed corpus has only {seen} files");
    // The seeds are worth their bytes only if they reach the deep paths.
    assert!(total.registrations_accepted >= 5, "{total:?}");
    assert!(
        total.cmph_reserved >= 2 && total.cmph_bound >= 2,
        "{total:?}"
    );
    assert!(total.intents >= 3 && total.latches >= 1, "{total:?}");
    assert!(
        total.calls_expired >= 1 && total.decode_errors >= 1,
        "{total:?}"
    );
}

#[test]
fn seed_corpus_files_are_valid_messages() {
    // The seeds are useful only if they reach deep: each must decode.
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let m = Message::decode(&data);
        assert!(m.is_ok(), "{}: {m:?}", path.display());
    }
}

type Fill = fn(&mut Builder<'_>);

const KEY: &[u8] = b"corp1-secret";
const NONCE: &[u8] = b"0000000000000258a1b2c3d4e5f60718";

fn seeds() -> Vec<(&'static str, Method, Class, bool, Fill)> {
    vec![
        (
            "register_request",
            Method::Register,
            Class::Request,
            true,
            |b| {
                b.username("corp1")
                    .unwrap()
                    .protocol(Protocol::Sip)
                    .unwrap();
                b.domain("corp1.example")
                    .unwrap()
                    .domain("corp1.test")
                    .unwrap();
                b.lifetime(600)
                    .unwrap()
                    .nonce(NONCE)
                    .unwrap()
                    .software("aps")
                    .unwrap();
            },
        ),
        (
            "register_success",
            Method::Register,
            Class::Success,
            true,
            |b| {
                b.xor_mapped_address("198.51.100.7:5060".parse().unwrap())
                    .unwrap();
                b.lifetime(3600).unwrap().protocol(Protocol::H323).unwrap();
                b.nonce(NONCE).unwrap();
            },
        ),
        ("register_401", Method::Register, Class::Error, false, |b| {
            b.error_code(ErrorCode::UNAUTHORIZED, "Unauthorized")
                .unwrap();
            b.nonce(NONCE).unwrap();
        }),
        ("register_420", Method::Register, Class::Error, true, |b| {
            b.error_code(ErrorCode::UNKNOWN_ATTRIBUTE, "Unknown Attribute")
                .unwrap();
            b.unknown_attributes(&[0x4C05, 0x0003]).unwrap();
        }),
        ("register_438", Method::Register, Class::Error, true, |b| {
            b.error_code(ErrorCode::STALE_NONCE, "Stale Nonce").unwrap();
            b.nonce(NONCE).unwrap();
        }),
        ("cmph_reserve", Method::Cmph, Class::Request, true, |b| {
            b.username("corp1").unwrap().leg_key(b"call-1/a/0").unwrap();
            b.rtcp_mode(RtcpMode::Mux).unwrap().nonce(NONCE).unwrap();
        }),
        ("cmph_bind", Method::Cmph, Class::Request, true, |b| {
            b.username("corp1").unwrap().nonce(NONCE).unwrap();
        }),
        (
            "cmph_indication",
            Method::Cmph,
            Class::Indication,
            true,
            |b| {
                b.username("corp1").unwrap().leg_key(&[0xFF; 64]).unwrap();
                b.nonce(NONCE).unwrap();
            },
        ),
        ("cmph_success_v4", Method::Cmph, Class::Success, true, |b| {
            b.xor_mapped_address("192.0.2.1:40000".parse().unwrap())
                .unwrap();
            b.xor_relayed_address("203.0.113.1:20000".parse().unwrap())
                .unwrap();
            b.rtcp_mode(RtcpMode::Pair).unwrap().lifetime(60).unwrap();
            b.nonce(NONCE).unwrap();
        }),
        ("cmph_success_v6", Method::Cmph, Class::Success, true, |b| {
            b.xor_mapped_address("[2001:db8::7]:40000".parse().unwrap())
                .unwrap();
            b.xor_relayed_address("[2001:db8::1]:20000".parse().unwrap())
                .unwrap();
            b.rtcp_mode(RtcpMode::None).unwrap().lifetime(60).unwrap();
            b.nonce(NONCE).unwrap();
        }),
        ("cmph_486", Method::Cmph, Class::Error, true, |b| {
            b.error_code(ErrorCode::QUOTA_REACHED, "Allocation Quota Reached")
                .unwrap();
        }),
        (
            "binding_request",
            Method::Binding,
            Class::Request,
            false,
            |_| {},
        ),
        (
            "binding_indication",
            Method::Binding,
            Class::Indication,
            false,
            |_| {},
        ),
        (
            "binding_success",
            Method::Binding,
            Class::Success,
            false,
            |b| {
                b.xor_mapped_address("[::ffff:192.0.2.9]:5060".parse().unwrap())
                    .unwrap();
                b.software("pinhole-mpr").unwrap();
            },
        ),
    ]
}

#[test]
#[ignore = "writes fuzz/corpus/control_decode; run with PINHOLE_WRITE_CORPUS=1"]
fn write_seed_corpus() {
    if std::env::var_os("PINHOLE_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, method, class, signed, fill)) in seeds().into_iter().enumerate() {
        let id = TransactionId([i as u8; 12]);
        let mut buf = [0u8; 1280];
        let mut b = Builder::new(&mut buf, method, class, id).unwrap();
        fill(&mut b);
        let n = b.finish(signed.then_some(KEY)).unwrap();
        std::fs::write(dir.join(name), &buf[..n]).unwrap();
    }
}

/// Every seed of a framing target: runs the body, returns the messages.
fn framing_seeds(target: &str, body: fn(&[u8]) -> usize) -> (usize, usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let (mut seen, mut messages) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        messages += body(&data);
        seen += 1;
    }
    (seen, messages)
}

#[test]
fn framing_seed_corpora_pass_fuzz_property() {
    // Worth their bytes only if they frame messages past the first.
    let (seen, messages) = framing_seeds("framing_control", framing_control);
    assert!(
        seen >= 3 && messages >= 4,
        "{seen} seeds, {messages} messages"
    );
    let (seen, messages) = framing_seeds("framing_tpkt", framing_tpkt);
    assert!(
        seen >= 3 && messages >= 8,
        "{seen} seeds, {messages} messages"
    );
}
