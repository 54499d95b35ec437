//! Sealing and opening values: under the owner's current data key, written so that a key erased meanwhile never keeps a value; opened under whichever key sealed it.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::crypto::{DataKey, SealContext, SealedFormat, StoredValue};
use crate::storage::{self, Owner, StorageError};

use super::{KeyError, KeyVault, Payload};

/// How [`KeyVault::seal_and_write`] writes a sealed value.
#[derive(Debug, Clone, Copy)]
pub(super) enum WriteMode<'a> {
    /// HSET: in place of any value (a user's key for a service).
    Set,
    /// HSETNX: only to an absent field (a pool's key id).
    IfAbsent,
    /// Only in place of this value, if the field still holds it (`migrate`).
    Replacing(&'a str),
}

/// A value [`KeyVault::seal_and_write`] wrote, and what its field held before (`None`: absent).
pub(super) struct Written {
    field: String,
    value: String,
    before: Option<String>,
}

/// How long a read of `migrate`'s legacy marker is trusted.
pub(super) const LEGACY_MARKER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl KeyVault {
    /// The owner's data key to open values with (cached when the cache is fresh).
    pub(super) async fn key_to_open(&self, owner: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(key) = self.inner.data_keys.cached(owner) {
            return Ok(Some(key));
        }
        Ok(self.inner.data_keys.get(owner).await?)
    }

    /// Seals a value under the owner's current data key and writes it to `hash` (`seal` gives
    /// the field and the sealed value for a data key), then checks that the key is still the
    /// stored one: another process may have erased it (and made a new one) meanwhile, and a
    /// value sealed under an erased key opens nowhere. If it was, the value is sealed again
    /// under the new key and written in place of the one this call wrote.
    ///
    /// Returns the field and whether the value was written (not when [`WriteMode::IfAbsent`]
    /// found the field taken, or [`WriteMode::Replacing`] found another value). On an error,
    /// what this call wrote has been taken back, so the hash is as it was: a value of its own
    /// it could not take back is reported by [`KeyError::WriteInDoubt`].
    pub(super) async fn seal_and_write(
        &self,
        owner: &str,
        hash: &str,
        mode: WriteMode<'_>,
        mut seal: impl FnMut(&DataKey) -> (String, String),
    ) -> Result<(String, bool), KeyError> {
        const TRIES: usize = 3;
        let mut wrote: Option<Written> = None;
        let failure = 'tries: {
            for _ in 0..TRIES {
                let key = match self.inner.data_keys.current(owner).await {
                    Ok(key) => key,
                    Err(err) => break 'tries KeyError::from(err),
                };
                let (field, value) = seal(&key);
                let name = field.clone();
                let written = match self
                    .write_sealed(hash, mode, wrote.as_ref(), field, value)
                    .await
                {
                    Ok(Some(written)) => written,
                    // Nothing of this call's is in the hash.
                    // (A try of its own that a later try replaced or deleted is not.)
                    Ok(None) => return Ok((name, false)),
                    Err(err) => break 'tries err,
                };
                match self.inner.data_keys.holds(owner, &key).await {
                    Ok(true) => return Ok((written.field, true)),
                    Ok(false) => tracing::info!(
                        owner,
                        "a data key was erased while a value was sealed under it; sealing again"
                    ),
                    Err(err) => {
                        wrote = Some(written);
                        break 'tries KeyError::from(err);
                    }
                }
                wrote = Some(written);
            }
            KeyError::DataKeyChurn
        };
        if let Some(written) = wrote
            && let Err(err) = self.take_back(hash, &written).await
        {
            tracing::warn!(owner, error = %err, "cannot take back a value written under a data key that could not be confirmed");
            return Err(KeyError::WriteInDoubt {
                cause: Box::new(failure),
            });
        }
        Err(failure)
    }

    /// Writes one sealed value as `mode` says; `previous`, what an earlier try of the same call
    /// wrote under a key since erased, is replaced (or, under another field, deleted first).
    /// `None`: nothing was written and nothing of the call's is left.
    pub(super) async fn write_sealed(
        &self,
        hash: &str,
        mode: WriteMode<'_>,
        previous: Option<&Written>,
        field: String,
        value: String,
    ) -> Result<Option<Written>, KeyError> {
        let storage = &self.inner.storage;
        if let Some(previous) = previous {
            if previous.field == field {
                return Ok(storage
                    .hreplace(hash, &field, &previous.value, &value)
                    .await?
                    .then(|| Written {
                        field,
                        value,
                        before: previous.before.clone(),
                    }));
            }
            storage
                .hdel_if(hash, &previous.field, &previous.value)
                .await?;
        }
        let before = match mode {
            WriteMode::Set => {
                let before = storage.hget(hash, &field).await?;
                storage.hset(hash, &field, &value).await?;
                before
            }
            WriteMode::IfAbsent => {
                if !storage.hset_nx(hash, &field, &value).await? {
                    return Ok(None);
                }
                None
            }
            WriteMode::Replacing(expected) => {
                if !storage.hreplace(hash, &field, expected, &value).await? {
                    return Ok(None);
                }
                Some(expected.to_owned())
            }
        };
        Ok(Some(Written {
            field,
            value,
            before,
        }))
    }

    /// Puts back what the field held before `written`, unless it changed since.
    pub(super) async fn take_back(
        &self,
        hash: &str,
        written: &Written,
    ) -> Result<(), StorageError> {
        let storage = &self.inner.storage;
        match &written.before {
            Some(before) => storage
                .hreplace(hash, &written.field, &written.value, before)
                .await
                .map(drop),
            None => storage
                .hdel_if(hash, &written.field, &written.value)
                .await
                .map(drop),
        }
    }

    pub(super) fn seal_context<'a>(
        &'a self,
        owner: &'a str,
        service: &'a str,
        key_id: Option<&'a str>,
    ) -> SealContext<'a> {
        SealContext {
            prefix: self.inner.layout.prefix(),
            owner,
            service,
            key_id,
        }
    }

    /// Whether values in the original bot's formats may be read: not with
    /// `STARGAZER_LEGACY_VALUES=refuse`, nor once `migrate` has left its marker (read at most
    /// every 5 s, and only when a legacy value is met). A marker that cannot be read refuses.
    pub async fn legacy_values_allowed(&self) -> bool {
        if self.inner.config.legacy_values == crate::config::LegacyValues::Refuse {
            return false;
        }
        let cached = *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((at, refuse)) = cached
            && at.elapsed() < LEGACY_MARKER_TTL
        {
            return !refuse;
        }
        let refuse = match self
            .inner
            .storage
            .get(&self.inner.layout.legacy_values_key())
            .await
        {
            Ok(marker) => marker.as_deref() == Some("refuse"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the legacy-values marker; refusing legacy values");
                return false;
            }
        };
        *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), refuse));
        !refuse
    }

    /// The keys the original bot's `v2:` pool values may be sealed under, tried in turn:
    /// `STARGAZER_ORIGINAL_POOL_KEY`; a data-key row under the owner id `stargazer:api_key_pool`
    /// (its `POOL_KEY_SALT`); SHA-256 of each configured master key followed by that salt. Found
    /// once, on the first such value.
    pub(super) async fn original_pool_keys(&self) -> &[DataKey] {
        let found = self
            .inner
            .original_pool_keys
            .get_or_try_init(|| async {
                let mut keys = Vec::new();
                if let Some(given) = &self.inner.config.original_pool_key {
                    keys.push(given.as_data_key());
                }
                // A failed read is not remembered: the next value tries again.
                let row = self
                    .inner
                    .data_keys
                    .get(Owner::ORIGINAL_POOL_KEY)
                    .await
                    .inspect_err(|err| {
                        tracing::warn!(error = %err, "cannot read the original bot's pool key row")
                    })?;
                keys.extend(row.map(|key| DataKey::clone_of(&key)));
                for master in self.inner.data_keys.keyring().all() {
                    keys.push(master.derive_original_pool_key(Owner::ORIGINAL_POOL_KEY.as_bytes()));
                }
                Ok::<_, KeyError>(keys)
            })
            .await;
        found.map(Vec::as_slice).unwrap_or_default()
    }

    /// Opens a stored value for `owner`; `None` (logged) when it does not open, or when it is
    /// a legacy value and those are refused.
    pub(super) async fn open_value(
        &self,
        owner: &str,
        service: &str,
        key_id: Option<&str>,
        value: &str,
    ) -> Option<(Payload, SealedFormat)> {
        self.open_value_as(owner, service, key_id, value, false)
            .await
    }

    /// [`KeyVault::open_value`]; with `for_migration`, legacy values are read whatever the
    /// policy (`migrate` must read what it rewrites).
    pub(super) async fn open_value_as(
        &self,
        owner: &str,
        service: &str,
        key_id: Option<&str>,
        value: &str,
        for_migration: bool,
    ) -> Option<(Payload, SealedFormat)> {
        let result = async {
            let stored = StoredValue::parse(value)?;
            let format = stored.format();
            if matches!(format, SealedFormat::V2 | SealedFormat::Plaintext)
                && !for_migration
                && !self.legacy_values_allowed().await
            {
                return Err(OpenFailure::LegacyRefused);
            }
            if format == SealedFormat::V2 && key_id.is_some() {
                // The original bot's pool values: under its pool key, however it derived it.
                let context = self.seal_context(owner, service, key_id);
                for key in self.original_pool_keys().await {
                    if let Ok(opened) = stored.open(Some(key), &context) {
                        return Ok((Payload::bare(opened.expose_secret()), format));
                    }
                }
                return Err(crate::crypto::OpenError::Authentication.into());
            }
            let opened = if stored.needs_data_key() {
                let Some(key) = self.key_to_open(owner).await? else {
                    return Err(crate::crypto::OpenError::NoDataKey.into());
                };
                let context = self.seal_context(owner, service, key_id);
                match stored.open(Some(&key), &context) {
                    Err(crate::crypto::OpenError::Authentication) => {
                        self.open_after_miss(owner, &stored, &context, &key).await?
                    }
                    other => other?,
                }
            } else {
                stored.open(None, &self.seal_context(owner, service, key_id))?
            };
            let payload = match format {
                SealedFormat::V4 => Payload::decode(opened.expose_secret()),
                SealedFormat::V2 | SealedFormat::Plaintext => Payload::bare(opened.expose_secret()),
            };
            Ok::<_, OpenFailure>((payload, format))
        }
        .await;
        match result {
            Ok(opened) => Some(opened),
            Err(err) => {
                crate::metrics::value_unopened();
                tracing::warn!(owner, service, key_id, error = %err, "a stored key does not open; skipping it");
                None
            }
        }
    }

    /// Opens a value that did not open under `tried`, the owner's data key as this process
    /// knew it. It may be sealed under a newer data key another process made, or under a key a
    /// rekey keeps beside the data key (or promoted to be the data key meanwhile).
    pub(super) async fn open_after_miss(
        &self,
        owner: &str,
        stored: &StoredValue<'_>,
        context: &SealContext<'_>,
        tried: &DataKey,
    ) -> Result<secrecy::SecretString, OpenFailure> {
        let store = &self.inner.data_keys;
        // The rekey keys first, then the owner's row: a rekey promoting its new key in between
        // moves it from the one to the other, and it is found in the row.
        let rekey_keys = store.rekey_keys(owner).await.map_err(KeyError::from)?;
        let fresh = store.reload(owner).await.map_err(KeyError::from)?;
        if fresh.is_none() {
            return Err(crate::crypto::OpenError::NoDataKey.into());
        }
        for key in fresh.iter().chain(&rekey_keys) {
            if !key.same_key(tried)
                && let Ok(opened) = stored.open(Some(key), context)
            {
                return Ok(opened);
            }
        }
        Err(crate::crypto::OpenError::Authentication.into())
    }
}

/// Whose values a hash holds, and the service and key id a field's value is sealed with:
/// (owner id, service, key id for a pool).
pub(super) fn sealing_of<'f>(
    kind: &storage::HashKind,
    field: &'f str,
) -> (String, String, Option<&'f str>) {
    let owner = Owner::of_hash(kind).id();
    match kind {
        storage::HashKind::UserKeys { .. } => (owner, field.to_owned(), None),
        storage::HashKind::GlobalPool { service }
        | storage::HashKind::ChannelPool { service, .. }
        | storage::HashKind::GuildPool { service, .. } => (owner, service.clone(), Some(field)),
    }
}

/// Why a stored value did not open (for the log line).
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenFailure {
    #[error(
        "it is in a legacy format (v2: or plaintext), and those are refused (STARGAZER_LEGACY_VALUES, or migrate has run)"
    )]
    LegacyRefused,
    #[error(transparent)]
    Open(#[from] crate::crypto::OpenError),
    #[error(transparent)]
    Key(#[from] KeyError),
}
