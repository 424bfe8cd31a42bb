//! Redis 7.0 Functions (src/command/functions.rs): FUNCTION LOAD/DELETE/
//! FLUSH/LIST/DUMP/RESTORE/STATS/KILL/HELP and FCALL/FCALL_RO's checks,
//! against the real server with 2 workers: the registry is the same on
//! both cores whichever core changed it, replies and errors are Redis
//! 7.0.15's (compared with a real redis-server when it is installed), and
//! payloads move between Redis and Kora both ways.

mod common;
mod redis_ref;

use std::time::{Duration, Instant};

use common::{Server, e, free_port, keys_on_each_shard, q};
use redis::{Connection, Value};
use redis_ref::{RedisRef, render, reply};

fn lib(name: &str, body: &str) -> String {
    format!("#!lua name={name}\n{body}")
}

fn client_id(c: &mut Connection) -> u64 {
    q(c, &["CLIENT", "ID"])
}

/// One connection on each of the two cores (client ids are congruent to
/// their core; SO_REUSEPORT spreads connections at random).
fn one_per_core(s: &Server) -> (Connection, Connection) {
    let mut by_core: [Option<Connection>; 2] = [None, None];
    for _ in 0..64 {
        let mut c = s.client();
        let core = (client_id(&mut c) % 2) as usize;
        by_core[core].get_or_insert(c);
        if by_core.iter().all(Option::is_some) {
            let [a, b] = by_core;
            return (a.unwrap(), b.unwrap());
        }
    }
    panic!("every connection landed on one core");
}

fn bulk(c: &mut Connection, args: &[&[u8]]) -> Vec<u8> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(c).unwrap() {
        Value::BulkString(b) => b,
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

fn run(c: &mut Connection, args: &[&[u8]]) -> String {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(c) {
        Ok(v) => render(&v),
        Err(e) => format!("-{}", common::error_text(&e)),
    }
}

/// FUNCTION LIST's libraries as (name, sorted function names, code): the
/// order of libraries and of a library's functions is Redis' hash order,
/// so comparisons sort.
fn libraries(c: &mut Connection) -> Vec<(String, Vec<String>, String)> {
    let v: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(c)
        .unwrap();
    let Value::Array(libs) = v else {
        panic!("{v:?}")
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    };
    let mut out: Vec<_> = libs
        .iter()
        .map(|l| {
            let Value::Array(f) = l else { panic!() };
            let Value::Array(funcs) = &f[5] else { panic!() };
            let mut names: Vec<String> = funcs
                .iter()
                .map(|f| match f {
                    Value::Array(f) => text(&f[1]),
                    other => panic!("{other:?}"),
                })
                .collect();
            names.sort();
            (text(&f[1]), names, text(&f[7]))
        })
        .collect();
    out.sort();
    out
}

/// Commands whose replies (errors included) must be Redis 7.0.15's, in
/// order, starting from no libraries. LIST is only asked with one library
/// loaded or with a pattern selecting one (order is hash order otherwise).
fn parity_script() -> Vec<Vec<String>> {
    let f = "function(keys, args) return 1 end";
    let cases: Vec<Vec<String>> = vec![
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib("t1", &format!("redis.register_function('f1', {f})")),
        ],
        vec!["FUNCTION".into(), "LIST".into()],
        vec!["FUNCTION".into(), "LIST".into(), "WITHCODE".into()],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib("t1", &format!("redis.register_function('f1', {f})")),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "REPLACE".into(),
            lib("t1", &format!("redis.register_function('f1', {f})")),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib("t2", &format!("redis.register_function('F1', {f})")),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nlocal x = string.format('%d', 1)".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nredis.call('ping')".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nx = 1".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nlocal t = nil; t.x = 1".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nredis.log(7, 'y')".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nredis.log('x', 'y')".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nredis.log(1)".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=t3\nlocal r = redis[{}]".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib(
                "t3",
                "redis.register_function{function_name='x', callback=function() end, flags={1}}",
            ),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib(
                "t3",
                "redis.register_function{function_name='x', callback=function() end, [true]=1}",
            ),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib("t3", "redis.register_function('x', function() end, 1)"),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=a b=c\nx".into(),
        ],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=a name=b\nx".into(),
        ],
        vec!["FUNCTION".into(), "LOAD".into(), "#!foo name=a\nx".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "#!lua name=a-b\nx".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "#!lua name=a".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "#!lua\nx".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "return 1".into()],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            "#!lua name=a\nsyntax error".into(),
        ],
        vec!["FUNCTION".into(), "LOAD".into(), "#!lua name=a\n".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "x".into(), "y".into()],
        vec!["FUNCTION".into(), "LOAD".into(), "REPLACE".into()],
        vec!["FUNCTION".into(), "LOAD".into()],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib(
                "t4",
                "redis.register_function{function_name='x4', callback=function() end, flags={'no-writes','allow-oom','allow-stale','no-cluster','allow-cross-slot-keys'}, description='hi'}",
            ),
        ],
        vec![
            "FUNCTION".into(),
            "LIST".into(),
            "LIBRARYNAME".into(),
            "T4".into(),
            "WITHCODE".into(),
        ],
        vec!["FUNCTION".into(), "LIST".into(), "LIBRARYNAME".into()],
        vec![
            "FUNCTION".into(),
            "LIST".into(),
            "WITHCODE".into(),
            "WITHCODE".into(),
        ],
        vec!["FUNCTION".into(), "LIST".into(), "foo".into()],
        vec!["FUNCTION".into(), "STATS".into()],
        vec!["FUNCTION".into(), "STATS".into(), "x".into()],
        vec!["FUNCTION".into(), "DUMP".into(), "x".into()],
        vec!["FUNCTION".into(), "KILL".into()],
        vec!["FUNCTION".into(), "HELP".into()],
        vec!["FUNCTION".into(), "foo".into()],
        vec!["FUNCTION".into()],
        vec!["FUNCTION".into(), "DELETE".into()],
        vec!["FUNCTION".into(), "DELETE".into(), "T1".into()],
        vec!["FUNCTION".into(), "DELETE".into(), "t1".into()],
        vec!["FUNCTION".into(), "DELETE".into(), "t1".into()],
        vec!["FUNCTION".into(), "FLUSH".into(), "x".into()],
        vec![
            "FUNCTION".into(),
            "FLUSH".into(),
            "ASYNC".into(),
            "x".into(),
        ],
        vec!["FUNCTION".into(), "RESTORE".into(), "abc".into()],
        vec![
            "FUNCTION".into(),
            "RESTORE".into(),
            "abc".into(),
            "foo".into(),
        ],
        vec![
            "FUNCTION".into(),
            "RESTORE".into(),
            "abc".into(),
            "FLUSH".into(),
            "x".into(),
        ],
        vec!["FCALL".into(), "nope".into(), "0".into()],
        vec!["FCALL".into(), "x4".into(), "x".into()],
        vec!["FCALL".into(), "x4".into(), "2".into(), "a".into()],
        vec!["FCALL".into(), "X4".into(), "-1".into()],
        vec!["FCALL".into(), "x4".into(), "99999999999999999999".into()],
        vec![
            "FUNCTION".into(),
            "LOAD".into(),
            lib("t6", "redis.register_function('w', function() end)"),
        ],
        vec!["FCALL_RO".into(), "w".into(), "0".into()],
        vec!["FCALL_RO".into(), "w".into(), "x".into()],
        vec!["FUNCTION".into(), "STATS".into()],
        vec!["FUNCTION".into(), "FLUSH".into(), "SYNC".into()],
        vec!["FUNCTION".into(), "STATS".into()],
        vec!["FUNCTION".into(), "LIST".into()],
    ];
    cases
}

fn run_script(c: &mut Connection) -> Vec<String> {
    parity_script()
        .iter()
        .map(|args| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            run(c, &args)
        })
        .collect()
}

#[test]
fn replies_and_errors_match_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.client();
    let ours = run_script(&mut c);
    // Spot checks that hold without a reference server.
    assert_eq!(ours[0], "\"t1\"");
    assert_eq!(ours[3], "-ERR Library 't1' already exists");
    assert_eq!(ours[5], "-ERR Function F1 already exists");
    assert_eq!(
        ours[7],
        "-ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"
    );
    assert_eq!(ours[50], "-ERR Function not found");
    let Some(redis) = RedisRef::start(free_port(), "FUNCTION") else {
        return;
    };
    let mut r = redis.client();
    let theirs = run_script(&mut r);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "case {i}: {:?}", &parity_script()[i]);
    }
}

#[test]
fn registry_is_the_same_on_both_cores() {
    let s = Server::start(2);
    let (mut a, mut b) = one_per_core(&s);
    let body = "redis.register_function('fa', function() return 1 end)";
    assert_eq!(
        q::<String>(&mut a, &["FUNCTION", "LOAD", &lib("la", body)]),
        "la"
    );
    // Loaded on core 0, known on core 1.
    assert_eq!(libraries(&mut b), libraries(&mut a));
    assert_eq!(libraries(&mut b).len(), 1);
    assert_eq!(
        e(&mut b, &["FUNCTION", "LOAD", &lib("la", body)]),
        "ERR Library 'la' already exists"
    );
    // FCALL finds it from either core.
    for c in [&mut a, &mut b] {
        assert_eq!(q::<i64>(c, &["FCALL", "fa", "0"]), 1);
        assert_eq!(
            e(c, &["FCALL", "fa", "1"]),
            "ERR Number of keys can't be greater than number of args"
        );
    }
    let body2 = "redis.register_function('fb', function() return 2 end)";
    assert_eq!(
        q::<String>(&mut b, &["FUNCTION", "LOAD", &lib("lb", body2)]),
        "lb"
    );
    assert_eq!(libraries(&mut a).len(), 2);
    assert_eq!(libraries(&mut a), libraries(&mut b));
    // Deleted on core 1, gone on core 0.
    assert_eq!(q::<String>(&mut b, &["FUNCTION", "DELETE", "la"]), "OK");
    assert_eq!(
        e(&mut a, &["FUNCTION", "DELETE", "la"]),
        "ERR Library not found"
    );
    assert_eq!(e(&mut a, &["FCALL", "fa", "0"]), "ERR Function not found");
    assert_eq!(libraries(&mut a), libraries(&mut b));
    // Dumped on core 0, flushed on core 1, restored on core 1: back on both.
    let payload = bulk(&mut a, &[b"FUNCTION", b"DUMP"]);
    assert_eq!(q::<String>(&mut b, &["FUNCTION", "FLUSH"]), "OK");
    assert_eq!(libraries(&mut a), vec![]);
    let stats = |c: &mut Connection| run(c, &[b"FUNCTION", b"STATS"]);
    assert_eq!(
        stats(&mut a),
        "[\"running_script\",nil,\"engines\",[\"LUA\",[\"libraries_count\",0,\"functions_count\",0]]]"
    );
    assert_eq!(run(&mut b, &[b"FUNCTION", b"RESTORE", &payload]), "+OK");
    assert_eq!(libraries(&mut a).len(), 1);
    assert_eq!(libraries(&mut a), libraries(&mut b));
    assert_eq!(
        stats(&mut a),
        "[\"running_script\",nil,\"engines\",[\"LUA\",[\"libraries_count\",1,\"functions_count\",1]]]"
    );
    assert_eq!(stats(&mut a), stats(&mut b));
    // INFO memory counts them as Redis 7.0 does, on either core.
    for c in [&mut a, &mut b] {
        let info: String = q(c, &["INFO", "memory"]);
        assert!(info.contains("number_of_functions:1\r\n"), "{info}");
        assert!(info.contains("number_of_libraries:1\r\n"), "{info}");
    }
}

#[test]
fn concurrent_changes_from_both_cores_leave_one_registry() {
    let s = Server::start(2);
    let (a, b) = one_per_core(&s);
    // Both cores replace the same library (and load their own) at once:
    // every core must apply the changes in the same order.
    let workers: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(w, mut c)| {
            std::thread::spawn(move || {
                for i in 0..40 {
                    let body = format!(
                        "redis.register_function('shared', function() return {w}{i} end)\nredis.register_function('own{w}_{i}', function() end)"
                    );
                    let _: String = redis::cmd("FUNCTION")
                        .arg("LOAD")
                        .arg("REPLACE")
                        .arg(lib("shared", &body))
                        .query(&mut c)
                        .unwrap();
                    if i % 10 == 9 {
                        let _: String = redis::cmd("FUNCTION")
                            .arg("LOAD")
                            .arg(lib(&format!("w{w}_{i}"), &format!("redis.register_function('x{w}_{i}', function() end)")))
                            .query(&mut c)
                            .unwrap();
                    }
                }
                c
            })
        })
        .collect();
    let mut conns: Vec<Connection> = workers.into_iter().map(|t| t.join().unwrap()).collect();
    let first = libraries(&mut conns[0]);
    assert_eq!(first.len(), 1 + 8);
    assert_eq!(libraries(&mut conns[1]), first);
    assert_eq!(
        bulk(&mut conns[0], &[b"FUNCTION", b"DUMP"]),
        bulk(&mut conns[1], &[b"FUNCTION", b"DUMP"])
    );
}

#[test]
fn payloads_move_between_redis_and_kora() {
    let s = Server::start(2);
    let (mut a, mut b) = one_per_core(&s);
    let Some(redis) = RedisRef::start(free_port(), "FUNCTION DUMP/RESTORE") else {
        return;
    };
    let mut r = redis.client();
    // Long enough code that Redis writes it LZF-compressed.
    let body: String = (0..30)
        .map(|i| format!("redis.register_function('fn{i}', function(keys, args) return {i} end)\n"))
        .collect();
    let code = lib("big", &body);
    let small = lib(
        "small",
        "redis.register_function{function_name='s', callback=function() end, flags={'no-writes'}, description='d'}",
    );
    assert_eq!(q::<String>(&mut r, &["FUNCTION", "LOAD", &code]), "big");
    assert_eq!(q::<String>(&mut r, &["FUNCTION", "LOAD", &small]), "small");
    let from_redis = bulk(&mut r, &[b"FUNCTION", b"DUMP"]);
    assert_eq!(run(&mut a, &[b"FUNCTION", b"RESTORE", &from_redis]), "+OK");
    assert_eq!(libraries(&mut b), libraries(&mut r));
    assert_eq!(
        reply(&mut b, &["FUNCTION", "LIST", "LIBRARYNAME", "small"]),
        reply(&mut r, &["FUNCTION", "LIST", "LIBRARYNAME", "small"])
    );
    // And back: Kora's payload restores in Redis.
    let from_kora = bulk(&mut b, &[b"FUNCTION", b"DUMP"]);
    assert_eq!(run(&mut r, &[b"FUNCTION", b"FLUSH"]), "+OK");
    assert_eq!(run(&mut r, &[b"FUNCTION", b"RESTORE", &from_kora]), "+OK");
    assert_eq!(libraries(&mut r), libraries(&mut a));
    // Policies and their errors, side by side. (With two libraries
    // colliding, which one APPEND names depends on Redis' hash order.)
    let append: [&[u8]; 4] = [b"FUNCTION", b"RESTORE", &from_redis, b"APPEND"];
    let refused = run(&mut a, &append);
    assert!(
        [
            "-ERR Library big already exists",
            "-ERR Library small already exists"
        ]
        .contains(&refused.as_str()),
        "{refused}"
    );
    for policy in ["REPLACE", "FLUSH"] {
        let args: [&[u8]; 4] = [b"FUNCTION", b"RESTORE", &from_redis, policy.as_bytes()];
        assert_eq!(run(&mut a, &args), run(&mut r, &args), "{policy}");
        assert_eq!(libraries(&mut b), libraries(&mut r), "{policy}");
    }
    let mut corrupt = from_redis.clone();
    corrupt[5] ^= 0x20;
    let args: [&[u8]; 3] = [b"FUNCTION", b"RESTORE", &corrupt];
    assert_eq!(
        run(&mut a, &args),
        "-ERR DUMP payload version or checksum are wrong"
    );
    assert_eq!(run(&mut r, &args), run(&mut a, &args));
}

#[test]
fn a_load_that_loops_times_out_and_the_server_goes_on() {
    let s = Server::start(2);
    let (mut a, mut b) = one_per_core(&s);
    let t = Instant::now();
    assert_eq!(
        e(
            &mut a,
            &["FUNCTION", "LOAD", "#!lua name=spin\nwhile true do end"]
        ),
        "ERR Error registering functions: ERR FUNCTION LOAD timeout"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(q::<String>(&mut b, &["PING"]), "PONG");
    assert_eq!(libraries(&mut a), vec![]);
    assert_eq!(libraries(&mut b), vec![]);
}

// ------------------------------------------------------------------ FCALL

const CALLS: &str = "#!lua name=calls
redis.register_function('echo', function(keys, args) return {#keys, #args, keys[1] or 'nk', args[1] or 'na'} end)
redis.register_function{function_name='put', callback=function(keys, args) return redis.call('set', keys[1], args[1]) end}
redis.register_function{function_name='get', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}
redis.register_function{function_name='sneaky', callback=function(keys) return redis.call('set', keys[1], 'v') end, flags={'no-writes'}}
redis.register_function('unknown', function() return redis.call('nosuch') end)
redis.register_function('setglobal', function() x = 1 end)
redis.register_function('getglobal', function() return y end)
redis.register_function('fmt', function() return string.format('%d-%s', 5, 'a') end)
redis.register_function('pincr', function(keys) return redis.pcall('incr', keys[1]) end)
redis.register_function('err', function() return redis.error_reply('MY err') end)
redis.register_function('status', function() return redis.status_reply('FINE') end)
redis.register_function('throw', function() error('boom') end)
redis.register_function('reg', function() return redis.register_function end)
redis.register_function('transfer', function(keys, args)
  local n = tonumber(args[1])
  redis.call('decrby', keys[1], n)
  return redis.call('incrby', keys[2], n)
end)";

fn fcall_script() -> Vec<Vec<&'static str>> {
    vec![
        vec!["FCALL", "echo", "0"],
        vec!["FCALL", "echo", "2", "a", "b", "c"],
        vec!["FCALL", "ECHO", "1", "a"],
        vec!["FCALL", "put", "1", "k1", "v1"],
        vec!["FCALL", "get", "1", "k1"],
        vec!["FCALL_RO", "get", "1", "k1"],
        vec!["FCALL_RO", "put", "1", "k1", "v"],
        vec!["FCALL", "sneaky", "1", "k1"],
        vec!["FCALL_RO", "sneaky", "1", "k1"],
        vec!["FCALL", "unknown", "0"],
        vec!["FCALL", "setglobal", "0"],
        vec!["FCALL", "getglobal", "0"],
        vec!["FCALL", "fmt", "0"],
        vec!["SET", "str", "abc"],
        vec!["FCALL", "pincr", "1", "str"],
        vec!["FCALL", "err", "0"],
        vec!["FCALL", "status", "0"],
        vec!["FCALL", "throw", "0"],
        vec!["FCALL", "reg", "0"],
        vec!["FCALL", "get", "x"],
        vec!["FCALL", "get", "-1"],
        vec!["FCALL", "get", "3", "a"],
        vec!["FCALL", "nope", "0"],
        vec!["FUNCTION", "KILL"],
    ]
}

#[test]
fn fcall_replies_match_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["FUNCTION", "LOAD", CALLS]), "calls");
    let ours: Vec<String> = fcall_script().iter().map(|a| reply(&mut c, a)).collect();
    assert_eq!(ours[0], "[0,0,\"nk\",\"na\"]");
    assert_eq!(ours[3], "+OK");
    assert_eq!(ours[4], "\"v1\"");
    assert_eq!(
        ours[6],
        "-ERR Can not execute a script with write flag using *_ro command."
    );
    assert!(
        ours[7].starts_with("-ERR Write commands are not allowed from read-only scripts."),
        "{}",
        ours[7]
    );
    let Some(redis) = RedisRef::start(free_port(), "FCALL") else {
        return;
    };
    let mut r = redis.client();
    assert_eq!(q::<String>(&mut r, &["FUNCTION", "LOAD", CALLS]), "calls");
    for (i, args) in fcall_script().iter().enumerate() {
        assert_eq!(ours[i], reply(&mut r, args), "{args:?}");
    }
}

#[test]
fn fcall_from_both_cores_on_keys_of_both_shards() {
    let s = Server::start(2);
    let (mut a, mut b) = one_per_core(&s);
    // Loaded from core 1, called from both.
    assert_eq!(q::<String>(&mut b, &["FUNCTION", "LOAD", CALLS]), "calls");
    let keys = keys_on_each_shard("fk", 2, 2);
    for (ci, c) in [&mut a, &mut b].into_iter().enumerate() {
        for shard_keys in &keys {
            let k = &shard_keys[0];
            let v = format!("v{ci}");
            assert_eq!(q::<String>(c, &["FCALL", "put", "1", k, &v]), "OK");
            assert_eq!(q::<String>(c, &["FCALL_RO", "get", "1", k]), v);
            assert_eq!(q::<String>(c, &["GET", k]), v);
        }
        // Declared keys on both shards: one atomic call across them.
        let (from, to) = (&keys[0][1], &keys[1][1]);
        let _: () = q(c, &["SET", from, "100"]);
        let _: () = q(c, &["SET", to, "0"]);
        assert_eq!(q::<i64>(c, &["FCALL", "transfer", "2", from, to, "30"]), 30);
        assert_eq!(q::<i64>(c, &["GET", from]), 70);
        assert_eq!(q::<i64>(c, &["GET", to]), 30);
    }
    // Replaced on core 0: core 1 runs the new code.
    let v2 = CALLS.replace("return {#keys, #args", "return {'v2', #keys, #args");
    assert_eq!(
        q::<String>(&mut a, &["FUNCTION", "LOAD", "REPLACE", &v2]),
        "calls"
    );
    for c in [&mut a, &mut b] {
        assert_eq!(
            reply(c, &["FCALL", "echo", "1", &keys[1][0]]),
            format!("[\"v2\",1,0,\"{}\",\"na\"]", keys[1][0])
        );
    }
    // Deleted on core 1: gone for calls on either core, whatever the key's shard.
    assert_eq!(q::<String>(&mut b, &["FUNCTION", "DELETE", "calls"]), "OK");
    for c in [&mut a, &mut b] {
        for shard_keys in &keys {
            assert_eq!(
                e(c, &["FCALL", "get", "1", &shard_keys[0]]),
                "ERR Function not found"
            );
        }
    }
}

#[test]
fn function_kill_stops_a_busy_function() {
    let s = Server::start_with(2, &["--busy-reply-threshold", "200"]);
    let (mut a, mut b) = one_per_core(&s);
    let spin = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(q::<String>(&mut a, &["FUNCTION", "LOAD", spin]), "spin");
    assert_eq!(
        e(&mut b, &["FUNCTION", "KILL"]),
        "NOTBUSY No scripts in execution right now."
    );
    let runner = std::thread::spawn(move || {
        let got = e(&mut a, &["FCALL", "spin", "0"]);
        (got, a)
    });
    // Busy after busy-reply-threshold (200 ms here): then KILL from the
    // other core stops it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "FUNCTION KILL never succeeded");
        match redis::cmd("FUNCTION").arg("KILL").query::<String>(&mut b) {
            Ok(ok) => {
                assert_eq!(ok, "OK");
                break;
            }
            Err(err) => assert_eq!(
                common::error_text(&err),
                "NOTBUSY No scripts in execution right now."
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (got, mut a) = runner.join().unwrap();
    assert_eq!(
        got,
        "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
    );
    assert_eq!(q::<String>(&mut a, &["PING"]), "PONG");
}

#[test]
fn load_and_fcall_inside_multi_exec() {
    let s = Server::start(2);
    let (mut a, mut b) = one_per_core(&s);
    let keys = keys_on_each_shard("mx", 2, 1);
    let code = "#!lua name=m\nredis.register_function('mf', function(k) return redis.call('incr', k[1]) end)";
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("FUNCTION")
        .arg("LOAD")
        .arg(code)
        .cmd("FCALL")
        .arg("mf")
        .arg(1)
        .arg(&keys[0][0])
        .cmd("FCALL")
        .arg("mf")
        .arg(1)
        .arg(&keys[1][0]);
    let (name, x, y): (String, i64, i64) = pipe.query(&mut a).unwrap();
    assert_eq!((name.as_str(), x, y), ("m", 1, 1));
    // Loaded inside a transaction on core 0: known on core 1 too.
    assert_eq!(q::<i64>(&mut b, &["FCALL", "mf", "1", &keys[0][0]]), 2);
    // Scripts cannot reach the registry, as in Redis.
    assert!(
        e(
            &mut b,
            &["EVAL", "return redis.call('function', 'flush')", "0"]
        )
        .starts_with("ERR This Redis command is not allowed from script")
    );
    assert_eq!(libraries(&mut b).len(), 1);
}

/// Over maxmemory, a function without `no-writes` or `allow-oom` is
/// refused before it runs (as Redis 7.0.15 answers: checked by hand), an
/// `allow-oom` one writes, a `no-writes` one reads.
#[test]
fn functions_follow_their_oom_flags() {
    let s = Server::start_with(2, &["--maxmemory-policy", "noeviction"]);
    let mut c = s.client();
    let lib = "#!lua name=oomlib\n\
        redis.register_function('w', function(k) return redis.call('set', k[1], 'b') end)\n\
        redis.register_function{function_name='o', callback=function(k) return redis.call('set', k[1], 'b') end, flags={'allow-oom'}}\n\
        redis.register_function{function_name='r', callback=function(k) return redis.call('get', k[1]) end, flags={'no-writes'}}";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    // The padding is the called key itself: the budget is per shard and
    // `k` may live on the other one, whose arena can read near empty.
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("x".repeat(1000))
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let fcall = |c: &mut redis::Connection, f: &str| {
        redis::cmd("FCALL")
            .arg(f)
            .arg(1)
            .arg("k")
            .query::<Option<String>>(c)
    };
    let err = fcall(&mut c, "w").unwrap_err();
    assert_eq!(
        common::error_text(&err),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(fcall(&mut c, "o").unwrap().as_deref(), Some("OK"));
    assert_eq!(fcall(&mut c, "r").unwrap().as_deref(), Some("b"));
}
