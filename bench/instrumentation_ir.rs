//! The per-command instrumentation as a plain loop, for counting its
//! instructions under callgrind (`bench/instrumentation_ir.py` runs it):
//! counts do not move with the machine's load, the ns of `cargo bench
//! --bench instrumentation` do.
//!
//! `instrumentation_ir VARIANT N` runs N iterations of VARIANT; `loop` is
//! the same loop with nothing instrumented, to subtract.

use std::hint::black_box;
use std::rc::Rc;

use kora::metrics::{CommandTimer, HotKeys, ShardMetrics, ShardStats};

/// kora-bench's zipf sampler, as `bench/instrumentation.rs` uses it.
#[allow(dead_code)]
#[path = "kora_bench/workload.rs"]
mod workload;

fn main() {
    let mut args = std::env::args().skip(1);
    // `cargo bench` runs every bench target with `--bench`: nothing to
    // measure without callgrind around it.
    let Some(variant) = args.next().filter(|a| !a.starts_with('-')) else {
        println!("instrumentation_ir: run it with bench/instrumentation_ir.py");
        return;
    };
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().expect("N"));
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:08}").into_bytes())
        .collect();
    let enabled = variant != "off";
    let metrics = ShardMetrics::new(Rc::new(ShardStats::default()), enabled);
    let mut hot = HotKeys::new(32, enabled);
    let zipf = workload::Zipf::new(keys.len() as u64, 0.99);
    let mut rng = workload::Rng::new(15);
    let skewed: Vec<usize> = (0..1 << 16)
        .map(|_| zipf.sample(&mut rng) as usize - 1)
        .collect();
    // One loop per variant (the variant is not looked at inside it), so
    // the `loop` baseline differs from each only by what is measured.
    let (mut i, len) = (0usize, keys.len());
    let mut next = move || {
        i = (i + 7919) % len;
        i
    };
    let key = |i: usize| black_box(&keys[i][..]);
    match variant.as_str() {
        "loop" => (0..n).for_each(|_| {
            key(next());
        }),
        "timer" => (0..n).for_each(|_| drop(CommandTimer::start(&metrics, black_box(1)))),
        "sketch-uniform" => (0..n).for_each(|_| hot.touch(key(next()))),
        "sketch-zipf" => (0..n).for_each(|j| hot.touch(key(skewed[j & 0xffff]))),
        // A command after an await: two clock reads.
        "whole" | "off" => (0..n).for_each(|_| {
            metrics.forget_stamp();
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(key(next()));
            drop(timer);
        }),
        // Back to back in a pipeline: the previous end is this start.
        "pipelined" => (0..n).for_each(|_| {
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(key(next()));
            drop(timer);
        }),
        other => panic!("unknown variant {other}"),
    }
}
