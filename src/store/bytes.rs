//! Compact byte strings for the keyspace: [`DbKey`], [`Key`] and
//! [`StrValue`].
//!
//! A key or a string value used to be its own heap allocation (a
//! `Box<[u8]>` key, a `Vec<u8>` value), each with an allocator header and
//! rounding, reached through a 16- or 24-byte handle in the map slot. These
//! types keep short ones inside the slot instead, as Redis's embstr keeps
//! short strings in the object header:
//!
//! - [`DbKey`] is a key of the keyspace, 24 bytes: up to [`DbKey::INLINE`]
//!   (18) bytes inline, longer ones in one exact-size heap block, plus the
//!   key's access clock and TTL flag.
//! - [`Key`] is 16 bytes: up to [`Key::INLINE`] (15) bytes inline. The
//!   members of a set table and the fields of a hash table are `Key`s.
//!   Both are an [`InlineBytes`].
//! - [`StrValue`] is 16 bytes (the `Vec<u8>` it replaces was 24): values of
//!   up to [`StrValue::INLINE`] (14) bytes are inline, longer ones in one
//!   heap block whose capacity follows from the length and the encoding
//!   (exact for values written whole, the next power of two for values
//!   changed in place, so APPEND stays amortised O(1)), so no capacity
//!   field is needed. It also records how the value was written
//!   ([`StrEncoding`]), which is what OBJECT ENCODING reports as Redis 7.0
//!   does (int / embstr / raw).
//!
//! `InlineBytes` and `StrValue` are `align(1)` and start with a tag byte
//! that has 24 valid values, so they leave a niche: `Value` (a string or a
//! thin boxed aggregate) is 16 bytes and a keyspace map slot (hash +
//! `DbKey` + `Value`) 48 (see the size test; a fat or wider aggregate
//! variant would make them 24/56).
//!
//! Invariants (the only `unsafe` of the store relies on them):
//! - tag `Tag::Heap` ⇔ the bytes hold the address and length of a live
//!   block this value owns, from the global allocator: a `Box<[u8]>` for
//!   `InlineBytes`, a block of `Layout::array::<u8>(heap_capacity())` for
//!   `StrValue` (the capacity is a function of length and encoding, and
//!   every write that changes either resizes the block to match);
//!   the address is stored with its provenance exposed and recovered with
//!   `with_exposed_provenance_mut`;
//! - otherwise the tag is the inline length and the first that many data
//!   bytes are the contents;
//! - a value whose length fits inline is always inline (so equal contents
//!   have one representation, and the heap case is never empty).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error, realloc};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::mem::ManuallyDrop;
use std::ops::Deref;

/// The tag byte: an inline length or `Heap`. An enum rather than a `u8`
/// so that the other 232 values are a niche for `Value`'s variants.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    L0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    Heap,
}

const INLINE_TAGS: [Tag; 23] = [
    Tag::L0,
    Tag::L1,
    Tag::L2,
    Tag::L3,
    Tag::L4,
    Tag::L5,
    Tag::L6,
    Tag::L7,
    Tag::L8,
    Tag::L9,
    Tag::L10,
    Tag::L11,
    Tag::L12,
    Tag::L13,
    Tag::L14,
    Tag::L15,
    Tag::L16,
    Tag::L17,
    Tag::L18,
    Tag::L19,
    Tag::L20,
    Tag::L21,
    Tag::L22,
];

/// Reads a 7-byte little-endian length (strings are at most 512 MiB;
/// 7 bytes hold 64 PiB).
#[inline]
fn get7(b: &[u8]) -> usize {
    let mut w = [0u8; 8];
    w[..7].copy_from_slice(&b[..7]);
    u64::from_le_bytes(w) as usize
}

#[inline]
fn put7(b: &mut [u8], v: usize) {
    b[..7].copy_from_slice(&(v as u64).to_le_bytes()[..7]);
}

#[inline]
fn get_addr(b: &[u8]) -> *mut u8 {
    let addr = usize::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
    std::ptr::with_exposed_provenance_mut(addr)
}

#[inline]
fn put_addr(b: &mut [u8], p: *mut u8) {
    b[..8].copy_from_slice(&p.expose_provenance().to_ne_bytes());
}

/// Bytes of up to `N` (15 to 22) inline, else one exact-size heap block:
/// the representation of [`Key`] and of [`DbKey`]'s bytes. Hashes and
/// compares as the `[u8]` it holds, so maps keyed by it are looked up with
/// a `&[u8]`.
pub struct InlineBytes<const N: usize> {
    tag: Tag,
    /// Inline: the bytes. Heap: length (7 bytes) then address (8 bytes).
    data: [u8; N],
}

/// A key of an aggregate (a set member, a hash field) or of a shard-side
/// table (WATCH): up to 15 bytes inline, in 16 bytes.
pub type Key = InlineBytes<15>;

impl<const N: usize> InlineBytes<N> {
    /// Longest key kept inline.
    pub const INLINE: usize = N;

    pub fn new(bytes: &[u8]) -> Self {
        // The heap form needs 15 bytes; the tag names lengths up to 22.
        const { assert!(N >= 15 && N <= 22) };
        let mut data = [0u8; N];
        if bytes.len() <= N {
            data[..bytes.len()].copy_from_slice(bytes);
            return InlineBytes {
                tag: INLINE_TAGS[bytes.len()],
                data,
            };
        }
        let boxed: Box<[u8]> = bytes.into();
        let len = boxed.len();
        let p = Box::into_raw(boxed) as *mut u8;
        put7(&mut data[..7], len);
        put_addr(&mut data[7..15], p);
        InlineBytes {
            tag: Tag::Heap,
            data,
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        if self.tag == Tag::Heap {
            let len = get7(&self.data[..7]);
            // SAFETY: by the invariant (module docs) a heap key owns a live
            // `Box<[u8]>` of `len` bytes at this address; the borrow is
            // tied to `&self`, which owns it.
            unsafe { std::slice::from_raw_parts(get_addr(&self.data[7..15]), len) }
        } else {
            &self.data[..self.tag as usize]
        }
    }

    /// Heap bytes this key owns beyond its slot (0 when inline).
    #[inline]
    pub fn heap_len(&self) -> usize {
        if self.tag == Tag::Heap { self.len() } else { 0 }
    }

    /// Whether this key may equal `other`, judged from the slot alone: an
    /// inline key compares its bytes, a heap key only its length, so the
    /// answer costs no load beyond the slot (`Db::prefetch`'s probe).
    #[inline]
    pub(crate) fn may_equal(&self, other: &[u8]) -> bool {
        if self.tag == Tag::Heap {
            get7(&self.data[..7]) == other.len()
        } else {
            &self.data[..self.tag as usize] == other
        }
    }

    /// The address of the heap block (None when inline), for prefetching.
    #[inline]
    pub(crate) fn heap_ptr(&self) -> Option<*const u8> {
        (self.tag == Tag::Heap).then(|| get_addr(&self.data[7..15]) as *const u8)
    }
}

/// The bytes of a [`DbKey`] (also what the eviction pool copies them as).
pub(crate) type DbKeyBytes = InlineBytes<18>;

/// A key of the keyspace and what the shard keeps per key besides its
/// value: 18 bytes inline (one `Key` holds 15), the access clock and the
/// TTL flag, in 24 bytes. The clock and the flag used to sit in the
/// padding of the map's value; in the key they leave the value 16 bytes
/// and buy the key three inline bytes at the same 48-byte slot, enough for
/// the 16-byte keys of redis-benchmark (`key:000000012345`) and for many
/// `prefix:id` keys, which then cost no heap block and no cache miss of
/// their own on lookup (issue 15). Hashes and compares as its bytes alone:
/// the metadata changes in place (`indexmap`'s `MutableKeys`) without
/// moving the key in the table.
pub struct DbKey {
    bytes: DbKeyBytes,
    /// Unix seconds of the last command that touched the key (OBJECT
    /// IDLETIME; one-second resolution like Redis' LRU clock), or the LFU
    /// counter under an LFU policy (`evict::Clock`).
    pub(super) accessed: u32,
    /// Whether the key has a TTL. The expiry time itself lives in
    /// `Db::expiring` (as Redis keeps a separate expires dict), so keys
    /// without one do not carry 8 bytes of zeros; this flag spares them
    /// the lookup there.
    pub(super) has_ttl: bool,
}

impl DbKey {
    /// Longest key kept inline.
    pub const INLINE: usize = DbKeyBytes::INLINE;

    /// A key without TTL, stamped `accessed`.
    pub fn new(bytes: &[u8], accessed: u32) -> DbKey {
        DbKey {
            bytes: InlineBytes::new(bytes),
            accessed,
            has_ttl: false,
        }
    }

    /// The access clock: unix seconds of the last access, or the LFU
    /// counter under an LFU policy.
    pub fn accessed(&self) -> u32 {
        self.accessed
    }

    /// Whether the key has a TTL.
    pub fn has_ttl(&self) -> bool {
        self.has_ttl
    }

    /// See [`InlineBytes::may_equal`].
    #[inline]
    pub(crate) fn may_equal(&self, other: &[u8]) -> bool {
        self.bytes.may_equal(other)
    }

    /// See [`InlineBytes::heap_ptr`].
    #[inline]
    pub(crate) fn heap_ptr(&self) -> Option<*const u8> {
        self.bytes.heap_ptr()
    }
}

impl Deref for DbKey {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.bytes.as_bytes()
    }
}

impl Borrow<[u8]> for DbKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.bytes.as_bytes()
    }
}

impl Hash for DbKey {
    /// As `[u8]` hashes, which `Borrow` lookups require; the metadata is
    /// not part of the key's identity.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.as_bytes().hash(state)
    }
}

impl PartialEq for DbKey {
    #[inline]
    fn eq(&self, other: &DbKey) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for DbKey {}

impl fmt::Debug for DbKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DbKey({:?}, accessed {}, ttl {})",
            String::from_utf8_lossy(self),
            self.accessed,
            self.has_ttl
        )
    }
}

/// Asks the CPU to start loading the cache line at `p` (hint only: it
/// never faults, whatever `p` is, and changes no state).
#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing into the program and
    // cannot fault, even for an address that is not mapped.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl<const N: usize> Drop for InlineBytes<N> {
    fn drop(&mut self) {
        if self.tag == Tag::Heap {
            let len = get7(&self.data[..7]);
            let p = get_addr(&self.data[7..15]);
            // SAFETY: the invariant: this key owns the `Box<[u8]>` made in
            // `InlineBytes::new` (same address and length); it is dropped
            // once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) });
        }
    }
}

impl<const N: usize> Clone for InlineBytes<N> {
    fn clone(&self) -> Self {
        InlineBytes::new(self.as_bytes())
    }
}

impl<const N: usize> Deref for InlineBytes<N> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> AsRef<[u8]> for InlineBytes<N> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> Borrow<[u8]> for InlineBytes<N> {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> Hash for InlineBytes<N> {
    /// As `[u8]` hashes, which `Borrow` lookups require.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize> From<&[u8]> for InlineBytes<N> {
    fn from(bytes: &[u8]) -> Self {
        InlineBytes::new(bytes)
    }
}

impl<const N: usize> From<&Vec<u8>> for InlineBytes<N> {
    fn from(bytes: &Vec<u8>) -> Self {
        InlineBytes::new(bytes)
    }
}

impl<const N: usize> fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// How a string value was written, which decides what OBJECT ENCODING
/// answers (Redis 7.0 keeps the encoding chosen at write time).
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StrEncoding {
    /// Written whole by SET and friends, INCR or APPEND to a new key
    /// (Redis's `tryObjectEncoding`): "int" for a canonical integer of at
    /// most 20 bytes, else "embstr" up to 44 bytes, else "raw".
    Auto,
    /// Changed in place (APPEND, SETRANGE): Redis unshares it into a raw
    /// string whatever its contents.
    Raw,
    /// Built as text (INCRBYFLOAT): "embstr" up to 44 bytes, else "raw";
    /// never "int".
    Text,
}

/// Strings up to this length are embedded in their object header
/// (OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
pub const EMBSTR_MAX: usize = 44;

/// A string value: up to 14 bytes inline, else a heap buffer whose
/// capacity follows from its length and encoding (`heap_capacity`), so
/// that the whole value is 16 bytes and `Value` too.
pub struct StrValue {
    tag: Tag,
    enc: StrEncoding,
    /// Inline: the bytes. Heap: length (6 bytes) then address (8).
    data: [u8; 14],
}

/// Reads a 6-byte little-endian length (strings are at most 512 MiB).
#[inline]
fn get6(b: &[u8]) -> usize {
    let mut w = [0u8; 8];
    w[..6].copy_from_slice(&b[..6]);
    u64::from_le_bytes(w) as usize
}

#[inline]
fn put6(b: &mut [u8], v: usize) {
    b[..6].copy_from_slice(&(v as u64).to_le_bytes()[..6]);
}

#[inline]
fn layout(cap: usize) -> Layout {
    Layout::array::<u8>(cap).expect("a string of at most 512 MiB")
}

impl StrValue {
    /// Longest value kept inline.
    pub const INLINE: usize = 14;

    /// The heap capacity of a value of `len` (> INLINE) bytes: exact for
    /// values written whole, the next power of two for values changed in
    /// place (APPEND, SETRANGE), so that appending is amortised O(1), as
    /// Redis's sds grows greedily.
    #[inline]
    fn capacity_for(len: usize, enc: StrEncoding) -> usize {
        match enc {
            StrEncoding::Raw => len.next_power_of_two(),
            StrEncoding::Auto | StrEncoding::Text => len,
        }
    }

    /// A copy of `bytes`, encoded as SET writes it.
    pub fn new(bytes: &[u8]) -> StrValue {
        Self::with_encoding(bytes, StrEncoding::Auto)
    }

    pub fn with_encoding(bytes: &[u8], enc: StrEncoding) -> StrValue {
        let mut data = [0u8; 14];
        if bytes.len() <= Self::INLINE {
            data[..bytes.len()].copy_from_slice(bytes);
            return StrValue {
                tag: INLINE_TAGS[bytes.len()],
                enc,
                data,
            };
        }
        let cap = Self::capacity_for(bytes.len(), enc);
        let l = layout(cap);
        // SAFETY: `cap >= bytes.len() > INLINE`, so the layout is not zero.
        let p = unsafe { alloc(l) };
        if p.is_null() {
            handle_alloc_error(l);
        }
        // SAFETY: `p` is a fresh block of `cap >= bytes.len()` bytes that
        // cannot overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        put6(&mut data[..6], bytes.len());
        put_addr(&mut data[6..], p);
        StrValue {
            tag: Tag::Heap,
            enc,
            data,
        }
    }

    /// Takes `v`'s bytes (its buffer, resized to this value's capacity,
    /// when they do not fit inline).
    pub fn from_vec(v: Vec<u8>, enc: StrEncoding) -> StrValue {
        if v.len() <= Self::INLINE {
            return Self::with_encoding(&v, enc);
        }
        let len = v.len();
        let cap = Self::capacity_for(len, enc);
        let mut v = ManuallyDrop::new(v);
        let (p, old_cap) = (v.as_mut_ptr(), v.capacity());
        let p = if old_cap == cap {
            p
        } else {
            // SAFETY: a `Vec<u8>`'s buffer was allocated by the global
            // allocator with `Layout::array::<u8>(capacity)` (Vec's
            // documented layout); `cap >= len > 0`; the Vec is forgotten,
            // so the block is ours to resize.
            let q = unsafe { realloc(p, layout(old_cap), cap) };
            if q.is_null() {
                handle_alloc_error(layout(cap));
            }
            q
        };
        let mut data = [0u8; 14];
        put6(&mut data[..6], len);
        put_addr(&mut data[6..], p);
        StrValue {
            tag: Tag::Heap,
            enc,
            data,
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        if self.tag == Tag::Heap {
            let len = get6(&self.data[..6]);
            // SAFETY: the invariant: a live buffer of at least `len`
            // initialised bytes, owned by `self` for the borrow's lifetime.
            unsafe { std::slice::from_raw_parts(get_addr(&self.data[6..]), len) }
        } else {
            &self.data[..self.tag as usize]
        }
    }

    /// The address of the heap buffer (None when inline), for prefetching.
    #[inline]
    pub(crate) fn heap_ptr(&self) -> Option<*const u8> {
        (self.tag == Tag::Heap).then(|| get_addr(&self.data[6..]) as *const u8)
    }

    /// Heap capacity this value owns beyond its slot (0 when inline).
    #[inline]
    pub fn heap_capacity(&self) -> usize {
        if self.tag == Tag::Heap {
            Self::capacity_for(get6(&self.data[..6]), self.enc)
        } else {
            0
        }
    }

    pub fn encoding_kind(&self) -> StrEncoding {
        self.enc
    }

    /// What OBJECT ENCODING answers, as Redis 7.0.
    pub fn encoding(&self) -> &'static str {
        let len = self.len();
        match self.enc {
            StrEncoding::Auto
                if len <= 20 && crate::protocol::parser::parse_i64(self).is_some() =>
            {
                "int"
            }
            StrEncoding::Auto | StrEncoding::Text if len <= EMBSTR_MAX => "embstr",
            _ => "raw",
        }
    }

    /// Replaces the contents with `bytes`, reusing the heap buffer when it
    /// has the capacity the new value needs (the SET-over-SET path of
    /// same-size values allocates nothing).
    #[inline]
    pub fn assign(&mut self, bytes: &[u8], enc: StrEncoding) {
        if self.tag == Tag::Heap && bytes.len() > Self::INLINE {
            let old = self.heap_capacity();
            let cap = Self::capacity_for(bytes.len(), enc);
            let p = get_addr(&self.data[6..]);
            let p = if old == cap {
                p
            } else {
                // SAFETY: the invariant: `p` is this value's block of
                // `old` bytes from the global allocator; `cap > 0`. On
                // success the old block is gone and `q` is recorded below.
                let q = unsafe { realloc(p, layout(old), cap) };
                if q.is_null() {
                    handle_alloc_error(layout(cap));
                }
                q
            };
            // SAFETY: `p` is this value's own block of `cap >= bytes.len()`
            // bytes; `bytes` is borrowed from elsewhere (the caller holds
            // `&mut self`), so they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
            put6(&mut self.data[..6], bytes.len());
            put_addr(&mut self.data[6..], p);
            self.enc = enc;
            return;
        }
        *self = StrValue::with_encoding(bytes, enc);
    }

    /// Runs `f` on the contents as a `Vec` (a heap buffer is lent as is)
    /// and stores the result with `enc`.
    pub fn edit<R>(&mut self, enc: StrEncoding, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut v = if self.tag == Tag::Heap {
            let len = get6(&self.data[..6]);
            let cap = self.heap_capacity();
            let p = get_addr(&self.data[6..]);
            // The tag goes inline first: if `f` panics, the Vec frees the
            // block and `self` (an empty string) does not free it again.
            self.tag = Tag::L0;
            // SAFETY: the invariant: a block of `cap` bytes from the global
            // allocator with `Layout::array::<u8>(cap)`, `len` of them
            // initialised, owned by `self`, whose claim ends here.
            unsafe { Vec::from_raw_parts(p, len, cap) }
        } else {
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(self.as_bytes());
            v
        };
        let r = f(&mut v);
        *self = StrValue::from_vec(v, enc);
        r
    }
}

impl Drop for StrValue {
    fn drop(&mut self) {
        if self.tag == Tag::Heap {
            let cap = self.heap_capacity();
            // SAFETY: the invariant: this value's block of `cap` bytes from
            // the global allocator; `self` is being dropped, so its claim
            // ends here.
            unsafe { dealloc(get_addr(&self.data[6..]), layout(cap)) };
        }
    }
}

impl Clone for StrValue {
    fn clone(&self) -> StrValue {
        StrValue::with_encoding(self.as_bytes(), self.enc)
    }
}

impl Deref for StrValue {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for StrValue {
    /// Equal contents; the encoding is how it was written, not what it is.
    fn eq(&self, other: &StrValue) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl From<&[u8]> for StrValue {
    fn from(bytes: &[u8]) -> StrValue {
        StrValue::new(bytes)
    }
}

impl From<Vec<u8>> for StrValue {
    fn from(v: Vec<u8>) -> StrValue {
        StrValue::from_vec(v, StrEncoding::Auto)
    }
}

impl fmt::Debug for StrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StrValue({:?}, {:?})",
            String::from_utf8_lossy(self.as_bytes()),
            self.enc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_leave_a_48_byte_slot() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        assert_eq!(std::mem::size_of::<StrValue>(), 16);
        assert_eq!(std::mem::size_of::<Option<Key>>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 16);
        assert_eq!(std::mem::size_of::<DbKey>(), 24);
        // indexmap's slot of the keyspace: the hash, the key, the value.
        assert_eq!(std::mem::size_of::<(u64, DbKey, super::super::Value)>(), 48);
    }

    #[test]
    fn keys_hash_and_compare_as_their_bytes() {
        let s = ahash::RandomState::new();
        for len in [0, 1, 15, 16, 17, 100] {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let k = Key::new(&bytes);
            assert_eq!(&*k, &bytes[..]);
            assert_eq!(s.hash_one(&k), s.hash_one(&bytes[..]));
            assert_eq!(k.heap_len(), if len > Key::INLINE { len } else { 0 });
            assert_eq!(k.clone(), k);
        }
        let mut m = indexmap::IndexMap::<Key, u32, ahash::RandomState>::default();
        m.insert(Key::new(b"a long key, longer than fifteen bytes"), 1);
        m.insert(Key::new(b"short"), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&2));
        assert_eq!(
            m.get(&b"a long key, longer than fifteen bytes"[..]),
            Some(&1)
        );
        assert_eq!(m.get(&b"shor"[..]), None);
    }

    #[test]
    fn db_keys_hash_and_compare_as_their_bytes_alone() {
        let s = ahash::RandomState::new();
        for len in [0, 1, 15, 16, 17, 18, 19, 100] {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let mut k = DbKey::new(&bytes, 7);
            assert_eq!(&*k, &bytes[..]);
            assert_eq!(k.bytes.heap_len(), if len > 18 { len } else { 0 });
            assert_eq!(k.heap_ptr().is_some(), len > DbKey::INLINE);
            assert!(k.may_equal(&bytes));
            let hash = s.hash_one(&k);
            assert_eq!(hash, s.hash_one(&bytes[..]));
            // The metadata is no part of the key's identity.
            let other = DbKey::new(&bytes, 9);
            k.has_ttl = true;
            k.accessed = 1;
            assert_eq!(k, other);
            assert_eq!(s.hash_one(&k), hash);
            assert_eq!((k.accessed(), k.has_ttl()), (1, true));
        }
        let mut m = indexmap::IndexMap::<DbKey, u32, ahash::RandomState>::default();
        for (i, key) in [
            &b"key:000000012345"[..],
            b"key:00000001234567",
            b"key:000000012345678",
        ]
        .into_iter()
        .enumerate()
        {
            m.insert(DbKey::new(key, 0), i as u32);
        }
        assert_eq!(m.get(&b"key:00000001234567"[..]), Some(&1));
        assert_eq!(m.get(&b"key:000000012345678"[..]), Some(&2));
        assert_eq!(m.get(&b"key:0000000123456"[..]), None);
        use indexmap::map::MutableKeys;
        let (_, k, _) = m.get_full_mut2(&b"key:000000012345"[..]).unwrap();
        k.accessed = 42;
        assert_eq!(
            m.get_key_value(&b"key:000000012345"[..])
                .unwrap()
                .0
                .accessed(),
            42
        );
    }

    #[test]
    fn encodings_as_redis_7_0() {
        let auto = |s: &[u8]| StrValue::new(s).encoding();
        assert_eq!(auto(b"12345"), "int");
        assert_eq!(auto(b"-9223372036854775808"), "int");
        assert_eq!(auto(b"9223372036854775808"), "embstr");
        assert_eq!(auto(b"0123"), "embstr");
        assert_eq!(auto(b"+1"), "embstr");
        assert_eq!(auto(&[b'x'; 44]), "embstr");
        assert_eq!(auto(&[b'x'; 45]), "raw");
        assert_eq!(
            StrValue::with_encoding(b"12", StrEncoding::Raw).encoding(),
            "raw"
        );
        assert_eq!(
            StrValue::with_encoding(b"3", StrEncoding::Text).encoding(),
            "embstr"
        );
        let mut v = StrValue::new(b"12");
        v.edit(StrEncoding::Raw, |v| v.push(b'3'));
        assert_eq!((&*v, v.encoding()), (&b"123"[..], "raw"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(Vec<u8>),
        Append(Vec<u8>),
        Truncate(usize),
        SetRange(usize, Vec<u8>),
        Clone,
    }

    fn op() -> impl Strategy<Value = Op> {
        let bytes = prop::collection::vec(any::<u8>(), 0..80);
        prop_oneof![
            bytes.clone().prop_map(Op::Assign),
            bytes.clone().prop_map(Op::Append),
            (0usize..100).prop_map(Op::Truncate),
            ((0usize..60), bytes).prop_map(|(o, b)| Op::SetRange(o, b)),
            Just(Op::Clone),
        ]
    }

    proptest! {
        /// Any sequence of writes leaves a StrValue equal to a plain Vec
        /// given the same writes, inline exactly when it fits.
        #[test]
        fn str_value_behaves_as_a_vec(ops in prop::collection::vec(op(), 0..40)) {
            let mut model: Vec<u8> = Vec::new();
            let mut v = StrValue::new(b"");
            for op in ops {
                match op {
                    Op::Assign(b) => { v.assign(&b, StrEncoding::Auto); model = b; }
                    Op::Append(b) => {
                        v.edit(StrEncoding::Raw, |s| s.extend_from_slice(&b));
                        model.extend_from_slice(&b);
                    }
                    Op::Truncate(n) => {
                        v.edit(StrEncoding::Raw, |s| s.truncate(n));
                        model.truncate(n);
                    }
                    Op::SetRange(o, b) => {
                        let f = |s: &mut Vec<u8>| {
                            if s.len() < o + b.len() { s.resize(o + b.len(), 0); }
                            s[o..o + b.len()].copy_from_slice(&b);
                        };
                        v.edit(StrEncoding::Raw, f);
                        f(&mut model);
                    }
                    Op::Clone => { let c = v.clone(); v = c; }
                }
                prop_assert_eq!(&*v, &model[..]);
                prop_assert_eq!(v.heap_capacity() == 0, model.len() <= StrValue::INLINE);
                let least = if model.len() > StrValue::INLINE { model.len() } else { 0 };
                prop_assert!(v.heap_capacity() >= least);
            }
        }

        #[test]
        fn key_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let k = Key::new(&bytes);
            prop_assert_eq!(&*k, &bytes[..]);
            let c = k.clone();
            drop(k);
            prop_assert_eq!(&*c, &bytes[..]);
            prop_assert_eq!(StrValue::from(bytes.clone()), StrValue::new(&bytes));
        }
    }
}
