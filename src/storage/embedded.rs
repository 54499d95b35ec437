//! The embedded backend: hashes and counters in the SQLite file, for a single-process bot
//! without Redis. Same semantics as Redis, including expiring counters.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    BackendKind, BoxFuture, Reservation, ResolveReply, ResolveRequest, StorageBackend,
    StorageError, value_until_ms,
};
use crate::config::QuotaWindow;
use crate::db;

/// Storage in the SQLite file (tables `kv_hash` and `kv_string`).
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

const LIVE: &str = "(expires_at IS NULL OR expires_at > ?2)";

impl EmbeddedStore {
    /// Opens the store in the database at `path` (blocking).
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            conn: Arc::new(Mutex::new(db::open(path)?)),
        })
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        let conn = Arc::clone(&self.conn);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut conn)
            })
            .await
            .map_err(|err| StorageError::Task(err.to_string()))
            .and_then(|result| result);
            crate::metrics::storage_call(
                BackendKind::Embedded,
                started.elapsed().as_secs_f64(),
                result.is_err(),
            );
            result
        })
    }
}

fn random_entries(
    conn: &Connection,
    key: &str,
    count: usize,
) -> Result<Vec<(String, String)>, StorageError> {
    // `count` consecutive fields (in index order, wrapping around) from a uniformly random
    // offset: every field is equally likely to be drawn, and no sort of the whole hash is
    // needed (`ORDER BY random()` sorted every row). The LIMIT is written into the SQL: bound
    // as a parameter, it makes SQLite re-plan the statement on every run.
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM kv_hash WHERE key = ?1")?
        .query_row([key], |row| row.get(0))?;
    if total == 0 {
        return Ok(Vec::new());
    }
    let offset = rand::Rng::gen_range(&mut rand::thread_rng(), 0..total);
    let mut select = conn.prepare_cached(&format!(
        "SELECT field, value FROM kv_hash WHERE key = ?1 ORDER BY field LIMIT {count} OFFSET ?2"
    ))?;
    let mut rows: Vec<(String, String)> = select
        .query_map(params![key, offset], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if rows.len() < count && offset > 0 {
        let more: Vec<(String, String)> = select
            .query_map(params![key, 0], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let wanted = (count - rows.len()).min(usize::try_from(offset).unwrap_or(usize::MAX));
        rows.extend(more.into_iter().take(wanted));
    }
    Ok(rows)
}

/// Drops a hash whose expiry (`kv_hash_expiry`) has passed, as Redis would have.
fn purge_expired_hash(conn: &Connection, key: &str, now_ms: i64) -> Result<(), StorageError> {
    let expired = conn
        .prepare_cached("SELECT 1 FROM kv_hash_expiry WHERE key = ?1 AND expires_at_ms <= ?2")?
        .exists(params![key, now_ms])?;
    if expired {
        conn.execute("DELETE FROM kv_hash WHERE key = ?1", [key])?;
        conn.execute("DELETE FROM kv_hash_expiry WHERE key = ?1", [key])?;
    }
    Ok(())
}

fn set_hash_expiry(conn: &Connection, key: &str, at_ms: i64) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO kv_hash_expiry (key, expires_at_ms) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms",
        params![key, at_ms],
    )?;
    Ok(())
}

fn all_entries(conn: &Connection, key: &str) -> Result<Vec<(String, String)>, StorageError> {
    purge_expired_hash(conn, key, now_millis())?;
    let mut stmt =
        conn.prepare_cached("SELECT field, value FROM kv_hash WHERE key = ?1 ORDER BY field")?;
    let rows = stmt
        .query_map([key], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn hget(conn: &Connection, key: &str, field: &str) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT value FROM kv_hash WHERE key = ?1 AND field = ?2")?
        .query_row(params![key, field], |row| row.get(0))
        .optional()?)
}

/// Reads a live counter inside `conn` (expired ones are dropped first).
fn live_counter(
    conn: &Connection,
    key: &str,
    now: i64,
) -> Result<Option<(u64, Option<i64>)>, StorageError> {
    conn.execute(
        "DELETE FROM kv_string WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        params![key, now],
    )?;
    Ok(conn
        .prepare_cached("SELECT value, expires_at FROM kv_string WHERE key = ?1")?
        .query_row([key], |row| {
            let value: String = row.get(0)?;
            Ok((value.parse().unwrap_or(0), row.get(1)?))
        })
        .optional()?)
}

fn write_counter(
    conn: &Connection,
    key: &str,
    count: u64,
    expires_at: Option<i64>,
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO kv_string (key, value, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        params![key, count.to_string(), expires_at],
    )?;
    Ok(())
}

fn next_expiry(current: Option<i64>, now: i64, ttl: u64, window: QuotaWindow) -> i64 {
    let fresh = now + ttl as i64;
    match (window, current) {
        (QuotaWindow::Fixed, Some(at)) => at,
        _ => fresh,
    }
}

impl StorageBackend for EmbeddedStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Embedded
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        self.run(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn hget<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        let (key, field) = (key.to_owned(), field.to_owned());
        self.run(move |conn| hget(conn, &key, &field))
    }

    fn hset<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let (key, field, value) = (key.to_owned(), field.to_owned(), value.to_owned());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key, field) DO UPDATE SET value = excluded.value",
                params![key, field, value],
            )?;
            Ok(())
        })
    }

    fn hset_nx<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let (key, field, value) = (key.to_owned(), field.to_owned(), value.to_owned());
        self.run(move |conn| {
            Ok(conn.execute(
                "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key, field) DO NOTHING",
                params![key, field, value],
            )? == 1)
        })
    }

    fn hreplace<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let args = [key, field, expected, value].map(str::to_owned);
        self.run(move |conn| {
            Ok(conn.execute(
                "UPDATE kv_hash SET value = ?4 WHERE key = ?1 AND field = ?2 AND value = ?3",
                params![args[0], args[1], args[2], args[3]],
            )? == 1)
        })
    }

    fn hdel_if<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let args = [key, field, expected].map(str::to_owned);
        self.run(move |conn| {
            Ok(conn.execute(
                "DELETE FROM kv_hash WHERE key = ?1 AND field = ?2 AND value = ?3",
                params![args[0], args[1], args[2]],
            )? == 1)
        })
    }

    fn hdel<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let (key, field) = (key.to_owned(), field.to_owned());
        self.run(move |conn| {
            Ok(conn.execute(
                "DELETE FROM kv_hash WHERE key = ?1 AND field = ?2",
                params![key, field],
            )? == 1)
        })
    }

    fn hgetall<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| all_entries(conn, &key))
    }

    fn hlen<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            purge_expired_hash(conn, &key, now_millis())?;
            let count: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM kv_hash WHERE key = ?1")?
                .query_row([&key], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    fn hrandfield<'a>(
        &'a self,
        key: &'a str,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| random_entries(conn, &key, count))
    }

    fn del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let hashes = tx.execute("DELETE FROM kv_hash WHERE key = ?1", [&key])?;
            let strings = tx.execute("DELETE FROM kv_string WHERE key = ?1", [&key])?;
            tx.execute("DELETE FROM kv_hash_expiry WHERE key = ?1", [&key])?;
            tx.commit()?;
            Ok(hashes + strings > 0)
        })
    }

    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        let pattern = pattern.to_owned();
        self.run(move |conn| {
            // Our patterns are `prefix:*` with a prefix of plain characters, so GLOB matches
            // them as Redis would.
            let mut stmt = conn.prepare(&format!(
                "SELECT key FROM kv_hash WHERE key GLOB ?1
                 UNION SELECT key FROM kv_string WHERE key GLOB ?1 AND {LIVE} ORDER BY 1"
            ))?;
            let keys = stmt
                .query_map(params![pattern, now_secs()], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(keys)
        })
    }

    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest,
    ) -> BoxFuture<'a, Result<ResolveReply, StorageError>> {
        let request = request.clone();
        self.run(move |conn| {
            let user = match &request.user {
                Some((key, field)) => hget(conn, key, field)?,
                None => None,
            };
            let user_settings = match &request.user_settings {
                Some((key, fields)) => fields
                    .iter()
                    .map(|field| hget(conn, key, field))
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            let pools = request
                .pools
                .iter()
                .map(|pool| random_entries(conn, pool, request.sample))
                .collect::<Result<_, _>>()?;
            let pool_benches = request
                .pool_benches
                .iter()
                .map(|bench| all_entries(conn, bench))
                .collect::<Result<_, _>>()?;
            let pool_limits = match &request.pool_limits {
                Some((key, fields)) => fields
                    .iter()
                    .map(|field| hget(conn, key, field))
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            Ok(ResolveReply {
                user,
                user_settings,
                pools,
                pool_benches,
                pool_limits,
            })
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT value FROM kv_string WHERE key = ?1 AND {LIVE}"
                ))?
                .query_row(params![key, now_secs()], |row| row.get(0))
                .optional()?)
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO kv_string (key, value, expires_at) VALUES (?1, ?2, NULL)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = NULL",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn incr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_secs();
            let (count, expires) = live_counter(&tx, &key, now)?.unwrap_or((0, None));
            let count = count + 1;
            write_counter(
                &tx,
                &key,
                count,
                Some(next_expiry(expires, now, ttl_secs, window)),
            )?;
            tx.commit()?;
            Ok(count)
        })
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<Reservation, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_secs();
            let (count, expires) = live_counter(&tx, &key, now)?.unwrap_or((0, None));
            let admitted = count < limit;
            let (count, expires) = if admitted {
                (count + 1, next_expiry(expires, now, ttl_secs, window))
            } else {
                // A refused try must not push a rolling window out.
                (count, expires.unwrap_or(now + ttl_secs as i64))
            };
            write_counter(&tx, &key, count, Some(expires))?;
            tx.commit()?;
            Ok(Reservation { admitted, count })
        })
    }

    fn refund<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_secs();
            let count = match live_counter(&tx, &key, now)? {
                Some((count, expires)) if count > 0 => {
                    write_counter(&tx, &key, count - 1, expires)?;
                    count - 1
                }
                _ => 0,
            };
            tx.commit()?;
            Ok(count)
        })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        let key = key.to_owned();
        self.run(move |conn| {
            let now = now_secs();
            let expires: Option<Option<i64>> = conn
                .prepare_cached(&format!(
                    "SELECT expires_at FROM kv_string WHERE key = ?1 AND {LIVE}"
                ))?
                .query_row(params![key, now], |row| row.get(0))
                .optional()?;
            Ok(expires.flatten().map(|at| (at - now).max(0) as u64))
        })
    }

    fn hset_until<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
        until_ms: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let (key, field, value) = (key.to_owned(), field.to_owned(), value.to_owned());
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_ms as i64;
            purge_expired_hash(&tx, &key, now)?;
            let later_held = hget(&tx, &key, &field)?
                .and_then(|current| value_until_ms(&current))
                .is_some_and(|at| at > now_ms && at >= until_ms);
            if !later_held {
                tx.execute(
                    "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key, field) DO UPDATE SET value = excluded.value",
                    params![key, field, value],
                )?;
            }
            let mut latest = 0;
            for (field, value) in all_entries(&tx, &key)? {
                let at = value_until_ms(&value).unwrap_or(0);
                if at <= now_ms {
                    tx.execute(
                        "DELETE FROM kv_hash WHERE key = ?1 AND field = ?2",
                        params![key, field],
                    )?;
                } else {
                    latest = latest.max(at);
                }
            }
            if latest > 0 {
                set_hash_expiry(&tx, &key, latest as i64)?;
            }
            tx.commit()?;
            Ok(!later_held)
        })
    }

    fn hincr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        increments: &'a [(String, i64)],
        ttl_secs: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let (key, increments) = (key.to_owned(), increments.to_vec());
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = now_millis();
            purge_expired_hash(&tx, &key, now)?;
            for (field, by) in increments {
                let current: i64 = hget(&tx, &key, &field)?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                tx.execute(
                    "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key, field) DO UPDATE SET value = excluded.value",
                    params![key, field, (current + by).to_string()],
                )?;
            }
            set_hash_expiry(&tx, &key, now + ttl_secs as i64 * 1_000)?;
            tx.commit()?;
            Ok(())
        })
    }
}
