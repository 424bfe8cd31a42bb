//! String, generic-key and connection/server commands end to end, checked
//! against what Redis 7 (7.2) replies. Each test starts its own server;
//! scenarios that do not depend on key placement run with 1 and 2 shards,
//! the cross-shard ones pick keys that provably live on different shards.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, cmd, e, keys_on_each_shard, q, raw_exchange, shard_of};
use redis::{Connection, Value};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const SYNTAX: &str = "ERR syntax error";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NO_SUCH_KEY: &str = "ERR no such key";
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

// ---------------------------------------------------------------- helpers

/// The raw reply of a command that must not fail.
fn v(c: &mut Connection, args: &[&str]) -> Value {
    q(c, args)
}

fn get(c: &mut Connection, key: &str) -> Option<String> {
    q(c, &["GET", key])
}

fn ttl(c: &mut Connection, key: &str) -> i64 {
    q(c, &["TTL", key])
}

fn pttl(c: &mut Connection, key: &str) -> i64 {
    q(c, &["PTTL", key])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Runs `f` against a fresh server with 1 shard and one with 2 shards.
fn for_each_shard_count(f: impl Fn(&Server, &mut Connection)) {
    for workers in [1, 2] {
        let s = Server::start(workers);
        let mut c = s.client();
        f(&s, &mut c);
    }
}

/// Creates a value of a non-string type at `key` with whichever of LPUSH,
/// SADD or HSET the server implements; returns the command used, or None
/// when none of them works yet (lists/sets/hashes are being rewritten).
fn make_non_string(c: &mut Connection, key: &str) -> Option<&'static str> {
    let tries: [(&'static str, Vec<&str>); 3] = [
        ("LPUSH", vec!["LPUSH", key, "x"]),
        ("SADD", vec!["SADD", key, "x"]),
        ("HSET", vec!["HSET", key, "f", "x"]),
    ];
    for (name, args) in tries {
        if cmd(&args).query::<i64>(c).is_ok() {
            return Some(name);
        }
    }
    None
}

/// Full SCAN iteration; returns every key in the order received.
fn scan_all(c: &mut Connection, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let (next, keys): (String, Vec<String>) = q(c, &args);
        out.extend(keys);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN {extra:?} never returned cursor 0");
}

/// A raw RESP2 connection that reads exactly one reply at a time.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn new(s: &Server) -> Raw {
        Raw {
            reader: BufReader::new(s.raw()),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Sends one command as a multibulk and returns its raw reply.
    fn call(&mut self, args: &[&str]) -> String {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            frame.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.send(&frame);
        self.reply()
    }

    /// Reads one complete RESP2 reply, returned verbatim.
    fn reply(&mut self) -> String {
        let mut out = Vec::new();
        self.read_one(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn read_one(&mut self, out: &mut Vec<u8>) {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        assert!(
            line.ends_with(b"\r\n"),
            "truncated reply line {:?}",
            String::from_utf8_lossy(&line)
        );
        out.extend_from_slice(&line);
        let n: i64 = String::from_utf8_lossy(&line[1..line.len() - 2])
            .parse()
            .unwrap_or(-1);
        match line[0] {
            b'$' if n >= 0 => {
                let mut body = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut body).unwrap();
                out.extend_from_slice(&body);
            }
            b'*' if n > 0 => {
                for _ in 0..n {
                    self.read_one(out);
                }
            }
            _ => {}
        }
    }
}

// ============================================================ strings: GET/SET

#[test]
fn get_set_basic_and_binary_safe() {
    for_each_shard_count(|_, c| {
        assert_eq!(get(c, "missing"), None);
        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(get(c, "k"), Some("v".into()));
        assert_eq!(v(c, &["SET", "k", "v2"]), Value::Okay);
        assert_eq!(get(c, "k"), Some("v2".into()));
        // Empty values and values with NUL / CRLF survive unchanged.
        assert_eq!(v(c, &["SET", "empty", ""]), Value::Okay);
        assert_eq!(v(c, &["GET", "empty"]), bulk(""));
        let binary = b"a\0b\r\nc\xff".to_vec();
        let ok: Value = redis::cmd("SET").arg("bin").arg(&binary).query(c).unwrap();
        assert_eq!(ok, Value::Okay);
        let back: Vec<u8> = redis::cmd("GET").arg("bin").query(c).unwrap();
        assert_eq!(back, binary);
        // Lower/mixed case command names work.
        assert_eq!(v(c, &["sEt", "k", "lower"]), Value::Okay);
        assert_eq!(q::<String>(c, &["get", "k"]), "lower");
        assert_eq!(
            e(c, &["GET"]),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            e(c, &["GET", "a", "b"]),
            "ERR wrong number of arguments for 'get' command"
        );
    });
}

#[test]
fn set_expiry_options() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "ex", "v", "EX", "100"]), Value::Okay);
        assert_eq!(ttl(c, "ex"), 100);
        let p = pttl(c, "ex");
        assert!((99_000..=100_000).contains(&p), "PTTL after EX 100: {p}");

        assert_eq!(v(c, &["SET", "px", "v", "PX", "50000"]), Value::Okay);
        let p = pttl(c, "px");
        assert!((49_000..=50_000).contains(&p), "PTTL after PX 50000: {p}");
        assert_eq!(ttl(c, "px"), 50);

        let at = now_ms() / 1000 + 100;
        assert_eq!(
            v(c, &["SET", "exat", "v", "EXAT", &at.to_string()]),
            Value::Okay
        );
        assert_eq!(q::<u64>(c, &["EXPIRETIME", "exat"]), at);
        assert_eq!(q::<u64>(c, &["PEXPIRETIME", "exat"]), at * 1000);
        let t = ttl(c, "exat");
        assert!((98..=100).contains(&t), "TTL after EXAT now+100: {t}");

        let pat = now_ms() + 100_000;
        assert_eq!(
            v(c, &["SET", "pxat", "v", "PXAT", &pat.to_string()]),
            Value::Okay
        );
        assert_eq!(q::<u64>(c, &["PEXPIRETIME", "pxat"]), pat);
        let p = pttl(c, "pxat");
        assert!(
            (98_000..=100_000).contains(&p),
            "PTTL after PXAT now+100000: {p}"
        );

        // Options are case-insensitive.
        assert_eq!(v(c, &["set", "lc", "v", "ex", "30"]), Value::Okay);
        assert_eq!(ttl(c, "lc"), 30);

        // A plain SET drops the TTL.
        assert_eq!(v(c, &["SET", "ex", "w"]), Value::Okay);
        assert_eq!(ttl(c, "ex"), -1);

        // An absolute time in the past: OK, and the key is gone.
        assert_eq!(v(c, &["SET", "past", "v", "PXAT", "1"]), Value::Okay);
        assert_eq!(get(c, "past"), None);
        assert_eq!(q::<i64>(c, &["EXISTS", "past"]), 0);

        // A short PX really expires.
        assert_eq!(v(c, &["SET", "short", "v", "PX", "100"]), Value::Okay);
        assert_eq!(get(c, "short"), Some("v".into()));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(get(c, "short"), None);
        assert_eq!(ttl(c, "short"), -2);
    });
}

#[test]
fn set_nx_xx_get_keepttl() {
    for_each_shard_count(|_, c| {
        // NX
        assert_eq!(v(c, &["SET", "k", "1", "NX"]), Value::Okay);
        assert_eq!(v(c, &["SET", "k", "2", "NX"]), Value::Nil);
        assert_eq!(get(c, "k"), Some("1".into()));
        // XX
        assert_eq!(v(c, &["SET", "x", "1", "XX"]), Value::Nil);
        assert_eq!(q::<i64>(c, &["EXISTS", "x"]), 0);
        assert_eq!(v(c, &["SET", "k", "3", "XX"]), Value::Okay);
        assert_eq!(get(c, "k"), Some("3".into()));
        // GET
        assert_eq!(v(c, &["SET", "g", "a", "GET"]), Value::Nil);
        assert_eq!(get(c, "g"), Some("a".into()));
        assert_eq!(v(c, &["SET", "g", "b", "GET"]), bulk("a"));
        assert_eq!(get(c, "g"), Some("b".into()));
        // NX GET (Redis >= 7.0): old value back, nothing written.
        assert_eq!(v(c, &["SET", "g", "c", "NX", "GET"]), bulk("b"));
        assert_eq!(get(c, "g"), Some("b".into()));
        assert_eq!(v(c, &["SET", "ng", "c", "NX", "GET"]), Value::Nil);
        assert_eq!(get(c, "ng"), Some("c".into()));
        // XX GET
        assert_eq!(v(c, &["SET", "xg", "c", "XX", "GET"]), Value::Nil);
        assert_eq!(q::<i64>(c, &["EXISTS", "xg"]), 0);
        assert_eq!(v(c, &["SET", "g", "d", "XX", "GET"]), bulk("b"));
        assert_eq!(get(c, "g"), Some("d".into()));
        // GET with an expiry
        assert_eq!(v(c, &["SET", "g", "e", "GET", "EX", "100"]), bulk("d"));
        assert_eq!(ttl(c, "g"), 100);
        // KEEPTTL keeps the deadline; a plain SET clears it.
        assert_eq!(v(c, &["SET", "t", "1", "EX", "100"]), Value::Okay);
        assert_eq!(v(c, &["SET", "t", "2", "KEEPTTL"]), Value::Okay);
        assert_eq!(get(c, "t"), Some("2".into()));
        assert_eq!(ttl(c, "t"), 100);
        assert_eq!(v(c, &["SET", "t", "3", "XX", "KEEPTTL", "GET"]), bulk("2"));
        assert_eq!(ttl(c, "t"), 100);
        assert_eq!(v(c, &["SET", "t", "4"]), Value::Okay);
        assert_eq!(ttl(c, "t"), -1);
        // KEEPTTL on a key without TTL / a new key
        assert_eq!(v(c, &["SET", "nt", "1", "KEEPTTL"]), Value::Okay);
        assert_eq!(ttl(c, "nt"), -1);
        // NX EX together
        assert_eq!(v(c, &["SET", "nx-ex", "1", "NX", "EX", "10"]), Value::Okay);
        assert_eq!(ttl(c, "nx-ex"), 10);
        assert_eq!(v(c, &["SET", "nx-ex", "2", "NX", "EX", "20"]), Value::Nil);
        assert_eq!(ttl(c, "nx-ex"), 10);
    });
}

#[test]
fn set_syntax_and_expire_errors() {
    for_each_shard_count(|_, c| {
        assert_eq!(
            e(c, &["SET", "k"]),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(
            e(c, &["SET"]),
            "ERR wrong number of arguments for 'set' command"
        );
        assert_eq!(e(c, &["SET", "k", "v", "EX", "10", "PX", "100"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "PX", "100", "EX", "10"]), SYNTAX);
        assert_eq!(
            e(c, &["SET", "k", "v", "EX", "10", "EXAT", "99999999999"]),
            SYNTAX
        );
        assert_eq!(e(c, &["SET", "k", "v", "KEEPTTL", "EX", "10"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "EX", "10", "KEEPTTL"]), SYNTAX);
        assert_eq!(
            e(c, &["SET", "k", "v", "PXAT", "99999999999999", "KEEPTTL"]),
            SYNTAX
        );
        assert_eq!(e(c, &["SET", "k", "v", "NX", "XX"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "XX", "NX"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "EX"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "FOO"]), SYNTAX);
        assert_eq!(e(c, &["SET", "k", "v", "EX", "abc"]), NOT_INTEGER);
        assert_eq!(e(c, &["SET", "k", "v", "EX", "1.5"]), NOT_INTEGER);
        let invalid = "ERR invalid expire time in 'set' command";
        assert_eq!(e(c, &["SET", "k", "v", "EX", "0"]), invalid);
        assert_eq!(e(c, &["SET", "k", "v", "EX", "-1"]), invalid);
        assert_eq!(e(c, &["SET", "k", "v", "PX", "0"]), invalid);
        assert_eq!(e(c, &["SET", "k", "v", "EXAT", "0"]), invalid);
        assert_eq!(e(c, &["SET", "k", "v", "PXAT", "-5"]), invalid);
        assert_eq!(
            e(c, &["SET", "k", "v", "EX", "9223372036854775807"]),
            invalid
        );
        assert_eq!(
            e(c, &["SET", "k", "v", "PX", "9223372036854775807"]),
            invalid
        );
        // None of the failed SETs wrote anything.
        assert_eq!(q::<i64>(c, &["EXISTS", "k"]), 0);
    });
}

#[test]
fn setnx_setex_psetex() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<i64>(c, &["SETNX", "k", "1"]), 1);
        assert_eq!(q::<i64>(c, &["SETNX", "k", "2"]), 0);
        assert_eq!(get(c, "k"), Some("1".into()));
        assert_eq!(
            e(c, &["SETNX", "k"]),
            "ERR wrong number of arguments for 'setnx' command"
        );

        assert_eq!(v(c, &["SETEX", "se", "100", "v"]), Value::Okay);
        assert_eq!(get(c, "se"), Some("v".into()));
        assert_eq!(ttl(c, "se"), 100);
        assert_eq!(v(c, &["SETEX", "k", "10", "over"]), Value::Okay);
        assert_eq!(get(c, "k"), Some("over".into()));
        assert_eq!(ttl(c, "k"), 10);
        assert_eq!(
            e(c, &["SETEX", "se", "0", "v"]),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            e(c, &["SETEX", "se", "-10", "v"]),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(e(c, &["SETEX", "se", "abc", "v"]), NOT_INTEGER);
        assert_eq!(
            e(c, &["SETEX", "se", "10"]),
            "ERR wrong number of arguments for 'setex' command"
        );

        assert_eq!(v(c, &["PSETEX", "pe", "100000", "v"]), Value::Okay);
        assert_eq!(get(c, "pe"), Some("v".into()));
        let p = pttl(c, "pe");
        assert!(
            (99_000..=100_000).contains(&p),
            "PTTL after PSETEX 100000: {p}"
        );
        assert_eq!(
            e(c, &["PSETEX", "pe", "0", "v"]),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(
            e(c, &["PSETEX", "pe", "-1", "v"]),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(e(c, &["PSETEX", "pe", "x", "v"]), NOT_INTEGER);
        // The failed calls left the old values alone.
        assert_eq!(get(c, "se"), Some("v".into()));
        assert_eq!(get(c, "pe"), Some("v".into()));
    });
}

#[test]
fn getset_getdel() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["GETSET", "k", "a"]), Value::Nil);
        assert_eq!(get(c, "k"), Some("a".into()));
        assert_eq!(v(c, &["GETSET", "k", "b"]), bulk("a"));
        assert_eq!(get(c, "k"), Some("b".into()));
        // GETSET clears the TTL.
        assert_eq!(v(c, &["SET", "t", "1", "EX", "100"]), Value::Okay);
        assert_eq!(v(c, &["GETSET", "t", "2"]), bulk("1"));
        assert_eq!(ttl(c, "t"), -1);

        assert_eq!(v(c, &["GETDEL", "k"]), bulk("b"));
        assert_eq!(q::<i64>(c, &["EXISTS", "k"]), 0);
        assert_eq!(v(c, &["GETDEL", "k"]), Value::Nil);
        assert_eq!(v(c, &["GETDEL", "never"]), Value::Nil);
        assert_eq!(
            e(c, &["GETDEL", "a", "b"]),
            "ERR wrong number of arguments for 'getdel' command"
        );
    });
}

#[test]
fn getex_options() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["GETEX", "missing"]), Value::Nil);
        assert_eq!(v(c, &["GETEX", "missing", "EX", "10"]), Value::Nil);
        assert_eq!(q::<i64>(c, &["EXISTS", "missing"]), 0);

        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(v(c, &["GETEX", "k"]), bulk("v"));
        assert_eq!(ttl(c, "k"), -1);

        assert_eq!(v(c, &["GETEX", "k", "EX", "100"]), bulk("v"));
        assert_eq!(ttl(c, "k"), 100);
        // Without options the TTL stays.
        assert_eq!(v(c, &["GETEX", "k"]), bulk("v"));
        assert_eq!(ttl(c, "k"), 100);

        assert_eq!(v(c, &["GETEX", "k", "PX", "50000"]), bulk("v"));
        let p = pttl(c, "k");
        assert!(
            (49_000..=50_000).contains(&p),
            "PTTL after GETEX PX 50000: {p}"
        );

        let at = now_ms() / 1000 + 200;
        assert_eq!(v(c, &["GETEX", "k", "EXAT", &at.to_string()]), bulk("v"));
        assert_eq!(q::<u64>(c, &["EXPIRETIME", "k"]), at);

        let pat = now_ms() + 300_000;
        assert_eq!(v(c, &["GETEX", "k", "PXAT", &pat.to_string()]), bulk("v"));
        assert_eq!(q::<u64>(c, &["PEXPIRETIME", "k"]), pat);

        assert_eq!(v(c, &["getex", "k", "persist"]), bulk("v"));
        assert_eq!(ttl(c, "k"), -1);
        assert_eq!(q::<i64>(c, &["PEXPIRETIME", "k"]), -1);

        let invalid = "ERR invalid expire time in 'getex' command";
        assert_eq!(e(c, &["GETEX", "k", "EX", "0"]), invalid);
        assert_eq!(e(c, &["GETEX", "k", "EX", "-1"]), invalid);
        assert_eq!(e(c, &["GETEX", "k", "PX", "0"]), invalid);
        assert_eq!(e(c, &["GETEX", "k", "EX", "abc"]), NOT_INTEGER);
        assert_eq!(e(c, &["GETEX", "k", "EX", "10", "PX", "100"]), SYNTAX);
        assert_eq!(e(c, &["GETEX", "k", "PERSIST", "EX", "10"]), SYNTAX);
        assert_eq!(e(c, &["GETEX", "k", "EX", "10", "PERSIST"]), SYNTAX);
        assert_eq!(e(c, &["GETEX", "k", "EX"]), SYNTAX);
        assert_eq!(e(c, &["GETEX", "k", "FOO"]), SYNTAX);
        assert_eq!(ttl(c, "k"), -1);

        // An absolute time in the past removes the key.
        assert_eq!(v(c, &["GETEX", "k", "PXAT", "1"]), bulk("v"));
        assert_eq!(q::<i64>(c, &["EXISTS", "k"]), 0);
    });
}

#[test]
fn append_and_strlen() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<i64>(c, &["STRLEN", "k"]), 0);
        assert_eq!(q::<i64>(c, &["APPEND", "k", "Hello"]), 5);
        assert_eq!(q::<i64>(c, &["APPEND", "k", " World"]), 11);
        assert_eq!(get(c, "k"), Some("Hello World".into()));
        assert_eq!(q::<i64>(c, &["STRLEN", "k"]), 11);
        assert_eq!(q::<i64>(c, &["APPEND", "k", ""]), 11);
        // APPEND keeps the TTL.
        assert_eq!(v(c, &["SET", "t", "a", "EX", "100"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["APPEND", "t", "b"]), 2);
        assert_eq!(get(c, "t"), Some("ab".into()));
        assert_eq!(ttl(c, "t"), 100);
        // APPEND to a number
        assert_eq!(v(c, &["SET", "n", "10"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["APPEND", "n", "5"]), 3);
        assert_eq!(q::<i64>(c, &["INCR", "n"]), 106);
        assert_eq!(
            e(c, &["APPEND", "k"]),
            "ERR wrong number of arguments for 'append' command"
        );
        assert_eq!(
            e(c, &["STRLEN", "a", "b"]),
            "ERR wrong number of arguments for 'strlen' command"
        );
    });
}

#[test]
fn getrange_indexes() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "k", "Hello World"]), Value::Okay);
        let r = |c: &mut Connection, a: &str, b: &str| q::<String>(c, &["GETRANGE", "k", a, b]);
        assert_eq!(r(c, "0", "3"), "Hell");
        assert_eq!(r(c, "0", "-1"), "Hello World");
        assert_eq!(r(c, "-3", "-1"), "rld");
        assert_eq!(r(c, "-5", "-3"), "Wor");
        assert_eq!(r(c, "6", "-1"), "World");
        assert_eq!(r(c, "5", "3"), "");
        assert_eq!(r(c, "0", "0"), "H");
        assert_eq!(r(c, "10", "10"), "d");
        assert_eq!(r(c, "5", "5000"), " World");
        assert_eq!(r(c, "-5000", "10000"), "Hello World");
        assert_eq!(r(c, "-100", "4"), "Hello");
        assert_eq!(r(c, "11", "20"), "");
        assert_eq!(r(c, "100", "200"), "");
        assert_eq!(r(c, "-1", "-5"), "");
        assert_eq!(r(c, "1", "-100"), "");
        assert_eq!(r(c, "-100", "-101"), "");
        // SUBSTR is the old name.
        assert_eq!(q::<String>(c, &["SUBSTR", "k", "0", "4"]), "Hello");
        // Missing key: empty string, not nil.
        assert_eq!(v(c, &["GETRANGE", "missing", "0", "-1"]), bulk(""));
        assert_eq!(v(c, &["SET", "empty", ""]), Value::Okay);
        assert_eq!(v(c, &["GETRANGE", "empty", "0", "-1"]), bulk(""));
        assert_eq!(v(c, &["GETRANGE", "empty", "-1", "-1"]), bulk(""));
        assert_eq!(e(c, &["GETRANGE", "k", "a", "1"]), NOT_INTEGER);
        assert_eq!(e(c, &["GETRANGE", "k", "0", "1.5"]), NOT_INTEGER);
        assert_eq!(
            e(c, &["GETRANGE", "k", "0"]),
            "ERR wrong number of arguments for 'getrange' command"
        );
    });
}

/// Redis 7 clamps a negative `end` below -len to 0 (a quirk kept on
/// purpose: redis/redis#12272 changed it and was reverted), so these
/// return the first byte.
#[test]
fn getrange_negative_end_below_minus_len_returns_first_byte_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(v(&mut c, &["SET", "r", "0123456789"]), Value::Okay);
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "r", "0", "-100"]),
        "0",
        "GETRANGE r 0 -100"
    );
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "r", "-100", "-99"]),
        "0",
        "GETRANGE r -100 -99"
    );
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "r", "-100", "-100"]),
        "0",
        "GETRANGE r -100 -100"
    );
}

#[test]
fn setrange_patches_and_pads() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "k", "Hello World"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["SETRANGE", "k", "6", "Redis"]), 11);
        assert_eq!(get(c, "k"), Some("Hello Redis".into()));
        assert_eq!(q::<i64>(c, &["SETRANGE", "k", "0", "J"]), 11);
        assert_eq!(get(c, "k"), Some("Jello Redis".into()));
        // Past the end: padded with zero bytes.
        assert_eq!(q::<i64>(c, &["SETRANGE", "k", "13", "!"]), 14);
        assert_eq!(q::<Vec<u8>>(c, &["GET", "k"]), b"Jello Redis\0\0!".to_vec());
        // New key: zero bytes up to the offset.
        assert_eq!(q::<i64>(c, &["SETRANGE", "new", "5", "Hi"]), 7);
        assert_eq!(q::<Vec<u8>>(c, &["GET", "new"]), b"\0\0\0\0\0Hi".to_vec());
        // Empty patch: length reply, nothing created.
        assert_eq!(q::<i64>(c, &["SETRANGE", "none", "10", ""]), 0);
        assert_eq!(q::<i64>(c, &["EXISTS", "none"]), 0);
        assert_eq!(q::<i64>(c, &["SETRANGE", "new", "100", ""]), 7);
        assert_eq!(q::<i64>(c, &["STRLEN", "new"]), 7);
        // SETRANGE keeps the TTL.
        assert_eq!(v(c, &["SET", "t", "abc", "EX", "100"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["SETRANGE", "t", "1", "X"]), 3);
        assert_eq!(get(c, "t"), Some("aXc".into()));
        assert_eq!(ttl(c, "t"), 100);
        // Errors
        assert_eq!(
            e(c, &["SETRANGE", "k", "-1", "x"]),
            "ERR offset is out of range"
        );
        assert_eq!(e(c, &["SETRANGE", "k", "abc", "x"]), NOT_INTEGER);
        assert_eq!(e(c, &["SETRANGE", "k", "536870911", "ab"]), TOO_BIG);
        assert_eq!(e(c, &["SETRANGE", "big", "536870912", "a"]), TOO_BIG);
        assert_eq!(q::<i64>(c, &["EXISTS", "big"]), 0);
        assert_eq!(
            e(c, &["SETRANGE", "k", "0"]),
            "ERR wrong number of arguments for 'setrange' command"
        );
    });
}

#[test]
fn incr_decr_family() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<i64>(c, &["INCR", "n"]), 1);
        assert_eq!(q::<i64>(c, &["INCR", "n"]), 2);
        assert_eq!(q::<i64>(c, &["INCRBY", "n", "10"]), 12);
        assert_eq!(q::<i64>(c, &["DECR", "n"]), 11);
        assert_eq!(q::<i64>(c, &["DECRBY", "n", "5"]), 6);
        assert_eq!(q::<i64>(c, &["INCRBY", "n", "-10"]), -4);
        assert_eq!(q::<i64>(c, &["DECRBY", "n", "-4"]), 0);
        assert_eq!(get(c, "n"), Some("0".into()));
        assert_eq!(q::<i64>(c, &["DECR", "d"]), -1);
        assert_eq!(q::<i64>(c, &["DECRBY", "d2", "3"]), -3);
        assert_eq!(q::<i64>(c, &["INCRBY", "i2", "7"]), 7);
        assert_eq!(get(c, "d"), Some("-1".into()));

        // INCR keeps the TTL.
        assert_eq!(v(c, &["SET", "t", "5", "EX", "100"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["INCR", "t"]), 6);
        assert_eq!(ttl(c, "t"), 100);

        // Not integers
        for bad in [
            "abc",
            "1.5",
            " 1",
            "1 ",
            "+1",
            "01",
            "",
            "99999999999999999999",
            "1e3",
        ] {
            assert_eq!(v(c, &["SET", "bad", bad]), Value::Okay);
            assert_eq!(e(c, &["INCR", "bad"]), NOT_INTEGER, "INCR on {bad:?}");
            assert_eq!(e(c, &["DECR", "bad"]), NOT_INTEGER, "DECR on {bad:?}");
            assert_eq!(
                e(c, &["INCRBY", "bad", "1"]),
                NOT_INTEGER,
                "INCRBY on {bad:?}"
            );
            assert_eq!(get(c, "bad"), Some(bad.into()));
        }
        assert_eq!(e(c, &["INCRBY", "n", "abc"]), NOT_INTEGER);
        assert_eq!(e(c, &["INCRBY", "n", "1.0"]), NOT_INTEGER);
        assert_eq!(e(c, &["DECRBY", "n", "x"]), NOT_INTEGER);
        assert_eq!(e(c, &["INCRBY", "n", "9223372036854775808"]), NOT_INTEGER);

        // Overflow at the i64 limits; the value stays.
        let max = i64::MAX.to_string();
        let min = i64::MIN.to_string();
        assert_eq!(v(c, &["SET", "big", &max]), Value::Okay);
        assert_eq!(e(c, &["INCR", "big"]), OVERFLOW);
        assert_eq!(e(c, &["INCRBY", "big", "1"]), OVERFLOW);
        assert_eq!(get(c, "big"), Some(max.clone()));
        assert_eq!(q::<i64>(c, &["DECR", "big"]), i64::MAX - 1);
        assert_eq!(q::<i64>(c, &["INCR", "big"]), i64::MAX);
        assert_eq!(v(c, &["SET", "small", &min]), Value::Okay);
        assert_eq!(e(c, &["DECR", "small"]), OVERFLOW);
        assert_eq!(e(c, &["DECRBY", "small", "1"]), OVERFLOW);
        assert_eq!(e(c, &["INCRBY", "small", "-1"]), OVERFLOW);
        assert_eq!(get(c, "small"), Some(min.clone()));
        assert_eq!(v(c, &["SET", "one", "1"]), Value::Okay);
        assert_eq!(e(c, &["INCRBY", "one", &max]), OVERFLOW);
        assert_eq!(
            q::<i64>(c, &["INCRBY", "one", &(i64::MAX - 1).to_string()]),
            i64::MAX
        );
        assert_eq!(q::<i64>(c, &["INCRBY", "zero", &min]), i64::MIN);
        // DECRBY i64::MIN cannot be negated.
        assert_eq!(
            e(c, &["DECRBY", "one", &min]),
            "ERR decrement would overflow"
        );
        assert_eq!(
            e(c, &["INCR"]),
            "ERR wrong number of arguments for 'incr' command"
        );
        assert_eq!(
            e(c, &["INCRBY", "n"]),
            "ERR wrong number of arguments for 'incrby' command"
        );
    });
}

#[test]
fn incrbyfloat_values_and_errors() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "10.5"]), "10.5");
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
        assert_eq!(get(c, "f"), Some("10.6".into()));
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "-5"]), "5.6");
        assert_eq!(v(c, &["SET", "e", "5.0e3"]), Value::Okay);
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "e", "200"]), "5200");
        assert_eq!(get(c, "e"), Some("5200".into()));
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "e", "2.0e2"]), "5400");
        assert_eq!(v(c, &["SET", "i", "10"]), Value::Okay);
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "i", "3"]), "13");
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "i", "-3.5"]), "9.5");
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "i", "0.5"]), "10");
        // The result is a plain integer again.
        assert_eq!(q::<i64>(c, &["INCR", "i"]), 11);
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "neg", "-1.25"]), "-1.25");
        // INCRBYFLOAT keeps the TTL.
        assert_eq!(v(c, &["SET", "t", "1", "EX", "100"]), Value::Okay);
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "t", "1.5"]), "2.5");
        assert_eq!(ttl(c, "t"), 100);
        // Errors
        assert_eq!(v(c, &["SET", "s", "abc"]), Value::Okay);
        assert_eq!(e(c, &["INCRBYFLOAT", "s", "1"]), NOT_FLOAT);
        assert_eq!(e(c, &["INCRBYFLOAT", "f", "abc"]), NOT_FLOAT);
        assert_eq!(e(c, &["INCRBYFLOAT", "f", ""]), NOT_FLOAT);
        assert_eq!(e(c, &["INCRBYFLOAT", "f", " 1"]), NOT_FLOAT);
        assert_eq!(e(c, &["INCRBYFLOAT", "f", "nan"]), NOT_FLOAT);
        assert_eq!(v(c, &["SET", "sp", "1 "]), Value::Okay);
        assert_eq!(e(c, &["INCRBYFLOAT", "sp", "1"]), NOT_FLOAT);
        assert_eq!(
            e(c, &["INCRBYFLOAT", "f", "+inf"]),
            "ERR increment would produce NaN or Infinity"
        );
        assert_eq!(get(c, "f"), Some("5.6".into()));
        // Redis reads both as C's strtold: hex floats, and values past an
        // f64's range that a long double holds (1e-400 adds as zero).
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "x", "0x10"]), "16");
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "x", "0x1p-2"]), "16.25");
        assert_eq!(v(c, &["SET", "hx", "0x1P3"]), Value::Okay);
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "hx", "1"]), "9");
        assert_eq!(q::<String>(c, &["INCRBYFLOAT", "tiny", "1e-400"]), "0");
        assert_eq!(e(c, &["INCRBYFLOAT", "x", "0x"]), NOT_FLOAT);
        assert_eq!(e(c, &["INCRBYFLOAT", "x", "1e"]), NOT_FLOAT);
        // strtold's text is at most 5 KiB in Redis.
        let long = format!("0.{}", "0".repeat(5 * 1024));
        assert_eq!(e(c, &["INCRBYFLOAT", "x", &long]), NOT_FLOAT);
        assert_eq!(
            e(c, &["INCRBYFLOAT", "f"]),
            "ERR wrong number of arguments for 'incrbyfloat' command"
        );
    });
}

/// Redis computes INCRBYFLOAT in long double and prints it with 17
/// significant digits, so decimal sums come out the way users type them.
#[test]
fn incrbyfloat_formats_decimal_sums_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(v(&mut c, &["SET", "f", "0.1"]), Value::Okay);
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.2"]),
        "0.3",
        "INCRBYFLOAT 0.1 + 0.2"
    );
    assert_eq!(v(&mut c, &["SET", "g", "1"]), Value::Okay);
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "g", "-1.1"]),
        "-0.1",
        "INCRBYFLOAT 1 + -1.1"
    );
}

/// Redis prints the long double result with `%.17Lf` and trims trailing
/// zeros, so a 16-significant-digit increment comes back whole.
#[test]
fn incrbyfloat_keeps_sixteen_significant_digits_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.1234567890123456"]),
        "0.1234567890123456",
        "INCRBYFLOAT missing 0.1234567890123456"
    );
}

#[test]
fn mget_mset_msetnx() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["MSET", "a", "1", "b", "2", "c", "3"]), Value::Okay);
        assert_eq!(
            v(c, &["MGET", "a", "b", "missing", "c", "a"]),
            Value::Array(vec![bulk("1"), bulk("2"), Value::Nil, bulk("3"), bulk("1")])
        );
        assert_eq!(v(c, &["MGET", "missing"]), Value::Array(vec![Value::Nil]));
        // MSET overwrites and clears TTLs; the last duplicate wins.
        assert_eq!(v(c, &["SET", "t", "x", "EX", "100"]), Value::Okay);
        assert_eq!(v(c, &["MSET", "t", "y", "a", "10", "a", "11"]), Value::Okay);
        assert_eq!(get(c, "t"), Some("y".into()));
        assert_eq!(ttl(c, "t"), -1);
        assert_eq!(get(c, "a"), Some("11".into()));
        let arity = "ERR wrong number of arguments for 'mset' command";
        assert_eq!(e(c, &["MSET", "a", "1", "b"]), arity);
        assert_eq!(e(c, &["MSET", "a"]), arity);
        assert_eq!(e(c, &["MSET"]), arity);
        assert_eq!(get(c, "b"), Some("2".into()));
        assert_eq!(
            e(c, &["MGET"]),
            "ERR wrong number of arguments for 'mget' command"
        );

        // MSETNX: all or nothing.
        assert_eq!(q::<i64>(c, &["MSETNX", "n1", "1", "n2", "2"]), 1);
        assert_eq!(get(c, "n1"), Some("1".into()));
        assert_eq!(get(c, "n2"), Some("2".into()));
        assert_eq!(q::<i64>(c, &["MSETNX", "n3", "3", "n1", "x", "n4", "4"]), 0);
        assert_eq!(q::<i64>(c, &["EXISTS", "n3", "n4"]), 0);
        assert_eq!(get(c, "n1"), Some("1".into()));
        assert_eq!(
            e(c, &["MSETNX", "n5", "1", "n6"]),
            "ERR wrong number of arguments for 'msetnx' command"
        );
        assert_eq!(
            e(c, &["MSETNX", "n5"]),
            "ERR wrong number of arguments for 'msetnx' command"
        );
        assert_eq!(q::<i64>(c, &["EXISTS", "n5", "n6"]), 0);
    });
}

#[test]
fn wrongtype_errors_on_string_commands() {
    for_each_shard_count(|_, c| {
        let Some(how) = make_non_string(c, "other") else {
            // LPUSH, SADD and HSET all answer "not implemented yet" in this
            // build (lists/sets/hashes are being rewritten): no key of another
            // type can be created, so the WRONGTYPE assertions are skipped.
            eprintln!(
                "SKIPPED wrongtype_errors_on_string_commands: no LPUSH/SADD/HSET implemented"
            );
            return;
        };
        let t: String = q(c, &["TYPE", "other"]);
        assert!(
            ["list", "set", "hash"].contains(&t.as_str()),
            "TYPE after {how}: {t}"
        );
        for args in [
            vec!["GET", "other"],
            vec!["INCR", "other"],
            vec!["DECR", "other"],
            vec!["INCRBY", "other", "2"],
            vec!["DECRBY", "other", "2"],
            vec!["INCRBYFLOAT", "other", "1.5"],
            vec!["APPEND", "other", "x"],
            vec!["STRLEN", "other"],
            vec!["GETRANGE", "other", "0", "-1"],
            vec!["SETRANGE", "other", "0", "x"],
            vec!["GETSET", "other", "x"],
            vec!["GETDEL", "other"],
            vec!["GETEX", "other"],
            vec!["GETEX", "other", "EX", "10"],
            vec!["SET", "other", "x", "GET"],
        ] {
            assert_eq!(e(c, &args), WRONGTYPE, "{args:?} on a {t} made by {how}");
        }
        // Nothing above changed the key.
        assert_eq!(q::<String>(c, &["TYPE", "other"]), t);
        assert_eq!(ttl(c, "other"), -1);
        // MGET answers nil for other types.
        assert_eq!(v(c, &["SET", "s", "1"]), Value::Okay);
        assert_eq!(
            v(c, &["MGET", "s", "other"]),
            Value::Array(vec![bulk("1"), Value::Nil])
        );
        // SETNX/MSETNX see the key as existing.
        assert_eq!(q::<i64>(c, &["SETNX", "other", "x"]), 0);
        assert_eq!(q::<i64>(c, &["MSETNX", "fresh", "1", "other", "x"]), 0);
        assert_eq!(q::<String>(c, &["TYPE", "other"]), t);
        // Plain SET replaces any type.
        assert_eq!(v(c, &["SET", "other", "now-a-string"]), Value::Okay);
        assert_eq!(q::<String>(c, &["TYPE", "other"]), "string");
        assert_eq!(get(c, "other"), Some("now-a-string".into()));
    });
}

// ===================================================================== keys

#[test]
fn del_unlink_exists_touch_type() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["MSET", "a", "1", "b", "2", "c", "3"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["EXISTS", "a"]), 1);
        assert_eq!(q::<i64>(c, &["EXISTS", "a", "a", "missing", "b"]), 3);
        assert_eq!(q::<i64>(c, &["TOUCH", "a", "a", "missing"]), 2);
        assert_eq!(q::<String>(c, &["TYPE", "a"]), "string");
        assert_eq!(q::<String>(c, &["TYPE", "missing"]), "none");
        assert_eq!(q::<i64>(c, &["DEL", "a", "a", "missing"]), 1);
        assert_eq!(q::<i64>(c, &["EXISTS", "a"]), 0);
        assert_eq!(q::<String>(c, &["TYPE", "a"]), "none");
        assert_eq!(q::<i64>(c, &["UNLINK", "b", "c", "b"]), 2);
        assert_eq!(q::<i64>(c, &["EXISTS", "b", "c"]), 0);
        assert_eq!(q::<i64>(c, &["DEL", "missing"]), 0);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
        assert_eq!(
            e(c, &["DEL"]),
            "ERR wrong number of arguments for 'del' command"
        );
        assert_eq!(
            e(c, &["EXISTS"]),
            "ERR wrong number of arguments for 'exists' command"
        );
        assert_eq!(
            e(c, &["TYPE"]),
            "ERR wrong number of arguments for 'type' command"
        );
        // Expired keys do not exist.
        assert_eq!(v(c, &["SET", "gone", "v", "PX", "30"]), Value::Okay);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(q::<i64>(c, &["EXISTS", "gone"]), 0);
        assert_eq!(q::<String>(c, &["TYPE", "gone"]), "none");
        assert_eq!(q::<i64>(c, &["DEL", "gone"]), 0);
    });
}

#[test]
fn ttl_pttl_persist_expiretime() {
    for_each_shard_count(|_, c| {
        assert_eq!(ttl(c, "missing"), -2);
        assert_eq!(pttl(c, "missing"), -2);
        assert_eq!(q::<i64>(c, &["EXPIRETIME", "missing"]), -2);
        assert_eq!(q::<i64>(c, &["PEXPIRETIME", "missing"]), -2);
        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(ttl(c, "k"), -1);
        assert_eq!(pttl(c, "k"), -1);
        assert_eq!(q::<i64>(c, &["EXPIRETIME", "k"]), -1);
        assert_eq!(q::<i64>(c, &["PEXPIRETIME", "k"]), -1);
        assert_eq!(q::<i64>(c, &["PERSIST", "k"]), 0);
        assert_eq!(q::<i64>(c, &["PERSIST", "missing"]), 0);

        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100"]), 1);
        assert_eq!(ttl(c, "k"), 100);
        let p = pttl(c, "k");
        assert!((99_000..=100_000).contains(&p), "PTTL: {p}");
        let t = q::<i64>(c, &["EXPIRETIME", "k"]);
        let now = (now_ms() / 1000) as i64;
        assert!(
            (now + 98..=now + 101).contains(&t),
            "EXPIRETIME {t} vs now {now}"
        );
        let pt = q::<i64>(c, &["PEXPIRETIME", "k"]);
        assert!(
            (pt - t * 1000).abs() <= 1000,
            "PEXPIRETIME {pt} vs EXPIRETIME {t}"
        );

        assert_eq!(q::<i64>(c, &["PERSIST", "k"]), 1);
        assert_eq!(ttl(c, "k"), -1);
        assert_eq!(q::<i64>(c, &["PERSIST", "k"]), 0);
        assert_eq!(get(c, "k"), Some("v".into()));

        // TTL rounds to the nearest second.
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "1700"]), 1);
        assert_eq!(ttl(c, "k"), 2);
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "1200"]), 1);
        assert_eq!(ttl(c, "k"), 1);

        assert_eq!(q::<i64>(c, &["PEXPIREAT", "k", "4102444800123"]), 1);
        assert_eq!(q::<i64>(c, &["PEXPIRETIME", "k"]), 4102444800123);
        assert_eq!(q::<i64>(c, &["EXPIRETIME", "k"]), 4102444800);
        assert_eq!(q::<i64>(c, &["EXPIREAT", "k", "4102444801"]), 1);
        assert_eq!(q::<i64>(c, &["EXPIRETIME", "k"]), 4102444801);
        assert_eq!(q::<i64>(c, &["PEXPIRETIME", "k"]), 4102444801000);
        assert_eq!(
            e(c, &["TTL"]),
            "ERR wrong number of arguments for 'ttl' command"
        );
        assert_eq!(
            e(c, &["PERSIST", "a", "b"]),
            "ERR wrong number of arguments for 'persist' command"
        );
    });
}

/// Redis' EXPIRETIME is `(expire_ms + 500) / 1000`: it rounds, like TTL.
#[test]
fn expiretime_rounds_to_nearest_second_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "k", "4102444800600"]), 1);
    assert_eq!(
        q::<i64>(&mut c, &["EXPIRETIME", "k"]),
        4102444801,
        "EXPIRETIME after PEXPIREAT ...600"
    );
}

#[test]
fn expire_family_sets_and_removes() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<i64>(c, &["EXPIRE", "missing", "100"]), 0);
        assert_eq!(q::<i64>(c, &["PEXPIRE", "missing", "100"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIREAT", "missing", "4102444800"]), 0);
        assert_eq!(q::<i64>(c, &["PEXPIREAT", "missing", "4102444800000"]), 0);
        assert_eq!(q::<i64>(c, &["EXISTS", "missing"]), 0);

        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "50000"]), 1);
        let p = pttl(c, "k");
        assert!(
            (49_000..=50_000).contains(&p),
            "PTTL after PEXPIRE 50000: {p}"
        );
        let at = now_ms() / 1000 + 500;
        assert_eq!(q::<i64>(c, &["EXPIREAT", "k", &at.to_string()]), 1);
        assert_eq!(q::<u64>(c, &["EXPIRETIME", "k"]), at);
        let pat = now_ms() + 600_000;
        assert_eq!(q::<i64>(c, &["PEXPIREAT", "k", &pat.to_string()]), 1);
        assert_eq!(q::<u64>(c, &["PEXPIRETIME", "k"]), pat);

        // Zero, negative or past deadlines delete the key and answer 1.
        for args in [
            ["EXPIRE", "k", "0"],
            ["EXPIRE", "k", "-10"],
            ["PEXPIRE", "k", "-1"],
            ["EXPIREAT", "k", "1"],
            ["PEXPIREAT", "k", "1000"],
        ] {
            assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
            assert_eq!(q::<i64>(c, &args), 1, "{args:?}");
            assert_eq!(q::<i64>(c, &["EXISTS", "k"]), 0, "{args:?}");
            assert_eq!(get(c, "k"), None, "{args:?}");
        }

        // A short PEXPIRE really expires.
        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "80"]), 1);
        std::thread::sleep(Duration::from_millis(130));
        assert_eq!(get(c, "k"), None);
        assert_eq!(ttl(c, "k"), -2);

        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        assert_eq!(e(c, &["EXPIRE", "k", "abc"]), NOT_INTEGER);
        assert_eq!(e(c, &["EXPIRE", "k", "1.5"]), NOT_INTEGER);
        assert_eq!(
            e(c, &["EXPIRE", "k", "9223372036854775807"]),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            e(c, &["PEXPIRE", "k", "9223372036854775807"]),
            "ERR invalid expire time in 'pexpire' command"
        );
        assert_eq!(
            e(c, &["EXPIREAT", "k", "9223372036854775807"]),
            "ERR invalid expire time in 'expireat' command"
        );
        assert_eq!(
            e(c, &["EXPIRE", "k"]),
            "ERR wrong number of arguments for 'expire' command"
        );
        assert_eq!(ttl(c, "k"), -1);
    });
}

#[test]
fn expire_nx_xx_gt_lt() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        // No TTL yet: XX and GT do nothing (no TTL counts as infinite), LT sets.
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "XX"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "GT"]), 0);
        assert_eq!(ttl(c, "k"), -1);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "LT"]), 1);
        assert_eq!(ttl(c, "k"), 100);
        assert_eq!(q::<i64>(c, &["PERSIST", "k"]), 1);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "NX"]), 1);
        assert_eq!(ttl(c, "k"), 100);
        // With a TTL: NX does nothing, XX sets.
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "200", "NX"]), 0);
        assert_eq!(ttl(c, "k"), 100);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "150", "XX"]), 1);
        assert_eq!(ttl(c, "k"), 150);
        // GT only lengthens, LT only shortens.
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "GT"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "149", "GT"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "300", "GT"]), 1);
        assert_eq!(ttl(c, "k"), 300);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "400", "LT"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "50", "lt"]), 1);
        assert_eq!(ttl(c, "k"), 50);
        // XX combines with GT / LT.
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "60", "XX", "GT"]), 1);
        assert_eq!(ttl(c, "k"), 60);
        assert_eq!(q::<i64>(c, &["EXPIRE", "k", "70", "XX", "LT"]), 0);
        assert_eq!(ttl(c, "k"), 60);
        // Same options on the other forms.
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "30000", "GT"]), 0);
        assert_eq!(q::<i64>(c, &["PEXPIRE", "k", "30000", "LT"]), 1);
        assert_eq!(ttl(c, "k"), 30);
        let far = (now_ms() / 1000 + 1000).to_string();
        assert_eq!(q::<i64>(c, &["EXPIREAT", "k", &far, "NX"]), 0);
        assert_eq!(q::<i64>(c, &["EXPIREAT", "k", &far, "GT"]), 1);
        assert_eq!(q::<String>(c, &["EXPIRETIME", "k"]), far);
        let pfar = (now_ms() + 2_000_000).to_string();
        assert_eq!(q::<i64>(c, &["PEXPIREAT", "k", &pfar, "XX"]), 1);
        assert_eq!(q::<String>(c, &["PEXPIRETIME", "k"]), pfar);
        // A missing key answers 0 whatever the options.
        for opt in ["NX", "XX", "GT", "LT"] {
            assert_eq!(q::<i64>(c, &["EXPIRE", "missing", "10", opt]), 0, "{opt}");
        }
    });
}

#[test]
fn expire_incompatible_options_errors() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "k", "v"]), Value::Okay);
        let nx = "ERR NX and XX, GT or LT options at the same time are not compatible";
        let gtlt = "ERR GT and LT options at the same time are not compatible";
        for cmd_name in ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"] {
            let t = "4102444800";
            assert_eq!(e(c, &[cmd_name, "k", t, "NX", "XX"]), nx, "{cmd_name}");
            assert_eq!(e(c, &[cmd_name, "k", t, "NX", "GT"]), nx, "{cmd_name}");
            assert_eq!(e(c, &[cmd_name, "k", t, "LT", "NX"]), nx, "{cmd_name}");
            assert_eq!(e(c, &[cmd_name, "k", t, "GT", "LT"]), gtlt, "{cmd_name}");
            assert_eq!(
                e(c, &[cmd_name, "k", t, "FOO"]),
                "ERR Unsupported option FOO",
                "{cmd_name}"
            );
        }
        // The key is untouched by failed calls.
        assert_eq!(ttl(c, "k"), -1);
    });
}

/// Redis parses EXPIRE's options before the number, so a bad option wins
/// over a bad number.
#[test]
fn expire_reports_bad_option_before_bad_number_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(
        e(&mut c, &["EXPIRE", "k", "abc", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        e(&mut c, &["EXPIRE", "k", "abc", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
}

#[test]
fn keys_glob_patterns() {
    for_each_shard_count(|_, c| {
        let all = [
            "hello", "hallo", "hxllo", "hllo", "heeeello", "hbllo", "hillo", "h*llo", "other",
        ];
        for k in all {
            assert_eq!(v(c, &["SET", k, "1"]), Value::Okay);
        }
        let keys = |c: &mut Connection, pattern: &str| -> Vec<String> {
            let mut k: Vec<String> = q(c, &["KEYS", pattern]);
            k.sort();
            k
        };
        let sorted = |v: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(keys(c, "*"), sorted(&all));
        assert_eq!(
            keys(c, "h?llo"),
            sorted(&["hello", "hallo", "hxllo", "hbllo", "hillo", "h*llo"])
        );
        assert_eq!(
            keys(c, "h*llo"),
            sorted(&[
                "hello", "hallo", "hxllo", "hllo", "heeeello", "hbllo", "hillo", "h*llo"
            ])
        );
        assert_eq!(keys(c, "h[ae]llo"), sorted(&["hello", "hallo"]));
        assert_eq!(
            keys(c, "h[^e]llo"),
            sorted(&["hallo", "hxllo", "hbllo", "hillo", "h*llo"])
        );
        assert_eq!(keys(c, "h[a-b]llo"), sorted(&["hallo", "hbllo"]));
        assert_eq!(keys(c, "h\\*llo"), sorted(&["h*llo"]));
        assert_eq!(keys(c, "hello"), sorted(&["hello"]));
        assert_eq!(keys(c, "nomatch*"), Vec::<String>::new());
        assert_eq!(keys(c, "*o*"), sorted(&all));
        assert_eq!(keys(c, "o*"), sorted(&["other"]));
        assert_eq!(
            e(c, &["KEYS"]),
            "ERR wrong number of arguments for 'keys' command"
        );
    });
}

/// Keys whose TTL has passed are gone for every command, including the
/// ones that walk the keyspace (Redis checks the deadline on each key it
/// returns), even when nothing touched the shard since the deadline.
#[test]
fn keys_scan_randomkey_skip_expired_keys() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "live", "1"]), Value::Okay);
        for i in 0..20 {
            assert_eq!(
                v(c, &["SET", &format!("dead:{i}"), "1", "PX", "20"]),
                Value::Okay
            );
        }
        std::thread::sleep(Duration::from_millis(60));
        let keys: Vec<String> = q(c, &["KEYS", "*"]);
        assert_eq!(
            keys,
            vec!["live".to_string()],
            "KEYS * after the TTLs passed"
        );
        assert_eq!(
            scan_all(c, &[]),
            vec!["live".to_string()],
            "SCAN after the TTLs passed"
        );
        assert_eq!(
            scan_all(c, &["MATCH", "dead:*"]),
            Vec::<String>::new(),
            "SCAN MATCH dead:*"
        );
        for _ in 0..20 {
            assert_eq!(
                q::<String>(c, &["RANDOMKEY"]),
                "live",
                "RANDOMKEY returned an expired key"
            );
        }
    });
}

#[test]
fn randomkey_on_only_expired_keys_is_nil() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["SET", "dead", "1", "PX", "20"]), Value::Okay);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(v(c, &["RANDOMKEY"]), Value::Nil);
    });
}

#[test]
fn scan_match_count_type() {
    for_each_shard_count(|_, c| {
        assert_eq!(
            v(c, &["SCAN", "0"]),
            Value::Array(vec![bulk("0"), Value::Array(vec![])])
        );
        let mut expected: HashSet<String> = HashSet::new();
        for i in 0..60 {
            let k = format!("user:{i}");
            assert_eq!(v(c, &["SET", &k, "v"]), Value::Okay);
            expected.insert(k);
        }
        for i in 0..15 {
            assert_eq!(v(c, &["SET", &format!("other:{i}"), "v"]), Value::Okay);
        }
        let got = scan_all(c, &[]);
        assert_eq!(got.len(), 75);
        assert_eq!(
            got.iter().collect::<HashSet<_>>().len(),
            75,
            "SCAN returned a key twice"
        );

        let users = scan_all(c, &["MATCH", "user:*"]);
        assert_eq!(
            users.len(),
            60,
            "MATCH user:* returned duplicates or missed keys"
        );
        assert_eq!(users.into_iter().collect::<HashSet<_>>(), expected);

        let users = scan_all(c, &["MATCH", "user:*", "COUNT", "3"]);
        assert_eq!(users.into_iter().collect::<HashSet<_>>(), expected);
        let ones = scan_all(c, &["COUNT", "1000", "MATCH", "user:1?"]);
        let want: HashSet<String> = (10..20).map(|i| format!("user:{i}")).collect();
        assert_eq!(ones.into_iter().collect::<HashSet<_>>(), want);

        let strings = scan_all(c, &["TYPE", "string"]);
        assert_eq!(strings.len(), 75);
        assert_eq!(
            scan_all(c, &["TYPE", "STRING", "MATCH", "other:*"]).len(),
            15
        );
        assert!(scan_all(c, &["TYPE", "list"]).is_empty());
        assert!(scan_all(c, &["TYPE", "hash"]).is_empty());
        if make_non_string(c, "user:agg").is_some() {
            let t: String = q(c, &["TYPE", "user:agg"]);
            assert_eq!(scan_all(c, &["TYPE", &t]), vec!["user:agg".to_string()]);
            assert_eq!(
                scan_all(c, &["TYPE", "string", "MATCH", "user:*"]).len(),
                60
            );
        }

        assert_eq!(e(c, &["SCAN", "abc"]), "ERR invalid cursor");
        assert_eq!(e(c, &["SCAN", "0", "COUNT", "0"]), SYNTAX);
        assert_eq!(e(c, &["SCAN", "0", "COUNT", "x"]), NOT_INTEGER);
        assert_eq!(e(c, &["SCAN", "0", "MATCH"]), SYNTAX);
        assert_eq!(e(c, &["SCAN", "0", "FOO", "bar"]), SYNTAX);
        assert_eq!(
            e(c, &["SCAN"]),
            "ERR wrong number of arguments for 'scan' command"
        );
    });
}

#[test]
fn randomkey_empty_and_filled() {
    for_each_shard_count(|_, c| {
        assert_eq!(v(c, &["RANDOMKEY"]), Value::Nil);
        let keys: HashSet<String> = (0..20).map(|i| format!("r{i}")).collect();
        for k in &keys {
            assert_eq!(v(c, &["SET", k, "v"]), Value::Okay);
        }
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let k: String = q(c, &["RANDOMKEY"]);
            assert!(keys.contains(&k), "RANDOMKEY returned unknown key {k}");
            seen.insert(k);
        }
        assert!(seen.len() > 1, "RANDOMKEY always returned the same key");
        assert_eq!(v(c, &["FLUSHALL"]), Value::Okay);
        assert_eq!(v(c, &["RANDOMKEY"]), Value::Nil);
        assert_eq!(
            e(c, &["RANDOMKEY", "x"]),
            "ERR wrong number of arguments for 'randomkey' command"
        );
    });
}

#[test]
fn rename_and_renamenx_same_shard_semantics() {
    for_each_shard_count(|_, c| {
        assert_eq!(e(c, &["RENAME", "missing", "x"]), NO_SUCH_KEY);
        assert_eq!(e(c, &["RENAMENX", "missing", "x"]), NO_SUCH_KEY);
        assert_eq!(e(c, &["RENAME", "missing", "missing"]), NO_SUCH_KEY);
        assert_eq!(q::<i64>(c, &["EXISTS", "x"]), 0);

        assert_eq!(v(c, &["SET", "a", "1", "EX", "100"]), Value::Okay);
        assert_eq!(v(c, &["RENAME", "a", "b"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["EXISTS", "a"]), 0);
        assert_eq!(get(c, "b"), Some("1".into()));
        assert_eq!(ttl(c, "b"), 100);

        // Same name: OK / 0, value and TTL kept.
        assert_eq!(v(c, &["RENAME", "b", "b"]), Value::Okay);
        assert_eq!(get(c, "b"), Some("1".into()));
        assert_eq!(ttl(c, "b"), 100);
        assert_eq!(q::<i64>(c, &["RENAMENX", "b", "b"]), 0);
        assert_eq!(get(c, "b"), Some("1".into()));

        // Overwriting a destination with a TTL: the source's (absent) TTL wins.
        assert_eq!(v(c, &["SET", "c", "2"]), Value::Okay);
        assert_eq!(v(c, &["SET", "d", "3", "EX", "50"]), Value::Okay);
        assert_eq!(v(c, &["RENAME", "c", "d"]), Value::Okay);
        assert_eq!(get(c, "d"), Some("2".into()));
        assert_eq!(ttl(c, "d"), -1);
        assert_eq!(q::<i64>(c, &["EXISTS", "c"]), 0);

        // RENAMENX
        assert_eq!(v(c, &["SET", "e", "4"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["RENAMENX", "e", "d"]), 0);
        assert_eq!(get(c, "e"), Some("4".into()));
        assert_eq!(get(c, "d"), Some("2".into()));
        assert_eq!(q::<i64>(c, &["RENAMENX", "e", "f"]), 1);
        assert_eq!(q::<i64>(c, &["EXISTS", "e"]), 0);
        assert_eq!(get(c, "f"), Some("4".into()));

        // An expired source is missing.
        assert_eq!(v(c, &["SET", "g", "v", "PX", "30"]), Value::Okay);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(e(c, &["RENAME", "g", "h"]), NO_SUCH_KEY);
        assert_eq!(
            e(c, &["RENAME", "a"]),
            "ERR wrong number of arguments for 'rename' command"
        );
    });
}

// ============================================================ across shards

fn two_shard_keys(n: usize) -> (Vec<String>, Vec<String>) {
    let mut per = keys_on_each_shard("k:", 2, n);
    let b = per.pop().unwrap();
    let a = per.pop().unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(shard_of(x, 2), 0);
        assert_eq!(shard_of(y, 2), 1);
        assert_ne!(shard_of(x, 2), shard_of(y, 2));
    }
    (a, b)
}

#[test]
fn cross_shard_multi_key_commands() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let (a, b) = two_shard_keys(3);
    let (a0, a1, a2) = (a[0].as_str(), a[1].as_str(), a[2].as_str());
    let (b0, b1, b2) = (b[0].as_str(), b[1].as_str(), b[2].as_str());

    assert_eq!(
        v(c, &["MSET", a0, "1", b0, "2", a1, "3", b1, "4"]),
        Value::Okay
    );
    assert_eq!(
        v(c, &["MGET", b0, a0, "nope", b1, a1, b0]),
        Value::Array(vec![
            bulk("2"),
            bulk("1"),
            Value::Nil,
            bulk("4"),
            bulk("3"),
            bulk("2")
        ])
    );
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 4);
    assert_eq!(q::<i64>(c, &["EXISTS", a0, b0, a0, b2, a2]), 3);
    assert_eq!(q::<i64>(c, &["TOUCH", a0, b0, b0, a2]), 3);
    // MSET with an odd count across shards is still an arity error and
    // writes nothing.
    assert_eq!(
        e(c, &["MSET", a2, "x", b2]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(q::<i64>(c, &["EXISTS", a2, b2]), 0);
    // MSET across shards drops TTLs on both shards.
    assert_eq!(v(c, &["SET", a2, "t", "EX", "100"]), Value::Okay);
    assert_eq!(v(c, &["SET", b2, "t", "EX", "100"]), Value::Okay);
    assert_eq!(v(c, &["MSET", a2, "x", b2, "y"]), Value::Okay);
    assert_eq!(ttl(c, a2), -1);
    assert_eq!(ttl(c, b2), -1);
    assert_eq!(q::<i64>(c, &["DEL", a2, b2, a2, b2, "nope"]), 2);
    assert_eq!(q::<i64>(c, &["DEL", a0, b0, b0]), 2);
    assert_eq!(q::<i64>(c, &["UNLINK", b1, a1, a1, "nope"]), 2);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
    assert_eq!(q::<i64>(c, &["EXISTS", a0, b0, a1, b1]), 0);
    assert_eq!(
        v(c, &["MGET", a0, b0]),
        Value::Array(vec![Value::Nil, Value::Nil])
    );
}

#[test]
fn cross_shard_rename_renamenx() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let (a, b) = two_shard_keys(4);

    // RENAME moves value and TTL, source gone.
    assert_eq!(v(c, &["SET", &a[0], "hello", "EX", "100"]), Value::Okay);
    assert_eq!(v(c, &["RENAME", &a[0], &b[0]]), Value::Okay);
    assert_eq!(q::<i64>(c, &["EXISTS", &a[0]]), 0);
    assert_eq!(get(c, &b[0]), Some("hello".into()));
    assert_eq!(ttl(c, &b[0]), 100);
    // and back the other way
    assert_eq!(v(c, &["RENAME", &b[0], &a[1]]), Value::Okay);
    assert_eq!(q::<i64>(c, &["EXISTS", &b[0]]), 0);
    assert_eq!(get(c, &a[1]), Some("hello".into()));
    assert_eq!(ttl(c, &a[1]), 100);
    // PEXPIRETIME carried over exactly.
    let pat: i64 = q(c, &["PEXPIRETIME", &a[1]]);
    assert_eq!(v(c, &["RENAME", &a[1], &b[1]]), Value::Okay);
    assert_eq!(q::<i64>(c, &["PEXPIRETIME", &b[1]]), pat);

    // Overwrite a destination with a TTL from a source without one.
    assert_eq!(v(c, &["SET", &a[2], "plain"]), Value::Okay);
    assert_eq!(v(c, &["RENAME", &a[2], &b[1]]), Value::Okay);
    assert_eq!(get(c, &b[1]), Some("plain".into()));
    assert_eq!(ttl(c, &b[1]), -1);
    assert_eq!(q::<i64>(c, &["EXISTS", &a[2]]), 0);

    // Missing source
    assert_eq!(e(c, &["RENAME", &a[3], &b[3]]), NO_SUCH_KEY);
    assert_eq!(e(c, &["RENAMENX", &a[3], &b[3]]), NO_SUCH_KEY);
    assert_eq!(q::<i64>(c, &["EXISTS", &b[3]]), 0);

    // RENAMENX: existing destination -> 0 and nothing moves.
    assert_eq!(v(c, &["SET", &a[3], "src", "EX", "200"]), Value::Okay);
    assert_eq!(q::<i64>(c, &["RENAMENX", &a[3], &b[1]]), 0);
    assert_eq!(get(c, &a[3]), Some("src".into()));
    assert_eq!(get(c, &b[1]), Some("plain".into()));
    // free destination -> 1, value and TTL moved.
    assert_eq!(q::<i64>(c, &["RENAMENX", &a[3], &b[2]]), 1);
    assert_eq!(q::<i64>(c, &["EXISTS", &a[3]]), 0);
    assert_eq!(get(c, &b[2]), Some("src".into()));
    assert_eq!(ttl(c, &b[2]), 200);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 2);

    // Other types move too, when some non-string type is implemented.
    if let Some(how) = make_non_string(c, &a[0]) {
        let t: String = q(c, &["TYPE", &a[0]]);
        assert_eq!(v(c, &["RENAME", &a[0], &b[0]]), Value::Okay, "after {how}");
        assert_eq!(q::<String>(c, &["TYPE", &b[0]]), t);
        assert_eq!(q::<String>(c, &["TYPE", &a[0]]), "none");
    }
}

#[test]
fn cross_shard_rename_of_expired_source_is_no_such_key() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let (a, b) = two_shard_keys(2);
    for (src, dst) in [(&a[0], &b[0]), (&b[1], &a[1])] {
        assert_eq!(v(c, &["SET", src, "v", "PX", "20"]), Value::Okay);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            e(c, &["RENAME", src, dst]),
            NO_SUCH_KEY,
            "RENAME {src} -> {dst} after the TTL passed"
        );
        assert_eq!(
            q::<i64>(c, &["EXISTS", dst]),
            0,
            "{dst} created from an expired key"
        );
        assert_eq!(e(c, &["RENAMENX", src, dst]), NO_SUCH_KEY);
    }
}

#[test]
fn cross_shard_msetnx_is_all_or_nothing() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let (a, b) = two_shard_keys(3);
    assert_eq!(q::<i64>(c, &["MSETNX", &a[0], "1", &b[0], "2"]), 1);
    assert_eq!(get(c, &a[0]), Some("1".into()));
    assert_eq!(get(c, &b[0]), Some("2".into()));
    // One existing key on the other shard blocks every write.
    assert_eq!(
        q::<i64>(
            c,
            &["MSETNX", &a[1], "x", &a[2], "y", &b[0], "z", &b[1], "w"]
        ),
        0
    );
    assert_eq!(q::<i64>(c, &["EXISTS", &a[1], &a[2], &b[1]]), 0);
    assert_eq!(get(c, &b[0]), Some("2".into()));
    assert_eq!(q::<i64>(c, &["MSETNX", &b[1], "x", &a[0], "y"]), 0);
    assert_eq!(q::<i64>(c, &["EXISTS", &b[1]]), 0);
    assert_eq!(get(c, &a[0]), Some("1".into()));
    // All new across both shards
    assert_eq!(
        q::<i64>(
            c,
            &["MSETNX", &a[1], "x", &b[1], "y", &a[2], "z", &b[2], "w"]
        ),
        1
    );
    assert_eq!(
        v(c, &["MGET", &a[1], &b[1], &a[2], &b[2]]),
        Value::Array(vec![bulk("x"), bulk("y"), bulk("z"), bulk("w")])
    );
    assert_eq!(
        e(c, &["MSETNX", &a[0], "1", &b[0]]),
        "ERR wrong number of arguments for 'msetnx' command"
    );
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 6);
}

#[test]
fn cross_shard_scan_visits_every_key_once() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let mut pipe = redis::pipe();
    let mut expected = HashSet::new();
    for i in 0..1000 {
        let k = format!("scan:{i}");
        pipe.cmd("SET").arg(&k).arg(i).ignore();
        expected.insert(k);
    }
    let () = pipe.query(c).unwrap();
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 1000);
    let on0 = expected.iter().filter(|k| shard_of(k, 2) == 0).count();
    assert!(
        on0 > 0 && on0 < 1000,
        "keys should spread over both shards ({on0} on shard 0)"
    );

    for extra in [
        &[][..],
        &["COUNT", "7"][..],
        &["COUNT", "1"][..],
        &["COUNT", "5000"][..],
    ] {
        let got = scan_all(c, extra);
        let unique: HashSet<String> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            unique.len(),
            "SCAN {extra:?} returned duplicates"
        );
        assert_eq!(unique, expected, "SCAN {extra:?} missed keys");
    }
    let tens = scan_all(c, &["MATCH", "scan:*0", "COUNT", "7"]);
    let want: HashSet<String> = (0..1000)
        .filter(|i| i % 10 == 0)
        .map(|i| format!("scan:{i}"))
        .collect();
    assert_eq!(tens.len(), want.len(), "SCAN MATCH returned duplicates");
    assert_eq!(tens.into_iter().collect::<HashSet<_>>(), want);
    // KEYS sees them all too.
    let all: Vec<String> = q(c, &["KEYS", "scan:*"]);
    assert_eq!(all.len(), 1000);
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), expected);
}

#[test]
fn cross_shard_randomkey_reaches_both_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let c = &mut c;
    let (a, b) = two_shard_keys(5);
    for k in a.iter().chain(&b) {
        assert_eq!(v(c, &["SET", k, "v"]), Value::Okay);
    }
    let mut shards = HashSet::new();
    for _ in 0..200 {
        let k: String = q(c, &["RANDOMKEY"]);
        assert!(a.contains(&k) || b.contains(&k), "unknown key {k}");
        shards.insert(shard_of(&k, 2));
    }
    assert_eq!(shards.len(), 2, "RANDOMKEY only ever picked one shard");
}

// ================================================== connection and server

#[test]
fn ping_echo_select() {
    for_each_shard_count(|s, c| {
        assert_eq!(v(c, &["PING"]), Value::SimpleString("PONG".into()));
        assert_eq!(v(c, &["PING", "hello world"]), bulk("hello world"));
        assert_eq!(
            e(c, &["PING", "a", "b"]),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(v(c, &["ECHO", "hi there"]), bulk("hi there"));
        assert_eq!(v(c, &["ECHO", ""]), bulk(""));
        assert_eq!(
            e(c, &["ECHO"]),
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(
            e(c, &["ECHO", "a", "b"]),
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(v(c, &["SELECT", "0"]), Value::Okay);
        assert_eq!(e(c, &["SELECT", "1"]), "ERR DB index is out of range");
        assert_eq!(e(c, &["SELECT", "-1"]), "ERR DB index is out of range");
        assert_eq!(e(c, &["SELECT", "abc"]), NOT_INTEGER);

        let mut raw = Raw::new(s);
        assert_eq!(raw.call(&["PING"]), "+PONG\r\n");
        assert_eq!(raw.call(&["PING", "x y"]), "$3\r\nx y\r\n");
        assert_eq!(raw.call(&["ECHO", "e"]), "$1\r\ne\r\n");
        assert_eq!(raw.call(&["SELECT", "0"]), "+OK\r\n");
    });
}

#[test]
fn hello_replies_resp2_only() {
    for_each_shard_count(|_, c| {
        for args in [&["HELLO"][..], &["HELLO", "2"][..]] {
            let reply: Vec<Value> = q(c, args);
            assert_eq!(reply.len(), 14, "{args:?}: {reply:?}");
            let field = |name: &str| -> Value {
                let i = reply
                    .iter()
                    .position(|x| *x == bulk(name))
                    .unwrap_or_else(|| panic!("no {name} in {reply:?}"));
                reply[i + 1].clone()
            };
            assert_eq!(field("server"), bulk("redis"));
            assert_eq!(field("proto"), Value::Int(2));
            assert_eq!(field("mode"), bulk("standalone"));
            assert_eq!(field("role"), bulk("master"));
            assert_eq!(field("modules"), Value::Array(vec![]));
            let Value::BulkString(version) = field("version") else {
                panic!("version not a bulk string")
            };
            assert!(
                version.starts_with(b"7."),
                "version {:?}",
                String::from_utf8_lossy(&version)
            );
            let id: i64 = q(c, &["CLIENT", "ID"]);
            assert_eq!(field("id"), Value::Int(id));
        }
        let err = e(c, &["HELLO", "3"]);
        assert!(err.starts_with("NOPROTO"), "HELLO 3: {err}");
        let err = e(c, &["HELLO", "4"]);
        assert!(err.starts_with("NOPROTO"), "HELLO 4: {err}");
        let err = e(c, &["HELLO", "1"]);
        assert!(err.starts_with("NOPROTO"), "HELLO 1: {err}");
        // HELLO 2 SETNAME names the connection.
        let _: Vec<Value> = q(c, &["HELLO", "2", "SETNAME", "via-hello"]);
        assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]), "via-hello");
        // The connection still works after the errors.
        assert_eq!(v(c, &["PING"]), Value::SimpleString("PONG".into()));
    });
}

/// Redis answers a non-numeric HELLO version with an ERR, not NOPROTO.
#[test]
fn hello_non_numeric_version_error_like_redis7() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(
        e(&mut c, &["HELLO", "abc"]),
        "ERR Protocol version is not an integer or out of range"
    );
}

#[test]
fn client_id_setname_getname() {
    for_each_shard_count(|s, c| {
        let id: i64 = q(c, &["CLIENT", "ID"]);
        assert!(id > 0);
        let mut other = s.client();
        let other_id: i64 = q(&mut other, &["CLIENT", "ID"]);
        assert_ne!(id, other_id);
        assert_eq!(q::<i64>(c, &["client", "id"]), id);

        assert_eq!(v(c, &["CLIENT", "GETNAME"]), Value::Nil);
        assert_eq!(v(c, &["CLIENT", "SETNAME", "worker-1"]), Value::Okay);
        assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]), "worker-1");
        // Names are per connection.
        assert_eq!(v(&mut other, &["CLIENT", "GETNAME"]), Value::Nil);
        let bad = "ERR Client names cannot contain spaces, newlines or special characters.";
        assert_eq!(e(c, &["CLIENT", "SETNAME", "with space"]), bad);
        assert_eq!(e(c, &["CLIENT", "SETNAME", "new\nline"]), bad);
        assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]), "worker-1");
        // An empty name clears it.
        assert_eq!(v(c, &["CLIENT", "SETNAME", ""]), Value::Okay);
        assert_eq!(v(c, &["CLIENT", "GETNAME"]), Value::Nil);
        assert_eq!(
            e(c, &["CLIENT", "SETNAME"]),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            e(c, &["CLIENT"]),
            "ERR wrong number of arguments for 'client' command"
        );
        let err = e(c, &["CLIENT", "NOSUCH"]);
        assert!(err.starts_with("ERR unknown subcommand 'NOSUCH'"), "{err}");
    });
}

#[test]
fn command_count_info_docs() {
    for_each_shard_count(|_, c| {
        let count: i64 = q(c, &["COMMAND", "COUNT"]);
        assert!(count > 100, "COMMAND COUNT {count}");
        let all: Vec<Value> = q(c, &["COMMAND"]);
        assert_eq!(all.len() as i64, count);

        let info: Vec<Value> = q(c, &["COMMAND", "INFO", "get"]);
        assert_eq!(info.len(), 1);
        let Value::Array(get) = &info[0] else {
            panic!("COMMAND INFO get: {info:?}")
        };
        assert_eq!(get.len(), 10, "{get:?}");
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], Value::Int(2));
        assert_eq!(&get[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);

        let info: Vec<Value> = q(c, &["COMMAND", "INFO", "SET", "nosuchcmd", "mset"]);
        assert_eq!(info.len(), 3);
        let Value::Array(set) = &info[0] else {
            panic!("{info:?}")
        };
        assert_eq!(set[0], bulk("set"));
        assert_eq!(set[1], Value::Int(-3));
        assert_eq!(info[1], Value::Nil);
        let Value::Array(mset) = &info[2] else {
            panic!("{info:?}")
        };
        assert_eq!(mset[0], bulk("mset"));
        assert_eq!(mset[1], Value::Int(-3));
        assert_eq!(&mset[3..6], &[Value::Int(1), Value::Int(-1), Value::Int(2)]);

        // COMMAND DOCS answers (redis-cli asks for it on startup).
        for args in [&["COMMAND", "DOCS"][..], &["COMMAND", "DOCS", "get"][..]] {
            match v(c, args) {
                Value::Array(_) | Value::Map(_) => {}
                other => panic!("{args:?}: {other:?}"),
            }
        }
        let err = e(c, &["COMMAND", "NOSUCH"]);
        assert!(err.starts_with("ERR unknown subcommand 'NOSUCH'"), "{err}");
    });
}

#[test]
fn config_get() {
    for_each_shard_count(|s, c| {
        let save: Vec<String> = q(c, &["CONFIG", "GET", "save"]);
        assert_eq!(save.len(), 2, "{save:?}");
        assert_eq!(save[0], "save");
        assert_eq!(
            q::<Vec<String>>(c, &["CONFIG", "GET", "maxmemory"]),
            vec!["maxmemory", "0"]
        );
        assert_eq!(
            q::<Vec<String>>(c, &["config", "get", "MAXMEMORY"]),
            vec!["maxmemory", "0"]
        );
        assert_eq!(
            q::<Vec<String>>(c, &["CONFIG", "GET", "port"]),
            vec!["port".to_string(), s.port.to_string()]
        );
        assert_eq!(
            q::<Vec<String>>(c, &["CONFIG", "GET", "databases"]),
            vec!["databases", "1"]
        );
        assert_eq!(
            q::<Vec<String>>(c, &["CONFIG", "GET", "no-such-param"]),
            Vec::<String>::new()
        );

        let all: Vec<String> = q(c, &["CONFIG", "GET", "*"]);
        assert!(
            all.len() >= 4 && all.len().is_multiple_of(2),
            "CONFIG GET * is not pairs: {all:?}"
        );
        let names: Vec<&String> = all.iter().step_by(2).collect();
        let unique: HashSet<&&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate names in {all:?}");
        for want in ["save", "maxmemory", "appendonly", "databases"] {
            assert!(
                names.iter().any(|n| *n == want),
                "CONFIG GET * lacks {want}: {all:?}"
            );
        }
        // Several patterns, no duplicates.
        let two: Vec<String> = q(c, &["CONFIG", "GET", "maxmemory", "maxmemory*"]);
        assert_eq!(two.len() % 2, 0);
        assert_eq!(
            two.iter().step_by(2).filter(|n| *n == "maxmemory").count(),
            1,
            "{two:?}"
        );
        assert_eq!(
            e(c, &["CONFIG", "GET"]),
            "ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            e(c, &["CONFIG"]),
            "ERR wrong number of arguments for 'config' command"
        );
    });
}

#[test]
fn dbsize_flushdb_flushall() {
    for_each_shard_count(|_, c| {
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
        for i in 0..50 {
            assert_eq!(v(c, &["SET", &format!("f{i}"), "v"]), Value::Okay);
        }
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 50);
        assert_eq!(v(c, &["FLUSHDB"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
        assert_eq!(get(c, "f1"), None);
        assert_eq!(v(c, &["SET", "a", "1"]), Value::Okay);
        assert_eq!(v(c, &["SET", "b", "1", "EX", "100"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 2);
        assert_eq!(v(c, &["FLUSHALL"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
        assert_eq!(q::<Vec<String>>(c, &["KEYS", "*"]), Vec::<String>::new());
        assert_eq!(v(c, &["SET", "a", "1"]), Value::Okay);
        assert_eq!(v(c, &["FLUSHDB", "ASYNC"]), Value::Okay);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
        assert_eq!(v(c, &["FLUSHALL", "SYNC"]), Value::Okay);
        assert_eq!(e(c, &["FLUSHDB", "FOO"]), SYNTAX);
        assert_eq!(
            e(c, &["DBSIZE", "x"]),
            "ERR wrong number of arguments for 'dbsize' command"
        );
    });
}

#[test]
fn time_reply() {
    for_each_shard_count(|_, c| {
        let (secs, micros): (String, String) = q(c, &["TIME"]);
        let secs: u64 = secs.parse().unwrap();
        let micros: u64 = micros.parse().unwrap();
        let now = now_ms() / 1000;
        assert!(secs.abs_diff(now) <= 2, "TIME {secs} vs {now}");
        assert!(micros < 1_000_000);
        assert_eq!(
            e(c, &["TIME", "x"]),
            "ERR wrong number of arguments for 'time' command"
        );
    });
}

#[test]
fn info_sections() {
    for_each_shard_count(|s, c| {
        let info: String = q(c, &["INFO"]);
        for want in [
            "# Server",
            "redis_version:",
            "# Clients",
            "# Memory",
            "# Stats",
            "# Keyspace",
        ] {
            assert!(info.contains(want), "INFO lacks {want:?}:\n{info}");
        }
        assert!(info.contains(&format!("tcp_port:{}\r\n", s.port)), "{info}");
        assert!(info.contains("\r\n"), "INFO lines should end in CRLF");
        assert!(
            !info.contains("db0:"),
            "empty db listed in keyspace:\n{info}"
        );
        assert_eq!(v(c, &["SET", "a", "1"]), Value::Okay);
        assert_eq!(v(c, &["SET", "b", "1", "EX", "100"]), Value::Okay);
        let info: String = q(c, &["INFO", "keyspace"]);
        assert!(info.starts_with("# Keyspace"), "{info}");
        assert!(
            !info.contains("# Server"),
            "INFO keyspace returned other sections:\n{info}"
        );
        assert!(info.contains("db0:keys=2,expires=1,avg_ttl="), "{info}");
        let server: String = q(c, &["INFO", "server"]);
        assert!(server.contains("redis_version:7."), "{server}");
        assert!(!server.contains("# Keyspace"), "{server}");
    });
}

#[test]
fn quit_replies_ok_then_closes() {
    for_each_shard_count(|s, _| {
        let mut raw = s.raw();
        // QUIT then PING in one write: only +OK comes back, then EOF.
        let got = raw_exchange(&mut raw, b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n");
        raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            raw.read(&mut buf).unwrap(),
            0,
            "connection still open after QUIT"
        );
        // Inline QUIT as well.
        let mut raw = s.raw();
        let got = raw_exchange(&mut raw, b"QUIT\r\n");
        assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n");
        // The server keeps serving others.
        let mut c = s.client();
        assert_eq!(v(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
    });
}

#[test]
fn unknown_command_and_arity_errors_exact_bytes() {
    for_each_shard_count(|s, _| {
        let mut raw = Raw::new(s);
        assert_eq!(
            raw.call(&["foo", "a", "b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            raw.call(&["FOO"]),
            "-ERR unknown command 'FOO', with args beginning with: \r\n"
        );
        assert_eq!(
            raw.call(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            raw.call(&["gEt"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            raw.call(&["SET", "k"]),
            "-ERR wrong number of arguments for 'set' command\r\n"
        );
        assert_eq!(
            raw.call(&["MSET", "a", "1", "b"]),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        // The connection is still usable.
        assert_eq!(raw.call(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(raw.call(&["GET", "k"]), "$1\r\nv\r\n");
        assert_eq!(raw.call(&["GET", "nope"]), "$-1\r\n");
        assert_eq!(raw.call(&["MGET", "k", "nope"]), "*2\r\n$1\r\nv\r\n$-1\r\n");
        assert_eq!(raw.call(&["INCR", "n"]), ":1\r\n");
        assert_eq!(raw.call(&["TYPE", "k"]), "+string\r\n");
        assert_eq!(
            raw.call(&["SCAN", "0", "MATCH", "zzz*"]),
            "*2\r\n$1\r\n0\r\n*0\r\n"
        );
        // Through redis-rs the text is the same.
        let mut c = s.client();
        assert_eq!(
            e(&mut c, &["foo", "a", "b"]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
    });
}

/// Redis 7 answers an unknown name in COMMAND INFO with a null bulk
/// (`addReplyNull`, "$-1" in RESP2), not a null array.
#[test]
fn command_info_unknown_name_is_null_bulk_like_redis7() {
    let s = Server::start(1);
    let mut raw = Raw::new(&s);
    assert_eq!(raw.call(&["COMMAND", "INFO", "nosuch"]), "*1\r\n$-1\r\n");
}

/// Redis 7 lists the arguments of an unknown command until the list
/// reaches 128 characters, not a fixed number of arguments.
#[test]
fn unknown_command_lists_args_up_to_128_chars_like_redis7() {
    let s = Server::start(1);
    let mut raw = Raw::new(&s);
    let args: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let mut call = vec!["nosuch"];
    call.extend(args.iter().map(String::as_str));
    let listed: String = args.iter().map(|a| format!("'{a}' ")).collect();
    assert_eq!(
        raw.call(&call),
        format!("-ERR unknown command 'nosuch', with args beginning with: {listed}\r\n")
    );
}

#[test]
fn inline_commands() {
    for_each_shard_count(|s, _| {
        let mut raw = Raw::new(s);
        raw.send(b"PING\r\n");
        assert_eq!(raw.reply(), "+PONG\r\n");
        raw.send(b"SET a b\r\n");
        assert_eq!(raw.reply(), "+OK\r\n");
        raw.send(b"GET a\r\n");
        assert_eq!(raw.reply(), "$1\r\nb\r\n");
        // Several inline commands in one write, extra spaces, bare LF.
        raw.send(b"set  c   d\r\nget c\nPING hi\r\nEXISTS a c zz\r\n");
        assert_eq!(raw.reply(), "+OK\r\n");
        assert_eq!(raw.reply(), "$1\r\nd\r\n");
        assert_eq!(raw.reply(), "$2\r\nhi\r\n");
        assert_eq!(raw.reply(), ":2\r\n");
        // Blank lines are ignored.
        raw.send(b"\r\n\r\nPING\r\n");
        assert_eq!(raw.reply(), "+PONG\r\n");
        // Inline and multibulk mix on one connection.
        raw.send(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nGET c\r\n");
        assert_eq!(raw.reply(), "$1\r\nb\r\n");
        assert_eq!(raw.reply(), "$1\r\nd\r\n");
        raw.send(b"GET\r\n");
        assert_eq!(
            raw.reply(),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        raw.send(b"foo bar\r\n");
        assert_eq!(
            raw.reply(),
            "-ERR unknown command 'foo', with args beginning with: 'bar' \r\n"
        );
    });
}

/// Redis splits inline commands with sdssplitargs: double and single
/// quotes group words, with escapes inside double quotes.
#[test]
fn inline_quoted_arguments_like_redis7() {
    let s = Server::start(1);
    let mut raw = Raw::new(&s);
    raw.send(b"SET q \"hello world\"\r\n");
    assert_eq!(raw.reply(), "+OK\r\n", "SET q \"hello world\" (inline)");
    raw.send(b"GET q\r\n");
    assert_eq!(raw.reply(), "$11\r\nhello world\r\n");
    raw.send(b"SET q2 'a b'\r\n");
    assert_eq!(raw.reply(), "+OK\r\n");
    raw.send(b"GET q2\r\n");
    assert_eq!(raw.reply(), "$3\r\na b\r\n");
    raw.send(b"ECHO \"x\\ny\"\r\n");
    assert_eq!(raw.reply(), "$3\r\nx\ny\r\n");
}

/// A pipeline is parsed ahead to prefetch its keys (issue 15), and the
/// main loop reuses that parse: frames parsed ahead, an inline command
/// (which ends the look-ahead), an empty `*0` frame, keys on both shards
/// and a frame split over two writes must all answer as one at a time.
#[test]
fn pipelined_frames_parsed_ahead_answer_in_order() {
    let s = Server::start(2);
    let mut raw = s.raw();
    let mut first = Vec::new();
    for i in 0..20 {
        first.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$6\r\nkey:{i:02}\r\n$1\r\n{}\r\n",
                i % 10
            )
            .as_bytes(),
        );
    }
    first.extend_from_slice(b"*0\r\n*2\r\n$3\r\nGET\r\n$6\r\nkey:03\r\nGET key:04\r\n");
    first.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$6\r\nkey:05\r\n*2\r\n$3\r\nGET\r\n$6\r\nke");
    let mut expected = "+OK\r\n".repeat(20);
    expected.push_str("$1\r\n3\r\n$1\r\n4\r\n:6\r\n");
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&mut raw, &first)),
        expected
    );
    let rest = b"y:05\r\n*2\r\n$3\r\nGET\r\n$6\r\nkey:19\r\n*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n";
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&mut raw, rest)),
        "$1\r\n6\r\n$1\r\n9\r\n$-1\r\n"
    );
}
