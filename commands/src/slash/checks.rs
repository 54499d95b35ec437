//! Permission checks, enforced in our code (Discord's UI hints are not enough). They sit on the
//! leaf commands and reply ephemerally with the reason; an autocomplete request they refuse is
//! answered with no choices (Discord would otherwise show "loading options failed"). A command
//! that opens a modal asks again on the submit ([`pool_submit_allowed`]): a member can lose a
//! permission while the modal is open, and the submit carries the permissions of that moment.

use std::collections::BTreeSet;

use poise::serenity_prelude as serenity;
use stargazer_keys::{KeyVault, Pool};

use super::modal::{self, Submitted};
use super::reply;
use crate::text::{Voice, t};
use crate::{CommandError, Context, HasKeyVault};

/// Whether this invocation is an autocomplete request (no reply possible).
fn is_autocomplete<U, E>(ctx: Context<'_, U, E>) -> bool {
    matches!(
        ctx,
        poise::Context::Application(actx)
            if actx.interaction_type == poise::CommandInteractionType::Autocomplete
    )
}

/// The bot admins (`ADMIN_USER_IDS`).
fn admins(vault: &KeyVault) -> &BTreeSet<u64> {
    &vault.config().admin_user_ids
}

/// Whether the author is a bot admin (`ADMIN_USER_IDS`).
pub fn is_bot_admin<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> bool {
    admins(ctx.data().key_vault()).contains(&ctx.author().id.get())
}

/// Who acts, and where, as one interaction tells it (the command, or the modal's submit).
struct Actor {
    user: serenity::UserId,
    /// `None` in a DM.
    guild: Option<serenity::GuildId>,
    channel: serenity::ChannelId,
    /// The permissions Discord resolved for the member in that channel, sent with the
    /// interaction (`member.permissions`).
    permissions: Option<serenity::Permissions>,
}

impl Actor {
    fn of_command<U, E>(ctx: Context<'_, U, E>) -> Self {
        let permissions = match ctx {
            poise::Context::Application(actx) => {
                actx.interaction.member.as_ref().and_then(|m| m.permissions)
            }
            poise::Context::Prefix(_) => None,
        };
        Self {
            user: ctx.author().id,
            guild: ctx.guild_id(),
            channel: ctx.channel_id(),
            permissions,
        }
    }

    fn of_submit(submit: &serenity::ModalInteraction) -> Self {
        Self {
            user: submit.user.id,
            guild: submit.guild_id,
            channel: submit.channel_id,
            permissions: submit.member.as_ref().and_then(|m| m.permissions),
        }
    }
}

/// Why someone may not manage a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    NotBotAdmin,
    DirectMessage,
    ServerPoolInDirectMessage,
    NoManageChannels,
    NoManageServer,
}

impl Refusal {
    /// The message id of the sentence for a command refused when it is run.
    fn on_command(self) -> &'static str {
        match self {
            Refusal::NotBotAdmin => "check-not-bot-admin",
            Refusal::DirectMessage => "check-channel-pool-in-dm",
            Refusal::ServerPoolInDirectMessage => "check-server-pool-in-dm",
            Refusal::NoManageChannels => "check-no-manage-channels",
            Refusal::NoManageServer => "check-no-manage-server",
        }
    }

    /// The message id of the sentence for a modal submit refused because the right went
    /// while the modal was open.
    fn on_submit(self) -> &'static str {
        match self {
            Refusal::NotBotAdmin => "check-submit-not-bot-admin",
            Refusal::DirectMessage => "check-submit-channel-pool-in-dm",
            Refusal::ServerPoolInDirectMessage => "check-submit-server-pool-in-dm",
            Refusal::NoManageChannels => "check-submit-no-manage-channels",
            Refusal::NoManageServer => "check-submit-no-manage-server",
        }
    }
}

/// Who manages `pool`: bot admins the global one; for a channel's, in a server only, members
/// with Manage Channels (or Administrator) in that very channel, or bot admins; for a
/// server's, in that server only, members with Manage Server (or Administrator), or bot
/// admins.
fn pool_refusal(admins: &BTreeSet<u64>, pool: Pool, actor: &Actor) -> Option<Refusal> {
    let is_admin = admins.contains(&actor.user.get());
    match pool {
        Pool::Global => (!is_admin).then_some(Refusal::NotBotAdmin),
        Pool::Channel(channel) => {
            if actor.guild.is_none() {
                return Some(Refusal::DirectMessage);
            }
            if is_admin {
                return None;
            }
            // The permissions sent are those of the interaction's channel, so they speak for
            // this pool only when it is that channel's.
            let manages = actor.channel.get() == channel
                && actor.permissions.is_some_and(|perms| {
                    perms.contains(serenity::Permissions::MANAGE_CHANNELS)
                        || perms.contains(serenity::Permissions::ADMINISTRATOR)
                });
            (!manages).then_some(Refusal::NoManageChannels)
        }
        Pool::Guild(guild) => {
            if actor.guild.is_none() {
                return Some(Refusal::ServerPoolInDirectMessage);
            }
            if is_admin {
                return None;
            }
            // The permissions sent are the member's in the interaction's server.
            let manages = actor.guild.is_some_and(|here| here.get() == guild)
                && actor.permissions.is_some_and(|perms| {
                    perms.contains(serenity::Permissions::MANAGE_GUILD)
                        || perms.contains(serenity::Permissions::ADMINISTRATOR)
                });
            (!manages).then_some(Refusal::NoManageServer)
        }
    }
}

async fn check_pool<U: HasKeyVault, E>(ctx: Context<'_, U, E>, pool: Pool) -> Result<bool, E>
where
    E: From<CommandError>,
{
    let Some(refusal) = pool_refusal(
        admins(ctx.data().key_vault()),
        pool,
        &Actor::of_command(ctx),
    ) else {
        return Ok(true);
    };
    match ctx {
        poise::Context::Application(actx) if is_autocomplete(ctx) => {
            let none = serenity::CreateInteractionResponse::Autocomplete(
                serenity::CreateAutocompleteResponse::new(),
            );
            actx.interaction
                .create_response(ctx.serenity_context(), none)
                .await
                .map_err(CommandError::from)?;
        }
        _ => {
            let command = ctx.command().qualified_name.clone();
            metrics::counter!("stargazer_command_refusals_total", "command" => command)
                .increment(1);
            reply::ephemeral(ctx, &t(ctx, refusal.on_command(), &[])).await?;
        }
    }
    Ok(false)
}

/// Check: only bot admins manage the global pool.
pub async fn global_pool_manager<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Result<bool, E>
where
    E: From<CommandError>,
{
    check_pool(ctx, Pool::Global).await
}

/// Check: a channel's pool is managed by members with Manage Channels there, or bot admins;
/// never from a DM.
pub async fn channel_pool_manager<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Result<bool, E>
where
    E: From<CommandError>,
{
    check_pool(ctx, Pool::Channel(ctx.channel_id().get())).await
}

/// Check: a server's pool is managed by members with Manage Server there, or bot admins; never
/// from a DM.
pub async fn guild_pool_manager<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Result<bool, E>
where
    E: From<CommandError>,
{
    match ctx.guild_id() {
        Some(guild) => check_pool(ctx, Pool::Guild(guild.get())).await,
        // No server to name: refused as a DM (the refusal does not depend on the id).
        None => check_pool(ctx, Pool::Guild(0)).await,
    }
}

/// The pool check again, on a modal's submit, with the permissions the submit carries: `false`
/// (after answering the submit with the reason) when the submitter may no longer manage `pool`.
pub async fn pool_submit_allowed(
    ctx: &serenity::Context,
    vault: &KeyVault,
    pool: Pool,
    submitted: &Submitted,
) -> Result<bool, CommandError> {
    match pool_refusal(
        admins(vault),
        pool,
        &Actor::of_submit(&submitted.interaction),
    ) {
        None => Ok(true),
        Some(refusal) => {
            let voice = Voice::of_submit(vault, &submitted.interaction);
            modal::answer(ctx, submitted, &voice.t(refusal.on_submit(), &[])).await?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serenity::Permissions;

    const ADMIN: u64 = 9;
    const MEMBER: u64 = 10;
    const CHANNEL: u64 = 30;

    fn actor(user: u64, permissions: Permissions) -> Actor {
        Actor {
            user: serenity::UserId::new(user),
            guild: Some(serenity::GuildId::new(20)),
            channel: serenity::ChannelId::new(CHANNEL),
            permissions: Some(permissions),
        }
    }

    fn refusal(actor: &Actor, pool: Pool) -> Option<Refusal> {
        pool_refusal(&BTreeSet::from([ADMIN]), pool, actor)
    }

    #[test]
    fn only_bot_admins_manage_the_global_pool_whatever_their_permissions() {
        assert_eq!(
            refusal(&actor(ADMIN, Permissions::empty()), Pool::Global),
            None
        );
        assert_eq!(
            refusal(&actor(MEMBER, Permissions::all()), Pool::Global),
            Some(Refusal::NotBotAdmin)
        );
    }

    #[test]
    fn a_channels_pool_needs_manage_channels_or_administrator_in_that_channel() {
        let pool = Pool::Channel(CHANNEL);
        assert_eq!(
            refusal(&actor(MEMBER, Permissions::MANAGE_CHANNELS), pool),
            None
        );
        assert_eq!(
            refusal(&actor(MEMBER, Permissions::ADMINISTRATOR), pool),
            None
        );
        assert_eq!(refusal(&actor(ADMIN, Permissions::empty()), pool), None);
        assert_eq!(
            refusal(&actor(MEMBER, Permissions::VIEW_CHANNEL), pool),
            Some(Refusal::NoManageChannels)
        );
        let unsent = Actor {
            permissions: None,
            ..actor(MEMBER, Permissions::empty())
        };
        assert_eq!(refusal(&unsent, pool), Some(Refusal::NoManageChannels));
        // Permissions in one channel say nothing about another channel's pool.
        assert_eq!(
            refusal(
                &actor(MEMBER, Permissions::MANAGE_CHANNELS),
                Pool::Channel(CHANNEL + 1)
            ),
            Some(Refusal::NoManageChannels)
        );
    }

    #[test]
    fn no_channel_pool_is_managed_from_a_direct_message_not_even_by_a_bot_admin() {
        let in_dm = Actor {
            guild: None,
            ..actor(ADMIN, Permissions::all())
        };
        assert_eq!(
            refusal(&in_dm, Pool::Channel(CHANNEL)),
            Some(Refusal::DirectMessage)
        );
    }
}
