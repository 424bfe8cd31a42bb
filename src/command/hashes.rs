//! Hash commands.
//!
//! A hash is packed while small and an insertion-indexed map beyond (see
//! `store::agg`), so that HSCAN cursors are positions in the map; a packed
//! hash is scanned in one reply with cursor 0, as Redis. Writes go through the store's mutation guard (`Db::entry_mut` and its
//! `HashMut` view), which keeps the memory accounting, WATCH and the
//! removal of an emptied hash in one place.

use super::{Args, ScanExtra, ScanOptions, parse_cursor, parse_scan_options, wrong_arity};
use crate::protocol::float::parse_long_double;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{FLOAT_TEXT, Resp, err, float_sum_text, push_i64};
use crate::store::glob::glob_match;
use crate::store::guard::EntryMut;
use crate::store::{Db, Hash, Value};

/// Reads a hash: Ok(None) when missing, Err when another type.
fn read_hash<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a Hash>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// Write access to a hash without counting a keyspace hit or miss; a
/// missing key is created empty (packed), and removed again by the guard
/// if nothing gets stored.
fn write_hash<'a>(db: &'a mut Db, key: &[u8]) -> EntryMut<'a> {
    db.entry_or_insert_with(key, || Value::Hash(Box::default()))
}

/// Stores field/value pairs, creating the hash when missing. Returns how
/// many fields are new.
fn store<'p>(
    db: &mut Db,
    key: &[u8],
    pairs: impl ExactSizeIterator<Item = (&'p [u8], &'p [u8])>,
) -> Result<usize, &'static str> {
    let mut guard = write_hash(db, key);
    let mut hash = guard.hash().map_err(|_| err::WRONGTYPE)?;
    Ok(pairs.filter(|(f, v)| hash.insert(f, v)).count())
}

/// HSET and HMSET: same write, different reply.
fn hset_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, name: &str) -> Option<usize> {
    if !args.len().is_multiple_of(2) {
        wrong_arity(out, name);
        return None;
    }
    let pairs = (2..args.len())
        .step_by(2)
        .map(|i| (args.get(i), args.get(i + 1)));
    match store(db, args.get(1), pairs) {
        Ok(created) => Some(created),
        Err(e) => {
            out.error(e);
            None
        }
    }
}

pub fn hset(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if let Some(created) = hset_generic(db, args, out, "hset") {
        out.int(created as i64);
    }
}

pub fn hmset(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if hset_generic(db, args, out, "hmset").is_some() {
        out.ok();
    }
}

pub fn hsetnx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (key, field) = (args.get(1), args.get(2));
    let mut guard = write_hash(db, key);
    let Ok(mut hash) = guard.hash() else {
        return out.error(err::WRONGTYPE);
    };
    out.int(hash.insert_if_absent(field, args.get(3)) as i64);
}

pub fn hget(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_hash(db, args.get(1)) {
        Ok(hash) => match hash.and_then(|h| h.get(args.get(2))) {
            Some(v) => out.bulk(v),
            None => out.nil(),
        },
        Err(e) => out.error(e),
    }
}

pub fn hmget(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let hash = match read_hash(db, args.get(1)) {
        Ok(hash) => hash,
        Err(e) => return out.error(e),
    };
    out.array(args.len() - 2);
    for field in args.iter_from(2) {
        match hash.and_then(|h| h.get(field)) {
            Some(v) => out.bulk(v),
            None => out.nil(),
        }
    }
}

/// Shared body of HGETALL, HKEYS and HVALS.
fn reply_all(db: &mut Db, args: &Args, out: &mut Vec<u8>, fields: bool, values: bool) {
    let hash = match read_hash(db, args.get(1)) {
        Ok(Some(hash)) => hash,
        Ok(None) => return out.array(0),
        Err(e) => return out.error(e),
    };
    out.array(hash.len() * (usize::from(fields) + usize::from(values)));
    for (f, v) in hash {
        if fields {
            out.bulk(f);
        }
        if values {
            out.bulk(v);
        }
    }
}

pub fn hgetall(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    reply_all(db, args, out, true, true);
}

pub fn hkeys(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    reply_all(db, args, out, true, false);
}

pub fn hvals(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    reply_all(db, args, out, false, true);
}

pub fn hdel(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.int(0);
    };
    let Ok(mut hash) = guard.hash() else {
        return out.error(err::WRONGTYPE);
    };
    // `remove` is a swap_remove: O(1); order only matters to HSCAN cursors,
    // which already make no promise across deletions.
    let removed = args.iter_from(2).filter(|f| hash.remove(f)).count();
    out.int(removed as i64);
}

pub fn hexists(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_hash(db, args.get(1)) {
        Ok(hash) => out.int(hash.is_some_and(|h| h.contains_key(args.get(2))) as i64),
        Err(e) => out.error(e),
    }
}

pub fn hlen(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_hash(db, args.get(1)) {
        Ok(hash) => out.int(hash.map_or(0, |h| h.len()) as i64),
        Err(e) => out.error(e),
    }
}

pub fn hstrlen(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_hash(db, args.get(1)) {
        Ok(hash) => out.int(hash.and_then(|h| h.get(args.get(2))).map_or(0, |v| v.len()) as i64),
        Err(e) => out.error(e),
    }
}

pub fn hincrby(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (key, field) = (args.get(1), args.get(2));
    let incr = match args.int(3) {
        Ok(n) => n,
        Err(e) => return out.error(e),
    };
    // A missing key is created (and dropped again by the guard if this
    // fails, which it cannot: 0 + incr neither overflows nor misparses).
    let mut guard = write_hash(db, key);
    let Ok(mut hash) = guard.hash() else {
        return out.error(err::WRONGTYPE);
    };
    let current = match hash.get(field) {
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return out.error("ERR hash value is not an integer"),
        },
        None => 0,
    };
    let Some(next) = current.checked_add(incr) else {
        return out.error(err::OVERFLOW);
    };
    let mut text = Vec::with_capacity(20);
    push_i64(&mut text, next);
    hash.insert(field, &text);
    out.int(next);
}

pub fn hincrbyfloat(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (key, field) = (args.get(1), args.get(2));
    let incr = match parse_long_double(args.get(3)) {
        Some(f) if f.is_finite() => f,
        Some(_) => return out.error("ERR value is NaN or Infinity"),
        None => return out.error(err::NOT_FLOAT),
    };
    let mut guard = write_hash(db, key);
    let Ok(mut hash) = guard.hash() else {
        return out.error(err::WRONGTYPE);
    };
    let (current, current_text) = match hash.get(field) {
        Some(v) => match parse_long_double(v) {
            Some(f) => (f, Some(v)),
            None => return out.error("ERR hash value is not a float"),
        },
        None => (0.0, None),
    };
    let next = current + incr;
    if !next.is_finite() {
        return out.error(err::NAN_OR_INF);
    }
    let mut buf = [0; FLOAT_TEXT];
    let text = float_sum_text(current_text, args.get(3), next, &mut buf);
    hash.insert(field, text);
    out.bulk(text);
}

pub fn hscan(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let cursor = match parse_cursor(args.get(2)) {
        Ok(c) => usize::try_from(c).unwrap_or(usize::MAX),
        Err(e) => return out.error(e),
    };
    // As in Redis, a missing key ends the scan before options are looked at.
    let hash = match read_hash(db, args.get(1)) {
        Ok(Some(hash)) => hash,
        Ok(None) => {
            out.array(2);
            out.bulk(b"0");
            return out.array(0);
        }
        Err(e) => return out.error(e),
    };
    let ScanOptions {
        count,
        pattern,
        novalues,
        ..
    } = match parse_scan_options(args, 3, ScanExtra::NoValues) {
        Ok(opts) => opts,
        Err(e) => return out.error(e),
    };
    // A packed hash is small: all of it at once, cursor 0 (as Redis).
    let (start, end) = match hash {
        Hash::Pack(_) => (0, hash.len()),
        Hash::Table(_) => {
            let end = cursor.saturating_add(count).min(hash.len());
            (cursor.min(end), end)
        }
    };
    let found: Vec<(&[u8], &[u8])> = hash
        .iter()
        .skip(start)
        .take(end - start)
        .filter(|(f, _)| pattern.is_none_or(|p| glob_match(p, f)))
        .collect();
    let next = if end < hash.len() { end } else { 0 };
    out.array(2);
    out.bulk_u64(next as u64);
    out.array(found.len() * if novalues { 1 } else { 2 });
    for (f, v) in found {
        out.bulk(f);
        if !novalues {
            out.bulk(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Handler;
    use crate::command::testing::{check_step, db, run, text};
    use crate::store::{Ttl, unix_ms};

    #[test]
    fn writes_and_counters_reply_as_redis() {
        let mut db = db();
        assert_eq!(
            text(run(
                &mut db,
                hset,
                &[b"hset", b"h", b"a", b"1", b"b", b"2", b"a", b"3"]
            )),
            ":2\r\n"
        );
        assert_eq!(
            text(run(&mut db, hget, &[b"hget", b"h", b"a"])),
            "$1\r\n3\r\n"
        );
        assert_eq!(
            text(run(&mut db, hset, &[b"hset", b"h", b"a"])),
            "-ERR wrong number of arguments for 'hset' command\r\n"
        );
        assert_eq!(
            text(run(&mut db, hmset, &[b"hmset", b"h", b"a", b"1", b"b"])),
            "-ERR wrong number of arguments for 'hmset' command\r\n"
        );
        assert_eq!(
            text(run(&mut db, hincrby, &[b"hincrby", b"h", b"a", b"-5"])),
            ":-2\r\n"
        );
        assert_eq!(
            text(run(
                &mut db,
                hincrby,
                &[b"hincrby", b"h", b"a", b"-9223372036854775807"]
            )),
            format!("-{}\r\n", err::OVERFLOW)
        );
        assert_eq!(
            text(run(
                &mut db,
                hincrbyfloat,
                &[b"hincrbyfloat", b"h", b"f", b"1.5"]
            )),
            "$3\r\n1.5\r\n"
        );
        assert_eq!(
            text(run(
                &mut db,
                hincrbyfloat,
                &[b"hincrbyfloat", b"h", b"f", b"1.5"]
            )),
            "$1\r\n3\r\n"
        );
        assert_eq!(
            text(run(
                &mut db,
                hincrbyfloat,
                &[b"hincrbyfloat", b"h", b"f", b"inf"]
            )),
            "-ERR value is NaN or Infinity\r\n"
        );
        let huge: &[&[u8]] = &[b"hincrbyfloat", b"h", b"big", b"1.7e308"];
        assert!(text(run(&mut db, hincrbyfloat, huge)).starts_with("$309\r\n17"));
        assert_eq!(
            text(run(&mut db, hincrbyfloat, huge)),
            format!("-{}\r\n", err::NAN_OR_INF)
        );
        assert_eq!(
            text(run(&mut db, hincrby, &[b"hincrby", b"h", b"big", b"1"])),
            "-ERR hash value is not an integer\r\n"
        );
        run(&mut db, hset, &[b"hset", b"h", b"s", b"abc"]);
        assert_eq!(
            text(run(
                &mut db,
                hincrbyfloat,
                &[b"hincrbyfloat", b"h", b"s", b"1"]
            )),
            "-ERR hash value is not a float\r\n"
        );
        assert_eq!(
            text(run(&mut db, hsetnx, &[b"hsetnx", b"h", b"s", b"x"])),
            ":0\r\n"
        );
        assert_eq!(
            text(run(&mut db, hsetnx, &[b"hsetnx", b"h2", b"s", b"x"])),
            ":1\r\n"
        );
        assert_eq!(
            text(run(&mut db, hdel, &[b"hdel", b"h2", b"s", b"s", b"nope"])),
            ":1\r\n"
        );
        assert_eq!(db.len(), 1, "an emptied hash is deleted");
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    /// HSET h f0 v0 … f{n-1} v{n-1}.
    fn hset_fields(db: &mut Db, n: usize) {
        let mut parts: Vec<Vec<u8>> = vec![b"hset".to_vec(), b"h".to_vec()];
        for i in 0..n {
            parts.push(format!("f{i}").into_bytes());
            parts.push(format!("v{i}").into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        run(db, hset, &refs);
    }

    #[test]
    fn hscan_walks_positions_and_filters() {
        let mut db = db();
        // A table (a packed hash answers in one page, tested below).
        db.limits.hash_max_entries = 10;
        hset_fields(&mut db, 25);
        let page = text(run(
            &mut db,
            hscan,
            &[b"hscan", b"h", b"0", b"COUNT", b"10", b"NOVALUES"],
        ));
        assert!(
            page.starts_with("*2\r\n$2\r\n10\r\n*10\r\n$2\r\nf0\r\n$2\r\nf1\r\n"),
            "{page}"
        );
        let last = text(run(
            &mut db,
            hscan,
            &[b"hscan", b"h", b"20", b"COUNT", b"10"],
        ));
        assert!(
            last.starts_with("*2\r\n$1\r\n0\r\n*10\r\n$3\r\nf20\r\n$3\r\nv20\r\n"),
            "{last}"
        );
        let matched = text(run(
            &mut db,
            hscan,
            &[b"hscan", b"h", b"0", b"MATCH", b"f1?", b"COUNT", b"100"],
        ));
        assert!(
            matched.starts_with("*2\r\n$1\r\n0\r\n*20\r\n$3\r\nf10\r\n"),
            "{matched}"
        );
        assert_eq!(
            text(run(&mut db, hscan, &[b"hscan", b"h", b"-1"])),
            "-ERR invalid cursor\r\n"
        );
        assert_eq!(
            text(run(&mut db, hscan, &[b"hscan", b"h", b"0", b"COUNT", b"0"])),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            text(run(&mut db, hscan, &[b"hscan", b"h", b"0", b"BOGUS"])),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            text(run(&mut db, hscan, &[b"hscan", b"nope", b"7"])),
            "*2\r\n$1\r\n0\r\n*0\r\n"
        );
        assert_eq!(
            text(run(&mut db, hscan, &[b"hscan", b"h", b"99"])),
            "*2\r\n$1\r\n0\r\n*0\r\n"
        );
    }

    #[test]
    fn hscan_of_a_packed_hash_is_one_page_with_cursor_0() {
        let mut db = db();
        hset_fields(&mut db, 25);
        let page = text(run(
            &mut db,
            hscan,
            &[b"hscan", b"h", b"0", b"COUNT", b"2", b"MATCH", b"f1*"],
        ));
        assert!(
            page.starts_with("*2\r\n$1\r\n0\r\n*22\r\n$2\r\nf1\r\n$2\r\nv1\r\n$3\r\nf10\r\n"),
            "{page}"
        );
    }

    /// Runs a random mix of every hash command (plus strings and TTLs to
    /// exercise WRONGTYPE and expiry) and checks that the incremental
    /// accounting matches a full recount after each one.
    #[test]
    fn memory_accounting_stays_exact_under_random_commands() {
        let mut db = db();
        let mut next = crate::command::testing::rng(0x2545_F491_4F6C_DD1Du64);
        let fields: [&[u8]; 5] = [b"", b"a", b"bb", b"counter", b"a-much-longer-field-name"];
        let values: [&[u8]; 7] = [
            b"",
            b"1",
            b"-7",
            b"2.5",
            b"x",
            b"9223372036854775807",
            b"a longer value here",
        ];
        let keys: [&[u8]; 4] = [b"h0", b"h1", b"h2", b"str"];
        const WRONG_TYPE_KIND: usize = 15;
        let mut succeeded = [0usize; 17];
        for step in 0..20_000 {
            let key = keys[next(keys.len() as u64) as usize];
            let f1 = fields[next(fields.len() as u64) as usize];
            let f2 = fields[next(fields.len() as u64) as usize];
            let v1 = values[next(values.len() as u64) as usize];
            let v2 = values[next(values.len() as u64) as usize];
            let kind = next(17) as usize;
            let (handler, parts): (Handler, Vec<&[u8]>) = match kind {
                0 => (hset, vec![b"hset", key, f1, v1, f2, v2]),
                1 => (hset, vec![b"hset", key, f1, v1]),
                2 => (hmset, vec![b"hmset", key, f2, v2]),
                3 => (hsetnx, vec![b"hsetnx", key, f1, v1]),
                4 => (hdel, vec![b"hdel", key, f1, f2]),
                5 => (hincrby, vec![b"hincrby", key, f1, v1]),
                6 => (hincrbyfloat, vec![b"hincrbyfloat", key, f1, v1]),
                7 => (hget, vec![b"hget", key, f1]),
                8 => (hmget, vec![b"hmget", key, f1, f2]),
                9 => (hgetall, vec![b"hgetall", key]),
                10 => (hkeys, vec![b"hkeys", key]),
                11 => (hvals, vec![b"hvals", key]),
                12 => (hexists, vec![b"hexists", key, f1]),
                13 => (hstrlen, vec![b"hstrlen", key, f2]),
                14 => (
                    hscan,
                    vec![b"hscan", key, b"1", b"COUNT", b"2", b"MATCH", b"*"],
                ),
                WRONG_TYPE_KIND => {
                    db.set(b"str", Value::Str(v1.to_vec().into()), Ttl::Clear);
                    (hset, vec![b"hset", b"str", f1, v1])
                }
                _ => {
                    // Some keys expire mid-run so that lazy expiry and
                    // writes to expired keys are part of the mix.
                    let at = if next(2) == 0 { 1 } else { unix_ms() + 60_000 };
                    db.set_expire(key, at);
                    (hlen, vec![b"hlen", key])
                }
            };
            let reply = run(&mut db, handler, &parts);
            if check_step(&db, &reply, kind == WRONG_TYPE_KIND, &(step, &parts)) {
                succeeded[kind] += 1;
            }
        }
        // Guards against a mix that only ever hits errors or missing keys.
        let starved = succeeded
            .iter()
            .enumerate()
            .any(|(k, &n)| k != WRONG_TYPE_KIND && n < 100);
        assert!(!starved, "{succeeded:?}");
    }
}
