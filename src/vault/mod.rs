//! The key vault: users' own keys, global, server and channel pools, and key resolution.
//!
//! One concept per file: `resolve` (the order of the tiers, in one round trip), `hints` (which
//! users have their own key), `user_keys`, `shared_keys` (a user's choice to use only their own
//! key), `pool` and `pools`, `pool_limits` (a pool's own daily limit), `pool_log`, `health`
//! (benches and strikes), `bench_notices` (telling a key's contributor), `quota`, `key_use`
//! (the flow a tool's call takes), `sealing` (sealing under the current data key, opening under
//! whichever sealed), `payload` (the `p1;` format inside a `v4:` value), `checks` (the syntax
//! check of a secret), `gitea`, `key_check`, `migrate`, `rekey`, `error`.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::catalogue::{Catalogue, Service};
use crate::config::Config;
use crate::crypto::DataKey;
use crate::i18n::Texts;
use crate::ids::IntoServiceId;
use crate::key_store::KeyStore;
use crate::storage::{self, BackendKind, Layout, StorageBackend};

mod bench_notices;
mod checks;
mod error;
mod error_text;
mod gitea;
mod health;
mod hints;
mod key_check;
mod key_use;
mod migrate;
mod payload;
mod pool;
mod pool_limits;
mod pool_log;
mod pools;
mod quota;
mod rekey;
mod resolve;
mod sealing;
mod shared_keys;
mod user_keys;

pub use bench_notices::BenchNotice;
pub use checks::{MAX_SECRET_LEN, check_secret};
pub use error::{KeyError, OpenVaultError};
pub use key_use::{Caller, KeyFailure, KeyUseError};
pub use migrate::{LegacyHash, MigrationReport};
pub use pool::Pool;
pub use pool_limits::PoolUsage;
pub use pools::{PoolAdd, PoolKeyChoice, PoolKeyInfo};
pub use rekey::{RekeyError, RekeyFailure, RekeyReport};
pub use resolve::{KeyOrigin, KeySource, PoolKeyRef, ResolvedKey};
pub use shared_keys::SharedKeyChoice;
pub use user_keys::{Forgotten, UserKeyInfo};

use hints::OwnKeyHints;
use payload::Payload;
use pools::POOL_SAMPLE;
use sealing::{WriteMode, sealing_of};

/// The key vault: cheap to clone, `Send + Sync`; open it once and share it.
#[derive(Clone)]
pub struct KeyVault {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    layout: Layout,
    data_keys: KeyStore,
    storage: Arc<dyn StorageBackend>,
    catalogue: Catalogue,
    own_key_hints: OwnKeyHints,
    /// The keys the original bot's pool values may be under (see `original_pool_keys`).
    original_pool_keys: tokio::sync::OnceCell<Vec<DataKey>>,
    /// Whether `migrate`'s marker says to refuse legacy values, and when that was read.
    legacy_marker: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// Pool keys benched for a long reason, for whoever tells their contributors.
    bench_notices: tokio::sync::broadcast::Sender<BenchNotice>,
    /// The sentences users read, in every language the bot speaks.
    texts: Arc<Texts>,
}

impl fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault")
            .field("storage", &self.inner.storage.kind())
            .field("prefix", &self.inner.layout.prefix())
            .finish_non_exhaustive()
    }
}

impl KeyVault {
    /// Opens the vault the config describes, with the built-in catalogue plus the operator's
    /// services file.
    pub async fn open(config: Config) -> Result<Self, OpenVaultError> {
        Self::open_with_catalogue(config, Catalogue::builtin()).await
    }

    /// Opens the vault with a host bot's catalogue (the operator's file is added to it).
    pub async fn open_with_catalogue(
        config: Config,
        mut catalogue: Catalogue,
    ) -> Result<Self, OpenVaultError> {
        if let Some(path) = &config.services_file {
            catalogue.load_file(path)?;
        }
        let keyring = config.keyring()?;
        let texts = Texts::load(config.locales_dir.as_deref())?;
        let data_keys = KeyStore::open(&config, keyring).await?;
        let storage = storage::connect(&config).await?;
        Ok(Self::from_parts_with_texts(
            config, data_keys, storage, catalogue, texts,
        ))
    }

    /// Builds a vault from parts already opened (tests, benchmarks, custom backends), with
    /// the shipped catalogues ([`KeyVault::from_parts_with_texts`] takes others).
    pub fn from_parts(
        config: Config,
        data_keys: impl Into<KeyStore>,
        storage: Arc<dyn StorageBackend>,
        catalogue: Catalogue,
    ) -> Self {
        Self::from_parts_with_texts(config, data_keys, storage, catalogue, Texts::builtin())
    }

    /// [`KeyVault::from_parts`] with the sentences of `texts` (for instance
    /// `Texts::load(config.locales_dir.as_deref())?`).
    pub fn from_parts_with_texts(
        config: Config,
        data_keys: impl Into<KeyStore>,
        storage: Arc<dyn StorageBackend>,
        catalogue: Catalogue,
        texts: Arc<Texts>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                layout: Layout::new(config.key_prefix.clone()),
                own_key_hints: OwnKeyHints::new(config.data_key_cache),
                legacy_marker: std::sync::Mutex::new(None),
                original_pool_keys: tokio::sync::OnceCell::new(),
                bench_notices: tokio::sync::broadcast::channel(bench_notices::NOTICE_BACKLOG).0,
                texts,
                config,
                data_keys: data_keys.into(),
                storage,
                catalogue,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The service catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    /// The sentences users read, in every language the bot speaks: the shipped catalogues,
    /// with the operator's `STARGAZER_LOCALES_DIR` laid over them by [`KeyVault::open`].
    pub fn texts(&self) -> &Arc<Texts> {
        &self.inner.texts
    }

    /// The storage key layout (tests and benchmarks: feature `testkit`).
    #[cfg(feature = "testkit")]
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The storage backend (tests and benchmarks: feature `testkit`).
    #[cfg(feature = "testkit")]
    pub fn storage(&self) -> &dyn StorageBackend {
        self.inner.storage.as_ref()
    }

    /// Checks that the storage backend answers (Redis `PING`).
    pub async fn ping(&self) -> Result<(), storage::StorageError> {
        self.inner.storage.ping().await
    }

    /// What each Redis server (every master of a cluster) says of itself: version, scripts,
    /// eviction policy, persistence. Empty for the embedded store.
    pub async fn server_facts(&self) -> Result<Vec<storage::ServerFacts>, storage::StorageError> {
        self.inner.storage.server_facts().await
    }

    /// The storage backend, for the crate's own modules outside the vault.
    pub(crate) fn backend(&self) -> &dyn StorageBackend {
        self.inner.storage.as_ref()
    }

    /// Which storage backend is in use.
    pub fn storage_kind(&self) -> BackendKind {
        self.inner.storage.kind()
    }

    /// The data-key store.
    pub fn data_keys(&self) -> &KeyStore {
        &self.inner.data_keys
    }

    /// The catalogue's entry for `service`: [`KeyError::InvalidService`] for text that cannot
    /// be a service id, [`KeyError::UnknownService`] for an id the catalogue lacks.
    pub fn known_service(&self, service: impl IntoServiceId) -> Result<&Service, KeyError> {
        Ok(self.inner.catalogue.lookup(&service.into_service_id()?)?)
    }
}

/// `…last4` of a secret; of a Gitea value's token, never of the JSON around it.
pub(super) fn masked_value(service: &str, secret: &str) -> String {
    if service == crate::gitea::GITEA_SERVICE {
        crate::gitea::GiteaPolicy::masked(secret)
    } else {
        crate::secret::mask(secret)
    }
}

pub(super) fn truncate_to_seconds(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at)
}
