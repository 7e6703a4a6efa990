//! Reading whole captures: throughput in bytes of capture per second, on
//! the corpus's largest capture (2.8 MB, 27 308 frames, mostly RTP and
//! TCP) and on a built capture of many small TCP segments.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pinhole_capture::read;

/// A raw-IP pcap of one TCP flow: 20 000 segments of 100 bytes.
fn tcp_capture() -> Vec<u8> {
    let mut file = Vec::new();
    file.extend(0xa1b2_c3d4u32.to_le_bytes());
    file.extend([2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    file.extend(65535u32.to_le_bytes());
    file.extend(101u32.to_le_bytes());
    for i in 0..20_000u32 {
        let mut p = vec![
            0x45, 0, 0, 140, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend([0x9c, 0x40, 0x13, 0xc4]);
        p.extend((1 + i * 100).to_be_bytes());
        p.extend([0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend([b's'; 100]);
        file.extend(i.to_le_bytes());
        file.extend(0u32.to_le_bytes());
        file.extend((p.len() as u32).to_le_bytes());
        file.extend((p.len() as u32).to_le_bytes());
        file.extend(p);
    }
    file
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group.sample_size(20);
    let corpus = pinhole_testkit::corpus::shared_dir()
        .join("h323/pcap/wiki-jul23-fastbusy-at-ccm-when-flex-oh-hook_1.pcap");
    if let Ok(file) = std::fs::read(&corpus) {
        group.throughput(Throughput::Bytes(file.len() as u64));
        group.bench_function("corpus_jul23_2.8MB", |b| {
            b.iter(|| read(black_box(&file)).expect("corpus capture reads"))
        });
    }
    let file = tcp_capture();
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("tcp_20k_segments", |b| {
        b.iter(|| read(black_box(&file)).expect("built capture reads"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
