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

use crate::storage::value_until_ms;

/// How long a day's per-key counters are kept: two days, so yesterday's stay readable.
pub const USAGE_TTL_SECS: u64 = 2 * 86_400;

/// What happened when a caller used a key: reported with [`KeyVault::report_key_outcome`](crate::KeyVault::report_key_outcome).
///
/// ```
/// use std::time::Duration;
/// use stargazer_keys::KeyOutcome;
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

    pub(crate) fn parse(text: &str) -> Option<Self> {
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
    pub(crate) fn encode(&self) -> String {
        format!("{};{}", unix_ms(self.until), self.reason)
    }

    /// A stored value, when it is one and its time has not passed at `now_ms`.
    pub(crate) fn decode_live(value: &str, now_ms: u64) -> Option<Self> {
        let until_ms = value_until_ms(value).filter(|at| *at > now_ms)?;
        let reason = BenchReason::parse(value.split_once(';')?.1)?;
        let until =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000).ok()?;
        Some(Self { until, reason })
    }
}

/// A failure of one user's call against a pooled key, remembered until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Strike {
    pub(crate) until_ms: u64,
    pub(crate) user_id: u64,
}

impl Strike {
    /// The stored value: `{until, unix ms};{user id}`.
    pub(crate) fn encode(&self) -> String {
        format!("{};{}", self.until_ms, self.user_id)
    }

    /// A stored value, when it is one and its time has not passed at `now_ms`.
    pub(crate) fn decode_live(value: &str, now_ms: u64) -> Option<Self> {
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

pub(crate) fn unix_ms(at: OffsetDateTime) -> u64 {
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
