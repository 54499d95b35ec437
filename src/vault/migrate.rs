//! `migrate`: the original bot's `v2:` and plaintext values sealed again as `v4:`.

use secrecy::ExposeSecret;

use crate::crypto::{SealedFormat, StoredValue};
use crate::storage;

use super::{KeyError, KeyVault, Payload, WriteMode, sealing_of};

/// A hash holding values in the original bot's formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyHash {
    /// The storage key.
    pub key: String,
    /// How many legacy values it holds.
    pub values: usize,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// Data keys of the original bot rewrapped under the current master key with their owner
    /// bound (a row copied to another owner then no longer opens there).
    pub legacy_data_keys_rewrapped: u64,
    /// Every hash that held legacy values before the run, listed before anything was touched.
    pub legacy_hashes: Vec<LegacyHash>,
    /// Legacy pool entries whose field is not a key id (`{hash} {field}`), left as they were
    /// for the operator to remove: they are refused from now on.
    pub left_in_pools: Vec<String>,
    /// Values already `v4:`.
    pub already_v4: u64,
    /// `v2:` values rewritten.
    pub from_v2: u64,
    /// Plaintext values rewritten.
    pub from_plaintext: u64,
    /// Values that could not be opened, left as they were.
    pub unreadable: u64,
    /// The same, by hash: which user or pool they are in (none is ever deleted).
    pub unreadable_by_hash: std::collections::BTreeMap<String, u64>,
    /// Values that changed while migrating, left to the writer.
    pub skipped_changed: u64,
}

impl KeyVault {
    /// Every hash that holds values in the original bot's formats (`v2:` or plaintext), with
    /// how many: what [`KeyVault::migrate`] will touch, to show before it runs.
    pub async fn legacy_hashes(&self) -> Result<Vec<LegacyHash>, KeyError> {
        let mut found = Vec::new();
        for key in self.sealed_hashes().await? {
            let values = self
                .inner
                .storage
                .hgetall(&key)
                .await?
                .iter()
                .filter(|(_, value)| is_legacy(value))
                .count();
            if values > 0 {
                found.push(LegacyHash { key, values });
            }
        }
        Ok(found)
    }

    /// Every hash of sealed values under the prefix.
    pub(super) async fn sealed_hashes(&self) -> Result<Vec<String>, KeyError> {
        let mut keys = Vec::new();
        for pattern in self.inner.layout.sealed_hash_patterns() {
            keys.extend(self.inner.storage.scan(&pattern).await?);
        }
        keys.retain(|key| self.inner.layout.parse_hash_key(key).is_some());
        Ok(keys)
    }

    /// Rewraps the original bot's data keys with their owner bound, rewrites every `v2:` and
    /// plaintext value (user hashes and pools) as `v4:`, then leaves
    /// the marker that makes every process refuse legacy values from then on. Idempotent: a
    /// second run finds only `v4:` values. A value that changed meanwhile is left alone.
    ///
    /// A legacy pool entry keeps what is known of it: its field, and no "added" time or
    /// contributor made up. One whose field is not a key id (8 to 64 letters, digits, `-` or
    /// `_`: planted by hand) is not re-ided as if an admin had added it: it is reported in
    /// [`MigrationReport::left_in_pools`] and left for the operator to remove.
    pub async fn migrate(&self) -> Result<MigrationReport, KeyError> {
        let mut report = MigrationReport {
            legacy_hashes: self.legacy_hashes().await?,
            ..MigrationReport::default()
        };
        // The original bot's data keys are wrapped without their owner bound: bind it.
        report.legacy_data_keys_rewrapped = self.inner.data_keys.rewrap_legacy().await?.rewrapped();
        for key in self.sealed_hashes().await? {
            let Some(kind) = self.inner.layout.parse_hash_key(&key) else {
                continue;
            };
            for (field, value) in self.inner.storage.hgetall(&key).await? {
                self.migrate_value(&kind, &key, &field, &value, &mut report)
                    .await?;
            }
        }
        self.inner
            .storage
            .set(&self.inner.layout.legacy_values_key(), "refuse")
            .await?;
        *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), true));
        Ok(report)
    }

    pub(super) async fn migrate_value(
        &self,
        kind: &storage::HashKind,
        key: &str,
        field: &str,
        value: &str,
        report: &mut MigrationReport,
    ) -> Result<(), KeyError> {
        let (owner, service, key_id) = sealing_of(kind, field);
        let Some((payload, format)) = self
            .open_value_as(&owner, &service, key_id, value, true)
            .await
        else {
            report.unreadable += 1;
            *report.unreadable_by_hash.entry(key.to_owned()).or_default() += 1;
            return Ok(());
        };
        match format {
            SealedFormat::V4 => {
                report.already_v4 += 1;
                return Ok(());
            }
            SealedFormat::V2 => report.from_v2 += 1,
            SealedFormat::Plaintext => report.from_plaintext += 1,
        }
        let secret = payload.key;
        let contributor = payload.contributor;
        let payload_at = payload.at;
        if let Some(field) = key_id {
            // Kept under its own field, never re-ided; a field that is no key id at all was
            // planted by hand: left for the operator.
            if !looks_like_key_id(field) {
                match format {
                    SealedFormat::V2 => report.from_v2 -= 1,
                    _ => report.from_plaintext -= 1,
                }
                report
                    .left_in_pools
                    .push(format!("{key} {}", crate::secret::printable(field)));
                return Ok(());
            }
        }
        // A legacy value carries no time: none is made up.
        let payload = Payload::encode(secret.expose(), payload_at, contributor);
        let (_, replaced) = self
            .seal_and_write(&owner, key, WriteMode::Replacing(value), |data_key| {
                let sealed = data_key.seal(
                    &self.seal_context(&owner, &service, key_id),
                    payload.expose_secret().as_bytes(),
                );
                (field.to_owned(), sealed)
            })
            .await?;
        if !replaced {
            match format {
                SealedFormat::V2 => report.from_v2 -= 1,
                _ => report.from_plaintext -= 1,
            }
            report.skipped_changed += 1;
        }
        Ok(())
    }
}

/// Whether a pool field could be a key id of this crate or of the original bot (whose ids
/// are not documented): 8 to 64 letters, digits, `-` or `_`. `x` is not.
pub(super) fn looks_like_key_id(field: &str) -> bool {
    (8..=64).contains(&field.len())
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a stored value is in one of the original bot's formats.
pub(super) fn is_legacy(value: &str) -> bool {
    StoredValue::parse(value)
        .is_ok_and(|stored| matches!(stored.format(), SealedFormat::V2 | SealedFormat::Plaintext))
}
