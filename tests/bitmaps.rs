//! Bitmap commands end to end against a 2-shard server: SETBIT, GETBIT,
//! BITCOUNT, BITPOS, BITOP (keys on one shard and across shards), BITFIELD
//! and BITFIELD_RO with every overflow mode, and Redis' error texts. A
//! script of edge cases also runs on a real redis-server 7.0 when one is
//! installed, and every reply must be the same.

mod common;
mod redis_ref;

use common::{Server, e, free_port, keys_on_each_shard, q};
use redis_ref::{RedisRef, reply};

#[test]
fn setbit_getbit_and_errors() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "1"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "0"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "100", "1"]), 0);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "b"]).len(), 13);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "100"]), 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "99"]), 0);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "1000000"]), 0);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "nokey", "3"]), 0);
    // A string set whole is a bitmap too; SETBIT makes it raw.
    let _: () = q(&mut c, &["SET", "s", "12"]);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "s", "2"]), 1); // '1' = 0x31
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "s", "7", "0"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]), "02");
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "s"]), "raw");
    let offset = "ERR bit offset is not an integer or out of range";
    assert_eq!(e(&mut c, &["SETBIT", "b", "-1", "1"]), offset);
    assert_eq!(e(&mut c, &["SETBIT", "b", "4294967296", "1"]), offset);
    assert_eq!(e(&mut c, &["SETBIT", "b", "x", "1"]), offset);
    assert_eq!(e(&mut c, &["GETBIT", "b", "4294967296"]), offset);
    let bit = "ERR bit is not an integer or out of range";
    assert_eq!(e(&mut c, &["SETBIT", "b", "1", "2"]), bit);
    assert_eq!(e(&mut c, &["SETBIT", "b", "1", "-1"]), bit);
    assert_eq!(e(&mut c, &["SETBIT", "b", "1", "x"]), bit);
    let _: i64 = q(&mut c, &["LPUSH", "l", "x"]);
    assert!(e(&mut c, &["SETBIT", "l", "1", "1"]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, &["GETBIT", "l", "1"]).starts_with("WRONGTYPE"));
    assert_eq!(
        e(&mut c, &["SETBIT", "b", "1"]),
        "ERR wrong number of arguments for 'setbit' command"
    );
    // The TTL of a bitmap survives SETBIT (an in-place change).
    let _: () = q(&mut c, &["EXPIRE", "b", "100"]);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "1", "1"]), 0);
    assert!(q::<i64>(&mut c, &["TTL", "b"]) > 0);
}

#[test]
fn the_last_offset_redis_allows_is_accepted() {
    let s = Server::start(2);
    let mut c = s.client();
    // 2^32 - 1 is the last bit of a 512 MB string: allowed, as Redis.
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "big", "4294967295", "1"]), 0);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "big"]), 512 * 1024 * 1024);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "big"]), 1);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "big", "1"]), 4294967295);
    let _: i64 = q(&mut c, &["DEL", "big"]);
}

#[test]
fn bitcount_and_bitpos_as_documented() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = q(&mut c, &["SET", "mykey", "foobar"]);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "mykey"]), 26);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "mykey", "0", "0"]), 4);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "mykey", "1", "1"]), 6);
    assert_eq!(
        q::<i64>(&mut c, &["BITCOUNT", "mykey", "1", "1", "BYTE"]),
        6
    );
    assert_eq!(
        q::<i64>(&mut c, &["BITCOUNT", "mykey", "5", "30", "BIT"]),
        17
    );
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "mykey", "-2", "-1"]), 7);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "nokey"]), 0);
    assert_eq!(e(&mut c, &["BITCOUNT", "mykey", "0"]), "ERR syntax error");
    assert_eq!(
        e(&mut c, &["BITCOUNT", "mykey", "0", "1", "bits"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["BITCOUNT", "mykey", "a", "1"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = q(&mut c, &["SET", "p", "\u{7f}"]);
    let bytes: Vec<u8> = vec![0xff, 0xf0, 0x00];
    let _: () = redis::cmd("SET")
        .arg("mykey")
        .arg(&bytes)
        .query(&mut c)
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "mykey", "0"]), 12);
    let bytes: Vec<u8> = vec![0x00, 0xff, 0xf0];
    let _: () = redis::cmd("SET")
        .arg("mykey")
        .arg(&bytes)
        .query(&mut c)
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "mykey", "1", "0"]), 8);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "mykey", "1", "2"]), 16);
    assert_eq!(
        q::<i64>(&mut c, &["BITPOS", "mykey", "1", "2", "-1", "BYTE"]),
        16
    );
    assert_eq!(
        q::<i64>(&mut c, &["BITPOS", "mykey", "1", "7", "15", "BIT"]),
        8
    );
    assert_eq!(
        q::<i64>(&mut c, &["BITPOS", "mykey", "1", "7", "-3", "BIT"]),
        8
    );
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "nokey", "0"]), 0);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "nokey", "1"]), -1);
    let ones: Vec<u8> = vec![0xff; 3];
    let _: () = redis::cmd("SET")
        .arg("ones")
        .arg(&ones)
        .query(&mut c)
        .unwrap();
    // No end given: the right of the string counts as zeros.
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0"]), 24);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0", "0", "-1"]), -1);
    assert_eq!(
        e(&mut c, &["BITPOS", "mykey", "2"]),
        "ERR The bit argument must be 1 or 0."
    );
    assert_eq!(
        e(&mut c, &["BITPOS", "mykey", "1", "0", "1", "bit", "x"]),
        "ERR syntax error"
    );
    let _: i64 = q(&mut c, &["LPUSH", "l", "x"]);
    assert!(e(&mut c, &["BITCOUNT", "l"]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, &["BITPOS", "l", "1"]).starts_with("WRONGTYPE"));
}

#[test]
fn bitop_on_one_shard_and_across_shards() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("bop", 2, 3);
    let (a0, a1, a2) = (&keys[0][0], &keys[0][1], &keys[0][2]);
    let (b0, b1, b2) = (&keys[1][0], &keys[1][1], &keys[1][2]);
    for (srcs, what) in [
        ([a0, a1], "one shard"),
        ([a0, b0], "two shards"),
        ([b0, b1], "sources away from the destination"),
    ] {
        let _: () = q(&mut c, &["SET", srcs[0], "foobar"]);
        let _: () = q(&mut c, &["SET", srcs[1], "abcdef"]);
        for (op, expect) in [
            ("AND", &b"`bc`ab"[..]),
            ("OR", b"goofev"),
            ("XOR", b"\x07\x0d\x0c\x06\x04\x14"),
        ] {
            assert_eq!(
                q::<i64>(&mut c, &["BITOP", op, a2, srcs[0], srcs[1]]),
                6,
                "{what}"
            );
            assert_eq!(q::<Vec<u8>>(&mut c, &["GET", a2]), expect, "{op} {what}");
        }
        // Shorter and missing sources are zero-padded.
        let _: () = q(&mut c, &["SET", srcs[1], "ab"]);
        assert_eq!(
            q::<i64>(&mut c, &["BITOP", "AND", b2, srcs[0], srcs[1], "missing"]),
            6
        );
        assert_eq!(q::<Vec<u8>>(&mut c, &["GET", b2]), vec![0u8; 6]);
        assert_eq!(q::<i64>(&mut c, &["BITOP", "OR", b2, srcs[1], srcs[0]]), 6);
        assert_eq!(q::<Vec<u8>>(&mut c, &["GET", b2]), b"goobar");
        assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", a2, srcs[1]]), 2);
        assert_eq!(q::<Vec<u8>>(&mut c, &["GET", a2]), vec![!b'a', !b'b']);
        // An empty result deletes the destination (and its TTL goes with it).
        let _: () = q(&mut c, &["EXPIRE", a2, "100"]);
        assert_eq!(q::<i64>(&mut c, &["BITOP", "OR", a2, "nope", "nope2"]), 0);
        assert_eq!(q::<i64>(&mut c, &["EXISTS", a2]), 0);
        // A source of another type: WRONGTYPE, nothing written.
        let _: i64 = q(&mut c, &["RPUSH", "bl", "x"]);
        let _: () = q(&mut c, &["SET", a2, "keep"]);
        assert!(e(&mut c, &["BITOP", "OR", a2, srcs[0], "bl"]).starts_with("WRONGTYPE"));
        assert_eq!(q::<String>(&mut c, &["GET", a2]), "keep");
        let _: i64 = q(&mut c, &["DEL", "bl", b2]);
    }
    // BITOP overwrites a destination of another type and clears its TTL.
    let _: i64 = q(&mut c, &["DEL", b1]);
    let _: i64 = q(&mut c, &["RPUSH", b1, "x"]);
    let _: () = q(&mut c, &["EXPIRE", b1, "100"]);
    assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", b1, a0]), 6);
    assert_eq!(q::<i64>(&mut c, &["TTL", b1]), -1);
    assert_eq!(
        e(&mut c, &["BITOP", "NOT", a2, a0, b0]),
        "ERR BITOP NOT must be called with a single source key."
    );
    assert_eq!(e(&mut c, &["BITOP", "NAND", a2, a0]), "ERR syntax error");
    assert_eq!(
        e(&mut c, &["BITOP", "AND", a2]),
        "ERR wrong number of arguments for 'bitop' command"
    );
}

#[test]
fn bitfield_types_offsets_and_overflow() {
    let s = Server::start(2);
    let mut c = s.client();
    let r: Vec<Option<i64>> = q(
        &mut c,
        &[
            "BITFIELD", "bf", "INCRBY", "i5", "100", "1", "GET", "u4", "0",
        ],
    );
    assert_eq!(r, vec![Some(1), Some(0)]);
    // The documented overflow example.
    let cmd = [
        "BITFIELD", "mykey", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102",
        "1",
    ];
    for expect in [[1, 1], [2, 2], [3, 3], [0, 3]] {
        let r: Vec<i64> = q(&mut c, &cmd);
        assert_eq!(r, expect);
    }
    // FAIL answers nil and writes nothing.
    let r: Vec<Option<i64>> = q(
        &mut c,
        &[
            "BITFIELD", "f", "SET", "u8", "0", "250", "OVERFLOW", "FAIL", "INCRBY", "u8", "0",
            "10", "OVERFLOW", "WRAP", "INCRBY", "u8", "0", "10", "OVERFLOW", "SAT", "INCRBY", "u8",
            "0", "-100", "INCRBY", "u8", "0", "-1000",
        ],
    );
    assert_eq!(r, vec![Some(0), None, Some(4), Some(0), Some(0)]);
    // Signed wrap and saturation, i64 and u63 limits, # offsets.
    let r: Vec<i64> = q(
        &mut c,
        &[
            "BITFIELD",
            "g",
            "SET",
            "i8",
            "#1",
            "127",
            "INCRBY",
            "i8",
            "#1",
            "1",
            "OVERFLOW",
            "SAT",
            "INCRBY",
            "i8",
            "#1",
            "-1000",
            "SET",
            "i64",
            "16",
            "9223372036854775807",
            "INCRBY",
            "i64",
            "16",
            "1",
            "SET",
            "u63",
            "80",
            "-1",
            "GET",
            "u63",
            "80",
            "GET",
            "i8",
            "8",
        ],
    );
    assert_eq!(
        r,
        vec![
            0,
            -128,
            -128,
            0,
            9223372036854775807,
            0,
            9223372036854775807,
            -128
        ]
    );
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "g"]), 18);
    // BITFIELD_RO: GET only.
    let r: Vec<i64> = q(&mut c, &["BITFIELD_RO", "g", "GET", "i8", "#1"]);
    assert_eq!(r, vec![-128]);
    let r: Vec<i64> = q(&mut c, &["BITFIELD_RO", "nokey", "GET", "u8", "0"]);
    assert_eq!(r, vec![0]);
    let r: Vec<i64> = q(&mut c, &["BITFIELD", "g"]);
    assert!(r.is_empty());
    let ro = "ERR BITFIELD_RO only supports the GET subcommand";
    assert_eq!(e(&mut c, &["BITFIELD_RO", "g", "SET", "i8", "0", "1"]), ro);
    assert_eq!(
        e(&mut c, &["BITFIELD_RO", "g", "INCRBY", "u8", "0", "1"]),
        ro
    );
    let ty = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    for bad in ["u64", "i65", "i0", "x8", "I8", "i", "i08"] {
        assert_eq!(e(&mut c, &["BITFIELD", "g", "GET", bad, "0"]), ty, "{bad}");
    }
    let offset = "ERR bit offset is not an integer or out of range";
    assert_eq!(e(&mut c, &["BITFIELD", "g", "GET", "i8", "#-1"]), offset);
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "GET", "i8", "4294967296"]),
        offset
    );
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "GET", "i8", "#536870912"]),
        offset
    );
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "OVERFLOW", "MAYBE"]),
        "ERR Invalid OVERFLOW type specified"
    );
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "GET", "i8"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "FOO", "i8", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(&mut c, &["BITFIELD", "g", "SET", "i8", "0", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: i64 = q(&mut c, &["LPUSH", "l", "x"]);
    assert!(e(&mut c, &["BITFIELD", "l", "SET", "i8", "0", "1"]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, &["BITFIELD", "l", "GET", "i8", "0"]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, &["BITFIELD_RO", "l", "GET", "i8", "0"]).starts_with("WRONGTYPE"));
    // A write with every op failing still creates the key, as Redis.
    let r: Vec<Option<i64>> = q(
        &mut c,
        &[
            "BITFIELD", "made", "OVERFLOW", "FAIL", "SET", "u2", "0", "7",
        ],
    );
    assert_eq!(r, vec![None]);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "made"]), vec![0u8]);
}

/// Edge cases run on Kora and on Redis 7.0: every reply must match.
const SCRIPT: &[&[&str]] = &[
    &["SET", "s", "foobar"],
    &["SETBIT", "s", "3", "1"],
    &["SETBIT", "t", "17", "1"],
    &["BITCOUNT", "s", "-100", "100"],
    &["BITCOUNT", "s", "3", "1"],
    &["BITCOUNT", "s", "-1", "-3"],
    &["BITCOUNT", "s", "-1", "-3", "bogus"],
    &["BITCOUNT", "s", "0", "-1", "bit"],
    &["BITCOUNT", "s", "3", "3", "BIT"],
    &["BITCOUNT", "s", "3", "12", "BIT"],
    &["BITCOUNT", "s", "-9", "-2", "BIT"],
    &["BITCOUNT", "s", "1", "2", "3", "4"],
    &["BITCOUNT", "missing", "x", "y"],
    &[
        "BITCOUNT",
        "s",
        "9223372036854775807",
        "-9223372036854775808",
    ],
    &["BITPOS", "s", "1", "-1"],
    &["BITPOS", "s", "0", "2", "3"],
    &["BITPOS", "s", "0", "20", "30", "BIT"],
    &["BITPOS", "s", "1", "20", "30", "BIT"],
    &["BITPOS", "s", "0", "3", "4", "bit"],
    &["BITPOS", "s", "1", "-5", "-1", "bit"],
    &["BITPOS", "s", "1", "100"],
    &["BITPOS", "s", "0", "100"],
    &["BITPOS", "s", "0", "0", "-100"],
    &["BITPOS", "t", "1", "9", "17", "BIT"],
    &["BITPOS", "t", "0", "0", "-1", "BIT"],
    &["BITPOS", "t", "1", "0", "16", "BIT"],
    &["BITPOS", "s", "x"],
    &["BITPOS", "s", "1", "x"],
    &["BITPOS", "missing", "0", "x"],
    &["BITOP", "xor", "d", "s", "t"],
    &["GET", "d"],
    &["BITOP", "and", "d", "s", "t", "s"],
    &["GET", "d"],
    &["BITOP", "not", "d", "missing"],
    &["EXISTS", "d"],
    &[
        "BITFIELD", "bf", "SET", "i3", "2", "-4", "GET", "i3", "2", "GET", "u3", "2",
    ],
    &[
        "BITFIELD",
        "bf",
        "INCRBY",
        "i64",
        "0",
        "-9223372036854775808",
        "INCRBY",
        "i64",
        "0",
        "-1",
    ],
    &[
        "BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i64", "0", "-1", "INCRBY", "u63", "1", "-5",
    ],
    &[
        "BITFIELD", "bf", "OVERFLOW", "FAIL", "SET", "i4", "#3", "8", "SET", "u4", "#3", "16",
        "SET", "u4", "#3", "15",
    ],
    &[
        "BITFIELD", "bf", "OVERFLOW", "wrap", "SET", "i4", "#3", "8", "SET", "u4", "#3", "17",
    ],
    &[
        "BITFIELD", "bf", "GET", "u63", "#1", "GET", "i64", "#1", "GET", "u1", "#200",
    ],
    &[
        "BITFIELD",
        "bf",
        "INCRBY",
        "u63",
        "0",
        "9223372036854775807",
        "INCRBY",
        "u63",
        "0",
        "9223372036854775807",
    ],
    &[
        "BITFIELD",
        "bf",
        "OVERFLOW",
        "SAT",
        "INCRBY",
        "i64",
        "0",
        "9223372036854775807",
        "INCRBY",
        "i64",
        "0",
        "9223372036854775807",
    ],
    &[
        "BITFIELD",
        "bf",
        "OVERFLOW",
        "FAIL",
        "INCRBY",
        "i2",
        "0",
        "-9223372036854775808",
    ],
    &["BITFIELD", "bf", "GET", "i8", "#18446744073709551615"],
    &["BITFIELD", "bf", "GET", "i64", "#67108863"],
    &["BITFIELD", "bf", "GET", "i64", "#67108864"],
    &["BITFIELD", "bf", "GET", "i64", "#144115188075855872"],
    &["BITFIELD", "bf", "OVERFLOW"],
    &["BITFIELD", "bf", "GET", "i8", "0", "SET"],
    &["GET", "bf"],
    &["BITFIELD_RO", "bf", "GET", "i8", "0", "GET", "u8", "#7"],
    &["BITFIELD_RO", "bf", "OVERFLOW", "FAIL", "GET", "i8", "0"],
    &["BITFIELD_RO", "bf", "SET", "i8", "0", "1", "GET", "i8", "0"],
    &["BITFIELD_RO", "bf", "SET", "i8", "0"],
];

#[test]
fn replies_match_redis() {
    let s = Server::start(2);
    let mut k = s.client();
    let kora: Vec<String> = SCRIPT.iter().map(|a| reply(&mut k, a)).collect();
    // Without Redis the script still must not crash the server.
    assert_eq!(q::<String>(&mut k, &["PING"]), "PONG");
    let Some(r) = RedisRef::start(free_port(), "bitmaps") else {
        return;
    };
    let mut rc = r.client();
    for (args, ours) in SCRIPT.iter().zip(&kora) {
        assert_eq!(ours, &reply(&mut rc, args), "{args:?}");
    }
}

/// Cross-shard BITOP and PFMERGE inside MULTI/EXEC run in the transaction.
#[test]
fn cross_shard_bitop_and_pfmerge_in_a_transaction() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("tx", 2, 2);
    let (a, b) = (&keys[0][0], &keys[1][0]);
    let (ha, hb) = (&keys[0][1], &keys[1][1]);
    let _: () = q(&mut c, &["SET", a, "ab"]);
    let _: i64 = q(&mut c, &["PFADD", ha, "x", "y"]);
    let (len, ok, n): (i64, String, i64) = redis::pipe()
        .atomic()
        .cmd("BITOP")
        .arg("XOR")
        .arg(b)
        .arg(a)
        .arg(a)
        .cmd("PFMERGE")
        .arg(hb)
        .arg(ha)
        .cmd("PFCOUNT")
        .arg(hb)
        .query(&mut c)
        .unwrap();
    assert_eq!((len, ok.as_str(), n), (2, "OK", 2));
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", b]), vec![0u8, 0]);
}

/// Cross-shard BITOP folds each shard's sources there and combines the
/// partial results: a seeded model run with many sources of different
/// lengths (some missing) on both shards must match a local fold.
#[test]
fn cross_shard_bitop_matches_a_model_with_many_sources() {
    let s = Server::start(2);
    let mut c = s.client();
    let keys = keys_on_each_shard("bmodel", 2, 6);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20 {
        // Six keys per shard, interleaved so both shards hold sources.
        let mut srcs: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
        for i in 0..6 {
            for shard in &keys {
                let key = shard[i].as_str();
                let value = match next() % 5 {
                    0 => None,
                    _ => Some((0..next() % 40).map(|_| next() as u8).collect()),
                };
                match &value {
                    Some(v) => {
                        let _: () = q(&mut c, &["SET", key, ""]);
                        let _: () = redis::cmd("SET").arg(key).arg(v).query(&mut c).unwrap();
                    }
                    None => {
                        let _: i64 = q(&mut c, &["DEL", key]);
                    }
                }
                srcs.push((key, value));
            }
        }
        let take = 2 + (next() as usize % (srcs.len() - 1));
        let srcs = &srcs[..take];
        for op in ["AND", "OR", "XOR"] {
            let len = srcs
                .iter()
                .map(|(_, v)| v.as_ref().map_or(0, Vec::len))
                .max();
            let mut model = vec![0u8; len.unwrap_or(0)];
            for (i, byte) in model.iter_mut().enumerate() {
                let mut bits = srcs
                    .iter()
                    .map(|(_, v)| v.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(0));
                let first = bits.next().unwrap();
                *byte = bits.fold(first, |acc, b| match op {
                    "AND" => acc & b,
                    "OR" => acc | b,
                    _ => acc ^ b,
                });
            }
            let mut cmd = redis::cmd("BITOP");
            cmd.arg(op).arg("bmodel-dst");
            for (k, _) in srcs {
                cmd.arg(*k);
            }
            let n: i64 = cmd.query(&mut c).unwrap();
            assert_eq!(n as usize, model.len(), "round {round} {op}");
            if model.is_empty() {
                assert_eq!(q::<i64>(&mut c, &["EXISTS", "bmodel-dst"]), 0);
            } else {
                assert_eq!(
                    q::<Vec<u8>>(&mut c, &["GET", "bmodel-dst"]),
                    model,
                    "round {round} {op}"
                );
            }
        }
    }
}
