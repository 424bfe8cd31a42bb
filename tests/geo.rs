//! Geo commands end to end against a 2-worker server: scores, positions,
//! hashes and distances bit for bit equal to redis-server 7.0.15's, search
//! results (members, order, distances, coordinates) equal to Redis's for a
//! few hundred random points, storing searches with source and destination
//! on different shards, and Redis's error texts.
//!
//! When /usr/bin/redis-server exists, the same commands also run against a
//! real Redis started here and every reply must be identical; otherwise
//! that part is skipped with a note (the expected values written below
//! were taken from redis-server 7.0.15).

mod common;
mod redis_ref;

use common::{Server, cmd, e, error_text, free_port, keys_on_each_shard, q, shard_of};
use redis::{Connection, Value};

use redis_ref::RedisRef as Redis;

/// A redis-server 7.0 for comparison (killed when dropped) and a client.
fn redis() -> Option<(Redis, Connection)> {
    let server = Redis::start(free_port(), "geo")?;
    let c = server.client();
    Some((server, c))
}

/// A reply as a comparable value: the reply, or the error line.
fn ask(c: &mut Connection, args: &[&str]) -> Result<Value, String> {
    cmd(args).query::<Value>(c).map_err(|e| error_text(&e))
}

/// Runs `args` on Kora and, when present, on Redis; the replies must match.
fn same(
    k: &mut Connection,
    r: &mut Option<(Redis, Connection)>,
    args: &[&str],
) -> Result<Value, String> {
    let mine = ask(k, args);
    if let Some((_, rc)) = r {
        let theirs = ask(rc, args);
        assert_eq!(mine, theirs, "{args:?}");
    }
    mine
}

/// A small seeded generator (xorshift64*), so runs repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// Scores, GEOPOS, GEOHASH and GEODIST of fixed points, as redis-server
/// 7.0.15 answered them.
#[test]
fn positions_and_scores_are_redis_bit_for_bit() {
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis();
    let add = [
        "GEOADD",
        "pts",
        "180",
        "85.05112878",
        "ne",
        "-180",
        "-85.05112878",
        "sw",
        "0",
        "0",
        "zero",
        "13.361389",
        "38.115556",
        "palermo",
        "179.9999999",
        "0.0001",
        "edge",
    ];
    assert_eq!(same(&mut k, &mut r, &add), Ok(Value::Int(5)));
    let expect = [
        (
            "ne",
            "13510798882111488",
            "180",
            "85.0511287799999991",
            "bp05b5048p0",
        ),
        (
            "sw",
            "0",
            "-179.99999731779098511",
            "-85.05112751263942528",
            "00bh0hbj200",
        ),
        (
            "zero",
            "3377699720527872",
            "0.00000268220901489",
            "0.00000126736058093",
            "s0000000000",
        ),
        (
            "palermo",
            "3479099956230698",
            "13.36138933897018433",
            "38.11555639549629859",
            "sqc8b49rny0",
        ),
        (
            "edge",
            "4128299658423999",
            "179.99999731779098511",
            "0.00010012148579364",
            "xbpbpbpbxf0",
        ),
    ];
    for (m, score, lon, lat, hash) in expect {
        assert_eq!(q::<String>(&mut k, &["ZSCORE", "pts", m]), score, "{m}");
        let pos: Vec<Option<Vec<String>>> = q(&mut k, &["GEOPOS", "pts", m]);
        assert_eq!(
            pos,
            vec![Some(vec![lon.to_string(), lat.to_string()])],
            "{m}"
        );
        let h: Vec<String> = q(&mut k, &["GEOHASH", "pts", m]);
        assert_eq!(h, vec![hash.to_string()]);
        same(&mut k, &mut r, &["ZSCORE", "pts", m]).unwrap();
        same(&mut k, &mut r, &["GEOPOS", "pts", m, "missing"]).unwrap();
        same(&mut k, &mut r, &["GEOHASH", "pts", m, "missing"]).unwrap();
    }
    for (unit, want) in [("km", "18919.8446"), ("KM", "18919.8446")] {
        let d: String = q(&mut k, &["GEODIST", "pts", "ne", "sw", unit]);
        assert_eq!(d, want);
    }
    for (unit, want) in [
        ("m", "4454733.0204"),
        ("mi", "2768.0496"),
        ("ft", "14615265.8150"),
    ] {
        let d: String = q(&mut k, &["GEODIST", "pts", "zero", "palermo", unit]);
        assert_eq!(d, want);
        same(&mut k, &mut r, &["GEODIST", "pts", "zero", "palermo", unit]).unwrap();
    }
    // Scores that are no geohash decode as Redis decodes them.
    q::<i64>(
        &mut k,
        &[
            "ZADD",
            "pts",
            "-1",
            "neg",
            "inf",
            "pinf",
            "9007199254740992",
            "p53",
        ],
    );
    if let Some((_, rc)) = &mut r {
        q::<i64>(
            rc,
            &[
                "ZADD",
                "pts",
                "-1",
                "neg",
                "inf",
                "pinf",
                "9007199254740992",
                "p53",
            ],
        );
    }
    let pos: Vec<Option<Vec<String>>> = q(&mut k, &["GEOPOS", "pts", "neg", "p53"]);
    assert_eq!(
        pos,
        vec![
            Some(vec!["180".into(), "85.0511287799999991".into()]),
            Some(vec!["180".into(), "-85.05112751263942528".into()]),
        ]
    );
    same(&mut k, &mut r, &["GEOPOS", "pts", "neg", "pinf", "p53"]).unwrap();
    same(&mut k, &mut r, &["GEOHASH", "pts", "neg", "pinf", "p53"]).unwrap();
    // Missing keys and members.
    assert_eq!(
        same(&mut k, &mut r, &["GEODIST", "nokey", "a", "b"]),
        Ok(Value::Nil)
    );
    assert_eq!(
        same(&mut k, &mut r, &["GEODIST", "pts", "ne", "nope"]),
        Ok(Value::Nil)
    );
    assert_eq!(
        same(&mut k, &mut r, &["GEOPOS", "nokey", "a"]),
        Ok(Value::Array(vec![Value::Nil]))
    );
    same(&mut k, &mut r, &["GEOHASH", "nokey", "a", "b"]).unwrap();
}

#[test]
fn geoadd_options() {
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis();
    let mut run = |args: &[&str]| same(&mut k, &mut r, args);
    assert_eq!(
        run(&["GEOADD", "g", "1", "2", "a", "3", "4", "b"]),
        Ok(Value::Int(2))
    );
    assert_eq!(
        run(&["GEOADD", "g", "NX", "5", "6", "a", "7", "8", "c"]),
        Ok(Value::Int(1))
    );
    assert_eq!(
        run(&["GEOADD", "g", "xx", "5", "6", "a", "7", "8", "d"]),
        Ok(Value::Int(0))
    );
    assert_eq!(
        run(&["GEOADD", "g", "XX", "CH", "9", "9", "a", "3", "4", "b"]),
        Ok(Value::Int(1))
    );
    assert_eq!(
        run(&["GEOADD", "g", "CH", "9", "9", "a", "1", "1", "e"]),
        Ok(Value::Int(1))
    );
    assert_eq!(
        run(&["GEOADD", "g", "CH", "NX", "0", "0", "a"]),
        Ok(Value::Int(0))
    );
    assert_eq!(
        run(&["GEOADD", "nx-missing", "XX", "1", "1", "a"]),
        Ok(Value::Int(0))
    );
    assert_eq!(run(&["EXISTS", "nx-missing"]), Ok(Value::Int(0)));
    run(&["ZRANGE", "g", "0", "-1", "WITHSCORES"]).unwrap();
    assert_eq!(run(&["ZCARD", "g"]), Ok(Value::Int(4)));
}

#[test]
fn errors_are_redis_texts() {
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis();
    for args in [
        &[
            "GEOADD",
            "k",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ][..],
        &["SET", "str", "x"],
    ] {
        same(&mut k, &mut r, args).unwrap();
    }
    let cases: &[(&[&str], &str)] = &[
        (
            &["GEOADD", "k", "200", "100", "x"],
            "ERR invalid longitude,latitude pair 200.000000,100.000000",
        ),
        (
            &["GEOADD", "k", "1", "2", "x", "200", "1", "y"],
            "ERR invalid longitude,latitude pair 200.000000,1.000000",
        ),
        (
            &["GEOADD", "k", "abc", "1", "x"],
            "ERR value is not a valid float",
        ),
        (
            &["GEOADD", "k", "1", "2"],
            "ERR wrong number of arguments for 'geoadd' command",
        ),
        (
            &["GEOADD", "k", "nx", "xx", "1", "2", "x"],
            "ERR syntax error",
        ),
        (&["GEOADD", "k", "1", "2", "x", "y"], "ERR syntax error"),
        (
            &["GEOADD", "str", "1", "2", "x"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEODIST", "k", "Palermo", "Catania", "foo"],
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ),
        (
            &["GEODIST", "k", "Palermo", "Catania", "km", "x"],
            "ERR syntax error",
        ),
        (
            &["GEODIST", "str", "a", "b"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEOHASH", "str", "a"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEOPOS", "str", "a"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "-1", "km"],
            "ERR radius cannot be negative",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "abc", "km"],
            "ERR need numeric radius",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "parsec"],
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "km", "count", "0"],
            "ERR COUNT must be > 0",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "km", "count", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "km", "any"],
            "ERR the ANY argument requires COUNT argument",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "km", "store"],
            "ERR syntax error",
        ),
        (
            &[
                "GEORADIUS",
                "k",
                "15",
                "37",
                "200",
                "km",
                "store",
                "d",
                "withdist",
            ],
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        ),
        (
            &["GEORADIUS", "k", "15", "37", "200", "km", "foo"],
            "ERR syntax error",
        ),
        (
            &["GEORADIUS_RO", "k", "15", "37", "200", "km", "store", "d"],
            "ERR syntax error",
        ),
        (
            &["GEORADIUS", "nokey", "200", "37", "200", "km"],
            "ERR invalid longitude,latitude pair 200.000000,37.000000",
        ),
        (
            &["GEORADIUS", "str", "15", "37", "200", "km"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["GEORADIUSBYMEMBER", "k", "nope", "100", "km"],
            "ERR could not decode requested zset member",
        ),
        (
            &[
                "GEORADIUSBYMEMBER_RO",
                "k",
                "Palermo",
                "100",
                "km",
                "storedist",
                "d",
            ],
            "ERR syntax error",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "fromlonlat",
                "1",
                "2",
                "byradius",
                "1",
                "km",
            ],
            "ERR syntax error",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "byradius",
                "1",
                "km",
                "bybox",
                "1",
                "1",
                "km",
            ],
            "ERR syntax error",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "nope",
                "byradius",
                "1",
                "km",
            ],
            "ERR could not decode requested zset member",
        ),
        (
            &[
                "GEOSEARCH",
                "nokey",
                "frommember",
                "nope",
                "bybox",
                "-1",
                "1",
                "km",
            ],
            "ERR height or width cannot be negative",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "bybox",
                "a",
                "1",
                "km",
            ],
            "ERR need numeric width",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "bybox",
                "1",
                "b",
                "km",
            ],
            "ERR need numeric height",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "byradius",
                "100",
                "km",
                "store",
                "x",
            ],
            "ERR syntax error",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "withdist",
                "withhash",
                "asc",
            ],
            "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "byradius",
                "1",
                "km",
                "withdist",
                "withhash",
            ],
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH",
        ),
        (
            &[
                "GEOSEARCHSTORE",
                "d",
                "k",
                "byradius",
                "1",
                "km",
                "asc",
                "desc",
            ],
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCHSTORE",
        ),
        (
            &[
                "GEOSEARCHSTORE",
                "d",
                "k",
                "frommember",
                "Palermo",
                "byradius",
                "100",
                "km",
                "withdist",
            ],
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        ),
        (
            &[
                "GEOSEARCH",
                "k",
                "frommember",
                "Palermo",
                "byradius",
                "1",
                "km",
                "count",
                "1",
                "any",
                "storedist",
            ],
            "ERR syntax error",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(e(&mut k, args), *want, "{args:?}");
        assert_eq!(same(&mut k, &mut r, args), Err(want.to_string()));
    }
    // Without a source Redis skips the member and radius of
    // GEORADIUSBYMEMBER; a storing search then deletes the destination.
    assert_eq!(
        same(
            &mut k,
            &mut r,
            &["GEORADIUSBYMEMBER", "nokey", "nope", "-100", "km"]
        ),
        Ok(Value::Array(vec![]))
    );
    same(&mut k, &mut r, &["SET", "d", "x"]).unwrap();
    assert_eq!(
        same(
            &mut k,
            &mut r,
            &[
                "GEORADIUSBYMEMBER",
                "nokey",
                "nope",
                "100",
                "km",
                "store",
                "d"
            ]
        ),
        Ok(Value::Int(0))
    );
    assert_eq!(same(&mut k, &mut r, &["EXISTS", "d"]), Ok(Value::Int(0)));
}

/// Random points and random searches: every reply equal to Redis's.
#[test]
fn searches_match_redis_on_random_points() {
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut add = vec!["GEOADD".to_string(), "pts".to_string()];
    let mut members = Vec::new();
    for i in 0..400 {
        // Half around Sicily (dense: many hits), half anywhere.
        let (lon, lat) = if i % 2 == 0 {
            (rng.range(11.0, 17.0), rng.range(35.0, 40.0))
        } else {
            (rng.range(-180.0, 180.0), rng.range(-85.05, 85.05))
        };
        let m = format!("m{i}");
        add.extend([format!("{lon:.7}"), format!("{lat:.7}"), m.clone()]);
        members.push(m);
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    assert_eq!(same(&mut k, &mut r, &add), Ok(Value::Int(400)));
    // Scores, positions and hashes of every member.
    let mut all = vec!["GEOPOS", "pts"];
    all.extend(members.iter().map(String::as_str));
    same(&mut k, &mut r, &all).unwrap();
    all[0] = "GEOHASH";
    same(&mut k, &mut r, &all).unwrap();
    same(&mut k, &mut r, &["ZRANGE", "pts", "0", "-1", "WITHSCORES"]).unwrap();
    for i in 0..40 {
        let a = &members[i * 7 % 400];
        let b = &members[(i * 13 + 5) % 400];
        same(
            &mut k,
            &mut r,
            &["GEODIST", "pts", a, b, ["m", "km", "ft", "mi"][i % 4]],
        )
        .unwrap();
    }
    let mut hits = 0;
    for i in 0..120 {
        let lon = format!("{:.5}", rng.range(10.0, 18.0));
        let lat = format!("{:.5}", rng.range(34.0, 41.0));
        let radius = format!("{:.3}", rng.range(1.0, 300.0));
        let (w, h) = (
            format!("{:.2}", rng.range(1.0, 400.0)),
            format!("{:.2}", rng.range(1.0, 400.0)),
        );
        let member = &members[(i * 2) % 400];
        let unit = ["km", "m", "mi", "ft"][i % 4];
        let scale = match unit {
            "m" => "000",
            "ft" => "0000",
            _ => "",
        };
        let radius = format!("{radius}{scale}");
        let (w, h) = (format!("{w}{scale}"), format!("{h}{scale}"));
        let sort = ["", "ASC", "DESC"][i % 3];
        let count = ["", "COUNT 5", "COUNT 3 ANY"][(i / 3) % 3];
        let mut args: Vec<String> = match i % 4 {
            0 => vec![
                "GEORADIUS".into(),
                "pts".into(),
                lon.clone(),
                lat.clone(),
                radius.clone(),
                unit.into(),
            ],
            1 => vec![
                "GEORADIUSBYMEMBER_RO".into(),
                "pts".into(),
                member.clone(),
                radius.clone(),
                unit.into(),
            ],
            2 => vec![
                "GEOSEARCH".into(),
                "pts".into(),
                "FROMLONLAT".into(),
                lon.clone(),
                lat.clone(),
                "BYBOX".into(),
                w.clone(),
                h.clone(),
                unit.into(),
            ],
            _ => vec![
                "GEOSEARCH".into(),
                "pts".into(),
                "FROMMEMBER".into(),
                member.clone(),
                "BYRADIUS".into(),
                radius.clone(),
                unit.into(),
            ],
        };
        args.extend(
            ["WITHCOORD", "WITHDIST", "WITHHASH"]
                .iter()
                .map(|s| s.to_string()),
        );
        args.extend(sort.split_whitespace().map(str::to_string));
        args.extend(count.split_whitespace().map(str::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Ok(Value::Array(found)) = same(&mut k, &mut r, &args) {
            hits += found.len();
        } else {
            panic!("{args:?} failed");
        }
        // The plain form too (members only).
        same(
            &mut k,
            &mut r,
            &args[..args.len()
                - 3
                - sort.split_whitespace().count()
                - count.split_whitespace().count()],
        )
        .unwrap();
    }
    assert!(hits > 200, "the searches found points ({hits})");
    // The whole world and a search around a pole-ward point.
    same(
        &mut k,
        &mut r,
        &[
            "GEORADIUS",
            "pts",
            "0",
            "0",
            "30000",
            "km",
            "ASC",
            "WITHDIST",
        ],
    )
    .unwrap();
    same(
        &mut k,
        &mut r,
        &[
            "GEOSEARCH",
            "pts",
            "FROMLONLAT",
            "179",
            "84",
            "BYBOX",
            "2000",
            "800",
            "km",
            "DESC",
        ],
    )
    .unwrap();
}

/// Storing searches with the source and the destination on different
/// shards, and on the same shard.
#[test]
fn store_across_shards() {
    let s = Server::start(2);
    let mut k = s.client();
    let mut r = redis();
    let keys = keys_on_each_shard("geo", 2, 3);
    let (src, far, near) = (&keys[0][0], &keys[1][0], &keys[0][1]);
    assert_ne!(shard_of(src, 2), shard_of(far, 2));
    assert_eq!(shard_of(src, 2), shard_of(near, 2));
    let add = [
        "GEOADD",
        src,
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
        "12.5",
        "41.9",
        "Rome",
    ];
    assert_eq!(same(&mut k, &mut r, &add), Ok(Value::Int(3)));
    for dst in [far, near] {
        // The destination holds another type and a TTL: both replaced.
        same(&mut k, &mut r, &["SET", dst, "x", "EX", "1000"]).unwrap();
        assert_eq!(
            same(
                &mut k,
                &mut r,
                &[
                    "GEOSEARCHSTORE",
                    dst,
                    src,
                    "FROMLONLAT",
                    "15",
                    "37",
                    "BYRADIUS",
                    "200",
                    "km",
                    "ASC"
                ]
            ),
            Ok(Value::Int(2))
        );
        assert_eq!(same(&mut k, &mut r, &["TTL", dst]), Ok(Value::Int(-1)));
        let z: Vec<String> = q(&mut k, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]);
        assert_eq!(
            z,
            ["Palermo", "3479099956230698", "Catania", "3479447370796909"]
        );
        same(&mut k, &mut r, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]).unwrap();
        assert_eq!(
            same(
                &mut k,
                &mut r,
                &[
                    "GEOSEARCHSTORE",
                    dst,
                    src,
                    "FROMMEMBER",
                    "Palermo",
                    "BYRADIUS",
                    "500",
                    "km",
                    "STOREDIST",
                    "COUNT",
                    "2"
                ]
            ),
            Ok(Value::Int(2))
        );
        let z: Vec<String> = q(&mut k, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]);
        assert_eq!(z[0], "Palermo");
        assert_eq!(z[1], "0");
        assert_eq!(z[2], "Catania");
        assert!(z[3].starts_with("166.27"), "{z:?}");
        same(&mut k, &mut r, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]).unwrap();
        assert_eq!(
            same(
                &mut k,
                &mut r,
                &["GEORADIUS", src, "15", "37", "1000", "km", "STORE", dst]
            ),
            Ok(Value::Int(3))
        );
        same(&mut k, &mut r, &["ZRANGE", dst, "0", "-1", "WITHSCORES"]).unwrap();
        assert_eq!(
            same(
                &mut k,
                &mut r,
                &[
                    "GEORADIUSBYMEMBER",
                    src,
                    "Rome",
                    "100",
                    "km",
                    "STOREDIST",
                    dst,
                    "COUNT",
                    "1"
                ]
            ),
            Ok(Value::Int(1))
        );
        assert_eq!(
            same(&mut k, &mut r, &["ZRANGE", dst, "0", "-1"]).map(|v| match v {
                Value::Array(a) => a.iter().map(bulk).collect::<Vec<_>>(),
                _ => vec![],
            }),
            Ok(vec!["Rome".to_string()])
        );
        // Nothing found: the destination is deleted.
        assert_eq!(
            same(
                &mut k,
                &mut r,
                &["GEORADIUS", src, "-100", "0", "1", "km", "STORE", dst]
            ),
            Ok(Value::Int(0))
        );
        assert_eq!(same(&mut k, &mut r, &["EXISTS", dst]), Ok(Value::Int(0)));
        // A wrong-typed source leaves the destination alone.
        same(&mut k, &mut r, &["SET", dst, "keep"]).unwrap();
        same(&mut k, &mut r, &["SET", "wrong", "x"]).unwrap();
        assert_eq!(
            e(
                &mut k,
                &[
                    "GEOSEARCHSTORE",
                    dst,
                    "wrong",
                    "FROMLONLAT",
                    "1",
                    "1",
                    "BYRADIUS",
                    "1",
                    "km"
                ]
            ),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(q::<String>(&mut k, &["GET", dst]), "keep");
        same(&mut k, &mut r, &["DEL", dst]).unwrap();
    }
}
