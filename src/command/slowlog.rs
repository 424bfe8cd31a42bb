//! SLOWLOG GET | LEN | RESET | HELP, and logging a slow command: into the
//! slow log and the latency monitor of the core that served the client.

use super::{Args, help_reply, lookup, subcommand_arity, unknown_subcommand};
use crate::coord::Shard;
use crate::metrics::slowlog::{SlowEntry, merge_newest};
use crate::protocol::reply::Resp;

/// What the slow log shows instead of a secret argument.
const REDACTED: &[u8] = b"(redacted)";

/// Logs the command whose timer just measured `nanos`: in the slow log if
/// it reached `slowlog-log-slower-than`, as a latency spike if it reached
/// `latency-monitor-threshold`. Only slow commands get here.
pub fn log_slow(shard: &Shard, args: &Args, addr: &str, name: &[u8], nanos: u64) {
    let duration_us = nanos / 1000;
    let spec = (!args.is_empty()).then(|| lookup(args.get(0))).flatten();
    // EXEC is logged as the commands it runs, as in Redis.
    if spec.is_some_and(|s| s.name == "exec") {
        return;
    }
    let metrics = shard.metrics();
    let fast = spec.is_some_and(|s| s.flags.contains(&"fast"));
    metrics
        .latency_monitor
        .record(fast, duration_us, crate::store::unix_ms() / 1000);
    let secret = secret_arguments(spec.map(|s| s.name), args);
    let argv = (0..args.len()).map(|i| if secret(i) { REDACTED } else { args.get(i) });
    metrics
        .slowlog
        .record(duration_us, args.len(), argv, addr, name);
}

/// Which arguments of a command are passwords, which Redis never logs.
fn secret_arguments<'a>(name: Option<&'static str>, args: &'a Args) -> impl Fn(usize) -> bool + 'a {
    let auth_at = match name {
        Some("auth") => Some(0),
        Some("hello") => (2..args.len()).find(|&i| args.is(i, "AUTH")),
        _ => None,
    };
    move |i| match (name, auth_at) {
        (Some("auth"), _) => i >= 1,
        (Some("hello"), Some(at)) => i == at + 1 || i == at + 2,
        _ => false,
    }
}

pub async fn slowlog(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"GET", 2 | 3) => {
            let mut count = 10usize;
            if args.len() == 3 {
                match args.int(2) {
                    Ok(-1) => count = usize::MAX,
                    Ok(n) if n >= 0 => count = n as usize,
                    _ => return out.error("ERR count should be greater than or equal to -1"),
                }
            }
            let per_shard = crate::coord::all(shard, move |s: &Shard| {
                let log = &s.metrics().slowlog;
                (log.newest(count), log.max_len())
            })
            .await;
            let max_len = per_shard.iter().map(|(_, m)| *m).max().unwrap_or(0);
            let entries = merge_newest(
                per_shard.into_iter().map(|(e, _)| e).collect(),
                count.min(max_len.min(usize::MAX as u64) as usize),
            );
            out.array(entries.len());
            for entry in &entries {
                write_entry(entry, out);
            }
        }
        (b"LEN", 2) => {
            let lens = crate::coord::all(shard, |s: &Shard| {
                let log = &s.metrics().slowlog;
                (log.len() as u64, log.max_len())
            })
            .await;
            let total: u64 = lens.iter().map(|(len, _)| len).sum();
            let max_len = lens.iter().map(|(_, m)| *m).max().unwrap_or(0);
            out.int(total.min(max_len) as i64);
        }
        (b"RESET", 2) => {
            crate::coord::all(shard, |s: &Shard| s.metrics().slowlog.reset()).await;
            out.ok();
        }
        (b"HELP", 2) => help_reply(
            out,
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        ),
        (b"GET", _) => out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(args.get(1))
        )),
        (b"LEN" | b"RESET" | b"HELP", _) => subcommand_arity(out, "slowlog", &sub),
        _ => unknown_subcommand(out, "SLOWLOG", args.get(1)),
    }
}

fn write_entry(entry: &SlowEntry, out: &mut Vec<u8>) {
    out.array(6);
    out.int(entry.id as i64);
    out.int(entry.unix_secs as i64);
    out.int(entry.duration_us as i64);
    out.array(entry.argv.len());
    for arg in &entry.argv {
        out.bulk(arg);
    }
    out.bulk(entry.addr.as_bytes());
    out.bulk(&entry.name);
}
