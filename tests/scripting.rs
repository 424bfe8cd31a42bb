//! Lua scripting (issue 14, src/command/scripting/): EVAL/EVALSHA and
//! their _RO forms, SCRIPT, the Lua↔RESP conversions and error texts
//! compared with redis-server 7.0, the script cache across cores,
//! atomicity of scripts whose keys span shards, the undeclared-key rule,
//! busy scripts (SCRIPT KILL, BUSY, SHUTDOWN NOSAVE), OOM, metrics, and a
//! token-bucket rate limiter over two shards. Two shards throughout.

mod common;
mod redis_ref;

use std::time::{Duration, Instant};

use common::{Server, config_get, e, free_port, keys_on_each_shard, q};
use redis::Connection;
use redis_ref::{RedisRef, reply};

/// A connection served by core `core` (client ids are congruent to their
/// core's index modulo the number of cores).
fn client_on(s: &Server, core: i64, cores: i64) -> Connection {
    for _ in 0..200 {
        let mut c = s.client();
        let id: i64 = q(&mut c, &["CLIENT", "ID"]);
        if id % cores == core {
            return c;
        }
    }
    panic!("no connection landed on core {core}");
}

fn eval(c: &mut Connection, script: &str, keys: &[&str], args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd.query(c).unwrap_or_else(|err| panic!("{script}: {err}"))
}

fn eval_err(c: &mut Connection, script: &str, keys: &[&str]) -> String {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    match cmd.query::<redis::Value>(c) {
        Ok(v) => panic!("{script}: expected an error, got {v:?}"),
        Err(err) => common::error_text(&err),
    }
}

/// Conversions, redis.* API and error texts: the same replies as Redis
/// 7.0, byte for byte (errors include the sha and line suffix).
#[test]
fn replies_match_redis() {
    let Some(redis) = RedisRef::start(free_port(), "scripting replies") else {
        return;
    };
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis.client();
    let cases: &[&[&str]] = &[
        &["SET", "foo", "bar"],
        &["EVAL", "return redis.call('nosuchcmd')", "0"],
        &["EVAL", "return redis.call('get')", "0"],
        &["EVAL", "return redis.call()", "0"],
        &["EVAL", "return redis.call(1.5)", "0"],
        &["EVAL", "return redis.call('get', {})", "0"],
        &["EVAL", "return redis.call('get', true)", "0"],
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "foo"],
        &["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "foo"],
        &["EVAL", "return redis.pcall('nosuch')", "0"],
        &[
            "EVAL",
            "local t = redis.pcall('incr', KEYS[1]); return t['err']",
            "1",
            "foo",
        ],
        &["EVAL", "x = 5", "0"],
        &["EVAL", "return y", "0"],
        &["EVAL", "redis.call = 1", "0"],
        &["EVAL", "string.foo = 1", "0"],
        &["EVAL", "return rawset(_G, 'a', 1)", "0"],
        &["EVAL", "setmetatable(_G, nil)", "0"],
        &["EVAL", "return {1,2,3,'ciao',{1,2}}", "0"],
        &["EVAL", "return {1,2,nil,4}", "0"],
        &["EVAL", "return 3.99", "0"],
        &["EVAL", "return -3.99", "0"],
        &["EVAL", "return 1e300", "0"],
        &["EVAL", "return 0/0", "0"],
        &["EVAL", "return true", "0"],
        &["EVAL", "return false", "0"],
        &["EVAL", "return nil", "0"],
        &["EVAL", "return", "0"],
        &["EVAL", "return {err='My Error'}", "0"],
        &["EVAL", "return {err='-My Error'}", "0"],
        &["EVAL", "return {ok='fine'}", "0"],
        &["EVAL", "return {ok=1}", "0"],
        &["EVAL", "return {ok=1, err='x'}", "0"],
        &["EVAL", "return {1, ok='x'}", "0"],
        &["EVAL", "return {err='a\r\nb'}", "0"],
        &[
            "EVAL",
            "return {1, 'a', 2.5, true, false, {err='x'}, {ok='y'}}",
            "0",
        ],
        &["EVAL", "return redis.error_reply('x')", "0"],
        &["EVAL", "return redis.error_reply('-WRONG x')", "0"],
        &["EVAL", "return redis.error_reply('')", "0"],
        &["EVAL", "return redis.error_reply(5)", "0"],
        &["EVAL", "return redis.status_reply('x')", "0"],
        &["EVAL", "return redis.status_reply()", "0"],
        &["EVAL", "return redis.sha1hex('')", "0"],
        &["EVAL", "return redis.sha1hex()", "0"],
        &["EVAL", "math.randomseed(1); return math.random(1000)", "0"],
        &[
            "EVAL",
            "math.randomseed(7); return {math.random(), math.random(10, 20)}",
            "0",
        ],
        &["EVAL", "return math.random(0)", "0"],
        &["EVAL", "return math.random(1,2,3)", "0"],
        &["EVAL", "return os.clock()", "0"],
        &[
            "EVAL",
            "return type(loadstring)..type(coroutine)..type(unpack)..type(getmetatable)",
            "0",
        ],
        &["EVAL", "return print", "0"],
        &["EVAL", "return _VERSION", "0"],
        &["EVAL", "local f = loadstring('return 5'); return f()", "0"],
        &["EVAL", "error('boom')", "0"],
        &["EVAL", "error({err='boom2'})", "0"],
        &["EVAL", "error({err='ERR boom3'})", "0"],
        &["EVAL", "error()", "0"],
        &["EVAL", "error('x', 0)", "0"],
        &[
            "EVAL",
            "local a = 1\nlocal b = 2\nreturn redis.call('nosuch')",
            "0",
        ],
        &["EVAL", "return redis.call('eval', 'return 1', 0)", "0"],
        &["EVAL", "return redis.call('multi')", "0"],
        &["EVAL", "return redis.call('shutdown')", "0"],
        &["EVAL", "return redis.call('blpop', KEYS[1], 0)", "1", "q"],
        &["EVAL", "return redis.call('client', 'list')", "0"],
        &["EVAL", "return redis.setresp(2)", "0"],
        &["EVAL", "return redis.setresp(4)", "0"],
        &["EVAL", "return redis.setresp()", "0"],
        &["EVAL", "return 'x' .. ", "0"],
        &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
        &["EVALSHA", "fff", "0"],
        &["EVALSHA_RO", "fff", "0"],
        &[
            "EVAL_RO",
            "return redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &[
            "EVAL_RO",
            "return redis.pcall('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "foo"],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "3", "a"],
        &["EVAL", "return 1", "x"],
        &[
            "EVAL",
            "return {KEYS[1], ARGV[1], #KEYS, #ARGV}",
            "1",
            "k",
            "a",
        ],
        &["SCRIPT", "KILL"],
        &["SCRIPT", "EXISTS", "a", "b"],
        &["SCRIPT", "FLUSH", "x"],
        &["SCRIPT", "FLUSH", "ASYNC"],
        &["SCRIPT", "FLUSH", "SYNC"],
        &["SCRIPT", "FLUSH"],
        &["SCRIPT", "LOAD", "return 1"],
        &["SCRIPT", "LOAD", "return 1", "2"],
        &[
            "SCRIPT",
            "EXISTS",
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
            "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB",
        ],
        &["EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"],
        &["SCRIPT", "foo"],
        &["SCRIPT"],
        &["SCRIPT", "HELP"],
        &["SCRIPT", "DEBUG", "NO"],
        &["SCRIPT", "DEBUG", "x"],
        &[
            "EVAL",
            "redis.log(redis.LOG_WARNING, 'hi'); return redis.LOG_DEBUG..redis.LOG_VERBOSE..redis.LOG_NOTICE..redis.LOG_WARNING",
            "0",
        ],
        &["EVAL", "redis.log(1)", "0"],
        &["EVAL", "redis.log(99, 'x')", "0"],
        &[
            "EVAL",
            "return redis.REPL_ALL..redis.REPL_AOF..redis.REPL_SLAVE..redis.REPL_REPLICA..redis.REPL_NONE",
            "0",
        ],
        &["EVAL", "return redis.set_repl(redis.REPL_ALL)", "0"],
        &["EVAL", "return redis.set_repl(99)", "0"],
        &["EVAL", "return redis.replicate_commands()", "0"],
        &["EVAL", "return redis.breakpoint()", "0"],
        &["EVAL", "return redis.call('ping')", "0"],
        &["EVAL", "return redis.call('ping')['ok']", "0"],
        &["EVAL", "return redis.call('echo', 'x')", "0"],
        &["EVAL", "return redis.call('select', 0)", "0"],
        &[
            "EVAL",
            "return redis.call('get', KEYS[1]) == false",
            "1",
            "nokey",
        ],
        &[
            "EVAL",
            "return redis.call('hgetall', KEYS[1])",
            "1",
            "nokey",
        ],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 10); return redis.call('get', KEYS[1]) + 1",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "return redis.call('incrbyfloat', KEYS[1], 1.5)",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 0.1); return redis.call('get', KEYS[1])",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 1e20); return redis.call('get', KEYS[1])",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 3.0); return redis.call('get', KEYS[1])",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "return redis.call('hset', KEYS[1], 'a', '1', 'b', 2)",
            "1",
            "h",
        ],
        &["EVAL", "return redis.call('hgetall', KEYS[1])", "1", "h"],
        &[
            "EVAL",
            "return redis.call('zadd', KEYS[1], 1.5, 'a')",
            "1",
            "z",
        ],
        &[
            "EVAL",
            "return redis.call('zrange', KEYS[1], 0, -1, 'withscores')",
            "1",
            "z",
        ],
        &["EVAL", "return redis.call('set', KEYS[1])", "1", "k1"],
        &["EVAL", "return redis.call('lpush', KEYS[1], 1)", "1", "h"],
        &[
            "EVAL",
            "local ok, e = pcall(function() return redis.call('nosuch') end); return e",
            "0",
        ],
        &[
            "EVAL",
            "local ok, e = pcall(function() return redis.call('lpush', KEYS[1], 1) end); return {tostring(ok), e}",
            "1",
            "h",
        ],
        &[
            "EVAL",
            "local ok, e = pcall(function() error('x') end); return e",
            "0",
        ],
        &[
            "EVAL",
            "return pcall(function() return redis.call('nosuch') end)",
            "0",
        ],
        &["EVAL", "return {pcall(error, 'y')}", "0"],
        &["EVAL", "local t = {} ; t[1]=1 ; t[3]=3 ; return t", "0"],
        &[
            "EVAL",
            "return string.rep('x', 3) .. table.concat({1, 2}, ',')",
            "0",
        ],
        &[
            "EVAL",
            "return tostring(redis.call('incrbyfloat', KEYS[1], '0.25'))",
            "1",
            "n",
        ],
        // Shebang flags (Redis 7.0).
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
            "1",
            "foo",
        ],
        &["EVAL", "#!lua\nreturn 1", "0"],
        &["EVAL", "#!lua\nreturn x", "0"],
        &["EVAL", "#!lua\nerror('x')", "0"],
        &["EVAL", "#!lua flags=foo\nreturn 1", "0"],
        &["EVAL", "#!luax\nreturn 1", "0"],
        &["EVAL", "#!lua name=x\nreturn 1", "0"],
        &["EVAL", "#!lua flags=\nreturn 1", "0"],
        // Shebangs split as Redis' sdssplitargs: quotes, and an empty flag.
        &["EVAL", "#!lua flags=no-writes,\nreturn 1", "0"],
        &["EVAL", "#!lua \"flags=no-writes\"\nreturn 2", "0"],
        &["EVAL", "#!lua \"flags\nreturn 4", "0"],
        &["EVAL", "#!  \nreturn 5", "0"],
        &[
            "EVAL",
            "#!lua  flags=allow-oom,no-writes,no-cluster,allow-stale,allow-cross-slot-keys\nreturn 1",
            "0",
        ],
        &["EVAL", "#!lua flags=no-writes", "0"],
        &[
            "EVAL_RO",
            "#!lua\nreturn redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &[
            "EVAL_RO",
            "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
            "1",
            "foo",
        ],
        &[
            "EVAL",
            "#!lua\nreturn redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &["SCRIPT", "LOAD", "#!lua flags=bad\nreturn 1"],
    ];
    for case in cases {
        assert_eq!(reply(&mut k, case), reply(&mut r, case), "{case:?}");
    }
}

/// SCRIPT LOAD and EVAL on one core make EVALSHA work on every core;
/// SCRIPT EXISTS answers for the server; SCRIPT FLUSH empties every core.
#[test]
fn script_cache_across_cores() {
    let s = Server::start(2);
    let mut c0 = client_on(&s, 0, 2);
    let mut c1 = client_on(&s, 1, 2);
    let sha: String = q(&mut c0, &["SCRIPT", "LOAD", "return 'loaded'"]);
    assert_eq!(sha.len(), 40);
    for c in [&mut c0, &mut c1] {
        assert_eq!(q::<String>(c, &["EVALSHA", &sha, "0"]), "loaded");
        assert_eq!(
            q::<Vec<i64>>(c, &["SCRIPT", "EXISTS", &sha, "nope"]),
            vec![1, 0]
        );
    }
    // A first EVAL on core 1 makes its sha known on core 0.
    assert_eq!(
        q::<String>(&mut c1, &["EVAL", "return 'evaled'", "0"]),
        "evaled"
    );
    let evaled: String = q(&mut c0, &["SCRIPT", "LOAD", "return 'evaled'"]);
    assert_eq!(q::<String>(&mut c0, &["EVALSHA", &evaled, "0"]), "evaled");
    // EVALSHA run on the other core (its key's).
    let keys = keys_on_each_shard("cache:", 2, 1);
    for key in [&keys[0][0], &keys[1][0]] {
        for c in [&mut c0, &mut c1] {
            let r: String = q(c, &["EVALSHA", &sha, "1", key]);
            assert_eq!(r, "loaded");
        }
    }
    assert_eq!(q::<String>(&mut c1, &["SCRIPT", "FLUSH"]), "OK");
    for c in [&mut c0, &mut c1] {
        assert_eq!(
            q::<Vec<i64>>(c, &["SCRIPT", "EXISTS", &sha, &evaled]),
            vec![0, 0]
        );
        assert_eq!(
            e(c, &["EVALSHA", &sha, "0"]),
            "NOSCRIPT No matching script. Please use EVAL."
        );
    }
    // After a flush, EVAL sends the body again.
    assert_eq!(
        q::<String>(&mut c1, &["EVAL", "return 'evaled'", "0"]),
        "evaled"
    );
    assert_eq!(q::<String>(&mut c0, &["EVALSHA", &evaled, "0"]), "evaled");
}

/// A read-modify-write script over keys on both shards, from many clients
/// at once: no update is lost, and no other client (a cross-shard MGET)
/// ever sees one key updated without the other.
#[test]
fn scripts_over_two_shards_are_atomic() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("atom:", 2, 1);
    let (a, b) = (keys[0][0].clone(), keys[1][0].clone());
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 150;
    let script = "local x = tonumber(redis.call('get', KEYS[1]) or '0')\n\
                  local y = tonumber(redis.call('get', KEYS[2]) or '0')\n\
                  redis.call('set', KEYS[1], x + 1)\n\
                  redis.call('set', KEYS[2], y + 1)\n\
                  return x + y";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let mut c = s.client();
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let v: Vec<Option<i64>> = q(&mut c, &["MGET", &a, &b]);
                assert_eq!(v[0], v[1], "a half-done script was visible");
                seen += 1;
            }
            seen
        })
    };
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = s.client();
            let keys = [a.clone(), b.clone()];
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let sum: i64 = redis::cmd("EVAL")
                        .arg(script)
                        .arg(2)
                        .arg(&keys)
                        .query(&mut c)
                        .unwrap();
                    assert_eq!(sum % 2, 0, "each script saw both keys equal");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(watcher.join().unwrap() > 0);
    let mut c = s.client();
    let total = (CLIENTS * ROUNDS) as i64;
    assert_eq!(q::<Vec<i64>>(&mut c, &["MGET", &a, &b]), vec![total, total]);
    // The same with one shard: EVALSHA of a single-key increment.
    let sha: String = q(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('incr', KEYS[1])"],
    );
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = s.client();
            let (sha, key) = (sha.clone(), a.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let _: i64 = q(&mut c, &["EVALSHA", &sha, "1", &key]);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(q::<i64>(&mut c, &["GET", &a]), 2 * total);
}

const UNDECLARED: &str = "ERR Script attempted to access a key that was not declared in KEYS and lives on another shard than the declared keys";

/// Keys not in KEYS: allowed on the shard the script holds, refused on
/// another (raised by redis.call with the line, returned by pcall).
#[test]
fn undeclared_keys_on_another_shard_are_refused() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("und:", 2, 2);
    let (d0, u0, u1) = (&keys[0][0], &keys[0][1], &keys[1][0]);
    let mut c = s.client();
    // Same shard as the declared key: fine.
    let v = eval(
        &mut c,
        "redis.call('set', ARGV[1], 'x'); return redis.call('get', ARGV[1])",
        &[d0],
        &[u0],
    );
    assert_eq!(v, redis::Value::BulkString(b"x".to_vec()));
    // Another shard: refused.
    let mut cmd = redis::cmd("EVAL");
    cmd.arg("return redis.call('get', ARGV[1])")
        .arg(1)
        .arg(d0)
        .arg(u1);
    let err = common::error_text(&cmd.query::<redis::Value>(&mut c).unwrap_err());
    assert!(err.starts_with(&format!("{UNDECLARED} script: ")), "{err}");
    assert!(err.ends_with(", on @user_script:1."), "{err}");
    let mut cmd = redis::cmd("EVAL");
    cmd.arg("return redis.pcall('get', ARGV[1])")
        .arg(1)
        .arg(d0)
        .arg(u1);
    assert_eq!(
        common::error_text(&cmd.query::<redis::Value>(&mut c).unwrap_err()),
        UNDECLARED
    );
    // A script without keys holds its connection's shard.
    for core in 0..2 {
        let mut c = client_on(&s, core, 2);
        let here = &keys[core as usize][0];
        let there = &keys[1 - core as usize][0];
        let script = "return redis.pcall('exists', ARGV[1])";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(0).arg(here);
        assert!(cmd.query::<i64>(&mut c).is_ok());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(0).arg(there);
        assert_eq!(
            common::error_text(&cmd.query::<redis::Value>(&mut c).unwrap_err()),
            UNDECLARED
        );
    }
    // With keys on both shards declared, both shards are held.
    let v = eval(
        &mut c,
        "redis.call('set', KEYS[1], 1); redis.call('set', ARGV[1], 2); return redis.call('mget', KEYS[2], ARGV[1])",
        &[d0, u1],
        &[u0],
    );
    assert_eq!(
        v,
        redis::Value::Array(vec![
            redis::Value::Nil,
            redis::Value::BulkString(b"2".to_vec())
        ])
    );
    // Whole-keyspace commands are refused inside scripts.
    let err = eval_err(&mut c, "return redis.call('dbsize')", &[]);
    assert!(
        err.starts_with("ERR This command reaches every shard or the connection; Kora does not run it from scripts script: "),
        "{err}"
    );
}

/// Multi-key commands inside a script whose keys span the shards (RPOPLPUSH,
/// MSET, MGET), pcall around a redis.call that waits for another core,
/// and errors located at their line.
#[test]
fn cross_shard_scripts_run_multikey_commands() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("xs:", 2, 1);
    let (a, b) = (keys[0][0].as_str(), keys[1][0].as_str());
    let mut c = s.client();
    let v = eval(
        &mut c,
        "redis.call('rpush', KEYS[1], 'x', 'y'); return redis.call('rpoplpush', KEYS[1], KEYS[2])",
        &[a, b],
        &[],
    );
    assert_eq!(v, redis::Value::BulkString(b"y".to_vec()));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", b, "0", "-1"]),
        vec!["y"]
    );
    let v = eval(
        &mut c,
        "redis.call('del', KEYS[1], KEYS[2]); redis.call('mset', KEYS[1], 1, KEYS[2], 2); return redis.call('mget', KEYS[1], KEYS[2])",
        &[a, b],
        &[],
    );
    assert_eq!(
        v,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"1".to_vec()),
            redis::Value::BulkString(b"2".to_vec())
        ])
    );
    let v = eval(
        &mut c,
        "local ok, err = pcall(function() return redis.call('lpush', KEYS[2], 1) end)\nreturn {tostring(ok), err}",
        &[a, b],
        &[],
    );
    assert_eq!(
        v,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"false".to_vec()),
            redis::Value::BulkString(
                b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec()
            )
        ])
    );
    let err = eval_err(
        &mut c,
        "local x = redis.call('get', KEYS[1])\nlocal y = redis.call('lpush', KEYS[2], 1)\nreturn y",
        &[a, b],
    );
    assert!(
        err.starts_with(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: "
        ),
        "{err}"
    );
    assert!(err.ends_with(", on @user_script:2."), "{err}");
}

/// EVAL_RO / EVALSHA_RO refuse writes; reads work.
#[test]
fn read_only_variants() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = q(&mut c, &["SET", "ro", "v"]);
    assert_eq!(
        q::<String>(
            &mut c,
            &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "ro"]
        ),
        "v"
    );
    let sha: String = q(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('set', KEYS[1], 'w')"],
    );
    let err = e(&mut c, &["EVALSHA_RO", &sha, "1", "ro"]);
    assert_eq!(
        err,
        format!(
            "ERR Write commands are not allowed from read-only scripts. script: {sha}, on @user_script:1."
        )
    );
    assert_eq!(q::<String>(&mut c, &["GET", "ro"]), "v");
    assert_eq!(q::<String>(&mut c, &["EVALSHA", &sha, "1", "ro"]), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "ro"]), "w");
}

/// Scripts inside MULTI/EXEC, on one shard and across both.
#[test]
fn scripts_inside_transactions() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("tx:", 2, 1);
    let (a, b) = (keys[0][0].as_str(), keys[1][0].as_str());
    let mut c = s.client();
    let _: () = q(&mut c, &["MULTI"]);
    let _: () = q(
        &mut c,
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", a],
    );
    let _: () = q(
        &mut c,
        &[
            "EVAL",
            "return redis.call('incr', KEYS[1]) + redis.call('incr', KEYS[2])",
            "2",
            a,
            b,
        ],
    );
    let _: () = q(&mut c, &["INCR", b]);
    let replies: Vec<i64> = q(&mut c, &["EXEC"]);
    assert_eq!(replies, vec![1, 3, 2]);
}

const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// SCRIPT KILL until it answers something else than NOTBUSY (the script
/// has not reached the busy threshold yet); bounded.
fn kill_when_busy(c: &mut Connection) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = match redis::cmd("SCRIPT").arg("KILL").query::<String>(c) {
            Ok(ok) => ok,
            Err(err) => common::error_text(&err),
        };
        if r != NOTBUSY {
            return r;
        }
        assert!(Instant::now() < deadline, "the script never became busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// busy-reply-threshold: past it SCRIPT KILL (from the other core) stops
/// a script that has not written; UNKILLABLE once it wrote, and BUSY for
/// scripts bound to its core; commands on the other core run on; SHUTDOWN
/// NOSAVE still stops the server.
#[test]
fn busy_scripts_kill_and_shutdown() {
    let s = Server::start_with(2, &["--busy-reply-threshold", "100"]);
    let keys = keys_on_each_shard("busy:", 2, 1);
    let (k0, k1) = (keys[0][0].as_str(), keys[1][0].as_str());
    let mut free = client_on(&s, 0, 2);
    assert_eq!(e(&mut free, &["SCRIPT", "KILL"]), NOTBUSY);
    let looping = {
        let mut c = client_on(&s, 1, 2);
        std::thread::spawn(move || {
            e(
                &mut c,
                &["EVAL", "local i = 0\nwhile true do i = i + 1 end", "0"],
            )
        })
    };
    assert_eq!(kill_when_busy(&mut free), "OK");
    let err = looping.join().unwrap();
    assert!(
        err.starts_with("ERR Script killed by user with SCRIPT KILL... script: "),
        "{err}"
    );
    assert!(err.ends_with(", on @user_script:2."), "{err}");
    // Core 1 serves again.
    assert_eq!(q::<i64>(&mut free, &["EVAL", "return 1", "1", k1]), 1);
    // A script that wrote cannot be killed; meanwhile scripts bound to its
    // core answer BUSY, the other core's keys are served.
    let writing = {
        let mut c = client_on(&s, 1, 2);
        let key = k1.to_string();
        std::thread::spawn(move || {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg("redis.call('set', KEYS[1], 'x') while true do end")
                .arg(1)
                .arg(key);
            cmd.query::<redis::Value>(&mut c).is_err()
        })
    };
    assert_eq!(kill_when_busy(&mut free), UNKILLABLE);
    assert_eq!(e(&mut free, &["EVAL", "return 1", "1", k1]), BUSY);
    assert_eq!(e(&mut free, &["EVAL", "return 'new body'", "0"]), BUSY);
    let _: () = q(&mut free, &["SET", k0, "v"]);
    assert_eq!(q::<String>(&mut free, &["GET", k0]), "v");
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<redis::Value>(&mut free);
    s.wait_exit(Duration::from_secs(10))
        .expect("SHUTDOWN NOSAVE stops the server while a script loops");
    assert!(
        writing.join().unwrap(),
        "the looping client's connection closed"
    );
}

/// The knob: default, flag, alias, kora.toml, CONFIG SET/GET.
#[test]
fn busy_reply_threshold_knob() {
    let s = Server::start(2);
    let mut c = s.client();
    let get = |c: &mut Connection, name: &str| -> String {
        let v: Vec<String> = q(c, &["CONFIG", "GET", name]);
        v[1].clone()
    };
    assert_eq!(get(&mut c, "busy-reply-threshold"), "5000");
    assert_eq!(get(&mut c, "lua-time-limit"), "5000");
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-time-limit", "250"]);
    assert_eq!(get(&mut c, "busy-reply-threshold"), "250");
    for core in 0..2 {
        let mut c = client_on(&s, core, 2);
        assert_eq!(get(&mut c, "busy-reply-threshold"), "250");
    }
    assert!(
        e(&mut c, &["CONFIG", "SET", "busy-reply-threshold", "-1"])
            .starts_with("ERR CONFIG SET failed")
    );
    drop(s);
    let s = Server::start_with(2, &["--lua-time-limit", "1234"]);
    assert_eq!(get(&mut s.client(), "busy-reply-threshold"), "1234");
    drop(s);
    let dir = std::env::temp_dir().join(format!("kora-script-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kora.toml");
    std::fs::write(&path, "busy_reply_threshold = 777\n").unwrap();
    let s = Server::start_with(2, &["--config", path.to_str().unwrap()]);
    assert_eq!(get(&mut s.client(), "busy-reply-threshold"), "777");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Over maxmemory with nothing to evict, a script's first write is
/// refused with OOM (Redis 7's rule: before the script has written);
/// reads still run.
#[test]
fn scripts_respect_maxmemory() {
    let s = Server::start_with(
        2,
        &["--maxmemory", "16mb", "--maxmemory-policy", "noeviction"],
    );
    let mut c = s.client();
    let keys = keys_on_each_shard("oom:", 2, 400);
    let value = "x".repeat(100_000);
    let mut full = false;
    for key in &keys[0] {
        let r = redis::cmd("SET").arg(key).arg(&value).query::<()>(&mut c);
        if let Err(err) = r {
            assert_eq!(
                common::error_text(&err),
                "OOM command not allowed when used memory > 'maxmemory'."
            );
            full = true;
            break;
        }
    }
    assert!(full, "the shard never filled");
    let key = keys[0][0].as_str();
    let err = eval_err(&mut c, "return redis.call('set', KEYS[1], 'y')", &[key]);
    assert!(
        err.starts_with("OOM command not allowed when used memory > 'maxmemory'. script: "),
        "{err}"
    );
    let n: i64 = q(
        &mut c,
        &["EVAL", "return redis.call('strlen', KEYS[1])", "1", key],
    );
    assert_eq!(n, 100_000);
    // With a shebang (and no no-writes/allow-oom) a script is refused
    // before it runs; no-writes and allow-oom scripts run.
    assert_eq!(
        eval_err(
            &mut c,
            "#!lua\nreturn redis.call('get', KEYS[1]) and 1",
            &[key]
        ),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    let n: i64 = q(
        &mut c,
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('strlen', KEYS[1])",
            "1",
            key,
        ],
    );
    assert_eq!(n, 100_000);
    let _: String = q(
        &mut c,
        &[
            "EVAL",
            "#!lua flags=allow-oom\nreturn redis.call('set', KEYS[1], 'z')",
            "1",
            key,
        ],
    );
    // DEL is not denyoom: it runs, and frees room.
    let _: i64 = q(
        &mut c,
        &["EVAL", "return redis.call('del', KEYS[1])", "1", key],
    );
}

/// Scripts and the commands they run show in INFO commandstats,
/// errorstats and /metrics.
#[test]
fn scripts_are_counted() {
    let s = Server::start(2);
    let mut c = s.client();
    for _ in 0..3 {
        let _: i64 = q(
            &mut c,
            &["EVAL", "return redis.call('incr', KEYS[1])", "1", "cnt"],
        );
    }
    let _ = e(
        &mut c,
        &["EVAL", "return redis.call('lpush', KEYS[1], 1)", "1", "cnt"],
    );
    let stats: String = q(&mut c, &["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_incr:calls=3,"), "{stats}");
    assert!(stats.contains("cmdstat_eval:calls=4,"), "{stats}");
    assert!(stats.contains("cmdstat_lpush:calls=1,"), "{stats}");
    let errors: String = q(&mut c, &["INFO", "errorstats"]);
    assert!(errors.contains("errorstat_WRONGTYPE:count=2"), "{errors}");
    let memory: String = q(&mut c, &["INFO", "memory"]);
    assert!(
        memory.contains("number_of_cached_scripts:2\r\n"),
        "{memory}"
    );
    assert!(memory.contains("used_memory_lua:"), "{memory}");
    let m = s.metrics();
    assert!(m.contains("\nkora_script_calls_total 4\n"), "{m}");
    assert!(m.contains("\nkora_script_errors_total 1\n"), "{m}");
    assert!(m.contains("\nkora_scripts_cached 2\n"), "{m}");
    assert!(m.contains("\nkora_script_duration_seconds_total "), "{m}");
}

/// A token bucket over two shards (tokens on one, the last refill time on
/// the other), hammered by concurrent clients: exactly the bucket's
/// capacity is granted while it does not refill.
#[test]
fn token_bucket_rate_limiter_over_two_shards() {
    const BUCKET: &str = r#"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tokens = tonumber(redis.call('get', KEYS[1]) or capacity)
local last = tonumber(redis.call('get', KEYS[2]) or now)
tokens = math.min(capacity, tokens + (now - last) * rate)
local granted = 0
if tokens >= want then
  tokens = tokens - want
  granted = 1
end
redis.call('set', KEYS[1], tokens)
redis.call('set', KEYS[2], now)
return granted
"#;
    let s = Server::start(2);
    let keys = keys_on_each_shard("bucket:", 2, 1);
    let (tokens, stamp) = (keys[0][0].clone(), keys[1][0].clone());
    let mut c = s.client();
    let sha: String = q(&mut c, &["SCRIPT", "LOAD", BUCKET]);
    const CAPACITY: i64 = 100;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let mut c = s.client();
            let (sha, tokens, stamp) = (sha.clone(), tokens.clone(), stamp.clone());
            std::thread::spawn(move || {
                let mut granted = 0;
                for _ in 0..40 {
                    // A fixed clock: no refill during the test.
                    let cap = CAPACITY.to_string();
                    granted += q::<i64>(
                        &mut c,
                        &[
                            "EVALSHA", &sha, "2", &tokens, &stamp, &cap, "1", "1000", "1",
                        ],
                    );
                }
                granted
            })
        })
        .collect();
    let granted: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(granted, CAPACITY);
    assert_eq!(q::<i64>(&mut c, &["GET", &tokens]), 0);
    // Time passes: 10 tokens per second for 2 s refill 20.
    let n: i64 = q(
        &mut c,
        &[
            "EVALSHA", &sha, "2", &tokens, &stamp, "100", "10", "1002", "15",
        ],
    );
    assert_eq!(n, 1);
    assert_eq!(q::<i64>(&mut c, &["GET", &tokens]), 5);
}

fn eval_either(c: &mut Connection, script: &str) -> Result<redis::Value, String> {
    redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .query(c)
        .map_err(|err| common::error_text(&err))
}

/// A numeric INFO field.
fn info_u64(c: &mut Connection, section: &str, field: &str) -> u64 {
    common::info_field(c, section, field).parse().unwrap()
}

/// `lua-memory-limit`: a script that allocates past its core's limit
/// ends with an error (also when it wraps the allocation in pcall), the
/// heap it left is collected at once, the next script runs, and other
/// clients' data is untouched. Default 1gb; flag, kora.toml, CONFIG SET
/// (0: no limit).
#[test]
fn a_script_cannot_take_more_lua_heap_than_the_limit() {
    let s = Server::start_with(2, &["--lua-memory-limit", "32mb"]);
    let mut c = client_on(&s, 0, 2);
    let _: () = q(&mut c, &["SET", "k", "v"]);
    assert_eq!(config_get(&mut c, "lua-memory-limit"), "33554432");
    // About 70 MB of tables (strings that differ only at their end would
    // collide in Lua 5.1's sampled string hash and make this slow).
    let hog = "local t = {} for i = 1, 1000000 do t[i] = {i} end return #t";
    // The run ends with an error; or the script catches it (pcall) and
    // goes on. Either way what it left is collected at once, and the next
    // script runs.
    let caught = format!("local ok, err = pcall(function() {hog} end) return tostring(err)");
    for script in [hog.to_string(), caught] {
        match eval_either(&mut c, &script) {
            Err(err) => assert!(
                err.starts_with(
                    "ERR not enough memory: the Lua heap reached lua-memory-limit script: "
                ),
                "{err}"
            ),
            Ok(v) => assert_eq!(v, redis::Value::BulkString(b"not enough memory".to_vec())),
        }
        assert!(info_u64(&mut c, "memory", "used_memory_lua") < 16 << 20);
        assert_eq!(
            eval(&mut c, "return #redis.call('get', 'k')", &[], &[]),
            redis::Value::Int(1)
        );
    }
    // Under the limit a large table is fine.
    assert_eq!(
        eval(
            &mut c,
            "local t = {} for i = 1, 100000 do t[i] = i end return #t",
            &[],
            &[]
        ),
        redis::Value::Int(100_000)
    );
    // Lifted at runtime on every core: the same script runs to its end.
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-memory-limit", "0"]);
    for core in 0..2 {
        let mut c = client_on(&s, core, 2);
        assert_eq!(config_get(&mut c, "lua-memory-limit"), "0");
    }
    assert_eq!(eval(&mut c, hog, &[], &[]), redis::Value::Int(1_000_000));
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-memory-limit", "16mb"]);
    assert!(eval_err(&mut c, hog, &[]).starts_with("ERR not enough memory"));
    assert!(
        e(&mut c, &["CONFIG", "SET", "lua-memory-limit", "lots"])
            .starts_with("ERR CONFIG SET failed")
    );
    drop(s);
    let s = Server::start(2);
    assert_eq!(
        config_get(&mut s.client(), "lua-memory-limit"),
        "1073741824"
    );
    drop(s);
    let dir = common::TempDir::new("luamem");
    let path = dir.0.join("kora.toml");
    std::fs::write(
        &path,
        "lua_memory_limit = \"64mb\"\nlua_eval_cache_limit = 7\n",
    )
    .unwrap();
    let s = Server::start_with(2, &["--config", path.to_str().unwrap()]);
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "lua-memory-limit"), "67108864");
    assert_eq!(config_get(&mut c, "lua-eval-cache-limit"), "7");
}

/// `lua-eval-cache-limit` (Redis 7.4's script eviction): a client sending
/// ever new EVAL bodies no longer grows the cache without bound. Past the
/// limit the least recently used EVAL script goes (EVALSHA of it answers
/// NOSCRIPT, EVAL of it still runs); SCRIPT LOAD's scripts stay;
/// `evicted_scripts` and `kora_scripts_evicted_total` count; CONFIG SET
/// evicts down to a lower limit at once.
#[test]
fn eval_scripts_are_evicted_past_the_cache_limit() {
    let s = Server::start_with(2, &["--lua-eval-cache-limit", "4"]);
    let mut c = client_on(&s, 1, 2);
    assert_eq!(config_get(&mut c, "lua-eval-cache-limit"), "4");
    let kept: String = q(&mut c, &["SCRIPT", "LOAD", "return 'kept'"]);
    // Cached by EVAL, then made permanent by SCRIPT LOAD.
    assert_eq!(
        eval(&mut c, "return 'promoted'", &[], &[]),
        redis::Value::BulkString(b"promoted".to_vec())
    );
    let promoted: String = q(&mut c, &["SCRIPT", "LOAD", "return 'promoted'"]);
    for n in 0..4 {
        assert_eq!(
            eval(&mut c, &format!("return {n}"), &[], &[]),
            redis::Value::Int(n)
        );
    }
    let exists: Vec<i64> = q(&mut c, &["SCRIPT", "EXISTS", &kept, &promoted]);
    assert_eq!(exists, vec![1, 1]);
    let shas: Vec<String> = (0..4)
        .map(|n| {
            redis::Script::new(&format!("return {n}"))
                .get_hash()
                .to_string()
        })
        .collect();
    let evalsha = |c: &mut Connection, sha: &str| -> Result<redis::Value, String> {
        redis::cmd("EVALSHA")
            .arg(sha)
            .arg(0)
            .query(c)
            .map_err(|err| common::error_text(&err))
    };
    // Script 0 is used by EVALSHA between every two new ones: it stays.
    assert_eq!(evalsha(&mut c, &shas[0]), Ok(redis::Value::Int(0)));
    for n in 4..10 {
        assert_eq!(
            eval(&mut c, &format!("return {n}"), &[], &[]),
            redis::Value::Int(n)
        );
        assert_eq!(evalsha(&mut c, &shas[0]), Ok(redis::Value::Int(0)));
    }
    assert_eq!(
        evalsha(&mut c, &shas[1]),
        Err("NOSCRIPT No matching script. Please use EVAL.".to_string())
    );
    // Four EVAL scripts and the two loaded ones, on every core.
    for core in 0..2 {
        let mut c = client_on(&s, core, 2);
        assert_eq!(info_u64(&mut c, "memory", "number_of_cached_scripts"), 6);
        assert_eq!(
            evalsha(&mut c, &kept),
            Ok(redis::Value::BulkString(b"kept".to_vec()))
        );
        assert_eq!(
            evalsha(&mut c, &promoted),
            Ok(redis::Value::BulkString(b"promoted".to_vec()))
        );
    }
    // Ten EVAL scripts went through a cache of four (the promoted one
    // left it when SCRIPT LOAD made it permanent).
    let evicted = info_u64(&mut c, "stats", "evicted_scripts");
    assert_eq!(evicted, 6);
    assert!(
        s.metrics()
            .contains(&format!("\nkora_scripts_evicted_total {evicted}\n"))
    );
    // An evicted script still runs by EVAL (and is cached again).
    assert_eq!(eval(&mut c, "return 1", &[], &[]), redis::Value::Int(1));
    assert_eq!(evalsha(&mut c, &shas[1]), Ok(redis::Value::Int(1)));
    // A lower limit evicts at once, on every core.
    let _: () = q(&mut c, &["CONFIG", "SET", "lua-eval-cache-limit", "1"]);
    for core in 0..2 {
        let mut c = client_on(&s, core, 2);
        assert_eq!(info_u64(&mut c, "memory", "number_of_cached_scripts"), 3);
    }
    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info_u64(&mut c, "stats", "evicted_scripts"), 0);
    assert!(
        e(&mut c, &["CONFIG", "SET", "lua-eval-cache-limit", "-1"])
            .starts_with("ERR CONFIG SET failed")
    );
}

/// Ten thousand cached scripts (SCRIPT LOAD's are never evicted) and ten
/// thousand functions in one library: each used to take a slot of mlua's
/// reference stack, which has room for about 8 000, and the next one
/// panicked and took the core down. Now both live in the Lua registry.
#[test]
fn ten_thousand_loaded_scripts_and_functions_keep_the_server_up() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for n in 0..10_000 {
        pipe.cmd("SCRIPT").arg("LOAD").arg(format!("return {n}"));
    }
    let shas: Vec<String> = pipe.query(&mut c).unwrap();
    assert_eq!(shas.len(), 10_000);
    for n in [0, 7_999, 9_999] {
        let v: i64 = redis::cmd("EVALSHA")
            .arg(&shas[n])
            .arg(0)
            .query(&mut c)
            .unwrap();
        assert_eq!(v, n as i64);
    }
    assert_eq!(
        info_u64(&mut c, "memory", "number_of_cached_scripts"),
        10_000
    );
    let mut code = String::from("#!lua name=many\n");
    for n in 0..10_000 {
        code.push_str(&format!(
            "redis.register_function('f{n}', function() return {n} end)\n"
        ));
    }
    let name: String = q(&mut c, &["FUNCTION", "LOAD", &code]);
    assert_eq!(name, "many");
    for n in [0, 9_999] {
        let v: i64 = q(&mut c, &["FCALL", &format!("f{n}"), "0"]);
        assert_eq!(v, n);
    }
    let pong: String = q(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
}
