//! RESP2 costs on the server's side, per command: parsing a pipelined batch
//! of GET/SET requests in place, and encoding the usual replies into the
//! reused output buffer, and finding the command by name. Run with
//! `cargo bench --bench resp`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kora::protocol::parser::{ArgRange, Parsed, parse_command};
use kora::protocol::reply::Resp;

/// 8 SETs with 64-byte values and 8 GETs, interleaved, as one read would
/// deliver a P=16 pipeline from redis-benchmark or kora-bench.
fn pipelined_batch() -> Vec<u8> {
    let value = [b'v'; 64];
    let mut batch = Vec::new();
    for i in 0..8 {
        let key = format!("key:{i:012}");
        batch.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$16\r\n{key}\r\n$64\r\n").as_bytes());
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        batch.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$16\r\n{key}\r\n").as_bytes());
    }
    batch
}

fn parser(c: &mut Criterion) {
    let batch = pipelined_batch();
    let mut buf = batch.clone();
    let mut args: Vec<ArgRange> = Vec::with_capacity(8);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(16));
    group.bench_function("pipelined batch of 16 GET/SET", |b| {
        b.iter(|| {
            let mut pos = 0;
            let mut commands = 0;
            while pos < buf.len() {
                match parse_command(&mut buf[pos..], pos, &mut args) {
                    Ok(Parsed::Command { consumed }) => {
                        pos += consumed;
                        commands += 1;
                        black_box(&args);
                    }
                    other => panic!("batch must parse whole: {other:?}"),
                }
            }
            assert_eq!(commands, 16);
        })
    });
    group.finish();

    // The incomplete path: a large value arriving in pieces must be
    // recognised as incomplete without scanning its bytes.
    let mut big = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1048576\r\n".to_vec();
    big.resize(big.len() + 512 * 1024, b'x');
    c.bench_function("parse: half of a 1 MiB SET", |b| {
        b.iter(|| {
            let r = parse_command(black_box(&mut big), 0, &mut args);
            assert!(matches!(r, Ok(Parsed::Incomplete { .. })));
        })
    });
}

fn replies(c: &mut Criterion) {
    let value = [b'v'; 64];
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(16));
    group.bench_function("16 replies: 8 +OK, 8 64-byte bulks", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..8 {
                out.ok();
                out.bulk(black_box(&value));
            }
            black_box(out.len())
        })
    });
    group.bench_function("16 replies: integers, nils, errors", |b| {
        b.iter(|| {
            out.clear();
            for i in 0..4i64 {
                out.int(black_box(i * 1_000_003 - 7));
                out.nil();
                out.error("WRONGTYPE Operation against a key holding the wrong kind of value");
                out.int(black_box(-i));
            }
            black_box(out.len())
        })
    });
    group.finish();
    c.bench_function("encode: MGET of 10 64-byte values", |b| {
        b.iter(|| {
            out.clear();
            out.array(10);
            for _ in 0..10 {
                out.bulk(black_box(&value));
            }
            black_box(out.len())
        })
    });
}

criterion_group!(benches, parser, lookup, replies);
criterion_main!(benches);

/// The command table's name lookup, which every command goes through:
/// names in the cases clients send them.
fn lookup(c: &mut Criterion) {
    let names: [&[u8]; 4] = [b"GET", b"set", b"Hset", b"ZRANGEBYSCORE"];
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(4));
    group.bench_function("4 command names (GET, set, Hset, ZRANGEBYSCORE)", |b| {
        b.iter(|| {
            for name in names {
                black_box(kora::command::table::lookup(black_box(name)));
            }
        })
    });
    group.finish();
}
