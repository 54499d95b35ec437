//! The SQLite file: opening it (WAL, busy timeout) and its schema, versioned with
//! `PRAGMA user_version`.
//!
//! Any number of processes may open one file at once, fresh or old: the switch to WAL is
//! retried while another opener holds the file, and the schema is created or upgraded inside
//! one `BEGIN IMMEDIATE` transaction that re-reads the version once it holds the write lock,
//! so exactly one process does it and the others wait for it instead of failing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// How long a write waits for another connection's lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 4;

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
    /// The database file does not exist and cannot be created.
    #[error("cannot create the database {}: {source}", path.display())]
    Create {
        /// The database path.
        path: PathBuf,
        /// Why the file could not be created.
        source: std::io::Error,
    },
    /// A database file (or its `-wal` or `-shm`) is open to group or others, and this user
    /// cannot make it private.
    #[error(
        "the database file {} has mode {mode:04o}, open to group or others, and cannot be made private ({source}); run `chmod 600 {}` as its owner",
        path.display(),
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Why its mode could not be changed.
        source: std::io::Error,
    },
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
    /// Another process holds a lock this needs: after the busy timeout, or at once for the
    /// conflicts SQLite does not wait on (so the message claims no duration).
    #[error("the database is locked by another process; try again when it is free")]
    Locked,
    /// Any other SQLite failure.
    #[error("the database failed: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        if is_busy(&err) {
            DbError::Locked
        } else {
            DbError::Sqlite(err)
        }
    }
}

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
///
/// The database and its `-wal` and `-shm` are its owner's alone (mode 0600), whatever the
/// umask: a new file is created so, and an existing one open to group or others is set to 0600
/// with a warning (or refused, when this user cannot change it).
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
    // Only the owner may open the files: loose ones (an older build, a umask of 022) are made
    // 0600, and a new database is created 0600 before SQLite opens it, since SQLite gives its
    // `-wal` and `-shm` the database file's mode.
    make_private(path)?;
    create_private(path, dir.unwrap_or(Path::new(".")))?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    use_wal(&conn).map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // Deleted data keys must not linger in free pages: crypto-shredding depends on it.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(open_err)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// The database file and the two files SQLite keeps beside it in WAL mode (`-wal`, `-shm`).
pub fn files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Whether a file's permission bits let group or others open it.
pub fn open_to_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Creates the database file, empty and with mode 0600 whatever the umask, unless it exists.
#[cfg(unix)]
fn create_private(path: &Path, dir: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let failed = |source| DbError::Create {
        path: path.to_path_buf(),
        source,
    };
    match created {
        // The umask may have taken bits from the owner too: set the mode exactly.
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) if !dir_is_writable(dir) => Err(DbError::ReadOnlyDirectory(dir.to_path_buf())),
        Err(err) => Err(failed(err)),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path, _dir: &Path) -> Result<(), DbError> {
    Ok(())
}

/// Sets each existing database file that group or others may open to mode 0600, with a
/// warning; refuses one this user cannot change (it belongs to someone else).
#[cfg(unix)]
fn make_private(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt as _;
    for file in files(path) {
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o7777;
        if !open_to_others(mode) {
            continue;
        }
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                "the database file {} had mode {mode:04o}, open to group or others; it is now 0600",
                file.display()
            ),
            Err(source) => {
                return Err(DbError::Exposed {
                    path: file,
                    mode,
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> Result<(), DbError> {
    Ok(())
}

/// Switches the file to WAL. A fresh file opened by several processes at once may answer
/// `SQLITE_BUSY` to the switch without waiting on the busy timeout, so it is retried until the
/// busy timeout has passed.
fn use_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        let mode: Result<String, _> =
            conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether SQLite answered that another connection holds the lock it needs.
pub(crate) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
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

/// The file's schema version, refused when a newer build wrote it.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, DbError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(version)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), DbError> {
    if schema_version(conn, path)? == SCHEMA_VERSION {
        return Ok(());
    }
    // Take the write lock first (waiting on the busy timeout), then read the version again:
    // another process may have upgraded the file while this one waited. A deferred transaction
    // that read first would fail at its first write instead of waiting.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let version = schema_version(&tx, path)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
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
    if version < 4 {
        // Every deleted data key leaves an event, so other processes drop their cached copy
        // (see `data_keys`). A trigger, so even a delete by hand or by an older build is seen.
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS data_key_events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                owner TEXT NOT NULL,
                at INTEGER NOT NULL
            );
            CREATE TRIGGER IF NOT EXISTS data_key_deleted AFTER DELETE ON encryption_keys
            BEGIN
                INSERT INTO data_key_events (owner, at)
                VALUES (old.user_id, CAST(strftime('%s', 'now') AS INTEGER));
            END;",
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
