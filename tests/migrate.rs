//! MIGRATE between real servers: Kora to Kora (keys on every shard of the
//! source), Kora to redis-server 7.0 and back, and Redis' replies compared
//! byte for byte (when /usr/bin/redis-server exists; otherwise those parts
//! print a note and are skipped). A target that is dead, silent or
//! unresolvable gives Redis' IOERR texts within the timeout, and the
//! source's core keeps serving meanwhile.

mod common;
mod redis_ref;

use std::time::{Duration, Instant};

use common::{Server, e, free_port, keys_on_each_shard, q};
use redis::{Connection, Value};
use redis_ref::{RedisRef, reply};

fn migrate(c: &mut Connection, port: u16, key: &str, extra: &[&str]) -> String {
    let port = port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &port, key, "0", "2000"];
    args.extend_from_slice(extra);
    reply(c, &args)
}

/// A few values of every type under `prefix`, one with a TTL.
fn fill(c: &mut Connection, prefix: &str) -> Vec<String> {
    let k = |s: &str| format!("{prefix}{s}");
    q::<()>(c, &["SET", &k("s"), "string"]);
    q::<()>(c, &["SET", &k("ttl"), "v", "PX", "60000"]);
    q::<()>(c, &["RPUSH", &k("l"), "a", "b", "c"]);
    q::<()>(c, &["HSET", &k("h"), "f", "v", "g", "w"]);
    q::<()>(c, &["SADD", &k("set"), "x", "y"]);
    q::<()>(c, &["ZADD", &k("z"), "1", "a", "2", "b"]);
    ["s", "ttl", "l", "h", "set", "z"]
        .iter()
        .map(|s| k(s))
        .collect()
}

fn dump(c: &mut Connection, key: &str) -> Value {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

#[test]
fn moves_keys_of_every_shard_and_type_between_kora_servers() {
    let src = Server::start(4);
    let dst = Server::start(2);
    let (mut a, mut b) = (src.client(), dst.client());
    // Single-key form: the value and its TTL arrive, the key leaves.
    let keys = fill(&mut a, "one:");
    for k in &keys {
        let before = dump(&mut a, k);
        assert_eq!(migrate(&mut a, dst.port, k, &[]), "+OK", "{k}");
        assert_eq!(q::<i64>(&mut a, &["EXISTS", k]), 0);
        assert_eq!(dump(&mut b, k), before, "{k}");
    }
    let ttl: i64 = q(&mut b, &["PTTL", "one:ttl"]);
    assert!(ttl > 50_000 && ttl <= 60_000, "{ttl}");
    assert_eq!(q::<i64>(&mut b, &["TTL", "one:s"]), -1);

    // KEYS form over keys on all four shards, with some missing.
    let per = keys_on_each_shard("many:", 4, 5);
    let all: Vec<&str> = per.iter().flatten().map(|s| s.as_str()).collect();
    for k in &all {
        q::<()>(&mut a, &["SET", k, k]);
    }
    let mut args = vec!["KEYS", "missing1"];
    args.extend(all.iter().copied());
    args.push("missing2");
    assert_eq!(migrate(&mut a, dst.port, "", &args), "+OK");
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]), 0);
    for k in &all {
        assert_eq!(q::<String>(&mut b, &["GET", k]), *k);
    }
    // Nothing left to move.
    assert_eq!(migrate(&mut a, dst.port, "", &args), "+NOKEY");
    assert_eq!(migrate(&mut a, dst.port, "nope", &[]), "+NOKEY");

    // COPY keeps the key here; without REPLACE the target refuses to
    // overwrite (and the key stays), with REPLACE it takes it.
    q::<()>(&mut a, &["SET", "many:0", "new"]);
    assert_eq!(
        migrate(&mut a, dst.port, "many:0", &["COPY"]),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(q::<String>(&mut a, &["GET", "many:0"]), "new");
    assert_eq!(
        migrate(&mut a, dst.port, "many:0", &["COPY", "REPLACE"]),
        "+OK"
    );
    assert_eq!(q::<String>(&mut a, &["GET", "many:0"]), "new");
    assert_eq!(q::<String>(&mut b, &["GET", "many:0"]), "new");
    // One key refused, the others moved and deleted here (as Redis).
    q::<()>(&mut a, &["SET", "many:0", "again"]);
    q::<()>(&mut a, &["SET", "fresh1", "1"]);
    q::<()>(&mut a, &["SET", "fresh2", "2"]);
    assert_eq!(
        migrate(
            &mut a,
            dst.port,
            "",
            &["KEYS", "fresh1", "many:0", "fresh2"]
        ),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(
        q::<i64>(&mut a, &["EXISTS", "fresh1", "fresh2", "many:0"]),
        1
    );
    assert_eq!(q::<i64>(&mut b, &["EXISTS", "fresh1", "fresh2"]), 2);
}

#[test]
fn option_errors_and_io_errors_are_redis_texts() {
    let s = Server::start(2);
    let mut c = s.client();
    q::<()>(&mut c, &["SET", "k", "v"]);
    let p = free_port().to_string();
    let bad = |c: &mut Connection, args: &[&str]| e(c, args);
    assert_eq!(
        bad(&mut c, &["MIGRATE", "127.0.0.1", &p, "k", "0"]),
        "ERR wrong number of arguments for 'migrate' command"
    );
    for extra in [&["FOO"][..], &["AUTH"], &["AUTH2", "u"], &["COPY", "x"]] {
        let mut args = vec!["MIGRATE", "127.0.0.1", &p, "k", "0", "100"];
        args.extend_from_slice(extra);
        assert_eq!(bad(&mut c, &args), "ERR syntax error", "{extra:?}");
    }
    assert_eq!(
        bad(
            &mut c,
            &["MIGRATE", "127.0.0.1", &p, "k", "0", "100", "KEYS", "k"]
        ),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    for (db, timeout) in [("x", "100"), ("0", "1.5"), ("0", " 1")] {
        assert_eq!(
            bad(&mut c, &["MIGRATE", "127.0.0.1", &p, "k", db, timeout]),
            "ERR value is not an integer or out of range"
        );
    }
    // Nobody listens: Redis' connect reports nothing and its write fails.
    assert_eq!(
        bad(&mut c, &["MIGRATE", "127.0.0.1", &p, "k", "0", "500"]),
        "IOERR error or timeout writing to target instance"
    );
    for host in ["", "no-such-host.invalid"] {
        assert_eq!(
            bad(&mut c, &["MIGRATE", host, &p, "k", "0", "500"]),
            "IOERR error or timeout connecting to the client"
        );
    }
    assert_eq!(
        bad(&mut c, &["MIGRATE", "127.0.0.1", "-1", "k", "0", "500"]),
        "IOERR error or timeout connecting to the client"
    );
    // A missing key never connects.
    assert_eq!(
        reply(&mut c, &["MIGRATE", "127.0.0.1", &p, "nokey", "0", "500"]),
        "+NOKEY"
    );
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
}

#[test]
fn a_silent_target_times_out_without_stalling_the_core() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let s = Server::start(1);
    let mut c = s.client();
    q::<()>(&mut c, &["SET", "k", "v"]);
    q::<()>(&mut c, &["SET", "other", "1"]);
    let waiter = {
        let port = port.clone();
        let mut c = s.client();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = reply(&mut c, &["MIGRATE", "127.0.0.1", &port, "k", "0", "1500"]);
            (r, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // The only core answers others at once, keys the MIGRATE does not hold
    // included.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
        assert_eq!(q::<String>(&mut c, &["GET", "other"]), "1");
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r, "-IOERR error or timeout reading to target instance");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The key stayed.
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    drop(silent);
}

#[test]
fn the_connection_is_cached_reopened_when_dropped_and_closed_when_idle() {
    let src = Server::start(1);
    let dst = Server::start(1);
    let mut a = src.client();
    let mut b = dst.client();
    let clients = |b: &mut Connection| -> usize {
        let list: String = q(b, &["CLIENT", "LIST"]);
        list.lines().count()
    };
    let before = clients(&mut b);
    for i in 0..5 {
        let k = format!("k{i}");
        q::<()>(&mut a, &["SET", &k, "v"]);
        assert_eq!(migrate(&mut a, dst.port, &k, &[]), "+OK");
    }
    // One connection for all five.
    assert_eq!(clients(&mut b), before + 1);
    // The target drops the cached connection: the next MIGRATE's first
    // try fails on it and the retry on a new connection succeeds.
    q::<i64>(&mut b, &["CLIENT", "KILL", "SKIPME", "yes"]);
    q::<()>(&mut a, &["SET", "after", "v"]);
    assert_eq!(migrate(&mut a, dst.port, "after", &[]), "+OK");
    assert_eq!(q::<String>(&mut b, &["GET", "after"]), "v");
    // Dropped again and noticed by the source's sweep before the next use.
    q::<i64>(&mut b, &["CLIENT", "KILL", "SKIPME", "yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    q::<()>(&mut a, &["SET", "later", "v"]);
    assert_eq!(migrate(&mut a, dst.port, "later", &[]), "+OK");
    assert_eq!(clients(&mut b), before + 1);
    // Idle for 10 s, the source closes it (checked once a second).
    let with = clients(&mut b);
    std::thread::sleep(Duration::from_millis(12_500));
    assert_eq!(clients(&mut b), with - 1);
}

#[test]
fn auth_and_select_reach_the_target() {
    let src = Server::start(2);
    let dst = Server::start(1);
    // (The harness' readiness PING must not need a password.)
    q::<()>(
        &mut dst.client(),
        &["CONFIG", "SET", "requirepass", "sesame"],
    );
    let mut a = src.client();
    q::<()>(&mut a, &["SET", "k", "v"]);
    assert_eq!(
        migrate(&mut a, dst.port, "k", &[]),
        "-ERR Target instance replied with error: NOAUTH Authentication required."
    );
    assert_eq!(
        migrate(&mut a, dst.port, "k", &["AUTH", "wrong"]),
        "-ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "v");
    assert_eq!(
        migrate(&mut a, dst.port, "k", &["AUTH2", "default", "sesame"]),
        "+OK"
    );
    q::<()>(&mut a, &["SET", "k2", "v"]);
    assert_eq!(migrate(&mut a, dst.port, "k2", &["AUTH", "sesame"]), "+OK");
    let mut b = redis::Client::open(format!("redis://:sesame@127.0.0.1:{}/", dst.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(q::<i64>(&mut b, &["EXISTS", "k", "k2"]), 2);
    // Kora has one database.
    q::<()>(&mut a, &["SET", "k3", "v"]);
    let port = dst.port.to_string();
    assert_eq!(
        reply(
            &mut a,
            &[
                "MIGRATE",
                "127.0.0.1",
                &port,
                "k3",
                "1",
                "1000",
                "AUTH",
                "sesame"
            ]
        ),
        "-ERR Target instance replied with error: ERR DB index is out of range"
    );
    assert_eq!(q::<String>(&mut a, &["GET", "k3"]), "v");
}

#[test]
fn kora_and_redis_migrate_to_each_other_with_the_same_replies() {
    let Some(r1) = RedisRef::start(free_port(), "MIGRATE") else {
        return;
    };
    let Some(r2) = RedisRef::start(free_port(), "MIGRATE") else {
        return;
    };
    let k1 = Server::start(2);
    let k2 = Server::start(1);
    // Kora → Redis and Redis → Kora: every type, TTL kept.
    let (mut kora, mut redis) = (k1.client(), r1.client());
    let keys = fill(&mut kora, "kr:");
    let mut args = vec!["KEYS"];
    args.extend(keys.iter().map(|s| s.as_str()));
    let payloads: Vec<Value> = keys.iter().map(|k| dump(&mut kora, k)).collect();
    assert_eq!(migrate(&mut kora, r1.port, "", &args), "+OK");
    assert_eq!(q::<i64>(&mut kora, &["DBSIZE"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut redis, &["LRANGE", "kr:l", "0", "-1"]),
        ["a", "b", "c"]
    );
    let ttl: i64 = q(&mut redis, &["PTTL", "kr:ttl"]);
    assert!(ttl > 50_000, "{ttl}");
    assert_eq!(migrate(&mut redis, k1.port, "", &args), "+OK");
    for (k, p) in keys.iter().zip(&payloads) {
        if k != "kr:set" {
            // (A set's members come back in Redis' hash order.)
            assert_eq!(&dump(&mut kora, k), p, "{k}");
        }
    }
    assert!(q::<i64>(&mut kora, &["PTTL", "kr:ttl"]) > 50_000);
    let mut members: Vec<String> = q(&mut kora, &["SMEMBERS", "kr:set"]);
    members.sort();
    assert_eq!(members, ["x", "y"]);

    // The same script of MIGRATEs from Redis (r1 → r2) and from Kora
    // (k1 → k2): the same replies.
    let mut r2c = r2.client();
    let mut k2c = k2.client();
    let script = |src: &mut Connection, dst: &mut Connection, port: u16| -> Vec<String> {
        let p = port.to_string();
        let dead = free_port().to_string();
        let mut out = Vec::new();
        for cmd in [
            &["SET", "a", "1"][..],
            &["SET", "b", "2"],
            &["SET", "c", "3"],
        ] {
            out.push(reply(src, cmd));
        }
        out.push(reply(dst, &["SET", "b", "theirs"]));
        let m = |rest: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ["MIGRATE", "127.0.0.1", &p]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        for args in [
            m(&["a", "0", "1000"]),
            m(&["a", "0", "1000"]),
            m(&["", "0", "1000", "KEYS", "b", "c", "zz"]),
            m(&["", "0", "1000", "REPLACE", "KEYS", "b"]),
            m(&["x", "0", "1000", "KEYS", "b"]),
            m(&["x", "0", "1000", "BOGUS"]),
            m(&["x", "y", "1000"]),
            m(&["x", "0", "1000", "AUTH", "pw"]),
            m(&["", "0", "1000", "KEYS"]),
            vec!["SET".into(), "a".into(), "again".into()],
            m(&["a", "0", "1000", "AUTH", "pw"]),
            m(&["a", "0", "1000", "AUTH2", "u", "pw"]),
            m(&["a", "0", "1000", "COPY", "REPLACE"]),
            vec![
                "MIGRATE".into(),
                "127.0.0.1".into(),
                dead.clone(),
                "a".into(),
                "0".into(),
                "300".into(),
            ],
            vec![
                "MIGRATE".into(),
                "".into(),
                dead.clone(),
                "a".into(),
                "0".into(),
                "300".into(),
            ],
        ] {
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            out.push(reply(src, &a));
        }
        for k in ["a", "b", "c"] {
            out.push(reply(src, &["GET", k]));
            out.push(reply(dst, &["GET", k]));
        }
        out
    };
    let theirs = script(&mut redis, &mut r2c, r2.port);
    let ours = script(&mut kora, &mut k2c, k2.port);
    assert_eq!(ours, theirs);
}
