//! The process allocator (jemalloc, as in Redis) and every memory figure
//! that comes from it. This is the one module that talks to jemalloc
//! (`mallctl`); the rest of the crate asks it for:
//!
//! - [`shard_used_bytes`]: the calling shard's true allocated bytes, cheap
//!   enough for every write (the eviction budget);
//! - [`process_memory`]: process-wide allocated / active / resident /
//!   retained bytes and RSS (INFO memory, `/metrics`, MEMORY STATS);
//! - [`purge`] (MEMORY PURGE) and [`malloc_stats`] (MEMORY MALLOC-STATS).
//!
//! # Per-shard figures
//!
//! Each shard executor gets its own jemalloc arena ([`bind_shard_arena`],
//! `arenas.create` + `thread.arena`), so everything its thread allocates
//! lives in that arena, and a block freed on another core still goes back
//! to it. The arena's `small.allocated + large.allocated` is therefore
//! exact per shard, whoever frees. (What a shard's thread allocates is what
//! it owns: commands for another shard arrive as argument slices and the
//! owner copies what it stores, so the keyspace lands in its owner's
//! arena; mesh batches and reply buffers in flight are the small rest.)
//!
//! Reading it costs an `epoch` refresh, which merges every arena's
//! statistics: 20-30 µs with a server's dozen arenas (the
//! `calibration_cost` test prints it), far too much per command.
//! jemalloc's per-thread counters (`thread.allocatedp` /
//! `thread.deallocatedp`) cost two loads, but drift: a block allocated on
//! one core and freed on another (a reply buffer grown by the owner shard
//! and dropped by the connection's core) counts as allocated on the first
//! and freed on the second, forever. So a shard's figure is the exact
//! arena figure of the last calibration plus the thread's net allocations
//! since; [`calibrate`] runs on each shard's own timer every
//! [`CALIBRATE_EVERY`], which bounds the drift to the cross-core traffic
//! of one period. On the data path everything is thread-local (no locks,
//! no shared atomics); only the calibration takes jemalloc's global
//! statistics lock.
//!
//! Allocated bytes include capacity reserved but not yet touched, which
//! RSS does not. The key table therefore grows its entry array in eighths
//! (`store::grow_gently`) rather than doubling it as indexmap would: with
//! doubling, 1M string keys on 2 shards counted ~45% more than RSS grew;
//! now every type is within ±3% (`tests/memory_alloc.rs` holds them to
//! ±10%).
//!
//! # Freeing large values
//!
//! With the system allocator, freeing a large block was one `munmap` of
//! ~1 ms per 15 MB, and lazy free had to park such blocks and unmap them in
//! steps. jemalloc keeps freed extents dirty and purges them by decay in
//! small steps (`dirty_decay_ms`, 10 s), so a large free costs no syscall
//! and the parking is gone; tests/lazyfree.rs measures the PING latency
//! while a multi-million-member set is freed.

use std::cell::Cell;
use std::time::Duration;

use tikv_jemalloc_ctl::raw;

/// The process allocator.
pub(crate) type Allocator = tikv_jemallocator::Jemalloc;

/// How often each shard replaces its running figure with its arena's
/// exact one (`calibrate`). Every 10 ms cost a measurable few % of GET/SET
/// CPU in a noisy measurement (the refresh merges every arena's
/// statistics); what drifts in 100 ms is the reply and batch buffers of
/// 100 ms of cross-core traffic, small next to any memory budget.
pub(crate) const CALIBRATE_EVERY: Duration = Duration::from_millis(100);

/// jemalloc's MALLCTL_ARENAS_ALL: "every arena" in `arena.<i>.*` names.
const ARENAS_ALL: usize = 4096;

/// A shard thread's arena and its running figure.
#[derive(Clone, Copy)]
struct ShardArena {
    /// jemalloc's per-thread byte counters of this thread.
    allocated: *const u64,
    deallocated: *const u64,
    /// `stats.arenas.<arena>.{small,large}.allocated`, resolved once.
    small_mib: [usize; 5],
    large_mib: [usize; 5],
    /// The arena's exact bytes at the last calibration, and the thread's
    /// net counter at that moment.
    base: u64,
    base_net: u64,
}

thread_local! {
    static SHARD: Cell<Option<ShardArena>> = const { Cell::new(None) };
}

fn thread_net(a: &ShardArena) -> u64 {
    // SAFETY: both point to this thread's jemalloc counters, valid for the
    // thread's life (thread.allocatedp's contract); volatile because
    // jemalloc updates them behind the compiler's back.
    unsafe {
        std::ptr::read_volatile(a.allocated).wrapping_sub(std::ptr::read_volatile(a.deallocated))
    }
}

/// Gives the calling thread (a shard executor, once, at its start) an
/// arena of its own, so that [`shard_used_bytes`] is exact for it. Returns
/// the arena index, or None if jemalloc refused (the figures then fall
/// back to 0 for the shard, and process-wide figures stay true).
pub(crate) fn bind_shard_arena() -> Option<u32> {
    // SAFETY: mallctl names and value types as jemalloc documents them
    // (arenas.create, thread.arena: unsigned; thread.allocatedp,
    // thread.deallocatedp: uint64_t *).
    let arena = unsafe { raw::read::<u32>(b"arenas.create\0") }.ok()?;
    unsafe { raw::write::<u32>(b"thread.arena\0", arena) }.ok()?;
    let allocated = unsafe { raw::read::<*const u64>(b"thread.allocatedp\0") }.ok()?;
    let deallocated = unsafe { raw::read::<*const u64>(b"thread.deallocatedp\0") }.ok()?;
    let mib = |name: &[u8]| {
        let mut mib = [0usize; 5];
        raw::name_to_mib(name, &mut mib).ok()?;
        mib[2] = arena as usize;
        Some(mib)
    };
    let mut a = ShardArena {
        allocated,
        deallocated,
        small_mib: mib(b"stats.arenas.0.small.allocated\0")?,
        large_mib: mib(b"stats.arenas.0.large.allocated\0")?,
        base: 0,
        base_net: 0,
    };
    a.base_net = thread_net(&a);
    SHARD.set(Some(a));
    calibrate();
    Some(arena)
}

/// The calling shard's allocated bytes: exact as of the last calibration
/// (at most [`CALIBRATE_EVERY`] ago) plus what this thread allocated net
/// since. Two thread-local loads; cheap enough for every write. 0 on a
/// thread without a shard arena.
pub(crate) fn shard_used_bytes() -> usize {
    SHARD.with(|s| match s.get() {
        Some(a) => {
            let delta = thread_net(&a).wrapping_sub(a.base_net) as i64;
            a.base.saturating_add_signed(delta) as usize
        }
        None => 0,
    })
}

/// Replaces the calling shard's running figure by its arena's exact bytes
/// (an `epoch` refresh: microseconds, so on a timer, never per command).
pub(crate) fn calibrate() {
    let Some(mut a) = SHARD.with(Cell::get) else {
        return;
    };
    refresh();
    // SAFETY: documented size_t statistics, by the MIBs jemalloc resolved.
    let read = |mib: &[usize]| unsafe { raw::read_mib::<usize>(mib) }.ok();
    if let (Some(small), Some(large)) = (read(&a.small_mib), read(&a.large_mib)) {
        a.base = (small + large) as u64;
        a.base_net = thread_net(&a);
        SHARD.set(Some(a));
    }
}

/// Refreshes jemalloc's statistics snapshot (they are read as of the
/// last `epoch`).
fn refresh() {
    static EPOCH: std::sync::OnceLock<Option<[usize; 1]>> = std::sync::OnceLock::new();
    let mib = EPOCH.get_or_init(|| {
        let mut mib = [0usize; 1];
        raw::name_to_mib(b"epoch\0", &mut mib).ok().map(|()| mib)
    });
    if let Some(mib) = mib {
        // SAFETY: writing any u64 to `epoch` refreshes the statistics.
        let _ = unsafe { raw::write_mib::<u64>(mib, 1) };
    }
}

/// Process-wide figures (INFO memory, `/metrics`, MEMORY STATS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Bytes the program holds (jemalloc `stats.allocated`): Redis'
    /// `used_memory` and `allocator_allocated`.
    pub allocated: u64,
    /// Bytes in active pages (`stats.active`): allocated plus the unused
    /// parts of pages in use (`allocator_active`).
    pub active: u64,
    /// Bytes in physically resident pages the allocator maps, including
    /// dirty pages not purged yet (`stats.resident`, `allocator_resident`).
    pub resident: u64,
    /// Bytes retained as virtual memory for reuse, not resident
    /// (`stats.retained`).
    pub retained: u64,
    /// The process' resident set size (/proc/self/statm).
    pub rss: u64,
}

/// Process-wide figures, fresh (an `epoch` refresh and a /proc read: for
/// INFO and scrapes, not per command).
pub fn process_memory() -> ProcessMemory {
    refresh();
    let read = |name: &[u8]| {
        // SAFETY: documented size_t statistics.
        unsafe { raw::read::<usize>(name) }.unwrap_or(0) as u64
    };
    ProcessMemory {
        allocated: read(b"stats.allocated\0"),
        active: read(b"stats.active\0"),
        resident: read(b"stats.resident\0"),
        retained: read(b"stats.retained\0"),
        rss: rss_bytes(),
    }
}

/// The process' resident set size in bytes.
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * page_size() as u64
}

pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as usize } else { 4096 }
    })
}

/// "jemalloc-5.3.1": INFO's `mem_allocator`, as Redis prints it.
pub fn allocator_name() -> String {
    // SAFETY: `version` is a documented const char * statistic.
    let version = unsafe { raw::read_str(b"version\0") }.unwrap_or(b"");
    let version = String::from_utf8_lossy(version);
    // jemalloc's version is "5.3.1-0-g<commit>"; Redis shows the release.
    let release = version.split('-').next().unwrap_or("");
    format!("jemalloc-{release}")
}

/// Turns jemalloc's background purge thread on or off (`jemalloc-bg-thread`,
/// on by default as in Redis). Without it, pages freed while a shard is
/// idle (the old copies of a key table that grew, a flushed keyspace) are
/// returned to the kernel only by later allocation activity, so an idle
/// server's RSS can stay tens of MB above what it holds; with it, one
/// jemalloc thread returns them after `dirty_decay_ms`. It never touches a
/// shard's data: it only madvises pages no one uses. False if jemalloc
/// refused (a build without background threads).
pub fn set_background_thread(on: bool) -> bool {
    // SAFETY: "background_thread" is a bool mallctl.
    unsafe { raw::write(b"background_thread\0", on) }.is_ok()
}

/// Whether jemalloc's background purge thread is on.
pub fn background_thread() -> bool {
    // SAFETY: "background_thread" is a bool mallctl.
    unsafe { raw::read::<bool>(b"background_thread\0") }.unwrap_or(false)
}

/// Returns the dirty pages of every arena to the kernel at once (MEMORY
/// PURGE). The cost grows with what is dirty (a `madvise` over it: ~0.3 s
/// after a 1 GB FLUSHALL), so callers on a shard run it off the core.
pub fn purge() {
    purge_arena(ARENAS_ALL);
    refresh();
}

/// `arena.<arena>.purge`, which takes no value (null pointers: jemalloc
/// refuses a write of a zero-sized one).
fn purge_arena(arena: usize) -> bool {
    let name = format!("arena.{arena}.purge\0");
    // SAFETY: a NUL-terminated name and no old or new value, as this
    // mallctl requires.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        ) == 0
    }
}

/// jemalloc's `malloc_stats_print` report (MEMORY MALLOC-STATS), as
/// Redis returns it.
pub fn malloc_stats() -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tikv_jemalloc_ctl::stats_print::stats_print(&mut out, Default::default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_shard_arena_counts_what_its_thread_holds_even_when_another_thread_frees() {
        std::thread::spawn(|| {
            assert!(bind_shard_arena().is_some());
            let start = shard_used_bytes();
            let blocks: Vec<Vec<u8>> = (0..10_000).map(|_| vec![1u8; 1000]).collect();
            calibrate();
            let grown = shard_used_bytes() - start;
            assert!(
                (10_000_000..11_000_000).contains(&grown),
                "grew by {grown} bytes"
            );
            // Freed on another thread: the thread counters never see it,
            // the arena does at the next calibration.
            std::thread::spawn(move || drop(blocks)).join().unwrap();
            assert!(shard_used_bytes() - start >= 10_000_000);
            calibrate();
            let left = shard_used_bytes().saturating_sub(start);
            assert!(left < 500_000, "{left} bytes left");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_without_a_shard_arena_reads_zero() {
        std::thread::spawn(|| assert_eq!(shard_used_bytes(), 0))
            .join()
            .unwrap();
    }

    #[test]
    fn process_figures_and_reports() {
        let m = process_memory();
        assert!(m.allocated > 0 && m.active >= m.allocated && m.resident >= m.active);
        assert!(m.rss > 0);
        assert!(allocator_name().starts_with("jemalloc-5."));
        let text = String::from_utf8(malloc_stats()).unwrap();
        assert!(text.contains("jemalloc statistics"), "{text}");
        assert!(purge_arena(ARENAS_ALL));
    }

    /// Prints what a calibration and a cheap read cost (see the module
    /// docs); `cargo test --release --lib alloc -- --nocapture`.
    #[test]
    fn calibration_cost() {
        std::thread::spawn(|| {
            bind_shard_arena().unwrap();
            let n = 2000;
            let t = Instant::now();
            for _ in 0..n {
                calibrate();
            }
            let calib = t.elapsed() / n;
            let t = Instant::now();
            let mut sum = 0;
            for _ in 0..n * 100 {
                sum += std::hint::black_box(shard_used_bytes());
            }
            let read = t.elapsed() / (n * 100);
            eprintln!("calibrate {calib:?}, shard_used_bytes {read:?} ({sum})");
        })
        .join()
        .unwrap();
    }
}
