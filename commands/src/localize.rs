//! The descriptions Discord shows for each command and option, from the catalogues
//! (`cmd-…` messages): English as the default, and every other language the bot speaks as
//! Discord's localization maps, so a German client shows German descriptions. Command and
//! option names stay English in every language: every message and help text quotes them.

use std::borrow::Cow;

use stargazer_keys::i18n::Texts;

/// The locales Discord accepts in localization maps
/// (<https://discord.com/developers/docs/reference#locales>); a catalogue in another language
/// is used for replies but cannot be registered.
const DISCORD_LOCALES: &[&str] = &[
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl",
    "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi", "th",
    "zh-CN", "ja", "zh-TW", "ko",
];

/// Sets the description of every command and option in `commands` (and their subcommands)
/// from `texts`: the English message as the description, each other language that has the
/// message as a localization. A command the catalogues do not describe (a host's own) is left
/// as it is.
pub fn localize_commands<U, E>(commands: &mut [poise::Command<U, E>], texts: &Texts) {
    let locales: Vec<String> = texts
        .locales()
        .into_iter()
        .filter(|tag| tag != "en" && DISCORD_LOCALES.contains(&tag.as_str()))
        .collect();
    for command in commands {
        localize(command, "cmd", texts, &locales);
    }
}

fn localize<U, E>(
    command: &mut poise::Command<U, E>,
    parent: &str,
    texts: &Texts,
    locales: &[String],
) {
    let id = format!("{parent}-{}", command.name);
    if let Some((english, localized)) = described(texts, locales, &id) {
        command.description = Some(english.into());
        command.description_localizations = localized.into();
    }
    for parameter in &mut command.parameters {
        let option = format!("{id}-opt-{}", parameter.name);
        if let Some((english, localized)) = described(texts, locales, &option) {
            parameter.description = Some(english.into());
            parameter.description_localizations = localized.into();
        }
    }
    for sub in &mut command.subcommands {
        localize(sub, &id, texts, locales);
    }
}

/// A Discord localization map: (locale, text) pairs.
type Localizations = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// Discord's bounds on a description, in characters: outside them it refuses the whole
/// registration, so an operator's over-long rewording is left out (with a warning).
const DESCRIPTION_CHARS: std::ops::RangeInclusive<usize> = 1..=100;

/// The English text of message `id`, and its translations, each within Discord's bounds.
fn described(texts: &Texts, locales: &[String], id: &str) -> Option<(String, Localizations)> {
    let fits = |tag: &str, text: String| {
        let chars = text.chars().count();
        if DESCRIPTION_CHARS.contains(&chars) {
            Some(text)
        } else {
            tracing::warn!(
                message = id,
                locale = tag,
                chars,
                "a command description is not 1 to 100 characters long; Discord would refuse it, so it is left out"
            );
            None
        }
    };
    let english = texts
        .text_exactly("en", id, &[])
        .and_then(|text| fits("en", text))?;
    let localized = locales
        .iter()
        .filter_map(|tag| {
            texts
                .text_exactly(tag, id, &[])
                .and_then(|text| fits(tag, text))
                .map(|text| (Cow::Owned(tag.clone()), Cow::Owned(text)))
        })
        .collect();
    Some((english, localized))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_discord_would_refuse_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("de")).unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        let long = "x".repeat(101);
        std::fs::write(
            dir.path().join("de/long.ftl"),
            format!("cmd-pool = {long}\ncmd-pool-add = Kurz genug.\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("en/long.ftl"),
            format!("cmd-pool-list = {long}\n"),
        )
        .unwrap();
        let texts = Texts::load(Some(dir.path())).unwrap();
        let locales = vec!["de".to_owned()];
        let (english, german) = described(&texts, &locales, "cmd-pool").unwrap();
        assert_eq!(
            english,
            "Shared API keys that others can use (with a daily limit)."
        );
        assert!(german.is_empty(), "{german:?}");
        assert_eq!(
            described(&texts, &locales, "cmd-pool-add").unwrap().1[0].1,
            "Kurz genug."
        );
        // An English description out of bounds leaves the command's own (its doc comment).
        assert!(described(&texts, &locales, "cmd-pool-list").is_none());
    }
}
