//! Set commands end to end, including SINTER/SUNION/SDIFF[STORE] with keys
//! on one shard and spread over shards.

mod common;

use std::collections::BTreeSet;

use common::{Server, keys_on_each_shard};
use redis::Connection;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Runs a command whose reply is an array of members, as a sorted set.
fn members(c: &mut Connection, cmd: &str, args: &[&str]) -> BTreeSet<String> {
    let v: Vec<String> = redis::cmd(cmd)
        .arg(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    let unique: BTreeSet<String> = v.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        v.len(),
        "{cmd} {args:?} repeated a member: {v:?}"
    );
    unique
}

fn int(c: &mut Connection, cmd: &str, args: &[&str]) -> i64 {
    redis::cmd(cmd)
        .arg(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

/// The error line the server sent, e.g. "ERR syntax error".
fn error(c: &mut Connection, cmd: &str, args: &[&str]) -> String {
    let e = redis::cmd(cmd)
        .arg(args)
        .query::<redis::Value>(c)
        .expect_err(&format!("{cmd} {args:?} must fail"));
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn sadd_srem_and_reads() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(int(&mut c, "SADD", &["s", "a", "b", "c", "a"]), 3);
    assert_eq!(int(&mut c, "SADD", &["s", "c", "d"]), 1);
    assert_eq!(int(&mut c, "SCARD", &["s"]), 4);
    assert_eq!(
        members(&mut c, "SMEMBERS", &["s"]),
        set(&["a", "b", "c", "d"])
    );
    let t: String = redis::cmd("TYPE").arg("s").query(&mut c).unwrap();
    assert_eq!(t, "set");
    assert_eq!(int(&mut c, "SISMEMBER", &["s", "a"]), 1);
    assert_eq!(int(&mut c, "SISMEMBER", &["s", "z"]), 0);
    assert_eq!(int(&mut c, "SISMEMBER", &["missing", "a"]), 0);
    let flags: Vec<i64> = redis::cmd("SMISMEMBER")
        .arg(&["s", "a", "z", "d", "a"])
        .query(&mut c)
        .unwrap();
    assert_eq!(flags, [1, 0, 1, 1]);
    let flags: Vec<i64> = redis::cmd("SMISMEMBER")
        .arg(&["missing", "a", "b"])
        .query(&mut c)
        .unwrap();
    assert_eq!(flags, [0, 0]);
    assert_eq!(int(&mut c, "SCARD", &["missing"]), 0);
    assert!(members(&mut c, "SMEMBERS", &["missing"]).is_empty());

    assert_eq!(int(&mut c, "SREM", &["s", "a", "z", "a"]), 1);
    assert_eq!(int(&mut c, "SREM", &["missing", "a"]), 0);
    assert_eq!(members(&mut c, "SMEMBERS", &["s"]), set(&["b", "c", "d"]));
    // Binary-safe members.
    let bin: &[u8] = b"\x00\xff\r\n";
    assert_eq!(
        redis::cmd("SADD")
            .arg("s")
            .arg(bin)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("SISMEMBER")
            .arg("s")
            .arg(bin)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    // Removing the last member deletes the key.
    assert_eq!(
        redis::cmd("SREM")
            .arg("s")
            .arg(&["b", "c", "d"])
            .arg(bin)
            .query::<i64>(&mut c)
            .unwrap(),
        4
    );
    assert_eq!(int(&mut c, "EXISTS", &["s"]), 0);

    assert!(error(&mut c, "SADD", &["s"]).starts_with("ERR wrong number of arguments"));
}

#[test]
fn every_command_refuses_a_string_key() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = redis::cmd("SET").arg("str").arg("v").query(&mut c).unwrap();
    let calls: &[(&str, &[&str])] = &[
        ("SADD", &["str", "a"]),
        ("SREM", &["str", "a"]),
        ("SMEMBERS", &["str"]),
        ("SISMEMBER", &["str", "a"]),
        ("SMISMEMBER", &["str", "a", "b"]),
        ("SCARD", &["str"]),
        ("SPOP", &["str"]),
        ("SPOP", &["str", "2"]),
        ("SPOP", &["str", "0"]),
        ("SRANDMEMBER", &["str"]),
        ("SRANDMEMBER", &["str", "-2"]),
        ("SSCAN", &["str", "0"]),
        ("SINTER", &["str"]),
        ("SUNION", &["missing", "str"]),
        ("SDIFF", &["missing", "str"]),
        ("SINTERSTORE", &["dst", "str"]),
    ];
    for (cmd, args) in calls {
        assert_eq!(error(&mut c, cmd, args), WRONGTYPE, "{cmd} {args:?}");
    }
    let v: String = redis::cmd("GET").arg("str").query(&mut c).unwrap();
    assert_eq!(v, "v");
    assert_eq!(int(&mut c, "EXISTS", &["dst"]), 0);
}

#[test]
fn spop_removes_what_it_returns() {
    let s = Server::start(2);
    let mut c = s.client();
    let nil: Option<String> = redis::cmd("SPOP").arg("missing").query(&mut c).unwrap();
    assert_eq!(nil, None);
    assert!(members(&mut c, "SPOP", &["missing", "3"]).is_empty());

    let all: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    redis::cmd("SADD")
        .arg("s")
        .arg(&all)
        .query::<i64>(&mut c)
        .unwrap();
    let mut popped = BTreeSet::new();
    let one: String = redis::cmd("SPOP").arg("s").query(&mut c).unwrap();
    popped.insert(one);
    let three = members(&mut c, "SPOP", &["s", "3"]);
    assert_eq!(three.len(), 3);
    popped.extend(three);
    assert_eq!(popped.len(), 4);
    assert_eq!(int(&mut c, "SCARD", &["s"]), 6);
    assert!(members(&mut c, "SPOP", &["s", "0"]).is_empty());
    let left = members(&mut c, "SMEMBERS", &["s"]);
    assert!(left.is_disjoint(&popped));
    // A count past the size takes everything and deletes the key.
    assert_eq!(members(&mut c, "SPOP", &["s", "100"]), left);
    popped.extend(left);
    assert_eq!(popped, all.iter().cloned().collect());
    assert_eq!(int(&mut c, "EXISTS", &["s"]), 0);

    int(&mut c, "SADD", &["s", "a"]);
    assert_eq!(
        error(&mut c, "SPOP", &["s", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        error(&mut c, "SPOP", &["s", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(error(&mut c, "SPOP", &["s", "1", "2"]), "ERR syntax error");
    assert_eq!(
        error(&mut c, "SPOP", &["missing", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(int(&mut c, "SCARD", &["s"]), 1);
}

#[test]
fn srandmember_samples_without_removing() {
    let s = Server::start(2);
    let mut c = s.client();
    let nil: Option<String> = redis::cmd("SRANDMEMBER")
        .arg("missing")
        .query(&mut c)
        .unwrap();
    assert_eq!(nil, None);
    assert!(members(&mut c, "SRANDMEMBER", &["missing", "5"]).is_empty());
    let empty: Vec<String> = redis::cmd("SRANDMEMBER")
        .arg(&["missing", "-5"])
        .query(&mut c)
        .unwrap();
    assert!(empty.is_empty());

    let all = set(&["a", "b", "c", "d", "e"]);
    redis::cmd("SADD")
        .arg("s")
        .arg(all.iter().collect::<Vec<_>>())
        .query::<i64>(&mut c)
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let m: String = redis::cmd("SRANDMEMBER").arg("s").query(&mut c).unwrap();
        assert!(all.contains(&m));
        seen.insert(m);
    }
    assert_eq!(seen, all, "200 draws should reach every one of 5 members");
    for _ in 0..20 {
        let three = members(&mut c, "SRANDMEMBER", &["s", "3"]);
        assert_eq!(three.len(), 3);
        assert!(three.is_subset(&all));
    }
    assert_eq!(members(&mut c, "SRANDMEMBER", &["s", "5"]), all);
    assert_eq!(members(&mut c, "SRANDMEMBER", &["s", "50"]), all);
    assert!(members(&mut c, "SRANDMEMBER", &["s", "0"]).is_empty());
    let repeated: Vec<String> = redis::cmd("SRANDMEMBER")
        .arg(&["s", "-12"])
        .query(&mut c)
        .unwrap();
    assert_eq!(repeated.len(), 12);
    assert!(repeated.iter().all(|m| all.contains(m)));
    assert_eq!(int(&mut c, "SCARD", &["s"]), 5);

    assert_eq!(
        error(&mut c, "SRANDMEMBER", &["s", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        error(&mut c, "SRANDMEMBER", &["s", "1.5"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&mut c, "SRANDMEMBER", &["s", "1", "2"]),
        "ERR syntax error"
    );
}

#[test]
fn sscan_walks_every_member_once() {
    let s = Server::start(2);
    let mut c = s.client();
    // Past set-max-listpack-entries (128): a table, scanned in pages (a
    // packed set answers in one page, tests/encodings.rs).
    let all: BTreeSet<String> = (0..200).map(|i| format!("m{i}")).collect();
    redis::cmd("SADD")
        .arg("s")
        .arg(all.iter().collect::<Vec<_>>())
        .query::<i64>(&mut c)
        .unwrap();
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) = redis::cmd("SSCAN")
            .arg(&["s", &cursor, "COUNT", "7"])
            .query(&mut c)
            .unwrap();
        seen.extend(batch);
        calls += 1;
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert!(calls > 1, "COUNT 7 over 200 members takes several calls");
    assert_eq!(seen.len(), 200, "no member twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);

    let mut matched = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<String>) = redis::cmd("SSCAN")
            .arg(&["s", &cursor, "match", "m1?", "count", "30"])
            .query(&mut c)
            .unwrap();
        matched.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(matched, (10..20).map(|i| format!("m{i}")).collect());

    let (next, batch): (String, Vec<String>) = redis::cmd("SSCAN")
        .arg(&["missing", "0"])
        .query(&mut c)
        .unwrap();
    assert_eq!((next.as_str(), batch.len()), ("0", 0));
    let (next, batch): (String, Vec<String>) = redis::cmd("SSCAN")
        .arg(&["s", "100000"])
        .query(&mut c)
        .unwrap();
    assert_eq!((next.as_str(), batch.len()), ("0", 0));

    assert_eq!(error(&mut c, "SSCAN", &["s", "abc"]), "ERR invalid cursor");
    assert_eq!(error(&mut c, "SSCAN", &["s", "-1"]), "ERR invalid cursor");
    assert_eq!(
        error(&mut c, "SSCAN", &["s", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, "SSCAN", &["s", "0", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&mut c, "SSCAN", &["s", "0", "MATCH"]),
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, "SSCAN", &["s", "0", "TYPE", "set"]),
        "ERR syntax error"
    );
}

/// Every algebra command over `a`, `b` (and `dst` for the STORE forms),
/// wherever those keys live. `str_key` must not exist yet.
fn algebra_cases(c: &mut Connection, a: &str, b: &str, dst: &str, str_key: &str) {
    let _: () = redis::cmd("DEL")
        .arg(&[a, b, dst, str_key])
        .query(c)
        .unwrap();
    int(c, "SADD", &[a, "1", "2", "3", "4"]);
    int(c, "SADD", &[b, "3", "4", "5"]);
    let missing = "algebra:missing";

    assert_eq!(members(c, "SINTER", &[a, b]), set(&["3", "4"]));
    assert_eq!(members(c, "SINTER", &[a]), set(&["1", "2", "3", "4"]));
    assert!(members(c, "SINTER", &[a, b, missing]).is_empty());
    assert_eq!(
        members(c, "SUNION", &[a, missing, b]),
        set(&["1", "2", "3", "4", "5"])
    );
    assert_eq!(members(c, "SDIFF", &[a, b]), set(&["1", "2"]));
    assert_eq!(members(c, "SDIFF", &[b, a]), set(&["5"]));
    assert_eq!(
        members(c, "SDIFF", &[a, missing]),
        set(&["1", "2", "3", "4"])
    );
    assert!(members(c, "SDIFF", &[missing, a]).is_empty());

    // STORE replaces any type and drops the TTL.
    let _: () = redis::cmd("SET")
        .arg(&[dst, "old", "EX", "100"])
        .query(c)
        .unwrap();
    assert_eq!(int(c, "SUNIONSTORE", &[dst, a, b]), 5);
    assert_eq!(
        members(c, "SMEMBERS", &[dst]),
        set(&["1", "2", "3", "4", "5"])
    );
    assert_eq!(int(c, "TTL", &[dst]), -1);
    assert_eq!(int(c, "SINTERSTORE", &[dst, a, b]), 2);
    assert_eq!(members(c, "SMEMBERS", &[dst]), set(&["3", "4"]));
    assert_eq!(int(c, "SDIFFSTORE", &[dst, b, a]), 1);
    assert_eq!(members(c, "SMEMBERS", &[dst]), set(&["5"]));
    // An empty result deletes the destination.
    assert_eq!(int(c, "SINTERSTORE", &[dst, a, missing]), 0);
    assert_eq!(int(c, "EXISTS", &[dst]), 0);
    int(c, "SADD", &[dst, "x"]);
    assert_eq!(int(c, "SDIFFSTORE", &[dst, a, a]), 0);
    assert_eq!(int(c, "EXISTS", &[dst]), 0);
    // The destination may be one of the sources.
    assert_eq!(int(c, "SUNIONSTORE", &[a, a, b]), 5);
    assert_eq!(
        members(c, "SMEMBERS", &[a]),
        set(&["1", "2", "3", "4", "5"])
    );
    assert_eq!(int(c, "SDIFFSTORE", &[a, a, b]), 2);
    assert_eq!(members(c, "SMEMBERS", &[a]), set(&["1", "2"]));

    // A non-set source fails the whole command, even after a missing key,
    // and a STORE then writes nothing.
    let _: () = redis::cmd("SET").arg(&[str_key, "v"]).query(c).unwrap();
    int(c, "SADD", &[dst, "keep"]);
    for cmd in ["SINTER", "SUNION", "SDIFF"] {
        assert_eq!(error(c, cmd, &[a, str_key]), WRONGTYPE, "{cmd}");
        assert_eq!(error(c, cmd, &[missing, b, str_key]), WRONGTYPE, "{cmd}");
        let store = format!("{cmd}STORE");
        assert_eq!(error(c, &store, &[dst, a, str_key]), WRONGTYPE, "{store}");
        assert_eq!(
            error(c, &store, &[dst, missing, str_key]),
            WRONGTYPE,
            "{store}"
        );
    }
    assert_eq!(members(c, "SMEMBERS", &[dst]), set(&["keep"]));
    assert_eq!(int(c, "SDIFFSTORE", &[str_key, b, a]), 3);
    assert_eq!(members(c, "SMEMBERS", &[str_key]), set(&["3", "4", "5"]));
}

#[test]
fn algebra_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("set:", 2, 2);
    let (a0, a1, b0, b1) = (&keys[0][0], &keys[0][1], &keys[1][0], &keys[1][1]);
    // Sources on both shards, destination on either.
    algebra_cases(&mut c, a0, b0, a1, b1);
    algebra_cases(&mut c, a0, b0, b1, a1);
    // Sources on one shard, destination and the string key on the other.
    algebra_cases(&mut c, a0, a1, b0, b1);
}

#[test]
fn algebra_on_one_shard_of_two() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("set:", 2, 4);
    for k in &keys {
        algebra_cases(&mut c, &k[0], &k[1], &k[2], &k[3]);
    }
}

#[test]
fn algebra_with_one_worker() {
    let s = Server::start(1);
    let mut c = s.client();
    algebra_cases(&mut c, "a", "b", "dst", "str");
    int(&mut c, "SADD", &["s", "x"]);
    assert_eq!(members(&mut c, "SPOP", &["s", "5"]), set(&["x"]));
    assert_eq!(int(&mut c, "EXISTS", &["s"]), 0);
}

#[test]
fn big_sets_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("big:", 2, 1);
    let (a, b) = (&keys[0][0], &keys[1][0]);
    let evens: Vec<String> = (0..2000).step_by(2).map(|i| i.to_string()).collect();
    let threes: Vec<String> = (0..2000).step_by(3).map(|i| i.to_string()).collect();
    redis::cmd("SADD")
        .arg(a)
        .arg(&evens)
        .query::<i64>(&mut c)
        .unwrap();
    redis::cmd("SADD")
        .arg(b)
        .arg(&threes)
        .query::<i64>(&mut c)
        .unwrap();
    let sixes: BTreeSet<String> = (0..2000).step_by(6).map(|i| i.to_string()).collect();
    assert_eq!(members(&mut c, "SINTER", &[a, b]), sixes);
    assert_eq!(members(&mut c, "SINTER", &[b, a]), sixes);
    assert_eq!(int(&mut c, "SUNIONSTORE", &[a, a, b]), 1000 + 667 - 334);
    assert_eq!(int(&mut c, "SCARD", &[a]), 1000 + 667 - 334);
}
