//! Where sealed values and quota counters live: a small backend trait with two
//! implementations, Redis (single node or cluster) and an embedded store inside the SQLite file.
//!
//! Backends store opaque strings; they never see a secret in clear.

mod embedded;
pub mod layout;
mod redis_store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use embedded::EmbeddedStore;
pub use layout::{HashKind, Layout, Owner};
pub use redis_store::RedisStore;

use crate::config::{Config, QuotaWindow};
use crate::db::DbError;

/// A boxed future, so the backend trait can be used as `dyn StorageBackend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage failure. No variant carries a stored value.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Redis could not be reached or answered with an error.
    #[error("Redis is unreachable or failed ({0})")]
    Redis(String),
    /// The embedded store (SQLite) failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A blocking storage task died.
    #[error("a storage task failed: {0}")]
    Task(String),
    /// The operation is not available on this backend.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A write reached the Redis master, but fewer replicas than `STARGAZER_REDIS_DURABLE_REPLICAS`
    /// confirmed it in time (`WAIT`): a failover now could lose it.
    #[error(
        "only {acked} of the {wanted} replicas STARGAZER_REDIS_DURABLE_REPLICAS asks for confirmed the write within {wait_ms} ms, so a failover now could lose it"
    )]
    NotReplicated {
        /// Replicas asked for.
        wanted: u32,
        /// Replicas that confirmed.
        acked: u32,
        /// How long `WAIT` waited.
        wait_ms: u64,
    },
}

impl From<redis::RedisError> for StorageError {
    fn from(err: redis::RedisError) -> Self {
        // RedisError's Display may quote a reply (a stored value): describe it by kind only.
        let what = if err.is_timeout() {
            "timed out".to_owned()
        } else if err.is_connection_refusal() {
            "connection refused".to_owned()
        } else if err.is_io_error() || err.is_connection_dropped() {
            "connection lost".to_owned()
        } else if let Some(code) = err.code() {
            format!("server error {code}")
        } else {
            format!("{:?}", err.kind())
        };
        StorageError::Redis(what)
    }
}

impl From<redis::ParsingError> for StorageError {
    fn from(_: redis::ParsingError) -> Self {
        StorageError::Redis("unexpected reply type".to_owned())
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        StorageError::Db(err.into())
    }
}

/// Which backend is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// One Redis server.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
    /// The embedded store in the SQLite file.
    Embedded,
}

/// The reads of one key resolution, sent in one round trip.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// The user's hash and the field (service id) to read, when a user is known.
    pub user: Option<(String, String)>,
    /// The user's settings hash and the fields of it to read (HMGET), when a user is known.
    pub user_settings: Option<(String, Vec<String>)>,
    /// Pool hashes to draw from, in order of preference.
    pub pools: Vec<String>,
    /// How many distinct random entries to draw from each pool.
    pub sample: usize,
    /// For each pool, the hash of its benched keys, read whole in the same round trip; empty
    /// to read none.
    pub pool_benches: Vec<String>,
    /// The hash of the pools' daily limits and the fields (pool scopes) to read (HMGET), when
    /// pools are drawn from.
    pub pool_limits: Option<(String, Vec<String>)>,
}

/// What one key resolution read. `Debug` shows counts only: a legacy value is a secret in clear.
#[derive(Clone, Default)]
pub struct ResolveReply {
    /// The user's sealed value, if any.
    pub user: Option<String>,
    /// The requested fields of the user's settings hash, in order.
    pub user_settings: Vec<Option<String>>,
    /// For each requested pool, its random (field, value) draw.
    pub pools: Vec<Vec<(String, String)>>,
    /// For each requested bench hash, its (field, value) entries.
    pub pool_benches: Vec<Vec<(String, String)>>,
    /// The requested fields of the pools' daily limits, in order.
    pub pool_limits: Vec<Option<String>>,
}

impl std::fmt::Debug for ResolveReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveReply")
            .field("user", &self.user.as_ref().map(|_| ".."))
            .field(
                "pools",
                &self.pools.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field(
                "pool_benches",
                &self.pool_benches.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The outcome of reserving one unit of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Whether the unit was granted.
    pub admitted: bool,
    /// The counter after the reservation (not counting a refused unit).
    pub count: u64,
}

/// What one Redis server says of itself, as `doctor` and the bot's start check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `host:port` of a cluster master; empty for a single server.
    pub node: String,
    /// `redis_version` of `INFO`.
    pub version: String,
    /// Whether every script of the store loads (`SCRIPT LOAD`): the error otherwise.
    pub scripts: Result<(), String>,
    /// `maxmemory_policy` of `INFO`.
    pub maxmemory_policy: String,
    /// Whether the server keeps anything on disk: AOF on, or RDB snapshots configured
    /// (`None` when `CONFIG GET save` is not allowed, as on some managed servers).
    pub persistent: Option<bool>,
}

impl ServerFacts {
    /// The sentence for a server too old for this crate.
    pub fn too_old(&self) -> String {
        format!(
            "{} is Redis {}, and stargazer-keys needs {}.{} or newer (counting shared-key uses takes EXPIRE … NX, and on an older server the quota would silently let every use through); upgrade it",
            self.name(),
            if self.version.is_empty() {
                "of an unknown version"
            } else {
                &self.version
            },
            Self::MIN_VERSION.0,
            Self::MIN_VERSION.1
        )
    }

    /// The warnings about losing keys: eviction, and no persistence.
    pub fn risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        if self.evicts_keys() {
            risks.push(format!(
                "{} has maxmemory-policy {}: when memory runs out it evicts any key, and users' keys have no expiry; set maxmemory-policy to noeviction (or a volatile-* policy)",
                self.name(),
                self.maxmemory_policy
            ));
        }
        if self.persistent == Some(false) {
            risks.push(format!(
                "{} keeps nothing on disk (appendonly no, and save is empty): a restart erases every stored key; set appendonly yes (or RDB snapshots with save)",
                self.name()
            ));
        }
        risks
    }

    /// The oldest Redis this crate works with: counting uses `EXPIRE … NX` (Redis 7.0).
    pub const MIN_VERSION: (u32, u32) = (7, 0);

    /// Whether the server is at least [`ServerFacts::MIN_VERSION`] (an unreadable version is
    /// taken as too old).
    pub fn version_ok(&self) -> bool {
        let mut parts = self.version.split('.').map(|part| part.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor) >= Self::MIN_VERSION,
            _ => false,
        }
    }

    /// Whether eviction may delete stored keys, which have no TTL: an `allkeys-*` policy.
    pub fn evicts_keys(&self) -> bool {
        self.maxmemory_policy.starts_with("allkeys-")
    }

    /// `the server` or `the master host:port`, for sentences.
    pub fn name(&self) -> String {
        if self.node.is_empty() {
            "the server".to_owned()
        } else {
            format!("the master {}", self.node)
        }
    }
}

/// The storage operations the vault and the quota need. Every method is one round trip.
pub trait StorageBackend: Send + Sync + 'static {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Checks that the backend answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>>;
    /// HGET.
    fn hget<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>>;
    /// HSET.
    fn hset<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// HSETNX: sets the field only when absent; returns whether it was set.
    fn hset_nx<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// Replaces a field's value only if it still equals `expected`; returns whether it did.
    fn hreplace<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// HDEL only when the field still holds `expected`; returns whether it did.
    fn hdel_if<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// HDEL; returns whether the field existed.
    fn hdel<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// HGETALL, sorted by field.
    fn hgetall<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>>;
    /// HLEN: how many fields the hash has.
    fn hlen<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>>;
    /// HRANDFIELD key count WITHVALUES: up to `count` distinct random entries.
    fn hrandfield<'a>(
        &'a self,
        key: &'a str,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>>;
    /// DEL; returns whether the key existed.
    fn del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// Every key matching a SCAN pattern (`prefix:*` forms only).
    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>>;
    /// The reads of one key resolution, in one round trip.
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest,
    ) -> BoxFuture<'a, Result<ResolveReply, StorageError>>;
    /// GET of a string value (an expired one reads as absent).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StorageError>>;
    /// SET of a string value without expiry.
    fn set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;
    /// INCR and EXPIRE (NX in a fixed window) atomically; returns the new count.
    fn incr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<u64, StorageError>>;
    /// INCR, then, over `limit`, gives the unit back: atomic, so concurrent reservations never
    /// admit more than `limit`.
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<Reservation, StorageError>>;
    /// Gives one unit back (never below zero); returns the new count.
    fn refund<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>>;
    /// Seconds until the key expires; `None` when it is absent or has no expiry.
    fn ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StorageError>>;
    /// In a hash whose values start with their own expiry time (`{unix ms};...`): sets `field`
    /// to `value` (which expires at `until_ms`) unless the field already holds a later time,
    /// drops the fields whose time is past `now_ms`, and keeps the hash until its latest field
    /// expires. Atomic, one round trip; returns whether the field was set. (Redis 7.0 has no
    /// per-field expiry, hence the times in the values.)
    ///
    /// The built-in backends implement it; the default refuses, so a custom backend that does
    /// not simply never benches a pool key.
    fn hset_until<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
        until_ms: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let _ = (key, field, value, until_ms, now_ms);
        Box::pin(async { Err(StorageError::Unsupported("this backend cannot bench keys")) })
    }
    /// What each Redis server (every master of a cluster) says of itself; nothing for a store
    /// that is no Redis.
    fn server_facts(&self) -> BoxFuture<'_, Result<Vec<ServerFacts>, StorageError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// HINCRBY of each (field, amount), then EXPIRE of the hash, atomically, in one round trip.
    ///
    /// The built-in backends implement it; the default refuses.
    fn hincr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        increments: &'a [(String, i64)],
        ttl_secs: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let _ = (key, increments, ttl_secs);
        Box::pin(async {
            Err(StorageError::Unsupported(
                "this backend cannot count uses per pool key",
            ))
        })
    }
}

/// Connects to the backend the config names: Redis when `REDIS_URL` is set (a cluster when it
/// lists several nodes), else the embedded store in the SQLite file.
pub async fn connect(config: &Config) -> Result<Arc<dyn StorageBackend>, StorageError> {
    if config.redis_urls.is_empty() {
        let path = config.db_path.clone();
        let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&path))
            .await
            .map_err(|err| StorageError::Task(err.to_string()))??;
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(
            RedisStore::connect(
                &config.redis_urls,
                config.redis_connect_timeout,
                config.redis_response_timeout,
                config.tls_ca.as_ref().map(|ca| ca.pem.as_slice()),
            )
            .await?
            .durable(config.redis_durable_replicas, config.redis_durable_wait),
        ))
    }
}

/// The expiry time (unix ms) at the start of an [`StorageBackend::hset_until`] value.
pub fn value_until_ms(value: &str) -> Option<u64> {
    value.split_once(';')?.0.parse().ok()
}
