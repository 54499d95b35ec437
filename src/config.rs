//! Settings, read from the environment and checked at start-up.
//!
//! Every setting is named in `.env.example`. A bad value gives one sentence naming the setting
//! ([`ConfigError`]); a secret's value never appears in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{Keyring, MasterKey, MasterKeyError};

/// The default key prefix, the original bot's.
pub const DEFAULT_PREFIX: &str = "stargazer";
/// The default database path.
pub const DEFAULT_DB_PATH: &str = "data/stargazer-keys.db";
/// The master key file made beside the database when no key is configured.
pub const MASTER_KEY_FILE_NAME: &str = "master.key";
/// The default daily limit of shared-key uses per user and tool.
pub const DEFAULT_DAILY_LIMIT: u32 = 20;
/// Failed calls per user and tool per day whose shared-key use is given back: later failures
/// count as uses.
pub const DEFAULT_DAILY_FAILURE_REFUNDS: u32 = 10;
/// Keys one pool may hold for one service.
pub const DEFAULT_POOL_MAX_KEYS: u64 = 100;
/// The default Gitea base URL, the original bot's.
pub const DEFAULT_GITEA_BASE_URL: &str = "https://git.neko.li";
/// The default Gitea token file, read when no other tier has a token.
pub const DEFAULT_GITEA_TOKEN_FILE: &str = "data/gitea_token";

/// How long a pool key that was refused as unauthorized or out of credit stays benched, by
/// default (`STARGAZER_POOL_BENCH_SECS`): a day.
pub const DEFAULT_POOL_BENCH_SECS: u64 = 86_400;
/// How long a rate-limited pool key stays benched when the service did not say
/// (`STARGAZER_POOL_RATE_LIMIT_BENCH_SECS`).
pub const DEFAULT_RATE_LIMIT_BENCH_SECS: u64 = 60;
/// How long a key check on save may take, by default (`STARGAZER_VALIDATE_TIMEOUT_MS`): short,
/// because Discord wants the answer to a modal within 3 seconds.
pub const DEFAULT_VALIDATE_TIMEOUT_MS: u64 = 2_000;
/// The prefix of the settings that point a service's key check elsewhere.
pub const VALIDATE_BASE_URL_PREFIX: &str = "STARGAZER_VALIDATE_BASE_URL_";

/// A setting with a value that cannot be used, or a required setting that is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {reason}")]
pub struct ConfigError {
    /// The setting's name, as in the environment.
    pub setting: &'static str,
    /// What is wrong, completing the sentence that starts with the setting's name.
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// How the shared-key daily window moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaWindow {
    /// The window starts at the first use and is not moved by later ones: a true daily cap.
    #[default]
    Fixed,
    /// Every use refreshes the 24-hour TTL (the original bot's behaviour).
    Rolling,
}

/// Whether values in the original bot's formats (`v2:` and plaintext) are read
/// (`STARGAZER_LEGACY_VALUES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyValues {
    /// Read them, unless `migrate` has run on this storage (it leaves a marker every process
    /// honours).
    #[default]
    Read,
    /// Never read them: anyone who can write to storage could plant one.
    Refuse,
}

/// Every setting of the core library.
#[derive(Clone)]
pub struct Config {
    /// The current master key, when configured (`STARGAZER_MASTER_KEY` or `..._FILE`).
    pub master_key: Option<MasterKey>,
    /// The original bot's pool key, for its `v2:` pool values (`STARGAZER_ORIGINAL_POOL_KEY`,
    /// base64 of 32 bytes).
    pub original_pool_key: Option<MasterKey>,
    /// Keys still readable during a rotation (`STARGAZER_PREVIOUS_MASTER_KEYS`).
    pub previous_master_keys: Vec<MasterKey>,
    /// The SQLite file (`STARGAZER_DB_PATH`).
    pub db_path: PathBuf,
    /// PostgreSQL for the data keys instead of the SQLite file (`STARGAZER_DATABASE_URL`), for
    /// bots on several machines.
    pub database_url: Option<DatabaseUrl>,
    /// How many unwrapped data keys stay in memory (`STARGAZER_DATA_KEY_CACHE`).
    pub data_key_cache: usize,
    /// Redis nodes (`REDIS_URL`, comma-separated for a cluster); empty = the embedded store.
    pub redis_urls: Vec<String>,
    /// Certificates (PEM) to trust for TLS to Redis (`rediss://`) and PostgreSQL instead of
    /// the system's (`STARGAZER_TLS_CA_FILE`): a managed service's private CA.
    pub tls_ca: Option<TlsCa>,
    /// How long connecting to Redis may take (`STARGAZER_REDIS_CONNECT_TIMEOUT_MS`).
    pub redis_connect_timeout: Duration,
    /// How long one Redis reply may take (`STARGAZER_REDIS_RESPONSE_TIMEOUT_MS`).
    pub redis_response_timeout: Duration,
    /// Replicas every write of a key waits for (`STARGAZER_REDIS_DURABLE_REPLICAS`, default 0:
    /// none): with 1, a key a user was told is saved survives the loss of its master.
    pub redis_durable_replicas: u32,
    /// How long that wait may take (`STARGAZER_REDIS_DURABLE_WAIT_MS`, default 250; below the
    /// response timeout).
    pub redis_durable_wait: Duration,
    /// The storage key prefix (`STARGAZER_KEY_PREFIX`).
    pub key_prefix: String,
    /// Bot admins (`ADMIN_USER_IDS`).
    pub admin_user_ids: BTreeSet<u64>,
    /// The quota window (`QUOTA_WINDOW`).
    pub quota_window: QuotaWindow,
    /// Shared-key uses per user and tool per day (`DEFAULT_KEY_DAILY_LIMIT`).
    pub default_daily_limit: u32,
    /// Failed shared-key calls per user and tool per day whose use is given back
    /// (`STARGAZER_DAILY_FAILURE_REFUNDS`); later failures count as uses.
    pub daily_failure_refunds: u32,
    /// Whether legacy values are read (`STARGAZER_LEGACY_VALUES`: `read` or `refuse`).
    pub legacy_values: LegacyValues,
    /// Keys one pool may hold for one service (`STARGAZER_POOL_MAX_KEYS`).
    pub pool_max_keys: u64,
    /// Per-tool overrides of the daily limit (`STARGAZER_TOOL_DAILY_LIMITS`, `tool=N,...`).
    pub tool_daily_limits: BTreeMap<String, u32>,
    /// The largest daily limit per user a pool's admins may set for their pool
    /// (`STARGAZER_POOL_DAILY_LIMIT_MAX`, default `DEFAULT_KEY_DAILY_LIMIT`'s value).
    pub pool_daily_limit_max: u32,
    /// An operator's TOML file of extra services (`STARGAZER_SERVICES_FILE`).
    pub services_file: Option<PathBuf>,
    /// A directory of Fluent catalogues laid over the shipped ones, one subdirectory per
    /// language (`STARGAZER_LOCALES_DIR`; see [`crate::i18n::Texts::load`]).
    pub locales_dir: Option<PathBuf>,
    /// How long a pool key refused as unauthorized, revoked or out of credit is benched
    /// (`STARGAZER_POOL_BENCH_SECS`, default a day).
    pub pool_bench: Duration,
    /// How long a rate-limited pool key is benched when the service gave no Retry-After
    /// (`STARGAZER_POOL_RATE_LIMIT_BENCH_SECS`, default 60 s).
    pub pool_rate_limit_bench: Duration,
    /// Whether a key is checked with its service before it is saved
    /// (`STARGAZER_VALIDATE_KEYS`, default off; needs the `validation` feature).
    pub validate_keys: bool,
    /// How long that check may take (`STARGAZER_VALIDATE_TIMEOUT_MS`).
    pub validate_timeout: Duration,
    /// Per service id, the origin (`https://host[:port]`) its key check goes to instead of the
    /// catalogue's (`STARGAZER_VALIDATE_BASE_URL_<SERVICE>`, e.g. `..._OPENAI`).
    pub validate_base_urls: BTreeMap<String, String>,
    /// The environment as it was at start-up: the last tier of key resolution.
    pub env: EnvSnapshot,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("master_key", &self.master_key)
            .field("previous_master_keys", &self.previous_master_keys)
            .field("db_path", &self.db_path)
            .field("database_url", &self.database_url)
            .field("redis_urls", &self.redis_urls.len())
            .field("key_prefix", &self.key_prefix)
            .field("admin_user_ids", &self.admin_user_ids)
            .field("quota_window", &self.quota_window)
            .field("default_daily_limit", &self.default_daily_limit)
            .field("daily_failure_refunds", &self.daily_failure_refunds)
            .field("pool_max_keys", &self.pool_max_keys)
            .field("pool_daily_limit_max", &self.pool_daily_limit_max)
            .field("legacy_values", &self.legacy_values)
            .finish_non_exhaustive()
    }
}

/// The certificates of `STARGAZER_TLS_CA_FILE` (PEM), read at start-up.
#[derive(Clone)]
pub struct TlsCa {
    /// Where they were read from.
    pub path: PathBuf,
    /// The file's contents: one or more `-----BEGIN CERTIFICATE-----` blocks.
    pub pem: Vec<u8>,
}

impl TlsCa {
    fn read(path: &str) -> Result<Self, ConfigError> {
        const SETTING: &str = "STARGAZER_TLS_CA_FILE";
        let path = PathBuf::from(path.trim());
        let pem = std::fs::read(&path).map_err(|err| {
            ConfigError::new(
                SETTING,
                format!("names {}, which cannot be read: {err}", path.display()),
            )
        })?;
        let certificates = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
            .collect::<Result<Vec<rustls::pki_types::CertificateDer<'_>>, _>>()
            .map_err(|err| {
                ConfigError::new(
                    SETTING,
                    format!(
                        "names {}, which is not a PEM file of certificates: {err}",
                        path.display()
                    ),
                )
            })?;
        if certificates.is_empty() {
            return Err(ConfigError::new(
                SETTING,
                format!(
                    "names {}, which holds no certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            ));
        }
        Ok(Self { path, pem })
    }
}

impl fmt::Debug for TlsCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsCa({})", self.path.display())
    }
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database?...`). It may
/// hold a password: `Debug` and `Display` show `host:port/database` only.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    shown: String,
}

impl DatabaseUrl {
    /// Checks a URL: `postgres://` or `postgresql://`, in a form the client parses. The
    /// refusal never quotes the value, which may hold a password.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        const SETTING: &str = "STARGAZER_DATABASE_URL";
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                SETTING,
                "must be a PostgreSQL URL, postgres://user:password@host:port/database",
            ));
        }
        let config = crate::pg_keys::connection_config(url).map_err(|err| match err {
            crate::pg_keys::PgError::Url(reason) => {
                ConfigError::new(SETTING, format!("is not a usable PostgreSQL URL: {reason}"))
            }
            other => ConfigError::new(SETTING, other.to_string()),
        })?;
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            shown: crate::pg_keys::describe(&config),
        })
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Environment variables captured at start-up, as secrets: `Debug` lists names only.
#[derive(Clone, Default)]
pub struct EnvSnapshot(BTreeMap<String, SecretString>);

impl EnvSnapshot {
    /// A non-empty variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|value| value.expose_secret())
            .filter(|value| !value.trim().is_empty())
    }

    /// Adds or replaces a variable (for hosts and tests that build a config in code).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), SecretString::from(value.into()));
    }
}

impl fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads the settings from `(name, value)` pairs; an empty value counts as unset.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut env = EnvSnapshot::default();
        let mut override_names = Vec::new();
        for (name, value) in vars {
            let name: String = name.into();
            if name.starts_with(VALIDATE_BASE_URL_PREFIX) {
                override_names.push(name.clone());
            }
            env.set(name, value);
        }
        let get = |name: &str| env.get(name).map(str::trim);

        let master_key = match (
            get("STARGAZER_MASTER_KEY"),
            get("STARGAZER_MASTER_KEY_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "STARGAZER_MASTER_KEY",
                    "and STARGAZER_MASTER_KEY_FILE are both set; set only one of them",
                ));
            }
            (Some(text), None) => Some(parse_master_key("STARGAZER_MASTER_KEY", text)?),
            (None, Some(path)) => Some(read_master_key_file(
                "STARGAZER_MASTER_KEY_FILE",
                Path::new(path),
            )?),
            (None, None) => None,
        };
        let original_pool_key = get("STARGAZER_ORIGINAL_POOL_KEY")
            .map(|text| parse_master_key("STARGAZER_ORIGINAL_POOL_KEY", text))
            .transpose()?;
        let previous_master_keys = get("STARGAZER_PREVIOUS_MASTER_KEYS")
            .map(|list| {
                split_list(list)
                    .map(|text| parse_master_key("STARGAZER_PREVIOUS_MASTER_KEYS", text))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let key_prefix = get("STARGAZER_KEY_PREFIX")
            .unwrap_or(DEFAULT_PREFIX)
            .to_owned();
        if let Some(bad) = key_prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')))
        {
            return Err(ConfigError::new(
                "STARGAZER_KEY_PREFIX",
                format!(
                    "must not contain {bad:?}: use ASCII letters, digits, '-', '_', '.' or ':'"
                ),
            ));
        }

        let legacy_values = match get("STARGAZER_LEGACY_VALUES")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("read") => LegacyValues::Read,
            Some("refuse") => LegacyValues::Refuse,
            Some(other) => {
                return Err(ConfigError::new(
                    "STARGAZER_LEGACY_VALUES",
                    format!("must be \"read\" or \"refuse\", not {other:?}"),
                ));
            }
        };
        let quota_window = match get("QUOTA_WINDOW").map(str::to_ascii_lowercase).as_deref() {
            None | Some("fixed") => QuotaWindow::Fixed,
            Some("rolling") => QuotaWindow::Rolling,
            Some(other) => {
                return Err(ConfigError::new(
                    "QUOTA_WINDOW",
                    format!("must be \"fixed\" or \"rolling\", not {other:?}"),
                ));
            }
        };

        let tool_daily_limits = get("STARGAZER_TOOL_DAILY_LIMITS")
            .map(|list| {
                split_list(list)
                    .map(|item| {
                        let (tool, limit) = item.split_once('=').ok_or_else(|| {
                            ConfigError::new(
                                "STARGAZER_TOOL_DAILY_LIMITS",
                                format!("must be a comma-separated list of tool=limit; {item:?} has no '='"),
                            )
                        })?;
                        let limit = parse_number("STARGAZER_TOOL_DAILY_LIMITS", limit.trim())?;
                        Ok((tool.trim().to_owned(), limit))
                    })
                    .collect::<Result<BTreeMap<_, _>, ConfigError>>()
            })
            .transpose()?
            .unwrap_or_default();

        let mut validate_base_urls = BTreeMap::new();
        for name in &override_names {
            let Some(url) = get(name) else { continue };
            let service = name[VALIDATE_BASE_URL_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace('_', "-");
            let url = check_https_origin(url).map_err(|reason| {
                ConfigError::new(
                    "STARGAZER_VALIDATE_BASE_URL_<SERVICE>",
                    format!("({name}) {reason}"),
                )
            })?;
            validate_base_urls.insert(service.clone(), url.clone());
            // Service ids may use '_' as well as '-': both spellings map to the same variable.
            validate_base_urls.insert(service.replace('-', "_"), url);
        }
        let validate_keys = match get("STARGAZER_VALIDATE_KEYS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0" | "no" | "off") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "STARGAZER_VALIDATE_KEYS",
                    format!("must be true or false, not {other:?}"),
                ));
            }
        };
        let pool_bench = get("STARGAZER_POOL_BENCH_SECS")
            .map(|v| parse_number::<u64>("STARGAZER_POOL_BENCH_SECS", v))
            .transpose()?
            .unwrap_or(DEFAULT_POOL_BENCH_SECS);
        let pool_rate_limit_bench = get("STARGAZER_POOL_RATE_LIMIT_BENCH_SECS")
            .map(|v| parse_number::<u64>("STARGAZER_POOL_RATE_LIMIT_BENCH_SECS", v))
            .transpose()?
            .unwrap_or(DEFAULT_RATE_LIMIT_BENCH_SECS);
        for (setting, secs) in [
            ("STARGAZER_POOL_BENCH_SECS", pool_bench),
            (
                "STARGAZER_POOL_RATE_LIMIT_BENCH_SECS",
                pool_rate_limit_bench,
            ),
        ] {
            if secs == 0 {
                return Err(ConfigError::new(setting, "must be at least 1 (seconds)"));
            }
        }

        let redis_durable_replicas: u32 = get("STARGAZER_REDIS_DURABLE_REPLICAS")
            .map(|v| parse_number("STARGAZER_REDIS_DURABLE_REPLICAS", v))
            .transpose()?
            .unwrap_or(0);
        let redis_durable_wait = Duration::from_millis(
            get("STARGAZER_REDIS_DURABLE_WAIT_MS")
                .map(|v| parse_number("STARGAZER_REDIS_DURABLE_WAIT_MS", v))
                .transpose()?
                .unwrap_or(250),
        );
        let response_timeout_ms: u64 = get("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS")
            .map(|v| parse_number("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS", v))
            .transpose()?
            .unwrap_or(500);
        if redis_durable_replicas > 0
            && redis_durable_wait >= Duration::from_millis(response_timeout_ms)
        {
            return Err(ConfigError::new(
                "STARGAZER_REDIS_DURABLE_WAIT_MS",
                format!(
                    "must be below STARGAZER_REDIS_RESPONSE_TIMEOUT_MS ({response_timeout_ms} ms), or the reply to WAIT times out first"
                ),
            ));
        }

        let default_daily_limit = get("DEFAULT_KEY_DAILY_LIMIT")
            .map(|v| parse_number("DEFAULT_KEY_DAILY_LIMIT", v))
            .transpose()?
            .unwrap_or(DEFAULT_DAILY_LIMIT);
        Ok(Config {
            master_key,
            previous_master_keys,
            db_path: PathBuf::from(get("STARGAZER_DB_PATH").unwrap_or(DEFAULT_DB_PATH)),
            database_url: get("STARGAZER_DATABASE_URL")
                .map(DatabaseUrl::parse)
                .transpose()?,
            data_key_cache: get("STARGAZER_DATA_KEY_CACHE")
                .map(|v| parse_number("STARGAZER_DATA_KEY_CACHE", v))
                .transpose()?
                .unwrap_or(10_000),
            redis_urls: get("REDIS_URL")
                .map(|list| split_list(list).map(str::to_owned).collect())
                .unwrap_or_default(),
            tls_ca: get("STARGAZER_TLS_CA_FILE").map(TlsCa::read).transpose()?,
            redis_connect_timeout: Duration::from_millis(
                get("STARGAZER_REDIS_CONNECT_TIMEOUT_MS")
                    .map(|v| parse_number("STARGAZER_REDIS_CONNECT_TIMEOUT_MS", v))
                    .transpose()?
                    .unwrap_or(1_000),
            ),
            redis_response_timeout: Duration::from_millis(response_timeout_ms),
            redis_durable_replicas,
            redis_durable_wait,
            key_prefix,
            admin_user_ids: get("ADMIN_USER_IDS")
                .map(|list| parse_id_list("ADMIN_USER_IDS", list))
                .transpose()?
                .unwrap_or_default(),
            quota_window,
            default_daily_limit,
            pool_daily_limit_max: get("STARGAZER_POOL_DAILY_LIMIT_MAX")
                .map(|v| parse_number("STARGAZER_POOL_DAILY_LIMIT_MAX", v))
                .transpose()?
                .unwrap_or(default_daily_limit),
            legacy_values,
            original_pool_key,
            pool_max_keys: match get("STARGAZER_POOL_MAX_KEYS")
                .map(|v| parse_number::<u64>("STARGAZER_POOL_MAX_KEYS", v))
                .transpose()?
            {
                Some(0) => {
                    return Err(ConfigError::new(
                        "STARGAZER_POOL_MAX_KEYS",
                        "must be at least 1 (keys)",
                    ));
                }
                max => max.unwrap_or(DEFAULT_POOL_MAX_KEYS),
            },
            daily_failure_refunds: get("STARGAZER_DAILY_FAILURE_REFUNDS")
                .map(|v| parse_number("STARGAZER_DAILY_FAILURE_REFUNDS", v))
                .transpose()?
                .unwrap_or(DEFAULT_DAILY_FAILURE_REFUNDS),
            tool_daily_limits,
            services_file: get("STARGAZER_SERVICES_FILE").map(PathBuf::from),
            locales_dir: get("STARGAZER_LOCALES_DIR").map(PathBuf::from),
            pool_bench: Duration::from_secs(pool_bench),
            pool_rate_limit_bench: Duration::from_secs(pool_rate_limit_bench),
            validate_keys,
            validate_timeout: Duration::from_millis(
                get("STARGAZER_VALIDATE_TIMEOUT_MS")
                    .map(|v| parse_number("STARGAZER_VALIDATE_TIMEOUT_MS", v))
                    .transpose()?
                    .unwrap_or(DEFAULT_VALIDATE_TIMEOUT_MS),
            ),
            validate_base_urls,
            env,
        })
    }

    /// The keyring: the configured master key and the previous ones.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let current = self.master_key.clone().ok_or_else(|| {
            ConfigError::new(
                "STARGAZER_MASTER_KEY",
                "is not set (nor STARGAZER_MASTER_KEY_FILE); run `stargazer-keys gen-master-key` to make one",
            )
        })?;
        Ok(Keyring::new(current, self.previous_master_keys.clone()))
    }

    /// Where the binary keeps a generated master key when none is configured: `master.key`
    /// beside the database.
    pub fn default_master_key_file(&self) -> PathBuf {
        self.db_path
            .parent()
            .unwrap_or(Path::new(""))
            .join(MASTER_KEY_FILE_NAME)
    }

    /// Creates the default database directory (`data/`, mode 0700) when the database is at its
    /// default path and the directory is missing, as a first start needs. A directory the
    /// operator named (`STARGAZER_DB_PATH`) is never created: a typo there must not start an
    /// empty deployment.
    pub fn create_default_data_dir(&self) -> Result<(), ConfigError> {
        if self.db_path != Path::new(DEFAULT_DB_PATH) {
            return Ok(());
        }
        match self
            .db_path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            Some(dir) if !dir.exists() => create_private_dir(dir).map_err(|err| {
                ConfigError::new(
                    "STARGAZER_DB_PATH",
                    format!(
                        "is not set, and the default directory {} cannot be created: {err}",
                        dir.display()
                    ),
                )
            }),
            _ => Ok(()),
        }
    }

    /// The default key file, when no master key is configured and that file exists.
    pub fn default_key_file_in_use(&self) -> Option<PathBuf> {
        let path = self.default_master_key_file();
        (self.master_key.is_none() && path.exists()).then_some(path)
    }

    /// Where the master key comes from, as a phrase for `doctor`: the default key file,
    /// `STARGAZER_MASTER_KEY_FILE (path)` or `STARGAZER_MASTER_KEY`.
    pub fn master_key_source(&self) -> String {
        if let Some(path) = self.default_key_file_in_use() {
            format!("the default key file {}", path.display())
        } else if let Some(path) = self.env.get("STARGAZER_MASTER_KEY_FILE") {
            format!("STARGAZER_MASTER_KEY_FILE ({})", path.trim())
        } else {
            "STARGAZER_MASTER_KEY".to_owned()
        }
    }

    /// The keyring of commands that work on existing data (`rotate-master-key`, `doctor`, the
    /// key commands): the configured master keys, or, when none is configured, the default key
    /// file if it exists. Never creates a key.
    pub fn existing_keyring(&self) -> Result<Keyring, ConfigError> {
        match self.default_key_file_in_use() {
            Some(path) => {
                let key = read_default_master_key_file(&path)?;
                Ok(Keyring::new(key, self.previous_master_keys.clone()))
            }
            None => self.keyring(),
        }
    }

    /// The keyring of the bot, which may start from nothing: the configured master keys, or
    /// the default key file, created with a new key when missing (logged once, as a warning).
    /// With the data keys in PostgreSQL a key must be configured: a file made here would not
    /// be on the other machines.
    pub fn keyring_creating_default(&self) -> Result<Keyring, ConfigError> {
        if self.master_key.is_some() {
            return self.keyring();
        }
        if self.database_url.is_some() {
            return Err(ConfigError::new(
                "STARGAZER_MASTER_KEY",
                "must be set when STARGAZER_DATABASE_URL is: every machine needs the same master key, so none is made here (run `stargazer-keys gen-master-key` once and give it to every machine)",
            ));
        }
        let path = self.default_master_key_file();
        let (key, created) = load_or_create_master_key_file(&path)?;
        if created {
            tracing::warn!(
                "no master key is configured, so a new one was written to {} (mode 0600); back it up: losing it makes every stored key unreadable",
                path.display()
            );
        }
        Ok(Keyring::new(key, self.previous_master_keys.clone()))
    }

    /// The daily limit for `tool`: its override, or the default.
    pub fn daily_limit(&self, tool: &str) -> u32 {
        self.tool_daily_limits
            .get(tool)
            .copied()
            .unwrap_or(self.default_daily_limit)
    }
}

/// Reads the master key in `path`, or creates the file (mode 0600, and its directory, mode 0700,
/// when missing) with a new random key. Returns the key and whether it was created. An existing
/// file that group or others may open is refused, as by [`read_default_master_key_file`].
pub fn load_or_create_master_key_file(path: &Path) -> Result<(MasterKey, bool), ConfigError> {
    const SETTING: &str = "STARGAZER_MASTER_KEY";
    if path.exists() {
        return Ok((read_default_master_key_file(path)?, false));
    }
    let fail = |err: std::io::Error| {
        ConfigError::new(
            SETTING,
            format!(
                "is not set, and the default key file {} cannot be created: {err}",
                path.display()
            ),
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        create_private_dir(dir).map_err(fail)?;
    }
    let key = MasterKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    // The umask may have taken bits from the owner too: set the mode exactly.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(fail)?;
    let mut text = key.to_base64().expose_secret().to_owned();
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(fail)?;
    zeroize::Zeroize::zeroize(&mut text);
    file.sync_all().map_err(fail)?;
    Ok((key, true))
}

/// Reads the default master key file (used when no key is configured), never creating it. A
/// file that group or others may open is refused unread, as ssh refuses such a private key.
pub fn read_default_master_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let text = read_private_file(path).map_err(|err| {
        let p = path.display();
        ConfigError::new(
            "STARGAZER_MASTER_KEY",
            match err {
                KeyFileError::Read(err) => {
                    format!("is not set, and the default key file {p} cannot be read: {err}")
                }
                KeyFileError::OpenToOthers(mode) => format!(
                    "is not set, and the default key file {p} has mode {mode:04o}, which lets group or others open it; run `chmod 600 {p}` so that only its owner can read it"
                ),
            },
        )
    })?;
    MasterKey::from_base64(&text).map_err(|err| {
        ConfigError::new(
            "STARGAZER_MASTER_KEY",
            format!(
                "is not set, and the content of the default key file {} {err}",
                path.display()
            ),
        )
    })
}

fn parse_master_key(setting: &'static str, text: &str) -> Result<MasterKey, ConfigError> {
    MasterKey::from_base64(text).map_err(|err| {
        let hint = match err {
            MasterKeyError::NotBase64 => "; run `stargazer-keys gen-master-key` to make one",
            MasterKeyError::WrongLength(_) => " (44 base64 characters)",
        };
        ConfigError::new(setting, format!("{err}{hint}"))
    })
}

fn read_master_key_file(setting: &'static str, path: &Path) -> Result<MasterKey, ConfigError> {
    let text = read_private_file(path).map_err(|err| {
        let p = path.display();
        ConfigError::new(
            setting,
            match err {
                KeyFileError::Read(err) => format!("names {p}, which cannot be read: {err}"),
                KeyFileError::OpenToOthers(mode) => format!(
                    "names {p}, whose mode {mode:04o} lets group or others open it; run `chmod 600 {p}` so that only its owner can read it"
                ),
            },
        )
    })?;
    MasterKey::from_base64(&text).map_err(|err| {
        ConfigError::new(
            setting,
            format!("names {}, whose content {err}", path.display()),
        )
    })
}

/// Why a master key file was not read.
enum KeyFileError {
    /// It cannot be opened or read.
    Read(std::io::Error),
    /// Its permission bits let group or others open it.
    OpenToOthers(u32),
}

/// Reads a file that only its owner may open (checked on the open file, so it cannot be
/// swapped between the check and the read); a file open to group or others is not read.
fn read_private_file(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyFileError> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(KeyFileError::Read)?;
    let metadata = file.metadata().map_err(KeyFileError::Read)?;
    #[cfg(unix)]
    {
        let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
        if crate::db::open_to_others(mode) {
            return Err(KeyFileError::OpenToOthers(mode));
        }
    }
    // Allocated once (a key file is a line), so growing leaves no copy of the key behind.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).min(4096) + 1;
    let mut text = zeroize::Zeroizing::new(String::with_capacity(capacity));
    file.read_to_string(&mut text).map_err(KeyFileError::Read)?;
    Ok(text)
}

/// Creates `dir` and its missing parents, mode 0700 whatever the umask: it holds the master key
/// and, by default, the database.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Checks the origin a key check may be sent to: `https://host[:port]`, or `http://` to this
/// machine only (a key never crosses a network in clear). Returns it as `scheme://host[:port]`.
pub fn check_https_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let shown = crate::secret::printable(text);
    let url = url::Url::parse(text).map_err(|_| format!("must be an https:// URL, not {shown}"))?;
    let local = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        _ => {
            return Err(format!(
                "must be an https:// URL (http:// only to 127.0.0.1 or localhost), not {shown}"
            ));
        }
    }
    let bare = url.has_host()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !text.chars().any(char::is_whitespace);
    if !bare {
        return Err(format!(
            "must be a scheme and host only (e.g. https://api.example.com), not {shown}"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn parse_id_list(setting: &'static str, list: &str) -> Result<BTreeSet<u64>, ConfigError> {
    split_list(list)
        .map(|item| {
            item.parse::<u64>()
                .ok()
                .filter(|id| *id != 0)
                .ok_or_else(|| {
                    ConfigError::new(
                        setting,
                        format!(
                            "must be a comma-separated list of Discord user ids (numbers); {item:?} is not one"
                        ),
                    )
                })
        })
        .collect()
}

fn parse_number<T: std::str::FromStr>(setting: &'static str, text: &str) -> Result<T, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::new(setting, format!("must be a whole number, not {text:?}")))
}
