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
            metrics.start_stamp()
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

    /// For a command that never ran (its transaction was aborted): nothing
    /// is recorded.
    pub fn cancel(self) {
        std::mem::forget(self);
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
            let end = m.clock.raw();
            // The next command dispatched right after this one starts here,
            // which saves it a clock read (a pipeline is back-to-back).
            m.chained_stamp.set(end);
            let nanos = m.clock.delta_as_nanos(self.start, end);
            m.stats.cmd_nanos[slot].add(nanos);
            m.histograms.record(slot, nanos);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::metrics::ShardStats;

    #[test]
    fn back_to_back_timers_share_one_clock_read() {
        let m = ShardMetrics::new(Rc::new(ShardStats::default()), true);
        let first = CommandTimer::start(&m, 0);
        let first_start = first.start;
        drop(first);
        let end_of_first = m.chained_stamp.get();
        assert!(end_of_first >= first_start && end_of_first != 0);
        let second = CommandTimer::start(&m, 0);
        assert_eq!(
            second.start, end_of_first,
            "starts where the previous one ended"
        );
        drop(second);
        // After an await the stamp is stale and must not be reused.
        m.forget_stamp();
        let third = CommandTimer::start(&m, 1);
        assert!(third.start >= m.chained_stamp.get());
        drop(third);
        assert_eq!(m.stats.cmd_calls[0].get(), 2);
        assert_eq!(m.stats.cmd_calls[1].get(), 1);
    }
}
