//! Lazy freeing: the values UNLINK detaches and the whole tables FLUSHALL
//! ASYNC / FLUSHDB ASYNC detach, queued on their shard and freed later in
//! bounded slices by a task on the same core (`spawn_housekeeping` in
//! src/shard/runtime.rs), so that no single command stalls a core for the
//! time a large value takes to free (Redis' lazy-free, without its
//! background thread: freeing stays on the core that allocated).
//!
//! Accounting follows Redis: the key is gone at once, but its value's
//! bytes stay in `Db::mem_used` (INFO used_memory) until they are actually
//! freed; each element's cost is subtracted as it is dropped, so `mem_used`
//! always equals the keyspace plus what is still queued (`Db::mem_recomputed`
//! counts both). `pending_objects` is INFO's `lazyfree_pending_objects`
//! (values, or keys of a detached table, not yet freed) and `freed_objects`
//! INFO's `lazyfreed_objects`.
//!
//! Large buffers are given back to the kernel in steps too: the drained
//! front of an element buffer while it drains (`Release`), and blocks of
//! 4 MB or more freed during a slice (a hash index, a drained buffer) are
//! parked by the process allocator and unmapped a few MB per slice.
//!
//! Calls into the process allocator (`crate::alloc`), which in turn asks this
//! file for the page size: the two are one mechanism split over two files.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::{Entry, Hasher, Key, StrValue, Value, cost, entry_overhead, entry_size, value_size};

/// Values with at most this many elements are freed at once, as Redis'
/// LAZYFREE_THRESHOLD: queuing them would cost more than freeing them.
pub const LAZYFREE_THRESHOLD: usize = 64;
/// Most elements one slice frees before yielding the core.
pub const SLICE_ELEMENTS: usize = 64 * 1024;
/// Most time one slice spends freeing before yielding the core (checked
/// every `CHUNK` elements).
pub const SLICE_TIME: Duration = Duration::from_millis(1);
/// Elements freed between two clock reads.
const CHUNK: usize = 1024;
/// Bytes of parked large blocks (src/alloc.rs) given back per slice:
/// about half a millisecond of unmapping.
const RELEASE_PER_SLICE: usize = 8 << 20;

/// How many elements freeing `value` touches: Redis' "free effort". A
/// string is one allocation, freed inline whatever its length, as in Redis.
pub fn free_effort(value: &Value) -> usize {
    match value {
        Value::Str(_) => 1,
        Value::List(l) => l.len(),
        Value::Hash(h) => h.len(),
        Value::Set(s) => s.len(),
    }
}

/// Something queued for freeing. Detached values and tables are queued as
/// they are (O(1) for UNLINK) and turned into draining iterators on their
/// first slice. That conversion frees a set's or hash's index table, one
/// allocation whose release would cost ~1.3 ms per million elements at
/// once; inside a slice it is parked and given back in steps instead
/// (src/alloc.rs).
enum Pending {
    Value(Value),
    List(VecDeque<Box<[u8]>>, Release),
    Hash(indexmap::map::IntoIter<Box<[u8]>, Box<[u8]>>, Release),
    Set(indexmap::set::IntoIter<Box<[u8]>>, Release),
    Table(IndexMap<Key, Entry, Hasher>),
    TableIter(indexmap::map::IntoIter<Key, Entry>, Release),
    /// A flushed table's TTL index (positions and times, no accounting of
    /// its own: `cost::EXPIRE` is counted with each entry).
    Positions(IndexMap<usize, u64, Hasher>),
}

impl Pending {
    /// Accounted bytes not freed yet (for `Db::mem_recomputed`).
    fn remaining_bytes(&self) -> usize {
        match self {
            Pending::Value(v) => value_size(v),
            Pending::List(l, _) => {
                cost::CONTAINER + l.iter().map(|e| cost::LIST_ELEM + e.len()).sum::<usize>()
            }
            Pending::Hash(it, _) => {
                cost::CONTAINER
                    + it.as_slice()
                        .iter()
                        .map(|(f, v)| cost::HASH_FIELD + f.len() + v.len())
                        .sum::<usize>()
            }
            Pending::Set(it, _) => {
                cost::CONTAINER
                    + it.as_slice()
                        .iter()
                        .map(|m| cost::SET_MEMBER + m.len())
                        .sum::<usize>()
            }
            Pending::Table(map) => map.iter().map(|(k, e)| entry_size(k, e)).sum(),
            Pending::TableIter(it, _) => it.as_slice().iter().map(|(k, e)| entry_size(k, e)).sum(),
            Pending::Positions(_) => 0,
        }
    }
}

/// Gives the pages of a large buffer's drained front back to the kernel
/// while it drains, so that freeing the (by then empty) buffer at the end
/// is a cheap unmap instead of one stall of ~1 ms per 25 MB.
#[derive(Default)]
struct Release {
    /// Address up to which pages were released; 0 before the first call.
    done: usize,
}

/// Bytes an element's address may lie past the start of the slot holding
/// it (indexmap stores a hash next to each key).
const SLOT_MARGIN: usize = 128;
/// Released in steps of at least this much, to keep syscalls rare.
const RELEASE_STEP: usize = 1 << 20;

pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as usize } else { 4096 }
    })
}

impl Release {
    /// `next` is the address of the first element still in the buffer
    /// (None once it is empty). Everything below it, from where the
    /// previous call left off, has been moved out and is never read again.
    fn advance(&mut self, next: Option<usize>) {
        let Some(next) = next else { return };
        let page = page_size();
        if self.done == 0 || next < self.done {
            // First call, or a ring buffer wrapped around: start here.
            self.done = next.next_multiple_of(page);
            return;
        }
        let end = next.saturating_sub(SLOT_MARGIN) / page * page;
        if end >= self.done + RELEASE_STEP {
            // SAFETY: [done, end) lies inside the buffer of the collection
            // being drained (both ends are element addresses of that one
            // allocation, rounded inwards), and every slot wholly in it was
            // moved out already: neither the collection nor the allocator
            // reads these bytes again (the allocator's own header precedes
            // the buffer). MADV_DONTNEED only drops their pages; they read
            // as zeros if touched, and unmapping the buffer later is valid.
            unsafe {
                libc::madvise(
                    self.done as *mut libc::c_void,
                    end - self.done,
                    libc::MADV_DONTNEED,
                );
            }
            self.done = end;
        }
    }
}

/// A shard's lazy-free queue.
#[derive(Default)]
pub struct LazyFree {
    queue: VecDeque<Pending>,
    pending_objects: usize,
    freed_objects: u64,
    /// The freeing task, parked while the queue is empty.
    waker: Option<Waker>,
}

impl LazyFree {
    pub fn pending_objects(&self) -> usize {
        self.pending_objects
    }

    pub fn freed_objects(&self) -> u64 {
        self.freed_objects
    }

    /// Nothing queued and no large block parked (src/alloc.rs).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && !crate::alloc::has_parked()
    }

    /// Parks the freeing task until something is queued.
    pub fn set_waker(&mut self, waker: &Waker) {
        self.waker = Some(waker.clone());
    }

    fn push(&mut self, item: Pending, objects: usize) {
        self.queue.push_back(item);
        self.pending_objects += objects;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Queues a detached value (its bytes stay counted until freed).
    pub fn push_value(&mut self, value: Value) {
        self.push(Pending::Value(value), 1);
    }

    /// Queues a detached keyspace and its TTL index.
    pub fn push_table(
        &mut self,
        map: IndexMap<Key, Entry, Hasher>,
        ttls: IndexMap<usize, u64, Hasher>,
    ) {
        let keys = map.len();
        self.push(Pending::Table(map), keys);
        self.push(Pending::Positions(ttls), 0);
    }

    /// Accounted bytes still queued.
    pub fn remaining_bytes(&self) -> usize {
        self.queue.iter().map(Pending::remaining_bytes).sum()
    }

    /// Shutdown: the process is about to exit and the kernel takes the
    /// memory back faster than freeing it piece by piece would.
    pub fn abandon(&mut self) {
        std::mem::forget(std::mem::take(&mut self.queue));
        self.pending_objects = 0;
    }

    /// Frees up to `max_elements` elements or for about `max_time`,
    /// subtracting what it frees from `mem`. Returns whether anything is
    /// still queued or parked.
    pub fn slice(&mut self, mem: &mut usize, max_elements: usize, max_time: Duration) -> bool {
        let start = Instant::now();
        // Large blocks freed by earlier slices go back a step at a time.
        crate::alloc::release_parked(RELEASE_PER_SLICE);
        crate::alloc::parking(|| self.free_elements(mem, max_elements, start, max_time));
        !self.is_idle()
    }

    fn free_elements(
        &mut self,
        mem: &mut usize,
        max_elements: usize,
        start: Instant,
        max_time: Duration,
    ) {
        let mut done = 0;
        while done < max_elements {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let budget = CHUNK.min(max_elements - done);
            let mut spill = Vec::new();
            let (worked, finished, objects) = step(front, mem, budget, &mut spill);
            done += worked.max(1);
            if finished {
                self.queue.pop_front();
            }
            self.pending_objects -= objects;
            self.freed_objects += objects as u64;
            // Large values met in a table are queued as their own items.
            self.queue.extend(spill);
            if start.elapsed() >= max_time {
                break;
            }
        }
    }
}

/// Frees up to `budget` elements of `item`. Returns the elements freed,
/// whether the item is finished, and how many pending objects it finished.
fn step(
    item: &mut Pending,
    mem: &mut usize,
    budget: usize,
    spill: &mut Vec<Pending>,
) -> (usize, bool, usize) {
    let sub = |mem: &mut usize, bytes: usize| *mem = mem.saturating_sub(bytes);
    match item {
        Pending::Value(value) => {
            // Turn it into a draining form; the conversion (index table
            // release) is this step's work.
            let work = free_effort(value);
            *item = match std::mem::replace(value, Value::Str(StrValue::new(b""))) {
                Value::List(l) => Pending::List(*l, Release::default()),
                Value::Hash(h) => Pending::Hash((*h).into_iter(), Release::default()),
                Value::Set(s) => Pending::Set((*s).into_iter(), Release::default()),
                Value::Str(s) => {
                    sub(mem, super::str_size(&s));
                    return (1, true, 1);
                }
            };
            (work.min(budget), false, 0)
        }
        Pending::List(list, release) => {
            let mut n = 0;
            while n < budget {
                let Some(e) = list.pop_front() else { break };
                sub(mem, cost::LIST_ELEM + e.len());
                n += 1;
            }
            release.advance(list.front().map(|e| e as *const _ as usize));
            if list.is_empty() {
                sub(mem, cost::CONTAINER);
                return (n, true, 1);
            }
            (n, false, 0)
        }
        Pending::Hash(it, release) => {
            let mut n = 0;
            for (f, v) in it.by_ref().take(budget) {
                sub(mem, cost::HASH_FIELD + f.len() + v.len());
                n += 1;
            }
            release.advance(it.as_slice().first().map(|(f, _)| f as *const _ as usize));
            if it.len() == 0 {
                sub(mem, cost::CONTAINER);
                return (n, true, 1);
            }
            (n, false, 0)
        }
        Pending::Set(it, release) => {
            let mut n = 0;
            for m in it.by_ref().take(budget) {
                sub(mem, cost::SET_MEMBER + m.len());
                n += 1;
            }
            release.advance(it.as_slice().first().map(|m| m as *const _ as usize));
            if it.len() == 0 {
                sub(mem, cost::CONTAINER);
                return (n, true, 1);
            }
            (n, false, 0)
        }
        Pending::Table(map) => {
            let work = map.len();
            *item = Pending::TableIter(std::mem::take(map).into_iter(), Release::default());
            (work.min(budget), false, 0)
        }
        Pending::TableIter(it, release) => {
            let (mut n, mut objects) = (0, 0);
            while n < budget {
                let Some((key, entry)) = it.next() else { break };
                if free_effort(&entry.value) > LAZYFREE_THRESHOLD {
                    // Still pending, now as a value of its own.
                    sub(mem, entry_overhead(&key, &entry));
                    spill.push(Pending::Value(entry.value));
                    n += 1;
                } else {
                    sub(mem, entry_size(&key, &entry));
                    n += free_effort(&entry.value);
                    objects += 1;
                }
            }
            release.advance(it.as_slice().first().map(|(k, _)| k as *const _ as usize));
            (n, it.len() == 0, objects)
        }
        Pending::Positions(p) => {
            let n = p.len();
            *p = IndexMap::default();
            (n.min(budget), true, 0)
        }
    }
}
