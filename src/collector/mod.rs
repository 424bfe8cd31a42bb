//! The collector: its own executor on the mesh. On each scrape it asks
//! every shard for a snapshot, waits a bounded time, merges what came back
//! and renders Prometheus text.

pub mod exposition;
pub mod http;

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::TcpListener;
use glommio::sync::Semaphore;

use crate::command::server::{KORA_VERSION, REDIS_VERSION};
use crate::config::Config;
use crate::metrics::ShardSnapshot;
use crate::shard::Shard;
use crate::shard::mesh::{Call, Msg, Node, Request, Response};

/// How long a scrape waits for a shard before reporting it down.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct Collector {
    pub node: Rc<Node>,
    pub nshards: usize,
    pub started: Instant,
    pub start_time: SystemTime,
    pub shutdown: Semaphore,
}

impl Collector {
    /// Snapshots of every shard, None for shards that missed the deadline.
    pub async fn gather(&self) -> Vec<Option<ShardSnapshot>> {
        let pending: Vec<_> = (0..self.nshards)
            .map(|t| {
                let call: Call = Box::new(|s: &Shard| Box::new(s.snapshot()) as Box<dyn std::any::Any + Send>);
                self.node.request(t, Request::Call(call))
            })
            .collect();
        let deadline = Instant::now() + SNAPSHOT_TIMEOUT;
        let mut out = Vec::with_capacity(self.nshards);
        for fut in pending {
            let left = deadline.saturating_duration_since(Instant::now());
            let resp = future::or(async { Some(fut.await) }, async {
                glommio::timer::sleep(left).await;
                None
            })
            .await;
            out.push(match resp {
                Some(Response::Call(any)) => any.downcast::<ShardSnapshot>().ok().map(|b| *b),
                _ => None,
            });
        }
        out
    }

    pub async fn render_metrics(&self) -> String {
        let shards = self.gather().await;
        let merged = ShardSnapshot::merged(&shards.iter().flatten().cloned().collect::<Vec<_>>());
        exposition::render(&exposition::Scrape {
            shards: &shards,
            merged: &merged,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            start_time_seconds: self.start_time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
            version: KORA_VERSION,
            redis_version: REDIS_VERSION,
        })
    }
}

pub async fn collector_main(config: Config, mesh: MeshBuilder<Msg, Full>, shutdown_flag: Arc<AtomicBool>) -> io::Result<()> {
    let (senders, receivers) =
        mesh.join().await.map_err(|e| io::Error::other(format!("collector cannot join the mesh: {e}")))?;
    assert_eq!(senders.peer_id(), config.workers, "the collector is the last mesh peer");
    // Shards never send the collector requests, only answers.
    let node = Node::start(senders, receivers, Rc::new(|_, _, _| {}));
    let collector = Rc::new(Collector {
        node,
        nshards: config.workers,
        started: Instant::now(),
        start_time: SystemTime::now(),
        shutdown: Semaphore::new(0),
    });
    if config.metrics_port != 0 {
        let listener = TcpListener::bind(config.metrics_addr()).map_err(|e| {
            shutdown_flag.store(true, Ordering::SeqCst);
            io::Error::other(format!("cannot serve metrics on {}: {e}", config.metrics_addr()))
        })?;
        glommio::spawn_local(http::serve(collector.clone(), listener)).detach();
    }
    while !shutdown_flag.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    collector.shutdown.close();
    glommio::timer::sleep(Duration::from_millis(50)).await;
    Ok(())
}
