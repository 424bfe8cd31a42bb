//! MULTI / DISCARD / WATCH / UNWATCH and the queue they build: what a
//! client accumulates before EXEC. EXEC itself runs in the server
//! (`server::transaction`), because it replays the queue through the
//! connection's pipeline.
//!
//! WATCH takes each key's modification count on its owner shard; every
//! write that reaches the key moves the count (the Db mutation guard), so
//! EXEC only compares counts.

use std::rc::Rc;

use super::conn::ClientState;
use super::{Args, CommandSpec, lookup};
use crate::coord::Shard;
use crate::protocol::parser::ArgRange;
use crate::protocol::reply::Resp;

/// Commands queued between MULTI and EXEC, arguments copied into one block.
#[derive(Default)]
pub struct Queued {
    pub(crate) data: Vec<u8>,
    ranges: Vec<ArgRange>,
    /// (first range, range count) per command.
    commands: Vec<(u32, u32)>,
    /// A command was rejected while queuing: EXEC must answer EXECABORT.
    pub(crate) failed: bool,
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

    /// The `i`th queued command's arguments.
    pub(crate) fn args(&self, i: usize) -> Args<'_> {
        let (first, count) = self.commands[i];
        Args::new(
            &self.data,
            &self.ranges[first as usize..(first + count) as usize],
        )
    }

    /// How many commands are queued.
    pub(crate) fn len(&self) -> usize {
        self.commands.len()
    }
}

/// A key this client WATCHes, and its modification count at WATCH time.
pub struct Watched {
    pub(crate) shard: usize,
    pub(crate) key: Box<[u8]>,
    pub(crate) version: u64,
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
        // Pub/Sub (issue 14): RESET ends the transaction itself.
        | "reset"
    ) {
        return false;
    }
    if !spec.arity_ok(args.len()) {
        queued.failed = true;
        return false; // the connection answers (and counts) the arity error
    }
    if queued.data.len() + args.iter_from(0).map(<[u8]>::len).sum::<usize>()
        > shard.config().client_query_buffer_limit
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

/// Whether `spec`, sent inside MULTI, is refused while its shards are out
/// of memory: every command but those that end the transaction or the
/// connection (Redis 7.0's `processCommand` rule; EXEC makes its own check
/// of the queued commands; Redis also exempts RESET, which Kora lacks).
pub fn refused_when_out_of_memory(spec: &CommandSpec) -> bool {
    !matches!(spec.name, "exec" | "discard" | "quit")
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
    shard.metrics().stats.tx_discarded.add(1);
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
    let mut parts = Vec::new();
    for target in 0..shard.nshards() {
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
        if !keys.is_empty() {
            parts.push((target, move |s: &Shard| {
                let mut db = s.db();
                let versions: Vec<u64> = keys.iter().map(|k| db.watch(k)).collect();
                (s.id(), keys, versions)
            }));
        }
    }
    let answers = crate::coord::on_parts(shard, parts).await;
    if answers.iter().any(Option::is_none) {
        // Keys watched on the shards that did answer stay counted there
        // until the connection ends: harmless (a watch only reads).
        out.error(crate::command::keys::SHARD_GONE);
        return;
    }
    for (target, keys, versions) in answers.into_iter().flatten() {
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
    let parts: Vec<_> = (0..shard.nshards())
        .filter_map(|target| {
            let keys: Vec<Box<[u8]>> = watched
                .iter()
                .filter(|w| w.shard == target)
                .map(|w| w.key.clone())
                .collect();
            (!keys.is_empty()).then_some((target, move |s: &Shard| {
                let mut db = s.db();
                keys.iter().for_each(|k| db.unwatch(k));
            }))
        })
        .collect();
    crate::coord::on_parts(shard, parts).await;
}

/// The watched keys of one shard with their versions, checked there.
pub(crate) fn watches_intact(s: &Shard, watched: &[(Box<[u8]>, u64)]) -> bool {
    let mut db = s.db();
    watched.iter().all(|(k, v)| db.watch_intact(k, *v))
}

/// This client's watched keys on shard `target`, with their versions.
pub(crate) fn watched_on(client: &ClientState, target: usize) -> Vec<(Box<[u8]>, u64)> {
    client
        .watched
        .iter()
        .filter(|w| w.shard == target)
        .map(|w| (w.key.clone(), w.version))
        .collect()
}
