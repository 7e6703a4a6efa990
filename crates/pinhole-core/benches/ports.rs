//! Relay port allocator: one allocate + release cycle with few or almost all
//! pairs in use. O(1) operations give the same time per cycle in both cases.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pinhole_core::ports::{Allocator, PortRange};
use pinhole_core::rng::Rng;

/// The quarantine, and how far the clock moves per cycle: about
/// `QUARANTINE / STEP` = 1000 pairs sit in quarantine in the steady state.
const QUARANTINE: Duration = Duration::from_millis(1);
const STEP: Duration = Duration::from_micros(1);

#[allow(clippy::disallowed_methods)] // a bench needs some base instant
fn start() -> Instant {
    Instant::now()
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("ports/allocate_release");
    let range = PortRange::new(1024, 65535).expect("valid range");
    let capacity = range.pair_count();
    // Leave room for the ~1000 quarantined pairs and some free ones.
    for in_use in [1_000usize, capacity - 2_000] {
        group.bench_with_input(
            BenchmarkId::from_parameter(in_use),
            &in_use,
            |b, &in_use| {
                let mut a = Allocator::new(range, QUARANTINE, Rng::from_seed([42; 32]));
                let mut now = start();
                for _ in 0..in_use {
                    a.allocate(now).expect("prefill");
                }
                b.iter(|| {
                    now += STEP;
                    let p = a.allocate(now).expect("steady state never exhausts");
                    a.release(now, black_box(p)).expect("in use");
                });
                assert!(a.in_use() == in_use);
            },
        );
    }
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
