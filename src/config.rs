//! Server configuration: command-line flags layered over an optional
//! `kora.toml`. Flags win over the file, the file wins over defaults.
//!
//! Layer: read by every layer (see the crate docs, "Layers and imports").
//! Owns the startup configuration ([`Config`], [`Cli`], `kora.toml` parsing,
//! [`OutputBufferLimits`]); runtime changes (CONFIG SET) live in
//! `command::config` and the shards. May import only leaf constants: today
//! the slow log's defaults from `metrics::slowlog`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Everything the server needs to start. Built once in `main`, then cloned
/// into every shard executor (it is plain data).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    /// Number of shards, one pinned executor each.
    pub workers: usize,
    /// 0 disables the HTTP metrics endpoint.
    pub metrics_port: u16,
    pub metrics_bind: String,
    pub hotkeys_decay_ms: u64,
    pub hotkeys_top_k: usize,
    /// Only for measuring the cost of observability: turns off timers,
    /// histograms and the hot-key sketch on the data path.
    pub instrumentation: bool,
    /// Milliseconds between active-expiry cycles on each shard.
    pub active_expire_ms: u64,
    /// Allows DEBUG (e.g. DEBUG SLEEP, which stalls a shard on purpose).
    /// Off by default, as in Redis 7, because it lets a client block a core.
    pub enable_debug_command: bool,
    /// Largest single command a client may make us buffer, as Redis'
    /// client-query-buffer-limit.
    pub client_query_buffer_limit: usize,
    /// Initial values of the runtime knobs CONFIG SET changes; same names,
    /// units and defaults as Redis.
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    pub latency_monitor_threshold: u64,
    /// The default user's password (`requirepass`); empty means none.
    pub requirepass: String,
    /// Redis' protected mode: with no password, only loopback clients may
    /// connect.
    pub protected_mode: bool,
    /// jemalloc's background purge thread (`jemalloc-bg-thread`, Redis'
    /// name and default).
    pub jemalloc_bg_thread: bool,
    /// Most client connections at once over all shards (Redis'
    /// `maxclients`); lowered at start to what the open-files limit allows.
    pub maxclients: u64,
    /// Redis' `client-output-buffer-limit`, per client class.
    pub client_output_buffer_limit: OutputBufferLimits,
    /// Seconds a shutdown may take before the process exits even though a
    /// core has not stopped (Redis' `shutdown-timeout`).
    pub shutdown_timeout: u64,
    /// Most /metrics connections at once; more are closed on accept.
    pub metrics_max_connections: usize,
    /// Encoding thresholds of small aggregates, Redis' names and defaults:
    /// a hash stays packed up to this many fields...
    pub hash_max_listpack_entries: u64,
    /// ...and while no field or value is longer than this.
    pub hash_max_listpack_value: u64,
    /// List chunk size: negative -1..-5 for 4..64 KB, positive for a count.
    pub list_max_listpack_size: i64,
    /// A set of integers stays an intset up to this many members.
    pub set_max_intset_entries: u64,
    /// A small set of other members stays packed up to this many members
    /// (Redis 7.2's knob)...
    pub set_max_listpack_entries: u64,
    /// ...and while no member is longer than this.
    pub set_max_listpack_value: u64,
    // HyperLogLog (issue 13).
    /// A sparse HyperLogLog sketch turns dense past this many bytes
    /// (Redis' `hll-sparse-max-bytes`).
    pub hll_sparse_max_bytes: u64,
    // Sorted sets (src/store/zset.rs).
    /// A sorted set stays packed up to this many members...
    pub zset_max_listpack_entries: u64,
    /// ...and while no member is longer than this.
    pub zset_max_listpack_value: u64,
    /// Seconds a /metrics client has to send a whole request head,
    /// counted from its first byte (and from the connection's start).
    pub metrics_request_timeout: u64,
    /// `maxmemory` (split evenly over the shards), `maxmemory-policy`,
    /// `maxmemory-samples`, `lfu-log-factor`, `lfu-decay-time`,
    /// `maxmemory-eviction-tenacity`: Redis' names, units and defaults.
    pub eviction: EvictionSettings,
    // Scripting (issue 14).
    /// Milliseconds a script may run before it counts as busy (Redis'
    /// `busy-reply-threshold`, alias `lua-time-limit`): then SCRIPT KILL
    /// can stop it and other cores answer BUSY for its core.
    pub busy_reply_threshold: u64,
    /// Bytes each core's Lua heap may hold (`lua-memory-limit`; 0: no
    /// limit): past it an allocation fails and the script that made it
    /// ends with an error, so no script can take the host's memory.
    pub lua_memory_limit: u64,
    /// EVAL scripts each core keeps cached (`lua-eval-cache-limit`; 0: no
    /// limit): past it the least recently used one is dropped (Redis
    /// 7.4's rule; SCRIPT LOAD's are kept).
    pub lua_eval_cache_limit: u64,
    /// Pin each shard's executor to a CPU of its own (`cpu-affinity`,
    /// yes|no). Default no: the kernel places and moves the threads, which
    /// measured cheaper per request on a 2-core box with the client on it
    /// (issue 15: 12.3 against 18.7 µs per GET at P=1 with two shards);
    /// yes suits a host whose other cores serve nothing else.
    pub cpu_affinity: bool,
    // Cluster mode (issue 16, src/cluster).
    /// Speak the Redis Cluster protocol (`cluster-enabled`, yes|no,
    /// default no): every key command checks its hash slot.
    pub cluster_enabled: bool,
    /// The topology file read at start and rewritten when a topology is
    /// pushed (`cluster-config-file`; empty: none).
    pub cluster_config_file: String,
    /// This node's address as the cluster knows it (`cluster-announce-ip`;
    /// empty: the bind address). Its node id derives from it and the port.
    pub cluster_announce_ip: String,
    /// Milliseconds a peer may stay silent before it counts as failed
    /// (`cluster-node-timeout`, Redis' default 15000).
    pub cluster_node_timeout: u64,
    /// Whether one unserved slot takes the whole cluster down
    /// (`cluster-require-full-coverage`, Redis' default yes).
    pub cluster_require_full_coverage: bool,
}

/// One client class' output buffer limit, as Redis: close the connection
/// when its unwritten replies reach `hard` bytes, or stay at or above
/// `soft` bytes for `soft_seconds`. Zero turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// Redis' `client-output-buffer-limit`: normal clients, replicas (Kora has
/// none; kept so Redis configurations and CONFIG GET read the same) and
/// pub/sub subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimits {
    pub normal: BufferLimit,
    pub replica: BufferLimit,
    pub pubsub: BufferLimit,
}

impl Default for OutputBufferLimits {
    /// Redis 7's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        OutputBufferLimits {
            normal: BufferLimit::default(),
            replica: BufferLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            pubsub: BufferLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputBufferLimits {
    /// Applies `class hard soft seconds` groups (Redis' syntax, memory in
    /// Redis' units) over `self`; the error text is Redis'.
    pub fn parse_over(mut self, text: &str) -> Result<OutputBufferLimits, &'static str> {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.");
        }
        for group in words.chunks(4) {
            let class = match group[0].to_ascii_lowercase().as_str() {
                "normal" => &mut self.normal,
                "slave" | "replica" => &mut self.replica,
                "pubsub" => &mut self.pubsub,
                _ => return Err("Invalid client class specified in buffer limit configuration."),
            };
            let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            let hard = parse_memory(group[1]).ok_or(bad)?;
            let soft = parse_memory(group[2]).ok_or(bad)?;
            let soft_seconds = group[3].parse::<u64>().map_err(|_| bad)?;
            *class = BufferLimit {
                hard,
                soft,
                soft_seconds,
            };
        }
        Ok(self)
    }

    /// CONFIG GET's form: bytes, Redis' class names and order.
    pub fn render(&self) -> String {
        let one = |name: &str, l: &BufferLimit| {
            format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds)
        };
        format!(
            "{} {} {}",
            one("normal", &self.normal),
            one("slave", &self.replica),
            one("pubsub", &self.pubsub)
        )
    }
}

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

/// The error (after "- ") CONFIG SET gives for an unknown policy, Redis'.
pub const POLICY_ERROR: &str = "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction";

impl Policy {
    pub const ALL: [Policy; 8] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllkeysLru,
        Policy::AllkeysLfu,
        Policy::AllkeysRandom,
        Policy::NoEviction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllkeysLru => "allkeys-lru",
            Policy::AllkeysLfu => "allkeys-lfu",
            Policy::AllkeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Case-insensitive, as Redis' enum configs.
    pub fn parse(text: &[u8]) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().as_bytes().eq_ignore_ascii_case(text))
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    pub(crate) fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// The eviction knobs (src/store/evict.rs uses them), identical on every
/// shard (CONFIG SET applies them everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvictionSettings {
    /// Bytes for the whole server; 0 = no limit.
    pub maxmemory: u64,
    pub policy: Policy,
    pub samples: usize,
    pub lfu_log_factor: u32,
    /// Minutes per decrement of the LFU counter; 0 = never decays.
    pub lfu_decay_time: u32,
    /// 0..=100: how long one call may evict (Redis'
    /// `maxmemory-eviction-tenacity`).
    pub tenacity: u32,
}

impl Default for EvictionSettings {
    /// Redis 7's defaults.
    fn default() -> Self {
        EvictionSettings {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            tenacity: 10,
        }
    }
}

impl EvictionSettings {
    /// Redis' `evictionTimeLimitUs`: 50 µs per tenacity step up to 10,
    /// then 15% more per step; 100 means no limit.
    pub fn time_limit(&self) -> Duration {
        match self.tenacity {
            t if t <= 10 => Duration::from_micros(50 * t as u64),
            t if t < 100 => Duration::from_micros((500.0 * 1.15f64.powi(t as i32 - 10)) as u64),
            _ => Duration::MAX,
        }
    }
}

/// A memory amount as Redis' `memtoull`: digits with an optional unit,
/// `k`/`m`/`g` for powers of 1000 and `kb`/`mb`/`gb` for powers of 1024,
/// case-insensitive.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let multiple: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(multiple)
}

/// `lua-memory-limit`'s default: 1gb per core.
pub const DEFAULT_LUA_MEMORY_LIMIT: u64 = 1 << 30;
/// `lua-eval-cache-limit`'s default: Redis 7.4's 500 scripts.
pub const DEFAULT_LUA_EVAL_CACHE_LIMIT: u64 = 500;

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 6379,
            workers: available_cores(),
            metrics_port: 9090,
            metrics_bind: "127.0.0.1".into(),
            hotkeys_decay_ms: 10_000,
            hotkeys_top_k: 32,
            instrumentation: true,
            active_expire_ms: 100,
            enable_debug_command: false,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            slowlog_log_slower_than: crate::metrics::slowlog::DEFAULT_SLOWER_THAN_US,
            slowlog_max_len: crate::metrics::slowlog::DEFAULT_MAX_LEN,
            latency_monitor_threshold: 0,
            maxclients: 10_000,
            client_output_buffer_limit: OutputBufferLimits::default(),
            shutdown_timeout: 10,
            metrics_max_connections: 16,
            metrics_request_timeout: 30,
            requirepass: String::new(),
            protected_mode: true,
            jemalloc_bg_thread: true,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            list_max_listpack_size: -2,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            // HyperLogLog (issue 13).
            hll_sparse_max_bytes: 3000,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            eviction: EvictionSettings::default(),
            // Scripting (issue 14).
            busy_reply_threshold: 5000,
            lua_memory_limit: DEFAULT_LUA_MEMORY_LIMIT,
            lua_eval_cache_limit: DEFAULT_LUA_EVAL_CACHE_LIMIT,
            cpu_affinity: false,
            cluster_enabled: false,
            cluster_config_file: String::new(),
            cluster_announce_ip: String::new(),
            cluster_node_timeout: 15000,
            cluster_require_full_coverage: true,
        }
    }
}

pub fn available_cores() -> usize {
    core_affinity::get_core_ids()
        .map(|ids| ids.len())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Command-line flags. Every field is optional so that we can tell "not
/// given" from "given with the default value" when layering over the file.
#[derive(Parser, Debug, Default)]
#[command(
    name = "kora",
    version,
    about = "Redis-compatible thread-per-core cache server"
)]
pub struct Cli {
    /// Read settings from this TOML file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for RESP clients.
    #[arg(long)]
    pub bind: Option<String>,
    /// Port for RESP clients.
    #[arg(long)]
    pub port: Option<u16>,
    /// Number of shards (pinned executors); default: available cores.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Port for the Prometheus /metrics endpoint; 0 disables it.
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Address for the /metrics endpoint.
    #[arg(long)]
    pub metrics_bind: Option<String>,
    /// Interval after which every hot-key counter is halved.
    #[arg(long)]
    pub hotkeys_decay_ms: Option<u64>,
    /// How many hot-key candidates each shard keeps.
    #[arg(long)]
    pub hotkeys_top_k: Option<usize>,
    /// Turn the per-command instrumentation off (for overhead measurements).
    #[arg(long)]
    pub no_instrumentation: bool,
    /// Allow the DEBUG command (for tests that stall a shard on purpose).
    #[arg(long)]
    pub enable_debug_command: bool,
    /// Largest single command (bytes) a client may send; default 1 GiB.
    #[arg(long)]
    pub client_query_buffer_limit: Option<usize>,
    /// Log commands at least this slow (µs) in SLOWLOG; negative disables.
    #[arg(long, allow_negative_numbers = true)]
    pub slowlog_log_slower_than: Option<i64>,
    /// Entries the slow log keeps.
    #[arg(long)]
    pub slowlog_max_len: Option<u64>,
    /// Latency monitor threshold in ms; 0 turns it off.
    #[arg(long)]
    pub latency_monitor_threshold: Option<u64>,
    /// Most client connections at once (default 10000).
    #[arg(long)]
    pub maxclients: Option<u64>,
    /// Output buffer limits as Redis: "normal 0 0 0 pubsub 32mb 8mb 60".
    #[arg(long, value_name = "CLASS HARD SOFT SECONDS ...")]
    pub client_output_buffer_limit: Option<String>,
    /// Seconds a shutdown may take before the process exits anyway (default 10).
    #[arg(long)]
    pub shutdown_timeout: Option<u64>,
    /// Most /metrics connections at once (default 16).
    #[arg(long)]
    pub metrics_max_connections: Option<usize>,
    /// Seconds a /metrics client has to send a request (default 30).
    #[arg(long)]
    pub metrics_request_timeout: Option<u64>,
    /// Password clients must give with AUTH (or HELLO AUTH) first.
    #[arg(long, value_name = "PASSWORD")]
    pub requirepass: Option<String>,
    /// With no password, accept only loopback clients (yes|no; default yes).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub protected_mode: Option<bool>,
    /// jemalloc's background thread returns freed pages to the kernel (yes|no; default yes).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub jemalloc_bg_thread: Option<bool>,
    /// A hash stays packed up to this many fields (default 512).
    #[arg(long, alias = "hash-max-ziplist-entries")]
    pub hash_max_listpack_entries: Option<u64>,
    /// ...and while no field or value is longer than this (default 64).
    #[arg(long, alias = "hash-max-ziplist-value")]
    pub hash_max_listpack_value: Option<u64>,
    /// List chunk size: -1..-5 for 4..64 KB, positive for elements (default -2).
    #[arg(long, alias = "list-max-ziplist-size", allow_negative_numbers = true)]
    pub list_max_listpack_size: Option<i64>,
    /// A set of integers stays an intset up to this many members (default 512).
    #[arg(long)]
    pub set_max_intset_entries: Option<u64>,
    /// A small set stays packed up to this many members (default 128).
    #[arg(long)]
    pub set_max_listpack_entries: Option<u64>,
    /// ...and while no member is longer than this (default 64).
    #[arg(long)]
    pub set_max_listpack_value: Option<u64>,
    /// A sparse HyperLogLog turns dense past this many bytes (default 3000).
    #[arg(long)]
    pub hll_sparse_max_bytes: Option<u64>,
    /// A sorted set stays packed up to this many members (default 128).
    #[arg(long, alias = "zset-max-ziplist-entries")]
    pub zset_max_listpack_entries: Option<u64>,
    /// ...and while no member is longer than this (default 64).
    #[arg(long, alias = "zset-max-ziplist-value")]
    pub zset_max_listpack_value: Option<u64>,
    /// Memory limit over all shards, as Redis: bytes or 100mb, 2gb...; 0 = none.
    #[arg(long, value_name = "BYTES")]
    pub maxmemory: Option<String>,
    /// What to do at maxmemory: noeviction (default), allkeys-lru,
    /// allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu,
    /// volatile-random, volatile-ttl.
    #[arg(long, value_name = "POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Keys sampled per eviction round (default 5).
    #[arg(long)]
    pub maxmemory_samples: Option<u64>,
    /// LFU counter's logarithm factor (default 10).
    #[arg(long)]
    pub lfu_log_factor: Option<u64>,
    /// Minutes per LFU counter decrement (default 1).
    #[arg(long)]
    pub lfu_decay_time: Option<u64>,
    /// 0..100: how long one write may evict (default 10: 500 µs).
    #[arg(long)]
    pub maxmemory_eviction_tenacity: Option<u64>,
    // Scripting (issue 14).
    /// Milliseconds before a running script counts as busy (default 5000).
    #[arg(long, alias = "lua-time-limit")]
    pub busy_reply_threshold: Option<u64>,
    /// Bytes each core's Lua heap may hold, as Redis writes memory (1gb,
    /// 500mb); 0 = no limit (default 1gb).
    #[arg(long, value_name = "BYTES")]
    pub lua_memory_limit: Option<String>,
    /// EVAL scripts each core keeps cached; 0 = no limit (default 500).
    #[arg(long, value_name = "N")]
    pub lua_eval_cache_limit: Option<u64>,
    /// Pin each shard's thread to a CPU of its own (yes|no; default no: the
    /// kernel places and moves them, cheaper when clients share the cores).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub cpu_affinity: Option<bool>,
    // Cluster mode (issue 16).
    /// Speak the Redis Cluster protocol (yes|no; default no).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub cluster_enabled: Option<bool>,
    /// Topology file, read at start and rewritten when a topology is pushed.
    #[arg(long, value_name = "PATH")]
    pub cluster_config_file: Option<String>,
    /// This node's address in the cluster (default: the bind address).
    #[arg(long, value_name = "IP")]
    pub cluster_announce_ip: Option<String>,
    /// Milliseconds before a silent peer counts as failed (default 15000).
    #[arg(long, value_name = "MS")]
    pub cluster_node_timeout: Option<u64>,
    /// Whether one unserved slot takes the cluster down (yes|no; default yes).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub cluster_require_full_coverage: Option<bool>,
}

/// A memory amount in `kora.toml`: an integer of bytes or Redis' text
/// (`"100mb"`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Memory {
    Bytes(u64),
    Text(String),
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// The keys `kora.toml` accepts; unknown keys are an error so typos are
/// caught at startup rather than silently ignored.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    port: Option<u16>,
    workers: Option<usize>,
    metrics_port: Option<u16>,
    metrics_bind: Option<String>,
    hotkeys_decay_ms: Option<u64>,
    hotkeys_top_k: Option<usize>,
    instrumentation: Option<bool>,
    enable_debug_command: Option<bool>,
    client_query_buffer_limit: Option<usize>,
    slowlog_log_slower_than: Option<i64>,
    slowlog_max_len: Option<u64>,
    latency_monitor_threshold: Option<u64>,
    maxclients: Option<u64>,
    client_output_buffer_limit: Option<String>,
    shutdown_timeout: Option<u64>,
    metrics_max_connections: Option<usize>,
    metrics_request_timeout: Option<u64>,
    requirepass: Option<String>,
    protected_mode: Option<bool>,
    jemalloc_bg_thread: Option<bool>,
    hash_max_listpack_entries: Option<u64>,
    hash_max_listpack_value: Option<u64>,
    list_max_listpack_size: Option<i64>,
    set_max_intset_entries: Option<u64>,
    set_max_listpack_entries: Option<u64>,
    set_max_listpack_value: Option<u64>,
    // HyperLogLog (issue 13).
    hll_sparse_max_bytes: Option<u64>,
    zset_max_listpack_entries: Option<u64>,
    zset_max_listpack_value: Option<u64>,
    maxmemory: Option<Memory>,
    maxmemory_policy: Option<String>,
    maxmemory_samples: Option<u64>,
    lfu_log_factor: Option<u64>,
    lfu_decay_time: Option<u64>,
    maxmemory_eviction_tenacity: Option<u64>,
    // Scripting (issue 14).
    #[serde(alias = "lua_time_limit")]
    busy_reply_threshold: Option<u64>,
    lua_memory_limit: Option<Memory>,
    lua_eval_cache_limit: Option<u64>,
    cpu_affinity: Option<bool>,
    // Cluster mode (issue 16).
    cluster_enabled: Option<bool>,
    cluster_config_file: Option<String>,
    cluster_announce_ip: Option<String>,
    cluster_node_timeout: Option<u64>,
    cluster_require_full_coverage: Option<bool>,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut cfg = Config::default();
        macro_rules! layer {
            ($field:ident) => {
                if let Some(v) = cli.$field.clone().or(file.$field.clone()) {
                    cfg.$field = v;
                }
            };
        }
        layer!(bind);
        layer!(port);
        layer!(workers);
        layer!(metrics_port);
        layer!(metrics_bind);
        layer!(hotkeys_decay_ms);
        layer!(hotkeys_top_k);
        layer!(client_query_buffer_limit);
        layer!(slowlog_log_slower_than);
        layer!(slowlog_max_len);
        layer!(latency_monitor_threshold);
        layer!(maxclients);
        layer!(shutdown_timeout);
        layer!(metrics_max_connections);
        layer!(metrics_request_timeout);
        if let Some(text) = cli
            .client_output_buffer_limit
            .as_ref()
            .or(file.client_output_buffer_limit.as_ref())
        {
            cfg.client_output_buffer_limit = cfg
                .client_output_buffer_limit
                .parse_over(text)
                .map_err(|e| ConfigError(format!("client_output_buffer_limit: {e}")))?;
        }
        layer!(requirepass);
        layer!(protected_mode);
        layer!(jemalloc_bg_thread);
        layer!(hash_max_listpack_entries);
        layer!(hash_max_listpack_value);
        layer!(list_max_listpack_size);
        layer!(set_max_intset_entries);
        layer!(set_max_listpack_entries);
        layer!(set_max_listpack_value);
        // HyperLogLog (issue 13).
        layer!(hll_sparse_max_bytes);
        layer!(zset_max_listpack_entries);
        layer!(zset_max_listpack_value);
        cfg.eviction = eviction_settings(cli, &file)?;
        // Scripting (issue 14).
        layer!(busy_reply_threshold);
        if let Some(bytes) = memory_setting(
            "lua_memory_limit",
            &cli.lua_memory_limit,
            &file.lua_memory_limit,
        )? {
            cfg.lua_memory_limit = bytes;
        }
        layer!(lua_eval_cache_limit);
        layer!(cpu_affinity);
        // Cluster mode (issue 16).
        layer!(cluster_enabled);
        layer!(cluster_config_file);
        layer!(cluster_announce_ip);
        layer!(cluster_node_timeout);
        layer!(cluster_require_full_coverage);
        if let Some(on) = file.instrumentation {
            cfg.instrumentation = on;
        }
        if cli.no_instrumentation {
            cfg.instrumentation = false;
        }
        cfg.enable_debug_command =
            cli.enable_debug_command || file.enable_debug_command.unwrap_or(false);
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ConfigError(format!(
                "workers must be between 1 and 1024, got {}",
                self.workers
            )));
        }
        if self.hotkeys_top_k == 0 || self.hotkeys_top_k > 1024 {
            return Err(ConfigError(format!(
                "hotkeys_top_k must be between 1 and 1024, got {}",
                self.hotkeys_top_k
            )));
        }
        if self.cluster_enabled
            && self.cluster_announce_ip.is_empty()
            && matches!(self.bind.as_str(), "0.0.0.0" | "::" | "*" | "")
        {
            return Err(ConfigError(
                "cluster mode on a wildcard bind address needs cluster_announce_ip (the address other nodes and clients reach this one at)".into(),
            ));
        }
        if self.cluster_node_timeout == 0 {
            return Err(ConfigError("cluster_node_timeout must be positive".into()));
        }
        if self.hotkeys_decay_ms == 0 {
            return Err(ConfigError("hotkeys_decay_ms must be positive".into()));
        }
        if self.slowlog_log_slower_than < -1 {
            return Err(ConfigError(format!(
                "slowlog_log_slower_than must be -1 or more, got {}",
                self.slowlog_log_slower_than
            )));
        }
        if self.maxclients == 0 || self.maxclients > 1_000_000 {
            return Err(ConfigError(format!(
                "maxclients must be between 1 and 1000000, got {}",
                self.maxclients
            )));
        }
        if self.metrics_max_connections == 0 || self.metrics_request_timeout == 0 {
            return Err(ConfigError(
                "metrics_max_connections and metrics_request_timeout must be positive".into(),
            ));
        }
        let thresholds = [
            self.hash_max_listpack_entries,
            self.hash_max_listpack_value,
            self.set_max_intset_entries,
            self.set_max_listpack_entries,
            self.set_max_listpack_value,
            // HyperLogLog (issue 13).
            self.hll_sparse_max_bytes,
            self.zset_max_listpack_entries,
            self.zset_max_listpack_value,
        ];
        if thresholds.iter().any(|&v| v > i64::MAX as u64)
            || i32::try_from(self.list_max_listpack_size).is_err()
        {
            return Err(ConfigError(
                "the *_max_listpack_* / set_max_intset_entries thresholds must fit in a signed \
                 64-bit integer (list_max_listpack_size: 32-bit)"
                    .into(),
            ));
        }
        if self.slowlog_max_len > i64::MAX as u64
            || self.latency_monitor_threshold > i64::MAX as u64
        {
            return Err(ConfigError(
                "slowlog_max_len and latency_monitor_threshold must fit in a signed 64-bit integer"
                    .into(),
            ));
        }
        if self.lua_memory_limit > i64::MAX as u64 || self.lua_eval_cache_limit > i64::MAX as u64 {
            return Err(ConfigError(
                "lua_memory_limit and lua_eval_cache_limit must fit in a signed 64-bit integer"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `host:port` for the RESP listener.
    /// This node's address in a cluster: `cluster-announce-ip` (or the bind
    /// address) and the port.
    pub fn cluster_announce(&self) -> (String, u16) {
        let host = if self.cluster_announce_ip.is_empty() {
            self.bind.clone()
        } else {
            self.cluster_announce_ip.clone()
        };
        (host, self.port)
    }

    pub fn listen_addr(&self) -> String {
        join_host_port(&self.bind, self.port)
    }

    pub fn metrics_addr(&self) -> String {
        join_host_port(&self.metrics_bind, self.metrics_port)
    }
}

/// A memory amount from its flag over its `kora.toml` key, if either has
/// one.
fn memory_setting(
    name: &str,
    flag: &Option<String>,
    key: &Option<Memory>,
) -> Result<Option<u64>, ConfigError> {
    Ok(match (flag, key) {
        (Some(text), _) | (None, Some(Memory::Text(text))) => Some(
            parse_memory(text)
                .ok_or_else(|| ConfigError(format!("{name}: not a memory value: {text}")))?,
        ),
        (None, Some(Memory::Bytes(n))) => Some(*n),
        (None, None) => None,
    })
}

/// The eviction knobs from flags over the file, checked with Redis'
/// ranges.
fn eviction_settings(cli: &Cli, file: &FileConfig) -> Result<EvictionSettings, ConfigError> {
    let mut e = EvictionSettings::default();
    if let Some(bytes) = memory_setting("maxmemory", &cli.maxmemory, &file.maxmemory)? {
        e.maxmemory = bytes;
    }
    if let Some(name) = cli
        .maxmemory_policy
        .as_ref()
        .or(file.maxmemory_policy.as_ref())
    {
        e.policy = Policy::parse(name.as_bytes())
            .ok_or_else(|| ConfigError(format!("maxmemory_policy: {POLICY_ERROR}")))?;
    }
    let int = |name: &str, v: Option<u64>, low: u64, high: u64| match v {
        Some(v) if !(low..=high).contains(&v) => Err(ConfigError(format!(
            "{name} must be between {low} and {high}, got {v}"
        ))),
        _ => Ok(v),
    };
    let max = i32::MAX as u64;
    if let Some(v) = int(
        "maxmemory_samples",
        cli.maxmemory_samples.or(file.maxmemory_samples),
        1,
        max,
    )? {
        e.samples = v as usize;
    }
    if let Some(v) = int(
        "lfu_log_factor",
        cli.lfu_log_factor.or(file.lfu_log_factor),
        0,
        max,
    )? {
        e.lfu_log_factor = v as u32;
    }
    if let Some(v) = int(
        "lfu_decay_time",
        cli.lfu_decay_time.or(file.lfu_decay_time),
        0,
        max,
    )? {
        e.lfu_decay_time = v as u32;
    }
    if let Some(v) = int(
        "maxmemory_eviction_tenacity",
        cli.maxmemory_eviction_tenacity
            .or(file.maxmemory_eviction_tenacity),
        0,
        100,
    )? {
        e.tenacity = v as u32;
    }
    Ok(e)
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1)
            .map_or(String::new(), |l| format!(" line {l}:"));
        ConfigError(format!(
            "bad config file {}:{line} {}",
            path.display(),
            e.message()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_tmp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("kora-cfg-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let path = write_tmp("layer.toml", "port = 7000\nworkers = 3\nmetrics_port = 0\n");
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap(), "--port", "7001"]);
        let cfg = Config::from_cli(&cli).unwrap();
        assert_eq!(cfg.port, 7001);
        assert_eq!(cfg.workers, 3);
        assert_eq!(cfg.metrics_port, 0);
        assert_eq!(cfg.bind, "127.0.0.1");
    }

    #[test]
    fn bad_file_names_file_and_line() {
        let path = write_tmp("bad.toml", "port = 7000\n\nnot_a_key = 1\n");
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap()]);
        let err = Config::from_cli(&cli).unwrap_err().0;
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn memory_units_and_buffer_limits_as_redis() {
        assert_eq!(parse_memory("0"), Some(0));
        assert_eq!(parse_memory("32mb"), Some(32 << 20));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("2GB"), Some(2 << 30));
        assert_eq!(parse_memory("1tb"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory(""), None);
        let limits = OutputBufferLimits::default();
        assert_eq!(
            limits.render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let set = limits
            .parse_over("normal 1mb 512kb 10 PUBSUB 0 0 0")
            .unwrap();
        assert_eq!(
            set.normal,
            BufferLimit {
                hard: 1 << 20,
                soft: 512 << 10,
                soft_seconds: 10
            }
        );
        assert_eq!(set.pubsub, BufferLimit::default());
        assert_eq!(set.replica, limits.replica);
        assert!(limits.parse_over("normal 1 2").is_err());
        assert!(limits.parse_over("master 1 2 3").is_err());
        assert!(limits.parse_over("normal x 2 3").is_err());
    }

    #[test]
    fn auth_settings_from_file_and_flags() {
        let defaults = Config::default();
        assert!(defaults.protected_mode);
        assert!(defaults.requirepass.is_empty());
        let path = write_tmp(
            "auth.toml",
            "requirepass = \"s3cret\"\nprotected_mode = false\n",
        );
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap()]);
        let cfg = Config::from_cli(&cli).unwrap();
        assert_eq!(
            (cfg.requirepass.as_str(), cfg.protected_mode),
            ("s3cret", false)
        );
        let cli = Cli::parse_from([
            "kora",
            "--config",
            path.to_str().unwrap(),
            "--requirepass",
            "other",
            "--protected-mode",
            "yes",
        ]);
        let cfg = Config::from_cli(&cli).unwrap();
        assert_eq!(
            (cfg.requirepass.as_str(), cfg.protected_mode),
            ("other", true)
        );
        assert!(Cli::try_parse_from(["kora", "--protected-mode", "maybe"]).is_err());
    }

    #[test]
    fn eviction_knobs_from_file_and_flags() {
        let d = Config::default().eviction;
        assert_eq!(
            (
                d.maxmemory,
                d.policy,
                d.samples,
                d.lfu_log_factor,
                d.lfu_decay_time,
                d.tenacity
            ),
            (0, Policy::NoEviction, 5, 10, 1, 10)
        );
        let path = write_tmp(
            "evict.toml",
            "maxmemory = \"100mb\"\nmaxmemory_policy = \"allkeys-lru\"\nmaxmemory_samples = 10\n\
             lfu_log_factor = 3\nlfu_decay_time = 0\nmaxmemory_eviction_tenacity = 20\n",
        );
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap()]);
        let e = Config::from_cli(&cli).unwrap().eviction;
        assert_eq!(
            (
                e.maxmemory,
                e.policy,
                e.samples,
                e.lfu_log_factor,
                e.lfu_decay_time,
                e.tenacity
            ),
            (100 << 20, Policy::AllkeysLru, 10, 3, 0, 20)
        );
        let cli = Cli::parse_from([
            "kora",
            "--config",
            path.to_str().unwrap(),
            "--maxmemory",
            "1g",
            "--maxmemory-policy",
            "VOLATILE-TTL",
        ]);
        let e = Config::from_cli(&cli).unwrap().eviction;
        assert_eq!(
            (e.maxmemory, e.policy),
            (1_000_000_000, Policy::VolatileTtl)
        );
        let path = write_tmp("evict-int.toml", "maxmemory = 4096\n");
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap()]);
        assert_eq!(Config::from_cli(&cli).unwrap().eviction.maxmemory, 4096);
        for bad in [
            &["kora", "--maxmemory", "1.5mb"][..],
            &["kora", "--maxmemory-policy", "lru"],
            &["kora", "--maxmemory-samples", "0"],
            &["kora", "--maxmemory-eviction-tenacity", "101"],
        ] {
            assert!(Config::from_cli(&Cli::parse_from(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_affinity_from_file_and_flags() {
        assert!(!Config::default().cpu_affinity);
        let path = write_tmp("affinity.toml", "cpu_affinity = true\n");
        let cli = Cli::parse_from(["kora", "--config", path.to_str().unwrap()]);
        assert!(Config::from_cli(&cli).unwrap().cpu_affinity);
        let cli = Cli::parse_from([
            "kora",
            "--config",
            path.to_str().unwrap(),
            "--cpu-affinity",
            "no",
        ]);
        assert!(!Config::from_cli(&cli).unwrap().cpu_affinity);
        assert!(Cli::try_parse_from(["kora", "--cpu-affinity", "maybe"]).is_err());
    }

    #[test]
    fn zero_workers_rejected() {
        let cli = Cli::parse_from(["kora", "--workers", "0"]);
        assert!(Config::from_cli(&cli).is_err());
    }
}
