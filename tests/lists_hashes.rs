//! List and hash commands end to end: replies, error texts, WRONGTYPE and
//! deletion of emptied aggregates.

mod common;

use common::{Server, raw_exchange};
use redis::{Connection, FromRedisValue, Value};

/// Runs a command that must succeed and converts its reply.
fn q<T: FromRedisValue>(c: &mut Connection, cmd: &str, args: &[&str]) -> T {
    redis::cmd(cmd)
        .arg(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

fn int(c: &mut Connection, cmd: &str, args: &[&str]) -> i64 {
    q(c, cmd, args)
}

fn strings(c: &mut Connection, cmd: &str, args: &[&str]) -> Vec<String> {
    q(c, cmd, args)
}

fn raw(c: &mut Connection, cmd: &str, args: &[&str]) -> Value {
    q(c, cmd, args)
}

/// The error line the server sent, e.g. "ERR syntax error".
fn error(c: &mut Connection, cmd: &str, args: &[&str]) -> String {
    let e = redis::cmd(cmd)
        .arg(args)
        .query::<Value>(c)
        .expect_err(&format!("{cmd} {args:?} must fail"));
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

fn exists(c: &mut Connection, key: &str) -> bool {
    int(c, "EXISTS", &[key]) == 1
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

#[test]
fn push_pop_and_length() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(int(&mut c, "LPUSH", &["l", "a", "b", "c"]), 3);
    assert_eq!(int(&mut c, "RPUSH", &["l", "d", "e"]), 5);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["c", "b", "a", "d", "e"]
    );
    assert_eq!(q::<String>(&mut c, "TYPE", &["l"]), "list");
    assert_eq!(int(&mut c, "LLEN", &["l"]), 5);
    assert_eq!(int(&mut c, "LLEN", &["missing"]), 0);

    assert_eq!(int(&mut c, "LPUSHX", &["missing", "a"]), 0);
    assert_eq!(int(&mut c, "RPUSHX", &["missing", "a", "b"]), 0);
    assert!(!exists(&mut c, "missing"), "PUSHX never creates the key");
    assert_eq!(int(&mut c, "LPUSHX", &["l", "x", "y"]), 7);
    assert_eq!(int(&mut c, "RPUSHX", &["l", "z"]), 8);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["y", "x", "c", "b", "a", "d", "e", "z"]
    );

    assert_eq!(
        q::<Option<String>>(&mut c, "LPOP", &["l"]).as_deref(),
        Some("y")
    );
    assert_eq!(
        q::<Option<String>>(&mut c, "RPOP", &["l"]).as_deref(),
        Some("z")
    );
    assert_eq!(strings(&mut c, "LPOP", &["l", "2"]), ["x", "c"]);
    assert_eq!(strings(&mut c, "RPOP", &["l", "2"]), ["e", "d"]);
    assert_eq!(raw(&mut c, "LPOP", &["l", "0"]), Value::Array(vec![]));
    assert_eq!(
        error(&mut c, "LPOP", &["l", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        error(&mut c, "RPOP", &["l", "abc"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        error(&mut c, "LPOP", &["l", "1", "2"]),
        "ERR wrong number of arguments for 'lpop' command"
    );
    assert_eq!(strings(&mut c, "RPOP", &["l", "10"]), ["a", "b"]);
    assert!(
        !exists(&mut c, "l"),
        "popping the last element deletes the list"
    );

    assert_eq!(raw(&mut c, "LPOP", &["l"]), Value::Nil);
    assert_eq!(raw(&mut c, "RPOP", &["l"]), Value::Nil);
    // With a count, a missing key is a nil array, not a nil bulk; the
    // client maps both to Nil, so look at the bytes.
    let mut sock = s.raw();
    assert_eq!(raw_exchange(&mut sock, b"LPOP l 3\r\n"), b"*-1\r\n");
    assert_eq!(raw_exchange(&mut sock, b"RPOP l\r\n"), b"$-1\r\n");

    // Binary-safe elements.
    let bin: &[u8] = b"\x00\xff\r\n";
    assert_eq!(
        redis::cmd("RPUSH")
            .arg("b")
            .arg(bin)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("LPOP")
            .arg("b")
            .query::<Vec<u8>>(&mut c)
            .unwrap(),
        bin
    );
}

#[test]
fn range_index_set_and_trim() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(int(&mut c, "RPUSH", &["l", "a", "b", "c", "d", "e"]), 5);
    assert_eq!(strings(&mut c, "LRANGE", &["l", "1", "2"]), ["b", "c"]);
    assert_eq!(strings(&mut c, "LRANGE", &["l", "-2", "100"]), ["d", "e"]);
    assert_eq!(strings(&mut c, "LRANGE", &["l", "-100", "0"]), ["a"]);
    assert!(strings(&mut c, "LRANGE", &["l", "3", "1"]).is_empty());
    assert!(strings(&mut c, "LRANGE", &["l", "5", "10"]).is_empty());
    assert!(strings(&mut c, "LRANGE", &["missing", "0", "-1"]).is_empty());
    assert_eq!(error(&mut c, "LRANGE", &["l", "x", "1"]), NOT_INTEGER);

    assert_eq!(
        q::<Option<String>>(&mut c, "LINDEX", &["l", "0"]).as_deref(),
        Some("a")
    );
    assert_eq!(
        q::<Option<String>>(&mut c, "LINDEX", &["l", "-1"]).as_deref(),
        Some("e")
    );
    assert_eq!(raw(&mut c, "LINDEX", &["l", "5"]), Value::Nil);
    assert_eq!(raw(&mut c, "LINDEX", &["l", "-6"]), Value::Nil);
    assert_eq!(raw(&mut c, "LINDEX", &["missing", "0"]), Value::Nil);
    assert_eq!(error(&mut c, "LINDEX", &["l", "x"]), NOT_INTEGER);

    assert_eq!(q::<String>(&mut c, "LSET", &["l", "1", "B"]), "OK");
    assert_eq!(
        q::<String>(&mut c, "LSET", &["l", "-1", "a much longer element"]),
        "OK"
    );
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["a", "B", "c", "d", "a much longer element"]
    );
    assert_eq!(
        error(&mut c, "LSET", &["l", "5", "x"]),
        "ERR index out of range"
    );
    assert_eq!(
        error(&mut c, "LSET", &["l", "-6", "x"]),
        "ERR index out of range"
    );
    assert_eq!(
        error(&mut c, "LSET", &["missing", "0", "x"]),
        "ERR no such key"
    );
    assert_eq!(error(&mut c, "LSET", &["l", "x", "x"]), NOT_INTEGER);

    assert_eq!(q::<String>(&mut c, "LTRIM", &["l", "1", "-2"]), "OK");
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["B", "c", "d"]
    );
    assert_eq!(q::<String>(&mut c, "LTRIM", &["l", "-2", "100"]), "OK");
    assert_eq!(strings(&mut c, "LRANGE", &["l", "0", "-1"]), ["c", "d"]);
    assert_eq!(q::<String>(&mut c, "LTRIM", &["missing", "0", "1"]), "OK");
    assert_eq!(error(&mut c, "LTRIM", &["l", "0", "x"]), NOT_INTEGER);
    assert_eq!(q::<String>(&mut c, "LTRIM", &["l", "2", "1"]), "OK");
    assert!(!exists(&mut c, "l"), "trimming to nothing deletes the list");
}

#[test]
fn lrem_linsert_and_lpos() {
    let s = Server::start(2);
    let mut c = s.client();
    int(&mut c, "RPUSH", &["l", "x", "a", "x", "b", "x", "c", "x"]);
    assert_eq!(int(&mut c, "LREM", &["l", "-2", "x"]), 2);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["x", "a", "x", "b", "c"]
    );
    assert_eq!(int(&mut c, "LREM", &["l", "1", "x"]), 1);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["a", "x", "b", "c"]
    );
    assert_eq!(int(&mut c, "LREM", &["l", "0", "nope"]), 0);
    assert_eq!(int(&mut c, "LREM", &["missing", "0", "x"]), 0);
    assert_eq!(error(&mut c, "LREM", &["l", "x", "x"]), NOT_INTEGER);
    int(&mut c, "RPUSH", &["l", "x", "x"]);
    assert_eq!(int(&mut c, "LREM", &["l", "0", "x"]), 3);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["a", "b", "c"]
    );

    assert_eq!(int(&mut c, "LINSERT", &["l", "BEFORE", "b", "1"]), 4);
    assert_eq!(int(&mut c, "LINSERT", &["l", "after", "c", "2"]), 5);
    assert_eq!(
        strings(&mut c, "LRANGE", &["l", "0", "-1"]),
        ["a", "1", "b", "c", "2"]
    );
    assert_eq!(int(&mut c, "LINSERT", &["l", "AFTER", "nope", "3"]), -1);
    assert_eq!(int(&mut c, "LINSERT", &["missing", "AFTER", "a", "3"]), 0);
    assert!(!exists(&mut c, "missing"));
    assert_eq!(
        error(&mut c, "LINSERT", &["l", "AROUND", "a", "3"]),
        "ERR syntax error"
    );

    assert_eq!(int(&mut c, "LREM", &["l", "0", "a"]), 1);
    assert_eq!(int(&mut c, "LREM", &["l", "0", "1"]), 1);
    assert_eq!(int(&mut c, "LREM", &["l", "0", "b"]), 1);
    assert_eq!(int(&mut c, "LREM", &["l", "0", "c"]), 1);
    assert_eq!(int(&mut c, "LREM", &["l", "5", "2"]), 1);
    assert!(
        !exists(&mut c, "l"),
        "removing every element deletes the list"
    );

    int(
        &mut c,
        "RPUSH",
        &["p", "a", "b", "c", "1", "2", "3", "c", "c"],
    );
    assert_eq!(int(&mut c, "LPOS", &["p", "c"]), 2);
    assert_eq!(int(&mut c, "LPOS", &["p", "c", "RANK", "2"]), 6);
    assert_eq!(int(&mut c, "LPOS", &["p", "c", "RANK", "-1"]), 7);
    assert_eq!(int(&mut c, "LPOS", &["p", "c", "rank", "-3"]), 2);
    assert_eq!(raw(&mut c, "LPOS", &["p", "c", "RANK", "4"]), Value::Nil);
    assert_eq!(raw(&mut c, "LPOS", &["p", "zz"]), Value::Nil);
    assert_eq!(
        q::<Vec<i64>>(&mut c, "LPOS", &["p", "c", "COUNT", "2"]),
        [2, 6]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, "LPOS", &["p", "c", "COUNT", "0"]),
        [2, 6, 7]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, "LPOS", &["p", "c", "RANK", "-1", "COUNT", "0"]),
        [7, 6, 2]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, "LPOS", &["p", "c", "COUNT", "0", "MAXLEN", "7"]),
        [2, 6]
    );
    assert_eq!(
        q::<Vec<i64>>(
            &mut c,
            "LPOS",
            &["p", "c", "RANK", "-1", "COUNT", "0", "MAXLEN", "2"]
        ),
        [7, 6]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, "LPOS", &["p", "zz", "COUNT", "0"]),
        Vec::<i64>::new()
    );
    assert_eq!(raw(&mut c, "LPOS", &["p", "c", "MAXLEN", "2"]), Value::Nil);
    assert_eq!(raw(&mut c, "LPOS", &["missing", "c"]), Value::Nil);
    assert_eq!(
        raw(&mut c, "LPOS", &["missing", "c", "COUNT", "1"]),
        Value::Array(vec![])
    );
    assert_eq!(
        error(&mut c, "LPOS", &["p", "c", "RANK", "0"]),
        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
         or use negative to start from the end of the list"
    );
    assert_eq!(
        error(&mut c, "LPOS", &["p", "c", "COUNT", "-1"]),
        "ERR COUNT can't be negative"
    );
    assert_eq!(
        error(&mut c, "LPOS", &["p", "c", "MAXLEN", "-1"]),
        "ERR MAXLEN can't be negative"
    );
    assert_eq!(error(&mut c, "LPOS", &["p", "c", "RANK", "x"]), NOT_INTEGER);
    assert_eq!(
        error(&mut c, "LPOS", &["p", "c", "RANK"]),
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, "LPOS", &["p", "c", "FIRST", "1"]),
        "ERR syntax error"
    );
}

#[test]
fn hash_writes_and_reads() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(int(&mut c, "HSET", &["h", "a", "1", "b", "2"]), 2);
    assert_eq!(int(&mut c, "HSET", &["h", "a", "10", "c", "3"]), 1);
    assert_eq!(q::<String>(&mut c, "TYPE", &["h"]), "hash");
    assert_eq!(
        error(&mut c, "HSET", &["h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        q::<String>(&mut c, "HMSET", &["h", "d", "4", "a", "11"]),
        "OK"
    );
    assert_eq!(
        error(&mut c, "HMSET", &["h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hmset' command"
    );
    assert_eq!(int(&mut c, "HSETNX", &["h", "a", "nope"]), 0);
    assert_eq!(int(&mut c, "HSETNX", &["h", "e", "5"]), 1);
    assert_eq!(int(&mut c, "HSETNX", &["fresh", "f", "v"]), 1);

    assert_eq!(
        q::<Option<String>>(&mut c, "HGET", &["h", "a"]).as_deref(),
        Some("11")
    );
    assert_eq!(raw(&mut c, "HGET", &["h", "zz"]), Value::Nil);
    assert_eq!(raw(&mut c, "HGET", &["missing", "a"]), Value::Nil);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, "HMGET", &["h", "a", "zz", "e"]),
        [Some("11".to_string()), None, Some("5".to_string())]
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, "HMGET", &["missing", "a", "b"]),
        [None, None]
    );
    // Fields come back in insertion order.
    assert_eq!(
        strings(&mut c, "HGETALL", &["h"]),
        ["a", "11", "b", "2", "c", "3", "d", "4", "e", "5"]
    );
    assert_eq!(strings(&mut c, "HKEYS", &["h"]), ["a", "b", "c", "d", "e"]);
    assert_eq!(strings(&mut c, "HVALS", &["h"]), ["11", "2", "3", "4", "5"]);
    assert!(strings(&mut c, "HGETALL", &["missing"]).is_empty());
    assert!(strings(&mut c, "HKEYS", &["missing"]).is_empty());
    assert!(strings(&mut c, "HVALS", &["missing"]).is_empty());
    assert_eq!(int(&mut c, "HLEN", &["h"]), 5);
    assert_eq!(int(&mut c, "HLEN", &["missing"]), 0);
    assert_eq!(int(&mut c, "HEXISTS", &["h", "a"]), 1);
    assert_eq!(int(&mut c, "HEXISTS", &["h", "zz"]), 0);
    assert_eq!(int(&mut c, "HEXISTS", &["missing", "a"]), 0);
    assert_eq!(int(&mut c, "HSTRLEN", &["h", "a"]), 2);
    assert_eq!(int(&mut c, "HSTRLEN", &["h", "zz"]), 0);
    assert_eq!(int(&mut c, "HSTRLEN", &["missing", "a"]), 0);

    assert_eq!(int(&mut c, "HDEL", &["h", "a", "zz", "a", "b"]), 2);
    assert_eq!(int(&mut c, "HDEL", &["missing", "a"]), 0);
    assert_eq!(int(&mut c, "HLEN", &["h"]), 3);
    assert_eq!(int(&mut c, "HDEL", &["h", "c", "d", "e"]), 3);
    assert!(
        !exists(&mut c, "h"),
        "deleting the last field deletes the hash"
    );

    // Binary-safe fields and values.
    let (field, value): (&[u8], &[u8]) = (b"\x00f\r\n", b"\xff\x00v");
    assert_eq!(
        redis::cmd("HSET")
            .arg("bin")
            .arg(field)
            .arg(value)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("HGET")
            .arg("bin")
            .arg(field)
            .query::<Vec<u8>>(&mut c)
            .unwrap(),
        value
    );
}

#[test]
fn hash_counters() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(int(&mut c, "HINCRBY", &["h", "n", "5"]), 5);
    assert_eq!(int(&mut c, "HINCRBY", &["h", "n", "-7"]), -2);
    assert_eq!(q::<String>(&mut c, "HGET", &["h", "n"]), "-2");
    int(
        &mut c,
        "HSET",
        &["h", "big", "9223372036854775807", "text", "abc", "f", "1.5"],
    );
    assert_eq!(
        error(&mut c, "HINCRBY", &["h", "big", "1"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        q::<String>(&mut c, "HGET", &["h", "big"]),
        "9223372036854775807",
        "a failed increment changes nothing"
    );
    assert_eq!(
        error(&mut c, "HINCRBY", &["h", "text", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        error(&mut c, "HINCRBY", &["h", "f", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(error(&mut c, "HINCRBY", &["h", "n", "x"]), NOT_INTEGER);
    assert_eq!(
        error(&mut c, "HINCRBY", &["missing", "n", "1.5"]),
        NOT_INTEGER
    );
    assert!(!exists(&mut c, "missing"));

    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["h", "f", "0.25"]),
        "1.75"
    );
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["h", "f", "0.25"]),
        "2"
    );
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["h", "g", "-3.5"]),
        "-3.5"
    );
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["h", "n", "1e2"]),
        "98"
    );
    assert_eq!(q::<String>(&mut c, "HGET", &["h", "f"]), "2");
    assert_eq!(
        error(&mut c, "HINCRBYFLOAT", &["h", "text", "1"]),
        "ERR hash value is not a float"
    );
    assert_eq!(
        error(&mut c, "HINCRBYFLOAT", &["h", "f", "x"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        error(&mut c, "HINCRBYFLOAT", &["h", "f", "inf"]),
        "ERR value is NaN or Infinity"
    );
    int(&mut c, "HSET", &["h", "huge", "1.7e308"]);
    assert_eq!(
        error(&mut c, "HINCRBYFLOAT", &["h", "huge", "1.7e308"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(q::<String>(&mut c, "HGET", &["h", "huge"]), "1.7e308");
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["fresh", "x", "2.5"]),
        "2.5"
    );
    // strtold's texts, as Redis 7.0: hex, and a value below an f64's range.
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["fresh", "x", "0x1p3"]),
        "10.5"
    );
    int(&mut c, "HSET", &["h", "tiny", "1e-400"]);
    assert_eq!(
        q::<String>(&mut c, "HINCRBYFLOAT", &["h", "tiny", "1"]),
        "1"
    );
}

#[test]
fn hscan_walks_every_field_once() {
    let s = Server::start(2);
    let mut c = s.client();
    // Past hash-max-listpack-entries (512): a table, scanned in pages (a
    // packed hash answers in one page, see `packed_encodings_*`).
    let mut args = vec!["h".to_string()];
    for i in 0..600 {
        args.push(format!("field:{i}"));
        args.push(format!("value:{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(int(&mut c, "HSET", &args), 600);

    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let (next, page): (String, Vec<String>) = q(&mut c, "HSCAN", &["h", &cursor, "COUNT", "7"]);
        assert!(page.len() <= 14, "COUNT bounds the work per call");
        for pair in page.chunks(2) {
            assert_eq!(
                pair[0].replace("field", "value"),
                pair[1],
                "values follow their fields"
            );
            seen.push(pair[0].clone());
        }
        calls += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert!(calls > 1);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 600);

    let (next, page): (String, Vec<String>) = q(
        &mut c,
        "HSCAN",
        &["h", "0", "MATCH", "field:1?", "COUNT", "1000"],
    );
    assert_eq!(next, "0");
    assert_eq!(page.len(), 20);
    assert!(
        page.chunks(2)
            .all(|p| p[0].starts_with("field:1") && p[0].len() == 8)
    );
    let (_, fields): (String, Vec<String>) = q(
        &mut c,
        "HSCAN",
        &["h", "0", "MATCH", "field:5", "COUNT", "1000", "NOVALUES"],
    );
    assert_eq!(fields, ["field:5"]);
    let (next, page): (String, Vec<String>) = q(&mut c, "HSCAN", &["missing", "0"]);
    assert_eq!((next.as_str(), page.len()), ("0", 0));
    let (next, page): (String, Vec<String>) = q(&mut c, "HSCAN", &["h", "100000"]);
    assert_eq!((next.as_str(), page.len()), ("0", 0));

    assert_eq!(error(&mut c, "HSCAN", &["h", "abc"]), "ERR invalid cursor");
    assert_eq!(error(&mut c, "HSCAN", &["h", "-1"]), "ERR invalid cursor");
    assert_eq!(
        error(&mut c, "HSCAN", &["h", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, "HSCAN", &["h", "0", "COUNT", "x"]),
        NOT_INTEGER
    );
    assert_eq!(
        error(&mut c, "HSCAN", &["h", "0", "MATCH"]),
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, "HSCAN", &["h", "0", "BOGUS", "1"]),
        "ERR syntax error"
    );
}

#[test]
fn wrong_type_is_refused_and_changes_nothing() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = redis::cmd("SET").arg("str").arg("v").query(&mut c).unwrap();
    int(&mut c, "RPUSH", &["list", "a"]);
    int(&mut c, "HSET", &["hash", "f", "v"]);
    let on_string: &[(&str, &[&str])] = &[
        ("LPUSH", &["str", "a"]),
        ("RPUSH", &["str", "a"]),
        ("LPUSHX", &["str", "a"]),
        ("RPUSHX", &["str", "a"]),
        ("LPOP", &["str"]),
        ("RPOP", &["str", "2"]),
        ("LLEN", &["str"]),
        ("LRANGE", &["str", "0", "-1"]),
        ("LINDEX", &["str", "0"]),
        ("LSET", &["str", "0", "a"]),
        ("LREM", &["str", "0", "a"]),
        ("LTRIM", &["str", "0", "1"]),
        ("LINSERT", &["str", "BEFORE", "a", "b"]),
        ("LPOS", &["str", "a"]),
        ("HSET", &["str", "f", "v"]),
        ("HMSET", &["str", "f", "v"]),
        ("HSETNX", &["str", "f", "v"]),
        ("HGET", &["str", "f"]),
        ("HMGET", &["str", "f"]),
        ("HGETALL", &["str"]),
        ("HDEL", &["str", "f"]),
        ("HEXISTS", &["str", "f"]),
        ("HLEN", &["str"]),
        ("HKEYS", &["str"]),
        ("HVALS", &["str"]),
        ("HINCRBY", &["str", "f", "1"]),
        ("HINCRBYFLOAT", &["str", "f", "1"]),
        ("HSTRLEN", &["str", "f"]),
        ("HSCAN", &["str", "0"]),
    ];
    for (cmd, args) in on_string {
        assert_eq!(error(&mut c, cmd, args), WRONGTYPE, "{cmd} {args:?}");
    }
    assert_eq!(q::<String>(&mut c, "GET", &["str"]), "v");
    // Lists and hashes refuse each other's commands too.
    assert_eq!(error(&mut c, "HGET", &["list", "a"]), WRONGTYPE);
    assert_eq!(error(&mut c, "LPUSH", &["hash", "a"]), WRONGTYPE);
    assert_eq!(error(&mut c, "GET", &["hash"]), WRONGTYPE);
    assert_eq!(strings(&mut c, "LRANGE", &["list", "0", "-1"]), ["a"]);
    assert_eq!(strings(&mut c, "HGETALL", &["hash"]), ["f", "v"]);
}

#[test]
fn writes_keep_the_ttl_and_expired_aggregates_are_gone() {
    let s = Server::start(2);
    let mut c = s.client();
    int(&mut c, "RPUSH", &["l", "a"]);
    int(&mut c, "HSET", &["h", "f", "v"]);
    assert_eq!(int(&mut c, "EXPIRE", &["l", "100"]), 1);
    assert_eq!(int(&mut c, "EXPIRE", &["h", "100"]), 1);
    int(&mut c, "RPUSH", &["l", "b"]);
    int(&mut c, "HSET", &["h", "g", "w"]);
    assert!(int(&mut c, "TTL", &["l"]) > 0, "pushing keeps the TTL");
    assert!(int(&mut c, "TTL", &["h"]) > 0, "HSET keeps the TTL");

    assert_eq!(int(&mut c, "PEXPIRE", &["l", "1"]), 1);
    assert_eq!(int(&mut c, "PEXPIRE", &["h", "1"]), 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(int(&mut c, "LLEN", &["l"]), 0);
    assert_eq!(int(&mut c, "HLEN", &["h"]), 0);
    assert_eq!(int(&mut c, "RPUSH", &["l", "fresh"]), 1);
    assert_eq!(
        int(&mut c, "TTL", &["l"]),
        -1,
        "a list recreated after expiry has no TTL"
    );
}
