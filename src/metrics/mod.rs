//! Per-core instruments: counters, latency histograms, the hot-key sketch,
//! and the snapshots that carry copies of them to the collector.
//!
//! Layer: a leaf (see the crate docs, "Layers and imports"). Owns each core's
//! instruments ([`ShardStats`], histograms, hot-key sketch, slow log, latency
//! monitor, error kinds), the [`CommandTimer`] that feeds them, the
//! [`ShardSnapshot`] that copies them out and the merged [`MetricsView`];
//! the timer reads the shard's [`Clock`].
//! Imports nothing from the crate but `config`: the metric slots
//! ([`slots`]) live here and the command table names them, and a shard
//! hands its keyspace figures to [`snapshot`] as a value.

pub mod clock;
pub mod counters;
pub mod errors;
pub mod histogram;
pub mod latency_monitor;
pub mod sketch;
pub mod slots;
pub mod slowlog;
pub mod snapshot;
pub mod timer;
pub mod view;

use std::rc::Rc;

pub use clock::Clock;
pub use counters::{Counter, Gauge, ShardStats};
pub use histogram::CommandHistograms;
pub use latency_monitor::LatencyMonitor;
pub use sketch::{CountMinSketch, HotKeys};
pub use slowlog::SlowLog;
pub use snapshot::ShardSnapshot;
pub use timer::CommandTimer;
pub use view::{MetricsView, SlotLatency};

/// Everything a shard measures on its data path, owned by that shard.
pub struct ShardMetrics {
    pub stats: Rc<ShardStats>,
    pub histograms: CommandHistograms,
    pub clock: Clock,
    /// False only when instrumentation is turned off to measure its cost;
    /// call counters stay on either way so INFO keeps working.
    pub enabled: bool,
    pub ops_rate: OpsRate,
    /// End time of the command that finished last on this core, while no
    /// task switch has happened since (0 when unknown); see `start_stamp`.
    pub chained_stamp: std::cell::Cell<u64>,
    pub slowlog: SlowLog,
    pub latency_monitor: LatencyMonitor,
    /// The smaller of the slow-log and latency-monitor thresholds in ns
    /// (u64::MAX when both are off): one compare per command decides
    /// whether anything more happens.
    slow_ns: std::cell::Cell<u64>,
    /// Latency (ns) of the command whose timer just ended if it reached
    /// `slow_ns`, else 0; the connection takes it right after the timer
    /// ends and logs the command with its arguments.
    slow_pending: std::cell::Cell<u64>,
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

    /// Called when a timer ends with its two clock readings: the command's
    /// latency in ns; remembers a slow command for the connection to log.
    #[inline]
    pub fn command_latency(&self, start: u64, end: u64) -> u64 {
        let nanos = self.clock.delta_as_nanos(start, end);
        if nanos >= self.slow_ns.get() {
            return self.note_slow(start, end);
        }
        nanos
    }

    /// A slow command (milliseconds, as a rule) is measured again with a
    /// ratio refreshed this instant: it may have started before the
    /// shard's first recalibration and blocked every one since.
    #[cold]
    fn note_slow(&self, start: u64, end: u64) -> u64 {
        self.clock.recalibrate();
        let nanos = self.clock.delta_as_nanos(start, end);
        self.slow_pending.set(nanos.max(1));
        nanos
    }

    /// The latency of the command that just ended, if it was slow enough
    /// for the slow log or the latency monitor.
    #[inline]
    pub fn take_slow(&self) -> Option<u64> {
        match self.slow_pending.get() {
            0 => None,
            nanos => {
                self.slow_pending.set(0);
                Some(nanos)
            }
        }
    }

    pub fn set_slowlog_slower_than_us(&self, us: i64) {
        self.slowlog.set_slower_than_us(us);
        self.update_slow_threshold();
    }

    pub fn set_slowlog_max_len(&self, len: u64) {
        self.slowlog.set_max_len(len);
        self.update_slow_threshold();
    }

    pub fn set_latency_threshold_ms(&self, ms: u64) {
        self.latency_monitor.set_threshold_ms(ms);
        self.update_slow_threshold();
    }

    fn update_slow_threshold(&self) {
        let slowlog = self.slowlog.threshold_ns().unwrap_or(u64::MAX);
        let monitor = self.latency_monitor.threshold_ns().unwrap_or(u64::MAX);
        self.slow_ns.set(slowlog.min(monitor));
    }

    pub fn total_calls(&self) -> u64 {
        self.stats.cmd_calls.iter().map(|c| c.get()).sum()
    }

    pub fn new(stats: Rc<ShardStats>, enabled: bool) -> ShardMetrics {
        ShardMetrics {
            stats,
            histograms: CommandHistograms::default(),
            clock: Clock::new(),
            enabled,
            ops_rate: OpsRate::default(),
            chained_stamp: std::cell::Cell::new(0),
            slowlog: SlowLog::default(),
            latency_monitor: LatencyMonitor::default(),
            slow_ns: std::cell::Cell::new(slowlog::DEFAULT_SLOWER_THAN_US as u64 * 1000),
            slow_pending: std::cell::Cell::new(0),
        }
    }
}
