//! Per-shard counters. Each shard owns one `ShardStats`; only that shard's
//! thread writes it, so an increment is a Relaxed load plus a Relaxed store
//! (a plain `add` in machine code, no locked instruction). Other threads
//! never read it in place: they receive copies in snapshots over the mesh.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::errors::NUM_ERROR_KINDS;
use super::slots::PerSlot;

/// A monotonically increasing per-shard counter.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A per-shard value that goes up and down (connected clients).
#[derive(Default, Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn inc(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }

    pub fn dec(&self) {
        self.0
            .store(self.0.load(Relaxed).saturating_sub(1), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Scripting (issue 14): a gauge the shard recomputes (its script
    /// cache's size).
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// Aligned to a cache line so two shards' stats never share one.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct ShardStats {
    pub cmd_calls: PerSlot<Counter>,
    pub cmd_nanos: PerSlot<Counter>,
    /// Commands answered with an error, whatever the reason.
    pub cmd_failed: PerSlot<Counter>,
    /// The part of `cmd_failed` refused before running (unknown command,
    /// wrong arity), Redis' rejected_calls.
    pub cmd_rejected: PerSlot<Counter>,
    /// Error replies by kind (`errors::ERROR_KINDS`).
    pub errors: [Counter; NUM_ERROR_KINDS],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub connections_accepted: Counter,
    pub connections_current: Gauge,
    /// Connections refused because `maxclients` were connected.
    pub rejected_connections: Counter,
    /// Connections closed for passing `client-output-buffer-limit`.
    pub output_limit_disconnections: Counter,
    pub keyspace_hits: Counter,
    pub keyspace_misses: Counter,
    pub expired_keys: Counter,
    pub evicted_keys: Counter,
    /// Transactions by outcome (kora_transactions_total{result}); counted
    /// on the core of the connection that ran EXEC or DISCARD.
    pub tx_executed: Counter,
    pub tx_discarded: Counter,
    pub tx_watch_aborted: Counter,
    /// Failed AUTH / HELLO AUTH attempts (INFO acl_access_denied_auth).
    pub auth_failures: Counter,
    /// Connections closed for sending `POST` or `Host:` (cross-protocol
    /// scripting from a browser).
    pub security_attacks: Counter,
    /// Connections refused by protected mode.
    pub protected_mode_denied: Counter,
    /// Blocking commands (issue 13): this core's connections waiting in
    /// BLPOP and the like (INFO blocked_clients, kora_blocked_clients).
    pub blocked_clients: Gauge,
    // ---- Pub/Sub (issue 14) ----
    /// Channels, patterns and shard channels with a subscriber on this
    /// core (a name subscribed on two cores counts on each).
    pub pubsub_channels: Gauge,
    pub pubsub_patterns: Gauge,
    pub pubsub_shard_channels: Gauge,
    /// Names homed on this core (`shard_of(name)`) with a subscriber on
    /// any core: summed over cores, each name counts once.
    pub pubsub_home_channels: Gauge,
    pub pubsub_home_patterns: Gauge,
    pub pubsub_home_shard_channels: Gauge,
    /// PUBLISH / SPUBLISH run by this core's connections.
    pub pubsub_published: Counter,
    /// Messages queued for this core's subscribers (one per receiver).
    pub pubsub_delivered: Counter,
    // Scripting (issue 14).
    /// Script runs on this core (EVAL and friends), those answered with
    /// an error, and their time in ns (kora_script_*).
    pub script_calls: Counter,
    pub script_errors: Counter,
    pub script_nanos: Counter,
    /// This core's script cache: scripts, their bodies' bytes; and its Lua
    /// heap (INFO used_memory_lua).
    pub scripts_cached: Gauge,
    pub scripts_bytes: Gauge,
    pub lua_memory_bytes: Gauge,
    /// EVAL scripts this core's cache dropped for `lua-eval-cache-limit`
    /// since start (a count that only grows, kept by the engine and
    /// published here).
    pub scripts_evicted: Gauge,
    // Cluster mode (issue 16).
    /// Commands answered with a redirection or refusal instead of running,
    /// by [`REDIRECT_KINDS`] (kora_cluster_redirections_total{type}).
    pub cluster_redirects: [Counter; REDIRECT_KINDS.len()],
}

/// The kinds of cluster answers counted in `ShardStats::cluster_redirects`.
pub const REDIRECT_KINDS: [&str; 5] = ["moved", "ask", "crossslot", "tryagain", "down"];

impl ShardStats {
    /// Counts one cluster answer of `kind` (an index of [`REDIRECT_KINDS`]).
    pub fn count_redirect(&self, kind: usize) {
        self.cluster_redirects[kind].add(1);
    }
}
