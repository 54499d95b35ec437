//! stargazer-keys: bring-your-own and pooled third-party API keys for Discord bots.
//!
//! Users keep their own keys (they follow them across channels and servers); admins keep shared
//! pools, global or per channel. Secrets are sealed with AES-256-GCM under per-owner data keys
//! that live in SQLite, wrapped by a master key; sealed values live in Redis under the layout of
//! the original Python bot (or in the same SQLite file when there is no Redis).
//!
//! This crate knows nothing of Discord: `stargazer-keys-commands` builds the slash commands and
//! the operator binary on it.

#![warn(missing_docs)]

pub mod catalogue;
pub mod config;
pub mod crypto;
pub mod data_keys;
pub mod db;
pub mod gitea;
pub mod health;
pub mod ids;
mod key_cache;
pub mod key_check;
pub mod key_store;
pub mod messages;
mod metrics;
pub mod pg_keys;
pub mod quota;
pub mod secret;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod vault;

pub use catalogue::{Catalogue, FormField, KeyCheckSpec, KeyForm, Service, UnknownService};
pub use config::{Config, ConfigError, QuotaWindow};
pub use crypto::{KekId, Keyring, MasterKey, OpenError};
pub use data_keys::{Checkpoint, DataKeyError, DataKeyStore, Erasure, RotationReport};
pub use health::{Bench, BenchReason, KeyOutcome};
pub use ids::{
    IntoServiceId, IntoToolName, InvalidKeyId, InvalidServiceId, InvalidToolName, KeyId, PoolField,
    ServiceId, ToolName,
};
pub use key_check::KeyCheck;
pub use key_store::KeyStore;
pub use messages::{default_key_limit_error, missing_api_key_error};
pub use quota::{LimitCheck, LimitReached, QuotaPermit};
pub use secret::ApiKey;
pub use vault::{
    Caller, Forgotten, KeyError, KeyFailure, KeyOrigin, KeySource, KeyUseError, KeyVault, Pool,
    PoolKeyRef, RekeyError, RekeyReport, ResolvedKey,
};
