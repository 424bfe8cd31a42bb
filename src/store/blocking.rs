//! Keys that blocked clients (BLPOP and the other blocking commands) wait
//! on, as the `Db` sees them: which writes must wake someone.
//!
//! The waiters themselves (who, in which order) live in the coordination
//! layer (`coord::blocking`); the store only knows how many wait on a key
//! (a count kept beside the key's WATCH version, so a write pays no extra
//! branch while nobody watches or waits) and, when such a key is written,
//! notes it here as *ready*. The shard's dispatcher task takes the ready
//! keys after the step that wrote them and wakes the first waiter of each.
//!
//! The ready list is per thread, which is per shard (one executor per
//! core, one `Db` per executor): `touch_watched` sees only the watch map,
//! and a thread-local keeps its signature unchanged.

use std::cell::RefCell;
use std::task::{Poll, Waker};

use indexmap::IndexSet;

use super::Hasher;

#[derive(Default)]
struct Ready {
    /// A set, so that one step writing many keys with waiters costs O(1)
    /// per key (a list scanned for duplicates made it quadratic).
    keys: IndexSet<Box<[u8]>, Hasher>,
    waker: Option<Waker>,
}

thread_local! {
    static READY: RefCell<Ready> = RefCell::default();
}

/// Notes that `key`, which has waiters, was written (or that its queue
/// changed): the dispatcher looks at it after the current step.
pub fn mark_ready(key: &[u8]) {
    READY.with(|r| {
        let mut r = r.borrow_mut();
        // A step writes few keys with waiters; a linear check keeps the list
        // free of duplicates without a set.
        if !r.keys.contains(key) {
            r.keys.insert(key.into());
        }
        if let Some(w) = r.waker.take() {
            w.wake();
        }
    })
}

/// The keys marked ready since the last call, once some are: the
/// dispatcher's wait. Costs nothing while nobody writes a key with waiters.
pub async fn next_ready() -> Vec<Box<[u8]>> {
    std::future::poll_fn(|cx| {
        READY.with(|r| {
            let mut r = r.borrow_mut();
            if r.keys.is_empty() {
                r.waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(std::mem::take(&mut r.keys).into_iter().collect())
            }
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_keys_are_deduplicated_and_taken_once() {
        mark_ready(b"a");
        mark_ready(b"b");
        mark_ready(b"a");
        let keys = futures_lite::future::block_on(next_ready());
        assert_eq!(keys, vec![Box::from(&b"a"[..]), Box::from(&b"b"[..])]);
        READY.with(|r| assert!(r.borrow().keys.is_empty()));
    }
}
