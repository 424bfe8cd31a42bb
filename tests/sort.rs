//! SORT and SORT_RO against the real server with 2 workers: sources,
//! BY/GET pattern keys and STORE destinations on both shards. Every
//! command also runs on redis-server 7.0.15 when /usr/bin/redis-server
//! exists, and the replies must be equal (skipped with a note otherwise).

mod common;
mod redis_ref;

use std::time::{Duration, Instant};

use common::{Server, cmd, error_text, free_port, keys_on_each_shard, q, shard_of};
use redis::{Connection, Value};

use redis_ref::RedisRef as Reference;

fn reference() -> Option<Reference> {
    Reference::start(free_port(), "SORT")
}

/// Kora and, when present, Redis: every command runs on both and must
/// answer the same.
struct Both {
    kora: Connection,
    redis: Option<Connection>,
}

fn reply(c: &mut Connection, args: &[&str]) -> Result<Value, String> {
    cmd(args).query::<Value>(c).map_err(|e| error_text(&e))
}

impl Both {
    fn run(&mut self, args: &[&str]) -> Result<Value, String> {
        let got = reply(&mut self.kora, args);
        if let Some(r) = self.redis.as_mut() {
            assert_eq!(got, reply(r, args), "{args:?}: kora vs redis");
        }
        got
    }

    fn strings(&mut self, args: &[&str]) -> Vec<Option<String>> {
        match self.run(args) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Nil => None,
                    Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn list(&mut self, args: &[&str]) -> Vec<String> {
        self.strings(args).into_iter().map(|s| s.unwrap()).collect()
    }
}

fn setup(s: &Server) -> (Both, Option<Reference>) {
    let r = reference();
    let redis = r.as_ref().map(|r| {
        redis::Client::open(format!("redis://127.0.0.1:{}/", r.port))
            .unwrap()
            .get_connection()
            .unwrap()
    });
    (
        Both {
            kora: s.client(),
            redis,
        },
        r,
    )
}

/// A key with `prefix` that lives on `shard` (of 2).
fn on_shard(prefix: &str, shard: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| shard_of(k, 2) == shard)
        .unwrap()
}

#[test]
fn sorts_lists_and_sets_with_options() {
    let s = Server::start(2);
    let (mut b, _r) = setup(&s);
    let per = keys_on_each_shard("src", 2, 1);
    for l in [&per[0][0], &per[1][0]] {
        b.run(&["RPUSH", l, "3", "10", "-1.5", "2", "1e2"]).unwrap();
        assert_eq!(b.list(&["SORT", l]), ["-1.5", "2", "3", "10", "1e2"]);
        assert_eq!(
            b.list(&["SORT", l, "DESC"]),
            ["1e2", "10", "3", "2", "-1.5"]
        );
        assert_eq!(
            b.list(&["SORT", l, "ALPHA"]),
            ["-1.5", "10", "1e2", "2", "3"]
        );
        assert_eq!(b.list(&["SORT", l, "LIMIT", "1", "2"]), ["2", "3"]);
        assert_eq!(
            b.list(&["SORT_RO", l, "LIMIT", "-5", "2", "DESC"]),
            ["1e2", "10"]
        );
        assert_eq!(b.list(&["SORT", l, "LIMIT", "3", "-1"]), ["10", "1e2"]);
        assert!(b.list(&["SORT", l, "LIMIT", "9", "2"]).is_empty());
        assert!(b.list(&["SORT", l, "LIMIT", "0", "0"]).is_empty());
        // BY a constant pattern: the list's own order (reversed by DESC).
        assert_eq!(
            b.list(&["SORT", l, "BY", "nosort"]),
            ["3", "10", "-1.5", "2", "1e2"]
        );
        assert_eq!(
            b.list(&["SORT", l, "BY", "nosort", "DESC", "LIMIT", "1", "2"]),
            ["2", "-1.5"]
        );
        assert_eq!(
            b.strings(&["SORT", l, "GET", "#", "GET", "nostar"]).len(),
            10
        );
    }
    let set = on_shard("set", 1);
    b.run(&["SADD", &set, "5", "-2", "30", "4"]).unwrap();
    assert_eq!(b.list(&["SORT", &set]), ["-2", "4", "5", "30"]);
    assert_eq!(
        b.list(&["SORT", &set, "ALPHA", "DESC"]),
        ["5", "4", "30", "-2"]
    );
    let words = on_shard("words", 0);
    b.run(&["SADD", &words, "pear", "apple", "fig"]).unwrap();
    assert_eq!(b.list(&["SORT", &words, "ALPHA"]), ["apple", "fig", "pear"]);
    // A sorted set: by its own order with BY nosort (DESC reverses), else
    // by the members' values.
    let z = on_shard("zs", 0);
    b.run(&["ZADD", &z, "1", "30", "2", "4", "3", "-7"])
        .unwrap();
    assert_eq!(b.list(&["SORT", &z, "BY", "nosort"]), ["30", "4", "-7"]);
    assert_eq!(
        b.list(&["SORT", &z, "BY", "nosort", "DESC", "LIMIT", "0", "2"]),
        ["-7", "4"]
    );
    assert_eq!(b.list(&["SORT", &z]), ["-7", "4", "30"]);
    assert_eq!(
        b.run(&["SORT", &z, "BY", "nosort", "STORE", "zdest"]),
        Ok(Value::Int(3))
    );
    assert_eq!(b.list(&["LRANGE", "zdest", "0", "-1"]), ["30", "4", "-7"]);
    // BY without `*` wins over a later BY with one.
    let wl = on_shard("wl", 1);
    b.run(&["RPUSH", &wl, "3", "1", "2"]).unwrap();
    b.run(&["MSET", "w_1", "9", "w_2", "5", "w_3", "1"])
        .unwrap();
    assert_eq!(b.list(&["SORT", &wl, "BY", "w_*"]), ["3", "2", "1"]);
    assert_eq!(
        b.list(&["SORT", &wl, "BY", "nosort", "BY", "w_*"]),
        ["3", "1", "2"]
    );
    assert_eq!(
        b.list(&["SORT", &wl, "BY", "w_*", "BY", "nosort"]),
        ["3", "1", "2"]
    );
    // Missing source: empty; equal scores order by the element.
    assert!(b.list(&["SORT", "missing"]).is_empty());
    let ties = on_shard("ties", 1);
    b.run(&["RPUSH", &ties, "b", "a", "c"]).unwrap();
    assert_eq!(b.list(&["SORT", &ties, "BY", "w_*"]), ["a", "b", "c"]);
}

#[test]
fn errors_match_redis() {
    let s = Server::start(2);
    let (mut b, _r) = setup(&s);
    let l = on_shard("l", 0);
    b.run(&["RPUSH", &l, "1", "x", "2"]).unwrap();
    let str_key = on_shard("str", 1);
    b.run(&["SET", &str_key, "v"]).unwrap();
    let hash = on_shard("hash", 0);
    b.run(&["HSET", &hash, "f", "1"]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["SORT", &l],
            "ERR One or more scores can't be converted into double",
        ),
        (
            vec!["SORT", &str_key],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            vec!["SORT", &hash],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (vec!["SORT", &l, "FOO"], "ERR syntax error"),
        (vec!["SORT", &l, "LIMIT", "0"], "ERR syntax error"),
        (
            vec!["SORT", &l, "LIMIT", "a", "1"],
            "ERR value is not an integer or out of range",
        ),
        (vec!["SORT", &l, "BY"], "ERR syntax error"),
        (vec!["SORT", &l, "GET"], "ERR syntax error"),
        (vec!["SORT", &l, "STORE"], "ERR syntax error"),
        (vec!["SORT_RO", &l, "STORE", "d"], "ERR syntax error"),
        (
            vec!["SORT"],
            "ERR wrong number of arguments for 'sort' command",
        ),
        (
            vec!["SORT_RO"],
            "ERR wrong number of arguments for 'sort_ro' command",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(b.run(&args), Err(want.to_string()), "{args:?}");
    }
    // A weight that is not a number, on the other shard.
    let n = on_shard("nums", 0);
    b.run(&["RPUSH", &n, "1", "2"]).unwrap();
    let weight = (0..)
        .map(|i| format!("wt{i}_"))
        .find(|p| shard_of(&format!("{p}1"), 2) == 1)
        .unwrap();
    b.run(&["SET", &format!("{weight}1"), "abc"]).unwrap();
    assert_eq!(
        b.run(&["SORT", &n, "BY", &format!("{weight}*")]),
        Err("ERR One or more scores can't be converted into double".to_string())
    );
    // ALPHA needs no number.
    assert_eq!(b.list(&["SORT", &l, "ALPHA"]), ["1", "2", "x"]);
}

#[test]
fn by_and_get_patterns_reach_both_shards() {
    let s = Server::start(2);
    let (mut b, _r) = setup(&s);
    let src = on_shard("users", 0);
    let ids = ["1", "2", "3", "4", "5", "6"];
    let mut push = vec!["RPUSH", &src];
    push.extend(ids);
    b.run(&push).unwrap();
    let weights = ["50", "-3", "7.5", "7.5", "", "1e3"];
    let mut shards = [0, 0];
    for (id, w) in ids.iter().zip(weights) {
        let wk = format!("weight_{id}");
        shards[shard_of(&wk, 2)] += 1;
        if *id != "5" {
            b.run(&["SET", &wk, w]).unwrap();
        }
        b.run(&[
            "HSET",
            &format!("user:{id}"),
            "name",
            &format!("n{id}"),
            "age",
            &format!("{}", 40 - id.parse::<i32>().unwrap()),
        ])
        .unwrap();
        b.run(&["SET", &format!("plain:{id}"), &format!("p{id}")])
            .unwrap();
    }
    assert!(shards[0] > 0 && shards[1] > 0, "weights on both shards");
    assert_eq!(
        b.list(&["SORT", &src, "BY", "weight_*"]),
        ["2", "5", "3", "4", "1", "6"]
    );
    assert_eq!(
        b.list(&["SORT", &src, "BY", "weight_*", "DESC", "LIMIT", "0", "3"]),
        ["6", "1", "4"]
    );
    assert_eq!(
        b.list(&["SORT", &src, "BY", "user:*->age"]),
        ["6", "5", "4", "3", "2", "1"]
    );
    assert_eq!(
        b.strings(&[
            "SORT",
            &src,
            "BY",
            "weight_*",
            "GET",
            "#",
            "GET",
            "user:*->name",
            "GET",
            "plain:*",
            "GET",
            "nokey_*",
            "LIMIT",
            "0",
            "2"
        ]),
        [
            Some("2".into()),
            Some("n2".into()),
            Some("p2".into()),
            None,
            Some("5".into()),
            Some("n5".into()),
            Some("p5".into()),
            None,
        ]
    );
    // ALPHA by pattern: missing weights first, then byte order.
    assert_eq!(
        b.list(&["SORT", &src, "BY", "weight_*", "ALPHA"]),
        ["5", "2", "6", "1", "3", "4"]
    );
    // GET of a hash field that is missing, of a string as a hash, of a hash as a string.
    assert_eq!(
        b.strings(&[
            "SORT",
            &src,
            "GET",
            "user:*->nope",
            "GET",
            "plain:*->x",
            "GET",
            "user:*",
            "LIMIT",
            "0",
            "1"
        ]),
        [None, None, None]
    );
    // A zero-length field after -> is part of the key name.
    assert_eq!(
        b.strings(&["SORT", &src, "GET", "plain:*->", "LIMIT", "0", "1"]),
        [None]
    );
    // SORT_RO reads the same.
    assert_eq!(
        b.list(&["SORT_RO", &src, "BY", "weight_*", "GET", "plain:*"]),
        ["p2", "p5", "p3", "p4", "p1", "p6"]
    );
}

#[test]
fn store_writes_a_list_on_either_shard() {
    let s = Server::start(2);
    let (mut b, _r) = setup(&s);
    let src = on_shard("s", 1);
    b.run(&["SADD", &src, "c", "a", "b"]).unwrap();
    for shard in [0, 1] {
        let dest = on_shard(&format!("dest{shard}_"), shard);
        b.run(&["SET", &dest, "old"]).unwrap();
        b.run(&["EXPIRE", &dest, "100"]).unwrap();
        assert_eq!(
            b.run(&["SORT", &src, "ALPHA", "STORE", &dest]),
            Ok(Value::Int(3))
        );
        assert_eq!(b.list(&["LRANGE", &dest, "0", "-1"]), ["a", "b", "c"]);
        assert_eq!(b.run(&["TTL", &dest]), Ok(Value::Int(-1)));
        // A set BY nosort is still sorted when stored.
        assert_eq!(
            b.run(&["SORT", &src, "BY", "nosort", "STORE", &dest]),
            Ok(Value::Int(3))
        );
        assert_eq!(b.list(&["LRANGE", &dest, "0", "-1"]), ["a", "b", "c"]);
        // GET values go in, missing ones as empty strings.
        b.run(&["SET", "g_a", "A"]).unwrap();
        assert_eq!(
            b.run(&[
                "SORT", &src, "ALPHA", "GET", "g_*", "GET", "#", "STORE", &dest
            ]),
            Ok(Value::Int(6))
        );
        assert_eq!(
            b.list(&["LRANGE", &dest, "0", "-1"]),
            ["A", "a", "", "b", "", "c"]
        );
        // An empty result deletes the destination.
        assert_eq!(
            b.run(&["SORT", "nothing", "STORE", &dest]),
            Ok(Value::Int(0))
        );
        assert_eq!(b.run(&["EXISTS", &dest]), Ok(Value::Int(0)));
    }
    // The destination may be the source.
    let l = on_shard("self", 0);
    b.run(&["RPUSH", &l, "3", "1", "2"]).unwrap();
    assert_eq!(b.run(&["SORT", &l, "STORE", &l]), Ok(Value::Int(3)));
    assert_eq!(b.list(&["LRANGE", &l, "0", "-1"]), ["1", "2", "3"]);
    // SORT inside MULTI/EXEC, with patterns across shards.
    let mut k = s.client();
    let _: () = cmd(&["MULTI"]).query(&mut k).unwrap();
    let _: () = cmd(&["SORT", &src, "ALPHA", "GET", "g_*", "STORE", "in-tx"])
        .query(&mut k)
        .unwrap();
    let _: () = cmd(&["LRANGE", "in-tx", "0", "-1"]).query(&mut k).unwrap();
    let exec: Vec<Value> = cmd(&["EXEC"]).query(&mut k).unwrap();
    assert_eq!(exec[0], Value::Int(3));
}

/// While SORT reads weights on both shards and stores, a writer keeps
/// rewriting all weights together (MSET across shards): every SORT sees
/// one MSET's weights whole, never a mix, so its order is one of the two.
#[test]
fn sort_with_patterns_is_atomic_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let ids: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut push = vec!["RPUSH".to_string(), "atomic-src".to_string()];
    push.extend(ids.iter().cloned());
    let push: Vec<&str> = push.iter().map(String::as_str).collect();
    let _: i64 = cmd(&push).query(&mut c).unwrap();
    let mset = |flip: bool| {
        let mut a = vec!["MSET".to_string()];
        for i in 0..20 {
            let id = i.to_string();
            a.push(format!("aw_{id}"));
            a.push(if flip {
                (100 - i).to_string()
            } else {
                i.to_string()
            });
        }
        a
    };
    let up: Vec<String> = ids.clone();
    let down: Vec<String> = ids.iter().rev().cloned().collect();
    let a0 = mset(false);
    let _: () = cmd(&a0.iter().map(String::as_str).collect::<Vec<_>>())
        .query(&mut c)
        .unwrap();
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let mut flip = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            flip = !flip;
            let a = mset(flip);
            let _: () = cmd(&a.iter().map(String::as_str).collect::<Vec<_>>())
                .query(&mut w)
                .unwrap();
        }
    });
    for _ in 0..300 {
        let got: Vec<String> = cmd(&["SORT", "atomic-src", "BY", "aw_*"])
            .query(&mut c)
            .unwrap();
        assert!(got == up || got == down, "mixed weights: {got:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

/// A BY or GET pattern naming the same key for every element reads that
/// key once per shard and step, not once per element: 4000 elements
/// sorting by (and getting) one 1 MB value across shards must not copy it
/// 4000 times (4 GB). The server's peak RSS is the witness.
#[test]
fn a_pattern_naming_one_big_key_copies_it_once() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("sortbig", 2, 1);
    // The list on one shard, the big weight key ("w" + element) on the other.
    let list = &keys[0][0];
    let mut elem = 0;
    while shard_of(&format!("w{elem}"), 2) != 1 {
        elem += 1;
    }
    let (elem, weight) = (elem.to_string(), format!("w{elem}"));
    let mut push = redis::cmd("RPUSH");
    push.arg(list);
    for _ in 0..4000 {
        push.arg(&elem);
    }
    let _: i64 = push.query(&mut c).unwrap();
    let big = "z".repeat(1 << 20);
    let _: () = q(&mut c, &["SET", &weight, &big]);
    let peak = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let before = peak(s.pid());
    let sorted: Vec<String> = q(
        &mut c,
        &["SORT", list, "BY", "w*", "ALPHA", "LIMIT", "0", "2"],
    );
    assert_eq!(sorted, [elem.as_str(), elem.as_str()]);
    let got: Vec<Vec<u8>> = q(
        &mut c,
        &[
            "SORT", list, "BY", "w*", "ALPHA", "LIMIT", "0", "3", "GET", "w*",
        ],
    );
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|v| v.len() == 1 << 20));
    let grew = peak(s.pid()) - before;
    assert!(grew < 64 << 20, "peak RSS grew {} MB", grew >> 20);
}
