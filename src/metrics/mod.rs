//! Per-core instruments: counters, latency histograms, the hot-key sketch,
//! and the snapshots that carry copies of them to the collector.

pub mod counters;
pub mod histogram;
pub mod sketch;
pub mod snapshot;
pub mod timer;
pub mod view;

use std::rc::Rc;

pub use counters::{Counter, Gauge, ShardStats};
pub use histogram::CommandHistograms;
pub use sketch::{CountMinSketch, HotKeys};
pub use snapshot::ShardSnapshot;
pub use timer::CommandTimer;
pub use view::{MetricsView, SlotLatency};

/// Everything a shard measures on its data path, owned by that shard.
pub struct ShardMetrics {
    pub stats: Rc<ShardStats>,
    pub histograms: CommandHistograms,
    pub clock: quanta::Clock,
    /// False only when instrumentation is turned off to measure its cost;
    /// call counters stay on either way so INFO keeps working.
    pub enabled: bool,
    pub ops_rate: OpsRate,
    /// End time of the command that finished last on this core, while no
    /// task switch has happened since (0 when unknown); see `start_stamp`.
    pub chained_stamp: std::cell::Cell<u64>,
}

/// Instantaneous ops/sec as Redis computes it: the command count sampled
/// every 100 ms, averaged over the last 16 samples.
#[derive(Default)]
pub struct OpsRate {
    samples: std::cell::RefCell<([u64; 16], usize)>,
    last_total: std::cell::Cell<u64>,
    last_at: std::cell::Cell<Option<std::time::Instant>>,
}

impl OpsRate {
    pub fn sample(&self, total_calls: u64) {
        let now = std::time::Instant::now();
        if let Some(prev) = self.last_at.get() {
            let ms = now.duration_since(prev).as_millis().max(1) as u64;
            let per_sec = total_calls.saturating_sub(self.last_total.get()) * 1000 / ms;
            let mut s = self.samples.borrow_mut();
            let idx = s.1 % 16;
            s.0[idx] = per_sec;
            s.1 += 1;
        }
        self.last_total.set(total_calls);
        self.last_at.set(Some(now));
    }

    pub fn rate(&self) -> u64 {
        let s = self.samples.borrow();
        let n = s.1.min(16);
        if n == 0 {
            0
        } else {
            s.0[..n].iter().sum::<u64>() / n as u64
        }
    }
}

impl ShardMetrics {
    /// Start time of a command: the end of the previous one when it was
    /// just dispatched back to back (saving a clock read), else now.
    #[inline]
    pub fn start_stamp(&self) -> u64 {
        match self.chained_stamp.replace(0) {
            0 => self.clock.raw(),
            stamp => stamp,
        }
    }

    /// Called by a connection after every await: time spent waiting is not
    /// the next command's.
    #[inline]
    pub fn forget_stamp(&self) {
        self.chained_stamp.set(0);
    }

    pub fn total_calls(&self) -> u64 {
        self.stats.cmd_calls.iter().map(|c| c.get()).sum()
    }

    pub fn new(stats: Rc<ShardStats>, enabled: bool) -> ShardMetrics {
        ShardMetrics {
            stats,
            histograms: CommandHistograms::default(),
            clock: quanta::Clock::new(),
            enabled,
            ops_rate: OpsRate::default(),
            chained_stamp: std::cell::Cell::new(0),
        }
    }
}
