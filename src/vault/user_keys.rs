//! Users' own keys: saved, listed, removed, and erased with their data key.

use secrecy::ExposeSecret;
use time::OffsetDateTime;

use crate::catalogue::KeyForm;
use crate::data_keys::Checkpoint;
use crate::ids::{IntoServiceId, ServiceId};
use crate::key_check::KeyCheck;
use crate::storage::Owner;

use super::{
    KeyError, KeyVault, Payload, WriteMode, check_secret, masked_value, truncate_to_seconds,
};

/// One of a user's keys, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeyInfo {
    /// The service id.
    pub service: ServiceId,
    /// The service's display name.
    pub display_name: String,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
    /// When it was set (unknown for values written by the original bot).
    pub set_at: Option<OffsetDateTime>,
    /// What checking it with the service found when it was saved (`NotChecked` in listings).
    pub check: KeyCheck,
}

/// What [`KeyVault::forget_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// How many keys the user had.
    pub keys: usize,
    /// Whether the user had a data key, now destroyed.
    pub data_key_destroyed: bool,
    /// Whether the database's write-ahead log was cleared of the wrapped key at once; when
    /// [`Checkpoint::Blocked`], a copy of the wrapped key stays in the `-wal` file until a
    /// later checkpoint (every running process retries).
    pub checkpoint: Checkpoint,
}

impl KeyVault {
    /// Stores the user's own key for `service`, replacing any earlier one. The secret is trimmed;
    /// an empty or oversized secret, one with whitespace or control characters inside, or an
    /// unknown service is refused and nothing is written.
    pub async fn set_user_api_key(
        &self,
        user_id: u64,
        service: impl IntoServiceId,
        secret: &str,
    ) -> Result<UserKeyInfo, KeyError> {
        let entry = self.known_service(service)?;
        let service = &entry.id;
        let value = self.checked_value(service, secret, false)?;
        let secret = value.as_str();
        let check = self.probe_key(service, secret).await?;
        let owner = Owner::User(user_id).id();
        let now = OffsetDateTime::now_utc();
        let hash = self.inner.layout.user_keys_key(user_id);
        let payload = Payload::encode(secret, Some(now), None);
        self.seal_and_write(&owner, &hash, WriteMode::Set, |data_key| {
            let sealed = data_key.seal(
                &self.seal_context(&owner, service, None),
                payload.expose_secret().as_bytes(),
            );
            (service.to_string(), sealed)
        })
        .await?;
        Ok(UserKeyInfo {
            service: service.clone(),
            display_name: entry.display_name.clone(),
            masked: Some(masked_value(service, secret)),
            set_at: Some(truncate_to_seconds(now)),
            check,
        })
    }

    /// Checks a secret on its way in: the rules of every key, and for Gitea those of its
    /// value's base URL (`shared`: for a pool, whose hosts the operator limits).
    pub(super) fn checked_value(
        &self,
        service: &str,
        secret: &str,
        shared: bool,
    ) -> Result<zeroize::Zeroizing<String>, KeyError> {
        if service == crate::gitea::GITEA_SERVICE {
            self.gitea_policy().check_value(secret, shared)
        } else {
            Ok(zeroize::Zeroizing::new(check_secret(secret)?.to_owned()))
        }
    }

    /// Stores the user's key from the values of the service's key-entry form
    /// ([`crate::Service::form_fields`], in order; an input left empty is an empty string):
    /// the API key, or Gitea's token and base URL.
    pub async fn set_user_key_from_form(
        &self,
        user_id: u64,
        service: impl IntoServiceId,
        values: &[&str],
    ) -> Result<UserKeyInfo, KeyError> {
        let entry = self.known_service(service)?;
        let first = values.first().copied().unwrap_or_default();
        match entry.form {
            KeyForm::ApiKey => self.set_user_api_key(user_id, &entry.id, first).await,
            KeyForm::TokenAndBaseUrl => {
                let base_url = values.get(1).copied();
                self.set_gitea_credentials(user_id, first, base_url).await
            }
        }
    }

    /// Removes the user's key for `service` (known to the catalogue or not); returns whether
    /// there was one.
    pub async fn remove_user_api_key(
        &self,
        user_id: u64,
        service: impl IntoServiceId,
    ) -> Result<bool, KeyError> {
        let service = service.into_service_id()?;
        Ok(self
            .inner
            .storage
            .hdel(&self.inner.layout.user_keys_key(user_id), &service)
            .await?)
    }

    /// The user's keys, masked, by service id.
    pub async fn list_user_api_keys(&self, user_id: u64) -> Result<Vec<UserKeyInfo>, KeyError> {
        let entries = self
            .inner
            .storage
            .hgetall(&self.inner.layout.user_keys_key(user_id))
            .await?;
        let owner = Owner::User(user_id).id();
        let mut keys = Vec::with_capacity(entries.len());
        for (field, value) in entries {
            let Ok(service) = ServiceId::new(&field) else {
                tracing::warn!("a user's key hash holds a field that is no service id; skipped");
                continue;
            };
            let opened = self.open_value(&owner, &service, None, &value).await;
            keys.push(UserKeyInfo {
                display_name: self.inner.catalogue.display_name(&service).to_owned(),
                masked: opened
                    .as_ref()
                    .map(|(p, _)| masked_value(&service, p.key.expose())),
                set_at: opened.and_then(|(p, _)| p.at),
                service,
                check: KeyCheck::NotChecked,
            });
        }
        Ok(keys)
    }

    /// Erases every key of the user. The data key goes first (the crypto-shred: from then on
    /// no copy of the values opens anywhere, backups and replicas included, and every other
    /// process drops its cached copy within 1 s), then the user's settings (a choice to use
    /// only their own keys goes too; a failure to delete them is logged, they hold no secret),
    /// then the values themselves.
    ///
    /// On error, the error says what was done: [`KeyError::Storage`] or [`KeyError::DataKeys`]
    /// when nothing was changed, [`KeyError::ValuesRemain`] when the data key is destroyed
    /// but the sealed values could not be deleted.
    pub async fn forget_user(&self, user_id: u64) -> Result<Forgotten, KeyError> {
        let hash = self.inner.layout.user_keys_key(user_id);
        let keys = self.inner.storage.hgetall(&hash).await?.len();
        let owner = Owner::User(user_id).id();
        let erasure = self.inner.data_keys.delete(&owner).await?;
        // The user's settings go with their keys (they name no secret: no erasure order).
        if let Err(err) = self
            .inner
            .storage
            .del(&self.inner.layout.user_settings_key(user_id))
            .await
        {
            tracing::warn!(error = %err, "cannot delete a forgotten user's settings");
        }
        if let Err(source) = self.inner.storage.del(&hash).await {
            // Only then is "the key is destroyed, the values remain" what happened.
            return Err(if erasure.existed && keys > 0 {
                KeyError::ValuesRemain { keys, source }
            } else {
                KeyError::Storage(source)
            });
        }
        Ok(Forgotten {
            keys,
            data_key_destroyed: erasure.existed,
            checkpoint: erasure.checkpoint,
        })
    }
}
