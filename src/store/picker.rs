//! Random positions for one command (SRANDMEMBER, SPOP, ZRANDMEMBER,
//! HRANDFIELD…). The shard's generator lives in [`Db`], which cannot lend it
//! while one of its values is borrowed, so a command draws one seed from it
//! and continues with splitmix64.

use std::collections::HashMap;

use super::{Db, Hasher};

/// A command's own generator, seeded from the shard's.
pub(crate) struct Picker(u64);

impl Picker {
    pub(crate) fn new(db: &mut Db) -> Picker {
        Picker(db.random_index(usize::MAX) as u64)
    }

    /// A fixed seed, for tests that want repeatable picks.
    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> Picker {
        Picker(seed)
    }

    /// Uniform enough in `0..n` for sampling (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n as u64) as usize
    }

    /// `count` distinct positions in `0..len` (count <= len): a Fisher-Yates
    /// shuffle of a virtual `0..len` that records only the swapped slots,
    /// so sampling a few members of a huge set costs O(count), not O(len).
    pub(crate) fn distinct(&mut self, len: usize, count: usize) -> Vec<usize> {
        let mut moved: HashMap<usize, usize, Hasher> =
            HashMap::with_capacity_and_hasher(count, Hasher::new());
        (0..count)
            .map(|k| {
                let j = k + self.below(len - k);
                let at_j = moved.get(&j).copied().unwrap_or(j);
                let at_k = moved.get(&k).copied().unwrap_or(k);
                moved.insert(j, at_k);
                at_j
            })
            .collect()
    }
}
