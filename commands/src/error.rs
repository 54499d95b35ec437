//! Errors of the commands, and the central handler that turns every failure into one ephemeral
//! sentence for the user and one log line (never with a secret) for the operator.

use std::fmt;

use poise::serenity_prelude as serenity;
use stargazer_keys::KeyError;

/// Why a command failed. Every variant's `Display` is the sentence the user sees.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A vault operation failed or was refused.
    #[error("{}", sentence(.0))]
    Key(#[from] KeyError),
    /// Discord refused or did not answer a request.
    #[error("Discord did not accept the reply; please try again.")]
    Discord(#[from] serenity::Error),
}

/// A core error as a sentence: capitalised, ending with a full stop, with anything of the
/// user's input it quotes escaped.
fn sentence(err: &KeyError) -> String {
    let mut out = crate::slash::reply::capitalised(&crate::slash::reply::escaped(&err.to_string()));
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl CommandError {
    /// The detail for the log: what Discord or the store said, never a secret.
    pub fn log_detail(&self) -> String {
        match self {
            CommandError::Discord(err) => format!("serenity: {err}"),
            other => other.to_string(),
        }
    }
}

/// What poise's error-hook needs to know about the host's error type.
///
/// Implemented for every `E: Display`; the `Display` form is what the user sees.
pub trait UserFacing: fmt::Display + fmt::Debug + Send + Sync {}
impl<E: fmt::Display + fmt::Debug + Send + Sync> UserFacing for E {}

/// The central error handler: replies with one ephemeral sentence and logs the detail.
///
/// Use it as `on_error: |err| Box::pin(stargazer_keys_commands::on_error(err))`.
pub async fn on_error<U: Send + Sync + 'static, E: UserFacing + 'static>(
    error: poise::FrameworkError<'_, U, E>,
) {
    use poise::FrameworkError as F;
    let (ctx, text) = match error {
        F::Command { error, ctx, .. } => {
            tracing::warn!(command = %ctx.command().qualified_name, error = %error, "command failed");
            (ctx, error.to_string())
        }
        F::CommandCheckFailed { error, ctx, .. } => match error {
            // The check has already told the user why.
            None => return,
            Some(error) => {
                tracing::warn!(command = %ctx.command().qualified_name, error = %error, "check failed");
                (ctx, error.to_string())
            }
        },
        F::ArgumentParse { error, ctx, .. } => (
            ctx,
            format!(
                "That option is not valid: {}.",
                crate::slash::reply::escaped(&error.to_string())
            ),
        ),
        F::GuildOnly { ctx, .. } => (
            ctx,
            "This command works only in a server channel.".to_owned(),
        ),
        F::CommandPanic { ctx, .. } => {
            tracing::error!(command = %ctx.command().qualified_name, "command panicked");
            (
                ctx,
                "Something went wrong on our side; it has been logged.".to_owned(),
            )
        }
        F::MissingUserPermissions { ctx, .. } => (
            ctx,
            "You do not have the permission this command needs here.".to_owned(),
        ),
        F::CommandStructureMismatch {
            description, ctx, ..
        } => {
            tracing::warn!(description, command = %ctx.command().qualified_name, "the registered command does not match; re-register the commands");
            (
                poise::Context::Application(ctx),
                "This command's registration is out of date; try again in a minute.".to_owned(),
            )
        }
        other => {
            tracing::warn!("unhandled framework error: {other}");
            return;
        }
    };
    let reply = poise::CreateReply::default()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(err) = ctx.send(reply).await {
        tracing::warn!(error = %err, "cannot send the error reply");
    }
}
