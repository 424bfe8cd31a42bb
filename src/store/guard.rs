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
//! WATCH semantics are those documented in the README: a watched key counts
//! as modified by any write command that obtained a guard on it, even one
//! that then failed (WRONGTYPE) or changed nothing. Obtaining a guard is
//! what marks the write, whatever happens inside; it is bumped exactly once
//! per guard.

use std::ops::Deref;

use super::agg::{Hash, Limits, List, Set};
use super::zset::{Inserted, ZSet};
use super::{Db, Entry, StrEncoding, StrValue, Value, WrongType, str_size, touch_watched};

/// Write access to one live entry; settles the `Db` when dropped (see the
/// module docs). Derefs to the value for reading.
pub struct EntryMut<'a> {
    db: &'a mut Db,
    idx: usize,
    /// Bytes the value grew by (negative: shrank) since the guard was made.
    delta: isize,
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
            delta: 0,
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
                let mut entry = Entry::new(make(), self.now_secs);
                entry.accessed = self.clock.fresh(self.now_secs);
                self.insert_new(key, hash, entry)
            }
        };
        EntryMut {
            db: self,
            idx,
            delta: 0,
        }
    }
}

impl Deref for EntryMut<'_> {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.db.map[self.idx].value
    }
}

impl<'a> EntryMut<'a> {
    /// The whole entry, read-only (TTL, access time).
    pub fn entry(&self) -> &Entry {
        &self.db.map[self.idx]
    }

    /// The key's expiry time (unix ms); 0 without TTL.
    pub fn expire_at(&self) -> u64 {
        self.db.expire_of(self.idx)
    }

    /// The list under the key, or WRONGTYPE.
    #[inline]
    pub fn list(&mut self) -> Result<ListMut<'_>, WrongType> {
        match &mut self.db.map[self.idx].value {
            Value::List(l) => Ok(ListMut {
                list: l,
                delta: &mut self.delta,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The hash under the key, or WRONGTYPE.
    #[inline]
    pub fn hash(&mut self) -> Result<HashMut<'_>, WrongType> {
        match &mut self.db.map[self.idx].value {
            Value::Hash(h) => Ok(HashMut {
                hash: h,
                delta: &mut self.delta,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The set under the key, or WRONGTYPE.
    #[inline]
    pub fn set(&mut self) -> Result<SetMut<'_>, WrongType> {
        match &mut self.db.map[self.idx].value {
            Value::Set(s) => Ok(SetMut {
                set: s,
                delta: &mut self.delta,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The sorted set under the key, or WRONGTYPE.
    #[inline]
    pub fn zset(&mut self) -> Result<ZSetMut<'_>, WrongType> {
        match &mut self.db.map[self.idx].value {
            Value::ZSet(z) => Ok(ZSetMut {
                zset: z,
                delta: &mut self.delta,
                limits: self.db.limits,
            }),
            _ => Err(WrongType),
        }
    }

    /// The string under the key, or WRONGTYPE.
    #[inline]
    pub fn string(&mut self) -> Result<StrMut<'_>, WrongType> {
        match &mut self.db.map[self.idx].value {
            Value::Str(s) => Ok(StrMut {
                s,
                delta: &mut self.delta,
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
        db.mem_used = db.mem_used.wrapping_add_signed(self.delta);
        let empty = match &db.map[self.idx].value {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        };
        if empty {
            // Removal counts as the modification (`detach_at` bumps it).
            db.remove_at(self.idx);
        } else if !db.watched.is_empty() {
            let (key, _) = db.map.get_index(self.idx).expect("guarded entry");
            touch_watched(&mut db.watched, key);
        }
    }
}

#[inline]
fn grow(delta: &mut isize, bytes: usize) {
    *delta += bytes as isize;
}

#[inline]
fn shrink(delta: &mut isize, bytes: usize) {
    *delta -= bytes as isize;
}

/// A list under an [`EntryMut`]: reads as the [`List`], changes only
/// through accounted methods. A list sizes itself in O(1), so each change
/// is accounted as the size difference it made.
pub struct ListMut<'g> {
    list: &'g mut List,
    delta: &'g mut isize,
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
        *self.delta += self.list.size() as isize - before as isize;
        r
    }

    /// Adds `elem` at the head.
    #[inline]
    pub fn push_front(&mut self, elem: &[u8]) {
        self.accounted(|l, lim| l.push_front(elem, lim));
    }

    /// Adds `elem` at the tail.
    #[inline]
    pub fn push_back(&mut self, elem: &[u8]) {
        self.accounted(|l, lim| l.push_back(elem, lim));
    }

    /// Removes the head element, handing it to `f`.
    #[inline]
    pub fn pop_front_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.accounted(|l, _| l.pop_front(f))
    }

    /// Removes the tail element, handing it to `f`.
    #[inline]
    pub fn pop_back_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.accounted(|l, _| l.pop_back(f))
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
        self.accounted(|l, lim| l.set(i, value, lim));
    }

    /// Inserts before position `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, elem: &[u8]) {
        self.accounted(|l, lim| l.insert(i, elem, lim));
    }

    /// Keeps the elements for which `keep` is true; returns how many were
    /// removed.
    pub fn retain(&mut self, keep: impl FnMut(&[u8]) -> bool) -> usize {
        self.accounted(|l, _| l.retain(keep))
    }

    /// Keeps only positions `from..to` (LTRIM); `from <= to <= len`.
    pub fn keep_range(&mut self, from: usize, to: usize) {
        self.accounted(|l, _| l.keep_range(from, to));
    }
}

/// A hash under an [`EntryMut`]; packed or a table (see `super::agg`),
/// converted when a write passes the thresholds.
pub struct HashMut<'g> {
    hash: &'g mut Hash,
    delta: &'g mut isize,
    limits: Limits,
}

impl Deref for HashMut<'_> {
    type Target = Hash;

    fn deref(&self) -> &Hash {
        self.hash
    }
}

impl HashMut<'_> {
    /// Sets `field` to `value`; returns whether the field is new.
    #[inline]
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.hash
            .insert(field, value, false, &self.limits, self.delta)
    }

    /// Sets `field` only if it is absent (HSETNX); returns whether it did.
    pub fn insert_if_absent(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.hash
            .insert(field, value, true, &self.limits, self.delta)
    }

    /// Removes `field`; returns whether it was there.
    #[inline]
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.hash.remove(field, self.delta)
    }
}

/// A sorted set under an [`EntryMut`]; packed or a skiplist (see
/// `super::zset`), converted when a write passes the thresholds.
pub struct ZSetMut<'g> {
    zset: &'g mut ZSet,
    delta: &'g mut isize,
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
        self.zset.insert(member, score, &self.limits, self.delta)
    }

    /// Removes `member`; returns its score if it was there.
    #[inline]
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        self.zset.remove(member, self.delta)
    }

    /// Removes ascending ranks `start..end` (clamped), handing each
    /// element to `f` in ascending order; returns how many it removed.
    pub fn remove_ranks(&mut self, start: usize, end: usize, f: impl FnMut(&[u8], f64)) -> usize {
        self.zset.remove_ranks(start, end, self.delta, f)
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
        self.zset.remove_ranks(at, at + 1, self.delta, |m, s| {
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
    delta: &'g mut isize,
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
        self.set.insert(member, &self.limits, self.delta)
    }

    /// Removes `member`; returns whether it was there.
    #[inline]
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.set.remove(member, self.delta)
    }

    /// Takes every member out (the key is removed when the guard drops).
    pub fn take_all(&mut self) -> Set {
        self.set.take_all(self.delta)
    }

    /// Removes the member at position `i` (in range), handing it to `f`.
    #[inline]
    pub fn remove_index_with<R>(&mut self, i: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.set.remove_index(i, self.delta, f)
    }
}

/// A string under an [`EntryMut`].
pub struct StrMut<'g> {
    s: &'g mut StrValue,
    delta: &'g mut isize,
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
        let before = str_size(self.s);
        let r = self.s.edit(StrEncoding::Raw, f);
        shrink(self.delta, before);
        grow(self.delta, str_size(self.s));
        r
    }

    /// Replaces the value with the integer `n` (INCR and friends), which
    /// Redis stores int-encoded.
    #[inline]
    pub fn set_integer(&mut self, n: i64) {
        let mut buf = [0u8; 20];
        let mut w = std::io::Cursor::new(&mut buf[..]);
        std::io::Write::write_fmt(&mut w, format_args!("{n}")).expect("20 bytes hold an i64");
        let len = w.position() as usize;
        let before = str_size(self.s);
        self.s.assign(&buf[..len], StrEncoding::Auto);
        shrink(self.delta, before);
        grow(self.delta, str_size(self.s));
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
        // A guard that changed nothing still marks the write (README:
        // any write command that reached the key counts), once.
        drop(db.entry_mut(b"l").unwrap());
        assert_eq!(version(&db, b"l"), v0 + 2);
        // So does a write refused with WRONGTYPE.
        assert!(db.entry_mut(b"l").unwrap().string().is_err());
        assert_eq!(version(&db, b"l"), v0 + 3);
        // Emptying the key (which removes it) is still one bump.
        {
            let mut e = db.entry_mut(b"l").unwrap();
            let mut l = e.list().unwrap();
            while l.pop_back().is_some() {}
        }
        assert_eq!(version(&db, b"l"), v0 + 4);
        assert!(!db.watch_intact(b"l", v0));
        // Reads do not count; neither does a guard on another key.
        db.get(b"l");
        drop(db.entry_or_insert_with(b"other", new_list));
        assert_eq!(version(&db, b"l"), v0 + 4);
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
        let (entry, at) = db.peek_with_expire(b"l").unwrap();
        assert!(!entry.has_ttl());
        assert_eq!(at, 0);
        assert_eq!(db.expires_count(), 0);
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }
}
