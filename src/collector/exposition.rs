//! Prometheus text exposition (format 0.0.4) of merged shard snapshots
//! and the allocator's process-wide figures.

use std::fmt::Write as _;

use crate::command::server::{KORA_VERSION, REDIS_VERSION};
use crate::command::table::{HOT_NAMES, NUM_SLOTS, SLOT_OTHER, lookup, slot_name};
use crate::metrics::ShardSnapshot;
use crate::metrics::counters::REDIRECT_KINDS;
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
    let scripting: [(&str, &str, &str, String); 6] = [
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
            "kora_scripts_evicted_total",
            "counter",
            "EVAL scripts dropped from the script cache for lua-eval-cache-limit (the core that dropped most).",
            m.scripts_evicted.to_string(),
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

    // Pub/Sub (issue 14): per shard, the names with a subscriber on that
    // core (INFO pubsub_channels counts a name subscribed on several cores
    // once); server-wide, messages published and delivered.
    let pubsub_gauges: [(&str, &str, usize); 3] = [
        (
            "kora_shard_pubsub_channels",
            "Pub/Sub channels with a subscriber on the shard's core.",
            0,
        ),
        (
            "kora_shard_pubsub_patterns",
            "Pub/Sub patterns with a subscriber on the shard's core.",
            1,
        ),
        (
            "kora_shard_pubsub_shard_channels",
            "Shard channels (SSUBSCRIBE) with a subscriber on the shard's core.",
            2,
        ),
    ];
    for (name, help, i) in pubsub_gauges {
        family(&mut out, name, "gauge", help);
        for snap in view.shards.iter().flatten() {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\"}} {}",
                snap.shard, snap.pubsub_names[i]
            );
        }
    }
    let pubsub_distinct: [(&str, &str, u64); 3] = [
        (
            "kora_pubsub_channels",
            "Pub/Sub channels with at least one subscriber (each counted once over all cores).",
            m.pubsub_distinct[0],
        ),
        (
            "kora_pubsub_patterns",
            "Pub/Sub patterns with at least one subscriber (each counted once over all cores).",
            m.pubsub_distinct[1],
        ),
        (
            "kora_pubsub_shard_channels",
            "Shard channels (SSUBSCRIBE) with at least one subscriber (each counted once).",
            m.pubsub_distinct[2],
        ),
    ];
    for (name, help, value) in pubsub_distinct {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let pubsub_counters: [(&str, &str, u64); 2] = [
        (
            "kora_pubsub_messages_published_total",
            "PUBLISH and SPUBLISH commands run.",
            m.pubsub_published,
        ),
        (
            "kora_pubsub_messages_delivered_total",
            "Pub/Sub messages queued for subscribers (one per receiver, pattern matches included).",
            m.pubsub_delivered,
        ),
    ];
    for (name, help, value) in pubsub_counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    render_cluster(&mut out, view);

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

/// A label value with `\\`, `"` and newlines escaped, as the text format
/// requires (an announced host name is free text).
fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Cluster mode (issue 16): `kora_cluster_enabled` always; the rest only
/// in cluster mode, where they mean something (a standalone server would
/// otherwise report a failed cluster). `kora_cluster_node_info` is an
/// info metric: its labels join any series of this instance to its node
/// id (`* on(instance) group_left(node_id) kora_cluster_node_info`).
/// No per-slot series: 16384 of them would outweigh everything else.
fn render_cluster(out: &mut String, view: &MetricsView) {
    family(
        out,
        "kora_cluster_enabled",
        "gauge",
        "1 if the server runs in cluster mode (cluster-enabled yes), else 0.",
    );
    let _ = writeln!(out, "kora_cluster_enabled {}", view.cluster_enabled as u8);
    if !view.cluster_enabled {
        return;
    }
    // Counted by every shard, known from the start: always exported.
    family(
        out,
        "kora_cluster_redirections_total",
        "counter",
        "Keyed commands answered with a redirection or refusal instead of running, by type: moved, ask, crossslot, tryagain, down (CLUSTERDOWN).",
    );
    for (kind, n) in REDIRECT_KINDS.iter().zip(view.merged.cluster_redirects) {
        let _ = writeln!(
            out,
            "kora_cluster_redirections_total{{type=\"{kind}\"}} {n}"
        );
    }
    // Shard 0's picture; absent only until it has answered once.
    let Some(c) = &view.merged.cluster else {
        return;
    };
    family(
        out,
        "kora_cluster_node_info",
        "gauge",
        "This node's cluster identity (CLUSTER MYID and its announced address); the value is always 1.",
    );
    let _ = writeln!(
        out,
        "kora_cluster_node_info{{node_id=\"{}\",address=\"{}\"}} 1",
        label_value(&c.node_id),
        label_value(&c.address)
    );
    let gauges: [(&str, &str, u64); 7] = [
        (
            "kora_cluster_state",
            "1 if this node sees the cluster as ok (CLUSTER INFO cluster_state:ok), 0 if fail.",
            c.state_ok as u64,
        ),
        (
            "kora_cluster_slots_assigned",
            "Hash slots with an owner in this node's topology (of 16384).",
            c.slots_assigned,
        ),
        (
            "kora_cluster_slots_ok",
            "Hash slots whose owner is not marked fail.",
            c.slots_ok,
        ),
        (
            "kora_cluster_slots_owned",
            "Hash slots this node serves.",
            c.slots_owned,
        ),
        (
            "kora_cluster_known_nodes",
            "Nodes in this node's topology, itself included.",
            c.known_nodes,
        ),
        (
            "kora_cluster_epoch",
            "Epoch of this node's topology (CLUSTER INFO cluster_current_epoch).",
            c.epoch,
        ),
        (
            "kora_cluster_nodes_failed",
            "Peers this node marks fail (no answer to PING for cluster-node-timeout).",
            c.nodes_failed,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::ClusterFigures;

    fn cluster_lines(view: &MetricsView) -> Vec<String> {
        let mut out = String::new();
        render_cluster(&mut out, view);
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn cluster_families_only_in_cluster_mode() {
        let mut view = MetricsView::default();
        assert_eq!(cluster_lines(&view), vec!["kora_cluster_enabled 0"]);
        view.cluster_enabled = true;
        view.merged.cluster_redirects = [3, 0, 1, 0, 2];
        // Before shard 0 has answered: the counters, not a made-up state.
        let lines = cluster_lines(&view);
        assert_eq!(lines.len(), 6);
        assert!(lines.contains(&"kora_cluster_redirections_total{type=\"moved\"} 3".into()));
        assert!(lines.contains(&"kora_cluster_redirections_total{type=\"down\"} 2".into()));
        view.merged.cluster = Some(ClusterFigures {
            node_id: "ab".repeat(20),
            address: "h\"x\\:1".into(),
            state_ok: true,
            slots_assigned: 16384,
            slots_ok: 16000,
            slots_owned: 5461,
            known_nodes: 3,
            epoch: 7,
            nodes_failed: 1,
        });
        let lines = cluster_lines(&view);
        let node_info = format!(
            "kora_cluster_node_info{{node_id=\"{}\",address=\"h\\\"x\\\\:1\"}} 1",
            "ab".repeat(20)
        );
        for want in [
            node_info.as_str(),
            "kora_cluster_state 1",
            "kora_cluster_slots_assigned 16384",
            "kora_cluster_slots_ok 16000",
            "kora_cluster_slots_owned 5461",
            "kora_cluster_known_nodes 3",
            "kora_cluster_epoch 7",
            "kora_cluster_nodes_failed 1",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} not in {lines:?}");
        }
    }
}
