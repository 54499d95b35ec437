//! The language of an interaction, and its sentences from the vault's catalogues
//! ([`stargazer_keys::i18n`]). Every sentence a user reads comes through here: the command
//! code holds message ids, never English text.

use poise::serenity_prelude as serenity;
use stargazer_keys::i18n::{Arg, Locale};

use crate::{Context, HasKeyVault};

/// The user's language, then the server's (English for prefix commands, which carry neither).
pub fn locale_of<U, E>(ctx: Context<'_, U, E>) -> Locale {
    match ctx {
        poise::Context::Application(actx) => Locale::discord(
            Some(&actx.interaction.locale),
            actx.interaction.guild_locale.as_deref(),
        ),
        poise::Context::Prefix(_) => Locale::english(),
    }
}

/// The language of a modal's submit (the user may have switched it while the form was open).
pub(crate) fn locale_of_submit(submit: &serenity::ModalInteraction) -> Locale {
    Locale::discord(Some(&submit.locale), submit.guild_locale.as_deref())
}

/// The message `id` in the invoking user's language.
pub(crate) fn t<U: HasKeyVault, E>(
    ctx: Context<'_, U, E>,
    id: &str,
    args: &[(&str, Arg<'_>)],
) -> String {
    ctx.data()
        .key_vault()
        .texts()
        .text(&locale_of(ctx), id, args)
}

/// The catalogues and the language of one interaction, for code that writes several sentences
/// or has no poise context at hand.
#[derive(Clone, Debug)]
pub(crate) struct Voice {
    texts: std::sync::Arc<stargazer_keys::i18n::Texts>,
    locale: Locale,
}

impl Voice {
    /// A voice from its parts.
    #[cfg(test)]
    pub(crate) fn new(texts: std::sync::Arc<stargazer_keys::i18n::Texts>, locale: Locale) -> Self {
        Self { texts, locale }
    }

    /// The voice of the invoking user.
    pub(crate) fn of<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Self {
        Self {
            texts: ctx.data().key_vault().texts().clone(),
            locale: locale_of(ctx),
        }
    }

    /// The voice of a modal's submit.
    pub(crate) fn of_submit(
        vault: &stargazer_keys::KeyVault,
        submit: &serenity::ModalInteraction,
    ) -> Self {
        Self {
            texts: vault.texts().clone(),
            locale: locale_of_submit(submit),
        }
    }

    /// English, for text with no interaction behind it (a DM the bot starts).
    pub(crate) fn english(vault: &stargazer_keys::KeyVault) -> Self {
        Self {
            texts: vault.texts().clone(),
            locale: Locale::english(),
        }
    }

    /// The message `id`.
    pub(crate) fn t(&self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.texts.text(&self.locale, id, args)
    }

    /// The catalogues.
    pub(crate) fn texts(&self) -> &stargazer_keys::i18n::Texts {
        &self.texts
    }

    /// The language.
    pub(crate) fn locale(&self) -> &Locale {
        &self.locale
    }
}
