//! What `kora top` shows: rates and latency quantiles over the interval
//! between two scrapes, laid out as text lines. The same lines go to a
//! terminal (with a little emphasis) or, plain, to a pipe.

use std::fmt::Write as _;

use super::scrape::{CommandCounters, Scrape};

/// One command's row: rates over the last interval.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    pub cmd: String,
    pub ops_per_sec: f64,
    pub errors_per_sec: f64,
    /// `None` when the command did not run in the interval.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShardRow {
    pub shard: u32,
    pub up: bool,
    pub keys: f64,
    pub memory_bytes: f64,
    pub ops_per_sec: f64,
}

/// Everything one refresh shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub interval_seconds: f64,
    pub version: String,
    pub uptime_seconds: f64,
    pub ops_per_sec: f64,
    pub keys: f64,
    pub memory_bytes: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    pub connected_clients: f64,
    /// Share of lookups that found a key in the interval, if there were any.
    pub hit_ratio: Option<f64>,
    pub expired_per_sec: f64,
    /// Busiest first; only commands that ran in the interval.
    pub commands: Vec<CommandRow>,
    pub shards: Vec<ShardRow>,
}

/// How much a counter grew; a smaller value means the server restarted,
/// and then everything it counted since is new (as Prometheus' `rate`).
fn growth(previous: f64, current: f64) -> f64 {
    if current >= previous {
        current - previous
    } else {
        current
    }
}

impl Frame {
    pub fn between(previous: &Scrape, current: &Scrape) -> Frame {
        let seconds = current
            .taken_at
            .duration_since(previous.taken_at)
            .as_secs_f64()
            .max(1e-3);
        let per_sec = |before: f64, now: f64| growth(before, now) / seconds;
        let empty = CommandCounters::default();
        let mut commands: Vec<CommandRow> = current
            .commands
            .iter()
            .filter_map(|(cmd, now)| {
                let before = previous.commands.get(cmd).unwrap_or(&empty);
                let calls = growth(before.calls, now.calls);
                if calls <= 0.0 {
                    return None;
                }
                let buckets = bucket_growth(&before.buckets, &now.buckets);
                Some(CommandRow {
                    cmd: cmd.clone(),
                    ops_per_sec: calls / seconds,
                    errors_per_sec: per_sec(before.failed, now.failed),
                    p50_seconds: histogram_quantile(0.5, &buckets),
                    p99_seconds: histogram_quantile(0.99, &buckets),
                })
            })
            .collect();
        commands.sort_by(|a, b| {
            b.ops_per_sec
                .total_cmp(&a.ops_per_sec)
                .then_with(|| a.cmd.cmp(&b.cmd))
        });
        let shards = current
            .shards
            .iter()
            .map(|(&shard, now)| {
                let before = previous.shards.get(&shard).map_or(0.0, |s| s.commands);
                ShardRow {
                    shard,
                    up: now.up,
                    keys: now.keys,
                    memory_bytes: now.memory_bytes,
                    ops_per_sec: per_sec(before, now.commands),
                }
            })
            .collect();
        let hits = growth(previous.hits, current.hits);
        let lookups = hits + growth(previous.misses, current.misses);
        Frame {
            interval_seconds: seconds,
            version: current.version.clone(),
            uptime_seconds: current.uptime_seconds,
            ops_per_sec: commands.iter().map(|c| c.ops_per_sec).sum(),
            keys: current.keys,
            memory_bytes: current.memory_bytes,
            bytes_in_per_sec: per_sec(previous.bytes_in, current.bytes_in),
            bytes_out_per_sec: per_sec(previous.bytes_out, current.bytes_out),
            connected_clients: current.connected_clients,
            hit_ratio: (lookups > 0.0).then(|| hits / lookups),
            expired_per_sec: per_sec(previous.expired, current.expired),
            commands,
            shards,
        }
    }
}

/// Per-bucket growth between two scrapes of one command's histogram. A
/// bucket count that went down means a restart: the whole current
/// histogram is then the interval's.
pub(super) fn bucket_growth(before: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let restarted = now
        .iter()
        .any(|(le, n)| before.iter().any(|(b_le, b_n)| b_le == le && b_n > n));
    now.iter()
        .map(|&(le, n)| {
            let was = if restarted {
                0.0
            } else {
                before
                    .iter()
                    .find(|(b_le, _)| *b_le == le)
                    .map_or(0.0, |b| b.1)
            };
            (le, n - was)
        })
        .collect()
}

/// Prometheus' `histogram_quantile` on cumulative `(le, count)` buckets
/// sorted by `le`: linear interpolation inside the bucket holding the rank,
/// the lowest bucket starting at 0, and the highest finite bound when the
/// rank falls in `+Inf`.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_le, total) = buckets.last()?;
    if !last_le.is_infinite() || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let index = buckets.iter().position(|&(_, n)| n >= rank)?;
    if index == buckets.len() - 1 {
        return buckets.len().checked_sub(2).map(|i| buckets[i].0);
    }
    let (upper, count) = buckets[index];
    let (lower, below) = if index == 0 {
        (0.0, 0.0)
    } else {
        buckets[index - 1]
    };
    if count - below <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

pub fn format_duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".to_string(),
        Some(s) if s < 1e-3 => format!("{:.1}us", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn format_rate(per_sec: f64) -> String {
    // An empty f64 sum is -0.0, which would print as "-0".
    let per_sec = per_sec + 0.0;
    if per_sec >= 100.0 || per_sec == 0.0 {
        format!("{per_sec:.0}")
    } else {
        format!("{per_sec:.1}")
    }
}

fn format_uptime(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match (s / 86400, s / 3600 % 24, s / 60 % 60) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m{:02}s", s % 60),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, h, _) => format!("{d}d{h:02}h"),
    }
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", 100.0 * part / whole)
    } else {
        "-".to_string()
    }
}

/// A key as an operator can read it: printable ASCII as is, other bytes
/// as `\xNN`, cut to `width` characters.
pub fn display_key(key: &[u8], width: usize) -> String {
    let mut out = String::new();
    for &b in key {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if out.len() > width {
        out.truncate(width.saturating_sub(3));
        out.push_str("...");
    }
    out
}

/// What the view renders besides the frame.
pub struct Context<'a> {
    pub target: &'a str,
    pub clock: &'a str,
    pub hotkeys: &'a Result<Vec<(Vec<u8>, i64)>, String>,
    /// How many command rows fit; the rest are summed into one line.
    pub max_command_rows: usize,
}

/// A line of the view; `heading` lines are emphasized on a terminal.
pub struct Line {
    pub text: String,
    pub heading: bool,
}

fn text(s: String) -> Line {
    Line {
        text: s,
        heading: false,
    }
}

fn heading(s: String) -> Line {
    Line {
        text: s,
        heading: true,
    }
}

pub fn title(ctx: &Context<'_>, version: &str, uptime: Option<f64>, every: f64) -> Line {
    let mut s = format!("kora top - {}", ctx.target);
    if !version.is_empty() {
        let _ = write!(s, " - kora {version}");
    }
    if let Some(up) = uptime {
        let _ = write!(s, ", up {}", format_uptime(up));
    }
    let _ = write!(s, " - {} - every {every:.1}s, q quits", ctx.clock);
    heading(s)
}

pub fn render(frame: &Frame, ctx: &Context<'_>, every: f64) -> Vec<Line> {
    let mut lines = vec![title(
        ctx,
        &frame.version,
        Some(frame.uptime_seconds),
        every,
    )];
    lines.push(text(format!(
        "ops/s {}  clients {}  keys {}  memory {}  net in {}/s out {}/s  hits {}  expired/s {}",
        format_rate(frame.ops_per_sec),
        frame.connected_clients,
        frame.keys,
        format_bytes(frame.memory_bytes),
        format_bytes(frame.bytes_in_per_sec),
        format_bytes(frame.bytes_out_per_sec),
        frame
            .hit_ratio
            .map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r)),
        format_rate(frame.expired_per_sec),
    )));
    lines.push(text(String::new()));

    lines.push(heading(format!(
        "{:<10} {:>10} {:>7} {:>10} {:>10} {:>9}",
        "CMD", "OPS/S", "OPS%", "P50", "P99", "ERR/S"
    )));
    let shown = frame.commands.len().min(ctx.max_command_rows.max(1));
    for row in &frame.commands[..shown] {
        lines.push(text(format!(
            "{:<10} {:>10} {:>7} {:>10} {:>10} {:>9}",
            row.cmd,
            format_rate(row.ops_per_sec),
            percent(row.ops_per_sec, frame.ops_per_sec),
            format_duration(row.p50_seconds),
            format_duration(row.p99_seconds),
            format_rate(row.errors_per_sec),
        )));
    }
    if frame.commands.len() > shown {
        let rest = &frame.commands[shown..];
        lines.push(text(format!(
            "{:<10} {:>10}  ({} more commands)",
            "...",
            format_rate(rest.iter().map(|c| c.ops_per_sec).sum()),
            rest.len()
        )));
    }
    if frame.commands.is_empty() {
        lines.push(text("(no commands in the last interval)".to_string()));
    }
    lines.push(text(String::new()));

    lines.push(heading(format!(
        "{:<6} {:<5} {:>12} {:>7} {:>10} {:>7} {:>11}",
        "SHARD", "STATE", "KEYS", "KEYS%", "OPS/S", "OPS%", "MEMORY"
    )));
    let shard_keys: f64 = frame.shards.iter().map(|s| s.keys).sum();
    let shard_ops: f64 = frame.shards.iter().map(|s| s.ops_per_sec).sum();
    for s in &frame.shards {
        lines.push(text(format!(
            "{:<6} {:<5} {:>12} {:>7} {:>10} {:>7} {:>11}",
            s.shard,
            if s.up { "up" } else { "DOWN" },
            s.keys,
            percent(s.keys, shard_keys),
            format_rate(s.ops_per_sec),
            percent(s.ops_per_sec, shard_ops),
            format_bytes(s.memory_bytes),
        )));
    }
    lines.push(text(String::new()));

    lines.push(heading(
        "HOTKEYS (accesses since entering the top-K, halved every hotkeys_decay_ms)".to_string(),
    ));
    match ctx.hotkeys {
        Ok(keys) if keys.is_empty() => lines.push(text("(none yet)".to_string())),
        Ok(keys) => {
            for (rank, (key, count)) in keys.iter().enumerate() {
                lines.push(text(format!(
                    "{:>3}  {:<48} {:>12}",
                    rank + 1,
                    display_key(key, 48),
                    count
                )));
            }
        }
        Err(e) => lines.push(text(format!("(HOTKEYS failed: {e})"))),
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::top::scrape::ShardCounters;

    #[test]
    fn quantiles_match_prometheus_histogram_quantile() {
        // The numbers of tools/alerts.test.yml: 100 calls, 50 <= 1 ms,
        // 90 <= 10 ms, all <= 25 ms. Prometheus gives p99 = 23.5 ms.
        let b = [
            (0.001, 50.0),
            (0.01, 90.0),
            (0.025, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((histogram_quantile(0.99, &b).unwrap() - 0.0235).abs() < 1e-12);
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.001).abs() < 1e-12);
        assert!((histogram_quantile(0.25, &b).unwrap() - 0.0005).abs() < 1e-12);
        // Rank in +Inf: the highest finite bound.
        let b = [(0.001, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &b), Some(0.001));
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[(0.1, 3.0)]), None);
    }

    fn scrape(at: Instant, get_calls: f64, get_buckets: &[(f64, f64)], shard_cmds: f64) -> Scrape {
        let mut commands = BTreeMap::new();
        commands.insert(
            "get".to_string(),
            CommandCounters {
                calls: get_calls,
                failed: 0.0,
                buckets: get_buckets.to_vec(),
            },
        );
        let mut shards = BTreeMap::new();
        shards.insert(
            0,
            ShardCounters {
                up: true,
                keys: 5.0,
                memory_bytes: 100.0,
                commands: shard_cmds,
            },
        );
        Scrape {
            taken_at: at,
            commands,
            shards,
            keys: 5.0,
            memory_bytes: 100.0,
            bytes_in: 1000.0 * get_calls,
            bytes_out: 0.0,
            connected_clients: 1.0,
            hits: get_calls,
            misses: 0.0,
            expired: 0.0,
            uptime_seconds: 10.0,
            version: "0.1.0".into(),
            cluster: Default::default(),
        }
    }

    #[test]
    fn frame_rates_and_quantiles_cover_only_the_interval() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // Before: 100 slow calls (all in the 10 ms bucket). In the
        // interval: 200 fast calls (all <= 10 us).
        let before = scrape(
            t0,
            100.0,
            &[(0.00001, 0.0), (0.01, 100.0), (f64::INFINITY, 100.0)],
            100.0,
        );
        let after = scrape(
            t1,
            300.0,
            &[(0.00001, 200.0), (0.01, 300.0), (f64::INFINITY, 300.0)],
            300.0,
        );
        let f = Frame::between(&before, &after);
        assert_eq!(f.commands.len(), 1);
        let get = &f.commands[0];
        assert_eq!(get.ops_per_sec, 100.0);
        assert!(get.p99_seconds.unwrap() <= 0.00001, "{get:?}");
        assert_eq!(f.ops_per_sec, 100.0);
        assert_eq!(f.shards[0].ops_per_sec, 100.0);
        assert_eq!(f.bytes_in_per_sec, 100_000.0);
        assert_eq!(f.hit_ratio, Some(1.0));
        // Idle interval: no command rows, no hit ratio.
        let idle = Frame::between(
            &after,
            &scrape(
                t1 + Duration::from_secs(1),
                300.0,
                &after.commands["get"].buckets,
                300.0,
            ),
        );
        assert!(idle.commands.is_empty());
        assert_eq!(idle.hit_ratio, None);
    }

    #[test]
    fn restarted_server_counts_from_zero() {
        let t0 = Instant::now();
        let before = scrape(
            t0,
            1000.0,
            &[(0.001, 1000.0), (f64::INFINITY, 1000.0)],
            1000.0,
        );
        let after = scrape(
            t0 + Duration::from_secs(1),
            10.0,
            &[(0.001, 10.0), (f64::INFINITY, 10.0)],
            10.0,
        );
        let f = Frame::between(&before, &after);
        assert_eq!(f.commands[0].ops_per_sec, 10.0);
        assert!(f.commands[0].p50_seconds.unwrap() <= 0.001);
        assert_eq!(f.shards[0].ops_per_sec, 10.0);
    }

    #[test]
    fn keys_are_escaped_and_cut() {
        assert_eq!(display_key(b"user:1", 20), "user:1");
        assert_eq!(display_key(b"a\x00\xffb", 20), "a\\x00\\xffb");
        assert_eq!(display_key(&[b'k'; 100], 10), "kkkkkkk...");
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Some(0.0000123)), "12.3us");
        assert_eq!(format_duration(Some(0.0235)), "23.50ms");
        assert_eq!(format_duration(Some(2.5)), "2.50s");
        assert_eq!(format_duration(None), "-");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_rate(12.34), "12.3");
        assert_eq!(format_rate([0.0f64; 0].iter().sum()), "0");
        assert_eq!(format_rate(1234.4), "1234");
        assert_eq!(format_uptime(3725.0), "1h02m");
    }
}
