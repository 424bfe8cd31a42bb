//! The collector: its own executor on the mesh. Each round it asks every
//! shard for a snapshot, waits a bounded time, adds the shards' interval
//! histograms into its running totals, and builds the `MetricsView` that
//! `/metrics`, INFO and LATENCY render.
//!
//! Layer: the top (see the crate docs, "Layers and imports"). Owns the
//! collector's executor, the running totals and RESETSTAT baseline, the
//! Prometheus exposition ([`exposition`]) and the `/metrics` HTTP server
//! ([`http`]). May import every other layer: `metrics` for snapshots and the
//! view, `shard` for the mesh and `Shard`, `command` for slot names and
//! versions, `config`.

pub mod exposition;
pub mod http;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::sync::Semaphore;

use crate::config::Config;
use crate::coord::Shard;
use crate::coord::mesh::{Call, Msg, Node, Request, Response};
use crate::metrics::histogram::LatencyTotals;
use crate::metrics::{MetricsView, ShardSnapshot};

/// How long a round waits for a shard before reporting it down.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct Collector {
    pub node: Rc<Node>,
    pub nshards: usize,
    pub started: Instant,
    pub start_time: SystemTime,
    pub shutdown: Semaphore,
    totals: RefCell<LatencyTotals>,
    /// Each shard's last answer (counters only). A shard that misses a
    /// deadline keeps its last counters, so totals never go backwards.
    last: RefCell<Vec<Option<ShardSnapshot>>>,
    /// What INFO and LATENCY HISTOGRAM show starts from the last CONFIG
    /// RESETSTAT: the merged counters at that moment (subtracted for
    /// INFO only), and latency totals kept from then on. None until the
    /// first reset, so the common case keeps one set of totals.
    info_base: RefCell<Option<ShardSnapshot>>,
    since_reset: RefCell<Option<LatencyTotals>>,
    peak_memory: Cell<u64>,
    /// `cluster-enabled` (fixed at start): `kora_cluster_enabled`.
    cluster_enabled: bool,
}

fn snapshot_call() -> Call {
    Box::new(|s: &Shard| Box::new(s.snapshot()) as Box<dyn std::any::Any + Send>)
}

impl Collector {
    /// Takes in one shard's answer: its interval histograms join the totals
    /// and go back to it, cleared, as spares.
    fn absorb(&self, shard: usize, mut snap: ShardSnapshot) {
        let interval = std::mem::take(&mut snap.interval);
        if let Some(since_reset) = &mut *self.since_reset.borrow_mut() {
            since_reset.add(&interval);
        }
        let spares = self.totals.borrow_mut().absorb(interval);
        if !spares.is_empty() {
            let give_back: Call = Box::new(move |s: &Shard| {
                s.metrics().histograms.return_spares(spares);
                Box::new(()) as Box<dyn std::any::Any + Send>
            });
            // Fire and forget.
            self.node.tell(shard, Request::Call(give_back));
        }
        self.last.borrow_mut()[shard] = Some(snap);
    }

    /// One collection round. Answers that arrive after the deadline are
    /// still absorbed (their histograms must not be lost); they only miss
    /// this round's view.
    pub async fn view(self: &Rc<Self>) -> MetricsView {
        let arrivals: Vec<_> = (0..self.nshards)
            .map(|shard| {
                let me = self.clone();
                let answer = self.node.request(shard, Request::Call(snapshot_call()));
                glommio::spawn_local(async move {
                    if let Response::Call(any) = answer.await
                        && let Ok(snap) = any.downcast::<ShardSnapshot>()
                    {
                        me.absorb(shard, *snap);
                    }
                })
                .detach()
            })
            .collect();
        let deadline = Instant::now() + SNAPSHOT_TIMEOUT;
        let mut up = Vec::with_capacity(self.nshards);
        for arrival in arrivals {
            let left = deadline.saturating_duration_since(Instant::now());
            let arrived = future::or(async { arrival.await.is_some() }, async {
                glommio::timer::sleep(left).await;
                false
            })
            .await;
            up.push(arrived);
        }
        let mut view = MetricsView::build(self.last.borrow().clone(), up, &self.totals.borrow());
        view.allocator = crate::alloc::process_memory();
        self.peak_memory
            .set(self.peak_memory.get().max(view.allocator.allocated));
        view.peak_memory_bytes = self.peak_memory.get();
        view.cluster_enabled = self.cluster_enabled;
        view.uptime_seconds = self.started.elapsed().as_secs_f64();
        view.start_time_seconds = self
            .start_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        view
    }

    pub async fn render_metrics(self: &Rc<Self>) -> String {
        exposition::render(&self.view().await)
    }

    /// The view INFO and LATENCY render: counters and latency since the
    /// last CONFIG RESETSTAT.
    pub async fn info_view(self: &Rc<Self>) -> MetricsView {
        let mut view = self.view().await;
        if let Some(base) = &*self.info_base.borrow() {
            view.merged = view.merged.since(base);
        }
        if let Some(since_reset) = &*self.since_reset.borrow() {
            view.latency = MetricsView::latency_of(since_reset);
        }
        view
    }

    /// CONFIG RESETSTAT: one round first, so that everything recorded
    /// before the reset is in the base and nothing after it is.
    pub async fn reset_info_stats(self: &Rc<Self>) {
        let view = self.view().await;
        let mut base = view.merged;
        base.hotkeys.clear();
        *self.info_base.borrow_mut() = Some(base);
        *self.since_reset.borrow_mut() = Some(LatencyTotals::default());
    }
}

pub async fn collector_main(
    config: Config,
    mesh: MeshBuilder<Msg, Full>,
    shutdown_flag: Arc<AtomicBool>,
) -> io::Result<()> {
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| io::Error::other(format!("collector cannot join the mesh: {e}")))?;
    assert_eq!(
        senders.peer_id(),
        config.workers,
        "the collector is the last mesh peer"
    );
    let node = Node::new(senders);
    let collector = Rc::new(Collector {
        node,
        nshards: config.workers,
        started: Instant::now(),
        start_time: SystemTime::now(),
        shutdown: Semaphore::new(0),
        totals: RefCell::new(LatencyTotals::default()),
        last: RefCell::new(vec![None; config.workers]),
        info_base: RefCell::new(None),
        since_reset: RefCell::new(None),
        peak_memory: Cell::new(0),
        cluster_enabled: config.cluster_enabled,
    });
    // Shards ask the collector for views (INFO, LATENCY); building one
    // waits on every shard, so it runs as its own task.
    let serving = collector.clone();
    collector.node.listen(
        receivers,
        Rc::new(move |from, id, req| {
            let collector = serving.clone();
            match req {
                Request::View => {
                    glommio::spawn_local(async move {
                        let view = collector.info_view().await;
                        collector
                            .node
                            .respond(from, id, Response::View(Box::new(view)));
                    })
                    .detach();
                }
                Request::ResetStats => {
                    glommio::spawn_local(async move {
                        collector.reset_info_stats().await;
                        collector
                            .node
                            .respond(from, id, Response::View(Box::default()));
                    })
                    .detach();
                }
                // Shards' work is not ours; answer so nobody waits forever.
                _ => collector.node.respond(from, id, Response::Gone),
            }
        }),
    );
    if config.metrics_port != 0 {
        let listener = crate::server::runtime::listen(&config.metrics_addr()).map_err(|e| {
            shutdown_flag.store(true, Ordering::SeqCst);
            io::Error::other(format!(
                "cannot serve metrics on {}: {e}",
                config.metrics_addr()
            ))
        })?;
        let limits = http::Limits {
            max_connections: config.metrics_max_connections,
            request_timeout: Duration::from_secs(config.metrics_request_timeout),
        };
        glommio::spawn_local(http::serve(collector.clone(), listener, limits)).detach();
    }
    while !shutdown_flag.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    collector.shutdown.close();
    glommio::timer::sleep(Duration::from_millis(50)).await;
    Ok(())
}
