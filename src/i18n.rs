//! The sentences users read, in their language: [Project Fluent](https://projectfluent.org)
//! catalogues ([`Texts`]) and the languages an interaction asks for ([`Locale`]).
//!
//! The shipped catalogues (English and German) are built in, under `locales/<tag>/*.ftl` in
//! this crate: the core's messages (`keys.ftl`) and those of the Discord commands (the other
//! files), so one [`Texts`] (and one override directory) serves a whole bot. A host adds a
//! language, or rewords a sentence, with a directory of `.ftl` files named by
//! `STARGAZER_LOCALES_DIR` ([`Texts::load`]).
//!
//! A reply is in the first of the user's language and the server's that the bot speaks, else
//! in English. A message that language lacks comes from English (never from a third
//! language, so one reply speaks at most one language besides English); one that English
//! lacks too comes out as its id (and a warning in the log), so a reply is never blank.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The languages one interaction asks for, best first (the user's, then the server's). The
/// default asks for nothing, which is English.
///
/// ```
/// use stargazer_keys::i18n::Locale;
/// let locale = Locale::discord(Some("de"), Some("en-US"));
/// assert_eq!(locale.tags(), vec!["de".to_owned(), "en-US".to_owned()]);
/// // Text that is not a language tag is left out.
/// assert!(Locale::discord(Some("not a tag!"), None).is_english());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Locale {
    /// Shared, so that cloning a locale (once per call of a sibling tool) allocates nothing.
    wanted: Option<Arc<[LanguageIdentifier]>>,
}

impl Locale {
    /// English (no preference).
    pub const fn english() -> Self {
        Self { wanted: None }
    }

    /// One language, by its tag (`de`, `pt-BR`); English when `tag` is not a language tag.
    pub fn new(tag: &str) -> Self {
        Self::discord(Some(tag), None)
    }

    /// The languages of a Discord interaction: the user's `locale`, then the server's
    /// `guild_locale`. Either may be missing (a DM has no server); a value that is not a
    /// language tag is left out.
    pub fn discord(user: Option<&str>, guild: Option<&str>) -> Self {
        let mut wanted: Vec<LanguageIdentifier> = Vec::with_capacity(2);
        for tag in [user, guild].into_iter().flatten() {
            if let Ok(id) = tag.parse::<LanguageIdentifier>()
                && !wanted.contains(&id)
            {
                wanted.push(id);
            }
        }
        Self {
            wanted: (!wanted.is_empty()).then(|| wanted.into()),
        }
    }

    /// Whether only English is asked for (or nothing at all).
    pub fn is_english(&self) -> bool {
        self.wanted()
            .iter()
            .all(|id| id.language.as_str() == ENGLISH)
    }

    /// The tags asked for, best first.
    pub fn tags(&self) -> Vec<String> {
        self.wanted().iter().map(ToString::to_string).collect()
    }

    fn wanted(&self) -> &[LanguageIdentifier] {
        self.wanted.as_deref().unwrap_or_default()
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tags()).finish()
    }
}

/// One value of a message's placeable: text or a number (numbers choose plural forms by the
/// language's rules).
#[derive(Clone, Debug, PartialEq)]
pub enum Arg<'a> {
    /// Text, put in as it is (escape user input before).
    Text(Cow<'a, str>),
    /// A count or amount.
    Number(f64),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(text))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(text.as_str()))
    }
}

impl From<String> for Arg<'_> {
    fn from(text: String) -> Self {
        Arg::Text(Cow::Owned(text))
    }
}

macro_rules! number_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg<'_> {
            fn from(n: $t) -> Self {
                // For counts, which are far below 2^53, where f64 is exact. A Discord id is
                // not a count: pass it as text.
                debug_assert!((n as f64).abs() < 9_007_199_254_740_992.0, "pass ids as text");
                Arg::Number(n as f64)
            }
        }
    )*};
}
number_args!(u8, u16, u32, u64, usize, i32, i64);

/// Why an override directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TextsError {
    /// The directory or a file in it could not be read.
    #[error("cannot read the locales directory {}: {source}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A subdirectory's name is not a language tag.
    #[error(
        "{} is not named by a language tag (such as `de` or `pt-BR`): the locales directory holds one directory per language",
        path.display()
    )]
    NotATag {
        /// The subdirectory.
        path: PathBuf,
    },
    /// A file is not valid Fluent.
    #[error("{} is not valid Fluent (line {line}): {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line of the first error.
        line: usize,
        /// The parser's description of it.
        reason: String,
    },
}

/// The message catalogues of every language a bot speaks.
pub struct Texts {
    /// English first: the fallback of every message.
    bundles: Vec<Bundle>,
}

struct Bundle {
    id: LanguageIdentifier,
    bundle: FluentBundle<Arc<FluentResource>>,
}

impl fmt::Debug for Texts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Texts")
            .field("locales", &self.locales())
            .finish()
    }
}

/// The built-in catalogues: (language, file, Fluent source).
const BUILTIN: &[(&str, &str, &str)] = &[
    ("en", "keys.ftl", include_str!("../locales/en/keys.ftl")),
    ("en", "user.ftl", include_str!("../locales/en/user.ftl")),
    ("en", "pool.ftl", include_str!("../locales/en/pool.ftl")),
    ("en", "checks.ftl", include_str!("../locales/en/checks.ftl")),
    (
        "en",
        "notices.ftl",
        include_str!("../locales/en/notices.ftl"),
    ),
    ("en", "errors.ftl", include_str!("../locales/en/errors.ftl")),
    (
        "en",
        "commands.ftl",
        include_str!("../locales/en/commands.ftl"),
    ),
    ("de", "keys.ftl", include_str!("../locales/de/keys.ftl")),
    ("de", "user.ftl", include_str!("../locales/de/user.ftl")),
    ("de", "pool.ftl", include_str!("../locales/de/pool.ftl")),
    ("de", "checks.ftl", include_str!("../locales/de/checks.ftl")),
    (
        "de",
        "notices.ftl",
        include_str!("../locales/de/notices.ftl"),
    ),
    ("de", "errors.ftl", include_str!("../locales/de/errors.ftl")),
    (
        "de",
        "commands.ftl",
        include_str!("../locales/de/commands.ftl"),
    ),
];

/// The language every message has, and falls back to.
const ENGLISH: &str = "en";

impl Texts {
    /// The shipped catalogues, English and German (built once, shared).
    pub fn builtin() -> Arc<Texts> {
        static BUILTIN_TEXTS: OnceLock<Arc<Texts>> = OnceLock::new();
        BUILTIN_TEXTS
            .get_or_init(|| Arc::new(Texts::from_builtin()))
            .clone()
    }

    fn from_builtin() -> Texts {
        let mut texts = Texts {
            bundles: Vec::new(),
        };
        for (tag, file, source) in BUILTIN {
            let resource = FluentResource::try_new((*source).to_owned())
                .unwrap_or_else(|(_, errors)| panic!("built-in {tag}/{file}: {errors:?}"));
            let id: LanguageIdentifier = tag.parse().expect("built-in tags are valid");
            texts
                .bundle_mut(id)
                .add_resource_overriding(Arc::new(resource));
        }
        texts
    }

    /// The shipped catalogues with the `.ftl` files of `dir` laid over them: `dir/<tag>/*.ftl`,
    /// one directory per language. A message the directory defines replaces the shipped one;
    /// a language the bot does not ship is added. `None` is [`Texts::builtin`]'s catalogues.
    pub fn load(dir: Option<&Path>) -> Result<Arc<Texts>, TextsError> {
        let Some(dir) = dir else {
            return Ok(Texts::builtin());
        };
        let mut texts = Texts::from_builtin();
        let mut languages: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| TextsError::Read {
                path: dir.to_owned(),
                source,
            })?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|source| TextsError::Read {
                path: dir.to_owned(),
                source,
            })?;
        languages.sort();
        // Hidden directories (`.git`) are not languages.
        let hidden = |path: &Path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'))
        };
        for language in languages.into_iter().filter(|p| p.is_dir() && !hidden(p)) {
            let id: LanguageIdentifier = language
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse().ok())
                .ok_or_else(|| TextsError::NotATag {
                    path: language.clone(),
                })?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(&language)
                .map_err(|source| TextsError::Read {
                    path: language.clone(),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "ftl"))
                .collect();
            files.sort();
            for file in files {
                let source = std::fs::read_to_string(&file).map_err(|source| TextsError::Read {
                    path: file.clone(),
                    source,
                })?;
                let resource = FluentResource::try_new(source).map_err(|(resource, errors)| {
                    let first = &errors[0];
                    TextsError::Syntax {
                        path: file.clone(),
                        // The entry that failed, rather than where the parser gave up
                        // (often the end of the file).
                        line: line_of(
                            resource.source(),
                            first
                                .slice
                                .as_ref()
                                .map_or(first.pos.start, |entry| entry.start),
                        ),
                        reason: first.kind.to_string(),
                    }
                })?;
                texts
                    .bundle_mut(id.clone())
                    .add_resource_overriding(Arc::new(resource));
            }
        }
        Ok(Arc::new(texts))
    }

    fn bundle_mut(&mut self, id: LanguageIdentifier) -> &mut FluentBundle<Arc<FluentResource>> {
        let at = match self.bundles.iter().position(|b| b.id == id) {
            Some(at) => at,
            None => {
                let mut bundle = FluentBundle::new_concurrent(vec![id.clone()]);
                // Discord shows the isolation marks Fluent puts around placeables as boxes
                // in some clients; the text here is one direction.
                bundle.set_use_isolating(false);
                let english = id.language.as_str() == ENGLISH && id.region.is_none();
                let bundle = Bundle { id, bundle };
                if english {
                    self.bundles.insert(0, bundle);
                    0
                } else {
                    self.bundles.push(bundle);
                    self.bundles.len() - 1
                }
            }
        };
        &mut self.bundles[at].bundle
    }

    /// The languages these catalogues hold, English first.
    pub fn locales(&self) -> Vec<String> {
        self.bundles.iter().map(|b| b.id.to_string()).collect()
    }

    /// The message `id` in the first language of `locale` the bot speaks (an exact tag first,
    /// then the same language: `de-AT` finds `de`), else in English, else the id itself.
    ///
    /// ```
    /// use stargazer_keys::i18n::{Locale, Texts};
    /// let texts = Texts::builtin();
    /// let german = texts.text(&Locale::new("de"), "duration", &[("hours", 2.into()), ("minutes", 1.into())]);
    /// assert_eq!(german, "2 Stunden 1 Minute");
    /// let english = texts.text(&Locale::discord(Some("fr"), None), "duration", &[("hours", 1.into()), ("minutes", 0.into())]);
    /// assert_eq!(english, "1 hour");
    /// ```
    pub fn text(&self, locale: &Locale, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        let spoken = self.language_of(locale).filter(|b| has_value(b, id));
        match spoken.or_else(|| self.bundles.first().filter(|b| has_value(b, id))) {
            Some(bundle) => format(bundle, id, args),
            None => {
                tracing::warn!(message = id, "no catalogue has this message");
                id.to_owned()
            }
        }
    }

    /// The language a reply to `locale` is in: the first it asks for that the bot speaks (by
    /// exact tag, then by language), or none (English).
    fn language_of(&self, locale: &Locale) -> Option<&Bundle> {
        locale.wanted().iter().find_map(|wanted| {
            self.bundles.iter().find(|b| b.id == *wanted).or_else(|| {
                self.bundles
                    .iter()
                    .find(|b| b.id.language == wanted.language)
            })
        })
    }

    /// The message `id` in exactly the language `tag`, if that language has it (for Discord's
    /// localization maps, which should hold only real translations).
    pub fn text_exactly(&self, tag: &str, id: &str, args: &[(&str, Arg<'_>)]) -> Option<String> {
        let wanted: LanguageIdentifier = tag.parse().ok()?;
        self.bundles
            .iter()
            .find(|b| b.id == wanted && has_value(b, id))
            .map(|bundle| format(bundle, id, args))
    }
}

/// Whether the bundle has message `id` with a value (a message of attributes alone is no
/// sentence).
fn has_value(bundle: &Bundle, id: &str) -> bool {
    bundle
        .bundle
        .get_message(id)
        .is_some_and(|message| message.value().is_some())
}

fn format(bundle: &Bundle, id: &str, args: &[(&str, Arg<'_>)]) -> String {
    let Some(pattern) = bundle.bundle.get_message(id).and_then(|m| m.value()) else {
        tracing::warn!(message = id, locale = %bundle.id, "the message has no value");
        return id.to_owned();
    };
    let mut fluent_args = FluentArgs::with_capacity(args.len());
    for (name, value) in args {
        let value = match value {
            Arg::Text(text) => FluentValue::String(Cow::Borrowed(text.as_ref())),
            Arg::Number(n) => FluentValue::from(*n),
        };
        fluent_args.set(*name, value);
    }
    let mut errors = Vec::new();
    let text = bundle
        .bundle
        .format_pattern(pattern, Some(&fluent_args), &mut errors);
    if !errors.is_empty() {
        // The errors name messages and variables, never their values.
        tracing::warn!(message = id, locale = %bundle.id, ?errors, "the message did not format cleanly");
    }
    text.into_owned()
}

/// The 1-based line of byte offset `at` in `source`.
fn line_of(source: &str, at: usize) -> usize {
    source[..at.min(source.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_message_falls_back_to_english_then_to_its_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::create_dir_all(dir.path().join("de")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("en/host.ftl"), "only-english = Hello\n").unwrap();
        // A German message of attributes alone is no sentence: English it is.
        std::fs::write(
            dir.path().join("de/host.ftl"),
            "only-english =\n    .title = Hallo\n",
        )
        .unwrap();
        let texts = Texts::load(Some(dir.path())).unwrap();
        let german = Locale::new("de");
        assert_eq!(texts.text(&german, "only-english", &[]), "Hello");
        assert_eq!(
            texts.text(&german, "no-such-message", &[]),
            "no-such-message"
        );
        assert_eq!(texts.locales(), ["en", "de"]);
    }

    #[test]
    fn a_locale_is_english_only_when_it_asks_for_english_or_nothing() {
        assert!(Locale::english().is_english());
        assert!(Locale::discord(Some("en-US"), Some("en-GB")).is_english());
        assert!(!Locale::discord(Some("en-US"), Some("de")).is_english());
    }

    #[test]
    fn the_user_language_wins_then_the_server_language_then_english() {
        let texts = Texts::builtin();
        let args = [("hours", Arg::from(3u64)), ("minutes", Arg::from(0u64))];
        let pick = |user, guild| texts.text(&Locale::discord(user, guild), "duration", &args);
        assert_eq!(pick(Some("de"), Some("en-US")), "3 Stunden");
        assert_eq!(pick(Some("en-GB"), Some("de")), "3 hours");
        assert_eq!(pick(Some("fr"), Some("de")), "3 Stunden");
        assert_eq!(pick(Some("fr"), None), "3 hours");
        assert_eq!(pick(None, None), "3 hours");
    }
}
