//! LATENCY: the per-command latency histograms (HISTOGRAM, from the
//! collector's merged view) and Redis' latency monitor (LATEST, HISTORY,
//! RESET, DOCTOR), kept per shard and merged here.

use std::fmt::Write as _;

use super::table::{NUM_SLOTS, slot_name, slots_named};
use super::{Args, help_reply, unknown_subcommand};
use crate::coord::Shard;
use crate::metrics::latency_monitor::{EventSeries, merge_events};
use crate::protocol::reply::Resp;

pub async fn latency(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"HISTOGRAM", _) => histogram(shard, args, out).await,
        (b"LATEST", 2) => {
            let events = events(shard).await;
            out.array(events.len());
            for (name, series) in events {
                let (time, ms) = series.samples.back().copied().unwrap_or_default();
                out.array(4);
                out.bulk(name.as_bytes());
                out.int(time as i64);
                out.int(ms as i64);
                out.int(series.max_ms as i64);
            }
        }
        (b"HISTORY", 3) => {
            let wanted = args.get(2);
            let series = events(shard)
                .await
                .into_iter()
                .find(|(name, _)| name.as_bytes() == wanted);
            let samples = series.map(|(_, s)| s.samples).unwrap_or_default();
            out.array(samples.len());
            for (time, ms) in samples {
                out.array(2);
                out.int(time as i64);
                out.int(ms as i64);
            }
        }
        (b"RESET", _) => {
            let names: Vec<Vec<u8>> = args.iter_from(2).map(<[u8]>::to_vec).collect();
            let per_shard = crate::coord::all(shard, move |s: &Shard| {
                let had: Vec<&'static str> = s
                    .metrics()
                    .latency_monitor
                    .events()
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
                s.metrics().latency_monitor.reset(&names);
                let after = s.metrics().latency_monitor.events();
                had.into_iter()
                    .filter(|name| !after.iter().any(|(n, _)| n == name))
                    .collect::<Vec<_>>()
            })
            .await;
            // An event counts once however many shards had samples of it.
            let mut reset: Vec<&str> = per_shard.into_iter().flatten().collect();
            reset.sort_unstable();
            reset.dedup();
            out.int(reset.len() as i64);
        }
        (b"DOCTOR", 2) => {
            let events = events(shard).await;
            let report = doctor(shard, &events);
            out.bulk(report.as_bytes());
        }
        (b"HELP", 2) => help_reply(
            out,
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        ),
        (b"LATEST" | b"HISTORY" | b"DOCTOR" | b"HELP", _) => out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try LATENCY HELP.",
            String::from_utf8_lossy(args.get(1))
        )),
        _ => unknown_subcommand(out, "LATENCY", args.get(1)),
    }
}

/// Every shard's latency events, merged per event name.
async fn events(shard: &Shard) -> Vec<(&'static str, EventSeries)> {
    let per_shard =
        crate::coord::all(shard, |s: &Shard| s.metrics().latency_monitor.events()).await;
    merge_events(per_shard)
}

async fn histogram(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let view = shard.metrics_view().await;
    // Names as Redis reads them: `get`, `config|set`, or a container
    // (`config`) for each of its subcommands; repeats are not merged.
    let wanted: Vec<usize> = if args.len() > 2 {
        args.iter_from(2)
            .flat_map(slots_named)
            .map(usize::from)
            .collect()
    } else {
        (0..NUM_SLOTS).collect()
    };
    let present: Vec<usize> = wanted
        .into_iter()
        .filter(|&s| view.latency(s).is_some_and(|l| l.count > 0))
        .filter(|&s| slot_name(s).is_some())
        .collect();
    out.array(present.len() * 2);
    for slot in present {
        let buckets = view
            .latency(slot)
            .map_or(&[][..], |l| &l.power_of_two_us[..]);
        out.bulk(slot_name(slot).unwrap_or("other").as_bytes());
        out.array(4);
        out.bulk(b"calls");
        out.int(view.latency(slot).map_or(0, |l| l.count) as i64);
        out.bulk(b"histogram_usec");
        out.array(buckets.len() * 2);
        for &(le_us, cumulative) in buckets {
            out.int(le_us as i64);
            out.int(cumulative as i64);
        }
    }
}

/// A plain-language reading of the latency monitor, in the spirit of
/// Redis' LATENCY DOCTOR.
fn doctor(shard: &Shard, events: &[(&'static str, EventSeries)]) -> String {
    let threshold = shard.metrics().latency_monitor.threshold_ms();
    let mut report = String::new();
    if threshold == 0 && events.is_empty() {
        report.push_str(
            "The latency monitor is off on this Kora instance (latency-monitor-threshold is 0). \
             Turn it on with \"CONFIG SET latency-monitor-threshold <milliseconds>\"; every \
             command at least that slow is then recorded as a latency spike.\n",
        );
        return report;
    }
    if events.is_empty() {
        let _ = writeln!(
            report,
            "No latency spike (a command of {threshold} ms or more) was observed since the monitor \
             was turned on or last reset."
        );
        return report;
    }
    report.push_str("Latency spikes observed on this Kora instance:\n\n");
    let now = crate::store::unix_ms() / 1000;
    for (i, (name, series)) in events.iter().enumerate() {
        let n = series.samples.len() as u64;
        let sum: u64 = series.samples.iter().map(|s| s.1).sum();
        let avg = sum / n.max(1);
        let mad = series
            .samples
            .iter()
            .map(|s| s.1.abs_diff(avg))
            .sum::<u64>()
            / n.max(1);
        let oldest = series.samples.front().map_or(now, |s| s.0);
        let period = now.saturating_sub(oldest).max(1) as f64 / n.max(1) as f64;
        let _ = writeln!(
            report,
            "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {mad}ms, period {period:.2} sec). Worst all time event {}ms.",
            i + 1,
            series.max_ms
        );
    }
    report.push_str("\nAdvice:\n\n");
    let slowlog_us = shard.metrics().slowlog.slower_than_us();
    if events.iter().any(|(name, _)| *name == "command") {
        if slowlog_us < 0 || shard.metrics().slowlog.max_len() == 0 {
            let _ = writeln!(
                report,
                "- The slow log is off. Turn it on with 'CONFIG SET slowlog-log-slower-than {}' to see which commands are slow.",
                threshold.saturating_mul(1000)
            );
        } else if slowlog_us as u64 / 1000 > threshold {
            let _ = writeln!(
                report,
                "- The slow log only records commands slower than {slowlog_us} us, above the monitor's threshold: 'CONFIG SET slowlog-log-slower-than {}' records every spike.",
                threshold.saturating_mul(1000)
            );
        }
        report.push_str(
            "- SLOWLOG GET shows the slow commands with their arguments. Commands over large \
             values (big SMEMBERS, LRANGE, HGETALL, KEYS, DEL of large aggregates) take time \
             proportional to their size; split such values or read them in pages (SCAN, SSCAN, \
             HSCAN).\n",
        );
    }
    if events.iter().any(|(name, _)| *name == "fast-command") {
        report.push_str(
            "- Commands that should take microseconds took milliseconds: the shard's core did not \
             get to run them. Check for other busy processes on the same cores (each shard is \
             pinned to one), and compare with 'redis-cli --intrinsic-latency 100'.\n",
        );
    }
    report.push_str(
        "- Latencies here run from dispatch to reply ready on the client's core, so a command \
         that waits for a busy shard over the mesh counts that wait too; kora_shard_up and \
         the per-shard metrics on /metrics show a shard that stalls.\n",
    );
    report
}
