//! stargazer-keys: bring-your-own and pooled third-party API keys for Discord bots.
//!
//! Users keep their own keys (they follow them across channels and servers); admins keep shared
//! pools, global, per server or per channel. Secrets are sealed with AES-256-GCM under per-owner data keys
//! that live in SQLite (or PostgreSQL), wrapped by a master key; sealed values live in Redis
//! under the layout of the original Python bot (or in the same SQLite file when there is no
//! Redis).
//!
//! Open one [`KeyVault`] from the settings and share it. The call a tool makes is
//! [`KeyVault::with_api_key`]: it resolves the caller's key (their own, then the channel's
//! pool, the server's pool, the global pool, the operator's environment; only their own when
//! they turned shared keys off), holds a shared key to its daily limit,
//! runs the call, and counts the use only when the call succeeded.
//!
//! ```no_run
//! use stargazer_keys::{Caller, Config, KeyVault};
//!
//! # async fn search(key: &str, query: &str) -> Result<String, std::io::Error> { Ok(String::new()) }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let vault = KeyVault::open(Config::from_env()?).await?;
//! let caller = Caller::new(42, Some(7), Some(1));
//! let answer = vault
//!     .with_api_key(&caller, "brave", "web_search", |resolved| async move {
//!         search(resolved.key.expose(), "rust").await
//!     })
//!     .await;
//! match answer {
//!     Ok(text) => println!("{text}"),
//!     // No key, the daily limit, or the call's own error: each a sentence for the user.
//!     Err(why) => println!("{why}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The items are re-exported here; the modules [`config`] (settings and the master-key file),
//! [`db`] (the SQLite file) and [`storage`] (the backends, for a custom one) are public as
//! namespaces, and `testkit` (feature `testkit`) holds the test fixtures. This crate knows
//! nothing of Discord: `stargazer-keys-commands` builds the slash commands and the operator
//! binary on it.

#![warn(missing_docs)]

mod catalogue;
pub mod config;
mod crypto;
mod data_keys;
pub mod db;
mod gitea;
mod health;
pub mod i18n;
mod ids;
mod key_cache;
mod key_check;
mod key_store;
mod messages;
mod metrics;
mod pg_keys;
mod pool_log;
mod quota;
mod secret;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
mod vault;

// The vault and what its calls take and return.
pub use vault::{
    BenchNotice, Caller, Forgotten, KeyError, KeyFailure, KeyOrigin, KeySource, KeyUseError,
    KeyVault, LegacyHash, MAX_SECRET_LEN, MigrationReport, OpenVaultError, Pool, PoolAdd,
    PoolKeyChoice, PoolKeyInfo, PoolKeyRef, PoolUsage, RekeyError, RekeyFailure, RekeyReport,
    ResolvedKey, SharedKeyChoice, UserKeyInfo, check_secret,
};
// Names checked where they enter.
pub use ids::{
    IntoServiceId, IntoToolName, InvalidKeyId, InvalidServiceId, InvalidToolName, KeyId, PoolField,
    ServiceId, ToolName,
};
// The services that take keys.
pub use catalogue::{
    Catalogue, CatalogueError, FormField, KeyCheckSpec, KeyForm, MAX_SUGGESTIONS, Service,
    UnknownService,
};
pub use key_check::KeyCheck;
// Settings.
pub use config::{Config, ConfigError, QuotaWindow};
// The shared-key quota and pool key health.
pub use health::{Bench, BenchReason, KeyOutcome, KeyUsage, parse_retry_after};
pub use quota::{
    BYPASS_RATELIMIT_BIT, LimitCheck, LimitReached, QuotaPermit, ToolUsage, UsageError,
};
// What users read.
pub use messages::{
    default_key_limit_error, default_key_limit_text, duration_text, human_duration,
    missing_api_key_error, pool_limit_error,
};
pub use secret::{ApiKey, escaped, mask};
// Gitea credentials.
pub use gitea::{BaseUrlError, GITEA_SERVICE, GiteaCredentials, GiteaPolicy, GiteaSource};
// Master key and data keys.
pub use crypto::{KekId, Keyring, MasterKey, OpenError};
pub use data_keys::{
    Checkpoint, DataKeyError, DataKeyStore, Erasure, KekUsage, RekeyStage, RotationReport,
};
pub use key_store::KeyStore;
pub use pg_keys::{CopyReport, PgDataKeyStore, PgError};
pub use pool_log::{POOL_LOG_MAX, PoolAction, PoolLogEntry};
