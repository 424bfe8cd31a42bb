//! Engine behaviour end to end: pipelining, concurrency, expiry, protocol
//! limits, bad input, shutdown and startup errors.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{Server, keys_on_each_shard, raw_exchange, read_available, shard_of};
use redis::Commands;

#[test]
fn ten_thousand_command_pipeline_comes_back_complete_and_in_order() {
    for workers in [1, 2] {
        let s = Server::start(workers);
        let mut c = s.client();
        let mut pipe = redis::pipe();
        for i in 0..5_000 {
            pipe.cmd("SET").arg(format!("pk:{i}")).arg(format!("v{i}"));
            pipe.cmd("GET").arg(format!("pk:{i}"));
        }
        let replies: Vec<redis::Value> = pipe.query(&mut c).unwrap();
        assert_eq!(replies.len(), 10_000);
        for (i, pair) in replies.chunks(2).enumerate() {
            assert_eq!(pair[0], redis::Value::Okay, "SET #{i}");
            assert_eq!(
                pair[1],
                redis::Value::BulkString(format!("v{i}").into_bytes()),
                "GET #{i}"
            );
        }
        let size: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(size, 5_000);
    }
}

#[test]
fn raw_pipeline_in_one_write_is_answered_in_order() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("rp:", 2, 50);
    let mut cmds = Vec::new();
    let mut expected = Vec::new();
    for (i, key) in keys[0]
        .iter()
        .zip(&keys[1])
        .flat_map(|(a, b)| [a, b])
        .enumerate()
    {
        cmds.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{i}\r\n",
                key.len(),
                i.to_string().len()
            )
            .as_bytes(),
        );
        cmds.extend_from_slice(
            format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        );
        expected.extend_from_slice(format!("+OK\r\n:{}\r\n", i + 1).as_bytes());
    }
    let mut raw = s.raw();
    raw.write_all(&cmds).unwrap();
    let mut got = vec![0u8; expected.len()];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn hundred_clients_incr_one_key_exactly() {
    let s = Server::start(2);
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let url = s.url();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                for _ in 0..1_000 {
                    let _: i64 = c.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.client();
    let total: i64 = c.get("counter").unwrap();
    assert_eq!(total, 100_000);
}

#[test]
fn expired_keys_vanish_on_access_and_by_active_cycle() {
    let s = Server::start(2);
    let mut c = s.client();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("lazy:{i}"))
            .arg("v")
            .arg("PX")
            .arg(50)
            .query(&mut c)
            .unwrap();
    }
    let _: () = c.set("keep", "v").unwrap();
    std::thread::sleep(Duration::from_millis(120));
    for i in 0..100 {
        let v: Option<String> = c.get(format!("lazy:{i}")).unwrap();
        assert_eq!(v, None);
    }

    // Untouched keys: only the active cycle can remove them, and DBSIZE
    // counts entries without looking them up.
    let mut pipe = redis::pipe();
    for i in 0..2_000 {
        pipe.cmd("SET")
            .arg(format!("active:{i}"))
            .arg("v")
            .arg("PX")
            .arg(400)
            .ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let before: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(
        before >= 1_900,
        "keys are there before they expire: {before}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let size: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if size == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "active expiry left {size} keys"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    let expired: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(expired >= 2_100, "INFO expired_keys = {expired}");
}

fn assert_other_clients_unaffected(s: &Server) {
    let mut c = s.client();
    let v: String = c.get("survivor").unwrap();
    assert_eq!(v, "intact");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn protocol_errors_close_only_the_offending_connection() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = c.set("survivor", "intact").unwrap();
    let cases: [(&[u8], &str); 6] = [
        (
            b"*2\r\n$-5\r\nfoo\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            // Redis 7 takes up to INT_MAX arguments.
            b"*2147483648\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n:12\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$3\r\nfooXY",
            "-ERR Protocol error: bulk string not terminated by CRLF\r\n",
        ),
    ];
    for (input, reply) in cases {
        let mut raw = s.raw();
        let got = raw_exchange(&mut raw, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            reply,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        // The server closed this connection.
        let mut buf = [0u8; 1];
        assert_eq!(raw.read(&mut buf).unwrap_or(0), 0);
    }
    // Commands before the bad frame are still answered, in order.
    let mut raw = s.raw();
    let got = raw_exchange(&mut raw, b"PING\r\n*1\r\n$-2\r\n");
    assert_eq!(
        got,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    // An inline line longer than 64 KiB.
    let mut raw = s.raw();
    let got = raw_exchange(&mut raw, &vec![b'a'; 70 * 1024]);
    assert!(
        got.starts_with(b"-ERR Protocol error: too big inline request"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_other_clients_unaffected(&s);
}

#[test]
fn garbage_and_half_frames_do_not_hurt_anyone_else() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = c.set("survivor", "intact").unwrap();
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(x as u8);
    }
    let mut raw = s.raw();
    let _ = raw.write_all(&garbage);
    let _ = read_available(&mut raw);
    drop(raw);
    // Half frames, then disconnect: the declared 1 MB value never arrives.
    for partial in [
        &b"*3\r\n$3\r\nSET\r\n$8\r\nsurvivor\r\n$1000000\r\nabc"[..],
        b"*2\r\n$3\r\nGET",
        b"*",
    ] {
        let mut raw = s.raw();
        raw.write_all(partial).unwrap();
        drop(raw);
    }
    // A client that disconnects in the middle of a big cross-shard pipeline.
    let mut raw = s.raw();
    let mut big = Vec::new();
    for i in 0..20_000 {
        big.extend_from_slice(format!("SET drop:{i} x\r\n").as_bytes());
    }
    raw.write_all(&big).unwrap();
    drop(raw);
    std::thread::sleep(Duration::from_millis(200));
    assert_other_clients_unaffected(&s);
}

#[test]
fn large_values_round_trip() {
    let s = Server::start(2);
    let mut c = s.client();
    let value: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let _: () = c.set("big", value.as_slice()).unwrap();
    let back: Vec<u8> = c.get("big").unwrap();
    assert_eq!(back, value);
    let len: usize = c.strlen("big").unwrap();
    assert_eq!(len, value.len());
}

#[test]
fn sigterm_finishes_in_flight_replies_and_exits_zero() {
    let s = Server::start(2);
    let mut raw = s.raw();
    let mut pipeline = Vec::new();
    for i in 0..2_000 {
        pipeline.extend_from_slice(format!("SET term:{i} {i}\r\n").as_bytes());
    }
    raw.write_all(&pipeline).unwrap();
    let mut got = vec![0u8; 2_000 * 5];
    raw.read_exact(&mut got[..5]).unwrap();
    let status = {
        let reader = std::thread::spawn(move || raw.read_exact(&mut got[5..]).map(|_| got));
        let status = s.terminate();
        let got = reader.join().unwrap().expect("all replies arrive");
        assert!(got.chunks(5).all(|r| r == b"+OK\r\n"));
        status
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn shutdown_command_exits_zero() {
    let s = Server::start(2);
    let mut raw = s.raw();
    let _ = raw_exchange(&mut raw, b"SHUTDOWN\r\n");
    let status = s.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn keys_route_by_fixed_hash() {
    // The same key maps to the same shard in every process and run.
    assert_eq!(shard_of("foo", 2), kora::coord::shard_of(b"foo", 2));
    let spread: Vec<usize> = (0..1000).map(|i| shard_of(&format!("k{i}"), 4)).collect();
    for shard in 0..4 {
        let n = spread.iter().filter(|&&s| s == shard).count();
        assert!(
            (150..350).contains(&n),
            "shard {shard} got {n} of 1000 keys"
        );
    }
}

#[test]
fn bad_flags_and_bad_config_exit_with_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));

    let path = std::env::temp_dir().join(format!("kora-test-{}.toml", std::process::id()));
    std::fs::write(&path, "port = 7000\nworkers = \"two\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("line 2"),
        "{err}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn config_file_is_honoured() {
    let port = common::free_port();
    let path = std::env::temp_dir().join(format!("kora-cfg-run-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!("port = {port}\nworkers = 1\nmetrics_port = 0\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kora"))
        .arg("--config")
        .arg(&path)
        .spawn()
        .unwrap();
    let mut answered = false;
    for _ in 0..200 {
        if let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
        {
            let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
            assert!(info.contains(&format!("tcp_port:{port}")));
            assert!(info.contains("shards:1"));
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(path);
    assert!(answered);
}

#[test]
fn a_command_larger_than_the_query_buffer_limit_is_refused() {
    let s = Server::start_with(2, &["--client-query-buffer-limit", "1000000"]);
    let mut c = s.client();
    let _: () = c.set("survivor", "intact").unwrap();
    // Two 600 kB arguments: the second header pushes the command past the
    // limit, and the server says so before the bytes arrive.
    let mut raw = s.raw();
    let mut frame = b"*3\r\n$3\r\nSET\r\n$600000\r\n".to_vec();
    frame.extend(std::iter::repeat_n(b'k', 600_000));
    frame.extend_from_slice(b"\r\n$600000\r\n");
    let reply = raw_exchange(&mut raw, &frame);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Protocol error: query buffer limit exceeded\r\n"
    );
    // Just under the limit is fine.
    let value = vec![b'v'; 400_000];
    let _: () = c.set("big", value.as_slice()).unwrap();
    assert_other_clients_unaffected(&s);
}
