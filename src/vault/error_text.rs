//! [`KeyError`] as a whole sentence in the user's language (its `Display` is the English
//! clause the CLI and the log use).

use crate::gitea::BaseUrlError;
use crate::i18n::{Arg, Locale, Texts};
use crate::secret::escaped;
use crate::storage::StorageError;

use super::{KeyError, MAX_SECRET_LEN};

impl KeyError {
    /// The sentence for a user reading `locale`: capitalised, with its full stop, anything of
    /// the user's input it quotes escaped. Details of the store (what Redis or the database
    /// said) stay in English.
    ///
    /// ```
    /// use stargazer_keys::KeyError;
    /// use stargazer_keys::i18n::{Locale, Texts};
    /// let texts = Texts::builtin();
    /// assert_eq!(
    ///     KeyError::EmptyKey.localized(&texts, &Locale::english()),
    ///     "The key is empty: paste the key itself."
    /// );
    /// assert_eq!(
    ///     KeyError::EmptyKey.localized(&texts, &Locale::new("de")),
    ///     "Der Schlüssel ist leer: Füge den Schlüssel selbst ein."
    /// );
    /// ```
    pub fn localized(&self, texts: &Texts, locale: &Locale) -> String {
        let t = |id: &str, args: &[(&str, Arg<'_>)]| texts.text(locale, id, args);
        match self {
            KeyError::UnknownService(err) => t(
                "key-error-unknown-service",
                &[
                    ("service", err.name().into()),
                    ("known", err.known().into()),
                ],
            ),
            KeyError::InvalidService(err) => t(
                "key-error-service-name",
                &[("text", format!("{:?}", escaped(err.as_typed())).into())],
            ),
            KeyError::EmptyKey => t("key-error-empty", &[]),
            KeyError::KeyHasWhitespace => t("key-error-whitespace", &[]),
            KeyError::KeyHasControlCharacters => t("key-error-control", &[]),
            KeyError::KeyHasFormatCharacters => t("key-error-format", &[]),
            KeyError::KeyTooLong(length) => t(
                "key-error-too-long",
                &[("length", (*length).into()), ("max", MAX_SECRET_LEN.into())],
            ),
            KeyError::InvalidKeyId(err) => t(
                "key-error-key-id",
                &[("text", format!("{:?}", escaped(err.as_typed())).into())],
            ),
            KeyError::InvalidBaseUrl(err) => t(base_url_message(*err), &[]),
            KeyError::InvalidGiteaValue => t("key-error-gitea-json", &[]),
            KeyError::KeyRejected { service, status } => t(
                "key-error-rejected",
                &[("service", service.into()), ("status", status.into())],
            ),
            KeyError::PoolLimitTooHigh { limit, max } => t(
                "key-error-pool-limit-too-high",
                &[("limit", (*limit).into()), ("max", (*max).into())],
            ),
            KeyError::Storage(err) => storage_sentence(texts, locale, err),
            KeyError::ValuesRemain { keys, source } => t(
                "key-error-values-remain",
                &[
                    ("keys", (*keys).into()),
                    ("detail", source.to_string().into()),
                ],
            ),
            KeyError::PoolFull { pool, service, max } => t(
                "key-error-pool-full",
                &[
                    ("pool", pool.localized(texts, locale).into()),
                    ("service", service.into()),
                    ("max", (*max).into()),
                ],
            ),
            KeyError::DataKeyChurn => t("key-error-data-key-churn", &[]),
            KeyError::DataKeys(err) => {
                t("key-error-data-keys", &[("detail", err.to_string().into())])
            }
            KeyError::WriteInDoubt { cause } => t(
                "key-error-write-in-doubt",
                &[("cause", clause(&cause.localized(texts, locale)).into())],
            ),
        }
    }
}

fn base_url_message(err: BaseUrlError) -> &'static str {
    match err {
        BaseUrlError::Shape => "key-error-gitea-url-shape",
        BaseUrlError::NotAUrl => "key-error-gitea-url-not-url",
        BaseUrlError::Scheme => "key-error-gitea-url-scheme",
        BaseUrlError::UserInfo => "key-error-gitea-url-user",
        BaseUrlError::QueryOrFragment => "key-error-gitea-url-query",
        BaseUrlError::LocalAddress => "key-error-gitea-url-private",
        BaseUrlError::HostNotAllowedForPools => "key-error-gitea-url-pool-host",
    }
}

fn storage_sentence(texts: &Texts, locale: &Locale, err: &StorageError) -> String {
    let id = match err {
        StorageError::NotReplicated { .. } => "key-error-not-replicated",
        _ => "key-error-storage",
    };
    texts.text(locale, id, &[("detail", err.to_string().into())])
}

/// A sentence as a clause inside another: without its full stop, and with a lower-case first
/// letter unless the first word is an abbreviation (`API`, `NUL`).
fn clause(sentence: &str) -> String {
    let body = sentence.strip_suffix('.').unwrap_or(sentence);
    let mut chars = body.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => first
            .to_lowercase()
            .chain(body[first.len_utf8()..].chars())
            .collect(),
        _ => body.to_owned(),
    }
}
