//! Multi-key commands across shards, isolated as in Redis.
//!
//! An [`Atomic`] is declared with every key its command may touch. The
//! first op on a shard takes the command's keys on that shard in the same
//! hop (`KeyLockCall`, see [`super::keylock`]), after first taking its keys
//! on every declared shard below it, so keys are always taken in ascending
//! shard order — the order EXEC takes whole shards in — and two lockers
//! can never wait on each other in a cycle. Later ops on a shard pass the
//! command's own locks (`TxCall`). Dropping the `Atomic` releases
//! everything (a scope guard: no early return can leak a lock).
//!
//! While a key is held, every other client's command naming it waits, so
//! no client observes a multi-key command half done; commands on other
//! keys, multi-key ones included, run on. Plain commands never hold
//! anything while they wait, so they cannot close a cycle either.
//!
//! Inside EXEC the transaction already holds every shard its commands
//! touch: an `Atomic` created then takes no lock and tags its calls with
//! the transaction's id.

use std::any::Any;

use super::mesh::{self, Request, Response};
use super::txlock::TxId;
use crate::coord::Shard;

/// A multi-key command's hold on the shards it touches (see the module
/// docs).
pub struct Atomic<'s> {
    shard: &'s Shard,
    tx: TxId,
    /// Every shard the command may touch, ascending, with the command's
    /// keys there.
    declared: Vec<(usize, Vec<Box<[u8]>>)>,
    /// The shards whose keys are held so far.
    held: Vec<usize>,
    /// Running inside EXEC: the transaction holds the shards already.
    inherited: bool,
}

impl<'s> Atomic<'s> {
    /// Starts a multi-key command with id `tx` (the client's id: unique
    /// across cores, and a client runs one command at a time) over `keys`
    /// (every key it may touch; duplicates are fine). Takes no lock yet.
    pub fn new<'k>(shard: &'s Shard, tx: TxId, keys: impl IntoIterator<Item = &'k [u8]>) -> Self {
        let mut declared: Vec<(usize, Vec<Box<[u8]>>)> = Vec::new();
        for key in keys {
            let owner = shard.owner(key);
            let at = match declared.iter().position(|(s, _)| *s == owner) {
                Some(at) => at,
                None => {
                    declared.push((owner, Vec::new()));
                    declared.len() - 1
                }
            };
            declared[at].1.push(key.into());
        }
        declared.sort_unstable_by_key(|(s, _)| *s);
        // Sorted and without duplicates, in O(n log n): a command may name a
        // million keys, and the shards look keys up in these lists
        // (`keylock` relies on the order).
        for (_, keys) in &mut declared {
            keys.sort_unstable();
            keys.dedup();
        }
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

    fn keys_of(&self, target: usize) -> Vec<Box<[u8]>> {
        self.declared
            .iter()
            .find(|(s, _)| *s == target)
            .map(|(_, keys)| keys.clone())
            .unwrap_or_default()
    }

    /// Runs `op` on `target` (the owner of some declared keys) while
    /// holding the command's keys there, and returns its result; None if
    /// the shard is gone (shutting down).
    pub async fn on<R, F>(&mut self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        debug_assert!(
            self.declared.iter().any(|(s, _)| *s == target),
            "undeclared shard {target}"
        );
        if self.inherited || self.held.contains(&target) {
            return self.run_held(target, op).await;
        }
        // Lock order: every declared shard below `target` first.
        let below: Vec<usize> = self
            .declared
            .iter()
            .map(|(s, _)| *s)
            .filter(|&s| s < target && !self.held.contains(&s))
            .collect();
        for s in below {
            self.lock_with(s, |_| ()).await?;
        }
        self.lock_with(target, op).await
    }

    /// Takes the command's keys on `target` and runs `op` there, in one
    /// hop.
    async fn lock_with<R, F>(&mut self, target: usize, op: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Shard) -> R + Send + 'static,
    {
        let keys = self.keys_of(target);
        self.held.push(target);
        let shard = self.shard;
        if target == shard.id {
            shard.lock_keys_local(self.tx, keys).await;
            shard.db.borrow_mut().refresh_clock();
            return Some(op(shard));
        }
        let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
        match shard
            .node
            .request(target, Request::KeyLockCall(self.tx, keys, call))
            .await
        {
            Response::Call(any) => any.downcast::<R>().ok().map(|b| *b),
            _ => None,
        }
    }

    /// The shards the command's keys live on, ascending.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.declared.iter().map(|(s, _)| *s)
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
}

impl Drop for Atomic<'_> {
    fn drop(&mut self) {
        if self.inherited {
            return;
        }
        let shard = self.shard;
        for &s in &self.held {
            if s == shard.id {
                shard.unlock_keys(self.tx);
            } else {
                // Sent now; per-peer FIFO order puts it before any later
                // request of this connection, so no answer is needed.
                shard.node.tell(s, Request::Unlock(self.tx));
            }
        }
    }
}
