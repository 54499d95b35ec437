//! Why a vault operation failed, as sentences a user or operator can act on.

use crate::catalogue::{CatalogueError, UnknownService};
use crate::config::ConfigError;
use crate::data_keys::DataKeyError;
use crate::ids::{InvalidKeyId, InvalidServiceId};
use crate::storage::StorageError;

use super::MAX_SECRET_LEN;

/// Why a vault operation failed. Every variant is a sentence a user or operator can act on;
/// none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The service is not in the catalogue.
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    /// The service name cannot be a service id.
    #[error(transparent)]
    InvalidService(#[from] InvalidServiceId),
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
    #[error(transparent)]
    InvalidKeyId(#[from] InvalidKeyId),
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
    /// A pool's daily limit above what the operator allows.
    #[error(
        "{limit} uses a day is above the most this bot allows a pool to set ({max}, STARGAZER_POOL_DAILY_LIMIT_MAX)"
    )]
    PoolLimitTooHigh {
        /// The limit asked for.
        limit: u32,
        /// The operator's maximum.
        max: u32,
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
        /// The pool.
        pool: super::Pool,
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
        /// Why it could not be confirmed.
        cause: Box<KeyError>,
    },
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
    /// The operator's catalogues (`STARGAZER_LOCALES_DIR`) could not be loaded.
    #[error(transparent)]
    Locales(#[from] crate::i18n::TextsError),
}

/// "Nothing was changed", unless the write did reach Redis and only its replication is in
/// doubt.
pub(super) fn storage_failed(err: &StorageError) -> String {
    match err {
        StorageError::NotReplicated { .. } => {
            format!("the change was made, but {err}; check it, and make it again if it is gone")
        }
        _ => format!("the key store is unavailable, so nothing was changed: {err}"),
    }
}

/// `singular` for 1, else `plural`.
pub(super) fn plural(n: usize, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 { singular } else { plural }
}
