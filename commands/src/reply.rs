//! Ephemeral replies and the text of listings.

use poise::serenity_prelude as serenity;
use time::OffsetDateTime;

use crate::{CommandError, Context};

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2_000;

/// Replies with an ephemeral message that mentions nobody.
pub async fn ephemeral<U: Send + Sync + 'static, E>(
    ctx: Context<'_, U, E>,
    text: &str,
) -> Result<(), E>
where
    E: From<CommandError>,
{
    ctx.send(
        poise::CreateReply::default()
            .content(fit(text))
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    )
    .await
    .map_err(CommandError::from)?;
    Ok(())
}

/// Cuts a message to Discord's limit at a line boundary, saying how many lines were left out.
pub fn fit(text: &str) -> String {
    if text.len() <= MAX_CONTENT {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let more = format!("\n… and {} more lines", lines.len() - i);
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

/// User text made safe to echo: control characters (NUL, ESC, line breaks...), Unicode bidi
/// controls and zero-width characters become visible `\u{1b}`-style escapes, so an echo can
/// neither carry a terminal escape into a log or client nor reorder or hide the text around it.
///
/// For example, an ESC character becomes the six characters `\u{1b}`.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters (general category Cc), the bidi controls (U+061C, U+200E, U+200F,
/// U+202A..=U+202E, U+2066..=U+2069) and the zero-width characters (U+200B..=U+200D, U+2060,
/// U+FEFF).
fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// A Discord timestamp that each reader sees in their own time zone, e.g. `<t:1700000000:D>`.
pub fn date(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(
        || "at an unknown date".to_owned(),
        |at| format!("<t:{}:D>", at.unix_timestamp()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_line_with_a_count() {
        let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let cut = fit(&text);
        assert!(cut.len() <= MAX_CONTENT);
        assert!(cut.ends_with("more lines"));
        assert_eq!(fit("short"), "short");
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
