//! Merging the threads' results, and showing them: progress bar while
//! running, a table or one JSON object at the end.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{Bound, Settings, Shared, ThreadReport, new_histogram};
use crate::workload::Op;

pub struct OpSummary {
    pub op: Op,
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

pub struct Summary {
    /// From the start of measurement to the last measured reply.
    pub elapsed: Duration,
    pub ok: u64,
    pub errors: u64,
    pub ops: Vec<OpSummary>,
    pub first_error: Option<String>,
}

impl Summary {
    pub fn new(reports: &[ThreadReport]) -> Summary {
        let start = reports.iter().map(|r| r.measure_start).min();
        let end = reports.iter().filter_map(|r| r.last_reply).max();
        let elapsed = match (start, end) {
            (Some(s), Some(e)) => e.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        let mut ops = Vec::new();
        for op in Op::ALL {
            let mut summary = OpSummary {
                op,
                ok: 0,
                errors: 0,
                latency: new_histogram(),
            };
            let mut in_mix = false;
            for r in reports {
                let part = &r.ops[op.index()];
                summary.ok += part.ok;
                summary.errors += part.errors;
                if let Some(h) = &part.latency {
                    in_mix = true;
                    summary.latency.add(h).expect("same histogram bounds");
                }
            }
            if in_mix || summary.errors > 0 {
                ops.push(summary);
            }
        }
        Summary {
            elapsed,
            ok: ops.iter().map(|o| o.ok).sum(),
            errors: ops.iter().map(|o| o.errors).sum(),
            ops,
            first_error: reports.iter().find_map(|r| r.first_error.clone()),
        }
    }

    fn rate(&self, count: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }
}

/// Latency in µs at the quantiles reported: p50 p90 p99 p99.9 max.
fn percentiles_us(h: &Histogram<u64>) -> [f64; 5] {
    let us = |ns: u64| ns as f64 / 1000.0;
    if h.is_empty() {
        return [0.0; 5];
    }
    [
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
    ]
}

pub struct Header<'a> {
    pub target: &'a str,
    pub clients: usize,
    pub threads: usize,
    pub settings: &'a Settings,
    pub preload_time: Option<Duration>,
}

pub fn text(header: &Header, summary: &Summary) -> String {
    let s = header.settings;
    let w = &s.workload;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kora-bench {}: {} clients on {} threads, pipeline {}, {} keys ({}), {}-byte values, mix {}, seed {}{}",
        header.target,
        header.clients,
        header.threads,
        s.pipeline,
        w.keyspace,
        w.distribution,
        w.value_size,
        w.mix,
        s.seed,
        if s.verify { ", verifying" } else { "" },
    );
    if let Some(t) = header.preload_time {
        let _ = writeln!(
            out,
            "preloaded {} keys in {:.2} s",
            w.keyspace,
            t.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "{} requests in {:.2} s (after {:.1} s warmup): {} ops/s, {} errors",
        summary.ok + summary.errors,
        summary.elapsed.as_secs_f64(),
        s.warmup.as_secs_f64(),
        thousands(summary.rate(summary.ok)),
        summary.errors,
    );
    let _ = writeln!(
        out,
        "{:<8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "command", "ops/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "errors"
    );
    for op in &summary.ops {
        let p = percentiles_us(&op.latency);
        let _ = writeln!(
            out,
            "{:<8} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8}",
            op.op.name(),
            thousands(summary.rate(op.ok)),
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            op.errors
        );
    }
    out
}

pub fn json(header: &Header, summary: &Summary) -> Value {
    let s = header.settings;
    let w = &s.workload;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let mut commands = serde_json::Map::new();
    for op in &summary.ops {
        let p = percentiles_us(&op.latency);
        commands.insert(
            op.op.name().into(),
            json!({
                "requests": op.ok + op.errors,
                "errors": op.errors,
                "ops_per_sec": round(summary.rate(op.ok)),
                "p50_us": p[0],
                "p90_us": p[1],
                "p99_us": p[2],
                "p999_us": p[3],
                "max_us": p[4],
                "mean_us": round(op.latency.mean() / 1000.0),
            }),
        );
    }
    json!({
        "target": header.target,
        "clients": header.clients,
        "threads": header.threads,
        "pipeline": s.pipeline,
        "keyspace": w.keyspace,
        "distribution": w.distribution.to_string(),
        "value_size": w.value_size,
        "mix": w.mix.to_string(),
        "seed": s.seed,
        "verify": s.verify,
        "preload_s": header.preload_time.map(|t| round(t.as_secs_f64())),
        "warmup_s": s.warmup.as_secs_f64(),
        "duration_s": round(summary.elapsed.as_secs_f64()),
        "requests": summary.ok + summary.errors,
        "ops_per_sec": round(summary.rate(summary.ok)),
        "errors": summary.errors,
        "first_error": summary.first_error,
        "commands": commands,
    })
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Waits for the threads, drawing a progress bar on stderr when it is a
/// terminal and the run lasts more than a few seconds.
pub fn show_progress(
    shared: &Shared,
    bound: Bound,
    warmup: Duration,
    started: Instant,
    finished: impl Fn() -> bool,
) {
    const SHOW_AFTER: Duration = Duration::from_secs(2);
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let done = || {
        shared
            .progress
            .iter()
            .map(|p| p.done.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    while !finished() {
        std::thread::sleep(Duration::from_millis(50));
        let elapsed = started.elapsed();
        if bar.is_none() && tty {
            bar = match bound {
                Bound::Duration(d) if warmup + d > SHOW_AFTER => Some(new_bar(
                    (warmup + d).as_millis() as u64,
                    "{bar:40} {elapsed}/{duration} {msg}",
                )),
                Bound::Requests(n) if elapsed > SHOW_AFTER => {
                    Some(new_bar(n, "{bar:40} {pos}/{len} requests, {elapsed} {msg}"))
                }
                _ => None,
            };
        }
        if let Some(bar) = &bar {
            let measured = done();
            match bound {
                Bound::Duration(_) => bar.set_position(elapsed.as_millis() as u64),
                Bound::Requests(_) => bar.set_position(measured),
            }
            let msg = if elapsed < warmup {
                "warming up".to_string()
            } else {
                let secs = (elapsed - warmup).as_secs_f64().max(1e-3);
                format!("{} ops/s", thousands(measured as f64 / secs))
            };
            bar.set_message(msg);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn new_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = percentiles_us(&h);
        assert!((p[0] - 500.0).abs() < 1.0, "{p:?}");
        assert!((p[2] - 990.0).abs() < 1.0, "{p:?}");
        assert!((p[4] - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(percentiles_us(&new_histogram()), [0.0; 5]);
    }
}
