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
/// assert_eq!(stargazer_keys::secret::mask("BSAabcdefghijklmnop1234"), "…1234");
/// assert_eq!(stargazer_keys::secret::mask("short"), "…");
/// ```
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < MASK_MIN_LEN {
        return "…".to_owned();
    }
    let tail: String = secret.chars().skip(count - MASK_VISIBLE).collect();
    format!("…{tail}")
}

/// User or operator text made safe to show: quoted, with control and bidirectional-format
/// characters escaped (`"a\u{1b}[31m"`), so it cannot rewrite a terminal or a message.
pub fn printable(text: &str) -> String {
    format!("{:?}", text)
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
