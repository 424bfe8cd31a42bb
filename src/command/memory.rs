//! MEMORY USAGE | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP.
//!
//! Totals are the allocator's (src/alloc.rs: `used_memory`, jemalloc's
//! figures, RSS), as in Redis. What is per key comes from the per-entry
//! cost model (`store::cost`), an estimate: MEMORY USAGE of a key is what
//! it adds to `used_memory_estimate`, and MEMORY STATS' per-key overheads
//! are estimated the same way.

use std::fmt::Write as _;

use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::coord::Shard;
use crate::metrics::MetricsView;
use crate::protocol::reply::{Resp, err};
use crate::store::{cost, entry_usage};

/// Elements MEMORY USAGE looks at in an aggregate unless told otherwise,
/// as Redis' OBJ_COMPUTE_SIZE_DEF_SAMPLES.
const DEFAULT_SAMPLES: usize = 5;

pub async fn memory(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"USAGE", 3..) => usage(shard, args, out).await,
        (b"STATS", 2) => {
            let view = shard.metrics_view().await;
            stats(&view, out);
        }
        (b"DOCTOR", 2) => {
            let view = shard.metrics_view().await;
            out.bulk(doctor(&view).as_bytes());
        }
        (b"MALLOC-STATS", 2) => out.bulk(&crate::alloc::malloc_stats()),
        (b"PURGE", 2) => {
            // The madvise over every dirty page can take hundreds of ms
            // after a large FLUSHALL: it runs on this executor's blocking
            // thread, so no core stops serving meanwhile (jemalloc drops
            // the arena's lock while it purges).
            glommio::executor()
                .spawn_blocking(crate::alloc::purge)
                .await;
            out.ok()
        }
        (b"HELP", 2) => help_reply(
            out,
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        ),
        (b"USAGE" | b"STATS" | b"DOCTOR" | b"MALLOC-STATS" | b"PURGE" | b"HELP", _) => {
            subcommand_arity(out, "memory", &sub)
        }
        _ => unknown_subcommand(out, "MEMORY", args.get(1)),
    }
}

async fn usage(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut samples = DEFAULT_SAMPLES;
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "SAMPLES") && i + 1 < args.len() {
            match args.int(i + 1) {
                Ok(0) => samples = 0,
                Ok(n) if n > 0 => samples = n as usize,
                Ok(_) => return out.error(err::SYNTAX),
                Err(e) => return out.error(e),
            }
            i += 2;
        } else {
            return out.error(err::SYNTAX);
        }
    }
    let key = args.get(2).to_vec();
    let owner = shard.owner(&key);
    let size = crate::coord::on(shard, owner, move |s: &Shard| {
        let mut db = s.db();
        db.peek_key(&key).map(|(k, v)| entry_usage(k, v, samples))
    })
    .await;
    match size {
        Some(Some(bytes)) => out.int(bytes as i64),
        Some(None) => out.nil(),
        None => out.error(super::keys::SHARD_GONE),
    }
}

/// How the allocated memory splits: fixed per-key costs (the table slot
/// and TTL index of each key, estimated) against the rest.
struct Breakdown {
    total: u64,
    peak: u64,
    rss: u64,
    allocator: crate::alloc::ProcessMemory,
    keys: u64,
    main_overhead: u64,
    expires_overhead: u64,
}

impl Breakdown {
    fn of(view: &MetricsView) -> Breakdown {
        let m = &view.merged;
        let total = view.allocator.allocated;
        Breakdown {
            total,
            peak: view.peak_memory_bytes.max(total),
            rss: view.allocator.rss,
            allocator: view.allocator,
            keys: m.keys,
            main_overhead: m.keys * cost::ENTRY as u64,
            expires_overhead: m.expires * cost::EXPIRE as u64,
        }
    }

    fn overhead(&self) -> u64 {
        self.main_overhead + self.expires_overhead
    }

    fn dataset(&self) -> u64 {
        self.total.saturating_sub(self.overhead())
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Redis 7's MEMORY STATS shape and order: a flat list of name, value
/// pairs; `db.0` only when it holds keys.
fn stats(view: &MetricsView, out: &mut Vec<u8>) {
    let b = Breakdown::of(view);
    let a = &b.allocator;
    let diff = |x: u64, y: u64| x as i64 - y as i64;
    let ints: [(&str, u64); 10] = [
        ("peak.allocated", b.peak),
        ("total.allocated", b.total),
        ("startup.allocated", 0),
        ("replication.backlog", 0),
        ("clients.slaves", 0),
        ("clients.normal", 0),
        ("cluster.links", 0),
        ("aof.buffer", 0),
        ("lua.caches", 0),
        ("functions.caches", 0),
    ];
    let db = usize::from(b.keys > 0);
    out.array(2 * (ints.len() + db + 17));
    for (name, v) in ints {
        out.bulk(name.as_bytes());
        out.int(v as i64);
    }
    if db == 1 {
        out.bulk(b"db.0");
        out.array(4);
        out.bulk(b"overhead.hashtable.main");
        out.int(b.main_overhead as i64);
        out.bulk(b"overhead.hashtable.expires");
        out.int(b.expires_overhead as i64);
    }
    out.bulk(b"overhead.total");
    out.int(b.overhead() as i64);
    out.bulk(b"keys.count");
    out.int(b.keys as i64);
    out.bulk(b"keys.bytes-per-key");
    out.int(b.total.checked_div(b.keys).unwrap_or(0) as i64);
    out.bulk(b"dataset.bytes");
    out.int(b.dataset() as i64);
    out.bulk(b"dataset.percentage");
    out.bulk_f64(percent(b.dataset(), b.total));
    out.bulk(b"peak.percentage");
    out.bulk_f64(percent(b.total, b.peak));
    out.bulk(b"allocator.allocated");
    out.int(a.allocated as i64);
    out.bulk(b"allocator.active");
    out.int(a.active as i64);
    out.bulk(b"allocator.resident");
    out.int(a.resident as i64);
    out.bulk(b"allocator-fragmentation.ratio");
    out.bulk_f64(ratio(a.active, a.allocated));
    out.bulk(b"allocator-fragmentation.bytes");
    out.int(diff(a.active, a.allocated));
    out.bulk(b"allocator-rss.ratio");
    out.bulk_f64(ratio(a.resident, a.active));
    out.bulk(b"allocator-rss.bytes");
    out.int(diff(a.resident, a.active));
    out.bulk(b"rss-overhead.ratio");
    out.bulk_f64(ratio(b.rss, a.resident));
    out.bulk(b"rss-overhead.bytes");
    out.int(diff(b.rss, a.resident));
    out.bulk(b"fragmentation");
    out.bulk_f64(ratio(b.rss, b.total));
    out.bulk(b"fragmentation.bytes");
    out.int(diff(b.rss, b.total));
}

/// A plain-language reading of the memory figures, in the spirit of
/// Redis' MEMORY DOCTOR, plus what only a sharded server can show: how
/// evenly the shards are loaded.
fn doctor(view: &MetricsView) -> String {
    const SMALL: u64 = 5 * 1024 * 1024;
    let b = Breakdown::of(view);
    let mut report = String::new();
    if b.total < SMALL {
        let _ = writeln!(
            report,
            "This instance has {} bytes allocated, too little to say anything useful about \
             its memory. Ask again once it holds a few megabytes.",
            b.total
        );
        return report;
    }
    let mut issues = Vec::new();
    if b.peak as f64 > b.total as f64 * 1.5 {
        issues.push(format!(
            "Peak memory: the process once had {} bytes allocated, {:.0}% more than the {} it has now. \
             The allocator may not have returned the difference to the system (RSS is {} bytes).",
            b.peak,
            percent(b.peak - b.total, b.total),
            b.total,
            b.rss
        ));
    }
    if b.rss as f64 > b.total as f64 * 1.4 {
        issues.push(format!(
            "High RSS: the process' resident memory is {:.2} times what it has allocated \
             ({} vs {} bytes): allocator fragmentation, which large deletions leave behind, or \
             freed pages not yet returned to the system. MEMORY PURGE returns them.",
            b.rss as f64 / b.total as f64,
            b.rss,
            b.total
        ));
    }
    if b.keys > 0 && b.overhead() as f64 > b.total as f64 * 0.5 {
        issues.push(format!(
            "Many small keys: fixed per-key costs are {:.0}% of the memory ({} bytes per key on \
             average). Grouping small values into hashes saves the per-key overhead.",
            percent(b.overhead(), b.total),
            b.total / b.keys
        ));
    }
    let shards: Vec<u64> = view
        .shards
        .iter()
        .flatten()
        .map(|s| s.memory_bytes)
        .collect();
    if shards.len() > 1 {
        let max = *shards.iter().max().unwrap_or(&0);
        let mean = shards.iter().sum::<u64>() as f64 / shards.len() as f64;
        if mean > 0.0 && max as f64 > mean * 1.5 {
            issues.push(format!(
                "Unbalanced shards: the fullest shard holds {max} bytes, {:.1} times the mean. A few \
                 very large keys live on it (keys map to shards by hash); MEMORY USAGE and \
                 kora_shard_memory_used_bytes find them.",
                max as f64 / mean
            ));
        }
    }
    if issues.is_empty() {
        report.push_str("No memory issue found: peak, RSS and shard balance look healthy.\n");
    } else {
        report.push_str("Found these possible issues:\n\n");
        for issue in issues {
            let _ = writeln!(report, " * {issue}\n");
        }
    }
    report
}
