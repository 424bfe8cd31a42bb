//! HyperLogLog commands: PFADD, PFCOUNT and PFMERGE, as Redis 7.0.
//!
//! A sketch is a plain string in Redis' byte layout ([`crate::store::hll`]
//! owns the algorithm): GET returns it, SET of bytes copied from Redis
//! makes a sketch that counts the same. PFADD and the cache update of a
//! one-key PFCOUNT change the string in place through the mutation guard
//! (no copy of the sketch, exact accounting, WATCH bumped as Redis'
//! `signalModifiedKey` does). A sparse sketch turns dense past
//! `hll-sparse-max-bytes` (the shard's `Limits`).
//!
//! PFCOUNT of several keys and PFMERGE may name keys on several shards:
//! each shard folds its own sketches into 16384 one-byte registers (the
//! maximum per register, 16 KB shipped back), and PFMERGE then writes the
//! union into its destination, all in one [`Atomic`] step. Errors are the
//! ones of the first offending key in argument order, as in Redis.

use super::keys::SHARD_GONE;
use super::{Args, parts_by_owner};
use crate::coord::{Atomic, Shard};
use crate::protocol::reply::{Resp, err};
use crate::store::hll::{self, REGISTERS};
use crate::store::{Db, StrEncoding, StrValue, Ttl, Value};

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// A sketch's bytes under `key`: Ok(None) when missing, Err the reply for
/// another type or a string that is not a sketch.
fn read_hll<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a [u8]>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) if hll::is_valid(s) => Ok(Some(s)),
        Some(Value::Str(_)) => Err(NOT_HLL),
        Some(_) => Err(err::WRONGTYPE),
    }
}

fn stored(v: Vec<u8>) -> Value {
    Value::Str(StrValue::from_vec(v, StrEncoding::Raw))
}

pub fn pfadd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    let max_bytes = db.limits.hll_sparse_max_bytes;
    let Some(mut guard) = db.entry_mut(key) else {
        let mut v = hll::new_sparse();
        for ele in args.iter_from(2) {
            // A fresh sparse sketch is never corrupt.
            let _ = hll::add(&mut v, ele, max_bytes);
        }
        hll::invalidate(&mut v);
        db.set(key, stored(v), Ttl::Clear);
        return out.int(1);
    };
    let Ok(mut s) = guard.string() else {
        return out.error(err::WRONGTYPE);
    };
    if !hll::is_valid(&s) {
        return out.error(NOT_HLL);
    }
    let result = s.edit_reporting(|v| {
        let mut updated = false;
        for ele in args.iter_from(2) {
            match hll::add(v, ele, max_bytes) {
                Ok(u) => updated |= u,
                // An error reply signals nothing, as in Redis, even when
                // registers before the corrupt part were set.
                Err(e) => return (Err(e), false),
            }
        }
        if updated {
            hll::invalidate(v);
        }
        (Ok(updated), updated)
    });
    match result {
        Ok(updated) => out.int(updated as i64),
        Err(hll::Corrupt) => out.error(CORRUPT),
    }
}

/// PFCOUNT of one key: the cached cardinality, or a fresh count that is
/// then cached in the sketch (a write, as in Redis).
fn pfcount_one(db: &mut Db, key: &[u8], out: &mut Vec<u8>) {
    let card = match read_hll(db, key) {
        Ok(None) => return out.int(0),
        Ok(Some(v)) => match hll::cached(v) {
            Some(card) => return out.int(card as i64),
            None => match hll::count(v) {
                Ok(card) => card,
                Err(_) => return out.error(CORRUPT),
            },
        },
        Err(e) => return out.error(e),
    };
    if let Some(mut guard) = db.entry_mut(key)
        && let Ok(mut s) = guard.string()
    {
        s.edit(|v| hll::set_cached(v, card));
    }
    out.int(card as i64);
}

/// Folds the sketches of `keys` into `max`; Err is (the key's position
/// among `keys`, the reply).
fn fold(
    db: &mut Db,
    keys: impl Iterator<Item = impl AsRef<[u8]>>,
    max: &mut [u8],
) -> Result<bool, (usize, &'static str)> {
    let mut dense = false;
    for (at, key) in keys.enumerate() {
        match read_hll(db, key.as_ref()) {
            Ok(None) => {}
            Ok(Some(v)) => {
                dense |= hll::is_dense(v);
                hll::merge_into(max, v).map_err(|_| (at, CORRUPT))?;
            }
            Err(e) => return Err((at, e)),
        }
    }
    Ok(dense)
}

/// PFCOUNT when every key lives on one shard.
pub fn pfcount(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if args.len() == 2 {
        return pfcount_one(db, args.get(1), out);
    }
    let mut max = vec![0u8; REGISTERS];
    match fold(db, args.iter_from(1), &mut max) {
        Ok(_) => out.int(hll::count_raw(&max) as i64),
        Err((_, e)) => out.error(e),
    }
}

/// Writes the registers `max` into the sketch at `dst` (created when
/// missing), dense when `dense` (Redis' PFMERGE target rule).
fn merge_into_key(db: &mut Db, dst: &[u8], max: &[u8], dense: bool) -> Result<(), hll::Corrupt> {
    let max_bytes = db.limits.hll_sparse_max_bytes;
    let write = |v: &mut Vec<u8>| {
        if dense {
            hll::to_dense(v)?;
        }
        for (i, &m) in max.iter().enumerate() {
            if m != 0 {
                // As Redis, a corrupt destination found midway is ignored.
                let _ = hll::set_register(v, i, m, max_bytes);
            }
        }
        hll::invalidate(v);
        Ok(())
    };
    if let Some(mut guard) = db.entry_mut(dst) {
        return match guard.string() {
            Ok(mut s) => s.edit(write),
            // The sources' checks covered `dst`: it is a sketch.
            Err(_) => Err(hll::Corrupt),
        };
    }
    let mut v = hll::new_sparse();
    let r = write(&mut v);
    db.set(dst, stored(v), Ttl::Clear);
    r
}

/// PFMERGE when every key lives on one shard.
pub fn pfmerge(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let mut max = vec![0u8; REGISTERS];
    let dense = match fold(db, args.iter_from(1), &mut max) {
        Ok(dense) => dense,
        Err((_, e)) => return out.error(e),
    };
    match merge_into_key(db, args.get(1), &max, dense) {
        Ok(()) => out.ok(),
        Err(_) => out.error(CORRUPT),
    }
}

/// PFDEBUG GETREG | DECODE | ENCODING | TODENSE key: Redis' debugging
/// views of a sketch (GETREG and TODENSE convert it to dense, as Redis).
pub fn pfdebug(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let sub = args.get(1);
    let Some(mut guard) = db.entry_mut(args.get(2)) else {
        return out.error("ERR The specified key does not exist");
    };
    let Ok(mut s) = guard.string() else {
        return out.error(err::WRONGTYPE);
    };
    if !hll::is_valid(&s) {
        return out.error(NOT_HLL);
    }
    let getreg = sub.eq_ignore_ascii_case(b"GETREG");
    if getreg || sub.eq_ignore_ascii_case(b"TODENSE") {
        let sparse = !hll::is_dense(&s);
        // Redis' PFDEBUG converts without signalling a modification.
        if sparse && s.edit_reporting(|v| (hll::to_dense(v), false)).is_err() {
            return out.error(CORRUPT);
        }
        if !getreg {
            return out.int(sparse as i64);
        }
        out.array(REGISTERS);
        for i in 0..REGISTERS {
            out.int(hll::dense_register(&s, i) as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"DECODE") {
        if hll::is_dense(&s) {
            return out.error("ERR HLL encoding is not sparse");
        }
        out.bulk(hll::decode(&s).as_bytes());
    } else if sub.eq_ignore_ascii_case(b"ENCODING") {
        out.simple(if hll::is_dense(&s) { "dense" } else { "sparse" });
    } else {
        out.error(&format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        ));
    }
}

spread!(pfcount_spread => pfcount_across);
spread!(pfmerge_spread => pfmerge_across);

/// The union of the sketches named from `args[1]` on, folded on each shard
/// that owns some of them while `atomic` holds them: the registers and
/// whether any was dense, or the reply of the first bad key.
async fn fold_across(
    shard: &Shard,
    atomic: &mut Atomic<'_>,
    args: &Args<'_>,
) -> Result<(Vec<u8>, bool), &'static str> {
    let mut max = vec![0u8; REGISTERS];
    let mut dense = false;
    // The first error in argument order wins, as Redis checks in order.
    let mut first_err: Option<(usize, &'static str)> = None;
    for part in parts_by_owner(shard, args, 1, 1) {
        let keys = part.args;
        let folded = atomic
            .on(part.shard, move |s: &Shard| {
                let mut max = vec![0u8; REGISTERS];
                fold(&mut s.db(), keys.iter(), &mut max).map(|dense| (max, dense))
            })
            .await;
        match folded {
            Some(Ok((theirs, d))) => {
                dense |= d;
                for (m, t) in max.iter_mut().zip(theirs) {
                    *m = (*m).max(t);
                }
            }
            Some(Err((at, e))) => {
                let at = part.groups[at];
                if first_err.is_none_or(|(first, _)| at < first) {
                    first_err = Some((at, e));
                }
            }
            None => return Err(SHARD_GONE),
        }
    }
    match first_err {
        Some((_, e)) => Err(e),
        None => Ok((max, dense)),
    }
}

async fn pfcount_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut atomic = Atomic::new(shard, tx, args.iter_from(1));
    match fold_across(shard, &mut atomic, args).await {
        Ok((max, _)) => out.int(hll::count_raw(&max) as i64),
        Err(e) => out.error(e),
    }
}

async fn pfmerge_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut atomic = Atomic::new(shard, tx, args.iter_from(1));
    let (max, dense) = match fold_across(shard, &mut atomic, args).await {
        Ok(folded) => folded,
        Err(e) => return out.error(e),
    };
    let dst = args.get(1).to_vec();
    let home = shard.owner(&dst);
    match atomic
        .on(home, move |s: &Shard| {
            merge_into_key(&mut s.db(), &dst, &max, dense)
        })
        .await
    {
        Some(Ok(())) => out.ok(),
        Some(Err(_)) => out.error(CORRUPT),
        None => out.error(SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{check_step, db, rng, run};

    #[test]
    fn accounting_stays_exact_through_sparse_and_dense() {
        let mut db = db();
        db.limits.hll_sparse_max_bytes = 300;
        let mut next = rng(7);
        for i in 0..3000 {
            let key = format!("h{}", next(3));
            let ele = format!("e{}", next(100_000));
            let argv: Vec<&[u8]> = match next(5) {
                0 => vec![b"pfcount", key.as_bytes()],
                1 => vec![b"pfmerge", key.as_bytes(), b"h0", b"h1"],
                _ => vec![b"pfadd", key.as_bytes(), ele.as_bytes()],
            };
            let handler = match argv[0] {
                b"pfcount" => pfcount,
                b"pfmerge" => pfmerge,
                _ => pfadd,
            };
            let reply = run(&mut db, handler, &argv);
            assert!(check_step(&db, &reply, false, &(i, &argv)), "{i}");
        }
    }
}
