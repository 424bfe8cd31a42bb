//! Introspection end to end, with the numbers checked: CONFIG GET/SET/
//! RESETSTAT, INFO sections and errorstats, SLOWLOG, LATENCY's monitor,
//! MEMORY and OBJECT. Servers run with two
//! shards, and keys or connections are picked on each of them, so every
//! merge across shards is exercised.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, e, keys_on_each_shard, q};
use redis::{Connection, FromRedisValue, Value};

// ---------------------------------------------------------------- helpers

fn ok(c: &mut Connection, args: &[&str]) {
    assert_eq!(q::<Value>(c, args), Value::Okay, "{args:?}");
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `name:value` lines of an INFO reply.
fn info_fields(c: &mut Connection, section: &str) -> HashMap<String, String> {
    let text: String = q(c, &["INFO", section]);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of one sample on /metrics, e.g. `kora_errors_total{kind="ERR"}`.
fn metric(s: &Server, sample: &str) -> f64 {
    let text = s.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
        .parse()
        .unwrap()
}

/// The core serving a connection: client ids are congruent to it.
fn home_shard(c: &mut Connection, nshards: u64) -> usize {
    let id: u64 = q(c, &["CLIENT", "ID"]);
    (id % nshards) as usize
}

/// One connection served by each of the server's cores.
fn connection_per_core(s: &Server) -> Vec<Connection> {
    let n = s.workers;
    let mut by_core: Vec<Option<Connection>> = (0..n).map(|_| None).collect();
    for _ in 0..200 {
        let mut c = s.client();
        let home = home_shard(&mut c, n as u64);
        by_core[home].get_or_insert(c);
        if by_core.iter().all(Option::is_some) {
            break;
        }
    }
    by_core
        .into_iter()
        .map(|c| c.expect("a connection on every core"))
        .collect()
}

/// A SLOWLOG GET entry.
#[derive(Debug)]
struct SlowEntry {
    id: i64,
    time: i64,
    duration_us: i64,
    argv: Vec<String>,
    addr: String,
    name: String,
}

fn slowlog(c: &mut Connection, count: &str) -> Vec<SlowEntry> {
    let raw: Vec<(i64, i64, i64, Vec<String>, String, String)> = q(c, &["SLOWLOG", "GET", count]);
    raw.into_iter()
        .map(|(id, time, duration_us, argv, addr, name)| SlowEntry {
            id,
            time,
            duration_us,
            argv,
            addr,
            name,
        })
        .collect()
}

const KNOB_DEFAULTS: [(&str, &str); 5] = [
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("latency-monitor-threshold", "0"),
    ("hotkeys-decay-ms", "10000"),
    ("hotkeys-top-k", "32"),
];

// ------------------------------------------------------------------ CONFIG

#[test]
fn config_get_lists_every_parameter_and_set_reaches_every_core() {
    let s = Server::start(2);
    let mut cores = connection_per_core(&s);
    let all: Vec<String> = q(&mut cores[0], &["CONFIG", "GET", "*"]);
    assert!(all.len().is_multiple_of(2));
    let params: HashMap<&str, &str> = all
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .collect();
    assert_eq!(params.len() * 2, all.len(), "no duplicates: {all:?}");
    for (name, default) in KNOB_DEFAULTS {
        assert_eq!(params.get(name), Some(&default), "{name} in {all:?}");
    }
    for name in ["maxmemory", "port", "bind", "hash-max-listpack-entries"] {
        assert!(params.contains_key(name), "{name} in {all:?}");
    }
    // A pattern picks a subset; names match case-insensitively.
    let slow: Vec<String> = q(&mut cores[0], &["CONFIG", "GET", "SLOWLOG-*"]);
    assert_eq!(
        slow,
        vec!["slowlog-log-slower-than", "10000", "slowlog-max-len", "128"]
    );

    // Several knobs in one SET, visible from both cores.
    ok(
        &mut cores[1],
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "2500",
            "SLOWLOG-MAX-LEN",
            "7",
            "latency-monitor-threshold",
            "15",
            "hotkeys-decay-ms",
            "60000",
            "hotkeys-top-k",
            "4",
        ],
    );
    for c in cores.iter_mut() {
        let got: Vec<String> = q(
            c,
            &[
                "CONFIG",
                "GET",
                "slowlog-*",
                "latency-monitor-threshold",
                "hotkeys-*",
            ],
        );
        assert_eq!(
            got,
            vec![
                "slowlog-log-slower-than",
                "2500",
                "slowlog-max-len",
                "7",
                "latency-monitor-threshold",
                "15",
                "hotkeys-decay-ms",
                "60000",
                "hotkeys-top-k",
                "4"
            ]
        );
    }

    // Redis 7's errors, and nothing applied when any pair is bad.
    let c = &mut cores[0];
    assert_eq!(
        e(c, &["CONFIG", "SET", "no-such-knob", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-knob'"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "port", "1"]),
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    assert_eq!(
        e(
            c,
            &[
                "CONFIG",
                "SET",
                "slowlog-max-len",
                "99",
                "slowlog-log-slower-than",
                "x"
            ]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "slowlog-log-slower-than", "-2"]),
        "ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "hotkeys-top-k", "0"]),
        "ERR CONFIG SET failed (possibly related to argument 'hotkeys-top-k') - argument must be between 1 and 1024 inclusive"
    );
    assert_eq!(
        e(
            c,
            &[
                "CONFIG",
                "SET",
                "slowlog-max-len",
                "1",
                "slowlog-max-len",
                "2"
            ]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - duplicate parameter"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "slowlog-max-len", "1", "x"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "slowlog-max-len"]),
        "ERR wrong number of arguments for 'config|set' command"
    );
    let max_len: Vec<String> = q(c, &["CONFIG", "GET", "slowlog-max-len"]);
    assert_eq!(
        max_len,
        vec!["slowlog-max-len", "7"],
        "failed SETs change nothing"
    );
    assert!(e(c, &["CONFIG", "REWRITE"]).starts_with("ERR CONFIG REWRITE is not supported"));
    assert_eq!(
        e(c, &["CONFIG", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try CONFIG HELP."
    );
    let help: Vec<String> = q(c, &["CONFIG", "HELP"]);
    assert!(help.iter().any(|l| l.starts_with("RESETSTAT")), "{help:?}");
}

#[test]
fn hotkey_knobs_take_effect_on_every_shard() {
    let s = Server::start(2);
    let mut c = s.client();
    ok(&mut c, &["CONFIG", "SET", "hotkeys-top-k", "1"]);
    let keys = keys_on_each_shard("hk:", 2, 3);
    for (shard, keys) in keys.iter().enumerate() {
        for (i, key) in keys.iter().enumerate() {
            // Each key has to pass twice the previous one's count to enter.
            for _ in 0..([5, 20, 60][i] + shard) {
                let _: Option<String> = q(&mut c, &["GET", key]);
            }
        }
    }
    // One candidate per shard is kept: the most accessed key of each.
    let top: Vec<(String, i64)> = q(&mut c, &["HOTKEYS", "COUNT", "10"]);
    let names: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(names.contains(&keys[0][2].as_str()) && names.contains(&keys[1][2].as_str()));

    // A short decay interval halves the counts on both shards within ~100 ms.
    for k in &keys {
        ok(&mut c, &["SET", &k[0], "v"]);
        for _ in 0..199 {
            let _: String = q(&mut c, &["GET", &k[0]]);
        }
    }
    // A key's count as HOTKEYS reports it (0 once gone): its accesses since
    // it entered the table, which it did when its sketch estimate (5 from
    // above, +1 per access) passed twice the count of the key it replaced
    // (60): 200 - 116 + 1 (one less on shard 1).
    let freq = |c: &mut Connection, key: &str| -> i64 {
        let top: Vec<(String, i64)> = q(c, &["HOTKEYS", "COUNT", "10"]);
        top.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    };
    for k in &keys {
        assert!(
            freq(&mut c, &k[0]) >= 64 + 5 - 25,
            "{}",
            freq(&mut c, &k[0])
        );
    }
    ok(&mut c, &["CONFIG", "SET", "hotkeys-decay-ms", "50"]);
    std::thread::sleep(Duration::from_millis(700));
    for k in &keys {
        assert!(freq(&mut c, &k[0]) < 16, "decayed on the shard of {}", k[0]);
    }
}

// -------------------------------------------------------- INFO / RESETSTAT

#[test]
fn info_has_the_fields_tools_read() {
    let s = Server::start(2);
    let mut c = s.client();
    let text: String = q(&mut c, &["INFO"]);
    assert!(
        text.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
        "CRLF line endings"
    );
    let titles: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(
        titles,
        vec![
            "# Server",
            "# Clients",
            "# Memory",
            "# Persistence",
            "# Stats",
            "# Replication",
            "# CPU",
            "# Errorstats",
            "# Cluster",
            "# Keyspace"
        ]
    );
    let fields: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(':')).collect();
    for name in [
        "redis_version",
        "kora_version",
        "os",
        "process_id",
        "run_id",
        "uptime_in_seconds",
        "mem_allocator",
        "connected_clients",
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory_policy",
        "total_connections_received",
        "total_error_replies",
    ] {
        assert!(fields.contains_key(name), "INFO lacks {name}");
    }
    assert_eq!(fields["redis_mode"], "standalone");
    assert_eq!(fields["tcp_port"], s.port.to_string());
    assert_eq!(fields["blocked_clients"], "0");
    assert_eq!(fields["maxmemory"], "0");
    assert_eq!(fields["role"], "master");
    assert_eq!(fields["cluster_enabled"], "0");
    assert_eq!(fields["run_id"].len(), 40);
    // Kernel name, release and architecture, as Redis prints them.
    let os: Vec<&str> = fields["os"].split(' ').collect();
    assert_eq!(os.len(), 3, "{}", fields["os"]);
    assert_eq!(os[2], std::env::consts::ARCH);
    assert!(fields["redis_version"].starts_with("7."));
    assert!(fields["connected_clients"].parse::<u64>().unwrap() >= 1);
    assert!(
        fields["used_memory_peak"].parse::<u64>().unwrap()
            >= fields["used_memory"].parse::<u64>().unwrap()
    );
    let default: String = q(&mut c, &["INFO", "default"]);
    let default_titles: Vec<&str> = default.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(default_titles, titles, "INFO default is INFO");
    for everything in ["ALL", "everything"] {
        let all: String = q(&mut c, &["INFO", everything]);
        for title in [
            "# Commandstats",
            "# Errorstats",
            "# Latencystats",
            "# Keyspace",
        ] {
            assert!(all.contains(title), "INFO {everything} lacks {title}");
        }
    }
    let two: String = q(&mut c, &["INFO", "server", "CLIENTS"]);
    let titles: Vec<&str> = two.lines().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(titles, vec!["# Server", "# Clients"]);
    let none: String = q(&mut c, &["INFO", "nosuchsection"]);
    assert_eq!(none, "");
}

#[test]
fn errors_are_counted_by_kind_and_rejected_apart_from_failed() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("err:", 2, 2);
    // WRONGTYPE from both shards (one local to this connection, one not).
    for shard_keys in &keys {
        ok(&mut c, &["SET", &shard_keys[0], "text"]);
        for _ in 0..2 {
            assert!(e(&mut c, &["LPUSH", &shard_keys[0], "x"]).starts_with("WRONGTYPE"));
        }
    }
    // Refused before running: unknown command twice, wrong arity once.
    assert!(e(&mut c, &["NOSUCHCMD"]).starts_with("ERR unknown command"));
    assert!(e(&mut c, &["NOSUCHCMD", "a"]).starts_with("ERR unknown command"));
    assert_eq!(
        e(&mut c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    // Ran and failed with ERR.
    assert_eq!(
        e(&mut c, &["INCR", &keys[1][0]]),
        "ERR value is not an integer or out of range"
    );

    let info: String = q(&mut c, &["INFO", "everything"]);
    assert!(info.contains("errorstat_WRONGTYPE:count=4\r\n"), "{info}");
    assert!(info.contains("errorstat_ERR:count=4\r\n"), "{info}");
    assert!(info.contains("total_error_replies:8\r\n"), "{info}");
    let cmdstat = |name: &str| -> String {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .unwrap_or_else(|| panic!("no cmdstat_{name} in {info}"))
            .to_string()
    };
    let lpush = cmdstat("lpush");
    assert!(lpush.starts_with("cmdstat_lpush:calls=4,"), "{lpush}");
    assert!(
        lpush.ends_with(",rejected_calls=0,failed_calls=4"),
        "{lpush}"
    );
    let get = cmdstat("get");
    assert!(get.starts_with("cmdstat_get:calls=0,"), "{get}");
    assert!(
        get.ends_with(",usec_per_call=0.00,rejected_calls=1,failed_calls=0"),
        "{get}"
    );
    assert!(cmdstat("incr").ends_with(",rejected_calls=0,failed_calls=1"));
    // Unknown commands have no command of their own: they count under
    // `other`, as rejected.
    assert!(
        cmdstat("other").contains(",rejected_calls=2,"),
        "{}",
        cmdstat("other")
    );

    assert_eq!(metric(&s, "kora_errors_total{kind=\"WRONGTYPE\"}"), 4.0);
    assert_eq!(metric(&s, "kora_errors_total{kind=\"ERR\"}"), 4.0);
    assert_eq!(metric(&s, "kora_errors_total{kind=\"EXECABORT\"}"), 0.0);
    assert_eq!(metric(&s, "kora_command_failed_total{cmd=\"lpush\"}"), 4.0);
}

#[test]
fn config_resetstat_resets_info_but_metrics_never_go_backwards() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("rs:", 2, 5);
    for k in keys.iter().flatten() {
        ok(&mut c, &["SET", k, "v"]);
        let _: String = q(&mut c, &["GET", k]);
    }
    assert!(e(&mut c, &["LPUSH", &keys[0][0], "x"]).starts_with("WRONGTYPE"));
    let before = info_fields(&mut c, "everything");
    assert_eq!(before["keyspace_hits"], "10");
    assert!(before.contains_key("cmdstat_set"));
    assert_eq!(before["errorstat_WRONGTYPE"], "count=1");
    let sets_before = metric(&s, "kora_commands_total{cmd=\"set\"}");
    let hits_before = metric(&s, "kora_keyspace_hits_total");
    assert_eq!(sets_before, 10.0);
    let histogram: Vec<Value> = q(&mut c, &["LATENCY", "HISTOGRAM", "set"]);
    assert_eq!(histogram.len(), 2, "set has a histogram before the reset");
    ok(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: String = q(&mut c, &["GET", &keys[1][1]]);

    ok(&mut c, &["CONFIG", "RESETSTAT"]);

    let after = info_fields(&mut c, "everything");
    assert!(!after.contains_key("cmdstat_set"), "{after:?}");
    assert!(!after.contains_key("cmdstat_get"), "{after:?}");
    assert!(!after.contains_key("errorstat_WRONGTYPE"), "{after:?}");
    assert_eq!(after["keyspace_hits"], "0");
    assert_eq!(after["keyspace_misses"], "0");
    assert_eq!(after["total_error_replies"], "0");
    assert_eq!(after["total_connections_received"], "0");
    // CONFIG RESETSTAT itself and this INFO are all that ran since.
    assert!(after["total_commands_processed"].parse::<u64>().unwrap() <= 2);
    assert_eq!(after["db0"].split(',').next(), Some("keys=10"), "keys stay");
    let histogram: Vec<Value> = q(&mut c, &["LATENCY", "HISTOGRAM", "set"]);
    assert!(histogram.is_empty(), "LATENCY HISTOGRAM starts again");
    // The slow log is not statistics: RESETSTAT keeps it, as Redis does.
    let entries = slowlog(&mut c, "-1");
    assert!(
        entries
            .iter()
            .any(|e| e.argv == ["GET", keys[1][1].as_str()])
    );

    // New activity counts from zero in INFO, on top of the totals on /metrics.
    ok(&mut c, &["SET", &keys[0][1], "w"]);
    let _: String = q(&mut c, &["GET", &keys[1][2]]);
    let info: String = q(&mut c, &["INFO", "commandstats"]);
    assert!(info.contains("cmdstat_set:calls=1,"), "{info}");
    assert!(info.contains("cmdstat_get:calls=1,"), "{info}");
    assert_eq!(info_fields(&mut c, "stats")["keyspace_hits"], "1");
    assert_eq!(
        metric(&s, "kora_commands_total{cmd=\"set\"}"),
        sets_before + 1.0
    );
    assert_eq!(metric(&s, "kora_keyspace_hits_total"), hits_before + 2.0);
    assert_eq!(metric(&s, "kora_errors_total{kind=\"WRONGTYPE\"}"), 1.0);
    let histogram: Vec<Value> = q(&mut c, &["LATENCY", "HISTOGRAM", "set"]);
    assert_eq!(histogram.len(), 2);
}

// ----------------------------------------------------------------- SLOWLOG

#[test]
fn slowlog_shows_the_arguments_of_pipelined_commands_run_on_another_shard() {
    // The arguments of a command sent to another shard are logged from
    // the batch that carried it there. (A local command is logged when it
    // runs, a remote one when its reply is back, so the entries are not in
    // the pipeline's order.)
    let s = Server::start_with(2, &[]);
    let mut cores = connection_per_core(&s);
    let keys = keys_on_each_shard("slp:", 2, 2);
    ok(
        &mut cores[0],
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
    );
    ok(&mut cores[0], &["SLOWLOG", "RESET"]);
    let mut pipe = redis::pipe();
    let mut sent = Vec::new();
    for i in 0..6 {
        // Connections are in their core's order: keys[1] are the other
        // shard's for cores[0], keys[0] its own.
        let key = &keys[(i % 3 != 0) as usize][i % 2];
        let value = format!("value-{i}");
        pipe.cmd("SET").arg(key).arg(&value);
        sent.push(vec!["SET".to_string(), key.clone(), value]);
    }
    let _: Vec<String> = pipe.query(&mut cores[0]).unwrap();
    let mut argv: Vec<Vec<String>> = slowlog(&mut cores[0], "-1")
        .into_iter()
        .filter(|e| e.argv[0] == "SET")
        .map(|e| e.argv)
        .collect();
    argv.sort();
    sent.sort();
    assert_eq!(argv, sent);
}

#[test]
fn slowlog_merges_every_core_newest_first() {
    let s = Server::start_with(2, &["--enable-debug-command"]);
    let mut cores = connection_per_core(&s);
    let keys = keys_on_each_shard("sl:", 2, 2);
    ok(
        &mut cores[0],
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
    );
    ok(&mut cores[1], &["CLIENT", "SETNAME", "second"]);
    ok(&mut cores[0], &["SLOWLOG", "RESET"]);
    // Alternate cores, keys on both shards (each core serves some keys
    // locally and some over the mesh).
    let mut sent = Vec::new();
    for i in 0..6 {
        let key = &keys[i % 2][i / 4];
        let value = format!("v{i}");
        ok(&mut cores[i % 2], &["SET", key, &value]);
        sent.push(vec!["SET".to_string(), key.clone(), value]);
    }
    let entries = slowlog(&mut cores[0], "-1");
    // Newest first; SLOWLOG RESET itself (logged after it ran) is last.
    let sets: Vec<&SlowEntry> = entries.iter().filter(|e| e.argv[0] == "SET").collect();
    let argv: Vec<Vec<String>> = sets.iter().map(|e| e.argv.clone()).collect();
    sent.reverse();
    assert_eq!(argv, sent);
    assert!(entries.windows(2).all(|w| w[0].id > w[1].id), "{entries:?}");
    let now = unix_now();
    for e in &entries {
        assert!((now - 5..=now + 1).contains(&e.time), "{e:?}");
        assert!(e.duration_us >= 0 && e.duration_us < 5_000_000, "{e:?}");
        assert!(e.addr.starts_with("127.0.0.1:"), "{e:?}");
    }
    for (i, e) in sets.iter().enumerate() {
        // sent was reversed: entry i came from core (5 - i) % 2.
        let name = if (5 - i) % 2 == 1 { "second" } else { "" };
        assert_eq!(e.name, name, "{e:?}");
    }
    let two = slowlog(&mut cores[1], "2");
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].argv, ["SLOWLOG", "GET", "-1"], "logged after it ran");
    assert_eq!(two[1].id, entries[0].id);
    let len: i64 = q(&mut cores[1], &["SLOWLOG", "LEN"]);
    assert_eq!(len as usize, entries.len() + 2, "plus the two SLOWLOG GETs");
    assert_eq!(
        metric(&s, "kora_slowlog_length") as i64,
        q::<i64>(&mut cores[0], &["SLOWLOG", "LEN"])
    );

    // Only commands over the threshold: a 150 ms DEBUG SLEEP, not a GET.
    ok(
        &mut cores[1],
        &["CONFIG", "SET", "slowlog-log-slower-than", "100000"],
    );
    ok(&mut cores[1], &["SLOWLOG", "RESET"]);
    let _: Option<String> = q(&mut cores[0], &["GET", &keys[1][0]]);
    ok(&mut cores[1], &["DEBUG", "SLEEP", "0.15"]);
    let entries = slowlog(&mut cores[0], "10");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].argv, ["DEBUG", "SLEEP", "0.15"]);
    assert!(entries[0].duration_us >= 150_000, "{entries:?}");
    assert_eq!(entries[0].name, "second");

    // Arguments are cut like Redis: 32 at most, 128 bytes each.
    ok(
        &mut cores[0],
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
    );
    let long = "x".repeat(200);
    let mut mset = vec!["MSET", "sl:long", long.as_str()];
    let pairs: Vec<String> = (0..20).map(|i| format!("sl:p{i}")).collect();
    for p in &pairs {
        mset.push(p);
        mset.push("1");
    }
    ok(&mut cores[0], &mset);
    let entry = slowlog(&mut cores[0], "1").remove(0);
    assert_eq!(entry.argv.len(), 32);
    assert_eq!(
        entry.argv[2],
        format!("{}... (72 more bytes)", "x".repeat(128))
    );
    assert_eq!(entry.argv[31], "... (12 more arguments)");
    assert_eq!(entry.argv[29], "sl:p13");
    assert_eq!(entry.argv[30], "1");

    // A bound on the length, and negative disables.
    ok(&mut cores[0], &["CONFIG", "SET", "slowlog-max-len", "3"]);
    for c in cores.iter_mut() {
        for _ in 0..3 {
            let _: String = q(c, &["PING"]);
        }
    }
    assert_eq!(q::<i64>(&mut cores[1], &["SLOWLOG", "LEN"]), 3);
    assert_eq!(slowlog(&mut cores[1], "-1").len(), 3);
    ok(
        &mut cores[0],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    );
    ok(&mut cores[0], &["SLOWLOG", "RESET"]);
    ok(&mut cores[1], &["DEBUG", "SLEEP", "0.02"]);
    assert_eq!(q::<i64>(&mut cores[0], &["SLOWLOG", "LEN"]), 0);

    let c = &mut cores[0];
    assert_eq!(
        e(c, &["SLOWLOG", "GET", "-2"]),
        "ERR count should be greater than or equal to -1"
    );
    assert_eq!(
        e(c, &["SLOWLOG", "GET", "x"]),
        "ERR count should be greater than or equal to -1"
    );
    assert_eq!(
        e(c, &["SLOWLOG", "LEN", "x"]),
        "ERR wrong number of arguments for 'slowlog|len' command"
    );
    assert_eq!(
        e(c, &["SLOWLOG", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try SLOWLOG HELP."
    );
    let help: Vec<String> = q(c, &["SLOWLOG", "HELP"]);
    assert_eq!(help.len(), 12, "{help:?}");
}

#[test]
fn slowlog_hides_passwords() {
    let s = Server::start(1);
    let mut c = s.client();
    ok(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _ = e(&mut c, &["AUTH", "user", "secret"]);
    let entry = slowlog(&mut c, "1").remove(0);
    assert_eq!(entry.argv, ["AUTH", "(redacted)", "(redacted)"]);
}

// ----------------------------------------------------------------- LATENCY

#[test]
fn latency_monitor_records_spikes_over_the_threshold() {
    let s = Server::start_with(2, &["--enable-debug-command"]);
    let mut cores = connection_per_core(&s);
    let latest: Vec<Value> = q(&mut cores[0], &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "off by default");
    let doctor: String = q(&mut cores[0], &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains("latency monitor is off"), "{doctor}");

    ok(
        &mut cores[0],
        &["CONFIG", "SET", "latency-monitor-threshold", "100"],
    );
    ok(&mut cores[0], &["DEBUG", "SLEEP", "0.05"]); // under the threshold
    assert!(q::<Vec<Value>>(&mut cores[1], &["LATENCY", "LATEST"]).is_empty());
    ok(&mut cores[0], &["DEBUG", "SLEEP", "0.15"]);
    std::thread::sleep(Duration::from_millis(1100)); // next second, next sample
    ok(&mut cores[1], &["DEBUG", "SLEEP", "0.25"]);

    let latest: Vec<(String, i64, i64, i64)> = q(&mut cores[0], &["LATENCY", "LATEST"]);
    assert_eq!(latest.len(), 1, "{latest:?}");
    let (event, time, last_ms, max_ms) = &latest[0];
    assert_eq!(event, "command");
    assert!((unix_now() - 3..=unix_now()).contains(time));
    assert!((250..1000).contains(last_ms), "{latest:?}");
    assert_eq!(max_ms, last_ms);

    let history: Vec<(i64, i64)> = q(&mut cores[1], &["LATENCY", "HISTORY", "command"]);
    assert_eq!(history.len(), 2, "one sample per core's spike: {history:?}");
    assert!(history[0].0 < history[1].0, "oldest first");
    assert!((150..250).contains(&history[0].1), "{history:?}");
    assert_eq!(history[1].1, *last_ms);
    let none: Vec<Value> = q(&mut cores[1], &["LATENCY", "HISTORY", "fork"]);
    assert!(none.is_empty());

    let doctor: String = q(&mut cores[1], &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains("1. command: 2 latency spikes"), "{doctor}");
    // LATENCY HISTOGRAM keeps working next to the monitor.
    ok(&mut cores[1], &["SET", "lat:k", "v"]);
    let histogram: Vec<Value> = q(&mut cores[1], &["LATENCY", "HISTOGRAM", "set"]);
    assert_eq!(histogram.len(), 2, "{histogram:?}");

    assert_eq!(q::<i64>(&mut cores[0], &["LATENCY", "RESET", "nosuch"]), 0);
    assert_eq!(q::<i64>(&mut cores[0], &["LATENCY", "RESET"]), 1);
    assert!(q::<Vec<Value>>(&mut cores[1], &["LATENCY", "LATEST"]).is_empty());
    assert_eq!(
        e(&mut cores[0], &["LATENCY", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try LATENCY HELP."
    );
}

// ------------------------------------------------------------------ MEMORY

#[test]
fn memory_usage_is_the_keys_share_of_the_memory_gauge() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("mem:", 2, 3);
    // The keyspace estimate (the per-entry cost model) that MEMORY USAGE
    // reads; used_memory itself is the allocator's figure.
    let used = |c: &mut Connection| -> i64 {
        info_fields(c, "memory")["used_memory_estimate"]
            .parse()
            .unwrap()
    };
    for shard_keys in &keys {
        let (small, big, hash) = (&shard_keys[0], &shard_keys[1], &shard_keys[2]);
        // A new key adds exactly its MEMORY USAGE to the accounted total.
        let before = used(&mut c);
        ok(&mut c, &["SET", small, "0123456789"]);
        let small_usage: i64 = q(&mut c, &["MEMORY", "USAGE", small]);
        assert_eq!(used(&mut c) - before, small_usage);
        let before = used(&mut c);
        ok(&mut c, &["SET", big, &"y".repeat(1000)]);
        let big_usage: i64 = q(&mut c, &["MEMORY", "USAGE", big]);
        assert_eq!(used(&mut c) - before, big_usage);
        // The 10-byte value lives in the key's slot; the 1000-byte one is
        // a heap buffer with its allocation header (16).
        assert_eq!(big_usage - small_usage, 1016, "grows with the value");

        // A hash: exact with SAMPLES 0; uniform fields make the default
        // 5-sample estimate exact too.
        let before = used(&mut c);
        for i in 0..300 {
            let _: i64 = q(&mut c, &["HSET", hash, &format!("f{i:04}"), "value-12"]);
        }
        let exact: i64 = q(&mut c, &["MEMORY", "USAGE", hash, "SAMPLES", "0"]);
        assert_eq!(used(&mut c) - before, exact);
        assert_eq!(q::<i64>(&mut c, &["MEMORY", "USAGE", hash]), exact);
        assert_eq!(
            q::<i64>(&mut c, &["MEMORY", "USAGE", hash, "samples", "50"]),
            exact
        );
        // MEMORY USAGE is not an access (the LFU counter of a key set
        // once stays at its initial 5).
        ok(
            &mut c,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        );
        let _: i64 = q(&mut c, &["DEL", small]);
        ok(&mut c, &["SET", small, "0123456789"]);
        let _: i64 = q(&mut c, &["MEMORY", "USAGE", small]);
        assert_eq!(q::<i64>(&mut c, &["OBJECT", "FREQ", small]), 5);
        ok(&mut c, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    }
    let missing: Option<i64> = q(&mut c, &["MEMORY", "USAGE", "mem:none"]);
    assert_eq!(missing, None);
    assert_eq!(
        e(&mut c, &["MEMORY", "USAGE", &keys[0][0], "SAMPLES", "-1"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["MEMORY", "USAGE", &keys[0][0], "FOO"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["MEMORY", "USAGE"]),
        "ERR wrong number of arguments for 'memory|usage' command"
    );

    // MEMORY STATS splits the allocator's total (INFO used_memory).
    let raw: Vec<Value> = q(&mut c, &["MEMORY", "STATS"]);
    let mut stats: HashMap<String, Value> = HashMap::new();
    for pair in raw.chunks(2) {
        stats.insert(
            String::from_redis_value(pair[0].clone()).unwrap(),
            pair[1].clone(),
        );
    }
    let int = |name: &str| -> i64 { i64::from_redis_value(stats[name].clone()).unwrap() };
    let total = int("total.allocated");
    let info_used: i64 = info_fields(&mut c, "memory")["used_memory"]
        .parse()
        .unwrap();
    assert!(
        (total - info_used).abs() < total / 10,
        "{total} vs {info_used}"
    );
    assert_eq!(int("allocator.allocated"), total);
    assert_eq!(int("keys.count"), 6);
    assert_eq!(int("keys.bytes-per-key"), total / 6);
    assert_eq!(int("overhead.total") + int("dataset.bytes"), total);
    assert!(int("peak.allocated") >= total);
    assert!(stats.contains_key("db.0") && stats.contains_key("fragmentation"));
    let doctor: String = q(&mut c, &["MEMORY", "DOCTOR"]);
    assert!(!doctor.is_empty());
    assert_eq!(
        e(&mut c, &["MEMORY", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try MEMORY HELP."
    );
}

// ------------------------------------------------------------------ OBJECT

#[test]
fn object_reports_encoding_frequency_idle_time_and_refcount() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("obj:", 2, 1);
    for shard_keys in &keys {
        let key = &shard_keys[0];
        let encoding = |c: &mut Connection| -> String { q(c, &["OBJECT", "ENCODING", key]) };
        ok(&mut c, &["SET", key, "12345"]);
        assert_eq!(encoding(&mut c), "int");
        assert_eq!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", key]), 1);
        ok(&mut c, &["SET", key, "123"]);
        assert_eq!(
            q::<i64>(&mut c, &["OBJECT", "REFCOUNT", key]),
            2_147_483_647,
            "shared integer"
        );
        ok(&mut c, &["SET", key, "hello"]);
        assert_eq!(encoding(&mut c), "embstr");
        assert_eq!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", key]), 1);
        ok(&mut c, &["SET", key, &"r".repeat(45)]);
        assert_eq!(encoding(&mut c), "raw");

        let _: i64 = q(&mut c, &["DEL", key]);
        let _: i64 = q(&mut c, &["RPUSH", key, "a", "b"]);
        // Redis 7.0 reports every list as a quicklist.
        assert_eq!(encoding(&mut c), "quicklist");
        for _ in 0..10 {
            let _: i64 = q(&mut c, &["RPUSH", key, &"l".repeat(1000)]);
        }
        assert_eq!(encoding(&mut c), "quicklist");

        let _: i64 = q(&mut c, &["DEL", key]);
        let _: i64 = q(&mut c, &["HSET", key, "f", "v"]);
        assert_eq!(encoding(&mut c), "listpack");
        let _: i64 = q(&mut c, &["HSET", key, "long", &"h".repeat(65)]);
        assert_eq!(encoding(&mut c), "hashtable");

        let _: i64 = q(&mut c, &["DEL", key]);
        let _: i64 = q(&mut c, &["SADD", key, "1", "2", "3"]);
        assert_eq!(encoding(&mut c), "intset");
        let _: i64 = q(&mut c, &["SADD", key, "word"]);
        assert_eq!(encoding(&mut c), "listpack");
        for i in 0..130 {
            let _: i64 = q(&mut c, &["SADD", key, &format!("m{i}")]);
        }
        assert_eq!(encoding(&mut c), "hashtable");

        // FREQ needs an LFU policy, as in Redis (tests/eviction.rs checks
        // the counter itself).
        assert_eq!(
            e(&mut c, &["OBJECT", "FREQ", key]),
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
             Please note that when switching between policies at runtime LRU and LFU data \
             will take some time to adjust."
        );
    }

    // IDLETIME: seconds since the last access, reset by an access.
    let key = &keys[1][0];
    let idle = |c: &mut Connection| -> i64 { q(c, &["OBJECT", "IDLETIME", key]) };
    assert!(idle(&mut c) <= 1);
    std::thread::sleep(Duration::from_millis(2200));
    let waited = idle(&mut c);
    assert!((2..=4).contains(&waited), "{waited}");
    assert_eq!(idle(&mut c), waited, "OBJECT does not count as an access");
    let _: i64 = q(&mut c, &["SCARD", key]);
    assert!(idle(&mut c) <= 1);

    let missing: Option<String> = q(&mut c, &["OBJECT", "ENCODING", "obj:none"]);
    assert_eq!(missing, None);
    assert_eq!(
        e(&mut c, &["OBJECT", "ENCODING"]),
        "ERR wrong number of arguments for 'object|encoding' command"
    );
    assert_eq!(
        e(&mut c, &["OBJECT", "NOPE", "x"]),
        "ERR unknown subcommand 'NOPE'. Try OBJECT HELP."
    );
}
