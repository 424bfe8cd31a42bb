//! The merged, read-only picture every consumer shares: `/metrics`, INFO
//! and LATENCY HISTOGRAM all render from one `MetricsView` built by the
//! collector, so they can never disagree.

use hdrhistogram::Histogram;

use super::ShardSnapshot;
use super::histogram::{HIGHEST_NS, LatencyTotals};
use super::slots::{NUM_SLOTS, Slot};

/// Upper bounds (seconds) of the `le` buckets of
/// `kora_command_duration_seconds`.
pub const LE_BOUNDS_SECONDS: [f64; 20] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Percentiles reported by INFO latencystats and friends.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Cumulative counts of `h` at each bound (ns): the number of recorded
/// values whose HDR bucket starts at or below the bound. One pass over the
/// histogram's buckets, whatever the number of bounds.
pub fn cumulative_counts(h: &Histogram<u64>, bounds_ns: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut total = 0;
    let mut next_low = 0;
    bounds_ns
        .into_iter()
        .map(|bound| {
            if next_low <= bound {
                total += h.count_between(next_low, bound);
                next_low = h.next_non_equivalent(bound);
            }
            total
        })
        .collect()
}

/// Real cumulative counts under each `le` bound, never percentile values.
pub fn cumulative_buckets(h: &Histogram<u64>) -> Vec<u64> {
    cumulative_counts(h, LE_BOUNDS_SECONDS.map(|s| (s * 1e9).round() as u64))
}

/// Redis 7 LATENCY HISTOGRAM buckets: power-of-two microsecond bounds with
/// cumulative counts, listing only bounds where the count grows.
pub fn power_of_two_buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    let bounds_us: Vec<u64> = (0..)
        .map(|k| 1u64 << k)
        .take_while(|us| us * 1000 <= HIGHEST_NS * 2)
        .collect();
    let counts = cumulative_counts(h, bounds_us.iter().map(|us| us * 1000));
    let mut last = 0;
    let mut out = Vec::new();
    for (us, count) in bounds_us.into_iter().zip(counts) {
        if count > last {
            out.push((us, count));
            last = count;
        }
        if count == h.len() {
            break;
        }
    }
    out
}

/// One command slot's latency, precomputed from the merged totals.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotLatency {
    pub slot: Slot,
    pub count: u64,
    /// Values at `QUANTILES`, in ns.
    pub quantiles_ns: [u64; 4],
    pub le_cumulative: Vec<u64>,
    pub power_of_two_us: Vec<(u64, u64)>,
}

impl SlotLatency {
    pub fn from_histogram(slot: Slot, h: &Histogram<u64>) -> SlotLatency {
        SlotLatency {
            slot,
            count: h.len(),
            quantiles_ns: QUANTILES.map(|q| h.value_at_quantile(q)),
            le_cumulative: cumulative_buckets(h),
            power_of_two_us: power_of_two_buckets(h),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct MetricsView {
    /// Last known counters of each shard (interval histograms removed);
    /// None for a shard that has never answered.
    pub shards: Vec<Option<ShardSnapshot>>,
    /// Whether each shard answered this round in time.
    pub up: Vec<bool>,
    pub merged: ShardSnapshot,
    pub latency: Vec<SlotLatency>,
    pub uptime_seconds: f64,
    pub start_time_seconds: f64,
    /// The largest allocated bytes seen at a collection round.
    pub peak_memory_bytes: u64,
    /// Process-wide allocator figures at this round (src/alloc.rs).
    pub allocator: crate::alloc::ProcessMemory,
    /// Whether the server runs in cluster mode (`kora_cluster_enabled`);
    /// the cluster figures themselves are in `merged.cluster`.
    pub cluster_enabled: bool,
}

impl MetricsView {
    pub fn build(
        shards: Vec<Option<ShardSnapshot>>,
        up: Vec<bool>,
        totals: &LatencyTotals,
    ) -> MetricsView {
        let merged = ShardSnapshot::merged(&shards.iter().flatten().cloned().collect::<Vec<_>>());
        MetricsView {
            shards,
            up,
            merged,
            latency: Self::latency_of(totals),
            uptime_seconds: 0.0,
            start_time_seconds: 0.0,
            peak_memory_bytes: 0,
            allocator: Default::default(),
            cluster_enabled: false,
        }
    }

    /// Per-slot latency summaries of `totals`.
    pub fn latency_of(totals: &LatencyTotals) -> Vec<SlotLatency> {
        (0..NUM_SLOTS as Slot)
            .filter_map(|slot| {
                totals
                    .get(slot as usize)
                    .map(|h| SlotLatency::from_histogram(slot, h))
            })
            .collect()
    }

    pub fn latency(&self, slot: usize) -> Option<&SlotLatency> {
        self.latency.iter().find(|l| l.slot as usize == slot)
    }
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

    #[test]
    fn cumulative_counts_agree_with_a_brute_force_count() {
        let mut h = new_histogram();
        let values: Vec<u64> = (0..20_000u64).map(|i| 1 + (i * 7919) % 3_000_000).collect();
        for &v in &values {
            h.record(v).unwrap();
        }
        let bounds: Vec<u64> = (0..40).map(|k| 1000 + k * 75_000).collect();
        let got = cumulative_counts(&h, bounds.iter().copied());
        for (bound, count) in bounds.iter().zip(got) {
            // Within HDR resolution: everything truly <= bound is counted,
            // and nothing beyond the bound's own bucket.
            let exact = values.iter().filter(|&&v| v <= *bound).count() as u64;
            let upper = values
                .iter()
                .filter(|&&v| v <= h.highest_equivalent(*bound))
                .count() as u64;
            assert!(
                count >= exact && count <= upper,
                "bound {bound}: {count} not in {exact}..={upper}"
            );
        }
    }

    #[test]
    fn power_of_two_buckets_end_at_the_total() {
        let mut h = new_histogram();
        h.record_n(1_500, 10).unwrap();
        h.record_n(3_000, 5).unwrap();
        h.record_n(100_000, 1).unwrap();
        assert_eq!(power_of_two_buckets(&h), vec![(2, 10), (4, 15), (128, 16)]);
    }
}
