//! Telling the person who shared a key that it was benched for a long reason (refused as
//! revoked, or out of credit), so they can fix it: the vault announces each such bench once in
//! the whole deployment, and whoever listens (the bot: a DM to the contributor) acts on it.
//!
//! One announcement per bench across every process: the process whose report set the bench
//! claims it with a once-guard in storage (`{p}:pool_bench_notice:{scope}:{service}:{key id}`,
//! living as long as the bench; unbenching deletes it, so a later bench is announced again).
//! A process with no listener claims nothing. A contributor can turn the messages off; the
//! choice lives in their settings hash, beside their shared-keys choice.

use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::{KeyError, KeyVault, Pool};
use crate::config::QuotaWindow;
use crate::health::BenchReason;
use crate::ids::{IntoServiceId, PoolField, ServiceId};
use crate::storage::Layout;

/// How many announcements wait for a slow listener before the oldest are dropped (logged).
pub(super) const NOTICE_BACKLOG: usize = 64;

const OFF: &str = "off";

/// A pool key benched for a long reason: what the contributor is told (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchNotice {
    /// The pool.
    pub pool: Pool,
    /// The key's service.
    pub service: ServiceId,
    /// The key id.
    pub key_id: PoolField,
    /// Why it was benched: [`BenchReason::Unauthorized`] or [`BenchReason::QuotaExhausted`].
    pub reason: BenchReason,
    /// Until when draws skip it.
    pub until: OffsetDateTime,
}

impl BenchReason {
    /// Whether the key's contributor is told about a bench for this reason: a key refused as
    /// revoked or out of credit needs its owner; a rate limit passes by itself.
    pub fn tells_contributor(&self) -> bool {
        matches!(
            self,
            BenchReason::Unauthorized | BenchReason::QuotaExhausted
        )
    }
}

impl KeyVault {
    /// Listens for pool keys benched for a long reason ([`BenchNotice`]). Each bench is
    /// announced once in the whole deployment, in the process that benched the key, and only
    /// while that process has a listener; a listener that falls more than 64 notices behind
    /// loses the oldest.
    pub fn bench_notices(&self) -> broadcast::Receiver<BenchNotice> {
        self.inner.bench_notices.subscribe()
    }

    /// Announces a bench that was just set, once in the deployment (see the module docs).
    pub(super) async fn announce_bench(&self, notice: BenchNotice) {
        if !notice.reason.tells_contributor() || self.inner.bench_notices.receiver_count() == 0 {
            return;
        }
        let guard = self.bench_notice_key(notice.pool, &notice.service, &notice.key_id);
        let lasts = (notice.until - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1)
            .unsigned_abs();
        match self
            .inner
            .storage
            .reserve(&guard, 1, lasts, QuotaWindow::Fixed)
            .await
        {
            Ok(claimed) if claimed.admitted => {
                // A listener gone since the count above is no loss: nothing was promised.
                let _ = self.inner.bench_notices.send(notice);
            }
            Ok(_) => tracing::debug!(
                pool = %notice.pool,
                key_id = %notice.key_id,
                "another process announced this bench"
            ),
            Err(err) => tracing::warn!(
                pool = %notice.pool,
                key_id = %notice.key_id,
                error = %err,
                "cannot claim a bench's announcement; its contributor is not told"
            ),
        }
    }

    /// Lets the next bench of the key be announced again (after an unbench).
    pub(super) async fn forget_bench_notice(&self, pool: Pool, service: &str, key_id: &str) {
        let guard = self.bench_notice_key(pool, service, key_id);
        if let Err(err) = self.inner.storage.del(&guard).await {
            tracing::debug!(%pool, key_id, error = %err, "cannot clear a bench's announcement");
        }
    }

    fn bench_notice_key(&self, pool: Pool, service: &str, key_id: &str) -> String {
        self.inner
            .layout
            .pool_bench_notice_key(&pool.scope(), service, key_id)
    }

    /// Who shared the key `key_id` of `pool` (`None`: the operator, the original bot, or a key
    /// that is gone or does not open).
    pub async fn pool_key_contributor(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        key_id: &str,
    ) -> Result<Option<u64>, KeyError> {
        let service = service.into_service_id()?;
        let Some(value) = self
            .inner
            .storage
            .hget(&pool.storage_key(&self.inner.layout, &service), key_id)
            .await?
        else {
            return Ok(None);
        };
        let owner = pool.owner_id();
        Ok(self
            .open_value(&owner, &service, Some(key_id), &value)
            .await
            .and_then(|(payload, _)| payload.contributor))
    }

    /// Whether the user is told when a key they shared is benched (on unless they turned it
    /// off with [`KeyVault::set_bench_dms`]).
    pub async fn bench_dms_enabled(&self, user_id: u64) -> Result<bool, KeyError> {
        let value = self
            .inner
            .storage
            .hget(
                &self.inner.layout.user_settings_key(user_id),
                Layout::bench_dms_field(),
            )
            .await?;
        Ok(value.as_deref() != Some(OFF))
    }

    /// Turns the messages about benched keys the user shared on or off.
    pub async fn set_bench_dms(&self, user_id: u64, enabled: bool) -> Result<(), KeyError> {
        let hash = self.inner.layout.user_settings_key(user_id);
        if enabled {
            self.inner
                .storage
                .hdel(&hash, Layout::bench_dms_field())
                .await?;
        } else {
            self.inner
                .storage
                .hset(&hash, Layout::bench_dms_field(), OFF)
                .await?;
        }
        Ok(())
    }
}
