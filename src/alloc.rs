//! The process allocator: the system allocator, except that while a
//! lazy-free slice runs on a thread (`parking`), large blocks that thread
//! frees are parked instead of returned at once, and `release_parked` gives
//! them back to the kernel a few MB per slice.
//!
//! Why: freeing one large block is one `munmap` whose cost grows with the
//! block (~1 ms per 15 MB touched). A set's or hash's index table is such a
//! block, and indexmap frees it in one go when the value is turned into a
//! draining iterator; for a 7.5M-member set that is a ~10 ms stall of the
//! core. Parked, its pages are dropped in bounded steps with
//! `madvise(MADV_DONTNEED)` and the final free unmaps an empty range.
//!
//! Everything is per thread (const thread-locals without destructors, safe
//! to touch inside the allocator): no locks, nothing shared between cores.
//! Outside a lazy-free slice the only cost is one size comparison per free.
//!
//! Imports `store::lazyfree::page_size` (and is driven by `store::lazyfree`):
//! the two halves of one mechanism.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Blocks at least this large are parked while parking is on.
const PARK_MIN: usize = 4 << 20;
/// Parked blocks per thread; when all are taken a block is freed at once.
const SLOTS: usize = 8;

#[derive(Clone, Copy)]
struct Parked {
    /// 0 marks a free slot.
    ptr: usize,
    size: usize,
    align: usize,
    /// Address up to which pages were already released.
    released: usize,
}

const EMPTY: Parked = Parked {
    ptr: 0,
    size: 0,
    align: 0,
    released: 0,
};

thread_local! {
    static PARKING: Cell<bool> = const { Cell::new(false) };
    static PARKED: [Cell<Parked>; SLOTS] = const { [const { Cell::new(EMPTY) }; SLOTS] };
}

/// The system allocator with parking (see the module docs).
pub struct KoraAlloc;

unsafe impl GlobalAlloc for KoraAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (the system
        // allocator grows large blocks in place with mremap).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= PARK_MIN
            && PARKING.try_with(Cell::get).unwrap_or(false)
            && park(ptr, layout)
        {
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn park(ptr: *mut u8, layout: Layout) -> bool {
    PARKED
        .try_with(|slots| {
            let Some(slot) = slots.iter().find(|s| s.get().ptr == 0) else {
                return false;
            };
            slot.set(Parked {
                ptr: ptr as usize,
                size: layout.size(),
                align: layout.align(),
                released: ptr as usize,
            });
            true
        })
        .unwrap_or(false)
}

/// Runs `f` with parking on for this thread.
pub fn parking<R>(f: impl FnOnce() -> R) -> R {
    struct Off(bool);
    impl Drop for Off {
        fn drop(&mut self) {
            PARKING.with(|p| p.set(self.0));
        }
    }
    let _restore = Off(PARKING.with(|p| p.replace(true)));
    f()
}

/// Whether this thread has parked blocks waiting for `release_parked`.
pub fn has_parked() -> bool {
    PARKED.with(|slots| slots.iter().any(|s| s.get().ptr != 0))
}

/// Gives back up to about `budget` bytes of parked blocks: their pages
/// first, then each block itself once all its pages are gone. Returns
/// whether any block is still parked.
pub fn release_parked(mut budget: usize) -> bool {
    let page = crate::store::lazyfree::page_size();
    PARKED.with(|slots| {
        for slot in slots {
            let mut p = slot.get();
            if p.ptr == 0 || budget == 0 {
                continue;
            }
            let end = (p.ptr + p.size) / page * page;
            let from = p.released.next_multiple_of(page);
            if from < end {
                let len = (end - from).min(budget.next_multiple_of(page));
                // SAFETY: [from, from + len) is whole pages inside a block
                // the program freed (it was handed to `dealloc`), which we
                // still own and nobody reads: dropping its pages is
                // invisible, and freeing the block later is still valid.
                unsafe {
                    libc::madvise(from as *mut libc::c_void, len, libc::MADV_DONTNEED);
                }
                p.released = from + len;
                budget = budget.saturating_sub(len);
                slot.set(p);
                if p.released < end {
                    continue;
                }
            }
            slot.set(EMPTY);
            // SAFETY: the block and layout `dealloc` received and parked.
            unsafe {
                System.dealloc(
                    p.ptr as *mut u8,
                    Layout::from_size_align_unchecked(p.size, p.align),
                );
            }
        }
    });
    has_parked()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frees_are_parked_only_while_parking_and_released_in_steps() {
        assert!(!has_parked());
        drop(vec![1u8; 16 << 20]);
        assert!(!has_parked(), "not parking: freed at once");
        let big = vec![7u8; 16 << 20];
        let small = vec![7u8; 1 << 20];
        parking(|| {
            drop(small);
            drop(big);
        });
        assert!(has_parked());
        let mut steps = 0;
        while release_parked(4 << 20) {
            steps += 1;
        }
        assert!((3..=5).contains(&steps), "{steps} steps");
        assert!(!has_parked());
    }
}
