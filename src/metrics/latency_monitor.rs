//! Redis' latency monitor, per shard: for each event ("command",
//! "fast-command") the spikes at or above `latency-monitor-threshold` ms,
//! one sample per second (the worst), the last 160 of them, plus the
//! all-time maximum. LATENCY LATEST/HISTORY merge the shards.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Samples kept per event, as Redis' LATENCY_TS_LEN.
pub const HISTORY_LEN: usize = 160;

/// Events this server records.
pub const EVENTS: [&str; 2] = ["command", "fast-command"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSeries {
    /// (unix seconds, latency ms), oldest first, at most one per second.
    pub samples: VecDeque<(u64, u64)>,
    pub max_ms: u64,
}

impl EventSeries {
    pub fn add(&mut self, unix_secs: u64, ms: u64) {
        self.max_ms = self.max_ms.max(ms);
        if let Some(last) = self.samples.back_mut()
            && last.0 == unix_secs
        {
            last.1 = last.1.max(ms);
            return;
        }
        if self.samples.len() == HISTORY_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((unix_secs, ms));
    }

    /// Folds another shard's series of the same event into this one.
    pub fn merge(&mut self, other: &EventSeries) {
        let mut all: Vec<(u64, u64)> = self.samples.iter().chain(&other.samples).copied().collect();
        all.sort_unstable();
        let mut merged = EventSeries {
            samples: VecDeque::with_capacity(HISTORY_LEN),
            max_ms: self.max_ms.max(other.max_ms),
        };
        for (t, ms) in all {
            merged.add(t, ms);
        }
        merged.max_ms = self.max_ms.max(other.max_ms);
        *self = merged;
    }
}

#[derive(Default)]
pub struct LatencyMonitor {
    /// Milliseconds; 0 turns the monitor off, as in Redis.
    threshold_ms: Cell<u64>,
    /// Indexed like `EVENTS`; None until the event first happens.
    series: RefCell<[Option<EventSeries>; EVENTS.len()]>,
}

impl LatencyMonitor {
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.get()
    }

    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.set(ms);
    }

    /// Latency (ns) from which a command is a spike; None when off.
    pub fn threshold_ns(&self) -> Option<u64> {
        match self.threshold_ms.get() {
            0 => None,
            ms => Some(ms.saturating_mul(1_000_000)),
        }
    }

    /// Records a command that took `duration_us` if it reached the
    /// threshold. `fast` picks the "fast-command" event.
    pub fn record(&self, fast: bool, duration_us: u64, unix_secs: u64) {
        let threshold = self.threshold_ms.get();
        let ms = duration_us / 1000;
        if threshold == 0 || ms < threshold {
            return;
        }
        let mut series = self.series.borrow_mut();
        series[fast as usize]
            .get_or_insert_with(EventSeries::default)
            .add(unix_secs, ms);
    }

    /// Every event with samples, by name.
    pub fn events(&self) -> Vec<(&'static str, EventSeries)> {
        self.series
            .borrow()
            .iter()
            .zip(EVENTS)
            .filter_map(|(s, name)| s.clone().map(|s| (name, s)))
            .collect()
    }

    /// Forgets the named events (all when `names` is empty); returns how
    /// many had data.
    pub fn reset(&self, names: &[Vec<u8>]) -> usize {
        let mut series = self.series.borrow_mut();
        let mut resets = 0;
        for (slot, name) in series.iter_mut().zip(EVENTS) {
            let wanted = names.is_empty()
                || names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name.as_bytes()));
            if wanted && slot.take().is_some() {
                resets += 1;
            }
        }
        resets
    }
}

/// Merges per-shard event lists into one series per event name.
pub fn merge_events(
    per_shard: Vec<Vec<(&'static str, EventSeries)>>,
) -> Vec<(&'static str, EventSeries)> {
    let mut merged: Vec<(&'static str, EventSeries)> = Vec::new();
    for (name, series) in per_shard.into_iter().flatten() {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, into)) => into.merge(&series),
            None => merged.push((name, series)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_keeps_the_worst() {
        let m = LatencyMonitor::default();
        m.record(false, 500_000, 100);
        assert!(m.events().is_empty(), "off by default");
        m.set_threshold_ms(100);
        m.record(false, 99_999, 100);
        assert!(m.events().is_empty(), "below threshold");
        m.record(false, 150_000, 100);
        m.record(false, 300_000, 100);
        m.record(false, 120_000, 101);
        m.record(true, 200_000, 101);
        let events = m.events();
        assert_eq!(events.len(), 2);
        let (name, cmd) = &events[0];
        assert_eq!(*name, "command");
        assert_eq!(cmd.samples, VecDeque::from(vec![(100, 300), (101, 120)]));
        assert_eq!(cmd.max_ms, 300);
        assert_eq!(events[1].0, "fast-command");
        assert_eq!(m.reset(&[b"COMMAND".to_vec()]), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.events().is_empty());
    }

    #[test]
    fn history_is_bounded_and_merges_in_time_order() {
        let mut a = EventSeries::default();
        for t in 0..200 {
            a.add(t * 2, 10);
        }
        assert_eq!(a.samples.len(), HISTORY_LEN);
        let mut b = EventSeries::default();
        b.add(399, 50);
        b.add(398, 7); // same second as one of a's: the worst wins
        let merged = merge_events(vec![vec![("command", a)], vec![("command", b)]]);
        let series = &merged[0].1;
        assert_eq!(series.samples.len(), HISTORY_LEN);
        assert_eq!(series.samples.back(), Some(&(399, 50)));
        assert_eq!(series.samples[series.samples.len() - 2], (398, 10));
        assert_eq!(series.max_ms, 50);
    }
}
