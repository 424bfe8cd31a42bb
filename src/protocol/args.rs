//! A command's arguments as views into the buffer they arrived in.
//!
//! Layer: `protocol` (a leaf): imports only the parser's types.

use super::parser::{ArgRange, parse_i64};
use super::reply::err;

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

    pub fn ranges(&self) -> &'a [ArgRange] {
        self.ranges
    }

    /// Arguments from `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.ranges[from.min(self.ranges.len())..]
            .iter()
            .map(|&(s, e)| &self.buf[s..e])
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
