//! Eviction: this shard's share of `maxmemory`, the eviction policies and
//! the access clock they read (LRU seconds or Redis' LFU counter).
//!
//! **Budget.** Each shard gets `maxmemory / nshards` bytes (the remainder
//! spread one byte each over the first shards, so the shares add up to
//! `maxmemory`). Shards share nothing: a shard decides from its own used
//! bytes only, with no cross-core counter on the data path. A skewed
//! keyspace can therefore see one shard evict while another is below its
//! share; with `ahash` routing the shares fill evenly in practice.
//! The used bytes are the shard's jemalloc arena ([`Db::budget_used`]):
//! everything the shard's core holds counts, its fixed baseline included
//! (~10-300 KB, plus ~1 MB of mesh channels on the shard that joined the
//! mesh last), as Redis counts its whole `used_memory`. What is allocated
//! outside the shard arenas (~3.5 MB) is in no share: INFO `used_memory`
//! stays within `maxmemory` + 8 MB (tests/eviction.rs `OVERHEAD`).
//!
//! **When.** A command flagged `denyoom` that runs on a shard over its
//! budget first evicts ([`Db::make_room`]) for at most the tenacity time
//! (Redis' `evictionTimeLimitUs`: 500 µs at the default 10) and
//! [`MAX_KEYS_PER_CALL`] keys, so one write never stalls a core; if the
//! shard is still over budget after that, the write goes through and the
//! background task on the shard (`spawn_housekeeping`) keeps evicting in
//! the same slices, pausing between them so the core serves its clients.
//! Only when nothing can be evicted (`noeviction`, or a `volatile-*`
//! policy with no key carrying a TTL) is the write refused with [`OOM`].
//!
//! **Which keys.** As Redis' evict.c: the random policies pick a random
//! key (from the whole keyspace, or from the keys with a TTL); the others
//! sample `maxmemory-samples` keys into a pool of [`EVPOOL_SIZE`]
//! candidates kept sorted by score (idle seconds, 255 − LFU counter, or
//! how soon the TTL ends), and evict the best candidate that still exists.
//! An evicted key leaves through the same path as UNLINK (accounting,
//! WATCH counts, lazy free of large values) and counts in `evicted_keys`.
//!
//! **Access clock.** `DbKey::accessed` is 32 bits. Under LRU (and every
//! non-LFU policy) it is the unix second of the last access, what OBJECT
//! IDLETIME reads. Under an LFU policy it holds Redis' layout of its
//! 24-bit `lru` field: 16 bits of minutes (the last decrement time) and an
//! 8-bit logarithmic counter, incremented with probability
//! `1 / ((counter − 5) · lfu-log-factor + 1)` and decremented by one per
//! `lfu-decay-time` minutes; new keys start at [`LFU_INIT_VAL`].
//! Switching policy at runtime reinterprets the stamps, as in Redis.

use std::time::{Duration, Instant};

use super::bytes::DbKeyBytes;
use super::{Db, lazyfree, value_size};

/// Redis' reply to a `denyoom` command it cannot make room for.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// Candidates kept between eviction rounds (Redis' EVPOOL_SIZE).
pub const EVPOOL_SIZE: usize = 16;
/// LFU counter of a new key (Redis' LFU_INIT_VAL).
pub const LFU_INIT_VAL: u32 = 5;
/// Most keys one call of [`Db::make_room`] evicts, besides its time limit.
pub const MAX_KEYS_PER_CALL: usize = 4096;
/// Keys evicted between two clock reads.
const KEYS_PER_CLOCK_READ: usize = 16;
/// Tables below this capacity are never shrunk (not worth it).
const SHRINK_MIN_CAPACITY: usize = 1024;
/// Tables holding more keys than this are not shrunk: a shrink copies and
/// re-indexes every key left in one step (~3 ms for 100k keys here, ~80 ms
/// for 500k), and a core must not stall that long. Redis rehashes
/// incrementally; this table cannot, so a large, sparse table keeps its
/// capacity until it empties further.
const SHRINK_MAX_LEN: usize = 100_000;

pub use crate::config::{EvictionSettings as Settings, POLICY_ERROR, Policy};

/// What an eviction call achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under budget (or no budget).
    Ok,
    /// Still over budget when its time or key cap ran out; the background
    /// task goes on. Writes are allowed, as Redis' EVICT_RUNNING.
    Running,
    /// Over budget and nothing can be evicted: `denyoom` commands get OOM.
    Fail,
}

/// The per-shard eviction state inside [`Db`].
#[derive(Debug, Default)]
pub(crate) struct Evictor {
    pub settings: Settings,
    /// This shard's share of `maxmemory`; 0 = no limit.
    budget: usize,
    /// Candidates, ascending by score (the best to evict last). Their
    /// copies hold as many bytes inline as the keyspace's keys, so that
    /// sampling keys of up to 18 bytes allocates nothing.
    pool: Vec<(u64, DbKeyBytes)>,
    /// Since when this shard has been over its budget (INFO's
    /// `current_eviction_exceeded_time`).
    exceeded_since: Option<Instant>,
    /// Time spent over budget before the current stretch.
    exceeded_total: Duration,
    /// Bytes eviction handed to lazy free that the lazy-free task has not
    /// freed yet (estimated as `value_size`). They still show in the
    /// allocator's figure, but are on their way out: the budget counts
    /// them as gone, so that eviction does not go on evicting other keys
    /// while it waits for them (see [`Db::budget_used`]).
    pub(super) lazy_credit: usize,
}

impl Evictor {
    /// FLUSHALL/FLUSHDB: the candidates are gone (a key of the same name
    /// written later must not inherit an old score).
    pub(super) fn forget(&mut self) {
        self.pool.clear();
    }

    fn exceeded(&mut self, over: bool) {
        match (over, self.exceeded_since) {
            (true, None) => self.exceeded_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.exceeded_total += since.elapsed();
                self.exceeded_since = None;
            }
            _ => {}
        }
    }
}

/// Redis' LFU minutes clock: 16 bits of unix minutes.
#[inline]
fn lfu_minutes(now_secs: u32) -> u32 {
    (now_secs / 60) & 0xFFFF
}

/// Redis' `LFUDecrAndReturn`: the counter of `stamp` after decay.
pub fn lfu_decayed(stamp: u32, now_secs: u32, decay_time: u32) -> u32 {
    let ldt = (stamp >> 8) & 0xFFFF;
    let counter = stamp & 0xFF;
    if decay_time == 0 {
        return counter;
    }
    let now = lfu_minutes(now_secs);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    counter.saturating_sub(elapsed / decay_time)
}

/// The access clock as entries are stamped with it: LRU seconds, or the
/// LFU parameters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clock {
    /// `(lfu-log-factor, lfu-decay-time)` under an LFU policy.
    pub lfu: Option<(u32, u32)>,
}

impl Clock {
    /// The stamp of a key created now.
    #[inline]
    pub fn fresh(self, now_secs: u32) -> u32 {
        match self.lfu {
            None => now_secs,
            Some(_) => (lfu_minutes(now_secs) << 8) | LFU_INIT_VAL,
        }
    }

    /// The stamp after an access of a key stamped `old` (Redis'
    /// `updateLFU` under LFU).
    #[inline]
    pub fn touch(self, old: u32, now_secs: u32, rng: &mut u64) -> u32 {
        match self.lfu {
            None => now_secs,
            Some((log_factor, decay)) => lfu_touch(old, now_secs, rng, log_factor, decay),
        }
    }
}

#[cold]
fn lfu_touch(old: u32, now_secs: u32, rng: &mut u64, log_factor: u32, decay: u32) -> u32 {
    let mut counter = lfu_decayed(old, now_secs, decay);
    if counter < 255 {
        // Redis' LFULogIncr.
        let r = (xorshift(rng) >> 11) as f64 / (1u64 << 53) as f64;
        let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
        let p = 1.0 / (base * log_factor as f64 + 1.0);
        if r < p {
            counter += 1;
        }
    }
    (lfu_minutes(now_secs) << 8) | counter
}

/// xorshift64*, the same generator as `Db`'s sampling.
#[inline]
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

impl Db {
    /// THE figure the eviction budget is compared with: this shard's used
    /// bytes as its jemalloc arena counts them (`crate::alloc`: exact as of
    /// the last calibration plus this thread's net allocations since), so
    /// client buffers, allocator rounding and the shard's fixed baseline
    /// count as they do in Redis' `used_memory`. A `Db` on a thread without
    /// a shard arena (unit tests, benches) falls back to the keyspace
    /// estimate.
    ///
    /// An evicted key is freed on this thread, so the figure drops at once
    /// (the thread's own counters). A large value evicted to lazy free
    /// drops only when this shard's lazy-free task frees it, in slices
    /// between commands; until then its bytes are subtracted here
    /// (`lazy_credit`), as if already freed. Redis 7.0 gets the same effect
    /// differently: its lazy-free thread frees in parallel, and
    /// `performEvictions` re-checks the used memory every 16 keys to stop
    /// once that thread caught up, and waits briefly for pending lazy-free
    /// jobs before giving up; a shard here has no second thread to wait
    /// for, so it counts the pending bytes as freed instead.
    #[inline]
    pub fn budget_used(&self) -> usize {
        let used = match crate::alloc::shard_used_bytes() {
            0 => self.mem_used(),
            used => used,
        };
        used.saturating_sub(self.evict.lazy_credit)
    }

    /// The eviction knobs as they are on this shard.
    pub fn eviction(&self) -> &Settings {
        &self.evict.settings
    }

    /// This shard's share of `maxmemory` (0 = no limit).
    pub fn budget(&self) -> usize {
        self.evict.budget
    }

    /// Sets the eviction knobs for shard `shard` of `nshards` (startup and
    /// CONFIG SET).
    pub fn set_eviction(&mut self, settings: Settings, shard: usize, nshards: usize) {
        let n = nshards.max(1) as u64;
        let share = settings.maxmemory / n + u64::from((shard as u64) < settings.maxmemory % n);
        // A limit smaller than the shard count still limits every shard.
        let share = if settings.maxmemory == 0 {
            0
        } else {
            share.max(1)
        };
        self.evict.budget = usize::try_from(share).unwrap_or(usize::MAX);
        if settings.policy != self.evict.settings.policy {
            // Scores of another policy mean nothing under this one.
            self.evict.pool.clear();
        }
        self.evict.settings = settings;
        self.clock = Clock {
            lfu: settings
                .policy
                .is_lfu()
                .then_some((settings.lfu_log_factor, settings.lfu_decay_time)),
        };
        if self.evict.budget == 0 {
            self.evict.exceeded(false);
        }
    }

    /// Whether this shard uses more than its budget: one comparison when a
    /// budget is set, one branch when not.
    #[inline]
    pub fn over_budget(&self) -> bool {
        self.evict.budget != 0 && self.budget_used() > self.evict.budget
    }

    /// Before a `denyoom` command: true if it may run (under budget, or
    /// eviction made or is making room), false for OOM.
    #[inline]
    pub fn admit_write(&mut self) -> bool {
        !self.over_budget() || self.make_room() != Outcome::Fail
    }

    /// Evicts until this shard is under budget, for at most the tenacity
    /// time and [`MAX_KEYS_PER_CALL`] keys.
    pub fn make_room(&mut self) -> Outcome {
        let over = self.over_budget();
        self.evict.exceeded(over);
        if !over {
            return Outcome::Ok;
        }
        if self.evict.settings.policy == Policy::NoEviction {
            return Outcome::Fail;
        }
        let limit = self.evict.settings.time_limit();
        let start = Instant::now();
        let budget = self.evict.budget;
        let mut evicted = 0usize;
        // Each eviction lowers `budget_used` at once: freed on this thread,
        // or credited as pending lazy free.
        while self.budget_used() > budget {
            let Some(idx) = self.pick_victim() else {
                return Outcome::Fail;
            };
            self.evict_at(idx);
            evicted += 1;
            if evicted.is_multiple_of(KEYS_PER_CLOCK_READ) {
                self.shrink_sparse_tables();
            }
            if evicted >= MAX_KEYS_PER_CALL
                || (evicted.is_multiple_of(KEYS_PER_CLOCK_READ) && start.elapsed() >= limit)
            {
                return Outcome::Running;
            }
        }
        self.evict.exceeded(self.over_budget());
        Outcome::Ok
    }

    /// INFO's `total_eviction_exceeded_time` and
    /// `current_eviction_exceeded_time` for this shard, in ms.
    pub fn eviction_exceeded_ms(&self) -> (u64, u64) {
        let current = self
            .evict
            .exceeded_since
            .map_or(Duration::ZERO, |s| s.elapsed());
        (
            (self.evict.exceeded_total + current).as_millis() as u64,
            current.as_millis() as u64,
        )
    }

    /// The key table's slots are ~64 bytes each and its capacity never
    /// shrinks on its own, so once eviction, expiry or DELs empty most of
    /// it the empty slots, not the keys, hold the memory (after `CONFIG SET
    /// maxmemory` to a quarter, a 100k-key table alone is larger than the
    /// new share): evicting more keys would not help. When less than half
    /// of the capacity is used the tables are reallocated to fit (as Redis
    /// resizes its dicts below 10% fill; an IndexMap slot is 8× a dict
    /// bucket). The copy is O(keys left), happens once per halving, and
    /// only up to `SHRINK_MAX_LEN` keys. Called while evicting and by
    /// the active expiry tick (Redis' `tryResizeHashTables`).
    pub fn shrink_sparse_tables(&mut self) {
        let len = self.map.len();
        if len <= SHRINK_MAX_LEN
            && self.map.capacity() > SHRINK_MIN_CAPACITY
            && self.map.capacity() > 2 * len
        {
            self.map.shrink_to(len + len / 8);
        }
        let ttls = self.expiring.len();
        if ttls <= SHRINK_MAX_LEN
            && self.expiring.capacity() > SHRINK_MIN_CAPACITY
            && self.expiring.capacity() > 2 * ttls
        {
            self.expiring.shrink_to(ttls + ttls / 8);
        }
    }

    /// Removes the key at `idx` as an eviction; a large value goes to lazy
    /// free and its bytes to `lazy_credit` until freed.
    fn evict_at(&mut self, idx: usize) {
        let value = self.detach_at(idx);
        self.stats.evicted_keys.add(1);
        if lazyfree::free_effort(&value) > lazyfree::LAZYFREE_THRESHOLD {
            self.evict.lazy_credit += value_size(&value);
            self.lazy.push_value(value);
        } else {
            self.mem_used = self.mem_used.saturating_sub(value_size(&value));
        }
    }

    /// After a lazy-free slice freed `freed` accounted bytes: they leave
    /// the credit (all of it once the queue is empty). The queue also
    /// frees UNLINKed values, so the credit may shrink before the evicted
    /// ones are freed: eviction then errs towards evicting a little more,
    /// never towards staying over budget.
    pub(super) fn lazy_freed(&mut self, freed: usize, more: bool) {
        self.evict.lazy_credit = if more {
            self.evict.lazy_credit.saturating_sub(freed)
        } else {
            0
        };
    }

    /// The map position of the next key to evict under the policy, or None
    /// when there is nothing to evict.
    fn pick_victim(&mut self) -> Option<usize> {
        let policy = self.evict.settings.policy;
        match policy {
            Policy::NoEviction => None,
            Policy::AllkeysRandom => {
                (!self.map.is_empty()).then(|| self.random_index(self.map.len()))
            }
            Policy::VolatileRandom => {
                if self.expiring.is_empty() {
                    return None;
                }
                let pick = self.random_index(self.expiring.len());
                self.expiring.get_index(pick).map(|(idx, _)| *idx)
            }
            _ => loop {
                if !self.populate_pool(policy) {
                    return None;
                }
                // The best candidate that still exists (and, for volatile
                // policies, still has a TTL).
                while let Some((_, key)) = self.evict.pool.pop() {
                    if let Some(idx) = self.map.get_index_of(&key[..])
                        && (!policy.volatile() || self.key_of(idx).has_ttl)
                    {
                        return Some(idx);
                    }
                }
            },
        }
    }

    /// One sampling round of Redis' `evictionPoolPopulate`: samples
    /// `maxmemory-samples` keys and keeps the best-scored in the pool.
    /// False when there is no key to sample.
    fn populate_pool(&mut self, policy: Policy) -> bool {
        let from_expiring = policy.volatile();
        let n = if from_expiring {
            self.expiring.len()
        } else {
            self.map.len()
        };
        if n == 0 {
            return false;
        }
        let now_secs = self.now_secs;
        let decay = self.evict.settings.lfu_decay_time;
        for _ in 0..self.evict.settings.samples.min(n) {
            let pick = self.random_index(n);
            let idx = if from_expiring {
                *self.expiring.get_index(pick).expect("sampled in range").0
            } else {
                pick
            };
            let expire_at = self.expire_of(idx);
            let (key, _) = self.map.get_index(idx).expect("sampled in range");
            let score = match policy {
                Policy::AllkeysLfu | Policy::VolatileLfu => {
                    255 - lfu_decayed(key.accessed, now_secs, decay) as u64
                }
                Policy::VolatileTtl => u64::MAX - expire_at,
                // LRU: idle seconds.
                _ => now_secs.saturating_sub(key.accessed) as u64,
            };
            let pool = &mut self.evict.pool;
            if pool.iter().any(|(_, k)| **k == **key) {
                continue;
            }
            let mut at = pool.partition_point(|(s, _)| *s < score);
            if pool.len() == EVPOOL_SIZE {
                if at == 0 {
                    continue; // worse than every candidate
                }
                pool.remove(0);
                at -= 1;
            }
            pool.insert(at, (score, DbKeyBytes::new(key)));
        }
        true
    }

    /// OBJECT FREQ: the key's LFU counter after decay, or None when the
    /// policy is not LFU.
    pub fn lfu_freq(&self, accessed: u32) -> Option<u32> {
        self.clock
            .lfu
            .map(|(_, decay)| lfu_decayed(accessed, self.now_secs, decay))
    }

    /// Whether an LFU policy is set (OBJECT IDLETIME is then an error).
    pub fn lfu_policy(&self) -> bool {
        self.clock.lfu.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ttl, Value, unix_ms};

    fn test_db() -> Db {
        Db::new(
            std::rc::Rc::new(crate::metrics::ShardStats::default()),
            crate::metrics::HotKeys::new(8, true),
            7,
        )
    }

    fn db_with(policy: Policy, maxmemory: u64) -> Db {
        let mut db = test_db();
        db.set_eviction(
            Settings {
                maxmemory,
                policy,
                ..Settings::default()
            },
            0,
            1,
        );
        db
    }

    fn fill(db: &mut Db, n: usize, ttl: bool) {
        for i in 0..n {
            let t = if ttl {
                Ttl::At(unix_ms() + 100_000 + i as u64 * 1000)
            } else {
                Ttl::Clear
            };
            db.set(
                format!("k{i}").as_bytes(),
                Value::Str(vec![b'v'; 100].into()),
                t,
            );
        }
    }

    #[test]
    fn values_evicted_to_lazy_free_count_as_freed() {
        let mut db = db_with(Policy::AllkeysRandom, 0);
        for i in 0..20 {
            let mut list = super::super::List::default();
            let limits = super::super::agg::Limits::default();
            // Enough chunks (packed by 128) that lazy free queues the list
            // rather than freeing it at once.
            for _ in 0..10_000 {
                list.push_back(&[b'x'; 100], &limits);
            }
            db.set(
                format!("big{i}").as_bytes(),
                Value::List(Box::new(list)),
                Ttl::Clear,
            );
        }
        let full = db.mem_used();
        db.set_eviction(
            Settings {
                maxmemory: (full / 2) as u64,
                policy: Policy::AllkeysRandom,
                ..Settings::default()
            },
            0,
            1,
        );
        assert_eq!(db.make_room(), Outcome::Ok);
        let left = db.len();
        assert!((9..=10).contains(&left), "{left} of 20 kept");
        // Queued, not freed: still in the figure, but credited.
        assert!(db.mem_used() > full * 9 / 10);
        assert!(!db.over_budget());
        // A later write does not evict more while the frees are pending.
        assert_eq!(db.make_room(), Outcome::Ok);
        assert_eq!(db.len(), left);
        while db.lazyfree_slice(usize::MAX, Duration::from_secs(1)) {}
        assert_eq!(db.evict.lazy_credit, 0);
        assert!(!db.over_budget() && db.mem_used() <= full / 2);
    }

    #[test]
    fn shares_add_up_to_maxmemory() {
        let mut db = test_db();
        let mut total = 0;
        for shard in 0..3 {
            db.set_eviction(
                Settings {
                    maxmemory: 1000,
                    ..Settings::default()
                },
                shard,
                3,
            );
            total += db.budget();
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn noeviction_fails_and_allkeys_evicts_to_budget() {
        let mut db = db_with(Policy::NoEviction, 0);
        fill(&mut db, 1000, false);
        let used = db.mem_used() as u64;
        db.set_eviction(
            Settings {
                maxmemory: used / 2,
                ..Settings::default()
            },
            0,
            1,
        );
        assert!(!db.admit_write());
        assert_eq!(db.make_room(), Outcome::Fail);
        for policy in [
            Policy::AllkeysLru,
            Policy::AllkeysLfu,
            Policy::AllkeysRandom,
        ] {
            let mut db = db_with(policy, used / 2);
            fill(&mut db, 1000, false);
            while db.make_room() == Outcome::Running {}
            assert!(!db.over_budget(), "{policy:?}");
            assert!(db.len() > 400 && db.len() < 600, "{policy:?} {}", db.len());
            assert_eq!(db.mem_used(), db.mem_recomputed());
            assert_eq!(db.stats.evicted_keys.get(), 1000 - db.len() as u64);
        }
    }

    #[test]
    fn volatile_policies_spare_keys_without_ttl() {
        for policy in [
            Policy::VolatileLru,
            Policy::VolatileLfu,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
        ] {
            let mut db = db_with(policy, 0);
            fill(&mut db, 500, false);
            for i in 0..500 {
                db.set(
                    format!("t{i}").as_bytes(),
                    Value::Str(vec![b'v'; 100].into()),
                    Ttl::At(unix_ms() + 100_000),
                );
            }
            let budget = db.mem_used() as u64 / 4;
            db.set_eviction(
                Settings {
                    maxmemory: budget,
                    policy,
                    ..Settings::default()
                },
                0,
                1,
            );
            // Every key with a TTL goes, then nothing is evictable.
            let mut last = db.make_room();
            while last == Outcome::Running {
                last = db.make_room();
            }
            assert_eq!(last, Outcome::Fail, "{policy:?}");
            assert_eq!(db.expires_count(), 0);
            assert_eq!(db.len(), 500);
        }
    }

    #[test]
    fn volatile_ttl_evicts_the_soonest_first() {
        let mut db = db_with(Policy::VolatileTtl, 0);
        fill(&mut db, 1000, true); // k0 expires first, k999 last
        let budget = db.mem_used() as u64 / 2;
        db.set_eviction(
            Settings {
                maxmemory: budget,
                policy: Policy::VolatileTtl,
                ..Settings::default()
            },
            0,
            1,
        );
        while db.make_room() == Outcome::Running {}
        let early = (0..250)
            .filter(|i| db.contains(format!("k{i}").as_bytes()))
            .count();
        let late = (750..1000)
            .filter(|i| db.contains(format!("k{i}").as_bytes()))
            .count();
        assert!(early < 60 && late > 190, "early {early} late {late}");
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        let mut rng = 7u64;
        let clock = Clock { lfu: Some((10, 1)) };
        let now = 1_000_000u32;
        let mut stamp = clock.fresh(now);
        assert_eq!(lfu_decayed(stamp, now, 1), LFU_INIT_VAL);
        for _ in 0..100 {
            stamp = clock.touch(stamp, now, &mut rng);
        }
        let after_100 = lfu_decayed(stamp, now, 1);
        assert!((7..=12).contains(&after_100), "{after_100}");
        for _ in 0..100_000 {
            stamp = clock.touch(stamp, now, &mut rng);
        }
        let after_lots = lfu_decayed(stamp, now, 1);
        assert!(after_lots > after_100 && after_lots < 255, "{after_lots}");
        // Three minutes later: three decrements.
        assert_eq!(lfu_decayed(stamp, now + 180, 1), after_lots - 3);
        assert_eq!(lfu_decayed(stamp, now + 180, 0), after_lots);
    }

    #[test]
    fn flush_forgets_the_candidates() {
        let mut db = db_with(Policy::AllkeysLru, 0);
        fill(&mut db, 200, false);
        let budget = db.mem_used() as u64 / 2;
        db.set_eviction(
            Settings {
                maxmemory: budget,
                policy: Policy::AllkeysLru,
                ..Settings::default()
            },
            0,
            1,
        );
        while db.make_room() == Outcome::Running {}
        assert!(!db.evict.pool.is_empty());
        db.flush();
        assert!(db.evict.pool.is_empty());
    }

    #[test]
    fn time_limit_follows_redis() {
        let limit = |t| {
            Settings {
                tenacity: t,
                ..Settings::default()
            }
            .time_limit()
        };
        assert_eq!(limit(10), Duration::from_micros(500));
        assert_eq!(limit(1), Duration::from_micros(50));
        assert!(limit(20) > Duration::from_millis(2));
        assert_eq!(limit(100), Duration::MAX);
    }
}
