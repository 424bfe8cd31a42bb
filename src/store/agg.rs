//! The aggregate values (hashes, sets, lists) and their encodings.
//!
//! As Redis 7.0: a hash is a [`Pack`] of field/value entries (OBJECT
//! ENCODING `listpack`) while it has at most `hash-max-listpack-entries`
//! fields and no field or value longer than `hash-max-listpack-value`,
//! and a hash table beyond; a set of integers is an [`Intset`] up to
//! `set-max-intset-entries`; a small set of other members is a `Pack`
//! (`listpack`, Redis 7.2's `set-max-listpack-*`), and a table beyond. A
//! value converted to a table never goes back, as in Redis. A list is a
//! deque of packed chunks (`quicklist`), each bounded by
//! `list-max-listpack-size`; a chunk is a [`BackPack`], whose entries also
//! carry their size after them, so that RPOP and an index near the tail
//! walk from the chunk's end.
//!
//! Memory accounting: a packed value costs its buffer's capacity plus a
//! fixed header (O(1) to compute, so a change is accounted as the
//! difference before/after); a table costs per element as before (see
//! `super::cost`). Mutations take the caller's running `delta` and add to
//! it what they change.

use std::collections::VecDeque;

use indexmap::map::{RawEntryApiV1, raw_entry_v1::RawEntryMut};

use super::packed::{BackPack, Elem, Intset, Pack, PackIter, PairIter, PairPack, as_int};
use super::{HashValue, Hasher, Key, SetValue, cost};
use crate::protocol::reply::IntText;

/// The encoding thresholds (CONFIG knobs), one copy per shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `hash-max-listpack-entries`
    pub hash_max_entries: usize,
    /// `hash-max-listpack-value`
    pub hash_max_value: usize,
    /// `list-max-listpack-size`: negative for 4 KB << (-n - 1) per chunk,
    /// positive for that many elements per chunk.
    pub list_max_size: i64,
    /// `set-max-intset-entries`
    pub set_max_intset: usize,
    /// `set-max-listpack-entries` (Redis 7.2)
    pub set_max_entries: usize,
    /// `set-max-listpack-value` (Redis 7.2)
    pub set_max_value: usize,
    // HyperLogLog (issue 13, store::hll).
    /// `hll-sparse-max-bytes`: a sparse sketch longer than this turns dense.
    pub hll_sparse_max_bytes: usize,
    // Sorted sets (src/store/zset.rs).
    /// `zset-max-listpack-entries` (alias `zset-max-ziplist-entries`)
    pub zset_max_entries: usize,
    /// `zset-max-listpack-value` (alias `zset-max-ziplist-value`)
    pub zset_max_value: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            hash_max_entries: 512,
            hash_max_value: 64,
            list_max_size: -2,
            set_max_intset: 512,
            set_max_entries: 128,
            set_max_value: 64,
            // HyperLogLog (issue 13).
            hll_sparse_max_bytes: super::hll::SPARSE_MAX_BYTES_DEFAULT,
            // Sorted sets.
            zset_max_entries: 128,
            zset_max_value: 64,
        }
    }
}

impl Limits {
    /// The thresholds `config` starts with (validated to fit).
    pub(crate) fn from_config(config: &crate::config::Config) -> Limits {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            hash_max_entries: size(config.hash_max_listpack_entries),
            hash_max_value: size(config.hash_max_listpack_value),
            list_max_size: config.list_max_listpack_size,
            set_max_intset: size(config.set_max_intset_entries),
            set_max_entries: size(config.set_max_listpack_entries),
            set_max_value: size(config.set_max_listpack_value),
            // HyperLogLog (issue 13).
            hll_sparse_max_bytes: size(config.hll_sparse_max_bytes),
            // Sorted sets.
            zset_max_entries: size(config.zset_max_listpack_entries),
            zset_max_value: size(config.zset_max_listpack_value),
        }
    }
}

/// Redis' safety bound on a chunk sized by element count.
const CHUNK_SAFETY_BYTES: usize = 8 * 1024;
/// Elements per chunk under a size (negative) setting: Redis bounds only
/// the bytes; a bound in count as well keeps the walk to an element in the
/// middle of a chunk (LINDEX, LSET, LINSERT) short when elements are small.
const CHUNK_MAX_ENTRIES: usize = 128;

impl Limits {
    /// (bytes, elements) one list chunk may hold.
    fn chunk(&self) -> (usize, usize) {
        match self.list_max_size {
            n if n < 0 => {
                let level = n.unsigned_abs().min(5) as u32;
                (4096 << (level - 1), CHUNK_MAX_ENTRIES)
            }
            n => (CHUNK_SAFETY_BYTES, (n as usize).clamp(1, (1 << 15) - 1)),
        }
    }
}

/// Accounted cost of a packed value: its boxed header and its buffer.
#[inline]
fn packed_cost(capacity: usize) -> usize {
    cost::PACKED
        + if capacity == 0 {
            0
        } else {
            cost::bytes(capacity)
        }
}

#[inline]
fn settle(delta: &mut isize, before: usize, after: usize) {
    *delta += after as isize - before as isize;
}

// ---------------------------------------------------------------- hashes

/// A hash: packed field/value pairs, or a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Hash {
    Pack(PairPack),
    /// Boxed so that a packed hash's header stays small.
    Table(Box<HashValue>),
}

impl Default for Hash {
    fn default() -> Hash {
        Hash::Pack(PairPack::default())
    }
}

/// Field/value pairs of a [`enum@Hash`].
pub enum HashIter<'a> {
    Pack(PairIter<'a>),
    Table(indexmap::map::Iter<'a, super::Key, Box<[u8]>>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        match self {
            HashIter::Pack(it) => it.next(),
            HashIter::Table(it) => it.next().map(|(f, v)| (&f[..], &v[..])),
        }
    }

    /// O(1) on a table (HSCAN cursors skip by position).
    fn nth(&mut self, n: usize) -> Option<(&'a [u8], &'a [u8])> {
        match self {
            HashIter::Pack(it) => it.nth(n),
            HashIter::Table(it) => it.nth(n).map(|(f, v)| (&f[..], &v[..])),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            HashIter::Pack(it) => it.len(),
            HashIter::Table(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for HashIter<'_> {}

impl<'a> IntoIterator for &'a Hash {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = HashIter<'a>;

    fn into_iter(self) -> HashIter<'a> {
        self.iter()
    }
}

impl Hash {
    /// Number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(p) => p.len(),
            Hash::Table(t) => t.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's name for this value.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    #[inline]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(p) => p.find(field).map(|off| p.pair(off).1),
            Hash::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    #[inline]
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    pub fn iter(&self) -> HashIter<'_> {
        match self {
            Hash::Pack(p) => HashIter::Pack(p.iter()),
            Hash::Table(t) => HashIter::Table(t.iter()),
        }
    }

    /// Field `i` in iteration order (O(i) when packed).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Pack(_) => self.iter().nth(i),
            Hash::Table(t) => t.get_index(i).map(|(f, v)| (&f[..], &v[..])),
        }
    }

    /// Accounted bytes.
    pub fn size(&self) -> usize {
        match self {
            Hash::Pack(p) => packed_cost(p.capacity()),
            Hash::Table(t) => {
                cost::CONTAINER
                    + t.iter()
                        .map(|(f, v)| cost::hash_field(f.len(), v.len()))
                        .sum::<usize>()
            }
        }
    }

    /// Turns a packed hash into a table (O(n), once).
    fn convert(&mut self, delta: &mut isize) {
        let Hash::Pack(p) = self else { return };
        let before = packed_cost(p.capacity());
        let mut t = HashValue::with_capacity_and_hasher(p.len() + 1, Hasher::new());
        for (f, v) in p.iter() {
            t.insert(f.into(), v.into());
        }
        *self = Hash::Table(Box::new(t));
        settle(delta, before, self.size());
    }

    /// Sets `field` to `value`; returns whether the field is new. With
    /// `only_new`, an existing field is left alone.
    pub(crate) fn insert(
        &mut self,
        field: &[u8],
        value: &[u8],
        only_new: bool,
        lim: &Limits,
        delta: &mut isize,
    ) -> bool {
        if let Hash::Pack(p) = self {
            let found = p.find(field);
            let long = field.len() > lim.hash_max_value || value.len() > lim.hash_max_value;
            let full = found.is_none() && p.len() >= lim.hash_max_entries;
            if found.is_some() && only_new {
                return false;
            }
            if !long && !full {
                let before = p.capacity();
                match found {
                    Some(off) => p.set_value(off, value),
                    None => p.push(field, value),
                }
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                return found.is_none();
            }
            self.convert(delta);
        }
        let Hash::Table(t) = self else {
            unreachable!("converted above")
        };
        // One lookup whether the field is there or not (a miss followed
        // by an insert hashed and probed twice).
        match t.raw_entry_mut_v1().from_key(field) {
            RawEntryMut::Occupied(_) if only_new => false,
            RawEntryMut::Occupied(mut e) => {
                let old = e.get_mut();
                settle(delta, old.len(), value.len());
                if old.len() == value.len() {
                    old.copy_from_slice(value);
                } else {
                    *old = value.into();
                }
                false
            }
            RawEntryMut::Vacant(e) => {
                *delta += cost::hash_field(field.len(), value.len()) as isize;
                e.insert(Key::new(field), value.into());
                true
            }
        }
    }

    /// Removes `field`; returns whether it was there.
    pub(crate) fn remove(&mut self, field: &[u8], delta: &mut isize) -> bool {
        match self {
            Hash::Pack(p) => {
                let Some(off) = p.find(field) else {
                    return false;
                };
                let before = p.capacity();
                p.remove(off);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                true
            }
            Hash::Table(t) => match t.swap_remove_entry(field) {
                Some((f, v)) => {
                    *delta -= cost::hash_field(f.len(), v.len()) as isize;
                    true
                }
                None => false,
            },
        }
    }
}

// ------------------------------------------------------------------ sets

/// A set: sorted integers, packed members, or a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Set {
    Ints(Intset),
    Pack(Pack),
    /// Boxed so that a packed set's header stays small.
    Table(Box<SetValue>),
}

impl Default for Set {
    fn default() -> Set {
        Set::Ints(Intset::default())
    }
}

/// Members of a [`Set`].
pub enum SetIter<'a> {
    Ints(&'a Intset, std::ops::Range<usize>),
    Pack(PackIter<'a>),
    Table(indexmap::set::Iter<'a, super::Key>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        match self {
            SetIter::Ints(s, r) => r.next().map(|i| Elem::Int(IntText::new(s.get(i)))),
            SetIter::Pack(it) => it.next().map(Elem::Bytes),
            SetIter::Table(it) => it.next().map(|m| Elem::Bytes(m)),
        }
    }

    /// O(1) on a table or intset (SSCAN cursors skip by position).
    fn nth(&mut self, n: usize) -> Option<Elem<'a>> {
        match self {
            SetIter::Ints(s, r) => r.nth(n).map(|i| Elem::Int(IntText::new(s.get(i)))),
            SetIter::Pack(it) => it.nth(n).map(Elem::Bytes),
            SetIter::Table(it) => it.nth(n).map(|m| Elem::Bytes(m)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            SetIter::Ints(_, r) => r.len(),
            SetIter::Pack(it) => it.len(),
            SetIter::Table(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for SetIter<'_> {}

impl<'a> IntoIterator for &'a Set {
    type Item = Elem<'a>;
    type IntoIter = SetIter<'a>;

    fn into_iter(self) -> SetIter<'a> {
        self.iter()
    }
}

impl Set {
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Set::Ints(s) => s.len(),
            Set::Pack(p) => p.len(),
            Set::Table(t) => t.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        match self {
            Set::Ints(s) => s.is_empty(),
            Set::Pack(p) => p.is_empty(),
            Set::Table(t) => t.is_empty(),
        }
    }

    /// OBJECT ENCODING's name for this value.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Pack(_) => "listpack",
            Set::Table(_) => "hashtable",
        }
    }

    #[inline]
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(s) => as_int(member).is_some_and(|v| s.contains(v)),
            Set::Pack(p) => p.find(member).is_some(),
            Set::Table(t) => t.contains(member),
        }
    }

    pub fn iter(&self) -> SetIter<'_> {
        match self {
            Set::Ints(s) => SetIter::Ints(s, 0..s.len()),
            Set::Pack(p) => SetIter::Pack(p.iter()),
            Set::Table(t) => SetIter::Table(t.iter()),
        }
    }

    /// Member `i` in iteration order (O(i) when packed).
    pub fn get_index(&self, i: usize) -> Option<Elem<'_>> {
        match self {
            Set::Ints(s) => (i < s.len()).then(|| Elem::Int(IntText::new(s.get(i)))),
            Set::Pack(p) => p.iter().nth(i).map(Elem::Bytes),
            Set::Table(t) => t.get_index(i).map(|m| Elem::Bytes(m)),
        }
    }

    /// Accounted bytes.
    pub fn size(&self) -> usize {
        match self {
            Set::Ints(s) => packed_cost(s.capacity()),
            Set::Pack(p) => packed_cost(p.capacity()),
            Set::Table(t) => {
                cost::CONTAINER + t.iter().map(|m| cost::set_member(m.len())).sum::<usize>()
            }
        }
    }

    /// A copy as a table (for set algebra).
    pub fn to_table(&self) -> SetValue {
        match self {
            Set::Table(t) => (**t).clone(),
            other => {
                let mut t = SetValue::with_capacity_and_hasher(other.len(), Hasher::new());
                t.extend(other.iter().map(|m| super::Key::new(&m)));
                t
            }
        }
    }

    /// The smallest encoding that holds `members` under `lim` (SINTERSTORE
    /// and friends).
    pub(crate) fn from_table(members: SetValue, lim: &Limits) -> Set {
        let n = members.len();
        if n <= lim.set_max_intset && members.iter().all(|m| as_int(m).is_some()) {
            let mut s = Intset::default();
            for m in &members {
                s.insert(as_int(m).expect("checked"));
            }
            return Set::Ints(s);
        }
        if n <= lim.set_max_entries && members.iter().all(|m| m.len() <= lim.set_max_value) {
            let mut p = Pack::default();
            for m in &members {
                p.push(m);
            }
            p.shrink();
            return Set::Pack(p);
        }
        Set::Table(Box::new(members))
    }

    /// Re-encodes as a pack or a table to make room for `member`.
    fn convert_for(&mut self, member: &[u8], lim: &Limits, delta: &mut isize) {
        let before = self.size();
        let n = self.len() + 1;
        let fits = n <= lim.set_max_entries
            && member.len() <= lim.set_max_value
            && self.iter().all(|m| m.len() <= lim.set_max_value);
        let next = if fits && !matches!(self, Set::Table(_)) {
            let mut p = Pack::default();
            for m in self.iter() {
                p.push(&m);
            }
            Set::Pack(p)
        } else {
            Set::Table(Box::new(self.to_table()))
        };
        *self = next;
        settle(delta, before, self.size());
    }

    /// Adds `member`; returns whether it is new.
    pub(crate) fn insert(&mut self, member: &[u8], lim: &Limits, delta: &mut isize) -> bool {
        match self {
            Set::Ints(s) => {
                if let Some(v) = as_int(member) {
                    if s.contains(v) {
                        return false;
                    }
                    if s.len() < lim.set_max_intset {
                        let before = s.capacity();
                        s.insert(v);
                        settle(delta, packed_cost(before), packed_cost(s.capacity()));
                        return true;
                    }
                }
                self.convert_for(member, lim, delta);
            }
            Set::Pack(p) => {
                if p.find(member).is_some() {
                    return false;
                }
                if p.len() >= lim.set_max_entries || member.len() > lim.set_max_value {
                    self.convert_for(member, lim, delta);
                }
            }
            Set::Table(_) => {}
        }
        match self {
            Set::Ints(_) => unreachable!("converted above"),
            Set::Pack(p) => {
                let before = p.capacity();
                p.push(member);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                true
            }
            Set::Table(t) => {
                // A long member's `Key` is a heap block: look before
                // building one, so that adding a member that is there
                // allocates and frees nothing (a short one costs nothing
                // to build, and one lookup is cheaper than two).
                if member.len() > Key::INLINE && t.contains(member) {
                    return false;
                }
                let added = t.insert(Key::new(member));
                if added {
                    *delta += cost::set_member(member.len()) as isize;
                }
                added
            }
        }
    }

    /// Removes `member`; returns whether it was there.
    pub(crate) fn remove(&mut self, member: &[u8], delta: &mut isize) -> bool {
        match self {
            Set::Ints(s) => {
                let Some(v) = as_int(member) else {
                    return false;
                };
                let before = s.capacity();
                let removed = s.remove(v);
                settle(delta, packed_cost(before), packed_cost(s.capacity()));
                removed
            }
            Set::Pack(p) => {
                let Some(off) = p.find(member) else {
                    return false;
                };
                let before = p.capacity();
                p.remove_at(off);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                true
            }
            Set::Table(t) => {
                let removed = t.swap_remove(member);
                if removed {
                    *delta -= cost::set_member(member.len()) as isize;
                }
                removed
            }
        }
    }

    /// Removes the member at position `i` (in range), handing it to `f`.
    pub(crate) fn remove_index<R>(
        &mut self,
        i: usize,
        delta: &mut isize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        match self {
            Set::Ints(s) => {
                let before = s.capacity();
                let v = s.remove_index(i);
                settle(delta, packed_cost(before), packed_cost(s.capacity()));
                f(&IntText::new(v))
            }
            Set::Pack(p) => {
                let off = p.offset_of(i);
                let r = f(p.entry(off).0);
                let before = p.capacity();
                p.remove_at(off);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                r
            }
            Set::Table(t) => {
                let m = t.swap_remove_index(i).expect("index in range");
                *delta -= cost::set_member(m.len()) as isize;
                f(&m)
            }
        }
    }

    /// Takes every member out.
    pub(crate) fn take_all(&mut self, delta: &mut isize) -> Set {
        let all = std::mem::take(self);
        settle(delta, all.size(), self.size());
        all
    }
}

// ----------------------------------------------------------------- lists

/// A list: a deque of packed chunks (Redis' quicklist).
#[derive(Debug, Default)]
pub struct List {
    chunks: VecDeque<BackPack>,
    len: usize,
    /// Accounted bytes of the chunks' buffers.
    heap: usize,
}

impl Clone for List {
    /// A copy's chunks have no spare capacity: its accounting is recounted
    /// rather than copied.
    fn clone(&self) -> List {
        let chunks = self.chunks.clone();
        let heap = chunks.iter().map(chunk_cost).sum();
        List {
            chunks,
            len: self.len,
            heap,
        }
    }
}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[inline]
fn chunk_cost(c: &BackPack) -> usize {
    cost::bytes(c.capacity())
}

/// Elements of a [`List`], front to back.
pub struct ListIter<'a> {
    chunks: std::collections::vec_deque::Iter<'a, BackPack>,
    cur: PackIter<'a, true>,
    left: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a [u8];

    /// Inlined into the reply loop (LRANGE): out of line it cost ~5% of
    /// an LRANGE of 100 once a chunk's entries grew back-lengths.
    #[inline(always)]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.cur.next() {
                self.left -= 1;
                return Some(e);
            }
            self.cur = self.chunks.next()?.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ListIter<'_> {}

impl List {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks (what freeing it costs).
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Accounted bytes, O(1).
    pub fn size(&self) -> usize {
        cost::CONTAINER + self.chunks.capacity() * std::mem::size_of::<BackPack>() + self.heap
    }

    /// The chunks' accounted bytes recomputed (tests).
    #[cfg(test)]
    fn heap_recount(&self) -> usize {
        self.chunks.iter().map(chunk_cost).sum()
    }

    /// Elements from position `from` on.
    pub fn iter_from(&self, from: usize) -> ListIter<'_> {
        let from = from.min(self.len);
        let (ci, within) = self.locate(from);
        let mut chunks = self.chunks.range(ci.min(self.chunks.len())..);
        let mut cur = match chunks.next() {
            Some(c) => c.iter(),
            None => EMPTY.iter(),
        };
        for _ in 0..within {
            cur.next();
        }
        ListIter {
            chunks,
            cur,
            left: self.len - from,
        }
    }

    pub fn iter(&self) -> ListIter<'_> {
        self.iter_from(0)
    }

    /// Elements back to front.
    pub fn iter_rev(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().rev().flat_map(|c| {
            let mut off = c.end();
            std::iter::from_fn(move || {
                (off > 0).then(|| {
                    off = c.prev(off);
                    c.entry(off).0
                })
            })
        })
    }

    /// (chunk, position within it) of element `i`; `i == len` gives one
    /// past the last chunk.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        if i >= self.len {
            return (self.chunks.len(), 0);
        }
        if i >= self.len / 2 {
            // From the tail: closer.
            let mut rest = self.len - i;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if rest <= c.len() {
                    return (ci, c.len() - rest);
                }
                rest -= c.len();
            }
        }
        for (ci, c) in self.chunks.iter().enumerate() {
            if i < c.len() {
                return (ci, i);
            }
            i -= c.len();
        }
        unreachable!("i < len")
    }

    /// Element `i` (in range).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (ci, within) = self.locate(i);
        let c = &self.chunks[ci];
        Some(c.entry(c.offset_of(within)).0)
    }

    fn fits(c: &BackPack, elem: &[u8], lim: &Limits) -> bool {
        let (bytes, entries) = lim.chunk();
        c.len() < entries && c.bytes() + BackPack::encoded_size(elem) <= bytes
    }

    /// Runs `f` on chunk `ci`, keeping `heap` true.
    #[inline]
    fn edit<R>(&mut self, ci: usize, f: impl FnOnce(&mut BackPack) -> R) -> R {
        let c = &mut self.chunks[ci];
        let before = chunk_cost(c);
        let r = f(c);
        self.heap = self.heap + chunk_cost(c) - before;
        r
    }

    fn new_chunk(elem: &[u8]) -> BackPack {
        let mut c = BackPack::default();
        c.push(elem);
        c
    }

    fn add_chunk(&mut self, at: usize, c: BackPack) {
        self.heap += chunk_cost(&c);
        if self.chunks.len() == self.chunks.capacity() && self.chunks.is_empty() {
            // Most lists are one chunk: no room for four.
            self.chunks.reserve_exact(1);
        }
        self.chunks.insert(at, c);
    }

    fn drop_chunk(&mut self, ci: usize) {
        let c = self.chunks.remove(ci).expect("chunk in range");
        self.heap -= chunk_cost(&c);
    }

    pub(crate) fn push_back(&mut self, elem: &[u8], lim: &Limits) {
        self.len += 1;
        match self.chunks.back() {
            Some(c) if Self::fits(c, elem, lim) => {
                let last = self.chunks.len() - 1;
                self.edit(last, |c| c.push(elem));
            }
            _ => self.add_chunk(self.chunks.len(), Self::new_chunk(elem)),
        }
    }

    pub(crate) fn push_front(&mut self, elem: &[u8], lim: &Limits) {
        self.len += 1;
        match self.chunks.front() {
            Some(c) if Self::fits(c, elem, lim) => self.edit(0, |c| c.insert_at(0, elem)),
            _ => self.add_chunk(0, Self::new_chunk(elem)),
        }
    }

    /// Removes the element at position `within` of chunk `ci`, handing it
    /// to `f` first; drops the chunk if that empties it.
    fn take_at<R>(&mut self, ci: usize, within: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.len -= 1;
        let r = self.edit(ci, |c| {
            let off = c.offset_of(within);
            let r = f(c.entry(off).0);
            c.remove_at(off);
            r
        });
        if self.chunks[ci].is_empty() {
            self.drop_chunk(ci);
        }
        r
    }

    pub(crate) fn pop_front<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        Some(self.take_at(0, 0, f))
    }

    pub(crate) fn pop_back<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let ci = self.chunks.len() - 1;
        let within = self.chunks[ci].len() - 1;
        Some(self.take_at(ci, within, f))
    }

    /// Splits chunk `ci` in two if an edit took it past its bounds.
    fn rebalance(&mut self, ci: usize, lim: &Limits) {
        let (bytes, entries) = lim.chunk();
        let c = &self.chunks[ci];
        if c.len() <= 1 || (c.len() <= entries && c.bytes() <= bytes) {
            return;
        }
        let half = c.len() / 2;
        let tail = self.edit(ci, |c| {
            let off = c.offset_of(half);
            c.split_off(off, half)
        });
        self.add_chunk(ci + 1, tail);
        self.rebalance(ci + 1, lim);
        self.rebalance(ci, lim);
    }

    /// Replaces element `i` (in range).
    pub(crate) fn set(&mut self, i: usize, value: &[u8], lim: &Limits) {
        let (ci, within) = self.locate(i);
        self.edit(ci, |c| {
            let off = c.offset_of(within);
            c.replace_at(off, value);
        });
        self.rebalance(ci, lim);
    }

    /// Inserts `elem` before position `i` (`i <= len`).
    pub(crate) fn insert(&mut self, i: usize, elem: &[u8], lim: &Limits) {
        if i == self.len {
            return self.push_back(elem, lim);
        }
        let (ci, within) = self.locate(i);
        self.len += 1;
        self.edit(ci, |c| {
            let off = c.offset_of(within);
            c.insert_at(off, elem);
        });
        self.rebalance(ci, lim);
    }

    /// Keeps the elements for which `keep` is true; returns how many were
    /// removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        let mut ci = 0;
        while ci < self.chunks.len() {
            removed += self.edit(ci, |c| c.retain(&mut keep));
            if self.chunks[ci].is_empty() {
                self.drop_chunk(ci);
            } else {
                ci += 1;
            }
        }
        self.len -= removed;
        removed
    }

    /// Keeps only positions `from..to` (`from <= to <= len`).
    pub(crate) fn keep_range(&mut self, from: usize, to: usize) {
        // The tail first, so `from` still counts from the same head.
        let mut cut = self.len - to;
        while cut > 0 {
            let last = self.chunks.len() - 1;
            let n = self.chunks[last].len();
            if n <= cut {
                self.drop_chunk(last);
                cut -= n;
                self.len -= n;
            } else {
                self.edit(last, |c| {
                    let off = c.offset_of(n - cut);
                    c.remove_run(off, cut);
                });
                self.len -= cut;
                cut = 0;
            }
        }
        let mut cut = from;
        while cut > 0 {
            let n = self.chunks[0].len();
            if n <= cut {
                self.drop_chunk(0);
                cut -= n;
                self.len -= n;
            } else {
                self.edit(0, |c| c.remove_run(0, cut));
                self.len -= cut;
                cut = 0;
            }
        }
    }

    /// Frees up to `budget` chunks from the front (lazy free); returns the
    /// accounted bytes freed.
    pub(crate) fn free_front(&mut self, budget: usize) -> usize {
        let before = self.heap;
        for _ in 0..budget {
            let Some(c) = self.chunks.pop_front() else {
                break;
            };
            self.len -= c.len();
            self.heap -= chunk_cost(&c);
        }
        before - self.heap
    }
}

/// An empty pack to iterate when a list has no chunk.
static EMPTY: BackPack = BackPack::new_const();

impl<'a> IntoIterator for &'a List {
    type Item = &'a [u8];
    type IntoIter = ListIter<'a>;

    fn into_iter(self) -> ListIter<'a> {
        self.iter()
    }
}

/// Builds a list from elements (tests).
#[cfg(test)]
pub(crate) fn list_of<'a>(elems: impl IntoIterator<Item = &'a [u8]>, lim: &Limits) -> List {
    let mut l = List::default();
    for e in elems {
        l.push_back(e, lim);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn small() -> Limits {
        Limits {
            hash_max_entries: 4,
            hash_max_value: 8,
            list_max_size: 3,
            set_max_intset: 5,
            set_max_entries: 4,
            set_max_value: 8,
            hll_sparse_max_bytes: 3000,
            ..Limits::default()
        }
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u8..6).prop_map(|b| vec![b'a' + b]),
            (0u8..3).prop_map(|b| vec![b'k'; 9 + b as usize]),
            (-3i64..7).prop_map(|n| n.to_string().into_bytes()),
            Just(b"70000".to_vec()),
            Just(b"-5000000000".to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn hash_behaves_as_a_map(
            ops in proptest::collection::vec((0u8..4, key(), key()), 0..80),
            default_limits in any::<bool>(),
        ) {
            let lim = if default_limits { Limits::default() } else { small() };
            let mut h = Hash::default();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut was_table = false;
            let mut delta = h.size() as isize;
            for (op, f, v) in ops {
                match op {
                    0 | 1 => {
                        let new = h.insert(&f, &v, false, &lim, &mut delta);
                        prop_assert_eq!(new, model.insert(f, v).is_none());
                    }
                    2 => {
                        let new = h.insert(&f, &v, true, &lim, &mut delta);
                        prop_assert_eq!(new, !model.contains_key(&f));
                        model.entry(f).or_insert(v);
                    }
                    _ => prop_assert_eq!(h.remove(&f, &mut delta), model.remove(&f).is_some()),
                }
                prop_assert_eq!(delta, h.size() as isize);
                prop_assert_eq!(h.len(), model.len());
                for (f, v) in &model {
                    prop_assert_eq!(h.get(f), Some(&v[..]));
                }
                let mut seen: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                seen.sort();
                let mut want: Vec<_> = model.clone().into_iter().collect();
                want.sort();
                prop_assert_eq!(seen, want);
                // Packed exactly while within the thresholds; never back.
                let small = model.len() <= lim.hash_max_entries;
                if was_table {
                    prop_assert_eq!(h.encoding(), "hashtable");
                } else if matches!(h, Hash::Pack(_)) {
                    prop_assert!(small);
                    prop_assert!(model.iter().all(|(f, v)| f.len() <= lim.hash_max_value && v.len() <= lim.hash_max_value));
                }
                was_table = matches!(h, Hash::Table(_));
            }
        }

        #[test]
        fn set_behaves_as_a_set(
            ops in proptest::collection::vec((0u8..3, key()), 0..80),
            default_limits in any::<bool>(),
            pop_at in any::<usize>(),
        ) {
            let lim = if default_limits { Limits::default() } else { small() };
            let mut s = Set::default();
            let mut model = std::collections::HashSet::new();
            let mut delta = s.size() as isize;
            for (op, m) in ops {
                if op < 2 {
                    prop_assert_eq!(s.insert(&m, &lim, &mut delta), model.insert(m.clone()));
                } else {
                    prop_assert_eq!(s.remove(&m, &mut delta), model.remove(&m));
                }
                prop_assert_eq!(delta, s.size() as isize);
                prop_assert_eq!(s.len(), model.len());
                prop_assert_eq!(s.contains(&m), model.contains(&m));
                let mut seen: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
                seen.sort();
                let mut want: Vec<Vec<u8>> = model.iter().cloned().collect();
                want.sort();
                prop_assert_eq!(&seen, &want);
                for i in 0..s.len() {
                    let e = s.get_index(i).map(|e| e.to_vec());
                    prop_assert!(e.is_some_and(|e| model.contains(&e)));
                }
                match &s {
                    Set::Ints(_) => prop_assert!(model.iter().all(|m| as_int(m).is_some()) && model.len() <= lim.set_max_intset),
                    Set::Pack(_) => prop_assert!(model.len() <= lim.set_max_entries),
                    Set::Table(_) => {}
                }
                prop_assert_eq!(Set::from_table(s.to_table(), &lim).len(), s.len());
            }
            if !s.is_empty() {
                let i = pop_at % s.len();
                let m = s.remove_index(i, &mut delta, <[u8]>::to_vec);
                prop_assert!(model.remove(&m));
                prop_assert_eq!(delta, s.size() as isize);
                prop_assert_eq!(s.len(), model.len());
            }
            let all = s.take_all(&mut delta);
            prop_assert_eq!(all.len(), model.len());
            prop_assert_eq!(delta, s.size() as isize);
        }

        #[test]
        fn list_behaves_as_a_deque(
            ops in proptest::collection::vec((0u8..10, any::<usize>(), key()), 0..120),
            size in prop_oneof![Just(-2i64), Just(-1), 1i64..5],
        ) {
            let lim = Limits { list_max_size: size, ..Limits::default() };
            let mut l = List::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for (op, at, e) in ops {
                // Big elements too, so byte bounds split chunks.
                let e = if at % 7 == 0 { e.repeat(700) } else { e };
                match op {
                    0 => { l.push_back(&e, &lim); model.push_back(e); }
                    1 => { l.push_front(&e, &lim); model.push_front(e); }
                    2 => prop_assert_eq!(l.pop_front(<[u8]>::to_vec), model.pop_front()),
                    3 => prop_assert_eq!(l.pop_back(<[u8]>::to_vec), model.pop_back()),
                    4 if !model.is_empty() => {
                        let i = at % model.len();
                        l.set(i, &e, &lim);
                        model[i] = e;
                    }
                    5 => {
                        let i = at % (model.len() + 1);
                        l.insert(i, &e, &lim);
                        model.insert(i, e);
                    }
                    6 => {
                        let first = e.first().copied();
                        let removed = l.retain(|x| x.first().copied() != first);
                        let before = model.len();
                        model.retain(|x| x.first().copied() != first);
                        prop_assert_eq!(removed, before - model.len());
                    }
                    7 => {
                        let to = at % (model.len() + 1);
                        let from = (at / 7) % (to + 1);
                        l.keep_range(from, to);
                        model.truncate(to);
                        model.drain(..from);
                    }
                    8 if !model.is_empty() => {
                        let i = at % model.len();
                        prop_assert_eq!(l.get(i), Some(&model[i][..]));
                        prop_assert_eq!(l.iter_from(i).map(<[u8]>::to_vec).collect::<Vec<_>>(),
                            model.range(i..).cloned().collect::<Vec<_>>());
                    }
                    _ => {}
                }
                prop_assert_eq!(l.len(), model.len());
                prop_assert_eq!(l.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), model.iter().cloned().collect::<Vec<_>>());
                prop_assert_eq!(l.iter_rev().map(<[u8]>::to_vec).collect::<Vec<_>>(), model.iter().rev().cloned().collect::<Vec<_>>());
                prop_assert_eq!(l.heap, l.heap_recount());
                let (bytes, entries) = lim.chunk();
                for c in &l.chunks {
                    prop_assert!(!c.is_empty());
                    prop_assert!(c.len() == 1 || (c.len() <= entries && c.bytes() <= bytes));
                }
            }
            let copy = l.clone();
            prop_assert_eq!(copy.heap, copy.heap_recount());
            prop_assert!(copy == l);
            let freed = l.free_front(usize::MAX);
            prop_assert_eq!(l.len(), 0);
            prop_assert_eq!(l.heap, 0);
            let _ = freed;
        }
    }

    #[test]
    fn packed_headers_are_what_the_accounting_says() {
        assert!(std::mem::size_of::<Hash>() <= cost::PACKED - cost::ALLOC);
        assert!(std::mem::size_of::<Set>() <= cost::PACKED - cost::ALLOC);
    }

    #[test]
    fn hash_converts_past_each_threshold_and_never_back() {
        let lim = Limits::default();
        let mut d = 0;
        let mut h = Hash::default();
        for i in 0..512 {
            h.insert(format!("f{i}").as_bytes(), b"v", false, &lim, &mut d);
        }
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"f512", b"v", false, &lim, &mut d);
        assert_eq!(h.encoding(), "hashtable");
        h.remove(b"f512", &mut d);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.insert(b"f", &[b'x'; 64], false, &lim, &mut d);
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"f", &[b'x'; 65], false, &lim, &mut d);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&[b'x'; 65][..]));
    }

    #[test]
    fn set_moves_from_intset_to_pack_to_table() {
        let lim = Limits::default();
        let mut d = 0;
        let mut s = Set::default();
        for i in 0..512 {
            s.insert(i.to_string().as_bytes(), &lim, &mut d);
        }
        assert_eq!(s.encoding(), "intset");
        s.insert(b"512", &lim, &mut d);
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::default();
        s.insert(b"1", &lim, &mut d);
        s.insert(b"a", &lim, &mut d);
        assert_eq!(s.encoding(), "listpack");
        assert!(s.contains(b"1") && s.contains(b"a") && !s.contains(b"01"));
        for i in 0..126 {
            s.insert(format!("m{i}").as_bytes(), &lim, &mut d);
        }
        assert_eq!((s.len(), s.encoding()), (128, "listpack"));
        s.insert(b"one more", &lim, &mut d);
        assert_eq!(s.encoding(), "hashtable");
    }
}
