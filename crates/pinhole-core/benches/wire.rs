//! Control codec hot paths: what the MPR does per control datagram.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pinhole_core::wire::{
    Builder, Class, MAX_MESSAGE, Message, Method, RtcpMode, TransactionId, is_control,
};

const KEY: &[u8] = b"corp1-secret";
const ID: TransactionId = TransactionId([9; 12]);
const NONCE: &[u8] = b"0000000000000258a1b2c3d4e5f60718";

/// A CMPH reserve request as an APS sends it (~120 bytes).
fn cmph_request() -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut b = Builder::new(&mut buf, Method::Cmph, Class::Request, ID).unwrap();
    b.username("corp1").unwrap();
    b.leg_key(b"3f2a9c41/a/0").unwrap();
    b.rtcp_mode(RtcpMode::Mux).unwrap();
    b.nonce(NONCE).unwrap();
    let n = b.finish(Some(KEY)).unwrap();
    buf[..n].to_vec()
}

fn encode_cmph_success(buf: &mut [u8], mapped: SocketAddr, relayed: SocketAddr) -> usize {
    let mut b = Builder::new(buf, Method::Cmph, Class::Success, ID).unwrap();
    b.xor_mapped_address(mapped).unwrap();
    b.xor_relayed_address(relayed).unwrap();
    b.rtcp_mode(RtcpMode::Mux).unwrap();
    b.lifetime(60).unwrap();
    b.nonce(NONCE).unwrap();
    b.finish(Some(KEY)).unwrap()
}

fn wire(c: &mut Criterion) {
    let req = cmph_request();
    let mut g = c.benchmark_group("wire");
    g.bench_function(format!("decode_cmph_request_{}B", req.len()), |b| {
        b.iter(|| Message::decode(black_box(&req)).unwrap())
    });
    g.bench_function("decode_verify_cmph_request", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(&req)).unwrap();
            m.verify(black_box(KEY)).unwrap();
            m.leg_key()
        })
    });
    let mut buf = [0u8; MAX_MESSAGE];
    let mapped: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let relayed: SocketAddr = "203.0.113.1:20000".parse().unwrap();
    let n = encode_cmph_success(&mut buf, mapped, relayed);
    g.bench_function(format!("encode_cmph_success_mi_fp_{n}B"), |b| {
        b.iter(|| encode_cmph_success(black_box(&mut buf), black_box(mapped), relayed))
    });
    let rtp = {
        let mut v = req.clone();
        v[0] = 0x80;
        v
    };
    g.bench_function("is_control_stun", |b| {
        b.iter(|| is_control(black_box(&req)))
    });
    g.bench_function("is_control_rtp", |b| b.iter(|| is_control(black_box(&rtp))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = wire
}
criterion_main!(benches);
