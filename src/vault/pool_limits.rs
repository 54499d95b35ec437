//! The daily limit a pool's admins set for their own pool: how many calls each user may make
//! with the pool's keys a day, within the operator's maximum (`STARGAZER_POOL_DAILY_LIMIT_MAX`).
//!
//! A call that draws a key from a pool with its own limit counts against that pool's counter
//! for the user (every tool's calls with the pool's keys), not the tool's: the quota follows the
//! pool the key came from. A pool without its own limit keeps the tool's limit and counter (the
//! original bot's). The limits of every tier are read in the resolution's round trip (one
//! `HMGET` of `{p}:pool_daily_limits:{service}`); the pool's counter is reserved after it, so
//! a call from a limited pool takes one more round trip.

use std::time::Duration;

use super::{KeyError, KeyVault, Pool};
use crate::ids::{IntoServiceId, ServiceId};
use crate::quota::{LimitReached, QuotaPermit, UsageError};

/// A user's uses today of the keys of one pool that has its own daily limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool.
    pub pool: Pool,
    /// The service.
    pub service: ServiceId,
    /// Uses counted in the current window.
    pub count: u64,
    /// The pool's daily limit now (`None` when its admins have since cleared it: the tool's
    /// limit applies again).
    pub limit: Option<u32>,
    /// When the window resets.
    pub resets_in: Option<Duration>,
}

/// The limit stored for `pool`, when it is one (a value that is not a number is logged and
/// ignored: the tool's limit applies).
pub(super) fn parse_limit(pool: Pool, service: &str, value: Option<String>) -> Option<u32> {
    let value = value?;
    match value.trim().parse() {
        Ok(limit) => Some(limit),
        Err(_) => {
            tracing::warn!(%pool, service, "a pool's daily limit is not a number; using the tool's limit");
            None
        }
    }
}

impl KeyVault {
    /// The daily limit per user that `pool`'s admins set for `service`, if they set one.
    pub async fn pool_daily_limit(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
    ) -> Result<Option<u32>, KeyError> {
        let service = service.into_service_id()?;
        let value = self
            .inner
            .storage
            .hget(
                &self.inner.layout.pool_daily_limits_key(&service),
                &pool.scope(),
            )
            .await?;
        Ok(parse_limit(pool, &service, value).map(|limit| self.capped_pool_limit(limit)))
    }

    /// Sets how many calls each user may make a day with the keys of `pool` for `service`
    /// (`Some(0)` stops them all), or clears the pool's own limit (`None`: the tools' limits
    /// apply again). Refused above the operator's maximum, `STARGAZER_POOL_DAILY_LIMIT_MAX`.
    pub async fn set_pool_daily_limit(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        limit: Option<u32>,
    ) -> Result<(), KeyError> {
        let service = service.into_service_id()?;
        let hash = self.inner.layout.pool_daily_limits_key(&service);
        match limit {
            Some(limit) if limit > self.config().pool_daily_limit_max => {
                Err(KeyError::PoolLimitTooHigh {
                    limit,
                    max: self.config().pool_daily_limit_max,
                })
            }
            Some(limit) => Ok(self
                .inner
                .storage
                .hset(&hash, &pool.scope(), &limit.to_string())
                .await?),
            None => {
                self.inner.storage.hdel(&hash, &pool.scope()).await?;
                Ok(())
            }
        }
    }

    /// A stored limit within the operator's maximum now (which may have been lowered since).
    pub(super) fn capped_pool_limit(&self, limit: u32) -> u32 {
        limit.min(self.config().pool_daily_limit_max)
    }

    /// Reserves one use of `pool`'s keys for `service` by the user, within `limit` (already
    /// capped); fail-open like the tools' quota.
    pub(super) async fn reserve_pool_key_use(
        &self,
        user_id: u64,
        pool: Pool,
        service: &ServiceId,
        limit: u32,
    ) -> Result<QuotaPermit, LimitReached> {
        let key = self
            .inner
            .layout
            .pool_user_usage_key(user_id, &pool.scope(), service);
        self.reserve_counter(key, limit).await
    }

    /// The user's uses today of pools with their own limit.
    pub async fn pool_key_usage(&self, user_id: u64) -> Result<Vec<PoolUsage>, UsageError> {
        let pattern = self.inner.layout.pool_user_usage_pattern(user_id);
        let prefix = pattern.trim_end_matches('*');
        let keys = self.inner.storage.scan(&pattern).await?;
        let mut usage = Vec::with_capacity(keys.len());
        for key in keys {
            // `{scope}:{service}`; the scope itself may hold one colon.
            let Some((scope, service)) = key
                .strip_prefix(prefix)
                .and_then(|rest| rest.rsplit_once(':'))
            else {
                continue;
            };
            let (Some(pool), Ok(service)) = (Pool::from_scope(scope), ServiceId::new(service))
            else {
                continue;
            };
            let (count, resets_in) = self.read_counter(&key).await?;
            let limit = match self.pool_daily_limit(pool, &service).await {
                Ok(limit) => limit,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read a pool's daily limit");
                    None
                }
            };
            usage.push(PoolUsage {
                resets_in,
                pool,
                service,
                count,
                limit,
            });
        }
        usage.sort_by(|a, b| {
            (a.service.as_str(), a.pool.scope()).cmp(&(&b.service, b.pool.scope()))
        });
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Layout;

    #[test]
    fn a_stored_limit_that_is_not_a_number_is_ignored() {
        assert_eq!(
            parse_limit(Pool::Global, "brave", Some("5".into())),
            Some(5)
        );
        assert_eq!(
            parse_limit(Pool::Global, "brave", Some(" 7 ".into())),
            Some(7)
        );
        assert_eq!(parse_limit(Pool::Global, "brave", Some("-1".into())), None);
        assert_eq!(
            parse_limit(Pool::Global, "brave", Some("lots".into())),
            None
        );
        assert_eq!(parse_limit(Pool::Global, "brave", None), None);
    }

    #[test]
    fn scopes_name_their_pool_and_nothing_else() {
        for pool in [Pool::Global, Pool::Channel(7), Pool::Guild(88)] {
            assert_eq!(Pool::from_scope(&pool.scope()), Some(pool));
        }
        assert_eq!(Layout::guild_pool_scope(88), "guild:88");
        for bad in ["", "channel", "channel:", "channel:x", "user:5", "guild:-1"] {
            assert_eq!(Pool::from_scope(bad), None, "{bad}");
        }
    }
}
