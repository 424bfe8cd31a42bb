//! [`Clock`]: the cycle counter every command timer reads, converted to
//! nanoseconds by a ratio this shard keeps measuring against
//! `CLOCK_MONOTONIC` over its whole uptime.
//!
//! Why not quanta's own conversion: quanta calibrates once, at the first
//! clock of the process, over about a millisecond, and a single pair of
//! reads split by a preemption in that window skews the ratio for the
//! life of the process. On a CI virtual machine that made a 250 ms
//! `DEBUG SLEEP` measure 249 ms (0.4% short): the latency monitor, the
//! slow log and every histogram bucket would be off by as much. Here the
//! ratio starts as quanta's and is recomputed (every 100 ms by the
//! shard's housekeeping, and for each command slow enough for the slow log
//! or the latency monitor before it is measured) from the counter and the
//! monotonic clock since the shard started, from read pairs no more than
//! 2 µs apart: after a second of uptime it is within a few parts per
//! million.
//!
//! The data path pays less than before: one counter read per command end
//! (and per start not chained to the previous end), one multiply and a
//! constant shift per measurement, no match on quanta's clock kind
//! (callgrind, `bench/instrumentation_ir.py --variants timer`: 94.3 -> 87.4
//! instructions per command), and it reads the counter inline instead of
//! calling quanta for it (87.6 -> 78.4 with the histogram's cold clamp).

use std::cell::Cell;
use std::time::Instant;

/// The conversion is `ticks * factor >> SHIFT`.
const SHIFT: u32 = 32;
/// A counter read and a monotonic read further apart than this (the
/// thread was preempted between them) do not calibrate.
const MAX_PAIR_GAP: u64 = 2_000;
/// Tries at a tight pair per calibration.
const PAIR_TRIES: usize = 8;
/// Calibrating over less than this would be no better than quanta's.
const MIN_BASELINE_NS: u64 = 50_000_000;

/// A monotonic cycle-counter clock with a continuously refined ratio to
/// nanoseconds. One per shard; not `Sync` (the ratio is a `Cell`).
pub struct Clock {
    source: quanta::Clock,
    /// Nanoseconds per 2^SHIFT ticks.
    factor: Cell<u64>,
    /// Where the ratio is measured from; `None` when quanta has no cycle
    /// counter and reads the monotonic clock itself (the ticks are
    /// nanoseconds already, there is nothing to calibrate).
    baseline: Option<Baseline>,
}

/// The monotonic time and the counter at one instant.
#[derive(Clone, Copy)]
struct Baseline {
    at: Instant,
    raw: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let source = quanta::Clock::new();
        // quanta's ratio as ours: its nanoseconds for 2^SHIFT ticks.
        let factor = source.delta_as_nanos(0, 1 << SHIFT);
        let baseline = (factor != 1 << SHIFT).then(|| {
            tight_pair(&source).unwrap_or_else(|| Baseline {
                at: Instant::now(),
                raw: source.raw(),
            })
        });
        Clock {
            source,
            factor: Cell::new(factor),
            baseline,
        }
    }

    /// The counter now, for [`Clock::delta_as_nanos`].
    #[inline]
    pub fn raw(&self) -> u64 {
        // With a baseline quanta reads the cycle counter, which on x86_64
        // is `rdtsc`: read inline, it saves a call into quanta (which does
        // not inline it) and its match on the clock kind, per command.
        #[cfg(target_arch = "x86_64")]
        if self.baseline.is_some() {
            // SAFETY: `rdtsc` has no preconditions; quanta uses the counter
            // (which needs an invariant TSC) only when CPUID offers it.
            return unsafe { std::arch::x86_64::_rdtsc() };
        }
        self.source.raw()
    }

    /// Nanoseconds between two [`Clock::raw`] readings (0 if `end` is not
    /// after `start`).
    #[inline]
    pub fn delta_as_nanos(&self, start: u64, end: u64) -> u64 {
        if end <= start {
            return 0;
        }
        ((u128::from(end - start) * u128::from(self.factor.get())) >> SHIFT) as u64
    }

    /// Recomputes the ratio from the whole baseline; skipped when no tight
    /// read pair comes within a few tries or the baseline is still short.
    pub fn recalibrate(&self) {
        let Some(base) = self.baseline else {
            return;
        };
        let Some(now) = tight_pair(&self.source) else {
            return;
        };
        let ns = now.at.saturating_duration_since(base.at).as_nanos();
        let ticks = now.raw.wrapping_sub(base.raw);
        if ns < u128::from(MIN_BASELINE_NS) || ticks == 0 {
            return;
        }
        let factor = (ns << SHIFT) / u128::from(ticks);
        if let Ok(factor) = u64::try_from(factor) {
            self.factor.set(factor);
        }
    }

    #[cfg(test)]
    fn skew(&self, parts_per_thousand: u64) {
        self.factor
            .set(self.factor.get() * (1000 - parts_per_thousand) / 1000);
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// A monotonic time and a counter reading taken at (nearly) one instant:
/// the tightest of a few tries, the time being the middle of its two
/// monotonic reads; `None` when every try was split by a preemption.
fn tight_pair(source: &quanta::Clock) -> Option<Baseline> {
    let mut best: Option<(u64, Instant, u64)> = None;
    for _ in 0..PAIR_TRIES {
        let before = Instant::now();
        let raw = source.raw();
        let after = Instant::now();
        let gap = after.saturating_duration_since(before).as_nanos() as u64;
        if gap <= MAX_PAIR_GAP && best.is_none_or(|(g, ..)| gap < g) {
            best = Some((gap, before + (after - before) / 2, raw));
        }
    }
    best.map(|(_, at, raw)| Baseline { at, raw })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Measures a sleep with the clock and with `Instant` around the same
    /// two counter reads; returns (clock ns, monotonic ns).
    fn measure(clock: &Clock, sleep: Duration) -> (u64, u64) {
        let t0 = tight_pair(&clock.source).expect("a tight pair");
        std::thread::sleep(sleep);
        let t1 = tight_pair(&clock.source).expect("a tight pair");
        (
            clock.delta_as_nanos(t0.raw, t1.raw),
            (t1.at - t0.at).as_nanos() as u64,
        )
    }

    #[test]
    fn a_skewed_ratio_is_corrected_from_the_baseline() {
        let clock = Clock::new();
        if clock.baseline.is_none() {
            eprintln!("no cycle counter here: quanta reads the monotonic clock");
            return;
        }
        // A ratio 0.5% short, as a preempted one-shot calibration leaves it.
        clock.skew(5);
        let (measured, truth) = measure(&clock, Duration::from_millis(60));
        assert!(
            measured < truth - truth / 400,
            "the skew shows: {measured} vs {truth}"
        );
        std::thread::sleep(Duration::from_millis(MIN_BASELINE_NS / 1_000_000));
        clock.recalibrate();
        let (measured, truth) = measure(&clock, Duration::from_millis(60));
        // Two pairs of at most MAX_PAIR_GAP each, plus the ratio's error
        // (a pair gap over a >= 50 ms baseline: 40 ppm).
        let tolerance = 2 * MAX_PAIR_GAP + truth / 20_000;
        assert!(
            measured.abs_diff(truth) <= tolerance,
            "recalibrated: {measured} ns vs {truth} ns"
        );
    }

    #[test]
    fn readings_out_of_order_measure_zero() {
        let clock = Clock::new();
        let a = clock.raw();
        assert_eq!(clock.delta_as_nanos(a, a), 0);
        assert_eq!(clock.delta_as_nanos(a + 10, a), 0);
        assert!(clock.delta_as_nanos(a, a + 1_000_000) > 0);
    }

    #[test]
    fn the_inline_read_is_quantas_counter() {
        // `raw` reads the counter itself when quanta uses one: it must be
        // the same counter (or the calibration pairs, read through quanta,
        // would convert some other count), so it falls between two of
        // quanta's reads. The slack (under a millisecond of ticks) is for a
        // move to a core whose counter is a little off; another counter
        // is off by far more (half the uptime for `rdtsc / 2`).
        const SLACK: u64 = 1_000_000;
        let clock = Clock::new();
        for _ in 0..1000 {
            let before = clock.source.raw();
            let ours = clock.raw();
            let after = clock.source.raw();
            assert!(
                before.saturating_sub(SLACK) <= ours && ours <= after.saturating_add(SLACK),
                "{before} <= {ours} <= {after}"
            );
        }
    }

    #[test]
    fn a_short_baseline_keeps_the_initial_ratio() {
        let clock = Clock::new();
        let before = clock.factor.get();
        clock.recalibrate(); // microseconds after the start
        assert_eq!(clock.factor.get(), before);
    }
}
