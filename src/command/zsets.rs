//! Sorted-set commands (ZADD … ZSCAN), with Redis 7.0's replies and error
//! texts, and the cross-shard drivers of the ones whose keys may live on
//! several shards (ZUNION/ZINTER/ZDIFF and their STORE forms, ZINTERCARD,
//! ZRANGESTORE, ZMPOP), built like `multikey`'s: a `whole` handler when
//! every key lives on one shard, a `spread` one that runs as one
//! [`Atomic`] step otherwise.
//!
//! The value and its encodings live in `crate::store::zset`; every range
//! command turns its range (ranks, scores or lex) into ascending ranks
//! there and reads or removes them.

use std::collections::HashMap;

use super::keys::SHARD_GONE;
use super::multikey::{Probe, mpop_across, numkeys, probe};
use super::{Args, ScanExtra, ScanOptions, parse_cursor, parse_scan_options, parts_by_owner};
use crate::coord::{Atomic, Shard};
use crate::protocol::float::parse_f64;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::Picker;
use crate::store::glob::glob_match;
use crate::store::zset::{Inserted, LexBound, Range, ScoreBound, format_score};
use crate::store::{Db, Hasher, Ttl, Value, WrongType, ZSet};

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";
const XX_NX: &str = "ERR XX and NX options at the same time are not compatible";
const GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
const INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
const LIMIT_RANK: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
const WITHSCORES_LEX: &str = "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
/// Most elements a ZRANDMEMBER with a negative count answers (see there).
const MAX_RANDOM_REPLY: u64 = 1 << 26;

/// A score as Redis replies with it: a bulk string (`%.17g`, `inf`).
pub fn reply_score(out: &mut Vec<u8>, score: f64) {
    let mut buf = [0u8; 32];
    out.bulk(format_score(score, &mut buf));
}

/// Read access: counts a keyspace hit or miss. Ok(None) when missing.
fn read_zset<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a ZSet>, WrongType> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(WrongType),
    }
}

fn new_zset() -> Value {
    Value::ZSet(Box::default())
}

// ------------------------------------------------------------ ZADD & co

/// Which members ZADD may touch: NX only new ones, XX only existing ones.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Members {
    #[default]
    Any,
    New,
    Existing,
}

/// Which score updates ZADD makes: GT only raises, LT only lowers.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Updates {
    #[default]
    Any,
    Greater,
    Less,
}

/// What ZADD does with a score and replies: sets it and counts added
/// members, or (CH) added and changed ones; or (INCR, and ZINCRBY) adds it
/// to the current score and replies with the result.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum AddMode {
    #[default]
    Set,
    SetCountChanged,
    Incr,
}

/// ZADD's options, as Redis' `ZADD_IN_*` flags.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    members: Members,
    updates: Updates,
    mode: AddMode,
}

/// A ZADD (or ZINCRBY) ready to run: its options, the index of its first
/// score and that score, parsed once (most ZADDs carry one pair); every
/// later score is known to parse.
struct ZaddArgs {
    flags: AddFlags,
    first: usize,
    first_score: f64,
}

/// ZADD's options and scores checked in Redis' order; Err is the reply.
fn zadd_args(args: &Args) -> Result<ZaddArgs, &'static str> {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        let flag = match () {
            _ if a.eq_ignore_ascii_case(b"nx") => &mut nx,
            _ if a.eq_ignore_ascii_case(b"xx") => &mut xx,
            _ if a.eq_ignore_ascii_case(b"gt") => &mut gt,
            _ if a.eq_ignore_ascii_case(b"lt") => &mut lt,
            _ if a.eq_ignore_ascii_case(b"ch") => &mut ch,
            _ if a.eq_ignore_ascii_case(b"incr") => &mut incr,
            _ => break,
        };
        *flag = true;
        i += 1;
    }
    let elements = args.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(err::SYNTAX);
    }
    if nx && xx {
        return Err(XX_NX);
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(GT_LT_NX);
    }
    if incr && elements > 2 {
        return Err(INCR_PAIR);
    }
    let first_score = parse_f64(args.get(i)).ok_or(err::NOT_FLOAT)?;
    for at in (i + 2..args.len()).step_by(2) {
        if parse_f64(args.get(at)).is_none() {
            return Err(err::NOT_FLOAT);
        }
    }
    let members = match (nx, xx) {
        (true, _) => Members::New,
        (_, true) => Members::Existing,
        _ => Members::Any,
    };
    let updates = match (gt, lt) {
        (true, _) => Updates::Greater,
        (_, true) => Updates::Less,
        _ => Updates::Any,
    };
    // Redis ignores CH under INCR: the reply is the score.
    let mode = match (incr, ch) {
        (true, _) => AddMode::Incr,
        (_, true) => AddMode::SetCountChanged,
        _ => AddMode::Set,
    };
    Ok(ZaddArgs {
        flags: AddFlags {
            members,
            updates,
            mode,
        },
        first: i,
        first_score,
    })
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match zadd_args(args) {
        Ok(zadd) => zadd_generic(db, args, out, zadd),
        Err(e) => out.error(e),
    }
}

/// `ZINCRBY key increment member`
pub fn zincrby(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let Some(increment) = parse_f64(args.get(2)) else {
        return out.error(err::NOT_FLOAT);
    };
    let flags = AddFlags {
        mode: AddMode::Incr,
        ..AddFlags::default()
    };
    let zadd = ZaddArgs {
        flags,
        first: 2,
        first_score: increment,
    };
    zadd_generic(db, args, out, zadd)
}

/// ZADD's work on checked arguments.
fn zadd_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, zadd: ZaddArgs) {
    let ZaddArgs {
        flags: f,
        first,
        first_score,
    } = zadd;
    let score_at = |at: usize| {
        if at == first {
            first_score
        } else {
            parse_f64(args.get(at)).expect("checked by zadd_args")
        }
    };
    let incr = f.mode == AddMode::Incr;
    let key = args.get(1);
    let mut guard = if f.members == Members::Existing {
        match db.entry_mut(key) {
            Some(g) => g,
            None => {
                // Type is fine (nothing there) and nothing may be created.
                return if incr { out.nil() } else { out.int(0) };
            }
        }
    } else {
        db.entry_or_insert_with(key, new_zset)
    };
    let Ok(mut z) = guard.zset() else {
        return out.error(err::WRONGTYPE);
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    if f.members == Members::Any && f.updates == Updates::Any && !incr {
        // No condition on the current score: one lookup per element.
        for at in (first..args.len()).step_by(2) {
            let score = score_at(at);
            match z.insert(args.get(at + 1), score) {
                Inserted::Added => added += 1,
                Inserted::Updated(_) => updated += 1,
                Inserted::Unchanged => {}
            }
        }
        return out.int(if f.mode == AddMode::SetCountChanged {
            added + updated
        } else {
            added
        });
    }
    for at in (first..args.len()).step_by(2) {
        let mut score = score_at(at);
        let member = args.get(at + 1);
        match z.score(member) {
            Some(cur) => {
                if f.members == Members::New {
                    continue;
                }
                if incr {
                    score += cur;
                    if score.is_nan() {
                        return out.error(NAN_SCORE);
                    }
                }
                match f.updates {
                    Updates::Less if score >= cur => continue,
                    Updates::Greater if score <= cur => continue,
                    _ => {}
                }
                if score != cur {
                    z.insert(member, score);
                    updated += 1;
                }
                processed += 1;
                last = score;
            }
            None if f.members == Members::Existing => continue,
            None => {
                z.insert(member, score);
                added += 1;
                processed += 1;
                last = score;
            }
        }
    }
    if incr {
        if processed > 0 {
            reply_score(out, last);
        } else {
            out.nil();
        }
    } else {
        out.int(if f.mode == AddMode::SetCountChanged {
            added + updated
        } else {
            added
        });
    }
}

/// `ZREM key member [member ...]`
pub fn zrem(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.int(0);
    };
    let Ok(mut z) = guard.zset() else {
        return out.error(err::WRONGTYPE);
    };
    let mut removed = 0;
    for m in args.iter_from(2) {
        if z.is_empty() {
            break;
        }
        removed += z.remove(m).is_some() as i64;
    }
    out.int(removed);
}

/// `ZCARD key`
pub fn zcard(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_zset(db, args.get(1)) {
        Ok(z) => out.int(z.map_or(0, ZSet::len) as i64),
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

/// `ZSCORE key member`
pub fn zscore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_zset(db, args.get(1)) {
        Ok(z) => match z.and_then(|z| z.score(args.get(2))) {
            Some(s) => reply_score(out, s),
            None => out.nil(),
        },
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

/// `ZMSCORE key member [member ...]`
pub fn zmscore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match read_zset(db, args.get(1)) {
        Ok(z) => {
            out.array(args.len() - 2);
            for m in args.iter_from(2) {
                match z.and_then(|z| z.score(m)) {
                    Some(s) => reply_score(out, s),
                    None => out.nil(),
                }
            }
        }
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

fn rank_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, rev: bool) {
    match read_zset(db, args.get(1)) {
        Ok(z) => match z.and_then(|z| z.rank(args.get(2)).map(|(r, _)| (r, z.len()))) {
            Some((r, len)) => out.int(if rev { len - 1 - r } else { r } as i64),
            None => out.nil(),
        },
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

/// `ZRANK key member`
pub fn zrank(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    rank_generic(db, args, out, false)
}

/// `ZREVRANK key member`
pub fn zrevrank(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    rank_generic(db, args, out, true)
}

fn score_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<Range<'a>, &'static str> {
    match (ScoreBound::parse(min), ScoreBound::parse(max)) {
        (Some(a), Some(b)) => Ok(Range::Score(a, b)),
        _ => Err(NOT_FLOAT_RANGE),
    }
}

fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<Range<'a>, &'static str> {
    match (LexBound::parse(min), LexBound::parse(max)) {
        (Some(a), Some(b)) => Ok(Range::Lex(a, b)),
        _ => Err(NOT_LEX_RANGE),
    }
}

fn count_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, range: Result<Range, &str>) {
    let range = match range {
        Ok(r) => r,
        Err(e) => return out.error(e),
    };
    match read_zset(db, args.get(1)) {
        Ok(z) => {
            let n = z.map_or(0, |z| {
                let (a, b) = z.rank_range(&range);
                b - a
            });
            out.int(n as i64)
        }
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

/// `ZCOUNT key min max`
pub fn zcount(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    count_generic(db, args, out, score_range(args.get(2), args.get(3)))
}

/// `ZLEXCOUNT key min max`
pub fn zlexcount(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    count_generic(db, args, out, lex_range(args.get(2), args.get(3)))
}

// ---------------------------------------------------------------- ranges

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Auto,
    Forward,
    Reverse,
}

enum Select<'a> {
    Ranks(i64, i64),
    Bounds(Range<'a>),
}

/// A parsed ZRANGE-family request.
struct RangeSpec<'a> {
    select: Select<'a>,
    rev: bool,
    withscores: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
}

/// Parses the ZRANGE family from the key at `key_at` on (Redis'
/// zrangeGenericCommand): options, then the range.
fn parse_range<'a>(
    args: &Args<'a>,
    key_at: usize,
    store: bool,
    mut by: By,
    mut dir: Dir,
) -> Result<RangeSpec<'a>, &'static str> {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = key_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        if !store && args.is(j, "WITHSCORES") {
            withscores = true;
        } else if args.is(j, "LIMIT") && left >= 2 {
            offset = args.int(j + 1)?;
            limit = args.int(j + 2)?;
            j += 2;
        } else if dir == Dir::Auto && args.is(j, "REV") {
            dir = Dir::Reverse;
        } else if by == By::Auto && args.is(j, "BYLEX") {
            by = By::Lex;
        } else if by == By::Auto && args.is(j, "BYSCORE") {
            by = By::Score;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let rev = dir == Dir::Reverse;
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err(LIMIT_RANK);
    }
    if withscores && by == By::Lex {
        return Err(WITHSCORES_LEX);
    }
    let (mut lo, mut hi) = (args.get(key_at + 1), args.get(key_at + 2));
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let select = match by {
        By::Score => Select::Bounds(score_range(lo, hi)?),
        By::Lex => Select::Bounds(lex_range(lo, hi)?),
        _ => Select::Ranks(args.int(key_at + 1)?, args.int(key_at + 2)?),
    };
    Ok(RangeSpec {
        select,
        rev,
        withscores,
        offset,
        limit,
    })
}

/// Normalises Redis' start/stop ranks (negative from the end) to an
/// ascending `start..end`.
fn clamp_ranks(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return (0, 0);
    }
    if stop >= len {
        stop = len - 1;
    }
    (start as usize, stop as usize + 1)
}

/// What a range request selects in `z`: the ascending rank of the first
/// element to emit, how many, and whether to go down from there.
fn select(z: &ZSet, spec: &RangeSpec) -> (usize, usize) {
    let len = z.len();
    match &spec.select {
        Select::Ranks(start, stop) => {
            let (a, b) = clamp_ranks(*start, *stop, len);
            if a == b {
                return (0, 0);
            }
            if spec.rev {
                (len - 1 - a, b - a)
            } else {
                (a, b - a)
            }
        }
        Select::Bounds(range) => {
            let (a, b) = z.rank_range(range);
            let inside = b - a;
            // A negative offset skips everything, as Redis' `offset--` loop.
            if spec.offset < 0 || spec.offset as u64 >= inside as u64 {
                return (0, 0);
            }
            let offset = spec.offset as usize;
            let mut n = inside - offset;
            if spec.limit >= 0 {
                n = n.min(usize::try_from(spec.limit).unwrap_or(usize::MAX));
            }
            if spec.rev {
                (b - 1 - offset, n)
            } else {
                (a + offset, n)
            }
        }
    }
}

/// The selected elements, in emission order.
fn selected<'z>(z: &'z ZSet, spec: &RangeSpec) -> std::iter::Take<crate::store::zset::ZIter<'z>> {
    let (first, n) = select(z, spec);
    if spec.rev {
        z.iter_rev_from(first).take(n)
    } else {
        z.iter_from(first).take(n)
    }
}

fn reply_elems<'a>(
    out: &mut Vec<u8>,
    elems: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    out.array(elems.len() * if withscores { 2 } else { 1 });
    for (m, s) in elems {
        out.bulk(m);
        if withscores {
            reply_score(out, s);
        }
    }
}

fn range_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, by: By, dir: Dir) {
    let spec = match parse_range(args, 1, false, by, dir) {
        Ok(spec) => spec,
        Err(e) => return out.error(e),
    };
    match read_zset(db, args.get(1)) {
        Ok(None) => out.array(0),
        Ok(Some(z)) => reply_elems(out, selected(z, &spec), spec.withscores),
        Err(WrongType) => out.error(err::WRONGTYPE),
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
pub fn zrange(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Auto, Dir::Auto)
}

/// `ZREVRANGE key start stop [WITHSCORES]`
pub fn zrevrange(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Rank, Dir::Reverse)
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
pub fn zrangebyscore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Score, Dir::Forward)
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`
pub fn zrevrangebyscore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Score, Dir::Reverse)
}

/// `ZRANGEBYLEX key min max [LIMIT offset count]`
pub fn zrangebylex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Lex, Dir::Forward)
}

/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`
pub fn zrevrangebylex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    range_generic(db, args, out, By::Lex, Dir::Reverse)
}

type Elems = Vec<(Box<[u8]>, f64)>;
/// Member → score, for lookups during ZINTER.
type Scores = HashMap<Box<[u8]>, f64, Hasher>;

/// ZRANGESTORE's source side: the selected elements (copies), or the
/// error to reply.
fn rangestore_source(db: &mut Db, args: &Args) -> Result<Elems, &'static str> {
    let spec = parse_range(args, 2, true, By::Auto, Dir::Auto)?;
    match read_zset(db, args.get(2)) {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(z)) => Ok(selected(z, &spec).map(|(m, s)| (Box::from(m), s)).collect()),
        Err(WrongType) => Err(err::WRONGTYPE),
    }
}

/// The STORE half of every storing command (the Z*STORE forms and geo's
/// STORE/STOREDIST): replaces `dst` whatever it held (TTL included); an
/// empty result deletes it. Returns the count.
pub(crate) fn store_elems(db: &mut Db, dst: &[u8], elems: &[(Box<[u8]>, f64)]) -> usize {
    let n = elems.len();
    if n == 0 {
        db.delete(dst);
    } else {
        let z = ZSet::from_pairs(elems.iter().map(|(m, s)| (&m[..], *s)), &db.limits);
        db.set(dst, Value::ZSet(Box::new(z)), Ttl::Clear);
    }
    n
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`
pub fn zrangestore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    match rangestore_source(db, args) {
        Ok(elems) => {
            let n = store_elems(db, args.get(1), &elems);
            out.int(n as i64)
        }
        Err(e) => out.error(e),
    }
}

spread!(zrangestore_spread => zrangestore_across);

async fn zrangestore_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (dst, src) = (args.get(1).to_vec(), args.get(2));
    let mut atomic = Atomic::new(shard, tx, [&dst[..], src]);
    let (buf, ranges) = (args.buf().to_vec(), args.ranges().to_vec());
    let fetched = atomic
        .on(shard.owner(src), move |s: &Shard| {
            rangestore_source(&mut s.db(), &Args::new(&buf, &ranges))
        })
        .await;
    let elems = match fetched {
        Some(Ok(elems)) => elems,
        Some(Err(e)) => return out.error(e),
        None => return out.error(SHARD_GONE),
    };
    let home = shard.owner(&dst);
    match atomic
        .on(home, move |s: &Shard| {
            store_elems(&mut s.db(), &dst, &elems)
        })
        .await
    {
        Some(n) => out.int(n as i64),
        None => out.error(SHARD_GONE),
    }
}

// ------------------------------------------------------- removing ranges

fn remrange_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, by: By) {
    let select = match by {
        By::Rank => match (args.int(2), args.int(3)) {
            (Ok(a), Ok(b)) => Select::Ranks(a, b),
            (Err(e), _) | (_, Err(e)) => return out.error(e),
        },
        By::Score => match score_range(args.get(2), args.get(3)) {
            Ok(r) => Select::Bounds(r),
            Err(e) => return out.error(e),
        },
        _ => match lex_range(args.get(2), args.get(3)) {
            Ok(r) => Select::Bounds(r),
            Err(e) => return out.error(e),
        },
    };
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.int(0);
    };
    let Ok(mut z) = guard.zset() else {
        return out.error(err::WRONGTYPE);
    };
    let (a, b) = match select {
        Select::Ranks(start, stop) => clamp_ranks(start, stop, z.len()),
        Select::Bounds(range) => z.rank_range(&range),
    };
    let n = z.remove_ranks(a, b, |_, _| {});
    out.int(n as i64);
}

/// `ZREMRANGEBYRANK key start stop`
pub fn zremrangebyrank(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    remrange_generic(db, args, out, By::Rank)
}

/// `ZREMRANGEBYSCORE key min max`
pub fn zremrangebyscore(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    remrange_generic(db, args, out, By::Score)
}

/// `ZREMRANGEBYLEX key min max`
pub fn zremrangebylex(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    remrange_generic(db, args, out, By::Lex)
}

// ------------------------------------------------------------------ pops

/// Pops up to `count` elements from `key` (a sorted set), lowest first or,
/// with `max`, highest first.
fn pop_many(db: &mut Db, key: &[u8], max: bool, count: usize) -> Elems {
    let Some(mut guard) = db.entry_mut(key) else {
        return Vec::new();
    };
    let Ok(mut z) = guard.zset() else {
        return Vec::new();
    };
    let n = count.min(z.len());
    let mut popped = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(e) = z.pop(max, |m, s| (Box::from(m), s)) {
            popped.push(e);
        }
    }
    popped
}

fn zpop_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, max: bool) {
    if args.len() > 3 {
        return out.error(err::SYNTAX);
    }
    let mut count = 1;
    if args.len() == 3 {
        // Redis 7.0 answers the same to a count that is not a number.
        match parse_i64(args.get(2)) {
            None => return out.error(err::OUT_OF_RANGE_POSITIVE),
            Some(c) if c < 0 => return out.error(err::OUT_OF_RANGE_POSITIVE),
            Some(0) => return out.array(0),
            Some(c) => count = usize::try_from(c).unwrap_or(usize::MAX),
        }
    }
    // A guard that pops nothing (wrong type) is no write for WATCH.
    let Some(mut guard) = db.entry_mut(args.get(1)) else {
        return out.array(0);
    };
    let Ok(mut z) = guard.zset() else {
        return out.error(err::WRONGTYPE);
    };
    // Each element goes straight from the set into the reply (the guard
    // deletes the key if this empties it).
    let n = count.min(z.len());
    out.array(n * 2);
    for _ in 0..n {
        z.pop(max, |m, s| {
            out.bulk(m);
            reply_score(out, s)
        })
        .expect("n is at most the length");
    }
}

/// `ZPOPMIN key [count]`
pub fn zpopmin(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    zpop_generic(db, args, out, false)
}

/// `ZPOPMAX key [count]`
pub fn zpopmax(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    zpop_generic(db, args, out, true)
}

/// ZMPOP's parsed arguments: key count, MAX?, elements to pop.
fn zmpop_args(args: &Args) -> Result<(usize, bool, usize), &'static str> {
    let n = numkeys(args, 1)?;
    let where_at = n
        .checked_add(2)
        .filter(|&w| w < args.len())
        .ok_or(err::SYNTAX)?;
    let max = if args.is(where_at, "MIN") {
        false
    } else if args.is(where_at, "MAX") {
        true
    } else {
        return Err(err::SYNTAX);
    };
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
    Ok((n, max, count.unwrap_or(1)))
}

/// ZMPOP's keys: `args[2..=1+numkeys]`, when valid up to MIN|MAX.
pub fn zmpop_keys(args: &Args) -> Option<(usize, usize)> {
    let n = numkeys(args, 1).ok()?;
    (n.checked_add(2)? < args.len()).then_some((2, 1 + n))
}

fn reply_mpop(out: &mut Vec<u8>, key: &[u8], elems: &Elems) {
    out.array(2);
    out.bulk(key);
    out.array(elems.len());
    for (m, s) in elems {
        out.array(2);
        out.bulk(m);
        reply_score(out, *s);
    }
}

fn is_zset(v: &Value) -> bool {
    matches!(v, Value::ZSet(_))
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`, keys on one shard.
pub fn zmpop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let (n, max, count) = match zmpop_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    for key in args.iter_from(2).take(n) {
        match probe(db, key, is_zset) {
            Probe::Missing => continue,
            Probe::Wrong => return out.error(err::WRONGTYPE),
            Probe::Fits => {
                let popped = pop_many(db, key, max, count);
                return reply_mpop(out, key, &popped);
            }
        }
    }
    out.nil_array();
}

spread!(zmpop_spread => zmpop_across);

/// ZMPOP over several shards: every shard reports what its keys hold, then
/// the first key (in argument order) that exists decides, all shards held.
async fn zmpop_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let (n, max, count) = match zmpop_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let popped = mpop_across(shard, tx, args, n, is_zset, move |db, key| {
        pop_many(db, key, max, count)
    });
    match popped.await {
        Ok(Some((key, elems))) if !elems.is_empty() => reply_mpop(out, &key, &elems),
        Ok(_) => out.nil_array(),
        Err(e) => out.error(e),
    }
}

// ---------------------------------------------------- ZRANDMEMBER, ZSCAN

/// `ZRANDMEMBER key [count [WITHSCORES]]`
pub fn zrandmember(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if args.len() == 2 {
        let mut pick = Picker::new(db);
        return match read_zset(db, args.get(1)) {
            Ok(None) => out.nil(),
            Ok(Some(z)) => {
                let (m, _) = z.get_rank(pick.below(z.len())).expect("in range");
                out.bulk(m)
            }
            Err(WrongType) => out.error(err::WRONGTYPE),
        };
    }
    let l = match parse_i64(args.get(2)) {
        None => return out.error(err::NOT_INTEGER),
        Some(i64::MIN) => {
            return out.error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            );
        }
        Some(l) => l,
    };
    if args.len() > 4 || (args.len() == 4 && !args.is(3, "WITHSCORES")) {
        return out.error(err::SYNTAX);
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return out.error("ERR value is out of range");
    }
    let mut pick = Picker::new(db);
    let z = match read_zset(db, args.get(1)) {
        Ok(None) => return out.array(0),
        Ok(Some(z)) => z,
        Err(WrongType) => return out.error(err::WRONGTYPE),
    };
    let per = if withscores { 2 } else { 1 };
    let count = l.unsigned_abs();
    if count == 0 {
        return out.array(0);
    }
    let len = z.len();
    let emit = |out: &mut Vec<u8>, (m, s): (&[u8], f64)| {
        out.bulk(m);
        if withscores {
            reply_score(out, s);
        }
    };
    if l < 0 {
        // Repeats allowed: `count` independent draws. Redis would emit
        // any count; Kora refuses one whose reply could not be held
        // (a core would stall building it).
        if count > MAX_RANDOM_REPLY {
            return out.error("ERR value is out of range");
        }
        let count = count as usize;
        out.array(count * per);
        for _ in 0..count {
            emit(out, z.get_rank(pick.below(len)).expect("in range"));
        }
        return;
    }
    if count as u128 >= len as u128 {
        out.array(len * per);
        for e in z.iter() {
            emit(out, e);
        }
        return;
    }
    let count = count as usize;
    out.array(count * per);
    for r in pick.distinct(len, count) {
        emit(out, z.get_rank(r).expect("in range"));
    }
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
pub fn zscan(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let cursor = match parse_cursor(args.get(2)) {
        Ok(c) => c,
        Err(e) => return out.error(e),
    };
    let z = match read_zset(db, args.get(1)) {
        Ok(Some(z)) => z,
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
    let mut found: Vec<(&[u8], f64)> = Vec::new();
    let cursor = usize::try_from(cursor).unwrap_or(usize::MAX);
    let next = z.scan(cursor, count, |m, s| {
        if pattern.is_none_or(|p| glob_match(p, m)) {
            found.push((m, s));
        }
    });
    out.array(2);
    out.bulk_u64(next as u64);
    reply_elems(out, found.into_iter(), true);
}

// ------------------------------------------------ ZUNION, ZINTER, ZDIFF

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agg {
    Sum,
    Min,
    Max,
}

/// Options after the keys.
struct AlgebraOpts {
    weights: Vec<f64>,
    agg: Agg,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
}

/// The command's shape: where numkeys is, whether it stores, whether it
/// only counts.
#[derive(Clone, Copy)]
struct Shape {
    op: SetOp,
    store: bool,
    card: bool,
    name: &'static str,
}

impl Shape {
    fn numkeys_at(self) -> usize {
        if self.store { 2 } else { 1 }
    }
}

/// numkeys, checked against the arguments (before any key is read).
fn algebra_numkeys(args: &Args, shape: Shape) -> Result<usize, String> {
    let at = shape.numkeys_at();
    let n = args.int(at).map_err(str::to_string)?;
    if n < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            shape.name
        ));
    }
    if n as u64 > (args.len() - (at + 1)) as u64 {
        return Err(err::SYNTAX.to_string());
    }
    Ok(n as usize)
}

/// The options after the keys (parsed after the keys are read, as Redis).
fn algebra_opts(args: &Args, shape: Shape, n: usize) -> Result<AlgebraOpts, &'static str> {
    let mut o = AlgebraOpts {
        weights: vec![1.0; n],
        agg: Agg::Sum,
        withscores: false,
        limit: 0,
    };
    let mut j = shape.numkeys_at() + 1 + n;
    while j < args.len() {
        let remaining = args.len() - j;
        let plain = shape.op != SetOp::Diff && !shape.card;
        if plain && remaining > n && args.is(j, "WEIGHTS") {
            j += 1;
            for w in o.weights.iter_mut() {
                *w = parse_f64(args.get(j)).ok_or(WEIGHT_NOT_FLOAT)?;
                j += 1;
            }
        } else if plain && remaining >= 2 && args.is(j, "AGGREGATE") {
            o.agg = if args.is(j + 1, "SUM") {
                Agg::Sum
            } else if args.is(j + 1, "MIN") {
                Agg::Min
            } else if args.is(j + 1, "MAX") {
                Agg::Max
            } else {
                return Err(err::SYNTAX);
            };
            j += 2;
        } else if !shape.store && !shape.card && args.is(j, "WITHSCORES") {
            o.withscores = true;
            j += 1;
        } else if shape.card && remaining >= 2 && args.is(j, "LIMIT") {
            o.limit = match parse_i64(args.get(j + 1)) {
                Some(l) if l >= 0 => usize::try_from(l).unwrap_or(usize::MAX),
                _ => return Err(LIMIT_NEGATIVE),
            };
            j += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok(o)
}

/// A source's elements: a sorted set's, or a set's with score 1.
fn copy_source(value: Option<&Value>) -> Result<Option<Elems>, WrongType> {
    match value {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z.iter().map(|(m, s)| (Box::from(m), s)).collect())),
        Some(Value::Set(s)) => Ok(Some(s.iter().map(|m| (Box::from(&*m), 1.0)).collect())),
        Some(_) => Err(WrongType),
    }
}

fn fetch_local(db: &mut Db, keys: &[&[u8]]) -> Result<Vec<Option<Elems>>, WrongType> {
    keys.iter().map(|k| copy_source(db.get(k))).collect()
}

#[inline]
fn aggregate(acc: &mut f64, v: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *acc += v;
            // inf + -inf: Redis keeps 0.
            if acc.is_nan() {
                *acc = 0.0;
            }
        }
        Agg::Min => *acc = acc.min(v),
        Agg::Max => *acc = acc.max(v),
    }
}

#[inline]
fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() { 0.0 } else { v }
}

/// The algebra over the sources (argument order), sorted as a sorted set.
fn combine(op: SetOp, sources: Vec<Option<Elems>>, o: &AlgebraOpts) -> Elems {
    let mut sources: Vec<(Elems, f64)> = match op {
        SetOp::Inter if sources.iter().any(Option::is_none) => return Vec::new(),
        _ => sources
            .into_iter()
            .zip(o.weights.iter().copied())
            .map(|(s, w)| (s.unwrap_or_default(), w))
            .collect(),
    };
    let mut result: Elems = match op {
        SetOp::Union => {
            // Smallest first, as Redis aggregates (the order of a sum).
            sources.sort_by_key(|(s, _)| s.len());
            let mut acc: HashMap<Box<[u8]>, f64, Hasher> = HashMap::with_hasher(Hasher::new());
            for (elems, w) in sources {
                for (m, s) in elems {
                    let v = weighted(s, w);
                    match acc.get_mut(&m) {
                        Some(cur) => aggregate(cur, v, o.agg),
                        None => {
                            acc.insert(m, v);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
        SetOp::Inter => {
            sources.sort_by_key(|(s, _)| s.len());
            let mut rest = sources.split_off(1);
            let (first, w0) = sources.pop().expect("at least one key");
            let maps: Vec<(Scores, f64)> = rest
                .drain(..)
                .map(|(elems, w)| {
                    let mut m = HashMap::with_capacity_and_hasher(elems.len(), Hasher::new());
                    m.extend(elems);
                    (m, w)
                })
                .collect();
            first
                .into_iter()
                .filter_map(|(m, s)| {
                    let mut acc = weighted(s, w0);
                    for (map, w) in &maps {
                        aggregate(&mut acc, weighted(*map.get(&m)?, *w), o.agg);
                    }
                    Some((m, acc))
                })
                .collect()
        }
        SetOp::Diff => {
            let mut it = sources.into_iter();
            let (first, _) = it.next().expect("at least one key");
            let others: Vec<std::collections::HashSet<Box<[u8]>, Hasher>> = it
                .map(|(elems, _)| elems.into_iter().map(|(m, _)| m).collect())
                .collect();
            first
                .into_iter()
                .filter(|(m, _)| !others.iter().any(|o| o.contains(m)))
                .collect()
        }
    };
    result.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    result
}

/// ZINTERCARD's count over the sources, stopping at `limit` (0: none).
fn inter_card(sources: Vec<Option<Elems>>, limit: usize) -> usize {
    let Some(mut sources) = sources.into_iter().collect::<Option<Vec<Elems>>>() else {
        return 0;
    };
    sources.sort_by_key(Vec::len);
    let first = sources.remove(0);
    let sets: Vec<std::collections::HashSet<Box<[u8]>, Hasher>> = sources
        .into_iter()
        .map(|e| e.into_iter().map(|(m, _)| m).collect())
        .collect();
    let mut n = 0;
    for (m, _) in first {
        if sets.iter().all(|s| s.contains(&m)) {
            n += 1;
            if limit != 0 && n >= limit {
                break;
            }
        }
    }
    n
}

/// Finishes an algebra command once the sources are known: options,
/// computation, and the reply or the elements to store.
enum Outcome {
    Reply(Vec<u8>),
    Store(Elems),
}

fn algebra_finish(args: &Args, shape: Shape, n: usize, sources: Vec<Option<Elems>>) -> Outcome {
    let mut out = Vec::new();
    let o = match algebra_opts(args, shape, n) {
        Ok(o) => o,
        Err(e) => {
            out.error(e);
            return Outcome::Reply(out);
        }
    };
    if shape.card {
        out.int(inter_card(sources, o.limit) as i64);
        return Outcome::Reply(out);
    }
    let result = combine(shape.op, sources, &o);
    if shape.store {
        return Outcome::Store(result);
    }
    reply_elems(
        &mut out,
        result.iter().map(|(m, s)| (&m[..], *s)),
        o.withscores,
    );
    Outcome::Reply(out)
}

fn algebra_whole(db: &mut Db, args: &Args, out: &mut Vec<u8>, shape: Shape) {
    let n = match algebra_numkeys(args, shape) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let first = shape.numkeys_at() + 1;
    let keys: Vec<&[u8]> = args.iter_from(first).take(n).collect();
    let sources = match fetch_local(db, &keys) {
        Ok(s) => s,
        Err(WrongType) => return out.error(err::WRONGTYPE),
    };
    match algebra_finish(args, shape, n, sources) {
        Outcome::Reply(r) => out.extend_from_slice(&r),
        Outcome::Store(elems) => {
            let n = store_elems(db, args.get(1), &elems);
            out.int(n as i64)
        }
    }
}

async fn algebra_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>, shape: Shape) {
    let n = match algebra_numkeys(args, shape) {
        Ok(n) => n,
        Err(e) => return out.error(&e),
    };
    let first = shape.numkeys_at() + 1;
    let last = first + n - 1;
    let dst = shape.store.then(|| args.get(1).to_vec());
    let keys = Args::new(args.buf(), &args.ranges()[..=last]);
    let mut atomic = Atomic::new(shard, tx, keys.iter_from(first).chain(dst.as_deref()));
    let mut sources: Vec<Option<Elems>> = (0..n).map(|_| None).collect();
    for part in parts_by_owner(shard, &keys, first, 1) {
        let wanted = part.args;
        let fetched = atomic
            .on(part.shard, move |s: &Shard| {
                let keys: Vec<&[u8]> = wanted.iter().collect();
                fetch_local(&mut s.db(), &keys)
            })
            .await;
        match fetched {
            Some(Ok(got)) => {
                for (at, src) in part.groups.into_iter().zip(got) {
                    sources[at] = src;
                }
            }
            Some(Err(WrongType)) => return out.error(err::WRONGTYPE),
            None => return out.error(SHARD_GONE),
        }
    }
    match algebra_finish(args, shape, n, sources) {
        Outcome::Reply(r) => out.extend_from_slice(&r),
        Outcome::Store(elems) => {
            let dst = dst.expect("a storing command");
            let home = shard.owner(&dst);
            match atomic
                .on(home, move |s: &Shard| {
                    store_elems(&mut s.db(), &dst, &elems)
                })
                .await
            {
                Some(n) => out.int(n as i64),
                None => out.error(SHARD_GONE),
            }
        }
    }
}

/// Keys of ZUNION/ZINTER/ZDIFF/ZINTERCARD: `args[2..=1+numkeys]`.
pub fn algebra_keys(args: &Args) -> Option<(usize, usize)> {
    let n = usize::try_from(parse_i64(args.get(1))?).ok()?;
    (n >= 1 && n <= args.len() - 2).then_some((2, 1 + n))
}

/// Keys of the STORE forms: the destination, numkeys (a shard is picked
/// for it too: a key finder names one contiguous range) and the sources.
pub fn algebra_store_keys(args: &Args) -> Option<(usize, usize)> {
    let n = usize::try_from(parse_i64(args.get(2))?).ok()?;
    (n >= 1 && n <= args.len() - 3).then_some((1, 2 + n))
}

macro_rules! algebra_command {
    ($whole:ident, $spread:ident, $across:ident, $op:expr, $store:expr, $card:expr, $name:literal) => {
        #[doc = concat!("`", $name, "`, keys on one shard.")]
        pub fn $whole(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
            algebra_whole(
                db,
                args,
                out,
                Shape {
                    op: $op,
                    store: $store,
                    card: $card,
                    name: $name,
                },
            )
        }

        async fn $across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
            algebra_across(
                shard,
                tx,
                args,
                out,
                Shape {
                    op: $op,
                    store: $store,
                    card: $card,
                    name: $name,
                },
            )
            .await
        }

        spread!($spread => $across);
    };
}

algebra_command!(
    zunion,
    zunion_spread,
    zunion_across,
    SetOp::Union,
    false,
    false,
    "zunion"
);
algebra_command!(
    zinter,
    zinter_spread,
    zinter_across,
    SetOp::Inter,
    false,
    false,
    "zinter"
);
algebra_command!(
    zdiff,
    zdiff_spread,
    zdiff_across,
    SetOp::Diff,
    false,
    false,
    "zdiff"
);
algebra_command!(
    zunionstore,
    zunionstore_spread,
    zunionstore_across,
    SetOp::Union,
    true,
    false,
    "zunionstore"
);
algebra_command!(
    zinterstore,
    zinterstore_spread,
    zinterstore_across,
    SetOp::Inter,
    true,
    false,
    "zinterstore"
);
algebra_command!(
    zdiffstore,
    zdiffstore_spread,
    zdiffstore_across,
    SetOp::Diff,
    true,
    false,
    "zdiffstore"
);
algebra_command!(
    zintercard,
    zintercard_spread,
    zintercard_across,
    SetOp::Inter,
    false,
    true,
    "zintercard"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{check_step, db, rng, run};

    /// Random Z* writes keep the accounting equal to a full recount and
    /// never leave an empty sorted set behind.
    #[test]
    fn accounting_matches_full_recount_after_random_zset_writes() {
        let mut db = db();
        db.limits.zset_max_entries = 16;
        let mut next = rng(99);
        db.set(b"str", Value::Str(b"x".to_vec().into()), Ttl::Clear);
        for i in 0..4000u64 {
            let key = format!("z{}", next(3));
            let m = format!("m{}", next(40));
            let long = "L".repeat(60 + next(10) as usize);
            let member = if next(20) == 0 {
                long.as_str()
            } else {
                m.as_str()
            };
            let score = format!("{}", next(30) as i64 - 10);
            let (a, b) = (next(20).to_string(), (next(20) as i64 - 10).to_string());
            let argv: Vec<&[u8]> = match next(9) {
                0..=2 => vec![b"zadd", key.as_bytes(), score.as_bytes(), member.as_bytes()],
                3 => vec![
                    b"zincrby",
                    key.as_bytes(),
                    score.as_bytes(),
                    member.as_bytes(),
                ],
                4 => vec![b"zrem", key.as_bytes(), member.as_bytes()],
                5 => vec![
                    b"zremrangebyrank",
                    key.as_bytes(),
                    a.as_bytes(),
                    b.as_bytes(),
                ],
                6 => vec![
                    b"zremrangebyscore",
                    key.as_bytes(),
                    b.as_bytes(),
                    a.as_bytes(),
                ],
                7 => vec![b"zpopmin", key.as_bytes(), a.as_bytes()],
                _ => vec![b"zpopmax", key.as_bytes()],
            };
            let handler: crate::command::Handler = match argv[0] {
                b"zadd" => zadd,
                b"zincrby" => zincrby,
                b"zrem" => zrem,
                b"zremrangebyrank" => zremrangebyrank,
                b"zremrangebyscore" => zremrangebyscore,
                b"zpopmin" => zpopmin,
                _ => zpopmax,
            };
            let reply = run(&mut db, handler, &argv);
            check_step(&db, &reply, false, &(i, &argv));
        }
    }
}
