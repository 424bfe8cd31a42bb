//! OBJECT ENCODING of strings as Redis 7.0 answers it (int / embstr /
//! raw, chosen by the command that wrote the value), and TTLs that travel
//! with RENAME/COPY now that they live outside the entry. The expected
//! replies were taken from redis-server 7.0.15; when /usr/bin/redis-server
//! is installed the same script runs against it too, so a difference
//! shows up as a failing comparison rather than a stale expectation.

mod common;
mod redis_ref;

use common::{Server, cmd, error_text, free_port};
use redis_ref::RedisRef;

/// (command, expected reply). Two shards: the one-letter keys spread over
/// both, so COPY and RENAME run both the one-shard and the cross-shard
/// paths.
const SCRIPT: &[(&str, &str)] = &[
    ("SET a 123", "OK"),
    ("OBJECT ENCODING a", "int"),
    ("APPEND a 4", "4"),
    ("OBJECT ENCODING a", "raw"),
    ("INCR a", "1235"),
    ("OBJECT ENCODING a", "int"),
    ("SET b hello", "OK"),
    ("OBJECT ENCODING b", "embstr"),
    ("APPEND b x", "6"),
    ("OBJECT ENCODING b", "raw"),
    ("APPEND c 55", "2"),
    ("OBJECT ENCODING c", "int"),
    ("APPEND d hello", "5"),
    ("OBJECT ENCODING d", "embstr"),
    ("SETRANGE e 0 12", "2"),
    ("OBJECT ENCODING e", "raw"),
    ("SET f 12", "OK"),
    ("SETRANGE f 0 3", "2"),
    ("OBJECT ENCODING f", "raw"),
    ("GET f", "32"),
    ("SET g 12", "OK"),
    ("SETRANGE g 0 ~", "2"),
    ("OBJECT ENCODING g", "int"),
    ("INCRBYFLOAT h 3", "3"),
    ("OBJECT ENCODING h", "embstr"),
    ("SET i 1.5", "OK"),
    ("INCRBYFLOAT i 1.5", "3"),
    ("OBJECT ENCODING i", "embstr"),
    ("SET j 0123", "OK"),
    ("OBJECT ENCODING j", "embstr"),
    ("SET k aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "OK"),
    ("OBJECT ENCODING k", "embstr"),
    ("SET l aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "OK"),
    ("OBJECT ENCODING l", "raw"),
    ("APPEND l b", "46"),
    ("OBJECT ENCODING l", "raw"),
    ("INCR m", "1"),
    ("OBJECT ENCODING m", "int"),
    ("SET n 5", "OK"),
    ("APPEND n ~", "1"),
    ("OBJECT ENCODING n", "raw"),
    ("SET o 99999999999999999999", "OK"),
    ("OBJECT ENCODING o", "embstr"),
    ("SET o -9223372036854775808", "OK"),
    ("OBJECT ENCODING o", "int"),
    ("SET p 12345", "OK"),
    ("GETRANGE p 0 1", "12"),
    ("OBJECT ENCODING p", "int"),
    ("SETNX q 7", "1"),
    ("OBJECT ENCODING q", "int"),
    ("MSET r 8 s xyz", "OK"),
    ("OBJECT ENCODING r", "int"),
    ("OBJECT ENCODING s", "embstr"),
    ("GETSET s 9", "xyz"),
    ("OBJECT ENCODING s", "int"),
    ("SET t hello", "OK"),
    ("COPY t u", "1"),
    ("APPEND t x", "6"),
    ("OBJECT ENCODING u", "embstr"),
    ("COPY t v", "1"),
    ("OBJECT ENCODING v", "raw"),
    ("RENAME t w", "OK"),
    ("OBJECT ENCODING w", "raw"),
    ("SETEX x 100 42", "OK"),
    ("OBJECT ENCODING x", "int"),
    ("RENAME x y", "OK"),
    ("TTL y", "100"),
    ("COPY y z", "1"),
    ("TTL z", "100"),
    ("OBJECT ENCODING z", "int"),
    ("SET y 10 KEEPTTL", "OK"),
    ("TTL y", "100"),
    ("INCRBY y 10000000000000", "10000000000010"),
    ("OBJECT ENCODING y", "int"),
    ("TTL y", "100"),
    ("DECR z", "41"),
    ("OBJECT ENCODING z", "int"),
    ("PERSIST z", "1"),
    ("TTL z", "-1"),
    (
        "SET big aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "OK",
    ),
    ("INCR big", "ERR value is not an integer or out of range"),
    ("OBJECT ENCODING big", "raw"),
    ("SET big 77", "OK"),
    ("OBJECT ENCODING big", "int"),
    ("SET fl 2", "OK"),
    ("INCRBYFLOAT fl 0.5", "2.5"),
    ("OBJECT ENCODING fl", "embstr"),
    ("INCRBYFLOAT fl 1e300", ""),
    ("OBJECT ENCODING fl", "raw"),
    ("SETRANGE e 0 ~", "2"),
    ("OBJECT ENCODING e", "raw"),
    ("GETEX x2 PERSIST", "nil"),
];

/// Words of a script line; `~` stands for the empty string.
fn words(line: &str) -> Vec<&str> {
    line.split(' ')
        .map(|w| if w == "~" { "" } else { w })
        .collect()
}

fn reply_text(c: &mut redis::Connection, args: &[&str]) -> String {
    match cmd(args).query::<redis::Value>(c) {
        Ok(redis::Value::Nil) => "nil".into(),
        Ok(redis::Value::Okay) => "OK".into(),
        Ok(redis::Value::Int(n)) => n.to_string(),
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::SimpleString(s)) => s,
        Ok(other) => format!("{other:?}"),
        Err(e) => error_text(&e),
    }
}

/// Runs the script; returns (command, expected, got) for every mismatch.
/// An empty expectation accepts any reply (a float too long to spell out).
fn run(c: &mut redis::Connection) -> Vec<(String, String, String)> {
    let mut bad = Vec::new();
    for (line, want) in SCRIPT {
        let got = reply_text(c, &words(line));
        if !want.is_empty() && got != *want {
            bad.push((line.to_string(), want.to_string(), got));
        }
    }
    bad
}

#[test]
fn string_encodings_and_moved_ttls_answer_as_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.client();
    let bad = run(&mut c);
    assert!(bad.is_empty(), "kora differs from Redis 7.0: {bad:#?}");
}

#[test]
fn the_script_matches_a_real_redis_when_one_is_installed() {
    let Some(redis) = RedisRef::start(free_port(), "string encodings") else {
        return;
    };
    let mut c = redis.client();
    let version: String = cmd(&["INFO", "server"]).query(&mut c).unwrap();
    if !version.contains("redis_version:7.0.") {
        eprintln!("not Redis 7.0; comparison skipped");
        return;
    }
    let bad = run(&mut c);
    assert!(
        bad.is_empty(),
        "the expectations differ from Redis: {bad:#?}"
    );
}
