//! The syntax check of a secret a user types (ids are checked by their types: `crate::ids`).

use super::KeyError;

/// Longest secret accepted, in characters (Discord's modal input limit).
pub const MAX_SECRET_LEN: usize = 4_000;

/// Trims a secret and checks it can be a key: not empty, at most 4,000 characters, no
/// whitespace, control characters or invisible formatting characters (Unicode category Cf)
/// inside. Returns the trimmed secret.
pub fn check_secret(secret: &str) -> Result<&str, KeyError> {
    /// The characters of Unicode general category Cf (format), as of Unicode 15.1.
    const FORMAT: &[(char, char)] = &[
        ('\u{00AD}', '\u{00AD}'),
        ('\u{0600}', '\u{0605}'),
        ('\u{061C}', '\u{061C}'),
        ('\u{06DD}', '\u{06DD}'),
        ('\u{070F}', '\u{070F}'),
        ('\u{0890}', '\u{0891}'),
        ('\u{08E2}', '\u{08E2}'),
        ('\u{180E}', '\u{180E}'),
        ('\u{200B}', '\u{200F}'),
        ('\u{202A}', '\u{202E}'),
        ('\u{2060}', '\u{2064}'),
        ('\u{2066}', '\u{206F}'),
        ('\u{FEFF}', '\u{FEFF}'),
        ('\u{FFF9}', '\u{FFFB}'),
        ('\u{110BD}', '\u{110BD}'),
        ('\u{110CD}', '\u{110CD}'),
        ('\u{13430}', '\u{1343F}'),
        ('\u{1BCA0}', '\u{1BCA3}'),
        ('\u{1D173}', '\u{1D17A}'),
        ('\u{E0001}', '\u{E0001}'),
        ('\u{E0020}', '\u{E007F}'),
    ];
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(KeyError::EmptyKey);
    }
    let len = secret.chars().count();
    if len > MAX_SECRET_LEN {
        return Err(KeyError::KeyTooLong(len));
    }
    if secret.chars().any(char::is_whitespace) {
        return Err(KeyError::KeyHasWhitespace);
    }
    if secret.chars().any(char::is_control) {
        return Err(KeyError::KeyHasControlCharacters);
    }
    if secret
        .chars()
        .any(|c| FORMAT.iter().any(|(low, high)| (*low..=*high).contains(&c)))
    {
        return Err(KeyError::KeyHasFormatCharacters);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed_and_checked() {
        assert_eq!(check_secret("  abc \n").unwrap(), "abc");
        assert!(matches!(check_secret(" \n\t"), Err(KeyError::EmptyKey)));
        assert!(matches!(
            check_secret("ab cd"),
            Err(KeyError::KeyHasWhitespace)
        ));
        assert!(matches!(
            check_secret("ab\0cd"),
            Err(KeyError::KeyHasControlCharacters)
        ));
        for format in [
            '\u{202e}',
            '\u{200b}',
            '\u{2066}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
        ] {
            assert!(
                matches!(
                    check_secret(&format!("sk-ab{format}cd")),
                    Err(KeyError::KeyHasFormatCharacters)
                ),
                "{format:?}"
            );
        }
        assert_eq!(check_secret("sk-ключ-鍵-é").unwrap(), "sk-ключ-鍵-é");
        assert!(matches!(
            check_secret(&"x".repeat(4_001)),
            Err(KeyError::KeyTooLong(4_001))
        ));
    }
}
