//! Observability end to end: /metrics numbers after a known workload, the
//! HTTP endpoint's behaviour, INFO sections, LATENCY HISTOGRAM, HOTKEYS.

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use common::{Server, keys_on_each_shard, read_http_response};

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends a pipeline and reads exactly `expect_replies` RESP replies back;
/// returns (bytes written, bytes read).
fn run_pipeline(stream: &mut TcpStream, commands: &[Vec<u8>], expect_replies: usize) -> (u64, u64) {
    let payload: Vec<u8> = commands.concat();
    stream.write_all(&payload).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while count_replies(&got) < expect_replies {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "server closed early");
        got.extend_from_slice(&buf[..n]);
    }
    (payload.len() as u64, got.len() as u64)
}

/// Counts complete top-level replies of the simple shapes our workload
/// produces (status, error, integer, bulk).
fn count_replies(mut b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(nl) = b.iter().position(|&c| c == b'\n') {
        if b[0] == b'$' {
            let len: i64 = std::str::from_utf8(&b[1..nl - 1]).unwrap().parse().unwrap();
            let total = nl + 1 + if len >= 0 { len as usize + 2 } else { 0 };
            if b.len() < total {
                break;
            }
            b = &b[total..];
        } else {
            b = &b[nl + 1..];
        }
        n += 1;
    }
    n
}

struct Metrics {
    samples: Vec<prometheus_parse::Sample>,
    text: String,
}

impl Metrics {
    fn fetch(s: &Server) -> Metrics {
        let text = s.metrics();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        Metrics {
            samples: scrape.samples,
            text,
        }
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name} is {other:?}"),
        }
    }

    fn buckets(&self, cmd: &str) -> Vec<(f64, f64)> {
        let sample = self
            .samples
            .iter()
            .find(|s| {
                s.metric == "kora_command_duration_seconds" && s.labels.get("cmd") == Some(cmd)
            })
            .unwrap_or_else(|| panic!("no histogram for {cmd}"));
        match &sample.value {
            prometheus_parse::Value::Histogram(b) => {
                b.iter().map(|h| (h.less_than, h.count)).collect()
            }
            other => panic!("not a histogram: {other:?}"),
        }
    }

    /// `_sum` / `_count` lines, read from the text directly.
    fn line_value(&self, prefix: &str) -> f64 {
        self.text
            .lines()
            .find_map(|l| {
                l.strip_prefix(prefix)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no line {prefix}"))
    }
}

#[test]
fn metrics_match_a_known_workload_exactly() {
    let s = Server::start(2);
    let keys = keys_on_each_shard("m:", 2, 500);
    let all_keys: Vec<&String> = keys[0]
        .iter()
        .zip(&keys[1])
        .flat_map(|(a, b)| [a, b])
        .collect();
    assert_eq!(all_keys.len(), 1_000);

    // Whatever the harness exchanged while checking the server was up.
    let before = Metrics::fetch(&s);
    let mut bytes_in = before.value("kora_bytes_in_total", &[]) as u64;
    let mut bytes_out = before.value("kora_bytes_out_total", &[]) as u64;
    // Several connections so both cores serve clients.
    let mut conns: Vec<TcpStream> = (0..4).map(|_| s.raw()).collect();
    let sets: Vec<Vec<u8>> = all_keys
        .iter()
        .map(|k| resp(&["SET", k, "value-64-bytes-ish"]))
        .collect();
    let gets: Vec<Vec<u8>> = all_keys
        .iter()
        .take(700)
        .map(|k| resp(&["GET", k]))
        .collect();
    let hgets: Vec<Vec<u8>> = all_keys
        .iter()
        .take(50)
        .map(|k| resp(&["HGET", k, "field"]))
        .collect();
    for (i, chunk) in sets.chunks(250).enumerate() {
        let (w, r) = run_pipeline(&mut conns[i % 4], chunk, chunk.len());
        bytes_in += w;
        bytes_out += r;
    }
    for (i, chunk) in gets.chunks(175).enumerate() {
        let (w, r) = run_pipeline(&mut conns[i % 4], chunk, chunk.len());
        bytes_in += w;
        bytes_out += r;
    }
    // HGET on a string key: a WRONGTYPE error, counted as a failed call.
    let (w, r) = run_pipeline(&mut conns[0], &hgets, hgets.len());
    bytes_in += w;
    bytes_out += r;
    let (w, r) = run_pipeline(&mut conns[1], &[resp(&["DBSIZE"])], 1);
    bytes_in += w;
    bytes_out += r;

    let m = Metrics::fetch(&s);
    assert_eq!(m.value("kora_commands_total", &[("cmd", "set")]), 1000.0);
    assert_eq!(m.value("kora_commands_total", &[("cmd", "get")]), 700.0);
    assert_eq!(m.value("kora_commands_total", &[("cmd", "hget")]), 50.0);
    assert_eq!(
        m.value("kora_command_failed_total", &[("cmd", "hget")]),
        50.0
    );
    assert_eq!(m.value("kora_command_failed_total", &[("cmd", "set")]), 0.0);
    for (cmd, n) in [("set", 1000.0), ("get", 700.0), ("hget", 50.0)] {
        let buckets = m.buckets(cmd);
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{cmd} buckets decrease: {buckets:?}"
        );
        let inf = buckets
            .iter()
            .find(|b| b.0.is_infinite())
            .expect("+Inf bucket")
            .1;
        assert_eq!(inf, n, "{cmd} +Inf");
        let count = m.line_value(&format!(
            "kora_command_duration_seconds_count{{cmd=\"{cmd}\"}}"
        ));
        assert_eq!(count, n, "{cmd} _count");
        let sum = m.line_value(&format!(
            "kora_command_duration_seconds_sum{{cmd=\"{cmd}\"}}"
        ));
        assert!(sum > 0.0 && sum < 10.0, "{cmd} _sum {sum}");
        // The bounds are real latencies (seconds), and a 10 s bucket holds
        // everything this quick workload did.
        let ten_s = buckets.iter().find(|b| b.0 == 10.0).unwrap().1;
        assert_eq!(ten_s, n);
    }
    assert_eq!(m.value("kora_keys_total", &[]), 1000.0);
    assert_eq!(m.value("kora_shard_keys", &[("shard", "0")]), 500.0);
    assert_eq!(m.value("kora_shard_keys", &[("shard", "1")]), 500.0);
    assert_eq!(m.value("kora_shard_up", &[("shard", "0")]), 1.0);
    assert_eq!(m.value("kora_shard_up", &[("shard", "1")]), 1.0);
    assert_eq!(m.value("kora_bytes_in_total", &[]), bytes_in as f64);
    assert_eq!(m.value("kora_bytes_out_total", &[]), bytes_out as f64);
    // 700 GETs plus 50 HGETs that found a key (of the wrong type), as Redis counts.
    assert_eq!(m.value("kora_keyspace_hits_total", &[]), 750.0);
    // The allocator's figures: the process total holds the shards' own
    // (the rest is the collector's and the main thread's).
    let mem = m.value("kora_memory_used_bytes", &[]);
    let per_shard = m.value("kora_shard_memory_used_bytes", &[("shard", "0")])
        + m.value("kora_shard_memory_used_bytes", &[("shard", "1")]);
    assert!(per_shard > 0.0 && per_shard <= mem, "{per_shard} vs {mem}");
    // The estimate beside it: 1,000 keys of ~8 bytes with 18-byte values,
    // at least the payload, and not absurdly more than the per-entry
    // overhead allows.
    let dataset = m.value("kora_memory_dataset_bytes", &[]);
    let dataset_per_shard = m.value("kora_shard_memory_dataset_bytes", &[("shard", "0")])
        + m.value("kora_shard_memory_dataset_bytes", &[("shard", "1")]);
    assert_eq!(dataset, dataset_per_shard);
    assert!(
        (26_000.0..=200_000.0).contains(&dataset),
        "dataset {dataset}"
    );
    assert!(mem > dataset);
    assert!(m.value("kora_connected_clients", &[]) >= 4.0);
    assert!(m.text.contains("kora_build_info{"));
    assert!(m.value("kora_uptime_seconds", &[]) >= 0.0);
    // Every family announces its HELP and TYPE.
    for line in m.text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| m.text.contains(&format!("# TYPE {base} histogram")))
            })
            .unwrap_or(name);
        assert!(
            m.text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        assert!(
            m.text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }

    // INFO agrees with /metrics.
    let mut c = s.client();
    let info: String = redis::cmd("INFO").arg("everything").query(&mut c).unwrap();
    assert!(info.contains("cmdstat_set:calls=1000,usec="), "{info}");
    assert!(
        info.contains("cmdstat_hget:calls=50,")
            && info.contains(",rejected_calls=0,failed_calls=50")
    );
    assert!(info.contains("latency_percentiles_usec_get:p50="));
    assert!(info.contains("db0:keys=1000,expires=0,avg_ttl=0"));
    assert!(info.contains("keyspace_hits:750"));
    assert!(info.contains("\r\n"), "INFO uses CRLF");
    let stats: HashMap<&str, &str> = info
        .lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect();
    assert_eq!(
        stats["used_memory_estimate"].parse::<f64>().unwrap(),
        dataset
    );
    let used = stats["used_memory"].parse::<f64>().unwrap();
    assert!((used - mem).abs() < mem / 10.0, "{used} vs {mem}");
    assert!(stats["total_commands_processed"].parse::<u64>().unwrap() >= 1_751);
}

#[test]
fn latency_histogram_has_redis_shape_and_cumulative_counts() {
    let s = Server::start(2);
    let mut c = s.client();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("lh:{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let reply: redis::Value = redis::cmd("LATENCY")
        .arg("HISTOGRAM")
        .arg("set")
        .query(&mut c)
        .unwrap();
    let redis::Value::Array(top) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(top.len(), 2);
    assert_eq!(top[0], redis::Value::BulkString(b"set".to_vec()));
    let redis::Value::Array(body) = &top[1] else {
        panic!()
    };
    assert_eq!(body[0], redis::Value::BulkString(b"calls".to_vec()));
    assert_eq!(body[1], redis::Value::Int(300));
    assert_eq!(
        body[2],
        redis::Value::BulkString(b"histogram_usec".to_vec())
    );
    let redis::Value::Array(pairs) = &body[3] else {
        panic!()
    };
    let nums: Vec<i64> = pairs
        .iter()
        .map(|v| {
            if let redis::Value::Int(n) = v {
                *n
            } else {
                panic!()
            }
        })
        .collect();
    let counts: Vec<i64> = nums.chunks(2).map(|p| p[1]).collect();
    let bounds: Vec<i64> = nums.chunks(2).map(|p| p[0]).collect();
    assert!(
        bounds.iter().all(|b| b.count_ones() == 1),
        "power-of-two bounds {bounds:?}"
    );
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "cumulative {counts:?}"
    );
    assert_eq!(*counts.last().unwrap(), 300);
}

#[test]
fn hotkeys_puts_the_skewed_key_first() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for round in 0..200 {
        for k in 0..40 {
            pipe.cmd("GET").arg(format!("cold:{k}")).ignore();
        }
        for _ in 0..10 {
            pipe.cmd("GET").arg("hot:key").ignore();
        }
        let _ = round;
    }
    let _: () = pipe.query(&mut c).unwrap();
    let top: Vec<(String, i64)> = redis::cmd("HOTKEYS")
        .arg("COUNT")
        .arg(5)
        .query(&mut c)
        .unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0].0, "hot:key");
    assert!(
        top[0].1 >= 2000,
        "the sketch never undercounts: {}",
        top[0].1
    );
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
    let err = redis::cmd("HOTKEYS")
        .arg("COUNT")
        .arg(0)
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn hotkeys_decay_halves_counts() {
    let s = Server::start_with(1, &["--hotkeys-decay-ms", "300"]);
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.cmd("GET").arg("decaying").ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let before: Vec<(String, i64)> = redis::cmd("HOTKEYS").query(&mut c).unwrap();
    assert!(before[0].1 >= 1000);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let after: Vec<(String, i64)> = redis::cmd("HOTKEYS").query(&mut c).unwrap();
    assert!(after[0].1 <= before[0].1 / 2, "{before:?} -> {after:?}");
}

#[test]
fn http_endpoint_answers_like_an_http_server() {
    let s = Server::start(2);
    let (status, headers, body) =
        s.http("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&body).contains("# TYPE kora_commands_total counter"));

    let (status, _, _) = s.http("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);
    let (status, headers, _) =
        s.http("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert!(headers.contains("Allow: GET, HEAD"));
    let (status, _, _) = s.http("GARBAGE\r\n\r\n");
    assert_eq!(status, 400);
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, _, _) = s.http(&huge);
    assert_eq!(status, 431);

    let (status, headers, body) =
        s.http("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(headers.to_ascii_lowercase().contains("content-length: "));

    let (status, headers, body) = s.http(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-encoding: gzip")
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("# TYPE kora_command_duration_seconds histogram"));

    // Keep-alive: two scrapes on one connection.
    let mut stream = TcpStream::connect(("127.0.0.1", s.metrics_port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (status, _, body) = read_http_response(&mut reader, false);
        assert_eq!(status, 200);
        assert!(!body.is_empty());
    }
}

#[test]
fn metrics_port_zero_disables_the_endpoint() {
    let port = common::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kora"))
        .args([
            "--port",
            &port.to_string(),
            "--metrics-port",
            "0",
            "--workers",
            "1",
        ])
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let info = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .and_then(|mut c| {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("metrics-port")
                .query::<Vec<String>>(&mut c)
        });
    let _ = child.kill();
    let _ = child.wait();
    assert!(up);
    assert_eq!(
        info.unwrap(),
        vec!["metrics-port".to_string(), "0".to_string()]
    );
}

/// The shard a connection is served by: client ids encode it.
fn home_shard(c: &mut redis::Connection, nshards: u64) -> u64 {
    let id: u64 = redis::cmd("CLIENT").arg("ID").query(c).unwrap();
    id % nshards
}

#[test]
fn a_stalled_shard_is_reported_down_and_blocks_nobody_else() {
    let s = Server::start_with(2, &["--enable-debug-command"]);
    let keys = keys_on_each_shard("stall:", 2, 1);
    // One connection on each core.
    let mut by_shard: Vec<Option<redis::Connection>> = vec![None, None];
    while by_shard.iter().any(Option::is_none) {
        let mut c = s.client();
        let home = home_shard(&mut c, 2) as usize;
        if by_shard[home].is_none() {
            by_shard[home] = Some(c);
        }
    }
    let mut healthy = by_shard[1].take().unwrap();
    let _: () = redis::cmd("SET")
        .arg(&keys[1][0])
        .arg("alive")
        .query(&mut healthy)
        .unwrap();
    let mut staller = by_shard[0].take().unwrap();
    let stall = std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("2.5")
            .query(&mut staller)
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(200));

    // Shard 1's own keys are served while shard 0's thread is stuck.
    let t = std::time::Instant::now();
    let v: String = redis::cmd("GET")
        .arg(&keys[1][0])
        .query(&mut healthy)
        .unwrap();
    assert_eq!(v, "alive");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // The scrape does not wait for the stuck shard beyond its deadline.
    let t = std::time::Instant::now();
    let m = Metrics::fetch(&s);
    let took = t.elapsed();
    assert!(
        took < std::time::Duration::from_millis(2_000),
        "scrape took {took:?}"
    );
    assert_eq!(m.value("kora_shard_up", &[("shard", "0")]), 0.0);
    assert_eq!(m.value("kora_shard_up", &[("shard", "1")]), 1.0);
    stall.join().unwrap();
    let m = Metrics::fetch(&s);
    assert_eq!(m.value("kora_shard_up", &[("shard", "0")]), 1.0);

    let mut c = s.client();
    let err = redis::cmd("DEBUG")
        .arg("NOPE")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("unknown subcommand"), "{err}");
}

#[test]
fn debug_is_refused_unless_enabled() {
    let s = Server::start(1);
    let mut c = s.client();
    let err = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg("0")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("DEBUG command not allowed"),
        "{err}"
    );
}

#[test]
fn counters_never_go_backwards_across_scrapes() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut last = (0.0, 0.0);
    for round in 0..5 {
        for i in 0..200 {
            let _: () = redis::cmd("SET")
                .arg(format!("mono:{round}:{i}"))
                .arg(i)
                .query(&mut c)
                .unwrap();
        }
        let m = Metrics::fetch(&s);
        let now = (
            m.value("kora_commands_total", &[("cmd", "set")]),
            m.value("kora_bytes_in_total", &[]),
        );
        assert_eq!(now.0, 200.0 * (round + 1) as f64);
        assert!(now.0 > last.0 && now.1 > last.1);
        let count = m.line_value("kora_command_duration_seconds_count{cmd=\"set\"}");
        assert_eq!(count, now.0, "histogram count follows the counter");
        last = now;
    }
}

#[test]
fn every_command_slot_is_exported_from_zero_so_the_first_burst_counts() {
    let s = Server::start(1);
    let before = s.metrics();
    for line in [
        "kora_commands_total{cmd=\"hgetall\"} 0",
        "kora_command_failed_total{cmd=\"hgetall\"} 0",
        "kora_command_duration_seconds_bucket{cmd=\"hgetall\",le=\"+Inf\"} 0",
        "kora_command_duration_seconds_count{cmd=\"hgetall\"} 0",
        "kora_command_duration_seconds_sum{cmd=\"hgetall\"} 0",
    ] {
        assert!(before.lines().any(|l| l == line), "missing {line}");
    }
    let mut c = s.client();
    let _: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    let after = s.metrics();
    assert!(
        after
            .lines()
            .any(|l| l == "kora_commands_total{cmd=\"hgetall\"} 1")
    );
    assert!(
        after
            .lines()
            .any(|l| l == "kora_command_duration_seconds_bucket{cmd=\"hgetall\",le=\"+Inf\"} 1")
    );
}
