//! `rekey`: a new data key for every owner, and every value sealed again under it. The way out
//! of a leaked master key, which a master-key rotation is not: rotation rewraps the same data
//! keys, so whoever held the old master key and a copy of the key database still opens every
//! current and future value. After a rekey, nothing from before it opens any current value.
//!
//! Owners are done one at a time, in three steps that each leave every value readable, so a
//! rekey can be interrupted anywhere and run again (it resumes with the same new keys):
//! 1. a new key is stored beside the owner's data key ([`KeyStore::rekey_stage`]); from
//!    then on every process seals the owner's new values under it, and opens values under
//!    either key;
//! 2. every value under the old key is sealed again under the new one, each written only if
//!    it did not change meanwhile; then the new key becomes the data key
//!    ([`KeyStore::rekey_promote`]);
//! 3. values some process sealed under the old key just before step 2 ended are moved too,
//!    and the old key is erased ([`KeyStore::rekey_finish`]).
//!
//! Pool key ids are kept: admins know their keys by them, and benches and counters are kept
//! under them. A pool add finds an existing key by its secret, not only by its id.
//!
//! [`KeyStore::rekey_stage`]: crate::key_store::KeyStore::rekey_stage
//! [`KeyStore::rekey_promote`]: crate::key_store::KeyStore::rekey_promote
//! [`KeyStore::rekey_finish`]: crate::key_store::KeyStore::rekey_finish

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use secrecy::ExposeSecret;

use super::{KeyError, KeyVault, sealing_of};
use crate::crypto::{DataKey, SealedFormat, StoredValue};
use crate::data_keys::{Checkpoint, DataKeyError, RekeyStage};
use crate::storage::{HashKind, Owner, StorageError};

/// How many times one value is read again when it changes while it is being moved.
const TRIES_PER_VALUE: usize = 5;

/// What a rekey did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RekeyReport {
    /// Owners (users and pools) that now have a new data key.
    pub owners: u64,
    /// Values sealed again under a new data key.
    pub values_moved: u64,
    /// Values found under the new key before it became the data key (written meanwhile, or
    /// moved by an earlier, interrupted run).
    pub already_moved: u64,
    /// Values that open under neither key, left as they were (they did not open before either).
    pub unreadable: u64,
    /// The same, by hash.
    pub unreadable_by_hash: BTreeMap<String, u64>,
    /// Whether some erased old key may still sit in the database's write-ahead log, because
    /// other readers blocked the checkpoint (every open store retries it).
    pub checkpoint_blocked: bool,
}

/// Why a rekey stopped. Whatever the point, every value still opens, and running the rekey
/// again finishes the work.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// Values in the original bot's formats are under keys a rekey does not manage.
    #[error(
        "{0} stored values are still in the original bot's formats (v2 or plaintext); run `stargazer-keys migrate` first, then rekey"
    )]
    LegacyValues(usize),
    /// The progress callback asked to stop.
    #[error(
        "the rekey was interrupted after {done} of {total} owners; every key still opens, and running it again finishes the rest"
    )]
    Interrupted {
        /// Owners done.
        done: u64,
        /// Owners in all.
        total: u64,
    },
    /// Storage or the key store failed.
    #[error(
        "the rekey stopped after {done} of {total} owners: {source}; every key still opens, and running it again finishes the rest"
    )]
    Failed {
        /// Owners done.
        done: u64,
        /// Owners in all.
        total: u64,
        /// What failed.
        source: RekeyFailure,
    },
}

/// What failed in a rekey.
#[derive(Debug, thiserror::Error)]
pub enum RekeyFailure {
    /// Storage failed.
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    /// The data-key store failed.
    #[error("the encryption key store failed: {0}")]
    DataKeys(#[from] DataKeyError),
    /// One value kept changing while it was being moved.
    #[error("a value in {hash} changed {tries} times while it was being moved")]
    Busy {
        /// The hash.
        hash: String,
        /// How many times it was read.
        tries: usize,
    },
}

impl From<KeyError> for RekeyFailure {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Storage(err) => RekeyFailure::Storage(err),
            KeyError::DataKeys(err) => RekeyFailure::DataKeys(err),
            // The calls made here fail in no other way.
            other => RekeyFailure::Storage(StorageError::Task(other.to_string())),
        }
    }
}

/// One hash of an owner's values: its key, and for each field the service and key id its
/// value is sealed with.
struct OwnedHash {
    key: String,
    kind: HashKind,
}

impl KeyVault {
    /// Gives every owner a new data key and seals every value again under it (see the
    /// module's docs). `progress` is called with (owners done, owners in all) after each
    /// owner; breaking stops the rekey, which a second run resumes.
    ///
    /// Refused while values in the original bot's formats remain: `migrate` first.
    pub async fn rekey(
        &self,
        mut progress: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<RekeyReport, RekeyError> {
        let failed = |done, total| {
            move |source| RekeyError::Failed {
                done,
                total,
                source,
            }
        };
        let legacy: usize = self
            .legacy_hashes()
            .await
            .map_err(|err| failed(0, 0)(RekeyFailure::from(err)))?
            .iter()
            .map(|hash| hash.values)
            .sum();
        if legacy > 0 {
            return Err(RekeyError::LegacyValues(legacy));
        }
        let (owners, mut hashes) = self.owners_and_hashes().await.map_err(failed(0, 0))?;
        let total = owners.len() as u64;
        let mut report = RekeyReport::default();
        for (done, owner) in owners.iter().enumerate() {
            let done = done as u64;
            let found = hashes.remove(owner).unwrap_or_default();
            if self
                .rekey_owner(owner, found, &mut report)
                .await
                .map_err(failed(done, total))?
            {
                report.owners += 1;
            }
            if progress(done + 1, total).is_break() && done + 1 < total {
                self.inner
                    .data_keys
                    .checkpoint()
                    .await
                    .map_err(|err| failed(done + 1, total)(err.into()))?;
                return Err(RekeyError::Interrupted {
                    done: done + 1,
                    total,
                });
            }
        }
        // Once, not per owner: no old frame of the log keeps an erased key.
        report.checkpoint_blocked = self
            .inner
            .data_keys
            .checkpoint()
            .await
            .map_err(|err| failed(total, total)(err.into()))?
            == Checkpoint::Blocked;
        Ok(report)
    }

    /// Every owner with a data key (or a rekey under way), and the hashes of values by owner.
    async fn owners_and_hashes(
        &self,
    ) -> Result<(Vec<String>, BTreeMap<String, Vec<OwnedHash>>), RekeyFailure> {
        let owners: Vec<String> = self
            .inner
            .data_keys
            .owners()
            .await?
            .into_iter()
            // The original bot's pool key opens only its v2 values, which `migrate` rewrote.
            .filter(|owner| owner != Owner::ORIGINAL_POOL_KEY)
            .collect();
        let mut hashes: BTreeMap<String, Vec<OwnedHash>> = BTreeMap::new();
        for key in self.sealed_hashes().await? {
            if let Some(kind) = self.inner.layout.parse_hash_key(&key) {
                let (owner, _, _) = sealing_of(&kind, "");
                hashes
                    .entry(owner)
                    .or_default()
                    .push(OwnedHash { key, kind });
            }
        }
        Ok((owners, hashes))
    }

    /// Moves one owner to a new data key; returns whether the owner had one. `found`: the
    /// owner's hashes when the rekey began.
    async fn rekey_owner(
        &self,
        owner: &str,
        found: Vec<OwnedHash>,
        report: &mut RekeyReport,
    ) -> Result<bool, RekeyFailure> {
        let hashes = &self.hashes_of(owner, found);
        loop {
            let stage = self.inner.data_keys.rekey_stage(owner).await?;
            match stage {
                RekeyStage::NoKey => return Ok(false),
                RekeyStage::Moving { old, new } => {
                    self.move_values(owner, hashes, &old, &new, report, true)
                        .await?;
                    // False: erased, or promoted by another rekey, meanwhile: look again.
                    self.inner.data_keys.rekey_promote(owner).await?;
                }
                RekeyStage::Retiring { old, new } => {
                    self.move_values(owner, hashes, &old, &new, report, false)
                        .await?;
                    self.inner.data_keys.rekey_finish(owner).await?;
                    return Ok(true);
                }
            }
        }
    }

    /// The hashes that may hold the owner's values: those found when the rekey began, and
    /// every one the owner could have been given since, for a service of the catalogue (the
    /// only services values are written for).
    fn hashes_of(&self, owner: &str, mut found: Vec<OwnedHash>) -> Vec<OwnedHash> {
        let layout = &self.inner.layout;
        let services = self
            .inner
            .catalogue
            .iter()
            .map(|service| service.id.to_string());
        let kinds: Vec<HashKind> = match Owner::parse(owner) {
            Some(Owner::User(user_id)) => vec![HashKind::UserKeys { user_id }],
            Some(Owner::GlobalPool) => services
                .map(|service| HashKind::GlobalPool { service })
                .collect(),
            Some(Owner::ChannelPool(channel_id)) => services
                .map(|service| HashKind::ChannelPool {
                    channel_id,
                    service,
                })
                .collect(),
            Some(Owner::GuildPool(guild_id)) => services
                .map(|service| HashKind::GuildPool { guild_id, service })
                .collect(),
            None => Vec::new(),
        };
        for kind in kinds {
            let key = layout.hash_key(&kind);
            if !found.iter().any(|hash| hash.key == key) {
                found.push(OwnedHash { key, kind });
            }
        }
        found
    }

    /// Seals every value of the owner that opens under `old` again under `new`. A value
    /// written meanwhile is read again; one that opens under neither key is counted and left.
    /// Values found under `new` already are counted when `count_already` (the first pass, not
    /// the sweep after the promotion).
    async fn move_values(
        &self,
        owner: &str,
        hashes: &[OwnedHash],
        old: &DataKey,
        new: &DataKey,
        report: &mut RekeyReport,
        count_already: bool,
    ) -> Result<(), RekeyFailure> {
        for hash in hashes {
            for (field, value) in self.inner.storage.hgetall(&hash.key).await? {
                let mut value = Some(value);
                for _ in 0..TRIES_PER_VALUE {
                    let Some(current) = value.take() else {
                        break; // removed meanwhile
                    };
                    match self.move_value(owner, hash, &field, &current, old, new) {
                        Moved::Already => report.already_moved += u64::from(count_already),
                        Moved::Unreadable => {
                            report.unreadable += 1;
                            *report
                                .unreadable_by_hash
                                .entry(hash.key.clone())
                                .or_default() += 1;
                        }
                        Moved::Sealed(sealed) => {
                            if self
                                .inner
                                .storage
                                .hreplace(&hash.key, &field, &current, &sealed)
                                .await?
                            {
                                report.values_moved += 1;
                            } else {
                                value = self.inner.storage.hget(&hash.key, &field).await?;
                            }
                        }
                    }
                }
                if value.is_some() {
                    return Err(RekeyFailure::Busy {
                        hash: hash.key.clone(),
                        tries: TRIES_PER_VALUE,
                    });
                }
            }
        }
        Ok(())
    }

    /// What to do with one value: it is under `new` already, or sealed again under `new`, or
    /// opens under neither key.
    fn move_value(
        &self,
        owner: &str,
        hash: &OwnedHash,
        field: &str,
        value: &str,
        old: &DataKey,
        new: &DataKey,
    ) -> Moved {
        let (_, service, key_id) = sealing_of(&hash.kind, field);
        let Ok(stored) = StoredValue::parse(value) else {
            return Moved::Unreadable;
        };
        if stored.format() != SealedFormat::V4 {
            // Written by hand since the check: not under a data key.
            return Moved::Unreadable;
        }
        let context = self.seal_context(owner, &service, key_id);
        if stored.open(Some(new), &context).is_ok() {
            return Moved::Already;
        }
        match stored.open(Some(old), &context) {
            // The payload (key, time, contributor) is kept byte for byte.
            Ok(payload) => Moved::Sealed(new.seal(&context, payload.expose_secret().as_bytes())),
            Err(_) => Moved::Unreadable,
        }
    }
}

/// See [`KeyVault::move_value`].
enum Moved {
    Already,
    Sealed(String),
    Unreadable,
}
