//! Discord slash commands for stargazer-keys, built on poise: users bring their own API keys
//! through ephemeral modals, admins keep shared pools, and sibling command modules resolve keys
//! (and the shared-key quota) with one call through [`KeyContext`].
//!
//! Embedding in another poise bot takes one line for the commands and one for errors; the
//! host's data type only has to hand out the vault:
//!
//! ```no_run
//! use stargazer_keys::KeyVault;
//! use stargazer_keys_commands::HasKeyVault;
//!
//! struct Data { keys: KeyVault }
//! impl HasKeyVault for Data {
//!     fn key_vault(&self) -> &KeyVault { &self.keys }
//! }
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! let options = poise::FrameworkOptions::<Data, Error> {
//!     commands: stargazer_keys_commands::commands(),
//!     on_error: |err| Box::pin(stargazer_keys_commands::on_error(err)),
//!     ..Default::default()
//! };
//! ```
//!
//! To tell the people who share pool keys when one is benched as revoked or out of credit (a
//! DM each, which they can turn off with `/pool_key_dms`), call
//! [`spawn_contributor_dms`]`(vault, ctx.http.clone())` once in the framework's `setup`; the
//! production runner, [`bot::run`], does.

#![warn(missing_docs)]

pub mod bot;
mod context;
mod error;
mod localize;
pub mod logging;
pub mod notices;
mod slash;
#[cfg(feature = "testkit")]
pub mod testkit;
mod text;

use std::time::Duration;

use stargazer_keys::KeyVault;

pub use context::KeyContext;
pub use error::{CommandError, UserFacing, on_error};
pub use localize::localize_commands;
pub use notices::spawn_contributor_dms;
pub use slash::modal;
pub use slash::pool::{
    pool, pool_add, pool_channel, pool_channel_add, pool_channel_limit, pool_channel_list,
    pool_channel_log, pool_channel_remove, pool_channel_unbench, pool_limit, pool_list, pool_log,
    pool_remove, pool_server, pool_server_add, pool_server_limit, pool_server_list,
    pool_server_log, pool_server_remove, pool_server_unbench, pool_unbench,
};
// Defined in the core since the key-use flow moved there; re-exported for sibling modules.
pub use slash::user::{
    forget_my_api_keys, list_user_api_keys, pool_key_dms, remove_user_api_key, set_user_api_key,
    shared_keys,
};
pub use stargazer_keys::{KeyFailure, KeyUseError};

/// The poise context of these commands.
pub type Context<'a, U, E> = poise::Context<'a, U, E>;
/// The poise application context of these commands.
pub type ApplicationContext<'a, U, E> = poise::ApplicationContext<'a, U, E>;

/// How long a secret-entry modal waits for its submit by default.
pub const DEFAULT_MODAL_TIMEOUT: Duration = Duration::from_secs(300);

/// What the host bot's data must offer: the key vault (and, optionally, the modal timeout).
pub trait HasKeyVault: Send + Sync + 'static {
    /// The vault, opened once at start-up.
    fn key_vault(&self) -> &KeyVault;

    /// How long a secret-entry modal waits for its submit (default 5 minutes).
    fn modal_timeout(&self) -> Duration {
        DEFAULT_MODAL_TIMEOUT
    }
}

impl HasKeyVault for KeyVault {
    fn key_vault(&self) -> &KeyVault {
        self
    }
}

/// Every command of this crate, ready for `FrameworkOptions::commands`, described in English
/// and German (the shipped catalogues). With an operator's `STARGAZER_LOCALES_DIR`, use
/// [`commands_in`] with the vault's catalogues.
pub fn commands<U: HasKeyVault, E: From<CommandError> + UserFacing + 'static>()
-> Vec<poise::Command<U, E>> {
    commands_in(&stargazer_keys::i18n::Texts::builtin())
}

/// Every command of this crate, described in each language of `texts`
/// ([`KeyVault::texts`]).
pub fn commands_in<U: HasKeyVault, E: From<CommandError> + UserFacing + 'static>(
    texts: &stargazer_keys::i18n::Texts,
) -> Vec<poise::Command<U, E>> {
    let mut commands = vec![
        set_user_api_key(),
        remove_user_api_key(),
        list_user_api_keys(),
        forget_my_api_keys(),
        shared_keys(),
        pool_key_dms(),
        pool(),
    ];
    localize_commands(&mut commands, texts);
    commands
}
