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

use super::Shard;
use super::connection::{ClientState, Pipeline, complete_all, dispatch, note_slow};
use crate::command::{Args, Kind, lookup};
use crate::coord::mesh::{OpBatch, ReplyBatch};
use crate::coord::txlock::WithTx;
use crate::metrics::CommandTimer;
use crate::protocol::parser::ArgRange;
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
    shard.db.borrow().budget() != 0
        && (0..queued.len()).any(|i| lookup(queued.args(i).get(0)).is_some_and(|s| s.denyoom))
}

/// Commands queued between MULTI and EXEC, arguments copied into one block.
#[derive(Default)]
pub struct Queued {
    data: Vec<u8>,
    ranges: Vec<ArgRange>,
    /// (first range, range count) per command.
    commands: Vec<(u32, u32)>,
    /// A command was rejected while queuing: EXEC must answer EXECABORT.
    failed: bool,
}

impl Queued {
    fn push(&mut self, args: &Args) {
        let first = self.ranges.len() as u32;
        for arg in args.iter_from(0) {
            let start = self.data.len();
            self.data.extend_from_slice(arg);
            self.ranges.push((start, self.data.len()));
        }
        self.commands
            .push((first, self.ranges.len() as u32 - first));
    }

    fn args(&self, i: usize) -> Args<'_> {
        let (first, count) = self.commands[i];
        Args::new(
            &self.data,
            &self.ranges[first as usize..(first + count) as usize],
        )
    }

    fn len(&self) -> usize {
        self.commands.len()
    }
}

/// A key this client WATCHes, and its modification count at WATCH time.
pub struct Watched {
    shard: usize,
    key: Box<[u8]>,
    version: u64,
}

/// Called for each command while the client is inside MULTI. Returns false
/// for the commands that run right away (EXEC, DISCARD, MULTI, WATCH,
/// QUIT); queues the others and answers +QUEUED, or rejects them (unknown
/// command, wrong arity, too large a queue) and marks the transaction
/// failed, as Redis does.
pub fn queue_if_multi(
    shard: &Shard,
    client: &mut ClientState,
    args: &Args,
    out: &mut Vec<u8>,
) -> bool {
    let Some(queued) = client.multi.as_mut() else {
        return false;
    };
    let Some(spec) = lookup(args.get(0)) else {
        queued.failed = true;
        return false; // the connection answers "unknown command"
    };
    // Run right away even inside MULTI, as in Redis.
    if matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "post" | "host:"
    ) {
        return false;
    }
    if !spec.arity_ok(args.len()) {
        queued.failed = true;
        return false; // the connection answers (and counts) the arity error
    }
    if queued.data.len() + args.iter_from(0).map(<[u8]>::len).sum::<usize>()
        > shard.config.client_query_buffer_limit
    {
        queued.failed = true;
        out.error("ERR transaction queue exceeds client-query-buffer-limit");
        return true;
    }
    queued.push(args);
    client.info.multi.set(queued.len() as i64);
    out.simple("QUEUED");
    true
}

/// Marks the open transaction failed (EXEC answers EXECABORT): a command
/// refused while queuing, e.g. OOM.
pub fn reject_queued(client: &mut ClientState) {
    if let Some(queued) = client.multi.as_mut() {
        queued.failed = true;
    }
}

pub fn multi(client: &mut ClientState, out: &mut Vec<u8>) {
    if client.multi.is_some() {
        out.error("ERR MULTI calls can not be nested");
    } else {
        client.multi = Some(Box::default());
        client.info.multi.set(0);
        out.ok();
    }
}

pub async fn discard(shard: &Rc<Shard>, client: &mut ClientState, out: &mut Vec<u8>) {
    if client.multi.take().is_none() {
        out.error("ERR DISCARD without MULTI");
        return;
    }
    client.info.multi.set(-1);
    unwatch_all(shard, client).await;
    shard.metrics.stats.tx_discarded.add(1);
    out.ok();
}

pub async fn watch(
    shard: &Rc<Shard>,
    client: &mut ClientState,
    args: &Args<'_>,
    out: &mut Vec<u8>,
) {
    if client.multi.is_some() {
        // Redis answers this without failing the transaction.
        out.error("ERR WATCH inside MULTI is not allowed");
        return;
    }
    for target in 0..shard.nshards {
        let mut keys: Vec<Box<[u8]>> = args
            .iter_from(1)
            .filter(|k| shard.owner(k) == target)
            .filter(|k| {
                !client
                    .watched
                    .iter()
                    .any(|w| w.shard == target && &*w.key == *k)
            })
            .map(Box::from)
            .collect();
        // `WATCH k k` watches k once.
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            continue;
        }
        let answer = crate::coord::on(shard, target, move |s: &Shard| {
            let mut db = s.db.borrow_mut();
            let versions: Vec<u64> = keys.iter().map(|k| db.watch(k)).collect();
            (keys, versions)
        })
        .await;
        let Some((keys, versions)) = answer else {
            out.error(crate::command::keys::SHARD_GONE);
            return;
        };
        for (key, version) in keys.into_iter().zip(versions) {
            client.watched.push(Watched {
                shard: target,
                key,
                version,
            });
        }
    }
    client.info.watching.set(client.watched.len());
    out.ok();
}

pub async fn unwatch(shard: &Rc<Shard>, client: &mut ClientState, out: &mut Vec<u8>) {
    unwatch_all(shard, client).await;
    out.ok();
}

/// Drops every WATCH of this client (EXEC, DISCARD, UNWATCH, disconnect).
pub async fn unwatch_all(shard: &Rc<Shard>, client: &mut ClientState) {
    if client.watched.is_empty() {
        return;
    }
    let watched = std::mem::take(&mut client.watched);
    client.info.watching.set(0);
    for target in 0..shard.nshards {
        let keys: Vec<Box<[u8]>> = watched
            .iter()
            .filter(|w| w.shard == target)
            .map(|w| w.key.clone())
            .collect();
        if !keys.is_empty() {
            crate::coord::on(shard, target, move |s: &Shard| {
                let mut db = s.db.borrow_mut();
                keys.iter().for_each(|k| db.unwatch(k));
            })
            .await;
        }
    }
}

/// The watched keys of one shard with their versions, checked there.
fn watches_intact(s: &Shard, watched: &[(Box<[u8]>, u64)]) -> bool {
    let mut db = s.db.borrow_mut();
    watched.iter().all(|(k, v)| db.watch_intact(k, *v))
}

fn watched_on(client: &ClientState, target: usize) -> Vec<(Box<[u8]>, u64)> {
    client
        .watched
        .iter()
        .filter(|w| w.shard == target)
        .map(|w| (w.key.clone(), w.version))
        .collect()
}

/// EXEC: runs the queued commands atomically and appends the array of
/// their replies (nil if a watched key changed).
/// `buf` is the read buffer the commands before EXEC came from.
pub async fn exec<'m>(
    shard: &'m Rc<Shard>,
    client: &mut ClientState,
    buf: &[u8],
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) {
    complete_all(shard, client, buf, pipe, out).await;
    let mut timer = CommandTimer::start(&shard.metrics, crate::command::SLOT_OTHER);
    let mark = out.len();
    let stats = &shard.metrics.stats;
    client.info.multi.set(-1);
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
        if matches!(spec.kind, Kind::Conn(_)) || !shard.key_owners(spec, &args).all(&mut same) {
            return None;
        }
    }
    Some(only.unwrap_or(shard.id))
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
        batch.push(handler, args.iter_from(0));
        timers.push(CommandTimer::start(&shard.metrics, spec.slot));
    }
    let watched = watched_on(client, target);
    // The transaction's keys are held for its one step, as any multi-key
    // command's: a cross-shard command holding one of them finishes first.
    let keys = (0..queued.len()).flat_map(|i| {
        let args = queued.args(i);
        lookup(args.get(0))
            .into_iter()
            .flat_map(move |spec| crate::shard::key_args(spec, &args))
    });
    let mut atomic = crate::coord::Atomic::new(shard, client.info.id, keys);
    let step = move |s: &Shard| {
        if check_room && !s.db.borrow_mut().admit_write() {
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
        (0..shard.nshards).collect()
    } else {
        let mut v: Vec<usize> = client.watched.iter().map(|w| w.shard).collect();
        for i in 0..queued.len() {
            let args = queued.args(i);
            if let Some(spec) = lookup(args.get(0)) {
                v.extend(shard.key_owners(spec, &args));
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
        let mut intact = true;
        for &target in &shards {
            let watched = watched_on(client, target);
            if watched.is_empty() {
                continue;
            }
            let ok =
                crate::coord::on(shard, target, move |s: &Shard| watches_intact(s, &watched)).await;
            if ok != Some(true) {
                intact = false;
                break;
            }
        }
        if intact {
            out.array(queued.len());
            for i in 0..queued.len() {
                let args = queued.args(i);
                // QUIT and friends were not queued; a queued command never
                // closes the connection.
                let _ = dispatch(shard, client, &args, lookup(args.get(0)), pipe, out).await;
                note_slow(shard, client, &args);
            }
            complete_all(shard, client, &queued.data, pipe, out).await;
        } else {
            out.nil_array();
        }
        shard.unlock_shards(tx, &shards).await;
        Some(intact)
    };
    let mut run = std::pin::pin!(run);
    WithTx::new(&shard.tx, tx, run.as_mut()).await
}
