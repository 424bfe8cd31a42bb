//! The shard-local keyspace on the GET/SET path: lookups that hit and miss,
//! overwriting a string in place, and inserting new keys. 100k keys with
//! 64-byte values, instrumentation (hot-key sketch) on as in production.
//! Also 16 lookups of a pipelined batch with and without the batch
//! prefetch. Run with `cargo bench --bench store`.

use std::hint::black_box;
use std::rc::Rc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kora::metrics::{HotKeys, ShardStats};
use kora::store::{Db, Ttl};

const KEYS: usize = 100_000;

fn keys(prefix: &str) -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("{prefix}{i:012}").into_bytes())
        .collect()
}

fn filled(keys: &[Vec<u8>]) -> Db {
    let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(32, true), 7);
    for k in keys {
        db.set_string(k, &[b'v'; 64], Ttl::Clear);
    }
    db
}

fn store(c: &mut Criterion) {
    let present = keys("key:");
    let absent = keys("nokey:");
    let mut db = filled(&present);
    let value = [b'w'; 64];
    // A stride through the keys so that consecutive operations touch
    // different cache lines, as random client keys do.
    let mut i = 0usize;
    let mut next = || {
        i = (i + 7919) % KEYS;
        i
    };

    c.bench_function("store: get (hit)", |b| {
        b.iter(|| black_box(db.get(black_box(&present[next()])).is_some()))
    });
    c.bench_function("store: get (miss)", |b| {
        b.iter(|| black_box(db.get(black_box(&absent[next()])).is_some()))
    });
    c.bench_function("store: set_string (overwrite in place)", |b| {
        b.iter(|| db.set_string(black_box(&present[next()]), black_box(&value), Ttl::Clear))
    });
    // Includes the table's growth, as a filling server pays it.
    c.bench_function("store: set_string (new key), 1000 into an empty Db", |b| {
        b.iter_batched_ref(
            || Db::new(Rc::new(ShardStats::default()), HotKeys::new(32, true), 7),
            |db| {
                for k in &absent[..1000] {
                    db.set_string(k, &value, Ttl::Clear);
                }
            },
            BatchSize::SmallInput,
        )
    });
}

/// A pipelined batch's lookups, with and without `Db::prefetch_keys`
/// before them (what the connection does for a batch of 16 GETs).
fn batch(c: &mut Criterion) {
    let present = keys("key:");
    let mut db = filled(&present);
    let mut i = 0usize;
    let mut next16 = || {
        let mut batch: [&[u8]; 16] = [&[]; 16];
        for k in batch.iter_mut() {
            i = (i + 7919) % KEYS;
            *k = &present[i];
        }
        batch
    };
    let mut g = c.benchmark_group("store: 16 GETs");
    g.bench_function("one after another", |b| {
        b.iter(|| {
            for k in next16() {
                black_box(db.get(k).is_some());
            }
        })
    });
    g.bench_function("after prefetch_keys", |b| {
        b.iter(|| {
            let batch = next16();
            db.prefetch_keys(batch.iter().copied());
            for k in batch {
                black_box(db.get(k).is_some());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, store, batch);
criterion_main!(benches);
