//! Issue 13's miscellany end to end on a 2-worker server: LCS (keys on one
//! shard and on two), HRANDFIELD, CLIENT REPLY, SELECT / SWAPDB / MOVE and
//! OBJECT ENCODING / HELP. Replies are compared as raw RESP, byte for byte,
//! with what redis-server 7.0.15 answered to the same commands.

mod common;

use std::net::TcpStream;

use common::{Server, keys_on_each_shard, raw_exchange};

/// The RESP of a pipeline of commands given as space-separated words.
fn resp(cmds: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        let words: Vec<&str> = c.split(' ').collect();
        out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    }
    out
}

fn exchange(s: &mut TcpStream, cmds: &[&str]) -> String {
    String::from_utf8(raw_exchange(s, &resp(cmds))).unwrap()
}

#[test]
fn lcs_on_one_shard_and_across_shards() {
    let s = Server::start(2);
    let mut c = s.raw();
    let keys = keys_on_each_shard("lcs:", 2, 2);
    // Same shard, then each order across the two shards.
    for (k1, k2) in [
        (&keys[0][0], &keys[0][1]),
        (&keys[0][0], &keys[1][0]),
        (&keys[1][0], &keys[0][0]),
    ] {
        let set1 = format!("SET {k1} ohmytext");
        let set2 = format!("SET {k2} mynewtext");
        assert_eq!(exchange(&mut c, &[&set1, &set2]), "+OK\r\n+OK\r\n");
        let plain = format!("LCS {k1} {k2}");
        let len = format!("LCS {k1} {k2} LEN");
        let idx = format!("LCS {k1} {k2} IDX");
        let min = format!("LCS {k1} {k2} IDX MINMATCHLEN 4 WITHMATCHLEN");
        let both = format!("LCS {k1} {k2} LEN IDX");
        let bad = format!("LCS {k1} {k2} MINMATCHLEN x");
        let missing = format!("LCS {k1} lcs:none");
        assert_eq!(
            exchange(&mut c, &[&plain, &len, &idx, &min, &both, &bad, &missing]),
            "$6\r\nmytext\r\n:6\r\n\
             *4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
             *2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n\
             *4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
             $3\r\nlen\r\n:6\r\n\
             -ERR If you want both the length and indexes, please just use IDX.\r\n\
             -ERR value is not an integer or out of range\r\n\
             $0\r\n\r\n",
            "{k1} {k2}"
        );
        // The type check comes first, before the options.
        let hset = format!("HSET {k2} f v");
        let del = format!("DEL {k2}");
        let wrong = format!("LCS {k1} {k2} BOGUS");
        assert_eq!(
            exchange(&mut c, &[&del, &hset, &wrong, &del]),
            ":1\r\n:1\r\n-ERR The specified keys must contain string values\r\n:1\r\n"
        );
    }
    // Redis' bound on the (n+1)(m+1) u32 table: proto-max-bulk-len.
    let (k1, k2) = (&keys[0][0], &keys[1][0]);
    let big = "a".repeat(12_000);
    let set1 = format!("SET {k1} {big}");
    let set2 = format!("SET {k2} {big}");
    let lcs = format!("LCS {k1} {k2} LEN");
    assert_eq!(
        exchange(&mut c, &[&set1, &set2, &lcs]),
        "+OK\r\n+OK\r\n\
         -ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
    );
    // On one shard as well; the options are still checked first, and a
    // big string against a missing key fits (as in redis-server 7.0.15).
    let same = format!("LCS {k1} {k1} LEN");
    let bogus = format!("LCS {k1} {k1} BOGUS");
    let missing = format!("LCS {k1} no-such-key LEN");
    assert_eq!(
        exchange(&mut c, &[&same, &bogus, &missing]),
        "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n\
         -ERR syntax error\r\n:0\r\n"
    );
}

#[test]
fn hrandfield_replies_as_redis() {
    let s = Server::start(2);
    let mut c = s.raw();
    assert_eq!(
        exchange(
            &mut c,
            &[
                "HSET h a 1 b 2 c 3",
                "HRANDFIELD h x",
                "HRANDFIELD h 1 foo",
                "HRANDFIELD h 1 WITHVALUES x",
                "HRANDFIELD h -9223372036854775808",
                "HRANDFIELD h 9223372036854775807 WITHVALUES",
                "HRANDFIELD h 5 WITHVALUES",
                "HRANDFIELD h 0",
                "HRANDFIELD nokey",
                "HRANDFIELD nokey 2",
                "SET str v",
                "HRANDFIELD str 0",
                "HRANDFIELD str",
            ]
        ),
        ":3\r\n-ERR value is not an integer or out of range\r\n-ERR syntax error\r\n\
         -ERR syntax error\r\n\
         -ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n\
         -ERR value is out of range\r\n\
         *6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n\
         *0\r\n$-1\r\n*0\r\n+OK\r\n\
         -WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
         -WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    // Random picks: distinct for a positive count, repeated for a negative
    // one, every pick a field of the hash with its own value.
    let mut conn = s.client();
    for _ in 0..20 {
        let two: Vec<String> = common::q(&mut conn, &["HRANDFIELD", "h", "2"]);
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let one: String = common::q(&mut conn, &["HRANDFIELD", "h"]);
        assert!(["a", "b", "c"].contains(&one.as_str()));
    }
    let many: Vec<String> = common::q(&mut conn, &["HRANDFIELD", "h", "-50", "WITHVALUES"]);
    assert_eq!(many.len(), 100);
    for pair in many.chunks(2) {
        let want = match pair[0].as_str() {
            "a" => "1",
            "b" => "2",
            "c" => "3",
            other => panic!("not a field: {other}"),
        };
        assert_eq!(pair[1], want);
    }
    // A hash past the packed encoding samples from its table.
    let mut big = vec!["HSET".to_string(), "big".to_string()];
    for i in 0..600 {
        big.push(format!("f{i}"));
        big.push(i.to_string());
    }
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let _: i64 = common::q(&mut conn, &big);
    let picks: Vec<String> = common::q(&mut conn, &["HRANDFIELD", "big", "300"]);
    let mut unique = picks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 300);
}

#[test]
fn client_reply_off_on_skip() {
    let s = Server::start(2);
    let mut c = s.raw();
    // Keys on both shards so dropped replies come from remote batches too.
    let keys = keys_on_each_shard("reply:", 2, 1);
    let (x, y) = (&keys[0][0], &keys[1][0]);
    let cmds = [
        "CLIENT REPLY OFF".to_string(),
        format!("SET {x} 1"),
        format!("SET {y} 1"),
        format!("GET {x}"),
        "CLIENT REPLY foo".into(),
        "CLIENT REPLY SKIP".into(),
        "CLIENT REPLY ON".into(),
        format!("GET {x}"),
        "CLIENT REPLY SKIP".into(),
        format!("GET {y}"),
        format!("INCR {y}"),
        "CLIENT REPLY SKIP".into(),
        "CLIENT REPLY SKIP".into(),
        format!("GET {x}"),
        format!("GET {y}"),
        "CLIENT REPLY SKIP".into(),
        "CLIENT REPLY ON".into(),
        "PING".into(),
        "CLIENT REPLY SKIP".into(),
        "CLIENT REPLY OFF".into(),
        "PING".into(),
        "CLIENT REPLY ON".into(),
        "PING".into(),
        "CLIENT REPLY".into(),
    ];
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    // redis-server 7.0.15's answer to the same pipeline.
    assert_eq!(
        exchange(&mut c, &cmds),
        "+OK\r\n$1\r\n1\r\n:2\r\n$1\r\n2\r\n+OK\r\n+PONG\r\n+OK\r\n+PONG\r\n\
         -ERR wrong number of arguments for 'client|reply' command\r\n"
    );
    // Sent one at a time, too.
    for (cmd, want) in [
        ("CLIENT REPLY OFF", ""),
        ("PING", ""),
        ("CLIENT REPLY ON", "+OK\r\n"),
        ("PING", "+PONG\r\n"),
    ] {
        assert_eq!(exchange(&mut c, &[cmd]), want, "{cmd}");
    }
}

#[test]
fn one_database_and_object_help() {
    let s = Server::start(2);
    let mut c = s.raw();
    assert_eq!(
        exchange(
            &mut c,
            &[
                "SELECT 0",
                "SELECT 1",
                "SELECT x",
                "SELECT -1",
                "SWAPDB 0 0",
                "SWAPDB 0 1",
                "SWAPDB x 0",
                "SWAPDB 0 x",
                "SET k v",
                "MOVE k 0",
                "MOVE k 1",
                "MOVE k x",
                "MOVE nokey 1",
            ]
        ),
        "+OK\r\n-ERR DB index is out of range\r\n\
         -ERR value is not an integer or out of range\r\n-ERR DB index is out of range\r\n\
         +OK\r\n-ERR DB index is out of range\r\n-ERR invalid first DB index\r\n\
         -ERR invalid second DB index\r\n+OK\r\n\
         -ERR source and destination objects are the same\r\n-ERR DB index is out of range\r\n\
         -ERR value is not an integer or out of range\r\n-ERR DB index is out of range\r\n"
    );
    let help = exchange(&mut c, &["OBJECT HELP"]);
    assert!(help.starts_with("*15\r\n+OBJECT <subcommand>"), "{help}");
    assert!(
        help.ends_with("+HELP\r\n+    Prints this help.\r\n"),
        "{help}"
    );
}

#[test]
fn object_encoding_names_of_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.raw();
    let long = "x".repeat(45);
    let l44 = "x".repeat(44);
    let set_long = format!("SET s3 {long}");
    let set_44 = format!("SET s4 {l44}");
    assert_eq!(
        exchange(
            &mut c,
            &[
                "SET s1 12345",
                "SET s2 abc",
                &set_long,
                &set_44,
                "RPUSH l a",
                "HSET h a 1",
                "SADD si 1 2",
                "OBJECT ENCODING s1",
                "OBJECT ENCODING s2",
                "OBJECT ENCODING s3",
                "OBJECT ENCODING s4",
                "OBJECT ENCODING l",
                "OBJECT ENCODING h",
                "OBJECT ENCODING si",
                "OBJECT ENCODING nokey",
            ]
        ),
        "+OK\r\n+OK\r\n+OK\r\n+OK\r\n:1\r\n:1\r\n:2\r\n\
         $3\r\nint\r\n$6\r\nembstr\r\n$3\r\nraw\r\n$6\r\nembstr\r\n$9\r\nquicklist\r\n\
         $8\r\nlistpack\r\n$6\r\nintset\r\n$-1\r\n"
    );
}
