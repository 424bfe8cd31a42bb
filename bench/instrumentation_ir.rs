//! The per-command instrumentation as a plain loop, for counting its
//! instructions under callgrind (`bench/instrumentation_ir.py` runs it):
//! counts do not move with the machine's load, the ns of `cargo bench
//! --bench instrumentation` do.
//!
//! `instrumentation_ir VARIANT N` runs N iterations of VARIANT; `loop` is
//! the same loop with nothing instrumented, to subtract. Only the loop is
//! counted (`measured`): the setup, and quanta's clock calibration (which
//! loops for a while, so its count moved with the machine's load and made
//! the results of one variant differ by tens of instructions from run to
//! run), are not.
//!
//! The `db-*` variants are the keyspace's side of a command (`Db::get`, an
//! in-place `Db::set_string`) on 100k keys of 16 bytes, as kora-bench's and
//! redis-benchmark's, with the hot-key sketch on (`db-get`, `db-set`) or
//! off (`db-get-nosketch`): what a key access costs with its hot-key count.
//!
//! The `z-*` variants are sorted-set commands as redis-benchmark sends them
//! (`ZADD myzset <0..99999> element:<12 digits>` on a 100k-member set, then
//! ZSCORE, ZRANK and `ZRANGEBYSCORE myzset <score> +inf LIMIT 0 1` of
//! random members): the skiplist's walk, whose cost is its cache misses, so
//! `bench/instrumentation_ir.py --cache` also counts the misses past a
//! simulated 1 MB cache. `z-zrange-withscores` replies with ten
//! fractional scores (`ZRANGE fz 100 109 WITHSCORES` on 1000 members):
//! what formatting a score as Redis' `%.17g` costs.
//!
//! The `c-*` variants are other whole commands whose replies or values are
//! numbers written as text: `ZSCAN fz 0 COUNT 1` (the cursor),
//! `INCRBYFLOAT f 0.1` and `HINCRBYFLOAT h f 0.1` (a float parsed, added
//! and written back).

use std::hint::black_box;
use std::rc::Rc;

use kora::metrics::{CommandTimer, HotKeys, ShardMetrics, ShardStats};
use kora::store::{Db, Ttl};

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
    if variant.starts_with("db-") {
        return keyspace(&variant, n);
    }
    if variant.starts_with("z-") || variant.starts_with("c-") {
        return commands(&variant, n);
    }
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
        "loop" => measured(n, |_| {
            key(next());
        }),
        "timer" => measured(n, |_| drop(CommandTimer::start(&metrics, black_box(1)))),
        "sketch-uniform" => measured(n, |_| hot.touch(key(next()))),
        "sketch-zipf" => measured(n, |j| hot.touch(key(skewed[j & 0xffff]))),
        // A command after an await: two clock reads.
        "whole" | "off" => measured(n, |_| {
            metrics.forget_stamp();
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(key(next()));
            drop(timer);
        }),
        // Back to back in a pipeline: the previous end is this start.
        "pipelined" => measured(n, |_| {
            let timer = CommandTimer::start(&metrics, black_box(0));
            hot.touch(key(next()));
            drop(timer);
        }),
        other => panic!("unknown variant {other}"),
    }
}

/// The `db-*` variants: the keyspace's own keys and `Db`.
fn keyspace(variant: &str, n: usize) {
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let sketch = variant != "db-get-nosketch";
    let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(32, sketch), 7);
    for k in &keys {
        db.set_string(k, &[b'v'; 64], Ttl::Clear);
    }
    let (mut i, len) = (0usize, keys.len());
    let mut next = move || {
        i = (i + 7919) % len;
        i
    };
    let key = |i: usize| black_box(&keys[i][..]);
    match variant {
        "db-get" | "db-get-nosketch" => measured(n, |_| {
            black_box(db.get(key(next())).is_some());
        }),
        "db-set" => measured(n, |_| db.set_string(key(next()), &[b'w'; 64], Ttl::Clear)),
        other => panic!("unknown variant {other}"),
    }
}

/// The `z-*` and `c-*` variants: command handlers on one `Db` holding
/// `myzset`.
fn commands(variant: &str, n: usize) {
    use kora::command::{geo, hashes, strings, zsets};
    use kora::protocol::Args;
    let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(32, true), 7);
    let mut rng = workload::Rng::new(7);
    // redis-benchmark's __rand_int__: 12 digits below -r 100000.
    let mut digits = |b: &mut [u8]| {
        let mut v = rng.next_u64() % 100_000;
        for d in b.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    let mut out = Vec::new();
    // One command: `words` with each `#` run replaced by random digits.
    let mut run = |db: &mut Db, handler: kora::command::Handler, words: &[&[u8]]| {
        buf.clear();
        ranges.clear();
        out.clear();
        for w in words {
            let start = buf.len();
            buf.extend_from_slice(w);
            if let Some(at) = w.iter().position(|&c| c == b'#') {
                digits(&mut buf[start + at..start + w.len()]);
            }
            ranges.push((start, buf.len()));
        }
        handler(db, &Args::new(&buf, &ranges), &mut out);
        black_box(out.len());
    };
    let (zadd, member, score): (_, &[u8], &[u8]) = (
        &[b"zadd" as &[u8], b"myzset"],
        b"element:############",
        b"############",
    );
    for _ in 0..300_000 {
        run(&mut db, zsets::zadd, &[zadd[0], zadd[1], score, member]);
    }
    // A small set of fractional scores, replied as text (`%.17g`).
    for i in 0..1000 {
        let (score, member) = (format!("{}.{:03}", i, i * 7 % 1000), format!("m{i}"));
        let args: [&[u8]; 4] = [b"zadd", b"fz", score.as_bytes(), member.as_bytes()];
        run(&mut db, zsets::zadd, &args);
    }
    // Two positions (Redis' own GEOADD example).
    let geoadd: [&[u8]; 8] = [
        b"geoadd",
        b"g",
        b"13.361389",
        b"38.115556",
        b"Palermo",
        b"15.087269",
        b"37.502669",
        b"Catania",
    ];
    run(&mut db, geo::geoadd, &geoadd);
    match variant {
        "z-zadd" => measured(n, |_| {
            run(&mut db, zsets::zadd, &[zadd[0], zadd[1], score, member])
        }),
        "z-zscore" => measured(n, |_| {
            run(&mut db, zsets::zscore, &[b"zscore", b"myzset", member])
        }),
        "z-zrank" => measured(n, |_| {
            run(&mut db, zsets::zrank, &[b"zrank", b"myzset", member])
        }),
        "z-zrangebyscore" => measured(n, |_| {
            let args: [&[u8]; 7] = [
                b"zrangebyscore",
                b"myzset",
                score,
                b"+inf",
                b"LIMIT",
                b"0",
                b"1",
            ];
            run(&mut db, zsets::zrangebyscore, &args)
        }),
        "z-zrange-withscores" => measured(n, |_| {
            let args: [&[u8]; 5] = [b"zrange", b"fz", b"100", b"109", b"WITHSCORES"];
            run(&mut db, zsets::zrange, &args)
        }),
        "c-zscore" => measured(n, |_| {
            let args: [&[u8]; 3] = [b"zscore", b"fz", b"m500"];
            run(&mut db, zsets::zscore, &args)
        }),
        "c-geopos" => measured(n, |_| {
            run(&mut db, geo::geopos, &[b"geopos", b"g", b"Palermo"])
        }),
        "c-geodist" => measured(n, |_| {
            let args: [&[u8]; 5] = [b"geodist", b"g", b"Palermo", b"Catania", b"km"];
            run(&mut db, geo::geodist, &args)
        }),
        "c-zscan" => measured(n, |_| {
            let args: [&[u8]; 5] = [b"zscan", b"fz", b"0", b"COUNT", b"1"];
            run(&mut db, zsets::zscan, &args)
        }),
        "c-incrbyfloat" => measured(n, |_| {
            run(
                &mut db,
                strings::incrbyfloat,
                &[b"incrbyfloat", b"f", b"0.1"],
            )
        }),
        "c-hincrbyfloat" => measured(n, |_| {
            let args: [&[u8]; 4] = [b"hincrbyfloat", b"h", b"f", b"0.1"];
            run(&mut db, hashes::hincrbyfloat, &args)
        }),
        other => panic!("unknown variant {other}"),
    }
}

/// Runs `f` for 0..n. The only code callgrind counts (`bench/
/// instrumentation_ir.py` passes `--toggle-collect` for it), so never
/// inlined.
#[inline(never)]
fn measured(n: usize, f: impl FnMut(usize)) {
    (0..n).for_each(f);
}
