//! DUMP / RESTORE against the real server (2 workers, keys on both
//! shards), and against redis-server 7.0.15 when /usr/bin/redis-server
//! exists: a payload DUMPed by Redis restores in Kora and the reverse, for
//! every type in both of its encodings, and Kora's DUMP is byte for byte
//! Redis' (with Redis' `rdbcompression` off) where the encoding fixes the
//! bytes. Without redis-server the interop part is skipped with a note.

mod common;
mod redis_ref;

use common::{Server, e, error_text, free_port, keys_on_each_shard, q};
use redis::{Connection, Value};

/// A redis-server 7.0 on a free loopback port, killed when dropped.
use redis_ref::RedisRef as Reference;

fn reference() -> Option<Reference> {
    Reference::start(free_port(), "DUMP/RESTORE")
}

fn dump(c: &mut Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

fn restore(
    c: &mut Connection,
    key: &str,
    ttl: i64,
    payload: &[u8],
    opts: &[&str],
) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd("RESTORE");
    cmd.arg(key).arg(ttl).arg(payload);
    for o in opts {
        cmd.arg(*o);
    }
    cmd.query(c)
}

/// The value under `key`, in a form that does not depend on a set's or
/// hash's internal order.
fn content(c: &mut Connection, key: &str) -> Vec<Vec<u8>> {
    let ty: String = q(c, &["TYPE", key]);
    let mut v: Vec<Vec<u8>> = match ty.as_str() {
        "string" => vec![q(c, &["GET", key])],
        "list" => return q(c, &["LRANGE", key, "0", "-1"]),
        "set" => q(c, &["SMEMBERS", key]),
        "hash" => {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = q(c, &["HGETALL", key]);
            pairs
                .into_iter()
                .map(|(f, v)| [f, b"=".to_vec(), v].concat())
                .collect()
        }
        "zset" => return q(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        other => panic!("type {other}"),
    };
    v.sort();
    v.insert(0, ty.into_bytes());
    v
}

/// Writes one value of every type and encoding (small and large) with
/// plain commands; returns the keys, each with the encoding Redis 7.0
/// gives it.
fn fill(c: &mut Connection, prefix: &str) -> Vec<(String, &'static str)> {
    let mut keys = Vec::new();
    let mut k = |name: &str, enc: &'static str| {
        let key = format!("{prefix}{name}");
        keys.push((key.clone(), enc));
        key
    };
    let key = k("str-int", "int");
    let _: () = q(c, &["SET", &key, "12345"]);
    let key = k("str-neg", "int");
    let _: () = q(c, &["SET", &key, "-70000"]);
    let key = k("str-bigint", "int");
    let _: () = q(c, &["SET", &key, "1234567890123456789"]);
    let key = k("str-embstr", "embstr");
    let _: () = q(c, &["SET", &key, "hello world"]);
    let key = k("str-raw", "raw");
    let _: () = q(c, &["SET", &key, &"abcdefgh".repeat(200)]);
    let key = k("str-empty", "embstr");
    let _: () = q(c, &["SET", &key, ""]);
    let key = k("list-small", "quicklist");
    let _: () = q(
        c,
        &[
            "RPUSH",
            &key,
            "a",
            "1",
            "-300",
            "70000",
            "5000000000",
            "",
            "b",
        ],
    );
    let key = k("list-large", "quicklist");
    for chunk in 0..20 {
        let mut args = vec!["RPUSH".to_string(), key.clone()];
        for i in 0..100 {
            let n = chunk * 100 + i;
            args.push(match n % 3 {
                0 => format!("{}", n * 7919 - 5000),
                1 => format!("element-{n}-{}", "x".repeat(n % 200)),
                _ => "y".repeat(n % 5000),
            });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _: i64 = q(c, &args);
    }
    let key = k("set-intset", "intset");
    let _: i64 = q(c, &["SADD", &key, "1", "-5", "70000", "5000000000", "3"]);
    let key = k("set-intset16", "intset");
    let _: i64 = q(c, &["SADD", &key, "1", "2", "-300"]);
    let key = k("set-ints-large", "hashtable");
    for i in 0..700 {
        let _: i64 = q(c, &["SADD", &key, &(i * 3).to_string()]);
    }
    let key = k("set-small", "hashtable");
    let _: i64 = q(c, &["SADD", &key, "a", "b", "c", "12"]);
    let key = k("set-large", "hashtable");
    for i in 0..1000 {
        let _: i64 = q(c, &["SADD", &key, &format!("member:{i}")]);
    }
    let key = k("hash-small", "listpack");
    let _: i64 = q(
        c,
        &["HSET", &key, "f", "v", "n", "42", "neg", "-9000", "e", ""],
    );
    let key = k("hash-large", "hashtable");
    for i in 0..600 {
        let _: i64 = q(c, &["HSET", &key, &format!("field:{i}"), &i.to_string()]);
    }
    let key = k("zset-small", "listpack");
    let _: i64 = q(
        c,
        &[
            "ZADD",
            &key,
            "1",
            "a",
            "-2.5",
            "b",
            "1e20",
            "c",
            "0",
            "d",
            "inf",
            "e",
            "5000000000",
            "f",
        ],
    );
    let key = k("zset-large", "skiplist");
    for i in 0..300 {
        let _: i64 = q(
            c,
            &[
                "ZADD",
                &key,
                &format!("{}.25", i * 7 % 101),
                &format!("m{i}"),
            ],
        );
    }
    let key = k("zset-longmember", "skiplist");
    let _: i64 = q(c, &["ZADD", &key, "1", &"q".repeat(100), "2", "r"]);
    let key = k("hash-longvalue", "hashtable");
    let _: i64 = q(c, &["HSET", &key, "a", "1", "b", &"z".repeat(100)]);
    keys
}

#[test]
fn payloads_move_between_redis_and_kora() {
    let Some(redis_ref) = reference() else {
        return;
    };
    let mut r = redis_ref.client();
    let s = Server::start(2);
    let mut k = s.client();
    let keys = fill(&mut r, "src:");
    // Each key lands on some shard; the copies get names on both shards.
    for (i, (key, enc)) in keys.iter().enumerate() {
        let payload = dump(&mut r, key).expect("redis has the key");
        let name = format!("{key}:k{i}");
        assert_eq!(
            restore(&mut k, &name, 0, &payload, &[]).unwrap(),
            Value::Okay,
            "{key}"
        );
        assert_eq!(
            content(&mut k, &name),
            content(&mut r, key),
            "{key} in kora"
        );
        let kora_enc: String = q(&mut k, &["OBJECT", "ENCODING", &name]);
        if !key.contains("set-small") {
            // Kora keeps a small non-integer set in a listpack (7.2).
            assert_eq!(&kora_enc, enc, "{key} restored in kora");
        }
        let back = dump(&mut k, &name).expect("kora has the key");
        let again = format!("{key}:back");
        assert_eq!(
            restore(&mut r, &again, 0, &back, &[]).unwrap(),
            Value::Okay,
            "{key}"
        );
        assert_eq!(
            content(&mut r, &again),
            content(&mut r, key),
            "{key} back in redis"
        );
        let redis_enc: String = q(&mut r, &["OBJECT", "ENCODING", &again]);
        assert_eq!(&redis_enc, enc, "{key} back in redis");
    }
    // Without compression, Redis writes exactly what Kora writes wherever
    // the encoding decides the bytes (not a hash table's order).
    let _: () = q(&mut r, &["CONFIG", "SET", "rdbcompression", "no"]);
    for (key, _) in &keys {
        if key.contains("large") || key == "src:set-small" || key.contains("longvalue") {
            continue;
        }
        let name = format!("{key}:k0");
        let _: () = redis::cmd("DEL").arg(&name).query(&mut k).unwrap();
        let payload = dump(&mut r, key).unwrap();
        restore(&mut k, &name, 0, &payload, &[]).unwrap();
        assert_eq!(dump(&mut k, &name).unwrap(), payload, "{key}: DUMP bytes");
    }
    // A compressed list payload from Redis (rdbcompression yes) restores.
    let _: () = q(&mut r, &["CONFIG", "SET", "rdbcompression", "yes"]);
    let payload = dump(&mut r, "src:list-large").unwrap();
    restore(&mut k, "lzf-list", 0, &payload, &["REPLACE"]).unwrap();
    assert_eq!(
        content(&mut k, "lzf-list"),
        content(&mut r, "src:list-large")
    );
}

#[test]
fn restore_options_and_errors_match_redis() {
    let redis_ref = reference();
    let mut r = redis_ref.as_ref().map(Reference::client);
    let s = Server::start(2);
    let mut k = s.client();
    let per = keys_on_each_shard("opt", 2, 2);
    let (a, b) = (&per[0][0], &per[1][0]);
    let _: () = q(&mut k, &["SET", a, "value"]);
    let payload = dump(&mut k, a).unwrap();
    let mut bad_crc = payload.clone();
    *bad_crc.last_mut().unwrap() ^= 0xFF;
    let mut new_version = payload.clone();
    let n = new_version.len();
    new_version[n - 10] = 11;
    // An unknown type byte with a valid footer.
    let mut unknown = b"\x08\x00\x0a\x00".to_vec();
    let crc = kora::store::rdb::crc64(0, &unknown);
    unknown.extend_from_slice(&crc.to_le_bytes());
    let cases: Vec<(Vec<u8>, i64, Vec<&str>, &str)> = vec![
        (
            payload.clone(),
            0,
            vec![],
            "BUSYKEY Target key name already exists.",
        ),
        (payload.clone(), 0, vec!["FOO"], "ERR syntax error"),
        (payload.clone(), 0, vec!["IDLETIME"], "ERR syntax error"),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "IDLETIME", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "IDLETIME", "-1"],
            "ERR Invalid IDLETIME value, must be >= 0",
        ),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "FREQ", "256"],
            "ERR Invalid FREQ value, must be >= 0 and <= 255",
        ),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "FREQ", "-1"],
            "ERR Invalid FREQ value, must be >= 0 and <= 255",
        ),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "FREQ", "1", "IDLETIME", "1"],
            "ERR syntax error",
        ),
        (
            payload.clone(),
            0,
            vec!["REPLACE", "IDLETIME", "1", "FREQ", "1"],
            "ERR syntax error",
        ),
        (
            payload.clone(),
            -1,
            vec!["REPLACE"],
            "ERR Invalid TTL value, must be >= 0",
        ),
        (
            bad_crc,
            0,
            vec!["REPLACE"],
            "ERR DUMP payload version or checksum are wrong",
        ),
        (
            new_version,
            0,
            vec!["REPLACE"],
            "ERR DUMP payload version or checksum are wrong",
        ),
        (
            b"short".to_vec(),
            0,
            vec!["REPLACE"],
            "ERR DUMP payload version or checksum are wrong",
        ),
        (unknown, 0, vec!["REPLACE"], "ERR Bad data format"),
    ];
    for (p, ttl, opts, want) in &cases {
        let got = error_text(&restore(&mut k, a, *ttl, p, opts).unwrap_err());
        assert_eq!(&got, want, "{opts:?}");
        if let Some(r) = r.as_mut() {
            let _: () = q(r, &["SET", a, "value"]);
            let got = error_text(&restore(r, a, *ttl, p, opts).unwrap_err());
            assert_eq!(&got, want, "redis, {opts:?}");
        }
    }
    assert_eq!(
        e(&mut k, &["RESTORE", a, "x", "p"]),
        "BUSYKEY Target key name already exists."
    );
    assert_eq!(
        e(&mut k, &["RESTORE", b, "x", "p"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        e(&mut k, &["RESTORE", b, "0"]),
        "ERR wrong number of arguments for 'restore' command"
    );
    // Relative TTL, on both shards.
    for key in [a, b] {
        restore(&mut k, key, 5000, &payload, &["REPLACE"]).unwrap();
        let pttl: i64 = q(&mut k, &["PTTL", key]);
        assert!((4000..=5000).contains(&pttl), "{pttl}");
        let v: String = q(&mut k, &["GET", key]);
        assert_eq!(v, "value");
    }
    // ABSTTL in the future, then in the past: OK, and the key is gone
    // (REPLACE deleted the old one).
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 100_000;
    restore(&mut k, b, at, &payload, &["REPLACE", "ABSTTL"]).unwrap();
    let got: i64 = q(&mut k, &["PEXPIRETIME", b]);
    assert_eq!(got, at);
    assert_eq!(
        restore(&mut k, b, 1000, &payload, &["REPLACE", "ABSTTL"]).unwrap(),
        Value::Okay
    );
    assert_eq!(q::<i64>(&mut k, &["EXISTS", b]), 0);
    assert_eq!(
        restore(&mut k, b, 1000, &payload, &["ABSTTL"]).unwrap(),
        Value::Okay
    );
    assert_eq!(q::<i64>(&mut k, &["EXISTS", b]), 0);
    // TTL 0: no TTL, and REPLACE drops the old one's.
    restore(&mut k, a, 0, &payload, &["REPLACE"]).unwrap();
    assert_eq!(q::<i64>(&mut k, &["TTL", a]), -1);
    // IDLETIME backdates the access (LRU policies).
    restore(&mut k, a, 0, &payload, &["REPLACE", "IDLETIME", "1000"]).unwrap();
    let idle: i64 = q(&mut k, &["OBJECT", "IDLETIME", a]);
    assert!((1000..1010).contains(&idle), "{idle}");
    // FREQ sets the LFU counter under an LFU policy.
    let _: () = q(
        &mut k,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    restore(&mut k, b, 0, &payload, &["REPLACE", "FREQ", "100"]).unwrap();
    assert_eq!(q::<i64>(&mut k, &["OBJECT", "FREQ", b]), 100);
    if let Some(r) = r.as_mut() {
        let _: () = q(r, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
        restore(r, b, 0, &payload, &["REPLACE", "FREQ", "100"]).unwrap();
        assert_eq!(q::<i64>(r, &["OBJECT", "FREQ", b]), 100);
    }
    // Missing key: nil.
    assert_eq!(dump(&mut k, "nope"), None);
}

#[test]
fn hostile_payloads_are_refused_and_the_server_lives() {
    let s = Server::start(2);
    let mut k = s.client();
    let seal = |body: &[u8]| {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = kora::store::rdb::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"\x00",
        b"\x00\x3f",
        // A list claiming 2^64-1 nodes; a set claiming 4 billion members.
        b"\x12\x81\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x02\x80\xff\xff\xff\xff",
        // LZF string claiming a 4 GB result from 3 bytes.
        b"\x00\xc3\x03\x80\xff\xff\xff\xff\x00\x61\x00",
        // A listpack whose header lies about its size.
        b"\x10\x0b\xff\xff\xff\x00\x02\x00\x81a\x02\x81b\x02\xff",
        // An intset out of order, an empty hash, a duplicate hash field.
        b"\x0b\x0c\x02\x00\x00\x00\x02\x00\x00\x00\x05\x00\x01\x00",
        b"\x04\x00",
        b"\x04\x02\x01a\x01b\x01a\x01c",
        // Empty quicklist, unknown node container.
        b"\x12\x00",
        b"\x12\x01\x07\x01a",
    ];
    for body in bodies {
        let got = error_text(&restore(&mut k, "x", 0, &seal(body), &["REPLACE"]).unwrap_err());
        assert_eq!(got, "ERR Bad data format", "{body:?}");
    }
    let pong: String = q(&mut k, &["PING"]);
    assert_eq!(pong, "PONG");
    assert_eq!(q::<i64>(&mut k, &["DBSIZE"]), 0);
}

#[test]
fn restored_values_take_kora_encodings_and_thresholds() {
    let s = Server::start_with(2, &["--hash-max-listpack-entries", "2"]);
    let mut k = s.client();
    let _: i64 = q(&mut k, &["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(
        q::<String>(&mut k, &["OBJECT", "ENCODING", "h"]),
        "listpack"
    );
    let p = dump(&mut k, "h").unwrap();
    assert_eq!(p[0], 16, "listpack hash");
    let _: i64 = q(&mut k, &["HSET", "h", "c", "3"]);
    let p3 = dump(&mut k, "h").unwrap();
    assert_eq!(p3[0], 4, "plain hash");
    let _: () = q(&mut k, &["CONFIG", "SET", "hash-max-listpack-entries", "1"]);
    restore(&mut k, "h2", 0, &p, &[]).unwrap();
    assert_eq!(
        q::<String>(&mut k, &["OBJECT", "ENCODING", "h2"]),
        "hashtable"
    );
    let _: () = q(
        &mut k,
        &["CONFIG", "SET", "hash-max-listpack-entries", "512"],
    );
    restore(&mut k, "h3", 0, &p3, &[]).unwrap();
    assert_eq!(
        q::<String>(&mut k, &["OBJECT", "ENCODING", "h3"]),
        "listpack"
    );
    // A WATCHed key changed by RESTORE REPLACE aborts the transaction.
    let mut w = s.client();
    let _: () = q(&mut w, &["WATCH", "h3"]);
    restore(&mut k, "h3", 0, &p, &["REPLACE"]).unwrap();
    let _: () = q(&mut w, &["MULTI"]);
    let _: String = q(&mut w, &["PING"]);
    let exec: Value = redis::cmd("EXEC").query(&mut w).unwrap();
    assert_eq!(exec, Value::Nil);
}
