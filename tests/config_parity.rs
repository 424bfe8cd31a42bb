//! CONFIG parity for knobs tools set at start (issue 13, item 7): `save`,
//! `appendonly no`, `appendfsync`, `timeout`, `tcp-keepalive` are accepted
//! with Redis 7.0's checks and error texts, and reported by CONFIG GET;
//! Kora has no persistence or idle timeout, so they are stored only.

mod common;

use common::{Server, e, q};

fn get(c: &mut redis::Connection, name: &str) -> String {
    let pair: Vec<String> = q(c, &["CONFIG", "GET", name]);
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

#[test]
fn persistence_and_timeout_knobs_are_accepted_and_reported() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(get(&mut c, "save"), "");
    let _: () = q(&mut c, &["CONFIG", "SET", "save", "3600 1 300 100"]);
    assert_eq!(get(&mut c, "save"), "3600 1 300 100");
    let _: () = q(&mut c, &["CONFIG", "SET", "save", ""]);
    assert_eq!(get(&mut c, "save"), "");
    for bad in ["abc", "3600", "3600  1", "-1 1"] {
        assert_eq!(
            e(&mut c, &["CONFIG", "SET", "save", bad]),
            "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters",
            "{bad}"
        );
    }
    let _: () = q(&mut c, &["CONFIG", "SET", "appendonly", "no"]);
    assert_eq!(get(&mut c, "appendonly"), "no");
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "appendonly", "maybe"]),
        "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'"
    );
    assert!(e(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).contains("no persistence"));
    let _: () = q(&mut c, &["CONFIG", "SET", "appendfsync", "ALWAYS"]);
    assert_eq!(get(&mut c, "appendfsync"), "always");
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "appendfsync", "x"]),
        "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no"
    );
    // redis-py's test_config_set_multiple.
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "timeout", "70", "maxmemory", "100"],
    );
    assert_eq!(get(&mut c, "timeout"), "70");
    assert_eq!(get(&mut c, "maxmemory"), "100");
    let _: () = q(&mut c, &["CONFIG", "SET", "timeout", "0", "maxmemory", "0"]);
    assert_eq!(get(&mut c, "timeout"), "0");
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "timeout", "-1"]),
        "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and 2147483647 inclusive"
    );
    let _: () = q(&mut c, &["CONFIG", "SET", "tcp-keepalive", "60"]);
    assert_eq!(get(&mut c, "tcp-keepalive"), "60");
    // Another connection (likely another core) sees the same values.
    let mut other = s.client();
    assert_eq!(get(&mut other, "tcp-keepalive"), "60");
    assert_eq!(get(&mut other, "appendfsync"), "always");
}

/// CPUs the first thread of `pid` whose name starts with `name` may run on
/// (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32, name: &str) -> String {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        // glommio appends the executor id to the name ("kora-shard-0-1").
        if comm.trim().starts_with(name) {
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            let line = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap();
            return line.split(':').nth(1).unwrap().trim().to_string();
        }
    }
    panic!("no thread {name} in {pid}");
}

/// `cpu-affinity` (issue 15): yes pins each shard to one CPU, no (the
/// default) leaves the kernel free to place it; a start-time knob that
/// CONFIG GET reports.
#[test]
fn cpu_affinity_pins_shards_or_not() {
    // What this test process may use: an unpinned shard gets the same.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let pinned = Server::start_with(1, &["--cpu-affinity", "yes"]);
    assert_eq!(get(&mut pinned.client(), "cpu-affinity"), "yes");
    let one = allowed_cpus(pinned.pid(), "kora-shard-0-");
    assert!(!one.contains(['-', ',']), "pinned to one CPU: {one}");
    let free = Server::start(1);
    assert_eq!(get(&mut free.client(), "cpu-affinity"), "no");
    assert_eq!(allowed_cpus(free.pid(), "kora-shard-0-"), all);
}
