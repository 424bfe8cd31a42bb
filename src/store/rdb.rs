//! DUMP/RESTORE payloads in Redis 7.0's serialization format.
//!
//! A payload is one RDB object (its type byte, then the value in RDB
//! encoding), a 2-byte little-endian RDB version (Redis 7.0 writes 10)
//! and the CRC64 (Jones polynomial, Redis' `crc64.c`) of everything
//! before it, little-endian. [`dump`] writes what Redis 7.0 writes for the
//! same data: a string int-encoded when it is a small canonical integer
//! and raw otherwise (never LZF-compressed: Redis reads both), a list as
//! a QUICKLIST_2 of listpacks, a set as an intset or a plain set (7.0 has
//! no listpack sets), a hash as a listpack or a plain hash, a sorted set
//! as a listpack or a skiplist (ZSET_2). `restore`
//! reads every encoding Redis 7.0 writes plus the older ziplist-based
//! ones 7.0 still loads (ziplist lists, quicklists of ziplists, ziplist
//! hashes, linked lists), LZF-compressed strings included, and builds the
//! value in Kora's own encodings by the shard's thresholds
//! (`Limits`).
//!
//! A payload is untrusted input: every length is checked against the
//! bytes that remain before anything is allocated for it, a declared
//! element count never sizes an allocation, decompression grows only with
//! what it really produces, and anything malformed (bad lengths, a
//! listpack whose header or back-lengths disagree, duplicate set members
//! or hash fields, an empty aggregate) is [`RestoreError::Format`], never
//! a panic.
//!
//! Layer: `store` (pure data code: no coordination, no commands).
//! Sorted sets (`store::zset`) are written as Redis 7.0 writes them: a
//! listpack of member/score pairs while small, else ZSET_2 (binary
//! scores, from the highest); ZSET, ZSET_ZIPLIST are read too.

use std::borrow::Cow;

use super::Value;
use super::agg::{Hash, Limits, List, Set};
use super::packed::as_int;
use super::zset::{ZSet, format_score};
use crate::protocol::float::parse_f64;
use crate::protocol::reply::IntText;

/// The RDB version Redis 7.0 writes and the newest it accepts.
pub(crate) const RDB_VERSION: u16 = 10;

// RDB object types (rdb.h).
const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_QUICKLIST: u8 = 14;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;

/// Quicklist node containers (QUICKLIST_2).
const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;

/// What Redis' quicklist holds per listpack node at the default
/// `list-max-listpack-size` (-2): 8 KB.
const LIST_NODE_BYTES: usize = 8 * 1024;

/// Why a payload was refused: RESTORE's two error replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// "ERR DUMP payload version or checksum are wrong"
    Checksum,
    /// "ERR Bad data format"
    Format,
}

type Result<T> = std::result::Result<T, RestoreError>;
use RestoreError::Format;

// ------------------------------------------------------------------ crc64

/// Redis' CRC64: Jones polynomial 0xad93d23594c935a9, reflected, init 0,
/// no final xor (the table is the reflected polynomial's).
const CRC64_TABLE: [u64; 256] = {
    const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// `crc64(crc, data)` as Redis computes it.
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = CRC64_TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

// ---------------------------------------------------------------- writing

/// Appends the DUMP payload of `value` to `out`.
pub fn dump(value: &Value, out: &mut Vec<u8>) {
    let start = out.len();
    match value {
        Value::Str(s) => {
            out.push(T_STRING);
            put_string(out, s.as_bytes());
        }
        Value::List(l) => dump_list(l, out),
        Value::Set(s) => dump_set(s, out),
        Value::Hash(h) => dump_hash(h, out),
        Value::ZSet(z) => dump_zset(z, out),
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// `rdbSaveLen`.
fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(((len >> 8) as u8) | 0x40);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// `rdbSaveRawString` without compression: a canonical integer of at most
/// 11 bytes that fits 32 bits is int-encoded, anything else raw.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = as_int(s)
    {
        if let Ok(v) = i8::try_from(v) {
            out.extend_from_slice(&[0xC0, v as u8]);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xC1);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xC2);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A listpack being built (`lpNew`, `lpAppend`).
struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl LpWriter {
    fn new() -> LpWriter {
        LpWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Appends an entry as `lpAppend` encodes it: as an integer when the
    /// bytes spell one in canonical form.
    fn push(&mut self, e: &[u8]) {
        let start = self.buf.len();
        match as_int(e) {
            Some(v) => lp_encode_int(&mut self.buf, v),
            None => {
                let n = e.len();
                if n < 64 {
                    self.buf.push(0x80 | n as u8);
                } else if n < 4096 {
                    self.buf.push(0xE0 | (n >> 8) as u8);
                    self.buf.push(n as u8);
                } else {
                    self.buf.push(0xF0);
                    self.buf.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(e);
            }
        }
        let entry = self.buf.len() - start;
        lp_put_backlen(&mut self.buf, entry as u64);
        self.count += 1;
    }

    fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

fn lp_encode_int(buf: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        buf.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = if v < 0 { (1 << 13) + v } else { v } as u64;
        buf.push(((u >> 8) as u8) | 0xC0);
        buf.push(u as u8);
    } else if let Ok(v) = i16::try_from(v) {
        buf.push(0xF1);
        buf.extend_from_slice(&v.to_le_bytes());
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        buf.push(0xF2);
        buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if let Ok(v) = i32::try_from(v) {
        buf.push(0xF3);
        buf.extend_from_slice(&v.to_le_bytes());
    } else {
        buf.push(0xF4);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// `lpEncodeBacklen`: the entry's length, readable from its end.
fn lp_put_backlen(buf: &mut Vec<u8>, l: u64) {
    if l <= 127 {
        buf.push(l as u8);
    } else if l < 16383 {
        buf.extend_from_slice(&[(l >> 7) as u8, ((l & 127) | 128) as u8]);
    } else if l < 2097151 {
        buf.extend_from_slice(&[
            (l >> 14) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]);
    } else if l < 268435455 {
        buf.extend_from_slice(&[
            (l >> 21) as u8,
            (((l >> 14) & 127) | 128) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]);
    } else {
        buf.extend_from_slice(&[
            (l >> 28) as u8,
            (((l >> 21) & 127) | 128) as u8,
            (((l >> 14) & 127) | 128) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]);
    }
}

fn lp_backlen_size(l: u64) -> usize {
    match l {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    }
}

/// A list as Redis 7.0 saves a quicklist: one listpack node per 8 KB.
fn dump_list(l: &List, out: &mut Vec<u8>) {
    out.push(T_LIST_QUICKLIST_2);
    let mut nodes: Vec<Vec<u8>> = Vec::new();
    let mut lp = LpWriter::new();
    for e in l.iter() {
        if lp.count > 0 && lp.bytes() + e.len() + 11 > LIST_NODE_BYTES {
            nodes.push(std::mem::replace(&mut lp, LpWriter::new()).finish());
        }
        lp.push(e);
    }
    if lp.count > 0 {
        nodes.push(lp.finish());
    }
    put_len(out, nodes.len() as u64);
    for node in nodes {
        put_len(out, NODE_PACKED);
        put_string(out, &node);
    }
}

fn dump_set(s: &Set, out: &mut Vec<u8>) {
    match s {
        Set::Ints(ints) => {
            out.push(T_SET_INTSET);
            let (min, max) = (0..ints.len())
                .map(|i| ints.get(i))
                .fold((0i64, 0i64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let width: usize = if i16::try_from(min).is_ok() && i16::try_from(max).is_ok() {
                2
            } else if i32::try_from(min).is_ok() && i32::try_from(max).is_ok() {
                4
            } else {
                8
            };
            let mut blob = Vec::with_capacity(8 + width * ints.len());
            blob.extend_from_slice(&(width as u32).to_le_bytes());
            blob.extend_from_slice(&(ints.len() as u32).to_le_bytes());
            for v in (0..ints.len()).map(|i| ints.get(i)) {
                blob.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            put_string(out, &blob);
        }
        other => {
            out.push(T_SET);
            put_len(out, other.len() as u64);
            for m in other.iter() {
                put_string(out, &m);
            }
        }
    }
}

fn dump_hash(h: &Hash, out: &mut Vec<u8>) {
    match h {
        Hash::Pack(_) => {
            out.push(T_HASH_LISTPACK);
            let mut lp = LpWriter::new();
            for (f, v) in h.iter() {
                lp.push(f);
                lp.push(v);
            }
            put_string(out, &lp.finish());
        }
        Hash::Table(_) => {
            out.push(T_HASH);
            put_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                put_string(out, f);
                put_string(out, v);
            }
        }
    }
}

fn dump_zset(z: &ZSet, out: &mut Vec<u8>) {
    let mut text = [0u8; 32];
    match z {
        ZSet::Pack(_) => {
            out.push(T_ZSET_LISTPACK);
            let mut lp = LpWriter::new();
            for (m, score) in z.iter() {
                lp.push(m);
                lp.push(format_score(score, &mut text));
            }
            put_string(out, &lp.finish());
        }
        ZSet::Skip(_) => {
            // As Redis 7.0 saves a skiplist: from the tail, so that
            // loading inserts at the head.
            out.push(T_ZSET_2);
            put_len(out, z.len() as u64);
            if !z.is_empty() {
                for (m, score) in z.iter_rev_from(z.len() - 1) {
                    put_string(out, m);
                    out.extend_from_slice(&score.to_le_bytes());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- reading

/// Checks the footer of `payload` as Redis' `verifyDumpPayload` does: at
/// least 10 bytes, an RDB version Redis 7.0 reads, a matching CRC64.
pub fn verify(payload: &[u8]) -> Result<()> {
    let n = payload.len();
    if n < 10 {
        return Err(RestoreError::Checksum);
    }
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    if version > RDB_VERSION {
        return Err(RestoreError::Checksum);
    }
    let crc = u64::from_le_bytes(payload[n - 8..].try_into().expect("8 bytes"));
    if crc64(0, &payload[..n - 8]) != crc {
        return Err(RestoreError::Checksum);
    }
    Ok(())
}

/// Decodes a DUMP payload (footer checked first) into a value in Kora's
/// encodings by `lim`.
pub(crate) fn restore(payload: &[u8], lim: &Limits) -> Result<Value> {
    verify(payload)?;
    decode(&payload[..payload.len() - 10], lim)
}

/// `restore` with the default encoding thresholds (the fuzz target's
/// entry point).
pub fn restore_default(payload: &[u8]) -> Result<Value> {
    restore(payload, &Limits::default())
}

/// Decodes the object part of a payload (type byte and value), without
/// the footer. Trailing bytes are ignored, as Redis ignores them.
pub(crate) fn decode(body: &[u8], lim: &Limits) -> Result<Value> {
    let mut r = Reader { buf: body, pos: 0 };
    let ty = r.byte()?;
    match ty {
        T_STRING => Ok(Value::Str(super::StrValue::new(&r.string()?))),
        T_LIST => {
            let n = r.count(1)?;
            let mut list = List::default();
            for _ in 0..n {
                list.push_back(&r.string()?, lim);
            }
            nonempty_list(list)
        }
        T_LIST_ZIPLIST => {
            let blob = r.string()?;
            let mut list = List::default();
            ziplist_each(&blob, |e| {
                list.push_back(&e, lim);
                Ok(())
            })?;
            nonempty_list(list)
        }
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let nodes = r.count(1)?;
            let mut list = List::default();
            for _ in 0..nodes {
                let container = if ty == T_LIST_QUICKLIST_2 {
                    r.len()?
                } else {
                    NODE_PACKED
                };
                let blob = r.string()?;
                match container {
                    NODE_PLAIN => list.push_back(&blob, lim),
                    NODE_PACKED if ty == T_LIST_QUICKLIST_2 => listpack_each(&blob, |e| {
                        list.push_back(&e, lim);
                        Ok(())
                    })?,
                    NODE_PACKED => ziplist_each(&blob, |e| {
                        list.push_back(&e, lim);
                        Ok(())
                    })?,
                    _ => return Err(Format),
                }
            }
            nonempty_list(list)
        }
        T_SET => {
            let n = r.count(1)?;
            let mut set = Set::default();
            let mut delta = 0;
            for _ in 0..n {
                if !set.insert(&r.string()?, lim, &mut delta) {
                    return Err(Format);
                }
            }
            nonempty_set(set)
        }
        T_SET_INTSET => {
            let blob = r.string()?;
            let mut set = Set::default();
            let mut delta = 0;
            intset_each(&blob, |v| {
                set.insert(&IntText::new(v), lim, &mut delta);
            })?;
            nonempty_set(set)
        }
        T_HASH => {
            let n = r.count(2)?;
            let mut hash = Hash::default();
            let mut delta = 0;
            for _ in 0..n {
                let field = r.string()?;
                let value = r.string()?;
                if !hash.insert(&field, &value, true, lim, &mut delta) {
                    return Err(Format);
                }
            }
            nonempty_hash(hash)
        }
        T_HASH_LISTPACK | T_HASH_ZIPLIST => {
            let blob = r.string()?;
            let mut hash = Hash::default();
            let mut delta = 0;
            let mut field: Option<Vec<u8>> = None;
            let mut add = |e: Cow<'_, [u8]>| match field.take() {
                None => {
                    field = Some(e.into_owned());
                    Ok(())
                }
                Some(f) if hash.insert(&f, &e, true, lim, &mut delta) => Ok(()),
                Some(_) => Err(Format),
            };
            if ty == T_HASH_LISTPACK {
                listpack_each(&blob, &mut add)?;
            } else {
                ziplist_each(&blob, &mut add)?;
            }
            if field.is_some() {
                return Err(Format);
            }
            nonempty_hash(hash)
        }
        T_ZSET | T_ZSET_2 | T_ZSET_ZIPLIST | T_ZSET_LISTPACK => restore_zset(ty, &mut r, lim),
        _ => Err(Format),
    }
}

/// Sorted sets: ZSET_2 (binary scores), ZSET (text scores), and
/// member/score pairs in a listpack or ziplist. A NaN or unreadable score,
/// a duplicate member or an empty set is malformed (Redis refuses the
/// first two as corrupt, the last as an empty key).
fn restore_zset(ty: u8, r: &mut Reader<'_>, lim: &Limits) -> Result<Value> {
    let mut pairs: Vec<(Cow<'_, [u8]>, f64)> = Vec::new();
    match ty {
        T_ZSET_2 | T_ZSET => {
            let n = r.count(2)?;
            for _ in 0..n {
                let member = r.string()?;
                let score = if ty == T_ZSET_2 {
                    f64::from_le_bytes(r.take(8)?.try_into().expect("8"))
                } else {
                    match r.byte()? {
                        253 => f64::NAN,
                        254 => f64::INFINITY,
                        255 => f64::NEG_INFINITY,
                        n => parse_f64(r.take(n as u64)?).ok_or(Format)?,
                    }
                };
                pairs.push((member, score));
            }
        }
        _ => {
            let blob = r.string()?;
            let mut member: Option<Vec<u8>> = None;
            let mut add = |e: Cow<'_, [u8]>| match member.take() {
                None => {
                    member = Some(e.into_owned());
                    Ok(())
                }
                Some(m) => {
                    pairs.push((Cow::Owned(m), parse_f64(&e).ok_or(Format)?));
                    Ok(())
                }
            };
            if ty == T_ZSET_LISTPACK {
                listpack_each(&blob, &mut add)?;
            } else {
                ziplist_each(&blob, &mut add)?;
            }
            if member.is_some() {
                return Err(Format);
            }
        }
    }
    if pairs.is_empty() || pairs.iter().any(|(_, s)| s.is_nan()) {
        return Err(Format);
    }
    let z = ZSet::from_pairs(pairs.iter().map(|(m, s)| (&m[..], *s)), lim);
    if z.len() != pairs.len() {
        return Err(Format); // a member twice
    }
    Ok(Value::ZSet(Box::new(z)))
}

fn nonempty_list(list: List) -> Result<Value> {
    if list.is_empty() {
        return Err(Format);
    }
    Ok(Value::List(Box::new(list)))
}

fn nonempty_set(set: Set) -> Result<Value> {
    if set.is_empty() {
        return Err(Format);
    }
    Ok(Value::Set(Box::new(set)))
}

fn nonempty_hash(hash: Hash) -> Result<Value> {
    if hash.is_empty() {
        return Err(Format);
    }
    Ok(Value::Hash(Box::new(hash)))
}

/// A cursor over a payload; every read is checked against what remains.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(Format)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Format)?;
        if n > self.buf.len() - self.pos {
            return Err(Format);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// `rdbLoadLenByRef`: (length or encoding, whether it is an encoding).
    fn len_enc(&mut self) -> Result<(u64, bool)> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3F) as u64, false),
            1 => ((((b & 0x3F) as u64) << 8) | self.byte()? as u64, false),
            3 => ((b & 0x3F) as u64, true),
            _ => match b {
                0x80 => (
                    u32::from_be_bytes(self.take(4)?.try_into().expect("4")) as u64,
                    false,
                ),
                0x81 => (
                    u64::from_be_bytes(self.take(8)?.try_into().expect("8")),
                    false,
                ),
                _ => return Err(Format),
            },
        })
    }

    fn len(&mut self) -> Result<u64> {
        match self.len_enc()? {
            (n, false) => Ok(n),
            _ => Err(Format),
        }
    }

    /// A count of items each taking at least `min_bytes` bytes: more
    /// than the remaining bytes can hold is malformed (so a count never
    /// drives work or memory beyond the payload's size).
    fn count(&mut self, min_bytes: u64) -> Result<u64> {
        let n = self.len()?;
        if n.saturating_mul(min_bytes) > (self.buf.len() - self.pos) as u64 {
            return Err(Format);
        }
        Ok(n)
    }

    /// `rdbGenericLoadStringObject`: raw, int-encoded or LZF.
    fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        let (n, encoded) = self.len_enc()?;
        if !encoded {
            return Ok(Cow::Borrowed(self.take(n)?));
        }
        let v: i64 = match n {
            0 => self.byte()? as i8 as i64,
            1 => i16::from_le_bytes(self.take(2)?.try_into().expect("2")) as i64,
            2 => i32::from_le_bytes(self.take(4)?.try_into().expect("4")) as i64,
            3 => {
                let clen = self.len()?;
                let len = self.len()?;
                let compressed = self.take(clen)?;
                return lzf_decompress(compressed, len).map(Cow::Owned);
            }
            _ => return Err(Format),
        };
        Ok(Cow::Owned(IntText::new(v).to_vec()))
    }
}

/// LZF decompression (liblzf's `lzf_decompress`) to exactly `len` bytes.
/// The output grows with what the input really produces (at most about
/// 88 bytes per input byte), never by the declared length alone.
fn lzf_decompress(input: &[u8], len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| Format)?;
    if len == 0 || len / 100 > input.len() {
        return Err(Format);
    }
    let mut out: Vec<u8> = Vec::with_capacity(len.min(input.len().saturating_mul(4)));
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() || out.len() + run > len {
                return Err(Format);
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut run = ctrl >> 5;
            if run == 7 {
                run += *input.get(ip).ok_or(Format)? as usize;
                ip += 1;
            }
            let back = ((ctrl & 0x1F) << 8) + *input.get(ip).ok_or(Format)? as usize + 1;
            ip += 1;
            run += 2;
            if back > out.len() || out.len() + run > len {
                return Err(Format);
            }
            let from = out.len() - back;
            // Byte by byte: the reference may overlap what it produces.
            for i in 0..run {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err(Format);
    }
    Ok(out)
}

/// Walks a listpack's entries, checking the header's byte count, every
/// entry's back-length, the terminator and the header's entry count.
fn listpack_each<'b>(lp: &'b [u8], mut f: impl FnMut(Cow<'b, [u8]>) -> Result<()>) -> Result<()> {
    if lp.len() < 7 {
        return Err(Format);
    }
    let total = u32::from_le_bytes(lp[..4].try_into().expect("4")) as usize;
    let declared = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    if total != lp.len() || lp[lp.len() - 1] != 0xFF {
        return Err(Format);
    }
    let end = lp.len() - 1;
    let mut p = 6;
    let mut count = 0usize;
    while p < end {
        let b = lp[p];
        let get = |from: usize, n: usize| -> Result<&'b [u8]> {
            if from + n > end {
                return Err(Format);
            }
            Ok(&lp[from..from + n])
        };
        let (item, size): (Cow<'b, [u8]>, usize) = if b & 0x80 == 0 {
            (Cow::Owned(IntText::new((b & 0x7F) as i64).to_vec()), 1)
        } else if b & 0xC0 == 0x80 {
            let n = (b & 0x3F) as usize;
            (Cow::Borrowed(get(p + 1, n)?), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            let lo = get(p + 1, 1)?[0];
            let u = (((b & 0x1F) as i64) << 8) | lo as i64;
            let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
            (Cow::Owned(IntText::new(v).to_vec()), 2)
        } else if b & 0xF0 == 0xE0 {
            let n = (((b & 0x0F) as usize) << 8) | get(p + 1, 1)?[0] as usize;
            (Cow::Borrowed(get(p + 2, n)?), 2 + n)
        } else {
            let v = match b {
                0xF0 => {
                    let n = u32::from_le_bytes(get(p + 1, 4)?.try_into().expect("4")) as usize;
                    let s = get(p + 5, n)?;
                    Some((Cow::Borrowed(s), 5 + n))
                }
                0xF1 => {
                    let v = i16::from_le_bytes(get(p + 1, 2)?.try_into().expect("2"));
                    Some((Cow::Owned(IntText::new(v as i64).to_vec()), 3))
                }
                0xF2 => {
                    let s = get(p + 1, 3)?;
                    let v = (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64;
                    Some((Cow::Owned(IntText::new(v).to_vec()), 4))
                }
                0xF3 => {
                    let v = i32::from_le_bytes(get(p + 1, 4)?.try_into().expect("4"));
                    Some((Cow::Owned(IntText::new(v as i64).to_vec()), 5))
                }
                0xF4 => {
                    let v = i64::from_le_bytes(get(p + 1, 8)?.try_into().expect("8"));
                    Some((Cow::Owned(IntText::new(v).to_vec()), 9))
                }
                _ => None,
            };
            v.ok_or(Format)?
        };
        // The back-length must read back as this entry's size.
        let bl = lp_backlen_size(size as u64);
        let mut expect = Vec::with_capacity(5);
        lp_put_backlen(&mut expect, size as u64);
        if get(p + size, bl)? != expect.as_slice() {
            return Err(Format);
        }
        p += size + bl;
        count += 1;
        f(item)?;
    }
    if p != end || (declared != 65535 && declared != count) {
        return Err(Format);
    }
    Ok(())
}

/// Walks a ziplist's entries (the pre-7.0 encoding), checking its header,
/// every entry's bounds and its previous-length field, and the
/// terminator.
fn ziplist_each<'b>(zl: &'b [u8], mut f: impl FnMut(Cow<'b, [u8]>) -> Result<()>) -> Result<()> {
    if zl.len() < 11 {
        return Err(Format);
    }
    let total = u32::from_le_bytes(zl[..4].try_into().expect("4")) as usize;
    let declared = u16::from_le_bytes([zl[8], zl[9]]) as usize;
    if total != zl.len() || zl[zl.len() - 1] != 0xFF {
        return Err(Format);
    }
    let end = zl.len() - 1;
    let mut p = 10;
    let mut prev = 0usize;
    let mut count = 0usize;
    while p < end {
        let get = |from: usize, n: usize| -> Result<&'b [u8]> {
            if from + n > end {
                return Err(Format);
            }
            Ok(&zl[from..from + n])
        };
        let start = p;
        let prevlen = match zl[p] {
            0xFE => {
                let v = u32::from_le_bytes(get(p + 1, 4)?.try_into().expect("4")) as usize;
                p += 5;
                v
            }
            0xFF => return Err(Format),
            b => {
                p += 1;
                b as usize
            }
        };
        if prevlen != prev {
            return Err(Format);
        }
        let b = *get(p, 1)?.first().expect("1");
        let (item, size): (Cow<'b, [u8]>, usize) = match b >> 6 {
            0 => {
                let n = (b & 0x3F) as usize;
                (Cow::Borrowed(get(p + 1, n)?), 1 + n)
            }
            1 => {
                let n = (((b & 0x3F) as usize) << 8) | get(p + 1, 1)?[0] as usize;
                (Cow::Borrowed(get(p + 2, n)?), 2 + n)
            }
            2 => {
                if b != 0x80 {
                    return Err(Format);
                }
                let n = u32::from_be_bytes(get(p + 1, 4)?.try_into().expect("4")) as usize;
                (Cow::Borrowed(get(p + 5, n)?), 5 + n)
            }
            _ => {
                let (v, n): (i64, usize) = match b {
                    0xC0 => (
                        i16::from_le_bytes(get(p + 1, 2)?.try_into().expect("2")) as i64,
                        2,
                    ),
                    0xD0 => (
                        i32::from_le_bytes(get(p + 1, 4)?.try_into().expect("4")) as i64,
                        4,
                    ),
                    0xE0 => (i64::from_le_bytes(get(p + 1, 8)?.try_into().expect("8")), 8),
                    0xF0 => {
                        let s = get(p + 1, 3)?;
                        ((i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as i64, 3)
                    }
                    0xFE => (get(p + 1, 1)?[0] as i8 as i64, 1),
                    0xF1..=0xFD => ((b & 0x0F) as i64 - 1, 0),
                    _ => return Err(Format),
                };
                (Cow::Owned(IntText::new(v).to_vec()), 1 + n)
            }
        };
        p += size;
        prev = p - start;
        count += 1;
        f(item)?;
    }
    if p != end || (declared != 65535 && declared != count) {
        return Err(Format);
    }
    Ok(())
}

/// Walks an intset blob (`intsetValidateIntegrity`, deep): a valid width,
/// a length matching the bytes, members strictly ascending.
fn intset_each(blob: &[u8], mut f: impl FnMut(i64)) -> Result<()> {
    if blob.len() < 8 {
        return Err(Format);
    }
    let width = u32::from_le_bytes(blob[..4].try_into().expect("4")) as usize;
    let n = u32::from_le_bytes(blob[4..8].try_into().expect("4")) as usize;
    if !matches!(width, 2 | 4 | 8) || (n as u64) * width as u64 != (blob.len() - 8) as u64 {
        return Err(Format);
    }
    let mut last: Option<i64> = None;
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes(chunk.try_into().expect("2")) as i64,
            4 => i32::from_le_bytes(chunk.try_into().expect("4")) as i64,
            _ => i64::from_le_bytes(chunk.try_into().expect("8")),
        };
        if last.is_some_and(|l| l >= v) {
            return Err(Format);
        }
        last = Some(v);
        f(v);
    }
    Ok(())
}

// ------------------------------------------------------ restored access

impl super::Db {
    /// RESTORE's IDLETIME / FREQ (Redis' `objectSetLRUOrLFU`): under an
    /// LFU policy a given `freq` becomes the key's counter; under any other
    /// a given `idle` (seconds) backdates its last access. The other one
    /// is ignored, as in Redis.
    pub(crate) fn set_restored_access(&mut self, key: &[u8], idle: Option<u64>, freq: Option<u8>) {
        let Some(idx) = self.map.get_index_of(key) else {
            return;
        };
        let stamp = match (self.clock.lfu, idle, freq) {
            (Some(_), _, Some(freq)) => (((self.now_secs / 60) & 0xFFFF) << 8) | freq as u32,
            (None, Some(idle), _) => self
                .now_secs
                .saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX)),
            _ => return,
        };
        self.key_mut(idx).accessed = stamp;
    }
}

// ------------------------------------------- function payloads (issue 14)

// FUNCTION DUMP/RESTORE (src/command/functions.rs) write and read the RDB
// strings of a function payload; they are read from the whole payload, as
// Redis' rio buffer reads them (a bad length may run into the footer).

/// `rdbGenericLoadStringObject` at `*pos` (raw, int-encoded or LZF),
/// advancing `*pos`; None when malformed or past the end.
pub(crate) fn read_string_at(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let mut r = Reader { buf, pos: *pos };
    let s = r.string().ok()?.into_owned();
    *pos = r.pos;
    Some(s)
}

/// `rdbLoadLen` at `*pos`, advancing `*pos`.
pub(crate) fn read_len_at(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut r = Reader { buf, pos: *pos };
    let n = r.len().ok()?;
    *pos = r.pos;
    Some(n)
}

/// `rdbSaveRawString` without compression.
pub(crate) fn put_rdb_string(out: &mut Vec<u8>, s: &[u8]) {
    put_string(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis_check_value() {
        // crc64.c's own test vector.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn strings_dump_as_redis_7_0() {
        // Byte for byte what redis-server 7.0.15 answers to DUMP.
        let mut out = Vec::new();
        dump(&Value::Str(super::super::StrValue::new(b"hello")), &mut out);
        assert_eq!(
            out,
            b"\x00\x05hello\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a"
        );
    }

    fn roundtrip(v: &Value) -> Value {
        let mut out = Vec::new();
        dump(v, &mut out);
        restore(&out, &Limits::default()).expect("restores")
    }

    #[test]
    fn every_kind_round_trips() {
        let lim = Limits::default();
        for s in [
            &b""[..],
            b"0",
            b"-1",
            b"300",
            b"-70000",
            b"12345678901",
            b"x",
        ] {
            let v = Value::Str(super::super::StrValue::new(s));
            assert_eq!(roundtrip(&v), v);
        }
        for n in [1usize, 200, 5000] {
            let mut l = List::default();
            for i in 0..n {
                let e = match i % 4 {
                    0 => format!("{}", i as i64 * 7919 - 100_000),
                    1 => "x".repeat(i % 300),
                    2 => format!("{}", (i as i64) << 40),
                    _ => format!("e{i}"),
                };
                l.push_back(e.as_bytes(), &lim);
            }
            let v = Value::List(Box::new(l));
            assert_eq!(roundtrip(&v), v);
            let (mut h, mut s, mut ints) = (Hash::default(), Set::default(), Set::default());
            let mut d = 0;
            for i in 0..n {
                h.insert(
                    format!("f{i}").as_bytes(),
                    &vec![b'v'; i % 100],
                    false,
                    &lim,
                    &mut d,
                );
                s.insert(format!("m{i}").as_bytes(), &lim, &mut d);
                ints.insert(
                    format!("{}", (i as i64 - 100) << (i % 40)).as_bytes(),
                    &lim,
                    &mut d,
                );
            }
            let members: Vec<String> = (0..n).map(|i| format!("z{i}")).collect();
            let z = ZSet::from_pairs(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.as_bytes(), (i as f64 - 50.5) * 3.25)),
                &lim,
            );
            for v in [
                Value::ZSet(Box::new(z)),
                Value::Hash(Box::new(h)),
                Value::Set(Box::new(s)),
                Value::Set(Box::new(ints)),
            ] {
                assert_eq!(roundtrip(&v), v);
            }
        }
    }

    #[test]
    fn lzf_reads_back_references() {
        // "aaaaaaaaaa": a literal 'a' then a back-reference of 9 bytes at
        // distance 1 (ctrl = (9-2)<<5 with run 7 → extra byte 0).
        let got = lzf_decompress(&[0x00, b'a', 0xE0, 0x00, 0x00], 10).unwrap();
        assert_eq!(got, b"aaaaaaaaaa");
        assert_eq!(
            lzf_decompress(&[0x00, b'a', 0xE0, 0x00, 0x05], 10),
            Err(Format)
        );
        assert_eq!(lzf_decompress(&[0x05, b'a'], 6), Err(Format));
    }

    #[test]
    fn bad_payloads_are_refused() {
        let lim = Limits::default();
        assert_eq!(restore(b"short", &lim), Err(RestoreError::Checksum));
        let mut out = Vec::new();
        dump(&Value::Str(super::super::StrValue::new(b"hello")), &mut out);
        let mut bad = out.clone();
        bad[3] ^= 1;
        assert_eq!(restore(&bad, &lim), Err(RestoreError::Checksum));
        // A length beyond the payload.
        assert_eq!(decode(b"\x00\x3f", &lim), Err(Format));
        assert_eq!(
            decode(b"\x02\x81\xff\xff\xff\xff\xff\xff\xff\xff", &lim),
            Err(Format)
        );
        // Duplicate set members, an empty set, an unknown type.
        assert_eq!(decode(b"\x02\x02\x01a\x01a", &lim), Err(Format));
        assert_eq!(decode(b"\x02\x00", &lim), Err(Format));
        assert_eq!(decode(b"\x07\x00", &lim), Err(Format));
    }
}
