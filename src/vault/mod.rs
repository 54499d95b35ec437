//! The key vault: users' own keys, global and channel pools, and key resolution.

use std::fmt;
use std::sync::Arc;

use rand::seq::SliceRandom;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use crate::catalogue::{Catalogue, CatalogueError, validate_service_id};
use crate::config::{Config, ConfigError};
use crate::crypto::{DataKey, SealContext, SealedFormat, StoredValue};
use crate::data_keys::{Checkpoint, DataKeyError};
use crate::health::{Bench, live_benches};
use crate::key_check::KeyCheck;
use crate::key_store::KeyStore;
use crate::secret::ApiKey;
use crate::storage::{self, BackendKind, Layout, ResolveRequest, StorageBackend, StorageError};

mod rekey;
pub use rekey::{RekeyError, RekeyFailure, RekeyReport};

/// Longest secret accepted, in characters (Discord's modal input limit).
pub const MAX_SECRET_LEN: usize = 4_000;
/// How many random entries one resolution draws from each pool.
const POOL_SAMPLE: usize = 8;
/// The payload of a `v4:` value: `p1;{unix seconds};{contributor or 0};{secret}`.
const PAYLOAD_TAG: &str = "p1";

/// A shared pool of keys: the whole bot's, or one channel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pool {
    /// The global pool (bot admins).
    Global,
    /// One channel's pool (members who manage that channel).
    Channel(u64),
}

impl Pool {
    /// The owner id of the pool's data key: `pool:global` or `pool:channel:{id}`.
    pub fn owner_id(&self) -> String {
        match self {
            Pool::Global => "pool:global".to_owned(),
            Pool::Channel(id) => format!("pool:channel:{id}"),
        }
    }

    /// The pool whose owner id is `owner` ([`Pool::owner_id`]), if it is one.
    pub(crate) fn of_owner(owner: &str) -> Option<Pool> {
        if owner == "pool:global" {
            return Some(Pool::Global);
        }
        let channel = owner.strip_prefix("pool:channel:")?;
        // Exactly as `owner_id` writes it: no sign, no leading zeros.
        let id: u64 = channel.parse().ok()?;
        (id.to_string() == channel).then_some(Pool::Channel(id))
    }

    fn storage_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_key(service),
            Pool::Channel(id) => layout.channel_pool_key(*id, service),
        }
    }

    /// The hash of the pool's benched keys for `service`.
    pub(crate) fn bench_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_bench_key(service),
            Pool::Channel(id) => layout.channel_pool_bench_key(*id, service),
        }
    }

    /// The hash of the pool's strikes for `service`: keys that failed one user's call.
    pub(crate) fn strikes_key(&self, layout: &Layout, service: &str) -> String {
        match self {
            Pool::Global => layout.global_pool_strikes_key(service),
            Pool::Channel(id) => layout.channel_pool_strikes_key(*id, service),
        }
    }

    /// The hash of the pool's per-key counters for `service` on `day` (UTC).
    pub(crate) fn usage_key(&self, layout: &Layout, service: &str, day: time::Date) -> String {
        match self {
            Pool::Global => layout.global_pool_usage_key(service, day),
            Pool::Channel(id) => layout.channel_pool_usage_key(*id, service, day),
        }
    }

    fn source(&self) -> KeySource {
        match self {
            Pool::Global => KeySource::GlobalPool,
            Pool::Channel(_) => KeySource::ChannelPool,
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pool::Global => f.write_str("the global pool"),
            Pool::Channel(id) => write!(f, "the pool of channel {id}"),
        }
    }
}

/// Where a resolved key came from. Only `User` is the caller's own; the rest are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// The user's own key.
    User,
    /// The channel's pool.
    ChannelPool,
    /// The global pool.
    GlobalPool,
    /// The operator's environment.
    Env,
}

impl KeySource {
    /// `user`, `channel_pool`, `global_pool` or `env`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeySource::User => "user",
            KeySource::ChannelPool => "channel_pool",
            KeySource::GlobalPool => "global_pool",
            KeySource::Env => "env",
        }
    }

    /// Whether the key is shared (not the caller's own): the daily quota applies.
    pub fn is_shared(&self) -> bool {
        !matches!(self, KeySource::User)
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key found by resolution, and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    /// The key.
    pub key: ApiKey,
    /// Its source.
    pub source: KeySource,
    /// The pool key id, for keys drawn from a pool.
    pub key_id: Option<String>,
    /// The pool it was drawn from, for keys drawn from a pool: with the key id, what
    /// [`KeyVault::report_key_outcome`] needs to bench or count it.
    pub pool: Option<Pool>,
}

/// One of a user's keys, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeyInfo {
    /// The service id.
    pub service: String,
    /// The service's display name.
    pub display_name: String,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
    /// When it was set (unknown for values written by the original bot).
    pub set_at: Option<OffsetDateTime>,
    /// What checking it with the service found when it was saved (`NotChecked` in listings).
    pub check: KeyCheck,
}

/// One key of a pool, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKeyInfo {
    /// The service id.
    pub service: String,
    /// The key id (the hash field).
    pub key_id: String,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
    /// Who added it (unknown for values written by the original bot).
    pub contributor: Option<u64>,
    /// When it was added.
    pub added_at: Option<OffsetDateTime>,
    /// Outcomes reported for it today (UTC).
    pub uses_today: u64,
    /// Of those, the ones where the key itself failed (rate-limited, exhausted, unauthorized).
    pub failures_today: u64,
    /// Whether it is benched now (skipped by draws), until when and why.
    pub bench: Option<Bench>,
}

/// A pool key as autocomplete offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKeyChoice {
    /// The service id.
    pub service: String,
    /// The key id.
    pub key_id: String,
    /// `…last4`, or `None` when the stored value does not open.
    pub masked: Option<String>,
}

/// What adding a pool key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAdd {
    /// The key id.
    pub key_id: String,
    /// `…last4`.
    pub masked: String,
    /// False when the pool already held this key (nothing changed).
    pub added: bool,
    /// What checking it with the service found.
    pub check: KeyCheck,
}

/// What [`KeyVault::forget_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// How many keys the user had.
    pub keys: usize,
    /// Whether the user had a data key, now destroyed.
    pub data_key_destroyed: bool,
    /// Whether the database's write-ahead log was cleared of the wrapped key at once; when
    /// [`Checkpoint::Blocked`], a copy of the wrapped key stays in the `-wal` file until a
    /// later checkpoint (every running process retries).
    pub checkpoint: Checkpoint,
}

/// A hash holding values in the original bot's formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyHash {
    /// The storage key.
    pub key: String,
    /// How many legacy values it holds.
    pub values: usize,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// Data keys of the original bot rewrapped under the current master key with their owner
    /// bound (a row copied to another owner then no longer opens there).
    pub legacy_data_keys_rewrapped: u64,
    /// Every hash that held legacy values before the run, listed before anything was touched.
    pub legacy_hashes: Vec<LegacyHash>,
    /// Legacy pool entries whose field is not a key id (`{hash} {field}`), left as they were
    /// for the operator to remove: they are refused from now on.
    pub left_in_pools: Vec<String>,
    /// Values already `v4:`.
    pub already_v4: u64,
    /// `v2:` values rewritten.
    pub from_v2: u64,
    /// Plaintext values rewritten.
    pub from_plaintext: u64,
    /// Values that could not be opened, left as they were.
    pub unreadable: u64,
    /// The same, by hash: which user or pool they are in (none is ever deleted).
    pub unreadable_by_hash: std::collections::BTreeMap<String, u64>,
    /// Values that changed while migrating, left to the writer.
    pub skipped_changed: u64,
}

/// Why a vault operation failed. Every variant is a sentence a user or operator can act on;
/// none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The service is not in the catalogue.
    #[error("there is no service called {0:?}; pick one from the list")]
    UnknownService(String),
    /// The service name cannot be a service id.
    #[error(transparent)]
    InvalidService(#[from] CatalogueError),
    /// The key is empty (or only whitespace).
    #[error("the key is empty: paste the key itself")]
    EmptyKey,
    /// The key has whitespace inside it.
    #[error("the key contains spaces or line breaks: paste the key alone, on one line")]
    KeyHasWhitespace,
    /// The key has control characters.
    #[error("the key contains control characters (such as NUL): paste the key alone")]
    KeyHasControlCharacters,
    /// The key has invisible formatting characters (Unicode category Cf: bidi controls such as
    /// U+202E, zero-width characters such as U+200B), which no real key has and which can make
    /// it show as something else.
    #[error(
        "the key contains invisible formatting characters (such as a right-to-left override or a zero-width space): copy the key again from its source and paste it alone"
    )]
    KeyHasFormatCharacters,
    /// The key is over the length limit.
    #[error("the key is {0} characters long; the limit is {MAX_SECRET_LEN}")]
    KeyTooLong(usize),
    /// A pool key id that cannot be one.
    #[error("{0:?} is not a key id: key ids are 12 hex digits, as the pool listing shows them")]
    InvalidKeyId(String),
    /// A Gitea base URL that may not be used.
    #[error(transparent)]
    InvalidBaseUrl(#[from] crate::gitea::BaseUrlError),
    /// A Gitea value typed as JSON that is not `{"token": "...", "base_url": "..."}`.
    #[error(
        "the Gitea value is JSON, but not {{\"token\": \"...\", \"base_url\": \"...\"}}; paste the token alone and the base URL in its own field"
    )]
    InvalidGiteaValue,
    /// The service refused the key when it was checked (401/403): nothing was stored.
    #[error(
        "{service} refused this key ({status}), so it was not saved: check that you copied all of it and that it has not been revoked"
    )]
    KeyRejected {
        /// The service's display name.
        service: String,
        /// The status it answered, e.g. `401 Unauthorized`.
        status: String,
    },
    /// Storage failed.
    #[error("{}", storage_failed(.0))]
    Storage(#[from] StorageError),
    /// `forget_user` destroyed the data key, but the sealed values could not be deleted.
    #[error(
        "the encryption key of the {} was destroyed, so no copy of {} can be opened any more, but the sealed {} could not be deleted from storage ({source}); run the erasure again to delete {}",
        plural(*.keys, "key", "keys"),
        plural(*.keys, "it", "them"),
        plural(*.keys, "value", "values"),
        plural(*.keys, "it", "them")
    )]
    ValuesRemain {
        /// How many keys the user had.
        keys: usize,
        /// Why they could not be deleted.
        source: StorageError,
    },
    /// The pool already holds as many keys for the service as the operator allows.
    #[error(
        "{pool} already holds {max} {service} keys, the most STARGAZER_POOL_MAX_KEYS allows; remove one first"
    )]
    PoolFull {
        /// The pool, as a phrase (`the global pool`).
        pool: String,
        /// The service id.
        service: String,
        /// The cap.
        max: u64,
    },
    /// The owner's data key was erased and made again by other processes three times while
    /// one value was being sealed.
    #[error(
        "the encryption key changed three times while the key was being saved (it is being erased elsewhere), so it was not saved; try again"
    )]
    DataKeyChurn,
    /// The data-key store failed.
    #[error("the encryption key store failed, so nothing was changed: {0}")]
    DataKeys(#[from] DataKeyError),
    /// A value was written, then could be neither confirmed under a current data key nor
    /// taken back.
    #[error(
        "the key was written, but {cause}; it could not be taken back either, so it may not open: list the keys, and save it again if it shows as unreadable"
    )]
    WriteInDoubt {
        /// Why it could not be confirmed (a [`KeyError`]'s sentence).
        cause: String,
    },
}

/// How [`KeyVault::seal_and_write`] writes a sealed value.
#[derive(Debug, Clone, Copy)]
enum WriteMode<'a> {
    /// HSET: in place of any value (a user's key for a service).
    Set,
    /// HSETNX: only to an absent field (a pool's key id).
    IfAbsent,
    /// Only in place of this value, if the field still holds it (`migrate`).
    Replacing(&'a str),
}

/// A value [`KeyVault::seal_and_write`] wrote, and what its field held before (`None`: absent).
struct Written {
    field: String,
    value: String,
    before: Option<String>,
}

/// Why the vault could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenVaultError {
    /// A setting is wrong or missing.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The services file is wrong.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The data-key store refused to open.
    #[error(transparent)]
    DataKeys(#[from] DataKeyError),
    /// Storage could not be set up.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

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
}

/// The original bot's `POOL_KEY_SALT`.
const ORIGINAL_POOL_KEY_SALT: &str = "stargazer:api_key_pool";

/// How long a read of `migrate`'s legacy marker is trusted.
const LEGACY_MARKER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Which (user, service) pairs resolved to the user's own key last time, so the next
/// resolution reads only the user's field (one HGET) instead of the whole pipeline with its
/// pool draws. A table of fingerprints in 8-way sets of one cache line each, sized like the
/// data-key cache, no lock: a stale hint (the key was removed elsewhere) or one evicted from a
/// full set costs one more round trip, never a wrong key.
struct OwnKeyHints {
    hasher: std::collections::hash_map::RandomState,
    sets: Box<[HintSet]>,
}

/// Eight fingerprints (0 = empty) in one cache line.
#[repr(align(64))]
#[derive(Default)]
struct HintSet([std::sync::atomic::AtomicU64; 8]);

impl OwnKeyHints {
    /// A table for about `pairs` pairs: about three ways each, so pairs that share a set seldom
    /// evict each other.
    fn new(pairs: usize) -> Self {
        let sets = (pairs.max(8) / 4).next_power_of_two();
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            sets: (0..sets).map(|_| HintSet::default()).collect(),
        }
    }

    /// The set and the non-zero fingerprint of a pair.
    fn locate(&self, user_id: u64, service: &str) -> (&[std::sync::atomic::AtomicU64; 8], u64) {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one((user_id, service));
        (
            &self.sets[hash as usize & (self.sets.len() - 1)].0,
            hash | 1,
        )
    }

    fn has_own_key(&self, user_id: u64, service: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let (set, fingerprint) = self.locate(user_id, service);
        set.iter().any(|way| way.load(Relaxed) == fingerprint)
    }

    fn remember(&self, user_id: u64, service: &str, own_key: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let (set, fingerprint) = self.locate(user_id, service);
        let held = set.iter().find(|way| way.load(Relaxed) == fingerprint);
        match (own_key, held) {
            (true, Some(_)) | (false, None) => {}
            // Clear only this pair's hint, not another pair's in the same set.
            (false, Some(way)) => {
                let _ = way.compare_exchange(fingerprint, 0, Relaxed, Relaxed);
            }
            (true, None) => {
                let stored = set.iter().any(|way| {
                    way.compare_exchange(0, fingerprint, Relaxed, Relaxed)
                        .is_ok()
                });
                if !stored {
                    // A full set: replace the way the fingerprint's top bits pick.
                    set[(fingerprint >> 61) as usize].store(fingerprint, Relaxed);
                }
            }
        }
    }
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
        let data_keys = KeyStore::open(&config, keyring).await?;
        let storage = storage::connect(&config).await?;
        Ok(Self::from_parts(config, data_keys, storage, catalogue))
    }

    /// Builds a vault from parts already opened (tests, benchmarks, custom backends).
    pub fn from_parts(
        config: Config,
        data_keys: impl Into<KeyStore>,
        storage: Arc<dyn StorageBackend>,
        catalogue: Catalogue,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                layout: Layout::new(config.key_prefix.clone()),
                own_key_hints: OwnKeyHints::new(config.data_key_cache),
                legacy_marker: std::sync::Mutex::new(None),
                original_pool_keys: tokio::sync::OnceCell::new(),
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

    /// The storage key layout.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The storage backend.
    pub fn storage(&self) -> &dyn StorageBackend {
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

    // ----- validation -------------------------------------------------------------------

    /// Checks that `service` is in the catalogue.
    pub fn check_service(&self, service: &str) -> Result<(), KeyError> {
        validate_service_id(service)?;
        if self.inner.catalogue.get(service).is_none() {
            return Err(KeyError::UnknownService(service.to_owned()));
        }
        Ok(())
    }

    // ----- data keys --------------------------------------------------------------------

    /// The owner's data key to open values with (cached when the cache is fresh).
    async fn key_to_open(&self, owner: &str) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(key) = self.inner.data_keys.cached(owner) {
            return Ok(Some(key));
        }
        Ok(self.inner.data_keys.get(owner).await?)
    }

    /// Seals a value under the owner's current data key and writes it to `hash` (`seal` gives
    /// the field and the sealed value for a data key), then checks that the key is still the
    /// stored one: another process may have erased it (and made a new one) meanwhile, and a
    /// value sealed under an erased key opens nowhere. If it was, the value is sealed again
    /// under the new key and written in place of the one this call wrote.
    ///
    /// Returns the field and whether the value was written (not when [`WriteMode::IfAbsent`]
    /// found the field taken, or [`WriteMode::Replacing`] found another value). On an error,
    /// what this call wrote has been taken back, so the hash is as it was: a value of its own
    /// it could not take back is reported by [`KeyError::WriteInDoubt`].
    async fn seal_and_write(
        &self,
        owner: &str,
        hash: &str,
        mode: WriteMode<'_>,
        mut seal: impl FnMut(&DataKey) -> (String, String),
    ) -> Result<(String, bool), KeyError> {
        const TRIES: usize = 3;
        let mut wrote: Option<Written> = None;
        let failure = 'tries: {
            for _ in 0..TRIES {
                let key = match self.inner.data_keys.current(owner).await {
                    Ok(key) => key,
                    Err(err) => break 'tries KeyError::from(err),
                };
                let (field, value) = seal(&key);
                let name = field.clone();
                let written = match self
                    .write_sealed(hash, mode, wrote.as_ref(), field, value)
                    .await
                {
                    Ok(Some(written)) => written,
                    // Nothing of this call's is in the hash.
                    // (A try of its own that a later try replaced or deleted is not.)
                    Ok(None) => return Ok((name, false)),
                    Err(err) => break 'tries err,
                };
                match self.inner.data_keys.holds(owner, &key).await {
                    Ok(true) => return Ok((written.field, true)),
                    Ok(false) => tracing::info!(
                        owner,
                        "a data key was erased while a value was sealed under it; sealing again"
                    ),
                    Err(err) => {
                        wrote = Some(written);
                        break 'tries KeyError::from(err);
                    }
                }
                wrote = Some(written);
            }
            KeyError::DataKeyChurn
        };
        if let Some(written) = wrote
            && let Err(err) = self.take_back(hash, &written).await
        {
            tracing::warn!(owner, error = %err, "cannot take back a value written under a data key that could not be confirmed");
            return Err(KeyError::WriteInDoubt {
                cause: failure.to_string(),
            });
        }
        Err(failure)
    }

    /// Writes one sealed value as `mode` says; `previous`, what an earlier try of the same call
    /// wrote under a key since erased, is replaced (or, under another field, deleted first).
    /// `None`: nothing was written and nothing of the call's is left.
    async fn write_sealed(
        &self,
        hash: &str,
        mode: WriteMode<'_>,
        previous: Option<&Written>,
        field: String,
        value: String,
    ) -> Result<Option<Written>, KeyError> {
        let storage = &self.inner.storage;
        if let Some(previous) = previous {
            if previous.field == field {
                return Ok(storage
                    .hreplace(hash, &field, &previous.value, &value)
                    .await?
                    .then(|| Written {
                        field,
                        value,
                        before: previous.before.clone(),
                    }));
            }
            storage
                .hdel_if(hash, &previous.field, &previous.value)
                .await?;
        }
        let before = match mode {
            WriteMode::Set => {
                let before = storage.hget(hash, &field).await?;
                storage.hset(hash, &field, &value).await?;
                before
            }
            WriteMode::IfAbsent => {
                if !storage.hset_nx(hash, &field, &value).await? {
                    return Ok(None);
                }
                None
            }
            WriteMode::Replacing(expected) => {
                if !storage.hreplace(hash, &field, expected, &value).await? {
                    return Ok(None);
                }
                Some(expected.to_owned())
            }
        };
        Ok(Some(Written {
            field,
            value,
            before,
        }))
    }

    /// Puts back what the field held before `written`, unless it changed since.
    async fn take_back(&self, hash: &str, written: &Written) -> Result<(), StorageError> {
        let storage = &self.inner.storage;
        match &written.before {
            Some(before) => storage
                .hreplace(hash, &written.field, &written.value, before)
                .await
                .map(drop),
            None => storage
                .hdel_if(hash, &written.field, &written.value)
                .await
                .map(drop),
        }
    }

    fn seal_context<'a>(
        &'a self,
        owner: &'a str,
        service: &'a str,
        key_id: Option<&'a str>,
    ) -> SealContext<'a> {
        SealContext {
            prefix: self.inner.layout.prefix(),
            owner,
            service,
            key_id,
        }
    }

    /// Whether values in the original bot's formats may be read: not with
    /// `STARGAZER_LEGACY_VALUES=refuse`, nor once `migrate` has left its marker (read at most
    /// every 5 s, and only when a legacy value is met). A marker that cannot be read refuses.
    pub async fn legacy_values_allowed(&self) -> bool {
        if self.inner.config.legacy_values == crate::config::LegacyValues::Refuse {
            return false;
        }
        let cached = *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((at, refuse)) = cached
            && at.elapsed() < LEGACY_MARKER_TTL
        {
            return !refuse;
        }
        let refuse = match self
            .inner
            .storage
            .get(&self.inner.layout.legacy_values_key())
            .await
        {
            Ok(marker) => marker.as_deref() == Some("refuse"),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the legacy-values marker; refusing legacy values");
                return false;
            }
        };
        *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), refuse));
        !refuse
    }

    /// The keys the original bot's `v2:` pool values may be sealed under, tried in turn:
    /// `STARGAZER_ORIGINAL_POOL_KEY`; a data-key row under the owner id `stargazer:api_key_pool`
    /// (its `POOL_KEY_SALT`); SHA-256 of each configured master key followed by that salt. Found
    /// once, on the first such value.
    async fn original_pool_keys(&self) -> &[DataKey] {
        let found = self
            .inner
            .original_pool_keys
            .get_or_try_init(|| async {
                let mut keys = Vec::new();
                if let Some(given) = &self.inner.config.original_pool_key {
                    keys.push(given.as_data_key());
                }
                // A failed read is not remembered: the next value tries again.
                let row = self
                    .inner
                    .data_keys
                    .get(ORIGINAL_POOL_KEY_SALT)
                    .await
                    .inspect_err(|err| {
                        tracing::warn!(error = %err, "cannot read the original bot's pool key row")
                    })?;
                keys.extend(row.map(|key| DataKey::clone_of(&key)));
                for master in self.inner.data_keys.keyring().all() {
                    keys.push(master.derive_original_pool_key(ORIGINAL_POOL_KEY_SALT.as_bytes()));
                }
                Ok::<_, KeyError>(keys)
            })
            .await;
        found.map(Vec::as_slice).unwrap_or_default()
    }

    /// Opens a stored value for `owner`; `None` (logged) when it does not open, or when it is
    /// a legacy value and those are refused.
    async fn open_value(
        &self,
        owner: &str,
        service: &str,
        key_id: Option<&str>,
        value: &str,
    ) -> Option<(Payload, SealedFormat)> {
        self.open_value_as(owner, service, key_id, value, false)
            .await
    }

    /// [`KeyVault::open_value`]; with `for_migration`, legacy values are read whatever the
    /// policy (`migrate` must read what it rewrites).
    async fn open_value_as(
        &self,
        owner: &str,
        service: &str,
        key_id: Option<&str>,
        value: &str,
        for_migration: bool,
    ) -> Option<(Payload, SealedFormat)> {
        let result = async {
            let stored = StoredValue::parse(value)?;
            let format = stored.format();
            if matches!(format, SealedFormat::V2 | SealedFormat::Plaintext)
                && !for_migration
                && !self.legacy_values_allowed().await
            {
                return Err(OpenFailure::LegacyRefused);
            }
            if format == SealedFormat::V2 && key_id.is_some() {
                // The original bot's pool values: under its pool key, however it derived it.
                let context = self.seal_context(owner, service, key_id);
                for key in self.original_pool_keys().await {
                    if let Ok(opened) = stored.open(Some(key), &context) {
                        return Ok((Payload::bare(opened.expose_secret()), format));
                    }
                }
                return Err(crate::crypto::OpenError::Authentication.into());
            }
            let opened = if stored.needs_data_key() {
                let Some(key) = self.key_to_open(owner).await? else {
                    return Err(crate::crypto::OpenError::NoDataKey.into());
                };
                let context = self.seal_context(owner, service, key_id);
                match stored.open(Some(&key), &context) {
                    Err(crate::crypto::OpenError::Authentication) => {
                        self.open_after_miss(owner, &stored, &context, &key).await?
                    }
                    other => other?,
                }
            } else {
                stored.open(None, &self.seal_context(owner, service, key_id))?
            };
            let payload = match format {
                SealedFormat::V4 => Payload::decode(opened.expose_secret()),
                SealedFormat::V2 | SealedFormat::Plaintext => Payload::bare(opened.expose_secret()),
            };
            Ok::<_, OpenFailure>((payload, format))
        }
        .await;
        match result {
            Ok(opened) => Some(opened),
            Err(err) => {
                tracing::warn!(owner, service, key_id, error = %err, "a stored key does not open; skipping it");
                None
            }
        }
    }

    /// Opens a value that did not open under `tried`, the owner's data key as this process
    /// knew it. It may be sealed under a newer data key another process made, or under a key a
    /// rekey keeps beside the data key (or promoted to be the data key meanwhile).
    async fn open_after_miss(
        &self,
        owner: &str,
        stored: &StoredValue<'_>,
        context: &SealContext<'_>,
        tried: &DataKey,
    ) -> Result<secrecy::SecretString, OpenFailure> {
        let store = &self.inner.data_keys;
        // The rekey keys first, then the owner's row: a rekey promoting its new key in between
        // moves it from the one to the other, and it is found in the row.
        let rekey_keys = store.rekey_keys(owner).await.map_err(KeyError::from)?;
        let fresh = store.reload(owner).await.map_err(KeyError::from)?;
        if fresh.is_none() {
            return Err(crate::crypto::OpenError::NoDataKey.into());
        }
        for key in fresh.iter().chain(&rekey_keys) {
            if !key.same_key(tried)
                && let Ok(opened) = stored.open(Some(key), context)
            {
                return Ok(opened);
            }
        }
        Err(crate::crypto::OpenError::Authentication.into())
    }

    // ----- user keys --------------------------------------------------------------------

    /// Stores the user's own key for `service`, replacing any earlier one. The secret is trimmed;
    /// an empty or oversized secret, one with whitespace or control characters inside, or an
    /// unknown service is refused and nothing is written.
    pub async fn set_user_api_key(
        &self,
        user_id: u64,
        service: &str,
        secret: &str,
    ) -> Result<UserKeyInfo, KeyError> {
        self.check_service(service)?;
        let value = self.checked_value(service, secret, false)?;
        let secret = value.as_str();
        let check = self.check_key(service, secret).await?;
        let owner = user_id.to_string();
        let now = OffsetDateTime::now_utc();
        let hash = self.inner.layout.user_keys_key(user_id);
        let payload = Payload::encode(secret, Some(now), None);
        self.seal_and_write(&owner, &hash, WriteMode::Set, |data_key| {
            let sealed = data_key.seal(
                &self.seal_context(&owner, service, None),
                payload.expose_secret().as_bytes(),
            );
            (service.to_owned(), sealed)
        })
        .await?;
        Ok(UserKeyInfo {
            service: service.to_owned(),
            display_name: self.inner.catalogue.display_name(service).to_owned(),
            masked: Some(masked_value(service, secret)),
            set_at: Some(truncate_to_seconds(now)),
            check,
        })
    }

    /// Checks a secret on its way in: the rules of every key, and for Gitea those of its
    /// value's base URL (`shared`: for a pool, whose hosts the operator limits).
    fn checked_value(
        &self,
        service: &str,
        secret: &str,
        shared: bool,
    ) -> Result<zeroize::Zeroizing<String>, KeyError> {
        if service == crate::gitea::GITEA_SERVICE {
            self.gitea_policy().check_value(secret, shared)
        } else {
            Ok(zeroize::Zeroizing::new(check_secret(secret)?.to_owned()))
        }
    }

    /// Removes the user's key for `service`; returns whether there was one.
    pub async fn remove_user_api_key(&self, user_id: u64, service: &str) -> Result<bool, KeyError> {
        validate_service_id(service)?;
        Ok(self
            .inner
            .storage
            .hdel(&self.inner.layout.user_keys_key(user_id), service)
            .await?)
    }

    /// The user's keys, masked, by service id.
    pub async fn list_user_api_keys(&self, user_id: u64) -> Result<Vec<UserKeyInfo>, KeyError> {
        let entries = self
            .inner
            .storage
            .hgetall(&self.inner.layout.user_keys_key(user_id))
            .await?;
        let owner = user_id.to_string();
        let mut keys = Vec::with_capacity(entries.len());
        for (service, value) in entries {
            let opened = self.open_value(&owner, &service, None, &value).await;
            keys.push(UserKeyInfo {
                display_name: self.inner.catalogue.display_name(&service).to_owned(),
                masked: opened
                    .as_ref()
                    .map(|(p, _)| masked_value(&service, p.key.expose())),
                set_at: opened.and_then(|(p, _)| p.at),
                service,
                check: KeyCheck::NotChecked,
            });
        }
        Ok(keys)
    }

    /// Erases every key of the user. The data key goes first (the crypto-shred: from then on
    /// no copy of the values opens anywhere, backups and replicas included, and every other
    /// process drops its cached copy within 1 s), then the values themselves.
    ///
    /// On error, the error says what was done: [`KeyError::Storage`] or [`KeyError::DataKeys`]
    /// when nothing was changed, [`KeyError::ValuesRemain`] when the data key is destroyed
    /// but the sealed values could not be deleted.
    pub async fn forget_user(&self, user_id: u64) -> Result<Forgotten, KeyError> {
        let hash = self.inner.layout.user_keys_key(user_id);
        let keys = self.inner.storage.hgetall(&hash).await?.len();
        let owner = user_id.to_string();
        let erasure = self.inner.data_keys.delete(&owner).await?;
        if let Err(source) = self.inner.storage.del(&hash).await {
            // Only then is "the key is destroyed, the values remain" what happened.
            return Err(if erasure.existed && keys > 0 {
                KeyError::ValuesRemain { keys, source }
            } else {
                KeyError::Storage(source)
            });
        }
        Ok(Forgotten {
            keys,
            data_key_destroyed: erasure.existed,
            checkpoint: erasure.checkpoint,
        })
    }

    // ----- pools ------------------------------------------------------------------------

    /// Adds a key to a pool. The key id is a keyed fingerprint of the secret, so adding the
    /// same key twice changes nothing (`added` is then false).
    pub async fn add_pool_key(
        &self,
        pool: Pool,
        service: &str,
        secret: &str,
        contributor: u64,
    ) -> Result<PoolAdd, KeyError> {
        self.check_service(service)?;
        let value = self.checked_value(service, secret, true)?;
        let secret = value.as_str();
        // Found by its secret, not only by its id: a rekey keeps ids that a new data key would
        // derive differently.
        if let Some(key_id) = self.pool_field_holding(pool, service, secret).await? {
            return Ok(PoolAdd {
                key_id,
                masked: masked_value(service, secret),
                added: false,
                check: KeyCheck::NotChecked,
            });
        }
        // Before the key goes to its service to be checked.
        self.check_pool_room(pool, service).await?;
        let check = self.check_key(service, secret).await?;
        let owner = pool.owner_id();
        let hash = pool.storage_key(&self.inner.layout, service);
        let payload = Payload::encode(secret, Some(OffsetDateTime::now_utc()), Some(contributor));
        let (key_id, added) = self
            .seal_and_write(&owner, &hash, WriteMode::IfAbsent, |data_key| {
                let key_id = data_key.key_id(secret.as_bytes());
                let sealed = data_key.seal(
                    &self.seal_context(&owner, service, Some(&key_id)),
                    payload.expose_secret().as_bytes(),
                );
                (key_id, sealed)
            })
            .await?;
        Ok(PoolAdd {
            key_id,
            masked: masked_value(service, secret),
            added,
            check,
        })
    }

    /// The field of the pool's `service` hash whose value is `secret`, if any.
    async fn pool_field_holding(
        &self,
        pool: Pool,
        service: &str,
        secret: &str,
    ) -> Result<Option<String>, KeyError> {
        let owner = pool.owner_id();
        let entries = self
            .inner
            .storage
            .hgetall(&pool.storage_key(&self.inner.layout, service))
            .await?;
        for (field, value) in entries {
            if let Some((payload, _)) = self.open_value(&owner, service, Some(&field), &value).await
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    payload.key.expose().as_bytes(),
                    secret.as_bytes(),
                ))
            {
                return Ok(Some(field));
            }
        }
        Ok(None)
    }

    /// Refuses an add to a pool that holds `STARGAZER_POOL_MAX_KEYS` keys for the service.
    /// (Two adds racing at the cap may both pass: the cap bounds work, it is not a quota.)
    async fn check_pool_room(&self, pool: Pool, service: &str) -> Result<(), KeyError> {
        let max = self.inner.config.pool_max_keys;
        let held = self
            .inner
            .storage
            .hlen(&pool.storage_key(&self.inner.layout, service))
            .await?;
        if held >= max {
            return Err(KeyError::PoolFull {
                pool: pool.to_string(),
                service: service.to_owned(),
                max,
            });
        }
        Ok(())
    }

    /// Removes a key from a pool by key id (and its bench, if any); returns whether it was
    /// there. Any field a pool holds can be removed, key id or not (values planted by hand,
    /// entries `migrate` left for the operator).
    pub async fn remove_pool_key(
        &self,
        pool: Pool,
        service: &str,
        key_id: &str,
    ) -> Result<bool, KeyError> {
        validate_service_id(service)?;
        check_pool_field(key_id)?;
        let removed = self
            .inner
            .storage
            .hdel(&pool.storage_key(&self.inner.layout, service), key_id)
            .await?;
        if !removed {
            // Not in the pool and not a key id: perhaps a key pasted by mistake. Refuse it
            // without echoing it.
            check_key_id(key_id)?;
            return Ok(false);
        }
        if let Err(err) = self
            .inner
            .storage
            .hdel(&pool.bench_key(&self.inner.layout, service), key_id)
            .await
        {
            // A stale bench entry expires on its own.
            tracing::debug!(%pool, service, key_id, error = %err, "cannot clear a removed key's bench");
        }
        Ok(removed)
    }

    /// The keys of a pool, masked, with today's uses and failures and any bench (until when and
    /// why): for one service, or for every service in the catalogue.
    pub async fn list_pool_keys(
        &self,
        pool: Pool,
        service: Option<&str>,
    ) -> Result<Vec<PoolKeyInfo>, KeyError> {
        let services = self.services_named(service)?;
        let owner = pool.owner_id();
        let mut keys = Vec::new();
        for service in services {
            let entries = self
                .inner
                .storage
                .hgetall(&pool.storage_key(&self.inner.layout, &service))
                .await?;
            if entries.is_empty() {
                continue;
            }
            let benches = self.pool_key_benches(pool, &service).await?;
            let usage = self.pool_key_usage_today(pool, &service).await?;
            for (key_id, value) in entries {
                let used = usage.get(&key_id).copied().unwrap_or_default();
                let opened = self
                    .open_value(&owner, &service, Some(&key_id), &value)
                    .await;
                keys.push(PoolKeyInfo {
                    service: service.clone(),
                    masked: opened
                        .as_ref()
                        .map(|(p, _)| masked_value(&service, p.key.expose())),
                    contributor: opened.as_ref().and_then(|(p, _)| p.contributor),
                    added_at: opened.and_then(|(p, _)| p.at),
                    uses_today: used.uses,
                    failures_today: used.failures,
                    bench: benches.get(&key_id).copied(),
                    key_id,
                });
            }
        }
        Ok(keys)
    }

    /// The one service named (checked), or every service of the catalogue.
    fn services_named(&self, service: Option<&str>) -> Result<Vec<String>, KeyError> {
        Ok(match service {
            Some(service) => {
                validate_service_id(service)?;
                vec![service.to_owned()]
            }
            None => self.inner.catalogue.iter().map(|s| s.id.clone()).collect(),
        })
    }

    /// At most `limit` keys of a pool whose id starts with `id_prefix`, masked (for
    /// autocomplete, on every keystroke): only those are opened, and no usage or bench is read.
    pub async fn pool_key_choices(
        &self,
        pool: Pool,
        service: Option<&str>,
        id_prefix: &str,
        limit: usize,
    ) -> Result<Vec<PoolKeyChoice>, KeyError> {
        let services = self.services_named(service)?;
        let owner = pool.owner_id();
        let mut choices = Vec::new();
        for service in services {
            if choices.len() >= limit {
                break;
            }
            let entries = self
                .inner
                .storage
                .hgetall(&pool.storage_key(&self.inner.layout, &service))
                .await?;
            for (key_id, value) in entries
                .into_iter()
                .filter(|(key_id, _)| key_id.starts_with(id_prefix))
                .take(limit - choices.len())
            {
                let opened = self
                    .open_value(&owner, &service, Some(&key_id), &value)
                    .await;
                choices.push(PoolKeyChoice {
                    masked: opened.map(|(p, _)| masked_value(&service, p.key.expose())),
                    service: service.clone(),
                    key_id,
                });
            }
        }
        Ok(choices)
    }

    /// A random key of the global pool for `service`; `None` (logged) on any failure.
    pub async fn get_pool_api_key(&self, service: &str) -> Option<ApiKey> {
        self.draw_from_pool(Pool::Global, service)
            .await
            .map(|r| r.key)
    }

    /// A random key of a channel's pool for `service`; `None` (logged) on any failure.
    pub async fn get_channel_pool_api_key(&self, channel_id: u64, service: &str) -> Option<ApiKey> {
        self.draw_from_pool(Pool::Channel(channel_id), service)
            .await
            .map(|r| r.key)
    }

    async fn draw_from_pool(&self, pool: Pool, service: &str) -> Option<ResolvedKey> {
        if let Err(err) = validate_service_id(service) {
            tracing::warn!(error = %err, "pool draw refused");
            return None;
        }
        let request = ResolveRequest {
            user: None,
            pools: vec![pool.storage_key(&self.inner.layout, service)],
            sample: POOL_SAMPLE,
            pool_benches: vec![pool.bench_key(&self.inner.layout, service)],
        };
        match self.inner.storage.resolve(&request).await {
            Ok(reply) => {
                let entries = reply.pools.into_iter().next().unwrap_or_default();
                let benched = reply.pool_benches.first().map(Vec::as_slice);
                self.usable_in(pool, service, entries, benched.unwrap_or_default())
                    .await
            }
            Err(err) => {
                tracing::warn!(%pool, service, error = %err, "cannot draw from the pool");
                None
            }
        }
    }

    /// A usable key of a pool: a random one of the drawn `entries` that is not benched and
    /// opens; when none is and the draw was full (the pool may hold more), any other key of
    /// the pool, read whole, as long as the pool is within `STARGAZER_POOL_MAX_KEYS`. So a
    /// usable key is found whenever one exists, and the extra read happens only when every
    /// drawn key failed.
    async fn usable_in(
        &self,
        pool: Pool,
        service: &str,
        entries: Vec<(String, String)>,
        bench_entries: &[(String, String)],
    ) -> Option<ResolvedKey> {
        let full_draw = entries.len() >= POOL_SAMPLE;
        let drawn: std::collections::HashSet<String> =
            entries.iter().map(|(key_id, _)| key_id.clone()).collect();
        if let Some(found) = self
            .first_that_opens(pool, service, entries, bench_entries)
            .await
        {
            return Some(found);
        }
        if !full_draw {
            return None;
        }
        let hash = pool.storage_key(&self.inner.layout, service);
        let whole = async {
            let held = self.inner.storage.hlen(&hash).await?;
            if held > self.inner.config.pool_max_keys {
                tracing::warn!(%pool, service, held, "a pool holds more keys than STARGAZER_POOL_MAX_KEYS; not reading it whole");
                return Ok(Vec::new());
            }
            self.inner.storage.hgetall(&hash).await
        };
        match whole.await {
            Ok(mut rest) => {
                rest.retain(|(key_id, _)| !drawn.contains(key_id));
                self.first_that_opens(pool, service, rest, bench_entries)
                    .await
            }
            Err(err) => {
                tracing::warn!(%pool, service, error = %err, "cannot read a pool whole");
                None
            }
        }
    }

    /// A random entry of a pool draw that is not benched and opens.
    async fn first_that_opens(
        &self,
        pool: Pool,
        service: &str,
        mut entries: Vec<(String, String)>,
        bench_entries: &[(String, String)],
    ) -> Option<ResolvedKey> {
        if !bench_entries.is_empty() {
            let benched = live_benches(bench_entries);
            let drawn = entries.len();
            entries.retain(|(key_id, _)| !benched.contains_key(key_id));
            if drawn > 0 && entries.is_empty() {
                tracing::debug!(%pool, service, "every key drawn from the pool is benched");
            }
        }
        entries.shuffle(&mut rand::thread_rng());
        let owner = pool.owner_id();
        for (key_id, value) in entries {
            if let Some((payload, _)) = self
                .open_value(&owner, service, Some(&key_id), &value)
                .await
            {
                return Some(ResolvedKey {
                    key: payload.key,
                    source: pool.source(),
                    key_id: Some(key_id),
                    pool: Some(pool),
                });
            }
        }
        None
    }

    // ----- resolution -------------------------------------------------------------------

    /// Resolves the key to use for `service`: the user's own key, then the channel's pool,
    /// then the global pool (both skipped when `fallback_to_pool` is false), then the
    /// operator's environment. The storage reads, benches included, are one round trip. A
    /// benched pool key ([`KeyVault::report_key_outcome`]) or a value that does not open is
    /// skipped; storage failures fall through to the environment. Never returns another
    /// user's key.
    pub async fn get_user_api_key(
        &self,
        user_id: Option<u64>,
        service: &str,
        channel_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<ResolvedKey> {
        if let Err(err) = validate_service_id(service) {
            tracing::warn!(error = %err, "key resolution refused");
            return None;
        }
        let hints = &self.inner.own_key_hints;
        if let Some(user_id) = user_id
            && fallback_to_pool
            && hints.has_own_key(user_id, service)
        {
            let hash = self.inner.layout.user_keys_key(user_id);
            match self.inner.storage.hget(&hash, service).await {
                Ok(value) => {
                    if let Some(found) = self.open_user_value(user_id, service, value).await {
                        return Some(found);
                    }
                    // Stale: the key is gone or does not open; resolve in full below.
                    hints.remember(user_id, service, false);
                }
                Err(err) => {
                    tracing::warn!(service, error = %err, "key storage unavailable; falling back to the environment");
                    return self.env_resolved(service);
                }
            }
        }
        let mut pools = Vec::new();
        if fallback_to_pool {
            pools.extend(channel_id.map(Pool::Channel));
            pools.push(Pool::Global);
        }
        let request = ResolveRequest {
            user: user_id.map(|id| (self.inner.layout.user_keys_key(id), service.to_owned())),
            pools: pools
                .iter()
                .map(|pool| pool.storage_key(&self.inner.layout, service))
                .collect(),
            sample: POOL_SAMPLE,
            pool_benches: pools
                .iter()
                .map(|pool| pool.bench_key(&self.inner.layout, service))
                .collect(),
        };
        match self.inner.storage.resolve(&request).await {
            Ok(reply) => {
                if let Some(user_id) = user_id {
                    let own = self.open_user_value(user_id, service, reply.user).await;
                    hints.remember(user_id, service, own.is_some());
                    if own.is_some() {
                        return own;
                    }
                }
                let mut benches = reply.pool_benches.into_iter();
                for (pool, entries) in pools.into_iter().zip(reply.pools) {
                    let benched = benches.next().unwrap_or_default();
                    if let Some(found) = self.usable_in(pool, service, entries, &benched).await {
                        return Some(found);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(service, error = %err, "key storage unavailable; falling back to the environment");
            }
        }
        self.env_resolved(service)
    }

    /// The user's own key from a value read for them, if there is one and it opens.
    async fn open_user_value(
        &self,
        user_id: u64,
        service: &str,
        value: Option<String>,
    ) -> Option<ResolvedKey> {
        let owner = user_id.to_string();
        let (payload, _) = self.open_value(&owner, service, None, &value?).await?;
        Some(ResolvedKey {
            key: payload.key,
            source: KeySource::User,
            key_id: None,
            pool: None,
        })
    }

    /// The environment tier of resolution.
    fn env_resolved(&self, service: &str) -> Option<ResolvedKey> {
        self.env_key(service).map(|key| ResolvedKey {
            key,
            source: KeySource::Env,
            key_id: None,
            pool: None,
        })
    }

    /// The operator's key for `service` from the environment: `{SERVICE}_API_KEY`, then the
    /// service's own variables. A value with commas is a list: one is picked at random.
    pub fn env_key(&self, service: &str) -> Option<ApiKey> {
        let vars = match self.inner.catalogue.get(service) {
            Some(entry) => entry.env_vars(),
            None => crate::catalogue::Service::new(service, service).env_vars(),
        };
        vars.iter().find_map(|var| {
            let value = self.inner.config.env.get(var)?;
            let choices: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            choices
                .choose(&mut rand::thread_rng())
                .map(|v| ApiKey::new(*v))
        })
    }

    // ----- migration --------------------------------------------------------------------

    /// Every hash that holds values in the original bot's formats (`v2:` or plaintext), with
    /// how many: what [`KeyVault::migrate`] will touch, to show before it runs.
    pub async fn legacy_hashes(&self) -> Result<Vec<LegacyHash>, KeyError> {
        let mut found = Vec::new();
        for key in self.sealed_hashes().await? {
            let values = self
                .inner
                .storage
                .hgetall(&key)
                .await?
                .iter()
                .filter(|(_, value)| is_legacy(value))
                .count();
            if values > 0 {
                found.push(LegacyHash { key, values });
            }
        }
        Ok(found)
    }

    /// Every hash of sealed values under the prefix.
    async fn sealed_hashes(&self) -> Result<Vec<String>, KeyError> {
        let mut keys = Vec::new();
        for pattern in self.inner.layout.sealed_hash_patterns() {
            keys.extend(self.inner.storage.scan(&pattern).await?);
        }
        keys.retain(|key| self.inner.layout.parse_hash_key(key).is_some());
        Ok(keys)
    }

    /// Rewraps the original bot's data keys with their owner bound, rewrites every `v2:` and
    /// plaintext value (user hashes and pools) as `v4:`, then leaves
    /// the marker that makes every process refuse legacy values from then on. Idempotent: a
    /// second run finds only `v4:` values. A value that changed meanwhile is left alone.
    ///
    /// A legacy pool entry keeps what is known of it: its field, and no "added" time or
    /// contributor made up. One whose field is not a key id (8 to 64 letters, digits, `-` or
    /// `_`: planted by hand) is not re-ided as if an admin had added it: it is reported in
    /// [`MigrationReport::left_in_pools`] and left for the operator to remove.
    pub async fn migrate(&self) -> Result<MigrationReport, KeyError> {
        let mut report = MigrationReport {
            legacy_hashes: self.legacy_hashes().await?,
            ..MigrationReport::default()
        };
        // The original bot's data keys are wrapped without their owner bound: bind it.
        report.legacy_data_keys_rewrapped = self.inner.data_keys.rewrap_legacy().await?.rewrapped();
        for key in self.sealed_hashes().await? {
            let Some(kind) = self.inner.layout.parse_hash_key(&key) else {
                continue;
            };
            for (field, value) in self.inner.storage.hgetall(&key).await? {
                self.migrate_value(&kind, &key, &field, &value, &mut report)
                    .await?;
            }
        }
        self.inner
            .storage
            .set(&self.inner.layout.legacy_values_key(), "refuse")
            .await?;
        *self
            .inner
            .legacy_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), true));
        Ok(report)
    }

    async fn migrate_value(
        &self,
        kind: &storage::HashKind,
        key: &str,
        field: &str,
        value: &str,
        report: &mut MigrationReport,
    ) -> Result<(), KeyError> {
        let (owner, service, key_id) = sealing_of(kind, field);
        let Some((payload, format)) = self
            .open_value_as(&owner, &service, key_id, value, true)
            .await
        else {
            report.unreadable += 1;
            *report.unreadable_by_hash.entry(key.to_owned()).or_default() += 1;
            return Ok(());
        };
        match format {
            SealedFormat::V4 => {
                report.already_v4 += 1;
                return Ok(());
            }
            SealedFormat::V2 => report.from_v2 += 1,
            SealedFormat::Plaintext => report.from_plaintext += 1,
        }
        let secret = payload.key;
        let contributor = payload.contributor;
        let payload_at = payload.at;
        if let Some(field) = key_id {
            // Kept under its own field, never re-ided; a field that is no key id at all was
            // planted by hand: left for the operator.
            if !looks_like_key_id(field) {
                match format {
                    SealedFormat::V2 => report.from_v2 -= 1,
                    _ => report.from_plaintext -= 1,
                }
                report
                    .left_in_pools
                    .push(format!("{key} {}", crate::secret::printable(field)));
                return Ok(());
            }
        }
        // A legacy value carries no time: none is made up.
        let payload = Payload::encode(secret.expose(), payload_at, contributor);
        let (_, replaced) = self
            .seal_and_write(&owner, key, WriteMode::Replacing(value), |data_key| {
                let sealed = data_key.seal(
                    &self.seal_context(&owner, &service, key_id),
                    payload.expose_secret().as_bytes(),
                );
                (field.to_owned(), sealed)
            })
            .await?;
        if !replaced {
            match format {
                SealedFormat::V2 => report.from_v2 -= 1,
                _ => report.from_plaintext -= 1,
            }
            report.skipped_changed += 1;
        }
        Ok(())
    }
}

/// Whose values a hash holds, and the service and key id a field's value is sealed with:
/// (owner id, service, key id for a pool).
fn sealing_of<'f>(kind: &storage::HashKind, field: &'f str) -> (String, String, Option<&'f str>) {
    match kind {
        storage::HashKind::UserKeys { user_id } => (user_id.to_string(), field.to_owned(), None),
        storage::HashKind::GlobalPool { service } => {
            (Pool::Global.owner_id(), service.clone(), Some(field))
        }
        storage::HashKind::ChannelPool {
            channel_id,
            service,
        } => (
            Pool::Channel(*channel_id).owner_id(),
            service.clone(),
            Some(field),
        ),
    }
}

/// `…last4` of a secret; of a Gitea value's token, never of the JSON around it.
fn masked_value(service: &str, secret: &str) -> String {
    if service == crate::gitea::GITEA_SERVICE {
        crate::gitea::GiteaPolicy::masked(secret)
    } else {
        crate::secret::mask(secret)
    }
}

/// Whether a pool field could be a key id of this crate or of the original bot (whose ids
/// are not documented): 8 to 64 letters, digits, `-` or `_`. `x` is not.
fn looks_like_key_id(field: &str) -> bool {
    (8..=64).contains(&field.len())
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a stored value is in one of the original bot's formats.
fn is_legacy(value: &str) -> bool {
    StoredValue::parse(value)
        .is_ok_and(|stored| matches!(stored.format(), SealedFormat::V2 | SealedFormat::Plaintext))
}

/// "Nothing was changed", unless the write did reach Redis and only its replication is in
/// doubt.
fn storage_failed(err: &StorageError) -> String {
    match err {
        StorageError::NotReplicated { .. } => {
            format!("the change was made, but {err}; check it, and make it again if it is gone")
        }
        _ => format!("the key store is unavailable, so nothing was changed: {err}"),
    }
}

/// `singular` for 1, else `plural`.
fn plural(n: usize, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 { singular } else { plural }
}

/// Trims a secret and checks it can be a key: not empty, at most 4,000 characters, no
/// whitespace, control characters or invisible formatting characters (Unicode category Cf)
/// inside. Returns the trimmed secret.
pub fn check_secret(secret: &str) -> Result<&str, KeyError> {
    /// The characters of Unicode general category Cf (format), as of Unicode 15.1.
    const FORMAT: &[(char, char)] = &[
        ('\u{00AD}', '\u{00AD}'),
        ('\u{0600}', '\u{0605}'),
        ('\u{061C}', '\u{061C}'),
        ('\u{06DD}', '\u{06DD}'),
        ('\u{070F}', '\u{070F}'),
        ('\u{0890}', '\u{0891}'),
        ('\u{08E2}', '\u{08E2}'),
        ('\u{180E}', '\u{180E}'),
        ('\u{200B}', '\u{200F}'),
        ('\u{202A}', '\u{202E}'),
        ('\u{2060}', '\u{2064}'),
        ('\u{2066}', '\u{206F}'),
        ('\u{FEFF}', '\u{FEFF}'),
        ('\u{FFF9}', '\u{FFFB}'),
        ('\u{110BD}', '\u{110BD}'),
        ('\u{110CD}', '\u{110CD}'),
        ('\u{13430}', '\u{1343F}'),
        ('\u{1BCA0}', '\u{1BCA3}'),
        ('\u{1D173}', '\u{1D17A}'),
        ('\u{E0001}', '\u{E0001}'),
        ('\u{E0020}', '\u{E007F}'),
    ];
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(KeyError::EmptyKey);
    }
    let len = secret.chars().count();
    if len > MAX_SECRET_LEN {
        return Err(KeyError::KeyTooLong(len));
    }
    if secret.chars().any(char::is_whitespace) {
        return Err(KeyError::KeyHasWhitespace);
    }
    if secret.chars().any(char::is_control) {
        return Err(KeyError::KeyHasControlCharacters);
    }
    if secret
        .chars()
        .any(|c| FORMAT.iter().any(|(low, high)| (*low..=*high).contains(&c)))
    {
        return Err(KeyError::KeyHasFormatCharacters);
    }
    Ok(secret)
}

/// Checks a pool field named for removal: a key id, or any other field a pool holds (planted
/// by hand, or left by `migrate`), so that every entry can be removed. Only empty, overlong or
/// control-character fields are refused, echoing nothing that could be a key.
pub fn check_pool_field(field: &str) -> Result<(), KeyError> {
    if check_key_id(field).is_ok()
        || (!field.is_empty() && field.len() <= 200 && !field.chars().any(char::is_control))
    {
        Ok(())
    } else {
        check_key_id(field)
    }
}

/// Checks that `key_id` has the form of a pool key id (12 lowercase hex digits).
pub fn check_key_id(key_id: &str) -> Result<(), KeyError> {
    if key_id.len() == 12
        && key_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        // Echo only what looks like a mistyped key id: a key pasted here must not come back.
        let shown = if key_id.len() <= 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            key_id.to_owned()
        } else {
            crate::secret::mask(key_id)
        };
        Err(KeyError::InvalidKeyId(shown))
    }
}

fn truncate_to_seconds(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at)
}

/// What a `v4:` value holds: the secret and its metadata.
struct Payload {
    key: ApiKey,
    at: Option<OffsetDateTime>,
    contributor: Option<u64>,
}

impl Payload {
    /// `at` unknown (a legacy value's) is written as 0, and read back as unknown.
    fn encode(
        secret: &str,
        at: Option<OffsetDateTime>,
        contributor: Option<u64>,
    ) -> secrecy::SecretString {
        secrecy::SecretString::from(format!(
            "{PAYLOAD_TAG};{};{};{secret}",
            at.map_or(0, OffsetDateTime::unix_timestamp),
            contributor.unwrap_or(0)
        ))
    }

    fn decode(text: &str) -> Self {
        let mut parts = text.splitn(4, ';');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(PAYLOAD_TAG), Some(at), Some(contributor), Some(secret)) => Self {
                key: ApiKey::new(secret),
                at: at
                    .parse()
                    .ok()
                    .filter(|s| *s != 0)
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
                contributor: contributor.parse().ok().filter(|id| *id != 0),
            },
            _ => Self::bare(text),
        }
    }

    fn bare(secret: &str) -> Self {
        Self {
            key: ApiKey::new(secret),
            at: None,
            contributor: None,
        }
    }
}

/// Why a stored value did not open (for the log line).
#[derive(Debug, thiserror::Error)]
enum OpenFailure {
    #[error(
        "it is in a legacy format (v2: or plaintext), and those are refused (STARGAZER_LEGACY_VALUES, or migrate has run)"
    )]
    LegacyRefused,
    #[error(transparent)]
    Open(#[from] crate::crypto::OpenError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed_and_checked() {
        assert_eq!(check_secret("  abc \n").unwrap(), "abc");
        assert!(matches!(check_secret(" \n\t"), Err(KeyError::EmptyKey)));
        assert!(matches!(
            check_secret("ab cd"),
            Err(KeyError::KeyHasWhitespace)
        ));
        assert!(matches!(
            check_secret("ab\0cd"),
            Err(KeyError::KeyHasControlCharacters)
        ));
        for format in [
            '\u{202e}',
            '\u{200b}',
            '\u{2066}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
        ] {
            assert!(
                matches!(
                    check_secret(&format!("sk-ab{format}cd")),
                    Err(KeyError::KeyHasFormatCharacters)
                ),
                "{format:?}"
            );
        }
        assert_eq!(check_secret("sk-ключ-鍵-é").unwrap(), "sk-ключ-鍵-é");
        assert!(matches!(
            check_secret(&"x".repeat(4_001)),
            Err(KeyError::KeyTooLong(4_001))
        ));
    }

    #[test]
    fn payloads_carry_time_and_contributor() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let text = Payload::encode("sk;with;semicolons", Some(at), Some(42));
        let payload = Payload::decode(text.expose_secret());
        assert_eq!(payload.key.expose(), "sk;with;semicolons");
        assert_eq!(payload.at, Some(at));
        assert_eq!(payload.contributor, Some(42));
    }

    #[test]
    fn key_ids_must_be_twelve_hex_digits() {
        assert!(check_key_id("0123456789ab").is_ok());
        assert!(check_key_id("0123456789AB").is_err());
        assert!(check_key_id("*").is_err());
    }
}
