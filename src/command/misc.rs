//! Issue 13's miscellany of Redis 7.0 commands applications call: HRANDFIELD,
//! LCS (its two keys possibly on different shards), and SWAPDB / MOVE,
//! which Kora, a server with one database (`databases 1`), answers as such
//! a Redis does. CLIENT REPLY lives with CLIENT (src/command/client.rs and
//! the connection loop); COMMAND's data with server.rs (`command_data`).
//!
//! Replies and error texts are redis-server 7.0.15's, byte for byte,
//! including the order of its checks (the argument checks of HRANDFIELD
//! before the key lookup; LCS's type check before its options).

use super::Args;
use super::conn::{ClientState, Flow};
use super::keys::SHARD_GONE;
use crate::coord::{Atomic, Shard};
use crate::protocol::reply::{Resp, err};
use crate::store::Picker;
use crate::store::{Db, Hash, Value};

const DB_OUT_OF_RANGE: &str = "ERR DB index is out of range";
const SAME_OBJECT: &str = "ERR source and destination objects are the same";

// ---- SWAPDB / MOVE: one database ----

/// SWAPDB index1 index2: only 0 exists, and swapping it with itself is a
/// no-op.
pub fn swapdb(shard: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    if shard.cluster_enabled() {
        out.error("ERR SWAPDB is not allowed in cluster mode");
        return Flow::Continue;
    }
    let (a, b) = match (args.int(1), args.int(2)) {
        (Err(_), _) => {
            out.error("ERR invalid first DB index");
            return Flow::Continue;
        }
        (_, Err(_)) => {
            out.error("ERR invalid second DB index");
            return Flow::Continue;
        }
        (Ok(a), Ok(b)) => (a, b),
    };
    if a != 0 || b != 0 {
        out.error(DB_OUT_OF_RANGE);
    } else {
        out.ok();
    }
    Flow::Continue
}

/// MOVE key db: Redis checks the index before the key, so with one
/// database every call is an error (index 0 is the source itself).
pub fn move_cmd(shard: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    if shard.cluster_enabled() {
        out.error("ERR MOVE is not allowed in cluster mode");
        return Flow::Continue;
    }
    match args.int(2) {
        Err(e) => out.error(e),
        Ok(0) => out.error(SAME_OBJECT),
        Ok(_) => out.error(DB_OUT_OF_RANGE),
    }
    Flow::Continue
}

// ---- HRANDFIELD ----

fn reply_field(out: &mut Vec<u8>, (f, v): (&[u8], &[u8]), values: bool) {
    out.bulk(f);
    if values {
        out.bulk(v);
    }
}

/// `HRANDFIELD key [count [WITHVALUES]]`: one field (nil when missing), or
/// `count` distinct fields (the whole hash when count reaches its size), or
/// for a negative count |count| picks that may repeat.
pub fn hrandfield(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let mut values = false;
    let count = match args.len() {
        2 => None,
        n => {
            let count = match args.int(2) {
                Ok(i64::MIN) => {
                    return out.error(&format!(
                        "ERR value is out of range, value must between {} and {}",
                        -i64::MAX,
                        i64::MAX
                    ));
                }
                Ok(c) => c,
                Err(e) => return out.error(e),
            };
            if n > 4 || (n == 4 && !args.is(3, "WITHVALUES")) {
                return out.error(err::SYNTAX);
            }
            if n == 4 {
                values = true;
                // Twice |count| replies must fit a long, as Redis checks.
                if !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
                    return out.error("ERR value is out of range");
                }
            }
            Some(count)
        }
    };
    let mut rng = Picker::new(db);
    let hash: &Hash = match db.get(args.get(1)) {
        Some(Value::Hash(h)) => h,
        Some(_) => return out.error(err::WRONGTYPE),
        None if count.is_some() => return out.array(0),
        None => return out.nil(),
    };
    let len = hash.len();
    let per = if values { 2 } else { 1 };
    match count {
        None => out.bulk(hash.get_index(rng.below(len)).expect("in range").0),
        Some(0) => out.array(0),
        Some(n) if n < 0 => {
            let n = n.unsigned_abs() as usize;
            out.array(n * per);
            if let Hash::Pack(_) = hash {
                // A packed position costs a walk: list the pairs once.
                let pairs: Vec<_> = hash.iter().collect();
                for _ in 0..n {
                    reply_field(out, pairs[rng.below(len)], values);
                }
            } else {
                for _ in 0..n {
                    let pair = hash.get_index(rng.below(len)).expect("in range");
                    reply_field(out, pair, values);
                }
            }
        }
        Some(n) if n as usize >= len => {
            out.array(len * per);
            for pair in hash.iter() {
                reply_field(out, pair, values);
            }
        }
        Some(n) => {
            let picks = rng.distinct(len, n as usize);
            out.array(picks.len() * per);
            if let Hash::Pack(_) = hash {
                let pairs: Vec<_> = hash.iter().collect();
                for i in picks {
                    reply_field(out, pairs[i], values);
                }
            } else {
                for i in picks {
                    reply_field(out, hash.get_index(i).expect("in range"), values);
                }
            }
        }
    }
}

// ---- LCS ----

const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
const LCS_TOO_LONG: &str = "ERR String too long for LCS";
const LCS_TOO_BIG: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";

#[derive(Default)]
struct LcsOptions {
    len: bool,
    idx: bool,
    with_len: bool,
    min: u64,
}

fn lcs_options(args: &Args) -> Result<LcsOptions, &'static str> {
    let mut o = LcsOptions::default();
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "IDX") {
            o.idx = true;
        } else if args.is(i, "LEN") {
            o.len = true;
        } else if args.is(i, "WITHMATCHLEN") {
            o.with_len = true;
        } else if args.is(i, "MINMATCHLEN") && i + 1 < args.len() {
            o.min = args.int(i + 1)?.max(0) as u64;
            i += 1;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if o.idx && o.len {
        return Err("ERR If you want both the length and indexes, please just use IDX.");
    }
    Ok(o)
}

/// A key's value as LCS reads it: a missing key is the empty string. A
/// string is first only measured (`Len`) and copied (`Str`) once both
/// lengths are known to fit the table, so a pair that is refused as too
/// large costs no copy of up to 2 × 512 MB.
enum LcsInput {
    Str(Vec<u8>),
    Len(usize),
    Missing,
    Wrong,
}

impl LcsInput {
    fn len(&self) -> usize {
        match self {
            LcsInput::Str(s) => s.len(),
            LcsInput::Len(n) => *n,
            _ => 0,
        }
    }
}

/// Measures `key` without copying it.
fn lcs_measure(db: &mut Db, key: &[u8]) -> LcsInput {
    match db.get(key) {
        None => LcsInput::Missing,
        Some(Value::Str(s)) => LcsInput::Len(s.len()),
        Some(_) => LcsInput::Wrong,
    }
}

/// Copies a measured string when the pair of lengths fits the table.
fn lcs_copy_if_fits(db: &mut Db, key: &[u8], input: LcsInput, other: usize) -> LcsInput {
    match input {
        LcsInput::Len(n) if lcs_size_error(n, other).is_none() => match db.get(key) {
            Some(Value::Str(s)) => LcsInput::Str(s.to_vec()),
            _ => LcsInput::Missing,
        },
        other => other,
    }
}

/// Redis' limits on the LCS table for strings of `a` and `b` bytes.
fn lcs_size_error(a: usize, b: usize) -> Option<&'static str> {
    if a as u64 >= u32::MAX as u64 - 1 || b as u64 >= u32::MAX as u64 - 1 {
        return Some(LCS_TOO_LONG);
    }
    let cells = (a as u64 + 1) * (b as u64 + 1);
    (cells * 4 > crate::protocol::parser::MAX_BULK_LEN as u64).then_some(LCS_TOO_BIG)
}

/// Answers LCS for the two values (already read) under `args`' options.
fn lcs_reply(a: LcsInput, b: LcsInput, args: &Args, out: &mut Vec<u8>) {
    let (a, b) = match (a, b) {
        (LcsInput::Wrong, _) | (_, LcsInput::Wrong) => return out.error(LCS_NOT_STRINGS),
        // Not copied: the pair is too large (answered after the options
        // are parsed, as Redis orders its checks).
        (a @ LcsInput::Len(_), b) | (a, b @ LcsInput::Len(_)) => {
            if let Err(e) = lcs_options(args) {
                return out.error(e);
            }
            return out.error(lcs_size_error(a.len(), b.len()).unwrap_or(LCS_TOO_BIG));
        }
        (a, b) => {
            let bytes = |v: LcsInput| match v {
                LcsInput::Str(s) => s,
                _ => Vec::new(),
            };
            (bytes(a), bytes(b))
        }
    };
    let o = match lcs_options(args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    lcs_compute(&a, &b, &o, out);
}

/// Redis' dynamic programme: an (|a|+1)·(|b|+1) table of u32 prefix LCS
/// lengths, refused as Redis refuses it when larger than
/// proto-max-bulk-len, then walked back from the end to build the common
/// string and its matching runs. LEN alone needs only two rows.
fn lcs_compute(a: &[u8], b: &[u8], o: &LcsOptions, out: &mut Vec<u8>) {
    if let Some(e) = lcs_size_error(a.len(), b.len()) {
        return out.error(e);
    }
    let w = b.len() + 1;
    if o.len {
        let mut prev = vec![0u32; w];
        let mut row = vec![0u32; w];
        for &ca in a {
            std::mem::swap(&mut prev, &mut row);
            for j in 1..w {
                row[j] = if ca == b[j - 1] {
                    prev[j - 1] + 1
                } else {
                    prev[j].max(row[j - 1])
                };
            }
        }
        return out.int(row[w - 1] as i64);
    }
    let mut t = vec![0u32; (a.len() + 1) * (b.len() + 1)];
    for i in 1..=a.len() {
        for j in 1..w {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[a.len() * w + b.len()] as usize;
    let mut common = vec![0u8; total];
    let mut k = total;
    // Runs as Redis emits them, from the end of both strings backwards:
    // (a_start, a_end, b_start, b_end).
    let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
    let none = a.len();
    let (mut a0, mut a1, mut b0, mut b1) = (none, 0, 0, 0);
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[k - 1] = a[i - 1];
            if a0 == none {
                (a0, a1, b0, b1) = (i - 1, i - 1, j - 1, j - 1);
            } else if a0 == i && b0 == j {
                a0 -= 1;
                b0 -= 1;
            } else {
                emit = true;
            }
            if a0 == 0 || b0 == 0 {
                emit = true;
            }
            k -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a0 != none {
                emit = true;
            }
        }
        if emit {
            let len = (a1 - a0 + 1) as u64;
            if o.idx && (o.min == 0 || len >= o.min) {
                runs.push((a0, a1, b0, b1));
            }
            a0 = none;
        }
    }
    if !o.idx {
        return out.bulk(&common);
    }
    out.array(4);
    out.bulk(b"matches");
    out.array(runs.len());
    for (a0, a1, b0, b1) in runs {
        out.array(if o.with_len { 3 } else { 2 });
        out.array(2);
        out.int(a0 as i64);
        out.int(a1 as i64);
        out.array(2);
        out.int(b0 as i64);
        out.int(b1 as i64);
        if o.with_len {
            out.int((a1 - a0 + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
}

/// LCS with both keys on this shard.
pub fn lcs(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (ka, kb) = (args.get(1), args.get(2));
    let (a, b) = (lcs_measure(db, ka), lcs_measure(db, kb));
    let (la, lb) = (a.len(), b.len());
    let a = lcs_copy_if_fits(db, ka, a, lb);
    let b = lcs_copy_if_fits(db, kb, b, la);
    lcs_reply(a, b, args, out);
}

spread!(lcs_spread => lcs_across);

/// LCS with its keys on two shards: both values read in one atomic step,
/// then computed here, on the connection's core.
async fn lcs_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (ka, kb) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (oa, ob) = (shard.owner(&ka), shard.owner(&kb));
    let mut atomic = Atomic::new(shard, tx, [&ka[..], &kb[..]]);
    // Measure a, then read b if the pair fits, then copy a if it does:
    // the keys stay held, so the lengths cannot change in between.
    let key = ka.clone();
    let Some(a) = atomic
        .on(oa, move |s: &Shard| lcs_measure(&mut s.db(), &key))
        .await
    else {
        return out.error(SHARD_GONE);
    };
    let (key, la) = (kb.clone(), a.len());
    let Some(b) = atomic
        .on(ob, move |s: &Shard| {
            let mut db = s.db();
            let b = lcs_measure(&mut db, &key);
            lcs_copy_if_fits(&mut db, &key, b, la)
        })
        .await
    else {
        return out.error(SHARD_GONE);
    };
    let a = match (a, &b) {
        (a @ LcsInput::Len(_), LcsInput::Str(_) | LcsInput::Missing) => {
            let (key, lb) = (ka.clone(), b.len());
            match atomic
                .on(oa, move |s: &Shard| {
                    lcs_copy_if_fits(&mut s.db(), &key, a, lb)
                })
                .await
            {
                Some(a) => a,
                None => return out.error(SHARD_GONE),
            }
        }
        (a, _) => a,
    };
    drop(atomic);
    lcs_reply(a, b, args, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{db, run, text};

    fn r(db: &mut Db, h: crate::command::Handler, argv: &[&str]) -> String {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        text(run(db, h, &argv))
    }

    #[test]
    fn lcs_matches_redis_examples() {
        let mut db = db();
        r(
            &mut db,
            crate::command::strings::set,
            &["set", "key1", "ohmytext"],
        );
        r(
            &mut db,
            crate::command::strings::set,
            &["set", "key2", "mynewtext"],
        );
        assert_eq!(
            r(&mut db, lcs, &["lcs", "key1", "key2"]),
            "$6\r\nmytext\r\n"
        );
        assert_eq!(r(&mut db, lcs, &["lcs", "key1", "key2", "LEN"]), ":6\r\n");
        assert_eq!(
            r(&mut db, lcs, &["lcs", "key1", "key2", "IDX"]),
            "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
             *2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(
            r(
                &mut db,
                lcs,
                &[
                    "lcs",
                    "key1",
                    "key2",
                    "IDX",
                    "MINMATCHLEN",
                    "4",
                    "WITHMATCHLEN"
                ]
            ),
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
             $3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(r(&mut db, lcs, &["lcs", "key1", "nokey"]), "$0\r\n\r\n");
        assert_eq!(
            r(&mut db, lcs, &["lcs", "key1", "key2", "LEN", "IDX"]),
            "-ERR If you want both the length and indexes, please just use IDX.\r\n"
        );
        assert_eq!(
            r(&mut db, lcs, &["lcs", "key1", "key2", "MINMATCHLEN"]),
            "-ERR syntax error\r\n"
        );
    }

    #[test]
    fn lcs_len_agrees_with_the_table() {
        let mut next = crate::command::testing::rng(13);
        for _ in 0..200 {
            let a: Vec<u8> = (0..next(30)).map(|_| b'a' + next(4) as u8).collect();
            let b: Vec<u8> = (0..next(30)).map(|_| b'a' + next(4) as u8).collect();
            let mut full = Vec::new();
            lcs_compute(&a, &b, &LcsOptions::default(), &mut full);
            let mut len = Vec::new();
            let o = LcsOptions {
                len: true,
                ..Default::default()
            };
            lcs_compute(&a, &b, &o, &mut len);
            let common_len = text(full).split("\r\n").next().unwrap()[1..].to_string();
            assert_eq!(text(len), format!(":{common_len}\r\n"), "{a:?} {b:?}");
        }
    }

    #[test]
    fn hrandfield_counts() {
        let mut db = db();
        assert_eq!(r(&mut db, hrandfield, &["hrandfield", "h"]), "$-1\r\n");
        assert_eq!(r(&mut db, hrandfield, &["hrandfield", "h", "3"]), "*0\r\n");
        r(
            &mut db,
            crate::command::hashes::hset,
            &["hset", "h", "a", "1", "b", "2", "c", "3"],
        );
        assert_eq!(
            r(&mut db, hrandfield, &["hrandfield", "h", "5", "withvalues"]),
            "*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n"
        );
        assert!(r(&mut db, hrandfield, &["hrandfield", "h", "-7"]).starts_with("*7\r\n"));
        let two = r(&mut db, hrandfield, &["hrandfield", "h", "2"]);
        let fields: Vec<&str> = two.split("\r\n").skip(2).step_by(2).take(2).collect();
        assert_ne!(fields[0], fields[1], "distinct: {two}");
        assert_eq!(
            r(&mut db, hrandfield, &["hrandfield", "h", "1", "foo"]),
            "-ERR syntax error\r\n"
        );
    }
}
