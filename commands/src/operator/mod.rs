//! The operator subcommands, one module each, and what they share: the error type, the
//! keyring built from the settings, the vault opened on them, and small output helpers.

pub mod bot;
pub mod copy;
pub mod doctor;
pub mod keys;
pub mod master_key;
pub mod rekey;
pub mod usage;

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use stargazer_keys::OpenVaultError;
use stargazer_keys::UsageError;
use stargazer_keys::{Config, ConfigError, DataKeyError, KeyError, KeyVault, Service};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a subcommand failed. Each variant prints as one sentence that holds no secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `.env` file cannot be read or parsed.
    #[error("{0}")]
    EnvFile(String),
    /// The database that should hold the data keys does not exist.
    #[error(
        "the database {} does not exist; point STARGAZER_DB_PATH at the bot's database",
        .0.display()
    )]
    NoDatabase(PathBuf),
    /// The master-key rotation failed; the database rolled it back.
    #[error("{}", rotation_failed(.0))]
    Rotation(DataKeyError),
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The output cannot be written (e.g. stdout was closed).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
    /// The vault cannot be opened with these settings.
    #[error(transparent)]
    OpenVault(#[from] OpenVaultError),
    /// A Redis server is too old for what the bot needs.
    #[error("{0}")]
    RedisTooOld(String),
    /// The bot stopped on an error.
    #[error(transparent)]
    Bot(#[from] stargazer_keys_commands::bot::BotError),
    /// A key operation was refused or failed; nothing was changed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A rekey stopped.
    #[error(transparent)]
    Rekey(#[from] stargazer_keys::RekeyError),
    /// A usage counter cannot be read or reset.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A tool name that cannot be one.
    #[error(transparent)]
    InvalidTool(#[from] stargazer_keys::InvalidToolName),
    /// `--base-url` given for a service other than Gitea.
    #[error("--base-url is only for --service gitea, not {0:?}")]
    BaseUrlNotForService(String),
    /// Nothing but whitespace on stdin.
    #[error(
        "there is no key on stdin: pipe the key in (e.g. printf '%s' \"$KEY\" | stargazer-keys ...); keys are never taken from the command line"
    )]
    NoSecret,
    /// Far more on stdin than any key.
    #[error(
        "stdin holds more than {} KiB, but a key is at most {} characters: pipe the key alone; nothing was changed",
        keys::STDIN_LIMIT / 1024,
        stargazer_keys::MAX_SECRET_LEN
    )]
    SecretTooLarge,
    /// Bytes on stdin that are not text.
    #[error("the key on stdin is not UTF-8 text: pipe the key alone; nothing was changed")]
    SecretNotText,
    /// Stdin cannot be read.
    #[error("cannot read the key from stdin: {0}")]
    ReadSecret(io::Error),
    /// `copy-data-keys` needs a PostgreSQL database to copy into.
    #[error("set STARGAZER_DATABASE_URL to the PostgreSQL database to copy the data keys into")]
    NoTargetDatabase,
    /// `copy-data-keys` failed; its transaction rolled back.
    #[error("cannot copy the data keys: {0}; nothing was copied")]
    Copy(DataKeyError),
}

fn rotation_failed(err: &DataKeyError) -> String {
    match err {
        DataKeyError::Interrupted => err.to_string(),
        _ => format!("cannot rotate the master key: {err}; nothing was changed"),
    }
}

/// Opens the vault as the bot would (same storage, same database, same catalogue), with the
/// keyring of [`Config::existing_keyring`]: a database missing from its directory is created. For the commands
/// that add keys, and for `migrate`, which may start from the original bot's plaintext values.
pub async fn open_vault(config: &Config) -> Result<KeyVault, Error> {
    let mut config = config.clone();
    if config.master_key.is_none() {
        // KeyVault::open reads the keyring from the config: hand it the default file's key.
        config.master_key = Some(config.existing_keyring()?.current().clone());
    }
    Ok(KeyVault::open(config).await?)
}

/// Opens the vault of an existing database: a command that only reads or removes keys never
/// creates one, so a wrong STARGAZER_DB_PATH is reported instead of showing an empty vault.
pub async fn open_existing_vault(config: &Config) -> Result<KeyVault, Error> {
    if config.database_url.is_none() && !config.db_path.exists() {
        return Err(Error::NoDatabase(config.db_path.clone()));
    }
    open_vault(config).await
}

/// The catalogue's entry for `service`; the refusal lists the services.
pub fn known_service<'a>(vault: &'a KeyVault, service: &str) -> Result<&'a Service, Error> {
    Ok(vault.catalogue().lookup(service).map_err(KeyError::from)?)
}

/// Parses a Discord id (user, channel) for clap: a whole number from 1 to 2^64 - 1. Clap
/// prefixes the message with the flag and the value.
pub fn parse_id(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a Discord id: ids are whole numbers, such as 123456789012345678".into());
    }
    match text.parse::<u64>() {
        Ok(0) => Err("0 is not a Discord id: ids start at 1".into()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!(
            "too large for a Discord id: the largest is {}",
            u64::MAX
        )),
    }
}

/// Writes `text` and a newline on stdout: the success path of every command.
pub fn print(text: &str) -> Result<ExitCode, Error> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    std::iter::once(line(header.to_vec()))
        .chain(
            rows.iter()
                .map(|row| line(row.iter().map(String::as_str).collect())),
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// RFC 3339 (`2025-01-31T12:00:00Z`), or `None` when unknown.
pub fn rfc3339(at: Option<OffsetDateTime>) -> Option<String> {
    at.and_then(|at| at.format(&Rfc3339).ok())
}

/// How a master key id reads in output; rows of the original bot name none.
pub fn kek_label(kek_id: &str) -> String {
    if kek_id.is_empty() {
        "the original bot's master key".to_owned()
    } else {
        format!("master key {kek_id}")
    }
}

/// "1 data key", "2 data keys".
pub fn data_keys(count: u64) -> String {
    if count == 1 {
        "1 data key".to_owned()
    } else {
        format!("{count} data keys")
    }
}

#[cfg(test)]
mod tests {
    use stargazer_keys::config::load_or_create_master_key_file;

    use super::*;

    fn config_in(dir: &std::path::Path, vars: &[(&str, String)]) -> Config {
        let db = dir.join("data").join("stargazer-keys.db");
        let mut all = vec![("STARGAZER_DB_PATH", db.display().to_string())];
        all.extend(vars.iter().cloned());
        Config::from_vars(all).unwrap()
    }

    fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
        let captured = stargazer_keys::testkit::LogCapture::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let logs = captured.text();
        (result, logs)
    }

    #[test]
    fn keyring_without_a_configured_key_or_default_file_is_the_missing_key_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let err = config.existing_keyring().unwrap_err();
        assert_eq!(err, config.keyring().unwrap_err());
        assert!(!config.default_master_key_file().exists());
    }

    #[test]
    fn keyring_reads_the_default_file_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let (key, _) = load_or_create_master_key_file(&config.default_master_key_file()).unwrap();
        assert_eq!(config.existing_keyring().unwrap().current().id(), key.id());
    }

    #[test]
    fn keyring_prefers_the_configured_key_to_the_default_file() {
        let dir = tempfile::tempdir().unwrap();
        let configured = stargazer_keys::MasterKey::generate();
        let secret = secrecy::ExposeSecret::expose_secret(&configured.to_base64()).to_owned();
        let config = config_in(dir.path(), &[("STARGAZER_MASTER_KEY", secret)]);
        load_or_create_master_key_file(&config.default_master_key_file()).unwrap();
        assert_eq!(
            config.existing_keyring().unwrap().current().id(),
            configured.id()
        );
    }

    #[test]
    fn keyring_creating_default_writes_a_0600_file_and_warns_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let path = config.default_master_key_file();

        let (first, logs) = with_captured_logs(|| config.keyring_creating_default().unwrap());
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains(&path.display().to_string()), "{logs}");
        assert!(logs.contains("0600"), "{logs}");
        assert!(logs.contains("unreadable"), "{logs}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (second, logs) = with_captured_logs(|| config.keyring_creating_default().unwrap());
        assert_eq!(logs, "");
        assert_eq!(first.current().id(), second.current().id());
    }
}
