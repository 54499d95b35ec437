//! Errors of the commands, and the central handler that turns every failure into one ephemeral
//! sentence for the user and one log line (never with a secret) for the operator.

use std::fmt;

use std::any::Any;

use poise::serenity_prelude as serenity;
use stargazer_keys::KeyError;
use stargazer_keys::i18n::{Locale, Texts};

use crate::HasKeyVault;
use crate::text::Voice;

/// Why a command failed. Users read [`CommandError::localized`], in their language; `Display`
/// is the English sentence (for the log, and for hosts that show errors themselves).
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
    /// The sentence for a user reading `locale` (the `Display` form is the English one, for
    /// the log and for hosts that show errors themselves).
    pub fn localized(&self, texts: &Texts, locale: &Locale) -> String {
        match self {
            CommandError::Key(err) => err.localized(texts, locale),
            CommandError::Discord(_) => texts.text(locale, "error-discord", &[]),
        }
    }

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
/// Implemented for every `E: Display`; the `Display` form is what the user sees, except for a
/// [`CommandError`] (or one in a `Box<dyn Error + Send + Sync>`), which is put in the user's
/// language.
pub trait UserFacing: fmt::Display + fmt::Debug + Send + Sync {}
impl<E: fmt::Display + fmt::Debug + Send + Sync> UserFacing for E {}

/// The sentence for the user: a [`CommandError`] in their language, any other error as its
/// `Display` says.
fn user_text<E: UserFacing + 'static>(error: &E, voice: &Voice) -> String {
    let any: &dyn Any = error;
    let ours = any.downcast_ref::<CommandError>().or_else(|| {
        any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
            .and_then(|boxed| boxed.downcast_ref::<CommandError>())
    });
    match ours {
        Some(err) => err.localized(voice.texts(), voice.locale()),
        None => error.to_string(),
    }
}

/// The central error handler: replies with one ephemeral sentence, in the user's language,
/// and logs the detail.
///
/// Use it as `on_error: |err| Box::pin(stargazer_keys_commands::on_error(err))`.
pub async fn on_error<U: HasKeyVault + Send + Sync + 'static, E: UserFacing + 'static>(
    error: poise::FrameworkError<'_, U, E>,
) {
    use poise::FrameworkError as F;
    let (ctx, text) = match error {
        F::Command { error, ctx, .. } => {
            tracing::warn!(command = %ctx.command().qualified_name, error = %error, "command failed");
            (ctx, user_text(&error, &Voice::of(ctx)))
        }
        F::CommandCheckFailed { error, ctx, .. } => match error {
            // The check has already told the user why.
            None => return,
            Some(error) => {
                tracing::warn!(command = %ctx.command().qualified_name, error = %error, "check failed");
                (ctx, user_text(&error, &Voice::of(ctx)))
            }
        },
        F::ArgumentParse { error, ctx, .. } => (
            ctx,
            Voice::of(ctx).t(
                "error-argument",
                &[(
                    "detail",
                    crate::slash::reply::escaped(&error.to_string()).into(),
                )],
            ),
        ),
        F::GuildOnly { ctx, .. } => (ctx, Voice::of(ctx).t("error-guild-only", &[])),
        F::CommandPanic { ctx, .. } => {
            tracing::error!(command = %ctx.command().qualified_name, "command panicked");
            (ctx, Voice::of(ctx).t("error-panic", &[]))
        }
        F::MissingUserPermissions { ctx, .. } => {
            (ctx, Voice::of(ctx).t("error-missing-permissions", &[]))
        }
        F::CommandStructureMismatch {
            description, ctx, ..
        } => {
            tracing::warn!(description, command = %ctx.command().qualified_name, "the registered command does not match; re-register the commands");
            let ctx = poise::Context::Application(ctx);
            (ctx, Voice::of(ctx).t("error-registration", &[]))
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
