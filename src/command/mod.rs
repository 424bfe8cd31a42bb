//! Commands: the table (`table.rs`, the one place naming every command)
//! and one file per command family with its handlers.
//!
//! A shard-side handler has the signature [`Handler`]: it runs on the shard
//! that owns the command's key(s), reads its arguments as slices, and
//! appends exactly one RESP reply to `out`. Connection-level commands
//! (fan-out, cross-shard, connection state) are [`ConnCmd`]s, run by the
//! connection in `shard::connection`.

pub mod hashes;
pub mod keys;
pub mod lists;
pub mod server;
pub mod sets;
pub mod strings;
pub mod table;

pub use table::{CommandSpec, ConnCmd, Kind, Merge, NUM_SLOTS, SLOT_NAMES, SLOT_OTHER, lookup};

use crate::protocol::parser::{ArgRange, parse_i64};
use crate::protocol::reply::{Resp, err};
use crate::store::Db;

/// Runs a command on the owning shard and appends one reply to `out`.
pub type Handler = fn(&mut Db, &Args<'_>, &mut Vec<u8>);

/// A command's arguments as slices of one buffer (the connection's read
/// buffer, or the byte block of a mesh batch). `get(0)` is the command name.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [ArgRange],
}

impl<'a> Args<'a> {
    pub fn new(buf: &'a [u8], ranges: &'a [ArgRange]) -> Args<'a> {
        Args { buf, ranges }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        &self.buf[s..e]
    }

    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    pub fn range(&self, i: usize) -> ArgRange {
        self.ranges[i]
    }

    /// Arguments from `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.ranges[from.min(self.ranges.len())..].iter().map(|&(s, e)| &self.buf[s..e])
    }

    /// Case-insensitive comparison of argument `i` with an ASCII keyword.
    pub fn is(&self, i: usize, keyword: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(keyword.as_bytes())
    }

    /// Argument `i` as an integer, or the Redis error reply.
    pub fn int(&self, i: usize) -> Result<i64, &'static str> {
        parse_i64(self.get(i)).ok_or(err::NOT_INTEGER)
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(self.get(0)).to_lowercase()
    }
}

/// `-ERR wrong number of arguments for 'xxx' command`.
pub fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    out.error(&format!("ERR wrong number of arguments for '{name}' command"));
}
