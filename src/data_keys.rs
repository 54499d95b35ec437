//! Per-owner data keys in the SQLite table `encryption_keys`, wrapped by the master key, with a
//! bounded in-memory cache of unwrapped keys that stays coherent across processes sharing the
//! file (see [`DataKeyStore`]).
//!
//! Every method here blocks on SQLite (except [`DataKeyStore::cached`]); async callers run them
//! on a blocking thread.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::crypto::{DataKey, Keyring, UnwrapError};
use crate::db::{self, DbError};
use crate::key_cache::KeyCache;

/// The `kek_id` of rows written by the original bot, which named no master key.
pub(crate) const LEGACY_KEK_ID: &str = "";

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
    /// The PostgreSQL key store failed.
    #[error(transparent)]
    Postgres(#[from] crate::pg_keys::PgError),
    /// A blocking task of the SQLite store failed.
    #[error("a background task of the key store failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for DataKeyError {
    fn from(err: rusqlite::Error) -> Self {
        DataKeyError::Db(err.into())
    }
}

/// One row of the data-key table as it is stored (the key still wrapped).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The owner id, or a rekey row's id.
    pub owner: String,
    /// The data key, wrapped under the master key `kek_id` names, with `owner` bound.
    pub wrapped: Vec<u8>,
    /// When it was made (RFC 3339; empty when unknown).
    pub created_at: String,
    /// The master key's id (`""` for rows of the original bot).
    pub kek_id: String,
}

impl std::fmt::Debug for StoredRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRow")
            .field("owner", &self.owner)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
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

/// What deleting a data key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// Whether the owner had a data key.
    pub existed: bool,
    /// Whether the write-ahead log was checkpointed and truncated afterwards, so no old frame
    /// of the file still holds the wrapped key.
    pub checkpoint: Checkpoint,
}

/// Whether a `wal_checkpoint(TRUNCATE)` completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The log was moved into the file and truncated.
    Complete,
    /// Another connection kept a read open through every retry: the log still holds old
    /// frames. Every open store retries in the background until one succeeds.
    Blocked,
}

/// How often each store reads the change log of the data keys.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Events older than this are pruned; a watcher that fell further behind flushes its cache.
const EVENT_RETENTION_SECS: i64 = 600;
/// How often (in watcher polls, about a minute) old events are pruned even when no key is
/// deleted, so the ids of erased owners do not linger in the file.
const PRUNE_EVERY_POLLS: u32 = 300;
/// How many times a delete tries to checkpoint the log, and how long each try waits for readers.
const CHECKPOINT_TRIES: u32 = 3;
const CHECKPOINT_WAIT: Duration = Duration::from_millis(400);

/// Owner-id prefixes of the rows a rekey keeps beside an owner's data key: the key the owner's
/// values move to (`rekey-next:`), then the key being retired (`rekey-old:`). They are ordinary
/// rows, wrapped with their own row id bound, so master-key rotation, `doctor` and secure
/// deletion treat them like every other row. No owner id starts with either.
pub(crate) const REKEY_NEXT: &str = "rekey-next:";
pub(crate) const REKEY_OLD: &str = "rekey-old:";

pub(crate) fn next_row(owner: &str) -> String {
    format!("{REKEY_NEXT}{owner}")
}

pub(crate) fn old_row(owner: &str) -> String {
    format!("{REKEY_OLD}{owner}")
}

/// Where the rekey of one owner stands (see [`DataKeyStore::rekey_stage`]).
#[derive(Debug)]
pub enum RekeyStage {
    /// The owner has no data key (none was made, or it was erased): nothing to move.
    NoKey,
    /// The owner's values move from `old` to `new`. New values are sealed under `new` already.
    Moving {
        /// The owner's data key until the move is done.
        old: Arc<DataKey>,
        /// The key values move to.
        new: Arc<DataKey>,
    },
    /// `new` is the owner's data key. Values some process sealed under `old` before it learned
    /// of the move still move to `new`; then `old` is erased.
    Retiring {
        /// The key being retired.
        old: Arc<DataKey>,
        /// The owner's data key.
        new: Arc<DataKey>,
    },
}

/// The data-key store: cheap to clone, shared by every task.
///
/// Several processes may share one database. Unwrapped keys are cached, and the cache stays
/// honest in three ways:
/// - every deleted row leaves an event in `data_key_events` (a trigger writes it); a watcher
///   thread reads new events every 200 ms and drops those owners' keys;
/// - cached keys are used only while the watcher's last complete read began less than 800 ms
///   ago; past that every call reads the table, so an erasure reaches every process within 1 s
///   even when the watcher is stuck;
/// - [`DataKeyStore::current`] reads the row itself (never the cache), for sealing, and
///   [`DataKeyStore::holds`] checks afterwards that the key is still the stored one.
#[derive(Clone)]
pub struct DataKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    keyring: Keyring,
    cache: KeyCache,
    /// A delete's checkpoint was blocked, or another process deleted a key: the watcher
    /// checkpoints until it succeeds.
    checkpoint_wanted: AtomicBool,
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
        let store = Self::open_unchecked(path, keyring, cache_capacity)?;
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
        let conn = db::open(path)?;
        // The watcher opens the file later: by its absolute path, so a change of working
        // directory cannot point it at another (or a new, empty) database.
        let path = path.canonicalize().map_err(|source| db::DbError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let path = path.as_path();
        let last_event = last_event_seq(&conn)?;
        // The cache is empty and the log was just read: it is fresh now.
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            keyring,
            cache: KeyCache::new(cache_capacity),
            checkpoint_wanted: AtomicBool::new(false),
        });
        Watcher::spawn(&inner, path.to_path_buf(), last_event);
        Ok(Self { inner })
    }

    /// The keyring the store wraps and unwraps with.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The database file (its absolute path).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every row as it is stored: what `copy-data-keys` copies.
    pub fn rows(&self) -> Result<Vec<StoredRow>, DataKeyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id, encrypted_key, COALESCE(created_at, ''), kek_id FROM encryption_keys ORDER BY user_id",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok(StoredRow {
                    owner: row.get(0)?,
                    wrapped: row.get(1)?,
                    created_at: row.get(2)?,
                    kek_id: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Runs `f` on the store's SQLite connection.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner's data key if it is cached and the cache is known to be fresh; never blocks
    /// on SQLite.
    pub fn cached(&self, owner: &str) -> Option<Arc<DataKey>> {
        self.inner.cache.get(owner)
    }

    /// The owner's data key, from the cache or SQLite; `None` when the owner has none.
    pub fn get(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        if let Some(key) = self.cached(owner) {
            return Ok(Some(key));
        }
        self.reload(owner)
    }

    /// The owner's data key as the table holds it now, bypassing (and refreshing) the cache;
    /// `None` when the owner has none. For a value that did not open under a cached key: it
    /// may have been sealed elsewhere under a newer key.
    pub fn reload(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        let evictions = self.inner.cache.evictions();
        let row = self.read_row(&self.conn(), owner)?;
        row.map(|(wrapped, kek_id)| self.unwrap_and_cache(owner, &wrapped, &kek_id, evictions))
            .transpose()
    }

    /// The owner's data key as the table holds it now (never the cache), created when the
    /// owner has none: the key to seal new values under. While a rekey moves the owner's
    /// values, that is the key they move to.
    pub fn current(&self, owner: &str) -> Result<Arc<DataKey>, DataKeyError> {
        let evictions = self.inner.cache.evictions();
        let conn = self.conn();
        if let Some((wrapped, kek_id)) = self.read_row(&conn, owner)? {
            if let Some(next) = self.read_key(&conn, &next_row(owner))? {
                return Ok(next);
            }
            drop(conn);
            return self.unwrap_and_cache(owner, &wrapped, &kek_id, evictions);
        }
        // A rekey's rows outlive an owner erased by an older release: never seal under them.
        // (Only while the owner has no row: one another process just made may have a rekey.)
        conn.execute(
            "DELETE FROM encryption_keys WHERE user_id IN (?1, ?2)
             AND NOT EXISTS (SELECT 1 FROM encryption_keys WHERE user_id = ?3)",
            params![next_row(owner), old_row(owner), owner],
        )?;
        let fresh = DataKey::generate();
        let current = self.inner.keyring.current();
        let wrapped = current.wrap(owner, &fresh);
        // Another process may create one meanwhile (keep whichever landed first), or erase
        // it again between the insert and the read: then insert again.
        loop {
            conn.execute(
                "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(user_id) DO NOTHING",
                params![owner, wrapped, now_rfc3339(), current.id().as_str()],
            )?;
            if let Some((wrapped, kek_id)) = self.read_row(&conn, owner)? {
                drop(conn);
                return self.unwrap_and_cache(owner, &wrapped, &kek_id, evictions);
            }
        }
    }

    /// The owner's data key, created (and stored) when the owner has none yet: the same as
    /// [`DataKeyStore::current`].
    pub fn get_or_create(&self, owner: &str) -> Result<Arc<DataKey>, DataKeyError> {
        self.current(owner)
    }

    /// Whether the table still holds `key` as the key to seal the owner's values under (its
    /// data key, or the key a rekey moves them to): checked after a value was sealed and
    /// written, since another process may have erased or retired the key meanwhile.
    pub fn holds(&self, owner: &str, key: &DataKey) -> Result<bool, DataKeyError> {
        let conn = self.conn();
        for row in [owner.to_owned(), next_row(owner)] {
            if self
                .read_key(&conn, &row)?
                .is_some_and(|held| held.same_key(key))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The keys a rekey of the owner keeps beside its data key (read now, never cached): a
    /// value that opens under neither the cached nor the stored data key may be sealed under
    /// one of them.
    pub fn rekey_keys(&self, owner: &str) -> Result<Vec<Arc<DataKey>>, DataKeyError> {
        let conn = self.conn();
        let mut keys = Vec::new();
        for row in [next_row(owner), old_row(owner)] {
            keys.extend(self.read_key(&conn, &row)?);
        }
        Ok(keys)
    }

    /// Every owner with a data key, or with a rekey under way, sorted.
    pub fn owners(&self) -> Result<Vec<String>, DataKeyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT user_id FROM encryption_keys")?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(owners_of_rows(rows))
    }

    /// How many owners have a rekey under way (or one that was interrupted).
    pub fn unfinished_rekeys(&self) -> Result<u64, DataKeyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id FROM encryption_keys
             WHERE substr(user_id, 1, 11) = ?1 OR substr(user_id, 1, 10) = ?2",
        )?;
        let rows = stmt
            .query_map(params![REKEY_NEXT, REKEY_OLD], |row| {
                row.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(owners_of_rows(rows).len() as u64)
    }

    /// Starts or resumes the rekey of one owner, and says where it stands. Starting stores a
    /// new random key beside the owner's data key (in the same transaction as the check), so
    /// an interrupted rekey resumes with the same key, and every process seals under it from
    /// then on (see [`DataKeyStore::current`]).
    pub fn rekey_stage(&self, owner: &str) -> Result<RekeyStage, DataKeyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(data_key) = self.read_key(&tx, owner)? else {
            tx.execute(
                "DELETE FROM encryption_keys WHERE user_id IN (?1, ?2)",
                params![next_row(owner), old_row(owner)],
            )?;
            tx.commit()?;
            return Ok(RekeyStage::NoKey);
        };
        if let Some(old) = self.read_key(&tx, &old_row(owner))? {
            return Ok(RekeyStage::Retiring { old, new: data_key });
        }
        if let Some(new) = self.read_key(&tx, &next_row(owner))? {
            return Ok(RekeyStage::Moving { old: data_key, new });
        }
        let new = DataKey::generate();
        self.insert_row(&tx, &next_row(owner), &new)?;
        tx.commit()?;
        Ok(RekeyStage::Moving {
            old: data_key,
            new: Arc::new(new),
        })
    }

    /// Makes the key a rekey moved the owner's values to the owner's data key, and keeps the
    /// old one as `rekey-old:` until [`DataKeyStore::rekey_finish`]: a process that sealed
    /// under it a moment ago finds it gone (see [`DataKeyStore::holds`]) and seals again.
    /// Returns false when the owner no longer has both keys (erased meanwhile).
    pub fn rekey_promote(&self, owner: &str) -> Result<bool, DataKeyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (Some(old), Some(new)) = (
            self.read_key(&tx, owner)?,
            self.read_key(&tx, &next_row(owner))?,
        ) else {
            return Ok(false);
        };
        let current = self.inner.keyring.current();
        tx.execute(
            "UPDATE encryption_keys SET encrypted_key = ?2, kek_id = ?3 WHERE user_id = ?1",
            params![owner, current.wrap(owner, &new), current.id().as_str()],
        )?;
        self.insert_row(&tx, &old_row(owner), &old)?;
        tx.execute(
            "DELETE FROM encryption_keys WHERE user_id = ?1",
            [next_row(owner)],
        )?;
        tx.commit()?;
        self.inner.cache.evict([owner]);
        Ok(true)
    }

    /// Erases the key a rekey retired, once no value is sealed under it: every process drops
    /// its cached copy within 1 s. Returns whether there was one. The caller checkpoints the
    /// log when its whole run is done ([`DataKeyStore::checkpoint`]), not once per owner.
    pub fn rekey_finish(&self, owner: &str) -> Result<bool, DataKeyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let deleted = tx.execute(
            "DELETE FROM encryption_keys WHERE user_id = ?1",
            [old_row(owner)],
        )?;
        // Other processes may hold the retired key cached as the owner's data key.
        tx.execute(
            "INSERT INTO data_key_events (owner, at)
             VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER))",
            [owner],
        )?;
        tx.commit()?;
        self.inner.cache.evict([owner]);
        Ok(deleted > 0)
    }

    /// Moves the write-ahead log into the database file and truncates it, so no old frame keeps
    /// a deleted key (retried while readers block it; a blocked checkpoint is retried in the
    /// background by every open store, as after [`DataKeyStore::delete`]).
    pub fn checkpoint(&self) -> Checkpoint {
        let checkpoint = checkpoint_with_retries(&self.conn());
        if checkpoint == Checkpoint::Blocked {
            self.inner.checkpoint_wanted.store(true, Ordering::Release);
        }
        checkpoint
    }

    /// The key of row `row` (an owner id or a rekey row), unwrapped, never cached.
    fn read_key(&self, conn: &Connection, row: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        self.read_row(conn, row)?
            .map(|(wrapped, kek_id)| Ok(Arc::new(self.unwrap(row, &wrapped, &kek_id)?)))
            .transpose()
    }

    /// Stores `key` as row `row`, wrapped under the current master key with the row bound.
    fn insert_row(&self, conn: &Connection, row: &str, key: &DataKey) -> Result<(), DataKeyError> {
        let current = self.inner.keyring.current();
        conn.execute(
            "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                row,
                current.wrap(row, key),
                now_rfc3339(),
                current.id().as_str()
            ],
        )?;
        Ok(())
    }

    /// Deletes the owner's data key (crypto-shredding every value sealed under it), drops it
    /// from this process's cache, and checkpoints the write-ahead log so no old frame keeps
    /// the wrapped key. Other processes drop their copy within 1 s (see the type's docs).
    ///
    /// An error means nothing was deleted. A checkpoint that other readers kept blocking
    /// through every retry is reported as [`Checkpoint::Blocked`], and retried in the
    /// background by every open store.
    pub fn delete(&self, owner: &str) -> Result<Erasure, DataKeyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // With any key a rekey of the owner keeps beside it.
        let deleted = tx.execute("DELETE FROM encryption_keys WHERE user_id = ?1", [owner])?;
        tx.execute(
            "DELETE FROM encryption_keys WHERE user_id IN (?1, ?2)",
            params![next_row(owner), old_row(owner)],
        )?;
        tx.execute(
            "DELETE FROM data_key_events WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - ?1",
            [EVENT_RETENTION_SECS],
        )?;
        tx.commit()?;
        self.inner.cache.evict([owner]);
        let checkpoint = checkpoint_with_retries(&conn);
        drop(conn);
        if checkpoint == Checkpoint::Blocked {
            self.inner.checkpoint_wanted.store(true, Ordering::Release);
        }
        Ok(Erasure {
            existed: deleted > 0,
            checkpoint,
        })
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

    /// Unwraps a row read after `evictions` was loaded, and caches the key unless keys were
    /// evicted since (the row may be the one an eviction was about).
    fn unwrap_and_cache(
        &self,
        owner: &str,
        wrapped: &[u8],
        kek_id: &str,
        evictions: u64,
    ) -> Result<Arc<DataKey>, DataKeyError> {
        let key = Arc::new(self.unwrap(owner, wrapped, kek_id)?);
        self.inner.cache.put(owner, &key, evictions);
        Ok(key)
    }

    fn unwrap(&self, owner: &str, wrapped: &[u8], kek_id: &str) -> Result<DataKey, DataKeyError> {
        unwrap_row(&self.inner.keyring, owner, wrapped, kek_id)
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
        let unknown = unknown_keks(&usage, &self.inner.keyring);
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
        progress: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<RotationReport, DataKeyError> {
        self.rewrap("kek_id != ?1", progress)
    }

    /// Rewraps the original bot's rows (wrapped without their owner bound, so a row copied to
    /// another owner would open there) under the current master key, with the owner bound, in
    /// one transaction. Rows of this crate are left as they are.
    pub fn rewrap_legacy(&self) -> Result<RotationReport, DataKeyError> {
        self.rewrap("kek_id = '' AND ?1 != ''", |_, _| ControlFlow::Continue(()))
    }

    /// Rewraps under the current master key every row `stale` (SQL over `kek_id`, with `?1` the
    /// current key's id) selects.
    fn rewrap(
        &self,
        stale: &str,
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
            .prepare(&format!(
                "SELECT user_id, encrypted_key, kek_id FROM encryption_keys WHERE {stale}"
            ))?
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

/// Unwraps the data key of row `owner` (an owner id or a rekey row), wrapped under the master
/// key `kek_id` names (`""`: the original bot's rows, tried under every configured key).
pub(crate) fn unwrap_row(
    keyring: &Keyring,
    owner: &str,
    wrapped: &[u8],
    kek_id: &str,
) -> Result<DataKey, DataKeyError> {
    let unwrap_err = |source| DataKeyError::Unwrap {
        owner: owner.to_owned(),
        source,
    };
    if kek_id == LEGACY_KEK_ID {
        let mut last = UnwrapError::Authentication;
        for kek in keyring.all() {
            match kek.unwrap_legacy(wrapped) {
                Ok(key) => return Ok(key),
                Err(err) => last = err,
            }
        }
        return Err(unwrap_err(last));
    }
    match keyring.get(kek_id) {
        Some(kek) => kek.unwrap(owner, wrapped).map_err(unwrap_err),
        None => Err(DataKeyError::UnknownMasterKeys(vec![KekUsage {
            kek_id: kek_id.to_owned(),
            rows: 1,
        }])),
    }
}

/// The usage rows whose master key the keyring does not have (`""` rows are the original
/// bot's, checked by unwrapping one).
pub(crate) fn unknown_keks(usage: &[KekUsage], keyring: &Keyring) -> Vec<KekUsage> {
    usage
        .iter()
        .filter(|u| u.kek_id != LEGACY_KEK_ID && keyring.get(&u.kek_id).is_none())
        .cloned()
        .collect()
}

/// Owner ids from rows of the data-key table: rekey rows count as their owner's; sorted, once
/// each.
pub(crate) fn owners_of_rows(rows: Vec<String>) -> Vec<String> {
    let mut owners: Vec<String> = rows
        .into_iter()
        .map(|row| {
            row.strip_prefix(REKEY_NEXT)
                .or_else(|| row.strip_prefix(REKEY_OLD))
                .map(str::to_owned)
                .unwrap_or(row)
        })
        .collect();
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// The highest event number ever given out (0 when none was).
fn last_event_seq(conn: &Connection) -> Result<i64, DataKeyError> {
    Ok(conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'data_key_events'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, retried while readers block it, each try waiting at most
/// [`CHECKPOINT_WAIT`] for them.
fn checkpoint_with_retries(conn: &Connection) -> Checkpoint {
    let outcome = (|| {
        conn.busy_timeout(CHECKPOINT_WAIT)?;
        for _ in 0..CHECKPOINT_TRIES {
            if checkpoint_once(conn)? == Checkpoint::Complete {
                return Ok(Checkpoint::Complete);
            }
        }
        Ok::<_, rusqlite::Error>(Checkpoint::Blocked)
    })();
    if let Err(err) = conn.busy_timeout(db::BUSY_TIMEOUT) {
        tracing::warn!(error = %err, "cannot restore the busy timeout after a checkpoint");
    }
    outcome.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "the write-ahead log checkpoint failed");
        Checkpoint::Blocked
    })
}

fn checkpoint_once(conn: &Connection) -> Result<Checkpoint, rusqlite::Error> {
    // The row is (busy, frames in the log, frames checkpointed); busy = 1: not completed.
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => Ok(Checkpoint::Complete),
        Ok(_) => Ok(Checkpoint::Blocked),
        Err(err) if db::is_busy(&err) => Ok(Checkpoint::Blocked),
        Err(err) => Err(err),
    }
}

/// The thread that reads `data_key_events` for one store and evicts what other processes
/// deleted. It ends soon after the store is dropped.
struct Watcher {
    store: Weak<Inner>,
    path: PathBuf,
    conn: Option<Connection>,
    last_event: i64,
    failing: bool,
}

impl Watcher {
    fn spawn(inner: &Arc<Inner>, path: PathBuf, last_event: i64) {
        let mut watcher = Watcher {
            store: Arc::downgrade(inner),
            path,
            conn: None,
            last_event,
            failing: false,
        };
        let spawned = std::thread::Builder::new()
            .name("stargazer-keys-data-key-watcher".into())
            .spawn(move || watcher.run());
        if let Err(err) = spawned {
            // Without a watcher the lease is never renewed: every call reads the table.
            tracing::warn!(error = %err, "cannot start the data-key watcher; data keys will not be cached");
        }
    }

    fn run(&mut self) {
        let mut polls: u32 = 0;
        loop {
            std::thread::sleep(WATCH_EVERY);
            let Some(inner) = self.store.upgrade() else {
                return;
            };
            let started = inner.cache.now_ms();
            match self.read_events(&inner) {
                Ok(()) => {
                    inner.cache.renew_lease(started);
                    if self.failing {
                        tracing::info!("the data-key change log is readable again");
                        self.failing = false;
                    }
                }
                Err(err) => {
                    // Keys stay cached but unused until a read succeeds: every call asks the table.
                    if !self.failing {
                        tracing::warn!(error = %err, "cannot read the data-key change log; reading data keys from the database until it works again");
                        self.failing = true;
                    }
                    self.conn = None;
                }
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(PRUNE_EVERY_POLLS)
                && let Some(conn) = &self.conn
                && let Err(err) = conn.execute(
                    "DELETE FROM data_key_events WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - ?1",
                    [EVENT_RETENTION_SECS],
                )
            {
                // Erased owners' ids must not linger: this runs again in a minute.
                tracing::debug!(error = %err, "cannot prune the data-key change log");
            }
            if inner.checkpoint_wanted.load(Ordering::Acquire)
                && let Some(conn) = &self.conn
                && checkpoint_once(conn).is_ok_and(|c| c == Checkpoint::Complete)
            {
                inner.checkpoint_wanted.store(false, Ordering::Release);
            }
        }
    }

    fn read_events(&mut self, inner: &Inner) -> Result<(), DataKeyError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot => {
                let conn = db::open(&self.path)?;
                // Short: a checkpoint here must not hold writers up.
                conn.busy_timeout(Duration::from_millis(100))?;
                slot.insert(conn)
            }
        };
        // One statement, one snapshot: the new events and the highest number given out.
        let rows: Vec<(i64, Option<String>)> = conn
            .prepare_cached(
                "SELECT seq, owner FROM data_key_events WHERE seq > ?1
                 UNION ALL
                 SELECT seq, NULL FROM sqlite_sequence WHERE name = 'data_key_events'",
            )?
            .query_map([self.last_event], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let highest = rows
            .iter()
            .filter(|(_, owner)| owner.is_none())
            .map(|(seq, _)| *seq)
            .max()
            .unwrap_or(self.last_event);
        let mut events: Vec<(i64, String)> = rows
            .into_iter()
            .filter_map(|(seq, owner)| owner.map(|owner| (seq, owner)))
            .collect();
        events.sort_unstable_by_key(|(seq, _)| *seq);
        if highest <= self.last_event {
            return Ok(());
        }
        let complete = events.len() as i64 == highest - self.last_event;
        if complete {
            inner
                .cache
                .evict(events.iter().map(|(_, owner)| owner.as_str()));
        } else {
            // Some events were pruned before this store read them: forget everything.
            tracing::debug!(
                "the data-key change log moved past this process; dropping every cached key"
            );
            inner.cache.evict_all();
        }
        inner.checkpoint_wanted.store(true, Ordering::Release);
        self.last_event = highest;
        Ok(())
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
