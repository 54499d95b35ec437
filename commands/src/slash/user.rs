//! A user's own keys: set (through a modal), remove, list, and erase all.

// poise turns each command's doc comment into its Discord description and emits the function
// without it, so the generated functions carry no docs of their own.
#![allow(missing_docs)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;
use stargazer_keys::{KeyError, KeySource, KeyVault, Service, ServiceId};

use super::modal::{self, Input};
use super::{autocomplete, reply};
use crate::{CommandError, Context, HasKeyVault};

/// How long the erase confirmation waits for a button press.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The service named by `service`, or the sentence that says it is unknown (checked in memory,
/// so a modal can still be the first response).
pub(crate) fn known_service<'a>(vault: &'a KeyVault, service: &str) -> Result<&'a Service, String> {
    vault
        .catalogue()
        .lookup(&service.trim().to_lowercase())
        .map_err(|err| CommandError::from(KeyError::from(err)).to_string())
}

/// Save your own API key for a service; it works for you in every server and DM.
#[poise::command(slash_command, ephemeral)]
pub async fn set_user_api_key<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
) -> Result<(), E> {
    let poise::Context::Application(actx) = ctx else {
        return Ok(());
    };
    let vault = ctx.data().key_vault();
    let entry = match known_service(vault, &service) {
        Ok(entry) => entry,
        Err(why) => return reply::ephemeral(ctx, &why).await,
    };
    let (service, name) = (&entry.id, entry.display_name.as_str());
    let inputs = entry
        .form_fields()
        .into_iter()
        .map(|field| Input {
            label: field.label,
            placeholder: field.placeholder,
            required: field.required,
        })
        .collect();
    let title = format!("Your {name} key");
    let Some(submitted) = modal::ask(actx, &title, inputs, ctx.data().modal_timeout()).await?
    else {
        return Ok(());
    };
    let values: Vec<&str> = submitted.values.iter().map(|v| v.as_str()).collect();
    let saved = vault
        .set_user_key_from_form(ctx.author().id.get(), service, &values)
        .await;
    let text = match saved {
        Ok(info) => super::pool::with_note(
            format!(
                "Saved your {name} key ({}). It now works for you in every server and DM; remove it with `/remove_user_api_key service:{service}`.",
                info.masked.unwrap_or_default()
            ),
            info.check.note(name),
        ),
        Err(err) => {
            tracing::info!(%service, error = %err, "a key was refused");
            CommandError::from(err).to_string()
        }
    };
    modal::answer(ctx.serenity_context(), &submitted, &text).await?;
    Ok(())
}

/// Remove your own API key for a service.
#[poise::command(slash_command, ephemeral)]
pub async fn remove_user_api_key<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service whose key to remove"]
    #[autocomplete = "autocomplete::own_service"]
    service: String,
) -> Result<(), E> {
    let vault = ctx.data().key_vault();
    let service = service.trim().to_lowercase();
    let name = vault.catalogue().display_name(&service).to_owned();
    let removed = vault
        .remove_user_api_key(ctx.author().id.get(), &service)
        .await
        .map_err(CommandError::from)?;
    let text = if removed {
        format!("Removed your {name} key.")
    } else {
        format!("You had no {name} key saved, so nothing changed.")
    };
    reply::ephemeral(ctx, &text).await
}

/// Choose whether your calls may use shared keys when you have no key of your own.
#[poise::command(slash_command, ephemeral)]
pub async fn shared_keys<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "False: your calls use only your own key, never a shared one"]
    #[rename = "use"]
    allowed: bool,
    #[description = "Only for this service (default: every service)"]
    #[autocomplete = "autocomplete::service"]
    service: Option<String>,
) -> Result<(), E> {
    let vault = ctx.data().key_vault();
    let entry = match service.as_deref().map(|name| known_service(vault, name)) {
        None => None,
        Some(Ok(entry)) => Some(entry),
        Some(Err(why)) => return reply::ephemeral(ctx, &why).await,
    };
    vault
        .set_shared_keys(ctx.author().id.get(), entry.map(|e| &e.id), allowed)
        .await
        .map_err(CommandError::from)?;
    let text = match (entry, allowed) {
        (Some(entry), true) => format!(
            "Your {} calls may use shared keys again when you have no key of your own.",
            entry.display_name
        ),
        (Some(entry), false) => format!(
            "Shared keys are off for your {name} calls: they use only your own {name} key. Turn them back on with `/shared_keys use:True service:{id}`.",
            name = entry.display_name,
            id = entry.id
        ),
        (None, true) => {
            "Your calls may use shared keys again, for every service, when you have no key of your own.".to_owned()
        }
        (None, false) => {
            "Shared keys are off for all your calls: they use only your own keys. Turn them back on with `/shared_keys use:True`.".to_owned()
        }
    };
    reply::ephemeral(ctx, &text).await
}

/// Choose whether the bot DMs you when a key you shared in a pool stops working.
#[poise::command(slash_command, ephemeral)]
pub async fn pool_key_dms<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "False: no DM when a key you shared is revoked or out of credit"] enabled: bool,
) -> Result<(), E> {
    ctx.data()
        .key_vault()
        .set_bench_dms(ctx.author().id.get(), enabled)
        .await
        .map_err(CommandError::from)?;
    let text = if enabled {
        "You will get a DM when a key you shared in a pool is benched as revoked or out of credit."
    } else {
        "You will no longer get DMs about keys you shared. Turn them back on with `/pool_key_dms enabled:True`."
    };
    reply::ephemeral(ctx, text).await
}

fn shared_source_text(source: Option<KeySource>) -> &'static str {
    match source {
        Some(KeySource::ChannelPool) => "this channel's pool",
        Some(KeySource::GuildPool) => "this server's pool",
        Some(KeySource::GlobalPool) => "the bot's shared pool",
        Some(KeySource::Env) => "the bot's own key",
        Some(KeySource::User) | None => "none",
    }
}

/// List your saved API keys (masked), and the shared keys available in this channel.
#[poise::command(slash_command, ephemeral)]
pub async fn list_user_api_keys<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    let vault = ctx.data().key_vault();
    let keys = vault
        .list_user_api_keys(ctx.author().id.get())
        .await
        .map_err(CommandError::from)?;
    let mut text = String::new();
    if keys.is_empty() {
        text.push_str("You have no API keys saved. Add one with `/set_user_api_key`.\n");
    } else {
        text.push_str("Your API keys (only you can see this):\n");
        for key in &keys {
            let masked = key.masked.as_deref().map_or_else(
                || "unreadable: save it again".to_owned(),
                |m| format!("`{m}`"),
            );
            let _ = writeln!(
                text,
                "• **{}** (`{}`): {masked}, saved {}",
                key.display_name,
                key.service,
                reply::date(
                    &crate::text::Voice::english(ctx.data().key_vault()),
                    key.set_at
                )
            );
        }
    }
    let (channel, guild) = (ctx.channel_id().get(), ctx.guild_id().map(|id| id.get()));
    let lookups = vault.catalogue().iter().map(|service| {
        let vault = vault.clone();
        let id = service.id.clone();
        async move {
            let source = vault
                .get_user_api_key_in(None, &id, Some(channel), guild, true)
                .await
                .map(|r| r.source());
            (id, source)
        }
    });
    let shared: Vec<(ServiceId, Option<KeySource>)> = futures_util::future::join_all(lookups).await;
    let choice = vault
        .shared_key_choice(ctx.author().id.get())
        .await
        .map_err(CommandError::from)?;
    let available: Vec<String> = shared
        .iter()
        .filter(|(id, source)| source.is_some() && choice.allows(id))
        .map(|(id, source)| {
            format!(
                "{} ({})",
                vault.catalogue().display_name(id),
                shared_source_text(*source)
            )
        })
        .collect();
    let names = |ids: &[ServiceId]| {
        ids.iter()
            .map(|id| vault.catalogue().display_name(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if choice.off_for_all {
        let _ = write!(
            text,
            "\nYou turned shared keys off: your calls use only your own keys{}.",
            if choice.on.is_empty() {
                String::new()
            } else {
                format!(" (except {})", names(&choice.on))
            }
        );
    } else if !choice.off.is_empty() {
        let _ = write!(
            text,
            "\nYou turned shared keys off for {}: those calls use only your own key.",
            names(&choice.off)
        );
    }
    match vault.default_key_usage(ctx.author().id.get(), None).await {
        Ok(usage) if !usage.is_empty() => {
            text.push_str("\nYour shared-key uses today:");
            for tool in usage {
                let resets = tool.resets_in.map_or_else(String::new, |left| {
                    format!(", resets in {}", stargazer_keys::human_duration(left))
                });
                let _ = write!(
                    text,
                    "\n• `{}`: {} of {}{resets}",
                    tool.tool, tool.count, tool.limit
                );
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read a user's shared-key uses"),
    }
    match vault.pool_key_usage(ctx.author().id.get()).await {
        Ok(usage) if !usage.is_empty() => {
            text.push_str("\nYour uses today of pools with their own limit:");
            let here = ctx.guild_id().map(|id| id.get());
            for used in usage {
                let name = vault.catalogue().display_name(&used.service);
                let pool = match used.pool {
                    stargazer_keys::Pool::Global => format!("the bot's {name} pool"),
                    stargazer_keys::Pool::Guild(id) if Some(id) == here => {
                        format!("this server's {name} pool")
                    }
                    stargazer_keys::Pool::Guild(id) => format!("the {name} pool of server {id}"),
                    stargazer_keys::Pool::Channel(id) => format!("the {name} pool of <#{id}>"),
                };
                let limit = used
                    .limit
                    .map_or_else(|| "no pool limit now".to_owned(), |l| format!("of {l}"));
                let resets = used.resets_in.map_or_else(String::new, |left| {
                    format!(", resets in {}", stargazer_keys::human_duration(left))
                });
                let _ = write!(text, "\n• {pool}: {} {limit}{resets}", used.count);
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read a user's pool uses"),
    }
    if available.is_empty() {
        text.push_str("\nNo shared keys are available in this channel.");
    } else {
        let _ = write!(
            text,
            "\nShared keys you can use here without your own: {}. Shared keys are limited to {} uses per tool per day; your own keys have no limit.",
            available.join(", "),
            vault.config().default_daily_limit
        );
    }
    reply::ephemeral(ctx, &text).await
}

/// Erase every API key you saved, for good (asks you to confirm first).
#[poise::command(slash_command, ephemeral)]
pub async fn forget_my_api_keys<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    let confirm_id = format!("stargazer-keys:forget:{}", ctx.id());
    let cancel_id = format!("stargazer-keys:keep:{}", ctx.id());
    let buttons = vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(&confirm_id)
            .label("Erase all my keys")
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(&cancel_id)
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ])];
    // Listen before showing the buttons, so even an instant press is caught.
    let mut presses = std::pin::pin!(
        serenity::ComponentInteractionCollector::new(ctx.serenity_context())
            .custom_ids(vec![confirm_id.clone(), cancel_id.clone()])
            .author_id(ctx.author().id)
            .timeout(CONFIRM_TIMEOUT)
            .stream()
    );
    let handle = ctx
        .send(
            poise::CreateReply::default()
                .content("This erases every API key you saved, and the encryption key that protects them. It cannot be undone. Keys you added to shared pools stay in those pools.")
                .components(buttons)
                .ephemeral(true),
        )
        .await
        .map_err(CommandError::from)?;
    let press = futures_util::StreamExt::next(&mut presses).await;
    let Some(press) = press else {
        handle
            .edit(
                ctx,
                poise::CreateReply::default()
                    .content("No answer within a minute, so nothing was erased.")
                    .components(vec![]),
            )
            .await
            .map_err(CommandError::from)?;
        return Ok(());
    };
    let text = if press.data.custom_id == confirm_id {
        match ctx
            .data()
            .key_vault()
            .forget_user(ctx.author().id.get())
            .await
        {
            Ok(forgotten) => forgotten_sentence(&forgotten),
            Err(err) => CommandError::from(err).to_string(),
        }
    } else {
        "Cancelled; nothing was erased.".to_owned()
    };
    press
        .create_response(
            ctx.serenity_context(),
            serenity::CreateInteractionResponse::UpdateMessage(
                serenity::CreateInteractionResponseMessage::new()
                    .content(text)
                    .components(vec![]),
            ),
        )
        .await
        .map_err(CommandError::from)?;
    Ok(())
}

/// What `/forget_my_api_keys` did, in the user's words: how many keys, and whether a wrapped
/// copy of the encryption key is still in the database's log.
fn forgotten_sentence(forgotten: &stargazer_keys::Forgotten) -> String {
    let erased = match forgotten.keys {
        0 => "You had no keys saved; your encryption key is erased too.".to_owned(),
        1 => "Erased your API key and its encryption key. Nothing of it can be read any more."
            .to_owned(),
        n => format!(
            "Erased your {n} API keys and their encryption key. Nothing of them can be read any more."
        ),
    };
    match forgotten.checkpoint {
        stargazer_keys::Checkpoint::Complete => erased,
        stargazer_keys::Checkpoint::Blocked => format!(
            "{erased} One trace is left for now: the database still holds a copy of the encryption key, itself encrypted under the bot's master key, until it is cleared in the background."
        ),
    }
}
