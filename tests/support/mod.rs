//! Fixtures shared by the integration tests: a vault on a real SQLite file and a real
//! redis-server, a real three-master Redis Cluster, or the embedded store, under a prefix of
//! its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use stargazer_keys::storage::{EmbeddedStore, RedisStore, StorageBackend};
use stargazer_keys::testkit::{PostgresServer, RedisCluster, RedisServer};
use stargazer_keys::{Catalogue, Config, KeyStore, KeyVault};
use tempfile::TempDir;

/// Which storage backend a contract test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One redis-server.
    Redis,
    /// A Redis Cluster of three masters.
    Cluster,
    /// The embedded store in the SQLite file.
    Embedded,
    /// One redis-server for the values, PostgreSQL for the data keys.
    Postgres,
}

/// Runs an async contract test body once per backend: `contract!(name, |backend| async move {...})`
/// makes the tests `name::redis`, `name::cluster` and `name::embedded`.
#[macro_export]
macro_rules! contract {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            $crate::contract!(@backend redis, Backend::Redis, $body);
            $crate::contract!(@backend cluster, Backend::Cluster, $body);
            $crate::contract!(@backend embedded, Backend::Embedded, $body);
        }
    };
    (@backend $test:ident, $backend:expr, $body:expr) => {
        $crate::contract!(@test $test, $backend, $body);
    };
    (@test $test:ident, $backend:expr, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            tokio::time::timeout(std::time::Duration::from_secs(60), ($body)($backend))
                .await
                .expect("test timed out");
        }
    };
}

/// [`contract!`] plus a fourth backend, `name::postgres` (values in Redis, data keys in
/// PostgreSQL): for the behaviours that involve data keys.
#[macro_export]
macro_rules! key_contract {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            $crate::contract!(@test redis, Backend::Redis, $body);
            $crate::contract!(@test cluster, Backend::Cluster, $body);
            $crate::contract!(@test embedded, Backend::Embedded, $body);
            $crate::contract!(@test postgres, Backend::Postgres, $body);
        }
    };
}

/// A fresh base64 master key.
pub fn master_key_b64() -> String {
    let bytes: [u8; 32] = rand_bytes();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}

/// A vault on its own SQLite file and its own key prefix.
pub struct Fixture {
    pub vault: KeyVault,
    pub backend: Backend,
    pub dir: TempDir,
    pub db_path: PathBuf,
    pub prefix: String,
    pub master_key: String,
    pub redis_url: Option<String>,
    /// The PostgreSQL database of the data keys (backend `Postgres`).
    pub pg_database: Option<String>,
    /// The settings the vault was opened with.
    pub vars: Vec<(String, String)>,
}

/// Settings for a fixture.
pub struct FixtureBuilder {
    backend: Backend,
    env: Vec<(String, String)>,
    redis_url: Option<String>,
    dir: Option<TempDir>,
    master_key: Option<String>,
}

impl FixtureBuilder {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Uses this Redis (a cluster: the comma-separated node URLs) instead of the shared one.
    pub fn redis_url(mut self, url: String) -> Self {
        self.redis_url = Some(url);
        self
    }

    /// Uses this directory (and the database already in it) with this master key.
    pub fn existing(mut self, dir: TempDir, master_key: String) -> Self {
        self.dir = Some(dir);
        self.master_key = Some(master_key);
        self
    }

    pub async fn open(self) -> Fixture {
        let dir = self
            .dir
            .unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let db_path = dir.path().join("keys.db");
        let prefix = format!("t{}", hex::encode(rand_bytes::<6>()));
        let master_key = self.master_key.unwrap_or_else(master_key_b64);
        let redis_url = match self.backend {
            Backend::Redis => Some(
                self.redis_url
                    .unwrap_or_else(|| RedisServer::shared().url()),
            ),
            Backend::Cluster => Some(
                self.redis_url
                    .unwrap_or_else(|| RedisCluster::shared().urls()),
            ),
            Backend::Postgres => Some(
                self.redis_url
                    .unwrap_or_else(|| RedisServer::shared().url()),
            ),
            Backend::Embedded => None,
        };
        let pg_url = (self.backend == Backend::Postgres).then(|| {
            PostgresServer::shared()
                .fresh_database()
                .expect("create a database")
        });
        let mut vars: Vec<(String, String)> = vec![
            ("STARGAZER_MASTER_KEY".into(), master_key.clone()),
            ("STARGAZER_DB_PATH".into(), db_path.display().to_string()),
            ("STARGAZER_KEY_PREFIX".into(), prefix.clone()),
            ("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS".into(), "300".into()),
        ];
        if let Some(url) = &redis_url {
            vars.push(("REDIS_URL".into(), url.clone()));
        }
        if let Some(url) = &pg_url {
            vars.push(("STARGAZER_DATABASE_URL".into(), url.clone()));
        }
        vars.extend(self.env);
        let config = Config::from_vars(vars.clone()).expect("valid test settings");
        let vault = KeyVault::open_with_catalogue(config, Catalogue::builtin())
            .await
            .expect("open the vault");
        Fixture {
            vault,
            backend: self.backend,
            dir,
            db_path,
            prefix,
            master_key,
            redis_url,
            pg_database: pg_url.map(|url| url.rsplit('/').next().unwrap_or_default().to_owned()),
            vars,
        }
    }
}

impl Fixture {
    pub fn builder(backend: Backend) -> FixtureBuilder {
        FixtureBuilder {
            backend,
            env: Vec::new(),
            redis_url: None,
            dir: None,
            master_key: None,
        }
    }

    pub async fn new(backend: Backend) -> Fixture {
        Self::builder(backend).open().await
    }

    /// A second vault on the same settings and data, with caches of its own (as another
    /// process would have).
    pub async fn second_vault(&self) -> KeyVault {
        let config = Config::from_vars(self.vars.clone()).expect("valid test settings");
        KeyVault::open_with_catalogue(config, Catalogue::builtin())
            .await
            .expect("open a second vault")
    }

    /// A second vault on the same data with some settings changed (an operator's restart).
    pub async fn reopen_with(&self, changed: &[(&str, &str)]) -> KeyVault {
        let mut vars = self.vars.clone();
        vars.extend(
            changed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_vars(vars).expect("valid test settings");
        KeyVault::open_with_catalogue(config, Catalogue::builtin())
            .await
            .expect("reopen the vault")
    }

    /// A second storage handle on the same data, for writing values behind the vault's back.
    pub fn storage(&self) -> &dyn StorageBackend {
        self.vault.storage()
    }

    /// Every stored value under this fixture's prefix: (key, field, value) for hashes and
    /// (key, "", value) for strings. Read with a raw client, not through the vault.
    pub async fn dump(&self) -> Vec<(String, String, String)> {
        match self.backend {
            Backend::Redis | Backend::Cluster | Backend::Postgres => {
                // Each cluster master holds only its own slots' keys: read every node.
                let mut out = Vec::new();
                for url in self.redis_urls() {
                    out.extend(dump_node(&url, &self.prefix).await);
                }
                out.sort();
                out
            }
            Backend::Embedded => {
                let conn = rusqlite::Connection::open(&self.db_path).unwrap();
                let mut out: Vec<(String, String, String)> = conn
                    .prepare("SELECT key, field, value FROM kv_hash")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                out.extend(
                    conn.prepare("SELECT key, '', value FROM kv_string")
                        .unwrap()
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                );
                out.sort();
                out
            }
        }
    }

    /// The Redis node URLs of this fixture (one, or every master of a cluster).
    pub fn redis_urls(&self) -> Vec<String> {
        self.redis_url
            .iter()
            .flat_map(|urls| urls.split(','))
            .map(str::to_owned)
            .collect()
    }

    /// The bytes of the SQLite file and its WAL.
    pub fn sqlite_bytes(&self) -> Vec<u8> {
        file_bytes(&self.db_path)
    }

    /// What the key store holds, as bytes: the SQLite file and its WAL, or `pg_dump` of the
    /// PostgreSQL database.
    pub fn key_store_bytes(&self) -> Vec<u8> {
        match &self.pg_database {
            Some(name) => PostgresServer::shared()
                .dump(name)
                .expect("pg_dump the key store")
                .into_bytes(),
            None => self.sqlite_bytes(),
        }
    }
}

/// Every value under `prefix` on one Redis node, as [`Fixture::dump`] lists them.
async fn dump_node(url: &str, prefix: &str) -> Vec<(String, String, String)> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if kind == "hash" {
            let entries: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.extend(entries.into_iter().map(|(f, v)| (key.clone(), f, v)));
        } else {
            let value: String = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((key, String::new(), value));
        }
    }
    out
}

/// A file's bytes followed by those of its `-wal` and `-shm` companions, when present.
pub fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        bytes.extend(std::fs::read(PathBuf::from(companion)).unwrap_or_default());
    }
    bytes
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A fresh secret that looks like an API key.
/// Today's shared-key uses of `tool` by the user (its own counter).
pub async fn tool_uses(vault: &KeyVault, user_id: u64, tool: &str) -> u64 {
    vault
        .default_key_usage(user_id, Some(tool))
        .await
        .unwrap()
        .first()
        .map_or(0, |usage| usage.count)
}

pub fn secret(tag: &str) -> String {
    format!("sk-{tag}-{}", hex::encode(rand_bytes::<12>()))
}

/// Opens the storage backend of a fixture's settings directly (a second connection).
pub async fn second_storage(fixture: &Fixture) -> Arc<dyn StorageBackend> {
    match &fixture.redis_url {
        Some(_) => Arc::new(
            RedisStore::connect(
                &fixture.redis_urls(),
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(1),
                None,
            )
            .await
            .unwrap(),
        ),
        None => Arc::new(EmbeddedStore::open(&fixture.db_path).unwrap()),
    }
}

/// Opens the data-key store of a fixture's file (a second connection).
pub fn data_key_store(fixture: &Fixture) -> KeyStore {
    fixture.vault.data_keys().clone()
}

/// Writes a database as the original Python bot left it: its `encryption_keys` table (no
/// `kek_id`), with each data key wrapped under the master key with no associated data.
pub fn seed_original_database(path: &Path, master_key_b64: &str, owners: &[(&str, [u8; 32])]) {
    use aes_gcm::aead::{Aead, KeyInit};
    let master = base64::engine::general_purpose::STANDARD
        .decode(master_key_b64)
        .unwrap();
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&master).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE encryption_keys (user_id TEXT PRIMARY KEY, encrypted_key BLOB, created_at TEXT)",
    )
    .unwrap();
    for (owner, dek) in owners {
        let nonce: [u8; 12] = rand_bytes();
        let mut blob = nonce.to_vec();
        blob.extend(
            cipher
                .encrypt(aes_gcm::Nonce::from_slice(&nonce), dek.as_slice())
                .unwrap(),
        );
        conn.execute(
            "INSERT INTO encryption_keys VALUES (?1, ?2, '2024-01-01T00:00:00')",
            rusqlite::params![owner, blob],
        )
        .unwrap();
    }
}

/// A value in the original bot's `v2:` format: padded urlsafe base64 of nonce || ciphertext,
/// no associated data.
pub fn seal_v2(dek: &[u8; 32], secret: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(dek).unwrap();
    let nonce: [u8; 12] = rand_bytes();
    let mut raw = nonce.to_vec();
    raw.extend(
        cipher
            .encrypt(aes_gcm::Nonce::from_slice(&nonce), secret.as_bytes())
            .unwrap(),
    );
    format!(
        "v2:{}",
        base64::engine::general_purpose::URL_SAFE.encode(raw)
    )
}
