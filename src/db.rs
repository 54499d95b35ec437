//! The SQLite file: opening it (WAL, busy timeout) and its schema, versioned with
//! `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// How long a write waits for another connection's lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file (or its directory) cannot be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The directory that should hold the database does not exist.
    #[error(
        "the directory {0} for the database does not exist; create it or point STARGAZER_DB_PATH elsewhere"
    )]
    MissingDirectory(PathBuf),
    /// The directory cannot be written (SQLite keeps its write-ahead log beside the file).
    #[error(
        "the directory {0} for the database is not writable (the database keeps its write-ahead log beside it); make it writable or point STARGAZER_DB_PATH elsewhere"
    )]
    ReadOnlyDirectory(PathBuf),
    /// The file was written by a newer build.
    #[error(
        "the database {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade stargazer-keys"
    )]
    TooNew {
        /// The database path.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// The database is locked by another process for longer than the busy timeout.
    #[error(
        "the database is locked by another process and stayed locked for {} s; try again when it is free",
        BUSY_TIMEOUT.as_secs()
    )]
    Locked,
    /// Any other SQLite failure.
    #[error("the database failed: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                DbError::Locked
            }
            _ => DbError::Sqlite(err),
        }
    }
}

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir
        && !dir.is_dir()
    {
        return Err(DbError::MissingDirectory(dir.to_path_buf()));
    }
    let open_err = |source: rusqlite::Error| {
        let dir = dir.unwrap_or(Path::new("."));
        let cannot_write = matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
        );
        if cannot_write && !dir_is_writable(dir) {
            DbError::ReadOnlyDirectory(dir.to_path_buf())
        } else {
            DbError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // Deleted data keys must not linger in free pages: crypto-shredding depends on it.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(open_err)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Whether a file can be created in `dir` (permission bits do not stop root, so try it).
fn dir_is_writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".stargazer-keys-probe-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    created
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    if version < 1 {
        let original_table: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'encryption_keys'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if original_table.is_some() {
            // The original bot's table: its rows name no master key; '' marks them as legacy.
            tx.execute_batch(
                "ALTER TABLE encryption_keys ADD COLUMN kek_id TEXT NOT NULL DEFAULT '';",
            )?;
        } else {
            tx.execute_batch(
                "CREATE TABLE encryption_keys (
                    user_id TEXT PRIMARY KEY,
                    encrypted_key BLOB NOT NULL,
                    created_at TEXT NOT NULL,
                    kek_id TEXT NOT NULL
                );",
            )?;
        }
        tx.execute_batch(
            "CREATE INDEX IF NOT EXISTS encryption_keys_kek_id ON encryption_keys(kek_id);",
        )?;
    }
    if version < 2 {
        // The embedded storage backend, used when REDIS_URL is unset.
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv_hash (
                key TEXT NOT NULL,
                field TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (key, field)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS kv_string (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                expires_at INTEGER
            ) WITHOUT ROWID;",
        )?;
    }
    if version < 3 {
        // Hashes that expire as a whole (per-day counters of pool keys, benches).
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv_hash_expiry (
                key TEXT PRIMARY KEY,
                expires_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID;",
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
