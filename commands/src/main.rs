//! `stargazer-keys`: the operator command line of stargazer-keys.
//!
//! Each subcommand lives in its own module under [`operator`]; this file only parses the command
//! line, loads `.env`, starts logging and the runtime, and turns every error into one line.

mod operator;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stargazer_keys::Config;

use operator::{Error, copy, doctor, keys, master_key, rekey, usage};

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
    /// Run the Discord bot (until Ctrl-C or SIGTERM)
    ///
    /// Needs DISCORD_TOKEN. Registers the commands in DISCORD_GUILD_ID when set (instant),
    /// else globally. DISCORD_HTTP_PROXY sends every REST call to that base URL (a rate-limit
    /// proxy). Without a configured master key, creates `master.key` beside the database
    /// (mode 0600) on first start and warns once. Logs go to stderr, filtered by RUST_LOG;
    /// no secret reaches them at any level.
    Bot,

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
    /// Prints one line per check: `ok`, `FAIL` with the reason, `warn` for a risk the
    /// operator may have chosen (Redis that can lose keys), or `skip` when a check cannot run.
    /// Exits with status 1 if any check failed. Never prints a secret, and creates nothing (an
    /// older database schema is brought up to date, as the bot would).
    Doctor(doctor::DoctorArgs),

    /// Set, list, remove or erase a user's own keys
    ///
    /// Works on the storage the bot uses (REDIS_URL, or the embedded store in the SQLite
    /// file). Keys are read from stdin, never from the command line, and printed masked.
    #[command(subcommand)]
    User(keys::UserCommand),

    /// Add, list, remove or unbench keys of the global pool or of a server's or channel's pool; set a pool's daily limit; show its log
    ///
    /// Without --channel, the global pool; with --channel ID, that channel's pool. Keys are
    /// read from stdin, never from the command line, and printed masked.
    #[command(subcommand)]
    Pool(keys::PoolCommand),

    /// Show which key a user would get for a service, and where it comes from
    ///
    /// Resolves as the bot does: the user's own key, then the channel's pool (with
    /// --channel), the server's pool (with --guild), then the global pool (all skipped with
    /// --no-pools), then the operator's environment ({SERVICE}_API_KEY and the service's own
    /// variables). Prints the source (user, channel_pool, guild_pool, global_pool, env, or
    /// none) and the key, masked unless --reveal.
    /// With --json: {"source": ..., "key": <masked key, the key with --reveal, or null>}.
    /// Finding no key is an answer, not an error: the exit status is 0.
    Resolve(keys::ResolveArgs),

    /// Rewrite stored keys of older formats (v2, plaintext) in the current v4 format
    ///
    /// Goes through every user's keys and every pool, and rewrites the original bot's v2
    /// values and plaintext values as v4 (sealed and bound to their owner and service).
    /// Values already v4 are left alone, so running it again changes nothing. A value that
    /// does not open is left as it is and named in a warning; a value that changes while it
    /// is being migrated is left as its writer wrote it. Exits 0 when the pass completes.
    Migrate(keys::MigrateArgs),

    /// Give every user and pool a new data key, and seal every stored key again under it
    ///
    /// The way out of a leaked master key: rotate-master-key only rewraps the same data keys,
    /// so whoever held the old master key and a copy of the key database could still open
    /// every value. After a rekey, no copy from before it opens a current value. The bot may
    /// keep running meanwhile. An interrupted rekey loses nothing: every key still opens, and
    /// running it again finishes the rest. Values in the original bot's formats must be
    /// migrated first. Pool key ids stay as they are.
    Rekey(rekey::RekeyArgs),

    /// Copy the data keys of the SQLite file into PostgreSQL (STARGAZER_DATABASE_URL)
    ///
    /// The step from one machine to several: copies every data key, wrapped as it is, in one
    /// transaction, then checks that the configured master keys open them there. An owner
    /// already in PostgreSQL with the same key is skipped; one with a different key refuses the
    /// whole copy. The SQLite file is left as it was.
    CopyDataKeys(copy::CopyArgs),

    /// Show or reset a user's daily count of shared-key uses
    #[command(subcommand)]
    Usage(usage::UsageCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: changing the environment is only sound while single-threaded.
    if let Err(err) = load_env_file(Path::new(".env")) {
        return report(&err);
    }
    stargazer_keys_commands::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return report(&Error::Runtime(err)),
    };
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => report(&err),
    };
    // A blocking task still waiting on the network (a DNS lookup of an unreachable Discord)
    // must not hold the exit: dropping the runtime would wait for it without end.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Bot => operator::bot::run(Config::from_env()?).await,
        Command::GenMasterKey => master_key::generate(),
        Command::RotateMasterKey(args) => master_key::rotate(&Config::from_env()?, &args).await,
        // The doctor reports bad settings as one of its checks.
        Command::Doctor(args) => doctor::run(Config::from_env(), &args).await,
        Command::User(command) => keys::user(&Config::from_env()?, command).await,
        Command::Pool(command) => keys::pool(&Config::from_env()?, command).await,
        Command::Resolve(args) => keys::resolve(&Config::from_env()?, &args).await,
        Command::Migrate(args) => keys::migrate(&Config::from_env()?, &args).await,
        Command::Rekey(args) => rekey::run(&Config::from_env()?, &args).await,
        Command::CopyDataKeys(args) => copy::run(&Config::from_env()?, &args).await,
        Command::Usage(command) => usage::run(&Config::from_env()?, command).await,
    }
}

/// Prints `error: <sentence>` on stderr and gives the failure exit code.
/// Prints the error; exit code 2 when a setting must change first (a refused token), else 1.
fn report(err: &Error) -> ExitCode {
    eprintln!("error: {err}");
    match err {
        Error::Bot(err) if err.is_setting() => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
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
