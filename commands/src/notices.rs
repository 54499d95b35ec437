//! Direct messages to the people who share keys: when a key someone added to a pool is benched
//! for a long reason (refused as revoked, or out of credit), the bot tells them, unless they
//! turned it off with `/pool_key_dms enabled:False`. One try per bench: a DM that fails (the
//! user closed their DMs, or shares no server with the bot) is logged and dropped, never
//! retried. The vault announces each bench once in the whole deployment, in the process that
//! benched the key.

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use stargazer_keys::{BenchNotice, KeyVault, Pool};
use tokio::sync::broadcast::error::RecvError;

use crate::text::Voice;

/// Starts telling contributors about their benched keys, with `http` (the bot's client). The
/// production runner ([`crate::bot::run`]) calls it once connected; a host bot with its own
/// framework calls it in its `setup`.
pub fn spawn_contributor_dms(
    vault: KeyVault,
    http: Arc<serenity::Http>,
) -> tokio::task::JoinHandle<()> {
    let mut notices = vault.bench_notices();
    tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(notice) => tell_contributor(&vault, &http, &notice).await,
                Err(RecvError::Lagged(missed)) => tracing::warn!(
                    missed,
                    "fell behind the benched-key notices; those contributors are not told"
                ),
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// DMs the contributor of the benched key, once, if they have not turned it off.
async fn tell_contributor(vault: &KeyVault, http: &serenity::Http, notice: &BenchNotice) {
    let key_id = notice.key_id.as_str();
    let contributor = match vault
        .pool_key_contributor(notice.pool, &notice.service, key_id)
        .await
    {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::debug!(key_id, "a benched key has no contributor to tell");
            return;
        }
        Err(err) => {
            tracing::warn!(key_id, error = %err, "cannot read who shared a benched key; nobody is told");
            return;
        }
    };
    match vault.bench_dms_enabled(contributor).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(
                user = contributor,
                key_id,
                "a contributor turned benched-key DMs off"
            );
            return;
        }
        Err(err) => {
            // Their choice cannot be read: a message they may have turned off is not sent.
            tracing::warn!(user = contributor, key_id, error = %err, "cannot read a contributor's DM choice; not sending");
            return;
        }
    }
    let text = bench_message(vault, notice);
    let sent = async {
        let channel = serenity::UserId::new(contributor)
            .create_dm_channel(http)
            .await?;
        channel.id.say(http, text).await
    }
    .await;
    match sent {
        Ok(_) => tracing::info!(
            user = contributor,
            key_id,
            "told a contributor that their pool key was benched"
        ),
        Err(err) => tracing::warn!(
            user = contributor,
            key_id,
            error = %err,
            "could not DM a contributor that their pool key was benched; not retrying"
        ),
    }
}

/// What the contributor reads: which key (by id, never the key), where, why, until when, what
/// to do, and how to stop these messages. In English: there is no interaction to say which
/// language the contributor reads.
pub(crate) fn bench_message(vault: &KeyVault, notice: &BenchNotice) -> String {
    let (pool, channel, server) = match notice.pool {
        Pool::Global => ("global", String::new(), String::new()),
        Pool::Channel(id) => ("channel", id.to_string(), String::new()),
        Pool::Guild(id) => ("server", String::new(), id.to_string()),
    };
    Voice::english(vault).t(
        "notice-bench",
        &[
            (
                "name",
                vault.catalogue().display_name(&notice.service).into(),
            ),
            ("pool", pool.into()),
            ("channel", channel.into()),
            ("server", server.into()),
            ("key_id", notice.key_id.as_str().into()),
            ("until", notice.until.unix_timestamp().to_string().into()),
            ("reason", notice.reason.as_str().into()),
            ("service", notice.service.as_str().into()),
        ],
    )
}
