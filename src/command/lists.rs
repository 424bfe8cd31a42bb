//! List commands.
//!
//! A list is a deque of packed chunks (`store::agg::List`, Redis'
//! quicklist). Writes go through the store's
//! mutation guard (`Db::entry_mut` and its `ListMut` view), which keeps the
//! memory accounting, WATCH and the removal of an emptied list in one place.

use super::{Args, wrong_arity};
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::guard::ListMut;
use crate::store::{Db, List, Value};

/// Redis bounds some signed arguments to `-LONG_MAX..=LONG_MAX` so that
/// negating them cannot overflow.
const NOT_NEGATABLE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

/// Reads a list: Ok(None) when missing, Err when another type.
fn read_list<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a List>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// A signed argument that Redis parses as a range of `-LONG_MAX..=LONG_MAX`.
fn negatable_int(args: &Args, i: usize) -> Result<i64, &'static str> {
    match args.int(i)? {
        i64::MIN => Err(NOT_NEGATABLE),
        n => Ok(n),
    }
}

/// Position of a LINDEX/LSET index (negative counts from the tail).
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// Pushes every element at one end, in argument order.
fn push_each<'e>(list: &mut ListMut, elems: impl Iterator<Item = &'e [u8]>, front: bool) {
    for e in elems {
        if front {
            list.push_front(e);
        } else {
            list.push_back(e);
        }
    }
}

fn push(db: &mut Db, args: &Args, out: &mut Vec<u8>, front: bool, only_existing: bool) {
    let key = args.get(1);
    let mut guard = if only_existing {
        match db.entry_mut(key) {
            Some(guard) => guard,
            None => return out.int(0),
        }
    } else {
        db.entry_or_insert_with(key, || Value::List(Box::default()))
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    push_each(&mut list, args.iter_from(2), front);
    out.int(list.len() as i64);
}

pub fn lpush(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    push(db, args, out, true, false);
}

pub fn rpush(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    push(db, args, out, false, false);
}

pub fn lpushx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    push(db, args, out, true, true);
}

pub fn rpushx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    push(db, args, out, false, true);
}

fn pop(db: &mut Db, args: &Args, out: &mut Vec<u8>, front: bool) {
    if args.len() > 3 {
        return wrong_arity(out, if front { "lpop" } else { "rpop" });
    }
    let key = args.get(1);
    // Redis reports any unusable count, even a non-number, as not positive.
    let count = match args.len() {
        3 => match parse_i64(args.get(2)) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return out.error(err::OUT_OF_RANGE_POSITIVE),
        },
        _ => None,
    };
    let Some(mut guard) = db.entry_mut(key) else {
        return match count {
            Some(_) => out.nil_array(),
            None => out.nil(),
        };
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    let len = list.len();
    // Each element goes straight from the list into the reply.
    let mut take = |out: &mut Vec<u8>| {
        if front {
            list.pop_front_with(|e| out.bulk(e))
        } else {
            list.pop_back_with(|e| out.bulk(e))
        }
    };
    match count {
        None => {
            if take(out).is_none() {
                out.nil();
            }
        }
        Some(n) => {
            let n = n.min(len);
            out.array(n);
            for _ in 0..n {
                take(out).expect("n is at most the length");
            }
        }
    }
}

pub fn lpop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    pop(db, args, out, true);
}

pub fn rpop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    pop(db, args, out, false);
}

pub fn llen(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_list(db, args.get(1)) {
        Ok(list) => out.int(list.map_or(0, |l| l.len()) as i64),
        Err(e) => out.error(e),
    }
}

pub fn lrange(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (start, end) = match (args.int(2), args.int(3)) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return out.error(err::NOT_INTEGER),
    };
    let list = match read_list(db, args.get(1)) {
        Ok(Some(list)) => list,
        Ok(None) => return out.array(0),
        Err(e) => return out.error(e),
    };
    match super::strings::clamp_range(start, end, list.len()) {
        Some((s, e)) => {
            out.array(e - s + 1);
            for elem in list.iter_from(s).take(e - s + 1) {
                out.bulk(elem);
            }
        }
        None => out.array(0),
    }
}

/// Redis looks the key up before it parses the index, so a missing key
/// answers nil even for a malformed index.
pub fn lindex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let list = match read_list(db, args.get(1)) {
        Ok(Some(list)) => list,
        Ok(None) => return out.nil(),
        Err(e) => return out.error(e),
    };
    let index = match args.int(2) {
        Ok(i) => i,
        Err(e) => return out.error(e),
    };
    match resolve_index(index, list.len()) {
        Some(i) => out.bulk(list.get(i).expect("resolved in range")),
        None => out.nil(),
    }
}

pub fn lset(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let value = args.get(3);
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.error(err::NO_SUCH_KEY);
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    let index = match args.int(2) {
        Ok(i) => i,
        Err(e) => return out.error(e),
    };
    let Some(i) = resolve_index(index, list.len()) else {
        return out.error(err::INDEX_OUT_OF_RANGE);
    };
    list.set(i, value);
    out.ok();
}

pub fn lrem(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let elem = args.get(3);
    let count = match negatable_int(args, 2) {
        Ok(n) => n,
        Err(e) => return out.error(e),
    };
    let Some(mut guard) = db.entry_mut(key) else {
        return out.int(0);
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    // `retain` walks from the head; removing the last `limit` matches means
    // keeping the ones before them.
    let mut skip = if count < 0 {
        list.iter()
            .filter(|e| *e == elem)
            .count()
            .saturating_sub(limit)
    } else {
        0
    };
    let mut removed = 0;
    list.retain(|e| {
        if *e != *elem || removed == limit {
            return true;
        }
        if skip > 0 {
            skip -= 1;
            return true;
        }
        removed += 1;
        false
    });
    out.int(removed as i64);
}

pub fn ltrim(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let (start, end) = match (args.int(2), args.int(3)) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return out.error(err::NOT_INTEGER),
    };
    let Some(mut guard) = db.entry_mut(key) else {
        return out.ok();
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    let (keep_from, keep_to) = match super::strings::clamp_range(start, end, list.len()) {
        Some((s, e)) => (s, e + 1),
        None => (0, 0),
    };
    list.keep_range(keep_from, keep_to);
    out.ok();
}

pub fn linsert(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let after = if args.is(2, "AFTER") {
        true
    } else if args.is(2, "BEFORE") {
        false
    } else {
        return out.error(err::SYNTAX);
    };
    let (pivot, elem) = (args.get(3), args.get(4));
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.int(0);
    };
    let Ok(mut list) = guard.list() else {
        return out.error(err::WRONGTYPE);
    };
    let Some(at) = list.iter().position(|e| e == pivot) else {
        return out.int(-1);
    };
    list.insert(at + usize::from(after), elem);
    out.int(list.len() as i64);
}

/// Positions of `elem` in scan order, after skipping `skip` matches.
fn positions<'a>(
    scan: impl Iterator<Item = (usize, &'a [u8])>,
    elem: &[u8],
    skip: usize,
    take: usize,
) -> Vec<usize> {
    scan.filter(|(_, e)| *e == elem)
        .skip(skip)
        .take(take)
        .map(|(i, _)| i)
        .collect()
}

pub fn lpos(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let elem = args.get(2);
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return out.error(err::SYNTAX);
        }
        // COUNT and MAXLEN report a malformed number with their own message.
        let non_negative = |msg| match parse_i64(args.get(i + 1)) {
            Some(n) if n >= 0 => Ok(n as usize),
            _ => Err(msg),
        };
        let parsed = if args.is(i, "RANK") {
            negatable_int(args, i + 1).and_then(|r| match r {
                0 => Err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                          or use negative to start from the end of the list"),
                r => {
                    rank = r;
                    Ok(())
                }
            })
        } else if args.is(i, "COUNT") {
            non_negative("ERR COUNT can't be negative").map(|n| count = Some(n))
        } else if args.is(i, "MAXLEN") {
            non_negative("ERR MAXLEN can't be negative").map(|n| maxlen = n)
        } else {
            Err(err::SYNTAX)
        };
        if let Err(e) = parsed {
            return out.error(e);
        }
        i += 2;
    }
    let list = match read_list(db, args.get(1)) {
        Ok(Some(list)) => list,
        Ok(None) if count.is_some() => return out.array(0),
        Ok(None) => return out.nil(),
        Err(e) => return out.error(e),
    };
    let scan_len = if maxlen == 0 {
        list.len()
    } else {
        maxlen.min(list.len())
    };
    let skip = (rank.unsigned_abs() - 1) as usize;
    // COUNT 0 asks for every match; without COUNT only the first is wanted.
    let take = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    let found = if rank > 0 {
        positions(list.iter().take(scan_len).enumerate(), elem, skip, take)
    } else {
        let tail = list.iter_rev().take(scan_len).enumerate();
        positions(tail.map(|(i, e)| (list.len() - 1 - i, e)), elem, skip, take)
    };
    match count {
        Some(_) => {
            out.array(found.len());
            for pos in found {
                out.int(pos as i64);
            }
        }
        None => match found.first() {
            Some(&pos) => out.int(pos as i64),
            None => out.nil(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Handler;
    use crate::command::testing::{check_step, db, run, text};
    use crate::store::{Ttl, unix_ms};

    #[test]
    fn push_pop_and_ranges_reply_as_redis() {
        let mut db = db();
        assert_eq!(
            text(run(&mut db, lpush, &[b"lpush", b"l", b"a", b"b", b"c"])),
            ":3\r\n"
        );
        assert_eq!(text(run(&mut db, rpush, &[b"rpush", b"l", b"d"])), ":4\r\n");
        assert_eq!(
            text(run(&mut db, lrange, &[b"lrange", b"l", b"0", b"-1"])),
            "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nd\r\n"
        );
        assert_eq!(text(run(&mut db, lpop, &[b"lpop", b"l", b"0"])), "*0\r\n");
        assert_eq!(
            text(run(&mut db, rpop, &[b"rpop", b"l", b"2"])),
            "*2\r\n$1\r\nd\r\n$1\r\na\r\n"
        );
        assert_eq!(
            text(run(&mut db, lpop, &[b"lpop", b"l", b"-1"])),
            format!("-{}\r\n", err::OUT_OF_RANGE_POSITIVE)
        );
        assert_eq!(
            text(run(&mut db, lpop, &[b"lpop", b"l", b"x"])),
            format!("-{}\r\n", err::OUT_OF_RANGE_POSITIVE)
        );
        assert_eq!(
            text(run(&mut db, lpop, &[b"lpop", b"l", b"1", b"2"])),
            "-ERR wrong number of arguments for 'lpop' command\r\n"
        );
        assert_eq!(
            text(run(&mut db, lpop, &[b"lpop", b"l", b"5"])),
            "*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
        );
        assert!(db.is_empty(), "an emptied list is deleted");
        assert_eq!(text(run(&mut db, lpop, &[b"lpop", b"l", b"5"])), "*-1\r\n");
        assert_eq!(text(run(&mut db, lpop, &[b"lpop", b"l"])), "$-1\r\n");
        assert_eq!(db.mem_used(), 0);
    }

    #[test]
    fn lrem_counts_from_either_end() {
        let mut db = db();
        let seed: &[&[u8]] = &[b"rpush", b"l", b"x", b"a", b"x", b"b", b"x", b"c", b"x"];
        run(&mut db, rpush, seed);
        assert_eq!(
            text(run(&mut db, lrem, &[b"lrem", b"l", b"-2", b"x"])),
            ":2\r\n"
        );
        assert_eq!(
            text(run(&mut db, lrange, &[b"lrange", b"l", b"0", b"-1"])),
            "*5\r\n$1\r\nx\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(
            text(run(&mut db, lrem, &[b"lrem", b"l", b"1", b"x"])),
            ":1\r\n"
        );
        assert_eq!(
            text(run(&mut db, lrem, &[b"lrem", b"l", b"0", b"x"])),
            ":1\r\n"
        );
        assert_eq!(
            text(run(&mut db, lrange, &[b"lrange", b"l", b"0", b"-1"])),
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    #[test]
    fn lpos_follows_rank_count_and_maxlen() {
        let mut db = db();
        run(
            &mut db,
            rpush,
            &[
                b"rpush", b"l", b"a", b"b", b"c", b"1", b"2", b"3", b"c", b"c",
            ],
        );
        let lpos_of = |db: &mut Db, extra: &[&[u8]]| {
            let mut parts: Vec<&[u8]> = vec![b"lpos", b"l", b"c"];
            parts.extend_from_slice(extra);
            text(run(db, lpos, &parts))
        };
        assert_eq!(lpos_of(&mut db, &[]), ":2\r\n");
        assert_eq!(lpos_of(&mut db, &[b"RANK", b"2"]), ":6\r\n");
        assert_eq!(lpos_of(&mut db, &[b"RANK", b"-1"]), ":7\r\n");
        assert_eq!(lpos_of(&mut db, &[b"COUNT", b"2"]), "*2\r\n:2\r\n:6\r\n");
        assert_eq!(
            lpos_of(&mut db, &[b"COUNT", b"0", b"RANK", b"-2"]),
            "*2\r\n:6\r\n:2\r\n"
        );
        assert_eq!(
            lpos_of(&mut db, &[b"COUNT", b"0", b"MAXLEN", b"7"]),
            "*2\r\n:2\r\n:6\r\n"
        );
        assert_eq!(
            lpos_of(&mut db, &[b"RANK", b"-1", b"MAXLEN", b"1"]),
            ":7\r\n"
        );
        assert_eq!(lpos_of(&mut db, &[b"RANK", b"4"]), "$-1\r\n");
        assert_eq!(lpos_of(&mut db, &[b"RANK", b"4", b"COUNT", b"1"]), "*0\r\n");
        assert!(lpos_of(&mut db, &[b"RANK", b"0"]).starts_with("-ERR RANK can't be zero"));
        assert_eq!(
            lpos_of(&mut db, &[b"COUNT", b"-1"]),
            "-ERR COUNT can't be negative\r\n"
        );
        assert_eq!(
            lpos_of(&mut db, &[b"MAXLEN", b"x"]),
            "-ERR MAXLEN can't be negative\r\n"
        );
        assert_eq!(lpos_of(&mut db, &[b"RANK"]), "-ERR syntax error\r\n");
        assert_eq!(
            lpos_of(&mut db, &[b"RANK", b"-9223372036854775808"]),
            format!("-{NOT_NEGATABLE}\r\n")
        );
    }

    /// Runs a random mix of every list command (plus strings and TTLs to
    /// exercise WRONGTYPE and expiry) and checks that the incremental
    /// accounting matches a full recount after each one.
    #[test]
    fn memory_accounting_stays_exact_under_random_commands() {
        let mut db = db();
        let mut next = crate::command::testing::rng(0x9E37_79B9_7F4A_7C15u64);
        let elems: [&[u8]; 6] = [b"", b"a", b"bb", b"a", b"ccccccccccccccccccccc", b"dd"];
        let keys: [&[u8]; 4] = [b"k0", b"k1", b"k2", b"str"];
        let ints = ["-100", "-3", "-1", "0", "1", "2", "5", "100", "x"];
        const WRONG_TYPE_KIND: usize = 14;
        let mut succeeded = [0usize; 16];
        for step in 0..20_000 {
            let key = keys[next(keys.len() as u64) as usize];
            let e1 = elems[next(elems.len() as u64) as usize];
            let e2 = elems[next(elems.len() as u64) as usize];
            let n1 = ints[next(ints.len() as u64) as usize].as_bytes();
            let n2 = ints[next(ints.len() as u64) as usize].as_bytes();
            let kind = next(16) as usize;
            let (handler, parts): (Handler, Vec<&[u8]>) = match kind {
                0 => (lpush, vec![b"lpush", key, e1, e2]),
                1 => (rpush, vec![b"rpush", key, e1]),
                2 => (lpushx, vec![b"lpushx", key, e1, e2]),
                3 => (rpushx, vec![b"rpushx", key, e2]),
                4 => (lpop, vec![b"lpop", key]),
                5 => (rpop, vec![b"rpop", key, n1]),
                6 => (lset, vec![b"lset", key, n1, e1]),
                7 => (lrem, vec![b"lrem", key, n1, e1]),
                8 => (ltrim, vec![b"ltrim", key, n1, n2]),
                9 => (
                    linsert,
                    vec![
                        b"linsert",
                        key,
                        if next(2) == 0 {
                            &b"BEFORE"[..]
                        } else {
                            b"after"
                        },
                        e1,
                        e2,
                    ],
                ),
                10 => (lrange, vec![b"lrange", key, n1, n2]),
                11 => (lindex, vec![b"lindex", key, n1]),
                12 => (lpos, vec![b"lpos", key, e1, b"RANK", n1, b"COUNT", n2]),
                13 => (llen, vec![b"llen", key]),
                WRONG_TYPE_KIND => {
                    db.set(b"str", Value::Str(e1.to_vec().into()), Ttl::Clear);
                    (lpush, vec![b"lpush", b"str", e1])
                }
                _ => {
                    // Some keys expire mid-run so that lazy expiry and
                    // writes to expired keys are part of the mix.
                    let at = if next(2) == 0 { 1 } else { unix_ms() + 60_000 };
                    db.set_expire(key, at);
                    (llen, vec![b"llen", key])
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
