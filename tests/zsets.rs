//! Sorted sets over the wire, against a 2-shard server: every Z* command,
//! Redis 7.0's error texts (recorded from redis-server 7.0.15 by hand),
//! both encodings and the conversion, keys on different shards for the
//! multi-key commands, and a seeded model test of ranks and ranges.

mod common;

use std::collections::BTreeMap;

use common::{Server, e, keys_on_each_shard, q};
use redis::Connection;

fn v(c: &mut Connection, args: &[&str]) -> Vec<String> {
    q(c, args)
}

fn int(c: &mut Connection, args: &[&str]) -> i64 {
    q(c, args)
}

fn opt(c: &mut Connection, args: &[&str]) -> Option<String> {
    q(c, args)
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn encoding(c: &mut Connection, key: &str) -> String {
    q(c, &["OBJECT", "ENCODING", key])
}

/// Two keys on different shards (`[0]` on shard 0, `[1]` on shard 1),
/// `n` per shard.
fn split_keys(prefix: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let per = keys_on_each_shard(prefix, 2, n);
    (per[0].clone(), per[1].clone())
}

#[test]
fn zadd_options_replies_and_errors_match_redis() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(
        int(
            &mut c,
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"]
        ),
        4
    );
    for (args, want) in [
        (
            &["ZADD", "z", "NX", "XX", "1", "a"][..],
            "ERR XX and NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "GT", "LT", "1", "a"],
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "nx", "gt", "1", "a"],
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "INCR", "1", "a", "2", "b"],
            "ERR INCR option supports a single increment-element pair",
        ),
        (
            &["ZADD", "z", "1"],
            "ERR wrong number of arguments for 'zadd' command",
        ),
        (&["ZADD", "z", "1", "a", "2"], "ERR syntax error"),
        (&["ZADD", "z", "x", "a"], "ERR value is not a valid float"),
        (&["ZADD", "z", "nan", "a"], "ERR value is not a valid float"),
        (&["ZADD", "z", " 2", "a"], "ERR value is not a valid float"),
        (
            &["ZADD", "z", "1e400", "a"],
            "ERR value is not a valid float",
        ),
        (
            &["ZINCRBY", "z", "abc", "a"],
            "ERR value is not a valid float",
        ),
    ] {
        assert_eq!(e(&mut c, args), want, "{args:?}");
    }
    // INCR answers the new score; XX on a missing member answers nil.
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "INCR", "1", "a"]).as_deref(),
        Some("2")
    );
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "XX", "INCR", "1", "nosuch"]),
        None
    );
    assert_eq!(int(&mut c, &["ZADD", "nokey", "XX", "1", "a"]), 0);
    assert_eq!(int(&mut c, &["EXISTS", "nokey"]), 0);
    // NX leaves existing members; XX adds none; CH counts changes.
    assert_eq!(int(&mut c, &["ZADD", "z", "NX", "9", "a", "5", "e"]), 1);
    assert_eq!(
        int(&mut c, &["ZADD", "z", "XX", "CH", "9", "a", "5", "f"]),
        1
    );
    assert_eq!(opt(&mut c, &["ZSCORE", "z", "a"]).as_deref(), Some("9"));
    assert_eq!(opt(&mut c, &["ZSCORE", "z", "f"]), None);
    // GT/LT only move a score in their direction; new members still come in.
    assert_eq!(
        int(&mut c, &["ZADD", "z", "GT", "CH", "1", "a", "7", "g"]),
        1
    );
    assert_eq!(int(&mut c, &["ZADD", "z", "LT", "CH", "1", "a"]), 1);
    assert_eq!(opt(&mut c, &["ZSCORE", "z", "a"]).as_deref(), Some("1"));
    assert_eq!(opt(&mut c, &["ZADD", "z", "GT", "INCR", "-1", "a"]), None);
    assert_eq!(
        int(&mut c, &["ZADD", "z", "CH", "1", "a"]),
        0,
        "same score: no change"
    );
    // NaN from inf + -inf.
    assert_eq!(int(&mut c, &["ZADD", "z", "inf", "i"]), 1);
    assert_eq!(
        e(&mut c, &["ZINCRBY", "z", "-inf", "i"]),
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(q::<String>(&mut c, &["ZINCRBY", "z", "2.5", "b"]), "4.5");
    assert_eq!(q::<String>(&mut c, &["ZINCRBY", "new", "3", "m"]), "3");
    // Scores as strtod reads them.
    assert_eq!(
        int(
            &mut c,
            &[
                "ZADD",
                "p",
                "0x10",
                "hex",
                "+infinity",
                "pinf",
                "1.",
                "one",
                "-0",
                "zero"
            ]
        ),
        4
    );
    assert_eq!(
        v(&mut c, &["ZRANGE", "p", "0", "-1", "WITHSCORES"]),
        words("zero 0 one 1 hex 16 pinf inf")
    );
    // WRONGTYPE for every command on a string.
    let _: () = q(&mut c, &["SET", "str", "x"]);
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for args in [
        &["ZADD", "str", "1", "a"][..],
        &["ZINCRBY", "str", "1", "a"],
        &["ZREM", "str", "a"],
        &["ZCARD", "str"],
        &["ZSCORE", "str", "a"],
        &["ZMSCORE", "str", "a"],
        &["ZRANK", "str", "a"],
        &["ZCOUNT", "str", "0", "1"],
        &["ZRANGE", "str", "0", "1"],
        &["ZPOPMIN", "str"],
        &["ZRANDMEMBER", "str"],
        &["ZSCAN", "str", "0"],
        &["ZREMRANGEBYRANK", "str", "0", "1"],
    ] {
        assert_eq!(e(&mut c, args), wrong, "{args:?}");
    }
}

#[test]
fn scores_are_formatted_as_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.client();
    int(
        &mut c,
        &[
            "ZADD",
            "z",
            "0.1",
            "f",
            "1e17",
            "g",
            "123456789012345678",
            "h",
            "0.0001",
            "j",
            "1e-5",
            "k",
            "2.5e-300",
            "d",
            "0.003",
            "c",
            "1e16",
            "b",
        ],
    );
    assert_eq!(
        v(&mut c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        words(
            "d 2.5e-300 k 1.0000000000000001e-05 j 0.0001 c 0.0030000000000000001 f 0.10000000000000001 b 10000000000000000 g 1e+17 h 1.2345678901234568e+17"
        )
    );
    assert_eq!(
        q::<String>(&mut c, &["ZINCRBY", "z", "1.5", "b"]),
        "10000000000000002"
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["ZMSCORE", "z", "f", "nope"]),
        vec![Some("0.10000000000000001".into()), None]
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["ZMSCORE", "missing", "a", "b"]),
        vec![None, None]
    );
}

#[test]
fn ranges_by_rank_score_and_lex_with_rev_and_limit() {
    let s = Server::start(2);
    let mut c = s.client();
    for key in ["small", "big"] {
        if key == "big" {
            let _: () = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-entries", "2"]);
        }
        int(
            &mut c,
            &[
                "ZADD", key, "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
            ],
        );
        let want_enc = if key == "big" { "skiplist" } else { "listpack" };
        assert_eq!(encoding(&mut c, key), want_enc);
        let r = |c: &mut Connection, args: &[&str]| {
            let mut full = vec![args[0], key];
            full.extend_from_slice(&args[1..]);
            v(c, &full)
        };
        assert_eq!(r(&mut c, &["ZRANGE", "0", "-1"]), words("a b c d e"));
        assert_eq!(r(&mut c, &["ZRANGE", "-2", "100"]), words("d e"));
        assert_eq!(r(&mut c, &["ZRANGE", "3", "1"]), Vec::<String>::new());
        assert_eq!(
            r(&mut c, &["ZRANGE", "0", "1", "REV", "WITHSCORES"]),
            words("e 5 d 4")
        );
        assert_eq!(r(&mut c, &["ZREVRANGE", "1", "2"]), words("d c"));
        assert_eq!(
            r(&mut c, &["ZRANGE", "(1", "3", "BYSCORE", "WITHSCORES"]),
            words("b 2 c 3")
        );
        assert_eq!(
            r(
                &mut c,
                &[
                    "ZRANGE", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"
                ]
            ),
            words("d c")
        );
        assert_eq!(
            r(
                &mut c,
                &["ZRANGEBYSCORE", "-inf", "+inf", "LIMIT", "1", "-1"]
            ),
            words("b c d e")
        );
        assert_eq!(
            r(
                &mut c,
                &["ZRANGEBYSCORE", "-inf", "+inf", "LIMIT", "-1", "2"]
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            r(
                &mut c,
                &["ZRANGEBYSCORE", "-inf", "+inf", "LIMIT", "0", "0"]
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            r(&mut c, &["ZRANGEBYSCORE", "(", "(3"]),
            words("a b"),
            "( alone is above 0"
        );
        assert_eq!(r(&mut c, &["ZRANGEBYSCORE", " 2", "2"]), words("b"));
        assert_eq!(
            r(&mut c, &["ZREVRANGEBYSCORE", "4", "(2", "WITHSCORES"]),
            words("d 4 c 3")
        );
        assert_eq!(
            r(&mut c, &["ZRANGE", "0", "1", "REV", "BYSCORE"]),
            Vec::<String>::new()
        );
        assert_eq!(int(&mut c, &["ZCOUNT", key, "(1", "+inf"]), 4);
        assert_eq!(int(&mut c, &["ZRANK", key, "c"]), 2);
        assert_eq!(int(&mut c, &["ZREVRANK", key, "c"]), 2);
        assert_eq!(int(&mut c, &["ZREVRANK", key, "a"]), 4);
        assert_eq!(opt(&mut c, &["ZRANK", key, "zz"]), None);
        assert_eq!(int(&mut c, &["ZCARD", key]), 5);
        for (args, want) in [
            (
                &["ZRANGE", key, "0", "-1", "LIMIT", "0", "1"][..],
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ),
            (
                &["ZRANGEBYLEX", key, "-", "+", "WITHSCORES"],
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ),
            (&["ZCOUNT", key, "a", "b"], "ERR min or max is not a float"),
            (
                &["ZRANGEBYSCORE", key, "1", "((2"],
                "ERR min or max is not a float",
            ),
            (
                &["ZLEXCOUNT", key, "a", "b"],
                "ERR min or max not valid string range item",
            ),
            (
                &["ZRANGE", key, "a", "1"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["ZRANGE", key, "0", "1", "BYSCORE", "BYLEX"],
                "ERR syntax error",
            ),
            (&["ZREVRANGE", key, "0", "1", "REV"], "ERR syntax error"),
            (
                &["ZRANGEBYSCORE", key, "0", "1", "BYLEX"],
                "ERR syntax error",
            ),
        ] {
            assert_eq!(e(&mut c, args), want, "{args:?}");
        }
        let lex = format!("{key}-lex");
        int(
            &mut c,
            &[
                "ZADD", &lex, "0", "a", "0", "b", "0", "c", "0", "d", "0", "e",
            ],
        );
        let r = |c: &mut Connection, args: &[&str]| {
            let mut full = vec![args[0], lex.as_str()];
            full.extend_from_slice(&args[1..]);
            v(c, &full)
        };
        assert_eq!(r(&mut c, &["ZRANGEBYLEX", "-", "+"]), words("a b c d e"));
        assert_eq!(r(&mut c, &["ZRANGEBYLEX", "(a", "[c"]), words("b c"));
        assert_eq!(
            r(&mut c, &["ZREVRANGEBYLEX", "+", "(c", "LIMIT", "0", "1"]),
            words("e")
        );
        assert_eq!(r(&mut c, &["ZRANGE", "[b", "(d", "BYLEX"]), words("b c"));
        assert_eq!(
            r(
                &mut c,
                &["ZRANGE", "+", "-", "BYLEX", "REV", "LIMIT", "1", "2"]
            ),
            words("d c")
        );
        assert_eq!(int(&mut c, &["ZLEXCOUNT", &lex, "[b", "+"]), 4);
        assert_eq!(int(&mut c, &["ZREMRANGEBYLEX", &lex, "[b", "(d"]), 2);
        assert_eq!(r(&mut c, &["ZRANGE", "0", "-1"]), words("a d e"));
        let _: () = q(
            &mut c,
            &["CONFIG", "SET", "zset-max-listpack-entries", "128"],
        );
    }
}

#[test]
fn removals_pops_and_emptied_keys() {
    let s = Server::start(2);
    let mut c = s.client();
    int(
        &mut c,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
    );
    assert_eq!(int(&mut c, &["ZREM", "z", "a", "nope", "a"]), 1);
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "z", "-1", "-1"]), 1);
    assert_eq!(int(&mut c, &["ZREMRANGEBYSCORE", "z", "(2", "3"]), 1);
    assert_eq!(v(&mut c, &["ZRANGE", "z", "0", "-1"]), words("b d"));
    assert_eq!(
        e(&mut c, &["ZREMRANGEBYRANK", "z", "x", "1"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        e(&mut c, &["ZREMRANGEBYSCORE", "z", "x", "1"]),
        "ERR min or max is not a float"
    );
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "nokey", "0", "1"]), 0);
    int(&mut c, &["ZADD", "z", "1", "a", "3", "c", "5", "e"]);
    assert_eq!(v(&mut c, &["ZPOPMIN", "z"]), words("a 1"));
    assert_eq!(v(&mut c, &["ZPOPMAX", "z", "2"]), words("e 5 d 4"));
    assert_eq!(v(&mut c, &["ZPOPMIN", "z", "0"]), Vec::<String>::new());
    assert_eq!(v(&mut c, &["ZPOPMIN", "nokey"]), Vec::<String>::new());
    assert_eq!(
        e(&mut c, &["ZPOPMIN", "z", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        e(&mut c, &["ZPOPMIN", "z", "a"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(e(&mut c, &["ZPOPMIN", "z", "1", "2"]), "ERR syntax error");
    assert_eq!(v(&mut c, &["ZPOPMIN", "z", "10"]), words("b 2 c 3"));
    assert_eq!(
        int(&mut c, &["EXISTS", "z"]),
        0,
        "an emptied sorted set is removed"
    );
    int(&mut c, &["ZADD", "z", "1", "a"]);
    assert_eq!(int(&mut c, &["ZREM", "z", "a"]), 1);
    assert_eq!(int(&mut c, &["EXISTS", "z"]), 0);
    assert_eq!(q::<String>(&mut c, &["TYPE", "z"]), "none");
}

#[test]
fn zmpop_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let (a, b) = split_keys("zm", 1);
    let (k0, k1) = (a[0].as_str(), b[0].as_str());
    int(&mut c, &["ZADD", k1, "1", "x", "2", "y", "3", "z"]);
    let popped: (String, Vec<(String, String)>) =
        q(&mut c, &["ZMPOP", "2", k0, k1, "MAX", "COUNT", "2"]);
    assert_eq!(
        popped,
        (
            k1.to_string(),
            vec![("z".into(), "3".into()), ("y".into(), "2".into())]
        )
    );
    let popped: (String, Vec<(String, String)>) = q(&mut c, &["ZMPOP", "2", k0, k1, "MIN"]);
    assert_eq!(popped, (k1.to_string(), vec![("x".into(), "1".into())]));
    assert_eq!(
        q::<redis::Value>(&mut c, &["ZMPOP", "2", k0, k1, "MIN"]),
        redis::Value::Nil
    );
    let _: () = q(&mut c, &["SET", k0, "s"]);
    int(&mut c, &["ZADD", k1, "1", "x"]);
    assert_eq!(
        e(&mut c, &["ZMPOP", "2", k0, k1, "MIN"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    for (args, want) in [
        (
            &["ZMPOP", "0", k0, "MIN"][..],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["ZMPOP", "a", k0, "MIN"],
            "ERR numkeys should be greater than 0",
        ),
        (&["ZMPOP", "1", k0, "foo"], "ERR syntax error"),
        (&["ZMPOP", "3", k0, "MIN"], "ERR syntax error"),
        (
            &["ZMPOP", "1", k0, "MIN", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        (
            &["ZMPOP", "1", k0, "MIN", "COUNT", "x"],
            "ERR count should be greater than 0",
        ),
    ] {
        assert_eq!(e(&mut c, args), want, "{args:?}");
    }
}

#[test]
fn union_inter_diff_and_stores_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let (a, b) = split_keys("za", 3);
    let (z1, z2, dst) = (a[0].as_str(), b[0].as_str(), b[1].as_str());
    let (set, dst0) = (a[1].as_str(), a[2].as_str());
    int(&mut c, &["ZADD", z1, "1", "a", "2", "b", "3", "c"]);
    int(&mut c, &["ZADD", z2, "10", "b", "20", "c", "30", "d"]);
    int(&mut c, &["SADD", set, "c", "d"]);
    assert_eq!(
        v(&mut c, &["ZUNION", "2", z1, z2, "WITHSCORES"]),
        words("a 1 b 12 c 23 d 30")
    );
    assert_eq!(
        v(
            &mut c,
            &[
                "ZUNION",
                "2",
                z1,
                z2,
                "WEIGHTS",
                "2",
                "1",
                "AGGREGATE",
                "MIN",
                "WITHSCORES"
            ]
        ),
        words("a 2 b 4 c 6 d 30")
    );
    assert_eq!(
        v(
            &mut c,
            &["ZINTER", "2", z1, z2, "AGGREGATE", "max", "WITHSCORES"]
        ),
        words("b 10 c 20")
    );
    assert_eq!(
        v(&mut c, &["ZINTER", "3", z1, z2, set, "WITHSCORES"]),
        words("c 24")
    );
    assert_eq!(
        v(&mut c, &["ZDIFF", "2", z1, z2, "WITHSCORES"]),
        words("a 1")
    );
    assert_eq!(v(&mut c, &["ZDIFF", "2", z1, "missing"]), words("a b c"));
    assert_eq!(
        v(&mut c, &["ZINTER", "2", z1, "missing"]),
        Vec::<String>::new()
    );
    assert_eq!(int(&mut c, &["ZINTERCARD", "2", z1, z2]), 2);
    assert_eq!(int(&mut c, &["ZINTERCARD", "2", z1, z2, "LIMIT", "1"]), 1);
    // STORE forms: the destination on either shard, replaced whatever it held.
    for d in [dst, dst0] {
        let _: () = q(&mut c, &["SET", d, "old"]);
        assert_eq!(int(&mut c, &["ZUNIONSTORE", d, "2", z1, z2]), 4);
        assert_eq!(
            v(&mut c, &["ZRANGE", d, "0", "-1", "WITHSCORES"]),
            words("a 1 b 12 c 23 d 30")
        );
        assert_eq!(
            int(
                &mut c,
                &["ZINTERSTORE", d, "2", z1, z2, "WEIGHTS", "1", "0"]
            ),
            2
        );
        assert_eq!(
            v(&mut c, &["ZRANGE", d, "0", "-1", "WITHSCORES"]),
            words("b 2 c 3")
        );
        assert_eq!(int(&mut c, &["ZDIFFSTORE", d, "2", z2, z1]), 1);
        assert_eq!(
            v(&mut c, &["ZRANGE", d, "0", "-1", "WITHSCORES"]),
            words("d 30")
        );
        assert_eq!(int(&mut c, &["ZDIFFSTORE", d, "1", "missing"]), 0);
        assert_eq!(
            int(&mut c, &["EXISTS", d]),
            0,
            "an empty result deletes the destination"
        );
    }
    // inf * 0 and inf + -inf are 0, as Redis.
    int(&mut c, &["ZADD", dst, "inf", "m"]);
    int(&mut c, &["ZADD", dst0, "-inf", "m"]);
    assert_eq!(
        v(&mut c, &["ZUNION", "2", dst, dst0, "WITHSCORES"]),
        words("m 0")
    );
    assert_eq!(
        v(&mut c, &["ZUNION", "1", dst, "WEIGHTS", "0", "WITHSCORES"]),
        words("m 0")
    );
    let _: () = q(&mut c, &["SET", "str", "x"]);
    for (args, want) in [
        (
            &["ZUNION", "0", z1][..],
            "ERR at least 1 input key is needed for 'zunion' command",
        ),
        (
            &["ZUNION", "a", z1],
            "ERR value is not an integer or out of range",
        ),
        (&["ZUNION", "3", z1], "ERR syntax error"),
        (
            &["ZUNIONSTORE", "d", "0", z1],
            "ERR at least 1 input key is needed for 'zunionstore' command",
        ),
        (
            &["ZINTERCARD", "0", z1],
            "ERR at least 1 input key is needed for 'zintercard' command",
        ),
        (
            &["ZINTERCARD", "1", z1, "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (&["ZINTERCARD", "1", z1, "WITHSCORES"], "ERR syntax error"),
        (
            &["ZUNION", "1", z1, "WEIGHTS", "x"],
            "ERR weight value is not a float",
        ),
        (&["ZUNION", "1", z1, "AGGREGATE", "foo"], "ERR syntax error"),
        (&["ZDIFF", "1", z1, "WEIGHTS", "1"], "ERR syntax error"),
        (
            &["ZUNIONSTORE", "d", "1", z1, "WITHSCORES"],
            "ERR syntax error",
        ),
        // The keys are read before the options: WRONGTYPE wins.
        (
            &["ZUNION", "2", z1, "str", "foo"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (&["ZUNION", "1", z1, "foo"], "ERR syntax error"),
    ] {
        assert_eq!(e(&mut c, args), want, "{args:?}");
    }
}

#[test]
fn zrangestore_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let (a, b) = split_keys("zr", 2);
    let (src, same, other) = (a[0].as_str(), a[1].as_str(), b[0].as_str());
    int(
        &mut c,
        &["ZADD", src, "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    for dst in [same, other] {
        assert_eq!(int(&mut c, &["ZRANGESTORE", dst, src, "1", "2"]), 2);
        assert_eq!(
            v(&mut c, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]),
            words("b 2 c 3")
        );
        assert_eq!(
            int(
                &mut c,
                &[
                    "ZRANGESTORE",
                    dst,
                    src,
                    "+inf",
                    "(1",
                    "BYSCORE",
                    "REV",
                    "LIMIT",
                    "0",
                    "2"
                ]
            ),
            2
        );
        assert_eq!(v(&mut c, &["ZRANGE", dst, "0", "-1"]), words("c d"));
        assert_eq!(int(&mut c, &["ZRANGESTORE", dst, "missing", "0", "-1"]), 0);
        assert_eq!(int(&mut c, &["EXISTS", dst]), 0);
        assert_eq!(
            e(&mut c, &["ZRANGESTORE", dst, src, "0", "1", "WITHSCORES"]),
            "ERR syntax error"
        );
    }
}

#[test]
fn encodings_thresholds_and_config_knobs() {
    let s = Server::start_with(2, &["--zset-max-listpack-entries", "4"]);
    let mut c = s.client();
    let cfg = |c: &mut Connection, name: &str| -> String {
        let pair: Vec<String> = q(c, &["CONFIG", "GET", name]);
        pair[1].clone()
    };
    assert_eq!(cfg(&mut c, "zset-max-listpack-entries"), "4");
    assert_eq!(cfg(&mut c, "zset-max-ziplist-entries"), "4");
    assert_eq!(cfg(&mut c, "zset-max-listpack-value"), "64");
    for (n, keys) in keys_on_each_shard("enc:z", 2, 3).iter().enumerate() {
        let (z, z2, z3) = (&keys[0], &keys[1], &keys[2]);
        int(&mut c, &["ZADD", z, "1", "a", "2", "b", "3", "c", "4", "d"]);
        assert_eq!(encoding(&mut c, z), "listpack", "shard {n}");
        int(&mut c, &["ZADD", z, "5", "e"]);
        assert_eq!(encoding(&mut c, z), "skiplist", "5th member converts");
        int(&mut c, &["ZREM", z, "a", "b", "c", "d"]);
        assert_eq!(encoding(&mut c, z), "skiplist", "never back");
        assert_eq!(
            v(&mut c, &["ZRANGE", z, "0", "-1", "WITHSCORES"]),
            words("e 5")
        );
        int(&mut c, &["ZADD", z2, "1", &"x".repeat(64)]);
        assert_eq!(encoding(&mut c, z2), "listpack");
        int(&mut c, &["ZADD", z2, "1", &"x".repeat(65)]);
        assert_eq!(encoding(&mut c, z2), "skiplist", "a 65-byte member");
        let _: () = q(&mut c, &["CONFIG", "SET", "zset-max-ziplist-value", "3"]);
        int(&mut c, &["ZADD", z3, "1", "abcd"]);
        assert_eq!(encoding(&mut c, z3), "skiplist");
        let _: () = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-value", "1kb"]);
        assert_eq!(cfg(&mut c, "zset-max-listpack-value"), "1024");
        // A stored result takes the encoding its size calls for.
        assert_eq!(int(&mut c, &["ZUNIONSTORE", z3, "1", z]), 1);
        assert_eq!(encoding(&mut c, z3), "listpack");
        let _: () = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-value", "64"]);
    }
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "zset-max-listpack-entries", "x"]),
        "ERR CONFIG SET failed (possibly related to argument 'zset-max-listpack-entries') - argument couldn't be parsed into an integer"
    );
}

#[test]
fn keys_commands_and_transactions_see_sorted_sets() {
    let s = Server::start(2);
    let mut c = s.client();
    let (a, b) = split_keys("zk", 2);
    int(&mut c, &["ZADD", &a[0], "1", "a", "2", "b"]);
    assert_eq!(q::<String>(&mut c, &["TYPE", &a[0]]), "zset");
    assert_eq!(int(&mut c, &["COPY", &a[0], &b[0]]), 1);
    assert_eq!(
        v(&mut c, &["ZRANGE", &b[0], "0", "-1", "WITHSCORES"]),
        words("a 1 b 2")
    );
    let _: () = q(&mut c, &["RENAME", &b[0], &a[1]]);
    assert_eq!(v(&mut c, &["ZRANGE", &a[1], "0", "-1"]), words("a b"));
    let (cursor, keys): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "zset", "COUNT", "1000"]);
    assert_eq!(cursor, "0");
    let mut keys = keys;
    keys.sort();
    let mut want = vec![a[0].clone(), a[1].clone()];
    want.sort();
    assert_eq!(keys, want);
    let replies: (i64, Vec<String>, String) = redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg(&a[0])
        .arg("3")
        .arg("c")
        .cmd("ZRANGE")
        .arg(&a[0])
        .arg("0")
        .arg("-1")
        .cmd("ZINCRBY")
        .arg(&a[0])
        .arg("1")
        .arg("a")
        .query(&mut c)
        .unwrap();
    assert_eq!(replies, (1, words("a b c"), "2".to_string()));
    assert_eq!(int(&mut c, &["DEL", &a[0], &a[1]]), 2);
    let _: String = q(&mut c, &["FLUSHALL"]);
}

#[test]
fn zscan_and_zrandmember() {
    let s = Server::start(2);
    let mut c = s.client();
    let members: Vec<String> = (0..300).map(|i| format!("m{i:03}")).collect();
    for (i, m) in members.iter().enumerate() {
        int(&mut c, &["ZADD", "big", &i.to_string(), m]);
    }
    int(&mut c, &["ZADD", "small", "1", "a", "2", "b"]);
    let (cursor, all): (String, Vec<String>) = q(&mut c, &["ZSCAN", "small", "0"]);
    assert_eq!((cursor.as_str(), all), ("0", words("a 1 b 2")));
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..1000 {
        let (next, page): (String, Vec<String>) =
            q(&mut c, &["ZSCAN", "big", &cursor, "COUNT", "7"]);
        for pair in page.chunks(2) {
            assert_eq!(members[pair[1].parse::<usize>().unwrap()], pair[0]);
            seen.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
    let (_, matched): (String, Vec<String>) = q(&mut c, &["ZSCAN", "small", "0", "MATCH", "b"]);
    assert_eq!(matched, words("b 2"));
    assert_eq!(e(&mut c, &["ZSCAN", "big", "x"]), "ERR invalid cursor");
    let (cursor, none): (String, Vec<String>) = q(&mut c, &["ZSCAN", "nokey", "0"]);
    assert_eq!((cursor.as_str(), none.len()), ("0", 0));
    // ZRANDMEMBER
    assert_eq!(opt(&mut c, &["ZRANDMEMBER", "nokey"]), None);
    assert!(members.contains(&q::<String>(&mut c, &["ZRANDMEMBER", "big"])));
    let distinct = v(&mut c, &["ZRANDMEMBER", "big", "50"]);
    assert_eq!(distinct.len(), 50);
    assert_eq!(
        distinct
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        50
    );
    assert_eq!(
        v(&mut c, &["ZRANDMEMBER", "small", "5", "WITHSCORES"]),
        words("a 1 b 2")
    );
    assert_eq!(v(&mut c, &["ZRANDMEMBER", "small", "-5"]).len(), 5);
    assert_eq!(v(&mut c, &["ZRANDMEMBER", "small", "0"]).len(), 0);
    assert_eq!(v(&mut c, &["ZRANDMEMBER", "nokey", "3"]).len(), 0);
    assert_eq!(
        e(&mut c, &["ZRANDMEMBER", "small", "1", "foo"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["ZRANDMEMBER", "small", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        e(
            &mut c,
            &["ZRANDMEMBER", "small", "9223372036854775807", "WITHSCORES"]
        ),
        "ERR value is out of range"
    );
}

/// Seeded random writes against a BTreeMap model, through the server, on
/// keys of both shards and in both encodings: every few steps ranks,
/// scores and ranges (by rank, score and lex, with REV and LIMIT) are
/// compared with the model's.
#[test]
fn random_ranks_and_ranges_match_a_model() {
    let s = Server::start_with(2, &["--zset-max-listpack-entries", "16"]);
    let mut c = s.client();
    let mut state = 0x5eed_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let keys = keys_on_each_shard("model", 2, 1);
    let started = std::time::Instant::now();
    for key in [&keys[0][0], &keys[1][0]] {
        // (score, member) -> () and member -> score.
        let mut model: BTreeMap<(i64, String), ()> = BTreeMap::new();
        let mut scores: BTreeMap<String, i64> = BTreeMap::new();
        for step in 0..1500 {
            assert!(started.elapsed().as_secs() < 120, "bounded in time");
            let m = format!("m{:02}", next(60));
            let sc = next(20) as i64 - 5;
            match next(6) {
                0..=2 => {
                    int(&mut c, &["ZADD", key, &sc.to_string(), &m]);
                    if let Some(old) = scores.insert(m.clone(), sc) {
                        model.remove(&(old, m.clone()));
                    }
                    model.insert((sc, m), ());
                }
                3 => {
                    let got: String = q(&mut c, &["ZINCRBY", key, &sc.to_string(), &m]);
                    let new = scores.get(&m).copied().unwrap_or(0) + sc;
                    assert_eq!(got, new.to_string());
                    if let Some(old) = scores.insert(m.clone(), new) {
                        model.remove(&(old, m.clone()));
                    }
                    model.insert((new, m), ());
                }
                _ => {
                    let n = int(&mut c, &["ZREM", key, &m]);
                    let had = scores.remove(&m);
                    assert_eq!(n, had.is_some() as i64);
                    if let Some(old) = had {
                        model.remove(&(old, m));
                    }
                }
            }
            if step % 25 != 0 {
                continue;
            }
            let all: Vec<(i64, String)> = model.keys().cloned().collect();
            assert_eq!(int(&mut c, &["ZCARD", key]) as usize, all.len());
            let (lo, hi) = (next(30) as i64 - 10, next(30) as i64 - 10);
            let (off, cnt) = (next(5) as usize, next(6) as i64 - 1);
            let in_range: Vec<&(i64, String)> =
                all.iter().filter(|(s, _)| *s > lo && *s <= hi).collect();
            let limited = |list: Vec<&(i64, String)>| -> Vec<String> {
                let it = list.into_iter().skip(off).map(|(_, m)| m.clone());
                if cnt < 0 {
                    it.collect()
                } else {
                    it.take(cnt as usize).collect()
                }
            };
            let got = v(
                &mut c,
                &[
                    "ZRANGEBYSCORE",
                    key,
                    &format!("({lo}"),
                    &hi.to_string(),
                    "LIMIT",
                    &off.to_string(),
                    &cnt.to_string(),
                ],
            );
            assert_eq!(
                got,
                limited(in_range.clone()),
                "byscore {lo} {hi} {off} {cnt}"
            );
            let got = v(
                &mut c,
                &[
                    "ZRANGE",
                    key,
                    &hi.to_string(),
                    &format!("({lo}"),
                    "BYSCORE",
                    "REV",
                    "LIMIT",
                    &off.to_string(),
                    &cnt.to_string(),
                ],
            );
            assert_eq!(
                got,
                limited(in_range.iter().rev().copied().collect()),
                "rev byscore"
            );
            assert_eq!(
                int(&mut c, &["ZCOUNT", key, &format!("({lo}"), &hi.to_string()]) as usize,
                in_range.len()
            );
            let (a, b) = (next(20) as i64 - 10, next(20) as i64 - 10);
            let len = all.len() as i64;
            // Redis' clamping: negative from the end, start at least 0,
            // stop past the end cut to the end.
            let start = if a < 0 { (len + a).max(0) } else { a };
            let stop = if b < 0 { len + b } else { b };
            let span =
                (start <= stop && start < len).then(|| start as usize..=stop.min(len - 1) as usize);
            let want: Vec<String> = span.clone().map_or(Vec::new(), |r| {
                all[r].iter().map(|(_, m)| m.clone()).collect()
            });
            assert_eq!(
                v(&mut c, &["ZRANGE", key, &a.to_string(), &b.to_string()]),
                want,
                "rank {a} {b}"
            );
            let rev_all: Vec<String> = all.iter().rev().map(|(_, m)| m.clone()).collect();
            let want_rev: Vec<String> = span.map_or(Vec::new(), |r| rev_all[r].to_vec());
            assert_eq!(
                v(&mut c, &["ZREVRANGE", key, &a.to_string(), &b.to_string()]),
                want_rev
            );
            for (i, (sc, m)) in all.iter().enumerate().filter(|(i, _)| i % 7 == 0) {
                assert_eq!(int(&mut c, &["ZRANK", key, m]) as usize, i);
                assert_eq!(
                    int(&mut c, &["ZREVRANK", key, m]) as usize,
                    all.len() - 1 - i
                );
                assert_eq!(q::<String>(&mut c, &["ZSCORE", key, m]), sc.to_string());
            }
            // Lex over the members of one score.
            if let Some((sc, _)) = all.first() {
                let same: Vec<&String> = all
                    .iter()
                    .filter(|(s, _)| s == sc)
                    .map(|(_, m)| m)
                    .collect();
                let lexkey = format!("{key}-lex");
                let _: i64 = q(&mut c, &["DEL", &lexkey]);
                for m in &same {
                    int(&mut c, &["ZADD", &lexkey, "0", m]);
                }
                let bound = format!("[m{:02}", next(60));
                let want: Vec<String> = same
                    .iter()
                    .filter(|m| m.as_str() >= &bound[1..])
                    .map(|m| m.to_string())
                    .collect();
                assert_eq!(v(&mut c, &["ZRANGEBYLEX", &lexkey, &bound, "+"]), want);
                let want_rev: Vec<String> = want.iter().rev().cloned().collect();
                assert_eq!(
                    v(&mut c, &["ZREVRANGEBYLEX", &lexkey, "+", &bound]),
                    want_rev
                );
            }
        }
        assert!(!model.is_empty());
    }
}
