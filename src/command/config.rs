//! CONFIG GET | SET | RESETSTAT | REWRITE | HELP.
//!
//! Parameters use Redis' names where Redis has the same knob, Kora's own
//! names (as in `kora.toml`, with dashes) otherwise. The ones that can
//! change at runtime are applied on every shard over the mesh: shards
//! share nothing, each keeps its own copy.

use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::config::OutputBufferLimits;
use crate::coord::Shard;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::evict::{POLICY_ERROR, Policy};
use crate::store::glob::glob_match_nocase;

/// A knob CONFIG SET can change, with the values it accepts (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Knob {
    SlowlogSlowerThan,
    SlowlogMaxLen,
    LatencyThreshold,
    HotkeysDecayMs,
    HotkeysTopK,
    LazyUserDel,
    /// `jemalloc-bg-thread`: yes or no; process-wide (src/alloc.rs).
    JemallocBgThread,
    LazyUserFlush,
    MaxClients,
    OutputBufferLimit,
    /// `requirepass`: any bytes; empty removes the password.
    RequirePass,
    /// `protected-mode`: yes or no.
    ProtectedMode,
    /// `maxmemory`: a memory value (Redis' units); each shard takes its
    /// share (src/store/evict.rs).
    MaxMemory,
    /// `maxmemory-policy`: one of Redis' eight names.
    MaxMemoryPolicy,
    MaxMemorySamples,
    LfuLogFactor,
    LfuDecayTime,
    EvictionTenacity,
    /// `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`).
    HashMaxEntries,
    /// `hash-max-listpack-value` (alias `hash-max-ziplist-value`): a
    /// memory value, as Redis.
    HashMaxValue,
    /// `list-max-listpack-size` (alias `list-max-ziplist-size`).
    ListMaxSize,
    /// `set-max-intset-entries`.
    SetMaxIntset,
    /// `set-max-listpack-entries` (Redis 7.2).
    SetMaxEntries,
    /// `set-max-listpack-value` (Redis 7.2): a memory value.
    SetMaxValue,
    /// `save`: Redis' snapshot schedule ("" or "<seconds> <changes>"
    /// pairs). Kora has no persistence: stored and reported only.
    Save,
    /// `appendonly`: only `no` (Kora has no append-only file).
    AppendOnly,
    /// `appendfsync`: always, everysec or no; stored and reported only.
    AppendFsync,
    /// `timeout`: stored and reported; Kora does not close idle clients.
    Timeout,
    /// `tcp-keepalive`: stored and reported; Kora keeps the OS default.
    TcpKeepalive,
    // HyperLogLog (issue 13).
    /// `hll-sparse-max-bytes`: a memory value, as Redis.
    HllSparseMaxBytes,
    // Sorted sets (src/store/zset.rs).
    /// `zset-max-listpack-entries` (alias `zset-max-ziplist-entries`).
    ZsetMaxEntries,
    /// `zset-max-listpack-value` (alias `zset-max-ziplist-value`): a
    /// memory value, as Redis.
    ZsetMaxValue,
    // Scripting (issue 14).
    /// `busy-reply-threshold` (alias `lua-time-limit`), milliseconds.
    BusyReplyThreshold,
    /// `lua-memory-limit`: a memory value; each core's Lua heap.
    LuaMemoryLimit,
    /// `lua-eval-cache-limit`: EVAL scripts each core keeps cached.
    LuaEvalCacheLimit,
    // Cluster mode (issue 16).
    /// `cluster-node-timeout`, milliseconds.
    ClusterNodeTimeout,
    /// `cluster-require-full-coverage`, yes|no.
    ClusterFullCoverage,
}

/// Values of the parameters Kora accepts so that tools that set them at
/// start keep working, but does not act on (`Knob::is_stored`): one copy
/// for the process, read and written only by CONFIG, never on the data
/// path. Defaults are what CONFIG GET showed before they were settable.
static STORED: std::sync::Mutex<Vec<(&str, String)>> = std::sync::Mutex::new(Vec::new());

const STORED_DEFAULTS: [(&str, &str); 4] = [
    ("save", ""),
    ("appendfsync", "everysec"),
    ("timeout", "0"),
    ("tcp-keepalive", "300"),
];

fn stored(name: &str) -> String {
    let values = STORED.lock().unwrap_or_else(|e| e.into_inner());
    values
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone())
        .or_else(|| {
            STORED_DEFAULTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default()
}

fn store(name: &'static str, value: &str) {
    let mut values = STORED.lock().unwrap_or_else(|e| e.into_inner());
    values.retain(|(n, _)| *n != name);
    values.push((name, value.to_string()));
}

/// Redis' check of a `save` value: "" or pairs of non-negative integers
/// separated by single spaces.
fn valid_save(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let parts: Vec<&str> = text.split(' ').collect();
    parts.len().is_multiple_of(2)
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i64>().is_ok()
        })
}

/// A validated value for a knob, ready to apply on every shard.
#[derive(Clone, Debug)]
enum Setting {
    Int(i64),
    OutputLimits(OutputBufferLimits),
    Bytes(Vec<u8>),
    Flag(bool),
    Memory(u64),
    Policy(Policy),
    /// A stored-only parameter's value, normalised as CONFIG GET shows it.
    Text(String),
}

impl Knob {
    /// The integers an integer knob accepts (inclusive).
    fn range(self) -> (i64, i64) {
        match self {
            Knob::SlowlogSlowerThan => (-1, i64::MAX),
            Knob::SlowlogMaxLen | Knob::LatencyThreshold => (0, i64::MAX),
            Knob::HotkeysDecayMs => (1, i64::MAX),
            Knob::HotkeysTopK => (1, 1024),
            Knob::MaxClients => (1, 1_000_000),
            Knob::MaxMemorySamples => (1, i32::MAX as i64),
            Knob::LfuLogFactor | Knob::LfuDecayTime => (0, i32::MAX as i64),
            Knob::EvictionTenacity => (0, 100),
            Knob::HashMaxEntries
            | Knob::HashMaxValue
            | Knob::SetMaxIntset
            | Knob::SetMaxEntries
            | Knob::SetMaxValue
            | Knob::HllSparseMaxBytes => (0, i64::MAX),
            Knob::ZsetMaxEntries | Knob::ZsetMaxValue => (0, i64::MAX),
            Knob::ListMaxSize => (i32::MIN as i64, i32::MAX as i64),
            Knob::Timeout | Knob::TcpKeepalive => (0, i32::MAX as i64),
            // Scripting (issue 14).
            Knob::BusyReplyThreshold | Knob::LuaMemoryLimit | Knob::LuaEvalCacheLimit => {
                (0, i64::MAX)
            }
            Knob::ClusterNodeTimeout => (1, i64::MAX),
            // Not integers: parsed on their own in `parse`.
            Knob::OutputBufferLimit
            | Knob::RequirePass
            | Knob::ProtectedMode
            | Knob::LazyUserDel
            | Knob::LazyUserFlush
            | Knob::JemallocBgThread
            | Knob::ClusterFullCoverage
            | Knob::MaxMemory
            | Knob::MaxMemoryPolicy
            | Knob::Save
            | Knob::AppendOnly
            | Knob::AppendFsync => (0, 0),
        }
    }

    /// Checks `raw` on the shard that received CONFIG SET; the error is
    /// the part of Redis' text after "- ".
    fn parse(self, shard: &Shard, raw: &[u8]) -> Result<Setting, String> {
        match self {
            Knob::RequirePass => return Ok(Setting::Bytes(raw.to_vec())),
            Knob::ProtectedMode
            | Knob::LazyUserDel
            | Knob::LazyUserFlush
            | Knob::ClusterFullCoverage
            | Knob::JemallocBgThread => {
                return match raw.to_ascii_lowercase().as_slice() {
                    b"yes" => Ok(Setting::Flag(true)),
                    b"no" => Ok(Setting::Flag(false)),
                    _ => Err("argument must be 'yes' or 'no'".into()),
                };
            }
            Knob::MaxMemory => {
                return std::str::from_utf8(raw)
                    .ok()
                    .and_then(crate::config::parse_memory)
                    .map(Setting::Memory)
                    .ok_or_else(|| "argument must be a memory value".into());
            }
            Knob::MaxMemoryPolicy => {
                return Policy::parse(raw)
                    .map(Setting::Policy)
                    .ok_or_else(|| POLICY_ERROR.into());
            }
            Knob::Save => {
                return std::str::from_utf8(raw)
                    .ok()
                    .filter(|t| valid_save(t))
                    .map(|t| Setting::Text(t.to_string()))
                    .ok_or_else(|| "Invalid save parameters".into());
            }
            Knob::AppendOnly => {
                return match raw.to_ascii_lowercase().as_slice() {
                    b"no" => Ok(Setting::Text("no".into())),
                    b"yes" => Err(
                        "Kora has no append-only file (no persistence): only 'no' is accepted"
                            .into(),
                    ),
                    _ => Err("argument must be 'yes' or 'no'".into()),
                };
            }
            Knob::AppendFsync => {
                let lower = raw.to_ascii_lowercase();
                return match lower.as_slice() {
                    b"everysec" | b"always" | b"no" => {
                        Ok(Setting::Text(String::from_utf8_lossy(&lower).into_owned()))
                    }
                    _ => {
                        Err("argument(s) must be one of the following: everysec, always, no".into())
                    }
                };
            }
            _ => {}
        }
        if self == Knob::OutputBufferLimit {
            let text = std::str::from_utf8(raw).map_err(|_| {
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                    .to_string()
            })?;
            return shard
                .output_limits()
                .get()
                .parse_over(text)
                .map(Setting::OutputLimits)
                .map_err(str::to_string);
        }
        let v = if matches!(
            self,
            Knob::HashMaxValue
                | Knob::SetMaxValue
                | Knob::HllSparseMaxBytes
                | Knob::ZsetMaxValue
                | Knob::LuaMemoryLimit
        ) {
            // Redis' memory values: `1kb` and the like (and "" is 0).
            std::str::from_utf8(raw)
                .ok()
                .and_then(|t| {
                    if t.is_empty() {
                        Some(0)
                    } else {
                        crate::config::parse_memory(t)
                    }
                })
                .and_then(|v| i64::try_from(v).ok())
                .ok_or("argument must be a memory value")?
        } else {
            parse_i64(raw).ok_or("argument couldn't be parsed into an integer")?
        };
        let (low, high) = self.range();
        if !(low..=high).contains(&v) {
            return Err(format!(
                "argument must be between {low} and {high} inclusive"
            ));
        }
        Ok(Setting::Int(v))
    }

    /// Sets the knob on one shard.
    fn apply(self, shard: &Shard, setting: &Setting) {
        let m = shard.metrics();
        let value = match setting {
            Setting::Memory(bytes) => {
                return set_eviction(shard, |e| e.maxmemory = *bytes);
            }
            Setting::Policy(policy) => return set_eviction(shard, |e| e.policy = *policy),
            Setting::Int(v) if self.is_eviction() => {
                let v = *v;
                return set_eviction(shard, |e| match self {
                    Knob::MaxMemorySamples => e.samples = v as usize,
                    Knob::LfuLogFactor => e.lfu_log_factor = v as u32,
                    Knob::LfuDecayTime => e.lfu_decay_time = v as u32,
                    _ => e.tenacity = v as u32,
                });
            }
            Setting::Int(v) => *v,
            Setting::OutputLimits(limits) => return shard.output_limits().set(*limits),
            Setting::Bytes(password) => return shard.auth().set_password(password),
            // Not per shard: one process-wide copy (see `STORED`);
            // appendonly accepts only `no`, which it already is.
            Setting::Text(text) => {
                return match self {
                    Knob::Save => store("save", text),
                    Knob::AppendFsync => store("appendfsync", text),
                    _ => {}
                };
            }
            Setting::Flag(on) => {
                let on = *on;
                return match self {
                    Knob::LazyUserDel => shard.db().lazy_user_del = on,
                    // Process-wide: every shard setting it is harmless.
                    Knob::JemallocBgThread => {
                        crate::alloc::set_background_thread(on);
                    }
                    Knob::LazyUserFlush => shard.db().lazy_user_flush = on,
                    Knob::ClusterFullCoverage => {
                        let mut state = shard.cluster_mut();
                        state.coverage = if on {
                            crate::cluster::Coverage::Full
                        } else {
                            crate::cluster::Coverage::Partial
                        };
                        state.refresh();
                    }
                    _ => shard.auth().set_protected_mode(on),
                };
            }
        };
        match self {
            Knob::SlowlogSlowerThan => m.set_slowlog_slower_than_us(value),
            Knob::SlowlogMaxLen => m.set_slowlog_max_len(value as u64),
            Knob::LatencyThreshold => m.set_latency_threshold_ms(value as u64),
            Knob::HotkeysDecayMs => shard.hotkeys_decay_ms().set(value as u64),
            Knob::HotkeysTopK => shard.db().hot.set_capacity(value as usize),
            // One shared place; every shard storing the same value is fine.
            Knob::MaxClients => shard.admission().set_max(value as usize),
            Knob::HashMaxEntries
            | Knob::HashMaxValue
            | Knob::ListMaxSize
            | Knob::SetMaxIntset
            | Knob::SetMaxEntries
            | Knob::SetMaxValue
            | Knob::HllSparseMaxBytes => {
                let mut db = shard.db();
                let limits = &mut db.limits;
                let size = usize::try_from(value).unwrap_or(usize::MAX);
                match self {
                    Knob::HashMaxEntries => limits.hash_max_entries = size,
                    Knob::HashMaxValue => limits.hash_max_value = size,
                    Knob::ListMaxSize => limits.list_max_size = value,
                    Knob::SetMaxIntset => limits.set_max_intset = size,
                    Knob::SetMaxEntries => limits.set_max_entries = size,
                    Knob::HllSparseMaxBytes => limits.hll_sparse_max_bytes = size,
                    _ => limits.set_max_value = size,
                }
            }
            Knob::ZsetMaxEntries => shard.db().limits.zset_max_entries = value as usize,
            Knob::ZsetMaxValue => shard.db().limits.zset_max_value = value as usize,
            Knob::OutputBufferLimit
            | Knob::RequirePass
            | Knob::ProtectedMode
            | Knob::LazyUserDel
            | Knob::LazyUserFlush
            | Knob::JemallocBgThread
            | Knob::ClusterFullCoverage
            | Knob::MaxMemory
            | Knob::MaxMemoryPolicy
            | Knob::MaxMemorySamples
            | Knob::LfuLogFactor
            | Knob::LfuDecayTime
            | Knob::EvictionTenacity
            | Knob::Save
            | Knob::AppendOnly
            | Knob::AppendFsync => {}
            Knob::Timeout => store("timeout", &value.to_string()),
            Knob::TcpKeepalive => store("tcp-keepalive", &value.to_string()),
            // Scripting (issue 14): this core's copy.
            Knob::BusyReplyThreshold => {
                crate::command::scripting::engine::set_busy_threshold_ms(value as u64)
            }
            Knob::LuaMemoryLimit | Knob::LuaEvalCacheLimit => {
                use crate::command::scripting::engine;
                let mut limits = engine::limits();
                match self {
                    Knob::LuaMemoryLimit => limits.lua_memory = value as u64,
                    _ => limits.eval_cache = value as u64,
                }
                engine::configure(limits);
                engine::note_sizes(shard);
            }
            Knob::ClusterNodeTimeout => shard.cluster_mut().node_timeout_ms = value as u64,
        }
    }

    fn is_eviction(self) -> bool {
        matches!(
            self,
            Knob::MaxMemorySamples
                | Knob::LfuLogFactor
                | Knob::LfuDecayTime
                | Knob::EvictionTenacity
        )
    }
}

/// Changes one eviction knob on this shard; the shard recomputes its share
/// of `maxmemory` (its background task then evicts down to it).
fn set_eviction(shard: &Shard, change: impl FnOnce(&mut crate::store::evict::Settings)) {
    let mut db = shard.db();
    let mut settings = *db.eviction();
    change(&mut settings);
    db.set_eviction(settings, shard.id(), shard.nshards());
}

/// Every parameter that exists: its name and, if CONFIG SET may change it,
/// its knob.
const PARAMS: &[(&str, Option<Knob>)] = &[
    ("bind", None),
    ("port", None),
    ("databases", None),
    ("save", Some(Knob::Save)),
    ("appendonly", Some(Knob::AppendOnly)),
    ("appendfsync", Some(Knob::AppendFsync)),
    ("maxmemory", Some(Knob::MaxMemory)),
    ("maxmemory-policy", Some(Knob::MaxMemoryPolicy)),
    ("maxmemory-samples", Some(Knob::MaxMemorySamples)),
    ("maxmemory-eviction-tenacity", Some(Knob::EvictionTenacity)),
    ("lfu-log-factor", Some(Knob::LfuLogFactor)),
    ("lfu-decay-time", Some(Knob::LfuDecayTime)),
    ("maxclients", Some(Knob::MaxClients)),
    ("client-output-buffer-limit", Some(Knob::OutputBufferLimit)),
    ("shutdown-timeout", None),
    ("timeout", Some(Knob::Timeout)),
    ("tcp-keepalive", Some(Knob::TcpKeepalive)),
    ("proto-max-bulk-len", None),
    ("client-query-buffer-limit", None),
    ("io-threads", None),
    ("enable-debug-command", None),
    ("slowlog-log-slower-than", Some(Knob::SlowlogSlowerThan)),
    ("slowlog-max-len", Some(Knob::SlowlogMaxLen)),
    ("latency-monitor-threshold", Some(Knob::LatencyThreshold)),
    ("latency-tracking", None),
    ("latency-tracking-info-percentiles", None),
    // Encoding thresholds of small aggregates (store::agg), with Redis
    // 7.0's aliases; the set-max-listpack-* pair is Redis 7.2's.
    ("hash-max-listpack-entries", Some(Knob::HashMaxEntries)),
    ("hash-max-ziplist-entries", Some(Knob::HashMaxEntries)),
    ("hash-max-listpack-value", Some(Knob::HashMaxValue)),
    ("hash-max-ziplist-value", Some(Knob::HashMaxValue)),
    ("set-max-intset-entries", Some(Knob::SetMaxIntset)),
    ("set-max-listpack-entries", Some(Knob::SetMaxEntries)),
    ("set-max-listpack-value", Some(Knob::SetMaxValue)),
    ("list-max-listpack-size", Some(Knob::ListMaxSize)),
    ("list-max-ziplist-size", Some(Knob::ListMaxSize)),
    // Sorted sets (src/store/zset.rs), with Redis 7.0's aliases.
    ("zset-max-listpack-entries", Some(Knob::ZsetMaxEntries)),
    ("zset-max-ziplist-entries", Some(Knob::ZsetMaxEntries)),
    ("zset-max-listpack-value", Some(Knob::ZsetMaxValue)),
    ("zset-max-ziplist-value", Some(Knob::ZsetMaxValue)),
    // Kora's own.
    ("workers", None),
    ("cpu-affinity", None),
    ("metrics-port", None),
    ("metrics-bind", None),
    ("metrics-max-connections", None),
    ("metrics-request-timeout", None),
    ("instrumentation", None),
    ("hotkeys-decay-ms", Some(Knob::HotkeysDecayMs)),
    ("hotkeys-top-k", Some(Knob::HotkeysTopK)),
    ("requirepass", Some(Knob::RequirePass)),
    ("protected-mode", Some(Knob::ProtectedMode)),
    // Redis 7 names and defaults: DEL and FLUSHALL/FLUSHDB without a mode
    // free synchronously unless these say otherwise.
    ("lazyfree-lazy-user-del", Some(Knob::LazyUserDel)),
    ("jemalloc-bg-thread", Some(Knob::JemallocBgThread)),
    ("lazyfree-lazy-user-flush", Some(Knob::LazyUserFlush)),
    // HyperLogLog (issue 13).
    ("hll-sparse-max-bytes", Some(Knob::HllSparseMaxBytes)),
    // Scripting (issue 14).
    ("busy-reply-threshold", Some(Knob::BusyReplyThreshold)),
    ("lua-time-limit", Some(Knob::BusyReplyThreshold)),
    ("lua-memory-limit", Some(Knob::LuaMemoryLimit)),
    ("lua-eval-cache-limit", Some(Knob::LuaEvalCacheLimit)),
    // Cluster mode (issue 16), Redis' names.
    ("cluster-enabled", None),
    ("cluster-config-file", None),
    ("cluster-announce-ip", None),
    ("cluster-node-timeout", Some(Knob::ClusterNodeTimeout)),
    (
        "cluster-require-full-coverage",
        Some(Knob::ClusterFullCoverage),
    ),
];

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.into()
}

/// The current value of parameter `name` (one of `PARAMS`) on this shard;
/// runtime knobs hold the same value on every shard.
fn value(shard: &Shard, name: &str) -> String {
    let c = shard.config();
    let m = shard.metrics();
    match name {
        "bind" => c.bind.clone(),
        "port" => c.port.to_string(),
        "databases" => "1".into(),
        "save" | "appendfsync" | "timeout" | "tcp-keepalive" => stored(name),
        "appendonly" => "no".into(),
        "maxmemory" => shard.db().eviction().maxmemory.to_string(),
        "maxmemory-policy" => shard.db().eviction().policy.name().into(),
        "maxmemory-samples" => shard.db().eviction().samples.to_string(),
        "maxmemory-eviction-tenacity" => shard.db().eviction().tenacity.to_string(),
        "lfu-log-factor" => shard.db().eviction().lfu_log_factor.to_string(),
        "lfu-decay-time" => shard.db().eviction().lfu_decay_time.to_string(),
        "maxclients" => shard.admission().max().to_string(),
        "client-output-buffer-limit" => shard.output_limits().get().render(),
        "shutdown-timeout" => c.shutdown_timeout.to_string(),
        "metrics-max-connections" => c.metrics_max_connections.to_string(),
        "metrics-request-timeout" => c.metrics_request_timeout.to_string(),
        "proto-max-bulk-len" => crate::protocol::parser::MAX_BULK_LEN.to_string(),
        "client-query-buffer-limit" => c.client_query_buffer_limit.to_string(),
        "io-threads" | "workers" => c.workers.to_string(),
        "cpu-affinity" => yes_no(c.cpu_affinity),
        "enable-debug-command" => yes_no(c.enable_debug_command),
        "slowlog-log-slower-than" => m.slowlog.slower_than_us().to_string(),
        "slowlog-max-len" => m.slowlog.max_len().to_string(),
        "latency-monitor-threshold" => m.latency_monitor.threshold_ms().to_string(),
        "latency-tracking" => yes_no(c.instrumentation),
        "latency-tracking-info-percentiles" => "50 99 99.9".into(),
        "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
            shard.db().limits.hash_max_entries.to_string()
        }
        "hash-max-listpack-value" | "hash-max-ziplist-value" => {
            shard.db().limits.hash_max_value.to_string()
        }
        "set-max-intset-entries" => shard.db().limits.set_max_intset.to_string(),
        "set-max-listpack-entries" => shard.db().limits.set_max_entries.to_string(),
        "set-max-listpack-value" => shard.db().limits.set_max_value.to_string(),
        "list-max-listpack-size" | "list-max-ziplist-size" => {
            shard.db().limits.list_max_size.to_string()
        }
        // Sorted sets.
        "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
            shard.db().limits.zset_max_entries.to_string()
        }
        "zset-max-listpack-value" | "zset-max-ziplist-value" => {
            shard.db().limits.zset_max_value.to_string()
        }
        "metrics-port" => c.metrics_port.to_string(),
        "metrics-bind" => c.metrics_bind.clone(),
        "instrumentation" => yes_no(c.instrumentation),
        "hotkeys-decay-ms" => shard.hotkeys_decay_ms().get().to_string(),
        "hotkeys-top-k" => shard.db().hot.capacity().to_string(),
        // As Redis, CONFIG GET shows the password to a client that may
        // run CONFIG (it could set a new one anyway).
        "requirepass" => shard.auth().password_lossy(),
        "protected-mode" => yes_no(shard.auth().protected_mode()),
        "jemalloc-bg-thread" => yes_no(crate::alloc::background_thread()),
        "lazyfree-lazy-user-del" => yes_no(shard.db().lazy_user_del),
        "lazyfree-lazy-user-flush" => yes_no(shard.db().lazy_user_flush),
        // HyperLogLog (issue 13).
        "hll-sparse-max-bytes" => shard.db().limits.hll_sparse_max_bytes.to_string(),
        // Scripting (issue 14).
        "busy-reply-threshold" | "lua-time-limit" => {
            crate::command::scripting::engine::busy_threshold_ms(shard).to_string()
        }
        "lua-memory-limit" => crate::command::scripting::engine::limits()
            .lua_memory
            .to_string(),
        "lua-eval-cache-limit" => crate::command::scripting::engine::limits()
            .eval_cache
            .to_string(),
        // Cluster mode (issue 16).
        "cluster-enabled" => yes_no(c.cluster_enabled),
        "cluster-config-file" => c.cluster_config_file.clone(),
        "cluster-announce-ip" => c.cluster_announce_ip.clone(),
        "cluster-node-timeout" => shard.cluster().node_timeout_ms.to_string(),
        "cluster-require-full-coverage" => {
            yes_no(shard.cluster().coverage == crate::cluster::Coverage::Full)
        }
        _ => String::new(),
    }
}

fn find(name: &[u8]) -> Option<&'static (&'static str, Option<Knob>)> {
    PARAMS
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
}

pub async fn config(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"GET", 3..) => get(shard, args, out),
        (b"SET", 4..) => set(shard, args, out).await,
        (b"RESETSTAT", 2) => {
            shard.reset_info_stats().await;
            out.ok();
        }
        (b"REWRITE", 2) => out.error(
            "ERR CONFIG REWRITE is not supported: Kora never writes its configuration file; \
             put the setting in kora.toml or on the command line",
        ),
        (b"HELP", 2) => help_reply(
            out,
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Not supported: Kora does not rewrite its configuration file.",
            ],
        ),
        (b"GET" | b"SET" | b"RESETSTAT" | b"REWRITE" | b"HELP", _) => {
            subcommand_arity(out, "config", &sub)
        }
        _ => unknown_subcommand(out, "CONFIG", args.get(1)),
    }
}

fn get(shard: &Shard, args: &Args, out: &mut Vec<u8>) {
    let mut hits: Vec<&str> = Vec::new();
    for pattern in args.iter_from(2) {
        // Like Redis: a name without `[*?` is looked up, not matched (so a
        // `\` in it is not an escape); a pattern matches names ignoring
        // ASCII case.
        let literal = !pattern.iter().any(|c| b"[*?".contains(c));
        for (name, _) in PARAMS {
            let hit = if literal {
                name.as_bytes().eq_ignore_ascii_case(pattern)
            } else {
                glob_match_nocase(pattern, name.as_bytes())
            };
            if hit && !hits.contains(name) {
                hits.push(name);
            }
        }
    }
    out.array(hits.len() * 2);
    for name in hits {
        out.bulk(name.as_bytes());
        out.bulk(value(shard, name).as_bytes());
    }
}

/// CONFIG SET name value [name value ...]: all or nothing, with Redis 7's
/// error texts and precedence (an unknown name first, then immutable or
/// duplicate names, then bad values).
async fn set(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    if !args.len().is_multiple_of(2) {
        return out.error(err::SYNTAX);
    }
    let pairs: Vec<(&[u8], &[u8])> = (2..args.len())
        .step_by(2)
        .map(|i| (args.get(i), args.get(i + 1)))
        .collect();
    if let Some((name, _)) = pairs.iter().find(|(name, _)| find(name).is_none()) {
        return out.error(&format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            String::from_utf8_lossy(name)
        ));
    }
    let failed = |name: &[u8], why: &str| {
        format!(
            "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
            String::from_utf8_lossy(name)
        )
    };
    let mut knobs: Vec<(Knob, &[u8], &[u8])> = Vec::with_capacity(pairs.len());
    for (name, raw) in &pairs {
        let Some((_, Some(knob))) = find(name) else {
            return out.error(&failed(name, "can't set immutable config"));
        };
        // By name, as Redis: an alias and its parameter may both be set.
        if knobs.iter().any(|(_, n, _)| n.eq_ignore_ascii_case(name)) {
            return out.error(&failed(name, "duplicate parameter"));
        }
        knobs.push((*knob, name, raw));
    }
    let mut values: Vec<(Knob, Setting)> = Vec::with_capacity(knobs.len());
    for (knob, name, raw) in knobs {
        match knob.parse(shard, raw) {
            Ok(setting) => values.push((knob, setting)),
            Err(why) => return out.error(&failed(name, &why)),
        }
    }
    crate::coord::all(shard, move |s: &Shard| {
        for (knob, setting) in &values {
            knob.apply(s, setting);
        }
    })
    .await;
    out.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_has_a_parameter_and_sane_range() {
        for (name, knob) in PARAMS {
            assert_eq!(*name, name.to_ascii_lowercase());
            if let Some(k) = knob {
                let (low, high) = k.range();
                assert!(low <= high, "{name}");
            }
        }
        let names: Vec<&str> = PARAMS.iter().map(|p| p.0).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(find(b"SLOWLOG-MAX-LEN").is_some());
        assert!(find(b"nope").is_none());
    }
}
