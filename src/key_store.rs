//! Where the data keys live: the SQLite file (the default) or PostgreSQL
//! (`STARGAZER_DATABASE_URL`), behind one async interface with the same semantics (see
//! [`crate::data_keys::DataKeyStore`] and [`crate::pg_keys::PgDataKeyStore`]).

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::{DataKey, Keyring};
use crate::data_keys::{
    Checkpoint, DataKeyError, DataKeyStore, Erasure, KekUsage, RekeyStage, RotationReport,
};
use crate::pg_keys::PgDataKeyStore;

/// The data-key store of a vault: cheap to clone.
#[derive(Clone, Debug)]
pub enum KeyStore {
    /// The SQLite file at `STARGAZER_DB_PATH`.
    Sqlite(DataKeyStore),
    /// PostgreSQL at `STARGAZER_DATABASE_URL`.
    Postgres(PgDataKeyStore),
}

/// Runs a call of the SQLite store on a blocking thread.
macro_rules! blocking {
    ($store:expr, |$s:ident| $body:expr) => {{
        let $s = $store.clone();
        tokio::task::spawn_blocking(move || $body)
            .await
            .map_err(|err| DataKeyError::Task(err.to_string()))?
    }};
}

impl From<DataKeyStore> for KeyStore {
    fn from(store: DataKeyStore) -> Self {
        KeyStore::Sqlite(store)
    }
}

impl From<PgDataKeyStore> for KeyStore {
    fn from(store: PgDataKeyStore) -> Self {
        KeyStore::Postgres(store)
    }
}

impl KeyStore {
    /// Opens the store the settings name, refusing rows under master keys it does not have.
    pub async fn open(config: &Config, keyring: Keyring) -> Result<Self, DataKeyError> {
        Self::open_as(config, keyring, true).await
    }

    /// Opens the store without checking the keyring against its rows (for `doctor`).
    pub async fn open_unchecked(config: &Config, keyring: Keyring) -> Result<Self, DataKeyError> {
        Self::open_as(config, keyring, false).await
    }

    async fn open_as(config: &Config, keyring: Keyring, check: bool) -> Result<Self, DataKeyError> {
        let capacity = config.data_key_cache;
        if let Some(url) = &config.database_url {
            let tls_ca = config.tls_ca.as_ref().map(|ca| ca.pem.as_slice());
            let store =
                PgDataKeyStore::open_unchecked(url.expose(), tls_ca, keyring, capacity).await?;
            if check {
                store.check_keyring().await?;
            }
            return Ok(store.into());
        }
        let path = config.db_path.clone();
        let store = tokio::task::spawn_blocking(move || {
            if check {
                DataKeyStore::open(&path, keyring, capacity)
            } else {
                DataKeyStore::open_unchecked(&path, keyring, capacity)
            }
        })
        .await
        .map_err(|err| DataKeyError::Task(err.to_string()))??;
        Ok(store.into())
    }

    /// Where the keys are: the file's path, or PostgreSQL's `host:port/database` and whether
    /// the connection is encrypted.
    pub async fn location(&self) -> String {
        match self {
            KeyStore::Sqlite(store) => format!("SQLite {}", store.path().display()),
            KeyStore::Postgres(store) => {
                let tls = match store.encrypted().await {
                    Ok(true) => ", TLS",
                    Ok(false) => ", not encrypted",
                    Err(_) => "",
                };
                format!("PostgreSQL {}{tls}", store.location())
            }
        }
    }

    /// The SQLite store, when that is where the keys are.
    pub fn as_sqlite(&self) -> Option<&DataKeyStore> {
        match self {
            KeyStore::Sqlite(store) => Some(store),
            KeyStore::Postgres(_) => None,
        }
    }

    /// The keyring the store wraps and unwraps with.
    pub fn keyring(&self) -> &Keyring {
        match self {
            KeyStore::Sqlite(store) => store.keyring(),
            KeyStore::Postgres(store) => store.keyring(),
        }
    }

    /// The owner's data key if it is cached and the cache is known to be fresh; never waits.
    pub fn cached(&self, owner: &str) -> Option<Arc<DataKey>> {
        match self {
            KeyStore::Sqlite(store) => store.cached(owner),
            KeyStore::Postgres(store) => store.cached(owner),
        }
    }

    /// The owner's data key, from the cache or the table; `None` when the owner has none.
    pub async fn get(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        if let Some(key) = self.cached(owner) {
            return Ok(Some(key));
        }
        self.reload(owner).await
    }

    /// The owner's data key as the table holds it now (and cached).
    pub async fn reload(&self, owner: &str) -> Result<Option<Arc<DataKey>>, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.reload(&owner))
            }
            KeyStore::Postgres(store) => store.reload(owner).await,
        }
    }

    /// The key to seal the owner's new values under, read now (created when there is none).
    pub async fn current(&self, owner: &str) -> Result<Arc<DataKey>, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.current(&owner))
            }
            KeyStore::Postgres(store) => store.current(owner).await,
        }
    }

    /// Whether `key` is still the key to seal the owner's values under.
    pub async fn holds(&self, owner: &str, key: &Arc<DataKey>) -> Result<bool, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let (owner, key) = (owner.to_owned(), Arc::clone(key));
                blocking!(store, |s| s.holds(&owner, &key))
            }
            KeyStore::Postgres(store) => store.holds(owner, key).await,
        }
    }

    /// Erases the owner's data key (and any rekey rows beside it).
    pub async fn delete(&self, owner: &str) -> Result<Erasure, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.delete(&owner))
            }
            KeyStore::Postgres(store) => store.delete(owner).await,
        }
    }

    /// The keys a rekey of the owner keeps beside its data key.
    pub async fn rekey_keys(&self, owner: &str) -> Result<Vec<Arc<DataKey>>, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.rekey_keys(&owner))
            }
            KeyStore::Postgres(store) => store.rekey_keys(owner).await,
        }
    }

    /// Every owner with a data key, or with a rekey under way, sorted.
    pub async fn owners(&self) -> Result<Vec<String>, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.owners()),
            KeyStore::Postgres(store) => store.owners().await,
        }
    }

    /// How many owners have a rekey under way (or one that was interrupted).
    pub async fn unfinished_rekeys(&self) -> Result<u64, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.unfinished_rekeys()),
            KeyStore::Postgres(store) => store.unfinished_rekeys().await,
        }
    }

    /// Starts or resumes the rekey of one owner.
    pub async fn rekey_stage(&self, owner: &str) -> Result<RekeyStage, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.rekey_stage(&owner))
            }
            KeyStore::Postgres(store) => store.rekey_stage(owner).await,
        }
    }

    /// Makes the key a rekey moved the owner's values to its data key.
    pub async fn rekey_promote(&self, owner: &str) -> Result<bool, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.rekey_promote(&owner))
            }
            KeyStore::Postgres(store) => store.rekey_promote(owner).await,
        }
    }

    /// Erases the key a rekey retired.
    pub async fn rekey_finish(&self, owner: &str) -> Result<bool, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => {
                let owner = owner.to_owned();
                blocking!(store, |s| s.rekey_finish(&owner))
            }
            KeyStore::Postgres(store) => store.rekey_finish(owner).await,
        }
    }

    /// Clears deleted rows out of the store's files (SQLite: a WAL checkpoint; PostgreSQL: a
    /// `VACUUM`).
    pub async fn checkpoint(&self) -> Result<Checkpoint, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => Ok(blocking!(store, |s| s.checkpoint())),
            KeyStore::Postgres(store) => store.checkpoint().await,
        }
    }

    /// How many rows each master key wraps.
    pub async fn kek_usage(&self) -> Result<Vec<KekUsage>, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.kek_usage()),
            KeyStore::Postgres(store) => store.kek_usage().await,
        }
    }

    /// Unwraps one row of each master key; returns how many were checked.
    pub async fn verify_opens(&self) -> Result<u64, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.verify_opens()),
            KeyStore::Postgres(store) => store.verify_opens().await,
        }
    }

    /// Rewraps every data key under the current master key, all or nothing.
    pub async fn rotate(
        &self,
        progress: impl FnMut(u64, u64) -> ControlFlow<()> + Send + 'static,
    ) -> Result<RotationReport, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.rotate(progress)),
            KeyStore::Postgres(store) => store.rotate(progress).await,
        }
    }

    /// Rewraps the original bot's rows with their owner bound.
    pub async fn rewrap_legacy(&self) -> Result<RotationReport, DataKeyError> {
        match self {
            KeyStore::Sqlite(store) => blocking!(store, |s| s.rewrap_legacy()),
            KeyStore::Postgres(store) => store.rewrap_legacy().await,
        }
    }
}
