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
//! front of an element buffer while it drains (`Release`). Freeing a large
//! block itself (a hash index, a drained buffer) costs no syscall: jemalloc
//! keeps it as dirty pages and purges them by decay (src/alloc.rs).

use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::agg::{Hash, List, Set};
use super::zset::ZSet;
use super::{DbKey, Hasher, StrValue, Value, cost, entry_overhead, entry_size, value_size};

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

/// How many allocations freeing `value` touches: Redis' "free effort". A
/// string or a packed value is one allocation, freed inline whatever its
/// length, as in Redis; a list is one per chunk.
pub fn free_effort(value: &Value) -> usize {
    match value {
        Value::Str(_) => 1,
        Value::List(l) => l.chunks(),
        Value::Hash(h) => match &**h {
            Hash::Table(t) => t.len(),
            Hash::Pack(_) => 1,
        },
        Value::Set(s) => match &**s {
            Set::Table(t) => t.len(),
            _ => 1,
        },
        Value::ZSet(z) => match &**z {
            ZSet::Skip(_) => z.len(),
            ZSet::Pack(_) => 1,
        },
    }
}

/// Something queued for freeing. Detached values and tables are queued as
/// they are (O(1) for UNLINK) and turned into draining iterators on their
/// first slice. That conversion frees a set's or hash's index table, one
/// large allocation: jemalloc takes it back without a syscall (its pages
/// are purged later by decay, src/alloc.rs).
enum Pending {
    Value(Value),
    List(List),
    Hash(indexmap::map::IntoIter<super::Key, Box<[u8]>>, Release),
    Set(indexmap::set::IntoIter<super::Key>, Release),
    /// A sorted set's skiplist, freed from its top rank down.
    ZSet(Box<ZSet>),
    Table(IndexMap<DbKey, Value, Hasher>),
    TableIter(indexmap::map::IntoIter<DbKey, Value>, Release),
    /// A flushed table's TTL index (positions and times, no accounting of
    /// its own: `cost::EXPIRE` is counted with each entry).
    Positions(IndexMap<usize, u64, Hasher>),
}

impl Pending {
    /// Accounted bytes not freed yet (for `Db::mem_recomputed`).
    fn remaining_bytes(&self) -> usize {
        match self {
            Pending::Value(v) => value_size(v),
            Pending::List(l) => l.size(),
            Pending::Hash(it, _) => {
                cost::CONTAINER
                    + it.as_slice()
                        .iter()
                        .map(|(f, v)| cost::hash_field(f.len(), v.len()))
                        .sum::<usize>()
            }
            Pending::Set(it, _) => {
                cost::CONTAINER
                    + it.as_slice()
                        .iter()
                        .map(|m| cost::set_member(m.len()))
                        .sum::<usize>()
            }
            Pending::ZSet(z) => z.size(),
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

impl Release {
    /// `next` is the address of the first element still in the buffer
    /// (None once it is empty). Everything below it, from where the
    /// previous call left off, has been moved out and is never read again.
    fn advance(&mut self, next: Option<usize>) {
        let Some(next) = next else { return };
        let page = crate::alloc::page_size();
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
            // reads these bytes again (jemalloc keeps no header in a
            // block). MADV_DONTNEED only drops their pages; they read
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

    /// Nothing queued.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
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
        map: IndexMap<DbKey, Value, Hasher>,
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
    /// still queued.
    pub fn slice(&mut self, mem: &mut usize, max_elements: usize, max_time: Duration) -> bool {
        let start = Instant::now();
        self.free_elements(mem, max_elements, start, max_time);
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
                Value::List(l) => Pending::List(*l),
                Value::Hash(h) if matches!(*h, Hash::Table(_)) => {
                    let Hash::Table(t) = *h else { unreachable!() };
                    Pending::Hash((*t).into_iter(), Release::default())
                }
                Value::Set(s) if matches!(*s, Set::Table(_)) => {
                    let Set::Table(t) = *s else { unreachable!() };
                    Pending::Set((*t).into_iter(), Release::default())
                }
                Value::ZSet(z) if matches!(*z, ZSet::Skip(_)) => Pending::ZSet(z),
                small => {
                    sub(mem, value_size(&small));
                    return (1, true, 1);
                }
            };
            (work.min(budget), false, 0)
        }
        Pending::List(list) => {
            // A chunk is one allocation of up to a few KB: the budget
            // counts chunks.
            let (before, chunks) = (list.size(), list.chunks());
            list.free_front(budget);
            let n = chunks - list.chunks();
            if list.is_empty() {
                sub(mem, before);
                return (n, true, 1);
            }
            sub(mem, before - list.size());
            (n, false, 0)
        }
        Pending::Hash(it, release) => {
            let mut n = 0;
            for (f, v) in it.by_ref().take(budget) {
                sub(mem, cost::hash_field(f.len(), v.len()));
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
                sub(mem, cost::set_member(m.len()));
                n += 1;
            }
            release.advance(it.as_slice().first().map(|m| m as *const _ as usize));
            if it.len() == 0 {
                sub(mem, cost::CONTAINER);
                return (n, true, 1);
            }
            (n, false, 0)
        }
        Pending::ZSet(z) => {
            let n = z.len().min(budget);
            sub(mem, z.free_some(budget));
            if z.is_empty() {
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
                let Some((key, value)) = it.next() else { break };
                if free_effort(&value) > LAZYFREE_THRESHOLD {
                    // Still pending, now as a value of its own.
                    sub(mem, entry_overhead(&key));
                    spill.push(Pending::Value(value));
                    n += 1;
                } else {
                    sub(mem, entry_size(&key, &value));
                    n += free_effort(&value);
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
