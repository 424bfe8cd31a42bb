//! Kora: a Redis-compatible (RESP2), thread-per-core, shared-nothing cache
//! server with always-on observability.
//!
// The architecture lives in a markdown file beside this one so that it is
// easy to edit and review; `cargo doc` renders it as the crate's front page
// and checks its links (tools/test.sh runs it with `-D warnings`).
#![doc = include_str!("ARCHITECTURE.md")]

pub(crate) mod alloc;
pub mod cluster;
pub mod collector;
pub mod command;
pub mod config;
pub mod coord;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod store;
pub mod top;

/// Runs Kora until SIGINT/SIGTERM or SHUTDOWN: one executor per shard
/// ([`server::runtime`]) and the metrics collector ([`collector`]), joined
/// in one mesh. The two are put together here, at the top, because the
/// collector is the layer above the server.
pub fn run(config: config::Config) -> std::io::Result<()> {
    server::runtime::run(config, collector::collector_main)
}

/// jemalloc, with an arena per shard (src/alloc.rs).
#[global_allocator]
static GLOBAL: alloc::Allocator = tikv_jemallocator::Jemalloc;
