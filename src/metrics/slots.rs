//! The metric slots: every command row of the command table
//! (`command::table`) and every subcommand Redis reports separately
//! (`config|set`, `client|list`…) has a slot index of its own, assigned at
//! compile time from the table. A leaf: the per-slot arrays of counters,
//! histograms, snapshots and the merged view are sized here, below the
//! commands, by a fixed capacity the table is checked against when it
//! compiles.

use std::ops::{Deref, DerefMut};

/// Capacity of the per-slot arrays: table rows plus subcommands must stay
/// below it (checked at compile time by the command table). An idle slot
/// costs 32 bytes of counters per shard and no histogram.
pub const NUM_SLOTS: usize = 512;

/// A metric slot index.
pub type Slot = u16;

/// Unknown commands count here (Kora's `cmdstat_other`; Redis has no row
/// for them). The last slot, so the table's slots never reach it.
pub const SLOT_OTHER: Slot = (NUM_SLOTS - 1) as Slot;

/// The commands `/metrics` exports from zero, before their first call (the
/// seed's 32 slots; `other` is unknown commands). Any other command's
/// series appears with its first call.
pub const HOT_NAMES: [&str; 32] = [
    "get",
    "set",
    "del",
    "incr",
    "decr",
    "mget",
    "mset",
    "exists",
    "expire",
    "ttl",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "hset",
    "hget",
    "hgetall",
    "sadd",
    "srem",
    "ping",
    "info",
    "dbsize",
    "flushdb",
    "scan",
    "setex",
    "lrange",
    "spop",
    "hdel",
    "smembers",
    "sismember",
    "hmget",
    "other",
];

/// One value per slot: a fixed array (no map, no allocation when a
/// command counts), with the `Default` that std gives only to arrays of up
/// to 32 elements.
#[derive(Clone, Debug)]
pub struct PerSlot<T>(pub [T; NUM_SLOTS]);

impl<T: Default> Default for PerSlot<T> {
    fn default() -> Self {
        PerSlot(std::array::from_fn(|_| T::default()))
    }
}

impl<T> Deref for PerSlot<T> {
    type Target = [T; NUM_SLOTS];
    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for PerSlot<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
