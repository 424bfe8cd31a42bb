//! Set commands, and the cross-shard driver of SINTER/SUNION/SDIFF(STORE).
//!
//! The cross-shard driver is coordination code living here until the
//! `coord` module takes it.

use super::{Args, ScanExtra, ScanOptions, parse_cursor, parse_scan_options};
use crate::coord::Atomic;
use crate::coord::Shard;
use crate::protocol::reply::{Resp, err};
use crate::store::Picker;
use crate::store::glob::glob_match;
use crate::store::{Db, Key, Set, SetValue, Ttl, Value, WrongType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Reply when a shard did not answer a cross-shard step (it is shutting
/// down); anything else would pass a partial result off as the real one.
use super::keys::SHARD_GONE;

/// Read access: counts a keyspace hit or miss. Ok(None) when missing.
fn read_set<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a Set>, WrongType> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(WrongType),
    }
}

fn reply_members<M: AsRef<[u8]>>(out: &mut Vec<u8>, members: impl ExactSizeIterator<Item = M>) {
    out.array(members.len());
    for m in members {
        out.bulk(m.as_ref());
    }
}

pub fn sadd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let mut guard = db.entry_or_insert_with(args.get(1), || Value::Set(Box::default()));
    let Ok(mut set) = guard.set() else {
        return out.error(err::WRONGTYPE);
    };
    let added = args.iter_from(2).filter(|m| set.insert(m)).count();
    out.int(added as i64);
}

pub fn srem(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.int(0);
    };
    let Ok(mut set) = guard.set() else {
        return out.error(err::WRONGTYPE);
    };
    // `remove` is a swap_remove: O(1), but it moves the last member into
    // the hole, where an SSCAN in progress may miss it: the same trade-off
    // SCAN makes for keys.
    let removed = args.iter_from(2).filter(|m| set.remove(m)).count();
    out.int(removed as i64);
}

pub fn smembers(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_set(db, args.get(1)) {
        Ok(Some(set)) => reply_members(out, set.iter()),
        Ok(None) => out.array(0),
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

pub fn sismember(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_set(db, args.get(1)) {
        Ok(set) => out.int(set.is_some_and(|s| s.contains(args.get(2))) as i64),
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

pub fn smismember(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_set(db, args.get(1)) {
        Ok(set) => {
            out.array(args.len() - 2);
            for m in args.iter_from(2) {
                out.int(set.is_some_and(|s| s.contains(m)) as i64);
            }
        }
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

pub fn scard(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_set(db, args.get(1)) {
        Ok(set) => out.int(set.map_or(0, |s| s.len()) as i64),
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

pub fn spop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    // As Redis: the count is validated before the key is looked at.
    let count = match args.len() {
        2 => None,
        3 => match args.int(2) {
            Ok(n) if n >= 0 => Some(n as usize),
            Ok(_) => return out.error(err::OUT_OF_RANGE_POSITIVE),
            Err(e) => return out.error(e),
        },
        _ => return out.error(err::SYNTAX),
    };
    let mut rng = Picker::new(db);
    let missing = |out: &mut Vec<u8>| match count {
        Some(_) => out.array(0),
        None => out.nil(),
    };
    let Some(mut guard) = db.entry_mut(key) else {
        return missing(out);
    };
    let Ok(mut set) = guard.set() else {
        return out.error(err::WRONGTYPE);
    };
    if set.is_empty() {
        return missing(out);
    }
    match count {
        None => {
            let i = rng.below(set.len());
            set.remove_index_with(i, |m| out.bulk(m));
        }
        Some(n) if n >= set.len() => {
            // Everything goes: the whole value is handed over and the
            // emptied key removed when the guard drops.
            let all = set.take_all();
            reply_members(out, all.iter());
        }
        Some(n) => {
            out.array(n);
            for _ in 0..n {
                let i = rng.below(set.len());
                set.remove_index_with(i, |m| out.bulk(m));
            }
        }
    }
}

pub fn srandmember(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    // Positive: distinct members; negative: |count| picks that may repeat.
    let count = match args.len() {
        2 => None,
        3 => match args.int(2) {
            // Its absolute value would not fit, so Redis bounds the range.
            Ok(i64::MIN) => {
                return out.error(&format!(
                    "ERR value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                ));
            }
            Ok(n) => Some(n),
            Err(e) => return out.error(e),
        },
        _ => return out.error(err::SYNTAX),
    };
    let mut rng = Picker::new(db);
    let set = match read_set(db, args.get(1)) {
        Ok(Some(set)) if !set.is_empty() => set,
        Ok(_) if count.is_some() => return out.array(0),
        Ok(_) => return out.nil(),
        Err(WrongType) => return out.error(err::WRONGTYPE),
    };
    let len = set.len();
    let pick = |i: usize| set.get_index(i).expect("pick in range");
    match count {
        None => out.bulk(&pick(rng.below(len))),
        Some(n) if n < 0 => {
            let n = n.unsigned_abs() as usize;
            out.array(n);
            if let Set::Pack(_) = set {
                // Positions in a pack cost a walk: look them up once.
                let members: Vec<_> = set.iter().collect();
                for _ in 0..n {
                    out.bulk(&members[rng.below(len)]);
                }
            } else {
                for _ in 0..n {
                    out.bulk(&pick(rng.below(len)));
                }
            }
        }
        Some(n) if n as usize >= len => reply_members(out, set.iter()),
        Some(n) => {
            let picks = rng.distinct(len, n as usize);
            if let Set::Pack(_) = set {
                let members: Vec<_> = set.iter().collect();
                reply_members(out, picks.iter().map(|&i| members[i]));
            } else {
                reply_members(out, picks.iter().map(|&i| pick(i)));
            }
        }
    }
}

/// SSCAN: the cursor is a position in the set's insertion order.
pub fn sscan(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let cursor = match parse_cursor(args.get(2)) {
        Ok(c) => c,
        Err(e) => return out.error(e),
    };
    // As Redis: a missing key answers an empty scan before options are read.
    let set = match read_set(db, args.get(1)) {
        Ok(Some(set)) => set,
        Ok(None) => {
            out.array(2);
            out.bulk(b"0");
            return out.array(0);
        }
        Err(WrongType) => return out.error(err::WRONGTYPE),
    };
    let ScanOptions { count, pattern, .. } = match parse_scan_options(args, 3, ScanExtra::None) {
        Ok(opts) => opts,
        Err(e) => return out.error(e),
    };
    // A packed set or intset is small: all of it at once, cursor 0 (as
    // Redis).
    let (start, end) = match set {
        Set::Table(_) => {
            let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(set.len());
            (start, start.saturating_add(count).min(set.len()))
        }
        _ => (0, set.len()),
    };
    let found: Vec<_> = set
        .iter()
        .skip(start)
        .take(end - start)
        .filter(|m| pattern.is_none_or(|p| glob_match(p, m)))
        .collect();
    let next = if end < set.len() { end } else { 0 };
    out.array(2);
    out.bulk_u64(next as u64);
    reply_members(out, found.into_iter());
}

/// Running result of SINTER/SUNION/SDIFF, fed the source sets one at a time
/// in argument order (a missing key is an empty set). Feeding one set at a
/// time lets the shard-local path borrow each set from the `Db` in turn
/// instead of copying them all; the cross-shard path feeds fetched copies.
struct Algebra {
    op: SetOp,
    /// None until the first set is fed.
    acc: Option<SetValue>,
}

impl Algebra {
    fn new(op: SetOp) -> Algebra {
        Algebra { op, acc: None }
    }

    fn feed(&mut self, set: Option<&Set>) {
        let Some(acc) = &mut self.acc else {
            self.acc = Some(set.map(Set::to_table).unwrap_or_default());
            return;
        };
        let Some(set) = set else {
            if self.op == SetOp::Inter {
                acc.clear();
            }
            return;
        };
        match self.op {
            SetOp::Union => {
                for m in set {
                    if !acc.contains(&*m) {
                        acc.insert(Key::new(&m));
                    }
                }
            }
            // Both walk the smaller side, so the cost is bounded by the
            // running result rather than by a large source set.
            SetOp::Inter if set.len() < acc.len() => {
                *acc = set
                    .iter()
                    .filter(|m| acc.contains(&**m))
                    .map(|m| Key::new(&m))
                    .collect();
            }
            SetOp::Inter => acc.retain(|m| set.contains(m)),
            SetOp::Diff if set.len() < acc.len() => {
                for m in set {
                    acc.swap_remove(&*m);
                }
            }
            SetOp::Diff => acc.retain(|m| !set.contains(m)),
        }
    }

    fn finish(self) -> SetValue {
        self.acc.unwrap_or_default()
    }
}

/// The set algebra over values already at hand.
fn compute<'a>(op: SetOp, sets: impl IntoIterator<Item = Option<&'a Set>>) -> SetValue {
    let mut algebra = Algebra::new(op);
    for set in sets {
        algebra.feed(set);
    }
    algebra.finish()
}

/// `op` over keys that all live in `db`, without copying the sources.
fn compute_local(db: &mut Db, op: SetOp, keys: &[Vec<u8>]) -> Result<SetValue, WrongType> {
    let mut algebra = Algebra::new(op);
    for key in keys {
        algebra.feed(read_set(db, key)?);
    }
    Ok(algebra.finish())
}

/// Shard side of the cross-shard path: copies of the sets under `keys`.
fn copy_sets(db: &mut Db, keys: &[Vec<u8>]) -> Result<Vec<Option<Set>>, WrongType> {
    keys.iter().map(|k| Ok(read_set(db, k)?.cloned())).collect()
}

/// The STORE half: replaces `dst` whatever it held, TTL included, and
/// returns the cardinality. An empty result deletes `dst`, as in Redis.
fn store_result(db: &mut Db, dst: &[u8], result: SetValue) -> usize {
    let len = result.len();
    if len == 0 {
        db.delete(dst);
    } else {
        let set = Set::from_table(result, &db.limits);
        db.set(dst, Value::Set(Box::new(set)), Ttl::Clear);
    }
    len
}

fn reply_result(
    out: &mut Vec<u8>,
    result: Result<SetValue, WrongType>,
    dst: Option<&[u8]>,
    db: &mut Db,
) {
    match (result, dst) {
        (Err(WrongType), _) => out.error(err::WRONGTYPE),
        (Ok(set), Some(dst)) => out.int(store_result(db, dst, set) as i64),
        (Ok(set), None) => reply_members(out, set.iter()),
    }
}

/// SINTER, SUNION, SDIFF and their STORE forms when every key lives on one
/// shard: one step there.
fn algebra_whole(db: &mut Db, args: &Args, out: &mut Vec<u8>, op: SetOp, store: bool) {
    let dst = store.then(|| args.get(1));
    let keys: Vec<Vec<u8>> = args
        .iter_from(if store { 2 } else { 1 })
        .map(<[u8]>::to_vec)
        .collect();
    let result = compute_local(db, op, &keys);
    reply_result(out, result, dst, db);
}

pub fn sinter(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Inter, false)
}

pub fn sunion(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Union, false)
}

pub fn sdiff(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Diff, false)
}

pub fn sinterstore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Inter, true)
}

pub fn sunionstore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Union, true)
}

pub fn sdiffstore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    algebra_whole(db, args, out, SetOp::Diff, true)
}

spread!(sinter_spread => sinter_across);
spread!(sunion_spread => sunion_across);
spread!(sdiff_spread => sdiff_across);
spread!(sinterstore_spread => sinterstore_across);
spread!(sunionstore_spread => sunionstore_across);
spread!(sdiffstore_spread => sdiffstore_across);

async fn sinter_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Inter, false).await
}

async fn sunion_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Union, false).await
}

async fn sdiff_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Diff, false).await
}

async fn sinterstore_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Inter, true).await
}

async fn sunionstore_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Union, true).await
}

async fn sdiffstore_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    algebra_across(shard, tx, args, out, SetOp::Diff, true).await
}

/// Copies of `keys`' sets from every shard that owns some, in the order
/// of `keys`, read while all of them are held by `atomic`. Err is the
/// reply to send instead.
pub(crate) async fn fetch_sets(
    shard: &Shard,
    atomic: &mut Atomic<'_>,
    keys: &Args<'_>,
    first: usize,
    last: usize,
) -> Result<Vec<Option<Set>>, &'static str> {
    let mut sources: Vec<Option<Set>> = vec![None; last + 1 - first];
    let picked = Args::new(keys.buf(), &keys.ranges()[..=last]);
    for part in super::parts_by_owner(shard, &picked, first, 1) {
        let wanted: Vec<Vec<u8>> = part.args.iter().map(<[u8]>::to_vec).collect();
        let fetched = atomic
            .on(part.shard, move |s: &Shard| copy_sets(&mut s.db(), &wanted))
            .await;
        match fetched {
            Some(Ok(sets)) => {
                for (at, set) in part.groups.into_iter().zip(sets) {
                    sources[at] = set;
                }
            }
            Some(Err(WrongType)) => return Err(err::WRONGTYPE),
            None => return Err(SHARD_GONE),
        }
    }
    Ok(sources)
}

/// The set commands over several shards: the sources are copied from
/// their shards and, for the STORE forms, the result is stored, while
/// every involved shard is held.
async fn algebra_across(
    shard: &Shard,
    tx: u64,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    op: SetOp,
    store: bool,
) {
    let first = if store { 2 } else { 1 };
    let dst = store.then(|| args.get(1).to_vec());
    let home = dst.as_deref().map(|d| shard.owner(d));
    let mut atomic = Atomic::new(shard, tx, args.iter_from(first).chain(dst.as_deref()));
    let sources = match fetch_sets(shard, &mut atomic, args, first, args.len() - 1).await {
        Ok(sources) => sources,
        Err(reply) => return out.error(reply),
    };
    let result = compute(op, sources.iter().map(Option::as_ref));
    let (Some(dst), Some(home)) = (dst, home) else {
        return reply_members(out, result.iter());
    };
    let stored = atomic
        .on(home, move |s: &Shard| {
            store_result(&mut s.db(), &dst, result)
        })
        .await;
    match stored {
        Some(len) => out.int(len as i64),
        None => out.error(SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{db, run};

    fn set_of(members: &[&str]) -> Set {
        Set::Table(Box::new(
            members.iter().map(|m| Key::new(m.as_bytes())).collect(),
        ))
    }

    fn sorted(set: &SetValue) -> Vec<String> {
        let mut v: Vec<String> = set
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn accounting_matches_full_recount_after_random_set_writes() {
        let mut db = db();
        let mut rng = Picker::seeded(42);
        db.set(b"str", Value::Str(b"x".to_vec().into()), Ttl::Clear);
        for i in 0..3000 {
            let key = format!("s{}", rng.below(4));
            let members: Vec<String> = (0..1 + rng.below(6))
                .map(|_| "m".repeat(1 + rng.below(30)))
                .collect();
            let mut argv: Vec<&[u8]> = vec![b"op", key.as_bytes()];
            let reply = match rng.below(6) {
                0 | 1 => {
                    argv.extend(members.iter().map(|m| m.as_bytes()));
                    run(&mut db, sadd, &argv)
                }
                2 => {
                    argv.extend(members.iter().map(|m| m.as_bytes()));
                    run(&mut db, srem, &argv)
                }
                3 => run(&mut db, spop, &argv),
                4 => {
                    let n = rng.below(5).to_string();
                    argv.push(n.as_bytes());
                    run(&mut db, spop, &argv)
                }
                _ => {
                    // A TTL must survive in-place edits and be accounted.
                    db.set_expire(key.as_bytes(), unix_ms_later());
                    Vec::new()
                }
            };
            assert!(
                !reply.starts_with(b"-"),
                "op {i}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(db.mem_used(), db.mem_recomputed(), "after op {i}");
        }
        // Writes against another type are refused and change nothing.
        let before = db.mem_used();
        assert!(run(&mut db, sadd, &[b"sadd", b"str", b"a"]).starts_with(b"-WRONGTYPE"));
        assert!(run(&mut db, srem, &[b"srem", b"str", b"a"]).starts_with(b"-WRONGTYPE"));
        assert!(run(&mut db, spop, &[b"spop", b"str", b"2"]).starts_with(b"-WRONGTYPE"));
        assert_eq!(db.mem_used(), before);
    }

    fn unix_ms_later() -> u64 {
        crate::store::unix_ms() + 60_000
    }

    #[test]
    fn emptied_sets_are_deleted() {
        let mut db = db();
        assert_eq!(
            run(&mut db, sadd, &[b"sadd", b"k", b"a", b"b", b"a"]),
            b":2\r\n"
        );
        assert_eq!(
            run(&mut db, srem, &[b"srem", b"k", b"a", b"b", b"c"]),
            b":2\r\n"
        );
        assert_eq!(db.len(), 0);
        run(&mut db, sadd, &[b"sadd", b"k", b"a", b"b"]);
        assert!(run(&mut db, spop, &[b"spop", b"k", b"5"]).starts_with(b"*2\r\n"));
        assert_eq!(db.len(), 0);
        run(&mut db, sadd, &[b"sadd", b"k", b"a"]);
        assert_eq!(run(&mut db, spop, &[b"spop", b"k"]), b"$1\r\na\r\n");
        assert_eq!(db.len(), 0);
        assert_eq!(db.mem_used(), 0);
    }

    #[test]
    fn distinct_picks_are_distinct_and_in_range() {
        let mut rng = Picker::seeded(3);
        for (len, count) in [(1, 1), (10, 3), (10, 9), (1000, 17), (5, 5)] {
            let mut picks = rng.distinct(len, count);
            assert_eq!(picks.len(), count);
            picks.sort();
            picks.dedup();
            assert_eq!(picks.len(), count);
            assert!(picks.iter().all(|&p| p < len));
        }
    }

    #[test]
    fn algebra_follows_argument_order_and_treats_missing_as_empty() {
        let a = set_of(&["a", "b", "c", "d"]);
        let b = set_of(&["c", "d", "e"]);
        let c = set_of(&["a", "c", "x", "y", "z"]);
        let inter = compute(SetOp::Inter, [Some(&a), Some(&b), Some(&c)]);
        assert_eq!(sorted(&inter), ["c"]);
        assert_eq!(
            sorted(&compute(SetOp::Inter, [Some(&a), Some(&b)])),
            ["c", "d"]
        );
        assert!(compute(SetOp::Inter, [Some(&a), None]).is_empty());
        assert!(compute(SetOp::Inter, [None, Some(&a)]).is_empty());
        let union = compute(SetOp::Union, [Some(&a), None, Some(&b)]);
        assert_eq!(sorted(&union), ["a", "b", "c", "d", "e"]);
        assert_eq!(
            sorted(&compute(SetOp::Diff, [Some(&a), Some(&b)])),
            ["a", "b"]
        );
        // The smaller-side walk of Diff must give the same answer.
        assert_eq!(
            sorted(&compute(SetOp::Diff, [Some(&c), Some(&a)])),
            ["x", "y", "z"]
        );
        assert_eq!(
            sorted(&compute(SetOp::Diff, [Some(&a), None, Some(&c)])),
            ["b", "d"]
        );
        assert!(compute(SetOp::Diff, [None, Some(&a)]).is_empty());
        assert_eq!(
            sorted(&compute(SetOp::Union, [Some(&a)])),
            ["a", "b", "c", "d"]
        );
        // A key named twice is simply fed twice.
        assert!(compute(SetOp::Diff, [Some(&a), Some(&a)]).is_empty());
        assert_eq!(
            sorted(&compute(SetOp::Inter, [Some(&b), Some(&b)])),
            ["c", "d", "e"]
        );
    }

    #[test]
    fn local_algebra_and_store_keep_accounting_exact() {
        let mut db = db();
        run(&mut db, sadd, &[b"sadd", b"a", b"1", b"2", b"3"]);
        run(&mut db, sadd, &[b"sadd", b"b", b"2", b"3", b"4"]);
        db.set(
            b"dst",
            Value::Str(b"old".to_vec().into()),
            Ttl::At(unix_ms_later()),
        );
        let keys = [b"a".to_vec(), b"b".to_vec(), b"nope".to_vec()];
        let union = compute_local(&mut db, SetOp::Union, &keys).unwrap();
        assert_eq!(store_result(&mut db, b"dst", union), 4);
        assert_eq!(db.expires_count(), 0);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        let inter = compute_local(&mut db, SetOp::Inter, &keys).unwrap();
        assert_eq!(store_result(&mut db, b"dst", inter), 0);
        assert!(!db.contains(b"dst"));
        assert_eq!(db.mem_used(), db.mem_recomputed());
        db.set(b"str", Value::Str(b"x".to_vec().into()), Ttl::Clear);
        assert_eq!(
            compute_local(&mut db, SetOp::Union, &[b"a".to_vec(), b"str".to_vec()]),
            Err(WrongType)
        );
        assert_eq!(
            copy_sets(&mut db, &[b"nope".to_vec(), b"str".to_vec()]),
            Err(WrongType)
        );
    }
}

/// A fixed, deterministic mix of data-path commands for instruction-count
/// comparisons: `valgrind --tool=callgrind <test binary> --ignored
/// command::sets::workload::data_path_mix --exact`.
#[cfg(test)]
mod workload {
    use crate::command::testing::db;
    use crate::command::{Args, Handler, hashes, lists, strings};

    #[test]
    #[ignore]
    fn data_path_mix() {
        let mut db = db();
        let cmds: &[(Handler, &[&[u8]])] = &[
            (
                strings::set,
                &[b"set", b"s", b"0123456789abcdef0123456789abcdef"],
            ),
            (strings::get, &[b"get", b"s"]),
            (strings::incr, &[b"incr", b"n"]),
            (strings::append, &[b"append", b"a", b"xy"]),
            (lists::lpush, &[b"lpush", b"l", b"elem-0001", b"elem-0002"]),
            (lists::rpush, &[b"rpush", b"l", b"elem-0003"]),
            (lists::lpop, &[b"lpop", b"l"]),
            (lists::rpop, &[b"rpop", b"l"]),
            (lists::lpop, &[b"lpop", b"l"]),
            (hashes::hset, &[b"hset", b"h", b"field", b"value-000"]),
            (hashes::hget, &[b"hget", b"h", b"field"]),
            (hashes::hdel, &[b"hdel", b"h", b"field"]),
            (super::sadd, &[b"sadd", b"t", b"m1", b"m2"]),
            (super::srem, &[b"srem", b"t", b"m1"]),
            (super::spop, &[b"spop", b"t"]),
        ];
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        let mut out = Vec::new();
        let mut x: u64 = 88172645463325252;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (handler, argv) = cmds[(x % cmds.len() as u64) as usize];
            let key = format!(
                "{}{}",
                std::str::from_utf8(argv[1]).unwrap(),
                (x >> 20) % 500
            );
            buf.clear();
            ranges.clear();
            for (i, a) in argv.iter().enumerate() {
                let a: &[u8] = if i == 1 { key.as_bytes() } else { a };
                ranges.push((buf.len(), buf.len() + a.len()));
                buf.extend_from_slice(a);
            }
            out.clear();
            handler(&mut db, &Args::new(&buf, &ranges), &mut out);
        }
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }
}
