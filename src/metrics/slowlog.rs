//! The slow log of one shard: commands whose latency reached
//! `slowlog-log-slower-than`, newest first, at most `slowlog-max-len` of
//! them. Only a slow command pays for copying its arguments; SLOWLOG GET
//! merges every shard's entries newest first.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// As Redis: at most this many arguments are kept, the last one standing
/// for the rest ("... (N more arguments)").
pub const MAX_ARGC: usize = 32;
/// As Redis: longer arguments are cut to this many bytes plus
/// "... (N more bytes)".
pub const MAX_ARG_BYTES: usize = 128;

pub const DEFAULT_SLOWER_THAN_US: i64 = 10_000;
pub const DEFAULT_MAX_LEN: u64 = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowEntry {
    /// Unique across shards and growing with time, so that "newest first"
    /// and "highest id first" agree (tools watch the newest id).
    pub id: u64,
    pub unix_secs: u64,
    pub duration_us: u64,
    pub argv: Vec<Box<[u8]>>,
    pub addr: String,
    pub name: Vec<u8>,
}

pub struct SlowLog {
    entries: RefCell<VecDeque<SlowEntry>>,
    /// Microseconds; negative disables the log, 0 logs every command.
    slower_than_us: Cell<i64>,
    max_len: Cell<u64>,
    last_stamp: Cell<u64>,
    /// (this shard, number of shards): ids are `stamp * shards + shard`.
    origin: Cell<(u64, u64)>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            entries: RefCell::new(VecDeque::new()),
            slower_than_us: Cell::new(DEFAULT_SLOWER_THAN_US),
            max_len: Cell::new(DEFAULT_MAX_LEN),
            last_stamp: Cell::new(0),
            origin: Cell::new((0, 1)),
        }
    }
}

/// One instant all shards measure entry ids from, so ids of different
/// shards compare by time.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl SlowLog {
    pub fn set_origin(&self, shard: usize, nshards: usize) {
        self.origin.set((shard as u64, nshards.max(1) as u64));
    }

    pub fn slower_than_us(&self) -> i64 {
        self.slower_than_us.get()
    }

    pub fn set_slower_than_us(&self, us: i64) {
        self.slower_than_us.set(us);
    }

    pub fn max_len(&self) -> u64 {
        self.max_len.get()
    }

    pub fn set_max_len(&self, len: u64) {
        self.max_len.set(len);
        self.entries
            .borrow_mut()
            .truncate(len.min(usize::MAX as u64) as usize);
    }

    /// Latency (ns) from which a command is logged; None when disabled.
    pub fn threshold_ns(&self) -> Option<u64> {
        let us = self.slower_than_us.get();
        (us >= 0 && self.max_len.get() > 0).then(|| (us as u64).saturating_mul(1000))
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn reset(&self) {
        self.entries.borrow_mut().clear();
    }

    /// Logs a command if it was slow enough. `argv` yields the command's
    /// arguments, name first.
    pub fn record<'a>(
        &self,
        duration_us: u64,
        argc: usize,
        argv: impl Iterator<Item = &'a [u8]>,
        addr: &str,
        name: &[u8],
    ) {
        let Some(threshold) = self.threshold_ns() else {
            return;
        };
        if duration_us.saturating_mul(1000) < threshold {
            return;
        }
        // Strictly increasing per shard; the shard index in the low digits
        // keeps ids of different shards apart.
        let stamp = (epoch().elapsed().as_micros() as u64).max(self.last_stamp.get() + 1);
        self.last_stamp.set(stamp);
        let entry = SlowEntry {
            id: {
                let (shard, nshards) = self.origin.get();
                stamp * nshards + shard
            },
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            duration_us,
            argv: truncated_argv(argc, argv),
            addr: addr.to_string(),
            name: name.to_vec(),
        };
        let mut entries = self.entries.borrow_mut();
        entries.push_front(entry);
        entries.truncate(self.max_len.get().min(usize::MAX as u64) as usize);
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<SlowEntry> {
        self.entries.borrow().iter().take(count).cloned().collect()
    }
}

fn truncated_argv<'a>(argc: usize, argv: impl Iterator<Item = &'a [u8]>) -> Vec<Box<[u8]>> {
    let kept = argc.min(MAX_ARGC);
    let mut out = Vec::with_capacity(kept);
    for (i, arg) in argv.take(kept).enumerate() {
        if kept < argc && i == kept - 1 {
            out.push(
                format!("... ({} more arguments)", argc - kept + 1)
                    .into_bytes()
                    .into(),
            );
        } else if arg.len() > MAX_ARG_BYTES {
            let mut cut = arg[..MAX_ARG_BYTES].to_vec();
            cut.extend_from_slice(
                format!("... ({} more bytes)", arg.len() - MAX_ARG_BYTES).as_bytes(),
            );
            out.push(cut.into());
        } else {
            out.push(arg.into());
        }
    }
    out
}

/// Merges the shards' logs: the newest `count` entries of all, newest first.
pub fn merge_newest(per_shard: Vec<Vec<SlowEntry>>, count: usize) -> Vec<SlowEntry> {
    let mut all: Vec<SlowEntry> = per_shard.into_iter().flatten().collect();
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(count);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_one(log: &SlowLog, shard: usize, us: u64, argv: &[&[u8]]) {
        log.set_origin(shard, 2);
        log.record(us, argv.len(), argv.iter().copied(), "127.0.0.1:1", b"");
    }

    #[test]
    fn threshold_bounds_and_order() {
        let log = SlowLog::default();
        log.set_slower_than_us(100);
        log_one(&log, 0, 99, &[b"get", b"a"]);
        assert!(log.is_empty(), "below the threshold");
        log_one(&log, 0, 100, &[b"get", b"a"]);
        log_one(&log, 0, 500, &[b"get", b"b"]);
        let got = log.newest(10);
        assert_eq!(got.len(), 2);
        assert_eq!(&*got[0].argv[1], b"b", "newest first");
        assert!(got[0].id > got[1].id);
        assert_eq!(got[0].id % 2, 0, "shard 0 of 2");
        log.set_max_len(1);
        assert_eq!(log.len(), 1);
        log_one(&log, 0, 500, &[b"get", b"c"]);
        assert_eq!(log.len(), 1);
        assert_eq!(&*log.newest(5)[0].argv[1], b"c");
        log.set_slower_than_us(-1);
        log_one(&log, 0, 1_000_000, &[b"get", b"d"]);
        assert_eq!(&*log.newest(5)[0].argv[1], b"c", "negative disables");
        log.set_max_len(0);
        assert!(log.is_empty());
    }

    #[test]
    fn arguments_are_cut_like_redis() {
        let long = vec![b'x'; 200];
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("a{i}").into_bytes()).collect();
        let mut argv: Vec<&[u8]> = vec![b"mset", &long];
        argv.extend(many.iter().map(|a| a.as_slice()));
        let cut = truncated_argv(argv.len(), argv.iter().copied());
        assert_eq!(cut.len(), 32);
        let mut want = vec![b'x'; 128];
        want.extend_from_slice(b"... (72 more bytes)");
        assert_eq!(&*cut[1], &want[..]);
        assert_eq!(&*cut[31], b"... (11 more arguments)");
        assert_eq!(&*cut[30], b"a28");
    }

    #[test]
    fn merge_is_newest_first_across_shards() {
        let a = SlowLog::default();
        let b = SlowLog::default();
        a.set_slower_than_us(0);
        b.set_slower_than_us(0);
        // Ids order entries by microsecond; entries of two shards within
        // the same microsecond have no order between them.
        let tick = || std::thread::sleep(std::time::Duration::from_millis(1));
        log_one(&a, 0, 1, &[b"one"]);
        tick();
        log_one(&b, 1, 1, &[b"two"]);
        tick();
        log_one(&a, 0, 1, &[b"three"]);
        let merged = merge_newest(vec![a.newest(10), b.newest(10)], 2);
        let names: Vec<&[u8]> = merged.iter().map(|e| &*e.argv[0]).collect();
        assert_eq!(names, vec![&b"three"[..], &b"two"[..]]);
    }
}
