//! RESP2: the request parser, the reply encoder, and the reply reader for
//! when Kora is the client of another server.
//!
//! Layer: a leaf (see the crate docs, "Layers and imports"). Owns the wire
//! format: parsing requests into argument ranges (and float arguments,
//! [`float`], which also holds the exact decimal digits replies print
//! doubles with) and encoding replies, with
//! Redis' error texts ([`reply::err`]). Imports nothing from the crate, and
//! must stay that way: every other layer builds on it.

mod args;
pub mod float;
pub mod parser;
pub mod reply;
pub(crate) mod sha1;
// Issue 16: replies of other servers (MIGRATE, cluster peers).
pub mod reply_reader;

pub use args::Args;
