//! Reflection: every answer the MPR engine sends before a request proved
//! its source address (a fresh nonce minted for that IP, spec §2.2) is no
//! larger than the request (docs/wire-format.md §2.3). Table-driven over
//! every unauthenticated request type the engine answers, from IPv4 and
//! IPv6 sources; the table is printed (`--nocapture`) with each ratio.

use std::net::SocketAddr;
use std::time::Instant;

use pinhole_core::mpr::{Config, Engine, InputError, NetworkConfig};
use pinhole_core::types::Receive;
use pinhole_core::wire::{
    self, Builder, Class, ErrorCode, Message, Method, Protocol, RtcpMode, TransactionId,
};

const CRED: &[u8] = b"corp1-secret";
/// Well-formed, but minted by no run of this MPR: 438.
const FOREIGN_NONCE: &[u8] = b"0000000000000258a1b2c3d4e5f60718";

/// The tests' base instant: the engine is only ever fed this one.
#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    Instant::now()
}

fn mpr(now: Instant) -> Engine {
    let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [3; 32]);
    cfg.relay_ip6 = Some("2001:db8::10".parse().unwrap());
    cfg.networks
        .push(NetworkConfig::new("corp1", CRED.to_vec()));
    Engine::new(cfg, now).unwrap()
}

fn id(n: u8) -> TransactionId {
    TransactionId([n; 12])
}

/// A request as the case describes it; `key` adds MESSAGE-INTEGRITY-SHA256.
fn msg(
    method: Method,
    key: Option<&[u8]>,
    pad_to: Option<usize>,
    f: impl FnOnce(&mut Builder<'_>),
) -> Vec<u8> {
    let mut buf = [0u8; 1280];
    let mut b = Builder::new(&mut buf, method, Class::Request, id(7)).unwrap();
    f(&mut b);
    if let Some(len) = pad_to {
        b.pad_to(len, key.is_some()).unwrap();
    }
    let n = b.finish(key).unwrap();
    buf[..n].to_vec()
}

/// A message of type `typ` with USERNAME `user` (if any), then a
/// comprehension-required attribute nobody defined (0x7F00) whose value is
/// `pad` zero bytes; no FINGERPRINT.
fn with_unknown(typ: u16, user: &[u8], pad: usize) -> Vec<u8> {
    let mut attrs = Vec::new();
    if !user.is_empty() {
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user);
        attrs.resize(attrs.len().next_multiple_of(4), 0);
    }
    attrs.extend_from_slice(&0x7F00u16.to_be_bytes());
    attrs.extend_from_slice(&(pad as u16).to_be_bytes());
    attrs.resize(attrs.len() + pad.next_multiple_of(4), 0);
    let mut v = typ.to_be_bytes().to_vec();
    v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    v.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    v.extend_from_slice(&[7; 12]);
    v.extend_from_slice(&attrs);
    v
}

/// A bare 20-byte STUN header: what the flood sends.
fn bare_binding() -> Vec<u8> {
    let mut v = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    v.extend_from_slice(&[9; 12]);
    v
}

/// The answer (if any) to `req` from `remote`, and the error code in it.
fn answer(remote: SocketAddr, req: &[u8]) -> (Option<Vec<u8>>, Result<(), InputError>) {
    let now = base();
    let mut e = mpr(now);
    let local: SocketAddr = if remote.is_ipv4() {
        "203.0.113.10:3478".parse().unwrap()
    } else {
        "[2001:db8::10]:3478".parse().unwrap()
    };
    let r = e.handle_datagram(
        now,
        Receive {
            local,
            remote,
            bytes: req,
            flow: Default::default(),
        },
    );
    let out = e.poll_transmit().map(|t| t.payload);
    assert!(e.poll_transmit().is_none(), "one answer at most");
    (out, r)
}

struct Case {
    name: &'static str,
    req: Vec<u8>,
    /// What the engine answers once the request is large enough.
    answers: Option<u16>,
}

fn cases() -> Vec<Case> {
    use Method::{Binding, Cmph, Register};
    let reg = |b: &mut Builder<'_>| {
        b.username("corp1").unwrap();
        b.protocol(Protocol::Sip).unwrap();
    };
    let full = |b: &mut Builder<'_>| {
        b.username("corp1").unwrap();
        b.protocol(Protocol::Sip).unwrap();
        b.domain("corp1.example").unwrap();
        b.lifetime(600).unwrap();
    };
    let k = Some(CRED);
    let pad = Some(wire::ANSWERABLE_LEN);
    vec![
        Case {
            name: "Binding, bare header",
            req: bare_binding(),
            answers: None,
        },
        Case {
            name: "Binding + FINGERPRINT",
            req: msg(Binding, None, None, |_| {}),
            answers: None,
        },
        Case {
            name: "Binding padded to 52",
            req: msg(Binding, None, Some(52), |_| {}),
            answers: Some(0),
        },
        Case {
            name: "Binding + unknown attr",
            req: with_unknown(0x0001, &[], 0),
            answers: None,
        },
        Case {
            name: "REGISTER + unknown attr",
            req: with_unknown(0x0281, b"corp1", 0),
            answers: None,
        },
        Case {
            name: "REGISTER + unknown attr, padded",
            req: with_unknown(0x0281, b"corp1", 40),
            answers: Some(420),
        },
        Case {
            name: "REGISTER unknown network",
            req: msg(Register, None, None, |b| {
                b.username("nobody").unwrap();
                b.protocol(Protocol::Sip).unwrap();
            }),
            answers: Some(401),
        },
        Case {
            name: "REGISTER no integrity",
            req: msg(Register, None, None, reg),
            answers: None,
        },
        Case {
            name: "REGISTER bad integrity",
            req: msg(Register, Some(b"guess"), None, reg),
            answers: Some(401),
        },
        Case {
            name: "REGISTER bad integrity, padded",
            req: msg(Register, Some(b"guess"), pad, reg),
            answers: Some(401),
        },
        Case {
            name: "REGISTER no nonce (unpadded client)",
            req: msg(Register, k, None, full),
            answers: None,
        },
        Case {
            name: "REGISTER no nonce (client, padded)",
            req: msg(Register, k, pad, full),
            answers: Some(401),
        },
        Case {
            name: "REGISTER foreign nonce",
            req: msg(Register, k, pad, |b| {
                full(b);
                b.nonce(FOREIGN_NONCE).unwrap();
            }),
            answers: Some(438),
        },
        Case {
            name: "CMPH bind foreign nonce, no LEG-KEY",
            req: msg(Cmph, k, None, |b| {
                b.username("corp1").unwrap();
                b.nonce(FOREIGN_NONCE).unwrap();
            }),
            answers: None,
        },
        Case {
            name: "CMPH bind foreign nonce, padded",
            req: msg(Cmph, k, pad, |b| {
                b.username("corp1").unwrap();
                b.nonce(FOREIGN_NONCE).unwrap();
            }),
            answers: Some(438),
        },
        Case {
            name: "CMPH reserve no nonce, padded",
            req: msg(Cmph, k, pad, |b| {
                b.username("corp1").unwrap();
                b.leg_key(b"k").unwrap();
                b.rtcp_mode(RtcpMode::Pair).unwrap();
            }),
            answers: Some(401),
        },
    ]
}

#[test]
fn no_unauthenticated_answer_is_larger_than_its_request() {
    let sources: [SocketAddr; 2] = [
        "198.51.100.1:40000".parse().unwrap(),
        "[2001:db8:1::1]:40000".parse().unwrap(),
    ];
    println!(
        "{:<40} {:>4} {:>7} {:>7} {:>6}",
        "request", "ip", "req", "answer", "ratio"
    );
    for c in cases() {
        for remote in sources {
            let (out, r) = answer(remote, &c.req);
            let fam = if remote.is_ipv4() { "v4" } else { "v6" };
            let alen = out.as_ref().map_or(0, Vec::len);
            println!(
                "{:<40} {:>4} {:>7} {:>7} {:>5.2}x",
                c.name,
                fam,
                c.req.len(),
                alen,
                alen as f64 / c.req.len() as f64
            );
            assert!(
                alen <= c.req.len(),
                "{} from {fam}: {alen}-byte answer to a {}-byte request",
                c.name,
                c.req.len()
            );
            assert!(r.is_err() || c.answers == Some(0), "{}: {r:?}", c.name);
            // The padded cases are the ones that must still get an answer
            // (on IPv6 the Binding answer is 52 bytes, so the 52-byte
            // request is the smallest that gets one from either family).
            match (c.answers, out) {
                (None, None) => {}
                (Some(0), Some(a)) => {
                    let m = Message::decode(&a).unwrap();
                    assert_eq!(m.class(), Class::Success, "{}", c.name);
                    assert_eq!(m.xor_mapped_address(), Some(remote));
                }
                (Some(code), Some(a)) => {
                    let m = Message::decode(&a).unwrap();
                    assert_eq!(m.error_code().map(|e| e.0), Some(ErrorCode(code)));
                }
                (want, got) => panic!("{} from {fam}: want {want:?}, got {got:?}", c.name),
            }
        }
    }
}

#[test]
fn dropped_answers_are_counted() {
    let now = base();
    let mut e = mpr(now);
    let bare = bare_binding();
    let rx = Receive {
        local: "203.0.113.10:3478".parse().unwrap(),
        remote: "198.51.100.9:1".parse().unwrap(),
        bytes: &bare,
        flow: Default::default(),
    };
    for _ in 0..1000 {
        assert!(matches!(
            e.handle_datagram(now, rx),
            Err(InputError::TooSmallToAnswer { .. })
        ));
    }
    assert!(e.poll_transmit().is_none());
    assert_eq!(e.stats().amplification_drops, 1000);
    assert_eq!(e.stats().bindings_answered, 0);
}
