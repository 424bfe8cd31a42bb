//! Blocked clients (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP and the
//! sorted-set forms): each key's first-come-first-served queue of waiters,
//! kept on the shard that owns the key, and the wake-ups.
//!
//! # Design: wake the first waiter, let it retry
//!
//! A waiter is a connection (its client id) queued on every key it waits
//! for. When a key with waiters is written — by any command, on any
//! connection of any core, inside EXEC or by a cross-shard move — the
//! `Db` marks it ready (`store::blocking`); after that step the shard's
//! dispatcher task looks at the key and, if it now holds a value the
//! queue's first waiter of that kind can take, marks that waiter *woken*
//! and signals its connection (on its own core, through the mesh when it
//! is another). Only the first is woken; the others stay asleep. The woken
//! connection then runs its pop through the ordinary coordinated path
//! (`Atomic`), exactly as a non-blocking LMPOP/LMOVE would, so a BLMOVE to
//! a key of another shard is as atomic as LMOVE. If it finds nothing
//! (another client took the element first), it re-arms in place: it keeps
//! its position at the front, and its re-arming looks at the key again so
//! a write that came meanwhile is not missed. When a waiter leaves a
//! queue (served, timed out, unblocked, disconnected), the key is looked
//! at again, so the next waiter is woken if something is left.
//!
//! The alternative, popping on the owner shard for the waiter in the same
//! step and handing it the element, was not chosen: the element would be
//! in flight to a connection that may have disconnected, timed out or been
//! served by another key meanwhile (on another core), and would have to be
//! pushed back — at its old end, after other writes — which Redis never
//! does; a BLMOVE whose destination is on another shard would also need a
//! second, cross-core half on the owner's step. With wake-and-retry an
//! element only ever leaves the list inside the woken client's own pop, so
//! a disconnect, a timeout and a wake-up racing each other can cost a
//! spurious retry, never an element.
//!
//! FCFS: a client that arrives while a key has waiters of its kind queues
//! behind them (its pops skip such keys while others are ahead), so a
//! client blocked earlier is served first. A non-blocking pop (LPOP) on
//! another connection can still take an element between the push and the
//! woken client's retry; the woken client then goes back to waiting.
//!
//! Waiting costs no CPU: a blocked connection awaits a semaphore, a
//! timer and its socket; the dispatcher awaits the ready list.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::Shard;
use crate::store::Value;

/// What a waiter can take: its command's type test, and a tag saying
/// which waiters compete (list waiters with list waiters).
#[derive(Clone, Copy)]
pub struct Wants {
    pub kind: u8,
    pub fits: fn(&Value) -> bool,
}

struct Waiter {
    client: u64,
    wants: Wants,
    /// Signalled and not yet back: the waiters behind it stay asleep.
    woken: bool,
}

/// A shard's waiters, per key, in arrival order.
#[derive(Default)]
pub struct Registry {
    queues: HashMap<Box<[u8]>, VecDeque<Waiter>>,
}

impl Shard {
    /// Queues `client` on `key` (at the back when new; when already
    /// queued it keeps its place and is re-armed), then has the key looked
    /// at again so that a write since its last try is not missed.
    pub fn block_on(&self, key: &[u8], client: u64, wants: Wants) {
        let mut reg = self.blocking.borrow_mut();
        let queue = reg.queues.entry(key.into()).or_default();
        match queue.iter_mut().find(|w| w.client == client) {
            Some(w) => w.woken = false,
            None => {
                queue.push_back(Waiter {
                    client,
                    wants,
                    woken: false,
                });
                self.db().block_key(key);
            }
        }
        crate::store::blocking::mark_ready(key);
    }

    /// Takes `client` out of `key`'s queue; the key is looked at again so
    /// the next waiter is woken if something is left for it.
    pub fn unblock_from(&self, key: &[u8], client: u64) {
        let mut reg = self.blocking.borrow_mut();
        let Some(queue) = reg.queues.get_mut(key) else {
            return;
        };
        let Some(at) = queue.iter().position(|w| w.client == client) else {
            return;
        };
        queue.remove(at);
        if queue.is_empty() {
            reg.queues.remove(key);
        }
        self.db().unblock_key(key);
        crate::store::blocking::mark_ready(key);
    }

    /// Whether a waiter of `kind` other than `client` comes before it in
    /// `key`'s queue (every such waiter does when `client` is not queued):
    /// the key's next element is theirs.
    pub fn waits_behind(&self, key: &[u8], client: u64, kind: u8) -> bool {
        let reg = self.blocking.borrow();
        let Some(queue) = reg.queues.get(key) else {
            return false;
        };
        queue
            .iter()
            .take_while(|w| w.client != client)
            .any(|w| w.wants.kind == kind)
    }

    /// How many waiters this shard holds over all keys (tests, debugging).
    pub fn waiters(&self) -> usize {
        self.blocking
            .borrow()
            .queues
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// The dispatcher's work for one ready key: wakes the first waiter
    /// whose kind fits the key's value, unless it is woken already.
    fn wake_first(&self, key: &[u8]) -> Option<u64> {
        let mut reg = self.blocking.borrow_mut();
        let queue = reg.queues.get_mut(key)?;
        let mut db = self.db();
        let value = db.peek(key)?;
        let first = queue.iter_mut().find(|w| (w.wants.fits)(value))?;
        if first.woken {
            return None;
        }
        first.woken = true;
        Some(first.client)
    }

    /// Signals client `id` of this core, if it is still connected.
    pub fn wake_client(&self, id: u64) {
        if let Some(info) = self.clients().get(&id) {
            info.wake.signal(1);
        }
    }

    /// The core a client id belongs to (ids are congruent to their core's
    /// index, see `next_client_id`).
    pub fn core_of_client(&self, id: u64) -> usize {
        (id % self.nshards as u64) as usize
    }
}

/// Starts the shard's dispatcher: it sleeps until a step wrote a key with
/// waiters, then wakes those keys' first waiters.
pub(super) fn spawn_dispatcher(shard: &Rc<Shard>) {
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let keys = crate::store::blocking::next_ready().await;
            for key in keys {
                let Some(client) = s.wake_first(&key) else {
                    continue;
                };
                let core = s.core_of_client(client);
                if core == s.id {
                    s.wake_client(client);
                } else {
                    let from = s.clone();
                    glommio::spawn_local(async move {
                        let _ =
                            super::on(&from, core, move |t: &Shard| t.wake_client(client)).await;
                    })
                    .detach();
                }
            }
        }
    })
    .detach();
}
