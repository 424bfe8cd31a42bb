//! A shard's measurements as a plain value: built on the shard in
//! O(histograms) (never O(keys)), sent over the mesh, merged elsewhere.
//!
//! The keyspace's figures come in as a value ([`KeyspaceFigures`]) that
//! the shard reads from its `Db`: metrics stays below the store.

use super::ShardMetrics;
use super::counters::REDIRECT_KINDS;
use super::errors::NUM_ERROR_KINDS;
use super::histogram::LatencyHistogram;
use super::slots::{NUM_SLOTS, PerSlot, Slot};

#[derive(Clone, Debug, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub calls: PerSlot<u64>,
    pub nanos: PerSlot<u64>,
    pub failed: PerSlot<u64>,
    pub rejected: PerSlot<u64>,
    pub errors: [u64; NUM_ERROR_KINDS],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_accepted: u64,
    pub connections_current: u64,
    pub rejected_connections: u64,
    pub output_limit_disconnections: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    /// Transactions by outcome: executed, discarded, aborted by WATCH.
    pub transactions: [u64; 3],
    /// Failed AUTH attempts, cross-protocol attempts, connections refused by
    /// protected mode.
    pub auth_failures: u64,
    pub security_attacks: u64,
    pub protected_mode_denied: u64,
    /// Blocking commands (issue 13): clients waiting (a gauge).
    pub blocked_clients: u64,
    /// Pub/Sub (issue 14): names with a subscriber on the shard's core
    /// (channels, patterns, shard channels: gauges; merged: the sums), and
    /// messages published and delivered (counters).
    pub pubsub_names: [u64; 3],
    /// Names homed on the shard's core (merged: distinct names server-wide).
    pub pubsub_distinct: [u64; 3],
    pub pubsub_published: u64,
    pub pubsub_delivered: u64,
    // Scripting (issue 14): runs, failed runs, ns; the script cache and
    // its evictions (merged: the largest core's, every core caches every
    // script) and Lua heap bytes (merged: the sum).
    pub script_calls: u64,
    pub script_errors: u64,
    pub script_nanos: u64,
    pub scripts_cached: u64,
    pub scripts_bytes: u64,
    pub scripts_evicted: u64,
    pub lua_memory_bytes: u64,
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl_ms: u64,
    /// Commands per second over the last couple of seconds.
    pub ops_per_sec: u64,
    /// Bytes allocated by the shard (its jemalloc arena, src/alloc.rs);
    /// merged: the sum over shards.
    pub memory_bytes: u64,
    /// The keyspace's estimated bytes (the per-entry cost model,
    /// `store::cost`), kept beside the allocator's figure.
    pub dataset_bytes: u64,
    /// The shard's share of `maxmemory` (0 = no limit); merged: the sum.
    pub maxmemory_bytes: u64,
    /// Milliseconds the shard has spent over its budget in all, and in
    /// the current stretch (merged: the sum and the longest).
    pub eviction_exceeded_total_ms: u64,
    pub eviction_exceeded_current_ms: u64,
    /// Lazy-free queue: objects waiting (a gauge) and objects freed so far.
    pub lazyfree_pending: u64,
    pub lazyfreed: u64,
    pub slowlog_len: u64,
    /// The slow log's bound; the merged log is cut to it too.
    pub slowlog_max_len: u64,
    /// Latency histograms (ns) of this shard's interval since its last
    /// snapshot, by command slot; the collector adds them to its totals.
    pub interval: Vec<(Slot, LatencyHistogram)>,
    /// Hot-key candidates with their estimates, highest first.
    pub hotkeys: Vec<(Vec<u8>, u64)>,
    /// Cluster mode (issue 16): commands answered with a redirection or
    /// refusal, by [`REDIRECT_KINDS`] (merged: the sums).
    pub cluster_redirects: [u64; REDIRECT_KINDS.len()],
    /// Cluster mode: this node's picture of its cluster. Every core keeps
    /// the same copy, so only shard 0 reports it (merged: the first one
    /// found); None on the other shards and outside cluster mode.
    pub cluster: Option<ClusterFigures>,
}

/// What `/metrics` shows of a node's cluster state (`kora_cluster_*`),
/// read by shard 0 from its own `ClusterState` copy: a plain value, so
/// the collector never reads another core's state in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterFigures {
    /// This node's id (40 hex digits, CLUSTER MYID).
    pub node_id: String,
    /// This node's `host:port`, as MOVED names it.
    pub address: String,
    /// Redis' `cluster_state:ok`.
    pub state_ok: bool,
    /// Slots with an owner, and those whose owner is not failed.
    pub slots_assigned: u64,
    pub slots_ok: u64,
    /// Slots this node owns.
    pub slots_owned: u64,
    /// Nodes in the topology (this one included, when listed).
    pub known_nodes: u64,
    /// The topology's epoch.
    pub epoch: u64,
    /// Peers marked fail (silent for `cluster-node-timeout`).
    pub nodes_failed: u64,
}

/// What a snapshot needs from the shard's keyspace, read by the shard.
#[derive(Debug, Default)]
pub struct KeyspaceFigures {
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl_ms: u64,
    /// The shard's allocated bytes (`crate::alloc::shard_used_bytes`).
    pub memory_bytes: u64,
    /// The keyspace's estimated bytes (`Db::mem_used`).
    pub dataset_bytes: u64,
    /// The shard's share of `maxmemory` (0 = no limit).
    pub maxmemory_bytes: u64,
    /// Over-budget time in ms: in all, and in the current stretch.
    pub eviction_exceeded_ms: (u64, u64),
    pub lazyfree_pending: u64,
    pub lazyfreed: u64,
    /// Hot-key candidates with their estimates, highest first.
    pub hotkeys: Vec<(Vec<u8>, u64)>,
}

impl ShardSnapshot {
    pub fn take(shard: usize, metrics: &ShardMetrics, db: KeyspaceFigures) -> ShardSnapshot {
        let s = &metrics.stats;
        let read = |c: &PerSlot<super::Counter>| PerSlot(std::array::from_fn(|i| c[i].get()));
        ShardSnapshot {
            shard,
            calls: read(&s.cmd_calls),
            nanos: read(&s.cmd_nanos),
            failed: read(&s.cmd_failed),
            rejected: read(&s.cmd_rejected),
            errors: std::array::from_fn(|i| s.errors[i].get()),
            bytes_in: s.bytes_in.get(),
            bytes_out: s.bytes_out.get(),
            connections_accepted: s.connections_accepted.get(),
            connections_current: s.connections_current.get(),
            rejected_connections: s.rejected_connections.get(),
            output_limit_disconnections: s.output_limit_disconnections.get(),
            keyspace_hits: s.keyspace_hits.get(),
            keyspace_misses: s.keyspace_misses.get(),
            expired_keys: s.expired_keys.get(),
            evicted_keys: s.evicted_keys.get(),
            transactions: [
                s.tx_executed.get(),
                s.tx_discarded.get(),
                s.tx_watch_aborted.get(),
            ],
            auth_failures: s.auth_failures.get(),
            security_attacks: s.security_attacks.get(),
            protected_mode_denied: s.protected_mode_denied.get(),
            blocked_clients: s.blocked_clients.get(),
            pubsub_names: [
                s.pubsub_channels.get(),
                s.pubsub_patterns.get(),
                s.pubsub_shard_channels.get(),
            ],
            pubsub_distinct: [
                s.pubsub_home_channels.get(),
                s.pubsub_home_patterns.get(),
                s.pubsub_home_shard_channels.get(),
            ],
            pubsub_published: s.pubsub_published.get(),
            pubsub_delivered: s.pubsub_delivered.get(),
            // Scripting (issue 14).
            script_calls: s.script_calls.get(),
            script_errors: s.script_errors.get(),
            script_nanos: s.script_nanos.get(),
            scripts_cached: s.scripts_cached.get(),
            scripts_bytes: s.scripts_bytes.get(),
            scripts_evicted: s.scripts_evicted.get(),
            lua_memory_bytes: s.lua_memory_bytes.get(),
            keys: db.keys,
            expires: db.expires,
            avg_ttl_ms: db.avg_ttl_ms,
            ops_per_sec: metrics.ops_rate.rate(),
            memory_bytes: db.memory_bytes,
            dataset_bytes: db.dataset_bytes,
            maxmemory_bytes: db.maxmemory_bytes,
            eviction_exceeded_total_ms: db.eviction_exceeded_ms.0,
            eviction_exceeded_current_ms: db.eviction_exceeded_ms.1,
            lazyfree_pending: db.lazyfree_pending,
            lazyfreed: db.lazyfreed,
            slowlog_len: metrics.slowlog.len() as u64,
            slowlog_max_len: metrics.slowlog.max_len(),
            interval: metrics.histograms.take_interval(),
            hotkeys: db.hotkeys,
            cluster_redirects: std::array::from_fn(|i| s.cluster_redirects[i].get()),
            // Filled by the shard (it reads its ClusterState; metrics stays
            // below the cluster module).
            cluster: None,
        }
    }

    /// Adds `other`'s counters into `self`; hot-key candidates are pooled (a
    /// key lives on one shard, so no key appears twice). Histograms are not
    /// merged here: they go to the collector's totals.
    pub fn merge(&mut self, other: &ShardSnapshot) {
        for i in 0..NUM_SLOTS {
            self.calls[i] += other.calls[i];
            self.nanos[i] += other.nanos[i];
            self.failed[i] += other.failed[i];
            self.rejected[i] += other.rejected[i];
        }
        for i in 0..NUM_ERROR_KINDS {
            self.errors[i] += other.errors[i];
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.connections_accepted += other.connections_accepted;
        self.connections_current += other.connections_current;
        self.rejected_connections += other.rejected_connections;
        self.output_limit_disconnections += other.output_limit_disconnections;
        self.keyspace_hits += other.keyspace_hits;
        self.keyspace_misses += other.keyspace_misses;
        self.expired_keys += other.expired_keys;
        self.evicted_keys += other.evicted_keys;
        for (mine, theirs) in self.transactions.iter_mut().zip(other.transactions) {
            *mine += theirs;
        }
        self.auth_failures += other.auth_failures;
        self.security_attacks += other.security_attacks;
        self.protected_mode_denied += other.protected_mode_denied;
        self.blocked_clients += other.blocked_clients;
        for (mine, theirs) in self.pubsub_names.iter_mut().zip(other.pubsub_names) {
            *mine += theirs;
        }
        for (mine, theirs) in self.pubsub_distinct.iter_mut().zip(other.pubsub_distinct) {
            *mine += theirs;
        }
        self.pubsub_published += other.pubsub_published;
        self.pubsub_delivered += other.pubsub_delivered;
        // Scripting (issue 14).
        self.script_calls += other.script_calls;
        self.script_errors += other.script_errors;
        self.script_nanos += other.script_nanos;
        self.scripts_cached = self.scripts_cached.max(other.scripts_cached);
        self.scripts_bytes = self.scripts_bytes.max(other.scripts_bytes);
        self.scripts_evicted = self.scripts_evicted.max(other.scripts_evicted);
        self.lua_memory_bytes += other.lua_memory_bytes;
        let total_expires = self.expires + other.expires;
        if let Some(avg) = (self.avg_ttl_ms * self.expires + other.avg_ttl_ms * other.expires)
            .checked_div(total_expires)
        {
            self.avg_ttl_ms = avg;
        }
        self.ops_per_sec += other.ops_per_sec;
        self.keys += other.keys;
        self.expires = total_expires;
        self.memory_bytes += other.memory_bytes;
        self.dataset_bytes += other.dataset_bytes;
        self.maxmemory_bytes += other.maxmemory_bytes;
        self.eviction_exceeded_total_ms += other.eviction_exceeded_total_ms;
        self.eviction_exceeded_current_ms = self
            .eviction_exceeded_current_ms
            .max(other.eviction_exceeded_current_ms);
        self.lazyfree_pending += other.lazyfree_pending;
        self.lazyfreed += other.lazyfreed;
        // SLOWLOG shows the newest max-len entries of all shards.
        self.slowlog_max_len = self.slowlog_max_len.max(other.slowlog_max_len);
        self.slowlog_len = (self.slowlog_len + other.slowlog_len).min(self.slowlog_max_len);
        for (mine, theirs) in self
            .cluster_redirects
            .iter_mut()
            .zip(other.cluster_redirects)
        {
            *mine += theirs;
        }
        if self.cluster.is_none() {
            self.cluster.clone_from(&other.cluster);
        }
        self.hotkeys.extend(other.hotkeys.iter().cloned());
        self.hotkeys
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }

    pub fn merged(snapshots: &[ShardSnapshot]) -> ShardSnapshot {
        let mut total = ShardSnapshot::default();
        for s in snapshots {
            total.merge(s);
        }
        total
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.iter().sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// The counters accumulated since `base` was taken (CONFIG RESETSTAT),
    /// for INFO; gauges (keys, memory, clients…) stay as they are. Call it
    /// on merged snapshots, whose interval histograms are already gone.
    pub fn since(&self, base: &ShardSnapshot) -> ShardSnapshot {
        let mut out = self.clone();
        for i in 0..NUM_SLOTS {
            out.calls[i] = out.calls[i].saturating_sub(base.calls[i]);
            out.nanos[i] = out.nanos[i].saturating_sub(base.nanos[i]);
            out.failed[i] = out.failed[i].saturating_sub(base.failed[i]);
            out.rejected[i] = out.rejected[i].saturating_sub(base.rejected[i]);
        }
        for i in 0..NUM_ERROR_KINDS {
            out.errors[i] = out.errors[i].saturating_sub(base.errors[i]);
        }
        macro_rules! since_base {
            ($($field:ident),*) => {
                $(out.$field = out.$field.saturating_sub(base.$field);)*
            };
        }
        since_base!(
            bytes_in,
            bytes_out,
            connections_accepted,
            keyspace_hits,
            keyspace_misses,
            expired_keys,
            evicted_keys,
            auth_failures,
            lazyfreed,
            scripts_evicted
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_sums_counters_and_pools_hot_keys() {
        let mut a = ShardSnapshot {
            keys: 3,
            memory_bytes: 100,
            expires: 1,
            avg_ttl_ms: 1000,
            ..Default::default()
        };
        a.calls[0] = 10;
        a.hotkeys = vec![(b"x".to_vec(), 5)];
        let mut b = ShardSnapshot {
            keys: 4,
            memory_bytes: 50,
            expires: 3,
            avg_ttl_ms: 3000,
            ..Default::default()
        };
        b.calls[0] = 5;
        b.calls[7] = 1;
        b.hotkeys = vec![(b"y".to_vec(), 9)];
        let m = ShardSnapshot::merged(&[a, b]);
        assert_eq!((m.calls[0], m.calls[7], m.total_calls()), (15, 1, 16));
        assert_eq!(
            (m.keys, m.memory_bytes, m.expires, m.avg_ttl_ms),
            (7, 150, 4, 2500)
        );
        assert_eq!(m.hotkeys, vec![(b"y".to_vec(), 9), (b"x".to_vec(), 5)]);
    }

    #[test]
    fn merging_sums_redirects_and_keeps_the_one_cluster_picture() {
        let figures = ClusterFigures {
            node_id: "ab".repeat(20),
            slots_owned: 5461,
            ..Default::default()
        };
        let a = ShardSnapshot {
            cluster_redirects: [1, 0, 2, 0, 3],
            cluster: Some(figures.clone()),
            ..Default::default()
        };
        let b = ShardSnapshot {
            cluster_redirects: [4, 1, 0, 0, 0],
            ..Default::default()
        };
        let m = ShardSnapshot::merged(&[b.clone(), a]);
        assert_eq!(m.cluster_redirects, [5, 1, 2, 0, 3]);
        assert_eq!(m.cluster, Some(figures));
        assert_eq!(ShardSnapshot::merged(&[b]).cluster, None);
    }
}
