//! Compact byte strings for the keyspace: [`Key`] and [`StrValue`].
//!
//! A key or a string value used to be its own heap allocation (a
//! `Box<[u8]>` key, a `Vec<u8>` value), each with an allocator header and
//! rounding, reached through a 16- or 24-byte handle in the map slot. These
//! two types keep short ones inside the slot instead, as Redis's embstr
//! keeps short strings in the object header:
//!
//! - [`Key`] is 16 bytes: keys of up to [`Key::INLINE`] (15) bytes are
//!   stored inline, longer ones in one exact-size heap block.
//! - [`StrValue`] is 24 bytes, as the `Vec<u8>` it replaces: values of up to
//!   [`StrValue::INLINE`] (22) bytes are inline, longer ones in a growable
//!   heap buffer (length and capacity, so APPEND stays amortised O(1)). It
//!   also records how the value was written ([`StrEncoding`]), which is what
//!   OBJECT ENCODING reports as Redis 7.0 does (int / embstr / raw).
//!
//! Both are `align(1)` and start with a tag byte that has 24 valid values,
//! so they leave a niche: `Value` (a string or a boxed aggregate) stays 24
//! bytes and a map slot (hash + `Key` + `Entry`) 56 (see the size test).
//!
//! Invariants (the only `unsafe` of the store relies on them):
//! - tag `Tag::Heap` ⇔ the bytes hold the address, length and capacity of a
//!   live allocation this value owns, made by `Vec<u8>` (for `StrValue`) or
//!   `Box<[u8]>` (for `Key`, capacity = length) with the global allocator;
//!   the address is stored with its provenance exposed and recovered with
//!   `with_exposed_provenance_mut`;
//! - otherwise the tag is the inline length and the first that many data
//!   bytes are the contents;
//! - a value whose length fits inline is always inline (so equal contents
//!   have one representation, and the heap case is never empty).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::mem::ManuallyDrop;
use std::ops::Deref;

/// The tag byte: an inline length (0..=22) or `Heap`. An enum rather than
/// a `u8` so that the other 232 values are a niche for `Value`'s variants.
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

/// A key: up to 15 bytes inline, else one exact-size heap block. Hashes
/// and compares as the `[u8]` it holds, so maps keyed by `Key` are looked
/// up with a `&[u8]`.
pub struct Key {
    tag: Tag,
    /// Inline: the bytes. Heap: length (7 bytes) then address (8 bytes).
    data: [u8; 15],
}

impl Key {
    /// Longest key kept inline.
    pub const INLINE: usize = 15;

    pub fn new(bytes: &[u8]) -> Key {
        let mut data = [0u8; 15];
        if bytes.len() <= Self::INLINE {
            data[..bytes.len()].copy_from_slice(bytes);
            return Key {
                tag: INLINE_TAGS[bytes.len()],
                data,
            };
        }
        let boxed: Box<[u8]> = bytes.into();
        let len = boxed.len();
        let p = Box::into_raw(boxed) as *mut u8;
        put7(&mut data[..7], len);
        put_addr(&mut data[7..], p);
        Key {
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
            unsafe { std::slice::from_raw_parts(get_addr(&self.data[7..]), len) }
        } else {
            &self.data[..self.tag as usize]
        }
    }

    /// Heap bytes this key owns beyond its slot (0 when inline).
    #[inline]
    pub fn heap_len(&self) -> usize {
        if self.tag == Tag::Heap { self.len() } else { 0 }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if self.tag == Tag::Heap {
            let len = get7(&self.data[..7]);
            let p = get_addr(&self.data[7..]);
            // SAFETY: the invariant: this key owns the `Box<[u8]>` made in
            // `Key::new` (same address and length); it is dropped once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) });
        }
    }
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key::new(self.as_bytes())
    }
}

impl Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Key {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for Key {
    /// As `[u8]` hashes, which `Borrow` lookups require.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl From<&[u8]> for Key {
    fn from(bytes: &[u8]) -> Key {
        Key::new(bytes)
    }
}

impl From<&Vec<u8>> for Key {
    fn from(bytes: &Vec<u8>) -> Key {
        Key::new(bytes)
    }
}

impl fmt::Debug for Key {
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

/// A string value: up to 22 bytes inline, else a growable heap buffer.
pub struct StrValue {
    tag: Tag,
    enc: StrEncoding,
    /// Inline: the bytes. Heap: length (7), capacity (7), address (8).
    data: [u8; 22],
}

impl StrValue {
    /// Longest value kept inline.
    pub const INLINE: usize = 22;

    /// A copy of `bytes`, encoded as SET writes it.
    pub fn new(bytes: &[u8]) -> StrValue {
        Self::with_encoding(bytes, StrEncoding::Auto)
    }

    pub fn with_encoding(bytes: &[u8], enc: StrEncoding) -> StrValue {
        if bytes.len() <= Self::INLINE {
            let mut data = [0u8; 22];
            data[..bytes.len()].copy_from_slice(bytes);
            StrValue {
                tag: INLINE_TAGS[bytes.len()],
                enc,
                data,
            }
        } else {
            Self::adopt(bytes.to_vec(), enc)
        }
    }

    /// Takes `v` (its buffer when it does not fit inline).
    pub fn from_vec(v: Vec<u8>, enc: StrEncoding) -> StrValue {
        if v.len() <= Self::INLINE {
            Self::with_encoding(&v, enc)
        } else {
            Self::adopt(v, enc)
        }
    }

    /// Owns `v`'s buffer; `v.len() > INLINE`.
    fn adopt(v: Vec<u8>, enc: StrEncoding) -> StrValue {
        debug_assert!(v.len() > Self::INLINE);
        let mut v = ManuallyDrop::new(v);
        let mut data = [0u8; 22];
        put7(&mut data[..7], v.len());
        put7(&mut data[7..14], v.capacity());
        put_addr(&mut data[14..], v.as_mut_ptr());
        StrValue {
            tag: Tag::Heap,
            enc,
            data,
        }
    }

    /// The heap buffer as the `Vec` it was made from; the caller must
    /// hand it back (`adopt`) or drop it, and forget `self`'s claim.
    ///
    /// # Safety
    /// `self.tag == Tag::Heap`, and afterwards `self` must not be used as
    /// a heap value again until it is overwritten (it would double-free).
    #[inline]
    unsafe fn take_vec(&self) -> Vec<u8> {
        let len = get7(&self.data[..7]);
        let cap = get7(&self.data[7..14]);
        let p = get_addr(&self.data[14..]);
        // SAFETY: the invariant (module docs): a `Vec<u8>`'s pointer, length
        // and capacity, owned by this value; the caller gives up the claim.
        unsafe { Vec::from_raw_parts(p, len, cap) }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        if self.tag == Tag::Heap {
            let len = get7(&self.data[..7]);
            // SAFETY: the invariant: a live buffer of at least `len`
            // initialised bytes, owned by `self` for the borrow's lifetime.
            unsafe { std::slice::from_raw_parts(get_addr(&self.data[14..]), len) }
        } else {
            &self.data[..self.tag as usize]
        }
    }

    /// Heap capacity this value owns beyond its slot (0 when inline).
    #[inline]
    pub fn heap_capacity(&self) -> usize {
        if self.tag == Tag::Heap {
            get7(&self.data[7..14])
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

    /// Replaces the contents with `bytes`, reusing the heap buffer when
    /// it is large enough (the SET-over-SET path allocates nothing).
    #[inline]
    pub fn assign(&mut self, bytes: &[u8], enc: StrEncoding) {
        if self.tag == Tag::Heap && bytes.len() > Self::INLINE {
            let cap = get7(&self.data[7..14]);
            // Not when most of the buffer would be slack: a 1 MB string
            // overwritten by a short one gets a buffer of its own size.
            if bytes.len() <= cap && bytes.len() >= cap / 2 {
                let p = get_addr(&self.data[14..]);
                // SAFETY: the invariant: `p` is this value's own buffer of
                // `cap >= bytes.len()` bytes; `bytes` is a borrow from
                // elsewhere (the caller holds `&mut self`), so they do not
                // overlap.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
                put7(&mut self.data[..7], bytes.len());
                self.enc = enc;
                return;
            }
        }
        *self = StrValue::with_encoding(bytes, enc);
    }

    /// Runs `f` on the contents as a `Vec` (a heap buffer is lent as is,
    /// so growth is amortised) and stores the result with `enc`.
    pub fn edit<R>(&mut self, enc: StrEncoding, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut v = if self.tag == Tag::Heap {
            // SAFETY: heap tag checked; `self` is overwritten below before
            // any other use, and a panic in `f` cannot double-free because
            // the tag is made inline first.
            let v = unsafe { self.take_vec() };
            self.tag = Tag::L0;
            v
        } else {
            let mut v = Vec::with_capacity(Self::INLINE * 2);
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
            // SAFETY: heap tag checked; `self` is being dropped, so its
            // claim ends here.
            drop(unsafe { self.take_vec() });
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
    fn sizes_leave_a_56_byte_slot() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        assert_eq!(std::mem::size_of::<StrValue>(), 24);
        assert_eq!(std::mem::size_of::<Option<Key>>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 24);
        assert_eq!(std::mem::size_of::<super::super::Entry>(), 32);
        // indexmap's slot: the hash, the key and the entry.
        assert_eq!(std::mem::size_of::<(u64, Key, super::super::Entry)>(), 56);
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
