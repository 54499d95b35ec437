//! Resolution: the user's own key, then the channel's pool, the server's pool, the global pool
//! and the environment, in one round trip.

use std::fmt;

use rand::seq::SliceRandom;

use crate::ids::{IntoServiceId, PoolField, ServiceId};
use crate::secret::ApiKey;
use crate::storage::{Owner, ResolveRequest};

use super::{KeyVault, POOL_SAMPLE, Pool};

/// Where a resolved key came from. Only `User` is the caller's own; the rest are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// The user's own key.
    User,
    /// The channel's pool.
    ChannelPool,
    /// The server's pool.
    GuildPool,
    /// The global pool.
    GlobalPool,
    /// The operator's environment.
    Env,
}

impl KeySource {
    /// `user`, `channel_pool`, `guild_pool`, `global_pool` or `env`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeySource::User => "user",
            KeySource::ChannelPool => "channel_pool",
            KeySource::GuildPool => "guild_pool",
            KeySource::GlobalPool => "global_pool",
            KeySource::Env => "env",
        }
    }

    /// Whether the key is shared (not the caller's own): the daily quota applies.
    pub fn is_shared(&self) -> bool {
        !matches!(self, KeySource::User)
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key found by resolution, and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    /// The key.
    pub key: ApiKey,
    /// Where it came from.
    pub origin: KeyOrigin,
}

impl ResolvedKey {
    /// Its source.
    pub fn source(&self) -> KeySource {
        self.origin.source()
    }

    /// The pool and key id, for a key drawn from a pool.
    pub fn pool_key(&self) -> Option<&PoolKeyRef> {
        match &self.origin {
            KeyOrigin::Pool(pooled) => Some(pooled),
            KeyOrigin::User | KeyOrigin::Env => None,
        }
    }
}

/// Where a resolved key came from; for a pool key, what [`KeyVault::report_key_outcome`]
/// needs to bench or count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The user's own key.
    User,
    /// A key drawn from a pool.
    Pool(PoolKeyRef),
    /// The operator's environment.
    Env,
}

impl KeyOrigin {
    /// Its source.
    pub fn source(&self) -> KeySource {
        match self {
            KeyOrigin::User => KeySource::User,
            KeyOrigin::Pool(pooled) => pooled.pool.source(),
            KeyOrigin::Env => KeySource::Env,
        }
    }
}

/// One key of a pool: the pool, and the key's id in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKeyRef {
    /// The pool.
    pub pool: Pool,
    /// The key id.
    pub key_id: PoolField,
}

/// What a resolution found, or why it found nothing.
pub(super) enum Resolution {
    /// A key; for a key of a pool whose admins set a daily limit per user, that limit.
    Found(ResolvedKey, Option<u32>),
    /// The user has no key of their own, and chose not to use shared keys for the service.
    SharedKeysOff,
    /// No tier has a key.
    Nothing,
}

impl Resolution {
    pub(super) fn found(self) -> Option<ResolvedKey> {
        match self {
            Resolution::Found(key, _) => Some(key),
            Resolution::SharedKeysOff | Resolution::Nothing => None,
        }
    }
}

impl From<Option<ResolvedKey>> for Resolution {
    fn from(found: Option<ResolvedKey>) -> Self {
        found.map_or(Resolution::Nothing, |key| Resolution::Found(key, None))
    }
}

impl KeyVault {
    /// Resolves the key to use for `service`: the user's own key, then the channel's pool,
    /// then the global pool (both skipped when `fallback_to_pool` is false), then the
    /// operator's environment. The storage reads, benches included, are one round trip. A
    /// benched pool key ([`KeyVault::report_key_outcome`]) or a value that does not open is
    /// skipped; storage failures fall through to the environment. Never returns another
    /// user's key. A user who turned shared keys off ([`KeyVault::set_shared_keys`]) gets
    /// only their own key (or, when storage cannot be read at all, the environment's).
    pub async fn get_user_api_key(
        &self,
        user_id: Option<u64>,
        service: impl IntoServiceId,
        channel_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<ResolvedKey> {
        self.get_user_api_key_in(user_id, service, channel_id, None, fallback_to_pool)
            .await
    }

    /// [`KeyVault::get_user_api_key`] for a call made in a server: the server's pool is tried
    /// after the channel's and before the global pool (user → channel pool → server pool →
    /// global pool → environment), in the same one round trip.
    pub async fn get_user_api_key_in(
        &self,
        user_id: Option<u64>,
        service: impl IntoServiceId,
        channel_id: Option<u64>,
        guild_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<ResolvedKey> {
        let service = match service.into_service_id() {
            Ok(service) => service,
            Err(err) => {
                tracing::warn!(error = %err, "key resolution refused");
                return None;
            }
        };
        self.resolution(user_id, &service, channel_id, guild_id, fallback_to_pool)
            .await
            .found()
    }

    /// A resolution, and why it found nothing; recorded in the metrics.
    pub(super) async fn resolution(
        &self,
        user_id: Option<u64>,
        service: &ServiceId,
        channel_id: Option<u64>,
        guild_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Resolution {
        let started = std::time::Instant::now();
        let pools = fallback_to_pool.then_some((channel_id, guild_id));
        let resolution = self.resolve(user_id, service, pools).await;
        let source = match &resolution {
            Resolution::Found(key, _) => Some(key.source()),
            Resolution::SharedKeysOff | Resolution::Nothing => None,
        };
        crate::metrics::resolution(source, started.elapsed().as_secs_f64());
        resolution
    }

    /// `pools`: the channel and server of the call, or `None` to draw from no pool.
    async fn resolve(
        &self,
        user_id: Option<u64>,
        service: &ServiceId,
        pools: Option<(Option<u64>, Option<u64>)>,
    ) -> Resolution {
        let hints = &self.inner.own_key_hints;
        if let Some(user_id) = user_id
            && pools.is_some()
            && hints.has_own_key(user_id, service)
        {
            let hash = self.inner.layout.user_keys_key(user_id);
            match self.inner.storage.hget(&hash, service).await {
                Ok(value) => {
                    if let Some(found) = self.open_user_value(user_id, service, value).await {
                        return Resolution::Found(found, None);
                    }
                    // Stale: the key is gone or does not open; resolve in full below.
                    hints.remember(user_id, service, false);
                }
                Err(err) => {
                    tracing::warn!(%service, error = %err, "key storage unavailable; falling back to the environment");
                    return self.env_resolved(service).into();
                }
            }
        }
        // Built after the one-HGET path, which needs none of it.
        let pools = pools.map_or_else(Vec::new, |(channel_id, guild_id)| {
            Pool::resolution_order(channel_id, guild_id)
        });
        let request = ResolveRequest {
            user: user_id.map(|id| (self.inner.layout.user_keys_key(id), service.to_string())),
            user_settings: user_id.map(|id| {
                (
                    self.inner.layout.user_settings_key(id),
                    super::shared_keys::fields_for(service),
                )
            }),
            pools: pools
                .iter()
                .map(|pool| pool.storage_key(&self.inner.layout, service))
                .collect(),
            sample: POOL_SAMPLE,
            pool_benches: pools
                .iter()
                .map(|pool| pool.bench_key(&self.inner.layout, service))
                .collect(),
            pool_limits: (!pools.is_empty()).then(|| {
                (
                    self.inner.layout.pool_daily_limits_key(service),
                    pools.iter().map(Pool::scope).collect(),
                )
            }),
        };
        match self.inner.storage.resolve(&request).await {
            Ok(reply) => {
                if let Some(user_id) = user_id {
                    let own = self.open_user_value(user_id, service, reply.user).await;
                    hints.remember(user_id, service, own.is_some());
                    if let Some(own) = own {
                        return Resolution::Found(own, None);
                    }
                    if !super::shared_keys::allowed_by(&reply.user_settings) {
                        return Resolution::SharedKeysOff;
                    }
                }
                let mut benches = reply.pool_benches.into_iter();
                let mut limits = reply.pool_limits.into_iter();
                for (pool, entries) in pools.into_iter().zip(reply.pools) {
                    let benched = benches.next().unwrap_or_default();
                    let limit = limits.next().flatten();
                    if let Some(found) = self.usable_in(pool, service, entries, &benched).await {
                        let limit = super::pool_limits::parse_limit(pool, service, limit);
                        return Resolution::Found(found, limit);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(%service, error = %err, "key storage unavailable; falling back to the environment");
            }
        }
        self.env_resolved(service).into()
    }

    /// The user's own key from a value read for them, if there is one and it opens.
    pub(super) async fn open_user_value(
        &self,
        user_id: u64,
        service: &str,
        value: Option<String>,
    ) -> Option<ResolvedKey> {
        let owner = Owner::User(user_id).id();
        let (payload, _) = self.open_value(&owner, service, None, &value?).await?;
        Some(ResolvedKey {
            key: payload.key,
            origin: KeyOrigin::User,
        })
    }

    /// The environment tier of resolution.
    pub(super) fn env_resolved(&self, service: &ServiceId) -> Option<ResolvedKey> {
        self.env_key(service).map(|key| ResolvedKey {
            key,
            origin: KeyOrigin::Env,
        })
    }

    /// The operator's key for `service` from the environment: `{SERVICE}_API_KEY`, then the
    /// service's own variables. A value with commas is a list: one is picked at random.
    pub fn env_key(&self, service: impl IntoServiceId) -> Option<ApiKey> {
        let service = service.into_service_id().ok()?;
        let vars = match self.inner.catalogue.get(&service) {
            Some(entry) => entry.env_vars(),
            None => vec![service.env_var()],
        };
        vars.iter().find_map(|var| {
            let value = self.inner.config.env.get(var)?;
            let choices: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            choices
                .choose(&mut rand::thread_rng())
                .map(|v| ApiKey::new(*v))
        })
    }
}
