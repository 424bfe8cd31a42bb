//! Per-shard, per-command-slot HDR latency histograms.
//!
//! A shard records into its own histograms and never copies them: a
//! snapshot hands over the filled histograms of the interval since the last
//! one (an O(1) move per slot) and puts empty spares in their place. The
//! collector adds them into its running totals, clears them and sends them
//! back as spares, so the zeroing and merging happen on the collector's
//! core, not on the data path.

use std::cell::RefCell;

use hdrhistogram::Histogram;

use super::slots::{NUM_SLOTS, Slot};

/// Values are nanoseconds, kept to 3 significant digits from 1 ns up, so
/// microsecond-scale commands keep their precision.
pub const LOWEST_NS: u64 = 1;
/// Anything slower than a minute is clamped to a minute.
pub const HIGHEST_NS: u64 = 60_000_000_000;
pub const SIGFIG: u8 = 3;

pub type LatencyHistogram = Box<Histogram<u64>>;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant bounds are valid")
}

/// What a shard's interval histogram covers when it is created: up to
/// ~65 µs, ~57 KiB instead of ~220 KiB for the full minute. Every command
/// and subcommand has a slot now, so a shard may hold a histogram for
/// each command it has seen, and these live in the shard's memory budget.
/// A slower value grows the histogram (auto-resize, up to `HIGHEST_NS`,
/// kept when the histogram is reused as a spare), so nothing is clamped.
pub const SHARD_INITIAL_HIGHEST_NS: u64 = 1 << 16;

fn new_shard_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(LOWEST_NS, SHARD_INITIAL_HIGHEST_NS, SIGFIG)
        .expect("constant bounds are valid");
    h.auto(true);
    h
}

pub struct CommandHistograms {
    /// Latencies recorded since the last hand-over, allocated (or taken
    /// from `spares`) the first time a slot records.
    current: RefCell<[Option<LatencyHistogram>; NUM_SLOTS]>,
    spares: RefCell<Vec<LatencyHistogram>>,
}

impl Default for CommandHistograms {
    fn default() -> Self {
        CommandHistograms {
            current: RefCell::new(std::array::from_fn(|_| None)),
            spares: RefCell::default(),
        }
    }
}

impl CommandHistograms {
    #[inline]
    pub fn record(&self, slot: usize, nanos: u64) {
        let mut current = self.current.borrow_mut();
        let h = current[slot].get_or_insert_with(|| {
            self.spares
                .borrow_mut()
                .pop()
                .unwrap_or_else(|| Box::new(new_shard_histogram()))
        });
        let nanos = nanos.clamp(LOWEST_NS, HIGHEST_NS);
        // `record` grows the histogram past its current top (auto-resize);
        // only if that allocation failed is the value clamped.
        if h.record(nanos).is_err() {
            h.saturating_record(nanos);
        }
    }

    /// Hands over this interval's non-empty histograms.
    pub fn take_interval(&self) -> Vec<(Slot, LatencyHistogram)> {
        let mut current = self.current.borrow_mut();
        current
            .iter_mut()
            .enumerate()
            .filter(|(_, h)| h.as_ref().is_some_and(|h| !h.is_empty()))
            .filter_map(|(slot, h)| h.take().map(|h| (slot as Slot, h)))
            .collect()
    }

    /// Takes back cleared histograms for reuse.
    pub fn return_spares(&self, spares: Vec<LatencyHistogram>) {
        let mut pool = self.spares.borrow_mut();
        // Keep at most one spare per slot; the rest are freed.
        let room = NUM_SLOTS.saturating_sub(pool.len());
        pool.extend(spares.into_iter().take(room));
    }
}

/// The running, process-lifetime latency totals per slot, kept by the
/// collector. Counts only grow.
#[derive(Default)]
pub struct LatencyTotals {
    slots: Vec<Option<Histogram<u64>>>,
}

impl LatencyTotals {
    /// Adds one shard's interval histograms and returns them cleared, ready
    /// to go back to that shard.
    pub fn absorb(&mut self, interval: Vec<(Slot, LatencyHistogram)>) -> Vec<LatencyHistogram> {
        self.add(&interval);
        interval
            .into_iter()
            .map(|(_, mut h)| {
                h.reset();
                h
            })
            .collect()
    }

    /// Adds interval histograms without taking them.
    pub fn add(&mut self, interval: &[(Slot, LatencyHistogram)]) {
        if self.slots.is_empty() {
            self.slots = (0..NUM_SLOTS).map(|_| None).collect();
        }
        for (slot, h) in interval {
            let total = self.slots[*slot as usize].get_or_insert_with(new_histogram);
            total.add(&**h).expect("histograms share bounds");
        }
    }

    pub fn get(&self, slot: usize) -> Option<&Histogram<u64>> {
        self.slots
            .get(slot)
            .and_then(Option::as_ref)
            .filter(|h| !h.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_handover_loses_nothing_and_merges_exactly() {
        let shard_a = CommandHistograms::default();
        let shard_b = CommandHistograms::default();
        let mut reference = new_histogram();
        let mut totals = LatencyTotals::default();
        for round in 0..3u64 {
            for i in 0..5_000u64 {
                let v = 1 + (i * 7919 + round * 13) % 5_000_000;
                reference.record(v).unwrap();
                if i % 3 == 0 {
                    shard_a.record(4, v)
                } else {
                    shard_b.record(4, v)
                }
            }
            for shard in [&shard_a, &shard_b] {
                let spares = totals.absorb(shard.take_interval());
                assert!(spares.iter().all(|h| h.is_empty()));
                shard.return_spares(spares);
            }
        }
        // Slow values grew the shard histograms instead of being clamped.
        shard_a.record(6, 30_000_000_000);
        totals.absorb(shard_a.take_interval());
        let slow = totals.get(6).unwrap().max();
        assert!(slow >= 29_900_000_000, "{slow}");
        let merged = totals.get(4).unwrap();
        assert_eq!(merged.len(), reference.len());
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.value_at_quantile(q), reference.value_at_quantile(q));
        }
        let buckets = |h: &Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(buckets(merged), buckets(&reference));
        assert!(totals.get(5).is_none());
    }
}
