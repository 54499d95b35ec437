//! Pool key health: what happened when a caller used a pooled key, the bench that keeps a
//! failing key out of draws for a while, and each pooled key's uses and failures per day.
//!
//! State lives in storage, so every process of the bot shares it:
//!
//! - `{p}:pool_key_bench:global:{service}` / `{p}:pool_key_bench:channel:{channel_id}:{service}`:
//!   a hash, field = key id, value = `{until, unix ms};{reason}`. Redis 7.0 has no per-field
//!   expiry, so the time is in the value: readers ignore entries whose time has passed, writers
//!   prune them, and the hash expires with its latest entry. Resolution reads it whole in the
//!   same round trip as the pool draws.
//! - `{p}:pool_key_usage:global:{service}:{YYYY-MM-DD}` (and `...:channel:{channel_id}:...`): a
//!   hash per UTC day, fields `{key_id}:uses` and `{key_id}:failures`, kept two days.
//!
//! Only pooled keys are benched and counted: a user's own key is the user's business (the
//! service tells them), and the operator's environment keys have no key id.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::catalogue::validate_service_id;
use crate::storage::{Layout, value_until_ms};
use crate::vault::{KeyError, KeyVault, Pool, ResolvedKey, check_pool_field};

/// How long a day's per-key counters are kept: two days, so yesterday's stay readable.
pub const USAGE_TTL_SECS: u64 = 2 * 86_400;

/// What happened when a caller used a key: reported with [`KeyVault::report_key_outcome`].
///
/// ```
/// use std::time::Duration;
/// use stargazer_keys::health::KeyOutcome;
/// assert_eq!(
///     KeyOutcome::from_http_status(429, Some("2")),
///     KeyOutcome::RateLimited { retry_after: Some(Duration::from_secs(2)) }
/// );
/// assert_eq!(KeyOutcome::from_http_status(401, None), KeyOutcome::Unauthorized);
/// assert_eq!(KeyOutcome::from_http_status(503, None), KeyOutcome::Inconclusive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The service accepted the key.
    Success,
    /// The service rate-limited the key (429): benched for `retry_after` (when the service
    /// said), else for `STARGAZER_POOL_RATE_LIMIT_BENCH_SECS`.
    RateLimited {
        /// The service's Retry-After, when known.
        retry_after: Option<Duration>,
    },
    /// The key's credit or quota is spent (402 Payment Required): benched for
    /// `STARGAZER_POOL_BENCH_SECS`.
    QuotaExhausted,
    /// The service refused the key (401/403: revoked or never valid): benched for
    /// `STARGAZER_POOL_BENCH_SECS`.
    Unauthorized,
    /// The call failed for a reason that says nothing about the key (a 5xx, a timeout, a bad
    /// request): counted as a use, not as a failure, and never benched.
    Inconclusive,
}

impl KeyOutcome {
    /// Classifies an HTTP status (and its `Retry-After` header, seconds or an HTTP date):
    /// 2xx success, 429 rate-limited, 402 quota exhausted, 401/403 unauthorized, anything
    /// else inconclusive.
    pub fn from_http_status(status: u16, retry_after: Option<&str>) -> Self {
        match status {
            200..=299 => KeyOutcome::Success,
            429 => KeyOutcome::RateLimited {
                retry_after: retry_after.and_then(parse_retry_after),
            },
            402 => KeyOutcome::QuotaExhausted,
            401 | 403 => KeyOutcome::Unauthorized,
            _ => KeyOutcome::Inconclusive,
        }
    }

    /// Whether the key itself failed (counted as a failure, and benched).
    pub fn is_key_failure(&self) -> bool {
        self.bench_reason().is_some()
    }

    /// Why this outcome benches the key, if it does.
    pub fn bench_reason(&self) -> Option<BenchReason> {
        match self {
            KeyOutcome::RateLimited { .. } => Some(BenchReason::RateLimited),
            KeyOutcome::QuotaExhausted => Some(BenchReason::QuotaExhausted),
            KeyOutcome::Unauthorized => Some(BenchReason::Unauthorized),
            KeyOutcome::Success | KeyOutcome::Inconclusive => None,
        }
    }
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (then the time left until it).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = value.replace(" GMT", " +0000");
    let at = OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc2822).ok()?;
    let left = at - OffsetDateTime::now_utc();
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// Why a pool key is benched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BenchReason {
    /// The service rate-limited it (429).
    RateLimited,
    /// Its credit or quota is spent (402).
    QuotaExhausted,
    /// The service refused it (401/403).
    Unauthorized,
}

impl BenchReason {
    /// `rate_limited`, `quota_exhausted` or `unauthorized` (as stored and in JSON).
    pub fn as_str(&self) -> &'static str {
        match self {
            BenchReason::RateLimited => "rate_limited",
            BenchReason::QuotaExhausted => "quota_exhausted",
            BenchReason::Unauthorized => "unauthorized",
        }
    }

    /// The reason as a phrase for listings: "rate-limited by the service (429)".
    pub fn describe(&self) -> &'static str {
        match self {
            BenchReason::RateLimited => "rate-limited by the service (429)",
            BenchReason::QuotaExhausted => "out of credit or quota (402 Payment Required)",
            BenchReason::Unauthorized => {
                "refused by the service as unauthorized or revoked (401/403)"
            }
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            BenchReason::RateLimited,
            BenchReason::QuotaExhausted,
            BenchReason::Unauthorized,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for BenchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool key kept out of draws until a time, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bench {
    /// When the key is drawn again.
    pub until: OffsetDateTime,
    /// Why it was benched.
    pub reason: BenchReason,
}

impl Bench {
    /// The stored value: `{until, unix ms};{reason}`.
    fn encode(&self) -> String {
        format!("{};{}", unix_ms(self.until), self.reason)
    }

    /// A stored value, when it is one and its time has not passed at `now_ms`.
    fn decode_live(value: &str, now_ms: u64) -> Option<Self> {
        let until_ms = value_until_ms(value).filter(|at| *at > now_ms)?;
        let reason = BenchReason::parse(value.split_once(';')?.1)?;
        let until =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).ok()?;
        Some(Self { until, reason })
    }
}

/// A failure of one user's call against a pooled key, remembered until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Strike {
    until_ms: u64,
    user_id: u64,
}

impl Strike {
    /// The stored value: `{until, unix ms};{user id}`.
    fn encode(&self) -> String {
        format!("{};{}", self.until_ms, self.user_id)
    }

    /// A stored value, when it is one and its time has not passed at `now_ms`.
    fn decode_live(value: &str, now_ms: u64) -> Option<Self> {
        let until_ms = value_until_ms(value).filter(|at| *at > now_ms)?;
        let user_id = value.split_once(';')?.1.parse().ok()?;
        Some(Self { until_ms, user_id })
    }
}

/// The live benches among a bench hash's entries, by key id.
pub(crate) fn live_benches(entries: &[(String, String)]) -> BTreeMap<String, Bench> {
    let now = unix_ms(OffsetDateTime::now_utc());
    entries
        .iter()
        .filter_map(|(key_id, value)| Some((key_id.clone(), Bench::decode_live(value, now)?)))
        .collect()
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A pooled key's uses and failures on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyUsage {
    /// Outcomes reported for it.
    pub uses: u64,
    /// Of those, the ones where the key itself failed (rate-limited, exhausted, unauthorized).
    pub failures: u64,
}

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
    /// # use stargazer_keys::{KeyVault, health::KeyOutcome};
    /// # async fn demo(vault: KeyVault) {
    /// if let Some(key) = vault.get_user_api_key(Some(42), "brave", Some(7), true).await {
    ///     // ... call the service with key.key.expose(), get status 429 with Retry-After: 30 ...
    ///     vault
    ///         .report_key_outcome("brave", &key, KeyOutcome::from_http_status(429, Some("30")))
    ///         .await;
    /// }
    /// # }
    /// ```
    pub async fn report_key_outcome(&self, service: &str, key: &ResolvedKey, outcome: KeyOutcome) {
        self.report(service, key, outcome, None).await;
    }

    /// [`KeyVault::report_key_outcome`] for a call a user made ([`KeyContext`]'s calls): the
    /// use is counted the same way, but one user's failures alone never bench a pooled key
    /// (a user could otherwise take a shared key away from everyone with calls made to fail).
    /// The first failure records a strike against the key; the key is benched when a call of
    /// another user fails too while the strike lasts (`STARGAZER_POOL_BENCH_SECS`).
    /// [`KeyVault::report_key_outcome`], with no user, is the operator's own word and benches
    /// at once.
    ///
    /// [`KeyContext`]: https://docs.rs/stargazer-keys-commands
    pub async fn report_key_outcome_by(
        &self,
        user_id: u64,
        service: &str,
        key: &ResolvedKey,
        outcome: KeyOutcome,
    ) {
        self.report(service, key, outcome, Some(user_id)).await;
    }

    async fn report(
        &self,
        service: &str,
        key: &ResolvedKey,
        outcome: KeyOutcome,
        reporter: Option<u64>,
    ) {
        let (Some(pool), Some(key_id)) = (key.pool, key.key_id.as_deref()) else {
            return;
        };
        if validate_service_id(service).is_err() || check_pool_field(key_id).is_err() {
            tracing::warn!(
                service,
                "a key outcome names no valid service or key id; ignored"
            );
            return;
        }
        let now = OffsetDateTime::now_utc();
        let mut increments = vec![(Layout::pool_uses_field(key_id), 1)];
        if outcome.is_key_failure() {
            increments.push((Layout::pool_failures_field(key_id), 1));
        }
        let usage_key = pool.usage_key(self.layout(), service, now.date());
        if let Err(err) = self
            .storage()
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
            .storage()
            .hset_until(
                &pool.bench_key(self.layout(), service),
                key_id,
                &bench.encode(),
                unix_ms(bench.until),
                unix_ms(now),
            )
            .await
        {
            Ok(_) => tracing::warn!(
                %pool,
                service,
                key_id,
                reason = reason.as_str(),
                seconds = length.as_secs(),
                "benched a pool key"
            ),
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
        let key = pool.strikes_key(self.layout(), service);
        let earlier = match self.storage().hget(&key, key_id).await {
            Ok(value) => value.and_then(|value| Strike::decode_live(&value, unix_ms(now))),
            Err(err) => {
                // Failing closed here would let storage trouble shield a key; failing open
                // would let one user bench it. Neither: no bench this time.
                tracing::warn!(%pool, service, key_id, error = %err, "cannot read a pool key's strikes");
                return false;
            }
        };
        if earlier.is_some_and(|strike| strike.user_id != user_id) {
            if let Err(err) = self.storage().hdel(&key, key_id).await {
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
            .storage()
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
        service: &str,
    ) -> Result<BTreeMap<String, Bench>, KeyError> {
        validate_service_id(service)?;
        let entries = self
            .storage()
            .hgetall(&pool.bench_key(self.layout(), service))
            .await?;
        Ok(live_benches(&entries))
    }

    /// Takes a key off the bench (say, after its credit was topped up); returns whether it
    /// was benched.
    pub async fn clear_pool_key_bench(
        &self,
        pool: Pool,
        service: &str,
        key_id: &str,
    ) -> Result<bool, KeyError> {
        validate_service_id(service)?;
        check_pool_field(key_id)?;
        let key = pool.bench_key(self.layout(), service);
        let was_live = self
            .pool_key_benches(pool, service)
            .await?
            .contains_key(key_id);
        self.storage().hdel(&key, key_id).await?;
        Ok(was_live)
    }

    /// Each pooled key's uses and failures today (UTC), by key id.
    pub async fn pool_key_usage_today(
        &self,
        pool: Pool,
        service: &str,
    ) -> Result<BTreeMap<String, KeyUsage>, KeyError> {
        validate_service_id(service)?;
        let key = pool.usage_key(self.layout(), service, OffsetDateTime::now_utc().date());
        let mut usage: BTreeMap<String, KeyUsage> = BTreeMap::new();
        for (field, value) in self.storage().hgetall(&key).await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_into_outcomes() {
        assert_eq!(KeyOutcome::from_http_status(200, None), KeyOutcome::Success);
        assert_eq!(
            KeyOutcome::from_http_status(429, None),
            KeyOutcome::RateLimited { retry_after: None }
        );
        assert_eq!(
            KeyOutcome::from_http_status(402, None),
            KeyOutcome::QuotaExhausted
        );
        assert_eq!(
            KeyOutcome::from_http_status(403, None),
            KeyOutcome::Unauthorized
        );
        assert_eq!(
            KeyOutcome::from_http_status(500, None),
            KeyOutcome::Inconclusive
        );
        assert!(!KeyOutcome::Inconclusive.is_key_failure());
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn benches_round_trip_and_expire() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let bench = Bench {
            until: now + Duration::from_secs(60),
            reason: BenchReason::QuotaExhausted,
        };
        let value = bench.encode();
        assert_eq!(value, "1700000060000;quota_exhausted");
        assert_eq!(Bench::decode_live(&value, unix_ms(now)), Some(bench));
        assert_eq!(Bench::decode_live(&value, 1_700_000_060_000), None);
        assert_eq!(Bench::decode_live("junk", 0), None);
    }
}
