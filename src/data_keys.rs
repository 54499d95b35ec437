//! Per-owner data keys in the SQLite table `encryption_keys`, wrapped by the master key, with a
//! bounded in-memory cache of unwrapped keys.
//!
//! Every method here blocks on SQLite (except [`DataKeyStore::cached`]); async callers run them
//! on a blocking thread.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use rusqlite::{Connection, OptionalExtension, params};

use crate::crypto::{DataKey, Keyring, UnwrapError};
use crate::db::{self, DbError};

/// The `kek_id` of rows written by the original bot, which named no master key.
const LEGACY_KEK_ID: &str = "";

/// Why a data key could not be read, written or rotated.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Rows are wrapped by master keys that are not configured.
    #[error("{}", unknown_keks_sentence(.0))]
    UnknownMasterKeys(Vec<KekUsage>),
    /// Rows from the original bot open under none of the configured master keys.
    #[error(
        "the original bot's data keys ({0} of them) open under none of the configured master keys; set STARGAZER_MASTER_KEY (or STARGAZER_PREVIOUS_MASTER_KEYS) to the key that bot used"
    )]
    LegacyUnreadable(u64),
    /// A row names a configured master key, yet does not unwrap under it.
    #[error("the data key of owner {owner} does not unwrap: {source}")]
    Unwrap {
        /// The owner id (a user id or a pool id, never a secret).
        owner: String,
        /// Why.
        source: UnwrapError,
    },
    /// The progress callback asked to stop; nothing was changed.
    #[error("the rotation was interrupted; nothing was changed")]
    Interrupted,
}

impl From<rusqlite::Error> for DataKeyError {
    fn from(err: rusqlite::Error) -> Self {
        DataKeyError::Db(err.into())
    }
}

/// How many rows one master key wraps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekUsage {
    /// The master key's id (`""` for rows of the original bot).
    pub kek_id: String,
    /// How many data keys it wraps.
    pub rows: u64,
}

/// "1 data key is" / "3 data keys are".
fn count_data_keys(rows: u64) -> String {
    if rows == 1 {
        "1 data key is".to_owned()
    } else {
        format!("{rows} data keys are")
    }
}

fn unknown_keks_sentence(usage: &[KekUsage]) -> String {
    let parts: Vec<String> = usage
        .iter()
        .map(|u| {
            format!(
                "{} wrapped by master key {}",
                count_data_keys(u.rows),
                u.kek_id
            )
        })
        .collect();
    let (which, it) = if usage.len() == 1 {
        ("which is", "it")
    } else {
        ("which are", "them")
    };
    format!(
        "{}, {which} not configured: set STARGAZER_MASTER_KEY to {it}, or add {it} to STARGAZER_PREVIOUS_MASTER_KEYS while you rotate",
        parts.join(" and ")
    )
}

/// What a master-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Rows rewrapped under the current key, by the key they were under.
    pub rewrapped_from: BTreeMap<String, u64>,
    /// Rows that were already under the current key.
    pub already_current: u64,
}

impl RotationReport {
    /// Rows rewrapped in all.
    pub fn rewrapped(&self) -> u64 {
        self.rewrapped_from.values().sum()
    }
}

/// The data-key store: cheap to clone, shared by every task.
#[derive(Clone)]
pub struct DataKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    keyring: Keyring,
    cache: Mutex<LruCache<String, Arc<DataKey>>>,
}

impl std::fmt::Debug for DataKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyStore")
            .field("current_kek_id", &self.inner.keyring.current().id())
            .finish_non_exhaustive()
    }
}

impl DataKeyStore {
    /// Opens the store in the database at `path`, refusing a database whose rows name a master
    /// key the keyring does not have.
    pub fn open(
        path: &Path,
        keyring: Keyring,
        cache_capacity: usize,
    ) -> Result<Self, DataKeyError> {
        let conn = db::open(path)?;
        let store = Self::from_connection(conn, keyring, cache_capacity);
        store.check_keyring()?;
        Ok(store)
    }

    /// Opens the store without checking that the keyring covers every row (for `doctor`, which
    /// reports instead of refusing).
    pub fn open_unchecked(
        path: &Path,
        keyring: Keyring,
        cache_capacity: usize,
    ) -> Result<Self, DataKeyError> {
        Ok(Self::from_connection(
            db::open(path)?,
            keyring,
            cache_capacity,
        ))
    }

    fn from_connection(conn: Connection, keyring: Keyring, cache_capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(cache_capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                keyring,
                cache: Mutex::new(LruCache::new(capacity)),
            }),
        }
    }

    /// The keyring the store wraps and unwraps with.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Runs `f` on the store's SQLite connection (the embedded storage backend shares it).
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache(&self) -> MutexGuard<'_, LruCache<String, Arc<DataKey>>> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner's data key if it is in the cache; never blocks on SQLite.
    pub fn cached(&self, owner: &str) -> Option<Arc<DataKey>> {
        self.cache().get(owner).cloned()
    }

    /// The owner's data key, from the cache or SQLite; `None` when the owner has none.
    pub fn get(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        if let Some(key) = self.cached(owner) {
            return Ok(Some(key));
        }
        let row = self.read_row(&self.conn(), owner)?;
        row.map(|(wrapped, kek_id)| self.unwrap_and_cache(owner, &wrapped, &kek_id))
            .transpose()
    }

    /// The owner's data key, created (and stored) when the owner has none yet.
    pub fn get_or_create(&self, owner: &str) -> Result<Arc<DataKey>, DataKeyError> {
        if let Some(key) = self.get(owner)? {
            return Ok(key);
        }
        let fresh = DataKey::generate();
        let current = self.inner.keyring.current();
        let wrapped = current.wrap(owner, &fresh);
        let conn = self.conn();
        // Another process may have created one since we looked: keep whichever landed first.
        conn.execute(
            "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT(user_id) DO NOTHING",
            params![owner, wrapped, now_rfc3339(), current.id().as_str()],
        )?;
        let (wrapped, kek_id) = self
            .read_row(&conn, owner)?
            .expect("the row was just inserted or already present");
        drop(conn);
        self.unwrap_and_cache(owner, &wrapped, &kek_id)
    }

    /// Deletes the owner's data key (crypto-shredding every value sealed under it).
    /// Returns whether there was one.
    pub fn delete(&self, owner: &str) -> Result<bool, DataKeyError> {
        let conn = self.conn();
        let deleted = conn.execute("DELETE FROM encryption_keys WHERE user_id = ?1", [owner])?;
        if deleted > 0 {
            // Move the change out of the write-ahead log so no old frame keeps the wrapped key.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        drop(conn);
        self.cache().pop(owner);
        Ok(deleted > 0)
    }

    fn read_row(
        &self,
        conn: &Connection,
        owner: &str,
    ) -> Result<Option<(Vec<u8>, String)>, DataKeyError> {
        Ok(conn
            .prepare_cached("SELECT encrypted_key, kek_id FROM encryption_keys WHERE user_id = ?1")?
            .query_row([owner], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    fn unwrap_and_cache(
        &self,
        owner: &str,
        wrapped: &[u8],
        kek_id: &str,
    ) -> Result<Arc<DataKey>, DataKeyError> {
        let key = Arc::new(self.unwrap(owner, wrapped, kek_id)?);
        self.cache().put(owner.to_owned(), Arc::clone(&key));
        Ok(key)
    }

    fn unwrap(&self, owner: &str, wrapped: &[u8], kek_id: &str) -> Result<DataKey, DataKeyError> {
        let unwrap_err = |source| DataKeyError::Unwrap {
            owner: owner.to_owned(),
            source,
        };
        if kek_id == LEGACY_KEK_ID {
            let mut last = UnwrapError::Authentication;
            for kek in self.inner.keyring.all() {
                match kek.unwrap_legacy(wrapped) {
                    Ok(key) => return Ok(key),
                    Err(err) => last = err,
                }
            }
            return Err(unwrap_err(last));
        }
        match self.inner.keyring.get(kek_id) {
            Some(kek) => kek.unwrap(owner, wrapped).map_err(unwrap_err),
            None => Err(DataKeyError::UnknownMasterKeys(vec![KekUsage {
                kek_id: kek_id.to_owned(),
                rows: 1,
            }])),
        }
    }

    /// How many rows each master key wraps.
    pub fn kek_usage(&self) -> Result<Vec<KekUsage>, DataKeyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT kek_id, COUNT(*) FROM encryption_keys GROUP BY kek_id ORDER BY kek_id",
        )?;
        let usage = stmt
            .query_map([], |row| {
                Ok(KekUsage {
                    kek_id: row.get(0)?,
                    rows: row.get::<_, i64>(1)?.try_into().unwrap_or(0),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(usage)
    }

    /// Refuses rows that name a master key the keyring does not have, and legacy rows that open
    /// under none of its keys.
    pub fn check_keyring(&self) -> Result<(), DataKeyError> {
        let usage = self.kek_usage()?;
        let unknown: Vec<KekUsage> = usage
            .iter()
            .filter(|u| u.kek_id != LEGACY_KEK_ID && self.inner.keyring.get(&u.kek_id).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(DataKeyError::UnknownMasterKeys(unknown));
        }
        if let Some(legacy) = usage.iter().find(|u| u.kek_id == LEGACY_KEK_ID) {
            self.verify_sample(LEGACY_KEK_ID).map_err(|err| match err {
                DataKeyError::Unwrap { .. } => DataKeyError::LegacyUnreadable(legacy.rows),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Unwraps one row of each master key: proof that the configured keys open the data.
    /// Returns how many rows were checked.
    pub fn verify_opens(&self) -> Result<u64, DataKeyError> {
        self.check_keyring()?;
        let usage = self.kek_usage()?;
        for u in &usage {
            self.verify_sample(&u.kek_id)?;
        }
        Ok(usage.len() as u64)
    }

    fn verify_sample(&self, kek_id: &str) -> Result<(), DataKeyError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT user_id, encrypted_key FROM encryption_keys WHERE kek_id = ?1 LIMIT 1",
                [kek_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((owner, wrapped)) = row {
            self.unwrap(&owner, &wrapped, kek_id)?;
        }
        Ok(())
    }

    /// Rewraps every data key that is not under the current master key, in one transaction:
    /// all rows move, or (on any error, or when `progress` breaks) none do. `progress` is called
    /// with (rows done, rows to do) after each row. Values in Redis are untouched: the data keys
    /// themselves do not change.
    pub fn rotate(
        &self,
        mut progress: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<RotationReport, DataKeyError> {
        self.check_keyring()?;
        let current = self.inner.keyring.current();
        let current_id = current.id().as_str();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut report = RotationReport {
            already_current: tx.query_row(
                "SELECT COUNT(*) FROM encryption_keys WHERE kek_id = ?1",
                [current_id],
                |row| row.get::<_, i64>(0),
            )? as u64,
            ..RotationReport::default()
        };
        let stale: Vec<(String, Vec<u8>, String)> = tx
            .prepare(
                "SELECT user_id, encrypted_key, kek_id FROM encryption_keys WHERE kek_id != ?1",
            )?
            .query_map([current_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let total = stale.len() as u64;
        {
            let mut update = tx.prepare(
                "UPDATE encryption_keys SET encrypted_key = ?2, kek_id = ?3 WHERE user_id = ?1",
            )?;
            for (done, (owner, wrapped, kek_id)) in stale.into_iter().enumerate() {
                let key = self.unwrap(&owner, &wrapped, &kek_id)?;
                update.execute(params![owner, current.wrap(&owner, &key), current_id])?;
                *report.rewrapped_from.entry(kek_id).or_default() += 1;
                if progress(done as u64 + 1, total).is_break() {
                    return Err(DataKeyError::Interrupted);
                }
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
