//! The daily quota on shared keys, per user and tool, and the privileges that lift it.
//!
//! Counters live at `{p}:default_key_usage:{user_id}:{tool}` with a 24-hour TTL. Checks are
//! fail-open: when storage is unreachable or fails, the call is allowed (and logged), so a
//! Redis hiccup never blocks a legitimate call. Counting never fails the caller either.

use std::time::Duration;

use crate::ids::{InvalidToolName, ToolName};
use crate::storage::StorageError;
use crate::vault::KeyVault;

/// How long a counter lives: one day.
pub const QUOTA_TTL_SECS: u64 = 86_400;
/// The privilege bit that lifts the shared-key limit (BYPASS_RATELIMIT).
pub const BYPASS_RATELIMIT_BIT: u32 = 12;

/// The result of a quota check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCheck {
    /// Whether one more use is allowed.
    pub allowed: bool,
    /// Uses counted in the current window.
    pub current: u64,
    /// The daily limit.
    pub limit: u32,
}

/// A use of a shared key refused because the daily limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached {
    /// Uses counted in the current window.
    pub current: u64,
    /// The daily limit.
    pub limit: u32,
    /// When the window resets, when known.
    pub resets_in: Option<Duration>,
}

/// A user's count for one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUsage {
    /// The tool.
    pub tool: ToolName,
    /// Uses counted in the current window.
    pub count: u64,
    /// The tool's daily limit.
    pub limit: u32,
    /// When the window resets.
    pub resets_in: Option<Duration>,
}

/// One reserved use of a shared key. [`QuotaPermit::commit`] keeps it;
/// [`QuotaPermit::refund`] gives it back when the call failed. Dropping a permit keeps the use.
#[derive(Debug)]
#[must_use = "commit the permit after a successful call, or refund it after a failed one"]
pub struct QuotaPermit {
    pub(crate) vault: KeyVault,
    /// The counter the unit was taken from; `None` when storage was unavailable (fail-open).
    pub(crate) counter: Option<String>,
    /// The count after this reservation.
    pub count: u64,
    /// The daily limit.
    pub limit: u32,
}

impl QuotaPermit {
    /// Keeps the use counted.
    pub fn commit(self) {}

    /// Gives the use back (errors are logged and swallowed).
    pub async fn refund(self) {
        if let Some(counter) = &self.counter {
            match self.vault.backend().refund(counter).await {
                Ok(_) => crate::metrics::use_refunded(),
                Err(err) => tracing::warn!(error = %err, "cannot refund a shared-key use"),
            }
        }
    }

    /// Whether the reservation was recorded (false when storage was unavailable and the call
    /// was let through).
    pub fn is_recorded(&self) -> bool {
        self.counter.is_some()
    }
}

/// Why an operator's usage command failed.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The tool name cannot be one.
    #[error(transparent)]
    InvalidTool(#[from] InvalidToolName),
    /// Storage failed.
    #[error("the usage counters are unavailable: {0}")]
    Storage(#[from] StorageError),
}
