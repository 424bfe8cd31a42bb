//! HyperLogLog end to end against a 2-shard server: PFADD, PFCOUNT and
//! PFMERGE (keys on one shard and across shards), Redis' error texts, the
//! `hll-sparse-max-bytes` knob, the error bound on 100k elements, and the
//! sketch bytes: GET must return what Redis 7.0 returns for the same
//! PFADDs (sparse and dense), and a sketch copied from Redis must count
//! the same here (compared with a real redis-server when installed).

mod common;
mod redis_ref;

use common::{Server, config_get, e, free_port, keys_on_each_shard, q};
use redis::Connection;
use redis_ref::RedisRef;

fn get_bytes(c: &mut Connection, key: &str) -> Vec<u8> {
    q(c, &["GET", key])
}

fn pfadd_range(c: &mut Connection, key: &str, prefix: &str, from: usize, to: usize) -> i64 {
    let mut cmd = redis::cmd("PFADD");
    cmd.arg(key);
    for i in from..to {
        cmd.arg(format!("{prefix}{i}"));
    }
    cmd.query(c).unwrap()
}

#[test]
fn pfadd_and_pfcount_basics() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h", "a", "b", "c"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h", "a", "b"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]), 3);
    // The exact bytes Redis 7.0.15 has after the same commands: header
    // with the cached count 3, then XZERO/VAL opcodes.
    let mut expect = b"HYLL\x01\0\0\0\x03\0\0\0\0\0\0\0".to_vec();
    expect.extend_from_slice(&[
        0x60, 0xf3, 0x80, 0x50, 0xb1, 0x84, 0x4b, 0xfb, 0x80, 0x42, 0x5a,
    ]);
    assert_eq!(get_bytes(&mut c, "h"), expect);
    // PFADD with no element creates an empty sketch (stale cache bit set).
    assert_eq!(q::<i64>(&mut c, &["PFADD", "empty"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "empty"]), 0);
    assert_eq!(
        get_bytes(&mut c, "empty"),
        b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff"
    );
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "empty"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "missing"]), 0);
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "string");
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]), "raw");
    // A TTL survives PFADD (an in-place change).
    let _: () = q(&mut c, &["EXPIRE", "h", "100"]);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h", "d"]), 1);
    assert!(q::<i64>(&mut c, &["TTL", "h"]) > 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]), 4);
}

#[test]
fn errors_as_redis() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: i64 = q(&mut c, &["LPUSH", "l", "x"]);
    let _: () = q(&mut c, &["SET", "str", "not a sketch"]);
    let _: () = q(&mut c, &["SET", "short", "HYLL"]);
    let not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    for key in ["str", "short"] {
        assert_eq!(e(&mut c, &["PFADD", key, "a"]), not_hll);
        assert_eq!(e(&mut c, &["PFCOUNT", key]), not_hll);
        assert_eq!(e(&mut c, &["PFCOUNT", "missing", key]), not_hll);
        assert_eq!(e(&mut c, &["PFMERGE", "dst", key]), not_hll);
        assert_eq!(e(&mut c, &["PFMERGE", key, "missing"]), not_hll);
    }
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]), 0);
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(e(&mut c, &["PFADD", "l", "a"]), wrong);
    assert_eq!(e(&mut c, &["PFCOUNT", "l"]), wrong);
    assert_eq!(e(&mut c, &["PFMERGE", "l"]), wrong);
    // A dense header on a string of the wrong length is not a sketch.
    let mut dense_bad = b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    dense_bad.extend_from_slice(&[0u8; 100]);
    let _: () = redis::cmd("SET")
        .arg("db")
        .arg(&dense_bad)
        .query(&mut c)
        .unwrap();
    assert_eq!(e(&mut c, &["PFCOUNT", "db"]), not_hll);
    // Sparse opcodes that do not cover 16384 registers: corrupt.
    let corrupt = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\x00".to_vec();
    let _: () = redis::cmd("SET")
        .arg("bad")
        .arg(&corrupt)
        .query(&mut c)
        .unwrap();
    let invalid = "INVALIDOBJ Corrupted HLL object detected";
    assert_eq!(e(&mut c, &["PFCOUNT", "bad"]), invalid);
    assert_eq!(e(&mut c, &["PFCOUNT", "bad", "missing"]), invalid);
    assert_eq!(e(&mut c, &["PFMERGE", "dst", "bad"]), invalid);
    // The first bad key in argument order decides the error.
    assert_eq!(e(&mut c, &["PFCOUNT", "l", "bad"]), wrong);
    assert_eq!(e(&mut c, &["PFCOUNT", "bad", "l"]), invalid);
    assert_eq!(
        e(&mut c, &["PFADD"]),
        "ERR wrong number of arguments for 'pfadd' command"
    );
    assert_eq!(
        e(&mut c, &["PFCOUNT"]),
        "ERR wrong number of arguments for 'pfcount' command"
    );
}

#[test]
fn pfcount_and_pfmerge_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("hll", 2, 3);
    let (a0, a1, a2) = (&keys[0][0], &keys[0][1], &keys[0][2]);
    let (b0, b1, b2) = (&keys[1][0], &keys[1][1], &keys[1][2]);
    pfadd_range(&mut c, a0, "x", 0, 600);
    pfadd_range(&mut c, b0, "x", 400, 1000);
    pfadd_range(&mut c, a1, "y", 0, 3000); // dense
    let union = q::<i64>(&mut c, &["PFCOUNT", a0, b0]);
    assert!((union - 1000).abs() <= 20, "{union}");
    // The union does not depend on where the keys live.
    let _: () = q(&mut c, &["PFMERGE", a2, a0, b0]);
    let _: () = q(&mut c, &["PFMERGE", b2, a0, b0]);
    assert_eq!(get_bytes(&mut c, a2), get_bytes(&mut c, b2));
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", a2]), union);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", b2, "missing"]), union);
    // A dense source makes a dense destination, on either shard.
    let _: () = q(&mut c, &["PFMERGE", b1, a1, b0]);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", b1]), 12304);
    let _: () = q(&mut c, &["PFMERGE", a2, b1]);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", a2]), 12304);
    let all = q::<i64>(&mut c, &["PFCOUNT", a0, a1, b0]);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", a2]), all);
    // PFMERGE of only missing keys creates an empty sketch.
    let _: () = q(&mut c, &["PFMERGE", b0, "none1", "none2"]);
    let _: () = q(&mut c, &["PFMERGE", "fresh", "none1", "none2"]);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "fresh"]), 0);
    // Across shards, WRONGTYPE leaves the destination untouched.
    let _: i64 = q(&mut c, &["DEL", b2]);
    let _: i64 = q(&mut c, &["RPUSH", b2, "x"]);
    assert!(e(&mut c, &["PFMERGE", a0, b2]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, &["PFCOUNT", a0, b2]).starts_with("WRONGTYPE"));
}

#[test]
fn error_is_within_redis_bound_on_100k() {
    let s = Server::start(2);
    let mut c = s.client();
    for chunk in 0..100 {
        pfadd_range(&mut c, "big", "elem:", chunk * 1000, chunk * 1000 + 1000);
    }
    let n = q::<i64>(&mut c, &["PFCOUNT", "big"]);
    let err = (n as f64 - 100_000.0).abs() / 100_000.0;
    // Standard error 0.81%: three of them is Redis' documented worst case
    // in practice.
    assert!(err < 0.0243, "{n} is {:.2}% off", err * 100.0);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "big"]), 12304);
    if let Some(r) = RedisRef::start(free_port(), "hll 100k") {
        let mut rc = r.client();
        for chunk in 0..100 {
            pfadd_range(&mut rc, "big", "elem:", chunk * 1000, chunk * 1000 + 1000);
        }
        assert_eq!(q::<i64>(&mut rc, &["PFCOUNT", "big"]), n);
        assert_eq!(get_bytes(&mut rc, "big"), get_bytes(&mut c, "big"));
    }
}

#[test]
fn sparse_max_bytes_knob() {
    let path = std::env::temp_dir().join(format!("kora-hll-{}.toml", std::process::id()));
    std::fs::write(&path, "hll_sparse_max_bytes = 200\n").unwrap();
    let s = Server::start_with(2, &["--config", path.to_str().unwrap()]);
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "hll-sparse-max-bytes"), "200");
    pfadd_range(&mut c, "h", "e", 0, 100);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "h"]), 12304);
    drop(s);
    let _ = std::fs::remove_file(&path);
    let s = Server::start_with(2, &["--hll-sparse-max-bytes", "100000"]);
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "hll-sparse-max-bytes"), "100000");
    pfadd_range(&mut c, "h", "e", 0, 5000);
    assert!(q::<i64>(&mut c, &["STRLEN", "h"]) > 3000);
    assert_eq!(
        q::<Vec<u8>>(&mut c, &["GETRANGE", "h", "4", "4"]),
        vec![1u8]
    );
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "hll-sparse-max-bytes"), "3000");
    pfadd_range(&mut c, "k0", "e", 0, 1000);
    assert!(q::<i64>(&mut c, &["STRLEN", "k0"]) < 3000);
    let _: () = q(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "1kb"]);
    assert_eq!(config_get(&mut c, "hll-sparse-max-bytes"), "1024");
    // Every shard took it.
    for key in ["k1", "k2", "k3", "k4"] {
        pfadd_range(&mut c, key, "e", 0, 1000);
        assert_eq!(q::<i64>(&mut c, &["STRLEN", key]), 12304, "{key}");
    }
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "-1"]),
        "ERR CONFIG SET failed (possibly related to argument 'hll-sparse-max-bytes') - argument must be a memory value"
    );
    let _: () = q(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "3000"]);
}

/// The same commands on Kora and Redis leave the same bytes, sparse and
/// dense, through PFADD, PFCOUNT's cache and PFMERGE; and sketches copied
/// from Redis count the same on Kora.
#[test]
fn sketch_bytes_match_redis() {
    let s = Server::start(2);
    let mut k = s.client();
    let Some(r) = RedisRef::start(free_port(), "hll bytes") else {
        return;
    };
    let mut rc = r.client();
    let keys = keys_on_each_shard("hb", 2, 2);
    let (sparse, dense) = (&keys[0][0], &keys[1][0]);
    let (m1, m2) = (&keys[0][1], &keys[1][1]);
    for c in [&mut k, &mut rc] {
        for step in 0..40 {
            pfadd_range(c, sparse, "s", step * 10, step * 10 + 10);
            if step % 7 == 0 {
                let _: i64 = q(c, &["PFCOUNT", sparse]);
            }
        }
        for step in 0..30 {
            pfadd_range(c, dense, "d", step * 100, step * 100 + 100);
        }
        let _: i64 = q(c, &["PFCOUNT", dense]);
        let _: () = q(c, &["PFMERGE", m1, sparse]);
        let _: () = q(c, &["PFMERGE", m2, sparse, dense]);
        let _: i64 = q(c, &["PFADD", m1, "after", "merge"]);
    }
    assert_eq!(q::<i64>(&mut k, &["STRLEN", dense]), 12304);
    assert!(q::<i64>(&mut k, &["STRLEN", sparse]) < 3000);
    for key in [sparse, dense, m1, m2] {
        assert_eq!(get_bytes(&mut k, key), get_bytes(&mut rc, key), "{key}");
    }
    // Payloads from Redis, set on Kora: the same counts, then the same
    // bytes after more PFADDs.
    for (i, key) in [sparse, dense, m2].into_iter().enumerate() {
        let bytes = get_bytes(&mut rc, key);
        let copy = format!("copy{i}");
        let _: () = redis::cmd("SET")
            .arg(&copy)
            .arg(&bytes)
            .query(&mut k)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(&copy)
            .arg(&bytes)
            .query(&mut rc)
            .unwrap();
        for c in [&mut k, &mut rc] {
            pfadd_range(c, &copy, "more", 0, 50);
        }
        assert_eq!(
            q::<i64>(&mut k, &["PFCOUNT", &copy]),
            q::<i64>(&mut rc, &["PFCOUNT", &copy])
        );
        assert_eq!(get_bytes(&mut k, &copy), get_bytes(&mut rc, &copy));
    }
    let all = ["PFCOUNT", "copy0", "copy1", "copy2"];
    assert_eq!(q::<i64>(&mut k, &all), q::<i64>(&mut rc, &all));
}

/// PFDEBUG's views and conversions, compared with Redis when installed.
#[test]
fn pfdebug_as_redis() {
    let s = Server::start(2);
    let mut k = s.client();
    let script: &[&[&str]] = &[
        &["PFADD", "sp", "a", "b", "c", "d"],
        &["PFDEBUG", "DECODE", "sp"],
        &["PFDEBUG", "ENCODING", "sp"],
        &["PFDEBUG", "TODENSE", "sp"],
        &["PFDEBUG", "TODENSE", "sp"],
        &["PFDEBUG", "ENCODING", "sp"],
        &["PFDEBUG", "DECODE", "sp"],
        &["PFCOUNT", "sp"],
        &["PFADD", "sp2", "x"],
        &["PFDEBUG", "GETREG", "sp2"],
        &["PFDEBUG", "ENCODING", "sp2"],
        &["PFDEBUG", "GETREG", "missing"],
        &["PFDEBUG", "FOO", "sp"],
        &["SET", "str", "x"],
        &["PFDEBUG", "ENCODING", "str"],
        &["PFDEBUG", "ENCODING"],
    ];
    let ours: Vec<String> = script.iter().map(|a| redis_ref::reply(&mut k, a)).collect();
    // Redis 7.0.15's decoding of the same sketch.
    assert_eq!(
        ours[1],
        "\"Z:7292 v:1,1 Z:1143 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603\""
    );
    assert_eq!(ours[2], "+sparse");
    assert_eq!(ours[3], "1");
    assert_eq!(ours[4], "0");
    assert_eq!(ours[5], "+dense");
    assert_eq!(ours[6], "-ERR HLL encoding is not sparse");
    assert_eq!(ours[7], "4");
    assert!(ours[9].starts_with('[') && ours[9].matches(',').count() == 16383);
    assert_eq!(ours[11], "-ERR The specified key does not exist");
    assert_eq!(ours[12], "-ERR Unknown PFDEBUG subcommand 'FOO'");
    assert_eq!(
        ours[14],
        "-WRONGTYPE Key is not a valid HyperLogLog string value."
    );
    assert_eq!(
        ours[15],
        "-ERR wrong number of arguments for 'pfdebug' command"
    );
    let Some(r) = RedisRef::start(free_port(), "pfdebug") else {
        return;
    };
    let mut rc = r.client();
    for (args, ours) in script.iter().zip(&ours) {
        assert_eq!(ours, &redis_ref::reply(&mut rc, args), "{args:?}");
    }
    assert_eq!(get_bytes(&mut k, "sp"), get_bytes(&mut rc, "sp"));
}
