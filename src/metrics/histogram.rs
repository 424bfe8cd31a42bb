//! Per-shard, per-command-slot HDR latency histograms, allocated the first
//! time a slot records a value.

use std::cell::RefCell;

use hdrhistogram::Histogram;

use crate::command::NUM_SLOTS;

/// Values are nanoseconds, kept to 3 significant digits from 1 ns up, so
/// microsecond-scale commands keep their precision.
pub const LOWEST_NS: u64 = 1;
/// Anything slower than a minute is clamped to a minute.
pub const HIGHEST_NS: u64 = 60_000_000_000;
pub const SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant bounds are valid")
}

#[derive(Default)]
pub struct CommandHistograms {
    slots: RefCell<[Option<Box<Histogram<u64>>>; NUM_SLOTS]>,
}

impl CommandHistograms {
    #[inline]
    pub fn record(&self, slot: usize, nanos: u64) {
        let mut slots = self.slots.borrow_mut();
        slots[slot].get_or_insert_with(|| Box::new(new_histogram())).saturating_record(nanos.clamp(LOWEST_NS, HIGHEST_NS));
    }

    /// Copies of the non-empty histograms, for a snapshot.
    pub fn export(&self) -> Vec<(u8, Histogram<u64>)> {
        self.slots
            .borrow()
            .iter()
            .enumerate()
            .filter_map(|(slot, h)| h.as_ref().filter(|h| !h.is_empty()).map(|h| (slot as u8, (**h).clone())))
            .collect()
    }
}
