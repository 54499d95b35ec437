//! Secret values: a third-party API key as the vault hands it out.
//!
//! [`ApiKey`] keeps the secret in a [`SecretString`] (zeroized on drop); its `Debug` form shows
//! the masked form `…a1b2` at most, so a stray `{:?}` in a log line or a panic message cannot leak
//! it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// How many trailing characters a masked secret shows.
const MASK_VISIBLE: usize = 4;
/// Secrets shorter than this are masked completely: four characters of an eight-character
/// secret would be half of it.
const MASK_MIN_LEN: usize = 12;

/// A third-party API key (or token), held so that it cannot be printed by accident.
///
/// ```
/// use stargazer_keys::ApiKey;
/// let key = ApiKey::new("sk-test-0123456789abcd");
/// assert_eq!(key.masked(), "…abcd");
/// assert_eq!(format!("{key:?}"), "ApiKey(…abcd)");
/// assert_eq!(key.expose(), "sk-test-0123456789abcd");
/// ```
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// The secret itself, for the one place that sends it to the service.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `…` and the last four characters, or `…` alone for a short secret.
    pub fn masked(&self) -> String {
        mask(self.expose())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.masked())
    }
}

impl From<SecretString> for ApiKey {
    fn from(secret: SecretString) -> Self {
        Self(secret)
    }
}

/// Masks a secret for display: `…` followed by its last four characters, or `…` alone when the
/// secret is shorter than twelve characters.
///
/// ```
/// assert_eq!(stargazer_keys::mask("BSAabcdefghijklmnop1234"), "…1234");
/// assert_eq!(stargazer_keys::mask("short"), "…");
/// ```
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < MASK_MIN_LEN {
        return "…".to_owned();
    }
    let tail: String = secret.chars().skip(count - MASK_VISIBLE).collect();
    format!("…{tail}")
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

/// [`escaped`] text in double quotes, for error sentences that quote what was given.
pub fn printable(text: &str) -> String {
    format!("\"{}\"", escaped(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_text_escapes_control_and_bidi_characters() {
        let shown = super::printable("a\u{1b}[31m\u{0}\u{202e}b\u{2066}");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(!shown.contains(['\u{202e}', '\u{2066}']), "{shown}");
        assert!(shown.starts_with("\"a"), "{shown}");
    }
}
