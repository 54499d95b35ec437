//! The operator subcommands, one module each, and what they share: the error type and the
//! keyring built from the settings.

pub mod doctor;
pub mod master_key;

use std::io;
use std::path::PathBuf;

use stargazer_keys::config::{load_or_create_master_key_file, read_default_master_key_file};
use stargazer_keys::{Config, ConfigError, DataKeyError, Keyring};

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
}

fn rotation_failed(err: &DataKeyError) -> String {
    match err {
        DataKeyError::Interrupted => err.to_string(),
        _ => format!("cannot rotate the master key: {err}; nothing was changed"),
    }
}

/// The keyring of commands that work on existing data (`rotate-master-key`, `doctor`): the
/// configured master keys, or, when none is configured, the default key file if it exists.
/// Never creates a key.
pub fn keyring(config: &Config) -> Result<Keyring, ConfigError> {
    match default_key_file_in_use(config) {
        Some(path) => {
            let key = read_default_master_key_file(&path)?;
            Ok(Keyring::new(key, config.previous_master_keys.clone()))
        }
        None => config.keyring(),
    }
}

/// The keyring of commands that may start from nothing (the bot): the configured master keys,
/// or the default key file, created with a new key when missing. Creating it logs one warning.
#[allow(dead_code, reason = "the `bot` subcommand will call it")]
pub fn keyring_creating_default(config: &Config) -> Result<Keyring, ConfigError> {
    if config.master_key.is_some() {
        return config.keyring();
    }
    let path = config.default_master_key_file();
    let (key, created) = load_or_create_master_key_file(&path)?;
    if created {
        tracing::warn!(
            "no master key is configured, so a new one was written to {} (mode 0600); back it up: losing it makes every stored key unreadable",
            path.display()
        );
    }
    Ok(Keyring::new(key, config.previous_master_keys.clone()))
}

/// The default key file, when no master key is configured and that file exists.
pub fn default_key_file_in_use(config: &Config) -> Option<PathBuf> {
    let path = config.default_master_key_file();
    (config.master_key.is_none() && path.exists()).then_some(path)
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
    use std::sync::{Arc, Mutex};

    use super::*;

    fn config_in(dir: &std::path::Path, vars: &[(&str, String)]) -> Config {
        let db = dir.join("data").join("stargazer-keys.db");
        let mut all = vec![("STARGAZER_DB_PATH", db.display().to_string())];
        all.extend(vars.iter().cloned());
        Config::from_vars(all).unwrap()
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (result, logs)
    }

    #[test]
    fn keyring_without_a_configured_key_or_default_file_is_the_missing_key_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let err = keyring(&config).unwrap_err();
        assert_eq!(err, config.keyring().unwrap_err());
        assert!(!config.default_master_key_file().exists());
    }

    #[test]
    fn keyring_reads_the_default_file_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let (key, _) = load_or_create_master_key_file(&config.default_master_key_file()).unwrap();
        assert_eq!(keyring(&config).unwrap().current().id(), key.id());
    }

    #[test]
    fn keyring_prefers_the_configured_key_to_the_default_file() {
        let dir = tempfile::tempdir().unwrap();
        let configured = stargazer_keys::MasterKey::generate();
        let secret = secrecy::ExposeSecret::expose_secret(&configured.to_base64()).to_owned();
        let config = config_in(dir.path(), &[("STARGAZER_MASTER_KEY", secret)]);
        load_or_create_master_key_file(&config.default_master_key_file()).unwrap();
        assert_eq!(keyring(&config).unwrap().current().id(), configured.id());
    }

    #[test]
    fn keyring_creating_default_writes_a_0600_file_and_warns_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &[]);
        let path = config.default_master_key_file();

        let (first, logs) = with_captured_logs(|| keyring_creating_default(&config).unwrap());
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

        let (second, logs) = with_captured_logs(|| keyring_creating_default(&config).unwrap());
        assert_eq!(logs, "");
        assert_eq!(first.current().id(), second.current().id());
    }
}
