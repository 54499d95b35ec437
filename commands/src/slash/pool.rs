//! Shared key pools: `/pool add|remove|list` for the whole bot (bot admins),
//! `/pool channel add|remove|list` for one channel (Manage Channels there, or bot admins) and
//! `/pool server add|remove|list` for one server (Manage Server there, or bot admins); each
//! with `unbench`, `log` and `limit` (the pool's own daily limit for each member).
//! The checks sit on the leaves: a check on `/pool` would also gate `/pool channel`.

// poise turns each command's doc comment into its Discord description and emits the function
// without it, so the generated functions carry no docs of their own.
#![allow(missing_docs)]

use std::fmt::Write as _;

use stargazer_keys::{BenchReason, KeyCheck, Pool, PoolAction};

use super::modal::{self, Input};
use super::{autocomplete, checks, reply};
use crate::text::Voice;
use crate::{CommandError, Context, HasKeyVault};

/// The pool as the catalogue's `$pool` selector names it: `global`, `channel` or `server`.
fn pool_kind(pool: Pool) -> &'static str {
    match pool {
        Pool::Global => "global",
        Pool::Channel(_) => "channel",
        Pool::Guild(_) => "server",
    }
}

/// Why a key was benched, as listings and the log say it.
fn bench_reason(voice: &Voice, reason: BenchReason) -> String {
    let id = match reason {
        BenchReason::RateLimited => "pool-bench-rate-limited",
        BenchReason::QuotaExhausted => "pool-bench-quota-exhausted",
        BenchReason::Unauthorized => "pool-bench-unauthorized",
    };
    voice.t(id, &[])
}

/// What checking a new key with its service found, when there is something to say.
pub(crate) fn check_note(voice: &Voice, check: &KeyCheck, name: &str) -> Option<String> {
    match check {
        KeyCheck::NotChecked => None,
        KeyCheck::Valid => Some(voice.t("pool-key-works", &[("name", name.into())])),
        KeyCheck::Unverified(why) => Some(voice.t(
            "pool-key-unchecked",
            &[("name", name.into()), ("detail", why.into())],
        )),
    }
}

/// Shared API keys that others can use (with a daily limit).
#[poise::command(
    slash_command,
    subcommands(
        "pool_add::<U, E>",
        "pool_remove::<U, E>",
        "pool_list::<U, E>",
        "pool_unbench::<U, E>",
        "pool_log::<U, E>",
        "pool_limit::<U, E>",
        "pool_channel::<U, E>",
        "pool_server::<U, E>"
    )
)]
pub async fn pool<U: HasKeyVault, E: From<CommandError>>(_ctx: Context<'_, U, E>) -> Result<(), E> {
    Ok(())
}

/// Add a key to the bot's global pool (bot admins).
#[poise::command(
    slash_command,
    rename = "add",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_add<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
) -> Result<(), E> {
    add(ctx, Pool::Global, &service).await
}

/// Remove a key from the bot's global pool (bot admins).
#[poise::command(
    slash_command,
    rename = "remove",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_remove<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::global_key_id"]
    key_id: String,
) -> Result<(), E> {
    remove(ctx, Pool::Global, &service, &key_id).await
}

/// List the keys of the bot's global pool, masked (bot admins).
#[poise::command(
    slash_command,
    rename = "list",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_list<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "Only this service"]
    #[autocomplete = "autocomplete::service"]
    service: Option<String>,
) -> Result<(), E> {
    list(ctx, Pool::Global, service.as_deref()).await
}

/// This channel's shared keys (members with Manage Channels).
#[poise::command(
    slash_command,
    rename = "channel",
    subcommands(
        "pool_channel_add::<U, E>",
        "pool_channel_remove::<U, E>",
        "pool_channel_list::<U, E>",
        "pool_channel_unbench::<U, E>",
        "pool_channel_log::<U, E>",
        "pool_channel_limit::<U, E>"
    )
)]
pub async fn pool_channel<U: HasKeyVault, E: From<CommandError>>(
    _ctx: Context<'_, U, E>,
) -> Result<(), E> {
    Ok(())
}

/// Add a key to this channel's pool (Manage Channels).
#[poise::command(
    slash_command,
    rename = "add",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_add<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
) -> Result<(), E> {
    add(ctx, Pool::Channel(ctx.channel_id().get()), &service).await
}

/// Remove a key from this channel's pool (Manage Channels).
#[poise::command(
    slash_command,
    rename = "remove",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_remove<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::channel_key_id"]
    key_id: String,
) -> Result<(), E> {
    remove(
        ctx,
        Pool::Channel(ctx.channel_id().get()),
        &service,
        &key_id,
    )
    .await
}

/// List the keys of this channel's pool, masked (Manage Channels).
#[poise::command(
    slash_command,
    rename = "list",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_list<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "Only this service"]
    #[autocomplete = "autocomplete::service"]
    service: Option<String>,
) -> Result<(), E> {
    list(
        ctx,
        Pool::Channel(ctx.channel_id().get()),
        service.as_deref(),
    )
    .await
}

/// Shared API keys of this server (Manage Server).
#[poise::command(
    slash_command,
    rename = "server",
    subcommands(
        "pool_server_add::<U, E>",
        "pool_server_remove::<U, E>",
        "pool_server_list::<U, E>",
        "pool_server_unbench::<U, E>",
        "pool_server_log::<U, E>",
        "pool_server_limit::<U, E>"
    )
)]
pub async fn pool_server<U: HasKeyVault, E: From<CommandError>>(
    _ctx: Context<'_, U, E>,
) -> Result<(), E> {
    Ok(())
}

/// This server's pool, for a command its check let through (which refuses DMs).
fn server_pool<U, E>(ctx: Context<'_, U, E>) -> Option<Pool> {
    ctx.guild_id().map(|guild| Pool::Guild(guild.get()))
}

/// Add a key to this server's pool (Manage Server).
#[poise::command(
    slash_command,
    rename = "add",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_add<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => add(ctx, pool, &service).await,
        None => Ok(()),
    }
}

/// Remove a key from this server's pool (Manage Server).
#[poise::command(
    slash_command,
    rename = "remove",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_remove<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::server_key_id"]
    key_id: String,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => remove(ctx, pool, &service, &key_id).await,
        None => Ok(()),
    }
}

/// List the keys of this server's pool, masked (Manage Server).
#[poise::command(
    slash_command,
    rename = "list",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_list<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "Only this service"]
    #[autocomplete = "autocomplete::service"]
    service: Option<String>,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => list(ctx, pool, service.as_deref()).await,
        None => Ok(()),
    }
}

/// Put a benched key of the bot's global pool back in use (bot admins).
#[poise::command(
    slash_command,
    rename = "unbench",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_unbench<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::global_key_id"]
    key_id: String,
) -> Result<(), E> {
    unbench(ctx, Pool::Global, &service, &key_id).await
}

/// Put a benched key of this channel's pool back in use (Manage Channels).
#[poise::command(
    slash_command,
    rename = "unbench",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_unbench<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::channel_key_id"]
    key_id: String,
) -> Result<(), E> {
    unbench(
        ctx,
        Pool::Channel(ctx.channel_id().get()),
        &service,
        &key_id,
    )
    .await
}

/// Put a benched key of this server's pool back in use (Manage Server).
#[poise::command(
    slash_command,
    rename = "unbench",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_unbench<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service the key is for"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "The key id, as the pool list shows it"]
    #[autocomplete = "autocomplete::server_key_id"]
    key_id: String,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => unbench(ctx, pool, &service, &key_id).await,
        None => Ok(()),
    }
}

/// The log of the bot's global pool: adds, removes, benches (bot admins).
#[poise::command(
    slash_command,
    rename = "log",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_log<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    log(ctx, Pool::Global).await
}

/// The log of this channel's pool: adds, removes, benches (Manage Channels).
#[poise::command(
    slash_command,
    rename = "log",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_log<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    log(ctx, Pool::Channel(ctx.channel_id().get())).await
}

/// The log of this server's pool: adds, removes, benches (Manage Server).
#[poise::command(
    slash_command,
    rename = "log",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_log<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => log(ctx, pool).await,
        None => Ok(()),
    }
}

/// Set how many times a day each member may use the global pool's keys (bot admins).
#[poise::command(
    slash_command,
    rename = "limit",
    check = "checks::global_pool_manager",
    ephemeral
)]
pub async fn pool_limit<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service of the pool's keys"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "Uses a day for each member; leave out to go back to the bot's limits"]
    uses: Option<u32>,
) -> Result<(), E> {
    set_limit(ctx, Pool::Global, &service, uses).await
}

/// Set how many times a day each member may use this channel's pool (Manage Channels).
#[poise::command(
    slash_command,
    rename = "limit",
    check = "checks::channel_pool_manager",
    ephemeral
)]
pub async fn pool_channel_limit<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service of the pool's keys"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "Uses a day for each member; leave out to go back to the bot's limits"]
    uses: Option<u32>,
) -> Result<(), E> {
    set_limit(ctx, Pool::Channel(ctx.channel_id().get()), &service, uses).await
}

/// Set how many times a day each member may use this server's pool (Manage Server).
#[poise::command(
    slash_command,
    rename = "limit",
    check = "checks::guild_pool_manager",
    ephemeral
)]
pub async fn pool_server_limit<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "The service of the pool's keys"]
    #[autocomplete = "autocomplete::service"]
    service: String,
    #[description = "Uses a day for each member; leave out to go back to the bot's limits"]
    uses: Option<u32>,
) -> Result<(), E> {
    match server_pool(ctx) {
        Some(pool) => set_limit(ctx, pool, &service, uses).await,
        None => Ok(()),
    }
}

/// Sets or clears the pool's own daily limit for `service`, and says what applies now.
async fn set_limit<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: &str,
    uses: Option<u32>,
) -> Result<(), E> {
    let voice = Voice::of(ctx);
    let vault = ctx.data().key_vault();
    let entry = match super::user::known_service_in(vault, &voice, service) {
        Ok(entry) => entry,
        Err(why) => return reply::ephemeral(ctx, &why).await,
    };
    let name = entry.display_name.as_str();
    let kind = pool_kind(pool);
    let text = match vault.set_pool_daily_limit(pool, &entry.id, uses).await {
        Ok(()) => match uses {
            Some(0) => voice.t(
                "pool-limit-set-zero",
                &[("name", name.into()), ("pool", kind.into())],
            ),
            Some(uses) => voice.t(
                "pool-limit-set",
                &[
                    ("name", name.into()),
                    ("pool", kind.into()),
                    ("uses", uses.into()),
                ],
            ),
            None => voice.t(
                "pool-limit-cleared",
                &[
                    ("name", name.into()),
                    ("pool", kind.into()),
                    ("default", vault.config().default_daily_limit.into()),
                ],
            ),
        },
        Err(err) => voice.t(
            "pool-limit-not-changed",
            &[(
                "reason",
                err.localized(voice.texts(), voice.locale()).into(),
            )],
        ),
    };
    reply::ephemeral(ctx, &text).await
}

/// How many entries a `log` reply shows.
const LOG_SHOWN: usize = 25;

async fn log<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
) -> Result<(), E> {
    let voice = Voice::of(ctx);
    let vault = ctx.data().key_vault();
    let entries = vault
        .pool_log(pool, LOG_SHOWN)
        .await
        .map_err(CommandError::from)?;
    let kind = pool_kind(pool);
    let mut text = if entries.is_empty() {
        voice.t("pool-log-empty", &[("pool", kind.into())])
    } else {
        voice.t("pool-log-header", &[("pool", kind.into())])
    };
    for entry in entries {
        let id = match (entry.action, entry.actor.is_some()) {
            (PoolAction::Added, true) => "pool-log-added",
            (PoolAction::Added, false) => "pool-log-added-by-operator",
            (PoolAction::Removed, true) => "pool-log-removed",
            (PoolAction::Removed, false) => "pool-log-removed-by-operator",
            (PoolAction::Unbenched, true) => "pool-log-unbenched",
            (PoolAction::Unbenched, false) => "pool-log-unbenched-by-operator",
            (PoolAction::Benched(_), true) => "pool-log-benched-after-call",
            (PoolAction::Benched(_), false) => "pool-log-benched",
        };
        let mut args = vec![
            (
                "name",
                vault.catalogue().display_name(&entry.service).into(),
            ),
            ("key", entry.key_id.to_string().into()),
        ];
        if let Some(user) = entry.actor {
            args.push(("user", format!("<@{user}>").into()));
        }
        if let PoolAction::Benched(reason) = entry.action {
            args.push(("reason", bench_reason(&voice, reason).into()));
        }
        let _ = write!(
            text,
            "\n• <t:{}:f>: {}",
            entry.at.unix_timestamp(),
            voice.t(id, &args)
        );
    }
    reply::ephemeral(ctx, &text).await
}

async fn add<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: &str,
) -> Result<(), E> {
    let poise::Context::Application(actx) = ctx else {
        return Ok(());
    };
    let voice = Voice::of(ctx);
    let vault = ctx.data().key_vault();
    let entry = match super::user::known_service_in(vault, &voice, service) {
        Ok(entry) => entry,
        Err(why) => return reply::ephemeral(ctx, &why).await,
    };
    let (service, name) = (&entry.id, entry.display_name.as_str());
    let kind = pool_kind(pool);
    let title = voice.t(
        "pool-add-title",
        &[("pool", kind.into()), ("name", name.into())],
    );
    let input = Input {
        label: voice.t("pool-add-label", &[("name", name.into())]),
        placeholder: voice.t("pool-add-placeholder", &[]),
        required: true,
    };
    let Some(submitted) = modal::ask(actx, &title, vec![input], ctx.data().modal_timeout()).await?
    else {
        return Ok(());
    };
    if !checks::pool_submit_allowed(ctx.serenity_context(), vault, pool, &submitted).await? {
        return Ok(());
    }
    // The answer is in the language of the submit (the user may have switched it meanwhile).
    let voice = Voice::of_submit(vault, &submitted.interaction);
    let secret = submitted.values.first().map_or("", |v| v.as_str());
    let text = match vault
        .add_pool_key(pool, service, secret, ctx.author().id.get())
        .await
    {
        Ok(added) if added.added => with_note(
            voice.t(
                "pool-added",
                &[
                    ("name", name.into()),
                    ("masked", added.masked.as_str().into()),
                    ("key", added.key_id.to_string().into()),
                    ("pool", kind.into()),
                ],
            ),
            check_note(&voice, &added.check, name),
        ),
        Ok(added) => voice.t(
            "pool-already-added",
            &[
                ("name", name.into()),
                ("pool", kind.into()),
                ("key", added.key_id.to_string().into()),
            ],
        ),
        Err(err) => err.localized(voice.texts(), voice.locale()),
    };
    modal::answer(ctx.serenity_context(), &submitted, &text).await?;
    Ok(())
}

/// What an admin does to one key of a pool, by its key id.
#[derive(Clone, Copy)]
enum KeyChange {
    Remove,
    Unbench,
}

async fn remove<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: &str,
    key_id: &str,
) -> Result<(), E> {
    change_key(ctx, pool, service, key_id, KeyChange::Remove).await
}

async fn unbench<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: &str,
    key_id: &str,
) -> Result<(), E> {
    change_key(ctx, pool, service, key_id, KeyChange::Unbench).await
}

/// Removes or unbenches a key of `pool` as the author, and says whether anything changed.
async fn change_key<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: &str,
    key_id: &str,
    change: KeyChange,
) -> Result<(), E> {
    let voice = Voice::of(ctx);
    let vault = ctx.data().key_vault();
    let service = service.trim().to_lowercase();
    let key_id = key_id.trim().to_lowercase();
    let name = vault.catalogue().display_name(&service).to_owned();
    let author = Some(ctx.author().id.get());
    let changed = match change {
        KeyChange::Remove => {
            vault
                .remove_pool_key_by(pool, &service, &key_id, author)
                .await
        }
        KeyChange::Unbench => {
            vault
                .clear_pool_key_bench_by(pool, &service, &key_id, author)
                .await
        }
    }
    .map_err(CommandError::from)?;
    let id = match (change, changed) {
        (KeyChange::Remove, true) => "pool-removed",
        (KeyChange::Remove, false) => "pool-not-removed",
        (KeyChange::Unbench, true) => "pool-unbenched",
        (KeyChange::Unbench, false) => "pool-not-benched",
    };
    let text = voice.t(
        id,
        &[
            ("name", name.into()),
            ("key", key_id.into()),
            ("pool", pool_kind(pool).into()),
        ],
    );
    reply::ephemeral(ctx, &text).await
}

async fn list<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    pool: Pool,
    service: Option<&str>,
) -> Result<(), E> {
    let voice = Voice::of(ctx);
    let vault = ctx.data().key_vault();
    let service = service.map(|s| s.trim().to_lowercase());
    let keys = vault
        .list_pool_keys(pool, service.as_deref())
        .await
        .map_err(CommandError::from)?;
    let kind = pool_kind(pool);
    let mut text = String::new();
    if keys.is_empty() {
        text = match &service {
            Some(service) => voice.t(
                "pool-list-empty-service",
                &[
                    ("pool", kind.into()),
                    ("name", vault.catalogue().display_name(service).into()),
                ],
            ),
            None => voice.t("pool-list-empty", &[("pool", kind.into())]),
        };
    } else {
        let _ = writeln!(
            text,
            "{}",
            voice.t("pool-list-header", &[("pool", kind.into())])
        );
        for key in &keys {
            let masked = key.masked.as_deref().map_or_else(
                || voice.t("pool-list-unreadable", &[]),
                |m| format!("`{m}`"),
            );
            let date = reply::date(&voice, key.added_at);
            let added = match key.contributor {
                Some(user) => voice.t(
                    "pool-list-key",
                    &[
                        ("masked", masked.into()),
                        ("user", format!("<@{user}>").into()),
                        ("date", date.into()),
                    ],
                ),
                None => voice.t(
                    "pool-list-key-by-operator",
                    &[("masked", masked.into()), ("date", date.into())],
                ),
            };
            let _ = write!(
                text,
                "• **{}** `{}` {}",
                vault.catalogue().display_name(&key.service),
                key.key_id,
                added
            );
            if key.uses_today > 0 {
                let _ = write!(
                    text,
                    "; {}",
                    voice.t(
                        "pool-list-uses-today",
                        &[
                            ("count", key.uses_today.into()),
                            ("failed", key.failures_today.into()),
                        ],
                    )
                );
            }
            if let Some(bench) = &key.bench {
                let _ = write!(
                    text,
                    "; {}",
                    voice.t(
                        "pool-list-benched",
                        &[
                            ("until", bench.until.unix_timestamp().to_string().into()),
                            ("reason", bench_reason(&voice, bench.reason).into()),
                        ],
                    )
                );
            }
            text.push('\n');
        }
    }
    let mut services: Vec<&str> = keys.iter().map(|key| key.service.as_str()).collect();
    services.extend(service.as_deref());
    services.sort_unstable();
    services.dedup();
    for service in services {
        if let Ok(Some(limit)) = vault.pool_daily_limit(pool, service).await {
            let _ = write!(
                text,
                "\n{}",
                voice.t(
                    "pool-list-limit",
                    &[
                        ("name", vault.catalogue().display_name(service).into()),
                        ("uses", limit.into()),
                    ],
                )
            );
        }
    }
    reply::ephemeral(ctx, &text).await
}

/// A reply with the key check's note, if any, after it.
pub(crate) fn with_note(text: String, note: Option<String>) -> String {
    match note {
        Some(note) => format!("{text} {note}"),
        None => text,
    }
}
