//! `doctor`: one line per check of the settings, the files' permissions, the database, the
//! master key and the storage backend.
//!
//! Nothing else runs while the doctor checks, so the blocking SQLite calls run inline.

use std::fmt::Display;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use stargazer_keys::KekUsage;
use stargazer_keys::{Config, ConfigError, KeyStore, Keyring, db, storage};

use super::{Error, kek_label};

/// Runs every check and prints one line for each; exit status 1 when one failed.
/// Options of `doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print every check as JSON, for monitoring: [{"status", "check", "detail"}], status one
    /// of ok, fail, warn, skip
    #[arg(long)]
    json: bool,
}

/// Runs every check and prints the report.
pub async fn run(
    config: Result<Config, ConfigError>,
    args: &DoctorArgs,
) -> Result<ExitCode, Error> {
    let mut report = Report {
        json: args.json.then(Vec::new),
        ..Report::default()
    };
    let code = checks(&mut report, config).await?;
    if let Some(entries) = &report.json {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", serde_json::Value::Array(entries.clone()))?;
    }
    Ok(code)
}

async fn checks(
    report: &mut Report,
    config: Result<Config, ConfigError>,
) -> Result<ExitCode, Error> {
    let config = match config {
        Ok(config) => {
            report.ok("settings: every setting parses")?;
            config
        }
        Err(err) => {
            report.fail("settings", err)?;
            for what in [
                "files",
                "database",
                "master key",
                "data keys",
                "storage",
                "legacy values",
                "languages",
            ] {
                report.skip(what, "the settings do not parse")?;
            }
            return Ok(report.exit_code());
        }
    };
    // Before the database opens: opening it makes a loose file private.
    let uses_sqlite = config.database_url.is_none() || config.redis_urls.is_empty();
    if uses_sqlite {
        check_files(report, &config)?;
    } else {
        report.skip(
            "files",
            "no local file: data keys are in PostgreSQL and values in Redis",
        )?;
    }
    let database_opens = match &config.database_url {
        Some(url) => {
            report.ok(format_args!(
                "database: data keys in PostgreSQL at {url} (STARGAZER_DATABASE_URL)"
            ))?;
            true
        }
        None => check_database(report, &config)?,
    };
    let keyring = check_master_key(report, &config)?;
    check_data_keys(report, &config, database_opens, keyring).await?;
    check_storage(report, &config).await?;
    check_legacy_values(report, &config).await?;
    check_languages(report, &config)?;
    Ok(report.exit_code())
}

/// That the operator's catalogues load (the bot refuses to start otherwise), and which
/// languages the bot speaks.
fn check_languages(report: &mut Report, config: &Config) -> io::Result<()> {
    match (
        stargazer_keys::i18n::Texts::load(config.locales_dir.as_deref()),
        &config.locales_dir,
    ) {
        (Ok(texts), None) => report.ok(format_args!(
            "languages: {} (shipped; STARGAZER_LOCALES_DIR unset)",
            texts.locales().join(", ")
        )),
        (Ok(texts), Some(dir)) => report.ok(format_args!(
            "languages: {} (the shipped ones with {} laid over them)",
            texts.locales().join(", "),
            dir.display()
        )),
        (Err(err), _) => report.fail("languages", format_args!("{err} (STARGAZER_LOCALES_DIR)")),
    }
}

/// That only their owner can open the database and its `-wal` and `-shm`, and that group and
/// others cannot write in their directory (they could swap the files). The master key file's
/// mode is checked where it is read: the settings, or the master key check.
#[cfg(unix)]
fn check_files(report: &mut Report, config: &Config) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode_of = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|meta| meta.permissions().mode() & 0o7777)
    };
    let mut problems = Vec::new();
    let mut private = Vec::new();
    for file in db::files(&config.db_path) {
        match mode_of(&file) {
            Some(mode) if db::open_to_others(mode) => problems.push(format!(
                "{} has mode {mode:04o}, open to group or others (run `chmod 600 {}`)",
                file.display(),
                file.display()
            )),
            Some(_) => private.push(file.display().to_string()),
            None => {}
        }
    }
    let dir = config
        .db_path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_mode = mode_of(dir);
    if let Some(mode) = dir_mode.filter(|mode| mode & 0o022 != 0) {
        problems.push(format!(
            "the directory {} has mode {mode:04o}, so group or others can replace the files in it (run `chmod 700 {}`)",
            dir.display(),
            dir.display()
        ));
    }
    if !problems.is_empty() {
        return report.fail("files", problems.join("; "));
    }
    match (private.as_slice(), dir_mode) {
        ([], _) | (_, None) => report.skip("files", "there is no database to check yet"),
        (files, Some(mode)) => report.ok(format_args!(
            "files: only their owner can open {}; {} (mode {mode:04o}) lets no one else write in it",
            files.join(", "),
            dir.display()
        )),
    }
}

#[cfg(not(unix))]
fn check_files(report: &mut Report, _config: &Config) -> io::Result<()> {
    report.skip("files", "permission bits are only checked on Unix")
}

/// Whether the database exists and opens with an up-to-date schema.
fn check_database(report: &mut Report, config: &Config) -> io::Result<bool> {
    let path = &config.db_path;
    if !path.exists() {
        report.skip(
            "database",
            format_args!(
                "{} does not exist yet; the bot creates it on first start",
                path.display()
            ),
        )?;
        return Ok(false);
    }
    match db::open(path) {
        Ok(_) => {
            report.ok(format_args!(
                "database: {} opens, schema version {}",
                path.display(),
                db::SCHEMA_VERSION
            ))?;
            Ok(true)
        }
        Err(err) => {
            report.fail("database", err)?;
            Ok(false)
        }
    }
}

/// The keyring, when the master key can be read.
fn check_master_key(report: &mut Report, config: &Config) -> io::Result<Option<Keyring>> {
    let keyring = match config.existing_keyring() {
        Ok(keyring) => keyring,
        Err(err) => {
            report.fail("master key", err)?;
            return Ok(None);
        }
    };
    let source = config.master_key_source();
    let previous = match keyring.all().count() - 1 {
        0 => String::new(),
        1 => ", and 1 previous key".to_owned(),
        n => format!(", and {n} previous keys"),
    };
    report.ok(format_args!(
        "master key: current kek id {} from {source}{previous}",
        keyring.current().id()
    ))?;
    Ok(Some(keyring))
}

/// How many rows each master key wraps, and that the configured keys open them.
async fn check_data_keys(
    report: &mut Report,
    config: &Config,
    database_opens: bool,
    keyring: Option<Keyring>,
) -> io::Result<()> {
    let keyring = match (database_opens, keyring) {
        (true, Some(keyring)) => keyring,
        (false, _) => return report.skip("data keys", "no database to read them from"),
        (true, None) => return report.skip("data keys", "no master key to open them with"),
    };
    let mut config = config.clone();
    config.data_key_cache = 1;
    let opened = tokio::time::timeout(
        Duration::from_secs(15),
        KeyStore::open_unchecked(&config, keyring),
    )
    .await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(err)) => return report.fail("data keys", err),
        Err(_) => return report.fail("data keys", "the key store did not open within 15 s"),
    };
    if let KeyStore::Postgres(pg) = &store
        && !pg.can_vacuum()
    {
        report.fail(
            "erasure",
            "this role does not own the encryption_keys table, so it cannot VACUUM it after an erasure: an erased data key stays, wrapped under the master key, in the table's pages until autovacuum prunes it; connect as the table's owner",
        )?;
    }
    let usage = match store.kek_usage().await {
        Ok(usage) => usage,
        Err(err) => return report.fail("data keys", err),
    };
    let location = store.location().await;
    if usage.is_empty() {
        return report.ok(format_args!("data keys: none yet ({location})"));
    }
    report.ok(format_args!(
        "data keys: {} ({location})",
        describe_usage(&usage, store.keyring()),
    ))?;
    match store.verify_opens().await {
        Ok(_) => report.ok("data keys open under the configured master keys")?,
        Err(err) => report.fail("data keys open", err)?,
    }
    match store.unfinished_rekeys().await {
        Ok(0) => Ok(()),
        Ok(owners) => report.fail(
            "rekey",
            format_args!(
                "a rekey of {owners} {} is running or was interrupted; every key still opens, and `stargazer-keys rekey` finishes it",
                if owners == 1 { "owner" } else { "owners" }
            ),
        ),
        Err(err) => report.fail("rekey", err),
    }
}

/// "320 in all: 300 under master key ab12 (current), 20 under master key cd34 (run
/// rotate-master-key to move them)".
fn describe_usage(usage: &[KekUsage], keyring: &Keyring) -> String {
    let parts: Vec<String> = usage
        .iter()
        .map(|u| {
            let note = if u.kek_id == keyring.current().id().as_str() {
                "current"
            } else if u.kek_id.is_empty() || keyring.get(&u.kek_id).is_some() {
                "run rotate-master-key to move them"
            } else {
                "not configured"
            };
            format!("{} under {} ({note})", u.rows, kek_label(&u.kek_id))
        })
        .collect();
    let total: u64 = usage.iter().map(|u| u.rows).sum();
    format!("{total} in all: {}", parts.join(", "))
}

/// That the storage backend answers: Redis within its timeouts, or the embedded store.
async fn check_storage(report: &mut Report, config: &Config) -> io::Result<()> {
    if config.redis_urls.is_empty() {
        return report.ok(format_args!(
            "storage: embedded store in {} (REDIS_URL unset)",
            config.db_path.display()
        ));
    }
    let target = describe_redis(&config.redis_urls);
    // Room for the client's one retry of connecting and of the reply.
    let limit = (config.redis_connect_timeout + config.redis_response_timeout) * 2;
    let started = Instant::now();
    let answer = tokio::time::timeout(limit, async {
        let store = storage::connect(config).await?;
        store.ping().await.map(|()| store)
    })
    .await;
    match answer {
        Ok(Ok(store)) => {
            report.ok(format_args!(
                "storage: {target} answers PING ({} ms)",
                started.elapsed().as_millis()
            ))?;
            check_redis_servers(report, store.as_ref(), limit).await
        }
        Ok(Err(err)) => report.fail(
            "storage",
            format_args!("{target} does not answer PING: {err}"),
        ),
        Err(_) => report.fail(
            "storage",
            format_args!(
                "{target} did not answer PING within {} ms",
                limit.as_millis()
            ),
        ),
    }
}

/// The version, the scripts, the eviction policy and the persistence of every Redis server.
async fn check_redis_servers(
    report: &mut Report,
    store: &dyn storage::StorageBackend,
    limit: Duration,
) -> io::Result<()> {
    let facts = tokio::time::timeout(limit, store.server_facts()).await;
    let facts = match facts {
        Ok(Ok(facts)) => facts,
        Ok(Err(err)) => return report.fail("redis", format_args!("cannot read INFO: {err}")),
        Err(_) => return report.fail("redis", "INFO did not answer in time"),
    };
    for node in facts {
        if node.version_ok() {
            report.ok(format_args!(
                "redis: {} is Redis {}",
                node.name(),
                node.version
            ))?;
        } else {
            report.fail("redis", node.too_old())?;
        }
        match &node.scripts {
            Ok(()) => report.ok(format_args!("redis: the scripts load on {}", node.name()))?,
            Err(err) => report.fail(
                "redis",
                format_args!("the scripts do not load on {}: {err}", node.name()),
            )?,
        }
        for risk in node.risks() {
            report.warn("redis", risk)?;
        }
    }
    Ok(())
}

/// "Redis at host:port", or the cluster's nodes; never the password a URL may hold.
fn describe_redis(urls: &[String]) -> String {
    let addresses: Vec<String> = urls.iter().map(|url| redis_address(url)).collect();
    let tls = if urls.iter().all(|url| url.starts_with("rediss://")) {
        " over TLS"
    } else {
        " (not encrypted)"
    };
    match addresses.as_slice() {
        [one] => format!("Redis at {one}{tls}"),
        many => format!("the Redis Cluster at {}{tls}", many.join(", ")),
    }
}

/// The host and port of a Redis URL (parsed as a URL), without scheme, credentials, database
/// or options.
fn redis_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (
            parsed.host_str().filter(|host| !host.is_empty()),
            parsed.port(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => "a local socket".to_owned(),
        },
        Err(_) => "an address that is not a URL".to_owned(),
    }
}

/// Whether values in the original bot's formats are still read: the setting, and the marker
/// `migrate` leaves.
async fn check_legacy_values(report: &mut Report, config: &Config) -> io::Result<()> {
    if config.legacy_values == stargazer_keys::config::LegacyValues::Refuse {
        return report.ok("legacy values: refused (STARGAZER_LEGACY_VALUES=refuse)");
    }
    let key = stargazer_keys::storage::Layout::new(config.key_prefix.clone()).legacy_values_key();
    let marker = async { storage::connect(config).await?.get(&key).await };
    match tokio::time::timeout(Duration::from_secs(5), marker).await {
        Ok(Ok(Some(marker))) if marker == "refuse" => {
            report.ok("legacy values: refused (migrate has run)")
        }
        Ok(Ok(_)) => report.ok(
            "legacy values: read (v2: and plaintext values still open; run stargazer-keys migrate, after which every process refuses them)",
        ),
        Ok(Err(err)) => report.skip(
            "legacy values",
            format_args!("the marker cannot be read: {err}"),
        ),
        Err(_) => report.skip("legacy values", "the marker cannot be read in time"),
    }
}

/// The check lines printed so far, and whether one failed.
#[derive(Debug, Default)]
struct Report {
    failed: bool,
    /// With `--json`, the checks so far, printed at the end instead of line by line.
    json: Option<Vec<serde_json::Value>>,
}

impl Report {
    fn ok(&mut self, what: impl Display) -> io::Result<()> {
        self.line("ok  ", what)
    }

    fn fail(&mut self, what: &str, why: impl Display) -> io::Result<()> {
        self.failed = true;
        self.line("FAIL", format_args!("{what}: {why}"))
    }

    fn warn(&mut self, what: &str, why: impl Display) -> io::Result<()> {
        self.line("warn", format_args!("{what}: {why}"))
    }

    fn skip(&mut self, what: &str, why: impl Display) -> io::Result<()> {
        self.line("skip", format_args!("{what}: {why}"))
    }

    fn line(&mut self, status: &str, text: impl Display) -> io::Result<()> {
        if let Some(entries) = &mut self.json {
            let text = text.to_string();
            let (check, detail) = text.split_once(": ").unwrap_or((text.as_str(), ""));
            entries.push(serde_json::json!({
                "status": status.trim().to_lowercase(),
                "check": check,
                "detail": detail,
            }));
            return Ok(());
        }
        let mut out = io::stdout().lock();
        writeln!(out, "{status} {text}")?;
        out.flush()
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_addresses_drop_credentials_and_database() {
        assert_eq!(redis_address("redis://:hunter2@cache:6379/0"), "cache:6379");
        assert_eq!(redis_address("redis://cache"), "cache");
        assert_eq!(redis_address("not a url"), "an address that is not a URL");
        assert_eq!(
            redis_address("rediss://user:p@ss@10.0.0.1:6380"),
            "10.0.0.1:6380"
        );
        assert_eq!(
            redis_address("redis://127.0.0.1:6379/?protocol=resp3"),
            "127.0.0.1:6379"
        );
        assert_eq!(
            redis_address("redis+unix:///run/redis.sock"),
            "a local socket"
        );
    }

    #[test]
    fn clusters_are_described_by_their_nodes() {
        let urls = ["redis://a:1".to_owned(), "redis://b:2".to_owned()];
        assert_eq!(
            describe_redis(&urls),
            "the Redis Cluster at a:1, b:2 (not encrypted)"
        );
        let urls = ["rediss://a:1".to_owned(), "rediss://b:2".to_owned()];
        assert_eq!(
            describe_redis(&urls),
            "the Redis Cluster at a:1, b:2 over TLS"
        );
    }
}
