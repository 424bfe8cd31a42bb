//! Cost of the per-command instrumentation, in ns per command: the RAII
//! timer (two TSC reads), the Relaxed counters, the HDR record and the
//! hot-key sketch update. Run with `cargo bench --bench instrumentation`.

use std::hint::black_box;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use kora::metrics::{CommandTimer, HotKeys, ShardMetrics, ShardStats};

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key:{i:08}").into_bytes()).collect()
}

fn instrumentation(c: &mut Criterion) {
    let metrics = ShardMetrics::new(Rc::new(ShardStats::default()), true);
    let mut hot = HotKeys::new(32, true);
    let keys = keys(100_000);
    let mut i = 0usize;

    c.bench_function("timer+counters+histogram", |b| {
        b.iter(|| {
            let timer = CommandTimer::start(&metrics, black_box(1));
            drop(timer);
        })
    });

    c.bench_function("sketch touch (uniform keys)", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            hot.touch(black_box(&keys[i]));
        })
    });

    c.bench_function("whole per-command instrumentation", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(black_box(&keys[i]));
            drop(timer);
        })
    });

    let off = ShardMetrics::new(Rc::new(ShardStats::default()), false);
    let mut hot_off = HotKeys::new(32, false);
    c.bench_function("instrumentation turned off", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let timer = CommandTimer::start(&off, black_box(0));
            hot_off.touch(black_box(&keys[i]));
            drop(timer);
        })
    });
}

criterion_group!(benches, instrumentation);
criterion_main!(benches);
