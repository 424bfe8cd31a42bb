//! Generic key commands: DEL, EXISTS, TYPE, TTLs, and the shard-side
//! pieces of KEYS, SCAN, RANDOMKEY and RENAME, and their cross-shard
//! drivers (run by the connection): coordination code living in the
//! command layer until the `coord` module takes it.

use std::rc::Rc;

use super::{Args, ScanExtra, parse_cursor, parse_scan_options, parts_by_owner};
use crate::coord::Atomic;
use crate::coord::Shard;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::glob::glob_match;
use crate::store::{Db, Ttl, Value};

/// DEL: frees synchronously, unless `lazyfree-lazy-user-del` makes it
/// UNLINK.
pub fn del(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    if db.lazy_user_del {
        return unlink(db, args, out);
    }
    let n = args.iter_from(1).filter(|k| db.delete(k)).count();
    out.int(n as i64);
}

/// UNLINK: the keys are gone at once; large values are freed later by the
/// shard's lazy-free task (src/store/lazyfree.rs).
pub fn unlink(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let n = args.iter_from(1).filter(|k| db.unlink(k)).count();
    out.int(n as i64);
}

/// EXISTS and TOUCH: counts keys, a key named twice counts twice.
pub fn exists(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    // A read as far as statistics go: Redis counts EXISTS in keyspace hits.
    let n = args.iter_from(1).filter(|k| db.get(k).is_some()).count();
    out.int(n as i64);
}

pub fn type_of(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let name = db.get(args.get(1)).map_or("none", |e| e.type_name());
    out.simple(name);
}

/// EXPIRE family: `unit_ms` 1000 for seconds; `absolute` for *AT forms.
fn expire_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, unit_ms: i64, absolute: bool) {
    let key = args.get(1);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for (i, opt) in args.iter_from(3).enumerate() {
        let flag = [&mut nx, &mut xx, &mut gt, &mut lt]
            .into_iter()
            .zip(["NX", "XX", "GT", "LT"])
            .find(|(_, name)| args.is(3 + i, name));
        match flag {
            Some((set, _)) => *set = true,
            None => {
                return out.error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return out.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return out.error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(n) = parse_i64(args.get(2)) else {
        return out.error(err::NOT_INTEGER);
    };
    let invalid = || format!("ERR invalid expire time in '{}' command", args.name_lossy());
    let Some(mut at) = n.checked_mul(unit_ms) else {
        return out.error(&invalid());
    };
    if !absolute {
        match at.checked_add(db.now_ms as i64) {
            Some(v) => at = v,
            None => return out.error(&invalid()),
        }
    }
    // Write access (a hot-key count); WATCH hears only of a TTL set below.
    let Some(current) = db.entry_mut(key).map(|e| e.expire_at()) else {
        return out.int(0);
    };
    // No TTL behaves as an infinite one for GT/LT.
    let current_inf = if current == 0 {
        i64::MAX
    } else {
        current as i64
    };
    if (nx && current != 0)
        || (xx && current == 0)
        || (gt && at <= current_inf)
        || (lt && at >= current_inf)
    {
        return out.int(0);
    }
    if at <= db.now_ms as i64 {
        db.remove(key);
    } else {
        db.set_expire(key, at as u64);
    }
    out.int(1);
}

pub fn expire(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expire_generic(db, args, out, 1000, false);
}

pub fn pexpire(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expire_generic(db, args, out, 1, false);
}

pub fn expireat(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expire_generic(db, args, out, 1000, true);
}

pub fn pexpireat(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expire_generic(db, args, out, 1, true);
}

/// -2 missing, -1 no TTL, else remaining time in `unit_ms` (rounded as
/// Redis: TTL rounds to the nearest second).
fn ttl_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, unit_ms: u64) {
    let now = db.now_ms;
    match db.get_with_expire(args.get(1)).map(|(_, at)| at) {
        None => out.int(-2),
        Some(0) => out.int(-1),
        Some(at) => {
            let left = at.saturating_sub(now);
            out.int(((left + unit_ms / 2) / unit_ms) as i64)
        }
    }
}

pub fn ttl(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    ttl_generic(db, args, out, 1000);
}

pub fn pttl(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    ttl_generic(db, args, out, 1);
}

fn expiretime_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, unit_ms: u64) {
    match db.get_with_expire(args.get(1)).map(|(_, at)| at) {
        None => out.int(-2),
        Some(0) => out.int(-1),
        Some(at) => out.int(((at + unit_ms / 2) / unit_ms) as i64),
    }
}

pub fn expiretime(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expiretime_generic(db, args, out, 1000);
}

pub fn pexpiretime(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    expiretime_generic(db, args, out, 1);
}

pub fn persist(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let key = args.get(1);
    match db.entry_mut(key).map(|e| e.expire_at()) {
        Some(at) if at != 0 => {
            db.set_expire(key, 0);
            out.int(1);
        }
        _ => out.int(0),
    }
}

/// Shard side of KEYS: every live key matching `pattern`.
pub fn matching_keys(db: &Db, pattern: &[u8]) -> Vec<Vec<u8>> {
    let all = pattern == b"*";
    db.iter()
        .enumerate()
        .filter(|(i, (k, _))| db.is_live_at(*i) && (all || glob_match(pattern, k)))
        .map(|(_, (k, _))| k.to_vec())
        .collect()
}

/// Filters of a SCAN call.
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    pub pattern: Option<Vec<u8>>,
    pub type_name: Option<String>,
}

impl ScanFilter {
    pub fn accepts(&self, key: &[u8], value: &Value) -> bool {
        self.pattern.as_deref().is_none_or(|p| glob_match(p, key))
            && self
                .type_name
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(value.type_name()))
    }
}

/// Shard side of SCAN: looks at `count` positions from `pos`; returns the
/// next position (None when the shard is done) and the matching keys.
pub fn scan_step(
    db: &Db,
    pos: usize,
    count: usize,
    filter: &ScanFilter,
) -> (Option<usize>, Vec<Vec<u8>>) {
    let end = pos.saturating_add(count).min(db.len());
    let keys = (pos..end)
        .filter(|&i| db.is_live_at(i))
        .filter_map(|i| db.key_at(i))
        .filter(|(k, e)| filter.accepts(k, e))
        .map(|(k, _)| k.to_vec())
        .collect();
    (if end < db.len() { Some(end) } else { None }, keys)
}

/// Shard side of RANDOMKEY: expired keys met on the way are deleted, as
/// Redis does; the number of tries is bounded so a shard full of expired
/// keys cannot stall.
pub fn random_key(db: &mut Db) -> Option<Vec<u8>> {
    for _ in 0..100 {
        if db.is_empty() {
            return None;
        }
        let idx = db.random_index(db.len());
        if db.is_live_at(idx) {
            return db.key_at(idx).map(|(k, _)| k.to_vec());
        }
        db.expire_at_index(idx);
    }
    None
}

/// Shard side of a cross-shard RENAME: removes and returns the live entry
/// with its expiry time (0: none).
pub fn take(db: &mut Db, key: &[u8]) -> Option<(Value, u64)> {
    if db.contains(key) {
        db.remove_with_expire(key)
    } else {
        None
    }
}

/// Shard side of a cross-shard RENAME: installs the moved entry.
pub fn put(db: &mut Db, key: &[u8], (value, expire_at): (Value, u64)) {
    let ttl = if expire_at == 0 {
        Ttl::Clear
    } else {
        Ttl::At(expire_at)
    };
    db.set(key, value, ttl);
}

/// RENAME/RENAMENX when both keys live on one shard. Returns the reply.
pub fn rename_local(db: &mut Db, src: &[u8], dst: &[u8], nx: bool, out: &mut Vec<u8>) {
    if !db.contains(src) {
        return out.error(err::NO_SUCH_KEY);
    }
    if nx && db.contains(dst) {
        return out.int(0);
    }
    if src != dst {
        let entry = db.remove_with_expire(src).expect("checked live above");
        put(db, dst, entry);
    }
    if nx { out.int(1) } else { out.ok() }
}

// ---- Connection-side drivers: these run on the client's core and reach
// ---- other shards through the coordination layer (`crate::coord`).

/// The reply when a shard could not be reached (only while shutting down).
pub const SHARD_GONE: &str = "ERR shard unavailable";

/// KEYS: every shard's matches, concatenated.
pub async fn keys_all(shard: &Rc<Shard>, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let pattern = args.get(1).to_vec();
    let per_shard =
        crate::coord::all_at_once(shard, tx, move |s: &Shard| matching_keys(&s.db(), &pattern))
            .await;
    out.array(per_shard.iter().map(Vec::len).sum());
    for key in per_shard.iter().flatten() {
        out.bulk(key);
    }
}

/// Bits of a SCAN cursor that name the shard; the rest is the position
/// inside that shard's table.
const CURSOR_SHARD_BITS: u32 = 10;

/// SCAN: the cursor walks shard 0's positions, then shard 1's, and so on,
/// so every key present for the whole iteration is returned once.
pub async fn scan_all(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let (cursor, opts) = match parse_cursor(args.get(1))
        .and_then(|c| Ok((c, parse_scan_options(args, 2, ScanExtra::Type)?)))
    {
        Ok(parsed) => parsed,
        Err(e) => return out.error(e),
    };
    let count = opts.count;
    let filter = ScanFilter {
        pattern: opts.pattern.map(<[u8]>::to_vec),
        type_name: opts
            .type_name
            .map(|t| String::from_utf8_lossy(t).into_owned()),
    };
    let mut target = (cursor & ((1 << CURSOR_SHARD_BITS) - 1)) as usize;
    let mut pos = (cursor >> CURSOR_SHARD_BITS) as usize;
    let mut keys = Vec::new();
    let mut next = 0u64;
    while target < shard.nshards() {
        let f = filter.clone();
        let (more, found) = crate::coord::on(shard, target, move |s: &Shard| {
            scan_step(&s.db(), pos, count, &f)
        })
        .await
        .unwrap_or((None, Vec::new()));
        keys.extend(found);
        match more {
            Some(p) => {
                next = ((p as u64) << CURSOR_SHARD_BITS) | target as u64;
                break;
            }
            None => {
                target += 1;
                pos = 0;
                next = if target < shard.nshards() {
                    target as u64
                } else {
                    0
                };
                if keys.len() >= count {
                    break;
                }
            }
        }
    }
    out.array(2);
    out.bulk_u64(next);
    out.array(keys.len());
    for key in &keys {
        out.bulk(key);
    }
}

pub async fn random_key_any(shard: &Shard, out: &mut Vec<u8>) {
    let sizes = crate::coord::all(shard, |s: &Shard| s.db().len()).await;
    let total: usize = sizes.iter().sum();
    if total > 0 {
        // Start at a shard picked in proportion to its size; if it holds
        // only expired keys, go on to the next ones.
        let mut pick = shard.db().random_index(total);
        let first = sizes
            .iter()
            .position(|&n| {
                if pick < n {
                    true
                } else {
                    pick -= n;
                    false
                }
            })
            .unwrap_or(0);
        for i in 0..shard.nshards() {
            let target = (first + i) % shard.nshards();
            if sizes[target] == 0 {
                continue;
            }
            if let Some(Some(key)) =
                crate::coord::on(shard, target, |s: &Shard| random_key(&mut s.db())).await
            {
                return out.bulk(&key);
            }
        }
    }
    out.nil();
}

/// RENAME when both keys live on one shard.
pub fn rename(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    rename_local(db, args.get(1), args.get(2), false, out);
}

/// RENAMENX when both keys live on one shard.
pub fn renamenx(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    rename_local(db, args.get(1), args.get(2), true, out);
}

spread!(del_spread => del_across);
spread!(unlink_spread => unlink_across);
spread!(exists_spread => exists_across);
spread!(rename_spread => rename_across);
spread!(renamenx_spread => renamenx_across);

/// DEL, UNLINK, EXISTS and TOUCH over several shards: each shard counts
/// its keys while every involved shard is held; the counts add up.
async fn count_across(
    shard: &Shard,
    tx: u64,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    count: fn(&mut Db, &[u8]) -> bool,
) {
    let parts = parts_by_owner(shard, args, 1, 1);
    let mut atomic = Atomic::new(shard, tx, args.iter_from(1));
    let mut total = 0i64;
    for part in parts {
        let keys = part.args;
        let counted = atomic.on(part.shard, move |s: &Shard| {
            let mut db = s.db();
            keys.iter().filter(|k| count(&mut db, k)).count() as i64
        });
        match counted.await {
            Some(n) => total += n,
            None => return out.error(SHARD_GONE),
        }
    }
    out.int(total);
}

async fn del_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let del = |db: &mut Db, key: &[u8]| {
        if db.lazy_user_del {
            db.unlink(key)
        } else {
            db.delete(key)
        }
    };
    count_across(shard, tx, args, out, del).await
}

async fn unlink_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    count_across(shard, tx, args, out, |db, key| db.unlink(key)).await
}

async fn exists_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    count_across(shard, tx, args, out, |db, key| db.get(key).is_some()).await
}

async fn rename_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    rename_any(shard, tx, args, false, out).await
}

async fn renamenx_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    rename_any(shard, tx, args, true, out).await
}

/// RENAME / RENAMENX with the keys on two shards: both are held while the
/// value moves, so every other client sees the key under exactly one of
/// the names. A value taken but not installed (the destination's shard
/// stopped) goes back where it was, and the client gets an error.
async fn rename_any(shard: &Shard, tx: u64, args: &Args<'_>, nx: bool, out: &mut Vec<u8>) {
    let (src, dst) = (args.get(1).to_vec(), args.get(2).to_vec());
    let (from, to) = (shard.owner(&src), shard.owner(&dst));
    let mut atomic = Atomic::new(shard, tx, [&src[..], &dst[..]]);
    if nx {
        let probe = dst.clone();
        match atomic
            .on(to, move |s: &Shard| s.db().contains(&probe))
            .await
        {
            Some(false) => {}
            Some(true) => {
                // As Redis: a missing source is reported before "exists".
                let probe = src.clone();
                return match atomic
                    .on(from, move |s: &Shard| s.db().contains(&probe))
                    .await
                {
                    Some(true) => out.int(0),
                    Some(false) => out.error(err::NO_SUCH_KEY),
                    None => out.error(SHARD_GONE),
                };
            }
            None => return out.error(SHARD_GONE),
        }
    }
    let key = src.clone();
    let Some(taken) = atomic
        .on(from, move |s: &Shard| take(&mut s.db(), &key))
        .await
    else {
        return out.error(SHARD_GONE);
    };
    let Some(entry) = taken else {
        return out.error(err::NO_SUCH_KEY);
    };
    let (key, entry) = (dst, Box::new(entry));
    let installed = atomic
        .on(to, move |s: &Shard| {
            put(&mut s.db(), &key, *entry);
        })
        .await;
    if installed.is_none() {
        // The closure (and the value in it) was dropped with the request
        // only if it never ran; the shard is stopping, so say so.
        return out.error(SHARD_GONE);
    }
    if nx { out.int(1) } else { out.ok() }
}
