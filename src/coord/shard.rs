//! One core's state: [`Shard`], owning its keyspace, instruments, client
//! registry and runtime settings, reachable from other cores only through
//! the mesh; key routing ([`shard_of`], [`key_args`]); connection admission
//! ([`Admission`]); and how a shard runs the batches and calls its peers
//! send it.
//!
//! Layer: coordination. Its fields are private to [`crate::coord`]; the
//! layers above use the accessors.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use glommio::channels::channel_mesh::{Receivers, Senders};

use super::clients::ClientInfo;
use super::settings::AuthSettings;
use super::shutdown::Shutdown;
use crate::config::Config;
use crate::coord::mesh::{self, Msg, Node, OpBatch, ReplyBatch, Request, Response, ResponseFuture};
use crate::coord::txlock;
use crate::metrics::{HotKeys, MetricsView, ShardMetrics, ShardSnapshot, ShardStats};
use crate::protocol::Args;
use crate::store::Db;

/// How keys are spread over a node's shards.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Routing {
    /// By a hash of the whole key ([`shard_of`]).
    Key,
    /// Cluster mode (issue 16): by the key's hash slot, so that keys with
    /// one `{hash tag}` — everything a legal cluster command or script may
    /// name together — share a shard, and a slot's keys are on one shard.
    Slot,
}

impl Routing {
    /// The routing a server with `config` uses.
    pub fn of(config: &Config) -> Routing {
        if config.cluster_enabled {
            Routing::Slot
        } else {
            Routing::Key
        }
    }

    /// The shard of `key` among `nshards`.
    #[inline]
    pub fn shard(self, key: &[u8], nshards: usize) -> usize {
        match self {
            _ if nshards == 1 => 0,
            Routing::Key => shard_of(key, nshards),
            Routing::Slot => Routing::slot_shard(crate::cluster::key_slot(key), nshards),
        }
    }

    /// With [`Routing::Slot`], the shard of every key of `slot`.
    #[inline]
    pub fn slot_shard(slot: u16, nshards: usize) -> usize {
        slot as usize % nshards
    }
}

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
///
/// Its fields are private to the coordination layer: the rest of the crate
/// reads what it needs through the accessors below and reaches other
/// cores, the locks and the mesh only through [`crate::coord`].
pub struct Shard {
    pub(super) id: usize,
    pub(super) nshards: usize,
    pub(super) config: Config,
    pub(super) db: RefCell<Db>,
    pub(super) metrics: ShardMetrics,
    pub(super) node: Rc<Node>,
    pub(super) started: Instant,
    pub(super) shutdown: Shutdown,
    pub(super) next_client: Cell<u64>,
    pub(super) tx: txlock::TxLock,
    /// Keys held by multi-key commands across shards (`coord::keylock`).
    pub(super) keys: crate::coord::keylock::KeyLocks,
    /// This core's connections, for CLIENT LIST / KILL.
    pub(super) clients: RefCell<HashMap<u64, Rc<ClientInfo>>>,
    /// Runtime value of `hotkeys-decay-ms` (CONFIG SET changes it on every
    /// shard).
    pub(super) hotkeys_decay_ms: Cell<u64>,
    /// Runtime `requirepass` and `protected-mode` (CONFIG SET changes them
    /// on every shard).
    pub(super) auth: AuthSettings,
    /// Runtime value of `client-output-buffer-limit`.
    pub(super) output_limits: Cell<crate::config::OutputBufferLimits>,
    /// Connection admission over all shards (`maxclients`).
    pub(super) admission: Arc<Admission>,
    /// Blocking commands (issue 13): this shard's keys' queues of blocked
    /// clients (`coord::blocking`).
    pub(super) blocking: RefCell<crate::coord::blocking::Registry>,
    /// Pub/Sub (issue 14): this core's subscribed connections
    /// (`coord::pubsub`).
    pub(super) pubsub: RefCell<crate::coord::pubsub::Registry>,
    /// Cluster mode (issue 16): this core's copy of the cluster's state
    /// (`coord::cluster_update` changes every core's).
    pub(super) cluster: RefCell<crate::cluster::ClusterState>,
    pub(super) routing: Routing,
}

/// Where a command's keys are, beyond fixed positions: commands that name
/// their key count (LMPOP, SINTERCARD) find their keys from the arguments,
/// as Redis' "movablekeys". Gives the first and last key index (inclusive,
/// step 1), or None when the arguments name no valid key range.
pub type KeyFinder = fn(&Args<'_>) -> Option<(usize, usize)>;

/// Where a command's keys are among its arguments: the command table's
/// key positions (Redis' first key, last key, step; 0 = keyless; a
/// negative last counts from the end), or a [`KeyFinder`].
#[derive(Clone, Copy)]
pub struct KeySpec {
    pub first: i32,
    pub last: i32,
    pub step: i32,
    pub movable: Option<KeyFinder>,
}

/// The keys of a command, in argument order (none for keyless commands).
pub fn key_args<'a>(keys: KeySpec, args: &Args<'a>) -> impl Iterator<Item = &'a [u8]> + use<'a> {
    let (first, end, step) = match keys.movable {
        Some(find) => match find(args) {
            Some((first, last)) => (first, (last + 1).min(args.len()), 1),
            None => (0, 0, 1),
        },
        None => {
            let first = keys.first.max(0) as usize;
            let end = match keys.last {
                _ if first == 0 => 0,
                // Counted from the end: -1 is the last argument, -2 the
                // one before (BLPOP's keys stop before its timeout).
                last if last < 0 => (args.len() as i64 + last as i64 + 1).max(0) as usize,
                last => (last as usize + 1).min(args.len()),
            };
            (first, end, keys.step.max(1) as usize)
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
    pub(super) fn new(
        id: usize,
        config: Config,
        node: Rc<Node>,
        shutdown_flag: Arc<AtomicBool>,
        admission: Arc<Admission>,
    ) -> Shard {
        let stats = Rc::new(ShardStats::default());
        let hot = HotKeys::new(config.hotkeys_top_k, config.instrumentation);
        let mut db = Db::new(stats.clone(), hot, 0x5eed_0000 + id as u64);
        db.set_eviction(config.eviction, id, config.workers);
        db.limits = crate::store::agg::Limits::from_config(&config);
        let metrics = ShardMetrics::new(stats, config.instrumentation);
        metrics.slowlog.set_origin(id, config.workers);
        metrics.set_slowlog_slower_than_us(config.slowlog_log_slower_than);
        metrics.set_slowlog_max_len(config.slowlog_max_len);
        metrics.set_latency_threshold_ms(config.latency_monitor_threshold);
        let cluster = RefCell::new(initial_cluster_state(&config));
        if config.cluster_enabled {
            db.count_slots();
        }
        Shard {
            cluster,
            routing: Routing::of(&config),
            id,
            nshards: config.workers,
            metrics,
            hotkeys_decay_ms: Cell::new(config.hotkeys_decay_ms),
            output_limits: Cell::new(config.client_output_buffer_limit),
            admission,
            auth: AuthSettings::new(&config),
            config,
            db: RefCell::new(db),
            node,
            started: Instant::now(),
            shutdown: Shutdown::new(shutdown_flag),
            next_client: Cell::new(0),
            tx: txlock::TxLock::default(),
            keys: Default::default(),
            clients: RefCell::new(HashMap::new()),
            blocking: RefCell::default(),
            pubsub: RefCell::default(),
        }
    }

    /// Creates this core's shard, joined to the mesh, and starts answering
    /// its peers' requests.
    pub fn start(
        id: usize,
        config: Config,
        senders: Senders<Msg>,
        receivers: Receivers<Msg>,
        shutdown_flag: Arc<AtomicBool>,
        admission: Arc<Admission>,
    ) -> Rc<Shard> {
        let node = Node::new(senders);
        let shard = Rc::new(Shard::new(
            id,
            config,
            node.clone(),
            shutdown_flag,
            admission,
        ));
        let serving = shard.clone();
        node.listen(
            receivers,
            Rc::new(move |from, req_id, req| serving.admit_request(from, req_id, req)),
        );
        shard
    }

    /// This core's copy of the cluster's state (cluster mode, issue 16).
    #[inline]
    pub fn cluster(&self) -> std::cell::Ref<'_, crate::cluster::ClusterState> {
        self.cluster.borrow()
    }

    /// Changes this core's copy only: callers go through
    /// `coord::cluster_update` so that every core changes alike.
    pub(crate) fn cluster_mut(&self) -> RefMut<'_, crate::cluster::ClusterState> {
        self.cluster.borrow_mut()
    }

    /// Whether the server runs in cluster mode.
    #[inline]
    pub fn cluster_enabled(&self) -> bool {
        self.config.cluster_enabled
    }

    /// This shard's index (0-based), equal to its mesh peer id.
    #[inline]
    pub fn id(&self) -> usize {
        self.id
    }

    /// How many shards the server runs.
    #[inline]
    pub fn nshards(&self) -> usize {
        self.nshards
    }

    /// The configuration the server started with (runtime changes live in
    /// the settings below and in the `Db`).
    #[inline]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This shard's keyspace. Borrowed for one synchronous step: never held
    /// across an await (a mesh request served meanwhile would need it).
    #[inline]
    pub fn db(&self) -> RefMut<'_, Db> {
        self.db.borrow_mut()
    }

    /// This shard's instruments.
    #[inline]
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// Time since this shard started (INFO uptime).
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// This core's view of the process stopping.
    #[inline]
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// This core's copy of `requirepass` and `protected-mode`.
    #[inline]
    pub fn auth(&self) -> &AuthSettings {
        &self.auth
    }

    /// Connection admission over all shards (`maxclients`).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// This core's `client-output-buffer-limit` (CONFIG SET sets every
    /// core's).
    #[inline]
    pub fn output_limits(&self) -> &Cell<crate::config::OutputBufferLimits> {
        &self.output_limits
    }

    /// This core's `hotkeys-decay-ms`.
    pub fn hotkeys_decay_ms(&self) -> &Cell<u64> {
        &self.hotkeys_decay_ms
    }

    /// This core's connections (CLIENT LIST / KILL).
    pub fn clients(&self) -> std::cell::Ref<'_, HashMap<u64, Rc<ClientInfo>>> {
        self.clients.borrow()
    }

    /// Adds a connection to this core's registry.
    pub fn register_client(&self, info: Rc<ClientInfo>) {
        self.clients.borrow_mut().insert(info.id, info);
    }

    /// Removes a closed connection from this core's registry.
    pub fn unregister_client(&self, id: u64) {
        self.clients.borrow_mut().remove(&id);
    }

    /// Before a connection runs a command inline: waits while a transaction
    /// holds this shard or a multi-key command holds a key the command
    /// names (never while holding anything, so no cycle).
    #[inline]
    pub async fn wait_local_turn(&self, args: &Args<'_>) {
        if self.tx.blocks_current() {
            self.tx.unblocked().await;
        }
        if self.keys.blocks(args) {
            self.keys_unblocked(args).await;
        }
    }

    /// Whether the running task is a transaction's (EXEC holding shards).
    pub fn in_transaction(&self) -> bool {
        self.tx.current().is_some()
    }

    /// Runs a command's handler on this core's shard, right here: with the
    /// memory check of a command of its own (`coord::run_checked`), or
    /// without it inside EXEC, whose check was made once before it ran.
    pub fn run_inline(&self, op: super::Op, args: &Args<'_>, out: &mut Vec<u8>) {
        let db = &mut self.db.borrow_mut();
        if self.tx.current().is_none() {
            super::run_checked(db, op, args, out);
        } else {
            (op.handler)(db, args, out);
        }
    }

    /// Runs `fut` as transaction `tx`'s task: the mesh messages it sends
    /// carry `tx`, so the shards it holds let them through.
    pub fn with_tx<'a, F: std::future::Future>(
        &'a self,
        tx: txlock::TxId,
        fut: std::pin::Pin<&'a mut F>,
    ) -> txlock::WithTx<'a, F> {
        txlock::WithTx::new(&self.tx, tx, fut)
    }

    /// Sends a pipeline's batch to shard `target` (inside the running
    /// transaction, if this task is one) and returns the future of its
    /// answer: the caller sends every batch before awaiting any.
    pub fn send_batch(&self, target: usize, batch: OpBatch) -> ResponseFuture {
        let req = match self.tx.current() {
            Some(tx) => Request::TxExec(tx, batch),
            None => Request::Exec(batch),
        };
        self.node.request(target, req)
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
        self.routing.shard(key, self.nshards)
    }

    /// How this node spreads keys over its shards.
    #[inline]
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// The owning shard of each key of a command, in argument order, from
    /// the command table's key positions (none for keyless commands).
    pub fn key_owners<'a>(
        &'a self,
        keys: KeySpec,
        args: &'a Args<'_>,
    ) -> impl Iterator<Item = usize> + 'a {
        key_args(keys, args).map(|key| self.owner(key))
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
        // Plain batches are single commands; the other kind is a
        // transaction's, whose memory check was made once before it ran.
        let single = check == KeyCheck::Stop;
        let check = single && !self.keys.is_empty();
        // As a connection does for its own shard's part of a pipeline
        // (`Db::prefetch_keys`): start the cache misses of every key of the
        // batch before running it, so they overlap. Argument 1 is the key
        // of nearly every command cut into a batch; where it is not, the
        // prefetch is wasted, never wrong.
        if batch.ops.len() - from >= 2 {
            db.prefetch_keys(batch.ops[from..].iter().filter_map(|&(_, first, count)| {
                let (s, e) = *batch
                    .ranges
                    .get(first as usize + 1)
                    .filter(|_| count >= 2)?;
                Some(&batch.data[s..e])
            }));
        }
        for &(op, first, count) in &batch.ops[from..] {
            let ranges = &batch.ranges[first as usize..(first + count) as usize];
            let args = Args::new(&batch.data, ranges);
            if check && self.keys.blocks(&args) {
                break;
            }
            if single {
                super::run_checked(&mut db, op, &args, &mut replies.buf);
            } else {
                (op.handler)(&mut db, &args, &mut replies.buf);
            }
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
            // Calls wait for held keys; the collector's never wait (scrapes
            // only read instruments).
            Request::Call(f) if from != self.nshards => return self.admit_call(from, id, f),
            Request::Call(f) | Request::TxCall(_, f) => {
                // Expiry checks inside the closure must see the time now,
                // not when this shard last ran a command.
                self.db.borrow_mut().refresh_clock();
                Response::Call(f(self))
            }
            // Only the collector serves views; answering keeps the asker
            // from waiting forever on a misrouted request.
            Request::View | Request::ResetStats => Response::View(Box::default()),
            // Taken by `admit_request` before they get here; answered the
            // same way should one arrive.
            Request::Lock(_) | Request::Unlock(_) => Response::Locked,
            Request::Now(f) => Response::Call(f(self)),
            Request::KeyLockCall(_, _, f) | Request::LockCall(_, f) => {
                self.db.borrow_mut().refresh_clock();
                Response::Call(f(self))
            }
        };
        self.node.respond(from, id, resp);
    }

    /// Pub/Sub (issue 14): this core's registry of subscribed connections.
    /// Borrowed for one synchronous step, never across an await.
    pub fn pubsub(&self) -> RefMut<'_, crate::coord::pubsub::Registry> {
        self.pubsub.borrow_mut()
    }

    pub fn snapshot(&self) -> ShardSnapshot {
        let mut db = self.db.borrow_mut();
        let figures = crate::metrics::snapshot::KeyspaceFigures {
            keys: db.len() as u64,
            expires: db.expires_count() as u64,
            avg_ttl_ms: db.avg_ttl_sample(),
            memory_bytes: crate::alloc::shard_used_bytes() as u64,
            dataset_bytes: db.mem_used() as u64,
            maxmemory_bytes: db.budget() as u64,
            eviction_exceeded_ms: db.eviction_exceeded_ms(),
            lazyfree_pending: db.lazyfree_pending_objects() as u64,
            lazyfreed: db.lazyfreed_objects(),
            hotkeys: db.hot.top(),
        };
        drop(db);
        let mut snap = ShardSnapshot::take(self.id, &self.metrics, figures);
        // Every core holds the same cluster picture: one copy is enough.
        if self.id == 0 && self.cluster_enabled() {
            snap.cluster = Some(self.cluster_figures());
        }
        snap
    }

    /// Cluster mode (issue 16): this core's cluster state as the values
    /// `/metrics` shows (`kora_cluster_*`). O(nodes), never O(slots): the
    /// served-slot count is kept by `ClusterState::refresh`.
    fn cluster_figures(&self) -> crate::metrics::snapshot::ClusterFigures {
        let state = self.cluster();
        let t = &state.topology;
        let address = match state.me {
            Some(me) => t.nodes[me].address(),
            None => {
                // Not listed yet: the address its id is derived from.
                let (host, port) = self.config.cluster_announce();
                format!("{host}:{port}")
            }
        };
        crate::metrics::snapshot::ClusterFigures {
            node_id: state.my_id.to_string(),
            address,
            state_ok: state.ok(),
            // Each slot has one owner at most: the nodes' counts add up
            // (O(ranges), where slots_assigned scans 16384 entries).
            slots_assigned: t.nodes.iter().map(|n| n.slot_count() as u64).sum(),
            slots_ok: state.slots_ok() as u64,
            slots_owned: state.me.map_or(0, |me| t.nodes[me].slot_count() as u64),
            known_nodes: t.nodes.len() as u64,
            epoch: t.epoch,
            nodes_failed: (0..t.nodes.len())
                .filter(|&i| state.health_of(i) == crate::cluster::Health::Fail)
                .count() as u64,
        }
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

/// The cluster state a core starts with: its id, and the topology of
/// `cluster-config-file` when there is one (checked at start by
/// [`crate::cluster::load_topology`], so it parses here).
fn initial_cluster_state(config: &Config) -> crate::cluster::ClusterState {
    let (host, port) = config.cluster_announce();
    let coverage = if config.cluster_require_full_coverage {
        crate::cluster::Coverage::Full
    } else {
        crate::cluster::Coverage::Partial
    };
    let mut state =
        crate::cluster::ClusterState::new(&host, port, coverage, config.cluster_node_timeout);
    if config.cluster_enabled
        && let Ok(Some(topology)) = crate::cluster::load_topology(config)
    {
        state.set_topology(std::sync::Arc::new(topology));
    }
    state
}
