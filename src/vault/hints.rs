//! Which (user, service) pairs have the user's own key: a lock-free hint table.

/// Which (user, service) pairs resolved to the user's own key last time, so the next
/// resolution reads only the user's field (one HGET) instead of the whole pipeline with its
/// pool draws. A table of fingerprints in 8-way sets of one cache line each, sized like the
/// data-key cache, no lock: a stale hint (the key was removed elsewhere) or one evicted from a
/// full set costs one more round trip, never a wrong key.
pub(super) struct OwnKeyHints {
    hasher: foldhash::fast::RandomState,
    sets: Box<[HintSet]>,
}

/// Eight fingerprints (0 = empty) in one cache line.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct HintSet([std::sync::atomic::AtomicU64; 8]);

impl OwnKeyHints {
    /// A table for about `pairs` pairs: about three ways each, so pairs that share a set seldom
    /// evict each other.
    pub(super) fn new(pairs: usize) -> Self {
        let sets = (pairs.max(8) / 4).next_power_of_two();
        Self {
            hasher: foldhash::fast::RandomState::default(),
            sets: (0..sets).map(|_| HintSet::default()).collect(),
        }
    }

    /// The set and the non-zero fingerprint of a pair.
    pub(super) fn locate(
        &self,
        user_id: u64,
        service: &str,
    ) -> (&[std::sync::atomic::AtomicU64; 8], u64) {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one((user_id, service));
        (
            &self.sets[hash as usize & (self.sets.len() - 1)].0,
            hash | 1,
        )
    }

    pub(super) fn has_own_key(&self, user_id: u64, service: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let (set, fingerprint) = self.locate(user_id, service);
        set.iter().any(|way| way.load(Relaxed) == fingerprint)
    }

    pub(super) fn remember(&self, user_id: u64, service: &str, own_key: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let (set, fingerprint) = self.locate(user_id, service);
        let held = set.iter().find(|way| way.load(Relaxed) == fingerprint);
        match (own_key, held) {
            (true, Some(_)) | (false, None) => {}
            // Clear only this pair's hint, not another pair's in the same set.
            (false, Some(way)) => {
                let _ = way.compare_exchange(fingerprint, 0, Relaxed, Relaxed);
            }
            (true, None) => {
                let stored = set.iter().any(|way| {
                    way.compare_exchange(0, fingerprint, Relaxed, Relaxed)
                        .is_ok()
                });
                if !stored {
                    // A full set: replace the way the fingerprint's top bits pick.
                    set[(fingerprint >> 61) as usize].store(fingerprint, Relaxed);
                }
            }
        }
    }
}
