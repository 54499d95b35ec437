//! A user's own keys: set (through a modal), remove, list, and erase all.

// poise turns each command's doc comment into its Discord description and emits the function
// without it, so the generated functions carry no docs of their own.
#![allow(missing_docs)]

use poise::serenity_prelude as serenity;
use stargazer_keys::{KeyError, KeyForm, KeySource, KeyVault, Pool, Service, ServiceId};

use super::modal::{self, Input};
use super::{autocomplete, reply};
use crate::text::Voice;
use crate::{CommandError, Context, HasKeyVault};

/// How long the erase confirmation waits for a button press.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The service named by `service`, or the sentence in `voice`'s language that says it is
/// unknown (checked in memory, so a modal can still be the first response).
pub(crate) fn known_service_in<'a>(
    vault: &'a KeyVault,
    voice: &Voice,
    service: &str,
) -> Result<&'a Service, String> {
    vault
        .catalogue()
        .lookup(&service.trim().to_lowercase())
        .map_err(|err| KeyError::from(err).localized(voice.texts(), voice.locale()))
}

/// The inputs of `entry`'s key-entry form, labelled in `voice`'s language.
fn form_inputs(voice: &Voice, entry: &Service) -> Vec<Input> {
    let name = entry.display_name.as_str();
    entry
        .form_fields()
        .into_iter()
        .enumerate()
        .map(|(i, field)| {
            let (label, placeholder) = match (entry.form, i) {
                (KeyForm::TokenAndBaseUrl, 0) => ("user-form-token", "user-form-secret-hint"),
                (KeyForm::TokenAndBaseUrl, _) => ("user-form-base-url", "user-form-base-url-hint"),
                (KeyForm::ApiKey, _) => ("user-form-api-key", "user-form-secret-hint"),
            };
            Input {
                label: voice.t(label, &[("name", name.into())]),
                placeholder: voice.t(placeholder, &[]),
                required: field.required,
            }
        })
        .collect()
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
    let voice = Voice::of(ctx);
    let entry = match known_service_in(vault, &voice, &service) {
        Ok(entry) => entry,
        Err(why) => return reply::ephemeral(ctx, &why).await,
    };
    let (service, name) = (&entry.id, entry.display_name.as_str());
    let inputs = form_inputs(&voice, entry);
    let title = voice.t("user-form-title", &[("name", name.into())]);
    let Some(submitted) = modal::ask(actx, &title, inputs, ctx.data().modal_timeout()).await?
    else {
        return Ok(());
    };
    // The user may have switched languages while the form was open.
    let voice = Voice::of_submit(vault, &submitted.interaction);
    let values: Vec<&str> = submitted.values.iter().map(|v| v.as_str()).collect();
    let saved = vault
        .set_user_key_from_form(ctx.author().id.get(), service, &values)
        .await;
    let text = match saved {
        Ok(info) => super::pool::with_note(
            voice.t(
                "user-saved",
                &[
                    ("name", name.into()),
                    ("masked", info.masked.unwrap_or_default().into()),
                    ("service", service.as_str().into()),
                ],
            ),
            super::pool::check_note(&voice, &info.check, name),
        ),
        Err(err) => {
            tracing::info!(%service, error = %err, "a key was refused");
            err.localized(voice.texts(), voice.locale())
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
    let id = if removed {
        "user-removed"
    } else {
        "user-remove-none"
    };
    reply::ephemeral(ctx, &crate::text::t(ctx, id, &[("name", name.into())])).await
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
    let voice = Voice::of(ctx);
    let entry = match service
        .as_deref()
        .map(|name| known_service_in(vault, &voice, name))
    {
        None => None,
        Some(Ok(entry)) => Some(entry),
        Some(Err(why)) => return reply::ephemeral(ctx, &why).await,
    };
    vault
        .set_shared_keys(ctx.author().id.get(), entry.map(|e| &e.id), allowed)
        .await
        .map_err(CommandError::from)?;
    let text = match (entry, allowed) {
        (Some(entry), allowed) => voice.t(
            if allowed {
                "user-shared-on-service"
            } else {
                "user-shared-off-service"
            },
            &[
                ("name", entry.display_name.as_str().into()),
                ("id", entry.id.as_str().into()),
            ],
        ),
        (None, true) => voice.t("user-shared-on-all", &[]),
        (None, false) => voice.t("user-shared-off-all", &[]),
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
    let id = if enabled {
        "user-dms-on"
    } else {
        "user-dms-off"
    };
    reply::ephemeral(ctx, &crate::text::t(ctx, id, &[])).await
}

/// Where a shared key comes from, as the `$source` of `user-list-shared-item`.
fn shared_source_tag(source: Option<KeySource>) -> &'static str {
    match source {
        Some(KeySource::ChannelPool) => "channel",
        Some(KeySource::GuildPool) => "server",
        Some(KeySource::GlobalPool) => "global",
        Some(KeySource::Env) => "env",
        Some(KeySource::User) | None => "none",
    }
}

/// List your saved API keys (masked), and the shared keys available in this channel.
#[poise::command(slash_command, ephemeral)]
pub async fn list_user_api_keys<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    let vault = ctx.data().key_vault();
    let voice = Voice::of(ctx);
    let keys = vault
        .list_user_api_keys(ctx.author().id.get())
        .await
        .map_err(CommandError::from)?;
    let mut text = String::new();
    if keys.is_empty() {
        text.push_str(&voice.t("user-list-none", &[]));
        text.push('\n');
    } else {
        text.push_str(&voice.t("user-list-header", &[]));
        text.push('\n');
        for key in &keys {
            let mut args = vec![
                ("name", key.display_name.as_str().into()),
                ("service", key.service.to_string().into()),
                ("date", reply::date(&voice, key.set_at).into()),
            ];
            let id = match key.masked.as_deref() {
                Some(masked) => {
                    args.push(("masked", masked.into()));
                    "user-list-key"
                }
                None => "user-list-key-unreadable",
            };
            text.push_str(&voice.t(id, &args));
            text.push('\n');
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
            voice.t(
                "user-list-shared-item",
                &[
                    ("name", vault.catalogue().display_name(id).into()),
                    ("source", shared_source_tag(*source).into()),
                ],
            )
        })
        .collect();
    let names = |ids: &[ServiceId]| {
        ids.iter()
            .map(|id| vault.catalogue().display_name(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = |sentence: String| {
        text.push('\n');
        text.push_str(&sentence);
    };
    if choice.off_for_all {
        line(if choice.on.is_empty() {
            voice.t("user-list-off-all", &[])
        } else {
            voice.t(
                "user-list-off-all-except",
                &[("services", names(&choice.on).into())],
            )
        });
    } else if !choice.off.is_empty() {
        line(voice.t(
            "user-list-off-some",
            &[("services", names(&choice.off).into())],
        ));
    }
    let duration = |left| stargazer_keys::duration_text(voice.texts(), voice.locale(), left);
    match vault.default_key_usage(ctx.author().id.get(), None).await {
        Ok(usage) if !usage.is_empty() => {
            line(voice.t("user-list-uses-header", &[]));
            for tool in usage {
                let mut args = vec![
                    ("tool", tool.tool.to_string().into()),
                    ("count", tool.count.into()),
                    ("limit", tool.limit.into()),
                ];
                let id = match tool.resets_in {
                    Some(left) => {
                        args.push(("duration", duration(left).into()));
                        "user-list-use-resets"
                    }
                    None => "user-list-use",
                };
                line(voice.t(id, &args));
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read a user's shared-key uses"),
    }
    match vault.pool_key_usage(ctx.author().id.get()).await {
        Ok(usage) if !usage.is_empty() => {
            line(voice.t("user-list-pool-uses-header", &[]));
            let here = ctx.guild_id().map(|id| id.get());
            for used in usage {
                let (kind, id) = match used.pool {
                    Pool::Global => ("global", String::new()),
                    Pool::Guild(id) if Some(id) == here => ("here", String::new()),
                    Pool::Guild(id) => ("server", id.to_string()),
                    Pool::Channel(id) => ("channel", id.to_string()),
                };
                let pool = voice.t(
                    "user-list-pool",
                    &[
                        ("kind", kind.into()),
                        ("name", vault.catalogue().display_name(&used.service).into()),
                        ("id", id.into()),
                    ],
                );
                let mut args = vec![("pool", pool.into()), ("count", used.count.into())];
                if let Some(limit) = used.limit {
                    args.push(("limit", limit.into()));
                }
                if let Some(left) = used.resets_in {
                    args.push(("duration", duration(left).into()));
                }
                let id = match (used.limit.is_some(), used.resets_in.is_some()) {
                    (true, false) => "user-list-pool-use",
                    (true, true) => "user-list-pool-use-resets",
                    (false, false) => "user-list-pool-use-unlimited",
                    (false, true) => "user-list-pool-use-unlimited-resets",
                };
                line(voice.t(id, &args));
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read a user's pool uses"),
    }
    if available.is_empty() {
        line(voice.t("user-list-no-shared", &[]));
    } else {
        line(voice.t(
            "user-list-shared",
            &[
                ("services", available.join(", ").into()),
                ("limit", vault.config().default_daily_limit.into()),
            ],
        ));
    }
    reply::ephemeral(ctx, &text).await
}

/// Erase every API key you saved, for good (asks you to confirm first).
#[poise::command(slash_command, ephemeral)]
pub async fn forget_my_api_keys<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    let voice = Voice::of(ctx);
    let confirm_id = format!("stargazer-keys:forget:{}", ctx.id());
    let cancel_id = format!("stargazer-keys:keep:{}", ctx.id());
    let buttons = vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(&confirm_id)
            .label(voice.t("user-forget-confirm-button", &[]))
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(&cancel_id)
            .label(voice.t("user-forget-cancel-button", &[]))
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
                .content(voice.t("user-forget-prompt", &[]))
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
                    .content(voice.t("user-forget-timeout", &[]))
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
            Ok(forgotten) => forgotten_sentence(&voice, &forgotten),
            Err(err) => err.localized(voice.texts(), voice.locale()),
        }
    } else {
        voice.t("user-forget-cancelled", &[])
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
fn forgotten_sentence(voice: &Voice, forgotten: &stargazer_keys::Forgotten) -> String {
    let erased = voice.t("user-forget-done", &[("count", forgotten.keys.into())]);
    match forgotten.checkpoint {
        stargazer_keys::Checkpoint::Complete => erased,
        stargazer_keys::Checkpoint::Blocked => {
            format!("{erased} {}", voice.t("user-forget-trace", &[]))
        }
    }
}
