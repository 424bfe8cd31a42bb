//! `CommandTimer`: measures one command from dispatch until its reply is
//! ready on the connection's core, and records it when dropped.

use super::ShardMetrics;
use super::errors::error_kind;
use super::slots::Slot;

pub struct CommandTimer<'a> {
    metrics: &'a ShardMetrics,
    slot: Slot,
    start: u64,
    /// 0 for a reply that is not an error, else its error kind + 1.
    error: u8,
    rejected: bool,
}

impl<'a> CommandTimer<'a> {
    #[inline]
    pub fn start(metrics: &'a ShardMetrics, slot: Slot) -> CommandTimer<'a> {
        let start = if metrics.enabled {
            metrics.start_stamp()
        } else {
            0
        };
        CommandTimer {
            metrics,
            slot,
            start,
            error: 0,
            rejected: false,
        }
    }

    /// Records the command's outcome from its reply: an error reply counts
    /// as failed and under its kind (`-WRONGTYPE ...` → WRONGTYPE).
    #[inline]
    pub fn set_reply(&mut self, reply: &[u8]) {
        self.error = error_kind(reply).map_or(0, |kind| kind + 1);
    }

    /// The command is refused before it runs (unknown, wrong arity): an
    /// error reply then counts as Redis' rejected_calls, not failed_calls.
    #[inline]
    pub fn set_rejected(&mut self) {
        self.rejected = true;
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
        if self.error != 0 {
            m.stats.cmd_failed[slot].add(1);
            m.stats.errors[self.error as usize - 1].add(1);
            if self.rejected {
                m.stats.cmd_rejected[slot].add(1);
            }
        }
        if m.enabled {
            let end = m.clock.raw();
            // The next command dispatched right after this one starts here,
            // which saves it a clock read (a pipeline is back-to-back).
            m.chained_stamp.set(end);
            let nanos = m.command_latency(self.start, end);
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

    #[test]
    fn outcome_counts_by_error_kind_and_rejection() {
        use crate::metrics::errors::ERROR_KINDS;
        let m = ShardMetrics::new(Rc::new(ShardStats::default()), true);
        let kind = |name: &str| ERROR_KINDS.iter().position(|k| *k == name).unwrap();
        let mut t = CommandTimer::start(&m, 3);
        t.set_reply(b"-WRONGTYPE Operation against a key\r\n");
        drop(t);
        let mut t = CommandTimer::start(&m, 3);
        t.set_reply(b"-ERR wrong number of arguments for 'incr' command\r\n");
        t.set_rejected();
        drop(t);
        let mut t = CommandTimer::start(&m, 3);
        t.set_reply(b":1\r\n");
        drop(t);
        let s = &m.stats;
        assert_eq!(s.cmd_calls[3].get(), 3);
        assert_eq!(s.cmd_failed[3].get(), 2);
        assert_eq!(s.cmd_rejected[3].get(), 1);
        assert_eq!(s.errors[kind("WRONGTYPE")].get(), 1);
        assert_eq!(s.errors[kind("ERR")].get(), 1);
    }

    #[test]
    fn only_commands_over_a_threshold_leave_a_slow_mark() {
        let m = ShardMetrics::new(Rc::new(ShardStats::default()), true);
        drop(CommandTimer::start(&m, 0));
        assert_eq!(m.take_slow(), None, "default threshold is 10 ms");
        m.set_slowlog_slower_than_us(0);
        drop(CommandTimer::start(&m, 0));
        assert!(m.take_slow().is_some());
        assert_eq!(m.take_slow(), None, "taken once");
        m.set_slowlog_slower_than_us(-1);
        drop(CommandTimer::start(&m, 0));
        assert_eq!(m.take_slow(), None, "slow log off, monitor off");
        m.set_latency_threshold_ms(1);
        let t = CommandTimer::start(&m, 0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        drop(t);
        assert!(m.take_slow().unwrap() >= 2_000_000);
    }
}
