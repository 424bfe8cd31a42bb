//! Multi-key commands across shards are atomic: real clients hammer keys
//! that live on different shards of a 2-shard server while others check
//! invariants that a half-applied command would break. Then a model test:
//! random multi-key command sequences against Kora and against a
//! single-threaded reference model must get the same replies.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, keys_on_each_shard, q};
use redis::Value;

/// How long each hammering test runs at most, and how many writer
/// iterations it needs at least (it stops at whichever comes later, up to
/// twice the time).
const RUN_FOR: Duration = Duration::from_millis(1500);
const MIN_ITERATIONS: u64 = 2_000;

/// Two keys on different shards.
fn split_pair(prefix: &str) -> (String, String) {
    let per = keys_on_each_shard(prefix, 2, 1);
    (per[0][0].clone(), per[1][0].clone())
}

/// Runs `write` in a loop on one connection and `check` on two others
/// until the time and iteration bounds are met; returns (writes, checks,
/// violations) — `check` returns false on a violation.
fn hammer(
    server: &Server,
    mut write: impl FnMut(&mut redis::Connection, u64) + Send + 'static,
    check: impl Fn(&mut redis::Connection) -> bool + Send + Sync + 'static,
) -> (u64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let check = Arc::new(check);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, checks, violations, check) = (
                stop.clone(),
                checks.clone(),
                violations.clone(),
                check.clone(),
            );
            let mut c = server.client();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !check(&mut c) {
                        violations.fetch_add(1, Ordering::Relaxed);
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut w = server.client();
    let started = Instant::now();
    let mut i = 0u64;
    while (started.elapsed() < RUN_FOR || i < MIN_ITERATIONS) && started.elapsed() < 2 * RUN_FOR {
        write(&mut w, i);
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    (
        i,
        checks.load(Ordering::Relaxed),
        violations.load(Ordering::Relaxed),
    )
}

fn assert_clean(what: &str, (writes, checks, violations): (u64, u64, u64)) {
    eprintln!("{what}: {writes} writes, {checks} checks, {violations} violations");
    assert!(writes >= 500, "{what}: only {writes} writes");
    assert!(checks >= 500, "{what}: only {checks} checks");
    assert_eq!(
        violations, 0,
        "{what}: {violations} of {checks} checks saw a half-applied command"
    );
}

#[test]
fn mget_never_sees_half_an_mset() {
    let server = Server::start(2);
    let (a, b) = split_pair("ms:");
    let (wa, wb) = (a.clone(), b.clone());
    let result = hammer(
        &server,
        move |c, i| {
            let v = i.to_string();
            let _: () = q(c, &["MSET", &wa, &v, &wb, &v]);
        },
        move |c| {
            let got: Vec<Option<String>> = q(c, &["MGET", &a, &b]);
            got[0] == got[1]
        },
    );
    assert_clean("MSET/MGET", result);
}

#[test]
fn a_renamed_key_exists_under_exactly_one_name() {
    let server = Server::start(2);
    let (a, b) = split_pair("rn:");
    let _: () = q(&mut server.client(), &["SET", &a, "value"]);
    let (wa, wb) = (a.clone(), b.clone());
    let result = hammer(
        &server,
        move |c, i| {
            let (from, to) = if i % 2 == 0 { (&wa, &wb) } else { (&wb, &wa) };
            let _: () = q(c, &["RENAME", from, to]);
        },
        move |c| q::<i64>(c, &["EXISTS", &a, &b]) == 1,
    );
    assert_clean("RENAME/EXISTS", result);
}

/// Whole-keyspace reads run only where no multi-key command is midway:
/// while one key moves between two shards by RENAME, DBSIZE always counts
/// it once and KEYS always lists exactly one of its names.
#[test]
fn whole_keyspace_reads_never_see_a_rename_half_done() {
    let server = Server::start(2);
    let (a, b) = split_pair("ks:");
    let _: () = q(&mut server.client(), &["SET", &a, "value"]);
    let (wa, wb) = (a.clone(), b.clone());
    let result = hammer(
        &server,
        move |c, i| {
            let (from, to) = if i % 2 == 0 { (&wa, &wb) } else { (&wb, &wa) };
            let _: () = q(c, &["RENAME", from, to]);
        },
        move |c| {
            let size: i64 = q(c, &["DBSIZE"]);
            let keys: Vec<String> = q(c, &["KEYS", "ks:*"]);
            size == 1 && keys.len() == 1 && (keys[0] == a || keys[0] == b)
        },
    );
    assert_clean("RENAME/DBSIZE+KEYS", result);
}

#[test]
fn del_and_msetnx_are_all_or_nothing() {
    let server = Server::start(2);
    let (a, b) = split_pair("nx:");
    let (wa, wb) = (a.clone(), b.clone());
    let result = hammer(
        &server,
        move |c, i| {
            if i % 2 == 0 {
                let set: i64 = q(c, &["MSETNX", &wa, "1", &wb, "1"]);
                assert_eq!(set, 1, "both keys were deleted before");
            } else {
                let deleted: i64 = q(c, &["DEL", &wa, &wb]);
                assert_eq!(deleted, 2);
            }
        },
        move |c| {
            let got: Vec<Option<String>> = q(c, &["MGET", &a, &b]);
            got[0] == got[1]
        },
    );
    assert_clean("MSETNX/DEL/MGET", result);
}

#[test]
fn sunionstore_results_appear_whole() {
    let server = Server::start(2);
    let per = keys_on_each_shard("su:", 2, 2);
    let (src0, dst0, src1, dst1) = (
        per[0][0].clone(),
        per[0][1].clone(),
        per[1][0].clone(),
        per[1][1].clone(),
    );
    let mut c = server.client();
    let _: () = q(&mut c, &["SADD", &src0, "a", "b"]);
    let _: () = q(&mut c, &["SADD", &src1, "c", "d"]);
    // One destination always holds the union: the writer stores into one
    // before it deletes the other.
    let _: () = q(&mut c, &["SUNIONSTORE", &dst1, &src0, &src1]);
    let (d0, d1) = (dst0.clone(), dst1.clone());
    let result = hammer(
        &server,
        move |c, i| {
            // The destination alternates between the two shards; the
            // other destination is deleted together with it.
            let (dst, other) = if i % 2 == 0 { (&d0, &d1) } else { (&d1, &d0) };
            let n: i64 = q(c, &["SUNIONSTORE", dst, &src0, &src1]);
            assert_eq!(n, 4);
            let _: i64 = q(c, &["DEL", other]);
        },
        move |c| {
            // Every destination that exists holds the whole union.
            let got: Vec<Vec<String>> = redis::pipe()
                .atomic()
                .cmd("SMEMBERS")
                .arg(&dst0)
                .cmd("SMEMBERS")
                .arg(&dst1)
                .query(c)
                .unwrap();
            got.iter().all(|m| m.is_empty() || m.len() == 4) && got.iter().any(|m| m.len() == 4)
        },
    );
    assert_clean("SUNIONSTORE/SMEMBERS", result);
}

// ---- model test

/// A single-threaded reference for the commands under test.
#[derive(Default)]
struct Model {
    strings: HashMap<String, String>,
    sets: HashMap<String, BTreeSet<String>>,
}

/// What a reply is, normalized for comparing (set members sorted).
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ok,
    Int(i64),
    Nil,
    Bulk(String),
    Array(Vec<Reply>),
    Error(String),
}

fn normalize(v: Value, sort: bool) -> Reply {
    match v {
        Value::Okay => Reply::Ok,
        Value::SimpleString(s) if s == "OK" => Reply::Ok,
        Value::SimpleString(s) => Reply::Bulk(s),
        Value::Int(n) => Reply::Int(n),
        Value::Nil => Reply::Nil,
        Value::BulkString(b) => Reply::Bulk(String::from_utf8(b).unwrap()),
        Value::Array(items) => {
            let mut items: Vec<Reply> = items.into_iter().map(|i| normalize(i, false)).collect();
            if sort {
                items.sort_by_key(|r| format!("{r:?}"));
            }
            Reply::Array(items)
        }
        Value::ServerError(e) => Reply::Error(e.code().to_string()),
        other => panic!("unexpected reply {other:?}"),
    }
}

impl Model {
    fn exists(&self, k: &str) -> bool {
        self.strings.contains_key(k) || self.sets.contains_key(k)
    }

    fn remove(&mut self, k: &str) -> bool {
        self.strings.remove(k).is_some() | self.sets.remove(k).is_some()
    }

    fn set_of(&self, k: &str) -> Result<BTreeSet<String>, Reply> {
        if self.strings.contains_key(k) {
            return Err(Reply::Error("WRONGTYPE".into()));
        }
        Ok(self.sets.get(k).cloned().unwrap_or_default())
    }

    fn apply(&mut self, cmd: &[String]) -> Reply {
        let a = |i: usize| cmd[i].as_str();
        match a(0) {
            "SET" => {
                self.remove(a(1));
                self.strings.insert(a(1).into(), a(2).into());
                Reply::Ok
            }
            "GET" => match (self.strings.get(a(1)), self.sets.contains_key(a(1))) {
                (Some(v), _) => Reply::Bulk(v.clone()),
                (None, true) => Reply::Error("WRONGTYPE".into()),
                (None, false) => Reply::Nil,
            },
            "MSET" => {
                for pair in cmd[1..].chunks(2) {
                    self.remove(&pair[0]);
                    self.strings.insert(pair[0].clone(), pair[1].clone());
                }
                Reply::Ok
            }
            "MSETNX" => {
                if cmd[1..].chunks(2).any(|p| self.exists(&p[0])) {
                    return Reply::Int(0);
                }
                for pair in cmd[1..].chunks(2) {
                    self.strings.insert(pair[0].clone(), pair[1].clone());
                }
                Reply::Int(1)
            }
            "MGET" => Reply::Array(
                cmd[1..]
                    .iter()
                    .map(|k| {
                        self.strings
                            .get(k)
                            .map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))
                    })
                    .collect(),
            ),
            "DEL" | "UNLINK" => {
                Reply::Int(cmd[1..].iter().filter(|k| self.remove(k)).count() as i64)
            }
            "EXISTS" => Reply::Int(cmd[1..].iter().filter(|k| self.exists(k)).count() as i64),
            "RENAME" | "RENAMENX" => {
                let nx = a(0) == "RENAMENX";
                if !self.exists(a(1)) {
                    return Reply::Error("ERR".into());
                }
                if nx && self.exists(a(2)) {
                    return Reply::Int(0);
                }
                if a(1) != a(2) {
                    let s = self.strings.remove(a(1));
                    let set = self.sets.remove(a(1));
                    self.remove(a(2));
                    if let Some(s) = s {
                        self.strings.insert(a(2).into(), s);
                    }
                    if let Some(set) = set {
                        self.sets.insert(a(2).into(), set);
                    }
                }
                if nx { Reply::Int(1) } else { Reply::Ok }
            }
            "SADD" => {
                if self.strings.contains_key(a(1)) {
                    return Reply::Error("WRONGTYPE".into());
                }
                let set = self.sets.entry(a(1).into()).or_default();
                Reply::Int(cmd[2..].iter().filter(|m| set.insert((*m).clone())).count() as i64)
            }
            "SMEMBERS" => match self.set_of(a(1)) {
                Ok(s) => Reply::Array(s.into_iter().map(Reply::Bulk).collect()),
                Err(e) => e,
            },
            "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" => {
                let mut sources = Vec::new();
                for k in &cmd[2..] {
                    match self.set_of(k) {
                        Ok(s) => sources.push(s),
                        Err(e) => return e,
                    }
                }
                let mut result = sources[0].clone();
                for s in &sources[1..] {
                    result = match a(0) {
                        "SINTERSTORE" => result.intersection(s).cloned().collect(),
                        "SUNIONSTORE" => result.union(s).cloned().collect(),
                        _ => result.difference(s).cloned().collect(),
                    };
                }
                self.remove(a(1));
                let n = result.len() as i64;
                if n > 0 {
                    self.sets.insert(a(1).into(), result);
                }
                Reply::Int(n)
            }
            other => panic!("model has no {other}"),
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_command(rng: &mut Rng, keys: &[String]) -> Vec<String> {
    let key = |rng: &mut Rng| keys[rng.below(keys.len())].clone();
    let val = |rng: &mut Rng| format!("v{}", rng.below(4));
    let many = |rng: &mut Rng, name: &str, pairs: bool| {
        let mut cmd = vec![name.to_string()];
        for _ in 0..1 + rng.below(4) {
            cmd.push(key(rng));
            if pairs {
                cmd.push(val(rng));
            }
        }
        cmd
    };
    match rng.below(12) {
        0 => vec!["SET".into(), key(rng), val(rng)],
        1 => vec!["GET".into(), key(rng)],
        2 => many(rng, "MSET", true),
        3 => many(rng, "MSETNX", true),
        4 => many(rng, "MGET", false),
        5 => many(rng, "DEL", false),
        6 => many(rng, "EXISTS", false),
        7 => vec![
            if rng.below(2) == 0 {
                "RENAME"
            } else {
                "RENAMENX"
            }
            .into(),
            key(rng),
            key(rng),
        ],
        8 => {
            let mut cmd = vec!["SADD".into(), key(rng)];
            for _ in 0..1 + rng.below(3) {
                cmd.push(format!("m{}", rng.below(5)));
            }
            cmd
        }
        9 => vec!["SMEMBERS".into(), key(rng)],
        10 => {
            let name = ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][rng.below(3)];
            let mut cmd = vec![name.to_string(), key(rng)];
            for _ in 0..1 + rng.below(3) {
                cmd.push(key(rng));
            }
            cmd
        }
        _ => many(rng, "UNLINK", false),
    }
}

#[test]
fn random_multikey_sequences_match_a_single_threaded_model() {
    let server = Server::start(2);
    let mut c = server.client();
    // Eight keys, four on each shard, so most multi-key commands span both.
    let keys: Vec<String> = keys_on_each_shard("m:", 2, 4).concat();
    let mut model = Model::default();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut compared = 0;
    for step in 0..4_000 {
        let cmd = random_command(&mut rng, &keys);
        let want = model.apply(&cmd);
        let mut redis_cmd = redis::cmd(&cmd[0]);
        for arg in &cmd[1..] {
            redis_cmd.arg(arg);
        }
        let got = match redis_cmd.query::<Value>(&mut c) {
            Ok(v) => normalize(v, cmd[0] == "SMEMBERS"),
            Err(e) => Reply::Error(e.code().unwrap_or("").to_string()),
        };
        assert_eq!(got, want, "step {step}: {cmd:?}");
        compared += 1;
    }
    assert_eq!(compared, 4_000);
}
