//! Per-command statistics for every command and subcommand (issue 13,
//! item 8): INFO commandstats / latencystats, LATENCY HISTOGRAM and
//! `/metrics` give each command of the table and each subcommand Redis
//! reports (`config|set`, `client|list`) its own row, as Redis 7.0 does.

mod common;

use common::{Server, q};
use redis::Value;

fn cmdstat(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
        .map(str::to_string)
}

#[test]
fn commands_outside_the_old_slots_and_subcommands_get_their_own_rows() {
    let s = Server::start(2);
    let mut c = s.client();
    // APPEND, STRLEN and FLUSHALL used to count under `other`.
    let _: i64 = q(&mut c, &["APPEND", "k", "abc"]);
    let _: i64 = q(&mut c, &["APPEND", "k", "de"]);
    let _: i64 = q(&mut c, &["STRLEN", "k"]);
    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-max-len", "128"]);
    let _: Vec<String> = q(&mut c, &["config", "get", "maxmemory"]);
    let _: String = q(&mut c, &["CLIENT", "LIST"]);
    let _: String = q(&mut c, &["client", "list"]);
    let _: Value = q(&mut c, &["MULTI"]);
    let _: Value = q(&mut c, &["INCR", "n"]);
    let _: Value = q(&mut c, &["EXEC"]);

    let info: String = q(&mut c, &["INFO", "commandstats"]);
    let row = |name: &str| cmdstat(&info, name).unwrap_or_else(|| panic!("no {name} in {info}"));
    assert!(row("append").starts_with("cmdstat_append:calls=2,"));
    assert!(row("strlen").starts_with("cmdstat_strlen:calls=1,"));
    assert!(row("config|set").starts_with("cmdstat_config|set:calls=1,"));
    assert!(row("config|get").starts_with("cmdstat_config|get:calls=1,"));
    assert!(row("client|list").starts_with("cmdstat_client|list:calls=2,"));
    assert!(row("exec").starts_with("cmdstat_exec:calls=1,"));
    assert!(row("incr").starts_with("cmdstat_incr:calls=1,"));
    // The container itself counts nothing when its subcommand is known,
    // and nothing lumps into `other` any more.
    assert_eq!(cmdstat(&info, "config"), None, "{info}");
    assert_eq!(cmdstat(&info, "client"), None, "{info}");
    assert_eq!(cmdstat(&info, "other"), None, "{info}");
    // An unknown subcommand is refused like an unknown command: `other`.
    let _: redis::RedisResult<Value> = redis::cmd("CONFIG").arg("NOSUCH").query(&mut c);
    let info: String = q(&mut c, &["INFO", "commandstats"]);
    assert!(cmdstat(&info, "other").is_some(), "{info}");
    assert_eq!(cmdstat(&info, "config"), None, "{info}");
    assert!(row("append").ends_with(",rejected_calls=0,failed_calls=0"));

    // A rejected call (wrong arity) and a failed one count on the row.
    let _: redis::RedisResult<Value> = redis::cmd("STRLEN").query(&mut c);
    let _: redis::RedisResult<Value> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("nosuch")
        .arg("1")
        .query(&mut c);
    let info: String = q(&mut c, &["INFO", "commandstats"]);
    let strlen = cmdstat(&info, "strlen").unwrap();
    assert!(
        strlen.ends_with(",rejected_calls=1,failed_calls=0"),
        "{strlen}"
    );
    let set = cmdstat(&info, "config|set").unwrap();
    assert!(set.starts_with("cmdstat_config|set:calls=2,"), "{set}");
    assert!(set.ends_with(",rejected_calls=0,failed_calls=1"), "{set}");

    let lat: String = q(&mut c, &["INFO", "latencystats"]);
    for name in ["append", "config|set", "client|list"] {
        assert!(
            lat.contains(&format!("latency_percentiles_usec_{name}:p50=")),
            "{name}: {lat}"
        );
    }
}

/// LATENCY HISTOGRAM's reply as (name, calls) pairs.
fn histogram(c: &mut redis::Connection, names: &[&str]) -> Vec<(String, i64)> {
    let mut cmd = redis::cmd("LATENCY");
    cmd.arg("HISTOGRAM");
    for n in names {
        cmd.arg(*n);
    }
    let Value::Array(items) = cmd.query::<Value>(c).unwrap() else {
        panic!("not an array");
    };
    items
        .chunks(2)
        .map(|pair| {
            let Value::BulkString(name) = &pair[0] else {
                panic!("{pair:?}")
            };
            let Value::Array(body) = &pair[1] else {
                panic!("{pair:?}")
            };
            let Value::Int(calls) = body[1] else {
                panic!("{body:?}")
            };
            (String::from_utf8(name.clone()).unwrap(), calls)
        })
        .collect()
}

#[test]
fn latency_histogram_names_commands_subcommands_and_containers() {
    let s = Server::start(1);
    let mut c = s.client();
    for _ in 0..3 {
        let _: i64 = q(&mut c, &["APPEND", "k", "x"]);
    }
    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-max-len", "100"]);
    assert_eq!(histogram(&mut c, &["append"]), vec![("append".into(), 3)]);
    assert_eq!(histogram(&mut c, &["APPEND"]), vec![("append".into(), 3)]);
    assert_eq!(
        histogram(&mut c, &["CONFIG|SET"]),
        vec![("config|set".into(), 1)]
    );
    // As Redis: a container stands for its subcommands that have data.
    assert_eq!(
        histogram(&mut c, &["config"]),
        vec![("config|set".into(), 1)]
    );
    assert_eq!(
        histogram(&mut c, &["config|get", "nosuch", "strlen"]),
        vec![]
    );
    let all = histogram(&mut c, &[]);
    assert!(all.contains(&("append".into(), 3)), "{all:?}");
    assert!(all.contains(&("config|set".into(), 1)), "{all:?}");
}

#[test]
fn metrics_export_a_command_from_its_first_call_and_resetstat_clears_info() {
    let s = Server::start(2);
    let before = s.metrics();
    // The hot set is there from zero; an idle command adds no series.
    assert!(
        before
            .lines()
            .any(|l| l == "kora_commands_total{cmd=\"get\"} 0")
    );
    assert!(
        !before.contains("cmd=\"append\""),
        "idle commands export nothing"
    );
    assert!(!before.contains("cmd=\"config|set\""));
    let mut c = s.client();
    let _: i64 = q(&mut c, &["APPEND", "k", "abc"]);
    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-max-len", "100"]);
    let after = s.metrics();
    for line in [
        "kora_commands_total{cmd=\"append\"} 1",
        "kora_command_failed_total{cmd=\"append\"} 0",
        "kora_command_duration_seconds_bucket{cmd=\"append\",le=\"+Inf\"} 1",
        "kora_command_duration_seconds_count{cmd=\"append\"} 1",
        "kora_commands_total{cmd=\"config|set\"} 1",
        "kora_command_duration_seconds_count{cmd=\"config|set\"} 1",
    ] {
        assert!(after.lines().any(|l| l == line), "missing {line}:\n{after}");
    }
    assert!(after.contains("kora_command_duration_seconds_sum{cmd=\"config|set\"} "));
    assert!(
        !after.contains("cmd=\"config\""),
        "the container has no series"
    );

    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    let info: String = q(&mut c, &["INFO", "commandstats"]);
    assert_eq!(cmdstat(&info, "append"), None, "{info}");
    assert_eq!(cmdstat(&info, "config|set"), None, "{info}");
    // RESETSTAT itself ran before the reset point, so it is gone too.
    let _: i64 = q(&mut c, &["APPEND", "k", "d"]);
    let info: String = q(&mut c, &["INFO", "commandstats"]);
    assert!(
        cmdstat(&info, "append")
            .unwrap()
            .starts_with("cmdstat_append:calls=1,")
    );
    // /metrics counters are monotonic: the series stays and keeps counting.
    let later = s.metrics();
    assert!(
        later
            .lines()
            .any(|l| l == "kora_commands_total{cmd=\"append\"} 2")
    );
    assert!(
        later
            .lines()
            .any(|l| l == "kora_commands_total{cmd=\"config|resetstat\"} 1")
    );
}
