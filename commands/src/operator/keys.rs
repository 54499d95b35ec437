//! `user`, `pool`, `resolve` and `migrate`: the keys in the vault, from the command line.
//!
//! Keys come in on stdin only (argv would leave them in `ps` and shell history) and go out
//! only with `resolve --reveal`; everything else shows `…` and the last four characters.

use std::io::{self, IsTerminal as _, Read as _};
use std::process::ExitCode;

use serde_json::{Value, json};
use stargazer_keys::MigrationReport;
use stargazer_keys::{ApiKey, Checkpoint, Config, KeyError, KeyVault, Pool, PoolAction};
use stargazer_keys::{GITEA_SERVICE, GiteaPolicy, GiteaSource};
use zeroize::Zeroizing;

use super::{
    Error, known_service, open_existing_vault, open_vault, parse_id, print, rfc3339, table,
};

/// Most bytes read from stdin: far more than any key, and a wrong pipe (a whole file) is
/// refused after reading this much rather than buffered whole.
pub const STDIN_LIMIT: usize = 64 * 1024;

/// `user set|list|remove|forget`.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Store a user's own key for a service, reading the key from stdin
    ///
    /// The key is read from stdin, never from the command line: pipe it in, e.g.
    /// `printf '%s' "$KEY" | stargazer-keys user set --user 123456789012345678 --service brave`.
    /// One trailing newline is dropped; an empty key, or one with spaces, control characters
    /// (such as NUL) or more than 4000 characters, is refused and nothing is written. From a
    /// terminal, one line is read without showing it, as a password prompt would. The key
    /// replaces the user's earlier one for that service; only its last four characters are
    /// printed.
    Set(UserSetArgs),

    /// List a user's keys, masked
    ///
    /// One row per service: its id, its name, the key's last four characters (`unreadable`
    /// when the stored value does not open) and when it was set (RFC 3339; `unknown` for values
    /// of the original bot). With --json: an array of objects {"service", "display_name",
    /// "masked" (null when unreadable), "set_at" (null when unknown)}.
    List(UserListArgs),

    /// Delete a user's key for one service
    ///
    /// Says whether the user had one, and exits 0 either way, so it is safe to run twice.
    Remove(UserRemoveArgs),

    /// Erase every key of a user and destroy their data key (crypto-shredding)
    ///
    /// Deletes the user's keys, then the user's data key, so copies of the stored values left
    /// in backups or replicas can no longer be opened. Prints how many keys were erased. Keys
    /// the user added to pools stay: pools have data keys of their own.
    Forget(UserForgetArgs),

    /// Turn shared keys off (or on again) for a user's calls, as `/shared_keys` does
    ///
    /// With shared keys off, a call of the user that finds no key of their own stops there
    /// (no pool, not the operator's key) and says why. For one service with --service, else
    /// for every service (which also clears the per-service choices).
    SharedKeys(UserSharedKeysArgs),
}

/// Options of `user shared-keys`.
#[derive(Debug, clap::Args)]
pub struct UserSharedKeysArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// Only this service (default: every service)
    #[arg(long, value_name = "SERVICE")]
    service: Option<String>,
    /// `off`: the user's calls use only their own keys; `on`: shared keys again
    #[arg(value_name = "on|off", value_parser = ["on", "off"])]
    state: String,
}

/// `pool add|list|remove`.
#[derive(Debug, clap::Subcommand)]
pub enum PoolCommand {
    /// Add a key to the global pool, or to a channel's or a server's pool, reading the key from stdin
    ///
    /// The key is read from stdin, never from the command line, as with `user set` (typed at a
    /// terminal, it is not shown). Prints its key id (12 hex digits, a keyed fingerprint: the
    /// same key always gets the same id) and its last four characters. Adding a key the pool
    /// already holds changes nothing and says so.
    Add(PoolAddArgs),

    /// List the keys of the global pool, or of a channel's or a server's pool, masked
    ///
    /// One row per key: key id, service, last four characters, who added it and when, its uses
    /// and failures today (UTC), and whether it is benched (skipped by draws), until when and
    /// why. With --json: an array of objects {"key_id", "service", "masked" (null when the
    /// value does not open), "contributor" (the Discord id as a string, as Discord's API writes
    /// ids; null when added by the operator or by the original bot), "added_at" (RFC 3339 or
    /// null), "uses_today", "failures_today", "benched_until" (RFC 3339 or null),
    /// "bench_reason" ("rate_limited", "quota_exhausted", "unauthorized" or null)}.
    List(PoolListArgs),

    /// Remove a key from a pool by its key id
    ///
    /// The key id is the one `pool list` shows. Says whether the pool held that key, and exits
    /// 0 either way, so it is safe to run twice.
    Remove(PoolRemoveArgs),

    /// Put a benched pool key back in use (after its credit was topped up, say)
    ///
    /// Takes the key off the bench a failed call put it on, so draws use it again in every
    /// process. Says whether it was benched, and exits 0 either way.
    Unbench(PoolRemoveArgs),

    /// Show a pool's log: who added, removed, benched or unbenched which key, and when
    ///
    /// Newest first; never a key, only key ids. The log keeps the newest 200 entries of each
    /// pool. With --json: an array of objects {"at" (RFC 3339), "actor" (the Discord id as a
    /// string, or null for the operator and the bot), "action" ("added", "removed",
    /// "benched", "unbenched"), "reason" (a bench's reason, else null), "service", "key_id"}.
    Log(PoolLogArgs),

    /// Set, show or clear how many calls each user may make a day with a pool's keys
    ///
    /// With --uses N, each user's calls with the pool's keys for the service (every tool
    /// together) stop at N a day, counted for that pool alone; at most
    /// STARGAZER_POOL_DAILY_LIMIT_MAX. With --clear, the tools' limits apply again. With
    /// neither, prints the pool's limit.
    Limit(PoolLimitArgs),
}

/// Options of `user set`.
#[derive(Debug, clap::Args)]
pub struct UserSetArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// The service, by id (e.g. brave, openrouter, gitea)
    #[arg(long, value_name = "SERVICE")]
    service: String,
    /// The Gitea instance the token is for (gitea only; default GITEA_BASE_URL, else https://git.neko.li)
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

/// Options of `user list`.
#[derive(Debug, clap::Args)]
pub struct UserListArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// Print a JSON array of {"service", "display_name", "masked", "set_at"}
    #[arg(long)]
    json: bool,
}

/// Options of `user remove`.
#[derive(Debug, clap::Args)]
pub struct UserRemoveArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// The service, by id
    #[arg(long, value_name = "SERVICE")]
    service: String,
}

/// Options of `user forget`.
#[derive(Debug, clap::Args)]
pub struct UserForgetArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
}

/// Options of `pool add`.
#[derive(Debug, clap::Args)]
pub struct PoolAddArgs {
    /// The service, by id
    #[arg(long, value_name = "SERVICE")]
    service: String,
    /// The channel whose pool gets the key (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id, conflicts_with = "guild")]
    channel: Option<u64>,
    /// The server whose pool gets the key (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
    /// The Discord id of the user who gave the key, shown in listings (default: none, the operator)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    contributor: Option<u64>,
}

/// Options of `pool list`.
#[derive(Debug, clap::Args)]
pub struct PoolListArgs {
    /// Only this service's keys (default: every service)
    #[arg(long, value_name = "SERVICE")]
    service: Option<String>,
    /// The channel whose pool to list (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id, conflicts_with = "guild")]
    channel: Option<u64>,
    /// The server whose pool to list (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
    /// Print a JSON array of {"key_id", "service", "masked", "contributor", "added_at", "uses_today", "failures_today", "benched_until", "bench_reason"}
    #[arg(long)]
    json: bool,
}

/// Options of `pool remove`.
#[derive(Debug, clap::Args)]
pub struct PoolRemoveArgs {
    /// The service, by id
    #[arg(long, value_name = "SERVICE")]
    service: String,
    /// The key id, as `pool list` shows it (12 hex digits)
    #[arg(long, value_name = "KEY_ID")]
    key_id: String,
    /// The channel whose pool holds the key (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id, conflicts_with = "guild")]
    channel: Option<u64>,
    /// The server whose pool holds the key (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
}

/// Options of `pool log`.
#[derive(Debug, clap::Args)]
pub struct PoolLogArgs {
    /// The channel whose pool's log to show (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id, conflicts_with = "guild")]
    channel: Option<u64>,
    /// The server whose pool's log to show (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
    /// Print a JSON array of {"at", "actor", "action", "reason", "service", "key_id"}
    #[arg(long)]
    json: bool,
}

/// Options of `pool limit`.
#[derive(Debug, clap::Args)]
pub struct PoolLimitArgs {
    /// The service, by id
    #[arg(long, value_name = "SERVICE")]
    service: String,
    /// The channel whose pool's limit to set (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id, conflicts_with = "guild")]
    channel: Option<u64>,
    /// The server whose pool's limit to set (default: the global pool)
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
    /// Uses a day for each user (0 stops every call with the pool's keys)
    #[arg(long, value_name = "N", conflicts_with = "clear")]
    uses: Option<u32>,
    /// Remove the pool's own limit: the tools' limits apply again
    #[arg(long)]
    clear: bool,
}

/// Options of `resolve`.
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// The service, by id
    #[arg(long, value_name = "SERVICE")]
    service: String,
    /// The channel the call comes from: its pool is tried after the user's own key
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    channel: Option<u64>,
    /// The server the call comes from: its pool is tried after the channel's
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    guild: Option<u64>,
    /// Skip the channel, server and global pools, as a call with fallback_to_pool = false does
    #[arg(long)]
    no_pools: bool,
    /// Print the key itself instead of its last four characters
    #[arg(long)]
    reveal: bool,
    /// Print {"source", "key"} as JSON
    #[arg(long)]
    json: bool,
}

/// Options of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print the counts as JSON: {"rewritten", "from_v2", "from_plaintext", "already_v4", "unreadable", "changed_meanwhile"}
    #[arg(long)]
    json: bool,
}

/// Runs a `user` subcommand.
pub async fn user(config: &Config, command: UserCommand) -> Result<ExitCode, Error> {
    match command {
        UserCommand::Set(args) => user_set(config, &args).await,
        UserCommand::List(args) => user_list(config, &args).await,
        UserCommand::Remove(args) => user_remove(config, &args).await,
        UserCommand::Forget(args) => user_forget(config, &args).await,
        UserCommand::SharedKeys(args) => user_shared_keys(config, &args).await,
    }
}

/// Runs a `pool` subcommand.
pub async fn pool(config: &Config, command: PoolCommand) -> Result<ExitCode, Error> {
    match command {
        PoolCommand::Add(args) => pool_add(config, &args).await,
        PoolCommand::List(args) => pool_list(config, &args).await,
        PoolCommand::Remove(args) => pool_remove(config, &args).await,
        PoolCommand::Unbench(args) => pool_unbench(config, &args).await,
        PoolCommand::Log(args) => pool_log(config, &args).await,
        PoolCommand::Limit(args) => pool_limit(config, &args).await,
    }
}

async fn user_set(config: &Config, args: &UserSetArgs) -> Result<ExitCode, Error> {
    // Refused before the database is opened (or made).
    let base_url = match args.base_url.as_deref() {
        Some(_) if args.service != GITEA_SERVICE => {
            return Err(Error::BaseUrlNotForService(args.service.clone()));
        }
        Some(url) => Some(
            GiteaPolicy::from_config(config)
                .check_base_url(url)
                .map_err(KeyError::from)?,
        ),
        None => None,
    };
    let vault = open_vault(config).await?;
    let service = &known_service(&vault, &args.service)?.id;
    let secret = read_secret()?;
    // A value typed alone may be Gitea's JSON {"token","base_url"}: saved as typed, checked.
    let info = match &base_url {
        Some(url) => {
            vault
                .set_gitea_credentials(args.user, &secret, Some(url))
                .await?
        }
        None => vault.set_user_api_key(args.user, service, &secret).await?,
    };
    let instance = base_url
        .map(|url| format!(" (for {url})"))
        .unwrap_or_default();
    let mut text = format!(
        "Saved the {} key {}{instance} for user {}.",
        info.display_name,
        info.masked.as_deref().unwrap_or("…"),
        args.user
    );
    if let Some(note) = info.check.note(&info.display_name) {
        text.push_str(&format!("\n{note}"));
    }
    print(&text)
}

async fn user_list(config: &Config, args: &UserListArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let keys = vault.list_user_api_keys(args.user).await?;
    if args.json {
        let keys: Vec<Value> = keys
            .iter()
            .map(|key| {
                json!({
                    "service": key.service,
                    "display_name": key.display_name,
                    "masked": key.masked,
                    "set_at": rfc3339(key.set_at),
                })
            })
            .collect();
        return print(&Value::from(keys).to_string());
    }
    if keys.is_empty() {
        return print(&format!("User {} has no keys.", args.user));
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|key| {
            vec![
                key.service.to_string(),
                key.display_name,
                key.masked.unwrap_or_else(|| "unreadable".to_owned()),
                rfc3339(key.set_at).unwrap_or_else(|| "unknown".to_owned()),
            ]
        })
        .collect();
    print(&table(&["SERVICE", "NAME", "KEY", "SET AT"], &rows))
}

async fn user_remove(config: &Config, args: &UserRemoveArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let removed = removed_or_unknown(
        &vault,
        &args.service,
        vault.remove_user_api_key(args.user, &args.service).await,
    )?;
    let name = vault.catalogue().display_name(&args.service);
    print(&if removed {
        format!("Removed the {name} key of user {}.", args.user)
    } else {
        format!("User {} had no {name} key; nothing changed.", args.user)
    })
}

async fn user_shared_keys(config: &Config, args: &UserSharedKeysArgs) -> Result<ExitCode, Error> {
    let vault = open_vault(config).await?;
    let service = match &args.service {
        Some(name) => Some(&known_service(&vault, name)?.id),
        None => None,
    };
    let allowed = args.state == "on";
    vault.set_shared_keys(args.user, service, allowed).await?;
    let state = if allowed { "on" } else { "off" };
    print(&match service {
        Some(id) => format!(
            "Shared keys are {state} for user {}'s {} calls.",
            args.user,
            vault.catalogue().display_name(id)
        ),
        None => format!(
            "Shared keys are {state} for all of user {}'s calls.",
            args.user
        ),
    })
}

/// The outcome of a removal. A service left out of the catalogue (a services file edited
/// since) may still hold keys, so it is refused, with the list of services, only when there
/// was nothing to remove.
fn removed_or_unknown(
    vault: &KeyVault,
    service: &str,
    outcome: Result<bool, KeyError>,
) -> Result<bool, Error> {
    let removed = match outcome {
        Err(KeyError::InvalidService(_)) => false,
        other => other?,
    };
    if !removed {
        known_service(vault, service)?;
    }
    Ok(removed)
}

async fn user_forget(config: &Config, args: &UserForgetArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let forgotten = vault.forget_user(args.user).await?;
    let erased = if forgotten.keys == 0 {
        format!(
            "User {} had no keys; their data key, if any, is destroyed too.",
            args.user
        )
    } else {
        format!(
            "Erased {} of user {} and destroyed their data key: copies in backups can no longer be opened.",
            keys(forgotten.keys),
            args.user
        )
    };
    print(&match forgotten.checkpoint {
        Checkpoint::Complete => erased,
        Checkpoint::Blocked => match vault.data_keys() {
            stargazer_keys::KeyStore::Postgres(store) => format!(
                "{erased}\nBut PostgreSQL at {} could not vacuum the data-key table{}, so the deleted row, still wrapped under the master key, stays in the table's pages until autovacuum prunes it.",
                store.location(),
                if store.can_vacuum() {
                    ""
                } else {
                    " (this role does not own it)"
                }
            ),
            stargazer_keys::KeyStore::Sqlite(_) => format!(
                "{erased}\nBut the write-ahead log of {} still holds the wrapped data key, because another connection kept reading the database; it is removed by the next checkpoint, which every running stargazer-keys process retries (or run this command again when the database is idle).",
                config.db_path.display()
            ),
        },
    })
}

async fn pool_add(config: &Config, args: &PoolAddArgs) -> Result<ExitCode, Error> {
    let vault = open_vault(config).await?;
    known_service(&vault, &args.service)?;
    let secret = read_secret()?;
    let pool = pool_of(args.channel, args.guild);
    let added = vault
        .add_pool_key(pool, &args.service, &secret, args.contributor.unwrap_or(0))
        .await?;
    let name = vault.catalogue().display_name(&args.service);
    print(&if added.added {
        let mut text = format!(
            "Added the {name} key {} to {pool} as key {}.",
            added.masked, added.key_id
        );
        if let Some(note) = added.check.note(name) {
            text.push_str(&format!("\n{note}"));
        }
        text
    } else {
        format!(
            "This {name} key ({}) is already in {pool} as key {}; nothing changed.",
            added.masked, added.key_id
        )
    })
}

async fn pool_list(config: &Config, args: &PoolListArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    if let Some(service) = &args.service {
        known_service(&vault, service)?;
    }
    let pool = pool_of(args.channel, args.guild);
    let keys = vault.list_pool_keys(pool, args.service.as_deref()).await?;
    if args.json {
        let keys: Vec<Value> = keys
            .iter()
            .map(|key| {
                json!({
                    "key_id": key.key_id,
                    "service": key.service,
                    "masked": key.masked,
                    "contributor": key.contributor.map(|id| id.to_string()),
                    "added_at": rfc3339(key.added_at),
                    "uses_today": key.uses_today,
                    "failures_today": key.failures_today,
                    "benched_until": rfc3339(key.bench.map(|b| b.until)),
                    "bench_reason": key.bench.map(|b| b.reason.as_str()),
                })
            })
            .collect();
        return print(&Value::from(keys).to_string());
    }
    if keys.is_empty() {
        let what = args.service.as_deref().map_or(String::new(), |service| {
            format!("{} ", vault.catalogue().display_name(service))
        });
        return print(&format!("There are no {what}keys in {pool}."));
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|key| {
            vec![
                key.key_id.to_string(),
                key.service.to_string(),
                key.masked.unwrap_or_else(|| "unreadable".to_owned()),
                key.contributor.map_or("-".to_owned(), |id| id.to_string()),
                rfc3339(key.added_at).unwrap_or_else(|| "unknown".to_owned()),
                key.uses_today.to_string(),
                key.failures_today.to_string(),
                key.bench.map_or("-".to_owned(), |bench| {
                    format!(
                        "until {}: {}",
                        rfc3339(Some(bench.until)).unwrap_or_default(),
                        bench.reason.describe()
                    )
                }),
            ]
        })
        .collect();
    print(&table(
        &[
            "KEY ID",
            "SERVICE",
            "KEY",
            "ADDED BY",
            "ADDED AT",
            "USES TODAY",
            "FAILURES",
            "BENCHED",
        ],
        &rows,
    ))
}

async fn pool_remove(config: &Config, args: &PoolRemoveArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let pool = pool_of(args.channel, args.guild);
    let removed = removed_or_unknown(
        &vault,
        &args.service,
        vault
            .remove_pool_key(pool, &args.service, &args.key_id)
            .await,
    )?;
    let name = vault.catalogue().display_name(&args.service);
    print(&if removed {
        format!("Removed the {name} key {} from {pool}.", args.key_id)
    } else {
        format!(
            "There is no {name} key {} in {pool}; nothing changed.",
            args.key_id
        )
    })
}

async fn pool_unbench(config: &Config, args: &PoolRemoveArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let pool = pool_of(args.channel, args.guild);
    let was_benched = vault
        .clear_pool_key_bench(pool, &args.service, &args.key_id)
        .await?;
    let name = vault.catalogue().display_name(&args.service);
    print(&if was_benched {
        format!(
            "The {name} key {} of {pool} is off the bench: draws use it again.",
            args.key_id
        )
    } else {
        format!(
            "The {name} key {} of {pool} was not benched; nothing changed.",
            args.key_id
        )
    })
}

async fn pool_limit(config: &Config, args: &PoolLimitArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    known_service(&vault, &args.service)?;
    let pool = pool_of(args.channel, args.guild);
    let name = vault.catalogue().display_name(&args.service);
    if args.uses.is_some() || args.clear {
        vault
            .set_pool_daily_limit(pool, &args.service, args.uses)
            .await?;
    }
    print(&match vault.pool_daily_limit(pool, &args.service).await? {
        Some(limit) => format!(
            "Each user may make {limit} calls a day with the {name} keys of {pool} (every tool together)."
        ),
        None => format!(
            "The {name} keys of {pool} follow the tools' daily limits (DEFAULT_KEY_DAILY_LIMIT = {}, STARGAZER_TOOL_DAILY_LIMITS).",
            vault.config().default_daily_limit
        ),
    })
}

async fn pool_log(config: &Config, args: &PoolLogArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    let pool = pool_of(args.channel, args.guild);
    let entries = vault.pool_log(pool, stargazer_keys::POOL_LOG_MAX).await?;
    let action_of = |entry: &stargazer_keys::PoolLogEntry| match entry.action {
        PoolAction::Added => ("added", None),
        PoolAction::Removed => ("removed", None),
        PoolAction::Benched(reason) => ("benched", Some(reason.as_str())),
        PoolAction::Unbenched => ("unbenched", None),
    };
    if args.json {
        let entries: Vec<Value> = entries
            .iter()
            .map(|entry| {
                let (action, reason) = action_of(entry);
                json!({
                    "at": rfc3339(Some(entry.at)),
                    "actor": entry.actor.map(|id| id.to_string()),
                    "action": action,
                    "reason": reason,
                    "service": entry.service,
                    "key_id": entry.key_id,
                })
            })
            .collect();
        return print(&Value::from(entries).to_string());
    }
    if entries.is_empty() {
        return print(&format!("Nothing has happened in {pool} yet."));
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                rfc3339(Some(entry.at)).unwrap_or_default(),
                entry.actor.map_or("-".to_owned(), |id| id.to_string()),
                entry.action.to_string(),
                entry.service.to_string(),
                entry.key_id.to_string(),
            ]
        })
        .collect();
    print(&table(&["AT", "BY", "WHAT", "SERVICE", "KEY ID"], &rows))
}

/// Shows which key a user would get for a service, and from where. Finding none is an
/// answer (source `none`), not an error.
pub async fn resolve(config: &Config, args: &ResolveArgs) -> Result<ExitCode, Error> {
    let vault = open_existing_vault(config).await?;
    known_service(&vault, &args.service)?;
    let fallback_to_pool = !args.no_pools;
    // Gitea values may be JSON {"token", "base_url"}: resolve them as the Gitea tools do.
    let found: Option<(&str, ApiKey, Option<String>)> = if args.service == GITEA_SERVICE {
        vault
            .get_gitea_credentials_in(Some(args.user), args.channel, args.guild, fallback_to_pool)
            .await
            .map(|found| {
                let source = match found.source {
                    GiteaSource::Key(source) => source.as_str(),
                    // GITEA_TOKEN_FILE is the operator's setting, like GITEA_TOKEN.
                    GiteaSource::TokenFile => "env",
                };
                (source, found.token, Some(found.base_url))
            })
    } else {
        vault
            .get_user_api_key_in(
                Some(args.user),
                &args.service,
                args.channel,
                args.guild,
                fallback_to_pool,
            )
            .await
            .map(|found| (found.source().as_str(), found.key, None))
    };
    let source = found.as_ref().map_or("none", |(source, _, _)| source);
    let key = found.as_ref().map(|(_, key, _)| {
        Zeroizing::new(if args.reveal {
            key.expose().to_owned()
        } else {
            key.masked()
        })
    });
    let text = Zeroizing::new(if args.json {
        json!({ "source": source, "key": key.as_deref().map(String::as_str) }).to_string()
    } else {
        let mut text = format!(
            "source: {source}\nkey: {}",
            key.as_deref().map_or("none", String::as_str)
        );
        if let Some((_, _, Some(base_url))) = &found {
            text.push_str(&format!("\nbase url: {base_url}"));
        }
        text
    });
    print(&text)
}

/// Rewrites every `v2:` and plaintext value as `v4:` and prints the counts. Idempotent.
pub async fn migrate(config: &Config, args: &MigrateArgs) -> Result<ExitCode, Error> {
    let vault = open_vault(config).await?;
    if !args.json {
        // What will be touched, before anything is.
        let hashes = vault.legacy_hashes().await?;
        if !hashes.is_empty() {
            let mut text = String::from("Hashes holding values in the original bot's formats:");
            for hash in &hashes {
                text.push_str(&format!(
                    "\n  {} ({})",
                    hash.key,
                    values(hash.values as u64)
                ));
            }
            println!("{text}");
        }
    }
    let report = vault.migrate().await?;
    print(&if args.json {
        json!({
            "rewritten": report.from_v2 + report.from_plaintext,
            "from_v2": report.from_v2,
            "from_plaintext": report.from_plaintext,
            "already_v4": report.already_v4,
            "unreadable": report.unreadable,
            "changed_meanwhile": report.skipped_changed,
            "legacy_hashes": report
                .legacy_hashes
                .iter()
                .map(|hash| json!({"key": hash.key, "values": hash.values}))
                .collect::<Vec<_>>(),
            "left_in_pools": report.left_in_pools,
            "unreadable_by_hash": report.unreadable_by_hash,
            "legacy_data_keys_rewrapped": report.legacy_data_keys_rewrapped,
            "legacy_values": "refused from now on",
        })
        .to_string()
    } else {
        migration_summary(&report)
    })
}

fn migration_summary(report: &MigrationReport) -> String {
    let rewritten = report.from_v2 + report.from_plaintext;
    let mut lines = Vec::new();
    if rewritten > 0 {
        lines.push(format!(
            "Rewrote {} as v4: {} from v2, {} from plaintext.",
            values(rewritten),
            report.from_v2,
            report.from_plaintext
        ));
        if report.already_v4 > 0 {
            lines.push(format!("{} already v4.", were(report.already_v4)));
        }
    } else if report.already_v4 > 0 {
        lines.push(format!(
            "Nothing to rewrite: {} already v4.",
            were(report.already_v4)
        ));
    } else if report.unreadable + report.skipped_changed == 0 {
        lines.push("There are no stored keys: nothing to rewrite.".to_owned());
    }
    if report.unreadable > 0 {
        lines.push(format!(
            "{} not open and {} left as {}; the warnings on stderr name them.",
            match report.unreadable {
                1 => "1 value does".to_owned(),
                n => format!("{n} values do"),
            },
            if report.unreadable == 1 {
                "was"
            } else {
                "were"
            },
            if report.unreadable == 1 {
                "it is"
            } else {
                "they are"
            },
        ));
    }
    if report.skipped_changed > 0 {
        lines.push(format!(
            "{} rewritten by someone else while migrating and left as written; run migrate again to check them.",
            were(report.skipped_changed)
        ));
    }
    for (hash, count) in &report.unreadable_by_hash {
        lines.push(format!(
            "  {hash}: {} not open (left in place)",
            values(*count)
        ));
    }
    if report.legacy_data_keys_rewrapped > 0 {
        lines.push(format!(
            "Rewrapped {} of the original bot with their owner bound.",
            match report.legacy_data_keys_rewrapped {
                1 => "1 data key".to_owned(),
                n => format!("{n} data keys"),
            }
        ));
    }
    if !report.left_in_pools.is_empty() {
        lines.push(format!(
            "Left {} whose field is not a key id (put there by hand?); remove each with `stargazer-keys pool remove --key-id FIELD`: {}",
            match report.left_in_pools.len() {
                1 => "1 pool entry".to_owned(),
                n => format!("{n} pool entries"),
            },
            report.left_in_pools.join(", ")
        ));
    }
    lines.push(
        "Values in the original bot's formats are refused from now on, by every process."
            .to_owned(),
    );
    lines.join("\n")
}

/// What a terminal shows before reading a key.
const PROMPT: &str = "Paste the key and press Enter (it is not shown as you type): ";

/// Reads a key from stdin: everything piped in, less one trailing newline, or one line typed
/// at a terminal, without echo. Reads at most [`STDIN_LIMIT`] bytes; every buffer is wiped when
/// dropped.
fn read_secret() -> Result<Zeroizing<String>, Error> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return read_secret_from_terminal();
    }
    // Allocated at full size up front, so growing never leaves a copy of the key behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(STDIN_LIMIT + 1));
    stdin
        .lock()
        .take(STDIN_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::ReadSecret)?;
    if bytes.len() > STDIN_LIMIT {
        return Err(Error::SecretTooLarge);
    }
    let mut text = match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Zeroizing::new(text),
        Err(err) => {
            drop(Zeroizing::new(err.into_bytes()));
            return Err(Error::SecretNotText);
        }
    };
    let end = text.strip_suffix('\n').map_or(text.len(), |rest| {
        rest.strip_suffix('\r').unwrap_or(rest).len()
    });
    text.truncate(end);
    if text.trim().is_empty() {
        return Err(Error::NoSecret);
    }
    Ok(text)
}

/// Reads one line from the terminal with echo off (the prompt and the input go through the
/// controlling terminal, as with `ssh` or `sudo`); the terminal's settings are restored after.
fn read_secret_from_terminal() -> Result<Zeroizing<String>, Error> {
    let text = Zeroizing::new(rpassword::prompt_password(PROMPT).map_err(Error::ReadSecret)?);
    if text.len() > STDIN_LIMIT {
        return Err(Error::SecretTooLarge);
    }
    if text.trim().is_empty() {
        return Err(Error::NoSecret);
    }
    Ok(text)
}

/// The pool `--channel` or `--guild` names (clap lets at most one through), else the global one.
fn pool_of(channel: Option<u64>, guild: Option<u64>) -> Pool {
    match (channel, guild) {
        (Some(channel), _) => Pool::Channel(channel),
        (None, Some(guild)) => Pool::Guild(guild),
        (None, None) => Pool::Global,
    }
}

/// "1 key", "2 keys".
fn keys(count: usize) -> String {
    if count == 1 {
        "1 key".to_owned()
    } else {
        format!("{count} keys")
    }
}

/// "1 value", "2 values".
fn values(count: u64) -> String {
    if count == 1 {
        "1 value".to_owned()
    } else {
        format!("{count} values")
    }
}

/// "1 value was", "2 values were".
fn were(count: u64) -> String {
    let verb = if count == 1 { "was" } else { "were" };
    format!("{} {verb}", values(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_summary_counts_each_kind_of_value() {
        let report = MigrationReport {
            already_v4: 1,
            from_v2: 2,
            from_plaintext: 1,
            unreadable: 1,
            skipped_changed: 2,
            ..MigrationReport::default()
        };
        assert_eq!(
            migration_summary(&report),
            "Rewrote 3 values as v4: 2 from v2, 1 from plaintext.\n\
             1 value was already v4.\n\
             1 value does not open and was left as it is; the warnings on stderr name them.\n\
             2 values were rewritten by someone else while migrating and left as written; run migrate again to check them.\n\
             Values in the original bot's formats are refused from now on, by every process."
        );
    }

    #[test]
    fn migration_summary_of_an_empty_store_says_so() {
        assert_eq!(
            migration_summary(&MigrationReport::default()),
            "There are no stored keys: nothing to rewrite.\n\
             Values in the original bot's formats are refused from now on, by every process."
        );
    }
}
