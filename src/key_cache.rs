//! The in-memory cache of unwrapped data keys that every key store (SQLite, PostgreSQL) keeps,
//! and the lease that keeps it honest across processes: cached keys are used only while the
//! store's watcher has heard every erasure up to a moment less than [`LEASE`] ago.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::crypto::DataKey;

/// How long after the start of its watcher's last complete read a store still trusts its
/// cached keys. Past it (the watcher is stuck, or its connection lost) every call reads the
/// table instead, so an erased key is never used more than this long after the erasure.
pub(crate) const LEASE: Duration = Duration::from_millis(800);

/// A bounded LRU cache of data keys by owner, with its lease.
pub(crate) struct KeyCache {
    cache: Mutex<Entries>,
    /// Bumped (under the cache lock) whenever keys are evicted, so a read that began before an
    /// eviction does not put back the key the eviction removed.
    evictions: AtomicU64,
    /// Milliseconds since `epoch` until which cached keys may be used.
    fresh_until_ms: AtomicU64,
    epoch: Instant,
}

/// The cached keys, least recently promoted first, and a count of lookups.
struct Entries {
    lru: LruCache<String, Arc<DataKey>>,
    lookups: u32,
}

/// One lookup in this many moves its key to the front of the LRU list. Relinking the list on
/// every hit writes three nodes scattered in memory and costs more than the rest of the lookup;
/// a key in use is still promoted long before the cache's other keys push it out.
const PROMOTE_EVERY: u32 = 8;

impl KeyCache {
    /// An empty cache of at most `capacity` keys, fresh for one [`LEASE`] (nothing is cached
    /// yet, and the caller has just read where its watcher starts).
    pub(crate) fn new(capacity: usize) -> Self {
        let cache = Self {
            cache: Mutex::new(Entries {
                lru: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                lookups: 0,
            }),
            evictions: AtomicU64::new(0),
            fresh_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        cache.renew_lease(0);
        cache
    }

    /// Milliseconds since the cache was made: what [`KeyCache::renew_lease`] takes.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every erasure up to `read_started_ms` has been heard: cached keys may be used until
    /// [`LEASE`] after it.
    pub(crate) fn renew_lease(&self, read_started_ms: u64) {
        let until = read_started_ms + LEASE.as_millis() as u64;
        self.fresh_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    fn lease_valid(&self) -> bool {
        self.now_ms() < self.fresh_until_ms.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner's cached key, if the lease is valid.
    pub(crate) fn get(&self, owner: &str) -> Option<Arc<DataKey>> {
        if !self.lease_valid() {
            return None;
        }
        let mut entries = self.lock();
        entries.lookups = entries.lookups.wrapping_add(1);
        if entries.lookups.is_multiple_of(PROMOTE_EVERY) {
            entries.lru.get(owner).cloned()
        } else {
            entries.lru.peek(owner).cloned()
        }
    }

    /// The eviction count, read before a key is read from the table.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Acquire)
    }

    /// Caches a key read after [`KeyCache::evictions`] returned `evictions`, unless keys were
    /// evicted since (the row may be the one an eviction was about).
    pub(crate) fn put(&self, owner: &str, key: &Arc<DataKey>, evictions: u64) {
        let mut cache = self.lock();
        if self.evictions.load(Ordering::Acquire) == evictions {
            cache.lru.put(owner.to_owned(), Arc::clone(key));
        }
    }

    /// Drops these owners' keys.
    pub(crate) fn evict<'a>(&self, owners: impl IntoIterator<Item = &'a str>) {
        let mut cache = self.lock();
        for owner in owners {
            cache.lru.pop(owner);
        }
        self.evictions.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every key.
    pub(crate) fn evict_all(&self) {
        let mut cache = self.lock();
        cache.lru.clear();
        self.evictions.fetch_add(1, Ordering::AcqRel);
    }
}
