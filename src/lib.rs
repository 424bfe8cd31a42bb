//! Kora: a Redis-compatible (RESP2), thread-per-core, shared-nothing cache
//! server with always-on observability. See README.md for the architecture.

pub(crate) mod alloc;
pub mod collector;
pub mod command;
pub mod config;
pub mod coord;
pub mod metrics;
pub mod protocol;
pub mod shard;
pub mod store;
pub mod top;

/// The system allocator, with large frees inside lazy-free slices parked
/// and released in steps (src/alloc.rs).
#[global_allocator]
static GLOBAL: alloc::KoraAlloc = alloc::KoraAlloc;
