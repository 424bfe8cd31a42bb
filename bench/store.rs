//! The shard-local keyspace on the GET/SET path: lookups that hit and miss,
//! overwriting a string in place, and inserting new keys. 100k keys with
//! 64-byte values, instrumentation (hot-key sketch) on as in production.
//! Run with `cargo bench --bench store`.

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

criterion_group!(benches, store);
criterion_main!(benches);
