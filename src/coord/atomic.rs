//! Multi-key commands across shards, isolated as in Redis.
//!
//! An [`Atomic`] is declared with every shard its command may touch. The
//! first op on a shard takes that shard's lock in the same hop
//! (`LockCall`), after first locking every declared shard below it that is
//! not held yet, so locks are always taken in ascending shard order — the
//! order EXEC uses too — and two lockers can never wait on each other in a
//! cycle. Later ops on a held shard pass its lock (`TxCall`). Dropping the
//! `Atomic` releases every lock (a scope guard: no early return can leak
//! one).
//!
//! While a shard is held, every other client's work for it waits: batches
//! and calls from other cores queue behind the lock, connections of its own
//! core wait before running a command inline. So no client observes a
//! multi-key command half done. Plain single-key commands never hold
//! anything while they wait, so they cannot close a cycle either.
//!
//! Inside EXEC the transaction already holds every shard its commands
//! touch: an `Atomic` created then takes no lock and tags its calls with
//! the transaction's id.

use std::any::Any;

use super::mesh::{self, Request, Response};
use super::txlock::TxId;
use crate::shard::Shard;

/// A multi-key command's hold on the shards it touches (see the module
/// docs).
pub struct Atomic<'s> {
    shard: &'s Shard,
    tx: TxId,
    /// Every shard the command may touch, ascending, without duplicates.
    declared: Vec<usize>,
    /// The shards locked so far (a subset of `declared`).
    held: Vec<usize>,
    /// Running inside EXEC: the transaction holds the shards already.
    inherited: bool,
}

impl<'s> Atomic<'s> {
    /// Starts a multi-key command with id `tx` (the client's id: unique
    /// across cores, and a client runs one command at a time) over
    /// `shards`. Takes no lock yet.
    pub fn new(shard: &'s Shard, tx: TxId, shards: impl IntoIterator<Item = usize>) -> Self {
        let mut declared: Vec<usize> = shards.into_iter().collect();
        declared.sort_unstable();
        declared.dedup();
        let (tx, inherited) = match shard.tx.current() {
            Some(running) => (running, true),
            None => (tx, false),
        };
        Atomic {
            shard,
            tx,
            declared,
            held: Vec::new(),
            inherited,
        }
    }

    /// Runs `op` on `target` (one of the declared shards) while holding
    /// it, and returns its result; None if the shard is gone (shutting
    /// down).
    pub async fn on<R, F>(&mut self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        debug_assert!(self.declared.contains(&target), "undeclared shard {target}");
        if self.inherited || self.held.contains(&target) {
            return self.run_held(target, op).await;
        }
        // Lock order: every declared shard below `target` first.
        let below: Vec<usize> = self
            .declared
            .iter()
            .copied()
            .filter(|&s| s < target && !self.held.contains(&s))
            .collect();
        for s in below {
            if !self.lock(s).await {
                return None;
            }
        }
        self.held.push(target);
        let shard = self.shard;
        if target == shard.id {
            shard.lock_local(self.tx).await;
            shard.db.borrow_mut().refresh_clock();
            return Some(op(shard));
        }
        let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
        match shard
            .node
            .request(target, Request::LockCall(self.tx, call))
            .await
        {
            Response::Call(any) => any.downcast::<R>().ok().map(|b| *b),
            _ => {
                self.held.retain(|&s| s != target);
                None
            }
        }
    }

    /// Runs `op` as the command's last op, on the highest declared shard,
    /// which it has not touched yet: after locking every other declared
    /// shard, as a plain call that waits behind the shard's holders but
    /// takes no lock. Nothing of the command runs after it, and everything
    /// it did elsewhere stays hidden behind the other shards' locks until
    /// the `Atomic` is dropped, so no client can tell; it saves every
    /// command locking the highest shard (with two shards, half the
    /// locking).
    pub async fn last_on<R, F>(&mut self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        let highest = self.declared.last().copied();
        if self.inherited || highest != Some(target) || self.held.contains(&target) {
            return self.on(target, op).await;
        }
        let below: Vec<usize> = self
            .declared
            .iter()
            .copied()
            .filter(|&s| s < target && !self.held.contains(&s))
            .collect();
        for s in below {
            if !self.lock(s).await {
                return None;
            }
        }
        let shard = self.shard;
        if target == shard.id {
            shard.tx.unblocked().await;
            shard.db.borrow_mut().refresh_clock();
            return Some(op(shard));
        }
        let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
        match shard.node.request(target, Request::Call(call)).await {
            Response::Call(any) => any.downcast::<R>().ok().map(|b| *b),
            _ => None,
        }
    }

    /// [`Atomic::on`] for every shard but the highest, [`Atomic::last_on`]
    /// for the highest: for commands that touch each shard once, in
    /// ascending order (the parts of an MGET, MSET, DEL…).
    pub async fn on_part<R, F>(&mut self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        if self.declared.last() == Some(&target) {
            self.last_on(target, op).await
        } else {
            self.on(target, op).await
        }
    }

    /// The declared shards, ascending.
    pub fn shards(&self) -> &[usize] {
        &self.declared
    }

    async fn run_held<R, F>(&self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        let shard = self.shard;
        if target == shard.id {
            shard.db.borrow_mut().refresh_clock();
            return Some(op(shard));
        }
        let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
        match shard
            .node
            .request(target, Request::TxCall(self.tx, call))
            .await
        {
            Response::Call(any) => any.downcast::<R>().ok().map(|b| *b),
            _ => None,
        }
    }

    /// Takes shard `s`'s lock without running anything there yet.
    async fn lock(&mut self, s: usize) -> bool {
        let shard = self.shard;
        if s == shard.id {
            shard.lock_local(self.tx).await;
        } else if !matches!(
            shard.node.request(s, Request::Lock(self.tx)).await,
            Response::Locked
        ) {
            return false;
        }
        self.held.push(s);
        true
    }
}

impl Drop for Atomic<'_> {
    fn drop(&mut self) {
        if self.inherited {
            return;
        }
        let shard = self.shard;
        for &s in &self.held {
            if s == shard.id {
                shard.unlock_local(self.tx);
            } else {
                // Sent now; per-peer FIFO order puts it before any later
                // request of this connection, so nobody needs to wait for
                // the answer.
                drop(shard.node.request(s, Request::Unlock(self.tx)));
            }
        }
    }
}
