//! The daily quota on shared keys, seen from the vault: checks, reservations, refunds and
//! counters per user and tool.

use std::time::Duration;

use super::KeyVault;
use crate::ids::{IntoToolName, ToolName};
use crate::quota::{
    BYPASS_RATELIMIT_BIT, LimitCheck, LimitReached, QUOTA_TTL_SECS, QuotaPermit, ToolUsage,
    UsageError,
};
use crate::storage::StorageError;

impl KeyVault {
    /// The daily limit of `tool`: its `STARGAZER_TOOL_DAILY_LIMITS` override, else
    /// `DEFAULT_KEY_DAILY_LIMIT`.
    pub fn daily_limit(&self, tool: &str) -> u32 {
        self.config().daily_limit(tool)
    }

    /// Whether the user may use a shared key for `tool` once more: one GET. Fail-open.
    pub async fn check_default_key_limit(
        &self,
        user_id: u64,
        tool: impl IntoToolName,
        daily_limit: Option<u32>,
    ) -> LimitCheck {
        let tool = match tool.into_tool_name() {
            Ok(tool) => tool,
            Err(err) => {
                tracing::warn!(error = %err, "quota check on a bad tool name; allowing");
                let limit = daily_limit.unwrap_or(self.config().default_daily_limit);
                return LimitCheck {
                    allowed: limit > 0,
                    current: 0,
                    limit,
                };
            }
        };
        let tool = tool.as_str();
        let limit = daily_limit.unwrap_or_else(|| self.daily_limit(tool));
        let allowed = |current| LimitCheck {
            allowed: current < u64::from(limit),
            current,
            limit,
        };
        match self
            .inner
            .storage
            .get(&self.inner.layout.usage_key(user_id, tool))
            .await
        {
            Ok(value) => allowed(value.and_then(|v| v.parse().ok()).unwrap_or(0)),
            Err(err) => {
                tracing::warn!(error = %err, tool, "quota check failed; allowing (fail-open)");
                LimitCheck {
                    allowed: true,
                    current: 0,
                    limit,
                }
            }
        }
    }

    /// Counts one use of a shared key: INCR and EXPIRE in one MULTI. Errors are logged and
    /// swallowed, so counting never breaks the call that just succeeded.
    pub async fn increment_default_key_usage(&self, user_id: u64, tool: impl IntoToolName) {
        let tool = match tool.into_tool_name() {
            Ok(tool) => tool,
            Err(err) => {
                tracing::warn!(error = %err, "not counting a use of a bad tool name");
                return;
            }
        };
        let tool = tool.as_str();
        let key = self.inner.layout.usage_key(user_id, tool);
        if let Err(err) = self
            .inner
            .storage
            .incr_with_ttl(&key, QUOTA_TTL_SECS, self.config().quota_window)
            .await
        {
            tracing::warn!(error = %err, tool, "cannot count a shared-key use");
        }
    }

    /// Reserves one use atomically: never admits more than the limit, however many calls race.
    /// Storage failure admits (fail-open) with an unrecorded permit.
    pub async fn reserve_default_key_use(
        &self,
        user_id: u64,
        tool: impl IntoToolName,
        daily_limit: Option<u32>,
    ) -> Result<QuotaPermit, LimitReached> {
        let tool = match tool.into_tool_name() {
            Ok(tool) => tool,
            Err(err) => {
                // A host bot's bug, not a storage fault: refuse rather than admit uncounted
                // calls.
                tracing::error!(error = %err, "quota reservation on a bad tool name; refused");
                return Err(LimitReached {
                    current: 0,
                    limit: 0,
                    resets_in: None,
                });
            }
        };
        let limit = daily_limit.unwrap_or_else(|| self.daily_limit(&tool));
        let key = self.inner.layout.usage_key(user_id, &tool);
        self.reserve_counter(key, limit).await
    }

    /// A usage counter's count (0 when absent or not a number) and the time until it resets.
    pub(super) async fn read_counter(
        &self,
        key: &str,
    ) -> Result<(u64, Option<Duration>), StorageError> {
        let count = self
            .inner
            .storage
            .get(key)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let resets_in = self.inner.storage.ttl(key).await?.map(Duration::from_secs);
        Ok((count, resets_in))
    }

    /// Reserves one use of the counter `key` within `limit`: never admits more than the limit,
    /// however many calls race; storage failure admits (fail-open) with an unrecorded permit.
    pub(super) async fn reserve_counter(
        &self,
        key: String,
        limit: u32,
    ) -> Result<QuotaPermit, LimitReached> {
        match self
            .inner
            .storage
            .reserve(
                &key,
                u64::from(limit),
                QUOTA_TTL_SECS,
                self.config().quota_window,
            )
            .await
        {
            Ok(reservation) if reservation.admitted => {
                crate::metrics::quota_check(true);
                Ok(QuotaPermit {
                    vault: self.clone(),
                    counter: Some(key),
                    count: reservation.count,
                    limit,
                })
            }
            Ok(reservation) => {
                crate::metrics::quota_check(false);
                Err(LimitReached {
                    current: reservation.count,
                    limit,
                    resets_in: self.ttl(&key).await,
                })
            }
            Err(err) => {
                tracing::warn!(error = %err, counter = key, "quota reservation failed; allowing (fail-open)");
                Ok(QuotaPermit {
                    vault: self.clone(),
                    counter: None,
                    count: 0,
                    limit,
                })
            }
        }
    }

    /// Records a failed call of `tool` that a shared key was reserved for, and says whether
    /// its use is given back: the first `STARGAZER_DAILY_FAILURE_REFUNDS` failures of a user and
    /// tool in a day are (the seed's "count only successes"), later ones count as uses, so
    /// calls made to fail cannot use a shared key without end. Fail-open: when storage fails,
    /// the use is given back.
    pub async fn record_default_key_failure(&self, user_id: u64, tool: impl IntoToolName) -> bool {
        let Ok(tool) = tool.into_tool_name() else {
            return true;
        };
        let key = self.inner.layout.failures_key(user_id, &tool);
        match self
            .inner
            .storage
            .incr_with_ttl(&key, QUOTA_TTL_SECS, crate::config::QuotaWindow::Fixed)
            .await
        {
            Ok(failures) => failures <= u64::from(self.config().daily_failure_refunds),
            Err(err) => {
                tracing::warn!(error = %err, %tool, "cannot count a failed shared-key call; giving its use back");
                true
            }
        }
    }

    /// When the user's window for `tool` resets, when storage knows.
    pub async fn default_key_limit_resets_in(
        &self,
        user_id: u64,
        tool: impl IntoToolName,
    ) -> Option<Duration> {
        let tool = tool.into_tool_name().ok()?;
        self.ttl(&self.inner.layout.usage_key(user_id, &tool)).await
    }

    async fn ttl(&self, key: &str) -> Option<Duration> {
        match self.inner.storage.ttl(key).await {
            Ok(ttl) => ttl.map(Duration::from_secs),
            Err(err) => {
                tracing::debug!(error = %err, "cannot read a quota TTL");
                None
            }
        }
    }

    /// The user's privilege mask (`{p}:user_privileges:{user_id}`, a decimal 64-bit number);
    /// 0 when absent, unreadable or not a number (logged).
    pub async fn user_privileges(&self, user_id: u64) -> u64 {
        match self
            .inner
            .storage
            .get(&self.inner.layout.privileges_key(user_id))
            .await
        {
            Ok(None) => 0,
            Ok(Some(value)) => value.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(
                    user_id,
                    "the privilege mask is not a number; treating it as none"
                );
                0
            }),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read privileges; treating as none");
                0
            }
        }
    }

    /// Whether the shared-key daily limit applies to this call: not for the caller's own key,
    /// not without a caller, not for bot admins (`ADMIN_USER_IDS`), not for users with the
    /// BYPASS_RATELIMIT privilege bit. At most one GET.
    pub async fn default_key_limit_applies(
        &self,
        caller: Option<u64>,
        using_own_key: bool,
    ) -> bool {
        let Some(user_id) = caller else {
            return false;
        };
        if using_own_key || self.config().admin_user_ids.contains(&user_id) {
            return false;
        }
        self.user_privileges(user_id).await & (1 << BYPASS_RATELIMIT_BIT) == 0
    }

    /// The user's counters: for one tool, or every tool with a live counter.
    pub async fn default_key_usage(
        &self,
        user_id: u64,
        tool: Option<&str>,
    ) -> Result<Vec<ToolUsage>, UsageError> {
        let tools = match tool {
            Some(tool) => vec![ToolName::new(tool)?],
            None => {
                let prefix = self.inner.layout.usage_key(user_id, "");
                self.inner
                    .storage
                    .scan(&self.inner.layout.usage_keys_pattern(user_id))
                    .await?
                    .into_iter()
                    .filter_map(|key| ToolName::new(key.strip_prefix(&prefix)?).ok())
                    .collect()
            }
        };
        let mut usage = Vec::with_capacity(tools.len());
        for tool in tools {
            let key = self.inner.layout.usage_key(user_id, &tool);
            let (count, resets_in) = self.read_counter(&key).await?;
            usage.push(ToolUsage {
                limit: self.daily_limit(&tool),
                resets_in,
                count,
                tool,
            });
        }
        Ok(usage)
    }

    /// Deletes the user's counter for `tool`; returns whether there was one.
    pub async fn reset_default_key_usage(
        &self,
        user_id: u64,
        tool: impl IntoToolName,
    ) -> Result<bool, UsageError> {
        let tool = tool.into_tool_name()?;
        Ok(self
            .inner
            .storage
            .del(&self.inner.layout.usage_key(user_id, &tool))
            .await?)
    }
}
