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
//! An op of [`on`], [`on_each`] or [`all`] runs on a shard only while no
//! multi-key command holds a key there (it queues behind the holders, and
//! later key takers queue behind it): a whole-keyspace read (KEYS, SCAN,
//! DBSIZE, RANDOMKEY) or change (FLUSHALL) never sees one half done. The
//! collector's snapshot calls are the exception: they read instruments only.
//!
//! Ops are closures run on the target shard's thread; they return typed
//! values that the caller merges. RESP is written once, by the caller on
//! the connection's core.
//!
//! It also owns each core's [`Shard`] (its `Db`, instruments, client
//! registry, runtime settings, [`Shutdown`] and housekeeping timers), whose
//! fields are private to this module.
//!
//! [`peer`] is the one place a core talks to another *server* (MIGRATE,
//! the cluster's peer checks), always async and within a timeout.
//!
//! May import: `store`, `metrics`, `protocol`, `config`.

pub mod keylock;
// Blocking commands (issue 13).
pub mod blocking;
pub mod mesh;
pub mod txlock;
// Pub/Sub (issue 14).
pub mod pubsub;
// Issue 16: Kora as a client of other servers (MIGRATE, cluster peers).
pub mod peer;

mod atomic;
mod clients;
mod housekeeping;
mod settings;
mod shard;
mod shutdown;

pub use atomic::Atomic;
pub use clients::ClientInfo;
pub use housekeeping::spawn_housekeeping;
pub use mesh::{Growth, Handler, Op};
pub use settings::AuthSettings;
pub use shard::{Admission, Admitted, KeyFinder, KeySpec, Routing, Shard, key_args, shard_of};
pub use shutdown::Shutdown;

use std::any::Any;

use std::rc::Rc;

use crate::protocol::Args;
use mesh::{Request, Response};
use txlock::TxId;

/// Runs `op` on shard `target` (right here when it is this core's) and
/// returns its result; None only if the target is gone (shutting down).
pub async fn on<R, F>(shard: &Shard, target: usize, op: F) -> Option<R>
where
    R: Send + 'static,
    F: FnOnce(&Shard) -> R + Send + 'static,
{
    if target == shard.id {
        local_turn(shard).await;
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
    let parts = targets.iter().map(|&t| (t, op.clone())).collect();
    on_parts(shard, parts).await
}

/// Runs a different op on each of several shards concurrently (each
/// shard's part of one request, e.g. the keys of a WATCH): every request is
/// on its way before the first answer is awaited. Results in the order of
/// `parts`; None for a shard that is gone.
pub async fn on_parts<R, F>(shard: &Shard, parts: Vec<(usize, F)>) -> Vec<Option<R>>
where
    R: Send + 'static,
    F: FnOnce(&Shard) -> R + Send + 'static,
{
    let pending: Vec<_> = parts
        .into_iter()
        .map(|(t, op)| {
            if t == shard.id {
                Err(op)
            } else {
                let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
                Ok(shard.node.request(t, tagged(shard, call)))
            }
        })
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    for part in pending {
        out.push(match part {
            Ok(fut) => downcast(fut.await),
            Err(op) => {
                local_turn(shard).await;
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

/// Cluster mode (issue 16): applies `change` to every core's copy of the
/// cluster state (each core then recomputes what depends on it) and
/// returns once all have. The one way the cluster state changes, so the
/// cores never disagree for longer than this call.
pub async fn cluster_update<F>(shard: &Shard, change: F)
where
    F: Fn(&mut crate::cluster::ClusterState) + Send + Clone + 'static,
{
    all(shard, move |s| {
        let mut state = s.cluster_mut();
        change(&mut state);
        state.refresh();
    })
    .await;
}

/// Before an op runs on this core's own shard: it waits, as a call from
/// another core does, for a transaction holding the shard and for keys
/// held by multi-key commands (none are held inside a transaction's own
/// task, whose shards are locked).
async fn local_turn(shard: &Shard) {
    shard.tx.unblocked().await;
    if shard.tx.current().is_none() {
        shard.keys_at_rest().await;
    }
    shard.db.borrow_mut().refresh_clock();
}

/// [`all`] as one consistent cut of the keyspace: every shard is locked
/// for `tx` (as EXEC locks them, in ascending shard order, each once no key
/// of it is held) before any op runs, and released after the last. So a
/// whole-keyspace command (KEYS, DBSIZE, FLUSHALL) never sees or splits a
/// multi-key command that spans shards: per-shard waiting alone would let a
/// RENAME from shard 0 to shard 1 fall between the two shards' reads.
/// Inside EXEC the transaction already holds every shard: plain [`all`].
pub async fn all_at_once<R, F>(shard: &Rc<Shard>, tx: TxId, op: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&Shard) -> R + Send + Clone + 'static,
{
    if shard.nshards == 1 || shard.tx.current().is_some() {
        return all(shard, op).await;
    }
    let shards: Vec<usize> = (0..shard.nshards).collect();
    if !shard.lock_shards(tx, &shards).await {
        return Vec::new();
    }
    let run = all(shard, op);
    let mut run = std::pin::pin!(run);
    let results = shard.with_tx(tx, run.as_mut()).await;
    shard.unlock_shards(tx, &shards).await;
    results
}

/// Runs `op` on its shard as a command of its own (not inside EXEC, whose
/// memory check is made once for the whole transaction): a command that
/// [`Growth::Grows`] on a shard over its memory budget first evicts, and is
/// answered OOM when nothing can be evicted. Under budget this costs one
/// comparison.
#[inline]
pub fn run_checked(db: &mut crate::store::Db, op: Op, args: &Args<'_>, out: &mut Vec<u8>) {
    if op.growth == Growth::Grows && db.over_budget() && !db.admit_write() {
        crate::protocol::reply::Resp::error(out, crate::store::evict::OOM);
        return;
    }
    (op.handler)(db, args, out);
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

// ---- Pub/Sub (issue 14) ----

/// Runs `op` on every other shard, each as soon as its message arrives:
/// not behind a transaction's shard lock nor keys held by multi-key
/// commands, so it must touch no keyspace data (Pub/Sub delivery). One
/// mesh message per other shard; the mesh is FIFO per pair of cores and
/// nothing defers these, so the ops one core sends a peer run there in
/// the order sent. Results in shard order, this shard left out; None for
/// a shard that is gone.
pub async fn on_others_now<R, F>(shard: &Shard, op: F) -> Vec<Option<R>>
where
    R: Send + 'static,
    F: FnOnce(&Shard) -> R + Send + Clone + 'static,
{
    let pending: Vec<_> = (0..shard.nshards)
        .filter(|&t| t != shard.id)
        .map(|t| {
            let op = op.clone();
            let call: mesh::Call = Box::new(move |s| Box::new(op(s)) as Box<dyn Any + Send>);
            shard.node.request(t, Request::Now(call))
        })
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    for fut in pending {
        out.push(downcast(fut.await));
    }
    out
}

/// PUBLISH / SPUBLISH: delivers `message` on `channel` to this core's
/// subscribers and sends it, fire and forget, to every other core that
/// has a receiver (one mesh message per such core, not per subscriber);
/// returns the receivers of all cores (subscribers of the channel plus
/// matching patterns, as Redis counts them), the others' from this
/// core's view of their subscriptions ([`pubsub`]).
pub fn publish(shard: &Shard, space: pubsub::Space, channel: &[u8], message: &[u8]) -> usize {
    let stats = &shard.metrics.stats;
    stats.pubsub_published.add(1);
    let limit = shard.output_limits.get().pubsub;
    let registry = shard.pubsub.borrow();
    let mut receivers = registry.deliver(stats, space, channel, message, limit);
    for peer in (0..shard.nshards).filter(|&p| p != shard.id) {
        let n = registry.peer_receivers(peer, space, channel);
        if n == 0 {
            continue;
        }
        receivers += n;
        // One buffer holds both: each peer's copy is one allocation (its
        // own, so no reference count is shared between cores).
        let both: Box<[u8]> = [channel, message].concat().into();
        let split = channel.len();
        let call: mesh::Call = Box::new(move |s: &Shard| {
            let limit = s.output_limits.get().pubsub;
            s.pubsub.borrow().deliver(
                &s.metrics.stats,
                space,
                &both[..split],
                &both[split..],
                limit,
            );
            Box::new(()) as Box<dyn Any + Send>
        });
        shard.node.tell(peer, Request::Now(call));
    }
    receivers
}

/// Tells every other core the subscriptions this core added or dropped
/// since it last told them, and waits until all have applied them (so a
/// PUBLISH on any core sees a subscription once its SUBSCRIBE answered).
/// Also tells the names' home cores (the server-wide gauges).
pub async fn pubsub_tell_peers(shard: &Shard) {
    pubsub_tell_homes(shard);
    let deltas = std::mem::take(&mut shard.pubsub.borrow_mut().deltas);
    if deltas.is_empty() || shard.nshards == 1 {
        return;
    }
    let from = shard.id;
    on_others_now(shard, move |s: &Shard| {
        s.pubsub.borrow_mut().apply_peer(from, &deltas)
    })
    .await;
}

/// Sends this core's Pub/Sub name changes (a name's first subscriber here,
/// or its last one gone) to each name's home core, which counts the names
/// subscribed anywhere for the server-wide gauges. Fire and forget: one
/// message per change, never awaited (the mesh keeps one core's changes in
/// order).
pub fn pubsub_tell_homes(shard: &Shard) {
    let changes = std::mem::take(&mut shard.pubsub.borrow_mut().changes);
    let stats = &shard.metrics.stats;
    for (space, name, delta) in changes {
        let home = shard_of(&name, shard.nshards);
        if home == shard.id {
            shard
                .pubsub
                .borrow_mut()
                .count_home(stats, space, &name, delta);
        } else {
            let call: mesh::Call = Box::new(move |s: &Shard| {
                s.pubsub
                    .borrow_mut()
                    .count_home(&s.metrics.stats, space, &name, delta);
                Box::new(()) as Box<dyn Any + Send>
            });
            shard.node.tell(home, Request::Now(call));
        }
    }
}
