//! Packed encodings of small hashes, sets and lists over the wire: the
//! conversion thresholds, OBJECT ENCODING's answers and the CONFIG knobs,
//! compared with redis-server 7.0.15 (answers recorded from it; where Kora
//! differs on purpose, the test says so).

mod common;

use common::{Server, e, keys_on_each_shard, q};
use redis::Connection;

fn encoding(c: &mut Connection, key: &str) -> String {
    q(c, &["OBJECT", "ENCODING", key])
}

fn config_get(c: &mut Connection, name: &str) -> String {
    let pair: Vec<String> = q(c, &["CONFIG", "GET", name]);
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

fn int(c: &mut Connection, args: &[&str]) -> i64 {
    q(c, args)
}

/// The same command sequence as run against redis-server 7.0.15, with its
/// answers, on a key of each shard (CONFIG SET reaches every shard).
#[test]
fn hash_thresholds_and_encodings_match_redis() {
    let s = Server::start(2);
    let mut c = s.client();
    for (n, keys) in keys_on_each_shard("enc:h", 2, 4).iter().enumerate() {
        let (h, h2, h3, h4) = (&keys[0], &keys[1], &keys[2], &keys[3]);
        let _: String = q(
            &mut c,
            &["CONFIG", "SET", "hash-max-listpack-entries", "512"],
        );
        let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "64"]);
        int(&mut c, &["HSET", h, "f", "v"]);
        assert_eq!(encoding(&mut c, h), "listpack");
        let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "3"]);
        int(&mut c, &["HSET", h, "a", "1", "b", "2"]);
        assert_eq!(encoding(&mut c, h), "listpack", "3 fields: still packed");
        int(&mut c, &["HSET", h, "c", "3"]);
        assert_eq!(encoding(&mut c, h), "hashtable", "4th field: converted");
        int(&mut c, &["HDEL", h, "a", "b", "c"]);
        assert_eq!(encoding(&mut c, h), "hashtable", "never converted back");
        assert_eq!(q::<String>(&mut c, &["HGET", h, "f"]), "v");

        let _: String = q(
            &mut c,
            &["CONFIG", "SET", "hash-max-listpack-entries", "512"],
        );
        int(&mut c, &["HSET", h2, "f", &"x".repeat(64)]);
        assert_eq!(encoding(&mut c, h2), "listpack");
        int(&mut c, &["HSET", h2, "g", &"x".repeat(65)]);
        assert_eq!(encoding(&mut c, h2), "hashtable", "a 65-byte value");
        assert_eq!(q::<String>(&mut c, &["HGET", h2, "f"]), "x".repeat(64));

        let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "3"]);
        int(&mut c, &["HSET", h3, "abc", "xyz"]);
        assert_eq!(encoding(&mut c, h3), "listpack");
        int(&mut c, &["HSET", h4, "abcd", "1"]);
        assert_eq!(encoding(&mut c, h4), "hashtable", "a 4-byte field");
        // A packed hash scans in one page with cursor 0, whatever COUNT.
        let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "64"]);
        int(&mut c, &["HSET", h3, "d", "1", "e", "2"]);
        let (cursor, page): (String, Vec<String>) = q(&mut c, &["HSCAN", h3, "0", "COUNT", "1"]);
        assert_eq!(cursor, "0");
        assert_eq!(page, ["abc", "xyz", "d", "1", "e", "2"], "shard {n}");
    }
}

#[test]
fn set_thresholds_and_encodings_match_redis() {
    let s = Server::start(2);
    let mut c = s.client();
    for keys in keys_on_each_shard("enc:s", 2, 4) {
        let (s1, s2, s3, s4) = (&keys[0], &keys[1], &keys[2], &keys[3]);
        let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "512"]);
        int(&mut c, &["SADD", s1, "1", "2", "3"]);
        assert_eq!(encoding(&mut c, s1), "intset");
        let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "4"]);
        int(&mut c, &["SADD", s1, "4"]);
        assert_eq!(encoding(&mut c, s1), "intset");
        // Redis 7.0 says hashtable here; Kora (as 7.2) packs a small set of
        // any members: see the README on OBJECT ENCODING.
        int(&mut c, &["SADD", s1, "5"]);
        assert_eq!(
            encoding(&mut c, s1),
            "listpack",
            "5th integer: out of intset"
        );
        // Not canonical integers: never an intset.
        int(&mut c, &["SADD", s2, "-9223372036854775808", "01"]);
        assert_eq!(encoding(&mut c, s2), "listpack");
        let mut members: Vec<String> = q(&mut c, &["SMEMBERS", s2]);
        members.sort();
        assert_eq!(members, ["-9223372036854775808", "01"]);
        assert!(q::<bool>(&mut c, &["SISMEMBER", s2, "01"]));
        assert!(!q::<bool>(&mut c, &["SISMEMBER", s2, "1"]));
        int(&mut c, &["SADD", s3, "1"]);
        assert_eq!(encoding(&mut c, s3), "intset");
        assert!(!q::<bool>(&mut c, &["SISMEMBER", s3, "01"]));
        int(&mut c, &["SADD", s3, "x"]);
        assert_eq!(encoding(&mut c, s3), "listpack");
        // The 7.2 knobs bound the packed form.
        let _: String = q(&mut c, &["CONFIG", "SET", "set-max-listpack-entries", "2"]);
        int(&mut c, &["SADD", s3, "y"]);
        assert_eq!(encoding(&mut c, s3), "hashtable");
        int(&mut c, &["SREM", s3, "x", "y"]);
        assert_eq!(encoding(&mut c, s3), "hashtable", "never converted back");
        let _: String = q(
            &mut c,
            &["CONFIG", "SET", "set-max-listpack-entries", "128"],
        );
        let _: String = q(&mut c, &["CONFIG", "SET", "set-max-listpack-value", "2"]);
        int(&mut c, &["SADD", s4, "abc"]);
        assert_eq!(encoding(&mut c, s4), "hashtable", "a 3-byte member");
        let _: String = q(&mut c, &["CONFIG", "SET", "set-max-listpack-value", "64"]);
        // Packed sets and intsets scan in one page with cursor 0.
        for key in [s1, s2] {
            let (cursor, page): (String, Vec<String>) =
                q(&mut c, &["SSCAN", key, "0", "COUNT", "1"]);
            assert_eq!(cursor, "0");
            assert_eq!(page.len(), int(&mut c, &["SCARD", key]) as usize);
        }
        // Integers come back as the text they were given.
        let mut ints: Vec<String> = q(&mut c, &["SMEMBERS", s1]);
        ints.sort();
        assert_eq!(ints, ["1", "2", "3", "4", "5"]);
    }
    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "512"]);
    int(&mut c, &["SADD", "big", "-70000", "3", "5000000000", "-2"]);
    assert_eq!(encoding(&mut c, "big"), "intset");
    let (_, page): (String, Vec<String>) = q(&mut c, &["SSCAN", "big", "0"]);
    assert_eq!(
        page,
        ["-70000", "-2", "3", "5000000000"],
        "sorted, as an intset"
    );
}

#[test]
fn every_list_is_a_quicklist_as_in_redis_7_0() {
    let s = Server::start(2);
    let mut c = s.client();
    int(&mut c, &["RPUSH", "l", "a"]);
    assert_eq!(encoding(&mut c, "l"), "quicklist");
    let _: String = q(&mut c, &["CONFIG", "SET", "list-max-listpack-size", "2"]);
    int(&mut c, &["RPUSH", "l", "b", "c", "d", "e"]);
    assert_eq!(encoding(&mut c, "l"), "quicklist");
    let all: Vec<String> = q(&mut c, &["LRANGE", "l", "0", "-1"]);
    assert_eq!(all, ["a", "b", "c", "d", "e"]);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "3"]), "d");
}

/// Random picks from a packed set are uniform: each of 10 members is drawn
/// about a tenth of the time (SRANDMEMBER with a negative count, SPOP).
#[test]
fn random_picks_from_packed_values_are_uniform() {
    let s = Server::start(1);
    let mut c = s.client();
    let members: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let mut add = vec!["SADD", "s"];
    add.extend(members.iter().map(String::as_str));
    int(&mut c, &add);
    assert_eq!(encoding(&mut c, "s"), "listpack");
    let picks: Vec<String> = q(&mut c, &["SRANDMEMBER", "s", "-20000"]);
    for m in &members {
        let n = picks.iter().filter(|p| *p == m).count();
        assert!((1600..2400).contains(&n), "{m}: {n} of 20000");
    }
    let distinct: Vec<String> = q(&mut c, &["SRANDMEMBER", "s", "5"]);
    let mut d = distinct.clone();
    d.sort();
    d.dedup();
    assert_eq!(d.len(), 5);
    // SPOP of one from a fresh 10-member set, 2000 times.
    let mut counts = [0usize; 10];
    for _ in 0..2000 {
        let _: i64 = q(&mut c, &["DEL", "p"]);
        let mut add = vec!["SADD", "p"];
        add.extend(members.iter().map(String::as_str));
        int(&mut c, &add);
        let m: String = q(&mut c, &["SPOP", "p"]);
        counts[m[1..].parse::<usize>().unwrap()] += 1;
    }
    assert!(
        counts.iter().all(|&n| (120..290).contains(&n)),
        "{counts:?}"
    );
    // Same from an intset.
    int(&mut c, &["SADD", "i", "1", "2", "3", "4"]);
    let picks: Vec<String> = q(&mut c, &["SRANDMEMBER", "i", "-8000"]);
    for m in ["1", "2", "3", "4"] {
        let n = picks.iter().filter(|p| *p == m).count();
        assert!((1700..2300).contains(&n), "{m}: {n} of 8000");
    }
}

#[test]
fn config_knobs_set_and_refuse_as_redis() {
    let s = Server::start(2);
    let mut c = s.client();
    // Defaults, Redis 7.0's (and 7.2's for the set-max-listpack pair).
    for (name, default) in [
        ("hash-max-listpack-entries", "512"),
        ("hash-max-ziplist-entries", "512"),
        ("hash-max-listpack-value", "64"),
        ("hash-max-ziplist-value", "64"),
        ("list-max-listpack-size", "-2"),
        ("list-max-ziplist-size", "-2"),
        ("set-max-intset-entries", "512"),
        ("set-max-listpack-entries", "128"),
        ("set-max-listpack-value", "64"),
    ] {
        assert_eq!(config_get(&mut c, name), default, "{name}");
    }
    // An alias and its name are one setting.
    let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-ziplist-entries", "7"]);
    assert_eq!(config_get(&mut c, "hash-max-listpack-entries"), "7");
    let _: String = q(&mut c, &["CONFIG", "SET", "list-max-ziplist-size", "-3"]);
    assert_eq!(config_get(&mut c, "list-max-listpack-size"), "-3");
    // Both in one CONFIG SET: accepted, as Redis does.
    let _: String = q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "hash-max-ziplist-entries",
            "5",
            "hash-max-listpack-entries",
            "6",
        ],
    );
    // The *-value knobs are memory values.
    let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "1kb"]);
    assert_eq!(config_get(&mut c, "hash-max-listpack-value"), "1024");
    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-listpack-value", "2k"]);
    assert_eq!(config_get(&mut c, "set-max-listpack-value"), "2000");
    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-listpack-value", ""]);
    assert_eq!(config_get(&mut c, "set-max-listpack-value"), "0");
    // Redis' errors, byte for byte.
    let failed = |name: &str, why: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
    };
    for (name, value, why) in [
        (
            "hash-max-listpack-entries",
            "-1",
            "argument must be between 0 and 9223372036854775807 inclusive",
        ),
        (
            "hash-max-listpack-entries",
            "abc",
            "argument couldn't be parsed into an integer",
        ),
        (
            "hash-max-listpack-entries",
            "9223372036854775808",
            "argument couldn't be parsed into an integer",
        ),
        (
            "set-max-intset-entries",
            "1kb",
            "argument couldn't be parsed into an integer",
        ),
        (
            "hash-max-listpack-value",
            "-1",
            "argument must be a memory value",
        ),
        (
            "list-max-listpack-size",
            "99999999999",
            "argument must be between -2147483648 and 2147483647 inclusive",
        ),
    ] {
        assert_eq!(
            e(&mut c, &["CONFIG", "SET", name, value]),
            failed(name, why),
            "{name} {value}"
        );
    }
    // Extreme list sizes are accepted and clamped, as Redis' quicklist.
    for size in ["-9", "0", "40000"] {
        let _: String = q(&mut c, &["CONFIG", "SET", "list-max-listpack-size", size]);
        int(&mut c, &["RPUSH", "l", "a", "b", "c"]);
        assert_eq!(int(&mut c, &["LLEN", "l"]), 3);
        let _: i64 = q(&mut c, &["DEL", "l"]);
    }
}

#[test]
fn flags_and_config_file_set_the_thresholds() {
    let path = std::env::temp_dir().join(format!("kora-enc-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "hash_max_listpack_value = 5\nset_max_intset_entries = 2\nlist_max_listpack_size = 3\n\
         set_max_listpack_entries = 3\nset_max_listpack_value = 4\n",
    )
    .unwrap();
    let s = Server::start_with(
        2,
        &[
            "--config",
            path.to_str().unwrap(),
            "--hash-max-listpack-entries",
            "2",
        ],
    );
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "hash-max-listpack-entries"), "2");
    assert_eq!(config_get(&mut c, "hash-max-listpack-value"), "5");
    assert_eq!(config_get(&mut c, "set-max-intset-entries"), "2");
    assert_eq!(config_get(&mut c, "list-max-listpack-size"), "3");
    assert_eq!(config_get(&mut c, "set-max-listpack-entries"), "3");
    assert_eq!(config_get(&mut c, "set-max-listpack-value"), "4");
    int(&mut c, &["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(encoding(&mut c, "h"), "listpack");
    int(&mut c, &["HSET", "h", "c", "3"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    int(&mut c, &["SADD", "s", "1", "2", "3"]);
    assert_eq!(encoding(&mut c, "s"), "listpack");
    int(&mut c, &["SADD", "s", "4"]);
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    drop(s);
    let _ = std::fs::remove_file(&path);
    // The alias works as a flag too.
    let s = Server::start_with(1, &["--hash-max-ziplist-entries", "9"]);
    let mut c = s.client();
    assert_eq!(config_get(&mut c, "hash-max-listpack-entries"), "9");
}

/// A packed value's memory is counted: MEMORY USAGE of a 100-field hash of
/// 16-byte values is about its packed size, far below a table's.
#[test]
fn memory_usage_follows_the_packed_layout() {
    let s = Server::start(1);
    let mut c = s.client();
    let mut args: Vec<String> = vec!["HSET".into(), "h".into()];
    for i in 0..100 {
        args.push(format!("f{i}"));
        args.push("v".repeat(16));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    int(&mut c, &refs);
    let packed = int(&mut c, &["MEMORY", "USAGE", "h"]);
    assert!((2_000..3_000).contains(&packed), "{packed}");
    let _: String = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "0"]);
    int(&mut c, &["HSET", "h", "x", "1"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    let table = int(&mut c, &["MEMORY", "USAGE", "h"]);
    assert!(table > 3 * packed, "{table} vs {packed}");
}
