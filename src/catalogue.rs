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

use crate::ids::{InvalidServiceId, ServiceId};

/// Most autocomplete suggestions Discord accepts.
pub const MAX_SUGGESTIONS: usize = 25;

/// One service that takes API keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Service {
    /// The id used in commands and storage keys (`brave`).
    pub id: ServiceId,
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
    /// What a user types to save a key (set in code: Gitea's token and base URL).
    #[serde(skip)]
    pub form: KeyForm,
}

/// What the key-entry form (a modal, the CLI's stdin) asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyForm {
    /// The API key alone.
    #[default]
    ApiKey,
    /// An access token, and the base URL of the user's own server (empty for the default):
    /// saved together as one value (Gitea's `{"token","base_url"}`).
    TokenAndBaseUrl,
}

/// One input of a key-entry form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// The label (`Brave Search API key`).
    pub label: String,
    /// The hint shown in the empty input.
    pub placeholder: &'static str,
    /// Whether the form needs a value.
    pub required: bool,
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
    /// A service with no sign-up URL and no extra variables, whose form asks for an API key.
    pub fn new(id: ServiceId, display_name: impl Into<String>) -> Self {
        Self {
            id,
            display_name: display_name.into(),
            signup_url: None,
            env: Vec::new(),
            check: None,
            form: KeyForm::ApiKey,
        }
    }

    /// Sets what the key-entry form asks for.
    pub fn form(mut self, form: KeyForm) -> Self {
        self.form = form;
        self
    }

    /// The inputs of the key-entry form, in order.
    pub fn form_fields(&self) -> Vec<FormField> {
        const PLACEHOLDER: &str = "Paste it here. It is stored encrypted and never shown again.";
        match self.form {
            KeyForm::ApiKey => vec![FormField {
                label: format!("{} API key", self.display_name),
                placeholder: PLACEHOLDER,
                required: true,
            }],
            KeyForm::TokenAndBaseUrl => vec![
                FormField {
                    label: "Access token".to_owned(),
                    placeholder: PLACEHOLDER,
                    required: true,
                },
                FormField {
                    label: "Base URL (leave empty for the default)".to_owned(),
                    placeholder: "https://gitea.example.com",
                    required: false,
                },
            ],
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
        let mut vars = vec![self.id.env_var()];
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
    #[error(transparent)]
    InvalidId(#[from] InvalidServiceId),
    /// The file cannot be read or parsed.
    #[error("STARGAZER_SERVICES_FILE {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A service the catalogue does not have: the one sentence the commands, the CLI and the
/// core show for it. It names what was asked for (at most 40 characters, with control and bidi
/// characters escaped) and every service there is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("there is no service called `{name}`; the services are: {known}")]
pub struct UnknownService {
    name: String,
    known: String,
}

impl UnknownService {
    /// The name asked for, escaped and cut to 40 characters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The services there are, comma-separated.
    pub fn known(&self) -> &str {
        &self.known
    }
}

/// The services that take keys, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    services: BTreeMap<ServiceId, Service>,
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
            Service::new(ServiceId::from_static("openrouter"), "OpenRouter")
                .signup_url("https://openrouter.ai/keys")
                .check(KeyCheckSpec::bearer(
                    "https://openrouter.ai/api/v1/auth/key",
                )),
            Service::new(ServiceId::from_static("openai"), "OpenAI")
                .signup_url("https://platform.openai.com/api-keys")
                .check(KeyCheckSpec::bearer("https://api.openai.com/v1/models")),
            Service::new(ServiceId::from_static("anthropic"), "Anthropic")
                .signup_url("https://console.anthropic.com/settings/keys")
                .check(
                    KeyCheckSpec::new("https://api.anthropic.com/v1/models", "x-api-key", "")
                        .header("anthropic-version", "2023-06-01"),
                ),
            Service::new(ServiceId::from_static("gemini"), "Google Gemini")
                .signup_url("https://aistudio.google.com/app/apikey")
                .env_var("GOOGLE_API_KEY"),
            Service::new(ServiceId::from_static("brave"), "Brave Search")
                .signup_url("https://brave.com/search/api/")
                .env_var("BRAVE_SEARCH_API_KEY")
                .check(KeyCheckSpec::new(
                    "https://api.search.brave.com/res/v1/web/search?q=test&count=1",
                    "X-Subscription-Token",
                    "",
                )),
            Service::new(ServiceId::from_static("youtube"), "YouTube Data API")
                .signup_url("https://console.cloud.google.com/apis/library/youtube.googleapis.com"),
            Service::new(ServiceId::from_static("elevenlabs"), "ElevenLabs")
                .signup_url("https://elevenlabs.io/app/settings/api-keys"),
            Service::new(ServiceId::from_static("github"), "GitHub")
                .signup_url("https://github.com/settings/tokens")
                .env_var("GITHUB_TOKEN")
                .check(
                    KeyCheckSpec::bearer("https://api.github.com/user")
                        .header("User-Agent", "stargazer-keys")
                        .header("Accept", "application/vnd.github+json"),
                ),
            Service::new(ServiceId::from_static("gitea"), "Gitea")
                .signup_url("https://git.neko.li/user/settings/applications")
                .env_var("GITEA_TOKEN")
                .form(KeyForm::TokenAndBaseUrl),
        ];
        Self {
            services: services.into_iter().map(|s| (s.id.clone(), s)).collect(),
        }
    }

    /// Adds (or replaces) a service.
    pub fn with_service(mut self, service: Service) -> Self {
        self.insert(service);
        self
    }

    fn insert(&mut self, service: Service) {
        self.services.insert(service.id.clone(), service);
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
        for mut service in file.service {
            // A file cannot say what the form asks for (that is set in code): a service it
            // redefines keeps the form it had (Gitea its base URL).
            if let Some(earlier) = self.services.get(&service.id) {
                service.form = earlier.form;
            }
            self.insert(service);
        }
        Ok(())
    }

    /// The service with this id.
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// The service named `name`, or the sentence that says there is none.
    pub fn lookup(&self, name: &str) -> Result<&Service, UnknownService> {
        self.get(name).ok_or_else(|| UnknownService {
            name: crate::secret::escaped(&crate::ids::shown_name(name)).replace('`', "'"),
            known: self.ids().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every service id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(ServiceId::as_str)
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
    fn an_unknown_service_is_named_escaped_with_every_service_there_is() {
        let catalogue = Catalogue::builtin();
        assert_eq!(
            catalogue.lookup("brave").unwrap().display_name,
            "Brave Search"
        );
        let err = catalogue.lookup("bra`ve\u{202e}").unwrap_err().to_string();
        assert!(
            err.starts_with("there is no service called `bra've"),
            "{err}"
        );
        assert!(err.ends_with("the services are: anthropic, brave, elevenlabs, gemini, gitea, github, openai, openrouter, youtube"), "{err}");
        let err = catalogue.lookup("x\u{202e}y").unwrap_err().to_string();
        assert!(err.contains("`x\\u{202e}y`"), "{err}");
    }

    #[test]
    fn a_services_file_that_redefines_gitea_keeps_its_base_url_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.toml");
        std::fs::write(
            &path,
            "[[service]]\nid = \"gitea\"\ndisplay_name = \"Our Gitea\"\n",
        )
        .unwrap();
        let mut catalogue = Catalogue::builtin();
        catalogue.load_file(&path).unwrap();
        let gitea = catalogue.get("gitea").unwrap();
        assert_eq!(gitea.display_name, "Our Gitea");
        assert_eq!(gitea.form, KeyForm::TokenAndBaseUrl);
        assert_eq!(gitea.form_fields().len(), 2);
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
            let id = ServiceId::new(&format!("svc{i}")).unwrap();
            catalogue = catalogue.with_service(Service::new(id, format!("Service {i}")));
        }
        assert_eq!(catalogue.suggest("").len(), MAX_SUGGESTIONS);
        assert_eq!(catalogue.suggest("open")[0].id, "openai");
        assert_eq!(catalogue.suggest("search")[0].id, "brave");
    }
}
