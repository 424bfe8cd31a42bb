//! kora-bench, the load generator, run as operators run it: the built
//! binary against a real Kora on loopback, and against small fake servers
//! that answer wrongly, to show that wrong replies are counted as errors.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn bench(port: u16, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kora-bench"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .expect("run kora-bench");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "kora-bench must stay bounded"
    );
    out
}

fn bench_json(port: u16, args: &[&str]) -> (Value, Option<i32>) {
    let out = bench(port, &[args, &["--json"][..]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "kora-bench --json printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.code())
}

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v}"))
}

/// Every per-command block has the documented fields, in a sane order.
fn assert_command_fields(json: &Value, cmd: &str) {
    let base = format!("/commands/{cmd}");
    for field in [
        "ops_per_sec",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
    ] {
        num(json, &format!("{base}/{field}"));
    }
    let p = |f: &str| num(json, &format!("{base}/{f}"));
    assert!(p("ops_per_sec") > 0.0, "{cmd}: {json}");
    assert!(p("p50_us") > 0.0, "{cmd}: {json}");
    assert!(
        p("p50_us") <= p("p90_us")
            && p("p90_us") <= p("p99_us")
            && p("p99_us") <= p("p999_us")
            && p("p999_us") <= p("max_us"),
        "{cmd} percentiles out of order: {json}"
    );
}

fn server_count(server: &Server, cmd: &str) -> u64 {
    let metrics = server.metrics();
    let prefix = format!("kora_commands_total{{cmd=\"{cmd}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn set_get_run_against_kora_is_verified_and_matches_the_servers_counters() {
    let server = Server::start(2);
    let (json, code) = bench_json(
        server.port,
        &[
            "--clients",
            "6",
            "--threads",
            "2",
            "--pipeline",
            "4",
            "--requests",
            "3000",
            "--ratio",
            "1:1",
            "--keyspace",
            "500",
            "--verify",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(num(&json, "/errors"), 0.0, "{json}");
    assert!(num(&json, "/ops_per_sec") > 0.0, "{json}");
    assert_eq!(num(&json, "/requests"), 3000.0, "{json}");
    assert_command_fields(&json, "set");
    assert_command_fields(&json, "get");
    let sets = num(&json, "/commands/set/requests") as u64;
    let gets = num(&json, "/commands/get/requests") as u64;
    assert_eq!(sets + gets, 3000);
    // About half each (1:1); a broken mix would be far off.
    assert!((1200..=1800).contains(&sets), "sets {sets}");
    // What the server counted is exactly what kora-bench says it sent.
    assert_eq!(server_count(&server, "set"), sets);
    assert_eq!(server_count(&server, "get"), gets);
}

#[test]
fn every_supported_command_runs_clean_with_preload_warmup_and_duration() {
    let server = Server::start(2);
    let started = Instant::now();
    let (json, code) = bench_json(
        server.port,
        &[
            "--clients",
            "4",
            "--pipeline",
            "8",
            "--duration",
            "0.6",
            "--warmup",
            "0.2",
            "--commands",
            "ping,set,get,incr,lpush,rpush,lpop,hset,hget,sadd,mget",
            "--distribution",
            "zipf:0.99",
            "--keyspace",
            "300",
            "--mget-keys",
            "5",
            "--value-size",
            "100",
            "--preload",
            "--verify",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(num(&json, "/errors"), 0.0, "{json}");
    let measured = num(&json, "/duration_s");
    assert!(
        (0.5..3.0).contains(&measured),
        "measured {measured} s: {json}"
    );
    for cmd in [
        "ping", "set", "get", "incr", "lpush", "rpush", "lpop", "hset", "hget", "sadd", "mget",
    ] {
        assert_command_fields(&json, cmd);
    }
    // --preload wrote every string and hash key before the run.
    let mut c = server.client();
    let value: Vec<u8> = redis::cmd("GET")
        .arg("key:000000000299")
        .query(&mut c)
        .unwrap();
    assert_eq!(value.len(), 100);
    let field: Vec<u8> = redis::cmd("HGET")
        .arg("hash:000000000299")
        .arg("field")
        .query(&mut c)
        .unwrap();
    assert_eq!(field.len(), 100);
}

#[test]
fn zipf_keys_make_key_zero_the_hot_key() {
    // No decay during the test: the counts below are absolute.
    let server = Server::start_with(2, &["--hotkeys-decay-ms", "600000"]);
    let (json, code) = bench_json(
        server.port,
        &[
            "--clients",
            "4",
            "--pipeline",
            "16",
            "--requests",
            "20000",
            "--ratio",
            "0:1",
            "--keyspace",
            "10000",
            "--distribution",
            "zipf:1.2",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let mut c = server.client();
    let top: Vec<(String, u64)> = redis::cmd("HOTKEYS")
        .arg("COUNT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    // Rank 1 of zipf:1.2 over 10k keys draws ~18% of 20000 reads.
    assert_eq!(top[0].0, "key:000000000000", "{top:?}");
    assert!(top[0].1 >= 2500, "{top:?}");
}

#[test]
fn text_output_has_a_row_per_command() {
    let server = Server::start(1);
    let out = bench(
        server.port,
        &[
            "--clients",
            "2",
            "--requests",
            "500",
            "--commands",
            "incr:1,sadd:1",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("500 requests in"), "{text}");
    for cmd in ["incr", "sadd"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(cmd))
            .unwrap_or_else(|| panic!("no {cmd} row in {text}"));
        assert_eq!(row.split_whitespace().last(), Some("0"), "{row}");
    }
}

/// How a fake server answers.
#[derive(Clone, Copy)]
enum Fake {
    /// A tiny correct store for SET and GET.
    Honest,
    /// GET returns what was stored with its last byte changed.
    CorruptValues,
    /// SET answers "+QUEUED" instead of "+OK".
    WrongSetReply,
    /// Closes each connection after this many replies.
    HangUpAfter(usize),
}

fn read_command(r: &mut impl BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        r.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}

type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

fn serve(stream: TcpStream, mode: Fake, store: Store) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = BufWriter::new(stream);
    let mut replies = 0;
    while let Some(args) = read_command(&mut reader) {
        if let Fake::HangUpAfter(n) = mode
            && replies == n
        {
            // A clean FIN after the replies so far, not a reset that could
            // destroy them in flight.
            let _ = writer.flush();
            let stream = writer.get_ref();
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
        let reply: Vec<u8> = match args[0].to_ascii_uppercase().as_slice() {
            b"SET" => {
                store
                    .lock()
                    .unwrap()
                    .insert(args[1].clone(), args[2].clone());
                match mode {
                    Fake::WrongSetReply => b"+QUEUED\r\n".to_vec(),
                    _ => b"+OK\r\n".to_vec(),
                }
            }
            b"GET" => match store.lock().unwrap().get(&args[1]).cloned() {
                Some(mut v) => {
                    if let (Fake::CorruptValues, Some(last)) = (mode, v.last_mut()) {
                        *last ^= 1;
                    }
                    [format!("${}\r\n", v.len()).as_bytes(), &v, b"\r\n"].concat()
                }
                None => b"$-1\r\n".to_vec(),
            },
            _ => b"-ERR unknown command\r\n".to_vec(),
        };
        writer.write_all(&reply).unwrap();
        replies += 1;
        if reader.buffer().is_empty() && writer.flush().is_err() {
            return;
        }
    }
}

/// A fake RESP server on a free loopback port; each connection gets its
/// own thread, all share one store. The listener lives as long as the
/// test process.
fn fake_server(mode: Fake) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = Store::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || serve(stream, mode, store));
        }
    });
    port
}

const SMALL_RUN: [&str; 10] = [
    "--clients",
    "2",
    "--threads",
    "1",
    "--requests",
    "400",
    "--ratio",
    "1:1",
    "--keyspace",
    "3",
];

#[test]
fn verify_passes_when_the_server_returns_what_was_written() {
    let port = fake_server(Fake::Honest);
    let (json, code) = bench_json(port, &[&SMALL_RUN[..], &["--verify"]].concat());
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(num(&json, "/errors"), 0.0, "{json}");
    assert_eq!(num(&json, "/requests"), 400.0);
}

#[test]
fn verify_catches_a_wrong_value() {
    let port = fake_server(Fake::CorruptValues);
    let (json, code) = bench_json(port, &[&SMALL_RUN[..], &["--verify"]].concat());
    assert_eq!(code, Some(3), "errors must fail the exit status: {json}");
    let errors = num(&json, "/errors");
    let gets = num(&json, "/commands/get/requests");
    // With 3 keys, only the GETs that came before their key's first SET
    // can pass; the rest must all be caught.
    assert!(errors > 0.0 && errors <= gets, "{json}");
    assert!(errors >= gets - 10.0, "{json}");
    assert_eq!(num(&json, "/commands/get/errors"), errors);
    assert_eq!(num(&json, "/commands/set/errors"), 0.0);
    assert!(
        json["first_error"]
            .as_str()
            .is_some_and(|e| e.contains("--verify")),
        "{json}"
    );
    // Without --verify a GET only has to be a bulk string.
    let (json, code) = bench_json(port, &SMALL_RUN);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(num(&json, "/errors"), 0.0);
}

#[test]
fn a_wrong_reply_type_is_an_error_not_a_success() {
    let port = fake_server(Fake::WrongSetReply);
    let (json, code) = bench_json(port, &SMALL_RUN);
    assert_eq!(code, Some(3));
    let sets = num(&json, "/commands/set/requests");
    assert!(sets > 0.0);
    assert_eq!(num(&json, "/commands/set/errors"), sets, "{json}");
    assert_eq!(num(&json, "/commands/get/errors"), 0.0, "{json}");
}

#[test]
fn a_server_that_hangs_up_ends_the_run_with_errors() {
    let port = fake_server(Fake::HangUpAfter(50));
    let started = Instant::now();
    let (json, code) = bench_json(port, &[&SMALL_RUN[..], &["--pipeline", "4"]].concat());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, Some(3), "{json}");
    // Two connections with batches of 4: 50 good replies each, then the
    // other 2 requests of the 13th batch are lost; nothing more is sent.
    assert_eq!(num(&json, "/requests"), 104.0, "{json}");
    assert_eq!(num(&json, "/errors"), 4.0, "{json}");
}

#[test]
fn bad_flags_and_unreachable_servers_exit_nonzero() {
    let free = common::free_port();
    let out = bench(free, &["--requests", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    for bad in [
        &["--distribution", "zipf:0"][..],
        &["--distribution", "pareto"],
        &["--commands", "flushall"],
        &["--ratio", "0:0"],
        &["--clients", "0"],
        &["--requests", "10", "--duration", "1"],
    ] {
        let out = bench(free, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
