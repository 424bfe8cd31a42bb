//! Hot-key detection: a Count-Min Sketch per shard plus a small top-K set.
//!
//! The sketch (4 rows × 64 columns of u64, 2 KiB) answers "how often was
//! this key accessed" with an estimate that is never below the true count.
//! It cannot list keys, so each shard also keeps up to K candidate keys
//! whose estimate was among the largest it has seen. Both halve on decay,
//! which turns the counts into a sliding window over recent accesses.

pub const ROWS: usize = 4;
pub const COLUMNS: usize = 64;

/// Fixed seeds: the same key maps to the same cells on every shard and run.
fn key_hash(key: &[u8]) -> u64 {
    ahash::RandomState::with_seeds(0x6b6f_7261, 0x686f_746b, 0x7365_7973, 0x6b65_7463).hash_one(key)
}

#[derive(Clone, Debug)]
pub struct CountMinSketch {
    cells: [[u64; COLUMNS]; ROWS],
}

impl Default for CountMinSketch {
    fn default() -> Self {
        CountMinSketch {
            cells: [[0; COLUMNS]; ROWS],
        }
    }
}

impl CountMinSketch {
    /// Each row takes its own 16 bits of the key hash as its column.
    #[inline]
    fn column(hash: u64, row: usize) -> usize {
        ((hash >> (row * 16)) as usize) % COLUMNS
    }

    /// Adds one access and returns the new estimate.
    #[inline]
    pub fn increment_hash(&mut self, hash: u64) -> u64 {
        let mut estimate = u64::MAX;
        for (row, cells) in self.cells.iter_mut().enumerate() {
            let cell = &mut cells[Self::column(hash, row)];
            *cell = cell.saturating_add(1);
            estimate = estimate.min(*cell);
        }
        estimate
    }

    pub fn increment(&mut self, key: &[u8]) -> u64 {
        self.increment_hash(key_hash(key))
    }

    pub fn estimate_hash(&self, hash: u64) -> u64 {
        (0..ROWS)
            .map(|row| self.cells[row][Self::column(hash, row)])
            .min()
            .unwrap_or(0)
    }

    pub fn estimate(&self, key: &[u8]) -> u64 {
        self.estimate_hash(key_hash(key))
    }

    pub fn decay(&mut self) {
        for cell in self.cells.iter_mut().flatten() {
            *cell /= 2;
        }
    }

    pub fn cells(&self) -> impl Iterator<Item = u64> + '_ {
        self.cells.iter().flatten().copied()
    }
}

#[derive(Clone, Debug)]
struct Candidate {
    hash: u64,
    key: Box<[u8]>,
    count: u64,
}

/// The sketch plus the top-K candidates it feeds.
#[derive(Clone, Debug)]
pub struct HotKeys {
    sketch: CountMinSketch,
    top: Vec<Candidate>,
    capacity: usize,
    /// Smallest count in `top` once it is full; an access whose estimate
    /// does not beat it skips the scan of `top`.
    floor: u64,
    enabled: bool,
}

impl HotKeys {
    pub fn new(capacity: usize, enabled: bool) -> HotKeys {
        HotKeys {
            sketch: CountMinSketch::default(),
            top: Vec::with_capacity(capacity),
            capacity: capacity.max(1),
            floor: 0,
            enabled,
        }
    }

    #[inline]
    pub fn touch(&mut self, key: &[u8]) {
        if !self.enabled {
            return;
        }
        let hash = key_hash(key);
        let estimate = self.sketch.increment_hash(hash);
        if self.top.len() == self.capacity && estimate <= self.floor {
            return;
        }
        self.offer(hash, key, estimate);
    }

    fn offer(&mut self, hash: u64, key: &[u8], estimate: u64) {
        if let Some(c) = self
            .top
            .iter_mut()
            .find(|c| c.hash == hash && &*c.key == key)
        {
            c.count = estimate;
        } else if self.top.len() < self.capacity {
            self.top.push(Candidate {
                hash,
                key: key.into(),
                count: estimate,
            });
        } else {
            let (weakest, _) = self
                .top
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.count)
                .expect("top is full, so not empty");
            self.top[weakest] = Candidate {
                hash,
                key: key.into(),
                count: estimate,
            };
        }
        if self.top.len() == self.capacity {
            self.floor = self.top.iter().map(|c| c.count).min().unwrap_or(0);
        }
    }

    pub fn decay(&mut self) {
        self.sketch.decay();
        for c in &mut self.top {
            c.count /= 2;
        }
        self.top.retain(|c| c.count > 0);
        self.floor /= 2;
    }

    /// Candidates with their current estimates, highest first.
    pub fn top(&self) -> Vec<(Vec<u8>, u64)> {
        let mut out: Vec<(Vec<u8>, u64)> = self
            .top
            .iter()
            .map(|c| (c.key.to_vec(), self.sketch.estimate_hash(c.hash)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    pub fn estimate(&self, key: &[u8]) -> u64 {
        self.sketch.estimate(key)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes how many candidates are kept; a smaller K drops the
    /// weakest ones.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        if self.top.len() > self.capacity {
            self.top.sort_by_key(|c| std::cmp::Reverse(c.count));
            self.top.truncate(self.capacity);
        }
        self.floor = if self.top.len() == self.capacity {
            self.top.iter().map(|c| c.count).min().unwrap_or(0)
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn never_undercounts(keys in proptest::collection::vec(0u16..2000, 1..3000)) {
            let mut sketch = CountMinSketch::default();
            let mut truth: HashMap<u16, u64> = HashMap::new();
            for k in &keys {
                sketch.increment(&k.to_le_bytes());
                *truth.entry(*k).or_default() += 1;
            }
            for (k, n) in truth {
                prop_assert!(sketch.estimate(&k.to_le_bytes()) >= n);
            }
        }
    }

    #[test]
    fn decay_halves_every_counter() {
        let mut sketch = CountMinSketch::default();
        for i in 0..5000u32 {
            sketch.increment(&(i % 300).to_le_bytes());
        }
        let before: Vec<u64> = sketch.cells().collect();
        sketch.decay();
        let after: Vec<u64> = sketch.cells().collect();
        assert!(before.iter().any(|&c| c > 1));
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(*a, b / 2);
        }
    }

    #[test]
    fn skewed_key_leads_top_k() {
        let mut hot = HotKeys::new(4, true);
        for round in 0..100u32 {
            for k in 0..50u32 {
                hot.touch(format!("cold:{k}").as_bytes());
            }
            for _ in 0..10 {
                hot.touch(b"hot");
            }
            let _ = round;
        }
        let top = hot.top();
        assert_eq!(top[0].0, b"hot".to_vec());
        assert!(top[0].1 >= 1000);
        hot.decay();
        assert!(hot.top()[0].1 >= 500);
        hot.set_capacity(1);
        assert_eq!(hot.top().len(), 1);
        assert_eq!(hot.top()[0].0, b"hot".to_vec(), "the strongest stays");
        hot.set_capacity(3);
        for k in 0..5u32 {
            hot.touch(format!("new:{k}").as_bytes());
        }
        assert_eq!(hot.top().len(), 3);
    }
}
