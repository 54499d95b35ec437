//! Pool keys: added (found by their secret), removed, listed, and drawn for a resolution.

use rand::seq::SliceRandom;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use crate::health::{Bench, live_benches};
use crate::ids::{IntoServiceId, KeyId, PoolField, ServiceId};
use crate::key_check::KeyCheck;
use crate::pool_log::PoolAction;
use crate::secret::ApiKey;
use crate::storage::ResolveRequest;

use super::{
    KeyError, KeyOrigin, KeyVault, Payload, Pool, PoolKeyRef, ResolvedKey, WriteMode, masked_value,
};

/// How many random entries one resolution draws from each pool.
pub(super) const POOL_SAMPLE: usize = 8;

/// One key of a pool, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKeyInfo {
    /// The service id.
    pub service: ServiceId,
    /// The key id (the hash field: a [`KeyId`] unless planted by hand or left by `migrate`).
    pub key_id: PoolField,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
    /// Who added it (unknown for values written by the original bot).
    pub contributor: Option<u64>,
    /// When it was added.
    pub added_at: Option<OffsetDateTime>,
    /// Outcomes reported for it today (UTC).
    pub uses_today: u64,
    /// Of those, the ones where the key itself failed (rate-limited, exhausted, unauthorized).
    pub failures_today: u64,
    /// Whether it is benched now (skipped by draws), until when and why.
    pub bench: Option<Bench>,
}

/// A pool key as autocomplete offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKeyChoice {
    /// The service id.
    pub service: ServiceId,
    /// The key id.
    pub key_id: PoolField,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
}

/// What adding a pool key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAdd {
    /// The key id (of the entry already there, when the pool held the key).
    pub key_id: PoolField,
    /// `…last4`.
    pub masked: String,
    /// False when the pool already held this key (nothing changed).
    pub added: bool,
    /// What checking it with the service found.
    pub check: KeyCheck,
}

impl KeyVault {
    /// Adds a key to a pool. The key id is a keyed fingerprint of the secret, so adding the
    /// same key twice changes nothing (`added` is then false).
    pub async fn add_pool_key(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        secret: &str,
        contributor: u64,
    ) -> Result<PoolAdd, KeyError> {
        let service = &self.known_service(service)?.id;
        let value = self.checked_value(service, secret, true)?;
        let secret = value.as_str();
        // Found by its secret, not only by its id: a rekey keeps ids that a new data key would
        // derive differently.
        if let Some(key_id) = self.pool_field_holding(pool, service, secret).await? {
            return Ok(PoolAdd {
                key_id,
                masked: masked_value(service, secret),
                added: false,
                check: KeyCheck::NotChecked,
            });
        }
        // Before the key goes to its service to be checked.
        self.check_pool_room(pool, service).await?;
        let check = self.probe_key(service, secret).await?;
        let owner = pool.owner_id();
        let hash = pool.storage_key(&self.inner.layout, service);
        let payload = Payload::encode(secret, Some(OffsetDateTime::now_utc()), Some(contributor));
        let (key_id, added) = self
            .seal_and_write(&owner, &hash, WriteMode::IfAbsent, |data_key| {
                let key_id = data_key.key_id(secret.as_bytes());
                let sealed = data_key.seal(
                    &self.seal_context(&owner, service, Some(&key_id)),
                    payload.expose_secret().as_bytes(),
                );
                (key_id.to_string(), sealed)
            })
            .await?;
        let key_id = PoolField::new(&key_id)?;
        if added {
            let actor = (contributor != 0).then_some(contributor);
            self.log_pool_event(pool, actor, PoolAction::Added, service, &key_id)
                .await;
        }
        Ok(PoolAdd {
            key_id,
            masked: masked_value(service, secret),
            added,
            check,
        })
    }

    /// The field of the pool's `service` hash whose value is `secret`, if any.
    pub(super) async fn pool_field_holding(
        &self,
        pool: Pool,
        service: &ServiceId,
        secret: &str,
    ) -> Result<Option<PoolField>, KeyError> {
        let owner = pool.owner_id();
        let entries = self
            .inner
            .storage
            .hgetall(&pool.storage_key(&self.inner.layout, service))
            .await?;
        for (field, value) in entries {
            if let Ok(field) = PoolField::new(&field)
                && let Some((payload, _)) =
                    self.open_value(&owner, service, Some(&field), &value).await
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    payload.key.expose().as_bytes(),
                    secret.as_bytes(),
                ))
            {
                return Ok(Some(field));
            }
        }
        Ok(None)
    }

    /// Refuses an add to a pool that holds `STARGAZER_POOL_MAX_KEYS` keys for the service.
    /// (Two adds racing at the cap may both pass: the cap bounds work, it is not a quota.)
    pub(super) async fn check_pool_room(
        &self,
        pool: Pool,
        service: &ServiceId,
    ) -> Result<(), KeyError> {
        let max = self.inner.config.pool_max_keys;
        let held = self
            .inner
            .storage
            .hlen(&pool.storage_key(&self.inner.layout, service))
            .await?;
        if held >= max {
            return Err(KeyError::PoolFull {
                pool,
                service: service.to_string(),
                max,
            });
        }
        Ok(())
    }

    /// Removes a key from a pool by key id (and its bench, if any); returns whether it was
    /// there. Any field a pool holds can be removed, key id or not (values planted by hand,
    /// entries `migrate` left for the operator).
    pub async fn remove_pool_key(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        key_id: &str,
    ) -> Result<bool, KeyError> {
        self.remove_pool_key_by(pool, service, key_id, None).await
    }

    /// [`KeyVault::remove_pool_key`] by a user, whom the pool's log names (`None`: the
    /// operator).
    pub async fn remove_pool_key_by(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
        key_id: &str,
        actor: Option<u64>,
    ) -> Result<bool, KeyError> {
        let service = &service.into_service_id()?;
        let key_id = PoolField::new(key_id)?;
        let removed = self
            .inner
            .storage
            .hdel(&pool.storage_key(&self.inner.layout, service), &key_id)
            .await?;
        if !removed {
            // Not in the pool and not a key id: perhaps a key pasted by mistake. Refuse it
            // without echoing it.
            KeyId::new(&key_id)?;
            return Ok(false);
        }
        if let Err(err) = self
            .inner
            .storage
            .hdel(&pool.bench_key(&self.inner.layout, service), &key_id)
            .await
        {
            // A stale bench entry expires on its own.
            tracing::debug!(%pool, %service, %key_id, error = %err, "cannot clear a removed key's bench");
        }
        self.log_pool_event(pool, actor, PoolAction::Removed, service, &key_id)
            .await;
        Ok(removed)
    }

    /// The keys of a pool, masked, with today's uses and failures and any bench (until when and
    /// why): for one service, or for every service in the catalogue.
    pub async fn list_pool_keys(
        &self,
        pool: Pool,
        service: Option<&str>,
    ) -> Result<Vec<PoolKeyInfo>, KeyError> {
        let services = self.services_named(service)?;
        let owner = pool.owner_id();
        let mut keys = Vec::new();
        for service in services {
            let entries = self
                .inner
                .storage
                .hgetall(&pool.storage_key(&self.inner.layout, &service))
                .await?;
            if entries.is_empty() {
                continue;
            }
            let benches = self.pool_key_benches(pool, &service).await?;
            let usage = self.pool_key_usage_today(pool, &service).await?;
            for (key_id, value) in entries {
                let Some(key_id) = listable(&key_id) else {
                    continue;
                };
                let used = usage.get(key_id.as_str()).copied().unwrap_or_default();
                let opened = self
                    .open_value(&owner, &service, Some(&key_id), &value)
                    .await;
                keys.push(PoolKeyInfo {
                    service: service.clone(),
                    masked: opened
                        .as_ref()
                        .map(|(p, _)| masked_value(&service, p.key.expose())),
                    contributor: opened.as_ref().and_then(|(p, _)| p.contributor),
                    added_at: opened.and_then(|(p, _)| p.at),
                    uses_today: used.uses,
                    failures_today: used.failures,
                    bench: benches.get(key_id.as_str()).copied(),
                    key_id,
                });
            }
        }
        Ok(keys)
    }

    /// The one service named (checked), or every service of the catalogue.
    pub(super) fn services_named(&self, service: Option<&str>) -> Result<Vec<ServiceId>, KeyError> {
        Ok(match service {
            Some(service) => vec![ServiceId::new(service)?],
            None => self.inner.catalogue.iter().map(|s| s.id.clone()).collect(),
        })
    }

    /// At most `limit` keys of a pool whose id starts with `id_prefix`, masked (for
    /// autocomplete, on every keystroke): only those are opened, and no usage or bench is read.
    pub async fn pool_key_choices(
        &self,
        pool: Pool,
        service: Option<&str>,
        id_prefix: &str,
        limit: usize,
    ) -> Result<Vec<PoolKeyChoice>, KeyError> {
        let services = self.services_named(service)?;
        let owner = pool.owner_id();
        let mut choices = Vec::new();
        for service in services {
            if choices.len() >= limit {
                break;
            }
            let entries = self
                .inner
                .storage
                .hgetall(&pool.storage_key(&self.inner.layout, &service))
                .await?;
            for (key_id, value) in entries
                .into_iter()
                .filter(|(key_id, _)| key_id.starts_with(id_prefix))
                .filter_map(|(key_id, value)| Some((listable(&key_id)?, value)))
                .take(limit - choices.len())
            {
                let opened = self
                    .open_value(&owner, &service, Some(&key_id), &value)
                    .await;
                choices.push(PoolKeyChoice {
                    masked: opened.map(|(p, _)| masked_value(&service, p.key.expose())),
                    service: service.clone(),
                    key_id,
                });
            }
        }
        Ok(choices)
    }

    /// A random key of the global pool for `service`; `None` (logged) on any failure.
    pub async fn get_pool_api_key(&self, service: impl IntoServiceId) -> Option<ApiKey> {
        self.draw_from_pool(Pool::Global, service)
            .await
            .map(|r| r.key)
    }

    /// A random key of a channel's pool for `service`; `None` (logged) on any failure.
    pub async fn get_channel_pool_api_key(
        &self,
        channel_id: u64,
        service: impl IntoServiceId,
    ) -> Option<ApiKey> {
        self.draw_from_pool(Pool::Channel(channel_id), service)
            .await
            .map(|r| r.key)
    }

    pub(super) async fn draw_from_pool(
        &self,
        pool: Pool,
        service: impl IntoServiceId,
    ) -> Option<ResolvedKey> {
        let service = &match service.into_service_id() {
            Ok(service) => service,
            Err(err) => {
                tracing::warn!(error = %err, "pool draw refused");
                return None;
            }
        };
        let request = ResolveRequest {
            user: None,
            user_settings: None,
            pools: vec![pool.storage_key(&self.inner.layout, service)],
            sample: POOL_SAMPLE,
            pool_benches: vec![pool.bench_key(&self.inner.layout, service)],
            pool_limits: None,
        };
        match self.inner.storage.resolve(&request).await {
            Ok(reply) => {
                let entries = reply.pools.into_iter().next().unwrap_or_default();
                let benched = reply.pool_benches.first().map(Vec::as_slice);
                self.usable_in(pool, service, entries, benched.unwrap_or_default())
                    .await
            }
            Err(err) => {
                tracing::warn!(%pool, %service, error = %err, "cannot draw from the pool");
                None
            }
        }
    }

    /// A usable key of a pool: a random one of the drawn `entries` that is not benched and
    /// opens; when none is and the draw was full (the pool may hold more), any other key of
    /// the pool, read whole, as long as the pool is within `STARGAZER_POOL_MAX_KEYS`. So a
    /// usable key is found whenever one exists, and the extra read happens only when every
    /// drawn key failed.
    pub(super) async fn usable_in(
        &self,
        pool: Pool,
        service: &ServiceId,
        entries: Vec<(String, String)>,
        bench_entries: &[(String, String)],
    ) -> Option<ResolvedKey> {
        if let Some(found) = self
            .first_that_opens(pool, service, &entries, bench_entries)
            .await
        {
            return Some(found);
        }
        if entries.len() < POOL_SAMPLE {
            return None;
        }
        let drawn: std::collections::HashSet<&str> =
            entries.iter().map(|(key_id, _)| key_id.as_str()).collect();
        let hash = pool.storage_key(&self.inner.layout, service);
        let whole = async {
            let held = self.inner.storage.hlen(&hash).await?;
            if held > self.inner.config.pool_max_keys {
                tracing::warn!(%pool, %service, held, "a pool holds more keys than STARGAZER_POOL_MAX_KEYS; not reading it whole");
                return Ok(Vec::new());
            }
            self.inner.storage.hgetall(&hash).await
        };
        match whole.await {
            Ok(mut rest) => {
                rest.retain(|(key_id, _)| !drawn.contains(key_id.as_str()));
                self.first_that_opens(pool, service, &rest, bench_entries)
                    .await
            }
            Err(err) => {
                tracing::warn!(%pool, %service, error = %err, "cannot read a pool whole");
                None
            }
        }
    }

    /// A random entry of a pool draw that is not benched and opens.
    pub(super) async fn first_that_opens(
        &self,
        pool: Pool,
        service: &ServiceId,
        entries: &[(String, String)],
        bench_entries: &[(String, String)],
    ) -> Option<ResolvedKey> {
        let mut entries: Vec<&(String, String)> = entries.iter().collect();
        if !bench_entries.is_empty() {
            let benched = live_benches(bench_entries);
            let drawn = entries.len();
            entries.retain(|(key_id, _)| !benched.contains_key(key_id));
            if drawn > 0 && entries.is_empty() {
                tracing::debug!(%pool, %service, "every key drawn from the pool is benched");
            }
        }
        entries.shuffle(&mut rand::thread_rng());
        let owner = pool.owner_id();
        for (key_id, value) in entries {
            // A field no caller could name again cannot be counted or benched: not drawn.
            let Ok(key_id) = PoolField::new(key_id) else {
                continue;
            };
            if let Some((payload, _)) = self.open_value(&owner, service, Some(&key_id), value).await
            {
                return Some(ResolvedKey {
                    key: payload.key,
                    origin: KeyOrigin::Pool(PoolKeyRef { pool, key_id }),
                });
            }
        }
        None
    }
}

/// A field of a pool as a listing shows it; a field no one could name to remove it (a control
/// character, over 200 characters) is left out, logged.
fn listable(field: &str) -> Option<PoolField> {
    let listed = PoolField::new(field).ok();
    if listed.is_none() {
        tracing::warn!(
            "a pool holds a field that cannot be named (control characters, or too long); not listed"
        );
    }
    listed
}
