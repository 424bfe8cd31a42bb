//! A shard's measurements as a plain value: built on the shard in
//! O(histograms) (never O(keys)), sent over the mesh, merged elsewhere.

use hdrhistogram::Histogram;

use super::{ShardMetrics, histogram::new_histogram};
use crate::command::NUM_SLOTS;
use crate::store::Db;

#[derive(Clone, Debug, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub calls: [u64; NUM_SLOTS],
    pub nanos: [u64; NUM_SLOTS],
    pub failed: [u64; NUM_SLOTS],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_accepted: u64,
    pub connections_current: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl_ms: u64,
    /// Commands per second over the last couple of seconds.
    pub ops_per_sec: u64,
    pub memory_bytes: u64,
    /// Non-empty latency histograms by command slot (nanoseconds).
    pub histograms: Vec<(u8, Histogram<u64>)>,
    /// Hot-key candidates with their estimates, highest first.
    pub hotkeys: Vec<(Vec<u8>, u64)>,
}

impl ShardSnapshot {
    pub fn take(shard: usize, metrics: &ShardMetrics, db: &mut Db) -> ShardSnapshot {
        let s = &metrics.stats;
        let read = |c: &[super::Counter; NUM_SLOTS]| std::array::from_fn(|i| c[i].get());
        ShardSnapshot {
            shard,
            calls: read(&s.cmd_calls),
            nanos: read(&s.cmd_nanos),
            failed: read(&s.cmd_failed),
            bytes_in: s.bytes_in.get(),
            bytes_out: s.bytes_out.get(),
            connections_accepted: s.connections_accepted.get(),
            connections_current: s.connections_current.get(),
            keyspace_hits: s.keyspace_hits.get(),
            keyspace_misses: s.keyspace_misses.get(),
            expired_keys: s.expired_keys.get(),
            evicted_keys: s.evicted_keys.get(),
            keys: db.len() as u64,
            expires: db.expires_count() as u64,
            avg_ttl_ms: db.avg_ttl_sample(),
            ops_per_sec: metrics.ops_rate.rate(),
            memory_bytes: db.mem_used() as u64,
            histograms: metrics.histograms.export(),
            hotkeys: db.hot.top(),
        }
    }

    /// Adds `other` into `self`: counters sum, histograms add bucket by
    /// bucket, hot-key candidates are pooled (a key lives on one shard, so
    /// no key appears twice).
    pub fn merge(&mut self, other: &ShardSnapshot) {
        for i in 0..NUM_SLOTS {
            self.calls[i] += other.calls[i];
            self.nanos[i] += other.nanos[i];
            self.failed[i] += other.failed[i];
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.connections_accepted += other.connections_accepted;
        self.connections_current += other.connections_current;
        self.keyspace_hits += other.keyspace_hits;
        self.keyspace_misses += other.keyspace_misses;
        self.expired_keys += other.expired_keys;
        self.evicted_keys += other.evicted_keys;
        let total_expires = self.expires + other.expires;
        if let Some(avg) = (self.avg_ttl_ms * self.expires + other.avg_ttl_ms * other.expires).checked_div(total_expires) {
            self.avg_ttl_ms = avg;
        }
        self.ops_per_sec += other.ops_per_sec;
        self.keys += other.keys;
        self.expires = total_expires;
        self.memory_bytes += other.memory_bytes;
        for (slot, h) in &other.histograms {
            match self.histograms.iter_mut().find(|(s, _)| s == slot) {
                Some((_, mine)) => mine.add(h).expect("histograms share bounds"),
                None => {
                    let mut mine = new_histogram();
                    mine.add(h).expect("histograms share bounds");
                    self.histograms.push((*slot, mine));
                }
            }
        }
        self.histograms.sort_by_key(|(slot, _)| *slot);
        self.hotkeys.extend(other.hotkeys.iter().cloned());
        self.hotkeys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }

    pub fn merged(snapshots: &[ShardSnapshot]) -> ShardSnapshot {
        let mut total = ShardSnapshot::default();
        for s in snapshots {
            total.merge(s);
        }
        total
    }

    pub fn histogram(&self, slot: usize) -> Option<&Histogram<u64>> {
        self.histograms.iter().find(|(s, _)| *s as usize == slot).map(|(_, h)| h)
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_snapshots_equals_one_histogram() {
        let mut a = ShardSnapshot::default();
        let mut b = ShardSnapshot::default();
        let mut all = new_histogram();
        let mut ha = new_histogram();
        let mut hb = new_histogram();
        for i in 0..10_000u64 {
            let v = 1_000 + (i * 7919) % 5_000_000;
            all.record(v).unwrap();
            if i % 3 == 0 { ha.record(v).unwrap() } else { hb.record(v).unwrap() }
        }
        a.histograms.push((0, ha));
        b.histograms.push((0, hb));
        a.calls[0] = 10;
        b.calls[0] = 5;
        let merged = ShardSnapshot::merged(&[a, b]);
        let h = merged.histogram(0).unwrap();
        assert_eq!(h.len(), all.len());
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(h.value_at_quantile(q), all.value_at_quantile(q));
        }
        assert_eq!(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>(),
            all.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>());
        assert_eq!(merged.calls[0], 15);
    }
}
