//! The shard-local keyspace: values, expiry and memory accounting.
//!
//! One `Db` per shard, owned by that shard's executor and never shared.
//! Keys live in an insertion-indexed map so that random sampling (active
//! expiry, RANDOMKEY) and SCAN cursors are positions, not table walks.
//!
//! Layer: `store`, above the leaves (see the crate docs, "Layers and
//! imports"). Owns the keyspace of one shard: [`Db`], its values and TTLs,
//! active and lazy expiry, memory accounting ([`cost`]), WATCH modification
//! counts, lazy free (`lazyfree`), glob matching ([`glob`]) and the compact
//! byte strings keys and string values are stored as ([`bytes`]). Knows nothing
//! of other shards, connections or commands. May import the leaves
//! (`metrics` for the shard's stats and hot-key sketch, `protocol`, and
//! `crate::alloc` for the page size).
//! The keyspace invariants live here and nowhere else: `mem_used` equals
//! the sum of `entry_size` plus what lazy free still holds, a WATCHed key's
//! modification count moves on every write that reaches it, and no list,
//! hash or set is ever left empty under a key. Whole-value writes keep them
//! inside the `Db` methods (`set`, `set_string`, `set_expire`, `remove`,
//! `delete`, `unlink`, `flush*`); in-place writes go through the mutation
//! guard of [`guard`] (`Db::entry_mut`, `Db::entry_or_insert_with`), whose
//! typed views charge each change as it is made (O(1) to account; the
//! packed encodings of small aggregates live in [`agg`] and [`packed`])
//! and whose `Drop` settles the accounting, the WATCH count and
//! the removal of an emptied aggregate exactly once per command. There is
//! no way to get a `&mut Value` of a stored key outside this module.
//!
//! Layout (what a key costs): a map slot is the key's hash, a 24-byte
//! [`DbKey`] (the key's bytes, its access clock and TTL flag) and a
//! 16-byte [`Value`], 48 bytes; keys of up to 18 bytes and string values of
//! up to 14 bytes live in it, with no allocation of their own. A TTL is kept
//! only for keys that have one, in `Db::expiring` (map position → expiry
//! time); the invariant there: `DbKey::has_ttl` is set exactly for the
//! positions `expiring` holds, which every removal (`detach_at`, a
//! `swap_remove` that moves the last entry) and TTL change keeps in step.
//!
//! Memory latency: a lookup is a chain of dependent cache misses (control
//! byte, index slot, map slot, then the key's and value's heap blocks when
//! they are not inline). `Db::prefetch_keys` starts those of a whole
//! pipelined batch before it runs, so they overlap (issue 15).

pub mod agg;
// Blocking commands (issue 13): keys with blocked clients.
pub mod blocking;
pub mod bytes;
pub mod evict;
pub mod glob;
pub mod guard;
pub(crate) mod lazyfree;
pub mod packed;
mod picker;
pub(crate) use picker::Picker;
// HyperLogLog sketches (issue 13).
pub mod hll;
// DUMP/RESTORE (issue 13, dump): Redis 7.0's serialization format.
pub mod rdb;
pub mod zset;
// Geo (issue 13): Redis's geohash arithmetic for the geo commands.
pub(crate) mod geohash;

use std::collections::HashMap;
use std::rc::Rc;

// `MutableKeys`: a key's metadata (access clock, TTL flag) changes in place.
use indexmap::map::MutableKeys;
use indexmap::{IndexMap, IndexSet};

use crate::metrics::{HotKeys, ShardStats};

pub use bytes::{DbKey, Key, StrEncoding, StrValue};
pub type Hasher = ahash::RandomState;
/// A hash past its packed encoding: short fields inline in the table.
pub type HashValue = IndexMap<Key, Box<[u8]>, Hasher>;
/// A set past its packed encoding: short members inline in the table.
pub type SetValue = IndexSet<Key, Hasher>;

pub use agg::{Hash, List, Set};
pub use zset::ZSet;

/// Aggregates are boxed (thin boxes: 8 bytes) so that the common case, a
/// string, keeps entries small: a `Value` is 16 bytes (the string's tag
/// byte leaves a niche for the other variants' discriminants) and a map
/// slot 48 (`bytes::tests::sizes_leave_a_48_byte_slot`). Their
/// encodings (packed while small, as Redis) live in [`agg`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(StrValue),
    List(Box<List>),
    Hash(Box<Hash>),
    Set(Box<Set>),
    /// A sorted set (src/store/zset.rs).
    ZSet(Box<ZSet>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }
}

/// The value under the key has another type than the command needs.
#[derive(Debug, PartialEq, Eq)]
pub struct WrongType;

/// Approximate heap cost of the pieces of the keyspace. The constants stand
/// for allocator headers, hash-table slots and container headers so that
/// the sum tracks process RSS growth; they were calibrated against RSS on
/// 1M strings of 16, 64 and 512 bytes (bench/memory.py --accounting).
pub mod cost {
    /// Map slot (hash + 24-byte `DbKey` + 16-byte `Value`) plus index
    /// table share. Keys of up to `DbKey::INLINE` bytes and strings of up
    /// to `StrValue::INLINE` bytes live in it and cost nothing more.
    pub const ENTRY: usize = 68;
    /// Malloc header/rounding for one heap allocation.
    pub const ALLOC: usize = 16;
    /// Extra bookkeeping for a key with a TTL: its slot in the expiry index
    /// (hash + position + expiry time, plus index table share).
    pub const EXPIRE: usize = 40;
    /// One list element: the Box in the deque plus its allocation.
    pub const LIST_ELEM: usize = 16 + ALLOC;
    /// One hash field in a table: bucket (hash + 16-byte `Key` field +
    /// boxed value) + index slot; see [`hash_field`].
    pub const HASH_FIELD: usize = 48;

    /// One hash field of `field` and `value` bytes in a table: a field of
    /// up to `Key::INLINE` bytes lives in the bucket, a longer one adds its
    /// heap block; the value is always its own block.
    #[inline]
    pub fn hash_field(field: usize, value: usize) -> usize {
        HASH_FIELD + bytes(value) + key_heap(field)
    }
    /// One set member in a table: bucket (hash + 16-byte `Key`) + index
    /// slot; see [`set_member`].
    pub const SET_MEMBER: usize = 32;

    /// One set member of `len` bytes in a table: members of up to
    /// `Key::INLINE` bytes live in the bucket, longer ones add their heap
    /// block.
    #[inline]
    pub fn set_member(len: usize) -> usize {
        SET_MEMBER + key_heap(len)
    }

    /// A [`super::Key`] of `len` bytes beyond its 16 bytes: nothing when
    /// inline, else its heap block.
    #[inline]
    pub fn key_heap(len: usize) -> usize {
        if len <= super::Key::INLINE {
            0
        } else {
            bytes(len)
        }
    }
    /// A [`super::DbKey`] of `len` bytes beyond its slot: nothing when
    /// inline, else its heap block.
    #[inline]
    pub fn db_key_heap(len: usize) -> usize {
        if len <= super::DbKey::INLINE {
            0
        } else {
            bytes(len)
        }
    }
    /// Container header of an aggregate (boxed map/deque).
    pub const CONTAINER: usize = 96;
    /// Header of a packed hash or set: its boxed enum and allocation.
    pub const PACKED: usize = 40 + ALLOC;

    pub fn bytes(len: usize) -> usize {
        len + ALLOC
    }
}

/// Accounted heap cost of a string beyond its slot: nothing when inline,
/// else its buffer (capacity) and allocation header.
#[inline]
pub fn str_size(s: &StrValue) -> usize {
    match s.heap_capacity() {
        0 => 0,
        cap => cost::bytes(cap),
    }
}

pub fn value_size(value: &Value) -> usize {
    match value {
        Value::Str(s) => str_size(s),
        Value::List(l) => l.size(),
        Value::Hash(h) => h.size(),
        Value::Set(s) => s.size(),
        Value::ZSet(z) => z.size(),
    }
}

/// What MEMORY USAGE reports: `entry_size`, except that an aggregate
/// with more than `samples` elements (0 = all) is estimated from its first
/// `samples` elements, as Redis samples rather than walking a large value.
pub fn entry_usage(key: &DbKey, value: &Value, samples: usize) -> usize {
    fn estimate(len: usize, samples: usize, sampled: impl Iterator<Item = usize>) -> usize {
        let total: usize = sampled.take(samples).sum();
        cost::CONTAINER + (total as f64 * len as f64 / samples as f64).round() as usize
    }
    // Packed values and lists are O(1) to size; only tables are sampled.
    let value = match value {
        Value::Hash(h) if samples > 0 && h.len() > samples && matches!(**h, Hash::Table(_)) => {
            estimate(
                h.len(),
                samples,
                h.iter().map(|(f, v)| cost::hash_field(f.len(), v.len())),
            )
        }
        Value::Set(s) if samples > 0 && s.len() > samples && matches!(**s, Set::Table(_)) => {
            estimate(
                s.len(),
                samples,
                s.iter().map(|m| cost::set_member(m.len())),
            )
        }
        Value::ZSet(z) if samples > 0 && z.len() > samples && matches!(**z, ZSet::Skip(_)) => {
            estimate(z.len(), samples, z.iter().map(|(m, _)| zset::elem_cost(m)))
        }
        other => value_size(other),
    };
    entry_overhead(key) + value
}

/// The part of an entry's size that is not its value.
pub(crate) fn entry_overhead(key: &DbKey) -> usize {
    cost::ENTRY + cost::db_key_heap(key.len()) + if key.has_ttl { cost::EXPIRE } else { 0 }
}

/// What a key and its value cost: `entry_overhead` plus `value_size`.
pub fn entry_size(key: &DbKey, value: &Value) -> usize {
    entry_overhead(key) + value_size(value)
}

/// How `Db::set` treats an existing TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Drop any TTL (plain SET).
    Clear,
    /// Keep the TTL the key had (KEEPTTL, APPEND-like writes).
    Keep,
    /// Expire at this unix ms.
    At(u64),
}

pub struct Db {
    map: IndexMap<DbKey, Value, Hasher>,
    /// Map position → expiry time (absolute unix ms) of the keys that carry
    /// a TTL (their `DbKey::has_ttl` is set): the TTLs themselves, and what
    /// the active expiry cycle samples without touching keys that cannot
    /// expire.
    expiring: IndexMap<usize, u64, Hasher>,
    mem_used: usize,
    /// Wall-clock ms, refreshed once per executed batch.
    pub now_ms: u64,
    /// `now_ms` in whole seconds, what entries are stamped with on access.
    now_secs: u32,
    pub stats: Rc<ShardStats>,
    /// The shard's hot keys, counted with the map's hash of each key
    /// (`touch_hot`), so the map's hasher never changes.
    pub hot: HotKeys,
    rng: u64,
    /// Keys some client WATCHes: a modification count and how many clients
    /// watch it. Empty unless transactions use WATCH, so writes pay one
    /// branch.
    watched: HashMap<Key, WatchedKey, Hasher>,
    /// Values and tables detached by UNLINK / FLUSH* ASYNC, not freed yet.
    lazy: lazyfree::LazyFree,
    /// `lazyfree-lazy-user-del`: DEL frees like UNLINK.
    pub lazy_user_del: bool,
    /// `lazyfree-lazy-user-flush`: FLUSHALL/FLUSHDB without a mode free
    /// like their ASYNC form.
    pub lazy_user_flush: bool,
    /// This shard's share of `maxmemory` and the eviction pool (`evict`).
    evict: evict::Evictor,
    /// How accesses stamp `DbKey::accessed` (LRU seconds or LFU counter).
    clock: evict::Clock,
    /// The encoding thresholds (`hash-max-listpack-*`, ...).
    pub(crate) limits: agg::Limits,
    /// Cluster mode (issue 16): how many keys each hash slot has here, for
    /// CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT (None outside cluster mode,
    /// so that keys are not hashed twice there).
    slot_counts: Option<Box<[u32]>>,
}

struct WatchedKey {
    version: u64,
    watchers: u32,
    /// Blocked clients waiting on the key (blocking commands): a write to
    /// it marks it ready for the shard's dispatcher (`store::blocking`).
    blocked: u32,
}

/// Counts a modification of `key` if a client watches it.
#[inline]
fn touch_watched(watched: &mut HashMap<Key, WatchedKey, Hasher>, key: &[u8]) {
    if !watched.is_empty()
        && let Some(w) = watched.get_mut(key)
    {
        w.version += 1;
        if w.blocked > 0 {
            blocking::mark_ready(key);
        }
    }
}

/// Makes room for one more entry in a key-sized table, growing its entry
/// array by an eighth instead of letting indexmap size it to the hash
/// index's capacity (up to twice the entries). The allocator counts that
/// reservation as allocated while the kernel backs none of it until it is
/// written, so with indexmap's own growth a table of small strings showed
/// `used_memory` ~45% above RSS, and the eviction budget (allocator bytes)
/// was spent on untouched pages. With eighth steps the untouched part
/// stays under an eighth of the array. The hash index still doubles (its
/// slots are 8 bytes); each step reallocates the array once, which
/// jemalloc often does in place for large allocations.
#[inline]
fn grow_gently<K, V>(map: &mut IndexMap<K, V, Hasher>) {
    if map.len() == map.capacity() {
        map.reserve_exact((map.len() / 8).max(16));
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Db {
    pub fn new(stats: Rc<ShardStats>, hot: HotKeys, seed: u64) -> Db {
        Db {
            map: IndexMap::with_hasher(Hasher::new()),
            expiring: IndexMap::with_hasher(Hasher::new()),
            mem_used: 0,
            now_ms: unix_ms(),
            now_secs: (unix_ms() / 1000) as u32,
            stats,
            hot,
            rng: seed | 1,
            watched: HashMap::with_hasher(Hasher::new()),
            lazy: lazyfree::LazyFree::default(),
            lazy_user_del: false,
            lazy_user_flush: false,
            evict: evict::Evictor::default(),
            clock: evict::Clock::default(),
            limits: agg::Limits::default(),
            slot_counts: None,
        }
    }

    /// Cluster mode: keeps a count of keys per hash slot from now on.
    pub fn count_slots(&mut self) {
        let mut counts = vec![0u32; crate::cluster::SLOTS].into_boxed_slice();
        for key in self.map.keys() {
            counts[crate::cluster::key_slot(key) as usize] += 1;
        }
        self.slot_counts = Some(counts);
    }

    /// Whether this shard serves a cluster node (it counts keys per slot).
    pub fn cluster_mode(&self) -> bool {
        self.slot_counts.is_some()
    }

    /// How many keys of `slot` this shard holds (expired ones not yet
    /// removed included, as Redis' count); 0 outside cluster mode.
    pub fn count_in_slot(&self, slot: u16) -> u64 {
        self.slot_counts
            .as_ref()
            .map_or(0, |c| c[slot as usize] as u64)
    }

    /// Up to `count` live keys of `slot`. Walks the table until it has
    /// found them all (a slot's keys are spread over it), stopping early
    /// when the slot's count says there are no more.
    pub fn keys_in_slot(&mut self, slot: u16, count: usize) -> Vec<Vec<u8>> {
        let want = count.min(self.count_in_slot(slot) as usize);
        let mut found = Vec::with_capacity(want.min(1024));
        if want == 0 {
            return found;
        }
        for idx in 0..self.map.len() {
            let (key, _) = self.map.get_index(idx).expect("in range");
            if crate::cluster::key_slot(key) == slot {
                if !self.is_expired_at(idx) {
                    found.push(key.to_vec());
                }
                if found.len() == want {
                    break;
                }
            }
        }
        found
    }

    #[inline]
    fn count_slot(&mut self, key: &[u8], delta: i32) {
        if let Some(counts) = self.slot_counts.as_mut() {
            let c = &mut counts[crate::cluster::key_slot(key) as usize];
            *c = c.wrapping_add_signed(delta);
        }
    }

    fn clear_slot_counts(&mut self) {
        if let Some(counts) = self.slot_counts.as_mut() {
            counts.fill(0);
        }
    }

    pub fn refresh_clock(&mut self) {
        self.now_ms = unix_ms();
        self.now_secs = (self.now_ms / 1000) as u32;
    }

    /// The clock keys are stamped with on access (`DbKey::accessed`).
    pub fn now_secs(&self) -> u32 {
        self.now_secs
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn expires_count(&self) -> usize {
        self.expiring.len()
    }

    pub fn mem_used(&self) -> usize {
        self.mem_used
    }

    /// Whether the entry at map position `idx` has a TTL that has passed.
    #[inline]
    fn is_expired_at(&self, idx: usize) -> bool {
        self.key_of(idx).has_ttl && self.expire_of(idx) <= self.now_ms
    }

    /// The key at map position `idx`, which must be in range.
    #[inline]
    fn key_of(&self, idx: usize) -> &DbKey {
        self.map.get_index(idx).expect("a position in range").0
    }

    /// The key at map position `idx`, to change its metadata (never its
    /// bytes: the table holds their hash).
    #[inline]
    fn key_mut(&mut self, idx: usize) -> &mut DbKey {
        self.map.get_index_mut2(idx).expect("a position in range").0
    }

    /// The expiry time (unix ms) of the entry at `idx`; 0 without TTL.
    #[inline]
    pub fn expire_of(&self, idx: usize) -> u64 {
        if self.key_of(idx).has_ttl {
            self.expiring.get(&idx).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// The position of `key` if it is live. Lazy expiry: a key whose TTL
    /// has passed is removed here. One hash lookup; callers then index by
    /// position instead of hashing the key again.
    fn live_index(&mut self, key: &[u8]) -> Option<usize> {
        self.live_index_hashed(key, self.hash_of(key))
    }

    /// An access of `key`: counts it in the hot-key sketch and returns the
    /// key's hash and its position if live. The lookup and the sketch share
    /// one hash of the key (issue 15: the sketch hashing it again was a
    /// third of the per-command hot-key cost).
    #[inline]
    fn access(&mut self, key: &[u8]) -> (u64, Option<usize>) {
        let hash = self.touch_hot(key);
        (hash, self.live_index_hashed(key, hash))
    }

    /// Counts an access of `key` in the hot-key sketch; returns the key's
    /// hash for the lookup that follows. The sketch gets the map's hash,
    /// which is the same for every access of a key because the map's
    /// hasher is kept for the `Db`'s life (see `flush_async`).
    #[inline]
    fn touch_hot(&mut self, key: &[u8]) -> u64 {
        let hash = self.hash_of(key);
        self.hot.touch_hashed(key, hash);
        hash
    }

    /// `key`'s hash under the map's hasher.
    #[inline]
    fn hash_of(&self, key: &[u8]) -> u64 {
        self.map.hasher().hash_one(key)
    }

    /// The map position of `key` given its `hash` (`hash_of`).
    #[inline]
    fn index_hashed(&self, key: &[u8], hash: u64) -> Option<usize> {
        use indexmap::map::RawEntryApiV1;
        self.map
            .raw_entry_v1()
            .index_from_hash(hash, |k| **k == *key)
    }

    /// `live_index` for a key whose hash the caller has.
    fn live_index_hashed(&mut self, key: &[u8], hash: u64) -> Option<usize> {
        let idx = self.peek_index_hashed(key, hash)?;
        let (k, _) = self.map.get_index_mut2(idx).expect("a live position");
        k.accessed = self.clock.touch(k.accessed, self.now_secs, &mut self.rng);
        Some(idx)
    }

    /// Starts loading what commands on `keys` (at most 32; more are
    /// ignored) will read: their map slots and the keys' and strings' heap
    /// blocks, without waiting for any of it, and changes nothing. The
    /// connection calls it for the keys of a pipelined batch before running
    /// the batch, so that the cache misses of sixteen lookups overlap
    /// instead of coming one after another (issue 15: at P=16 the lookup
    /// was ~35% of a shard's CPU, nearly all of it waiting on memory).
    ///
    /// Two passes, so that more misses are in flight at once: the first
    /// finds each key's slot without reading it (the first full slot whose
    /// control byte matches) and starts loading it; the second reads the
    /// slots, by then arriving together, checks what the slot alone can
    /// tell (`Key::may_equal`) and starts loading the heap blocks. A wrong
    /// guess costs one useless prefetch, never a wrong answer: the
    /// commands look their keys up again.
    ///
    /// The keys are all hashed before the first pass probes any: a probe
    /// waits on its table's control bytes, and a probe loop without the
    /// hashing in it is short enough for the core to run several probes'
    /// loads ahead at once (`cargo bench --bench store -- "16 GETs"`: 16
    /// lookups after the prefetch 913-947 → 823-854 ns).
    pub fn prefetch_keys<'a>(&self, keys: impl Iterator<Item = &'a [u8]> + Clone) {
        use indexmap::map::RawEntryApiV1;
        const NONE: usize = usize::MAX;
        let mut slots = [NONE; 32];
        let mut hashes = [0u64; 32];
        let mut n = 0;
        for (h, key) in hashes.iter_mut().zip(keys.clone()) {
            *h = self.map.hasher().hash_one(key);
            n += 1;
        }
        for (slot, &hash) in slots.iter_mut().zip(&hashes[..n]) {
            if let Some(idx) = self.map.raw_entry_v1().index_from_hash(hash, |_| true) {
                // One slot, which may straddle two lines.
                let (k, v) = self.map.get_index(idx).expect("index from the table");
                bytes::prefetch_line(k as *const DbKey as *const u8);
                bytes::prefetch_line(v as *const Value as *const u8);
                *slot = idx;
            }
        }
        for (&idx, key) in slots.iter().zip(keys) {
            if idx == NONE {
                continue;
            }
            let (k, value) = self.map.get_index(idx).expect("index from the table");
            if !k.may_equal(key) {
                continue;
            }
            if let Some(p) = k.heap_ptr() {
                bytes::prefetch_line(p);
            }
            if let Value::Str(s) = value
                && let Some(p) = s.heap_ptr()
            {
                bytes::prefetch_line(p);
            }
        }
    }

    /// `live_index` without counting as an access.
    fn peek_index(&mut self, key: &[u8]) -> Option<usize> {
        self.peek_index_hashed(key, self.hash_of(key))
    }

    fn peek_index_hashed(&mut self, key: &[u8], hash: u64) -> Option<usize> {
        let idx = self.index_hashed(key, hash)?;
        if self.is_expired_at(idx) {
            self.expire_at_index(idx);
            return None;
        }
        Some(idx)
    }

    /// `peek`, with the key's expiry time (0: none).
    pub fn peek_with_expire(&mut self, key: &[u8]) -> Option<(&Value, u64)> {
        let idx = self.peek_index(key)?;
        Some((&self.map[idx], self.expire_of(idx)))
    }

    /// `get` (a keyspace hit or miss), with the key's expiry time (0:
    /// none).
    pub fn get_with_expire(&mut self, key: &[u8]) -> Option<(&Value, u64)> {
        match self.access(key).1 {
            Some(idx) => {
                self.stats.keyspace_hits.add(1);
                Some((&self.map[idx], self.expire_of(idx)))
            }
            None => {
                self.stats.keyspace_misses.add(1);
                None
            }
        }
    }

    /// Looks at a live entry without it counting as an access: no hit/miss,
    /// no hot-key count, no access time (OBJECT, MEMORY USAGE, as Redis'
    /// LOOKUP_NOTOUCH).
    pub fn peek(&mut self, key: &[u8]) -> Option<&Value> {
        self.peek_key(key).map(|(_, v)| v)
    }

    /// `peek`, with the stored key and its metadata (access clock, TTL
    /// flag).
    pub fn peek_key(&mut self, key: &[u8]) -> Option<(&DbKey, &Value)> {
        let idx = self.peek_index(key)?;
        self.map.get_index(idx)
    }

    /// Removes the expired key at map position `idx`.
    pub fn expire_at_index(&mut self, idx: usize) {
        self.remove_at(idx);
        self.stats.expired_keys.add(1);
    }

    /// Read access: counts a keyspace hit or miss and a hot-key access.
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        match self.access(key).1 {
            Some(idx) => {
                self.stats.keyspace_hits.add(1);
                Some(&self.map[idx])
            }
            None => {
                self.stats.keyspace_misses.add(1);
                None
            }
        }
    }

    /// Existence check without hit/miss accounting, for write paths (NX/XX
    /// checks) and internal probes, which Redis does not count either.
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.access(key).1.is_some()
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn set(&mut self, key: &[u8], value: Value, ttl: Ttl) {
        let hash = self.touch_hot(key);
        self.set_hashed(key, hash, value, ttl);
    }

    /// `set` after its hot-key count, for a key whose hash the caller has.
    fn set_hashed(&mut self, key: &[u8], hash: u64, value: Value, ttl: Ttl) {
        touch_watched(&mut self.watched, key);
        match self.index_hashed(key, hash) {
            Some(idx) => {
                let expire_at = self.next_expire(idx, ttl);
                let (k, v) = self.map.get_index_mut2(idx).expect("present");
                let old = entry_size(k, v);
                let had_ttl = k.has_ttl;
                *v = value;
                k.accessed = self.clock.touch(k.accessed, self.now_secs, &mut self.rng);
                k.has_ttl = expire_at != 0;
                let new = entry_size(k, v);
                self.mem_used = (self.mem_used + new).saturating_sub(old);
                if had_ttl || expire_at != 0 {
                    self.track_expiring(idx, expire_at);
                }
            }
            None => {
                let expire_at = match ttl {
                    Ttl::At(at) => at,
                    _ => 0,
                };
                let mut k = DbKey::new(key, self.clock.fresh(self.now_secs));
                k.has_ttl = expire_at != 0;
                let idx = self.insert_new(k, hash, value);
                self.track_expiring(idx, expire_at);
            }
        }
    }

    /// The expiry time the key at `idx` gets from a write with `ttl`
    /// (0: none); an expired TTL is not kept.
    #[inline]
    fn next_expire(&self, idx: usize, ttl: Ttl) -> u64 {
        match ttl {
            Ttl::Clear => 0,
            Ttl::At(at) => at,
            Ttl::Keep => match self.expire_of(idx) {
                at if at > self.now_ms => at,
                _ => 0,
            },
        }
    }

    /// Overwrites a string value in place, reusing its buffer: the GET/SET
    /// hot path allocates nothing when a key is rewritten.
    /// Written as SET writes (OBJECT ENCODING int/embstr/raw by content).
    #[inline]
    pub fn set_string(&mut self, key: &[u8], bytes: &[u8], ttl: Ttl) {
        self.set_string_encoded(key, bytes, ttl, StrEncoding::Auto);
    }

    /// `set_string` with the encoding the writing command gives it.
    pub fn set_string_encoded(&mut self, key: &[u8], bytes: &[u8], ttl: Ttl, enc: StrEncoding) {
        let hash = self.touch_hot(key);
        if let Some(idx) = self.index_hashed(key, hash)
            && matches!(self.map[idx], Value::Str(_))
        {
            let expire_at = self.next_expire(idx, ttl);
            let (k, v) = self.map.get_index_mut2(idx).expect("present");
            let Value::Str(s) = v else {
                unreachable!("checked above")
            };
            let old = str_size(s);
            s.assign(bytes, enc);
            let new = str_size(s);
            k.accessed = self.clock.touch(k.accessed, self.now_secs, &mut self.rng);
            let had_ttl = k.has_ttl;
            k.has_ttl = expire_at != 0;
            let ttl_cost = |on: bool| if on { cost::EXPIRE } else { 0 };
            self.mem_used = (self.mem_used + new + ttl_cost(expire_at != 0))
                .saturating_sub(old + ttl_cost(had_ttl));
            touch_watched(&mut self.watched, key);
            if had_ttl || expire_at != 0 {
                self.track_expiring(idx, expire_at);
            }
            return;
        }
        self.set_hashed(
            key,
            hash,
            Value::Str(StrValue::with_encoding(bytes, enc)),
            ttl,
        );
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let idx = self.map.get_index_of(key)?;
        Some(self.remove_at(idx))
    }

    /// `remove`, with the expiry time the key had (0: none).
    pub fn remove_with_expire(&mut self, key: &[u8]) -> Option<(Value, u64)> {
        let idx = self.map.get_index_of(key)?;
        let at = self.expire_of(idx);
        Some((self.remove_at(idx), at))
    }

    fn remove_at(&mut self, idx: usize) -> Value {
        let value = self.detach_at(idx);
        self.mem_used = self.mem_used.saturating_sub(value_size(&value));
        value
    }

    /// Removes the entry at `idx`, subtracting only the key's own cost:
    /// its value's bytes stay counted for the caller to free or queue.
    fn detach_at(&mut self, idx: usize) -> Value {
        let (k, value) = self.unlink_at(idx);
        touch_watched(&mut self.watched, &k);
        value
    }

    /// Removes a key a write guard created and never filled: nobody saw
    /// it, so no WATCH or blocked client hears of it (see `guard`).
    fn remove_unseen_at(&mut self, idx: usize) {
        let (_, value) = self.unlink_at(idx);
        self.mem_used = self.mem_used.saturating_sub(value_size(&value));
    }

    /// `detach_at` without telling WATCH.
    fn unlink_at(&mut self, idx: usize) -> (DbKey, Value) {
        let last = self.map.len() - 1;
        let (k, value) = self
            .map
            .swap_remove_index(idx)
            .expect("index of a present key");
        self.mem_used = self.mem_used.saturating_sub(entry_overhead(&k));
        self.count_slot(&k, -1);
        if k.has_ttl {
            self.expiring.swap_remove(&idx);
        }
        // swap_remove moved the last entry into `idx`.
        if idx != last
            && self.key_of(idx).has_ttl
            && let Some(at) = self.expiring.swap_remove(&last)
        {
            self.expiring.insert(idx, at);
        }
        (k, value)
    }

    /// Deletes a live key (expired keys count as absent).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        match self.live_index(key) {
            Some(idx) => {
                self.remove_at(idx);
                true
            }
            None => false,
        }
    }

    /// UNLINK: deletes a live key at once; a value with more than
    /// `LAZYFREE_THRESHOLD` elements is queued and freed later in slices
    /// (`lazyfree_slice`), a smaller one right away.
    pub fn unlink(&mut self, key: &[u8]) -> bool {
        let Some(idx) = self.live_index(key) else {
            return false;
        };
        let value = self.detach_at(idx);
        if lazyfree::free_effort(&value) > lazyfree::LAZYFREE_THRESHOLD {
            self.lazy.push_value(value);
        } else {
            self.mem_used = self.mem_used.saturating_sub(value_size(&value));
        }
        true
    }

    /// Sets or clears the TTL of an existing live key.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let Some(idx) = self.live_index(key) else {
            return false;
        };
        let had = self.key_of(idx).has_ttl;
        if !had && expire_at == 0 {
            // No TTL to remove: not a change (GETEX PERSIST), as in Redis.
            return true;
        }
        touch_watched(&mut self.watched, key);
        self.key_mut(idx).has_ttl = expire_at != 0;
        match (had, expire_at != 0) {
            (false, true) => self.mem_used += cost::EXPIRE,
            (true, false) => self.mem_used = self.mem_used.saturating_sub(cost::EXPIRE),
            _ => {}
        }
        self.track_expiring(idx, expire_at);
        true
    }

    /// Adds `key`, known to be absent, and counts its bytes; returns its
    /// position. `hash` is the key's (`hash_of`), which the caller's lookup
    /// computed: the map neither hashes the key again nor looks for it.
    #[inline]
    pub(super) fn insert_new(&mut self, key: DbKey, hash: u64, value: Value) -> usize {
        use indexmap::map::{RawEntryApiV1, raw_entry_v1::RawEntryMut};
        self.mem_used += entry_size(&key, &value);
        self.count_slot(&key, 1);
        grow_gently(&mut self.map);
        match self.map.raw_entry_mut_v1().from_hash(hash, |_| false) {
            RawEntryMut::Vacant(slot) => {
                let idx = slot.index();
                slot.insert_hashed_nocheck(hash, key, value);
                idx
            }
            RawEntryMut::Occupied(_) => unreachable!("a match that never matches"),
        }
    }

    /// Records the expiry time of the entry at `idx` (0: none); its key's
    /// `has_ttl` flag is already set accordingly.
    #[inline]
    fn track_expiring(&mut self, idx: usize, expire_at: u64) {
        if expire_at != 0 {
            grow_gently(&mut self.expiring);
            self.expiring.insert(idx, expire_at);
        } else {
            self.expiring.swap_remove(&idx);
        }
    }

    /// FLUSHALL/FLUSHDB (SYNC): frees the keyspace now. What an earlier
    /// UNLINK or ASYNC flush queued stays queued (and counted).
    pub fn flush(&mut self) {
        self.touch_watched_present();
        self.evict.forget();
        self.clear_slot_counts();
        self.map.clear();
        self.map.shrink_to_fit();
        self.expiring.clear();
        self.expiring.shrink_to_fit();
        // Walks the queue only when something is queued.
        self.mem_used = self.lazy.remaining_bytes();
    }

    /// FLUSHALL/FLUSHDB ASYNC: the keyspace is empty at once and the old
    /// table is freed in slices; its bytes stay counted until freed.
    pub fn flush_async(&mut self) {
        self.evict.forget();
        self.clear_slot_counts();
        if self.map.len() <= lazyfree::LAZYFREE_THRESHOLD {
            // Small: not worth queuing, but keep what is queued queued.
            self.touch_watched_present();
            let small: usize = self.map.iter().map(|(k, e)| entry_size(k, e)).sum();
            self.mem_used = self.mem_used.saturating_sub(small);
            self.map.clear();
            self.expiring.clear();
            return;
        }
        self.touch_watched_present();
        // The same hasher: the hot-key table keeps the hashes of its members
        // (`touch_hot`), so a key must hash alike before and after a flush.
        let hasher = self.map.hasher().clone();
        let map = std::mem::replace(&mut self.map, IndexMap::with_hasher(hasher));
        let ttls = std::mem::replace(&mut self.expiring, IndexMap::with_hasher(Hasher::new()));
        self.lazy.push_table(map, ttls);
    }

    /// As Redis: a flush modifies the watched keys that existed.
    fn touch_watched_present(&mut self) {
        let map = &self.map;
        for (key, w) in self.watched.iter_mut() {
            if map.contains_key(&key[..]) {
                w.version += 1;
            }
        }
    }

    /// Frees one bounded slice of the lazy-free queue (at most
    /// `max_elements` elements, about `max_time`, plus a step of parked
    /// large blocks). Returns whether more is queued or parked.
    pub fn lazyfree_slice(&mut self, max_elements: usize, max_time: std::time::Duration) -> bool {
        let before = self.mem_used;
        let more = self.lazy.slice(&mut self.mem_used, max_elements, max_time);
        self.lazy_freed(before.saturating_sub(self.mem_used), more);
        more
    }

    /// Whether the lazy-free queue is empty; if it is, `waker` is woken
    /// when something is queued.
    pub fn lazyfree_idle(&mut self, waker: &std::task::Waker) -> bool {
        let idle = self.lazy.is_idle();
        if idle {
            self.lazy.set_waker(waker);
        }
        idle
    }

    /// INFO `lazyfree_pending_objects`: values (or keys of a flushed
    /// table) detached but not freed yet.
    pub fn lazyfree_pending_objects(&self) -> usize {
        self.lazy.pending_objects()
    }

    /// INFO `lazyfreed_objects`: objects freed by the lazy-free queue.
    pub fn lazyfreed_objects(&self) -> u64 {
        self.lazy.freed_objects()
    }

    /// Shutdown: drops the queue without freeing it piece by piece.
    pub fn lazyfree_abandon(&mut self) {
        self.lazy.abandon();
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for sampling, and no shared RNG state.
        evict::xorshift(&mut self.rng)
    }

    pub fn random_index(&mut self, len: usize) -> usize {
        (self.next_random() % len as u64) as usize
    }

    /// One active-expiry cycle: sample keys with a TTL, delete the expired
    /// ones, and go again while more than a quarter of a sample had expired,
    /// within `max_rounds` so a tick stays short.
    pub fn active_expire(&mut self, max_rounds: usize) -> usize {
        const SAMPLE: usize = 20;
        self.refresh_clock();
        let mut removed = 0;
        for _ in 0..max_rounds {
            let n = self.expiring.len();
            if n == 0 {
                break;
            }
            let mut expired_in_round = 0;
            for _ in 0..SAMPLE.min(n) {
                if self.expiring.is_empty() {
                    break;
                }
                let pick = self.random_index(self.expiring.len());
                let (&idx, &at) = self.expiring.get_index(pick).expect("sampled in range");
                if at <= self.now_ms {
                    self.expire_at_index(idx);
                    expired_in_round += 1;
                }
            }
            removed += expired_in_round;
            if expired_in_round * 4 <= SAMPLE.min(n) {
                break;
            }
        }
        removed
    }

    /// Starts watching `key` for one client; returns the modification count
    /// that EXEC compares against. A key that already expired is removed
    /// first, so its expiry is not mistaken for a later change.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        self.live_index(key);
        let w = self.watched.entry(key.into()).or_insert(WatchedKey {
            version: 0,
            watchers: 0,
            blocked: 0,
        });
        w.watchers += 1;
        w.version
    }

    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 && w.blocked == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// True if `key` is unchanged since WATCH returned `version`. A key
    /// whose TTL passed since then counts as changed, as in Redis 7.
    pub fn watch_intact(&mut self, key: &[u8], version: u64) -> bool {
        self.live_index(key);
        self.watched.get(key).is_some_and(|w| w.version == version)
    }

    // ---- Blocking commands (issue 13): keys with blocked clients ----

    /// One more blocked client waits on `key`: its writes now mark it
    /// ready (`store::blocking`). Shares the WATCH entry, so a write still
    /// pays one branch while nothing is watched or waited on.
    pub fn block_key(&mut self, key: &[u8]) {
        let w = self.watched.entry(key.into()).or_insert(WatchedKey {
            version: 0,
            watchers: 0,
            blocked: 0,
        });
        w.blocked += 1;
    }

    /// A blocked client stopped waiting on `key`.
    pub fn unblock_key(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.blocked = w.blocked.saturating_sub(1);
            if w.watchers == 0 && w.blocked == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// Key at a map position (SCAN cursors and RANDOMKEY).
    pub fn key_at(&self, idx: usize) -> Option<(&DbKey, &Value)> {
        self.map.get_index(idx)
    }

    /// Whether the entry at map position `idx` has not expired.
    pub fn is_live_at(&self, idx: usize) -> bool {
        !self.is_expired_at(idx)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&DbKey, &Value)> {
        self.map.iter()
    }

    /// Sum of every entry's size plus what the lazy-free queue still holds,
    /// recomputed by a full scan. Only for tests that check the incremental
    /// accounting.
    pub fn mem_recomputed(&self) -> usize {
        self.map
            .iter()
            .map(|(k, e)| entry_size(k, e))
            .sum::<usize>()
            + self.lazy.remaining_bytes()
    }

    /// Sum of the TTLs (ms from now) of live keys with expiry, for INFO's
    /// avg_ttl; sampled so that INFO stays O(1).
    pub fn avg_ttl_sample(&mut self) -> u64 {
        let n = self.expiring.len();
        if n == 0 {
            return 0;
        }
        let samples = n.min(32);
        let mut total = 0u64;
        for _ in 0..samples {
            let pick = self.random_index(n);
            let (_, &at) = self.expiring.get_index(pick).expect("sampled in range");
            total += at.saturating_sub(self.now_ms);
        }
        total / samples as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        Db::new(Rc::new(ShardStats::default()), HotKeys::new(8, true), 7)
    }

    /// `entry_size` of a live key.
    fn size_of(db: &mut Db, key: &[u8]) -> usize {
        let (k, v) = db.peek_key(key).expect("present");
        entry_size(k, v)
    }

    #[test]
    fn prefetching_a_batch_changes_nothing_whatever_its_length() {
        let mut db = db();
        for i in 0..100u32 {
            let value = if i % 2 == 0 {
                vec![b'v'; 64]
            } else {
                vec![b'w'; 3]
            };
            db.set_string(format!("key:{i:012}").as_bytes(), &value, Ttl::Clear);
        }
        // Present, absent, inline and heap keys, and more than the 32 a
        // batch prefetches.
        let keys: Vec<Vec<u8>> = (0..80u32)
            .map(|i| match i % 3 {
                0 => format!("key:{:012}", i).into_bytes(),
                1 => format!("absent:{i}").into_bytes(),
                _ => format!("k{i}").into_bytes(),
            })
            .collect();
        let hits = db.stats.keyspace_hits.get();
        let misses = db.stats.keyspace_misses.get();
        for n in [0, 1, 16, 32, 33, 80] {
            db.prefetch_keys(keys[..n].iter().map(|k| k.as_slice()));
        }
        assert_eq!(db.len(), 100);
        assert_eq!(db.stats.keyspace_hits.get(), hits, "not counted as reads");
        assert_eq!(db.stats.keyspace_misses.get(), misses);
        let string = |db: &mut Db, key: &[u8]| match db.get(key) {
            Some(Value::Str(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        assert_eq!(string(&mut db, b"key:000000000000"), Some(vec![b'v'; 64]));
        assert_eq!(string(&mut db, b"key:000000000099"), Some(b"www".to_vec()));
        assert_eq!(string(&mut db, b"absent:1"), None);
    }

    #[test]
    fn a_key_keeps_one_hot_key_entry_across_an_async_flush() {
        // The hot-key table identifies members by the map's hash of their
        // key (`touch_hot`); a flush that gave the new map a new hasher
        // would make the same key a second member.
        let mut db = db();
        for i in 0..=lazyfree::LAZYFREE_THRESHOLD {
            db.set_string(format!("k{i}").as_bytes(), b"v", Ttl::Clear);
        }
        for _ in 0..100 {
            db.get(b"hot");
        }
        db.flush_async();
        for _ in 0..50 {
            db.set_string(b"hot", b"v", Ttl::Clear);
        }
        let top = db.hot.top();
        let hot: Vec<_> = top.iter().filter(|(k, _)| k == b"hot").collect();
        assert_eq!(hot.len(), 1, "one entry for one key: {top:?}");
        // Exact from its admission, a few accesses in: more than the 100
        // before the flush only if the 50 after it counted here too.
        assert!(
            hot[0].1 > 100,
            "the accesses after the flush counted: {top:?}"
        );
    }

    #[test]
    fn keys_of_up_to_18_bytes_cost_only_their_slot() {
        let mut db = db();
        for len in [1, 15, 16, 18, 19, 40] {
            let key = vec![b'k'; len];
            db.set_string(&key, b"v", Ttl::Clear);
            let heap = if len > DbKey::INLINE {
                cost::bytes(len)
            } else {
                0
            };
            assert_eq!(size_of(&mut db, &key), cost::ENTRY + heap, "{len}");
            db.set_expire(&key, unix_ms() + 100_000);
            assert_eq!(size_of(&mut db, &key), cost::ENTRY + cost::EXPIRE + heap);
        }
        assert_eq!(db.mem_used(), db.mem_recomputed());
    }

    #[test]
    fn accounting_matches_full_recount_after_mixed_writes() {
        let mut db = db();
        for i in 0..200u32 {
            let key = format!("k{}", i % 50);
            match i % 5 {
                0 => db.set(
                    key.as_bytes(),
                    Value::Str(vec![b'x'; i as usize].into()),
                    Ttl::Clear,
                ),
                1 => db.set_string(key.as_bytes(), &vec![b'y'; (i / 2) as usize], Ttl::Keep),
                2 => {
                    db.set_expire(key.as_bytes(), unix_ms() + 100_000);
                }
                3 => {
                    db.remove(key.as_bytes());
                }
                _ => db.set(
                    key.as_bytes(),
                    Value::Str(b"v".to_vec().into()),
                    Ttl::At(unix_ms() + 5000),
                ),
            }
            assert_eq!(db.mem_used(), db.mem_recomputed(), "after op {i}");
        }
    }

    fn big_set(n: usize) -> Value {
        let mut s = SetValue::with_hasher(Hasher::new());
        for i in 0..n {
            s.insert(Key::new(format!("m{i}").as_bytes()));
        }
        Value::Set(Box::new(Set::Table(Box::new(s))))
    }

    fn big_list(n: usize) -> Value {
        let elems: Vec<Vec<u8>> = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
        // Small chunks, so that freeing takes many slices.
        let lim = agg::Limits {
            list_max_size: 1,
            ..agg::Limits::default()
        };
        Value::List(Box::new(agg::list_of(
            elems.iter().map(Vec::as_slice),
            &lim,
        )))
    }

    fn big_hash(n: usize) -> Value {
        let mut h = HashValue::with_hasher(Hasher::new());
        for i in 0..n {
            h.insert(Key::new(format!("f{i}").as_bytes()), b"v".to_vec().into());
        }
        Value::Hash(Box::new(Hash::Table(Box::new(h))))
    }

    /// Runs small slices until the queue is empty, checking the accounting
    /// after each; returns how many slices it took.
    fn drain(db: &mut Db, per_slice: usize) -> usize {
        let mut slices = 0;
        loop {
            let before = db.mem_used();
            let more = db.lazyfree_slice(per_slice, std::time::Duration::MAX);
            slices += 1;
            assert_eq!(db.mem_used(), db.mem_recomputed(), "slice {slices}");
            assert!(db.mem_used() <= before);
            if !more {
                return slices;
            }
        }
    }

    #[test]
    fn unlink_detaches_at_once_and_frees_in_slices() {
        let mut db = db();
        db.set(b"s", big_set(10_000), Ttl::At(unix_ms() + 100_000));
        db.set(b"l", big_list(5_000), Ttl::Clear);
        db.set(b"h", big_hash(3_000), Ttl::Clear);
        db.set(b"small", big_set(64), Ttl::Clear);
        db.set(b"str", Value::Str(vec![b'x'; 1000].into()), Ttl::Clear);
        let full = db.mem_used();
        let small_size = size_of(&mut db, b"small");
        for k in [&b"s"[..], b"l", b"h", b"small", b"str"] {
            assert!(db.unlink(k));
            assert!(!db.contains(k));
        }
        assert!(!db.unlink(b"s"));
        assert_eq!((db.len(), db.expires_count()), (0, 0));
        // The three large values wait; the small ones went at once.
        assert_eq!(db.lazyfree_pending_objects(), 3);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        assert!(db.mem_used() < full - small_size);
        assert!(db.mem_used() > 10_000 * cost::SET_MEMBER);
        // 18k elements in slices of 1000: about 18 slices plus conversions.
        let slices = drain(&mut db, 1000);
        assert!((18..40).contains(&slices), "{slices} slices");
        assert_eq!(db.mem_used(), 0);
        assert_eq!(db.lazyfree_pending_objects(), 0);
        assert_eq!(db.lazyfreed_objects(), 3);
    }

    #[test]
    fn drained_pages_are_released_without_touching_what_remains() {
        // Large enough that each buffer spans many release steps.
        let mut db = db();
        db.set(b"s", big_set(300_000), Ttl::Clear);
        db.set(b"l", big_list(300_000), Ttl::Clear);
        db.set(b"h", big_hash(200_000), Ttl::Clear);
        for k in [&b"s"[..], b"l", b"h"] {
            db.unlink(k);
        }
        // Each slice checks every remaining element against the accounting
        // (a released slot would read as a zero length).
        drain(&mut db, 20_000);
        assert_eq!(db.mem_used(), 0);
    }

    #[test]
    fn a_key_recreated_while_its_old_value_is_pending_is_independent() {
        let mut db = db();
        db.set(b"k", big_set(5_000), Ttl::Clear);
        assert!(db.unlink(b"k"));
        db.lazyfree_slice(1000, std::time::Duration::MAX);
        db.set(b"k", big_set(100), Ttl::Clear);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        drain(&mut db, 700);
        let Some(Value::Set(s)) = db.get(b"k") else {
            panic!("new value gone");
        };
        assert_eq!(s.len(), 100);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        assert_eq!(db.mem_used(), size_of(&mut db, b"k"));
    }

    #[test]
    fn flush_async_empties_at_once_and_frees_later() {
        let mut db = db();
        for i in 0..5_000 {
            let ttl = if i % 2 == 0 {
                Ttl::At(unix_ms() + 100_000)
            } else {
                Ttl::Clear
            };
            db.set(
                format!("k{i}").as_bytes(),
                Value::Str(vec![b'v'; 10].into()),
                ttl,
            );
        }
        db.set(b"big", big_list(3_000), Ttl::Clear);
        let w = db.watch(b"k1");
        let full = db.mem_used();
        db.flush_async();
        assert_eq!((db.len(), db.expires_count()), (0, 0));
        assert!(!db.watch_intact(b"k1", w));
        assert_eq!(db.mem_used(), full, "counted until freed");
        assert_eq!(db.lazyfree_pending_objects(), 5_001);
        db.set(b"k1", Value::Str(b"new".to_vec().into()), Ttl::Clear);
        drain(&mut db, 512);
        assert_eq!(db.lazyfree_pending_objects(), 0);
        assert_eq!(db.lazyfreed_objects(), 5_001);
        assert_eq!(db.mem_used(), size_of(&mut db, b"k1"));
    }

    #[test]
    fn sync_flush_keeps_what_is_queued_counted() {
        let mut db = db();
        db.set(b"a", big_set(2_000), Ttl::Clear);
        db.unlink(b"a");
        db.set(b"b", big_set(10), Ttl::Clear);
        db.flush();
        assert_eq!(db.len(), 0);
        assert_eq!(db.lazyfree_pending_objects(), 1);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        assert!(db.mem_used() > 0);
        drain(&mut db, 300);
        assert_eq!(db.mem_used(), 0);
    }

    #[derive(Debug, Clone)]
    enum TtlOp {
        Set(u8, Option<u64>),
        SetString(u8, usize, bool),
        Expire(u8, u64),
        Persist(u8),
        Remove(u8),
        Unlink(u8),
    }

    fn ttl_op() -> impl proptest::strategy::Strategy<Value = TtlOp> {
        use proptest::prelude::*;
        let at = 1u64..1000;
        prop_oneof![
            (any::<u8>(), proptest::option::of(at.clone())).prop_map(|(k, t)| TtlOp::Set(k, t)),
            (any::<u8>(), 0usize..60, any::<bool>())
                .prop_map(|(k, n, keep)| TtlOp::SetString(k, n, keep)),
            (any::<u8>(), at).prop_map(|(k, t)| TtlOp::Expire(k, t)),
            any::<u8>().prop_map(TtlOp::Persist),
            any::<u8>().prop_map(TtlOp::Remove),
            any::<u8>().prop_map(TtlOp::Unlink),
        ]
    }

    proptest::proptest! {
        /// The TTLs kept apart from the entries (`expiring`, `has_ttl`)
        /// follow every write and every swap_remove, against a plain map
        /// of key → TTL; the accounting matches a full recount.
        #[test]
        fn ttls_follow_the_keys_they_belong_to(
            ops in proptest::collection::vec(ttl_op(), 1..120)
        ) {
            let mut db = db();
            // Far in the future: nothing expires during the test.
            let base = unix_ms() + 1_000_000_000;
            let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
            // Keys of the three kinds: short, inline only in a `DbKey`
            // (16-18 bytes), and on the heap.
            let key = |k: u8| {
                match k % 3 {
                    0 => format!("k{k}"),
                    1 => format!("key:{k:0>12}{}", "-".repeat(k as usize % 3)),
                    _ => format!("a-key-longer-than-eighteen-{k:03}"),
                }
                .into_bytes()
            };
            for op in ops {
                match op {
                    TtlOp::Set(k, t) => {
                        let ttl = t.map_or(Ttl::Clear, |t| Ttl::At(base + t));
                        db.set(&key(k), Value::Str(StrValue::new(b"v")), ttl);
                        model.insert(key(k), t.map_or(0, |t| base + t));
                    }
                    TtlOp::SetString(k, n, keep) => {
                        let ttl = if keep { Ttl::Keep } else { Ttl::Clear };
                        db.set_string(&key(k), &vec![b'x'; n], ttl);
                        let old = model.get(&key(k)).copied().unwrap_or(0);
                        model.insert(key(k), if keep { old } else { 0 });
                    }
                    TtlOp::Expire(k, t) => {
                        let done = db.set_expire(&key(k), base + t);
                        proptest::prop_assert_eq!(done, model.contains_key(&key(k)));
                        if done {
                            model.insert(key(k), base + t);
                        }
                    }
                    TtlOp::Persist(k) => {
                        db.set_expire(&key(k), 0);
                        if let Some(at) = model.get_mut(&key(k)) {
                            *at = 0;
                        }
                    }
                    TtlOp::Remove(k) => {
                        let had = db.remove_with_expire(&key(k)).map(|(_, at)| at);
                        proptest::prop_assert_eq!(had, model.remove(&key(k)));
                    }
                    TtlOp::Unlink(k) => {
                        proptest::prop_assert_eq!(db.unlink(&key(k)), model.remove(&key(k)).is_some());
                    }
                }
                proptest::prop_assert_eq!(db.len(), model.len());
                proptest::prop_assert_eq!(
                    db.expires_count(),
                    model.values().filter(|&&at| at != 0).count()
                );
                for (k, &at) in &model {
                    let (stored, _) = db.peek_key(k).expect("present");
                    proptest::prop_assert_eq!(stored.has_ttl(), at != 0);
                    let (_, got) = db.peek_with_expire(k).expect("present");
                    proptest::prop_assert_eq!(got, at);
                }
                proptest::prop_assert_eq!(db.mem_used(), db.mem_recomputed());
            }
        }
    }

    #[test]
    fn expiring_index_follows_swap_remove() {
        let mut db = db();
        db.set(b"a", Value::Str(b"1".to_vec().into()), Ttl::Clear);
        db.set(b"b", Value::Str(b"1".to_vec().into()), Ttl::Clear);
        db.set(b"c", Value::Str(b"1".to_vec().into()), Ttl::At(1));
        // Removing "a" moves "c" (last) into position 0.
        db.remove(b"a");
        assert_eq!(db.expires_count(), 1);
        assert_eq!(db.active_expire(4), 1);
        assert_eq!(db.len(), 1);
        assert_eq!(db.expires_count(), 0);
    }
}
