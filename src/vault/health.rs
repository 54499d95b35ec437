//! Pool key health seen from the vault: outcomes reported by callers, benches and strikes,
//! and each key's uses today (the formats are in `crate::health`).

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::{KeyError, KeyVault, Pool, PoolKeyRef, ResolvedKey};
use crate::health::{Bench, KeyOutcome, KeyUsage, Strike, USAGE_TTL_SECS, live_benches, unix_ms};
use crate::ids::{IntoServiceId, KeyId, PoolField};
use crate::pool_log::PoolAction;
use crate::storage::Layout;

impl KeyVault {
    /// Records what happened when a caller used `key` for `service`: counts the use (and the
    /// failure) in the key's daily counters, and benches the key when the service rate-limited
    /// it (for its Retry-After, capped at the long bench), refused it (401/403) or said its
    /// credit is spent (402) (for `STARGAZER_POOL_BENCH_SECS`). A benched key is skipped by
    /// every draw in every process until its time has passed; a longer bench is never
    /// shortened by a shorter one.
    ///
    /// Only pooled keys (source `channel_pool` or `global_pool`, with a key id) are counted and
    /// benched: for a user's own key or an environment key this does nothing. Never fails the
    /// caller: storage errors are logged.
    ///
    /// ```no_run
    /// # use stargazer_keys::{KeyOutcome, KeyVault};
    /// # async fn demo(vault: KeyVault) {
    /// if let Some(key) = vault.get_user_api_key(Some(42), "brave", Some(7), true).await {
    ///     // ... call the service with key.key.expose(), get status 429 with Retry-After: 30 ...
    ///     vault
    ///         .report_key_outcome("brave", &key, KeyOutcome::from_http_status(429, Some("30")))
    ///         .await;
    /// }
    /// # }
    /// ```
    pub async fn report_key_outcome(
        &self,
        service: impl IntoServiceId,
        key: &ResolvedKey,
        outcome: KeyOutcome,
    ) {
        if let Some(pooled) = key.pool_key() {
            self.report(service, pooled, outcome, None).await;
        }
    }

    /// [`KeyVault::report_key_outcome`] for a call a user made (those of
    /// [`KeyVault::with_api_key`]), with the pool key it used: the
    /// use is counted the same way, but one user's failures alone never bench a pooled key
    /// (a user could otherwise take a shared key away from everyone with calls made to fail).
    /// The first failure records a strike against the key; the key is benched when a call of
    /// another user fails too while the strike lasts (`STARGAZER_POOL_BENCH_SECS`).
    /// [`KeyVault::report_key_outcome`], with no user, is the operator's own word and benches
    /// at once.
    pub async fn report_key_outcome_by(
        &self,
        user_id: u64,
        service: impl IntoServiceId,
        key: &PoolKeyRef,
        outcome: KeyOutcome,
    ) {
        self.report(service, key, outcome, Some(user_id)).await;
    }

    async fn report(
        &self,
        service: impl IntoServiceId,
        key: &PoolKeyRef,
        outcome: KeyOutcome,
        reporter: Option<u64>,
    ) {
        let service = match service.into_service_id() {
            Ok(service) => service,
            Err(err) => {
                tracing::warn!(error = %err, "a key outcome names no valid service; ignored");
                return;
            }
        };
        let service_id = service;
        let (service, pool, key_id) = (service_id.as_str(), key.pool, key.key_id.as_str());
        let now = OffsetDateTime::now_utc();
        let mut increments = vec![(Layout::pool_uses_field(key_id), 1)];
        if outcome.is_key_failure() {
            increments.push((Layout::pool_failures_field(key_id), 1));
        }
        let usage_key = pool.usage_key(&self.inner.layout, service, now.date());
        if let Err(err) = self
            .inner
            .storage
            .hincr_with_ttl(&usage_key, &increments, USAGE_TTL_SECS)
            .await
        {
            tracing::warn!(%pool, service, key_id, error = %err, "cannot count a pool key's use");
        }
        let Some(reason) = outcome.bench_reason() else {
            return;
        };
        if let Some(user_id) = reporter
            && !self
                .second_strike(pool, service, key_id, user_id, now)
                .await
        {
            return;
        }
        let long = self.config().pool_bench;
        let length = match outcome {
            KeyOutcome::RateLimited { retry_after } => retry_after
                .unwrap_or(self.config().pool_rate_limit_bench)
                .clamp(Duration::from_secs(1), long),
            _ => long,
        };
        let bench = Bench {
            until: now + length,
            reason,
        };
        match self
            .inner
            .storage
            .hset_until(
                &pool.bench_key(&self.inner.layout, service),
                key_id,
                &bench.encode(),
                unix_ms(bench.until),
                unix_ms(now),
            )
            .await
        {
            Ok(set) => {
                if set {
                    self.log_pool_event(
                        pool,
                        reporter,
                        PoolAction::Benched(reason),
                        &service_id,
                        &key.key_id,
                    )
                    .await;
                    self.announce_bench(super::BenchNotice {
                        pool,
                        service: service_id.clone(),
                        key_id: key.key_id.clone(),
                        reason,
                        until: bench.until,
                    })
                    .await;
                }
                crate::metrics::pool_bench(reason);
                tracing::warn!(
                    %pool,
                    service,
                    key_id,
                    reason = reason.as_str(),
                    seconds = length.as_secs(),
                    "benched a pool key"
                );
            }
            Err(err) => {
                tracing::warn!(%pool, service, key_id, error = %err, "cannot bench a pool key")
            }
        }
    }

    /// Whether a failure of `user_id`'s call is the second strike against a pooled key (another
    /// user's call failed it while the first strike lasts). If not, records this one.
    async fn second_strike(
        &self,
        pool: Pool,
        service: &str,
        key_id: &str,
        user_id: u64,
        now: OffsetDateTime,
    ) -> bool {
        let key = pool.strikes_key(&self.inner.layout, service);
        let earlier = match self.inner.storage.hget(&key, key_id).await {
            Ok(value) => value.and_then(|value| Strike::decode_live(&value, unix_ms(now))),
            Err(err) => {
                // Failing closed here would let storage trouble shield a key; failing open
                // would let one user bench it. Neither: no bench this time.
                tracing::warn!(%pool, service, key_id, error = %err, "cannot read a pool key's strikes");
                return false;
            }
        };
        if earlier.is_some_and(|strike| strike.user_id != user_id) {
            if let Err(err) = self.inner.storage.hdel(&key, key_id).await {
                tracing::debug!(%pool, service, key_id, error = %err, "cannot clear a pool key's strike");
            }
            return true;
        }
        let until = now + self.config().pool_bench;
        let strike = Strike {
            until_ms: unix_ms(until),
            user_id,
        };
        if let Err(err) = self
            .inner
            .storage
            .hset_until(
                &key,
                key_id,
                &strike.encode(),
                strike.until_ms,
                unix_ms(now),
            )
            .await
        {
            tracing::warn!(%pool, service, key_id, error = %err, "cannot record a pool key's strike");
        }
        tracing::info!(
            %pool,
            service,
            key_id,
            "a pool key failed one user's call; it is benched if another user's call fails too"
        );
        false
    }

    /// The keys of a pool that are benched now, by key id.
    pub async fn pool_key_benches(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
    ) -> Result<BTreeMap<String, Bench>, KeyError> {
        let service = service.into_service_id()?;
        let entries = self
            .inner
            .storage
            .hgetall(&pool.bench_key(&self.inner.layout, &service))
            .await?;
        Ok(live_benches(&entries))
    }

    /// Takes a key off the bench (say, after its credit was topped up); returns whether it
    /// was benched.
    pub async fn clear_pool_key_bench(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        key_id: &str,
    ) -> Result<bool, KeyError> {
        self.clear_pool_key_bench_by(pool, service, key_id, None)
            .await
    }

    /// [`KeyVault::clear_pool_key_bench`] by a user, whom the pool's log names (`None`: the
    /// operator).
    pub async fn clear_pool_key_bench_by(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        key_id: &str,
        actor: Option<u64>,
    ) -> Result<bool, KeyError> {
        let service = service.into_service_id()?;
        let key_id = PoolField::new(key_id)?;
        let key = pool.bench_key(&self.inner.layout, &service);
        let was_live = self
            .pool_key_benches(pool, &service)
            .await?
            .contains_key(key_id.as_str());
        self.inner.storage.hdel(&key, &key_id).await?;
        if was_live {
            self.log_pool_event(pool, actor, PoolAction::Unbenched, &service, &key_id)
                .await;
            self.forget_bench_notice(pool, &service, &key_id).await;
        } else {
            // Not benched and not a key id: perhaps a key pasted by mistake. Refuse it
            // without echoing it.
            KeyId::new(&key_id)?;
        }
        Ok(was_live)
    }

    /// Each pooled key's uses and failures today (UTC), by key id.
    pub async fn pool_key_usage_today(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
    ) -> Result<BTreeMap<String, KeyUsage>, KeyError> {
        let service = service.into_service_id()?;
        let key = pool.usage_key(
            &self.inner.layout,
            &service,
            OffsetDateTime::now_utc().date(),
        );
        let mut usage: BTreeMap<String, KeyUsage> = BTreeMap::new();
        for (field, value) in self.inner.storage.hgetall(&key).await? {
            let count: u64 = value.parse().unwrap_or(0);
            if let Some(key_id) = field.strip_suffix(":uses") {
                usage.entry(key_id.to_owned()).or_default().uses = count;
            } else if let Some(key_id) = field.strip_suffix(":failures") {
                usage.entry(key_id.to_owned()).or_default().failures = count;
            }
        }
        Ok(usage)
    }
}
