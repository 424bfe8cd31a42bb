//! The mutation guard: the one way a command changes a value in place.
//!
//! `Db::entry_mut` / `Db::entry_or_insert_with` hand out an [`EntryMut`]
//! for a live key. Its typed views ([`ListMut`], [`HashMut`], [`SetMut`],
//! [`StrMut`]) read like the container they wrap but only change it
//! through methods that add what they change to the guard's running
//! delta (a table element's cost, or a packed value's size before/after,
//! both O(1) to compute; see `super::agg`), so a handler cannot change a
//! value without accounting for it. Writes past the encoding thresholds
//! (`Db::limits`) convert a packed value inside these methods. When the guard is dropped the `Db` is settled once:
//! `mem_used` moves by the delta, a WATCHed key's modification count is
//! bumped, and an aggregate left empty is removed (Redis never keeps an
//! empty list, hash or set). Modeled on Dragonfly's `DbSlice::AutoUpdater`.
//!
//! WATCH sees what Redis 7.0 signals as a modification: a guard whose
//! holder wrote through a view bumps the key's version exactly once when it
//! drops, however many elements changed; a guard that only read, was
//! refused with WRONGTYPE, or called a view method that changed nothing
//! (SADD of a member already there, SREM of one that is not, ZADD of an
//! unchanged score) bumps nothing, and neither does removing an aggregate
//! the guard itself created and never filled (no command does that today;
//! the guard keeps it true for the next one).
//! Methods that overwrite (HSET, LSET, LTRIM, APPEND, INCRBY) count as
//! writes even when the value comes out the same, as Redis' do.

use std::ops::Deref;

use super::agg::{Hash, Limits, List, Set};
use super::zset::{Inserted, ZSet};
use super::{Db, DbKey, StrEncoding, StrValue, Value, WrongType, str_size, touch_watched};
use crate::protocol::reply::IntText;

/// Write access to one live entry; settles the `Db` when dropped (see the
/// module docs). Derefs to the value for reading.
pub struct EntryMut<'a> {
    db: &'a mut Db,
    idx: usize,
    change: Change,
}

/// What the holder of a guard did to its value, settled on drop.
#[derive(Default)]
struct Change {
    /// Bytes the value grew by (negative: shrank) since the guard was made.
    delta: isize,
    /// Whether a view method wrote: only then does WATCH see a change.
    wrote: bool,
}

impl Change {
    /// The value went from `before` to `after` bytes.
    #[inline]
    fn resized(&mut self, before: usize, after: usize) {
        self.delta += after as isize - before as isize;
    }

    /// Records a write when `did` is true; hands `did` back.
    #[inline]
    fn wrote_if(&mut self, did: bool) -> bool {
        self.wrote |= did;
        did
    }
}

impl Db {
    /// Write access to an existing live key (lazy expiry first); counts a
    /// hot-key access but no keyspace hit or miss, as Redis' write lookups.
    #[inline]
    pub fn entry_mut(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        let idx = self.access(key).1?;
        Some(EntryMut {
            db: self,
            idx,
            change: Change::default(),
        })
    }

    /// Write access to `key`, creating it without a TTL as `make()` (an
    /// empty container) when it is missing. The caller checks the type
    /// through the typed views; a created aggregate that is still empty
    /// when the guard drops is removed again.
    #[inline]
    pub fn entry_or_insert_with(
        &mut self,
        key: &[u8],
        make: impl FnOnce() -> Value,
    ) -> EntryMut<'_> {
        let idx = match self.access(key) {
            (_, Some(idx)) => idx,
            (hash, None) => {
                let k = DbKey::new(key, self.clock.fresh(self.now_secs));
                self.insert_new(k, hash, make())
            }
        };
        EntryMut {
            db: self,
            idx,
            change: Change::default(),
        }
    }
}

impl Deref for EntryMut<'_> {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.db.map[self.idx]
    }
}

impl<'a> EntryMut<'a> {
    /// The key's expiry time (unix ms); 0 without TTL.
    pub fn expire_at(&self) -> u64 {
        self.db.expire_of(self.idx)
    }

    /// The list under the key, or WRONGTYPE.
    #[inline]
    pub fn list(&mut self) -> Result<ListMut<'_>, WrongType> {
        match &mut self.db.map[self.idx] {
            Value::List(l) => Ok(ListMut {
                list: l,
                change: &mut self.change,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The hash under the key, or WRONGTYPE.
    #[inline]
    pub fn hash(&mut self) -> Result<HashMut<'_>, WrongType> {
        match &mut self.db.map[self.idx] {
            Value::Hash(h) => Ok(HashMut {
                hash: h,
                change: &mut self.change,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The set under the key, or WRONGTYPE.
    #[inline]
    pub fn set(&mut self) -> Result<SetMut<'_>, WrongType> {
        match &mut self.db.map[self.idx] {
            Value::Set(s) => Ok(SetMut {
                set: s,
                change: &mut self.change,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The sorted set under the key, or WRONGTYPE.
    #[inline]
    pub fn zset(&mut self) -> Result<ZSetMut<'_>, WrongType> {
        match &mut self.db.map[self.idx] {
            Value::ZSet(z) => Ok(ZSetMut {
                zset: z,
                change: &mut self.change,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The string under the key, or WRONGTYPE.
    #[inline]
    pub fn string(&mut self) -> Result<StrMut<'_>, WrongType> {
        match &mut self.db.map[self.idx] {
            Value::Str(s) => Ok(StrMut {
                s,
                change: &mut self.change,
            }),
            _ => Err(WrongType),
        }
    }
}

impl Drop for EntryMut<'_> {
    /// The one place where an in-place write settles the `Db`.
    #[inline]
    fn drop(&mut self) {
        let db = &mut *self.db;
        db.mem_used = db.mem_used.wrapping_add_signed(self.change.delta);
        let empty = match &db.map[self.idx] {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        };
        if empty && self.change.wrote {
            // Removal counts as the modification (`detach_at` bumps it).
            db.remove_at(self.idx);
        } else if empty {
            // Never filled, so created by this guard (a live key is never
            // an empty aggregate): gone again without anyone seeing it.
            db.remove_unseen_at(self.idx);
        } else if self.change.wrote && !db.watched.is_empty() {
            let (key, _) = db.map.get_index(self.idx).expect("guarded entry");
            touch_watched(&mut db.watched, key);
        }
    }
}

/// A list under an [`EntryMut`]: reads as the [`List`], changes only
/// through accounted methods. A list sizes itself in O(1), so each change
/// is accounted as the size difference it made.
pub struct ListMut<'g> {
    list: &'g mut List,
    change: &'g mut Change,
    limits: Limits,
}

impl Deref for ListMut<'_> {
    type Target = List;

    fn deref(&self) -> &List {
        self.list
    }
}

impl ListMut<'_> {
    #[inline]
    fn accounted<R>(&mut self, f: impl FnOnce(&mut List, &Limits) -> R) -> R {
        let before = self.list.size();
        let r = f(self.list, &self.limits);
        self.change.resized(before, self.list.size());
        r
    }

    /// Adds `elem` at the head.
    #[inline]
    pub fn push_front(&mut self, elem: &[u8]) {
        self.change.wrote = true;
        self.accounted(|l, lim| l.push_front(elem, lim));
    }

    /// Adds `elem` at the tail.
    #[inline]
    pub fn push_back(&mut self, elem: &[u8]) {
        self.change.wrote = true;
        self.accounted(|l, lim| l.push_back(elem, lim));
    }

    /// Removes the head element, handing it to `f`.
    #[inline]
    pub fn pop_front_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let r = self.accounted(|l, _| l.pop_front(f));
        self.change.wrote_if(r.is_some());
        r
    }

    /// Removes the tail element, handing it to `f`.
    #[inline]
    pub fn pop_back_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let r = self.accounted(|l, _| l.pop_back(f));
        self.change.wrote_if(r.is_some());
        r
    }

    /// Removes and returns the head element (a copy).
    #[inline]
    pub fn pop_front(&mut self) -> Option<Box<[u8]>> {
        self.pop_front_with(|e| Box::from(e))
    }

    /// Removes and returns the tail element (a copy).
    #[inline]
    pub fn pop_back(&mut self) -> Option<Box<[u8]>> {
        self.pop_back_with(|e| Box::from(e))
    }

    /// Replaces element `i` (in range).
    pub fn set(&mut self, i: usize, value: &[u8]) {
        self.change.wrote = true;
        self.accounted(|l, lim| l.set(i, value, lim));
    }

    /// Inserts before position `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, elem: &[u8]) {
        self.change.wrote = true;
        self.accounted(|l, lim| l.insert(i, elem, lim));
    }

    /// Keeps the elements for which `keep` is true; returns how many were
    /// removed.
    pub fn retain(&mut self, keep: impl FnMut(&[u8]) -> bool) -> usize {
        let removed = self.accounted(|l, _| l.retain(keep));
        self.change.wrote_if(removed > 0);
        removed
    }

    /// Keeps only positions `from..to` (LTRIM); `from <= to <= len`.
    /// A write even when it keeps everything, as Redis' LTRIM.
    pub fn keep_range(&mut self, from: usize, to: usize) {
        self.change.wrote = true;
        self.accounted(|l, _| l.keep_range(from, to));
    }
}

/// A hash under an [`EntryMut`]; packed or a table (see `super::agg`),
/// converted when a write passes the thresholds.
pub struct HashMut<'g> {
    hash: &'g mut Hash,
    change: &'g mut Change,
    limits: Limits,
}

impl Deref for HashMut<'_> {
    type Target = Hash;

    fn deref(&self) -> &Hash {
        self.hash
    }
}

impl HashMut<'_> {
    /// Sets `field` to `value`; returns whether the field is new. A write
    /// even when the value was already this one, as Redis' HSET.
    #[inline]
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.change.wrote = true;
        self.hash
            .insert(field, value, false, &self.limits, &mut self.change.delta)
    }

    /// Sets `field` only if it is absent (HSETNX); returns whether it did.
    pub fn insert_if_absent(&mut self, field: &[u8], value: &[u8]) -> bool {
        let set = self
            .hash
            .insert(field, value, true, &self.limits, &mut self.change.delta);
        self.change.wrote_if(set)
    }

    /// Removes `field`; returns whether it was there.
    #[inline]
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = self.hash.remove(field, &mut self.change.delta);
        self.change.wrote_if(removed)
    }
}

/// A sorted set under an [`EntryMut`]; packed or a skiplist (see
/// `super::zset`), converted when a write passes the thresholds.
pub struct ZSetMut<'g> {
    zset: &'g mut ZSet,
    change: &'g mut Change,
    limits: Limits,
}

impl Deref for ZSetMut<'_> {
    type Target = ZSet;

    fn deref(&self) -> &ZSet {
        self.zset
    }
}

impl ZSetMut<'_> {
    /// Sets `member`'s score, adding it when new (the caller has checked
    /// that `score` is not NaN).
    #[inline]
    pub fn insert(&mut self, member: &[u8], score: f64) -> Inserted {
        let r = self
            .zset
            .insert(member, score, &self.limits, &mut self.change.delta);
        self.change.wrote_if(!matches!(r, Inserted::Unchanged));
        r
    }

    /// Removes `member`; returns its score if it was there.
    #[inline]
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let r = self.zset.remove(member, &mut self.change.delta);
        self.change.wrote_if(r.is_some());
        r
    }

    /// Removes ascending ranks `start..end` (clamped), handing each
    /// element to `f` in ascending order; returns how many it removed.
    pub fn remove_ranks(&mut self, start: usize, end: usize, f: impl FnMut(&[u8], f64)) -> usize {
        let n = self
            .zset
            .remove_ranks(start, end, &mut self.change.delta, f);
        self.change.wrote_if(n > 0);
        n
    }

    /// Removes the lowest (or, with `max`, highest) element, handing it
    /// to `f`; None when empty.
    pub fn pop<R>(&mut self, max: bool, f: impl FnOnce(&[u8], f64) -> R) -> Option<R> {
        let n = self.zset.len();
        if n == 0 {
            return None;
        }
        let at = if max { n - 1 } else { 0 };
        let mut f = Some(f);
        let mut out = None;
        self.change.wrote = true;
        self.zset
            .remove_ranks(at, at + 1, &mut self.change.delta, |m, s| {
                if let Some(f) = f.take() {
                    out = Some(f(m, s));
                }
            });
        out
    }
}

/// A set under an [`EntryMut`]; an intset, packed or a table (see
/// `super::agg`), converted when a write passes the thresholds.
pub struct SetMut<'g> {
    set: &'g mut Set,
    change: &'g mut Change,
    limits: Limits,
}

impl Deref for SetMut<'_> {
    type Target = Set;

    fn deref(&self) -> &Set {
        self.set
    }
}

impl SetMut<'_> {
    /// Adds `member`; returns whether it is new.
    #[inline]
    pub fn insert(&mut self, member: &[u8]) -> bool {
        let added = self
            .set
            .insert(member, &self.limits, &mut self.change.delta);
        self.change.wrote_if(added)
    }

    /// Removes `member`; returns whether it was there.
    #[inline]
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.set.remove(member, &mut self.change.delta);
        self.change.wrote_if(removed)
    }

    /// Takes every member out (the key is removed when the guard drops).
    pub fn take_all(&mut self) -> Set {
        self.change.wrote = true;
        self.set.take_all(&mut self.change.delta)
    }

    /// Removes the member at position `i` (in range), handing it to `f`.
    #[inline]
    pub fn remove_index_with<R>(&mut self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.change.wrote = true;
        self.set.remove_index(i, &mut self.change.delta, f)
    }
}

/// A string under an [`EntryMut`].
pub struct StrMut<'g> {
    s: &'g mut StrValue,
    change: &'g mut Change,
}

impl Deref for StrMut<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.s
    }
}

impl StrMut<'_> {
    /// Changes the bytes in place (APPEND, SETRANGE): the string becomes
    /// "raw", as Redis unshares a string it modifies. The size change is
    /// the change of `str_size` (inline or heap capacity), O(1) to account.
    #[inline]
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        self.edit_reporting(|s| (f(s), true))
    }

    /// `edit` for a write that may leave the bytes as they were (SETBIT
    /// of the bit already there, PFADD of elements already counted): `f`
    /// returns its result and whether it changed anything, and WATCH sees
    /// a change only if it did.
    #[inline]
    pub fn edit_reporting<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> (R, bool)) -> R {
        let before = str_size(self.s);
        let (r, changed) = self.s.edit(StrEncoding::Raw, f);
        self.change.resized(before, str_size(self.s));
        self.change.wrote_if(changed);
        r
    }

    /// Replaces the value with the integer `n` (INCR and friends), which
    /// Redis stores int-encoded.
    #[inline]
    pub fn set_integer(&mut self, n: i64) {
        let before = str_size(self.s);
        self.s.assign(&IntText::new(n), StrEncoding::Auto);
        self.change.resized(before, str_size(self.s));
        self.change.wrote = true;
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::metrics::{HotKeys, ShardStats};
    use crate::store::Ttl;

    fn db() -> Db {
        Db::new(Rc::new(ShardStats::default()), HotKeys::new(8, true), 7)
    }

    fn new_list() -> Value {
        Value::List(Box::default())
    }

    fn version(db: &Db, key: &[u8]) -> u64 {
        db.watched.get(key).map_or(u64::MAX, |w| w.version)
    }

    #[test]
    fn accounting_follows_every_typed_change() {
        let mut db = db();
        {
            let mut e = db.entry_or_insert_with(b"l", new_list);
            let mut l = e.list().unwrap();
            l.push_back(b"abc");
            l.push_front(b"de");
            l.insert(1, b"xyz");
            l.set(0, b"longer value");
            assert_eq!(l.retain(|x| x != b"xyz"), 1);
        }
        assert_eq!(db.mem_used(), db.mem_recomputed());
        {
            let mut e = db.entry_or_insert_with(b"h", || Value::Hash(Box::default()));
            let mut h = e.hash().unwrap();
            assert!(h.insert(b"f", b"1"));
            assert!(!h.insert(b"f", b"22"));
            assert!(h.insert(b"g", b"3"));
            assert!(h.remove(b"g"));
            assert!(!h.remove(b"g"));
        }
        assert_eq!(db.mem_used(), db.mem_recomputed());
        {
            let mut e = db.entry_or_insert_with(b"s", || Value::Set(Box::default()));
            let mut s = e.set().unwrap();
            assert!(s.insert(b"a"));
            assert!(!s.insert(b"a"));
            assert!(s.insert(b"bb"));
            assert!(s.remove(b"a"));
            s.remove_index_with(0, |_| ());
            for i in 0..600 {
                s.insert(i.to_string().as_bytes());
            }
            assert!(s.insert(b"c"));
        }
        assert_eq!(db.mem_used(), db.mem_recomputed());
        db.set(b"str", Value::Str(b"12".to_vec().into()), Ttl::Clear);
        db.entry_mut(b"str")
            .unwrap()
            .string()
            .unwrap()
            .edit(|s| s.extend_from_slice(b"345"));
        db.entry_mut(b"str")
            .unwrap()
            .string()
            .unwrap()
            .edit(|s| s.truncate(1));
        assert_eq!(db.mem_used(), db.mem_recomputed());
        // Wrong type: the view is refused and nothing changes.
        let before = db.mem_used();
        assert!(db.entry_mut(b"str").unwrap().list().is_err());
        assert!(db.entry_mut(b"l").unwrap().set().is_err());
        assert_eq!(db.mem_used(), before);
        assert_eq!(db.len(), 4);
    }

    #[test]
    fn emptied_or_never_filled_aggregates_are_removed() {
        let mut db = db();
        {
            let mut e = db.entry_or_insert_with(b"l", new_list);
            let mut l = e.list().unwrap();
            l.push_back(b"a");
            l.push_back(b"b");
            l.keep_range(1, 1);
        }
        assert_eq!((db.len(), db.mem_used()), (0, 0));
        // Created, then left empty (no element given): gone again.
        drop(db.entry_or_insert_with(b"l", new_list));
        assert_eq!((db.len(), db.mem_used()), (0, 0));
        // An empty string is a value, not an empty aggregate.
        db.set(b"s", Value::Str(b"x".to_vec().into()), Ttl::Clear);
        db.entry_mut(b"s")
            .unwrap()
            .string()
            .unwrap()
            .edit(|s| s.clear());
        assert_eq!(db.len(), 1);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        // A TTL'd list emptied: its expiry slot goes too.
        let mut e = db.entry_or_insert_with(b"t", new_list);
        e.list().unwrap().push_back(b"x");
        drop(e);
        db.set_expire(b"t", crate::store::unix_ms() + 100_000);
        assert_eq!(db.expires_count(), 1);
        db.entry_mut(b"t").unwrap().list().unwrap().pop_back();
        assert_eq!((db.len(), db.expires_count()), (1, 0));
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    #[test]
    fn watch_is_bumped_once_per_guard() {
        let mut db = db();
        let mut e = db.entry_or_insert_with(b"l", new_list);
        e.list().unwrap().push_back(b"a");
        drop(e);
        let v0 = db.watch(b"l");
        assert_eq!(version(&db, b"l"), v0);
        // Many element changes under one guard: one modification.
        {
            let mut e = db.entry_mut(b"l").unwrap();
            let mut l = e.list().unwrap();
            for _ in 0..10 {
                l.push_back(b"x");
            }
            l.pop_front();
        }
        assert_eq!(version(&db, b"l"), v0 + 1);
        // A guard that wrote nothing is not a modification (Redis signals
        // only writes): one that only looked, one refused with WRONGTYPE,
        // one whose only call removed nothing.
        drop(db.entry_mut(b"l").unwrap());
        assert!(db.entry_mut(b"l").unwrap().string().is_err());
        assert_eq!(
            db.entry_mut(b"l").unwrap().list().unwrap().retain(|_| true),
            0
        );
        assert_eq!(version(&db, b"l"), v0 + 1);
        // An overwrite is a write even when the value stays (LSET, LTRIM).
        db.entry_mut(b"l").unwrap().list().unwrap().set(0, b"a");
        assert_eq!(version(&db, b"l"), v0 + 2);
        // Emptying the key (which removes it) is still one bump.
        {
            let mut e = db.entry_mut(b"l").unwrap();
            let mut l = e.list().unwrap();
            while l.pop_back().is_some() {}
        }
        assert_eq!(version(&db, b"l"), v0 + 3);
        assert!(!db.watch_intact(b"l", v0));
        // Reads do not count; neither does a guard on another key.
        db.get(b"l");
        drop(db.entry_or_insert_with(b"other", new_list));
        assert_eq!(version(&db, b"l"), v0 + 3);
        // A missing key a guard created and left empty: nobody saw it, so
        // neither its watcher, nor the memory count, nor the keyspace.
        let v1 = db.watch(b"ghost");
        drop(db.entry_or_insert_with(b"ghost", new_list));
        assert!(db.watch_intact(b"ghost", v1));
        assert_eq!(db.mem_used(), db.mem_recomputed());
        assert!(db.peek_with_expire(b"ghost").is_none());
    }

    #[test]
    fn set_membership_and_string_edits_count_only_when_they_change() {
        let mut db = db();
        let mut e = db.entry_or_insert_with(b"s", || Value::Set(Box::default()));
        e.set().unwrap().insert(b"a");
        drop(e);
        let v0 = db.watch(b"s");
        assert!(!db.entry_mut(b"s").unwrap().set().unwrap().insert(b"a"));
        assert!(!db.entry_mut(b"s").unwrap().set().unwrap().remove(b"zz"));
        assert!(db.watch_intact(b"s", v0));
        assert!(db.entry_mut(b"s").unwrap().set().unwrap().insert(b"b"));
        assert!(!db.watch_intact(b"s", v0));

        db.set(b"str", Value::Str(b"x".to_vec().into()), Ttl::Clear);
        let v0 = db.watch(b"str");
        let r = db
            .entry_mut(b"str")
            .unwrap()
            .string()
            .unwrap()
            .edit_reporting(|s| (s.len(), false));
        assert_eq!(r, 1);
        assert!(db.watch_intact(b"str", v0));
        db.entry_mut(b"str")
            .unwrap()
            .string()
            .unwrap()
            .edit_reporting(|s| ((), s.pop().is_some()));
        assert!(!db.watch_intact(b"str", v0));
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    #[test]
    fn an_expired_key_is_recreated_fresh() {
        let mut db = db();
        let mut e = db.entry_or_insert_with(b"l", new_list);
        e.list().unwrap().push_back(b"old");
        drop(e);
        db.set_expire(b"l", 1);
        assert!(db.entry_mut(b"l").is_none());
        let mut e = db.entry_or_insert_with(b"l", new_list);
        e.list().unwrap().push_back(b"new");
        drop(e);
        let (k, _) = db.peek_key(b"l").unwrap();
        assert!(!k.has_ttl());
        let (_, at) = db.peek_with_expire(b"l").unwrap();
        assert_eq!(at, 0);
        assert_eq!(db.expires_count(), 0);
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }
}
