//! Prometheus text exposition (format 0.0.4) of merged shard snapshots
//! and the allocator's process-wide figures.

use std::fmt::Write as _;

use crate::command::server::{KORA_VERSION, REDIS_VERSION};
use crate::command::table::{HOT_NAMES, NUM_SLOTS, SLOT_OTHER, lookup, slot_name};
use crate::metrics::ShardSnapshot;
use crate::metrics::errors::ERROR_KINDS;
use crate::metrics::view::{LE_BOUNDS_SECONDS, MetricsView};

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The slots `/metrics` exports, with their `cmd` label: the hot set
/// ([`HOT_NAMES`]) always, zeros included (a series that appeared only with
/// its first command would hide that first burst from rate() and
/// increase(), which need two samples), and any other command or
/// subcommand (`config|set`) from its first call, so idle commands add no
/// series. Counters never go back to zero, so a series never disappears.
fn exported_slots(view: &MetricsView) -> Vec<(usize, &'static str)> {
    let m = &view.merged;
    let mut hot = [false; NUM_SLOTS];
    for name in HOT_NAMES {
        let slot = lookup(name.as_bytes()).map_or(SLOT_OTHER, |s| s.slot);
        hot[slot as usize] = true;
    }
    let mut used: Vec<(usize, &'static str)> = (0..NUM_SLOTS)
        .filter(|&slot| hot[slot] || m.calls[slot] > 0 || view.latency(slot).is_some())
        .filter_map(|slot| Some((slot, slot_name(slot)?)))
        .collect();
    // The hot set first, in its usual order; then the rest by name.
    let rank = |name: &str| {
        HOT_NAMES
            .iter()
            .position(|h| *h == name)
            .unwrap_or(usize::MAX)
    };
    used.sort_by(|a, b| rank(a.1).cmp(&rank(b.1)).then(a.1.cmp(b.1)));
    used
}

pub fn render(view: &MetricsView) -> String {
    let m = &view.merged;
    let mut out = String::with_capacity(16 * 1024);
    let used = exported_slots(view);

    family(
        &mut out,
        "kora_commands_total",
        "counter",
        "Commands processed, by command.",
    );
    for &(slot, name) in &used {
        let _ = writeln!(
            out,
            "kora_commands_total{{cmd=\"{name}\"}} {}",
            m.calls[slot]
        );
    }

    family(
        &mut out,
        "kora_command_failed_total",
        "counter",
        "Commands answered with an error, by command.",
    );
    for &(slot, name) in &used {
        let _ = writeln!(
            out,
            "kora_command_failed_total{{cmd=\"{name}\"}} {}",
            m.failed[slot]
        );
    }

    family(
        &mut out,
        "kora_errors_total",
        "counter",
        "Error replies by error kind (the reply's first word).",
    );
    for (kind, count) in ERROR_KINDS.iter().zip(&m.errors) {
        let _ = writeln!(out, "kora_errors_total{{kind=\"{kind}\"}} {count}");
    }

    family(
        &mut out,
        "kora_command_duration_seconds",
        "histogram",
        "Command latency from dispatch to reply ready on the client's core, by command.",
    );
    let no_buckets = [0u64; LE_BOUNDS_SECONDS.len()];
    for &(slot, name) in &used {
        let lat = view.latency.iter().find(|l| l.slot as usize == slot);
        let (buckets, count) = match lat {
            Some(l) => (&l.le_cumulative[..], l.count),
            None => (&no_buckets[..], 0),
        };
        for (bound, n) in LE_BOUNDS_SECONDS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "kora_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "kora_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "kora_command_duration_seconds_sum{{cmd=\"{name}\"}} {}",
            seconds(m.nanos[slot])
        );
        let _ = writeln!(
            out,
            "kora_command_duration_seconds_count{{cmd=\"{name}\"}} {count}"
        );
    }

    let a = &view.allocator;
    let gauges: [(&str, &str, u64); 12] = [
        (
            "kora_keys_total",
            "Current key count across all shards.",
            m.keys,
        ),
        (
            "kora_memory_used_bytes",
            "Bytes allocated by the process (jemalloc stats.allocated): INFO used_memory.",
            a.allocated,
        ),
        (
            "kora_memory_dataset_bytes",
            "Estimated bytes of keys, values and per-key metadata (the per-entry cost model behind MEMORY USAGE).",
            m.dataset_bytes,
        ),
        (
            "kora_memory_rss_bytes",
            "Resident set size of the process.",
            a.rss,
        ),
        (
            "kora_allocator_active_bytes",
            "Bytes in pages the allocator has in use (jemalloc stats.active).",
            a.active,
        ),
        (
            "kora_allocator_resident_bytes",
            "Bytes the allocator holds resident, dirty pages included (jemalloc stats.resident).",
            a.resident,
        ),
        (
            "kora_allocator_retained_bytes",
            "Bytes of address space the allocator retains, not resident (jemalloc stats.retained).",
            a.retained,
        ),
        (
            "kora_maxmemory_bytes",
            "The maxmemory limit over all shards (0 = none); each shard evicts to its share.",
            m.maxmemory_bytes,
        ),
        (
            "kora_lazyfree_pending_objects",
            "Values (or keys of a flushed table) that UNLINK or FLUSH* ASYNC detached and the lazy-free task has not freed yet.",
            m.lazyfree_pending,
        ),
        (
            "kora_connected_clients",
            "Client connections currently open.",
            m.connections_current,
        ),
        (
            "kora_slowlog_length",
            "Entries in the slow log (what SLOWLOG LEN answers).",
            m.slowlog_len,
        ),
        // Blocking commands (issue 13).
        (
            "kora_blocked_clients",
            "Clients waiting in a blocking command (BLPOP, BLMOVE, ...).",
            m.blocked_clients,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters: [(&str, &str, u64); 9] = [
        (
            "kora_bytes_in_total",
            "Bytes received from clients.",
            m.bytes_in,
        ),
        (
            "kora_bytes_out_total",
            "Bytes sent to clients.",
            m.bytes_out,
        ),
        (
            "kora_connections_received_total",
            "Client connections accepted.",
            m.connections_accepted,
        ),
        (
            "kora_rejected_connections_total",
            "Client connections refused because maxclients were connected.",
            m.rejected_connections,
        ),
        (
            "kora_client_output_buffer_limit_disconnections_total",
            "Client connections closed for passing client-output-buffer-limit.",
            m.output_limit_disconnections,
        ),
        (
            "kora_keyspace_hits_total",
            "Key lookups that found a key.",
            m.keyspace_hits,
        ),
        (
            "kora_keyspace_misses_total",
            "Key lookups that found no key.",
            m.keyspace_misses,
        ),
        (
            "kora_expired_keys_total",
            "Keys removed because their TTL passed.",
            m.expired_keys,
        ),
        (
            "kora_evicted_keys_total",
            "Keys evicted to stay under a memory limit.",
            m.evicted_keys,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    family(
        &mut out,
        "kora_transactions_total",
        "counter",
        "MULTI blocks by outcome: exec (ran), discard (DISCARD or EXECABORT), watch_abort (a WATCHed key changed).",
    );
    for (result, n) in ["exec", "discard", "watch_abort"]
        .iter()
        .zip(m.transactions)
    {
        let _ = writeln!(out, "kora_transactions_total{{result=\"{result}\"}} {n}");
    }

    // Scripting (issue 14).
    let scripting: [(&str, &str, &str, String); 5] = [
        (
            "kora_script_calls_total",
            "counter",
            "Script runs (EVAL, EVALSHA and their _RO forms).",
            m.script_calls.to_string(),
        ),
        (
            "kora_script_errors_total",
            "counter",
            "Script runs answered with an error.",
            m.script_errors.to_string(),
        ),
        (
            "kora_script_duration_seconds_total",
            "counter",
            "Time spent running scripts, in seconds.",
            format!("{}", m.script_nanos as f64 / 1e9),
        ),
        (
            "kora_scripts_cached",
            "gauge",
            "Scripts in the script cache (every core caches every script).",
            m.scripts_cached.to_string(),
        ),
        (
            "kora_lua_memory_bytes",
            "gauge",
            "Bytes used by the Lua states of all cores.",
            m.lua_memory_bytes.to_string(),
        ),
    ];
    for (name, kind, help, value) in scripting {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }

    // Access control (src/command/auth.rs).
    let security: [(&str, &str, u64); 3] = [
        (
            "kora_auth_failures_total",
            "AUTH and HELLO AUTH attempts with a wrong user or password.",
            m.auth_failures,
        ),
        (
            "kora_security_attacks_total",
            "Connections closed for sending POST or Host: to the RESP port (cross-protocol scripting).",
            m.security_attacks,
        ),
        (
            "kora_protected_mode_denied_total",
            "Connections from non-loopback addresses refused by protected mode.",
            m.protected_mode_denied,
        ),
    ];
    for (name, help, value) in security {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    family(
        &mut out,
        "kora_shard_up",
        "gauge",
        "1 if the shard answered the last scrape in time, else 0.",
    );
    for (i, up) in view.up.iter().enumerate() {
        let _ = writeln!(out, "kora_shard_up{{shard=\"{i}\"}} {}", *up as u8);
    }
    type PerShard = fn(&ShardSnapshot) -> u64;
    let per_shard: [(&str, &str, &str, PerShard); 6] = [
        ("kora_shard_keys", "gauge", "Keys held by the shard.", |s| {
            s.keys
        }),
        (
            "kora_shard_memory_used_bytes",
            "gauge",
            "Bytes allocated by the shard's core (its jemalloc arena): what its eviction budget counts.",
            |s| s.memory_bytes,
        ),
        (
            "kora_shard_memory_dataset_bytes",
            "gauge",
            "Estimated bytes of the shard's keys, values and per-key metadata.",
            |s| s.dataset_bytes,
        ),
        (
            "kora_shard_maxmemory_bytes",
            "gauge",
            "The shard's share of maxmemory (0 = no limit).",
            |s| s.maxmemory_bytes,
        ),
        (
            "kora_shard_evicted_keys_total",
            "counter",
            "Keys the shard evicted to stay under its share of maxmemory.",
            |s| s.evicted_keys,
        ),
        (
            "kora_shard_commands_total",
            "counter",
            "Commands received by connections on the shard's core.",
            |s| s.total_calls(),
        ),
    ];
    for (name, kind, help, get) in per_shard {
        family(&mut out, name, kind, help);
        for snap in view.shards.iter().flatten() {
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", snap.shard, get(snap));
        }
    }

    family(
        &mut out,
        "kora_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(out, "kora_uptime_seconds {:.3}", view.uptime_seconds);
    family(
        &mut out,
        "kora_start_time_seconds",
        "gauge",
        "Start time of the server since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "kora_start_time_seconds {:.3}",
        view.start_time_seconds
    );
    family(
        &mut out,
        "kora_build_info",
        "gauge",
        "Build information; the value is always 1.",
    );
    let _ = writeln!(
        out,
        "kora_build_info{{version=\"{KORA_VERSION}\",redis_version=\"{REDIS_VERSION}\",shards=\"{}\"}} 1",
        view.shards.len()
    );
    out
}
