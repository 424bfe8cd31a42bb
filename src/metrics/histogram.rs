//! Per-shard, per-command-slot HDR latency histograms.
//!
//! A shard records into its own histograms and never copies them: a
//! snapshot hands over the filled histograms of the interval since the last
//! one (an O(1) move per slot) and puts empty spares in their place. The
//! collector adds them into its running totals, clears them and sends them
//! back as spares, so the zeroing and merging happen on the collector's
//! core, not on the data path.
//!
//! The shard side is Kora's own [`IntervalHistogram`]: hdrhistogram's
//! bucket layout for [`LOWEST_NS`] and [`SIGFIG`], counted in a plain array.
//! `hdrhistogram::Histogram::record` also bounds-checks, saturates, and
//! keeps min, max and total up to date on every call (~60 instructions,
//! the largest part of a command's instrumentation); recording here is an
//! index computation and an increment. The collector adds each non-empty
//! bucket into an `hdrhistogram::Histogram` with the same bounds, where it
//! lands in the same bucket, so the totals, quantiles and exposition are
//! exactly what recording into `hdrhistogram` directly would give.

use std::cell::RefCell;

use hdrhistogram::Histogram;

use super::slots::{NUM_SLOTS, Slot};

/// Values are nanoseconds, kept to 3 significant digits from 1 ns up, so
/// microsecond-scale commands keep their precision.
pub const LOWEST_NS: u64 = 1;
/// Anything slower than a minute is clamped to a minute.
pub const HIGHEST_NS: u64 = 60_000_000_000;
pub const SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant bounds are valid")
}

/// hdrhistogram's layout for `LOWEST_NS` = 1 and `SIGFIG` = 3: 2048
/// sub-buckets (the smallest power of two ≥ 2 × 10³), the upper half of
/// each bucket after the first in use, unit magnitude 0.
const SUB_BUCKET_COUNT_MAGNITUDE: u32 = 11;
const SUB_BUCKET_HALF_MAGNITUDE: u32 = SUB_BUCKET_COUNT_MAGNITUDE - 1;
const SUB_BUCKET_HALF_COUNT: usize = 1 << SUB_BUCKET_HALF_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (1 << SUB_BUCKET_COUNT_MAGNITUDE) - 1;
const LEADING_ZERO_BASE: u32 = 64 - SUB_BUCKET_COUNT_MAGNITUDE;
// The constants above are derived for these bounds only.
const _: () = assert!(LOWEST_NS == 1 && SIGFIG == 3);

/// The counts index of `value` (hdrhistogram's `index_for`).
#[inline]
fn index_of(value: u64) -> usize {
    let bucket = LEADING_ZERO_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub_bucket = (value >> bucket) as usize;
    ((bucket as usize + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub_bucket - SUB_BUCKET_HALF_COUNT
}

/// The lowest value counted at `index` (hdrhistogram's `value_for`).
fn value_at(index: usize) -> u64 {
    let bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE) as u32;
    let sub_bucket = (index & (SUB_BUCKET_HALF_COUNT - 1)) as u64;
    match bucket {
        0 => sub_bucket,
        _ => (sub_bucket + SUB_BUCKET_HALF_COUNT as u64) << (bucket - 1),
    }
}

/// What a shard's interval histogram covers when it is created: up to
/// ~65 µs, ~56 KiB instead of ~220 KiB for the full minute. Every command
/// and subcommand has a slot now, so a shard may hold a histogram for
/// each command it has seen, and these live in the shard's memory budget.
/// A slower value grows the histogram (up to `HIGHEST_NS`, kept when the
/// histogram is reused as a spare), so nothing is clamped below a minute.
pub const SHARD_INITIAL_HIGHEST_NS: u64 = 1 << 16;

/// One shard's latencies of one command slot over one interval, in
/// hdrhistogram's buckets (see the module docs).
#[derive(Debug, Clone)]
pub struct IntervalHistogram {
    counts: Vec<u64>,
    recorded: u64,
}

impl Default for IntervalHistogram {
    fn default() -> Self {
        IntervalHistogram {
            counts: vec![0; index_of(SHARD_INITIAL_HIGHEST_NS - 1) + 1],
            recorded: 0,
        }
    }
}

impl IntervalHistogram {
    /// Counts one latency; values outside `LOWEST_NS..=HIGHEST_NS` are
    /// clamped, as `hdrhistogram` would.
    #[inline]
    pub fn record(&mut self, nanos: u64) {
        // A value over `HIGHEST_NS` is past the array (see
        // `grow_and_record`), so it is clamped there.
        match self.counts.get_mut(index_of(nanos.max(LOWEST_NS))) {
            Some(count) => *count += 1,
            None => self.grow_and_record(nanos),
        }
        self.recorded += 1;
    }

    /// A value past the array: clamp it, grow to the end of its bucket
    /// but never past `HIGHEST_NS`'s index, so that any larger value is
    /// past the array and comes here to be clamped.
    #[cold]
    fn grow_and_record(&mut self, nanos: u64) {
        let index = index_of(nanos.min(HIGHEST_NS));
        let bucket_end = ((index >> SUB_BUCKET_HALF_MAGNITUDE) + 1) << SUB_BUCKET_HALF_MAGNITUDE;
        let end = bucket_end.min(index_of(HIGHEST_NS) + 1);
        self.counts.resize(end, 0);
        self.counts[index] += 1;
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.recorded
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.recorded == 0
    }

    /// Adds every count into `total` (built by [`new_histogram`]), bucket
    /// for bucket.
    pub fn add_into(&self, total: &mut Histogram<u64>) {
        for (index, &count) in self.counts.iter().enumerate() {
            if count != 0 {
                total.saturating_record_n(value_at(index), count);
            }
        }
    }

    /// Forgets every count; the array keeps its size.
    pub fn reset(&mut self) {
        if self.recorded != 0 {
            self.counts.fill(0);
            self.recorded = 0;
        }
    }
}

pub type LatencyHistogram = Box<IntervalHistogram>;

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
        let h =
            current[slot].get_or_insert_with(|| self.spares.borrow_mut().pop().unwrap_or_default());
        h.record(nanos);
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
            h.add_into(total);
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

    /// The shard side's buckets are hdrhistogram's: every value lands in
    /// the bucket whose lowest value hdrhistogram reports for it, over the
    /// whole range and at every bucket edge.
    #[test]
    fn interval_buckets_are_hdrhistograms() {
        let reference = new_histogram();
        let mut values: Vec<u64> = (LOWEST_NS..5_000).collect();
        for shift in 0..36 {
            let edge = 1u64 << shift;
            values.extend([edge - 1, edge, edge + 1, edge + edge / 3]);
        }
        values.extend([HIGHEST_NS - 1, HIGHEST_NS]);
        values
            .extend((0..20_000u64).map(|i| 1 + i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % HIGHEST_NS));
        for v in values
            .into_iter()
            .filter(|v| (LOWEST_NS..=HIGHEST_NS).contains(v))
        {
            let index = index_of(v);
            assert_eq!(value_at(index), reference.lowest_equivalent(v), "value {v}");
            assert!(index <= index_of(HIGHEST_NS));
        }
        // Neighbouring buckets are distinct and ordered.
        for index in 1..=index_of(HIGHEST_NS) {
            assert!(value_at(index) > value_at(index - 1), "index {index}");
            assert_eq!(index_of(value_at(index)), index);
        }
    }

    #[test]
    fn interval_histogram_grows_clamps_and_resets() {
        let mut h = IntervalHistogram::default();
        let start = h.counts.len();
        h.record(0);
        h.record(HIGHEST_NS * 2);
        assert_eq!(h.len(), 2);
        assert!(h.counts.len() > start, "a slow value grows the array");
        let mut total = new_histogram();
        h.add_into(&mut total);
        assert_eq!(total.min(), LOWEST_NS);
        assert_eq!(total.max(), total.highest_equivalent(HIGHEST_NS));
        // Once grown, a value over `HIGHEST_NS` in its last bucket is still
        // clamped, not counted in a sub-bucket past it.
        h.record(HIGHEST_NS + (HIGHEST_NS >> 3));
        let mut total = new_histogram();
        h.add_into(&mut total);
        assert_eq!(total.max(), total.highest_equivalent(HIGHEST_NS));
        let grown = h.counts.len();
        h.reset();
        assert!(h.is_empty() && h.counts.iter().all(|&c| c == 0));
        assert_eq!(h.counts.len(), grown, "a spare keeps its size");
    }

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
