//! Autocomplete for `service` and `key_id` options: at most 25 suggestions, and the command
//! validates the value again on use (the user can type anything).

use poise::serenity_prelude as serenity;
use stargazer_keys::MAX_SUGGESTIONS;
use stargazer_keys::Pool;

use crate::{Context, HasKeyVault};

/// Services of the catalogue matching what the user typed.
pub async fn service<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let choices = ctx
        .data()
        .key_vault()
        .catalogue()
        .suggest(partial)
        .into_iter()
        .map(|s| {
            serenity::AutocompleteChoice::new(
                format!("{} ({})", s.display_name, s.id),
                s.id.as_str(),
            )
        })
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// The services the user has a key for.
pub async fn own_service<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let vault = ctx.data().key_vault();
    let unreadable = crate::text::t(ctx, "user-suggest-unreadable", &[]);
    let needle = partial.trim().to_lowercase();
    let keys = vault
        .list_user_api_keys(ctx.author().id.get())
        .await
        .unwrap_or_default();
    let choices = keys
        .into_iter()
        .filter(|k| k.service.contains(&needle) || k.display_name.to_lowercase().contains(&needle))
        .take(MAX_SUGGESTIONS)
        .map(|k| {
            let masked = k.masked.unwrap_or_else(|| unreadable.clone());
            serenity::AutocompleteChoice::new(
                format!("{} ({masked})", k.display_name),
                k.service.as_str(),
            )
        })
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

async fn pool_key_ids<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let vault = ctx.data().key_vault();
    let unreadable = crate::text::t(ctx, "user-suggest-unreadable", &[]);
    let service = selected_service(ctx);
    // Bounded work on every keystroke: only the suggestions shown are opened.
    let keys = vault
        .pool_key_choices(pool, service.as_deref(), partial.trim(), MAX_SUGGESTIONS)
        .await
        .unwrap_or_default();
    let choices = keys
        .into_iter()
        .map(|k| {
            let masked = k.masked.unwrap_or_else(|| unreadable.clone());
            serenity::AutocompleteChoice::new(
                format!(
                    "{} {masked} ({})",
                    k.key_id,
                    vault.catalogue().display_name(&k.service)
                ),
                k.key_id.as_str(),
            )
        })
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// Key ids of the global pool (for bot admins only).
pub async fn global_key_id<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    if !super::checks::is_bot_admin(ctx) {
        return serenity::CreateAutocompleteResponse::new();
    }
    pool_key_ids(ctx, Pool::Global, partial).await
}

/// Key ids of this channel's pool.
pub async fn channel_key_id<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    pool_key_ids(ctx, Pool::Channel(ctx.channel_id().get()), partial).await
}

/// Key ids of this server's pool.
pub async fn server_key_id<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    match ctx.guild_id() {
        Some(guild) => pool_key_ids(ctx, Pool::Guild(guild.get()), partial).await,
        None => serenity::CreateAutocompleteResponse::new(),
    }
}

/// The `service` option already filled in, during an autocomplete request.
fn selected_service<U, E>(ctx: Context<'_, U, E>) -> Option<String> {
    let poise::Context::Application(actx) = ctx else {
        return None;
    };
    actx.args
        .iter()
        .find_map(|opt| match (&opt.name, &opt.value) {
            (&"service", serenity::ResolvedValue::String(value)) => Some((*value).to_owned()),
            _ => None,
        })
}
