//! `copy-data-keys`: the data keys of a SQLite file copied into PostgreSQL, the step from one
//! machine to several.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use stargazer_keys::{Config, DataKeyStore, KeyStore};

use super::{Error, print};

/// Options of `copy-data-keys`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The SQLite file to copy from (default: STARGAZER_DB_PATH)
    #[arg(long, value_name = "PATH")]
    from: Option<PathBuf>,
    /// Print the counts as JSON: {"copied", "already_there", "from", "to"}
    #[arg(long)]
    json: bool,
}

/// Copies every data key of the SQLite file into `STARGAZER_DATABASE_URL`, in one transaction.
pub async fn run(config: &Config, args: &CopyArgs) -> Result<ExitCode, Error> {
    let Some(url) = config.database_url.clone() else {
        return Err(Error::NoTargetDatabase);
    };
    let from = args.from.clone().unwrap_or_else(|| config.db_path.clone());
    if !from.exists() {
        return Err(Error::NoDatabase(from));
    }
    let keyring = config.existing_keyring()?;
    let (path, source_keyring) = (from.clone(), keyring.clone());
    // Checked against the keyring first: rows nobody here can open are not copied blind.
    let rows =
        tokio::task::spawn_blocking(move || DataKeyStore::open(&path, source_keyring, 1)?.rows())
            .await?
            .map_err(Error::Copy)?;
    let target = KeyStore::open(config, keyring).await.map_err(Error::Copy)?;
    let KeyStore::Postgres(pg) = &target else {
        unreachable!("STARGAZER_DATABASE_URL is set, so the key store is PostgreSQL");
    };
    let report = pg.copy_rows(&rows).await.map_err(Error::Copy)?;
    target.verify_opens().await.map_err(Error::Copy)?;
    print(&if args.json {
        json!({
            "copied": report.copied,
            "already_there": report.already_there,
            "from": from.display().to_string(),
            "to": url.to_string(),
        })
        .to_string()
    } else {
        format!(
            "Copied {} from {} into PostgreSQL at {url} ({} there already, with the same key). Point every process at STARGAZER_DATABASE_URL; the SQLite file is left as it was: delete it, and its backups, once no process uses it.",
            match report.copied {
                1 => "1 data key".to_owned(),
                n => format!("{n} data keys"),
            },
            from.display(),
            report.already_there,
        )
    })
}
