//! The service catalogue: which third-party services take keys, what they are called, where
//! to get a key, and which environment variables hold the operator's own key.
//!
//! Built-in entries cover the common services; the host bot adds entries in code
//! ([`Catalogue::with_service`]) and the operator in a TOML file (`STARGAZER_SERVICES_FILE`):
//!
//! ```toml
//! [[service]]
//! id = "perplexity"
//! display_name = "Perplexity"
//! signup_url = "https://www.perplexity.ai/settings/api"
//! env = ["PERPLEXITY_API_KEY"]
//! # Optional: a cheap authenticated request that checks a key before it is saved
//! # (when STARGAZER_VALIDATE_KEYS=true). The key goes in `header`, after `prefix`.
//! check = { url = "https://api.perplexity.ai/models", header = "Authorization", prefix = "Bearer " }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Longest service id.
pub const MAX_SERVICE_ID_LEN: usize = 32;
/// Most autocomplete suggestions Discord accepts.
pub const MAX_SUGGESTIONS: usize = 25;

/// One service that takes API keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Service {
    /// The id used in commands and storage keys (`brave`).
    pub id: String,
    /// The name users see (`Brave Search`).
    pub display_name: String,
    /// Where a user gets a key.
    #[serde(default)]
    pub signup_url: Option<String>,
    /// Environment variables holding the operator's key, besides `{ID}_API_KEY`.
    #[serde(default)]
    pub env: Vec<String>,
    /// How to check a key with the service before saving it, if it can be checked.
    #[serde(default)]
    pub check: Option<KeyCheckSpec>,
}

/// A cheap authenticated GET that tells whether the service accepts a key: 401 or 403 means
/// it does not. The key is sent only in the named header, only to this URL (or to the origin
/// that `STARGAZER_VALIDATE_BASE_URL_<SERVICE>` puts in its place), and never follows a
/// redirect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCheckSpec {
    /// The full URL: `https://host/path?query`.
    pub url: String,
    /// The header that carries the key (`Authorization`, `x-api-key`, ...).
    pub header: String,
    /// What goes before the key in that header (`Bearer `), if anything.
    #[serde(default)]
    pub prefix: String,
    /// Other headers the service requires (a version, a user agent).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl KeyCheckSpec {
    /// A GET of `url` with the key in `header`, after `prefix`.
    pub fn new(
        url: impl Into<String>,
        header: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            header: header.into(),
            prefix: prefix.into(),
            headers: BTreeMap::new(),
        }
    }

    /// A `Bearer` token in `Authorization`.
    pub fn bearer(url: impl Into<String>) -> Self {
        Self::new(url, "Authorization", "Bearer ")
    }

    /// Adds a header the service requires.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The URL with its origin (`scheme://host[:port]`) replaced by `origin` when given.
    /// Either that does not parse as a URL gives the URL as it is (whose check is then refused
    /// where it is sent).
    pub fn url_at(&self, origin: Option<&str>) -> String {
        let moved = origin.and_then(|origin| {
            let origin = url::Url::parse(origin).ok()?;
            let mut url = url::Url::parse(&self.url).ok()?;
            url.set_scheme(origin.scheme()).ok()?;
            url.set_host(origin.host_str()).ok()?;
            url.set_port(origin.port()).ok()?;
            Some(url.to_string())
        });
        moved.unwrap_or_else(|| self.url.clone())
    }
}

impl Service {
    /// A service with no sign-up URL and no extra variables.
    pub fn new(id: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            display_name: display_name.into(),
            signup_url: None,
            env: Vec::new(),
            check: None,
        }
    }

    /// Sets how a key is checked before it is saved.
    pub fn check(mut self, check: KeyCheckSpec) -> Self {
        self.check = Some(check);
        self
    }

    /// Sets the sign-up URL.
    pub fn signup_url(mut self, url: impl Into<String>) -> Self {
        self.signup_url = Some(url.into());
        self
    }

    /// Adds an environment variable that holds the operator's key.
    pub fn env_var(mut self, name: impl Into<String>) -> Self {
        self.env.push(name.into());
        self
    }

    /// Every environment variable checked for this service, in order: `{ID}_API_KEY`, then the
    /// service's own.
    pub fn env_vars(&self) -> Vec<String> {
        let mut vars = vec![format!(
            "{}_API_KEY",
            self.id.to_ascii_uppercase().replace('-', "_")
        )];
        for var in &self.env {
            if !vars.contains(var) {
                vars.push(var.clone());
            }
        }
        vars
    }
}

/// Why a service id or a catalogue file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// The id has characters or a length that cannot be a service id.
    #[error("{0:?} is not a valid service name: use 1 to 32 lowercase letters, digits, '-' or '_'")]
    InvalidId(String),
    /// The file cannot be read or parsed.
    #[error("STARGAZER_SERVICES_FILE {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks that `id` can be a service id: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
pub fn validate_service_id(id: &str) -> Result<(), CatalogueError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SERVICE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(40).collect();
        Err(CatalogueError::InvalidId(shown))
    }
}

/// The services that take keys, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    services: BTreeMap<String, Service>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    service: Vec<Service>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Catalogue {
    /// The built-in services.
    pub fn builtin() -> Self {
        let services = [
            Service::new("openrouter", "OpenRouter")
                .signup_url("https://openrouter.ai/keys")
                .check(KeyCheckSpec::bearer(
                    "https://openrouter.ai/api/v1/auth/key",
                )),
            Service::new("openai", "OpenAI")
                .signup_url("https://platform.openai.com/api-keys")
                .check(KeyCheckSpec::bearer("https://api.openai.com/v1/models")),
            Service::new("anthropic", "Anthropic")
                .signup_url("https://console.anthropic.com/settings/keys")
                .check(
                    KeyCheckSpec::new("https://api.anthropic.com/v1/models", "x-api-key", "")
                        .header("anthropic-version", "2023-06-01"),
                ),
            Service::new("gemini", "Google Gemini")
                .signup_url("https://aistudio.google.com/app/apikey")
                .env_var("GOOGLE_API_KEY"),
            Service::new("brave", "Brave Search")
                .signup_url("https://brave.com/search/api/")
                .env_var("BRAVE_SEARCH_API_KEY")
                .check(KeyCheckSpec::new(
                    "https://api.search.brave.com/res/v1/web/search?q=test&count=1",
                    "X-Subscription-Token",
                    "",
                )),
            Service::new("youtube", "YouTube Data API")
                .signup_url("https://console.cloud.google.com/apis/library/youtube.googleapis.com"),
            Service::new("elevenlabs", "ElevenLabs")
                .signup_url("https://elevenlabs.io/app/settings/api-keys"),
            Service::new("github", "GitHub")
                .signup_url("https://github.com/settings/tokens")
                .env_var("GITHUB_TOKEN")
                .check(
                    KeyCheckSpec::bearer("https://api.github.com/user")
                        .header("User-Agent", "stargazer-keys")
                        .header("Accept", "application/vnd.github+json"),
                ),
            Service::new("gitea", "Gitea")
                .signup_url("https://git.neko.li/user/settings/applications")
                .env_var("GITEA_TOKEN"),
        ];
        Self {
            services: services.into_iter().map(|s| (s.id.clone(), s)).collect(),
        }
    }

    /// Adds (or replaces) a service.
    pub fn with_service(mut self, service: Service) -> Result<Self, CatalogueError> {
        self.insert(service)?;
        Ok(self)
    }

    fn insert(&mut self, service: Service) -> Result<(), CatalogueError> {
        validate_service_id(&service.id)?;
        self.services.insert(service.id.clone(), service);
        Ok(())
    }

    /// Adds the services of an operator's TOML file (`[[service]]` tables).
    pub fn load_file(&mut self, path: &Path) -> Result<(), CatalogueError> {
        let fail = |reason: String| CatalogueError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|err| fail(err.to_string()))?;
        let file: CatalogueFile =
            toml::from_str(&text).map_err(|err| fail(err.message().to_owned()))?;
        for service in file.service {
            self.insert(service).map_err(|err| fail(err.to_string()))?;
        }
        Ok(())
    }

    /// The service with this id.
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// Every service, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// Up to 25 services whose id or name contains `partial` (case-insensitive), ids that
    /// start with it first: for autocomplete.
    pub fn suggest(&self, partial: &str) -> Vec<&Service> {
        let needle = partial.trim().to_lowercase();
        let mut hits: Vec<&Service> = self
            .iter()
            .filter(|s| s.id.contains(&needle) || s.display_name.to_lowercase().contains(&needle))
            .collect();
        hits.sort_by_key(|s| (!s.id.starts_with(&needle), s.id.clone()));
        hits.truncate(MAX_SUGGESTIONS);
        hits
    }

    /// The service's display name, or the id itself for an unknown service.
    pub fn display_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.get(id).map_or(id, |s| s.display_name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_are_restricted_to_safe_characters() {
        assert!(validate_service_id("brave").is_ok());
        assert!(validate_service_id("open-router_2").is_ok());
        for bad in [
            "",
            "Brave",
            "a:b",
            "a*",
            "{a}",
            "a b",
            "ключ",
            &"a".repeat(33),
        ] {
            assert!(validate_service_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_check_url_moves_to_another_origin_with_its_path_and_query() {
        let brave = Catalogue::builtin()
            .get("brave")
            .unwrap()
            .check
            .clone()
            .unwrap();
        assert_eq!(
            brave.url_at(Some("http://127.0.0.1:9/")),
            "http://127.0.0.1:9/res/v1/web/search?q=test&count=1"
        );
        assert_eq!(brave.url_at(None), brave.url);
    }

    #[test]
    fn env_vars_start_with_the_conventional_name() {
        let catalogue = Catalogue::builtin();
        assert_eq!(
            catalogue.get("brave").unwrap().env_vars(),
            ["BRAVE_API_KEY", "BRAVE_SEARCH_API_KEY"]
        );
    }

    #[test]
    fn suggestions_put_prefix_matches_first_and_stop_at_25() {
        let mut catalogue = Catalogue::builtin();
        for i in 0..40 {
            catalogue = catalogue
                .with_service(Service::new(format!("svc{i}"), format!("Service {i}")))
                .unwrap();
        }
        assert_eq!(catalogue.suggest("").len(), MAX_SUGGESTIONS);
        assert_eq!(catalogue.suggest("open")[0].id, "openai");
        assert_eq!(catalogue.suggest("search")[0].id, "brave");
    }
}
