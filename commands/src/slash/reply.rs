//! Ephemeral replies and the text of listings.

use poise::serenity_prelude as serenity;
use time::OffsetDateTime;

use crate::text::Voice;
use crate::{CommandError, Context, HasKeyVault};

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2_000;

/// Replies with an ephemeral message that mentions nobody.
pub async fn ephemeral<U: HasKeyVault + Send + Sync + 'static, E>(
    ctx: Context<'_, U, E>,
    text: &str,
) -> Result<(), E>
where
    E: From<CommandError>,
{
    ctx.send(
        poise::CreateReply::default()
            .content(fit(text, &Voice::of(ctx)))
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    )
    .await
    .map_err(CommandError::from)?;
    Ok(())
}

/// `text` with its first letter in upper case.
pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Cuts a message to Discord's limit at a line boundary, saying how many lines were left out.
pub(crate) fn fit(text: &str, voice: &Voice) -> String {
    if text.len() <= MAX_CONTENT {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let more = format!(
            "\n{}",
            voice.t("reply-more-lines", &[("count", (lines.len() - i).into())])
        );
        if out.len() + line.len() + 1 + more.len() > MAX_CONTENT {
            out.push_str(&more);
            return out;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

pub use stargazer_keys::escaped;

/// A Discord timestamp that each reader sees in their own time zone, e.g. `<t:1700000000:D>`.
pub(crate) fn date(voice: &Voice, at: Option<OffsetDateTime>) -> String {
    at.map_or_else(
        || voice.t("reply-unknown-date", &[]),
        |at| format!("<t:{}:D>", at.unix_timestamp()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_line_with_a_count() {
        let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let english = Voice::new(stargazer_keys::i18n::Texts::builtin(), Default::default());
        let cut = fit(&text, &english);
        assert!(cut.len() <= MAX_CONTENT);
        assert!(cut.ends_with("more lines"), "{cut}");
        assert_eq!(fit("short", &english), "short");
        let german = Voice::new(
            stargazer_keys::i18n::Texts::builtin(),
            stargazer_keys::i18n::Locale::new("de"),
        );
        assert!(fit(&text, &german).ends_with("weitere Zeilen"));
    }

    #[test]
    fn echoed_text_shows_control_and_bidi_characters_as_escapes() {
        assert_eq!(escaped("bad\u{0}\u{1b}[31mname"), r"bad\u{0}\u{1b}[31mname");
        assert_eq!(
            escaped("a\u{202e}b\u{2066}c\u{200b}d\ne"),
            r"a\u{202e}b\u{2066}c\u{200b}d\u{a}e"
        );
        assert_eq!(escaped("OpenAI (brave) é 漢字"), "OpenAI (brave) é 漢字");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{2069}', '\u{feff}', '\u{7f}',
            '\u{85}',
        ] {
            assert!(!escaped(&c.to_string()).contains(c), "{c:?}");
        }
    }
}
