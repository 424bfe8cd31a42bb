//! Packed buffers for small aggregates, after Redis' listpack and intset.
//!
//! [`Pack`] is a sequence of byte strings in one heap buffer, each entry a
//! LEB128 length followed by its bytes (a 16-byte entry costs 17 bytes;
//! Redis' listpack adds a back-length and costs 18). A list's chunk is a
//! [`BackPack`], whose entries do carry a back-length, so that it is
//! walked from its end as cheaply as from its start (RPOP, LINDEX -1). [`Intset`] is a sorted
//! array of integers stored 2, 4 or 8 bytes wide, widened when a larger
//! integer arrives (as Redis' intset). Both are O(n) to search and edit,
//! which is why the aggregates of `super::agg` use them only up to the
//! `*-max-listpack-*` / `set-max-intset-entries` thresholds.
//!
//! [`PairPack`] holds a small hash's field/value pairs with one header
//! byte for both lengths when the field is 1 to 8 bytes and the value at
//! most 31 (a 3-byte field with a 16-byte value costs 20 bytes).
//!
//! Buffers grow exactly to size and shrink when a quarter is unused, so a
//! packed value wastes little capacity: memory is the point.

use std::ops::Deref;

use crate::protocol::parser::parse_i64;
use crate::protocol::reply::IntText;

/// Bytes the LEB128 length of `n` takes.
#[inline]
fn len_size(n: usize) -> usize {
    match n {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => (usize::BITS as usize - n.leading_zeros() as usize).div_ceil(7),
    }
}

/// Writes the LEB128 length of `n` into `out`; returns how many bytes.
#[inline]
fn encode_len(mut n: usize, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// The length stored at `buf[off..]` and the bytes its encoding takes.
#[inline]
fn decode_len(buf: &[u8], off: usize) -> (usize, usize) {
    let first = buf[off];
    if first < 0x80 {
        return (first as usize, 1);
    }
    let (mut n, mut shift, mut i) = (0usize, 0, off);
    loop {
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            return (n, i - off);
        }
        shift += 7;
    }
}

/// Grows `buf` to hold `add` more bytes, exactly, as a listpack
/// reallocates on every insert: the allocator's size classes already leave
/// room (jemalloc grows in place within a class), and spare capacity on top
/// would be rounded up to the next class and wasted.
#[inline]
fn reserve(buf: &mut Vec<u8>, add: usize) {
    let need = buf.len() + add;
    if need > buf.capacity() {
        buf.reserve_exact(need - buf.len());
    }
}

/// Writes `n` as a back-length into `out`: LEB128 read from right to left
/// (the lowest 7 bits in the last byte, whose high bit says whether more
/// bytes follow to its left); returns how many bytes.
#[inline]
fn encode_back(n: usize, out: &mut [u8; 10]) -> usize {
    let k = len_size(n);
    for i in 0..k {
        let more = if i + 1 < k { 0x80 } else { 0 };
        out[k - 1 - i] = ((n >> (7 * i)) & 0x7f) as u8 | more;
    }
    k
}

/// The back-length that ends just before `buf[end]` and the bytes it takes.
#[inline]
fn decode_back(buf: &[u8], end: usize) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, end - i);
        }
        shift += 7;
    }
}

/// `a == b`, looking at the last 8 bytes first: names in one value tend
/// to share a prefix (`field:1`, `field:2`) and differ at the end, so most
/// mismatches cost one 8-byte load instead of a call to memcmp.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() >= 8 {
        let tail = |s: &[u8]| u64::from_ne_bytes(s[s.len() - 8..].try_into().expect("8 bytes"));
        if tail(a) != tail(b) {
            return false;
        }
    }
    a == b
}

/// Entries in one buffer: `[len][bytes][len][bytes]...`, or with `BACK`
/// `[len][bytes][back]...`, where `back` is the size of `[len][bytes]` as
/// a back-length (see [`BackPack`]). Positions handed out and taken back
/// are byte offsets of an entry's length.
#[derive(Clone, Default, Debug)]
pub struct Pack<const BACK: bool = false> {
    buf: Vec<u8>,
    count: u32,
}

/// A pack whose entries carry back-lengths (Redis' listpack layout): one
/// more byte per entry under 127 bytes, for [`Pack::prev`] and an O(1)
/// walk to the last entry. What a list's chunks are.
pub type BackPack = Pack<true>;

impl<const BACK: bool> PartialEq for Pack<BACK> {
    fn eq(&self, other: &Pack<BACK>) -> bool {
        self.buf == other.buf
    }
}

impl<const BACK: bool> Pack<BACK> {
    /// Bytes the back-length of an entry of `size` encoded bytes takes.
    #[inline]
    fn back_size(size: usize) -> usize {
        if BACK { len_size(size) } else { 0 }
    }

    /// An empty pack (no allocation).
    pub const fn new_const() -> Pack<BACK> {
        Pack {
            buf: Vec::new(),
            count: 0,
        }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held (what the allocator was asked for).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes `entry` takes once encoded.
    #[inline]
    pub fn encoded_size(entry: &[u8]) -> usize {
        let size = len_size(entry.len()) + entry.len();
        size + Self::back_size(size)
    }

    /// The entry at offset `off` and the offset of the next one.
    #[inline]
    pub fn entry(&self, off: usize) -> (&[u8], usize) {
        let (n, h) = decode_len(&self.buf, off);
        let start = off + h;
        (
            &self.buf[start..start + n],
            start + n + Self::back_size(h + n),
        )
    }

    /// Offset of the entry after the one at `off`.
    #[inline]
    pub fn next(&self, off: usize) -> usize {
        let (n, h) = decode_len(&self.buf, off);
        off + h + n + Self::back_size(h + n)
    }

    /// Offset of the entry before the one at `off` (`end()` gives the
    /// last entry's; `off > 0`). Only a [`BackPack`] can walk back.
    #[inline]
    pub fn prev(&self, off: usize) -> usize {
        assert!(BACK, "a pack without back-lengths walks forwards only");
        let (size, b) = decode_back(&self.buf, off);
        off - b - size
    }

    /// Offset one past the last entry.
    #[inline]
    pub fn end(&self) -> usize {
        self.buf.len()
    }

    pub fn iter(&self) -> PackIter<'_, BACK> {
        PackIter {
            pack: self,
            off: 0,
            left: self.len(),
        }
    }

    /// Offset of entry number `i` (`i <= len`; `len` gives `end()`). O(i),
    /// or O(len - i) from the end for a [`BackPack`] when that is closer.
    pub fn offset_of(&self, i: usize) -> usize {
        if BACK && i > self.len() / 2 {
            let mut off = self.buf.len();
            for _ in i..self.len() {
                off = self.prev(off);
            }
            return off;
        }
        let mut off = 0;
        for _ in 0..i {
            off = self.next(off);
        }
        off
    }

    /// Offset of the first entry equal to `entry`: the hot loop of a
    /// packed set (SISMEMBER, SADD), so lengths are compared before any
    /// bytes are looked at.
    #[inline]
    pub fn find(&self, entry: &[u8]) -> Option<usize> {
        let buf = &self.buf[..];
        let want = entry.len();
        let mut off = 0;
        while off < buf.len() {
            let (n, h) = decode_len(buf, off);
            let start = off + h;
            if n == want && same(&buf[start..start + n], entry) {
                return Some(off);
            }
            off = start + n + Self::back_size(h + n);
        }
        None
    }

    /// Replaces `self.buf[range]` by the encoding of `entries`.
    fn splice(&mut self, at: usize, remove: usize, entries: &[&[u8]]) {
        let mut hdrs = [[0u8; 10]; 2];
        let mut hlens = [0usize; 2];
        let mut backs = [[0u8; 10]; 2];
        let mut blens = [0usize; 2];
        let mut add = 0;
        for (i, e) in entries.iter().enumerate() {
            hlens[i] = encode_len(e.len(), &mut hdrs[i]);
            if BACK {
                blens[i] = encode_back(hlens[i] + e.len(), &mut backs[i]);
            }
            add += hlens[i] + e.len() + blens[i];
        }
        let old_len = self.buf.len();
        if add > remove {
            reserve(&mut self.buf, add - remove);
            self.buf.resize(old_len + add - remove, 0);
            self.buf.copy_within(at + remove..old_len, at + add);
        } else if add < remove {
            self.buf.copy_within(at + remove..old_len, at + add);
            self.buf.truncate(old_len - (remove - add));
            self.fit();
        }
        let mut w = at;
        for (i, e) in entries.iter().enumerate() {
            self.buf[w..w + hlens[i]].copy_from_slice(&hdrs[i][..hlens[i]]);
            w += hlens[i];
            self.buf[w..w + e.len()].copy_from_slice(e);
            w += e.len();
            self.buf[w..w + blens[i]].copy_from_slice(&backs[i][..blens[i]]);
            w += blens[i];
        }
    }

    /// Gives memory back once a quarter of the buffer is unused, as a
    /// listpack shrinks on delete (with slack, so that alternating writes
    /// do not reallocate every time).
    #[inline]
    fn fit(&mut self) {
        let len = self.buf.len();
        if self.buf.capacity() > len + len / 4 + 64 {
            self.buf.shrink_to(len + len / 8);
        }
    }

    /// Appends one entry.
    #[inline]
    pub fn push(&mut self, entry: &[u8]) {
        let at = self.buf.len();
        self.splice(at, 0, &[entry]);
        self.count += 1;
    }

    /// Inserts an entry before the one at `off` (`end()` appends).
    pub fn insert_at(&mut self, off: usize, entry: &[u8]) {
        self.splice(off, 0, &[entry]);
        self.count += 1;
    }

    /// Removes the entry at `off`.
    pub fn remove_at(&mut self, off: usize) {
        let next = self.next(off);
        self.splice(off, next - off, &[]);
        self.count -= 1;
    }

    /// Removes `n` consecutive entries from `off`.
    pub fn remove_run(&mut self, off: usize, n: usize) {
        let mut end = off;
        for _ in 0..n {
            end = self.next(end);
        }
        self.splice(off, end - off, &[]);
        self.count -= n as u32;
    }

    /// Replaces the entry at `off` by `entry`.
    pub fn replace_at(&mut self, off: usize, entry: &[u8]) {
        let next = self.next(off);
        let (n, h) = decode_len(&self.buf, off);
        if n == entry.len() {
            // Same length, same header and back-length.
            self.buf[off + h..off + h + n].copy_from_slice(entry);
        } else {
            self.splice(off, next - off, &[entry]);
        }
    }

    /// Keeps the entries for which `keep` is true, in order, compacting in
    /// place; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let (mut r, mut w, end) = (0, 0, self.buf.len());
        let mut removed = 0;
        while r < end {
            let (n, h) = decode_len(&self.buf, r);
            let next = r + h + n + Self::back_size(h + n);
            if keep(&self.buf[r + h..r + h + n]) {
                if w != r {
                    self.buf.copy_within(r..next, w);
                }
                w += next - r;
            } else {
                removed += 1;
            }
            r = next;
        }
        self.buf.truncate(w);
        self.fit();
        self.count -= removed as u32;
        removed
    }

    /// Moves the entries from offset `off` on into a new pack.
    pub fn split_off(&mut self, off: usize, entries_before: usize) -> Pack<BACK> {
        let tail = self.buf[off..].to_vec();
        let moved = self.count - entries_before as u32;
        self.buf.truncate(off);
        self.buf.shrink_to_fit();
        self.count = entries_before as u32;
        Pack {
            buf: tail,
            count: moved,
        }
    }

    /// Appends every entry of `other`.
    #[cfg(test)]
    pub fn append(&mut self, other: &Pack<BACK>) {
        reserve(&mut self.buf, other.buf.len());
        self.buf.extend_from_slice(&other.buf);
        self.count += other.count;
    }

    /// Gives back unused capacity.
    pub fn shrink(&mut self) {
        self.buf.shrink_to_fit();
    }
}

/// Entries of a [`Pack`] in order.
pub struct PackIter<'a, const BACK: bool = false> {
    pack: &'a Pack<BACK>,
    off: usize,
    left: usize,
}

impl<'a, const BACK: bool> Iterator for PackIter<'a, BACK> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (e, next) = self.pack.entry(self.off);
        self.off = next;
        self.left -= 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<const BACK: bool> ExactSizeIterator for PackIter<'_, BACK> {}

/// The header byte that says "lengths follow as two LEB128 numbers".
const PAIR_ESCAPE: u8 = 0xff;

/// Field/value pairs in one buffer: `[hdr][field][value]...`, where `hdr`
/// is `(flen - 1) << 5 | vlen` for a field of 1 to 8 bytes and a value of
/// at most 31 (except that combination 8/31, which is the escape), else
/// `0xff` followed by both lengths in LEB128. Fields of 1..=8 rather than
/// 0..=7 bytes: empty fields are rare, 8-byte ones (`username`,
/// `field:12`) common, and their second header byte was enough to push a
/// 100-field hash into the next allocator size class.
#[derive(Clone, Default, Debug)]
pub struct PairPack {
    buf: Vec<u8>,
    count: u32,
}

impl PartialEq for PairPack {
    fn eq(&self, other: &PairPack) -> bool {
        self.buf == other.buf
    }
}

/// Encodes the header of a pair; returns its length.
#[inline]
fn pair_header(flen: usize, vlen: usize, out: &mut [u8; 21]) -> usize {
    if (1..=8).contains(&flen) && vlen <= 31 && !(flen == 8 && vlen == 31) {
        out[0] = ((flen - 1) << 5 | vlen) as u8;
        return 1;
    }
    out[0] = PAIR_ESCAPE;
    let mut tmp = [0u8; 10];
    let a = encode_len(flen, &mut tmp);
    out[1..1 + a].copy_from_slice(&tmp[..a]);
    let b = encode_len(vlen, &mut tmp);
    out[1 + a..1 + a + b].copy_from_slice(&tmp[..b]);
    1 + a + b
}

impl PairPack {
    /// Number of pairs.
    #[inline]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Heap bytes held.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Encoded bytes.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// (field start, field length, value length, offset of the next pair)
    /// of the pair at `off`.
    #[inline]
    fn layout(&self, off: usize) -> (usize, usize, usize, usize) {
        let h = self.buf[off];
        let (flen, vlen, start) = if h != PAIR_ESCAPE {
            ((h >> 5) as usize + 1, (h & 31) as usize, off + 1)
        } else {
            let (flen, a) = decode_len(&self.buf, off + 1);
            let (vlen, b) = decode_len(&self.buf, off + 1 + a);
            (flen, vlen, off + 1 + a + b)
        };
        (start, flen, vlen, start + flen + vlen)
    }

    /// The pair at offset `off` and the offset of the next one.
    #[inline]
    pub fn pair(&self, off: usize) -> (&[u8], &[u8], usize) {
        let (start, flen, vlen, next) = self.layout(off);
        (
            &self.buf[start..start + flen],
            &self.buf[start + flen..start + flen + vlen],
            next,
        )
    }

    /// Offset of the pair whose field is `field`.
    #[inline]
    pub fn find(&self, field: &[u8]) -> Option<usize> {
        let mut off = 0;
        let end = self.buf.len();
        while off < end {
            let (start, flen, _, next) = self.layout(off);
            if flen == field.len() && same(&self.buf[start..start + flen], field) {
                return Some(off);
            }
            off = next;
        }
        None
    }

    /// Replaces `remove` bytes at `at` by the pair `field`/`value`, or by
    /// nothing.
    fn splice(&mut self, at: usize, remove: usize, pair: Option<(&[u8], &[u8])>) {
        let mut hdr = [0u8; 21];
        let (hlen, add) = match pair {
            Some((f, v)) => {
                let h = pair_header(f.len(), v.len(), &mut hdr);
                (h, h + f.len() + v.len())
            }
            None => (0, 0),
        };
        let old_len = self.buf.len();
        if add > remove {
            reserve(&mut self.buf, add - remove);
            self.buf.resize(old_len + add - remove, 0);
            self.buf.copy_within(at + remove..old_len, at + add);
        } else if add < remove {
            self.buf.copy_within(at + remove..old_len, at + add);
            self.buf.truncate(old_len - (remove - add));
            let len = self.buf.len();
            if self.buf.capacity() > len + len / 4 + 64 {
                self.buf.shrink_to(len + len / 8);
            }
        }
        if let Some((f, v)) = pair {
            self.buf[at..at + hlen].copy_from_slice(&hdr[..hlen]);
            let w = at + hlen;
            self.buf[w..w + f.len()].copy_from_slice(f);
            self.buf[w + f.len()..w + f.len() + v.len()].copy_from_slice(v);
        }
    }

    /// Appends a pair (the field must be absent).
    #[inline]
    pub fn push(&mut self, field: &[u8], value: &[u8]) {
        let at = self.buf.len();
        self.splice(at, 0, Some((field, value)));
        self.count += 1;
    }

    /// Replaces the value of the pair at `off`.
    pub fn set_value(&mut self, off: usize, value: &[u8]) {
        let (start, flen, vlen, next) = self.layout(off);
        if vlen == value.len() {
            self.buf[start + flen..next].copy_from_slice(value);
            return;
        }
        // The field moves with its new header: copy it out first (at most
        // hash-max-listpack-value bytes while packed, on the stack if small).
        let mut small = [0u8; 64];
        let owned;
        let field: &[u8] = if flen <= small.len() {
            small[..flen].copy_from_slice(&self.buf[start..start + flen]);
            &small[..flen]
        } else {
            owned = self.buf[start..start + flen].to_vec();
            &owned
        };
        self.splice(off, next - off, Some((field, value)));
    }

    /// Removes the pair at `off`.
    pub fn remove(&mut self, off: usize) {
        let (_, _, _, next) = self.layout(off);
        self.splice(off, next - off, None);
        self.count -= 1;
    }

    pub fn iter(&self) -> PairIter<'_> {
        PairIter {
            pack: self,
            off: 0,
            left: self.len(),
        }
    }
}

/// Pairs of a [`PairPack`] in order.
pub struct PairIter<'a> {
    pack: &'a PairPack,
    off: usize,
    left: usize,
}

impl<'a> Iterator for PairIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.left == 0 {
            return None;
        }
        let (f, v, next) = self.pack.pair(self.off);
        self.off = next;
        self.left -= 1;
        Some((f, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PairIter<'_> {}

/// A member read out of an aggregate: borrowed bytes, or an integer
/// rendered on the stack (an intset stores no text).
#[derive(Clone, Copy)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(IntText),
}

impl Deref for Elem<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Elem::Bytes(b) => b,
            Elem::Int(t) => t,
        }
    }
}

impl AsRef<[u8]> for Elem<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Elem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The integer `bytes` spells in canonical form (what Redis' string2ll
/// accepts: no sign on zero, no leading zeros, no spaces), if any.
#[inline]
pub fn as_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    parse_i64(bytes)
}

/// Sorted distinct integers, each stored `width` bytes wide (2, 4 or 8).
#[derive(Clone, Debug, PartialEq)]
pub struct Intset {
    width: u8,
    buf: Vec<u8>,
}

impl Default for Intset {
    fn default() -> Intset {
        Intset {
            width: 2,
            buf: Vec::new(),
        }
    }
}

fn width_for(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

impl Intset {
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() / self.width as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Heap bytes held.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The integer at position `i` (in range).
    #[inline]
    pub fn get(&self, i: usize) -> i64 {
        let w = self.width as usize;
        let b = &self.buf[i * w..i * w + w];
        match w {
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }

    fn put(&mut self, i: usize, v: i64) {
        let w = self.width as usize;
        let b = &mut self.buf[i * w..i * w + w];
        match w {
            2 => b.copy_from_slice(&(v as i16).to_le_bytes()),
            4 => b.copy_from_slice(&(v as i32).to_le_bytes()),
            _ => b.copy_from_slice(&v.to_le_bytes()),
        }
    }

    /// Position of `v`, or where it would go.
    #[inline]
    pub fn search(&self, v: i64) -> Result<usize, usize> {
        if width_for(v) > self.width {
            // Wider than every stored value: below or above them all.
            return Err(if v < 0 { 0 } else { self.len() });
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    #[inline]
    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    /// Adds `v`; returns whether it is new.
    pub fn insert(&mut self, v: i64) -> bool {
        let at = match self.search(v) {
            Ok(_) => return false,
            Err(at) => at,
        };
        let need = width_for(v);
        if need > self.width {
            // Widen every value, back to front so nothing is overwritten.
            let n = self.len();
            let old = self.width;
            let values: Vec<i64> = (0..n).map(|i| self.get(i)).collect();
            self.width = need;
            self.buf.clear();
            reserve(&mut self.buf, (n + 1) * need as usize);
            self.buf.resize(n * need as usize, 0);
            for (i, x) in values.into_iter().enumerate() {
                self.put(i, x);
            }
            debug_assert!(old < need);
        }
        let w = self.width as usize;
        let old_len = self.buf.len();
        reserve(&mut self.buf, w);
        self.buf.resize(old_len + w, 0);
        self.buf.copy_within(at * w..old_len, at * w + w);
        self.put(at, v);
        true
    }

    /// Removes the value at position `i` (in range) and returns it.
    pub fn remove_index(&mut self, i: usize) -> i64 {
        let v = self.get(i);
        let w = self.width as usize;
        let old_len = self.buf.len();
        self.buf.copy_within(i * w + w..old_len, i * w);
        let len = old_len - w;
        self.buf.truncate(len);
        if self.buf.capacity() > len + len / 4 + 64 {
            self.buf.shrink_to(len + len / 8);
        }
        v
    }

    /// Removes `v`; returns whether it was there.
    pub fn remove(&mut self, v: i64) -> bool {
        match self.search(v) {
            Ok(i) => {
                self.remove_index(i);
                true
            }
            Err(_) => false,
        }
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_round_trip() {
        for n in [
            0usize,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            1 << 21,
            1 << 28,
            1 << 40,
        ] {
            let mut out = [0u8; 10];
            let k = encode_len(n, &mut out);
            assert_eq!(k, len_size(n), "{n}");
            assert_eq!(decode_len(&out, 0), (n, k), "{n}");
        }
    }

    #[test]
    fn int_text_is_canonical() {
        for v in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 12345] {
            let t = IntText::new(v);
            assert_eq!(&*t, v.to_string().as_bytes());
            assert_eq!(as_int(&t), Some(v));
        }
        for bad in [
            &b""[..],
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1a",
            b"99999999999999999999",
        ] {
            assert_eq!(as_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_short_field_with_a_sixteen_byte_value_costs_twenty() {
        let mut p = PairPack::default();
        for i in 0..100 {
            p.push(format!("f{i:02}").as_bytes(), &[b'v'; 16]);
        }
        assert_eq!(p.bytes(), 2000);
        assert_eq!(p.capacity(), 2000);
        let (f, v, _) = p.pair(p.find(b"f42").unwrap());
        assert_eq!((f, v), (&b"f42"[..], &[b'v'; 16][..]));
        // 8 bytes and 31: the escape combination.
        p.push(b"12345678", &[b'x'; 31]);
        assert_eq!(p.bytes(), 2000 + 3 + 39);
        // An 8-byte field still has a one-byte header; an empty one does not.
        p.push(b"username", &[b'x'; 16]);
        assert_eq!(p.bytes(), 2042 + 25);
        p.push(b"", &[b'x'; 16]);
        assert_eq!(p.bytes(), 2067 + 3 + 16);
        assert_eq!(p.pair(p.find(b"").unwrap()).1, &[b'x'; 16][..]);
        assert_eq!(p.pair(p.find(b"username").unwrap()).0, b"username");
    }

    /// Back-lengths of every width walk back to the entry they follow:
    /// entries whose encoded size crosses 127/128 and 16383/16384 bytes.
    #[test]
    fn back_lengths_of_every_width_walk_back() {
        let mut p = BackPack::default();
        let sizes: Vec<usize> = (0..300).chain(16_370..16_390).chain([2_100_000]).collect();
        for &n in &sizes {
            p.push(&vec![(n % 251) as u8; n]);
        }
        let mut off = p.end();
        for &n in sizes.iter().rev() {
            off = p.prev(off);
            assert_eq!(p.entry(off).0, &vec![(n % 251) as u8; n][..], "{n}");
        }
        assert_eq!(off, 0);
        assert_eq!(p.offset_of(sizes.len() - 1), p.prev(p.end()));
        // 16 bytes: one header byte, one back-length byte.
        assert_eq!(BackPack::encoded_size(&[0; 16]), 18);
        assert_eq!(Pack::<false>::encoded_size(&[0; 16]), 17);
    }

    #[test]
    fn a_sixteen_byte_entry_costs_seventeen() {
        let mut p = Pack::<false>::default();
        for _ in 0..100 {
            p.push(&[b'x'; 16]);
        }
        assert_eq!(p.bytes(), 1700);
        assert_eq!(p.capacity(), 1700);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(usize),
        Replace(usize, Vec<u8>),
        RemoveRun(usize, usize),
        Retain(u8),
        Split(usize),
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(any::<u8>(), 120..140),
            proptest::collection::vec(any::<u8>(), 0..300),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            bytes().prop_map(Op::Push),
            (any::<usize>(), bytes()).prop_map(|(i, b)| Op::Insert(i, b)),
            any::<usize>().prop_map(Op::Remove),
            (any::<usize>(), bytes()).prop_map(|(i, b)| Op::Replace(i, b)),
            (any::<usize>(), 0usize..4).prop_map(|(i, n)| Op::RemoveRun(i, n)),
            any::<u8>().prop_map(Op::Retain),
            any::<usize>().prop_map(Op::Split),
        ]
    }

    /// Runs `ops` on a pack and on a `Vec` model, checking after each
    /// that they hold the same entries; a [`BackPack`] is also walked back
    /// from its end, entry by entry.
    fn pack_follows_the_model<const BACK: bool>(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut pack = Pack::<BACK>::default();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Push(b) => {
                    pack.push(&b);
                    model.push(b);
                }
                Op::Insert(i, b) => {
                    let i = i % (model.len() + 1);
                    pack.insert_at(pack.offset_of(i), &b);
                    model.insert(i, b);
                }
                Op::Remove(i) if !model.is_empty() => {
                    let i = i % model.len();
                    pack.remove_at(pack.offset_of(i));
                    model.remove(i);
                }
                Op::Replace(i, b) if !model.is_empty() => {
                    let i = i % model.len();
                    pack.replace_at(pack.offset_of(i), &b);
                    model[i] = b;
                }
                Op::RemoveRun(i, n) => {
                    let i = i % (model.len() + 1);
                    let n = n.min(model.len() - i);
                    pack.remove_run(pack.offset_of(i), n);
                    model.drain(i..i + n);
                }
                Op::Retain(x) => {
                    let removed = pack.retain(|e| e.first() != Some(&x));
                    let before = model.len();
                    model.retain(|e| e.first() != Some(&x));
                    prop_assert_eq!(removed, before - model.len());
                }
                Op::Split(i) => {
                    let i = i % (model.len() + 1);
                    let tail = pack.split_off(pack.offset_of(i), i);
                    let model_tail = model.split_off(i);
                    prop_assert_eq!(
                        tail.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                        model_tail.clone()
                    );
                    pack.append(&tail);
                    model.extend(model_tail);
                }
                _ => {}
            }
            prop_assert_eq!(pack.len(), model.len());
            prop_assert_eq!(
                pack.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                model.clone()
            );
            prop_assert_eq!(
                pack.bytes(),
                model
                    .iter()
                    .map(|e| Pack::<BACK>::encoded_size(e))
                    .sum::<usize>()
            );
            prop_assert!(pack.capacity() <= pack.bytes() + pack.bytes() / 4 + 64);
            for (i, e) in model.iter().enumerate() {
                prop_assert_eq!(pack.find(e).map(|o| pack.entry(o).0), Some(&e[..]));
                prop_assert_eq!(pack.entry(pack.offset_of(i)).0, &e[..]);
            }
            if BACK {
                let mut off = pack.end();
                for e in model.iter().rev() {
                    off = pack.prev(off);
                    prop_assert_eq!(pack.entry(off).0, &e[..]);
                }
                prop_assert_eq!(off, 0);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn pack_behaves_as_a_vec(ops in proptest::collection::vec(op(), 0..60)) {
            pack_follows_the_model::<false>(ops.clone())?;
            pack_follows_the_model::<true>(ops)?;
        }

        #[test]
        fn pair_pack_behaves_as_a_map(
            ops in proptest::collection::vec((0u8..3, 0u8..12, bytes()), 0..60)
        ) {
            let mut pack = PairPack::default();
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (op, f, v) in ops {
                // Fields of 0..11 bytes and a long one: both header forms.
                let field = if f == 11 { vec![b'F'; 300] } else { vec![b'f'; f as usize] };
                let at = model.iter().position(|(mf, _)| *mf == field);
                prop_assert_eq!(pack.find(&field), at.map(|i| {
                    let mut off = 0;
                    for _ in 0..i { off = pack.pair(off).2; }
                    off
                }));
                match (op, pack.find(&field), at) {
                    (0 | 1, Some(off), Some(i)) => { pack.set_value(off, &v); model[i].1 = v; }
                    (0 | 1, None, None) => { pack.push(&field, &v); model.push((field, v)); }
                    (_, Some(off), Some(i)) => { pack.remove(off); model.remove(i); }
                    _ => {}
                }
                prop_assert_eq!(pack.len(), model.len());
                let got: Vec<(Vec<u8>, Vec<u8>)> = pack.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                prop_assert_eq!(&got, &model);
                let small = |f: &Vec<u8>, v: &Vec<u8>| (1..=8).contains(&f.len()) && v.len() <= 31 && !(f.len() == 8 && v.len() == 31);
                let size: usize = model.iter().map(|(f, v)| f.len() + v.len() + if small(f, v) { 1 } else { 1 + len_size(f.len()) + len_size(v.len()) }).sum();
                prop_assert_eq!(pack.bytes(), size);
                prop_assert!(pack.capacity() <= pack.bytes() + pack.bytes() / 4 + 64);
            }
        }

        #[test]
        fn intset_behaves_as_a_sorted_set(
            ops in proptest::collection::vec((any::<bool>(), prop_oneof![
                -300i64..300,
                any::<i16>().prop_map(i64::from),
                any::<i32>().prop_map(i64::from),
                any::<i64>(),
            ]), 0..200)
        ) {
            let mut set = Intset::default();
            let mut model = std::collections::BTreeSet::new();
            for (add, v) in ops {
                if add {
                    prop_assert_eq!(set.insert(v), model.insert(v));
                } else {
                    prop_assert_eq!(set.remove(v), model.remove(&v));
                }
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert!(set.contains(v) == model.contains(&v));
            }
        }
    }
}
