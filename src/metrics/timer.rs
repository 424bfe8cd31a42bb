//! `CommandTimer`: measures one command from dispatch until its reply is
//! ready on the connection's core, and records it when dropped.

use super::ShardMetrics;

pub struct CommandTimer<'a> {
    metrics: &'a ShardMetrics,
    slot: u8,
    start: u64,
    failed: bool,
}

impl<'a> CommandTimer<'a> {
    #[inline]
    pub fn start(metrics: &'a ShardMetrics, slot: u8) -> CommandTimer<'a> {
        let start = if metrics.enabled {
            metrics.clock.raw()
        } else {
            0
        };
        CommandTimer {
            metrics,
            slot,
            start,
            failed: false,
        }
    }

    /// Marks the command as answered with an error (INFO's failed_calls).
    #[inline]
    pub fn set_failed(&mut self, failed: bool) {
        self.failed = failed;
    }
}

impl Drop for CommandTimer<'_> {
    #[inline]
    fn drop(&mut self) {
        let m = self.metrics;
        let slot = self.slot as usize;
        m.stats.cmd_calls[slot].add(1);
        if self.failed {
            m.stats.cmd_failed[slot].add(1);
        }
        if m.enabled {
            let nanos = m.clock.delta_as_nanos(self.start, m.clock.raw());
            m.stats.cmd_nanos[slot].add(nanos);
            m.histograms.record(slot, nanos);
        }
    }
}
