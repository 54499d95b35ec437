//! `stargazer-keys`: the operator command line of stargazer-keys.
//!
//! Each subcommand lives in its own module under [`operator`]; this file only parses the command
//! line, loads `.env`, starts logging and the runtime, and turns every error into one line.

mod operator;

use std::io::{self, IsTerminal as _};
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stargazer_keys::Config;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use operator::{Error, doctor, master_key};

/// Bring-your-own and pooled API keys for Discord bots: the operator's tools.
///
/// Settings come from the environment and from a `.env` file in the current directory (a
/// variable already set in the environment wins); `.env.example` describes every setting.
/// Logs go to stderr; RUST_LOG filters them (default `info`).
#[derive(Debug, Parser)]
#[command(name = "stargazer-keys", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a new random master key, to set as STARGAZER_MASTER_KEY
    ///
    /// Prints 32 random bytes in standard base64 (44 characters) on stdout, and a hint on
    /// stderr. Reads no settings and writes no file. Keep a copy of the key somewhere safe:
    /// without it, no stored API key can be read.
    GenMasterKey,

    /// Rewrap every data key under the current master key, after you changed it
    ///
    /// To replace the master key: run `stargazer-keys gen-master-key`; set
    /// STARGAZER_MASTER_KEY to the new key and add the old one to
    /// STARGAZER_PREVIOUS_MASTER_KEYS; run this command; restart the bot; then empty
    /// STARGAZER_PREVIOUS_MASTER_KEYS.
    ///
    /// Only the data keys in the SQLite database are rewritten, in one transaction: every one
    /// moves to the current master key, or, on any error, none does. The sealed API keys in
    /// Redis are left as they are.
    RotateMasterKey(master_key::RotateArgs),

    /// Check the settings, the database, the master key and the storage backend
    ///
    /// Prints one line per check: `ok`, `FAIL` with the reason, or `skip` when a check cannot
    /// run. Exits with status 1 if any check failed. Never prints a secret, and creates
    /// nothing (an older database schema is brought up to date, as the bot would).
    Doctor,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: changing the environment is only sound while single-threaded.
    if let Err(err) = load_env_file(Path::new(".env")) {
        return report(&err);
    }
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return report(&Error::Runtime(err)),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

async fn run(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::GenMasterKey => master_key::generate(),
        Command::RotateMasterKey(args) => master_key::rotate(&Config::from_env()?, &args).await,
        // The doctor reports bad settings as one of its checks.
        Command::Doctor => doctor::run(Config::from_env()).await,
    }
}

/// Prints `error: <sentence>` on stderr and gives the failure exit code.
fn report(err: &Error) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::FAILURE
}

/// Loads `path` into the environment without overriding what is set; a missing file is fine.
fn load_env_file(path: &Path) -> Result<(), Error> {
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(err) if err.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(statement, column)) => {
            // The statement may hold a secret: name its line, never its text.
            let line = std::fs::read_to_string(path).ok().and_then(|text| {
                text.find(&statement)
                    .map(|at| text[..at].lines().count() + 1)
            });
            Err(Error::EnvFile(match line {
                Some(line) => format!(
                    "{} line {line} cannot be parsed (at character {}); write NAME=value, quoting values with spaces",
                    path.display(),
                    column + 1
                ),
                None => format!(
                    "{} has a line that cannot be parsed; write NAME=value, quoting values with spaces",
                    path.display()
                ),
            }))
        }
        Err(err) => Err(Error::EnvFile(format!(
            "cannot read {}: {err}",
            path.display()
        ))),
    }
}

/// Logs to stderr, filtered by RUST_LOG (default `info`).
fn init_tracing() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}
