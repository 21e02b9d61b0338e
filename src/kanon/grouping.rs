//! Parallel group-by over packed keys (the workhorse of every evaluation).

use std::hash::{BuildHasher, Hash};

use std::sync::Mutex;

use rayon::prelude::*;

use super::hash::{FastBuild, FastMap};

/// Result of a group-by: for each group a representative item and the summed
/// weight; optionally the group of every item.
pub(crate) struct Groups {
    pub reps: Vec<u32>,
    pub weights: Vec<u64>,
    pub assign: Option<Vec<u32>>,
}

/// Groups items `0..n` by `key(i)`, summing `weight(i)`. Work is split into
/// hash shards, one per rayon thread: every thread scans all items and keeps
/// the keys of its shard, so no merge of hash maps is needed. The group order
/// depends on the number of threads; callers never rely on it.
pub(crate) fn group_by<K, F, W>(n: usize, key: F, weight: W, assign: bool) -> Groups
where
    K: Hash + Eq + Send,
    F: Fn(usize) -> K + Sync,
    W: Fn(usize) -> u64 + Sync,
{
    let shards = if n < 100_000 {
        1
    } else {
        rayon::current_num_threads().max(1)
    };
    let build = FastBuild::default();
    let shard_of = |k: &K| -> usize {
        if shards == 1 {
            0
        } else {
            ((build.hash_one(k) >> 40) as usize) % shards
        }
    };
    let parts: Vec<(Vec<u32>, Vec<u64>, Vec<u32>)> = (0..shards)
        .into_par_iter()
        .map(|s| {
            let mut map: FastMap<K, u32> = FastMap::default();
            let mut reps = Vec::new();
            let mut weights: Vec<u64> = Vec::new();
            let mut local = Vec::new();
            for i in 0..n {
                let k = key(i);
                if shard_of(&k) != s {
                    continue;
                }
                let next = reps.len() as u32;
                let id = *map.entry(k).or_insert_with(|| {
                    reps.push(i as u32);
                    weights.push(0);
                    next
                });
                weights[id as usize] += weight(i);
                if assign {
                    local.push(id);
                }
            }
            (reps, weights, local)
        })
        .collect();
    if parts.len() == 1 {
        let (reps, weights, local) = parts.into_iter().next().unwrap();
        return Groups {
            reps,
            weights,
            assign: assign.then_some(local),
        };
    }
    let mut offsets = Vec::with_capacity(parts.len());
    let mut total = 0u32;
    for p in &parts {
        offsets.push(total);
        total += p.0.len() as u32;
    }
    let assignment = if assign {
        let mut out = Vec::with_capacity(n);
        let mut cursor = vec![0usize; parts.len()];
        for i in 0..n {
            let s = shard_of(&key(i));
            out.push(offsets[s] + parts[s].2[cursor[s]]);
            cursor[s] += 1;
        }
        Some(out)
    } else {
        None
    };
    let mut reps = Vec::with_capacity(total as usize);
    let mut weights = Vec::with_capacity(total as usize);
    for (r, w, _) in parts {
        reps.extend(r);
        weights.extend(w);
    }
    Groups {
        reps,
        weights,
        assign: assignment,
    }
}

/// A fixed-width packed key for the open-addressing group-by.
pub(crate) trait PackedKey: Copy + Eq + Send + Sync + Default + 'static {
    fn hash64(self) -> u64;
    /// Pool of table buffers for this key type (see [`release_pools`]).
    fn pool() -> &'static Mutex<Vec<Vec<Slot<Self>>>>;
}

static POOL_U64: Mutex<Vec<Vec<Slot<u64>>>> = Mutex::new(Vec::new());
static POOL_U128: Mutex<Vec<Vec<Slot<u128>>>> = Mutex::new(Vec::new());

impl PackedKey for u64 {
    #[inline]
    fn hash64(self) -> u64 {
        super::hash::fmix64(self)
    }
    fn pool() -> &'static Mutex<Vec<Vec<Slot<Self>>>> {
        &POOL_U64
    }
}

impl PackedKey for u128 {
    #[inline]
    fn hash64(self) -> u64 {
        super::hash::fmix64(self as u64 ^ super::hash::fmix64((self >> 64) as u64))
    }
    fn pool() -> &'static Mutex<Vec<Vec<Slot<Self>>>> {
        &POOL_U128
    }
}

/// Frees the table buffers kept for reuse between group-bys. Large tables are
/// recycled because fresh allocations of hundreds of MB cost more in page
/// faults than the grouping itself; call this after a batch of group-bys.
pub(crate) fn release_pools() {
    POOL_U64.lock().unwrap_or_else(|e| e.into_inner()).clear();
    POOL_U128.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Tables smaller than this many slots are not pooled.
const POOL_MIN_SLOTS: usize = 1 << 16;
/// At most this many buffers are kept per key type.
const POOL_MAX: usize = 4;

/// One slot of the open-addressing table: key, representative item and
/// summed weight (weight 0 = empty; every item weighs at least 1 and totals
/// fit in `u32` because datasets are limited to `u32::MAX` rows).
#[derive(Clone, Copy, Default)]
pub(crate) struct Slot<K> {
    key: K,
    rep: u32,
    count: u32,
}

/// Linear-probing table, one cache line access per lookup in the common case.
struct Table<K: PackedKey> {
    slots: Vec<Slot<K>>,
    mask: usize,
    len: usize,
}

impl<K: PackedKey> Table<K> {
    fn with_capacity(n: usize) -> Self {
        let cap = (n.max(8) * 2).next_power_of_two();
        Table {
            slots: Self::buffer(cap),
            mask: cap - 1,
            len: 0,
        }
    }

    /// A zeroed buffer of `cap` slots, recycled from the pool if possible.
    fn buffer(cap: usize) -> Vec<Slot<K>> {
        if cap >= POOL_MIN_SLOTS {
            let mut pool = K::pool().lock().unwrap_or_else(|e| e.into_inner());
            // Prefer the smallest buffer that is large enough.
            if let Some(i) = (0..pool.len())
                .filter(|&i| pool[i].capacity() >= cap)
                .min_by_key(|&i| pool[i].capacity())
            {
                let mut v = pool.swap_remove(i);
                drop(pool);
                v.clear();
                v.resize(cap, Slot::default());
                return v;
            }
        }
        vec![Slot::default(); cap]
    }

    fn recycle(v: Vec<Slot<K>>) {
        if v.capacity() >= POOL_MIN_SLOTS {
            let mut pool = K::pool().lock().unwrap_or_else(|e| e.into_inner());
            pool.push(v);
            if pool.len() > POOL_MAX {
                // Drop the smallest.
                let i = (0..pool.len()).min_by_key(|&i| pool[i].capacity()).unwrap();
                pool.swap_remove(i);
            }
        }
    }

    #[inline]
    fn add(&mut self, key: K, h: u64, rep: u32, w: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut p = (h as usize) & self.mask;
        loop {
            let s = &mut self.slots[p];
            if s.count == 0 {
                *s = Slot { key, rep, count: w };
                self.len += 1;
                return;
            }
            if s.key == key {
                s.count += w;
                return;
            }
            p = (p + 1) & self.mask;
        }
    }

    #[inline]
    fn find(&self, key: K, h: u64) -> usize {
        let mut p = (h as usize) & self.mask;
        loop {
            let s = &self.slots[p];
            if s.key == key && s.count != 0 {
                return p;
            }
            p = (p + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, Self::buffer(cap));
        self.mask = cap - 1;
        for s in &old {
            if s.count != 0 {
                let mut p = (s.key.hash64() as usize) & self.mask;
                while self.slots[p].count != 0 {
                    p = (p + 1) & self.mask;
                }
                self.slots[p] = *s;
            }
        }
        Self::recycle(old);
    }
}

impl<K: PackedKey> Drop for Table<K> {
    fn drop(&mut self) {
        Self::recycle(std::mem::take(&mut self.slots));
    }
}

/// Like [`group_by`] for fixed-width keys. Items are first partitioned by
/// hash into one shard per thread (keys computed once, in parallel chunks),
/// then each shard is grouped in its own open-addressing table. `estimate`
/// is an upper-bound guess of the number of groups (used to pre-size the
/// tables). Weights must be >= 1 and their total must fit in `u32`.
pub(crate) fn group_by_packed<K, F, W>(
    n: usize,
    key: F,
    weight: W,
    assign: bool,
    estimate: usize,
) -> (Groups, Vec<K>)
where
    K: PackedKey,
    F: Fn(usize) -> K + Sync,
    W: Fn(usize) -> u64 + Sync,
{
    let shards = if n < 200_000 {
        1
    } else {
        rayon::current_num_threads().max(1)
    };
    let estimate = estimate.min(n);
    if shards == 1 {
        let mut t: Table<K> = Table::with_capacity(estimate);
        for i in 0..n {
            let k = key(i);
            t.add(k, k.hash64(), i as u32, weight(i) as u32);
        }
        let (reps, weights, keys, slot_id) = extract(&t, assign);
        let assign = assign.then(|| {
            (0..n)
                .map(|i| {
                    let k = key(i);
                    slot_id[t.find(k, k.hash64())]
                })
                .collect()
        });
        return (
            Groups {
                reps,
                weights,
                assign,
            },
            keys,
        );
    }
    if !assign && estimate <= 1 << 16 {
        // Few groups: every thread groups a contiguous range in its own table,
        // then the (small) tables are merged.
        let per = n.div_ceil(shards);
        let mut tables: Vec<Table<K>> = (0..shards)
            .into_par_iter()
            .map(|s| {
                let mut t: Table<K> = Table::with_capacity(estimate.min(1 << 16));
                for i in s * per..((s + 1) * per).min(n) {
                    let k = key(i);
                    t.add(k, k.hash64(), i as u32, weight(i) as u32);
                }
                t
            })
            .collect();
        let mut t = tables.remove(0);
        for o in tables {
            for &sl in &o.slots {
                if sl.count != 0 {
                    t.add(sl.key, sl.key.hash64(), sl.rep, sl.count);
                }
            }
        }
        let (reps, weights, keys, _) = extract(&t, false);
        return (
            Groups {
                reps,
                weights,
                assign: None,
            },
            keys,
        );
    }
    // Partition: per chunk, per shard, (items, keys).
    let chunk = (n / (shards * 8)).max(1 << 15);
    let nchunks = n.div_ceil(chunk);
    let parts: Vec<Vec<(Vec<u32>, Vec<K>)>> = (0..nchunks)
        .into_par_iter()
        .map(|c| {
            let lo = c * chunk;
            let hi = (lo + chunk).min(n);
            let mut out: Vec<(Vec<u32>, Vec<K>)> = (0..shards)
                .map(|_| {
                    (
                        Vec::with_capacity((hi - lo) / shards + 64),
                        Vec::with_capacity((hi - lo) / shards + 64),
                    )
                })
                .collect();
            for i in lo..hi {
                let k = key(i);
                let s = ((k.hash64() >> 40) as usize) % shards;
                out[s].0.push(i as u32);
                out[s].1.push(k);
            }
            out
        })
        .collect();
    type Shard<K> = (Vec<u32>, Vec<u64>, Vec<(u32, u32)>, Vec<K>);
    let per_shard: Vec<Shard<K>> = (0..shards)
        .into_par_iter()
        .map(|s| {
            let mut t: Table<K> = Table::with_capacity(estimate / shards + estimate / (4 * shards));
            for p in &parts {
                let (items, keys) = &p[s];
                for (&i, &k) in items.iter().zip(keys) {
                    t.add(k, k.hash64(), i, weight(i as usize) as u32);
                }
            }
            let (reps, weights, gkeys, slot_id) = extract(&t, assign);
            let mut local = Vec::new();
            if assign {
                for p in &parts {
                    let (items, keys) = &p[s];
                    for (&i, &k) in items.iter().zip(keys) {
                        local.push((i, slot_id[t.find(k, k.hash64())]));
                    }
                }
            }
            (reps, weights, local, gkeys)
        })
        .collect();
    drop(parts);
    let mut offsets = Vec::with_capacity(shards);
    let mut total = 0u32;
    for p in &per_shard {
        offsets.push(total);
        total += p.0.len() as u32;
    }
    let assignment = assign.then(|| {
        let mut out = vec![0u32; n];
        for (s, p) in per_shard.iter().enumerate() {
            for &(i, id) in &p.2 {
                out[i as usize] = offsets[s] + id;
            }
        }
        out
    });
    let mut reps = Vec::with_capacity(total as usize);
    let mut weights = Vec::with_capacity(total as usize);
    let mut keys = Vec::with_capacity(total as usize);
    for (r, w, _, k) in per_shard {
        reps.extend(r);
        weights.extend(w);
        keys.extend(k);
    }
    (
        Groups {
            reps,
            weights,
            assign: assignment,
        },
        keys,
    )
}

/// Occupied slots in slot order: representatives, weights and, if asked,
/// the slot -> group id map.
fn extract<K: PackedKey>(t: &Table<K>, with_ids: bool) -> (Vec<u32>, Vec<u64>, Vec<K>, Vec<u32>) {
    let mut reps = Vec::with_capacity(t.len);
    let mut weights = Vec::with_capacity(t.len);
    let mut keys = Vec::with_capacity(t.len);
    let mut ids = if with_ids {
        vec![0u32; t.slots.len()]
    } else {
        Vec::new()
    };
    for (p, s) in t.slots.iter().enumerate() {
        if s.count != 0 {
            if with_ids {
                ids[p] = reps.len() as u32;
            }
            reps.push(s.rep);
            weights.push(s.count as u64);
            keys.push(s.key);
        }
    }
    (reps, weights, keys, ids)
}
