//! Blocking commands (issue 13): BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP
//! against a 2-worker server with real clients — wake-ups, timeouts,
//! first-come-first-served order, keys on both shards, BLMOVE across
//! shards, MULTI, CLIENT UNBLOCK, INFO and /metrics, disconnects, and a
//! randomized producer/consumer run where every element must be consumed
//! exactly once.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, e, keys_on_each_shard, q, raw_exchange, read_available};
use redis::Value;

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn blocked_clients(c: &mut redis::Connection) -> i64 {
    let info: String = q(c, &["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("blocked_clients line")
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until INFO reports `n` blocked clients.
fn wait_blocked(c: &mut redis::Connection, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_clients(c) != n {
        assert!(
            Instant::now() < deadline,
            "never reached {n} blocked clients"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `args` on a new connection in a thread; its reply comes back on
/// the returned channel (tagged with `tag`).
fn spawn_blocked(
    s: &Server,
    args: &[&str],
    tag: usize,
    tx: mpsc::Sender<(usize, Value)>,
) -> thread::JoinHandle<()> {
    let mut c = s.client();
    let cmd = common::cmd(args);
    thread::spawn(move || {
        let v: Value = cmd.query(&mut c).unwrap();
        let _ = tx.send((tag, v));
    })
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not a bulk: {other:?}"),
    }
}

fn pair(v: &Value) -> (String, String) {
    match v {
        Value::Array(items) if items.len() == 2 => (bulk(&items[0]), bulk(&items[1])),
        other => panic!("not a pair: {other:?}"),
    }
}

/// Two keys of each shard of a 2-shard server.
fn shard_keys(prefix: &str) -> Vec<Vec<String>> {
    keys_on_each_shard(prefix, 2, 2)
}

#[test]
fn argument_errors_and_timeouts_are_redis_7_0s() {
    let s = Server::start(2);
    let mut c = s.client();
    for (t, msg) in [
        ("abc", "ERR timeout is not a float or out of range"),
        ("", "ERR timeout is not a float or out of range"),
        ("nan", "ERR timeout is not a float or out of range"),
        ("-1", "ERR timeout is negative"),
        ("inf", "ERR timeout is negative"),
        ("1e30", "ERR timeout is negative"),
    ] {
        assert_eq!(e(&mut c, &["BLPOP", "k", t]), msg, "{t}");
        assert_eq!(e(&mut c, &["BRPOPLPUSH", "a", "b", t]), msg, "{t}");
    }
    let syntax = "ERR syntax error";
    assert_eq!(
        e(&mut c, &["BLMPOP", "x", "1", "k", "LEFT"]),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        e(&mut c, &["BLMPOP", "0", "0", "k", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(e(&mut c, &["BLMPOP", "0", "5", "k", "LEFT"]), syntax);
    assert_eq!(e(&mut c, &["BLMPOP", "0", "2", "k", "LEFT"]), syntax);
    assert_eq!(e(&mut c, &["BLMPOP", "0", "1", "k", "UP"]), syntax);
    assert_eq!(
        e(&mut c, &["BLMPOP", "-1", "1", "k", "LEFT", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        e(
            &mut c,
            &["BLMPOP", "0", "1", "k", "LEFT", "COUNT", "1", "COUNT", "2"]
        ),
        syntax
    );
    assert_eq!(
        e(&mut c, &["BLMPOP", "-1", "1", "k", "LEFT"]),
        "ERR timeout is negative"
    );
    assert_eq!(e(&mut c, &["BLMOVE", "a", "b", "UP", "LEFT", "-1"]), syntax);
    assert_eq!(
        e(&mut c, &["BLPOP", "k"]),
        "ERR wrong number of arguments for 'blpop' command"
    );
    // WRONGTYPE on the first look, in argument order.
    q::<()>(&mut c, &["SET", "str", "x"]);
    q::<()>(&mut c, &["RPUSH", "l", "a"]);
    let wrong = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(e(&mut c, &["BLPOP", "nope", "str", "l", "0"]), wrong);
    assert_eq!(
        e(&mut c, &["BLMOVE", "str", "b", "LEFT", "LEFT", "0"]),
        wrong
    );
    assert_eq!(
        e(&mut c, &["BLMOVE", "l", "str", "LEFT", "LEFT", "0"]),
        wrong
    );
    assert_eq!(
        e(&mut c, &["BLMPOP", "0", "2", "nope", "str", "LEFT"]),
        wrong
    );
    // Timeouts: a nil array for every form (RESP2), after about the time.
    let mut raw = s.raw();
    for args in [
        &["BLPOP", "k1", "k2", "0.05"][..],
        &["BRPOP", "k1", "0.05"],
        &["BLMOVE", "k1", "k2", "LEFT", "RIGHT", "0.05"],
        &["BRPOPLPUSH", "k1", "k2", "0.05"],
        &["BLMPOP", "0.05", "2", "k1", "k2", "LEFT", "COUNT", "3"],
    ] {
        let started = Instant::now();
        raw.write_all(&resp(args)).unwrap();
        let mut buf = [0u8; 5];
        raw.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"*-1\r\n", "{args:?}");
        assert!(started.elapsed() >= Duration::from_millis(45), "{args:?}");
    }
    // Something there: no wait at all.
    q::<()>(&mut c, &["RPUSH", "l", "b", "c"]);
    assert_eq!(
        raw_exchange(&mut raw, &resp(&["BLPOP", "none", "l", "0"])),
        b"*2\r\n$1\r\nl\r\n$1\r\na\r\n"
    );
    assert_eq!(
        raw_exchange(
            &mut raw,
            &resp(&["BLMPOP", "0", "1", "l", "RIGHT", "COUNT", "5"])
        ),
        b"*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
    );
    assert_eq!(blocked_clients(&mut c), 0);
}

/// Every command wakes when another connection pushes, for keys on each
/// shard; the blocked client counts in INFO and in /metrics meanwhile.
#[test]
fn each_command_wakes_on_a_push_on_either_shard() {
    let s = Server::start(2);
    let mut c = s.client();
    let (tx, rx) = mpsc::channel();
    for (shard, keys) in shard_keys("wake").iter().enumerate() {
        let (k, other) = (&keys[0], &keys[1]);
        let t = spawn_blocked(&s, &["BLPOP", "none", k, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        assert!(s.metrics().contains("\nkora_blocked_clients 1\n"));
        q::<()>(&mut c, &["RPUSH", k, "a"]);
        assert_eq!(pair(&rx.recv().unwrap().1), (k.clone(), "a".into()));
        t.join().unwrap();

        let t = spawn_blocked(&s, &["BRPOP", k, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["LPUSH", k, "x", "y"]);
        assert_eq!(pair(&rx.recv().unwrap().1), (k.clone(), "x".into()));
        t.join().unwrap();
        assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", k, "0", "-1"]), ["y"]);
        q::<()>(&mut c, &["DEL", k]);

        let t = spawn_blocked(
            &s,
            &["BLMPOP", "0", "1", k, "LEFT", "COUNT", "2"],
            0,
            tx.clone(),
        );
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", k, "1", "2", "3"]);
        let got = rx.recv().unwrap().1;
        assert_eq!(
            got,
            Value::Array(vec![
                Value::BulkString(k.clone().into_bytes()),
                Value::Array(vec![
                    Value::BulkString(b"1".to_vec()),
                    Value::BulkString(b"2".to_vec())
                ])
            ])
        );
        t.join().unwrap();
        q::<()>(&mut c, &["DEL", k]);

        let t = spawn_blocked(&s, &["BRPOPLPUSH", k, other, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", k, "m"]);
        assert_eq!(bulk(&rx.recv().unwrap().1), "m");
        t.join().unwrap();
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", other, "0", "-1"]),
            ["m"]
        );

        let t = spawn_blocked(
            &s,
            &["BLMOVE", k, other, "RIGHT", "RIGHT", "0"],
            0,
            tx.clone(),
        );
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", k, "n"]);
        assert_eq!(bulk(&rx.recv().unwrap().1), "n");
        t.join().unwrap();
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", other, "0", "-1"]),
            ["m", "n"],
            "shard {shard}"
        );
        assert!(!q::<bool>(&mut c, &["EXISTS", k]));
        wait_blocked(&mut c, 0);
        assert!(s.metrics().contains("\nkora_blocked_clients 0\n"));
    }
}

/// Three clients blocked on one key are served in the order they blocked,
/// whether the elements come one at a time or in one push.
#[test]
fn clients_blocked_on_a_key_are_served_first_come_first_served() {
    let s = Server::start(2);
    let mut c = s.client();
    for keys in shard_keys("fcfs") {
        let k = &keys[0];
        for one_push in [false, true] {
            let (tx, rx) = mpsc::channel();
            let mut threads = Vec::new();
            for tag in 0..3 {
                threads.push(spawn_blocked(&s, &["BLPOP", k, "0"], tag, tx.clone()));
                wait_blocked(&mut c, tag as i64 + 1);
            }
            if one_push {
                q::<()>(&mut c, &["RPUSH", k, "e0", "e1", "e2"]);
                let mut got: Vec<(usize, String)> = (0..3)
                    .map(|_| rx.recv().unwrap())
                    .map(|(t, v)| (t, pair(&v).1))
                    .collect();
                got.sort();
                assert_eq!(got, [(0, "e0".into()), (1, "e1".into()), (2, "e2".into())]);
            } else {
                for i in 0..3 {
                    q::<()>(&mut c, &["RPUSH", k, &format!("e{i}")]);
                    let (tag, v) = rx.recv().unwrap();
                    assert_eq!((tag, pair(&v).1), (i, format!("e{i}")));
                }
            }
            for t in threads {
                t.join().unwrap();
            }
        }
    }
}

/// Keys are looked at in argument order, over both shards; a client
/// blocked on keys of both shards wakes for a push on either.
#[test]
fn keys_on_both_shards_in_argument_order() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = shard_keys("order");
    let (a, b) = (&keys[0][0], &keys[1][0]);
    q::<()>(&mut c, &["RPUSH", b, "fromb"]);
    q::<()>(&mut c, &["RPUSH", a, "froma"]);
    let got: (String, String) = q(&mut c, &["BLPOP", b, a, "0"]);
    assert_eq!(got, (b.clone(), "fromb".into()));
    let got: (String, String) = q(&mut c, &["BLPOP", b, a, "0"]);
    assert_eq!(got, (a.clone(), "froma".into()));
    let (tx, rx) = mpsc::channel();
    for (first, second) in [(a, b), (b, a)] {
        let t = spawn_blocked(&s, &["BLPOP", first, second, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", second, "v"]);
        assert_eq!(pair(&rx.recv().unwrap().1), (second.clone(), "v".into()));
        t.join().unwrap();
    }
    wait_blocked(&mut c, 0);
}

/// A blocked BLMOVE whose destination lives on the other shard moves
/// atomically; a cross-shard LMOVE into a key wakes its waiter; pushes
/// inside MULTI/EXEC wake waiters too.
#[test]
fn moves_across_shards_and_transactions_wake_waiters() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = shard_keys("move");
    let (tx, rx) = mpsc::channel();
    for (src, dst) in [(&keys[0][0], &keys[1][0]), (&keys[1][1], &keys[0][1])] {
        let t = spawn_blocked(
            &s,
            &["BLMOVE", src, dst, "LEFT", "LEFT", "0"],
            0,
            tx.clone(),
        );
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", src, "e"]);
        assert_eq!(bulk(&rx.recv().unwrap().1), "e");
        t.join().unwrap();
        assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", dst, "0", "-1"]), ["e"]);
        assert!(!q::<bool>(&mut c, &["EXISTS", src]));
        // LMOVE across shards into a key a client waits on.
        let t = spawn_blocked(&s, &["BLPOP", src, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        let moved: String = q(&mut c, &["LMOVE", dst, src, "LEFT", "RIGHT"]);
        assert_eq!(moved, "e");
        assert_eq!(pair(&rx.recv().unwrap().1), (src.clone(), "e".into()));
        t.join().unwrap();
    }
    // MULTI/EXEC over both shards pushing to keys clients wait on.
    let (a, b) = (&keys[0][0], &keys[1][0]);
    let ta = spawn_blocked(&s, &["BLPOP", a, "0"], 0, tx.clone());
    wait_blocked(&mut c, 1);
    let tb = spawn_blocked(&s, &["BRPOP", b, "0"], 1, tx.clone());
    wait_blocked(&mut c, 2);
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg(a)
        .arg("ta")
        .cmd("RPUSH")
        .arg(b)
        .arg("tb")
        .query(&mut c)
        .unwrap();
    assert_eq!(replies.len(), 2);
    let mut got: Vec<(usize, String)> = (0..2)
        .map(|_| rx.recv().unwrap())
        .map(|(t, v)| (t, pair(&v).1))
        .collect();
    got.sort();
    assert_eq!(got, [(0, "ta".into()), (1, "tb".into())]);
    ta.join().unwrap();
    tb.join().unwrap();
    wait_blocked(&mut c, 0);
}

/// Inside MULTI the blocking forms answer at once, as the non-blocking
/// ones would (nil array for the pops, nil bulk for the moves).
#[test]
fn inside_multi_they_do_not_block() {
    let s = Server::start(2);
    let mut raw = s.raw();
    let mut script = Vec::new();
    for args in [
        &["MULTI"][..],
        &["BLPOP", "k", "0"],
        &["BLMOVE", "a", "b", "LEFT", "LEFT", "0"],
        &["BRPOPLPUSH", "a", "b", "0"],
        &["BLMPOP", "0", "1", "k", "LEFT"],
        &["BLPOP", "k", "-1"],
        &["RPUSH", "k", "v"],
        &["BLPOP", "k", "0"],
        &["EXEC"],
    ] {
        script.extend(resp(args));
    }
    let started = Instant::now();
    raw.write_all(&script).unwrap();
    let mut want = b"+OK\r\n".to_vec();
    for _ in 0..7 {
        want.extend_from_slice(b"+QUEUED\r\n");
    }
    want.extend_from_slice(
        b"*7\r\n*-1\r\n$-1\r\n$-1\r\n*-1\r\n-ERR timeout is negative\r\n:1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n",
    );
    let mut got = vec![0u8; want.len()];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn client_unblock_ends_the_wait_with_a_timeout_or_an_error() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", "999"]), 0);
    assert_eq!(
        e(&mut c, &["CLIENT", "UNBLOCK", "abc"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "UNBLOCK", "1", "foo"]),
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "UNBLOCK"]),
        "ERR wrong number of arguments for 'client|unblock' command"
    );
    // Blocked clients on both cores (connections spread over them).
    for _ in 0..4 {
        let mut raw = s.raw();
        let id = raw_exchange(&mut raw, &resp(&["CLIENT", "ID"]));
        let id = String::from_utf8(id).unwrap();
        let id = id.trim().trim_start_matches(':').to_string();
        raw.write_all(&resp(&["BLMOVE", "x", "y", "LEFT", "LEFT", "0"]))
            .unwrap();
        wait_blocked(&mut c, 1);
        let list: String = q(&mut c, &["CLIENT", "LIST", "ID", &id]);
        assert!(
            list.contains(" flags=b ") && list.contains(" cmd=blmove "),
            "{list}"
        );
        assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id, "ERROR"]), 1);
        assert_eq!(
            read_available(&mut raw),
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
        );
        raw.write_all(&resp(&["BLPOP", "x", "0"])).unwrap();
        wait_blocked(&mut c, 1);
        assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id, "timeout"]), 1);
        assert_eq!(read_available(&mut raw), b"*-1\r\n");
        assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id]), 0);
        raw.write_all(&resp(&["BLMPOP", "0", "1", "x", "LEFT"]))
            .unwrap();
        wait_blocked(&mut c, 1);
        assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id]), 1);
        assert_eq!(read_available(&mut raw), b"*-1\r\n");
        wait_blocked(&mut c, 0);
    }
    // The queues were left: a push stays in the list.
    q::<()>(&mut c, &["RPUSH", "x", "kept"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "x", "0", "-1"]),
        ["kept"]
    );
}

/// A client that disconnects while blocked leaves the queue: an element
/// pushed afterwards stays in the list; the next waiter still gets served.
#[test]
fn a_disconnected_waiter_never_takes_an_element() {
    let s = Server::start(2);
    let mut c = s.client();
    for keys in shard_keys("gone") {
        let k = &keys[0];
        let mut raw = s.raw();
        raw.write_all(&resp(&["BLPOP", k, "0"])).unwrap();
        wait_blocked(&mut c, 1);
        // A second waiter behind it.
        let (tx, rx) = mpsc::channel();
        let t = spawn_blocked(&s, &["BLPOP", k, "0"], 1, tx);
        wait_blocked(&mut c, 2);
        drop(raw);
        wait_blocked(&mut c, 1);
        q::<()>(&mut c, &["RPUSH", k, "first", "second"]);
        assert_eq!(pair(&rx.recv().unwrap().1), (k.clone(), "first".into()));
        t.join().unwrap();
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", k, "0", "-1"]),
            ["second"]
        );
        q::<()>(&mut c, &["DEL", k]);
        // Alone: the element stays.
        let mut raw = s.raw();
        raw.write_all(&resp(&["BRPOPLPUSH", k, "dst", "0"]))
            .unwrap();
        wait_blocked(&mut c, 1);
        drop(raw);
        wait_blocked(&mut c, 0);
        q::<()>(&mut c, &["RPUSH", k, "stays"]);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", k, "0", "-1"]),
            ["stays"]
        );
        q::<()>(&mut c, &["DEL", k]);
    }
}

/// SHUTDOWN is not held up by blocked clients.
#[test]
fn shutdown_is_not_held_up_by_blocked_clients() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut raws: Vec<TcpStream> = (0..4).map(|_| s.raw()).collect();
    for r in &mut raws {
        r.write_all(&resp(&["BLPOP", "nothing", "0"])).unwrap();
    }
    wait_blocked(&mut c, 4);
    let started = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// xorshift, seeded: the same run every time.
fn rng(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

/// Producers push unique elements to keys of both shards (RPUSH, LPUSH,
/// LMOVE from a staging key, MULTI); consumers pop with BLPOP, BRPOP,
/// BLMPOP and BLMOVE with short timeouts, some closing their write side
/// while blocked. Every element is consumed exactly once (what is left is
/// drained at the end); bounded in count and time.
#[test]
fn random_producers_and_consumers_consume_every_element_exactly_once() {
    let s = Server::start(2);
    let keys: Vec<String> = shard_keys("rnd").concat();
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 300;
    const CONSUMERS: u64 = 4;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut consumers = Vec::new();
    for id in 0..CONSUMERS {
        let keys = keys.clone();
        let tx = tx.clone();
        let done = done.clone();
        let port = s.port;
        consumers.push(thread::spawn(move || {
            let mut next = rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1));
            let mut got = Vec::new();
            let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
            raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            while !done.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let k1 = &keys[next(keys.len() as u64) as usize];
                let k2 = &keys[next(keys.len() as u64) as usize];
                let timeout = ["0.01", "0.03", "0.1"][next(3) as usize];
                let args: Vec<&str> = match next(5) {
                    0 => vec!["BLPOP", k1, k2, timeout],
                    1 => vec!["BRPOP", k1, timeout],
                    2 => vec!["BLMPOP", timeout, "2", k1, k2, "LEFT", "COUNT", "3"],
                    3 => vec!["BLMOVE", k1, "sink", "LEFT", "RIGHT", timeout],
                    _ => vec!["BLPOP", k1, "0"],
                };
                let disconnect = next(8) == 0 || args.last() == Some(&"0");
                raw.write_all(&resp(&args)).unwrap();
                if disconnect {
                    // Leave while (maybe) blocked: whatever it was served
                    // before the server saw the close still arrives.
                    thread::sleep(Duration::from_millis(next(20)));
                    raw.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    let _ = raw.read_to_end(&mut rest);
                    got.extend(elements(&rest));
                    raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                } else {
                    got.extend(elements(&read_reply(&mut raw)));
                }
            }
            tx.send(got).unwrap();
        }));
    }
    drop(tx);
    let mut producers = Vec::new();
    for id in 0..PRODUCERS {
        let keys = keys.clone();
        let port = s.port;
        producers.push(thread::spawn(move || {
            let mut next = rng(0xD1B5_4A32_D192_ED03 ^ (id + 7));
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            let stage = format!("stage{id}");
            for i in 0..PER_PRODUCER {
                let elem = format!("p{id}-{i}");
                let k = &keys[next(keys.len() as u64) as usize];
                match next(4) {
                    0 => q::<()>(&mut c, &["RPUSH", k, &elem]),
                    1 => q::<()>(&mut c, &["LPUSH", k, &elem]),
                    2 => {
                        q::<()>(&mut c, &["RPUSH", &stage, &elem]);
                        q::<()>(&mut c, &["LMOVE", &stage, k, "LEFT", "RIGHT"]);
                    }
                    _ => {
                        let _: Value = redis::pipe()
                            .atomic()
                            .cmd("RPUSH")
                            .arg(k)
                            .arg(&elem)
                            .query(&mut c)
                            .unwrap();
                    }
                }
                if next(10) == 0 {
                    thread::sleep(Duration::from_millis(next(5)));
                }
            }
        }));
    }
    for p in producers {
        p.join().unwrap();
    }
    // Let the consumers drain, then stop them.
    let mut c = s.client();
    while Instant::now() < deadline {
        let left: i64 = keys.iter().map(|k| q::<i64>(&mut c, &["LLEN", k])).sum();
        if left == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut consumed: Vec<String> = rx.iter().flatten().collect();
    for c in consumers {
        c.join().unwrap();
    }
    // Moved to the sink: consumed by BLMOVE (its reply is counted too, so
    // only check the sink holds exactly those).
    let sink: Vec<String> = q(&mut c, &["LRANGE", "sink", "0", "-1"]);
    for k in &keys {
        consumed.extend(q::<Vec<String>>(&mut c, &["LRANGE", k, "0", "-1"]));
    }
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    let mut sorted = consumed.clone();
    sorted.sort();
    let before = sorted.len();
    sorted.dedup();
    assert_eq!(before, sorted.len(), "an element was delivered twice");
    assert_eq!(sorted.len(), total, "an element was lost");
    let mut moved: Vec<String> = sink.clone();
    moved.sort();
    assert!(moved.iter().all(|m| sorted.binary_search(m).is_ok()));
    wait_blocked(&mut c, 0);
}

/// Reads one complete RESP reply (of the shapes these commands answer).
fn read_reply(raw: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        raw.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
        if complete(&buf).is_some() {
            return buf;
        }
    }
}

/// The length of the first complete reply in `buf`, if there is one.
fn complete(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let after = line_end + 2;
    match buf[0] {
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at += complete(&buf[at..])?;
            }
            Some(at)
        }
        _ => Some(after),
    }
}

/// The elements a reply carries: the values of BLPOP's pair, BLMPOP's
/// list, BLMOVE's bulk (keys are told apart by their `rnd` prefix).
fn elements(mut buf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(n) = complete(buf) {
        let mut at = 0;
        while at < n {
            if buf[at] == b'$' {
                let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n").unwrap();
                let len: i64 = std::str::from_utf8(&buf[at + 1..line_end])
                    .unwrap()
                    .parse()
                    .unwrap();
                if len >= 0 {
                    let start = line_end + 2;
                    let s = String::from_utf8(buf[start..start + len as usize].to_vec()).unwrap();
                    if s.starts_with('p') {
                        out.push(s);
                    }
                    at = start + len as usize + 2;
                    continue;
                }
            }
            at += 1;
        }
        buf = &buf[n..];
    }
    out
}

/// BZPOPMIN, BZPOPMAX and BZMPOP on the same mechanism: a ZADD wakes them
/// on either shard; a list pushed on the key does not; list and sorted-set
/// waiters on one key do not stand in each other's way.
#[test]
fn sorted_set_forms_block_and_wake() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut raw = s.raw();
    for args in [
        &["BZPOPMIN", "z1", "z2", "0.05"][..],
        &["BZPOPMAX", "z1", "0.05"],
        &["BZMPOP", "0.05", "2", "z1", "z2", "MIN", "COUNT", "3"],
    ] {
        raw.write_all(&resp(args)).unwrap();
        let mut buf = [0u8; 5];
        raw.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"*-1\r\n", "{args:?}");
    }
    assert_eq!(
        e(&mut c, &["BZMPOP", "0", "1", "z", "LEFT"]),
        "ERR syntax error"
    );
    let (tx, rx) = mpsc::channel();
    for keys in shard_keys("zwake") {
        let k = &keys[0];
        let t = spawn_blocked(&s, &["BZPOPMIN", "none", k, "0"], 0, tx.clone());
        wait_blocked(&mut c, 1);
        // A list on the key is not for it; it keeps waiting.
        q::<()>(&mut c, &["RPUSH", k, "x"]);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(blocked_clients(&mut c), 1);
        q::<()>(&mut c, &["DEL", k]);
        q::<()>(&mut c, &["ZADD", k, "2", "b", "1", "a"]);
        assert_eq!(
            rx.recv().unwrap().1,
            Value::Array(vec![
                Value::BulkString(k.clone().into_bytes()),
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"1".to_vec()),
            ])
        );
        t.join().unwrap();
        let got: Value = q(&mut c, &["BZPOPMAX", k, "0"]);
        assert_eq!(
            got,
            Value::Array(vec![
                Value::BulkString(k.clone().into_bytes()),
                Value::BulkString(b"b".to_vec()),
                Value::BulkString(b"2".to_vec()),
            ])
        );
        // A list waiter and a sorted-set waiter on one key.
        let tl = spawn_blocked(&s, &["BLPOP", k, "0"], 1, tx.clone());
        wait_blocked(&mut c, 1);
        let tz = spawn_blocked(
            &s,
            &["BZMPOP", "0", "1", k, "MAX", "COUNT", "2"],
            2,
            tx.clone(),
        );
        wait_blocked(&mut c, 2);
        q::<()>(&mut c, &["ZADD", k, "1", "m", "3", "n", "2", "o"]);
        let (tag, got) = rx.recv().unwrap();
        assert_eq!(tag, 2);
        let pair = |m: &str, s: &str| {
            Value::Array(vec![
                Value::BulkString(m.as_bytes().to_vec()),
                Value::BulkString(s.as_bytes().to_vec()),
            ])
        };
        assert_eq!(
            got,
            Value::Array(vec![
                Value::BulkString(k.clone().into_bytes()),
                Value::Array(vec![pair("n", "3"), pair("o", "2")]),
            ])
        );
        tz.join().unwrap();
        q::<()>(&mut c, &["DEL", k]);
        q::<()>(&mut c, &["RPUSH", k, "l"]);
        assert_eq!(rx.recv().unwrap().0, 1);
        tl.join().unwrap();
        wait_blocked(&mut c, 0);
    }
}

/// As in Redis, the time spent blocked is not the command's: a BLPOP that
/// waited 300 ms counts as a call but not as 300 ms of latency, and does
/// not reach the slow log.
#[test]
fn time_spent_blocked_is_not_command_latency() {
    let s = Server::start(2);
    let mut c = s.client();
    q::<()>(
        &mut c,
        &["CONFIG", "SET", "slowlog-log-slower-than", "100000"],
    );
    let v: Value = q(&mut c, &["BLPOP", "k", "0.3"]);
    assert_eq!(v, Value::Nil);
    let stats: String = q(&mut c, &["INFO", "commandstats"]);
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_blpop:"))
        .expect("blpop counted");
    assert!(line.starts_with("cmdstat_blpop:calls=1,"), "{line}");
    let usec: u64 = line
        .split(',')
        .find_map(|f| f.strip_prefix("usec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec < 100_000, "{line}");
    // Not SLOWLOG LEN 0: on a loaded machine CONFIG SET or INFO itself may
    // be slow enough to be logged; what matters is that BLPOP is not.
    let log: Vec<Value> = q(&mut c, &["SLOWLOG", "GET", "-1"]);
    for entry in &log {
        let Value::Array(fields) = entry else {
            panic!("slow log entry {entry:?}")
        };
        let Some(Value::Array(argv)) = fields.get(3) else {
            panic!("slow log entry {entry:?}")
        };
        assert_ne!(
            argv.first(),
            Some(&Value::BulkString(b"BLPOP".to_vec())),
            "{entry:?}"
        );
    }
}
