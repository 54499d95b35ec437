//! A shared pool of keys, and the owner id of its data key.

use std::fmt;

use crate::storage::{Layout, Owner};

use super::KeySource;

/// A shared pool of keys: the whole bot's, one server's, or one channel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pool {
    /// The global pool (bot admins).
    Global,
    /// One channel's pool (members who manage that channel).
    Channel(u64),
    /// One server's pool (members who manage that server).
    Guild(u64),
}

impl Pool {
    /// The pools a call in `channel_id` of `guild_id` may draw from, in the order they are
    /// tried: the channel's, the server's, the global pool.
    pub fn resolution_order(channel_id: Option<u64>, guild_id: Option<u64>) -> Vec<Pool> {
        let mut pools = Vec::with_capacity(3);
        pools.extend(channel_id.map(Pool::Channel));
        pools.extend(guild_id.map(Pool::Guild));
        pools.push(Pool::Global);
        pools
    }

    /// Whose data key seals the pool's values.
    pub fn owner(&self) -> Owner {
        match self {
            Pool::Global => Owner::GlobalPool,
            Pool::Channel(id) => Owner::ChannelPool(*id),
            Pool::Guild(id) => Owner::GuildPool(*id),
        }
    }

    /// The owner id of the pool's data key: `pool:global`, `pool:channel:{id}` or
    /// `pool:guild:{id}`.
    pub fn owner_id(&self) -> String {
        self.owner().id()
    }

    pub(super) fn storage_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_key(service),
            Pool::Channel(id) => layout.channel_pool_key(*id, service),
            Pool::Guild(id) => layout.guild_pool_key(*id, service),
        }
    }

    /// The hash of the pool's benched keys for `service`.
    pub(crate) fn bench_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_bench_key(service),
            Pool::Channel(id) => layout.channel_pool_bench_key(*id, service),
            Pool::Guild(id) => layout.guild_pool_bench_key(*id, service),
        }
    }

    /// The hash of the pool's strikes for `service`: keys that failed one user's call.
    pub(crate) fn strikes_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_strikes_key(service),
            Pool::Channel(id) => layout.channel_pool_strikes_key(*id, service),
            Pool::Guild(id) => layout.guild_pool_strikes_key(*id, service),
        }
    }

    /// The pool's scope: its field in the hash of daily limits, and part of its users'
    /// counters (`global`, `channel:{id}`, `guild:{id}`).
    pub(crate) fn scope(&self) -> String {
        match self {
            Pool::Global => Layout::global_pool_scope(),
            Pool::Channel(id) => Layout::channel_pool_scope(*id),
            Pool::Guild(id) => Layout::guild_pool_scope(*id),
        }
    }

    /// The pool a scope names.
    pub(crate) fn from_scope(scope: &str) -> Option<Pool> {
        if scope == Layout::global_pool_scope() {
            return Some(Pool::Global);
        }
        let (kind, id) = scope.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "channel" => Some(Pool::Channel(id)),
            "guild" => Some(Pool::Guild(id)),
            _ => None,
        }
    }

    /// The hash of the pool's log.
    pub(crate) fn log_key(&self, layout: &Layout) -> String {
        match self {
            Pool::Global => layout.global_pool_log_key(),
            Pool::Channel(id) => layout.channel_pool_log_key(*id),
            Pool::Guild(id) => layout.guild_pool_log_key(*id),
        }
    }

    /// The hash of the pool's per-key counters for `service` on `day` (UTC).
    pub(crate) fn usage_key(&self, layout: &Layout, service: &str, day: time::Date) -> String {
        match self {
            Pool::Global => layout.global_pool_usage_key(service, day),
            Pool::Channel(id) => layout.channel_pool_usage_key(*id, service, day),
            Pool::Guild(id) => layout.guild_pool_usage_key(*id, service, day),
        }
    }

    pub(super) fn source(&self) -> KeySource {
        match self {
            Pool::Global => KeySource::GlobalPool,
            Pool::Channel(_) => KeySource::ChannelPool,
            Pool::Guild(_) => KeySource::GuildPool,
        }
    }
}

impl Pool {
    /// The pool as a sentence names it, in the user's language ("the global pool").
    pub fn localized(&self, texts: &crate::i18n::Texts, locale: &crate::i18n::Locale) -> String {
        match self {
            Pool::Global => texts.text(locale, "pool-global", &[]),
            Pool::Channel(id) => texts.text(
                locale,
                "pool-channel",
                &[("channel", id.to_string().into())],
            ),
            Pool::Guild(id) => {
                texts.text(locale, "pool-server", &[("server", id.to_string().into())])
            }
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pool::Global => f.write_str("the global pool"),
            Pool::Channel(id) => write!(f, "the pool of channel {id}"),
            Pool::Guild(id) => write!(f, "the pool of server {id}"),
        }
    }
}
