//! String commands: GET, SET and friends, counters, ranges, MGET/MSET.

use super::keys::SHARD_GONE;
use super::{Args, parts_by_owner, wrong_arity};
use crate::coord::Atomic;
use crate::coord::Shard;
use crate::protocol::float::parse_long_double;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{FLOAT_TEXT, Resp, err, float_sum_text};
use crate::store::{Db, StrEncoding, StrValue, Ttl, Value};

/// Largest string Redis lets SETRANGE/APPEND build (proto-max-bulk-len).
const MAX_STRING: usize = 512 * 1024 * 1024;

/// Reads a string value: Ok(None) when missing, Err when another type.
fn read_str<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a [u8]>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

pub fn get(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_str(db, args.get(1)) {
        Ok(Some(v)) => out.bulk(v),
        Ok(None) => out.nil(),
        Err(e) => out.error(e),
    }
}

/// One MGET key: a value, or nil for missing keys and other types.
pub fn mget(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    out.array(args.len() - 1);
    for key in args.iter_from(1) {
        match read_str(db, key) {
            Ok(Some(v)) => out.bulk(v),
            _ => out.nil(),
        }
    }
}

/// Converts a relative or absolute expiry argument to absolute unix ms.
/// `unit_ms` is 1000 for seconds, 1 for milliseconds.
pub fn expire_at_ms(
    db: &Db,
    raw: &[u8],
    unit_ms: i64,
    absolute: bool,
    cmd: &str,
) -> Result<u64, String> {
    let invalid = || format!("ERR invalid expire time in '{cmd}' command");
    let n = parse_i64(raw).ok_or_else(|| err::NOT_INTEGER.to_string())?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(db.now_ms as i64).ok_or_else(invalid)?
    };
    Ok(at as u64)
}

pub fn set(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let value = args.get(2);
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut ttl: Option<u64> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let has_next = i + 1 < args.len();
        let expiry = [
            ("EX", 1000, false),
            ("PX", 1, false),
            ("EXAT", 1000, true),
            ("PXAT", 1, true),
        ]
        .into_iter()
        .find(|(name, _, _)| opt.eq_ignore_ascii_case(name.as_bytes()));
        if let Some((_, unit, absolute)) = expiry {
            if ttl.is_some() || keepttl || !has_next {
                return out.error(err::SYNTAX);
            }
            match expire_at_ms(db, args.get(i + 1), unit, absolute, "set") {
                Ok(at) => ttl = Some(at),
                Err(e) => return out.error(&e),
            }
            i += 2;
            continue;
        }
        if opt.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            get = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && ttl.is_none() {
            keepttl = true;
        } else {
            return out.error(err::SYNTAX);
        }
        i += 1;
    }
    if get {
        match read_str(db, key) {
            Ok(Some(old)) => out.bulk(old),
            Ok(None) => out.nil(),
            Err(e) => return out.error(e),
        }
    }
    if nx || xx {
        let exists = db.contains(key);
        if (nx && exists) || (xx && !exists) {
            if !get {
                out.nil();
            }
            return;
        }
    }
    let mode = match (ttl, keepttl) {
        (Some(at), _) => Ttl::At(at),
        (None, true) => Ttl::Keep,
        (None, false) => Ttl::Clear,
    };
    db.set_string(key, value, mode);
    if !get {
        out.ok();
    }
}

pub fn setnx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if db.contains(args.get(1)) {
        out.int(0);
    } else {
        db.set_string(args.get(1), args.get(2), Ttl::Clear);
        out.int(1);
    }
}

fn set_with_ttl(db: &mut Db, args: &Args, out: &mut Vec<u8>, unit_ms: i64, cmd: &str) {
    match expire_at_ms(db, args.get(2), unit_ms, false, cmd) {
        Ok(at) => {
            db.set_string(args.get(1), args.get(3), Ttl::At(at));
            out.ok();
        }
        Err(e) => out.error(&e),
    }
}

pub fn setex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    set_with_ttl(db, args, out, 1000, "setex");
}

pub fn psetex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    set_with_ttl(db, args, out, 1, "psetex");
}

pub fn getset(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_str(db, args.get(1)) {
        Ok(Some(old)) => out.bulk(old),
        Ok(None) => out.nil(),
        Err(e) => return out.error(e),
    }
    db.set_string(args.get(1), args.get(2), Ttl::Clear);
}

pub fn getdel(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_str(db, args.get(1)) {
        Ok(Some(v)) => {
            out.bulk(v);
            db.remove(args.get(1));
        }
        Ok(None) => out.nil(),
        Err(e) => out.error(e),
    }
}

pub fn getex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    // None: leave TTL alone; Some(0): PERSIST; Some(at): new deadline.
    let mut change: Option<u64> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        let expiry = [
            ("EX", 1000, false),
            ("PX", 1, false),
            ("EXAT", 1000, true),
            ("PXAT", 1, true),
        ]
        .into_iter()
        .find(|(name, _, _)| opt.eq_ignore_ascii_case(name.as_bytes()));
        if let Some((_, unit, absolute)) = expiry {
            if change.is_some() || i + 1 >= args.len() {
                return out.error(err::SYNTAX);
            }
            match expire_at_ms(db, args.get(i + 1), unit, absolute, "getex") {
                Ok(at) => change = Some(at),
                Err(e) => return out.error(&e),
            }
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"PERSIST") && change.is_none() {
            change = Some(0);
            i += 1;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    match read_str(db, key) {
        Ok(Some(v)) => out.bulk(v),
        Ok(None) => return out.nil(),
        Err(e) => return out.error(e),
    }
    if let Some(at) = change {
        db.set_expire(key, at);
    }
}

pub fn append(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (key, tail) = (args.get(1), args.get(2));
    let Some(mut guard) = db.entry_mut(key) else {
        db.set_string(key, tail, Ttl::Clear);
        return out.int(tail.len() as i64);
    };
    let Ok(mut s) = guard.string() else {
        return out.error(err::WRONGTYPE);
    };
    if s.len() + tail.len() > MAX_STRING {
        return out.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let len = s.edit(|s| {
        s.extend_from_slice(tail);
        s.len()
    });
    out.int(len as i64);
}

pub fn strlen(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_str(db, args.get(1)) {
        Ok(v) => out.int(v.map_or(0, |v| v.len()) as i64),
        Err(e) => out.error(e),
    }
}

/// Resolves Redis' inclusive, possibly negative range against `len`;
/// None when empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    if start > end || start >= len || end < 0 {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

/// GETRANGE clamps differently from LRANGE: a negative end that falls
/// before the string start becomes 0, so `GETRANGE k 0 -100` returns the
/// first byte (Redis 7 behaviour, kept by Redis for compatibility).
fn getrange_bounds(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if len == 0 || start > end {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

pub fn getrange(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (start, end) = match (args.int(2), args.int(3)) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return out.error(err::NOT_INTEGER),
    };
    match read_str(db, args.get(1)) {
        Ok(Some(v)) => match getrange_bounds(start, end, v.len()) {
            Some((s, e)) => out.bulk(&v[s..=e]),
            None => out.bulk(b""),
        },
        Ok(None) => out.bulk(b""),
        Err(e) => out.error(e),
    }
}

pub fn setrange(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let patch = args.get(3);
    let offset = match args.int(2) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return out.error("ERR offset is out of range"),
        Err(e) => return out.error(e),
    };
    let mut guard = db.entry_mut(key);
    let result = match guard.as_mut().map(|g| g.string()) {
        Some(Ok(mut s)) => {
            if patch.is_empty() {
                Ok(s.len())
            } else if offset + patch.len() > MAX_STRING {
                Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
            } else {
                Ok(s.edit(|s| {
                    if s.len() < offset + patch.len() {
                        s.resize(offset + patch.len(), 0);
                    }
                    s[offset..offset + patch.len()].copy_from_slice(patch);
                    s.len()
                }))
            }
        }
        Some(Err(_)) => Err(err::WRONGTYPE),
        None if patch.is_empty() => Ok(0),
        None if offset + patch.len() > MAX_STRING => {
            Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        None => {
            let mut s = vec![0u8; offset + patch.len()];
            s[offset..].copy_from_slice(patch);
            let len = s.len();
            drop(guard);
            // A string SETRANGE creates is raw in Redis too.
            db.set(
                key,
                Value::Str(StrValue::from_vec(s, StrEncoding::Raw)),
                Ttl::Clear,
            );
            Ok(len)
        }
    };
    match result {
        Ok(len) => out.int(len as i64),
        Err(e) => out.error(e),
    }
}

/// Adds `delta` to the integer stored at `key` (0 when missing).
fn incr_by(db: &mut Db, key: &[u8], delta: i64, out: &mut Vec<u8>) {
    let mut guard = db.entry_mut(key);
    let result = match guard.as_mut().map(|g| g.string()) {
        Some(Ok(mut s)) => match parse_i64(&s) {
            None => Err(err::NOT_INTEGER),
            Some(cur) => match cur.checked_add(delta) {
                None => Err(err::OVERFLOW),
                Some(next) => {
                    s.set_integer(next);
                    Ok(next)
                }
            },
        },
        Some(Err(_)) => Err(err::WRONGTYPE),
        None => {
            drop(guard);
            let mut s = Vec::with_capacity(20);
            crate::protocol::reply::push_i64(&mut s, delta);
            db.set_string(key, &s, Ttl::Clear);
            Ok(delta)
        }
    };
    match result {
        Ok(n) => out.int(n),
        Err(e) => out.error(e),
    }
}

pub fn incr(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    incr_by(db, args.get(1), 1, out);
}

pub fn decr(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    incr_by(db, args.get(1), -1, out);
}

pub fn incrby(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match args.int(2) {
        Ok(d) => incr_by(db, args.get(1), d, out),
        Err(e) => out.error(e),
    }
}

pub fn decrby(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match args.int(2) {
        Ok(i64::MIN) => out.error("ERR decrement would overflow"),
        Ok(d) => incr_by(db, args.get(1), -d, out),
        Err(e) => out.error(e),
    }
}

pub fn incrbyfloat(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let Some(delta) = parse_long_double(args.get(2)) else {
        return out.error(err::NOT_FLOAT);
    };
    let (current, current_text) = match read_str(db, key) {
        Ok(Some(v)) => match parse_long_double(v) {
            Some(f) => (f, Some(v)),
            None => return out.error(err::NOT_FLOAT),
        },
        Ok(None) => (0.0, None),
        Err(e) => return out.error(e),
    };
    let next = current + delta;
    if !next.is_finite() {
        return out.error(err::NAN_OR_INF);
    }
    let mut buf = [0; FLOAT_TEXT];
    let text = float_sum_text(current_text, args.get(2), next, &mut buf);
    // Redis builds the result as text: embstr (or raw), never int.
    db.set_string_encoded(key, text, Ttl::Keep, StrEncoding::Text);
    out.bulk(text);
}

pub fn mset(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if args.len().is_multiple_of(2) {
        return wrong_arity(out, "mset");
    }
    for i in (1..args.len()).step_by(2) {
        db.set_string(args.get(i), args.get(i + 1), Ttl::Clear);
    }
    out.ok();
}

/// MSETNX when every key lives on one shard: set them all only if none
/// exists, in one step.
pub fn msetnx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if args.len().is_multiple_of(2) {
        return wrong_arity(out, "msetnx");
    }
    if (1..args.len()).step_by(2).any(|i| db.contains(args.get(i))) {
        return out.int(0);
    }
    for i in (1..args.len()).step_by(2) {
        db.set_string(args.get(i), args.get(i + 1), Ttl::Clear);
    }
    out.int(1);
}

spread!(mget_spread => mget_across);
spread!(mset_spread => mset_across);
spread!(msetnx_spread => msetnx_across);

/// MGET over several shards: each shard's keys are read while every
/// involved shard is held, so no write of another client lands between
/// two of the reads.
async fn mget_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let parts = parts_by_owner(shard, args, 1, 1);
    let mut atomic = Atomic::new(shard, tx, args.iter_from(1));
    let mut values: Vec<Option<Vec<u8>>> = vec![None; args.len() - 1];
    for part in parts {
        let keys = part.args;
        let read = atomic.on(part.shard, move |s: &Shard| {
            let mut db = s.db();
            keys.iter()
                .map(|k| read_str(&mut db, k).ok().flatten().map(<[u8]>::to_vec))
                .collect::<Vec<_>>()
        });
        let Some(found) = read.await else {
            return out.error(SHARD_GONE);
        };
        for (at, value) in part.groups.into_iter().zip(found) {
            values[at] = value;
        }
    }
    drop(atomic);
    out.array(values.len());
    for value in &values {
        match value {
            Some(v) => out.bulk(v),
            None => out.nil(),
        }
    }
}

/// MSET over several shards, all or nothing as seen by other clients.
async fn mset_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len().is_multiple_of(2) {
        return wrong_arity(out, "mset");
    }
    let parts = parts_by_owner(shard, args, 1, 2);
    let mut atomic = Atomic::new(shard, tx, (1..args.len()).step_by(2).map(|i| args.get(i)));
    for part in parts {
        let pairs = part.args;
        let set = atomic.on(part.shard, move |s: &Shard| set_pairs(s, &pairs));
        if set.await.is_none() {
            return out.error(SHARD_GONE);
        }
    }
    out.ok();
}

/// One shard's part of MSET / MSETNX: keys and values in pairs.
fn set_pairs(shard: &Shard, pairs: &super::Shipped) {
    let mut db = shard.db();
    for i in (0..pairs.len()).step_by(2) {
        db.set_string(pairs.get(i), pairs.get(i + 1), Ttl::Clear);
    }
}

/// MSETNX over several shards: every shard is checked (and held), then
/// every key is set, or none.
async fn msetnx_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len().is_multiple_of(2) {
        return wrong_arity(out, "msetnx");
    }
    let parts = parts_by_owner(shard, args, 1, 2);
    let mut atomic = Atomic::new(shard, tx, (1..args.len()).step_by(2).map(|i| args.get(i)));
    for part in &parts {
        let keys: Vec<Vec<u8>> = part.args.iter().step_by(2).map(<[u8]>::to_vec).collect();
        let any = atomic.on(part.shard, move |s: &Shard| {
            let mut db = s.db();
            keys.iter().any(|k| db.contains(k))
        });
        match any.await {
            Some(false) => {}
            Some(true) => return out.int(0),
            // Not "absent": an unreachable shard is an error.
            None => return out.error(SHARD_GONE),
        }
    }
    for part in parts {
        let pairs = part.args;
        let set = atomic.on(part.shard, move |s: &Shard| set_pairs(s, &pairs));
        if set.await.is_none() {
            return out.error(SHARD_GONE);
        }
    }
    out.int(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Handler;
    use crate::command::lists::lpush;
    use crate::command::testing::{check_step, db, run};

    // The worked example of "Adding a command" in the command module's
    // docs; keep the two in step.
    #[test]
    fn strlen_counts_bytes() {
        let mut db = db();
        assert_eq!(run(&mut db, strlen, &[b"STRLEN", b"k"]), b":0\r\n");
        run(&mut db, set, &[b"SET", b"k", b"hello"]);
        assert_eq!(run(&mut db, strlen, &[b"STRLEN", b"k"]), b":5\r\n");
        run(&mut db, lpush, &[b"LPUSH", b"l", b"x"]);
        assert!(run(&mut db, strlen, &[b"STRLEN", b"l"]).starts_with(b"-WRONGTYPE"));
    }

    /// In-place string writes (APPEND, SETRANGE, INCR*) go through the
    /// mutation guard; whole-value writes through `Db::set*`. Both keep the
    /// accounting exact, with and without TTLs, and refuse other types.
    #[test]
    fn memory_accounting_stays_exact_under_random_commands() {
        let mut db = db();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut list = db.entry_or_insert_with(b"list", || Value::List(Box::default()));
        list.list().unwrap().push_back(b"e");
        drop(list);
        for i in 0..3000 {
            let key = if next(10) == 0 {
                "list".to_string()
            } else {
                format!("k{}", next(4))
            };
            let (k, off, val) = (
                key.as_bytes(),
                next(40).to_string(),
                "v".repeat(next(30) as usize),
            );
            let (handler, argv): (Handler, Vec<&[u8]>) = match next(9) {
                0 => (set, vec![b"set", k, val.as_bytes()]),
                1 => (append, vec![b"append", k, val.as_bytes()]),
                2 => (
                    setrange,
                    vec![b"setrange", k, off.as_bytes(), val.as_bytes()],
                ),
                3 => (incr, vec![b"incr", k]),
                4 => (decrby, vec![b"decrby", k, b"123456789"]),
                5 => (getdel, vec![b"getdel", k]),
                6 => (set, vec![b"set", k, b"7", b"EX", b"100"]),
                7 => (incrbyfloat, vec![b"incrbyfloat", k, b"1.5"]),
                _ => (getset, vec![b"getset", k, val.as_bytes()]),
            };
            let reply = run(&mut db, handler, &argv);
            let wrong = key == "list" && !matches!(argv[0], b"set" | b"getdel");
            check_step(&db, &reply, wrong, &(i, &argv));
            if key == "list" && db.peek(b"list").is_none_or(|v| v.type_name() != "list") {
                db.set(
                    b"list",
                    Value::List(Box::new(crate::store::agg::list_of(
                        [&b"e"[..]],
                        &Default::default(),
                    ))),
                    Ttl::Clear,
                );
            }
        }
    }
}
