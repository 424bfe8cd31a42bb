//! DUMP and RESTORE, with Redis 7.0's payloads (the codec is
//! [`crate::store::rdb`]), so a value moves between Kora and Redis 7.0
//! either way.
//!
//! Both are one-key commands run on the key's shard. RESTORE checks its
//! options, then BUSYKEY, then the TTL, then the payload's footer and
//! body, in Redis' order, so each bad input gets the error Redis gives
//! it; the value is built in Kora's encodings by the shard's thresholds
//! and installed with `Db::set` (memory accounting and WATCH as for any
//! whole-value write).

use super::Args;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::rdb::{self, RestoreError};
use crate::store::{Db, Ttl};

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_FORMAT: &str = "ERR Bad data format";
const BAD_TTL: &str = "ERR Invalid TTL value, must be >= 0";
const BAD_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
const BAD_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";

/// DUMP key: the payload, or nil when the key is missing (a read).
pub fn dump(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let Some(value) = db.get(args.get(1)) else {
        return out.nil();
    };
    let mut payload = Vec::new();
    rdb::dump(value, &mut payload);
    out.bulk(&payload);
}

/// RESTORE's options after the payload.
#[derive(Default)]
struct Options {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// As Redis' `restoreCommand`: IDLETIME and FREQ exclude each other (the
/// second one is a syntax error), each needs its argument.
fn options(args: &Args) -> Result<Options, &'static str> {
    let mut o = Options::default();
    let mut i = 4;
    while i < args.len() {
        let more = i + 1 < args.len();
        if args.is(i, "REPLACE") {
            o.replace = true;
        } else if args.is(i, "ABSTTL") {
            o.absttl = true;
        } else if args.is(i, "IDLETIME") && more && o.freq.is_none() {
            let idle = parse_i64(args.get(i + 1)).ok_or(err::NOT_INTEGER)?;
            o.idle = Some(u64::try_from(idle).map_err(|_| BAD_IDLETIME)?);
            i += 1;
        } else if args.is(i, "FREQ") && more && o.idle.is_none() {
            let freq = parse_i64(args.get(i + 1)).ok_or(err::NOT_INTEGER)?;
            o.freq = Some(u8::try_from(freq).map_err(|_| BAD_FREQ)?);
            i += 1;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    Ok(o)
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`.
pub fn restore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let o = match options(args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let key = args.get(1);
    if !o.replace && db.contains(key) {
        return out.error(BUSYKEY);
    }
    let ttl = match parse_i64(args.get(2)) {
        None => return out.error(err::NOT_INTEGER),
        Some(t) if t < 0 => return out.error(BAD_TTL),
        Some(t) => t as u64,
    };
    let value = match rdb::restore(args.get(3), &db.limits) {
        Ok(v) => v,
        Err(RestoreError::Checksum) => return out.error(BAD_PAYLOAD),
        Err(RestoreError::Format) => return out.error(BAD_FORMAT),
    };
    let at = match ttl {
        0 => 0,
        t if o.absttl => t,
        t => db.now_ms.saturating_add(t),
    };
    if at != 0 && at <= db.now_ms {
        // Already expired (ABSTTL in the past): the old key goes under
        // REPLACE, nothing is created, and the reply is still OK.
        if o.replace {
            db.delete(key);
        }
        return out.ok();
    }
    db.set(key, value, if at == 0 { Ttl::Clear } else { Ttl::At(at) });
    db.set_restored_access(key, o.idle, o.freq);
    out.ok();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{db, run};
    use crate::command::{hashes, lists, sets, strings};

    fn payload(db: &mut Db, key: &str) -> Vec<u8> {
        let r = run(db, dump, &[b"DUMP", key.as_bytes()]);
        // $<len>\r\n<payload>\r\n
        let start = r.iter().position(|&b| b == b'\n').unwrap() + 1;
        r[start..r.len() - 2].to_vec()
    }

    #[test]
    fn every_type_restores_under_a_new_name() {
        let mut db = db();
        run(&mut db, strings::set, &[b"SET", b"s", b"12"]);
        run(&mut db, lists::rpush, &[b"RPUSH", b"l", b"a", b"1"]);
        run(&mut db, hashes::hset, &[b"HSET", b"h", b"f", b"v"]);
        run(&mut db, sets::sadd, &[b"SADD", b"z", b"1", b"2"]);
        for k in ["s", "l", "h", "z"] {
            let p = payload(&mut db, k);
            let new = format!("{k}2");
            let r = run(&mut db, restore, &[b"RESTORE", new.as_bytes(), b"0", &p]);
            assert_eq!(r, b"+OK\r\n");
            assert_eq!(payload(&mut db, &new), p);
            let r = run(&mut db, restore, &[b"RESTORE", new.as_bytes(), b"0", &p]);
            assert_eq!(r, format!("-{BUSYKEY}\r\n").as_bytes());
        }
        assert_eq!(run(&mut db, dump, &[b"DUMP", b"nope"]), b"$-1\r\n");
    }

    #[test]
    fn errors_come_in_redis_order() {
        let mut db = db();
        run(&mut db, strings::set, &[b"SET", b"k", b"v"]);
        let p = payload(&mut db, "k");
        let e = |db: &mut Db, argv: &[&[u8]]| String::from_utf8(run(db, restore, argv)).unwrap();
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"k", b"x", &p, b"FOO"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"k", b"x", &p]),
            format!("-{BUSYKEY}\r\n")
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"n", b"x", &p]),
            format!("-{}\r\n", err::NOT_INTEGER)
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"n", b"-1", &p]),
            format!("-{BAD_TTL}\r\n")
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"n", b"0", b"xx"]),
            format!("-{BAD_PAYLOAD}\r\n")
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"n", b"0", &p, b"IDLETIME", b"-1"]),
            format!("-{BAD_IDLETIME}\r\n")
        );
        assert_eq!(
            e(&mut db, &[b"RESTORE", b"n", b"0", &p, b"FREQ", b"256"]),
            format!("-{BAD_FREQ}\r\n")
        );
        assert_eq!(
            e(
                &mut db,
                &[b"RESTORE", b"n", b"0", &p, b"FREQ", b"1", b"IDLETIME", b"1"]
            ),
            "-ERR syntax error\r\n"
        );
    }
}
