//! Writing and reading a pool's log (the format is `crate::pool_log`).

use time::OffsetDateTime;

use super::{KeyError, KeyVault, Pool};
use crate::ids::{PoolField, ServiceId};
use crate::pool_log::{POOL_LOG_MAX, PoolAction, PoolLogEntry};

impl KeyVault {
    /// Records what happened to a pool key. Never fails the caller: the change it records is
    /// made already, and a storage error is logged. The log keeps [`POOL_LOG_MAX`] entries.
    pub(super) async fn log_pool_event(
        &self,
        pool: Pool,
        actor: Option<u64>,
        action: PoolAction,
        service: &ServiceId,
        key_id: &PoolField,
    ) {
        let entry = PoolLogEntry {
            at: OffsetDateTime::now_utc(),
            actor,
            action,
            service: service.clone(),
            key_id: key_id.clone(),
        };
        let (field, value) = entry.encode();
        let key = pool.log_key(&self.inner.layout);
        let written = async {
            self.inner.storage.hset(&key, &field, &value).await?;
            // Trimmed when a quarter over the cap, so most writes are one command.
            if self.inner.storage.hlen(&key).await? > (POOL_LOG_MAX + POOL_LOG_MAX / 4) as u64 {
                let mut fields: Vec<String> = self
                    .inner
                    .storage
                    .hgetall(&key)
                    .await?
                    .into_iter()
                    .map(|(field, _)| field)
                    .collect();
                fields.sort_unstable();
                let excess = fields.len().saturating_sub(POOL_LOG_MAX);
                for field in &fields[..excess] {
                    self.inner.storage.hdel(&key, field).await?;
                }
            }
            Ok::<_, crate::storage::StorageError>(())
        };
        if let Err(err) = written.await {
            tracing::warn!(%pool, error = %err, "cannot write the pool's log");
        }
    }

    /// The newest `limit` entries of a pool's log (at most [`POOL_LOG_MAX`]), newest first.
    pub async fn pool_log(&self, pool: Pool, limit: usize) -> Result<Vec<PoolLogEntry>, KeyError> {
        let mut entries = self
            .inner
            .storage
            .hgetall(&pool.log_key(&self.inner.layout))
            .await?;
        entries.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        Ok(entries
            .iter()
            .filter_map(|(_, value)| PoolLogEntry::decode(value))
            .take(limit.min(POOL_LOG_MAX))
            .collect())
    }
}
