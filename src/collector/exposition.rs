//! Prometheus text exposition (format 0.0.4) of merged shard snapshots.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::command::{NUM_SLOTS, SLOT_NAMES};
use crate::metrics::ShardSnapshot;

/// Upper bounds (seconds) of the `le` buckets of
/// `kora_command_duration_seconds`. The counts under them are real
/// cumulative counts taken from the merged HDR histogram.
pub const LE_BOUNDS_SECONDS: [f64; 20] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Cumulative counts at each bound of `LE_BOUNDS_SECONDS`. A recorded
/// value counts under a bound when its HDR bucket lies wholly at or below
/// it, so a count is never attributed to a bound it may exceed.
pub fn cumulative_buckets(h: &Histogram<u64>) -> [u64; LE_BOUNDS_SECONDS.len()] {
    let bounds_ns = LE_BOUNDS_SECONDS.map(|s| (s * 1e9).round() as u64);
    let mut per_bucket = [0u64; LE_BOUNDS_SECONDS.len()];
    for v in h.iter_recorded() {
        let top = h.highest_equivalent(v.value_iterated_to());
        let idx = bounds_ns.partition_point(|&b| b < top);
        if idx < per_bucket.len() {
            per_bucket[idx] += v.count_at_value();
        }
    }
    let mut running = 0;
    per_bucket.map(|c| {
        running += c;
        running
    })
}

/// Everything the collector knows at scrape time.
pub struct Scrape<'a> {
    /// One entry per shard; None when the shard did not answer in time.
    pub shards: &'a [Option<ShardSnapshot>],
    pub merged: &'a ShardSnapshot,
    pub uptime_seconds: f64,
    pub start_time_seconds: f64,
    pub version: &'a str,
    pub redis_version: &'a str,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub fn render(s: &Scrape) -> String {
    let m = s.merged;
    let mut out = String::with_capacity(16 * 1024);
    let used: Vec<usize> = (0..NUM_SLOTS).filter(|&i| m.calls[i] > 0).collect();

    family(&mut out, "kora_commands_total", "counter", "Commands processed, by command.");
    for &slot in &used {
        let _ = writeln!(out, "kora_commands_total{{cmd=\"{}\"}} {}", SLOT_NAMES[slot], m.calls[slot]);
    }

    family(&mut out, "kora_command_failed_total", "counter", "Commands answered with an error, by command.");
    for &slot in &used {
        let _ = writeln!(out, "kora_command_failed_total{{cmd=\"{}\"}} {}", SLOT_NAMES[slot], m.failed[slot]);
    }

    family(
        &mut out,
        "kora_command_duration_seconds",
        "histogram",
        "Command latency from dispatch to reply ready on the client's core, by command.",
    );
    for (slot, h) in &m.histograms {
        let name = SLOT_NAMES[*slot as usize];
        let counts = cumulative_buckets(h);
        for (bound, count) in LE_BOUNDS_SECONDS.iter().zip(counts) {
            let _ = writeln!(out, "kora_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "kora_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"+Inf\"}} {}", h.len());
        let _ = writeln!(out, "kora_command_duration_seconds_sum{{cmd=\"{name}\"}} {}", seconds(m.nanos[*slot as usize]));
        let _ = writeln!(out, "kora_command_duration_seconds_count{{cmd=\"{name}\"}} {}", h.len());
    }

    let gauges: [(&str, &str, u64); 3] = [
        ("kora_keys_total", "Current key count across all shards.", m.keys),
        ("kora_memory_used_bytes", "Approximate memory used by keys, values and metadata.", m.memory_bytes),
        ("kora_connected_clients", "Client connections currently open.", m.connections_current),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters: [(&str, &str, u64); 7] = [
        ("kora_bytes_in_total", "Bytes received from clients.", m.bytes_in),
        ("kora_bytes_out_total", "Bytes sent to clients.", m.bytes_out),
        ("kora_connections_received_total", "Client connections accepted.", m.connections_accepted),
        ("kora_keyspace_hits_total", "Key lookups that found a key.", m.keyspace_hits),
        ("kora_keyspace_misses_total", "Key lookups that found no key.", m.keyspace_misses),
        ("kora_expired_keys_total", "Keys removed because their TTL passed.", m.expired_keys),
        ("kora_evicted_keys_total", "Keys evicted to stay under a memory limit.", m.evicted_keys),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    family(&mut out, "kora_shard_up", "gauge", "1 if the shard answered the last scrape in time, else 0.");
    for (i, snap) in s.shards.iter().enumerate() {
        let _ = writeln!(out, "kora_shard_up{{shard=\"{i}\"}} {}", snap.is_some() as u8);
    }
    type PerShard = fn(&ShardSnapshot) -> u64;
    let per_shard: [(&str, &str, &str, PerShard); 3] = [
        ("kora_shard_keys", "gauge", "Keys held by the shard.", |s| s.keys),
        ("kora_shard_memory_used_bytes", "gauge", "Approximate memory used by the shard's keyspace.", |s| s.memory_bytes),
        ("kora_shard_commands_total", "counter", "Commands received by connections on the shard's core.", |s| {
            s.total_calls()
        }),
    ];
    for (name, kind, help, get) in per_shard {
        family(&mut out, name, kind, help);
        for snap in s.shards.iter().flatten() {
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", snap.shard, get(snap));
        }
    }

    family(&mut out, "kora_uptime_seconds", "gauge", "Seconds since the server started.");
    let _ = writeln!(out, "kora_uptime_seconds {:.3}", s.uptime_seconds);
    family(&mut out, "kora_start_time_seconds", "gauge", "Start time of the server since unix epoch in seconds.");
    let _ = writeln!(out, "kora_start_time_seconds {:.3}", s.start_time_seconds);
    family(&mut out, "kora_build_info", "gauge", "Build information; the value is always 1.");
    let _ = writeln!(
        out,
        "kora_build_info{{version=\"{}\",redis_version=\"{}\",shards=\"{}\"}} 1",
        s.version,
        s.redis_version,
        s.shards.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::new_histogram;

    #[test]
    fn buckets_are_cumulative_counts_not_percentiles() {
        let mut h = new_histogram();
        // 100 values at 3 µs, 50 at 40 µs, 10 at 2 ms, 1 at 20 s.
        h.record_n(3_000, 100).unwrap();
        h.record_n(40_000, 50).unwrap();
        h.record_n(2_000_000, 10).unwrap();
        h.record_n(20_000_000_000, 1).unwrap();
        let c = cumulative_buckets(&h);
        let at = |secs: f64| c[LE_BOUNDS_SECONDS.iter().position(|&b| b == secs).unwrap()];
        assert_eq!(at(0.000_005), 100);
        assert_eq!(at(0.000_025), 100);
        assert_eq!(at(0.000_05), 150);
        assert_eq!(at(0.001), 150);
        assert_eq!(at(0.002_5), 160);
        assert_eq!(at(10.0), 160);
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(h.len(), 161);
    }
}
