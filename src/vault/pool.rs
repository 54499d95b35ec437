//! A shared pool of keys, and the owner id of its data key.

use std::fmt;

use crate::storage::{Layout, Owner};

use super::KeySource;

/// A shared pool of keys: the whole bot's, or one channel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pool {
    /// The global pool (bot admins).
    Global,
    /// One channel's pool (members who manage that channel).
    Channel(u64),
}

impl Pool {
    /// Whose data key seals the pool's values.
    pub fn owner(&self) -> Owner {
        match self {
            Pool::Global => Owner::GlobalPool,
            Pool::Channel(id) => Owner::ChannelPool(*id),
        }
    }

    /// The owner id of the pool's data key: `pool:global` or `pool:channel:{id}`.
    pub fn owner_id(&self) -> String {
        self.owner().id()
    }

    pub(super) fn storage_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_key(service),
            Pool::Channel(id) => layout.channel_pool_key(*id, service),
        }
    }

    /// The hash of the pool's benched keys for `service`.
    pub(crate) fn bench_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_bench_key(service),
            Pool::Channel(id) => layout.channel_pool_bench_key(*id, service),
        }
    }

    /// The hash of the pool's strikes for `service`: keys that failed one user's call.
    pub(crate) fn strikes_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_strikes_key(service),
            Pool::Channel(id) => layout.channel_pool_strikes_key(*id, service),
        }
    }

    /// The hash of the pool's per-key counters for `service` on `day` (UTC).
    pub(crate) fn usage_key(&self, layout: &Layout, service: &str, day: time::Date) -> String {
        match self {
            Pool::Global => layout.global_pool_usage_key(service, day),
            Pool::Channel(id) => layout.channel_pool_usage_key(*id, service, day),
        }
    }

    pub(super) fn source(&self) -> KeySource {
        match self {
            Pool::Global => KeySource::GlobalPool,
            Pool::Channel(_) => KeySource::ChannelPool,
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pool::Global => f.write_str("the global pool"),
            Pool::Channel(id) => write!(f, "the pool of channel {id}"),
        }
    }
}
