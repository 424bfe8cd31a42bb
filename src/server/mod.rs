//! The server: what turns sockets into commands. Executor startup and
//! shutdown ([`runtime`]), the per-connection loop and pipeline
//! ([`connection`]) and MULTI/EXEC ([`transaction`]).
//!
//! Layer: server, above the command families (see the crate docs, "Layers
//! and imports"). May import every layer below it; only the collector and
//! the binary sit above.

pub mod connection;
pub mod runtime;
pub mod transaction;
