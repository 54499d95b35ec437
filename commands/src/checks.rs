//! Permission checks, enforced in our code (Discord's UI hints are not enough). They sit on the
//! leaf commands, reply ephemerally with the reason, and stay silent for autocomplete.

use poise::serenity_prelude as serenity;

use crate::{CommandError, Context, HasKeyVault, reply};

/// Whether this invocation is an autocomplete request (no reply possible).
fn is_autocomplete<U, E>(ctx: Context<'_, U, E>) -> bool {
    matches!(
        ctx,
        poise::Context::Application(actx)
            if actx.interaction_type == poise::CommandInteractionType::Autocomplete
    )
}

/// Whether the author is a bot admin (`ADMIN_USER_IDS`).
pub fn is_bot_admin<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> bool {
    ctx.data()
        .key_vault()
        .config()
        .admin_user_ids
        .contains(&ctx.author().id.get())
}

/// The permissions Discord resolved for the author in this channel, sent with the interaction.
fn channel_permissions<U, E>(ctx: Context<'_, U, E>) -> Option<serenity::Permissions> {
    match ctx {
        poise::Context::Application(actx) => {
            actx.interaction.member.as_ref().and_then(|m| m.permissions)
        }
        poise::Context::Prefix(_) => None,
    }
}

async fn refuse<U: Send + Sync + 'static, E>(ctx: Context<'_, U, E>, why: &str) -> Result<bool, E>
where
    E: From<CommandError>,
{
    if !is_autocomplete(ctx) {
        reply::ephemeral(ctx, why).await?;
    }
    Ok(false)
}

/// Check: only bot admins manage the global pool.
pub async fn global_pool_manager<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Result<bool, E>
where
    E: From<CommandError>,
{
    if is_bot_admin(ctx) {
        return Ok(true);
    }
    refuse(
        ctx,
        "Only bot admins can manage the global pool. To share a key in this channel, use `/pool channel add` (it needs the Manage Channels permission).",
    )
    .await
}

/// Check: a channel's pool is managed by members with Manage Channels there, or bot admins;
/// never from a DM.
pub async fn channel_pool_manager<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Result<bool, E>
where
    E: From<CommandError>,
{
    if ctx.guild_id().is_none() {
        return refuse(
            ctx,
            "Channel pools exist only in server channels, and this is a direct message.",
        )
        .await;
    }
    if is_bot_admin(ctx) {
        return Ok(true);
    }
    let allowed = channel_permissions(ctx).is_some_and(|perms| {
        perms.contains(serenity::Permissions::MANAGE_CHANNELS)
            || perms.contains(serenity::Permissions::ADMINISTRATOR)
    });
    if allowed {
        return Ok(true);
    }
    refuse(
        ctx,
        "You need the Manage Channels permission in this channel to manage its key pool.",
    )
    .await
}
