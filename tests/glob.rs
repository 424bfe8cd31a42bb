//! Glob patterns end to end: hostile `a*a*…*b` patterns answer at once in
//! KEYS and every SCAN flavour (CVE-2022-36021 class), Redis 7.0's matching
//! quirks hold over the wire, and CONFIG GET matches names without case.

mod common;

use std::time::{Duration, Instant};

use common::{Server, q};
use redis::Connection;

/// Twenty stars between `a`s, then a `b` no key has: a recursive matcher
/// tries every split of the 60 `a`s between the stars.
fn hostile_pattern() -> String {
    format!("{}b", "a*".repeat(20))
}

/// Runs `args` a few times and returns the fastest round trip with the
/// last reply: the minimum filters scheduling noise on a busy machine.
fn fastest(c: &mut Connection, args: &[&str]) -> (Duration, redis::Value) {
    let mut best = Duration::MAX;
    let mut reply = redis::Value::Nil;
    for _ in 0..5 {
        let t = Instant::now();
        reply = q(c, args);
        best = best.min(t.elapsed());
    }
    (best, reply)
}

#[test]
fn hostile_patterns_answer_in_milliseconds() {
    let server = Server::start(2);
    let mut c = server.client();
    // Without the fix the server never answers: fail instead of hanging.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let key = "a".repeat(60);
    let _: () = q(&mut c, &["SET", &key, "1"]);
    let _: () = q(&mut c, &["HSET", "h", &key, "1"]);
    let _: () = q(&mut c, &["SADD", "s", &key]);
    let pattern = hostile_pattern();
    let empty_scan = redis::Value::Array(vec![
        redis::Value::BulkString(b"0".to_vec()),
        redis::Value::Array(vec![]),
    ]);
    let cases: [(&[&str], redis::Value); 4] = [
        (&["KEYS", &pattern], redis::Value::Array(vec![])),
        (&["HSCAN", "h", "0", "MATCH", &pattern], empty_scan.clone()),
        (&["SSCAN", "s", "0", "MATCH", &pattern], empty_scan.clone()),
        // Every shard's keys in one call, so the cursor comes back as 0.
        (
            &["SCAN", "0", "MATCH", &pattern, "COUNT", "1000"],
            empty_scan,
        ),
    ];
    for (args, want) in cases {
        let (took, reply) = fastest(&mut c, args);
        assert_eq!(reply, want, "{}", args[0]);
        assert!(
            took < Duration::from_millis(10),
            "{} took {took:?} (fastest of 5)",
            args[0]
        );
    }
    // The same pattern without the final `b` matches the key.
    let hit = &pattern[..pattern.len() - 1];
    let keys: Vec<String> = q(&mut c, &["KEYS", hit]);
    assert_eq!(keys, std::slice::from_ref(&key));
    let (_, fields): (String, Vec<String>) = q(&mut c, &["HSCAN", "h", "0", "MATCH", hit]);
    assert_eq!(fields, [key.clone(), "1".to_string()]);
}

/// Redis 7.0's matching quirks over the wire (checked against
/// redis-server 7.0.15).
#[test]
fn redis_matching_quirks() {
    let server = Server::start(2);
    let mut c = server.client();
    let _: () = q(
        &mut c,
        &["HSET", "h", "", "1", "^", "1", "b", "1", "]", "1"],
    );
    let fields = |c: &mut Connection, pattern: &str| -> Vec<String> {
        let (_, flat): (String, Vec<String>) = q(c, &["HSCAN", "h", "0", "MATCH", pattern]);
        let mut names: Vec<String> = flat.into_iter().step_by(2).collect();
        names.sort();
        names
    };
    // `*` alone skips matching; any other pattern never matches "".
    assert_eq!(fields(&mut c, "*"), ["", "]", "^", "b"]);
    assert_eq!(fields(&mut c, "**"), ["]", "^", "b"]);
    // `[a-]` is the range `]`..`a`: the `]` ends the range, not the class.
    assert_eq!(fields(&mut c, "[a-]"), ["]", "^"]);
    // A `[` ending the pattern matches nothing, `[^` anything.
    assert_eq!(fields(&mut c, "["), Vec::<String>::new());
    assert_eq!(fields(&mut c, "[^"), ["]", "^", "b"]);
}

#[test]
fn config_get_matches_names_ignoring_case_like_redis() {
    let server = Server::start(2);
    let mut c = server.client();
    let get = |c: &mut Connection, pattern: &str| -> Vec<String> {
        let flat: Vec<String> = q(c, &["CONFIG", "GET", pattern]);
        flat.into_iter().step_by(2).collect()
    };
    for pattern in [
        "[S]lowlog-max-len",
        "Slowlog-max-le?",
        "[R-T]lowlog-max-len",
    ] {
        assert_eq!(get(&mut c, pattern), ["slowlog-max-len"], "{pattern}");
    }
    // An escaped byte in a class compares exactly; `[^S]` excludes `s`.
    assert!(get(&mut c, "[\\S]lowlog-max-len").is_empty());
    assert!(get(&mut c, "[^S]lowlog-max-len").is_empty());
    // Without `[*?` the name is looked up, so `\n` is not an escape.
    assert!(get(&mut c, "slowlog-max-le\\n").is_empty());
    // Hostile patterns are cheap here too.
    let t = Instant::now();
    assert!(get(&mut c, &format!("{}b", "*s".repeat(20))).is_empty());
    assert!(t.elapsed() < Duration::from_secs(1));
}
