//! Cost of the per-command instrumentation, in ns per command: the RAII
//! timer (two TSC reads), the Relaxed counters, the HDR record and the
//! hot-key sketch update. Run with `cargo bench --bench instrumentation`.

use std::hint::black_box;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use kora::metrics::{CommandTimer, HotKeys, ShardMetrics, ShardStats};

/// kora-bench's xoshiro and zipf sampler, to feed the sketch the skewed
/// access stream HOTKEYS is for (a hot key passes the sketch's admission
/// filter on nearly every access, a uniform one almost never).
#[allow(dead_code)]
#[path = "kora_bench/workload.rs"]
mod workload;

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

    // zipf(0.99) over the same 100k keys, drawn ahead of time so the
    // sampler's cost stays out of the figure.
    let zipf = workload::Zipf::new(keys.len() as u64, 0.99);
    let mut rng = workload::Rng::new(15);
    let skewed: Vec<usize> = (0..1 << 16)
        .map(|_| zipf.sample(&mut rng) as usize - 1)
        .collect();
    let mut hot_zipf = HotKeys::new(32, true);
    let mut j = 0usize;
    c.bench_function("sketch touch (zipf 0.99 keys)", |b| {
        b.iter(|| {
            j = (j + 1) & (skewed.len() - 1);
            hot_zipf.touch(black_box(&keys[skewed[j]]));
        })
    });

    c.bench_function("whole per-command instrumentation", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            // A command after an await: two clock reads.
            metrics.forget_stamp();
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(black_box(&keys[i]));
            drop(timer);
        })
    });

    c.bench_function("whole per-command instrumentation, pipelined", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            // Back to back in a pipeline: the previous end is this start.
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

/// The scrape path with every command slot in use on two shards: what a
/// shard does (hand over its interval histograms, O(1) per slot), and what
/// the collector does (add them to its totals, compute the view, render).
fn scrape(c: &mut Criterion) {
    use kora::collector::exposition::render;
    use kora::metrics::histogram::{CommandHistograms, LatencyTotals};
    use kora::metrics::{MetricsView, ShardSnapshot};
    let fill = |h: &CommandHistograms| {
        for slot in 0..32usize {
            for i in 0..2_000u64 {
                h.record(slot, 800 + (i * 7919 + slot as u64 * 31) % 400_000);
            }
        }
    };
    let shard = CommandHistograms::default();
    let mut totals = LatencyTotals::default();
    c.bench_function("shard: hand over 32 interval histograms", |b| {
        b.iter_batched(
            || fill(&shard),
            |_| black_box(shard.take_interval()),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "collector: absorb 2 shards x 32 slots + view + render",
        |b| {
            let shards = [CommandHistograms::default(), CommandHistograms::default()];
            b.iter_batched(
                || {
                    shards.iter().for_each(fill);
                },
                |_| {
                    for s in &shards {
                        let spares = totals.absorb(s.take_interval());
                        s.return_spares(spares);
                    }
                    let snaps = vec![
                        Some(ShardSnapshot::default()),
                        Some(ShardSnapshot::default()),
                    ];
                    let view = MetricsView::build(snaps, vec![true, true], &totals);
                    black_box(render(&view).len())
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, instrumentation, scrape);
criterion_main!(benches);
