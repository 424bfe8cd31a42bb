//! Bitmap commands on strings, as Redis 7.0's `bitops.c`: SETBIT, GETBIT,
//! BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO.
//!
//! A bitmap is a plain string value (bit 0 is the most significant bit of
//! the first byte). Writes go through the mutation guard
//! ([`crate::store::Db::entry_mut`] and `StrMut::edit`), which lends a
//! heap string's buffer as a `Vec` without copying it, so SETBIT on a large
//! bitmap is O(1) apart from growth, and memory accounting and WATCH stay
//! exact. Offsets are bounded by `proto-max-bulk-len` (512 MB) as in Redis,
//! so no command can make a string larger than that.
//!
//! BITOP's keys may live on several shards: its `spread` driver has each
//! shard fold its own sources, combines the partial results and stores
//! the result, all in one [`Atomic`] step, like SINTERSTORE.

use super::keys::SHARD_GONE;
use super::{Args, parts_by_owner};
use crate::coord::{Atomic, Shard};
use crate::protocol::parser::{MAX_BULK_LEN, parse_i64};
use crate::protocol::reply::{Resp, err};
use crate::store::{Db, StrEncoding, StrValue, Ttl, Value};

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const BAD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
const NOT_SINGLE: &str = "ERR BITOP NOT must be called with a single source key.";
const RO_ONLY_GET: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// Redis' `getBitOffsetFromArgument`: a bit offset, or with `hash` and a
/// field width `bits`, `#n` for the n-th field of that width. At most
/// `proto-max-bulk-len` bytes' worth of bits.
fn bit_offset(raw: &[u8], hash: bool, bits: u32) -> Result<u64, &'static str> {
    let use_hash = hash && bits > 0 && raw.first() == Some(&b'#');
    let n = parse_i64(if use_hash { &raw[1..] } else { raw }).ok_or(BAD_OFFSET)?;
    // Redis multiplies in a signed 64-bit integer; what overflows lands
    // negative or out of range either way.
    let n = if use_hash {
        n.wrapping_mul(bits as i64)
    } else {
        n
    };
    if n < 0 || (n >> 3) as u64 >= MAX_BULK_LEN as u64 {
        return Err(BAD_OFFSET);
    }
    Ok(n as u64)
}

/// Reads a string value for a bit command: Ok(None) when missing.
fn read<'a>(db: &'a mut Db, key: &[u8]) -> Result<Option<&'a [u8]>, &'static str> {
    match db.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

/// Runs `f` on the string at `key` grown (zero-padded) to at least `len`
/// bytes, creating it when missing, as Redis' `lookupStringForBitCommand`.
/// The string becomes raw, as Redis unshares it. Err is WRONGTYPE. `f` is
/// told whether the string grew (or was created) and returns its result
/// and whether it wrote: WATCH sees the command only then, as Redis 7.0
/// signals SETBIT and BITFIELD (a BITFIELD whose writes all failed on
/// `OVERFLOW FAIL` signals nothing, though it may have created the key).
fn with_bits<R>(
    db: &mut Db,
    key: &[u8],
    len: usize,
    f: impl FnOnce(&mut Vec<u8>, Grew) -> (R, bool),
) -> Result<R, &'static str> {
    let mut guard = db.entry_or_insert_with(key, || {
        Value::Str(StrValue::from_vec(Vec::new(), StrEncoding::Raw))
    });
    let Ok(mut s) = guard.string() else {
        return Err(err::WRONGTYPE);
    };
    Ok(s.edit_reporting(|v| {
        let grew = if v.len() < len {
            v.resize(len, 0);
            Grew::Yes
        } else {
            Grew::No
        };
        f(v, grew)
    }))
}

/// Whether `with_bits` had to lengthen the string.
#[derive(Clone, Copy, PartialEq)]
enum Grew {
    Yes,
    No,
}

pub fn setbit(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let offset = match bit_offset(args.get(2), false, 0) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let on = match parse_i64(args.get(3)) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return out.error(BAD_BIT),
    };
    let byte = (offset >> 3) as usize;
    let bit = 7 - (offset & 7) as u32;
    let old = with_bits(db, args.get(1), byte + 1, |v, grew| {
        let old = (v[byte] >> bit) & 1;
        v[byte] = (v[byte] & !(1 << bit)) | (on << bit);
        (old, grew == Grew::Yes || old != on)
    });
    match old {
        Ok(old) => out.int(old as i64),
        Err(e) => out.error(e),
    }
}

pub fn getbit(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let offset = match bit_offset(args.get(2), false, 0) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    match read(db, args.get(1)) {
        Ok(v) => {
            let byte = (offset >> 3) as usize;
            let bit = 7 - (offset & 7) as u32;
            let set = v.and_then(|v| v.get(byte)).map_or(0, |b| (b >> bit) & 1);
            out.int(set as i64)
        }
        Err(e) => out.error(e),
    }
}

/// BYTE or BIT (a range's unit): true for BIT.
fn unit_is_bit(raw: &[u8]) -> Result<bool, &'static str> {
    if raw.eq_ignore_ascii_case(b"BIT") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case(b"BYTE") {
        Ok(false)
    } else {
        Err(err::SYNTAX)
    }
}

fn popcount(bytes: &[u8]) -> i64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        n += u64::from_ne_bytes(c.try_into().expect("8 bytes")).count_ones() as u64;
    }
    n += chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>();
    n as i64
}

/// A BIT range's masks of the edge bits outside it, as Redis computes them
/// before turning bit offsets into byte offsets.
fn edge_masks(start: i64, end: i64) -> (u8, u8) {
    let first = !((1u32 << (8 - (start & 7))) - 1) as u8;
    let last = ((1u32 << (7 - (end & 7))) - 1) as u8;
    (first, last)
}

pub fn bitcount(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    // Redis 7.0 looks the key up first: a missing key counts 0 whatever
    // the other arguments.
    let p = match read(db, args.get(1)) {
        Ok(Some(v)) => v,
        Ok(None) => return out.int(0),
        Err(e) => return out.error(e),
    };
    let strlen = p.len() as i64;
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let (start, end) = match args.len() {
        4 | 5 => {
            let (mut start, mut end) = match (args.int(2), args.int(3)) {
                (Ok(s), Ok(e)) => (s, e),
                (Err(e), _) | (_, Err(e)) => return out.error(e),
            };
            if start < 0 && end < 0 && start > end {
                return out.int(0);
            }
            let is_bit = if args.len() == 5 {
                match unit_is_bit(args.get(4)) {
                    Ok(b) => b,
                    Err(e) => return out.error(e),
                }
            } else {
                false
            };
            let total = if is_bit { strlen << 3 } else { strlen };
            if start < 0 {
                start += total;
            }
            if end < 0 {
                end += total;
            }
            start = start.max(0);
            end = end.max(0).min(total - 1);
            if is_bit && start <= end {
                (first_mask, last_mask) = edge_masks(start, end);
                start >>= 3;
                end >>= 3;
            }
            (start, end)
        }
        2 => (0, strlen - 1),
        _ => return out.error(err::SYNTAX),
    };
    if start > end {
        return out.int(0);
    }
    let (s, e) = (start as usize, end as usize);
    let mut count = popcount(&p[s..=e]);
    // Bits of the edge bytes outside a BIT range are subtracted again.
    if first_mask != 0 {
        count -= (p[s] & first_mask).count_ones() as i64;
    }
    if last_mask != 0 {
        count -= (p[e] & last_mask).count_ones() as i64;
    }
    out.int(count)
}

/// Redis' `redisBitpos`: the first bit equal to `bit` in `bytes`; when
/// there is none, -1 for a 1 and the first bit past the end for a 0 (the
/// string is taken as zero-padded on the right).
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    match bytes.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { bytes[i] } else { !bytes[i] };
            (i as i64) * 8 + b.leading_zeros() as i64
        }
        None if bit => -1,
        None => bytes.len() as i64 * 8,
    }
}

pub fn bitpos(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let bit = match args.int(2) {
        Ok(b @ (0 | 1)) => b == 1,
        Ok(_) => return out.error(BAD_BITPOS_BIT),
        Err(e) => return out.error(e),
    };
    let p = match read(db, args.get(1)) {
        Ok(Some(v)) => v,
        // A missing key is an endless run of zeros.
        Ok(None) => return out.int(if bit { -1 } else { 0 }),
        Err(e) => return out.error(e),
    };
    let strlen = p.len() as i64;
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    let mut end_given = false;
    let (start, end) = match args.len() {
        4..=6 => {
            let mut start = match args.int(3) {
                Ok(s) => s,
                Err(e) => return out.error(e),
            };
            let is_bit = if args.len() == 6 {
                match unit_is_bit(args.get(5)) {
                    Ok(b) => b,
                    Err(e) => return out.error(e),
                }
            } else {
                false
            };
            let mut end = if args.len() >= 5 {
                end_given = true;
                match args.int(4) {
                    Ok(e) => e,
                    Err(e) => return out.error(e),
                }
            } else if is_bit {
                (strlen << 3) + 7
            } else {
                strlen - 1
            };
            let total = if is_bit { strlen << 3 } else { strlen };
            if start < 0 {
                start += total;
            }
            if end < 0 {
                end += total;
            }
            start = start.max(0);
            end = end.max(0).min(total - 1);
            if is_bit && start <= end {
                (first_mask, last_mask) = edge_masks(start, end);
                start >>= 3;
                end >>= 3;
            }
            (start, end)
        }
        3 => (0, strlen - 1),
        _ => return out.error(err::SYNTAX),
    };
    // An empty range holds neither a 0 nor a 1.
    if start > end {
        return out.int(-1);
    }
    let (mut start, end) = (start as usize, end as usize);
    let mut bytes = (end - start + 1) as i64;
    // Redis' three steps: the masked first byte, the whole bytes, the
    // masked last byte; each ends the search when it finds the bit.
    let pos = 'found: {
        if first_mask != 0 {
            let mut c = if bit {
                p[start] & !first_mask
            } else {
                p[start] | first_mask
            };
            if last_mask != 0 && bytes == 1 {
                c = if bit { c & !last_mask } else { c | last_mask };
            }
            let pos = first_bit(&[c], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let whole = bytes - i64::from(last_mask != 0);
        if whole > 0 {
            let pos = first_bit(&p[start..start + whole as usize], bit);
            if bytes == whole || (pos != -1 && pos != whole << 3) {
                break 'found pos;
            }
            start += whole as usize;
            bytes -= whole;
        }
        let c = if bit {
            p[end] & !last_mask
        } else {
            p[end] | last_mask
        };
        first_bit(&[c], bit)
    };
    // With an explicit end, the bits right of the range are not zeros.
    if end_given && !bit && pos == bytes << 3 {
        return out.int(-1);
    }
    out.int(if pos == -1 {
        -1
    } else {
        pos + ((start as i64) << 3)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// The operation and, for NOT, that it has one source; Err is the reply.
fn parse_bitop(args: &Args) -> Result<BitOp, &'static str> {
    let name = args.get(1);
    let op = [
        ("AND", BitOp::And),
        ("OR", BitOp::Or),
        ("XOR", BitOp::Xor),
        ("NOT", BitOp::Not),
    ]
    .into_iter()
    .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    .map(|(_, op)| op)
    .ok_or(err::SYNTAX)?;
    if op == BitOp::Not && args.len() != 4 {
        return Err(NOT_SINGLE);
    }
    Ok(op)
}

/// BITOP's result, built one source at a time (a missing key is an empty
/// string; shorter sources are zero-padded to the longest).
struct Combine {
    op: BitOp,
    res: Vec<u8>,
    first: bool,
}

impl Combine {
    fn new(op: BitOp) -> Combine {
        Combine {
            op,
            res: Vec::new(),
            first: true,
        }
    }

    fn add(&mut self, src: Option<&[u8]>) {
        let src = src.unwrap_or_default();
        if std::mem::take(&mut self.first) {
            self.res.extend_from_slice(src);
            if self.op == BitOp::Not {
                self.res.iter_mut().for_each(|b| *b = !*b);
            }
            return;
        }
        if src.len() > self.res.len() {
            // Every earlier source is zero past its end.
            self.res.resize(src.len(), 0);
        }
        let (head, tail) = self.res.split_at_mut(src.len());
        match self.op {
            BitOp::And => {
                head.iter_mut().zip(src).for_each(|(r, s)| *r &= s);
                tail.fill(0);
            }
            BitOp::Or => head.iter_mut().zip(src).for_each(|(r, s)| *r |= s),
            BitOp::Xor => head.iter_mut().zip(src).for_each(|(r, s)| *r ^= s),
            BitOp::Not => {}
        }
    }
}

/// Stores BITOP's result at `dst` (deleting it when empty) and replies its
/// length, as Redis: the key loses its TTL.
fn store_bitop(db: &mut Db, dst: &[u8], res: Vec<u8>) -> usize {
    let len = res.len();
    if len == 0 {
        db.delete(dst);
    } else {
        db.set(
            dst,
            Value::Str(StrValue::from_vec(res, StrEncoding::Raw)),
            Ttl::Clear,
        );
    }
    len
}

/// BITOP when every key lives on one shard.
pub fn bitop(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    let op = match parse_bitop(args) {
        Ok(op) => op,
        Err(e) => return out.error(e),
    };
    let mut acc = Combine::new(op);
    for key in args.iter_from(3) {
        match read(db, key) {
            Ok(src) => acc.add(src),
            Err(e) => return out.error(e),
        }
    }
    let len = store_bitop(db, args.get(2), acc.res);
    out.int(len as i64);
}

spread!(bitop_spread => bitop_across);

/// BITOP over several shards, while every involved shard is held: each
/// shard folds its own sources into one partial result and ships only
/// that (AND, OR and XOR are associative and zero-pad alike, and NOT has
/// one source), so the copy across cores is one string per shard, not one
/// per source argument.
async fn bitop_across(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let op = match parse_bitop(args) {
        Ok(op) => op,
        Err(e) => return out.error(e),
    };
    let dst = args.get(2).to_vec();
    let home = shard.owner(&dst);
    let mut atomic = Atomic::new(shard, tx, args.iter_from(2));
    // NOT's one partial is already inverted: combining only copies it.
    let mut acc = Combine::new(if op == BitOp::Not { BitOp::Or } else { op });
    for part in parts_by_owner(shard, args, 3, 1) {
        let keys = part.args;
        let folded = atomic
            .on(part.shard, move |s: &Shard| {
                let mut db = s.db();
                let mut partial = Combine::new(op);
                for k in keys.iter() {
                    partial.add(read(&mut db, k)?);
                }
                Ok::<_, &'static str>(partial.res)
            })
            .await;
        match folded {
            Some(Ok(partial)) => acc.add(Some(&partial)),
            Some(Err(e)) => return out.error(e),
            None => return out.error(SHARD_GONE),
        }
    }
    let res = acc.res;
    match atomic
        .on(home, move |s: &Shard| store_bitop(&mut s.db(), &dst, res))
        .await
    {
        Some(len) => out.int(len as i64),
        None => out.error(SHARD_GONE),
    }
}

// ---- BITFIELD ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    offset: u64,
    value: i64,
    overflow: Overflow,
    bits: u32,
    signed: bool,
}

/// Redis' `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63`.
fn field_type(raw: &[u8]) -> Result<(bool, u32), &'static str> {
    let signed = match raw.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_TYPE),
    };
    match parse_i64(&raw[1..]) {
        Some(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(BAD_TYPE),
    }
}

fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let bit = (p[(o >> 3) as usize] >> (7 - (o & 7))) & 1;
        value = (value << 1) | bit as u64;
    }
    value
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let bitval = ((value >> (bits as u64 - 1 - j)) & 1) as u8;
        let o = offset + j;
        let byte = &mut p[(o >> 3) as usize];
        let bit = 7 - (o & 7);
        *byte = (*byte & !(1 << bit)) | (bitval << bit);
    }
}

/// Redis' `checkUnsignedBitfieldOverflow`: 0, or ±1 with the value to
/// store under WRAP and SAT.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (i32, u64) {
    let max = (1u64 << bits) - 1;
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX << bits);
    if value > max || (incr > 0 && incr > max_incr) {
        (1, if ow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < min_incr {
        (-1, if ow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        (0, 0)
    }
}

/// Redis' `checkSignedBitfieldOverflow`.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (i32, i64) {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        (1, if ow == Overflow::Wrap { wrap() } else { max })
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        (-1, if ow == Overflow::Wrap { wrap() } else { min })
    } else {
        (0, 0)
    }
}

/// Parses BITFIELD's operations; Err is the reply.
fn parse_fields(args: &Args) -> Result<Vec<Field>, &'static str> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let op = if args.is(j, "GET") && rem >= 2 {
            FieldOp::Get
        } else if args.is(j, "SET") && rem >= 3 {
            FieldOp::Set
        } else if args.is(j, "INCRBY") && rem >= 3 {
            FieldOp::IncrBy
        } else if args.is(j, "OVERFLOW") && rem >= 1 {
            let ty = args.get(j + 1);
            overflow = if ty.eq_ignore_ascii_case(b"WRAP") {
                Overflow::Wrap
            } else if ty.eq_ignore_ascii_case(b"SAT") {
                Overflow::Sat
            } else if ty.eq_ignore_ascii_case(b"FAIL") {
                Overflow::Fail
            } else {
                return Err(BAD_OVERFLOW);
            };
            j += 2;
            continue;
        } else {
            return Err(err::SYNTAX);
        };
        let (signed, bits) = field_type(args.get(j + 1))?;
        let offset = bit_offset(args.get(j + 2), true, bits)?;
        let value = if op == FieldOp::Get {
            0
        } else {
            args.int(j + 3)?
        };
        fields.push(Field {
            op,
            offset,
            value,
            overflow,
            bits,
            signed,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// One GET on a string that may be shorter than the field (zero-padded).
fn field_get(p: &[u8], f: &Field, out: &mut Vec<u8>) {
    let byte = (f.offset >> 3) as usize;
    let mut buf = [0u8; 9];
    if byte < p.len() {
        let n = (p.len() - byte).min(9);
        buf[..n].copy_from_slice(&p[byte..byte + n]);
    }
    let off = f.offset & 7;
    if f.signed {
        out.int(get_signed(&buf, off, f.bits));
    } else {
        out.int(get_unsigned(&buf, off, f.bits) as i64);
    }
}

/// One SET or INCRBY on a string long enough for the field; returns
/// whether it wrote (not when `OVERFLOW FAIL` refused it) and whether the
/// field's bits changed.
fn field_write(p: &mut [u8], f: &Field, out: &mut Vec<u8>) -> Option<bool> {
    let fail = f.overflow == Overflow::Fail;
    if f.signed {
        let old = get_signed(p, f.offset, f.bits);
        let (new, reply, over) = if f.op == FieldOp::IncrBy {
            let (over, wrapped) = signed_overflow(old, f.value, f.bits, f.overflow);
            let new = if over != 0 {
                wrapped
            } else {
                old.wrapping_add(f.value)
            };
            (new, new, over)
        } else {
            let (over, wrapped) = signed_overflow(f.value, 0, f.bits, f.overflow);
            (if over != 0 { wrapped } else { f.value }, old, over)
        };
        if over != 0 && fail {
            out.nil();
            return None;
        }
        out.int(reply);
        set_unsigned(p, f.offset, f.bits, new as u64);
        Some(new != old)
    } else {
        let old = get_unsigned(p, f.offset, f.bits);
        let (new, reply, over) = if f.op == FieldOp::IncrBy {
            let (over, wrapped) = unsigned_overflow(old, f.value, f.bits, f.overflow);
            let new = if over != 0 {
                wrapped
            } else {
                old.wrapping_add(f.value as u64)
            };
            (new, new, over)
        } else {
            let v = f.value as u64;
            let (over, wrapped) = unsigned_overflow(v, 0, f.bits, f.overflow);
            (if over != 0 { wrapped } else { v }, old, over)
        };
        if over != 0 && fail {
            out.nil();
            return None;
        }
        out.int(reply as i64);
        set_unsigned(p, f.offset, f.bits, new);
        Some(new != old)
    }
}

fn bitfield_generic(db: &mut Db, args: &Args, out: &mut Vec<u8>, read_only: bool) {
    let fields = match parse_fields(args) {
        Ok(f) => f,
        Err(e) => return out.error(e),
    };
    let highest = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max();
    let Some(highest) = highest else {
        // Only GETs: a missing key reads as zeros.
        let p = match read(db, args.get(1)) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return out.error(e),
        };
        out.array(fields.len());
        for f in &fields {
            field_get(p, f, out);
        }
        return;
    };
    if read_only {
        return out.error(RO_ONLY_GET);
    }
    let len = (highest >> 3) as usize + 1;
    // The reply's header goes first; a WRONGTYPE takes its place.
    let mark = out.len();
    out.array(fields.len());
    let done = with_bits(db, args.get(1), len, |p, grew| {
        // Redis counts a write that ran and either changed the field or
        // lengthened the string.
        let mut changed = false;
        for f in &fields {
            if f.op == FieldOp::Get {
                field_get(p, f, out);
            } else if let Some(bits_changed) = field_write(p, f, out) {
                changed |= bits_changed || grew == Grew::Yes;
            }
        }
        ((), changed)
    });
    if let Err(e) = done {
        out.truncate(mark);
        out.error(e);
    }
}

pub fn bitfield(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    bitfield_generic(db, args, out, false)
}

pub fn bitfield_ro(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
    bitfield_generic(db, args, out, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::{check_step, db, run};

    #[test]
    fn overflow_checks_match_redis() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), (1, 4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), (1, 255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), (-1, 0));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Wrap), (-1, 251));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), (1, -126));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Sat), (-1, -128));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            (1, i64::MIN)
        );
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Sat).1, i64::MAX);
        assert_eq!(signed_overflow(0, -1, 64, Overflow::Sat), (0, 0));
    }

    #[test]
    fn bitpos_scans_with_padding() {
        assert_eq!(first_bit(&[0, 0], true), -1);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0, 0x10], true), 11);
        assert_eq!(first_bit(&[0xff, 0xfe], false), 15);
    }

    /// SETBIT, BITFIELD and BITOP write through the guard or `Db::set`:
    /// accounting stays exact, other types are refused.
    #[test]
    fn memory_accounting_stays_exact_under_random_bit_writes() {
        let mut db = db();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        run(
            &mut db,
            crate::command::lists::lpush,
            &[b"lpush", b"list", b"e"],
        );
        for i in 0..2000 {
            let key = if next(10) == 0 {
                "list".to_string()
            } else {
                format!("k{}", next(3))
            };
            let k = key.as_bytes();
            let off = next(2000).to_string();
            let argv: Vec<&[u8]> = match next(4) {
                0 => vec![b"setbit", k, off.as_bytes(), b"1"],
                1 => vec![
                    b"bitfield",
                    k,
                    b"incrby",
                    b"u7",
                    off.as_bytes(),
                    b"100",
                    b"get",
                    b"i5",
                    b"3",
                ],
                2 => vec![b"bitop", b"not", k, b"k0"],
                _ => vec![b"setbit", k, off.as_bytes(), b"0"],
            };
            let handler = match argv[0] {
                b"setbit" => setbit,
                b"bitfield" => bitfield,
                _ => bitop,
            };
            let reply = run(&mut db, handler, &argv);
            let wrong = key == "list" && argv[0] != b"bitop";
            check_step(&db, &reply, wrong, &(i, &argv));
            if db.peek(b"list").is_none_or(|v| v.type_name() != "list") {
                db.delete(b"list");
                run(
                    &mut db,
                    crate::command::lists::lpush,
                    &[b"lpush", b"list", b"e"],
                );
            }
        }
    }
}
