//! HyperLogLog sketches in Redis 7.0's exact byte layout (`hyperloglog.c`),
//! pure data code over a string value's bytes.
//!
//! A sketch is a string: a 16-byte header (`HYLL`, the encoding byte, three
//! zero bytes, the cached cardinality as a little-endian u64 whose top bit
//! marks it stale) and 16384 six-bit registers, either *dense* (12288 bytes
//! of packed registers) or *sparse* (run-length opcodes ZERO, XZERO and
//! VAL). Elements are hashed with MurmurHash64A, seed `0xadc83b19`; the
//! register is the hash's low 14 bits, its value the position of the first
//! set bit of the other 50, plus one. A sparse sketch turns dense when a
//! register exceeds 32 or when it would grow past `hll-sparse-max-bytes`.
//! Every edit follows Redis' algorithm step by step (including the way it
//! splits and re-merges opcodes), so the same PFADDs leave the same bytes
//! as in Redis, and a sketch copied from Redis (GET, then SET) counts the
//! same here. The cardinality is Redis 7's estimator (Ertl's improved
//! raw estimate, with `tau` and `sigma`).
//!
//! The command layer (`command::hll`) owns lookups, replies and the
//! mutation guard; this module only reads and edits bytes, and works in
//! bounded time per call (at most 16384 registers, or the sparse bytes,
//! which are at most `hll-sparse-max-bytes` when written here).

/// Header bytes before the registers.
pub const HDR: usize = 16;
/// Registers per sketch (2^14).
pub const REGISTERS: usize = 1 << P;
/// Length of a dense sketch.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
/// `hll-sparse-max-bytes`' default.
pub const SPARSE_MAX_BYTES_DEFAULT: usize = 3000;

const P: usize = 14;
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
const SEED: u64 = 0xadc8_3b19;

/// A sparse sketch whose opcodes do not add up to 16384 registers (or an
/// unknown encoding): Redis' "INVALIDOBJ Corrupted HLL object detected".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash2, 64-bit version, as Redis has it (little-endian reads).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it proposes.
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty sketch: sparse, one XZERO opcode covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 64);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        let l = n - 1;
        v.push((l >> 8) as u8 | 0x40);
        v.push((l & 0xff) as u8);
        left -= n;
    }
    v
}

/// Redis' `isHLLObjectOrReply` test of a string's bytes.
pub fn is_valid(v: &[u8]) -> bool {
    v.len() >= HDR
        && &v[..4] == b"HYLL"
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// True when the sketch is dense.
pub fn is_dense(v: &[u8]) -> bool {
    v[4] == DENSE
}

/// Marks the cached cardinality stale.
pub fn invalidate(v: &mut [u8]) {
    v[15] |= 0x80;
}

/// The cached cardinality, when it is valid.
pub fn cached(v: &[u8]) -> Option<u64> {
    (v[15] & 0x80 == 0).then(|| u64::from_le_bytes(v[8..16].try_into().expect("8 bytes")))
}

/// Stores `card` as the cached (valid) cardinality.
pub fn set_cached(v: &mut [u8], card: u64) {
    v[8..16].copy_from_slice(&card.to_le_bytes());
}

#[inline]
fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs[byte] as u32;
    // The last register's second byte would be past the end: Redis reads
    // the sds terminator there, a zero.
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u32) as u8
}

#[inline]
fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = val as u32;
    regs[byte] &= !((REGISTER_MAX as u32) << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((REGISTER_MAX as u32) >> (8 - fb)) as u8;
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` of dense registers to `count`; true if it changed.
fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

/// One sparse opcode at `p`: (registers it covers, bytes it takes, kind).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero,
    XZero,
    Val(u8),
}

#[inline]
fn op_at(v: &[u8], p: usize) -> (usize, usize, Op) {
    let b = v[p];
    if b & 0xc0 == 0 {
        ((b & 0x3f) as usize + 1, 1, Op::Zero)
    } else if b & 0x80 != 0 {
        ((b & 0x3) as usize + 1, 1, Op::Val(((b >> 2) & 0x1f) + 1))
    } else {
        let lo = v.get(p + 1).copied().unwrap_or(0) as usize;
        (((((b & 0x3f) as usize) << 8) | lo) + 1, 2, Op::XZero)
    }
}

fn val_op(val: u8, len: usize) -> u8 {
    ((val - 1) << 2 | (len as u8 - 1)) | 0x80
}

fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        seq.push((l >> 8) as u8 | 0x40);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push(len as u8 - 1);
    }
}

/// Redis' `hllSparseToDense`: converts in place (no-op when dense); the
/// header, cached cardinality included, is kept.
pub fn to_dense(v: &mut Vec<u8>) -> Result<(), Corrupt> {
    if v[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&v[..HDR]);
    dense[4] = DENSE;
    let (mut idx, mut p) = (0usize, HDR);
    while p < v.len() {
        let (run, len, op) = op_at(v, p);
        match op {
            Op::Zero | Op::XZero => idx += run,
            Op::Val(val) => {
                if run + idx > REGISTERS {
                    break;
                }
                for _ in 0..run {
                    dense_put(&mut dense[HDR..], idx, val);
                    idx += 1;
                }
            }
        }
        p += len;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *v = dense;
    Ok(())
}

/// Redis' `hllSparseSet`: raises register `index` to `count` in a sparse
/// sketch, splitting and re-merging opcodes as Redis does, or promoting
/// the sketch to dense. Ok(true) when a register changed.
fn sparse_set(v: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Step 1: the opcode covering `index`.
    let (mut p, mut first, mut prev, mut span) = (HDR, 0usize, None, 0usize);
    let mut oplen = 1;
    let mut kind = Op::Zero;
    while p < v.len() {
        let (s, l, k) = op_at(v, p);
        (span, oplen, kind) = (s, l, k);
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= v.len() || p + oplen > v.len() {
        return Err(Corrupt);
    }
    let runlen = span;
    // Step 2: the cases updated in place.
    match kind {
        Op::Val(old) => {
            if old >= count {
                return Ok(false);
            }
            if runlen == 1 {
                v[p] = val_op(count, 1);
                return Ok(updated(v, prev));
            }
        }
        Op::Zero if runlen == 1 => {
            v[p] = val_op(count, 1);
            return Ok(updated(v, prev));
        }
        _ => {}
    }
    // The general case: split the opcode into up to three.
    let mut seq: Vec<u8> = Vec::with_capacity(5);
    let last = first + span - 1;
    match kind {
        Op::Zero | Op::XZero => {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        Op::Val(cur) => {
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        }
    }
    // Step 3: put the new sequence in the old opcode's place, unless that
    // grows the sketch past the sparse limit.
    if seq.len() > oplen && v.len() + seq.len() - oplen > max_bytes {
        return promote(v, index, count);
    }
    v.splice(p..p + oplen, seq);
    Ok(updated(v, prev))
}

/// Step 4 of `hllSparseSet`: merges adjacent VAL opcodes of equal value
/// (scanning at most 5 opcodes from the one before the change) and marks
/// the cache stale. Returns true (a register changed).
fn updated(v: &mut Vec<u8>, prev: Option<usize>) -> bool {
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let b = v[p];
        if b & 0xc0 == 0x40 {
            p += 2;
            continue;
        } else if b & 0xc0 == 0 {
            p += 1;
            continue;
        }
        if p + 1 < v.len() && v[p + 1] & 0x80 != 0 {
            let (l1, _, k1) = op_at(v, p);
            let (l2, _, k2) = op_at(v, p + 1);
            if let (Op::Val(v1), Op::Val(v2)) = (k1, k2)
                && v1 == v2
                && l1 + l2 <= VAL_MAX_LEN
            {
                v[p + 1] = val_op(v1, l1 + l2);
                v.remove(p);
                // Try the merged opcode with the one on its right.
                continue;
            }
        }
        p += 1;
    }
    invalidate(v);
    true
}

/// Converts to dense and raises the register there.
fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(v)?;
    dense_set(&mut v[HDR..], index, count);
    Ok(true)
}

/// Register `i` of a dense sketch (PFDEBUG GETREG).
pub fn dense_register(v: &[u8], i: usize) -> u8 {
    dense_get(&v[HDR..], i)
}

/// A sparse sketch's opcodes as Redis' PFDEBUG DECODE prints them
/// (`z:len`, `Z:len`, `v:value,len`, space separated).
pub fn decode(v: &[u8]) -> String {
    let mut text = String::new();
    let mut p = HDR;
    while p < v.len() {
        let (run, len, op) = op_at(v, p);
        if !text.is_empty() {
            text.push(' ');
        }
        match op {
            Op::Zero => text.push_str(&format!("z:{run}")),
            Op::XZero => text.push_str(&format!("Z:{run}")),
            Op::Val(val) => text.push_str(&format!("v:{val},{run}")),
        }
        p += len;
    }
    text
}

/// Raises register `index` to `count` whatever the encoding (PFMERGE).
pub fn set_register(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    match v[4] {
        DENSE => Ok(dense_set(&mut v[HDR..], index, count)),
        SPARSE => sparse_set(v, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// Adds one element (PFADD); Ok(true) when a register changed. The
/// caller marks the cache stale when any did.
pub fn add(v: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    set_register(v, index, count, max_bytes)
}

/// Raises `max[i]` to every register of the sketch `v` (Redis' `hllMerge`).
pub fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), Corrupt> {
    if v[4] == DENSE {
        let regs = &v[HDR..];
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let (mut i, mut p) = (0usize, HDR);
    while p < v.len() {
        let (run, len, op) = op_at(v, p);
        match op {
            Op::Zero | Op::XZero => i += run,
            Op::Val(val) => {
                if run + i > REGISTERS {
                    break;
                }
                for m in &mut max[i..i + run] {
                    *m = (*m).max(val);
                }
                i += run;
            }
        }
        p += len;
    }
    if i != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// The estimated cardinality of a sketch (Redis' `hllCount`).
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u32; 64];
    if v[4] == DENSE {
        let regs = &v[HDR..];
        for i in 0..REGISTERS {
            histo[dense_get(regs, i) as usize] += 1;
        }
    } else {
        let (mut idx, mut p) = (0usize, HDR);
        while p < v.len() {
            let (run, len, op) = op_at(v, p);
            let reg = match op {
                Op::Val(val) => val as usize,
                _ => 0,
            };
            histo[reg] += run as u32;
            idx += run;
            p += len;
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The estimated cardinality of registers one byte each (PFCOUNT of
/// several keys, after `merge_into`).
pub fn count_raw(max: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in &max[..REGISTERS] {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        // libm's pow, as Redis calls it.
        z -= (1.0 - x).powf(2.0) * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

/// Ertl's improved raw estimate from the register histogram, as Redis 7.
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sketch_is_redis_s() {
        let v = new_sparse();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[16..], &[0x7f, 0xff]);
        assert!(is_valid(&v));
        assert_eq!(count(&v), Ok(0));
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut s = new_sparse();
        for i in 0..2000u32 {
            add(&mut s, format!("e{i}").as_bytes(), usize::MAX).unwrap();
        }
        assert!(!is_dense(&s));
        let mut d = s.clone();
        to_dense(&mut d).unwrap();
        assert_eq!(count(&s), count(&d));
        let mut max = vec![0u8; REGISTERS];
        merge_into(&mut max, &s).unwrap();
        assert_eq!(count_raw(&max), count(&d).unwrap());
        let c = count(&d).unwrap() as f64;
        assert!((c - 2000.0).abs() < 2000.0 * 0.02, "{c}");
    }

    #[test]
    fn the_sparse_limit_promotes() {
        let mut s = new_sparse();
        let mut i = 0;
        while !is_dense(&s) {
            add(&mut s, format!("x{i}").as_bytes(), 3000).unwrap();
            assert!(s.len() <= 3000 || is_dense(&s));
            i += 1;
        }
        assert_eq!(s.len(), DENSE_SIZE);
    }

    #[test]
    fn corrupt_sparse_is_detected() {
        let mut s = new_sparse();
        s[17] = 0x00; // XZERO now covers 16129 registers, not 16384
        assert_eq!(count(&s), Err(Corrupt));
        assert_eq!(to_dense(&mut s.clone()), Err(Corrupt));
        let mut max = vec![0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &s), Err(Corrupt));
    }
}
