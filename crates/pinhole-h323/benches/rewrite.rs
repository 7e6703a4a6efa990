//! The H.323 ALG's rewrite against rasn decode + modify + re-encode, in
//! the same run (issue 14's benchmark).
//!
//! One `walker/*` iteration does what the ALG does to a message: walk the
//! PER, then patch every address of a copy in place. One `rasn/*`
//! iteration does the same job with a full codec: decode the PDU (and,
//! for a Setup, each fastStart element), set the addresses in the value,
//! encode it again (the elements first).
//!
//! The cases: an H.245 OpenLogicalChannelAck (mediaChannel and
//! mediaControlChannel), and a Setup with two fastStart elements (three
//! media addresses, h245Address and the call-signal addresses) as rasn's
//! encoder built them. Before timing, both outputs are checked to decode
//! (rasn) to the same addresses, so a broken rewrite fails instead of
//! reporting a number.
//!
//! ```text
//! cargo bench -p pinhole-h323 --bench rewrite -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group};
use pinhole_h323::per::{Family, Pdu, Walk, walk_into};
use pinhole_h323_oracle::{Kind, build as b, h225, h245, inspect};

fn relay(i: usize) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 10], 40_000 + i as u16))
}

/// The walker's job: walk (into a reused `Walk`), then patch a copy.
fn walker(pdu: Pdu, per: &[u8], out: &mut Vec<u8>, w: &mut Walk) {
    walk_into(pdu, per, w).unwrap();
    out.clear();
    out.extend_from_slice(per);
    for (i, a) in w.addresses.iter().enumerate() {
        debug_assert_eq!(a.family, Family::V4);
        a.set(out, relay(i)).unwrap();
    }
}

fn h245_ta(i: usize) -> h245::TransportAddress {
    b::h245_address(relay(i))
}

/// rasn's job on an OLC Ack: decode, set both addresses, encode.
fn rasn_ack(per: &[u8]) -> Vec<u8> {
    use h245::OpenLogicalChannelAckForwardMultiplexAckParameters as A;
    let mut m = pinhole_h323_oracle::decode_h245(per).unwrap();
    if let h245::MultimediaSystemControlMessage::response(
        h245::ResponseMessage::openLogicalChannelAck(ack),
    ) = &mut m
        && let Some(A::h2250LogicalChannelAckParameters(p)) =
            &mut ack.forward_multiplex_ack_parameters
    {
        p.media_channel = Some(h245_ta(0));
        p.media_control_channel = Some(h245_ta(1));
    }
    pinhole_h323_oracle::encode(&m).unwrap()
}

/// rasn's job on a Setup: decode it and each fastStart OLC, set every
/// address, encode the OLCs and then the Setup.
fn rasn_setup(per: &[u8]) -> Vec<u8> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as F;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as R;
    let mut ui = pinhole_h323_oracle::decode_user_information(per).unwrap();
    let mut i = 0;
    let mut next = || {
        i += 1;
        i - 1
    };
    if let h225::H323UUPDUH323MessageBody::setup(s) = &mut ui.h323_uu_pdu.h323_message_body {
        if s.h245_address.is_some() {
            s.h245_address = Some(b::h225_address(relay(next())));
        }
        if let Some(fs) = &mut s.fast_start {
            let mut elements = Vec::new();
            for e in fs.iter() {
                let mut olc = pinhole_h323_oracle::decode_olc(e).unwrap();
                let set = |p: &mut h245::H2250LogicalChannelParameters,
                           next: &mut dyn FnMut() -> usize| {
                    if p.media_channel.is_some() {
                        p.media_channel = Some(h245_ta(next()));
                    }
                    if p.media_control_channel.is_some() {
                        p.media_control_channel = Some(h245_ta(next()));
                    }
                };
                if let F::h2250LogicalChannelParameters(p) =
                    &mut olc.forward_logical_channel_parameters.multiplex_parameters
                {
                    set(p, &mut next);
                }
                if let Some(r) = &mut olc.reverse_logical_channel_parameters
                    && let Some(R::h2250LogicalChannelParameters(p)) = &mut r.multiplex_parameters
                {
                    set(p, &mut next);
                }
                elements.push(pinhole_h323_oracle::encode(&olc).unwrap().into());
            }
            *fs = elements;
        }
        if s.dest_call_signal_address.is_some() {
            s.dest_call_signal_address = Some(b::h225_address(relay(next())));
        }
        if s.source_call_signal_address.is_some() {
            s.source_call_signal_address = Some(b::h225_address(relay(next())));
        }
    }
    pinhole_h323_oracle::encode(&ui).unwrap()
}

fn cases() -> [(&'static str, Pdu, Vec<u8>); 2] {
    let a = |p: u16| SocketAddr::from(([10, 1, 2, 3], p));
    let ack = b::olc_ack(7, a(5000), a(5001));
    let fs = vec![
        b::olc(1, Some(a(5001)), None, false),
        b::olc(2, Some(a(5001)), Some(a(5000)), true),
    ];
    let setup = b::setup(
        [7; 16],
        [9; 16],
        "alice",
        "bob@corp2.example",
        Some(a(1720)),
        Some(a(1721)),
        Some(a(1722)),
        &fs,
        false,
        &[],
    );
    let setup = pinhole_h323_oracle::q931_user_user(&b::q931(0x1234, false, 0x05, &setup))
        .unwrap()
        .to_vec();
    [
        ("olc_ack", Pdu::H245, ack),
        ("setup_fast_start", Pdu::UserInformation, setup),
    ]
}

fn kind(p: Pdu) -> Kind {
    if p == Pdu::H245 {
        Kind::H245
    } else {
        Kind::UserInformation
    }
}

/// Both rewrites give the same addresses as rasn decodes them.
fn check() {
    for (name, pdu, per) in cases() {
        let mut ours = Vec::new();
        walker(pdu, &per, &mut ours, &mut Walk::default());
        let theirs = if pdu == Pdu::H245 {
            rasn_ack(&per)
        } else {
            rasn_setup(&per)
        };
        let a: Vec<_> = inspect(kind(pdu), &ours)
            .unwrap()
            .addresses
            .iter()
            .map(|f| (f.ip, f.port))
            .collect();
        let mut b: Vec<_> = inspect(kind(pdu), &theirs)
            .unwrap()
            .addresses
            .iter()
            .map(|f| (f.ip, f.port))
            .collect();
        let mut a_sorted = a.clone();
        a_sorted.sort();
        b.sort();
        assert_eq!(a_sorted, b, "{name}: the two rewrites disagree");
        assert!(a.iter().all(|(ip, _)| *ip == relay(0).ip()), "{name}");
    }
}

fn bench(c: &mut Criterion) {
    check();
    for (name, pdu, per) in cases() {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        let mut out = Vec::with_capacity(per.len());
        let mut w = Walk::default();
        g.bench_function("walker", |bch| {
            bch.iter(|| {
                walker(pdu, black_box(&per), &mut out, &mut w);
                black_box(&out);
            })
        });
        g.bench_function("rasn", |bch| {
            bch.iter(|| {
                let o = if pdu == Pdu::H245 {
                    rasn_ack(black_box(&per))
                } else {
                    rasn_setup(black_box(&per))
                };
                black_box(o)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
