//! Shard locks for MULTI/EXEC across shards.
//!
//! A transaction that touches several shards takes each shard's lock in
//! ascending shard id (so two transactions can never wait on each other in
//! a cycle), runs its commands, and releases them. While a shard is held,
//! every other request for it (other connections' batches, fan-out calls)
//! waits in arrival order in `deferred`, except the collector's metric
//! snapshots, which touch no data; local connections
//! wait before running a command inline; only messages tagged with the
//! holder's id pass. A transaction on one shard takes no lock: its commands
//! run in one synchronous step there, which nothing can interleave with.
//!
//! Which transaction the running code belongs to is known without task-local
//! storage: [`WithTx`] sets `current` only while it polls the transaction's
//! future. Code that sends a mesh request or runs inline reads `current`
//! synchronously, so another task on the same core, polled in between,
//! never sees the transaction's id.
//!
//! Layer: coordination; imports only [`Shard`] and the mesh.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use glommio::sync::Semaphore;

use super::mesh::{Request, Response};
use crate::coord::Shard;

/// A transaction's id: the client id of the connection running EXEC,
/// unique across cores.
pub type TxId = u64;

enum Deferred {
    /// A request that arrived while another transaction held the shard.
    Request { from: usize, id: u32, req: Request },
    /// A remote transaction waiting for this shard.
    Lock { from: usize, id: u32, tx: TxId },
    /// A remote multi-key command waiting for this shard, with the work to
    /// run once it holds it.
    LockCall {
        from: usize,
        id: u32,
        tx: TxId,
        call: super::mesh::Call,
    },
    /// A transaction of this core waiting for this shard.
    LocalLock(TxId),
}

pub struct TxLock {
    holder: Cell<Option<TxId>>,
    deferred: RefCell<VecDeque<Deferred>>,
    /// Local code waiting for the shard to be free (plain commands).
    waiters: RefCell<Vec<Waker>>,
    /// Local lockers waiting for the lock (their `LocalLock` is queued in
    /// `deferred`): each is woken alone, when it is granted the lock, not
    /// on every release — with many connections queued, waking them all
    /// each time cost more than the commands.
    lockers: RefCell<Vec<(TxId, Waker)>>,
    /// The transaction whose future is being polled on this core right now.
    current: Cell<Option<TxId>>,
    /// Signalled when a release left queued work for after the local
    /// waiters' turn; the shard's drain task then goes on.
    pub drain_later: Semaphore,
}

impl Default for TxLock {
    fn default() -> Self {
        TxLock {
            holder: Cell::new(None),
            deferred: RefCell::new(VecDeque::new()),
            waiters: RefCell::new(Vec::new()),
            lockers: RefCell::new(Vec::new()),
            current: Cell::new(None),
            drain_later: Semaphore::new(0),
        }
    }
}

impl TxLock {
    /// Held, or with queued work still to run: newcomers from other cores
    /// and new transactions queue behind it.
    fn busy(&self) -> bool {
        self.holder.get().is_some() || !self.deferred.borrow().is_empty()
    }

    /// Not held by a transaction: multi-key commands may take keys.
    pub(crate) fn unheld(&self) -> bool {
        self.holder.get().is_none()
    }

    /// Registers `waker` to be woken when the shard lock is released.
    pub(crate) fn wait_idle(&self, waker: &Waker) {
        self.waiters.borrow_mut().push(waker.clone());
    }

    /// The transaction the running code belongs to, if any.
    pub fn current(&self) -> Option<TxId> {
        self.current.get()
    }

    /// Whether code running now must wait before touching this shard.
    #[inline]
    pub fn blocks_current(&self) -> bool {
        match self.holder.get() {
            None => false,
            Some(h) => self.current.get() != Some(h),
        }
    }

    /// Drops the queued lock requests of `tx`.
    fn forget(&self, tx: TxId) {
        self.lockers.borrow_mut().retain(|(t, _)| *t != tx);
        self.deferred.borrow_mut().retain(|d| {
            !matches!(d, Deferred::Lock { tx: t, .. }
                | Deferred::LockCall { tx: t, .. }
                | Deferred::LocalLock(t) if *t == tx)
        });
    }

    /// Wakes the local locker `tx`, now holding the lock.
    fn wake_locker(&self, tx: TxId) {
        let mut lockers = self.lockers.borrow_mut();
        if let Some(at) = lockers.iter().position(|(t, _)| *t == tx) {
            lockers.swap_remove(at).1.wake();
        }
    }

    fn wake_all(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Waits until running code may touch this shard.
    pub fn unblocked(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.blocks_current() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }
}

/// Tags every poll of `fut` with transaction `tx` (see the module docs).
pub struct WithTx<'a, F> {
    lock: &'a TxLock,
    tx: TxId,
    fut: Pin<&'a mut F>,
}

impl<'a, F: Future> WithTx<'a, F> {
    pub fn new(lock: &'a TxLock, tx: TxId, fut: Pin<&'a mut F>) -> Self {
        WithTx { lock, tx, fut }
    }
}

impl<F: Future> Future for WithTx<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = self.lock.current.replace(Some(self.tx));
        let result = self.fut.as_mut().poll(cx);
        self.lock.current.set(previous);
        result
    }
}

impl Shard {
    /// Mesh requests pass through here: while another transaction holds the
    /// shard, they wait their turn.
    pub fn admit_request(&self, from: usize, id: u32, req: Request) {
        let lock = &self.tx;
        match req {
            // Pub/Sub (issue 14): never waits, and needs no clock (touches
            // no data).
            Request::Now(call) => self.node.respond(from, id, Response::Call(call(self))),
            Request::KeyLockCall(tx, keys, call) => self.admit_key_lock(from, id, tx, keys, call),
            Request::TxCall(tx, _) if self.holds_keys(tx) => self.handle_request(from, id, req),
            Request::Lock(tx) => {
                if !lock.busy() && self.keys.is_empty() {
                    lock.holder.set(Some(tx));
                    self.node.respond(from, id, Response::Locked);
                } else {
                    lock.deferred
                        .borrow_mut()
                        .push_back(Deferred::Lock { from, id, tx });
                }
            }
            Request::LockCall(tx, call) => {
                if !lock.busy() && self.keys.is_empty() {
                    lock.holder.set(Some(tx));
                    self.run_call(from, id, call);
                } else {
                    lock.deferred
                        .borrow_mut()
                        .push_back(Deferred::LockCall { from, id, tx, call });
                }
            }
            Request::Unlock(tx) => {
                if lock.holder.get() == Some(tx) {
                    self.release();
                } else if !self.unlock_keys(tx) {
                    self.forget_key_wait(tx);
                    // Its holder gave up before being granted the lock (a
                    // dropped command): it must never be granted.
                    lock.forget(tx);
                }
                self.node.respond(from, id, Response::Locked);
            }
            Request::TxExec(tx, _) | Request::TxCall(tx, _) if lock.holder.get() == Some(tx) => {
                self.handle_request(from, id, req)
            }
            // The collector only reads metrics (snapshots, returned
            // histograms): it never waits, so scrapes and INFO (even inside
            // a transaction) are not held up by a held shard.
            req if lock.busy() && from != self.nshards => {
                lock.deferred
                    .borrow_mut()
                    .push_back(Deferred::Request { from, id, req });
            }
            req => self.handle_request(from, id, req),
        }
    }

    /// Takes this shard's lock for transaction `tx` of this core, waiting
    /// behind earlier holders and waiters.
    pub async fn lock_local(&self, tx: TxId) {
        let lock = &self.tx;
        if !lock.busy() && self.keys.is_empty() {
            lock.holder.set(Some(tx));
            return;
        }
        lock.deferred
            .borrow_mut()
            .push_back(Deferred::LocalLock(tx));
        std::future::poll_fn(|cx| {
            if lock.holder.get() == Some(tx) {
                Poll::Ready(())
            } else {
                let mut lockers = lock.lockers.borrow_mut();
                match lockers.iter_mut().find(|(t, _)| *t == tx) {
                    Some((_, waker)) => waker.clone_from(cx.waker()),
                    None => lockers.push((tx, cx.waker().clone())),
                }
                Poll::Pending
            }
        })
        .await
    }

    pub fn unlock_local(&self, tx: TxId) {
        if self.tx.holder.get() == Some(tx) {
            self.release();
        } else {
            self.tx.forget(tx);
        }
    }

    /// Frees the shard. Local code waiting for it (this core's connections)
    /// gets a turn first: otherwise, with a transaction from another core
    /// always queued, the lock would pass from holder to holder and this
    /// core's own clients would never run. The queue goes on right after
    /// them, from the drain task.
    fn release(&self) {
        let lock = &self.tx;
        lock.holder.set(None);
        let local_waiting = !lock.waiters.borrow().is_empty();
        if local_waiting && !lock.deferred.borrow().is_empty() {
            lock.wake_all();
            lock.drain_later.signal(1);
            return;
        }
        self.drain_deferred();
    }

    /// Lets the held-back requests run in arrival order, up to the next
    /// transaction waiting for the lock, which gets it.
    pub fn drain_deferred(&self) {
        let lock = &self.tx;
        if lock.holder.get().is_some() {
            return;
        }
        // Multi-key commands waiting for keys (or for this shard's last
        // holder) first: a queue of transactions must not starve them.
        self.retry_key_waiters();
        loop {
            let next = lock.deferred.borrow_mut().pop_front();
            match next {
                None => break,
                // A transaction waits until no key of the shard is held
                // (the last release drains the queue again).
                Some(
                    waiting @ (Deferred::Lock { .. }
                    | Deferred::LockCall { .. }
                    | Deferred::LocalLock(_)),
                ) if !self.keys.is_empty() => {
                    lock.deferred.borrow_mut().push_front(waiting);
                    return;
                }
                Some(Deferred::Request { from, id, req }) => self.handle_request(from, id, req),
                Some(Deferred::Lock { from, id, tx }) => {
                    lock.holder.set(Some(tx));
                    self.node.respond(from, id, Response::Locked);
                    break;
                }
                Some(Deferred::LocalLock(tx)) => {
                    lock.holder.set(Some(tx));
                    lock.wake_locker(tx);
                    break;
                }
                Some(Deferred::LockCall { from, id, tx, call }) => {
                    lock.holder.set(Some(tx));
                    self.run_call(from, id, call);
                    break;
                }
            }
        }
        // Plain waiters can only run on a free shard: waking them while the
        // lock passed to the next holder would only put them back to sleep.
        // (`release` gives them their turn before the queue goes on.)
        if lock.holder.get().is_none() {
            lock.wake_all();
        }
    }

    /// Takes the locks of `shards` (ascending, deduplicated) for `tx`.
    /// False if a shard is gone; the locks taken are then released.
    pub async fn lock_shards(self: &Rc<Self>, tx: TxId, shards: &[usize]) -> bool {
        for (taken, &s) in shards.iter().enumerate() {
            let ok = if s == self.id {
                self.lock_local(tx).await;
                true
            } else {
                matches!(
                    self.node.request(s, Request::Lock(tx)).await,
                    Response::Locked
                )
            };
            if !ok {
                self.unlock_shards(tx, &shards[..taken]).await;
                return false;
            }
        }
        true
    }

    pub async fn unlock_shards(self: &Rc<Self>, tx: TxId, shards: &[usize]) {
        let mut pending = Vec::with_capacity(shards.len());
        for &s in shards {
            if s == self.id {
                self.unlock_local(tx);
            } else {
                pending.push(self.node.request(s, Request::Unlock(tx)));
            }
        }
        for p in pending {
            p.await;
        }
    }
}
