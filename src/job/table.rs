//! A flat open-addressing hash table (linear probing, power-of-two capacity, at most 5/8 full)
//! whose slots carry their full hash, so one probe touches one cache line — and whose slot
//! address can be prefetched before the probe. The kernels hash a whole batch of rows first,
//! then probe row `i` while prefetching the slots of row `i + PREFETCH_DISTANCE`: the memory
//! latency of tables far bigger than the CPU caches overlaps instead of adding up.

/// How far ahead of the probing row the batch loops prefetch.
pub const PREFETCH_DISTANCE: usize = 16;

/// A slot: `EMPTY` marks a free one.
pub trait TableSlot: Copy {
    const EMPTY: Self;
    fn is_empty(&self) -> bool;
    fn hash(&self) -> u64;
}

/// Where [`ProbeTable::entry`] found room for a new key.
#[derive(Debug)]
pub struct Vacant(usize);

#[derive(Debug, Clone)]
pub struct ProbeTable<S: TableSlot> {
    slots: Vec<S>,
    len: usize,
}

impl<S: TableSlot> Default for ProbeTable<S> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// Hints the CPU to load the cache line at `pointer` (a no-op off x86-64).
#[inline(always)]
pub fn prefetch<T>(pointer: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE is part of the x86-64 baseline, and a prefetch is only a hint: it never
        // faults or reads memory architecturally, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(pointer.cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = pointer;
    }
}

impl<S: TableSlot> ProbeTable<S> {
    pub fn with_capacity(entries: usize) -> Self {
        let slots = (entries * 8 / 5 + 1).next_power_of_two().max(16);
        ProbeTable {
            slots: vec![S::EMPTY; slots],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Prefetches the first slot `hash` probes.
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        prefetch(
            self.slots
                .as_ptr()
                .wrapping_add(hash as usize & self.mask()),
        );
    }

    /// The first slot `hash` probes, if it holds that hash (for prefetching what it points to).
    #[inline(always)]
    pub fn peek(&self, hash: u64) -> Option<&S> {
        let slot = &self.slots[hash as usize & self.mask()];
        (!slot.is_empty() && slot.hash() == hash).then_some(slot)
    }

    /// The slot holding a key equal by `eq` among those with `hash`.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl FnMut(&S) -> bool) -> Option<&S> {
        self.find_index(hash, eq).map(|i| &self.slots[i])
    }

    /// The position of the slot holding a key equal by `eq` among those with `hash` (stable
    /// until the table next grows; positions are below [`ProbeTable::capacity`]).
    #[inline]
    pub fn find_index(&self, hash: u64, mut eq: impl FnMut(&S) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.is_empty() {
                return None;
            }
            if slot.hash() == hash && eq(slot) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Slots, free or not: every position [`ProbeTable::find_index`] can return is below it.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Every filled slot with its position.
    pub fn iter_indexed(&self) -> impl Iterator<Item = (usize, &S)> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| !s.is_empty())
    }

    /// The slot holding a key equal by `eq`, or the free slot where it belongs (fill it with
    /// [`ProbeTable::fill`] before any other change to the table).
    #[inline]
    pub fn entry(&mut self, hash: u64, mut eq: impl FnMut(&S) -> bool) -> Result<&mut S, Vacant> {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.is_empty() {
                return Err(Vacant(i));
            }
            if slot.hash() == hash && eq(slot) {
                return Ok(&mut self.slots[i]);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub fn fill(&mut self, vacant: Vacant, slot: S) {
        debug_assert!(self.slots[vacant.0].is_empty());
        self.slots[vacant.0] = slot;
        self.len += 1;
    }

    /// Inserts a slot known not to be in the table.
    #[inline]
    pub fn insert_unique(&mut self, slot: S) {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        self.place(slot);
        self.len += 1;
    }

    #[inline]
    fn place(&mut self, slot: S) {
        let mask = self.mask();
        let mut i = slot.hash() as usize & mask;
        while !self.slots[i].is_empty() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Makes room for `additional` more entries without growing on the way.
    pub fn reserve(&mut self, additional: usize) {
        while (self.len + additional) * 8 > self.slots.len() * 5 {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let doubled = vec![S::EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old {
            if !slot.is_empty() {
                self.place(slot);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &S> + '_ {
        self.slots.iter().filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair(u64, u32);

    impl TableSlot for Pair {
        const EMPTY: Self = Pair(0, u32::MAX);
        fn is_empty(&self) -> bool {
            self.1 == u32::MAX
        }
        fn hash(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn finds_what_it_holds_through_growth_and_collisions() {
        let mut table = ProbeTable::<Pair>::default();
        // Hashes that collide in their low bits force long probe runs.
        for v in 0..5000u32 {
            let hash = (v as u64 % 7) << 40 | (v as u64 % 3);
            if let Err(vacant) = table.entry(hash, |s| s.1 == v) {
                table.fill(vacant, Pair(hash, v));
            }
        }
        assert_eq!(table.len(), 5000);
        for v in 0..5000u32 {
            let hash = (v as u64 % 7) << 40 | (v as u64 % 3);
            assert_eq!(table.find(hash, |s| s.1 == v), Some(&Pair(hash, v)));
        }
        assert!(table.find(12345, |_| true).is_none());
        assert_eq!(table.iter().count(), 5000);
    }
}
