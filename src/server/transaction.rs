//! MULTI / EXEC / DISCARD / WATCH / UNWATCH: the transaction command
//! family. It lives beside the connection because EXEC replays the queued
//! commands through the connection's own dispatch.
//!
//! EXEC picks the cheapest way that is still atomic:
//! - every command and watched key on one shard: the whole transaction is
//!   one call on that shard, which checks the watched keys and runs the
//!   commands in one synchronous step: no locks, one hop at most;
//! - otherwise: lock the shards involved in shard-id order (`txlock.rs`),
//!   check the watched keys, run the commands as an ordinary pipeline whose
//!   mesh messages carry the transaction's id, and unlock.
//!
//! Layer: server, beside the connection; imports `command`, the mesh,
//! `txlock` and the connection's pipeline.

use std::rc::Rc;

use super::connection::{Pipeline, Recognized, complete_all, dispatch, note_slow};
use crate::command::conn::ClientState;
use crate::command::transaction::{Queued, unwatch_all, watched_on, watches_intact};
use crate::command::{Kind, lookup};
use crate::coord::Shard;
use crate::coord::mesh::{OpBatch, ReplyBatch};
use crate::metrics::CommandTimer;
use crate::protocol::reply::Resp;

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
/// Redis 7.0's EXEC of a transaction with a `denyoom` command while over
/// `maxmemory` (with nothing to evict).
const EXECABORT_OOM: &str = "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.";

/// Whether a transaction must pass the memory check before it runs: it
/// has a `denyoom` command and a memory limit is set. As Redis, the check
/// is made once, for the whole transaction, before anything runs (OOM
/// then discards it whole); its commands are not checked one by one.
fn needs_room(shard: &Shard, queued: &Queued) -> bool {
    shard.db().budget() != 0
        && (0..queued.len()).any(|i| lookup(queued.args(i).get(0)).is_some_and(|s| s.denyoom))
}

/// EXEC: runs the queued commands atomically and appends the array of
/// their replies (nil if a watched key changed).
pub async fn exec<'m>(
    shard: &'m Rc<Shard>,
    client: &mut ClientState,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) {
    complete_all(shard, client, pipe, out).await;
    let mut timer = CommandTimer::start(shard.metrics(), exec_slot());
    let mark = out.len();
    let stats = &shard.metrics().stats;
    client.info.multi.set(-1);
    // Cluster mode (issue 16): every queued key in one slot served here.
    if shard.cluster_enabled()
        && client.multi.as_ref().is_some_and(|q| !q.failed)
        && let Some(redirect) = crate::command::cluster::plan_exec(shard, client).await
    {
        client.multi = None;
        unwatch_all(shard, client).await;
        stats.tx_discarded.add(1);
        crate::command::cluster::refuse(shard, &redirect, out);
        timer.set_reply(&out[mark..]);
        return;
    }
    match client.multi.take() {
        None => out.error("ERR EXEC without MULTI"),
        Some(queued) if queued.failed => {
            unwatch_all(shard, client).await;
            stats.tx_discarded.add(1);
            out.error(EXECABORT);
        }
        Some(queued) => {
            let ran = match involved_shards(shard, client, &queued) {
                Some(target) => exec_on_one(shard, client, &queued, target, out).await,
                None => exec_locked(shard, client, &queued, pipe, out).await,
            };
            unwatch_all(shard, client).await;
            match ran {
                Some(true) => stats.tx_executed.add(1),
                Some(false) => stats.tx_watch_aborted.add(1),
                None => stats.tx_discarded.add(1),
            }
        }
    }
    timer.set_reply(&out[mark..]);
}

/// The one shard a transaction touches, if it touches only one and needs
/// nothing run by the connection itself.
fn involved_shards(shard: &Shard, client: &ClientState, queued: &Queued) -> Option<usize> {
    let mut only: Option<usize> = None;
    let mut same = |s: usize| match only {
        None => {
            only = Some(s);
            true
        }
        Some(o) => o == s,
    };
    for w in &client.watched {
        if !same(w.shard) {
            return None;
        }
    }
    for i in 0..queued.len() {
        let args = queued.args(i);
        let spec = lookup(args.get(0))?;
        if matches!(spec.kind, Kind::Conn(_))
            || !shard.key_owners(spec.keys(), &args).all(&mut same)
        {
            return None;
        }
    }
    Some(only.unwrap_or(shard.id()))
}

/// A transaction on one shard: one call there checks the memory budget
/// and the watches and runs every command in one step. Some(false) if a
/// watched key had changed, None if refused for memory (discarded).
async fn exec_on_one(
    shard: &Rc<Shard>,
    client: &ClientState,
    queued: &Queued,
    target: usize,
    out: &mut Vec<u8>,
) -> Option<bool> {
    let check_room = needs_room(shard, queued);
    let mut batch = OpBatch::default();
    let mut timers = Vec::with_capacity(queued.len());
    for i in 0..queued.len() {
        let args = queued.args(i);
        let Some(spec) = lookup(args.get(0)) else {
            continue;
        };
        let handler = match spec.kind {
            Kind::Keyed(h) => h,
            Kind::Multi { whole, .. } => whole,
            Kind::Conn(_) => continue,
        };
        batch.push(spec.op(handler), args.iter_from(0));
        timers.push(CommandTimer::start(
            shard.metrics(),
            crate::command::table::slot_of(spec, &args),
        ));
    }
    let watched = watched_on(client, target);
    // The transaction's keys are held for its one step, as any multi-key
    // command's: a cross-shard command holding one of them finishes first.
    let keys = (0..queued.len()).flat_map(|i| {
        let args = queued.args(i);
        lookup(args.get(0))
            .into_iter()
            .flat_map(move |spec| crate::coord::key_args(spec.keys(), &args))
    });
    let mut atomic = crate::coord::Atomic::new(shard, client.info.id, keys);
    let step = move |s: &Shard| {
        if check_room && !s.db().admit_write() {
            return Err(());
        }
        if !watches_intact(s, &watched) {
            return Ok(None);
        }
        let mut replies = ReplyBatch::default();
        s.exec_batch(&batch, &mut replies);
        Ok(Some(replies))
    };
    let answer = if atomic.shards().next().is_some() {
        atomic.on(target, step).await
    } else {
        // No key at all (PING, ECHO…): nothing to hold.
        crate::coord::on(shard, target, step).await
    };
    drop(atomic);
    match answer {
        None => {
            timers.into_iter().for_each(CommandTimer::cancel);
            out.error(crate::command::keys::SHARD_GONE);
            Some(true)
        }
        Some(Err(())) => {
            timers.into_iter().for_each(CommandTimer::cancel);
            out.error(EXECABORT_OOM);
            None
        }
        Some(Ok(None)) => {
            timers.into_iter().for_each(CommandTimer::cancel);
            out.nil_array();
            Some(false)
        }
        Some(Ok(Some(replies))) => {
            out.array(timers.len());
            for (i, mut timer) in timers.into_iter().enumerate() {
                let reply = replies.get(i);
                timer.set_reply(reply);
                drop(timer);
                note_slow(shard, client, &queued.args(i));
                out.extend_from_slice(reply);
            }
            Some(true)
        }
    }
}

/// A transaction over several shards: take their locks in shard order,
/// check the watches, run the commands as a pipeline tagged with the
/// transaction's id, release. Some(false) if a watched key had changed,
/// None if refused for memory (checked on every locked shard first).
async fn exec_locked<'m>(
    shard: &'m Rc<Shard>,
    client: &mut ClientState,
    queued: &Queued,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Option<bool> {
    let check_room = needs_room(shard, queued);
    let tx = client.info.id;
    // Connection commands may reach any shard: lock them all then (all but
    // the few answered by the connection alone).
    let all = (0..queued.len()).any(|i| {
        matches!(
            lookup(queued.args(i).get(0)).map(|s| s.kind),
            Some(Kind::Conn(crate::command::Conn::Async(_)))
        )
    });
    let mut shards: Vec<usize> = if all {
        (0..shard.nshards()).collect()
    } else {
        let mut v: Vec<usize> = client.watched.iter().map(|w| w.shard).collect();
        for i in 0..queued.len() {
            let args = queued.args(i);
            if let Some(spec) = lookup(args.get(0)) {
                v.extend(shard.key_owners(spec.keys(), &args));
            }
        }
        v
    };
    shards.sort_unstable();
    shards.dedup();

    let run = async {
        if !shard.lock_shards(tx, &shards).await {
            out.error(crate::command::keys::SHARD_GONE);
            return Some(true);
        }
        if check_room && !crate::coord::room_for_write(shard, &shards).await {
            out.error(EXECABORT_OOM);
            shard.unlock_shards(tx, &shards).await;
            return None;
        }
        let checks: Vec<_> = shards
            .iter()
            .map(|&target| (target, watched_on(client, target)))
            .filter(|(_, watched)| !watched.is_empty())
            .map(|(target, watched)| (target, move |s: &Shard| watches_intact(s, &watched)))
            .collect();
        let intact = crate::coord::on_parts(shard, checks)
            .await
            .into_iter()
            .all(|ok| ok == Some(true));
        if intact {
            out.array(queued.len());
            for i in 0..queued.len() {
                let args = queued.args(i);
                // QUIT and friends were not queued; a queued command never
                // closes the connection.
                let _ = dispatch(shard, client, &args, Recognized::by_name(&args), pipe, out).await;
                note_slow(shard, client, &args);
            }
            complete_all(shard, client, pipe, out).await;
        } else {
            out.nil_array();
        }
        shard.unlock_shards(tx, &shards).await;
        Some(intact)
    };
    let mut run = std::pin::pin!(run);
    shard.with_tx(tx, run.as_mut()).await
}

/// EXEC's metrics slot, looked up once.
fn exec_slot() -> crate::command::Slot {
    static SLOT: std::sync::OnceLock<crate::command::Slot> = std::sync::OnceLock::new();
    *SLOT.get_or_init(|| crate::command::table::slot_of_name("exec"))
}
