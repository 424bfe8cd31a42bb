//! Sorted sets: the value behind the Z* commands, in Redis 7.0's two
//! encodings.
//!
//! A [`ZSet`] is ordered by (score, member), members compared as bytes.
//! While it has at most `zset-max-listpack-entries` elements and no member
//! longer than `zset-max-listpack-value` bytes it is a [`Pack`] (OBJECT
//! ENCODING `listpack`) of alternating member and score entries in order,
//! O(n) to search and edit as Redis' listpack; beyond, it becomes a
//! [`Skiplist`] (`skiplist`) and never goes back, as in Redis.
//!
//! The skiplist is Redis' `zskiplist` (levels with spans, so rank and
//! range lookups are O(log n)) kept in an arena of words where a node is
//! a block (score, then its links inline) addressed by `u32`, with a hash
//! index member → node so that ZSCORE is O(1). The member lives once, as
//! a [`Key`] (inline up to 15 bytes) beside the blocks; see [`Skiplist`].
//!
//! Every operation is in terms of ascending ranks: a range by score or lex
//! is first turned into a rank interval ([`ZSet::rank_range`]), then read
//! ([`ZSet::iter_from`], [`ZSet::iter_rev_from`]) or removed
//! (`ZSet::remove_ranks`). Mutations take the caller's running `delta`
//! and add to it what they change (see `super::agg`); the typed view
//! `super::guard::ZSetMut` is how commands reach them.

use hashbrown::HashTable;

use crate::protocol::float::round_scaled;
use crate::protocol::reply::IntText;

use super::agg::Limits;
use super::packed::{Pack, PackIter};
use super::{Hasher, Key, cost};

/// Accounted cost of one skiplist element beside its member's heap
/// block: its `Meta` (24 bytes) and block (two words and 4/3 links on
/// average, 27 bytes), with their share of the vectors' spare capacity,
/// and the index slot.
const ZSET_ELEM: usize = 80;

#[inline]
fn packed_cost(capacity: usize) -> usize {
    cost::PACKED
        + if capacity == 0 {
            0
        } else {
            cost::bytes(capacity)
        }
}

/// Accounted cost of one skiplist element: a member of up to
/// `Key::INLINE` bytes lives in its `Meta`, a longer one adds its block.
#[inline]
pub(crate) fn elem_cost(member: &[u8]) -> usize {
    ZSET_ELEM + cost::key_heap(member.len())
}

#[inline]
fn settle(delta: &mut isize, before: usize, after: usize) {
    *delta += after as isize - before as isize;
}

/// (score, member) order, as Redis' `zslValueGteMin`... family compare.
#[inline]
fn before(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

// ------------------------------------------------------------- ranges

/// One end of a score interval (`1.5`, `(1.5`, `-inf`, `+inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    /// Parses Redis' syntax; `None` is "min or max is not a float".
    pub fn parse(raw: &[u8]) -> Option<ScoreBound> {
        let (exclusive, text) = match raw.first() {
            Some(b'(') => (true, &raw[1..]),
            _ => (false, raw),
        };
        // strtod as Redis' zslParseRange calls it: leading blanks are
        // skipped and an empty number is 0 (`(` alone is "above 0").
        let text = text.trim_ascii_start();
        let value = if text.is_empty() {
            0.0
        } else {
            crate::protocol::float::strtod(text)?.0
        };
        if value.is_nan() {
            return None;
        }
        Some(ScoreBound { value, exclusive })
    }
}

/// One end of a lex interval (`[a`, `(a`, `-`, `+`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LexBound<'a> {
    NegInf,
    PosInf,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

impl<'a> LexBound<'a> {
    /// Parses Redis' syntax; `None` is "min or max not valid string range
    /// item".
    pub fn parse(raw: &'a [u8]) -> Option<LexBound<'a>> {
        match raw {
            [b'-'] => Some(LexBound::NegInf),
            [b'+'] => Some(LexBound::PosInf),
            [b'[', rest @ ..] => Some(LexBound::Incl(rest)),
            [b'(', rest @ ..] => Some(LexBound::Excl(rest)),
            _ => None,
        }
    }
}

/// An interval of a sorted set's order: by score, or by member for sets
/// whose scores are all equal (the BYLEX commands).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range<'a> {
    Score(ScoreBound, ScoreBound),
    Lex(LexBound<'a>, LexBound<'a>),
}

impl Range<'_> {
    /// Whether an element lies before the interval's start.
    #[inline]
    fn below_min<'m>(&self, score: f64, member: &dyn Fn() -> &'m [u8]) -> bool {
        match self {
            Range::Score(min, _) => {
                if min.exclusive {
                    score <= min.value
                } else {
                    score < min.value
                }
            }
            Range::Lex(min, _) => match *min {
                LexBound::NegInf => false,
                LexBound::PosInf => true,
                LexBound::Incl(m) => member() < m,
                LexBound::Excl(m) => member() <= m,
            },
        }
    }

    /// Whether an element lies at or before the interval's end.
    #[inline]
    fn within_max<'m>(&self, score: f64, member: &dyn Fn() -> &'m [u8]) -> bool {
        match self {
            Range::Score(_, max) => {
                if max.exclusive {
                    score < max.value
                } else {
                    score <= max.value
                }
            }
            Range::Lex(_, max) => match *max {
                LexBound::NegInf => false,
                LexBound::PosInf => true,
                LexBound::Incl(m) => member() <= m,
                LexBound::Excl(m) => member() < m,
            },
        }
    }
}

/// Writes `score` as Redis replies with it (`%.17g`, shortest form that
/// reads back the same, `inf`/`-inf`), into `buf`; returns the text.
pub fn format_score(score: f64, buf: &mut [u8; 32]) -> &[u8] {
    use std::io::Write;
    let mut w = &mut buf[..];
    if score.is_infinite() {
        let t: &[u8] = if score > 0.0 { b"inf" } else { b"-inf" };
        w.write_all(t).expect("fits");
    } else if score == score.trunc() && score.abs() < 1e17 {
        // Integral: %.17g prints it without exponent up to 17 digits.
        // Redis 7.0 answers "0" for a score of -0 (checked by hand).
        w.write_all(&IntText::new(score as i64)).expect("fits");
    } else {
        // Redis 7.0 uses %.17g; the shortest round-trip form reads back
        // the same and is what Redis 7.2+ prints, but to match 7.0 byte
        // for byte print 17 significant digits the %g way.
        g17(score, &mut w);
    }
    let n = 32 - w.len();
    &buf[..n]
}

/// `%.17g`: 17 significant digits, trailing zeros dropped, exponent form
/// when the exponent is below -4 or at least 17. Formats into stack
/// buffers: a ZRANGE WITHSCORES of fractional scores formats one per
/// element.
fn g17(v: f64, w: &mut &mut [u8]) {
    use std::io::Write;
    let a = v.abs();
    let (digits, exp) = digits17(a).unwrap_or_else(|| digits17_fmt(a));
    // `digits` has no leading zero, so at least one digit stays.
    let len = digits.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    let d = &digits[..len];
    let mut put = |bytes: &[u8]| w.write_all(bytes).expect("fits");
    if v < 0.0 {
        put(b"-");
    }
    if !(-4..17).contains(&exp) {
        put(&d[..1]);
        if len > 1 {
            put(b".");
            put(&d[1..]);
        }
        put(if exp < 0 { b"e-" } else { b"e+" });
        if exp.abs() < 10 {
            put(b"0");
        }
        put(&IntText::new(exp.abs().into()));
    } else if exp >= 0 {
        let point = exp as usize + 1;
        if len <= point {
            // Rounded to an integer: its own zeros are not trailing.
            put(d);
            put(&[b'0'; 17][..point - len]);
        } else {
            put(&d[..point]);
            put(b".");
            put(&d[point..]);
        }
    } else {
        put(b"0.");
        put(&b"0000"[..(-exp - 1) as usize]);
        put(d);
    }
}

/// The 17 significant digits of `a` (finite, positive), correctly rounded
/// as by the C library's printf, and the decimal exponent of the first:
/// `a` ≈ d.dddddddddddddddd × 10^exp. By `round_scaled`'s integer
/// arithmetic for `a` in about [1e-16, 1e17), None outside (then
/// `digits17_fmt`, ten times the instructions).
fn digits17(a: f64) -> Option<([u8; 17], i32)> {
    const LIMIT: u128 = 100_000_000_000_000_000; // 10^17
    let biased = (a.to_bits() >> 52) as i32;
    if biased == 0 || biased == 0x7ff {
        return None; // zero, subnormal (far below 1e-16), inf, NaN
    }
    // `a` lies in [2^t, 2^(t+1)); floor(t × log10 2) (exact for |t| <
    // 1000) is its decimal exponent or one less.
    let t = biased - 1023;
    let mut exp = (t * 78913) >> 18;
    loop {
        let n = round_scaled(a, 16 - exp)?;
        if n >= LIMIT {
            // The exponent is one more (or the rounding carried into an
            // 18th digit): again with one digit less.
            exp += 1;
            continue;
        }
        debug_assert!(n >= LIMIT / 10, "{a:e}: {n}");
        let mut digits = [0u8; 17];
        digits.copy_from_slice(&IntText::new(n as i64));
        return Some((digits, exp));
    }
}

/// `digits17` for any finite positive `a`, by the standard library's exact
/// formatting (`{:.16e}`).
fn digits17_fmt(a: f64) -> ([u8; 17], i32) {
    use std::io::Write;
    let mut sci = std::io::Cursor::new([0u8; 32]);
    write!(sci, "{a:.16e}").expect("fits");
    // d.dddddddddddddddde[-]x
    let sci = written(&sci);
    let mut digits = [0u8; 17];
    digits[0] = sci[0];
    digits[1..].copy_from_slice(&sci[2..18]);
    let (neg, magnitude) = match &sci[19..] {
        [b'-', m @ ..] => (true, m),
        m => (false, m),
    };
    let magnitude = magnitude
        .iter()
        .fold(0i32, |n, &d| n * 10 + i32::from(d - b'0'));
    (digits, if neg { -magnitude } else { magnitude })
}

/// What was written into a stack buffer.
fn written<const N: usize>(c: &std::io::Cursor<[u8; N]>) -> &[u8] {
    &c.get_ref()[..c.position() as usize]
}

// ---------------------------------------------------- packed encoding

/// An element as one pack entry: the member's bytes, then the score as a
/// LEB128 code written backwards (read from the entry's end, so it needs
/// no length of its own). Code 0: the 8 bytes before it are the double;
/// code z + 1: the integer of zigzag value z (integers of up to 53 bits).
/// A 16-byte member with a score below 2^20 takes 20 bytes with the
/// entry's length byte, where Redis' listpack takes 23.
#[inline]
fn encode_elem<'b>(member: &[u8], score: f64, buf: &'b mut Vec<u8>) -> &'b [u8] {
    const EXACT: f64 = (1u64 << 53) as f64;
    buf.clear();
    buf.extend_from_slice(member);
    let code = if score == score.trunc() && score.abs() < EXACT {
        // -0 is kept as 0: Redis 7.0 answers "0" for it as well.
        let i = score as i64;
        ((i << 1) ^ (i >> 63)) as u64 + 1
    } else {
        buf.extend_from_slice(&score.to_bits().to_le_bytes());
        0
    };
    let mut leb = [0u8; 10];
    let (mut c, mut n) = (code, 0);
    loop {
        let byte = (c & 0x7f) as u8;
        c >>= 7;
        leb[n] = if c == 0 { byte } else { byte | 0x80 };
        n += 1;
        if c == 0 {
            break;
        }
    }
    buf.extend(leb[..n].iter().rev());
    buf
}

/// A packed element's member and score (see `encode_elem`).
#[inline]
fn split_elem(e: &[u8]) -> (&[u8], f64) {
    let (mut code, mut shift, mut i) = (0u64, 0, e.len());
    loop {
        i -= 1;
        let b = e[i];
        code |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    if code == 0 {
        let bits = u64::from_le_bytes(e[i - 8..i].try_into().expect("8 bytes"));
        (&e[..i - 8], f64::from_bits(bits))
    } else {
        let z = code - 1;
        (&e[..i], (((z >> 1) as i64) ^ -((z & 1) as i64)) as f64)
    }
}

/// Offset of `member`'s element and its score.
fn pack_find(p: &Pack, member: &[u8]) -> Option<(usize, f64)> {
    let mut off = 0;
    while off < p.end() {
        let (e, next) = p.entry(off);
        // The member is a prefix of at most len - 1 bytes: skip shorter
        // entries without decoding.
        if e.len() > member.len() && e.starts_with(member) {
            let (m, s) = split_elem(e);
            if m == member {
                return Some((off, s));
            }
        }
        off = next;
    }
    None
}

/// One pass for an insert: `member`'s element (offset, score) if present,
/// and where (score, member) goes among the elements as they are.
fn pack_locate(p: &Pack, member: &[u8], score: f64) -> (Option<(usize, f64)>, usize) {
    let (mut found, mut at) = (None, None);
    let mut off = 0;
    while off < p.end() && (found.is_none() || at.is_none()) {
        let (e, next) = p.entry(off);
        let (m, s) = split_elem(e);
        if found.is_none() && m == member {
            found = Some((off, s));
        }
        if at.is_none() && before(score, member, s, m) {
            at = Some(off);
        }
        off = next;
    }
    (found, at.unwrap_or(p.end()))
}

fn pack_insert_at(p: &mut Pack, at: usize, score: f64, member: &[u8]) {
    let mut buf = Vec::with_capacity(member.len() + 10);
    p.insert_at(at, encode_elem(member, score, &mut buf));
}

// ------------------------------------------------------------ skiplist

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
/// The head's block: at offset 0, with `MAX_LEVEL` links and no element.
const HEAD: u32 = 0;
/// A block's words before its links: the score, then id and level.
const BLOCK_HEADER: usize = 2;

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    next: u32,
    /// Elements crossed by following `next` (Redis' span).
    span: u32,
}

impl Link {
    #[inline]
    fn from_word(w: u64) -> Link {
        Link {
            next: w as u32,
            span: (w >> 32) as u32,
        }
    }

    #[inline]
    fn word(self) -> u64 {
        self.next as u64 | (self.span as u64) << 32
    }
}

const NO_LINK: Link = Link { next: NIL, span: 0 };

/// What the walk does not read: the member (compared only on equal
/// scores), the backward link and where the node's block is.
#[derive(Clone, Debug)]
struct Meta {
    member: Key,
    back: u32,
    at: u32,
}

/// Redis' zskiplist with a member index (see the module docs).
///
/// A node is a block of words in one arena, as Redis' node is one
/// allocation: its score, its id and level, then its links, inline. A
/// step of the walk reads the next node's score and, from the same block,
/// its link at the level walked, so it misses the cache once per step (a
/// node with its upper links in a block of their own missed twice). A
/// node's member and backward link are in `meta`, by id, read only on a
/// tie of scores, by the index and by iteration. Links, backward links
/// and `tail` hold block offsets; the index holds ids.
#[derive(Clone)]
pub struct Skiplist {
    /// Node blocks: `[score bits, id | level << 32, link 0, link 1, ..]`.
    words: Vec<u64>,
    /// By node id; id 0 is the head's.
    meta: Vec<Meta>,
    /// Blocks of removed nodes, reused first: by level - 1, the first free
    /// block of that level (NIL for none; the vector grows to the highest
    /// level freed), the next one in its link 0. A free block keeps its id
    /// (whose `Meta` holds an empty member), so a reused block brings its
    /// id along; its score is NaN, the mark of a free node (no element
    /// has a NaN score).
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: Hasher,
    level: usize,
    len: usize,
    tail: u32,
    rng: u64,
}

impl std::fmt::Debug for Skiplist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter_from(0)).finish()
    }
}

impl Skiplist {
    fn new() -> Skiplist {
        let mut words = vec![0f64.to_bits(), (MAX_LEVEL as u64) << 32];
        words.extend([NO_LINK.word(); MAX_LEVEL]);
        Skiplist {
            words,
            meta: vec![Meta {
                member: Key::new(b""),
                back: NIL,
                at: HEAD,
            }],
            free: Vec::new(),
            index: HashTable::new(),
            hasher: Hasher::new(),
            level: 1,
            len: 0,
            tail: NIL,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    #[inline]
    fn hash(&self, member: &[u8]) -> u64 {
        self.hasher.hash_one(member)
    }

    #[inline]
    fn score(&self, x: u32) -> f64 {
        f64::from_bits(self.words[x as usize])
    }

    #[inline]
    fn set_score(&mut self, x: u32, score: f64) {
        self.words[x as usize] = score.to_bits();
    }

    #[inline]
    fn id(&self, x: u32) -> usize {
        self.words[x as usize + 1] as u32 as usize
    }

    #[inline]
    fn level_of(&self, x: u32) -> usize {
        (self.words[x as usize + 1] >> 32) as usize
    }

    #[inline]
    fn link(&self, x: u32, i: usize) -> Link {
        Link::from_word(self.words[x as usize + BLOCK_HEADER + i])
    }

    #[inline]
    fn set_link(&mut self, x: u32, i: usize, l: Link) {
        self.words[x as usize + BLOCK_HEADER + i] = l.word();
    }

    #[inline]
    fn meta(&self, x: u32) -> &Meta {
        &self.meta[self.id(x)]
    }

    #[inline]
    fn member(&self, x: u32) -> &[u8] {
        self.meta(x).member.as_bytes()
    }

    #[inline]
    fn set_back(&mut self, x: u32, back: u32) {
        let id = self.id(x);
        self.meta[id].back = back;
    }

    /// Whether node `x` comes before (score, member); its member is read
    /// only when the scores tie.
    #[inline]
    fn precedes(&self, x: u32, score: f64, member: &[u8]) -> bool {
        let s = self.score(x);
        s < score || (s == score && self.member(x) < member)
    }

    /// The block of the node whose member this is.
    fn find(&self, member: &[u8]) -> Option<u32> {
        let meta = &self.meta;
        self.index
            .find(self.hash(member), |&id| {
                meta[id as usize].member.as_bytes() == member
            })
            .map(|&id| meta[id as usize].at)
    }

    /// Redis' zslRandomLevel: each level with probability 1/4.
    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if level < MAX_LEVEL && (self.rng & 0xffff) < 0x4000 {
                level += 1;
            } else {
                return level;
            }
        }
    }

    /// For each level, the last node before (score, member), and its rank
    /// (elements up to and including it).
    fn path(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [u32; MAX_LEVEL]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.link(x, i);
                if l.next == NIL || !self.precedes(l.next, score, member) {
                    break;
                }
                rank[i] += l.span;
                x = l.next;
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Adds an element whose member is not present.
    fn insert_new(&mut self, score: f64, member: &[u8]) {
        let level = self.random_level();
        let x = match self.free.get(level - 1).copied().filter(|&x| x != NIL) {
            Some(x) => {
                self.free[level - 1] = self.link(x, 0).next;
                let id = self.id(x);
                self.meta[id].member = Key::new(member);
                self.set_score(x, score);
                x
            }
            None => {
                let x = self.words.len() as u32;
                let id = self.meta.len() as u64;
                self.words.push(score.to_bits());
                self.words.push(id | (level as u64) << 32);
                self.words
                    .extend(std::iter::repeat_n(NO_LINK.word(), level));
                self.meta.push(Meta {
                    member: Key::new(member),
                    back: NIL,
                    at: x,
                });
                x
            }
        };
        self.link_in(x);
        let hash = self.hash(member);
        let (meta, hasher) = (&self.meta, &self.hasher);
        self.index.insert_unique(hash, self.id(x) as u32, |&id| {
            hasher.hash_one(meta[id as usize].member.as_bytes())
        });
    }

    /// Links node `x` (its member, score and level set, not in the list)
    /// at its place in the order.
    fn link_in(&mut self, x: u32) {
        let level = self.level_of(x);
        let (mut update, rank) = self.path(self.score(x), self.member(x));
        if level > self.level {
            for u in update.iter_mut().take(level).skip(self.level) {
                *u = HEAD;
            }
            for i in self.level..level {
                self.set_link(
                    HEAD,
                    i,
                    Link {
                        next: NIL,
                        span: self.len as u32,
                    },
                );
            }
            self.level = level;
        }
        // `rank` above the old level is 0, as Redis resets it.
        for i in 0..level {
            let u = self.link(update[i], i);
            let crossed = rank[0] - rank[i];
            self.set_link(
                x,
                i,
                Link {
                    next: u.next,
                    span: u.span.wrapping_sub(crossed),
                },
            );
            self.set_link(
                update[i],
                i,
                Link {
                    next: x,
                    span: crossed + 1,
                },
            );
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            let l = self.link(u, i);
            self.set_link(
                u,
                i,
                Link {
                    span: l.span + 1,
                    ..l
                },
            );
        }
        self.set_back(x, if update[0] == HEAD { NIL } else { update[0] });
        let next = self.link(x, 0).next;
        if next == NIL {
            self.tail = x;
        } else {
            self.set_back(next, x);
        }
        self.len += 1;
    }

    /// Takes node `x`, whose predecessors are `update`, out of the list;
    /// its block, member and index entry stay.
    fn link_out(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.link(u, i);
            let l = if ul.next == x {
                let xl = self.link(x, i);
                Link {
                    next: xl.next,
                    span: ul.span + xl.span - 1,
                }
            } else {
                Link {
                    span: ul.span - 1,
                    ..ul
                }
            };
            self.set_link(u, i, l);
        }
        let (next, back) = (self.link(x, 0).next, self.meta(x).back);
        if next == NIL {
            self.tail = back;
        } else {
            self.set_back(next, back);
        }
        while self.level > 1 && self.link(HEAD, self.level - 1).next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Unlinks node `x`, whose predecessors are `update`; frees its block.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) -> (Key, f64) {
        self.link_out(x, update);
        let id = self.id(x);
        let hash = self.hash(self.member(x));
        if let Ok(e) = self.index.find_entry(hash, |&i| i as usize == id) {
            e.remove();
        }
        let member = std::mem::replace(&mut self.meta[id].member, Key::new(b""));
        let score = self.score(x);
        self.set_score(x, f64::NAN);
        let level = self.level_of(x);
        if self.free.len() < level {
            self.free.resize(level, NIL);
        }
        self.set_link(
            x,
            0,
            Link {
                next: self.free[level - 1],
                span: 0,
            },
        );
        self.free[level - 1] = x;
        (member, score)
    }

    /// Gives present node `x` a new score (Redis' zslUpdateScore): in place
    /// when it stays between its neighbours, else out of the list and in
    /// again at its new place. Either way the node keeps its block, member,
    /// level and index entry: an update hashes nothing and allocates
    /// nothing (it was a removal and an insertion: four hashes, a member
    /// and a link array freed and allocated again).
    fn update_score(&mut self, x: u32, score: f64) {
        let (back, next) = (self.meta(x).back, self.link(x, 0).next);
        let fits =
            (back == NIL || self.score(back) < score) && (next == NIL || self.score(next) > score);
        if fits {
            self.set_score(x, score);
            return;
        }
        let (update, _) = self.path(self.score(x), self.member(x));
        self.link_out(x, &update);
        self.set_score(x, score);
        self.link_in(x);
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let x = self.find(member)?;
        let score = self.score(x);
        let (update, _) = self.path(score, member);
        Some(self.unlink(x, &update).1)
    }

    /// Number of leading elements for which `pred` holds (`pred` true on
    /// a prefix of the order); `pred` is given the score and a way to the
    /// member, which it reads only if it needs it.
    fn count_while<'s>(&'s self, pred: impl Fn(f64, &dyn Fn() -> &'s [u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL || !pred(self.score(l.next), &|| self.member(l.next)) {
                    break;
                }
                rank += l.span as usize;
                x = l.next;
            }
        }
        rank
    }

    /// The node at 0-based rank `r` (< len).
    fn at_rank(&self, r: usize) -> u32 {
        let want = r + 1;
        let mut x = HEAD;
        let mut traversed = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL || traversed + l.span as usize > want {
                    break;
                }
                traversed += l.span as usize;
                x = l.next;
            }
            if traversed == want {
                return x;
            }
        }
        unreachable!("rank {r} within length {}", self.len)
    }

    /// 0-based rank of `member` (present, with `score`).
    fn rank_of(&self, score: f64, member: &[u8]) -> usize {
        self.count_while(|s, m| s < score || (s == score && m() < member))
    }

    fn iter_from(&self, rank: usize) -> SkipIter<'_> {
        let node = if rank < self.len {
            self.at_rank(rank)
        } else {
            NIL
        };
        SkipIter {
            list: self,
            node,
            left: self.len.saturating_sub(rank),
            rev: false,
        }
    }

    fn iter_rev_from(&self, rank: usize) -> SkipIter<'_> {
        let node = if rank < self.len {
            self.at_rank(rank)
        } else {
            NIL
        };
        SkipIter {
            list: self,
            node,
            left: if rank < self.len { rank + 1 } else { 0 },
            rev: true,
        }
    }

    /// Removes ranks `start..end` in one walk (Redis'
    /// zslDeleteRangeByRank), handing each element to `f` in order.
    fn remove_ranks(&mut self, start: usize, end: usize, f: &mut impl FnMut(&[u8], f64)) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        let mut traversed = 0usize;
        for (i, u) in update.iter_mut().enumerate().take(self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.next == NIL || traversed + l.span as usize > start {
                    break;
                }
                traversed += l.span as usize;
                x = l.next;
            }
            *u = x;
        }
        let mut x = self.link(x, 0).next;
        for _ in start..end {
            if x == NIL {
                break;
            }
            let next = self.link(x, 0).next;
            let (member, score) = self.unlink(x, &update);
            f(&member, score);
            x = next;
        }
    }

    /// ZSCAN's walk: the elements of ids `cursor..`, up to `count` ids
    /// (see `ZSet::scan`); returns the next cursor (0 when done).
    fn scan<'a>(&'a self, cursor: usize, count: usize, f: &mut impl FnMut(&'a [u8], f64)) -> usize {
        let start = cursor.max(1);
        let end = start.saturating_add(count.max(1)).min(self.meta.len());
        for m in self.meta.get(start..end).unwrap_or(&[]) {
            let score = self.score(m.at);
            if !score.is_nan() {
                f(m.member.as_bytes(), score);
            }
        }
        if end >= self.meta.len() { 0 } else { end }
    }
}

/// Elements of a skiplist from a node on, forwards or backwards.
pub struct SkipIter<'a> {
    list: &'a Skiplist,
    node: u32,
    left: usize,
    rev: bool,
}

impl<'a> Iterator for SkipIter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.left == 0 || self.node == NIL {
            return None;
        }
        let (list, x) = (self.list, self.node);
        let meta = list.meta(x);
        self.node = if self.rev {
            meta.back
        } else {
            list.link(x, 0).next
        };
        self.left -= 1;
        Some((meta.member.as_bytes(), list.score(x)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

// ----------------------------------------------------------- the value

/// A sorted set: packed pairs or a skiplist (see the module docs).
#[derive(Clone, Debug)]
pub enum ZSet {
    Pack(Pack),
    /// Boxed so that a packed set's header stays small.
    Skip(Box<Skiplist>),
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::Pack(Pack::default())
    }
}

impl PartialEq for ZSet {
    /// Same elements in the same order, whatever the encodings.
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// What `ZSet::insert` (and `ZSetMut::insert`) did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inserted {
    /// A new member.
    Added,
    /// An existing member whose score changed from this one.
    Updated(f64),
    /// An existing member that already had this score.
    Unchanged,
}

/// Elements in ascending or descending order, as (member, score).
pub enum ZIter<'a> {
    Pack(PackElems<'a>),
    /// Descending over a pack: the pair offsets, collected once.
    PackRev(&'a Pack, std::iter::Rev<std::vec::IntoIter<usize>>),
    Skip(SkipIter<'a>),
}

/// Elements of a packed sorted set, ascending.
pub struct PackElems<'a> {
    it: PackIter<'a>,
    left: usize,
}

impl<'a> Iterator for ZIter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match self {
            ZIter::Pack(p) => {
                if p.left == 0 {
                    return None;
                }
                p.left -= 1;
                p.it.next().map(split_elem)
            }
            ZIter::PackRev(pack, offs) => {
                let off = offs.next()?;
                Some(split_elem(pack.entry(off).0))
            }
            ZIter::Skip(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            ZIter::Pack(p) => p.left,
            ZIter::PackRev(_, offs) => offs.len(),
            ZIter::Skip(it) => it.left,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for ZIter<'_> {}

impl ZSet {
    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.len(),
            ZSet::Skip(s) => s.len,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's name for this value.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    /// Accounted bytes (O(n) for a skiplist; changes are accounted as
    /// they are made).
    pub fn size(&self) -> usize {
        match self {
            ZSet::Pack(p) => packed_cost(p.capacity()),
            ZSet::Skip(s) => {
                cost::CONTAINER + s.iter_from(0).map(|(m, _)| elem_cost(m)).sum::<usize>()
            }
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(p) => pack_find(p, member).map(|(_, s)| s),
            ZSet::Skip(s) => s.find(member).map(|x| s.score(x)),
        }
    }

    /// 0-based ascending rank of `member`, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self {
            ZSet::Pack(p) => p
                .iter()
                .map(split_elem)
                .enumerate()
                .find(|(_, (m, _))| *m == member)
                .map(|(r, (_, s))| (r, s)),
            ZSet::Skip(s) => {
                let score = s.score(s.find(member)?);
                Some((s.rank_of(score, member), score))
            }
        }
    }

    /// The ascending ranks `start..end` of the elements inside `range`
    /// (empty when none are). O(log n) for a skiplist.
    pub fn rank_range(&self, range: &Range<'_>) -> (usize, usize) {
        let start = self.count_while(|s, m| range.below_min(s, m));
        let end = self.count_while(|s, m| range.below_min(s, m) || range.within_max(s, m));
        (start, end.max(start))
    }

    /// Number of leading elements for which `pred` holds; `pred` must
    /// hold on a prefix of the order. It is given the score and a way to
    /// the member: a skiplist's walk reads members only on demand.
    fn count_while<'s>(&'s self, pred: impl Fn(f64, &dyn Fn() -> &'s [u8]) -> bool) -> usize {
        match self {
            ZSet::Pack(_) => self.iter().take_while(|&(m, s)| pred(s, &|| m)).count(),
            ZSet::Skip(s) => s.count_while(pred),
        }
    }

    /// Elements in ascending order.
    pub fn iter(&self) -> ZIter<'_> {
        self.iter_from(0)
    }

    /// Elements in ascending order from rank `rank` on (O(log n) to start
    /// on a skiplist).
    pub fn iter_from(&self, rank: usize) -> ZIter<'_> {
        match self {
            ZSet::Pack(p) => {
                let mut it = p.iter();
                if rank > 0 {
                    it.nth(rank - 1);
                }
                ZIter::Pack(PackElems {
                    it,
                    left: self.len().saturating_sub(rank),
                })
            }
            ZSet::Skip(s) => ZIter::Skip(s.iter_from(rank)),
        }
    }

    /// Elements in descending order from ascending rank `rank` down to
    /// rank 0 (nothing when `rank >= len`).
    pub fn iter_rev_from(&self, rank: usize) -> ZIter<'_> {
        match self {
            ZSet::Pack(p) => {
                let n = if rank < self.len() { rank + 1 } else { 0 };
                let mut offs = Vec::with_capacity(n);
                let mut off = 0;
                for _ in 0..n {
                    offs.push(off);
                    off = p.next(off);
                }
                ZIter::PackRev(p, offs.into_iter().rev())
            }
            ZSet::Skip(s) => ZIter::Skip(s.iter_rev_from(rank)),
        }
    }

    /// ZSCAN over a skiplist: the elements of node ids `cursor..` (id
    /// order, which moves no element while it stays in the set, so an
    /// element present for a whole scan is returned), up to `count` ids;
    /// returns the next cursor (0 when done). A pack answers every
    /// element at once with cursor 0, as Redis does for a listpack.
    pub fn scan<'a>(
        &'a self,
        cursor: usize,
        count: usize,
        mut f: impl FnMut(&'a [u8], f64),
    ) -> usize {
        match self {
            ZSet::Pack(_) => {
                for (m, s) in self.iter() {
                    f(m, s);
                }
                0
            }
            ZSet::Skip(sk) => sk.scan(cursor, count, &mut f),
        }
    }

    /// The element at ascending rank `rank`.
    pub fn get_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.iter_from(rank).next()
    }

    /// Turns a pack into a skiplist (O(n), once).
    fn convert(&mut self, delta: &mut isize) {
        let ZSet::Pack(p) = self else { return };
        let before = packed_cost(p.capacity());
        let mut s = Skiplist::new();
        s.meta.reserve(p.len());
        // Levels average 4/3 links per node.
        s.words.reserve(p.len() * (BLOCK_HEADER + 2));
        for (m, sc) in p.iter().map(split_elem) {
            s.insert_new(sc, m);
        }
        *self = ZSet::Skip(Box::new(s));
        settle(delta, before, self.size());
    }

    /// Sets `member`'s score (adding it when new), converting the
    /// encoding when the set outgrows `lim`.
    pub(crate) fn insert(
        &mut self,
        member: &[u8],
        score: f64,
        lim: &Limits,
        delta: &mut isize,
    ) -> Inserted {
        if let ZSet::Pack(p) = self {
            let (found, at) = pack_locate(p, member, score);
            let before = p.capacity();
            match found {
                Some((_, old)) if old == score => return Inserted::Unchanged,
                Some((off, old)) => {
                    let old_len = p.next(off) - off;
                    p.remove_at(off);
                    let at = if at > off { at - old_len } else { at };
                    pack_insert_at(p, at, score, member);
                    settle(delta, packed_cost(before), packed_cost(p.capacity()));
                    return Inserted::Updated(old);
                }
                None if p.len() < lim.zset_max_entries && member.len() <= lim.zset_max_value => {
                    pack_insert_at(p, at, score, member);
                    settle(delta, packed_cost(before), packed_cost(p.capacity()));
                    return Inserted::Added;
                }
                None => self.convert(delta),
            }
        }
        let ZSet::Skip(s) = self else {
            unreachable!("converted above")
        };
        match s.find(member) {
            Some(i) => {
                let old = s.score(i);
                if old == score {
                    return Inserted::Unchanged;
                }
                // The element's cost is unchanged.
                s.update_score(i, score);
                Inserted::Updated(old)
            }
            None => {
                s.insert_new(score, member);
                *delta += elem_cost(member) as isize;
                Inserted::Added
            }
        }
    }

    /// Removes `member`; returns its score if it was there.
    pub(crate) fn remove(&mut self, member: &[u8], delta: &mut isize) -> Option<f64> {
        match self {
            ZSet::Pack(p) => {
                let (off, score) = pack_find(p, member)?;
                let before = p.capacity();
                p.remove_at(off);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
                Some(score)
            }
            ZSet::Skip(s) => {
                let score = s.remove(member)?;
                *delta -= elem_cost(member) as isize;
                Some(score)
            }
        }
    }

    /// Removes the elements of ascending ranks `start..end` (clamped to the
    /// length), handing each to `f` in ascending order; returns how many.
    pub(crate) fn remove_ranks(
        &mut self,
        start: usize,
        end: usize,
        delta: &mut isize,
        mut f: impl FnMut(&[u8], f64),
    ) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self {
            ZSet::Pack(p) => {
                let before = p.capacity();
                let off = p.offset_of(start);
                let mut o = off;
                for _ in start..end {
                    let (e, next) = p.entry(o);
                    let (m, s) = split_elem(e);
                    f(m, s);
                    o = next;
                }
                p.remove_run(off, end - start);
                settle(delta, packed_cost(before), packed_cost(p.capacity()));
            }
            ZSet::Skip(s) => {
                let mut freed = 0usize;
                s.remove_ranks(start, end, &mut |m: &[u8], sc| {
                    freed += elem_cost(m);
                    f(m, sc)
                });
                *delta -= freed as isize;
            }
        }
        end - start
    }

    /// A sorted set of `pairs` (member, score; a later duplicate member
    /// wins), encoded as the thresholds say: ZUNIONSTORE and friends,
    /// RESTORE.
    pub(crate) fn from_pairs<'m>(
        pairs: impl IntoIterator<Item = (&'m [u8], f64)>,
        lim: &Limits,
    ) -> ZSet {
        let mut z = ZSet::default();
        let mut delta = 0;
        for (m, s) in pairs {
            z.insert(m, s, lim, &mut delta);
        }
        if let ZSet::Pack(p) = &mut z {
            p.shrink();
        }
        z
    }

    /// Frees up to `budget` elements from the end (lazy free of a large
    /// skiplist); returns the accounted bytes of the elements freed (the
    /// container's own cost stays until the value is dropped).
    pub(crate) fn free_some(&mut self, budget: usize) -> usize {
        let n = self.len();
        let from = n.saturating_sub(budget.max(1));
        let mut delta = 0isize;
        self.remove_ranks(from, n, &mut delta, |_, _| {});
        delta.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn lim(entries: usize) -> Limits {
        Limits {
            zset_max_entries: entries,
            ..Limits::default()
        }
    }

    #[test]
    fn elements_round_trip_through_the_pack_encoding() {
        let mut buf = Vec::new();
        for v in [
            0.0,
            1.0,
            -1.0,
            63.0,
            64.0,
            -65.0,
            1e15,
            9007199254740991.0,
            9007199254740992.0,
            -9007199254740993.0,
            0.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            for member in [&b""[..], b"m", &[0xff; 20], b"\x80\x81"] {
                let e = encode_elem(member, v, &mut buf).to_vec();
                let (m, back) = split_elem(&e);
                assert_eq!((m, back.to_bits()), (member, v.to_bits()), "{v}");
            }
        }
        assert_eq!(split_elem(encode_elem(b"x", -0.0, &mut buf)).1, 0.0);
        // A 16-byte member and a score below 2^20: 19 bytes plus the
        // entry's length byte.
        assert_eq!(encode_elem(&[b'a'; 16], 999_999.0, &mut buf).len(), 19);
    }

    #[test]
    fn scores_format_as_redis_7_0() {
        let f = |v: f64| {
            let mut b = [0u8; 32];
            String::from_utf8(format_score(v, &mut b).to_vec()).unwrap()
        };
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(0.1), "0.10000000000000001");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(1e17), "1e+17");
        assert_eq!(f(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(f(1.0e-5), "1.0000000000000001e-05");
        assert_eq!(f(3.0e-3), "0.0030000000000000001");
        assert_eq!(f(2.5e-300), "2.5e-300");
        // The exact integer path covers [1e-16, 1e17) and agrees with the
        // standard library's digits there; outside, the latter answers.
        for v in [0.1, 2e-16, 1.5e-5, 0.3, 2.0f64.sqrt(), 99999999999999984.0] {
            assert_eq!(digits17(v), Some(digits17_fmt(v)), "{v:e}");
        }
        for v in [9.9e-17, 1e17, 2.5e-300, f64::MIN_POSITIVE / 2.0] {
            assert_eq!(digits17(v), None, "{v:e}");
        }
    }

    /// `format_score` against the C library's `%.17g` (what Redis 7.0
    /// replies with) on doubles of every magnitude: random bit patterns,
    /// short decimals, and values next to the powers of ten where the
    /// rounding moves the exponent and with it the choice of form.
    #[test]
    fn formats_scores_as_the_c_library_does() {
        use crate::protocol::float::c_texts::{g17, xorshift};
        let c_g17 = |v: f64| g17(v).into_bytes();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut values = Vec::new();
        for _ in 0..100_000 {
            values.push(f64::from_bits(next()));
            let digits = (next() % 1_000_000) as f64;
            values.push(digits / 10f64.powi((next() % 30) as i32 - 10));
        }
        // Doubles with a fraction of a few bits, 17-20 significant digits:
        // those of 18 that end in 5 are ties for the 17th (to even).
        for j in 1..=12 {
            for _ in 0..2_000 {
                let m = (1u64 << 52) | (next() >> 12);
                values.push(m as f64 / f64::from(1u32 << j));
            }
        }
        // Ties for the 17th digit: 1234567890123456.25 and .75.
        values.extend([4_938_271_560_493_825.0 / 4.0, 4_938_271_560_493_827.0 / 4.0]);
        values.extend([0.5, 1.0 / 3.0]);
        for e in -30..30 {
            let p = 10f64.powi(e);
            for v in [
                p,
                p * (1.0 - f64::EPSILON),
                p * (1.0 + f64::EPSILON),
                9.5 * p,
                0.99999999999999999 * p,
            ] {
                values.extend([v, -v]);
            }
        }
        let mut wrong = Vec::new();
        let mut checked = 0;
        for v in values {
            // Integral values and infinities take their own paths (and
            // Redis prints "inf" where C prints "inf" too); -0 is "0".
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            let mut b = [0u8; 32];
            let ours = format_score(v, &mut b).to_vec();
            checked += 1;
            if ours != c_g17(v) {
                wrong.push(format!(
                    "{v:e}: {} vs C {}",
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&c_g17(v))
                ));
            }
        }
        assert!(checked > 170_000, "{checked}");
        assert!(
            wrong.is_empty(),
            "{} differ, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }

    #[test]
    fn score_bounds_parse_as_zslparserange() {
        assert_eq!(ScoreBound::parse(b"(").map(|b| b.value), Some(0.0));
        assert_eq!(ScoreBound::parse(b" 2").map(|b| b.value), Some(2.0));
        assert_eq!(ScoreBound::parse(b"((2"), None);
        assert_eq!(
            ScoreBound::parse(b"1e400").map(|b| b.value),
            Some(f64::INFINITY)
        );
    }

    fn check(z: &ZSet, model: &BTreeMap<(u64, Vec<u8>), ()>, rng: &mut u64) {
        let want: Vec<(Vec<u8>, f64)> = model
            .keys()
            .map(|(s, m)| (m.clone(), f64::from_bits(*s) - 1e6))
            .collect();
        assert_eq!(z.len(), want.len());
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, want);
        // A whole ZSCAN returns every element once (free nodes skipped).
        let mut scanned = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = z.scan(cursor, 7, |m, s| scanned.push((m.to_vec(), s)));
            if cursor == 0 {
                break;
            }
        }
        scanned.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(scanned, want);
        if want.is_empty() {
            return;
        }
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        for _ in 0..5 {
            let r = next() as usize % want.len();
            assert_eq!(
                z.get_rank(r).map(|(m, s)| (m.to_vec(), s)),
                Some(want[r].clone())
            );
            assert_eq!(z.rank(&want[r].0), Some((r, want[r].1)));
            assert_eq!(z.score(&want[r].0), Some(want[r].1));
            let rev: Vec<_> = z.iter_rev_from(r).map(|(m, s)| (m.to_vec(), s)).collect();
            let mut exp: Vec<_> = want[..=r].to_vec();
            exp.reverse();
            assert_eq!(rev, exp);
            let lo = (next() % 40) as f64;
            let hi = lo + (next() % 20) as f64;
            let (ex_lo, ex_hi) = (next() % 2 == 0, next() % 2 == 0);
            let range = Range::Score(
                ScoreBound {
                    value: lo,
                    exclusive: ex_lo,
                },
                ScoreBound {
                    value: hi,
                    exclusive: ex_hi,
                },
            );
            let (a, b) = z.rank_range(&range);
            let exp: Vec<usize> = (0..want.len())
                .filter(|&i| {
                    let s = want[i].1;
                    (if ex_lo { s > lo } else { s >= lo }) && (if ex_hi { s < hi } else { s <= hi })
                })
                .collect();
            assert_eq!((a..b).collect::<Vec<_>>(), exp, "{range:?}");
        }
    }

    /// A skiplist score update in place (between its neighbours) and by
    /// moving the node, including onto a neighbour's score, where the
    /// member decides the order: iteration, ranks, scores and the reverse
    /// walk agree with a sorted model after each.
    #[test]
    fn score_updates_in_place_and_by_moving_keep_the_order() {
        let lim = lim(1);
        let mut z = ZSet::default();
        let mut d = 0isize;
        let mut model: Vec<(Vec<u8>, f64)> = Vec::new();
        for (i, m) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            z.insert(m.as_bytes(), i as f64 * 10.0, &lim, &mut d);
            model.push((m.as_bytes().to_vec(), i as f64 * 10.0));
        }
        assert!(matches!(z, ZSet::Skip(_)));
        // In place; onto the next one's score (b < c: stays before it);
        // onto the previous one's (c > b: after it); past both ends; back.
        for (m, score) in [
            ("c", 25.0),
            ("c", 30.0),
            ("b", 30.0),
            ("c", 10.0),
            ("a", 99.0),
            ("e", -1.0),
            ("d", 10.0),
            ("a", 30.0),
            ("e", 40.0),
        ] {
            let old = z.score(m.as_bytes()).unwrap();
            assert_eq!(
                z.insert(m.as_bytes(), score, &lim, &mut d),
                Inserted::Updated(old)
            );
            model.retain(|(n, _)| n != m.as_bytes());
            model.push((m.as_bytes().to_vec(), score));
            model.sort_by(|x, y| x.1.total_cmp(&y.1).then_with(|| x.0.cmp(&y.0)));
            let got: Vec<_> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            assert_eq!(got, model, "after {m} -> {score}");
            for (r, (m, s)) in model.iter().enumerate() {
                assert_eq!(z.rank(m), Some((r, *s)));
                assert_eq!(
                    z.get_rank(r).map(|(m, s)| (m.to_vec(), s)),
                    Some((m.clone(), *s))
                );
            }
            let rev: Vec<_> = z
                .iter_rev_from(model.len() - 1)
                .map(|(m, s)| (m.to_vec(), s))
                .collect();
            assert_eq!(rev, model.iter().rev().cloned().collect::<Vec<_>>());
        }
        assert_eq!(z.size() as isize, ZSet::default().size() as isize + d);
    }

    /// Seeded random inserts, updates, removals and range removals against
    /// a BTreeMap model, through both encodings and the conversion.
    #[test]
    fn random_operations_match_an_ordered_model() {
        for (seed, entries) in [(1u64, 8usize), (2, 128), (3, 1), (4, 1000)] {
            let lim = lim(entries);
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut z = ZSet::default();
            let mut delta = 0isize;
            let mut model: BTreeMap<(u64, Vec<u8>), ()> = BTreeMap::new();
            let mut scores: std::collections::HashMap<Vec<u8>, f64> = Default::default();
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let key = |s: f64| (s + 1e6).to_bits();
            let mut crng = seed;
            for step in 0..3000 {
                // Short members live in the node's `Meta`, longer ones
                // in blocks of their own.
                let n = next() % 300;
                let m = if n % 3 == 0 {
                    format!("a-member-longer-than-fifteen-bytes-{n}").into_bytes()
                } else {
                    format!("m{n}").into_bytes()
                };
                let score = (next() % 50) as f64;
                match next() % 10 {
                    0..=5 => {
                        let got = z.insert(&m, score, &lim, &mut delta);
                        let exp = match scores.insert(m.clone(), score) {
                            None => Inserted::Added,
                            Some(old) if old == score => Inserted::Unchanged,
                            Some(old) => {
                                model.remove(&(key(old), m.clone()));
                                Inserted::Updated(old)
                            }
                        };
                        model.insert((key(score), m), ());
                        assert_eq!(got, exp);
                    }
                    6..=7 => {
                        let got = z.remove(&m, &mut delta);
                        let exp = scores.remove(&m);
                        if let Some(old) = exp {
                            model.remove(&(key(old), m));
                        }
                        assert_eq!(got, exp);
                    }
                    _ => {
                        let n = z.len();
                        let a = if n == 0 { 0 } else { next() as usize % n };
                        let b = a + (next() % 4) as usize;
                        let mut seen = Vec::new();
                        let k = z.remove_ranks(a, b, &mut delta, |m, s| seen.push((m.to_vec(), s)));
                        let exp: Vec<_> = model.keys().skip(a).take(b - a).cloned().collect();
                        assert_eq!(k, exp.len());
                        for (s, m) in exp {
                            model.remove(&(s, m.clone()));
                            scores.remove(&m);
                        }
                        assert_eq!(seen.len(), k);
                    }
                }
                if step % 50 == 0 {
                    check(&z, &model, &mut crng);
                }
                if step % 500 == 250 {
                    // A copy (COPY's, RESTORE's) owns its members: the
                    // original dropped, the copy goes on alone, and a
                    // copy of it is dropped while it goes on. (A pack's
                    // copy has no spare capacity.)
                    let copy = z.clone();
                    delta += copy.size() as isize - z.size() as isize;
                    drop(std::mem::replace(&mut z, copy));
                    check(&z, &model, &mut crng);
                    drop(z.clone());
                }
                assert_eq!(
                    z.size() as isize,
                    ZSet::default().size() as isize + delta,
                    "accounting at step {step}"
                );
            }
            check(&z, &model, &mut crng);
            if entries < 300 {
                assert_eq!(z.encoding(), "skiplist");
            }
        }
    }

    /// A removed node's block is taken by the next node of its level:
    /// replacing every element again and again leaves the arena about as
    /// large as one generation of elements needs.
    #[test]
    fn removed_nodes_blocks_are_reused() {
        let lim = lim(1);
        let mut z = ZSet::default();
        let mut d = 0isize;
        let words = |z: &ZSet| match z {
            ZSet::Skip(s) => (s.words.len(), s.meta.len()),
            ZSet::Pack(_) => unreachable!(),
        };
        for i in 0..1000 {
            z.insert(format!("g0-{i}").as_bytes(), i as f64, &lim, &mut d);
        }
        let first = words(&z);
        for g in 1..20 {
            if g % 2 == 0 {
                for i in 0..1000 {
                    z.remove(format!("g{}-{i}", g - 1).as_bytes(), &mut d);
                }
            } else {
                z.remove_ranks(0, 1000, &mut d, |_, _| {});
            }
            for i in 0..1000 {
                z.insert(
                    format!("g{g}-{i}").as_bytes(),
                    (i * 7 % 1000) as f64,
                    &lim,
                    &mut d,
                );
            }
            assert_eq!(z.len(), 1000);
        }
        let last = words(&z);
        // Levels are drawn anew, so a generation may need a few more
        // blocks of one level than the free ones; never a generation's.
        assert!(last.0 < first.0 * 5 / 4, "{first:?} -> {last:?}");
        assert!(last.1 < first.1 * 5 / 4, "{first:?} -> {last:?}");
        assert_eq!(z.size() as isize, ZSet::default().size() as isize + d);
    }

    #[test]
    fn converts_past_the_thresholds_and_never_back() {
        let lim = lim(3);
        let mut z = ZSet::default();
        let mut d = 0;
        for (i, m) in [b"a", b"b", b"c"].iter().enumerate() {
            z.insert(*m, i as f64, &lim, &mut d);
        }
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"d", 0.0, &lim, &mut d);
        assert_eq!(z.encoding(), "skiplist");
        z.remove(b"d", &mut d);
        z.remove(b"c", &mut d);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::default();
        z.insert(&[b'x'; 65], 1.0, &Limits::default(), &mut d);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::default();
        z.insert(&[b'x'; 64], 1.0, &Limits::default(), &mut d);
        assert_eq!(z.encoding(), "listpack");
    }

    #[test]
    fn lex_ranges() {
        let mut z = ZSet::default();
        let mut d = 0;
        for m in [&b"a"[..], b"b", b"c", b"d"] {
            z.insert(m, 0.0, &Limits::default(), &mut d);
        }
        let r = Range::Lex(LexBound::Excl(b"a"), LexBound::Incl(b"c"));
        assert_eq!(z.rank_range(&r), (1, 3));
        let r = Range::Lex(LexBound::NegInf, LexBound::PosInf);
        assert_eq!(z.rank_range(&r), (0, 4));
        let r = Range::Lex(LexBound::PosInf, LexBound::NegInf);
        let (a, b) = z.rank_range(&r);
        assert_eq!(a, b);
    }

    /// UNLINK of a large skiplist queues it and frees it in slices, the
    /// accounting matching a full recount after each; a small one goes at
    /// once. MEMORY USAGE's sampled estimate stays near the real figure.
    #[test]
    fn lazy_free_and_usage_of_a_large_sorted_set() {
        use std::rc::Rc;

        use crate::metrics::{HotKeys, ShardStats};
        use crate::store::{Db, Ttl, Value, entry_usage};

        let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(8, true), 7);
        let members: Vec<Vec<u8>> = (0..5000)
            .map(|i| format!("member:{i:08}").into_bytes())
            .collect();
        let z = ZSet::from_pairs(
            members.iter().enumerate().map(|(i, m)| (&m[..], i as f64)),
            &Limits::default(),
        );
        assert_eq!(z.encoding(), "skiplist");
        db.set(b"big", Value::ZSet(Box::new(z)), Ttl::Clear);
        let small = ZSet::from_pairs([(&b"a"[..], 1.0)], &Limits::default());
        db.set(b"small", Value::ZSet(Box::new(small)), Ttl::Clear);
        assert_eq!(db.mem_used(), db.mem_recomputed());
        let (k, v) = db.peek_key(b"big").unwrap();
        let (exact, sampled) = (entry_usage(k, v, 0), entry_usage(k, v, 5));
        assert!(sampled.abs_diff(exact) * 20 < exact, "{sampled} vs {exact}");
        assert!(db.unlink(b"big"));
        assert!(db.unlink(b"small"));
        assert_eq!(db.lazyfree_pending_objects(), 1);
        let mut slices = 0;
        while db.lazyfree_slice(700, std::time::Duration::MAX) {
            assert_eq!(db.mem_used(), db.mem_recomputed());
            slices += 1;
            assert!(slices < 100);
        }
        assert!(slices >= 5, "{slices}");
        assert_eq!(db.mem_used(), 0);
    }
}
