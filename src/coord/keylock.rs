//! Per-key locks: how a multi-key command across shards isolates itself
//! without stopping everything else on those shards.
//!
//! An [`Atomic`](super::Atomic) declares its keys; its first op on a shard
//! takes that shard's share of them (all or none) in the same hop, and
//! dropping the `Atomic` releases them. While a key is held:
//!
//! - a plain command (inline on its core, or in a batch from another core)
//!   that names the key — any of its arguments equal to the key's name,
//!   which errs on the side of waiting — waits until it is released; a
//!   batch stops at that command and resumes from there, so a pipeline's
//!   order is kept;
//! - another multi-key command wanting the key waits in arrival order;
//! - EXEC's whole-shard lock waits until no key of the shard is held, and
//!   no key is taken while a shard is held or an EXEC waits for it.
//!
//! Commands on other keys run as if nothing was held: non-conflicting
//! multi-key commands never serialize. Deadlock freedom is the shard
//! order: a command takes its keys shard by shard in ascending order (as
//! EXEC takes shards), and nothing waits while holding keys of a higher
//! shard than the one it waits on.
//!
//! Whole-keyspace reads (KEYS, SCAN, DBSIZE, RANDOMKEY) do not wait for
//! held keys: they may see a multi-key command between two of its steps
//! (e.g. DBSIZE one off during a cross-shard RENAME).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::task::{Poll, Waker};

use super::mesh::{Call, Request};
use super::txlock::TxId;
use crate::coord::Shard;
use crate::protocol::Args;

/// Some keys of one shard, owned.
pub type Keys = Vec<Box<[u8]>>;

enum KeyWait {
    /// A multi-key command's first op here: take `keys`, then run `call`.
    Lock {
        from: usize,
        id: u32,
        tx: TxId,
        keys: Vec<Box<[u8]>>,
        call: Call,
    },
    /// A batch of plain commands stopped at one naming a held key.
    Batch { from: usize, id: u32, req: Request },
    /// A call that reads or changes the shard as a whole (KEYS, SCAN,
    /// DBSIZE, FLUSHALL, OBJECT…): it runs only when no key is held, so it
    /// never sees a multi-key command half done.
    Call { from: usize, id: u32, call: Call },
}

/// The key locks of one shard (see the module docs).
#[derive(Default)]
pub struct KeyLocks {
    held: RefCell<HashMap<Box<[u8]>, TxId, ahash::RandomState>>,
    /// Per holder, the keys it holds here.
    by_tx: RefCell<Vec<(TxId, Keys)>>,
    waiting: RefCell<VecDeque<KeyWait>>,
    /// Local tasks waiting for keys (woken on every release).
    wakers: RefCell<Vec<Waker>>,
}

impl KeyLocks {
    /// No key is held: the common case, one branch on the data path.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.borrow().is_empty()
    }

    /// Whether a plain command with these arguments must wait.
    #[inline]
    pub fn blocks(&self, args: &Args) -> bool {
        if self.is_empty() {
            return false;
        }
        let held = self.held.borrow();
        args.iter_from(1).any(|a| held.contains_key(a))
    }

    fn holds(&self, tx: TxId) -> bool {
        self.by_tx.borrow().iter().any(|(t, _)| *t == tx)
    }

    /// Whether `keys` (sorted, as an `Atomic` sends them) could be taken
    /// by `tx` now, as far as other key holders and earlier waiters go.
    fn free_for(&self, tx: TxId, keys: &[Box<[u8]>]) -> bool {
        let held = self.held.borrow();
        if keys.iter().any(|k| held.get(k).is_some_and(|h| *h != tx)) {
            return false;
        }
        // Earlier waiters for one of these keys go first.
        !self.waiting.borrow().iter().any(|w| match w {
            KeyWait::Lock { keys: theirs, .. } => {
                theirs.iter().any(|k| keys.binary_search(k).is_ok())
            }
            KeyWait::Batch { .. } => false,
            // A whole-shard call waits for every key: later key takers
            // queue behind it, so a stream of them cannot starve it.
            KeyWait::Call { .. } => true,
        })
    }

    fn take(&self, tx: TxId, keys: Vec<Box<[u8]>>) {
        let mut held = self.held.borrow_mut();
        for k in &keys {
            held.insert(k.clone(), tx);
        }
        let mut by_tx = self.by_tx.borrow_mut();
        match by_tx.iter_mut().find(|(t, _)| *t == tx) {
            Some((_, mine)) => mine.extend(keys),
            None => by_tx.push((tx, keys)),
        }
    }

    fn wake_local(&self) {
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl Shard {
    /// Whether `tx` may take keys here now: no key conflict, and no EXEC
    /// holding the whole shard. (An EXEC only waiting for the shard does
    /// not stop it: EXECs come back to back under load, and key lockers
    /// would never get in; they hold keys for about one hop.)
    fn keys_available(&self, tx: TxId, keys: &[Box<[u8]>]) -> bool {
        self.tx.unheld() && self.keys.free_for(tx, keys)
    }

    /// A multi-key command's first op on this shard, from another core.
    pub(crate) fn admit_key_lock(
        &self,
        from: usize,
        id: u32,
        tx: TxId,
        keys: Vec<Box<[u8]>>,
        call: Call,
    ) {
        if self.keys_available(tx, &keys) {
            self.keys.take(tx, keys);
            self.run_call(from, id, call);
        } else {
            self.keys.waiting.borrow_mut().push_back(KeyWait::Lock {
                from,
                id,
                tx,
                keys,
                call,
            });
        }
    }

    /// Whether `tx` holds keys here (its later ops pass every lock).
    pub(crate) fn holds_keys(&self, tx: TxId) -> bool {
        self.keys.holds(tx)
    }

    /// A batch stopped at a command naming a held key: it goes on when
    /// keys are released.
    pub(crate) fn park_batch(&self, from: usize, id: u32, req: Request) {
        self.keys
            .waiting
            .borrow_mut()
            .push_back(KeyWait::Batch { from, id, req });
    }

    /// A call from another core (see [`KeyWait::Call`]): runs now if no key
    /// is held here, else when the last holder lets go.
    pub(crate) fn admit_call(&self, from: usize, id: u32, call: Call) {
        if self.keys.is_empty() {
            self.run_call(from, id, call);
        } else {
            self.keys
                .waiting
                .borrow_mut()
                .push_back(KeyWait::Call { from, id, call });
        }
    }

    /// Waits until no key of this core's shard is held (a call of this
    /// core's own, see [`KeyWait::Call`]).
    pub(crate) async fn keys_at_rest(&self) {
        std::future::poll_fn(|cx| {
            if self.keys.is_empty() {
                Poll::Ready(())
            } else {
                self.keys.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Takes `keys` for `tx` on this core's shard, waiting for holders.
    pub(crate) async fn lock_keys_local(&self, tx: TxId, keys: Vec<Box<[u8]>>) {
        std::future::poll_fn(|cx| {
            if self.keys_available(tx, &keys) {
                Poll::Ready(())
            } else {
                self.keys.wakers.borrow_mut().push(cx.waker().clone());
                self.tx.wait_idle(cx.waker());
                Poll::Pending
            }
        })
        .await;
        self.keys.take(tx, keys);
    }

    /// Waits until no key named in `args` is held (plain commands on this
    /// core).
    pub(crate) async fn keys_unblocked(&self, args: &Args<'_>) {
        std::future::poll_fn(|cx| {
            if self.keys.blocks(args) {
                self.keys.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Releases `tx`'s keys here; false if it held none.
    pub(crate) fn unlock_keys(&self, tx: TxId) -> bool {
        let keys = {
            let mut by_tx = self.keys.by_tx.borrow_mut();
            match by_tx.iter().position(|(t, _)| *t == tx) {
                Some(at) => by_tx.swap_remove(at).1,
                None => return false,
            }
        };
        {
            let mut held = self.keys.held.borrow_mut();
            for k in &keys {
                if held.get(k) == Some(&tx) {
                    held.remove(k);
                }
            }
        }
        self.retry_key_waiters();
        if self.keys.is_empty() {
            // A transaction may be waiting for the last key to go.
            self.drain_deferred();
        }
        true
    }

    /// A key holder gave up before its keys were granted: forget its wait.
    pub(crate) fn forget_key_wait(&self, tx: TxId) {
        self.keys
            .waiting
            .borrow_mut()
            .retain(|w| !matches!(w, KeyWait::Lock { tx: t, .. } if *t == tx));
    }

    /// After a release (of keys, or of the shard by a transaction): runs
    /// the waiters that can run now, in arrival order, and wakes local
    /// waiters.
    pub(crate) fn retry_key_waiters(&self) {
        let waiting = std::mem::take(&mut *self.keys.waiting.borrow_mut());
        for w in waiting {
            match w {
                // `free_for` looks at the waiters still queued, which are
                // the later ones plus those put back: arrival order is kept.
                KeyWait::Lock {
                    from,
                    id,
                    tx,
                    keys,
                    call,
                } => self.admit_key_lock(from, id, tx, keys, call),
                KeyWait::Batch { from, id, req } => self.handle_request(from, id, req),
                KeyWait::Call { from, id, call } => self.admit_call(from, id, call),
            }
        }
        self.keys.wake_local();
    }
}
