//! MULTI / EXEC / DISCARD / WATCH / UNWATCH with the `redis` crate against
//! the real server: Redis 7 reply shapes, errors, WATCH aborts, and
//! atomicity across shards under concurrent clients.

mod common;

use std::thread;
use std::time::Duration;

use common::{Server, keys_on_each_shard};
use redis::{Commands, Value};

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn exec_answers_every_queued_command_across_shards() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("tx:", 2, 2);
    let (a, b) = (&keys[0][0], &keys[1][0]);
    let mut c = s.client();
    let (set_a, incr_a, set_b, both): ((), i64, (), Vec<String>) = redis::pipe()
        .atomic()
        .set(a, 10)
        .incr(a, 5)
        .set(b, "x")
        .mget(&[a, b])
        .query(&mut c)
        .unwrap();
    let _ = (set_a, set_b);
    assert_eq!(incr_a, 15);
    assert_eq!(both, vec!["15".to_string(), "x".to_string()]);

    // The replies as raw values: QUEUED for each, then the EXEC array.
    let replies: Vec<Value> = redis::pipe()
        .cmd("MULTI")
        .cmd("SET")
        .arg(a)
        .arg(1)
        .cmd("GET")
        .arg(b)
        .cmd("EXEC")
        .query(&mut c)
        .unwrap();
    assert_eq!(replies[0], Value::Okay);
    assert_eq!(replies[1], Value::SimpleString("QUEUED".into()));
    assert_eq!(replies[2], Value::SimpleString("QUEUED".into()));
    assert_eq!(replies[3], Value::Array(vec![Value::Okay, bulk("x")]));

    // An empty transaction is an empty array.
    let empty: Value = redis::pipe().atomic().query(&mut c).unwrap();
    assert_eq!(empty, Value::Array(vec![]));
}

#[test]
fn a_runtime_error_is_that_commands_reply_and_the_others_still_run() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("rt:", 2, 1);
    let mut c = s.client();
    let _: () = c.set(&keys[0][0], "text").unwrap();
    let replies: Vec<Value> = redis::pipe()
        .cmd("MULTI")
        .cmd("INCR")
        .arg(&keys[0][0])
        .cmd("SET")
        .arg(&keys[1][0])
        .arg("after")
        .cmd("LPUSH")
        .arg(&keys[0][0])
        .arg("x")
        .cmd("EXEC")
        .ignore_errors()
        .query(&mut c)
        .unwrap();
    let Value::Array(exec) = &replies[4] else {
        panic!("EXEC reply {:?}", replies[4]);
    };
    assert_eq!(exec.len(), 3);
    assert!(
        matches!(&exec[0], Value::ServerError(e) if e.details().unwrap_or("").contains("not an integer"))
    );
    assert_eq!(exec[1], Value::Okay);
    assert!(matches!(&exec[2], Value::ServerError(e) if e.code() == "WRONGTYPE"));
    let after: String = c.get(&keys[1][0]).unwrap();
    assert_eq!(after, "after");
}

#[test]
fn queuing_errors_make_exec_abort_and_nothing_runs() {
    let s = Server::start(2);
    let mut r = s.raw();
    let got = common::raw_exchange(
        &mut r,
        b"MULTI\r\nSET qa 1\r\nNOSUCHCMD x\r\nGET\r\nSET qb 2\r\nEXEC\r\nEXISTS qa qb\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text,
        "+OK\r\n+QUEUED\r\n\
         -ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n\
         -ERR wrong number of arguments for 'get' command\r\n\
         +QUEUED\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n\
         :0\r\n"
    );
    // The connection is usable again and out of MULTI.
    let got = common::raw_exchange(&mut r, b"SET qa 1\r\nEXEC\r\nDISCARD\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
    );
}

#[test]
fn nested_multi_and_watch_inside_multi_are_errors_that_keep_the_transaction() {
    let s = Server::start(1);
    let mut r = s.raw();
    let got = common::raw_exchange(&mut r, b"MULTI\r\nMULTI\r\nWATCH k\r\nINCR n\r\nEXEC\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n-ERR MULTI calls can not be nested\r\n\
         -ERR WATCH inside MULTI is not allowed\r\n+QUEUED\r\n*1\r\n:1\r\n"
    );
}

#[test]
fn discard_drops_the_queue_and_the_watches() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut other = s.client();
    let replies: Vec<Value> = redis::pipe()
        .cmd("WATCH")
        .arg("dw")
        .cmd("MULTI")
        .cmd("SET")
        .arg("dd")
        .arg(1)
        .cmd("DISCARD")
        .query(&mut c)
        .unwrap();
    assert_eq!(replies[3], Value::Okay);
    let exists: bool = c.exists("dd").unwrap();
    assert!(!exists);
    // DISCARD unwatched: a later change to dw does not abort a new MULTI.
    let _: () = other.set("dw", 1).unwrap();
    let done: Value = redis::pipe().atomic().set("dd", 2).query(&mut c).unwrap();
    assert_eq!(done, Value::Array(vec![Value::Okay]));
}

/// WATCH key on `shard_keys`, change it in some way, then EXEC.
fn exec_after(s: &Server, key: &str, change: impl FnOnce(&mut redis::Connection)) -> Value {
    let mut c = s.client();
    let _: () = redis::cmd("WATCH").arg(key).query(&mut c).unwrap();
    let mut other = s.client();
    change(&mut other);
    redis::pipe()
        .atomic()
        .set(format!("{key}:marker"), 1)
        .query(&mut c)
        .unwrap()
}

#[test]
fn watch_aborts_exec_when_the_key_changes_in_any_way() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("w:", 2, 6);
    for shard_keys in &keys {
        let mut c = s.client();
        for k in shard_keys {
            let _: () = c.set(k, 1).unwrap();
        }
        // Untouched: runs.
        assert_eq!(
            exec_after(&s, &shard_keys[0], |_| {}),
            Value::Array(vec![Value::Okay])
        );
        // Written by another client.
        assert_eq!(
            exec_after(&s, &shard_keys[1], |o| {
                let _: () = o.set(&shard_keys[1], 2).unwrap();
            }),
            Value::Nil
        );
        // Deleted.
        assert_eq!(
            exec_after(&s, &shard_keys[2], |o| {
                let _: () = o.del(&shard_keys[2]).unwrap();
            }),
            Value::Nil
        );
        // Expired between WATCH and EXEC, with nobody touching it.
        let _: () = c.pexpire(&shard_keys[3], 50).unwrap();
        assert_eq!(
            exec_after(&s, &shard_keys[3], |_| thread::sleep(
                Duration::from_millis(120)
            )),
            Value::Nil
        );
        // A key that did not exist and was created.
        assert_eq!(
            exec_after(&s, &format!("{}:new", shard_keys[4]), |o| {
                let _: () = o.set(format!("{}:new", shard_keys[4]), 1).unwrap();
            }),
            Value::Nil
        );
        // A read does not count as a change.
        assert_eq!(
            exec_after(&s, &shard_keys[5], |o| {
                let _: String = o.get(&shard_keys[5]).unwrap();
            }),
            Value::Array(vec![Value::Okay])
        );
    }
    // FLUSHALL modifies every watched key that existed.
    let _: () = s.client().set(&keys[1][0], 1).unwrap();
    assert_eq!(
        exec_after(&s, &keys[1][0], |o| {
            let _: () = redis::cmd("FLUSHALL").query(o).unwrap();
        }),
        Value::Nil
    );
    // UNWATCH forgets the watch.
    let mut c = s.client();
    let _: () = redis::cmd("WATCH").arg(&keys[0][0]).query(&mut c).unwrap();
    let _: () = s.client().set(&keys[0][0], 9).unwrap();
    let _: () = redis::cmd("UNWATCH").query(&mut c).unwrap();
    let done: Value = redis::pipe()
        .atomic()
        .get(&keys[0][0])
        .query(&mut c)
        .unwrap();
    assert_eq!(done, Value::Array(vec![bulk("9")]));
}

/// What redis-server 7.0.15 does with a WATCHed `k` when another client
/// runs a command on it: `runs` (the EXEC goes ahead: not a modification)
/// or `aborts`. Recorded by running this table against redis-server; one
/// row per line: outcome | the other client's command | setup commands
/// (`;` between them). Arguments split on spaces; `""` is an empty
/// argument and `\0` a zero byte. Other keys share `k`'s hash tag.
/// `tests/python/watch_table.py PORT [--print]` runs the table against a
/// server and prints what differs (or the table as that server answers).
const REDIS_WATCH_TABLE: &str = r#"
runs   | LPOP k | SET k v
runs   | SADD k a | SET k v
runs   | HSET k f v | SET k v
runs   | ZADD k 1 a | SET k v
runs   | RPUSH k a | SET k v
runs   | APPEND k x | RPUSH k a
runs   | INCR k | RPUSH k a
runs   | SADD k a | SADD k a
runs   | SREM k zz | SADD k a
runs   | SMOVE k {k}d zz | SADD k a ; SADD {k}d b
aborts | HSET k f v | HSET k f v
runs   | HSETNX k f w | HSET k f v
runs   | HDEL k zz | HSET k f v
aborts | HINCRBY k f 0 | HSET k f 1
runs   | ZADD k 1 a | ZADD k 1 a
runs   | ZADD k NX 2 a | ZADD k 1 a
runs   | ZADD k XX 2 a
runs   | ZADD k XX 2 b | ZADD k 1 a
runs   | ZINCRBY k 0 a | ZADD k 1 a
runs   | ZREM k zz | ZADD k 1 a
runs   | ZREMRANGEBYSCORE k 5 6 | ZADD k 1 a
runs   | ZREMRANGEBYRANK k 5 6 | ZADD k 1 a
runs   | ZPOPMIN k 0 | ZADD k 1 a
runs   | LREM k 0 zz | RPUSH k a
aborts | LTRIM k 0 -1 | RPUSH k a
aborts | LSET k 0 a | RPUSH k a
runs   | LSET k 5 a | RPUSH k a
runs   | LINSERT k BEFORE zz b | RPUSH k a
runs   | LPOP k 0 | RPUSH k a
runs   | LPOS k a | RPUSH k a
runs   | LMOVE nosrc k LEFT LEFT | RPUSH k a
aborts | APPEND k "" | SET k v
runs   | SETRANGE k 0 "" | SET k v
aborts | INCRBY k 0 | SET k 1
runs   | SETBIT k 0 0 | SET k \0
runs   | INCR k | SET k v
aborts | SET k v | SET k v
runs   | SETNX k w | SET k v
runs   | EXPIRE k 100 XX | SET k v
runs   | PERSIST k | SET k v
runs   | DEL k
runs   | SPOP k 0 | SADD k a
runs   | SINTERSTORE k {k}x {k}y
runs   | PFADD k a | PFADD k a
runs   | HSET k f | HSET k f v
runs   | LPUSHX k a
runs   | GETDEL k
runs   | RENAME k k | SET k v
runs   | SORT {k}src STORE k
runs   | BITFIELD k GET u8 0 | SET k v
runs   | BITFIELD k SET u8 0 0 | SET k \0
runs   | BITFIELD k OVERFLOW FAIL INCRBY u8 16 300 | SET k \0
runs   | BITFIELD k OVERFLOW FAIL INCRBY u8 0 300
runs   | BITFIELD k GET u8 0
runs   | GETEX k | SET k v
aborts | ZRANGESTORE k {k}none 0 -1 | ZADD k 1 a
aborts | SETBIT k 15 0 | SET k \0
aborts | SETBIT k 0 1 | SET k \0
aborts | BITFIELD k SET u8 16 0 | SET k \0
runs   | BITFIELD k INCRBY u8 0 0 | SET k \0
aborts | BITFIELD k SET u8 0 1 | SET k \0
runs   | BITFIELD k OVERFLOW FAIL INCRBY u8 0 300 | SET k \0
runs   | BITFIELD k OVERFLOW WRAP INCRBY u8 0 256 | SET k \0
aborts | BITFIELD k SET u8 0 0
aborts | SETBIT k 3 0
aborts | PFADD k
runs   | PFADD k | PFADD k a
aborts | PFCOUNT k | PFADD k a ; PFADD k b
runs   | PFCOUNT k | PFADD k a ; PFCOUNT k
aborts | PFMERGE k | PFADD k a
aborts | EXPIRE k 100 | SET k v
aborts | PERSIST k | SET k v EX 100
aborts | SETRANGE k 0 v | SET k v
aborts | SADD k b | SADD k a
aborts | SREM k a | SADD k a b
aborts | SMOVE k {k}d a | SADD k a ; SADD {k}d b
aborts | SPOP k | SADD k a b
aborts | ZADD k 2 a | ZADD k 1 a
aborts | ZINCRBY k 1 a | ZADD k 1 a
aborts | LPUSH k b | RPUSH k a
aborts | LREM k 0 a | RPUSH k a b
aborts | LINSERT k BEFORE a b | RPUSH k a
aborts | LPOP k | RPUSH k a
aborts | HDEL k f | HSET k f v
aborts | ZPOPMIN k | ZADD k 1 a 2 b
aborts | ZREMRANGEBYRANK k 0 0 | ZADD k 1 a 2 b
aborts | LMOVE k k LEFT RIGHT | RPUSH k a b
aborts | LMOVE k k LEFT RIGHT | RPUSH k a
runs   | SMOVE k k a | SADD k a
runs   | GETEX k PERSIST | SET k v
aborts | GETEX k EX 100 | SET k v
aborts | HINCRBYFLOAT k f 0 | HSET k f 1
aborts | INCRBYFLOAT k 0 | SET k 1
aborts | APPEND k ""
runs   | SETRANGE k 0 ""
runs   | LSET k 0 a | SET k v
runs   | ZADD k XX INCR 1 b | ZADD k 1 a
runs   | ZADD k GT 1 a | ZADD k 5 a
aborts | SINTERSTORE k k | SADD k a
runs   | LPOS k zz | RPUSH k a
runs   | RPOPLPUSH {k}none k | RPUSH k a
aborts | BLPOP k 1 | RPUSH k a
runs   | SRANDMEMBER k | SADD k a
aborts | HSETNX k g w | HSET k f v
aborts | DECRBY k 0 | SET k 1
aborts | SETNX k v
aborts | COPY {k}s k | SET {k}s v
"#;

/// Redis signals a WATCHed key only for a write that changed it, or one
/// that overwrites whatever the value (HSET, LSET, LTRIM, APPEND, INCRBY
/// 0); a write refused with WRONGTYPE, SADD of a member already there,
/// ZADD of an unchanged score, SETBIT of the bit already set, PFADD that
/// changes no register, GETEX PERSIST without a TTL do not abort EXEC.
#[test]
fn watch_sees_exactly_the_writes_redis_signals() {
    fn words(command: &str) -> Vec<Vec<u8>> {
        let word = |w: &str| match w {
            "\"\"" => Vec::new(),
            w => w.replace("\\0", "\0").into_bytes(),
        };
        command.split_whitespace().map(word).collect()
    }
    fn run(c: &mut redis::Connection, command: &str) -> redis::RedisResult<Value> {
        let w = words(command);
        redis::cmd(std::str::from_utf8(&w[0]).unwrap())
            .arg(&w[1..])
            .query(c)
    }
    let s = Server::start(2);
    let (mut a, mut b) = (s.client(), s.client());
    let (mut rows, mut wrong) = (0, Vec::new());
    for line in REDIS_WATCH_TABLE.lines().filter(|l| !l.is_empty()) {
        let mut cols = line.split(" | ");
        let (want, write) = (cols.next().unwrap().trim(), cols.next().unwrap());
        let _: () = redis::cmd("FLUSHALL").query(&mut a).unwrap();
        for setup in cols.next().into_iter().flat_map(|s| s.split(" ; ")) {
            run(&mut a, setup).unwrap();
        }
        let _: () = redis::cmd("WATCH").arg("k").query(&mut a).unwrap();
        // Errors are part of the table (WRONGTYPE, out of range).
        let _ = run(&mut b, write);
        let got: Value = redis::pipe()
            .atomic()
            .set("{k}marker", 1)
            .query(&mut a)
            .unwrap();
        let got = if got == Value::Nil { "aborts" } else { "runs" };
        if got != want {
            wrong.push(format!("{write} ({line}): {got}, Redis {want}"));
        }
        rows += 1;
    }
    assert_eq!(rows, 107);
    assert!(
        wrong.is_empty(),
        "{} of {rows} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn watch_across_both_shards_and_a_transaction_on_a_third_key() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("wx:", 2, 2);
    let mut c = s.client();
    let _: () = redis::cmd("WATCH")
        .arg(&keys[0][0])
        .arg(&keys[1][0])
        .query(&mut c)
        .unwrap();
    let _: () = s.client().set(&keys[1][0], "changed").unwrap();
    let aborted: Value = redis::pipe()
        .atomic()
        .set(&keys[0][1], 1)
        .query(&mut c)
        .unwrap();
    assert_eq!(aborted, Value::Nil);
    let exists: bool = c.exists(&keys[0][1]).unwrap();
    assert!(!exists, "an aborted transaction runs nothing");
}

#[test]
fn concurrent_transfers_between_shards_keep_the_sum_constant() {
    const ACCOUNTS: usize = 4; // per shard
    const START: i64 = 1_000;
    let s = Server::start(2);
    let keys: Vec<String> = keys_on_each_shard("acct:", 2, ACCOUNTS)
        .into_iter()
        .flatten()
        .collect();
    let total = START * keys.len() as i64;
    let mut c = s.client();
    for k in &keys {
        let _: () = c.set(k, START).unwrap();
    }
    let url = s.url();
    let movers: Vec<_> = (0..4)
        .map(|t| {
            let (url, keys) = (url.clone(), keys.clone());
            thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut seed = 0x9e37_79b9u64 + t;
                for _ in 0..400 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let from = &keys[seed as usize % keys.len()];
                    let to = &keys[(seed >> 20) as usize % keys.len()];
                    let amount = (seed >> 40) as i64 % 50;
                    let _: (i64, i64) = redis::pipe()
                        .atomic()
                        .decr(from, amount)
                        .incr(to, amount)
                        .query(&mut c)
                        .unwrap();
                }
            })
        })
        .collect();
    // Snapshots inside transactions must always see the whole sum; plain
    // MGETs outside one may not, which is what makes this a real check.
    let mut checks = 0;
    while movers.iter().any(|m| !m.is_finished()) {
        let (values,): (Vec<i64>,) = redis::pipe().atomic().mget(&keys).query(&mut c).unwrap();
        assert_eq!(values.iter().sum::<i64>(), total, "snapshot #{checks}");
        checks += 1;
    }
    for m in movers {
        m.join().unwrap();
    }
    let values: Vec<i64> = c.mget(&keys).unwrap();
    assert_eq!(values.iter().sum::<i64>(), total);
    assert!(checks > 10, "only {checks} snapshots taken");
}

#[test]
fn optimistic_watch_increments_from_many_clients_end_exact() {
    const CLIENTS: usize = 6;
    const EACH: usize = 60;
    let s = Server::start(2);
    let keys = keys_on_each_shard("ctr:", 2, 1);
    let url = s.url();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = url.clone();
            // Half the clients count a key on each shard, both watched.
            let (key, other) = (keys[i % 2][0].clone(), keys[(i + 1) % 2][0].clone());
            thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut retries = 0;
                for _ in 0..EACH {
                    loop {
                        let _: () = redis::cmd("WATCH")
                            .arg(&key)
                            .arg(&other)
                            .query(&mut c)
                            .unwrap();
                        let n: Option<i64> = c.get(&key).unwrap();
                        let m: Option<i64> = c.get(&other).unwrap();
                        let done: Option<((), ())> = redis::pipe()
                            .atomic()
                            .set(&key, n.unwrap_or(0) + 1)
                            .set(&other, m.unwrap_or(0))
                            .query(&mut c)
                            .unwrap();
                        if done.is_some() {
                            break;
                        }
                        retries += 1;
                    }
                }
                retries
            })
        })
        .collect();
    let retries: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let mut c = s.client();
    let a: i64 = c.get(&keys[0][0]).unwrap();
    let b: i64 = c.get(&keys[1][0]).unwrap();
    assert_eq!(a + b, (CLIENTS * EACH) as i64);
    assert_eq!(a, (CLIENTS / 2 * EACH) as i64);

    // Every attempt shows on /metrics by outcome.
    let text = s.metrics();
    assert_eq!(
        metric(&text, "kora_transactions_total{result=\"exec\"}"),
        (CLIENTS * EACH) as u64
    );
    assert_eq!(
        metric(&text, "kora_transactions_total{result=\"watch_abort\"}"),
        retries as u64
    );
}

#[test]
fn transactions_count_on_metrics_by_outcome() {
    let s = Server::start(2);
    let mut r = s.raw();
    common::raw_exchange(
        &mut r,
        b"MULTI\r\nSET m 1\r\nEXEC\r\nMULTI\r\nDISCARD\r\nMULTI\r\nBAD\r\nEXEC\r\n",
    );
    let text = s.metrics();
    assert_eq!(metric(&text, "kora_transactions_total{result=\"exec\"}"), 1);
    assert_eq!(
        metric(&text, "kora_transactions_total{result=\"discard\"}"),
        2
    );
    assert_eq!(
        metric(&text, "kora_transactions_total{result=\"watch_abort\"}"),
        0
    );
}

#[test]
fn connection_commands_inside_a_transaction_run_at_exec() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("cc:", 2, 2);
    let mut c = s.client();
    let _: () = c.set(&keys[0][0], 1).unwrap();
    let _: () = c.set(&keys[1][0], 2).unwrap();
    let replies: Vec<Value> = redis::pipe()
        .cmd("MULTI")
        .cmd("SET")
        .arg(&keys[1][1])
        .arg(3)
        .cmd("DBSIZE")
        .cmd("RENAME")
        .arg(&keys[0][0])
        .arg(&keys[0][1])
        .cmd("PING")
        .cmd("EXEC")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        replies[5],
        Value::Array(vec![
            Value::Okay,
            Value::Int(3),
            Value::Okay,
            Value::SimpleString("PONG".into())
        ])
    );
    let moved: i64 = c.get(&keys[0][1]).unwrap();
    assert_eq!(moved, 1);
}

#[test]
fn a_client_that_disconnects_while_watching_leaves_nothing_behind() {
    let s = Server::start(2);
    for i in 0..50 {
        let mut c = s.client();
        let _: () = redis::cmd("WATCH")
            .arg(format!("gone:{i}"))
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    }
    // Writes to those keys still work and later transactions are unaffected.
    let mut c = s.client();
    for i in 0..50 {
        let _: () = c.set(format!("gone:{i}"), i).unwrap();
    }
    let done: Value = redis::pipe().atomic().get("gone:7").query(&mut c).unwrap();
    assert_eq!(done, Value::Array(vec![bulk("7")]));
}

/// A connection served by `core` (client ids are congruent to their core
/// modulo the worker count).
fn client_on_core(s: &Server, core: u64, workers: u64) -> redis::Connection {
    for _ in 0..500 {
        let mut c = s.client();
        let id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
        if id % workers == core {
            return c;
        }
    }
    panic!("no connection landed on core {core}");
}

#[test]
fn no_other_client_sees_a_transaction_half_done() {
    // The transaction writes a key on each shard with a 0.4 s pause in
    // between (DEBUG SLEEP, which holds the writer's core). A reader on the
    // other core, asking for the second key during the pause, must wait and
    // see both writes, never one.
    let s = Server::start_with(2, &["--enable-debug-command"]);
    let keys = keys_on_each_shard("half:", 2, 1);
    for writer_core in [0usize, 1] {
        let (a, b) = (
            keys[writer_core][0].clone(),
            keys[1 - writer_core][0].clone(),
        );
        let mut w = client_on_core(&s, writer_core as u64, 2);
        let mut r = client_on_core(&s, 1 - writer_core as u64, 2);
        let _: () = r.del(&[&a, &b]).unwrap();
        let writer = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                let replies: Value = redis::pipe()
                    .atomic()
                    .set(&a, 1)
                    .cmd("DEBUG")
                    .arg("SLEEP")
                    .arg("0.4")
                    .set(&b, 1)
                    .query(&mut w)
                    .unwrap();
                replies
            })
        };
        thread::sleep(Duration::from_millis(150));
        let seen_b: Option<i64> = r.get(&b).unwrap();
        let seen_a: Option<i64> = r.get(&a).unwrap();
        assert_eq!(
            (seen_a, seen_b),
            (Some(1), Some(1)),
            "a reader saw the transaction half done"
        );
        assert_eq!(
            writer.join().unwrap(),
            Value::Array(vec![Value::Okay, Value::Okay, Value::Okay])
        );
    }
}

fn slowlog_argvs(c: &mut redis::Connection) -> Vec<Vec<String>> {
    let entries: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").arg(100).query(c).unwrap();
    entries
        .into_iter()
        .map(|e| {
            let Value::Array(fields) = e else {
                panic!("entry {e:?}")
            };
            redis::from_redis_value::<Vec<String>>(fields[3].clone()).unwrap()
        })
        .collect()
}

#[test]
fn commands_inside_exec_reach_the_slowlog_and_errorstats_as_themselves() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("sl:", 2, 2);
    let mut c = s.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query(&mut c)
        .unwrap();
    // One shard only (the one-step path), then both shards (locks).
    for (tag, (a, b)) in [
        ("one", (&keys[0][0], &keys[0][1])),
        ("two", (&keys[0][0], &keys[1][0])),
    ] {
        let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
        let _: Value = redis::pipe()
            .atomic()
            .set(a, tag)
            .get(b)
            .query(&mut c)
            .unwrap();
        let logged = slowlog_argvs(&mut c);
        assert!(
            logged.contains(&vec!["SET".to_string(), a.clone(), tag.to_string()])
                || logged.contains(&vec!["set".to_string(), a.clone(), tag.to_string()]),
            "{tag}: {logged:?}"
        );
        assert!(
            logged.iter().any(|argv| argv.len() == 2
                && argv[0].eq_ignore_ascii_case("get")
                && argv[1] == *b),
            "{tag}: {logged:?}"
        );
        assert!(
            !logged
                .iter()
                .any(|argv| argv[0].eq_ignore_ascii_case("exec")),
            "EXEC is logged as its commands: {logged:?}"
        );
    }
    // EXECABORT and a WRONGTYPE inside EXEC count in errorstats.
    let mut r = s.raw();
    common::raw_exchange(&mut r, b"MULTI\r\nNOPE\r\nEXEC\r\n");
    let _: () = c.set(&keys[1][1], "s").unwrap();
    let _: Value = redis::pipe()
        .atomic()
        .lpush(&keys[1][1], "x")
        .ignore_errors()
        .query(&mut c)
        .unwrap_or(Value::Nil);
    let info: String = redis::cmd("INFO").arg("errorstats").query(&mut c).unwrap();
    assert!(info.contains("errorstat_EXECABORT:count=1"), "{info}");
    assert!(info.contains("errorstat_WRONGTYPE:count=1"), "{info}");
}

#[test]
fn connection_only_commands_in_a_transaction_lock_nothing_extra() {
    // PING/ECHO/TIME need no shard: alone they lock nothing, beside keyed
    // commands EXEC locks only those keys' shards.
    let s = Server::start_with(2, &["--enable-debug-command"]);
    let keys = keys_on_each_shard("lo:", 2, 1);
    let mut c = s.client();
    let only_ping: Value = redis::pipe()
        .atomic()
        .cmd("PING")
        .cmd("ECHO")
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        only_ping,
        Value::Array(vec![Value::SimpleString("PONG".into()), bulk("x")])
    );
    let mixed: Value = redis::pipe()
        .atomic()
        .set(&keys[0][0], 1)
        .cmd("PING")
        .incr(&keys[1][0], 2)
        .query(&mut c)
        .unwrap();
    assert_eq!(
        mixed,
        Value::Array(vec![
            Value::Okay,
            Value::SimpleString("PONG".into()),
            Value::Int(2)
        ])
    );
}

#[test]
fn info_inside_a_transaction_sees_its_own_writes_on_every_shard() {
    // INFO asks the collector, which asks every shard for a snapshot while
    // this transaction holds them: snapshots must not wait for the locks
    // (they would miss the 1 s deadline and report stale counts).
    let s = Server::start(2);
    let keys = keys_on_each_shard("inf:", 2, 2);
    let mut c = s.client();
    let (_, _, _, info): ((), (), (), String) = redis::pipe()
        .atomic()
        .set(&keys[0][0], 1)
        .set(&keys[1][0], 1)
        .set(&keys[1][1], 1)
        .cmd("INFO")
        .arg("keyspace")
        .query(&mut c)
        .unwrap();
    assert!(info.contains("db0:keys=3,"), "{info}");
}

#[test]
fn plain_commands_on_a_locked_core_are_not_starved_by_other_cores_transactions() {
    // Clients on core 1 run cross-shard transactions back to back, so a
    // lock on shard 0 is always queued. A plain GET from a client on core 0
    // (run inline there) must still get its turn between two holders
    // (found in review: it used to wait for 20 s and more).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Server::start(2);
    let keys = keys_on_each_shard("st:", 2, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..8)
        .map(|_| {
            let mut c = client_on_core(&s, 1, 2);
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let (a, b) = (keys[0][0].clone(), keys[1][0].clone());
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _: (i64, i64) = redis::pipe()
                        .atomic()
                        .incr(&a, 1)
                        .incr(&b, 1)
                        .query(&mut c)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let mut local = client_on_core(&s, 0, 2);
    local
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = std::time::Instant::now();
        let got: redis::RedisResult<Option<String>> = local.get(&keys[0][1]);
        assert!(got.is_ok(), "local GET timed out: {got:?}");
        worst = worst.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let done: u64 = movers.into_iter().map(|m| m.join().unwrap()).sum();
    assert!(done > 0);
    assert!(worst < Duration::from_secs(2), "local GET waited {worst:?}");
    let a: i64 = s.client().get(&keys[0][0]).unwrap();
    assert_eq!(a as u64, done, "every transaction ran exactly once");
}

#[test]
fn watching_a_key_twice_watches_it_once() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = redis::cmd("WATCH")
        .arg("dup")
        .arg("dup")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("WATCH").arg("dup").query(&mut c).unwrap();
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(info.contains(" watch=1 "), "{info}");
}
