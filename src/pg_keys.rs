//! Per-owner data keys in PostgreSQL (`STARGAZER_DATABASE_URL=postgres://…`), for bots whose
//! processes run on several machines: the same table, the same semantics and the same
//! coherence across processes as the SQLite store ([`crate::data_keys::DataKeyStore`]).
//!
//! - **Coherence.** A trigger on `encryption_keys` sends `NOTIFY stargazer_data_keys` with the
//!   owner of every deleted row, delivered on commit, in commit order, to every listening
//!   session. Each store keeps one session listening and sends `SELECT 1` on it every 200 ms:
//!   once the answer is in, every erasure committed before the query began has been heard, and
//!   the lease of the cache is renewed from that moment (see `key_cache`). A lost
//!   session drops the whole cache when it is back (notifications are not kept for absent
//!   listeners).
//! - **Sealing.** [`PgDataKeyStore::current`] reads the row itself, and
//!   [`PgDataKeyStore::holds`] checks afterwards that the key is still the stored one.
//! - **Erasure.** PostgreSQL has no `secure_delete`: a deleted row's bytes stay in its heap page
//!   until `VACUUM` prunes it and the space is reused, and in the write-ahead log until its
//!   segment is recycled — in WAL archives, base backups and replicas for as long as they are
//!   kept. A delete therefore runs `VACUUM` on the table at once (reported as the
//!   [`Checkpoint`]), and what it cannot reach stays wrapped under the master key: rotating
//!   the master key and destroying the old one makes every such copy useless.
//! - **Start-up.** The schema is made under an advisory lock, so any number of processes may
//!   open one fresh database at once.
//!
//! Connections come from a pool (deadpool-postgres) with connect, wait and statement timeouts.

use std::ops::ControlFlow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, GenericClient};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::crypto::{DataKey, Keyring};
use crate::data_keys::{
    Checkpoint, DataKeyError, Erasure, KekUsage, LEGACY_KEK_ID, RekeyStage, RotationReport,
    StoredRow, next_row, now_rfc3339, old_row, owners_of_rows, unknown_keks, unwrap_row,
};
use crate::key_cache::KeyCache;

/// The channel the deletion trigger notifies on.
const CHANNEL: &str = "stargazer_data_keys";
/// How often each store proves its listening session is alive and current.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// How long one check of the listening session may take.
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Defaults, when the URL sets none: how long connecting may take, and one statement.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// How long a caller waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Connections in the pool.
const POOL_SIZE: usize = 8;
/// The advisory lock schema creation runs under (any constant of ours).
const SCHEMA_LOCK: i64 = 0x5354_4152_4b45_5953; // "STARKEYS"
/// The schema version this build makes and reads.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS encryption_keys (
    user_id TEXT PRIMARY KEY,
    encrypted_key BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    kek_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS encryption_keys_kek_id ON encryption_keys (kek_id);
CREATE OR REPLACE FUNCTION stargazer_data_key_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stargazer_data_keys', OLD.user_id);
    RETURN OLD;
END
$$;
DROP TRIGGER IF EXISTS data_key_deleted ON encryption_keys;
CREATE TRIGGER data_key_deleted AFTER DELETE ON encryption_keys
    FOR EACH ROW EXECUTE FUNCTION stargazer_data_key_deleted();
"#;

/// Why the PostgreSQL key store failed. No variant carries a password: connection settings
/// are named by host, port and database only.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `STARGAZER_DATABASE_URL` does not parse.
    #[error("STARGAZER_DATABASE_URL is not a PostgreSQL connection URL: {0}")]
    Url(String),
    /// No pooled connection could be had (the server is down, or every connection is busy).
    #[error("cannot reach the PostgreSQL key store at {at}: {reason}")]
    Unavailable {
        /// `host:port/database`.
        at: String,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("the PostgreSQL key store failed: {0}")]
    Query(String),
    /// The TLS set-up failed (a certificate of `STARGAZER_TLS_CA_FILE` is unusable).
    #[error("cannot set up TLS to PostgreSQL: {0}")]
    Tls(String),
    /// Owners of the SQLite file already have other data keys in PostgreSQL.
    #[error(
        "{count} owners (such as {first}) already have a different data key in PostgreSQL, so values sealed under the copied keys would not open there"
    )]
    CopyConflicts {
        /// How many.
        count: usize,
        /// One of them (an owner id, never a secret).
        first: String,
    },
    /// The database was made by a newer release.
    #[error(
        "the PostgreSQL key store has schema version {0}, newer than this build reads ({SCHEMA_VERSION}); upgrade stargazer-keys"
    )]
    NewerSchema(i32),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(err: tokio_postgres::Error) -> Self {
        // The server's message when there is one ("db error" alone says nothing).
        PgError::Query(match err.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => {
                // "error performing TLS handshake" says nothing without its causes.
                let mut text = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    let cause_text = cause.to_string();
                    if !text.contains(&cause_text) {
                        text.push_str(": ");
                        text.push_str(&cause_text);
                    }
                    source = cause.source();
                }
                text
            }
        })
    }
}

impl From<tokio_postgres::Error> for DataKeyError {
    fn from(err: tokio_postgres::Error) -> Self {
        DataKeyError::Postgres(err.into())
    }
}

/// `host:port/database` of a connection config, for messages (never the password).
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config
            .get_dbname()
            .unwrap_or(config.get_user().unwrap_or("postgres"))
    )
}

/// Parses a connection URL and sets the timeouts it leaves unset.
///
/// `sslmode` may be `disable`, `prefer`, `require`, `verify-ca` or `verify-full`. Whenever TLS
/// is used, the server's certificate and host name are verified (against
/// `STARGAZER_TLS_CA_FILE`, else the system's certificates): `require` and `verify-ca` mean
/// `verify-full` here, since a key store that cannot be authenticated is not one to send keys
/// to. Left out, it is `require`, except for a server on this machine (loopback or a Unix
/// socket), where it is `prefer`. `prefer` for another machine is refused: whoever is on the
/// path can answer "no TLS" and read the wrapped keys.
pub fn connection_config(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let sslmode = url.split_once('?').and_then(|(_, query)| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("sslmode="))
            .map(str::to_owned)
    });
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|pair| match pair {
                    "sslmode=verify-full" | "sslmode=verify-ca" => "sslmode=require",
                    other => other,
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|err: tokio_postgres::Error| PgError::Url(unparsable(&err)))?;
    if !on_this_machine(&config) {
        match sslmode.as_deref() {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
            Some("prefer") => {
                return Err(PgError::Url(
                    "sslmode=prefer would fall back to an unencrypted connection to another machine whenever something on the path answers that TLS is off; use sslmode=require (or sslmode=disable, knowingly)".to_owned(),
                ));
            }
            Some(_) => {}
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_options().is_none() {
        // Notices ("already exists, skipping") are not news to an operator.
        config.options(format!(
            "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c client_min_messages=warning"
        ));
    }
    if config.get_application_name().is_none() {
        config.application_name("stargazer-keys");
    }
    Ok(config)
}

/// Whether every host of the URL is on this machine: a Unix socket, `localhost` or a loopback
/// address.
fn on_this_machine(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    let hosts = config.get_hosts();
    // No host: the client's default, a Unix socket.
    hosts.iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }) && config
        .get_hostaddrs()
        .iter()
        .all(std::net::IpAddr::is_loopback)
}

/// Why a connection URL does not parse, naming the option at fault when the client says which,
/// and never quoting the URL (which may hold a password).
fn unparsable(err: &tokio_postgres::Error) -> String {
    let cause = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_default();
    if cause.starts_with("invalid value for option") || cause.starts_with("unknown option") {
        cause
    } else {
        "it does not parse (postgres://user:password@host:port/database?option=value; percent-encode special characters in the password)".to_owned()
    }
}

/// The TLS connector: rustls, trusting `ca` (PEM certificates) or else the system's.
fn tls_connector(ca: Option<&[u8]>) -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(pem) => {
            for certificate in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
                let certificate: rustls::pki_types::CertificateDer<'_> =
                    certificate.map_err(|err| PgError::Tls(err.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|err| PgError::Tls(err.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // One unusable system certificate does not make the others unusable.
                let _ = roots.add(certificate);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| PgError::Tls(err.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What [`PgDataKeyStore::copy_rows`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyReport {
    /// Rows copied.
    pub copied: u64,
    /// Rows whose owner had the same data key here already.
    pub already_there: u64,
}

/// The PostgreSQL data-key store: cheap to clone, shared by every task.
#[derive(Clone)]
pub struct PgDataKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    keyring: Keyring,
    cache: KeyCache,
    at: String,
    /// Whether this role may `VACUUM` the table (owner, member of the owner's role, or
    /// superuser); PostgreSQL skips the table with a mere warning otherwise.
    can_vacuum: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PgDataKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDataKeyStore")
            .field("at", &self.inner.at)
            .field("current_kek_id", &self.inner.keyring.current().id())
            .finish_non_exhaustive()
    }
}

impl PgDataKeyStore {
    /// Connects, makes the schema if it is missing, starts listening for erasures, and refuses
    /// a database whose rows name a master key the keyring does not have.
    pub async fn open(
        url: &str,
        tls_ca: Option<&[u8]>,
        keyring: Keyring,
        cache_capacity: usize,
    ) -> Result<Self, DataKeyError> {
        let store = Self::open_unchecked(url, tls_ca, keyring, cache_capacity).await?;
        store.check_keyring().await?;
        Ok(store)
    }

    /// Opens the store without checking that the keyring covers every row (for `doctor`).
    pub async fn open_unchecked(
        url: &str,
        tls_ca: Option<&[u8]>,
        keyring: Keyring,
        cache_capacity: usize,
    ) -> Result<Self, DataKeyError> {
        let config = connection_config(url)?;
        let at = describe(&config);
        let tls = tls_connector(tls_ca)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(
                config
                    .get_connect_timeout()
                    .copied()
                    .unwrap_or(CONNECT_TIMEOUT),
            ))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|err| PgError::Url(err.to_string()))?;
        let inner = Arc::new(Inner {
            pool,
            keyring,
            cache: KeyCache::new(cache_capacity),
            at,
            can_vacuum: std::sync::atomic::AtomicBool::new(false),
        });
        let store = Self { inner };
        store.make_schema().await?;
        store.check_vacuum_right().await?;
        // Listening before the first key is cached: nothing cached can miss an erasure.
        let listener =
            Listener::connect(&config, &tls)
                .await
                .map_err(|err| PgError::Unavailable {
                    at: store.inner.at.clone(),
                    reason: err.to_string(),
                })?;
        store.inner.cache.renew_lease(store.inner.cache.now_ms());
        tokio::spawn(watch(Arc::downgrade(&store.inner), config, tls, listener));
        Ok(store)
    }

    /// `host:port/database`, for messages.
    pub fn location(&self) -> &str {
        &self.inner.at
    }

    /// Whether this store's connections to the server are encrypted (TLS), as the server
    /// sees them.
    pub async fn encrypted(&self) -> Result<bool, DataKeyError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.is_some_and(|row| row.get::<_, bool>(0)))
    }

    /// The keyring the store wraps and unwraps with.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|err| PgError::Unavailable {
                at: self.inner.at.clone(),
                reason: match err {
                    deadpool_postgres::PoolError::Backend(err) => PgError::from(err).to_string(),
                    other => other.to_string(),
                },
            })
    }

    async fn make_schema(&self) -> Result<(), DataKeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS stargazer_keys_schema (version INTEGER NOT NULL)",
        )
        .await?;
        let version: Option<i32> = tx
            .query_opt("SELECT max(version) FROM stargazer_keys_schema", &[])
            .await?
            .and_then(|row| row.get(0));
        match version {
            Some(v) if v > SCHEMA_VERSION => return Err(PgError::NewerSchema(v).into()),
            Some(_) => {}
            None => {
                tx.batch_execute(SCHEMA).await?;
                tx.execute(
                    "INSERT INTO stargazer_keys_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Finds whether this role may vacuum the table, and says so once when it may not: a
    /// deleted key then stays in the table's pages until autovacuum prunes it.
    async fn check_vacuum_right(&self) -> Result<(), DataKeyError> {
        let client = self.client().await?;
        let may: bool = client
            .query_one(
                "SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                 FROM pg_class c WHERE c.oid = 'encryption_keys'::regclass",
                &[],
            )
            .await?
            .get(0);
        if !may {
            tracing::warn!(at = %self.inner.at, "this role does not own the encryption_keys table, so it cannot VACUUM it: an erased data key stays (wrapped) in the table's pages until autovacuum prunes it; connect as the table's owner");
        }
        self.inner
            .can_vacuum
            .store(may, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether this role may vacuum the data-key table, which an erasure does at once.
    pub fn can_vacuum(&self) -> bool {
        self.inner
            .can_vacuum
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The owner's data key if it is cached and the cache is known to be fresh.
    pub fn cached(&self, owner: &str) -> Option<Arc<DataKey>> {
        self.inner.cache.get(owner)
    }

    /// The owner's data key, from the cache or the table; `None` when the owner has none.
    pub async fn get(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        if let Some(key) = self.cached(owner) {
            return Ok(Some(key));
        }
        self.reload(owner).await
    }

    /// The owner's data key as the table holds it now, bypassing (and refreshing) the cache.
    pub async fn reload(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        let evictions = self.inner.cache.evictions();
        let client = self.client().await?;
        let Some(key) = self.read_key(&**client, owner).await? else {
            return Ok(None);
        };
        self.inner.cache.put(owner, &key, evictions);
        Ok(Some(key))
    }

    /// The key to seal the owner's new values under, read now (never the cache): its data key,
    /// created when it has none, or the key a rekey moves its values to.
    pub async fn current(&self, owner: &str) -> Result<Arc<DataKey>, DataKeyError> {
        let evictions = self.inner.cache.evictions();
        let client = self.client().await?;
        if let Some(key) = self.read_key(&**client, owner).await? {
            if let Some(next) = self.read_key(&**client, &next_row(owner)).await? {
                return Ok(next);
            }
            self.inner.cache.put(owner, &key, evictions);
            return Ok(key);
        }
        // A rekey's rows outlive an owner erased by an older release: never seal under them.
        // (Only while the owner has no row: one another process just made may have a rekey.)
        client
            .execute(
                "DELETE FROM encryption_keys WHERE user_id = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM encryption_keys WHERE user_id = $2)",
                &[&vec![next_row(owner), old_row(owner)], &owner],
            )
            .await?;
        let fresh = DataKey::generate();
        let kek = self.inner.keyring.current();
        let wrapped = kek.wrap(owner, &fresh);
        loop {
            client
                .execute(
                    "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
                    &[&owner, &wrapped, &now_rfc3339(), &kek.id().as_str()],
                )
                .await?;
            if let Some(key) = self.read_key(&**client, owner).await? {
                self.inner.cache.put(owner, &key, evictions);
                return Ok(key);
            }
        }
    }

    /// Whether the table still holds `key` as the key to seal the owner's values under.
    pub async fn holds(&self, owner: &str, key: &DataKey) -> Result<bool, DataKeyError> {
        let client = self.client().await?;
        for row in [owner.to_owned(), next_row(owner)] {
            if self
                .read_key(&**client, &row)
                .await?
                .is_some_and(|held| held.same_key(key))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes the owner's data key and any rekey rows beside it, drops it from this process's
    /// cache (the others drop theirs within 1 s), then vacuums the table so no dead row version
    /// keeps the wrapped key in the heap. An error means nothing was deleted.
    pub async fn delete(&self, owner: &str) -> Result<Erasure, DataKeyError> {
        let client = self.client().await?;
        // One statement, so an error leaves all three rows.
        let deleted = client
            .query(
                "DELETE FROM encryption_keys WHERE user_id = ANY($1) RETURNING user_id",
                &[&vec![owner.to_owned(), next_row(owner), old_row(owner)]],
            )
            .await?;
        self.inner.cache.evict([owner]);
        let checkpoint = self.vacuum(&client).await;
        Ok(Erasure {
            existed: deleted.iter().any(|row| row.get::<_, &str>(0) == owner),
            checkpoint,
        })
    }

    /// `VACUUM encryption_keys`: dead row versions are pruned from the heap (what a snapshot
    /// still open elsewhere can see is kept until it ends).
    async fn vacuum(&self, client: &deadpool_postgres::Client) -> Checkpoint {
        if !self.can_vacuum() {
            // PostgreSQL would skip the table with a warning and report success.
            return Checkpoint::Blocked;
        }
        match client.batch_execute("VACUUM encryption_keys").await {
            Ok(()) => Checkpoint::Complete,
            Err(err) => {
                tracing::warn!(error = %PgError::from(err), "cannot vacuum the data-key table after a delete");
                Checkpoint::Blocked
            }
        }
    }

    /// See [`crate::data_keys::DataKeyStore::checkpoint`]: here, a `VACUUM` of the table.
    pub async fn checkpoint(&self) -> Result<Checkpoint, DataKeyError> {
        let client = self.client().await?;
        Ok(self.vacuum(&client).await)
    }

    /// The keys a rekey of the owner keeps beside its data key, read now.
    pub async fn rekey_keys(&self, owner: &str) -> Result<Vec<Arc<DataKey>>, DataKeyError> {
        let client = self.client().await?;
        let mut keys = Vec::new();
        for row in [next_row(owner), old_row(owner)] {
            keys.extend(self.read_key(&**client, &row).await?);
        }
        Ok(keys)
    }

    /// Every owner with a data key, or with a rekey under way, sorted.
    pub async fn owners(&self) -> Result<Vec<String>, DataKeyError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT user_id FROM encryption_keys", &[])
            .await?
            .into_iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        Ok(owners_of_rows(rows))
    }

    /// How many owners have a rekey under way (or one that was interrupted).
    pub async fn unfinished_rekeys(&self) -> Result<u64, DataKeyError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT user_id FROM encryption_keys
                 WHERE starts_with(user_id, $1) OR starts_with(user_id, $2)",
                &[&crate::data_keys::REKEY_NEXT, &crate::data_keys::REKEY_OLD],
            )
            .await?
            .into_iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        Ok(owners_of_rows(rows).len() as u64)
    }

    /// See [`crate::data_keys::DataKeyStore::rekey_stage`].
    pub async fn rekey_stage(&self, owner: &str) -> Result<RekeyStage, DataKeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The owner's row, locked: two rekeys of one owner take turns.
        let Some(data_key) = self.read_key_for_update(&*tx, owner).await? else {
            tx.execute(
                "DELETE FROM encryption_keys WHERE user_id = ANY($1)",
                &[&vec![next_row(owner), old_row(owner)]],
            )
            .await?;
            tx.commit().await?;
            return Ok(RekeyStage::NoKey);
        };
        if let Some(old) = self.read_key(&*tx, &old_row(owner)).await? {
            return Ok(RekeyStage::Retiring { old, new: data_key });
        }
        if let Some(new) = self.read_key(&*tx, &next_row(owner)).await? {
            return Ok(RekeyStage::Moving { old: data_key, new });
        }
        let new = DataKey::generate();
        self.insert_row(&*tx, &next_row(owner), &new).await?;
        tx.commit().await?;
        Ok(RekeyStage::Moving {
            old: data_key,
            new: Arc::new(new),
        })
    }

    /// See [`crate::data_keys::DataKeyStore::rekey_promote`].
    pub async fn rekey_promote(&self, owner: &str) -> Result<bool, DataKeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (Some(old), Some(new)) = (
            self.read_key_for_update(&*tx, owner).await?,
            self.read_key(&*tx, &next_row(owner)).await?,
        ) else {
            return Ok(false);
        };
        let kek = self.inner.keyring.current();
        tx.execute(
            "UPDATE encryption_keys SET encrypted_key = $2, kek_id = $3 WHERE user_id = $1",
            &[&owner, &kek.wrap(owner, &new), &kek.id().as_str()],
        )
        .await?;
        self.insert_row(&*tx, &old_row(owner), &old).await?;
        tx.execute(
            "DELETE FROM encryption_keys WHERE user_id = $1",
            &[&next_row(owner)],
        )
        .await?;
        tx.commit().await?;
        self.inner.cache.evict([owner]);
        Ok(true)
    }

    /// See [`crate::data_keys::DataKeyStore::rekey_finish`].
    pub async fn rekey_finish(&self, owner: &str) -> Result<bool, DataKeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute(
                "DELETE FROM encryption_keys WHERE user_id = $1",
                &[&old_row(owner)],
            )
            .await?;
        // Other processes may hold the retired key cached as the owner's data key.
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &owner])
            .await?;
        tx.commit().await?;
        self.inner.cache.evict([owner]);
        Ok(deleted > 0)
    }

    /// How many rows each master key wraps.
    pub async fn kek_usage(&self) -> Result<Vec<KekUsage>, DataKeyError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT kek_id, COUNT(*) FROM encryption_keys GROUP BY kek_id ORDER BY kek_id",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| KekUsage {
                kek_id: row.get(0),
                rows: row.get::<_, i64>(1).try_into().unwrap_or(0),
            })
            .collect())
    }

    /// Refuses rows that name a master key the keyring does not have, and legacy rows that open
    /// under none of its keys.
    pub async fn check_keyring(&self) -> Result<(), DataKeyError> {
        let usage = self.kek_usage().await?;
        let unknown = unknown_keks(&usage, &self.inner.keyring);
        if !unknown.is_empty() {
            return Err(DataKeyError::UnknownMasterKeys(unknown));
        }
        if let Some(legacy) = usage.iter().find(|u| u.kek_id == LEGACY_KEK_ID) {
            self.verify_sample(LEGACY_KEK_ID)
                .await
                .map_err(|err| match err {
                    DataKeyError::Unwrap { .. } => DataKeyError::LegacyUnreadable(legacy.rows),
                    other => other,
                })?;
        }
        Ok(())
    }

    /// Unwraps one row of each master key; returns how many rows were checked.
    pub async fn verify_opens(&self) -> Result<u64, DataKeyError> {
        self.check_keyring().await?;
        let usage = self.kek_usage().await?;
        for u in &usage {
            self.verify_sample(&u.kek_id).await?;
        }
        Ok(usage.len() as u64)
    }

    async fn verify_sample(&self, kek_id: &str) -> Result<(), DataKeyError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT user_id, encrypted_key FROM encryption_keys WHERE kek_id = $1 LIMIT 1",
                &[&kek_id],
            )
            .await?;
        if let Some(row) = row {
            unwrap_row(
                &self.inner.keyring,
                row.get::<_, &str>(0),
                row.get::<_, &[u8]>(1),
                kek_id,
            )?;
        }
        Ok(())
    }

    /// Rewraps every data key that is not under the current master key, in one transaction
    /// (all rows move, or none do); `progress` is called with (rows done, rows to do).
    pub async fn rotate(
        &self,
        progress: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<RotationReport, DataKeyError> {
        self.rewrap(false, progress).await
    }

    /// Rewraps the original bot's rows (copied from its SQLite file) with their owner bound.
    pub async fn rewrap_legacy(&self) -> Result<RotationReport, DataKeyError> {
        self.rewrap(true, |_, _| ControlFlow::Continue(())).await
    }

    async fn rewrap(
        &self,
        legacy_only: bool,
        mut progress: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<RotationReport, DataKeyError> {
        self.check_keyring().await?;
        let kek = self.inner.keyring.current();
        let kek_id = kek.id().as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let already: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM encryption_keys WHERE kek_id = $1",
                &[&kek_id],
            )
            .await?
            .get(0);
        let mut report = RotationReport {
            already_current: already.try_into().unwrap_or(0),
            ..RotationReport::default()
        };
        let stale = if legacy_only {
            tx.query(
                "SELECT user_id, encrypted_key, kek_id FROM encryption_keys
                 WHERE kek_id = '' FOR UPDATE",
                &[],
            )
            .await?
        } else {
            tx.query(
                "SELECT user_id, encrypted_key, kek_id FROM encryption_keys
                 WHERE kek_id != $1 FOR UPDATE",
                &[&kek_id],
            )
            .await?
        };
        let total = stale.len() as u64;
        let update = tx
            .prepare(
                "UPDATE encryption_keys SET encrypted_key = $2, kek_id = $3 WHERE user_id = $1",
            )
            .await?;
        for (done, row) in stale.iter().enumerate() {
            let (owner, wrapped, old_kek): (&str, &[u8], &str) =
                (row.get(0), row.get(1), row.get(2));
            let key = unwrap_row(&self.inner.keyring, owner, wrapped, old_kek)?;
            tx.execute(&update, &[&owner, &kek.wrap(owner, &key), &kek_id])
                .await?;
            *report.rewrapped_from.entry(old_kek.to_owned()).or_default() += 1;
            if progress(done as u64 + 1, total).is_break() {
                return Err(DataKeyError::Interrupted);
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Copies rows of a SQLite store in, all in one
    /// transaction. An owner already here with the same data key is skipped; one here with
    /// another data key refuses the whole copy (values sealed under the copied key would not
    /// open), and nothing is written.
    pub async fn copy_rows(&self, rows: &[StoredRow]) -> Result<CopyReport, DataKeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut report = CopyReport::default();
        let mut conflicts = Vec::new();
        for StoredRow {
            owner,
            wrapped,
            created_at,
            kek_id,
        } in rows
        {
            let copied = tx
                .execute(
                    "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
                    &[owner, wrapped, created_at, kek_id],
                )
                .await?;
            if copied == 1 {
                report.copied += 1;
                continue;
            }
            let here = self.read_key(&*tx, owner).await?;
            let copied_key = unwrap_row(&self.inner.keyring, owner, wrapped, kek_id)?;
            if here.is_some_and(|here| here.same_key(&copied_key)) {
                report.already_there += 1;
            } else {
                conflicts.push(owner.clone());
            }
        }
        if !conflicts.is_empty() {
            return Err(PgError::CopyConflicts {
                count: conflicts.len(),
                first: conflicts.swap_remove(0),
            }
            .into());
        }
        tx.commit().await?;
        Ok(report)
    }

    /// The key of row `row`, unwrapped, never cached.
    async fn read_key(
        &self,
        client: &impl GenericClient,
        row: &str,
    ) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        let found = client
            .query_opt(
                "SELECT encrypted_key, kek_id FROM encryption_keys WHERE user_id = $1",
                &[&row],
            )
            .await?;
        found
            .map(|found| {
                let key = unwrap_row(&self.inner.keyring, row, found.get(0), found.get(1))?;
                Ok(Arc::new(key))
            })
            .transpose()
    }

    /// [`PgDataKeyStore::read_key`], locking the row until the transaction ends.
    async fn read_key_for_update(
        &self,
        client: &impl GenericClient,
        row: &str,
    ) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        let found = client
            .query_opt(
                "SELECT encrypted_key, kek_id FROM encryption_keys WHERE user_id = $1 FOR UPDATE",
                &[&row],
            )
            .await?;
        found
            .map(|found| {
                let key = unwrap_row(&self.inner.keyring, row, found.get(0), found.get(1))?;
                Ok(Arc::new(key))
            })
            .transpose()
    }

    async fn insert_row(
        &self,
        client: &impl GenericClient,
        row: &str,
        key: &DataKey,
    ) -> Result<(), DataKeyError> {
        let kek = self.inner.keyring.current();
        client
            .execute(
                "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &row,
                    &kek.wrap(row, key),
                    &now_rfc3339(),
                    &kek.id().as_str(),
                ],
            )
            .await?;
        Ok(())
    }
}

/// One session listening on [`CHANNEL`]: its client, the server process it is attached to,
/// and the notifications its connection task forwards (`None` once the connection is gone).
struct Listener {
    client: tokio_postgres::Client,
    backend: i32,
    notes: mpsc::UnboundedReceiver<Option<(String, String)>>,
}

impl Listener {
    /// Connects, listens, and proves that the session hears notifications: a pooler in
    /// transaction mode (PgBouncer's default) runs each statement on whichever server process
    /// is free, where nobody listens.
    async fn connect(
        config: &tokio_postgres::Config,
        tls: &MakeRustlsConnect,
    ) -> Result<Self, PgError> {
        let (client, mut connection) = config.connect(tls.clone()).await?;
        let (tx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Messages are handled in the order they arrive: a notification sent before the
            // answer to a query is forwarded before that answer reaches the client.
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        let _ =
                            tx.send(Some((note.channel().to_owned(), note.payload().to_owned())));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
        // A channel of this session's own, so no other process hears the probe.
        let probe = format!("stargazer_probe_{}", hex::encode(rand::random::<[u8; 8]>()));
        client
            .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {probe}"))
            .await?;
        let mut listener = Self {
            backend: backend_pid(&client).await?,
            client,
            notes,
        };
        listener
            .client
            .batch_execute(&format!("NOTIFY {probe}"))
            .await?;
        listener.backend_unchanged().await?;
        // Erasures heard meanwhile need no eviction: nothing is cached before the first
        // connection, and everything is dropped after a later one.
        let heard = tokio::time::timeout(WATCH_TIMEOUT, async {
            while let Some(Some((channel, _))) = listener.notes.recv().await {
                if channel == probe {
                    return true;
                }
            }
            false
        })
        .await;
        if heard != Ok(true) {
            return Err(PgError::Query(NOT_HEARD.to_owned()));
        }
        listener
            .client
            .batch_execute(&format!("UNLISTEN {probe}"))
            .await?;
        Ok(listener)
    }

    /// Fails when the session is now attached to another server process than the one that
    /// listens.
    async fn backend_unchanged(&self) -> Result<(), PgError> {
        if backend_pid(&self.client).await? != self.backend {
            return Err(PgError::Query(NOT_HEARD.to_owned()));
        }
        Ok(())
    }

    /// Proves the session alive, and still on the server process that listens, with a round
    /// trip, then hands every notification that arrived before the answer to `evict`.
    async fn poll(&mut self, cache: &KeyCache) -> Result<(), PgError> {
        tokio::time::timeout(WATCH_TIMEOUT, self.backend_unchanged())
            .await
            .map_err(|_| PgError::Query("the listening session did not answer".to_owned()))??;
        let mut owners = Vec::new();
        while let Ok(note) = self.notes.try_recv() {
            match note {
                Some((channel, owner)) if channel == CHANNEL => owners.push(owner),
                Some(_) => {}
                None => return Err(PgError::Query("the listening session closed".to_owned())),
            }
        }
        if !owners.is_empty() {
            cache.evict(owners.iter().map(String::as_str));
        }
        Ok(())
    }
}

/// Why a listening session is not trusted to hear erasures.
const NOT_HEARD: &str = "the listening session does not hear notifications, or moved to another server process: connect STARGAZER_DATABASE_URL to PostgreSQL directly or through a pooler in session mode, not transaction mode";

/// The server process the session is attached to (one round trip: the simple protocol).
async fn backend_pid(client: &tokio_postgres::Client) -> Result<i32, PgError> {
    client
        .simple_query("SELECT pg_backend_pid()")
        .await?
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .ok_or_else(|| PgError::Query("pg_backend_pid() gave no number".to_owned()))
}

/// The watcher of one store: every [`WATCH_EVERY`], a round trip on the listening session,
/// the erasures heard evicted, the lease renewed. Ends when the store is dropped.
async fn watch(
    store: Weak<Inner>,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    listener: Listener,
) {
    let mut listener = Some(listener);
    let mut failing = false;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        let started = inner.cache.now_ms();
        let outcome = match listener.as_mut() {
            Some(listening) => listening.poll(&inner.cache).await,
            None => match Listener::connect(&config, &tls).await {
                Ok(mut fresh) => {
                    // Erasures while nobody listened are not replayed: forget every key.
                    inner.cache.evict_all();
                    let polled = fresh.poll(&inner.cache).await;
                    listener = Some(fresh);
                    polled
                }
                Err(err) => Err(err),
            },
        };
        match outcome {
            Ok(()) => {
                inner.cache.renew_lease(started);
                if failing {
                    tracing::info!(at = %inner.at, "listening for data-key erasures again");
                    failing = false;
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(at = %inner.at, error = %err, "cannot listen for data-key erasures; reading data keys from PostgreSQL until it works again");
                    failing = true;
                }
                listener = None;
            }
        }
    }
}
