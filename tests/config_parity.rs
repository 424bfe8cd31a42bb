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
