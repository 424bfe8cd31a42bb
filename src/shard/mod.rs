//! The per-core runtime: one `Shard` per pinned executor, owning its
//! keyspace and instruments, reachable from other cores only through the
//! channel mesh.
//!
//! Layers (see the crate docs, "Layers and imports"): this module holds
//! two of them today. Coordination — [`Shard`] (one core's state), key
//! routing ([`shard_of`]), the [`mesh`] and the shard locks ([`txlock`]) —
//! may import `store` and the leaves; the `coord` module will take this role.
//! Server — the connection loop ([`connection`]), MULTI/EXEC
//! ([`transaction`]) and executor startup/shutdown ([`runtime`]) — may import
//! everything below it. Breaks of that direction today: `Shard` holds
//! `command::client::ClientInfo` and `command::auth::AuthSettings` and runs
//! mesh batches through `command::{Args, CommandSpec}`; [`mesh`] carries
//! `command::Handler`s; [`runtime`] starts the collector.

pub mod connection;
pub mod runtime;
pub mod transaction;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use glommio::sync::Semaphore;

use crate::command::client::ClientInfo;
use crate::command::{Args, CommandSpec};
use crate::config::Config;
use crate::coord::mesh::{self, Node, OpBatch, ReplyBatch, Request, Response};
use crate::coord::txlock;
use crate::metrics::{HotKeys, MetricsView, ShardMetrics, ShardSnapshot, ShardStats};
use crate::store::Db;

/// Key → shard, identical on every core and every run: ahash with fixed
/// seeds (distinct from the ones the per-shard maps use, so a shard's keys
/// still spread over its whole table).
#[inline]
pub fn shard_of(key: &[u8], nshards: usize) -> usize {
    if nshards == 1 {
        return 0;
    }
    const ROUTING: ahash::RandomState = ahash::RandomState::with_seeds(
        0x9e37_79b9_7f4a_7c15,
        0xbf58_476d_1ce4_e5b9,
        0x94d0_49bb_1331_11eb,
        0x2545_f491_4f6c_dd1d,
    );
    (ROUTING.hash_one(key) % nshards as u64) as usize
}

/// State shared by the tasks of one executor (connections, mesh receivers,
/// timers). Never crosses threads.
pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub config: Config,
    pub db: RefCell<Db>,
    pub metrics: ShardMetrics,
    pub node: Rc<Node>,
    pub started: Instant,
    /// Set by SIGINT/SIGTERM or SHUTDOWN; polled by a timer on each shard.
    pub shutdown_flag: Arc<AtomicBool>,
    /// Closed when this shard starts shutting down: wakes idle readers.
    pub shutdown: Semaphore,
    pub shutting_down: Cell<bool>,
    next_client: Cell<u64>,
    pub tx: txlock::TxLock,
    /// Keys held by multi-key commands across shards (`coord::keylock`).
    pub keys: crate::coord::keylock::KeyLocks,
    /// This core's connections, for CLIENT LIST / KILL.
    pub clients: RefCell<HashMap<u64, Rc<ClientInfo>>>,
    /// Runtime value of `hotkeys-decay-ms` (CONFIG SET changes it on every
    /// shard).
    pub hotkeys_decay_ms: Cell<u64>,
    /// Runtime `requirepass` and `protected-mode` (CONFIG SET changes them
    /// on every shard).
    pub auth: crate::command::auth::AuthSettings,
    /// Runtime value of `client-output-buffer-limit`.
    pub output_limits: Cell<crate::config::OutputBufferLimits>,
    /// Connection admission over all shards (`maxclients`).
    pub admission: Arc<Admission>,
}

/// The keys of a command, in argument order, from the command table's key
/// positions (none for keyless commands).
pub fn key_args<'a>(
    spec: &CommandSpec,
    args: &Args<'a>,
) -> impl Iterator<Item = &'a [u8]> + use<'a> {
    let (first, end, step) = match spec.movable {
        Some(find) => match find(args) {
            Some((first, last)) => (first, (last + 1).min(args.len()), 1),
            None => (0, 0, 1),
        },
        None => {
            let first = spec.first_key.max(0) as usize;
            let end = match spec.last_key {
                _ if first == 0 => 0,
                last if last < 0 => args.len(),
                last => (last as usize + 1).min(args.len()),
            };
            (first, end, spec.key_step.max(1) as usize)
        }
    };
    let args = *args;
    (first..end).step_by(step).map(move |i| args.get(i))
}

/// Whether a batch stops at a command naming a held key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    Stop,
    Skip,
}

/// The one piece of state every shard shares: how many clients are
/// connected in all, against `maxclients`. A global limit needs a global
/// count; it is touched once when a connection opens and once when it
/// closes, never per command, so the data path stays free of shared
/// atomics.
#[derive(Debug)]
pub struct Admission {
    connected: AtomicUsize,
    max: AtomicUsize,
}

/// Holds one admitted connection's place; gives it back when dropped.
pub struct Admitted<'a>(&'a Admission);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission {
            connected: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    /// A place for one more client, or None when `maxclients` are connected.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        let before = self.connected.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(self);
        (before < self.max.load(Ordering::Relaxed)).then_some(admitted)
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// CONFIG SET maxclients: connections above a lowered limit stay, as
    /// in Redis; new ones are refused until enough have left.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }
}

impl Shard {
    pub fn new(
        id: usize,
        config: Config,
        node: Rc<Node>,
        shutdown_flag: Arc<AtomicBool>,
        admission: Arc<Admission>,
    ) -> Shard {
        let stats = Rc::new(ShardStats::default());
        let hot = HotKeys::new(config.hotkeys_top_k, config.instrumentation);
        let mut db = Db::new(stats.clone(), hot, 0x5eed_0000 + id as u64);
        db.limits = crate::store::agg::Limits::from_config(&config);
        let metrics = ShardMetrics::new(stats, config.instrumentation);
        metrics.slowlog.set_origin(id, config.workers);
        metrics.set_slowlog_slower_than_us(config.slowlog_log_slower_than);
        metrics.set_slowlog_max_len(config.slowlog_max_len);
        metrics.set_latency_threshold_ms(config.latency_monitor_threshold);
        Shard {
            id,
            nshards: config.workers,
            metrics,
            hotkeys_decay_ms: Cell::new(config.hotkeys_decay_ms),
            output_limits: Cell::new(config.client_output_buffer_limit),
            admission,
            auth: crate::command::auth::AuthSettings::new(&config),
            config,
            db: RefCell::new(db),
            node,
            started: Instant::now(),
            shutdown_flag,
            shutdown: Semaphore::new(0),
            shutting_down: Cell::new(false),
            next_client: Cell::new(0),
            tx: txlock::TxLock::default(),
            keys: Default::default(),
            clients: RefCell::new(HashMap::new()),
        }
    }

    /// Client ids are unique across cores without shared state: each shard
    /// hands out ids congruent to its own index.
    pub fn next_client_id(&self) -> u64 {
        let seq = self.next_client.get() + 1;
        self.next_client.set(seq);
        seq * self.nshards as u64 + self.id as u64
    }

    #[inline]
    pub fn owner(&self, key: &[u8]) -> usize {
        shard_of(key, self.nshards)
    }

    /// The owning shard of each key of a command, in argument order, from
    /// the command table's key positions (none for keyless commands).
    pub fn key_owners<'a>(
        &'a self,
        spec: &CommandSpec,
        args: &'a Args<'_>,
    ) -> impl Iterator<Item = usize> + 'a {
        key_args(spec, args).map(|key| self.owner(key))
    }

    /// Runs a whole batch cut for this shard (one transaction's step) and
    /// collects its replies. The caller holds the batch's keys (a one-shard
    /// EXEC takes them with an `Atomic`).
    pub fn exec_batch(&self, batch: &OpBatch, replies: &mut ReplyBatch) {
        self.exec_ops(batch, 0, usize::MAX, KeyCheck::Skip, replies);
    }

    /// Runs `batch`'s commands from `from` on until their replies reach
    /// `budget` bytes (at least one command runs), or, with
    /// `KeyCheck::Stop`, until a command names a key a multi-key command
    /// holds; returns where it stopped.
    fn exec_ops(
        &self,
        batch: &OpBatch,
        from: usize,
        budget: usize,
        check: KeyCheck,
        replies: &mut ReplyBatch,
    ) -> usize {
        let mut db = self.db.borrow_mut();
        db.refresh_clock();
        let start = replies.buf.len();
        let mut next = from;
        let check = check == KeyCheck::Stop && !self.keys.is_empty();
        for &(handler, first, count) in &batch.ops[from..] {
            let ranges = &batch.ranges[first as usize..(first + count) as usize];
            let args = crate::command::Args::new(&batch.data, ranges);
            if check && self.keys.blocks(&args) {
                break;
            }
            handler(&mut db, &args, &mut replies.buf);
            replies.seal();
            next += 1;
            if replies.buf.len() - start >= budget {
                break;
            }
        }
        next
    }

    /// Runs a call that was admitted with its lock (`LockCall`) and answers.
    pub(crate) fn run_call(&self, from: usize, id: u32, call: mesh::Call) {
        self.db.borrow_mut().refresh_clock();
        self.node.respond(from, id, Response::Call(call(self)));
    }

    pub fn handle_request(&self, from: usize, id: u32, req: Request) {
        let resp = match req {
            Request::Exec(mut batch) => {
                // The replies of earlier runs that the connection has not
                // written yet stay in front of the new ones.
                let mut replies = std::mem::take(&mut batch.replies);
                let first = batch.next as usize;
                replies.buf.reserve((batch.ops.len() - first) * 16);
                let next = self.exec_ops(
                    &batch,
                    first,
                    mesh::REPLY_BUDGET,
                    KeyCheck::Stop,
                    &mut replies,
                );
                let ran = next > first;
                batch.next = next as u32;
                batch.replies = replies;
                if !ran && batch.unfinished() {
                    // Stopped at its first command, on a held key: it goes
                    // on once keys are released.
                    return self.park_batch(from, id, Request::Exec(batch));
                }
                Response::Exec(batch)
            }
            Request::TxExec(_, mut batch) => {
                // The transaction holds the whole shard: no key is held.
                let mut replies = std::mem::take(&mut batch.replies);
                let first = batch.next as usize;
                replies.buf.reserve((batch.ops.len() - first) * 16);
                batch.next = self.exec_ops(
                    &batch,
                    first,
                    mesh::REPLY_BUDGET,
                    KeyCheck::Skip,
                    &mut replies,
                ) as u32;
                batch.replies = replies;
                Response::Exec(batch)
            }
            Request::Call(f) | Request::TxCall(_, f) => {
                // Expiry checks inside the closure must see the time now,
                // not when this shard last ran a command.
                self.db.borrow_mut().refresh_clock();
                Response::Call(f(self))
            }
            // Only the collector serves views; answering keeps the asker
            // from waiting forever on a misrouted request.
            Request::View | Request::ResetStats => Response::View(Box::default()),
            // Taken by `admit_request` before they get here.
            Request::Lock(_) | Request::Unlock(_) => Response::Locked,
            Request::KeyLockCall(_, _, f) | Request::LockCall(_, f) => {
                self.db.borrow_mut().refresh_clock();
                Response::Call(f(self))
            }
        };
        self.node.respond(from, id, resp);
    }

    pub fn snapshot(&self) -> ShardSnapshot {
        let mut db = self.db.borrow_mut();
        let figures = crate::metrics::snapshot::KeyspaceFigures {
            keys: db.len() as u64,
            expires: db.expires_count() as u64,
            avg_ttl_ms: db.avg_ttl_sample(),
            memory_bytes: db.mem_used() as u64,
            lazyfree_pending: db.lazyfree_pending_objects() as u64,
            lazyfreed: db.lazyfreed_objects(),
            hotkeys: db.hot.top(),
        };
        ShardSnapshot::take(self.id, &self.metrics, figures)
    }

    /// The collector's merged view of every shard (INFO, LATENCY).
    pub async fn metrics_view(&self) -> MetricsView {
        match self.node.request(self.nshards, Request::View).await {
            Response::View(view) => *view,
            _ => MetricsView::default(),
        }
    }

    /// CONFIG RESETSTAT: the collector starts INFO's counters and latency
    /// histograms again from zero (the Prometheus totals keep going).
    pub async fn reset_info_stats(&self) {
        let _ = self.node.request(self.nshards, Request::ResetStats).await;
    }
}
