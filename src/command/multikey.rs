//! Multi-key commands of issue 11: LMOVE, RPOPLPUSH and LMPOP (lists),
//! SMOVE and SINTERCARD (sets), COPY (keys).
//!
//! Each has a `whole` handler, run on one shard when all its keys live
//! there (the same-key forms included), and a `spread` driver for keys on
//! several shards, which runs as one [`Atomic`] step: every check (types,
//! existence) is done before anything is changed, so a WRONGTYPE never
//! leaves a half-done move, and every involved shard stays held until the
//! reply is known, so no other client sees the move half done.
//!
//! Kept in its own file, apart from the single-key handlers of each family,
//! so that it merges independently of changes to those.

use super::keys::SHARD_GONE;
use super::{Args, parts_by_owner};
use crate::coord::Atomic;
use crate::coord::Shard;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::{Db, SetValue, Ttl, Value};

const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const DB_OUT_OF_RANGE: &str = "ERR DB index is out of range";
const DB_NOT_INT: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
const SAME_OBJECT: &str = "ERR source and destination objects are the same";

// ---- Shared pieces ----

/// What a key holds, as far as a command needing one type cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    Missing,
    Fits,
    Wrong,
}

/// Looks at `key` without counting a keyspace hit or miss (Redis' write
/// lookups do not count either) and without touching watchers: a check
/// that ends in an error or a no-op changes nothing.
pub(crate) fn probe(db: &mut Db, key: &[u8], fits: fn(&Value) -> bool) -> Probe {
    match db.peek(key) {
        None => Probe::Missing,
        Some(v) if fits(v) => Probe::Fits,
        Some(_) => Probe::Wrong,
    }
}

pub(crate) fn is_list(v: &Value) -> bool {
    matches!(v, Value::List(_))
}

fn is_set(v: &Value) -> bool {
    matches!(v, Value::Set(_))
}

/// `args[at]` as a key count of at least 1 (Redis reports a non-number the
/// same way).
pub(crate) fn numkeys(args: &Args, at: usize) -> Result<usize, &'static str> {
    match parse_i64(args.get(at)) {
        Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(NUMKEYS_POSITIVE),
    }
}

/// LEFT or RIGHT: true for LEFT.
pub(crate) fn side(args: &Args, at: usize) -> Result<bool, &'static str> {
    if args.is(at, "LEFT") {
        Ok(true)
    } else if args.is(at, "RIGHT") {
        Ok(false)
    } else {
        Err(err::SYNTAX)
    }
}

// ---- Lists: LMOVE, RPOPLPUSH, LMPOP ----

/// Pops up to `count` elements from one end of the list under `key`
/// (checked to be a list); the mutation guard deletes the key if that
/// empties it.
pub(crate) fn pop_many(db: &mut Db, key: &[u8], left: bool, count: usize) -> Vec<Box<[u8]>> {
    let Some(mut entry) = db.entry_mut(key) else {
        return Vec::new();
    };
    let Ok(mut list) = entry.list() else {
        return Vec::new();
    };
    let mut popped = Vec::with_capacity(count.min(64));
    while popped.len() < count {
        let elem = if left {
            list.pop_front()
        } else {
            list.pop_back()
        };
        match elem {
            Some(elem) => popped.push(elem),
            None => break,
        }
    }
    popped
}

/// Pushes `elem` at one end of the list under `key`, creating it if the key
/// is missing (callers checked it holds no other type).
pub(crate) fn push_one(db: &mut Db, key: &[u8], elem: &[u8], left: bool) {
    let mut entry = db.entry_or_insert_with(key, || Value::List(Box::default()));
    if let Ok(mut list) = entry.list() {
        if left {
            list.push_front(elem);
        } else {
            list.push_back(elem);
        }
    }
}

/// LMOVE with both keys on this shard. Redis' order of checks: a missing
/// source is nil, then the source's type, then the destination's, all
/// before anything moves.
pub(crate) fn lmove_local(
    db: &mut Db,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
    out: &mut Vec<u8>,
) {
    match probe(db, src, is_list) {
        Probe::Missing => return out.nil(),
        Probe::Wrong => return out.error(err::WRONGTYPE),
        Probe::Fits => {}
    }
    if src == dst {
        // A rotation: the key never becomes empty, so it keeps its TTL
        // even when it holds one element.
        let Some(mut entry) = db.entry_mut(src) else {
            return out.nil();
        };
        let Ok(mut list) = entry.list() else {
            return out.nil();
        };
        let elem = if from_left {
            list.pop_front()
        } else {
            list.pop_back()
        };
        let Some(elem) = elem else {
            return out.nil();
        };
        out.bulk(&elem);
        if to_left {
            list.push_front(&elem);
        } else {
            list.push_back(&elem);
        }
        return;
    }
    if probe(db, dst, is_list) == Probe::Wrong {
        return out.error(err::WRONGTYPE);
    }
    let Some(elem) = pop_many(db, src, from_left, 1).pop() else {
        return out.nil();
    };
    out.bulk(&elem);
    push_one(db, dst, &elem, to_left);
}

fn lmove_sides(args: &Args) -> Result<(bool, bool), &'static str> {
    Ok((side(args, 3)?, side(args, 4)?))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, keys on one shard.
pub fn lmove(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match lmove_sides(args) {
        Ok((from, to)) => lmove_local(db, args.get(1), args.get(2), from, to, out),
        Err(e) => out.error(e),
    }
}

/// RPOPLPUSH source destination: LMOVE source destination RIGHT LEFT.
pub fn rpoplpush(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    lmove_local(db, args.get(1), args.get(2), false, true, out)
}

spread!(lmove_spread => lmove_across);
spread!(rpoplpush_spread => rpoplpush_across);

async fn lmove_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    match lmove_sides(args) {
        Ok((from, to)) => lmove_any(shard, tx, args, from, to, out).await,
        Err(e) => out.error(e),
    }
}

async fn rpoplpush_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    lmove_any(shard, tx, args, false, true, out).await
}

/// LMOVE with the keys on two shards: the destination's type is checked,
/// then the source is checked and popped (only if both checks pass), then
/// the element is pushed, all while both shards are held.
async fn lmove_any(
    shard: &Shard,
    tx: u64,
    args: &Args<'_>,
    from_left: bool,
    to_left: bool,
    out: &mut Vec<u8>,
) {
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (from, to) = (shard.owner(&src), shard.owner(&dst));
    let mut atomic = Atomic::new(shard, tx, [&src[..], &dst[..]]);
    let key = dst.clone();
    let Some(dst_state) = atomic
        .on(to, move |s: &Shard| probe(&mut s.db(), &key, is_list))
        .await
    else {
        return out.error(SHARD_GONE);
    };
    let popped = atomic
        .on(from, move |s: &Shard| {
            let mut db = s.db();
            match probe(&mut db, &src, is_list) {
                Probe::Missing => Ok(None),
                Probe::Wrong => Err(err::WRONGTYPE),
                Probe::Fits if dst_state == Probe::Wrong => Err(err::WRONGTYPE),
                Probe::Fits => Ok(pop_many(&mut db, &src, from_left, 1).pop()),
            }
        })
        .await;
    let elem = match popped {
        None => return out.error(SHARD_GONE),
        Some(Err(e)) => return out.error(e),
        Some(Ok(None)) => return out.nil(),
        Some(Ok(Some(elem))) => elem,
    };
    let mark = out.len();
    out.bulk(&elem);
    let pushed = atomic
        .on(to, move |s: &Shard| {
            push_one(&mut s.db(), &dst, &elem, to_left)
        })
        .await;
    if pushed.is_none() {
        out.truncate(mark);
        out.error(SHARD_GONE);
    }
}

/// LMPOP's parsed arguments: key count, end, elements to pop.
fn lmpop_args(args: &Args) -> Result<(usize, bool, usize), &'static str> {
    let n = numkeys(args, 1)?;
    let where_at = n
        .checked_add(2)
        .filter(|&w| w < args.len())
        .ok_or(err::SYNTAX)?;
    let left = side(args, where_at)?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        if count.is_none() && args.is(i, "COUNT") && i + 1 < args.len() {
            count = Some(match parse_i64(args.get(i + 1)) {
                Some(c) if c >= 1 => usize::try_from(c).unwrap_or(usize::MAX),
                _ => return Err(COUNT_POSITIVE),
            });
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok((n, left, count.unwrap_or(1)))
}

/// LMPOP's keys: `args[2..=1+numkeys]`, when the arguments are valid up to
/// the LEFT|RIGHT position.
pub fn lmpop_keys(args: &Args) -> Option<(usize, usize)> {
    let n = numkeys(args, 1).ok()?;
    (n.checked_add(2)? < args.len()).then_some((2, 1 + n))
}

fn reply_popped(out: &mut Vec<u8>, key: &[u8], elems: &[Box<[u8]>]) {
    out.array(2);
    out.bulk(key);
    out.array(elems.len());
    for e in elems {
        out.bulk(e);
    }
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count], keys on one
/// shard: the first key holding a list is popped; a key of another type
/// before it is an error.
pub fn lmpop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (n, left, count) = match lmpop_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    for key in args.iter_from(2).take(n) {
        match probe(db, key, is_list) {
            Probe::Missing => continue,
            Probe::Wrong => return out.error(err::WRONGTYPE),
            Probe::Fits => {
                let popped = pop_many(db, key, left, count);
                return reply_popped(out, key, &popped);
            }
        }
    }
    out.nil_array();
}

spread!(lmpop_spread => lmpop_across);

/// LMPOP over several shards: each shard reports what its keys hold, then
/// the first key (in argument order) that exists decides: an error, or a
/// pop on its shard. All shards are held throughout, so the state read in
/// the first step is still the state when popping.
async fn lmpop_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (n, left, count) = match lmpop_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let popped = mpop_across(shard, tx, args, n, is_list, move |db, key| {
        pop_many(db, key, left, count)
    });
    match popped.await {
        Ok(Some((key, elems))) if !elems.is_empty() => reply_popped(out, &key, &elems),
        Ok(_) => out.nil_array(),
        Err(e) => out.error(e),
    }
}

/// LMPOP's and ZMPOP's cross-shard step (`numkeys` keys from `args[2]`),
/// in one [`Atomic`]: probes every key on its shard, then runs `pop` on the
/// first key that exists, if it `fits` (else WRONGTYPE, as Redis stops at
/// the first existing key). Ok(None) when no key exists.
pub(crate) async fn mpop_across<T: Send + 'static>(
    shard: &Shard,
    tx: u64,
    args: &Args<'_>,
    numkeys: usize,
    fits: fn(&Value) -> bool,
    pop: impl FnOnce(&mut Db, &[u8]) -> T + Send + 'static,
) -> Result<Option<(Vec<u8>, T)>, &'static str> {
    let keys = Args::new(args.buf(), &args.ranges()[..=1 + numkeys]);
    let parts = parts_by_owner(shard, &keys, 2, 1);
    let mut atomic = Atomic::new(shard, tx, keys.iter_from(2));
    let mut states = vec![Probe::Missing; numkeys];
    for part in parts {
        let wanted = part.args;
        let probed = atomic
            .on(part.shard, move |s: &Shard| {
                let mut db = s.db();
                wanted
                    .iter()
                    .map(|k| probe(&mut db, k, fits))
                    .collect::<Vec<_>>()
            })
            .await
            .ok_or(SHARD_GONE)?;
        for (at, state) in part.groups.into_iter().zip(probed) {
            states[at] = state;
        }
    }
    let Some(at) = states.iter().position(|&s| s != Probe::Missing) else {
        return Ok(None);
    };
    if states[at] == Probe::Wrong {
        return Err(err::WRONGTYPE);
    }
    let key = args.get(2 + at).to_vec();
    let home = shard.owner(&key);
    atomic
        .on(home, move |s: &Shard| {
            let popped = pop(&mut s.db(), &key);
            Some((key, popped))
        })
        .await
        .ok_or(SHARD_GONE)
}

// ---- Sets: SMOVE, SINTERCARD ----

fn has_member(db: &mut Db, key: &[u8], member: &[u8]) -> bool {
    matches!(db.peek(key), Some(Value::Set(s)) if s.contains(member))
}

/// Removes `member` from the set under `key` (the mutation guard deletes
/// an emptied set). False, and nothing touched, if it was not there.
fn remove_member(db: &mut Db, key: &[u8], member: &[u8]) -> bool {
    if !has_member(db, key, member) {
        return false;
    }
    let Some(mut entry) = db.entry_mut(key) else {
        return false;
    };
    entry.set().is_ok_and(|mut set| set.remove(member))
}

/// Adds `member` to the set under `key`, creating it if the key is missing
/// (callers checked it holds no other type).
fn add_member(db: &mut Db, key: &[u8], member: &[u8]) {
    let mut entry = db.entry_or_insert_with(key, || Value::Set(Box::default()));
    if let Ok(mut set) = entry.set() {
        set.insert(member);
    }
}

/// SMOVE source destination member, keys on one shard. Redis' order: a
/// missing source is 0 whatever the destination holds, then both types;
/// the same key answers whether the member is there and changes nothing.
pub fn smove(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (src, dst, member) = (args.get(1), args.get(2), args.get(3));
    match probe(db, src, is_set) {
        Probe::Missing => return out.int(0),
        Probe::Wrong => return out.error(err::WRONGTYPE),
        Probe::Fits => {}
    }
    if probe(db, dst, is_set) == Probe::Wrong {
        return out.error(err::WRONGTYPE);
    }
    if src == dst {
        return out.int(has_member(db, src, member) as i64);
    }
    if !remove_member(db, src, member) {
        return out.int(0);
    }
    add_member(db, dst, member);
    out.int(1);
}

spread!(smove_spread => smove_across);

/// SMOVE with the keys on two shards: destination type, then source type
/// and removal (only if both pass), then the add, both shards held.
async fn smove_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let member = args.get(3).to_vec();
    let (from, to) = (shard.owner(&src), shard.owner(&dst));
    let mut atomic = Atomic::new(shard, tx, [&src[..], &dst[..]]);
    let key = dst.clone();
    let Some(dst_state) = atomic
        .on(to, move |s: &Shard| probe(&mut s.db(), &key, is_set))
        .await
    else {
        return out.error(SHARD_GONE);
    };
    let (removed, member) = match atomic
        .on(from, move |s: &Shard| {
            let mut db = s.db();
            let removed = match probe(&mut db, &src, is_set) {
                Probe::Missing => Ok(false),
                Probe::Wrong => Err(err::WRONGTYPE),
                Probe::Fits if dst_state == Probe::Wrong => Err(err::WRONGTYPE),
                Probe::Fits => Ok(remove_member(&mut db, &src, &member)),
            };
            (removed, member)
        })
        .await
    {
        None => return out.error(SHARD_GONE),
        Some((Err(e), _)) => return out.error(e),
        Some((Ok(removed), member)) => (removed, member),
    };
    if !removed {
        return out.int(0);
    }
    let added = atomic
        .on(to, move |s: &Shard| add_member(&mut s.db(), &dst, &member))
        .await;
    match added {
        Some(()) => out.int(1),
        None => out.error(SHARD_GONE),
    }
}

/// SINTERCARD's parsed arguments: key count and limit (0: none).
fn sintercard_args(args: &Args) -> Result<(usize, usize), &'static str> {
    let n = numkeys(args, 1)?;
    if n > args.len() - 2 {
        return Err(TOO_MANY_KEYS);
    }
    let mut limit = 0;
    let mut i = 2 + n;
    while i < args.len() {
        if args.is(i, "LIMIT") && i + 1 < args.len() {
            limit = match parse_i64(args.get(i + 1)) {
                Some(l) if l >= 0 => usize::try_from(l).unwrap_or(usize::MAX),
                _ => return Err(LIMIT_NEGATIVE),
            };
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok((n, limit))
}

/// SINTERCARD's keys: `args[2..=1+numkeys]` when numkeys is valid.
pub fn sintercard_keys(args: &Args) -> Option<(usize, usize)> {
    let n = numkeys(args, 1).ok()?;
    (n <= args.len() - 2).then_some((2, 1 + n))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit], keys on one shard.
/// Every key is type-checked (and counted as a read) before counting.
pub fn sintercard(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (n, limit) = match sintercard_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let keys = || args.iter_from(2).take(n);
    // First pass: types, read statistics, lazy expiry, and the smallest set.
    let mut smallest: Option<(usize, &[u8])> = None;
    let mut missing = false;
    for key in keys() {
        match db.get(key) {
            None => missing = true,
            Some(Value::Set(s)) => {
                if smallest.is_none_or(|(len, _)| s.len() < len) {
                    smallest = Some((s.len(), key));
                }
            }
            Some(_) => return out.error(err::WRONGTYPE),
        }
    }
    let Some((_, first)) = smallest.filter(|_| !missing) else {
        return out.int(0);
    };
    // The `Db` lends one value at a time: keep the members of the smallest
    // set that every other set has, one set after another.
    let mut copy: SetValue = match db.peek(first) {
        Some(Value::Set(s)) => s.to_table(),
        _ => return out.int(0),
    };
    for key in keys() {
        if key == first {
            continue;
        }
        match db.peek(key) {
            Some(Value::Set(s)) => copy.retain(|m| s.contains(m)),
            _ => copy.clear(),
        }
    }
    let n = if limit == 0 {
        copy.len()
    } else {
        copy.len().min(limit)
    };
    out.int(n as i64);
}

spread!(sintercard_spread => sintercard_across);

/// One shard's keys of a command, each with its position among the keys.
type PlacedKeys = Vec<(usize, Vec<u8>)>;

/// SINTERCARD over several shards, all held throughout. A first look at
/// every key (on its shard, without statistics) gives types and sizes.
/// Then only the smallest set is copied, and that candidate list visits
/// each shard in turn, keeping the members all of that shard's sets have:
/// no other set leaves its shard. The keyspace hits and misses are counted
/// as Redis counts them: every key, or on WRONGTYPE the keys up to the
/// first wrong one in argument order.
async fn sintercard_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (n, limit) = match sintercard_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let keys = Args::new(args.buf(), &args.ranges()[..=1 + n]);
    // Each shard's keys, with their positions in the command.
    let parts: Vec<(usize, PlacedKeys)> = parts_by_owner(shard, &keys, 2, 1)
        .into_iter()
        .map(|p| {
            let keys = p.args.iter().map(<[u8]>::to_vec);
            (p.shard, p.groups.into_iter().zip(keys).collect())
        })
        .collect();
    let mut atomic = Atomic::new(shard, tx, keys.iter_from(2));
    // None: missing; Some(Err): another type; Some(Ok(len)): a set.
    let mut sizes: Vec<Option<Result<usize, ()>>> = vec![None; n];
    for (home, wanted) in &parts {
        let wanted = wanted.clone();
        let probed = atomic
            .on(*home, move |s: &Shard| {
                let mut db = s.db();
                wanted
                    .into_iter()
                    .map(|(at, k)| {
                        let size = db.peek(&k).map(|v| match v {
                            Value::Set(set) => Ok(set.len()),
                            _ => Err(()),
                        });
                        (at, size)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        let Some(probed) = probed else {
            return out.error(SHARD_GONE);
        };
        for (at, size) in probed {
            sizes[at] = size;
        }
    }
    let first_wrong = sizes.iter().position(|s| matches!(s, Some(Err(()))));
    let missing = sizes.iter().any(Option::is_none);
    if first_wrong.is_some() || missing {
        // Only the statistics are left to do: a read of each key Redis looks
        // at before answering.
        let upto = first_wrong.map_or(n, |at| at + 1);
        for (home, wanted) in parts {
            let counted = atomic
                .on(home, move |s: &Shard| {
                    let mut db = s.db();
                    for (_, k) in wanted.iter().filter(|(at, _)| *at < upto) {
                        db.get(k);
                    }
                })
                .await;
            if counted.is_none() {
                return out.error(SHARD_GONE);
            }
        }
        return match first_wrong {
            Some(_) => out.error(err::WRONGTYPE),
            None => out.int(0),
        };
    }
    let smallest = (0..n).min_by_key(|&at| match sizes[at] {
        Some(Ok(len)) => len,
        _ => usize::MAX,
    });
    let Some(first) = smallest.map(|at| keys.get(2 + at).to_vec()) else {
        return out.int(0);
    };
    let home = shard.owner(&first);
    let copied = atomic
        .on(home, move |s: &Shard| match s.db().peek(&first) {
            Some(Value::Set(set)) => set
                .iter()
                .map(|m| Box::from(&*m))
                .collect::<Vec<Box<[u8]>>>(),
            _ => Vec::new(),
        })
        .await;
    let Some(mut candidates) = copied else {
        return out.error(SHARD_GONE);
    };
    // Every shard is visited even once nothing is left: each key's read
    // counts as a keyspace hit.
    for (home, wanted) in parts {
        let kept = atomic
            .on(home, move |s: &Shard| {
                let mut db = s.db();
                for (_, key) in &wanted {
                    match db.get(key) {
                        Some(Value::Set(set)) => candidates.retain(|m| set.contains(m)),
                        _ => candidates.clear(),
                    }
                }
                candidates
            })
            .await;
        match kept {
            Some(kept) => candidates = kept,
            None => return out.error(SHARD_GONE),
        }
    }
    let count = match limit {
        0 => candidates.len(),
        limit => candidates.len().min(limit),
    };
    out.int(count as i64);
}

// ---- Keys: COPY ----

/// COPY's options after the two keys: whether REPLACE was given. DB must
/// name database 0, the only one.
fn copy_replace(args: &Args, cluster: bool) -> Result<bool, &'static str> {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "REPLACE") {
            replace = true;
        } else if args.is(i, "DB") && i + 1 < args.len() {
            // Redis reads the index as a C int.
            let db = parse_i64(args.get(i + 1)).ok_or(err::NOT_INTEGER)?;
            if i32::try_from(db).is_err() {
                return Err(DB_NOT_INT);
            }
            if db != 0 && cluster {
                return Err("ERR Copying to another database is not allowed in cluster mode");
            }
            if db != 0 {
                return Err(DB_OUT_OF_RANGE);
            }
            i += 1;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    if args.get(1) == args.get(2) {
        return Err(SAME_OBJECT);
    }
    Ok(replace)
}

fn ttl_of(expire_at: u64) -> Ttl {
    if expire_at == 0 {
        Ttl::Clear
    } else {
        Ttl::At(expire_at)
    }
}

/// `COPY source destination [DB destination-db] [REPLACE]`, keys on one
/// shard: a deep copy of the value, with its TTL.
pub fn copy(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let replace = match copy_replace(args, db.cluster_mode()) {
        Ok(replace) => replace,
        Err(e) => return out.error(e),
    };
    let (src, dst) = (args.get(1), args.get(2));
    // The source lookup is a read (a keyspace hit or miss), as in Redis.
    if db.get(src).is_none() || (!replace && db.contains(dst)) {
        return out.int(0);
    }
    let Some((value, expire_at)) = db.peek_with_expire(src).map(|(v, at)| (v.clone(), at)) else {
        return out.int(0);
    };
    db.set(dst, value, ttl_of(expire_at));
    out.int(1);
}

spread!(copy_spread => copy_across);

/// COPY with the keys on two shards: the source's value is copied on its
/// shard and installed on the destination's, both held. Without REPLACE an
/// existing destination is seen first, so no value is copied for nothing.
async fn copy_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let replace = match copy_replace(args, shard.cluster_enabled()) {
        Ok(replace) => replace,
        Err(e) => return out.error(e),
    };
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (from, to) = (shard.owner(&src), shard.owner(&dst));
    let mut atomic = Atomic::new(shard, tx, [&src[..], &dst[..]]);
    if !replace {
        let key = dst.clone();
        match atomic.on(to, move |s: &Shard| s.db().contains(&key)).await {
            Some(false) => {}
            Some(true) => {
                // Still a read of the source, for the statistics.
                let key = src.clone();
                let read = atomic
                    .on(from, move |s: &Shard| s.db().get(&key).is_some())
                    .await;
                return match read {
                    Some(_) => out.int(0),
                    None => out.error(SHARD_GONE),
                };
            }
            None => return out.error(SHARD_GONE),
        }
    }
    let copied = atomic
        .on(from, move |s: &Shard| {
            s.db()
                .get_with_expire(&src)
                .map(|(v, at)| (Box::new(v.clone()), at))
        })
        .await;
    let (value, expire_at) = match copied {
        None => return out.error(SHARD_GONE),
        Some(None) => return out.int(0),
        Some(Some(copied)) => copied,
    };
    let installed = atomic
        .on(to, move |s: &Shard| {
            s.db().set(&dst, *value, ttl_of(expire_at))
        })
        .await;
    match installed {
        Some(()) => out.int(1),
        None => out.error(SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Handler;
    use crate::command::testing::{check_step, db, run, text};
    use crate::store::unix_ms;

    #[test]
    fn same_shard_forms_reply_as_redis() {
        let mut db = db();
        let r = |db: &mut Db, h: Handler, argv: &[&str]| {
            let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
            text(run(db, h, &argv))
        };
        assert_eq!(
            r(&mut db, lmove, &["lmove", "l", "m", "LEFT", "RIGHT"]),
            "$-1\r\n"
        );
        db.set(b"s", Value::Str(b"v".to_vec().into()), Ttl::Clear);
        run(
            &mut db,
            crate::command::lists::rpush,
            &[b"rpush", b"l", b"a", b"b"],
        );
        assert!(r(&mut db, lmove, &["lmove", "l", "s", "LEFT", "RIGHT"]).starts_with("-WRONGTYPE"));
        assert_eq!(
            r(&mut db, lmove, &["lmove", "l", "l", "left", "right"]),
            "$1\r\na\r\n"
        );
        assert_eq!(
            r(&mut db, lmove, &["lmove", "l", "l", "up", "right"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            r(&mut db, rpoplpush, &["rpoplpush", "l", "m"]),
            "$1\r\na\r\n"
        );
        assert_eq!(
            r(&mut db, rpoplpush, &["rpoplpush", "l", "m"]),
            "$1\r\nb\r\n"
        );
        assert!(!db.contains(b"l"));
        assert_eq!(
            r(
                &mut db,
                lmpop,
                &["lmpop", "2", "l", "m", "RIGHT", "COUNT", "5"]
            ),
            "*2\r\n$1\r\nm\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            r(&mut db, lmpop, &["lmpop", "2", "l", "m", "LEFT"]),
            "*-1\r\n"
        );
        assert_eq!(r(&mut db, smove, &["smove", "x", "s", "m"]), ":0\r\n");
        run(&mut db, crate::command::sets::sadd, &[b"sadd", b"x", b"m"]);
        assert_eq!(r(&mut db, smove, &["smove", "x", "x", "m"]), ":1\r\n");
        assert_eq!(r(&mut db, smove, &["smove", "x", "x", "n"]), ":0\r\n");
        assert_eq!(r(&mut db, smove, &["smove", "x", "y", "m"]), ":1\r\n");
        assert!(!db.contains(b"x"));
        assert_eq!(
            r(&mut db, sintercard, &["sintercard", "2", "y", "y"]),
            ":1\r\n"
        );
        assert_eq!(
            r(&mut db, sintercard, &["sintercard", "2", "y", "x"]),
            ":0\r\n"
        );
        assert!(r(&mut db, sintercard, &["sintercard", "2", "x", "s"]).starts_with("-WRONGTYPE"));
        assert_eq!(
            r(&mut db, copy, &["copy", "y", "y"]),
            format!("-{SAME_OBJECT}\r\n")
        );
        assert_eq!(
            r(&mut db, copy, &["copy", "y", "z", "db", "1"]),
            format!("-{DB_OUT_OF_RANGE}\r\n")
        );
        assert_eq!(r(&mut db, copy, &["copy", "y", "s"]), ":0\r\n");
        assert_eq!(r(&mut db, copy, &["copy", "y", "s", "REPLACE"]), ":1\r\n");
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    /// A random mix of the six commands over a few keys (lists, sets, a
    /// string, TTLs, same-key forms): after each, accounting equals a full
    /// recount and no empty aggregate is left.
    #[test]
    fn accounting_stays_exact_under_random_multikey_commands() {
        let mut db = db();
        let mut next = crate::command::testing::rng(0x2545_F491_4F6C_DD1Du64);
        let keys: [&[u8]; 5] = [b"k0", b"k1", b"k2", b"k3", b"str"];
        let elems: [&[u8]; 5] = [b"", b"a", b"bb", b"a", b"cccccccccccccccc"];
        let sides: [&[u8]; 2] = [b"LEFT", b"right"];
        let counts: [&[u8]; 4] = [b"1", b"2", b"7", b"0"];
        let mut succeeded = [0usize; 10];
        for step in 0..20_000 {
            let k1 = keys[next(5) as usize];
            let k2 = keys[next(5) as usize];
            let k3 = keys[next(5) as usize];
            let e = elems[next(5) as usize];
            let s1 = sides[next(2) as usize];
            let s2 = sides[next(2) as usize];
            let n = counts[next(4) as usize];
            let kind = next(10) as usize;
            let (handler, parts): (Handler, Vec<&[u8]>) = match kind {
                0 => (crate::command::lists::rpush, vec![b"rpush", k1, e, e]),
                1 => (crate::command::sets::sadd, vec![b"sadd", k1, e, b"z"]),
                2 => (lmove, vec![b"lmove", k1, k2, s1, s2]),
                3 => (rpoplpush, vec![b"rpoplpush", k1, k2]),
                4 => (lmpop, vec![b"lmpop", b"3", k1, k2, k3, s1, b"COUNT", n]),
                5 => (smove, vec![b"smove", k1, k2, e]),
                6 => (
                    sintercard,
                    vec![b"sintercard", b"3", k1, k2, k3, b"LIMIT", n],
                ),
                7 => (copy, vec![b"copy", k1, k2, b"REPLACE"]),
                8 => (copy, vec![b"copy", k1, k2]),
                _ => {
                    let at = if next(2) == 0 { 1 } else { unix_ms() + 60_000 };
                    db.set_expire(k1, at);
                    db.set(b"str", Value::Str(e.to_vec().into()), Ttl::Clear);
                    (crate::command::keys::exists, vec![b"exists", k1])
                }
            };
            let reply = run(&mut db, handler, &parts);
            if check_step(&db, &reply, false, &(step, &parts)) {
                succeeded[kind] += 1;
            }
        }
        assert!(succeeded.iter().all(|&n| n >= 100), "{succeeded:?}");
    }
}
