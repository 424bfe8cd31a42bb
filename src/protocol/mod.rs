//! RESP2: the request parser and the reply encoder.
//!
//! Layer: a leaf (see the crate docs, "Layers and imports"). Owns the wire
//! format: parsing requests into argument ranges and encoding replies, with
//! Redis' error texts ([`reply::err`]). Imports nothing from the crate, and
//! must stay that way: every other layer builds on it.

mod args;
pub mod parser;
pub mod reply;
pub(crate) mod sha1;

pub use args::Args;
