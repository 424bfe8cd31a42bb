//! The coordination layer: the only way code running on one core reaches
//! another core's shard.
//!
//! It owns the channel mesh ([`mesh`]: requests, responses, the batches a
//! pipeline sends), the shard locks ([`txlock`]) and the ways to use them:
//!
//! - [`on`]: run an op on one shard (inline when it is this core's) and get
//!   its typed result back;
//! - [`on_each`]: run an op on several shards concurrently: every request
//!   is sent before any answer is awaited, results come back in the order
//!   asked;
//! - [`all`]: [`on_each`] over every shard;
//! - [`Atomic`]: a multi-key command over several shards, isolated from
//!   every other client: each shard it touches is locked (in ascending
//!   shard order, so two of them can never wait on each other in a cycle)
//!   from its first op until the command ends. EXEC uses the same locks.
//!
//! Ops are closures run on the target shard's thread; they return typed
//! values that the caller merges. RESP is written once, by the caller on
//! the connection's core.
//!
//! May import: `store`, `metrics`, `protocol`, and `shard::Shard` (the
//! per-core state the ops run against).

pub mod keylock;
pub mod mesh;
pub mod txlock;

mod atomic;

pub use atomic::Atomic;

use std::any::Any;

use crate::shard::Shard;
use mesh::{Request, Response};

/// Runs `op` on shard `target` (right here when it is this core's) and
/// returns its result; None only if the target is gone (shutting down).
pub async fn on<R, F>(shard: &Shard, target: usize, op: F) -> Option<R>
where
    R: Send + 'static,
    F: FnOnce(&Shard) -> R + Send + 'static,
{
    if target == shard.id {
        shard.tx.unblocked().await;
        shard.db.borrow_mut().refresh_clock();
        return Some(op(shard));
    }
    let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
    downcast(shard.node.request(target, tagged(shard, call)).await)
}

/// Runs `op` on each of `targets` concurrently: every request is on its
/// way before the first answer is awaited. Results in the order of
/// `targets`; None for a shard that is gone.
pub async fn on_each<R, F>(shard: &Shard, targets: &[usize], op: F) -> Vec<Option<R>>
where
    R: Send + 'static,
    F: Fn(&Shard) -> R + Send + Clone + 'static,
{
    let pending: Vec<_> = targets
        .iter()
        .map(|&t| {
            (t != shard.id).then(|| {
                let op = op.clone();
                let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
                shard.node.request(t, tagged(shard, call))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(targets.len());
    for fut in pending {
        out.push(match fut {
            Some(fut) => downcast(fut.await),
            None => {
                shard.tx.unblocked().await;
                shard.db.borrow_mut().refresh_clock();
                Some(op(shard))
            }
        });
    }
    out
}

/// [`on_each`] over every shard, in shard order; shards that are gone are
/// left out.
pub async fn all<R, F>(shard: &Shard, op: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&Shard) -> R + Send + Clone + 'static,
{
    let targets: Vec<usize> = (0..shard.nshards).collect();
    on_each(shard, &targets, op)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Before a `denyoom` command or transaction that spans `targets`: asks
/// each of those shards to make room (evicting as its policy allows) and
/// returns false if any of them is over its memory budget with nothing
/// to evict. Decided before anything runs, so such a command is refused
/// whole (OOM), never half applied. Without a memory limit it sends
/// nothing.
pub async fn room_for_write(shard: &Shard, targets: &[usize]) -> bool {
    if shard.db.borrow().budget() == 0 {
        return true;
    }
    on_each(shard, targets, |s: &Shard| s.db.borrow_mut().admit_write())
        .await
        .into_iter()
        .all(|ok| ok == Some(true))
}

/// A call on behalf of the running transaction passes that transaction's
/// locks; any other call waits for them.
fn tagged(shard: &Shard, call: mesh::Call) -> Request {
    match shard.tx.current() {
        Some(tx) => Request::TxCall(tx, call),
        None => Request::Call(call),
    }
}

fn downcast<R: 'static>(resp: Response) -> Option<R> {
    match resp {
        Response::Call(any) => any.downcast::<R>().ok().map(|b| *b),
        _ => None,
    }
}
