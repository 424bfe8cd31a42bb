//! The metric slots: each command counts under one of these names in
//! `kora_commands_total{cmd=...}`, INFO commandstats and the latency
//! histograms; the command table (`command::table`) gives every command its
//! slot by name. A leaf: the per-slot arrays of counters, histograms,
//! snapshots and the merged view are sized here, below the commands.

/// Metric slots: each command counts under one of these names in
/// `kora_commands_total{cmd=...}`, INFO commandstats and the latency
/// histograms. The first 31 are what clients send most; the rest count
/// under `other`.
pub const SLOT_NAMES: [&str; NUM_SLOTS] = [
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
pub const NUM_SLOTS: usize = 32;
pub const SLOT_OTHER: u8 = 31;
