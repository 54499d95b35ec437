//! `stargazer-keys bot`: runs the Discord bot until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use stargazer_keys::{Config, KeyVault};
use stargazer_keys_commands::bot::{self, BotSettings};

use super::Error;

/// Runs the bot with the settings of `config`.
pub async fn run(mut config: Config) -> Result<ExitCode, Error> {
    // First: a SIGTERM while the key store opens stops the bot cleanly once it runs.
    let shutdown = bot::shutdown_signal();
    let settings = BotSettings::from_config(&config)?;
    config.create_default_data_dir()?;
    if config.master_key.is_none() {
        // First start without a configured key: make data/master.key (0600), warn once.
        config.master_key = Some(config.keyring_creating_default()?.current().clone());
    }
    let vault = KeyVault::open(config).await?;
    if let Err(err) = vault.ping().await {
        tracing::warn!(error = %err, "the key store does not answer yet; keys resolve from the environment until it does");
    } else {
        match vault.server_facts().await {
            Ok(facts) => {
                if let Some(old) = facts.iter().find(|node| !node.version_ok()) {
                    return Err(Error::RedisTooOld(old.too_old()));
                }
                for risk in facts.iter().flat_map(|node| node.risks()) {
                    tracing::warn!("{risk}");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read what the Redis servers say of themselves (INFO)")
            }
        }
    }
    bot::run(settings, vault, Vec::new(), shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
