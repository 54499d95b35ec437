//! Several real processes on one deployment: two `stargazer-keys bot` processes, each connected
//! to a fake Discord of its own, and the operator's command line beside them. They share one
//! private redis-server plus one SQLite key store, or (no `REDIS_URL`) one SQLite file's
//! embedded store; every process gets the same master key, database file and key prefix, and
//! nothing else of the environment. Each scenario runs once per backend.
//!
//! What the tests show:
//! - a key saved by a bot whose cache still holds a data key the operator has since erased
//!   opens everywhere;
//! - a forget in one bot stops the other opening a restored copy within a second;
//! - a key removed in one bot is gone in the other and in the CLI;
//! - any number of processes may open one fresh database at once, bots included;
//! - a pool key benched again and again by two host bots (the example tool beside the key
//!   commands) at once DMs its contributor once.
//!
//! Each bot logs at `RUST_LOG=info` to `{name}.stderr.log` in the deployment's directory; a
//! failed assertion prints those logs. Every reply must be ephemeral and no secret may appear
//! in a bot's output or in what it sent to Discord.

mod support;

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/web_search.rs"]
mod web_search_example;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore as _;
use stargazer_keys::testkit::{PostgresServer, RedisServer};
use stargazer_keys_commands::testkit::{Callback, Caller, CommandScope, FakeDiscord, SlashCommand};
use support::{BIN, Run};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

const GUILD: u64 = 1_200_000_000_000_000_001;
const CHANNEL: u64 = 1_200_000_000_000_000_002;
const ALICE: u64 = 2_200_000_000_000_000_001;
const BOB: u64 = 2_200_000_000_000_000_002;
const ADMIN: u64 = 2_200_000_000_000_000_009;
/// The first user id of the crowd of CLI processes.
const CROWD_USER: u64 = 3_200_000_000_000_000_000;
/// How many CLI processes open one fresh database at once.
const CROWD: u64 = 12;
/// How long one answer of a bot, one CLI run or one shutdown may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long a bot may take from its spawn to registering its commands (a debug build that
/// opens the database and connects, on a busy two-core machine), as in e2e.rs.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long the whole crowd of CLI processes started at once may take (two cores).
const CROWD_WAIT: Duration = Duration::from_secs(30);
/// How long a forget in one process may leave another one opening the erased values.
const ERASURE_DELAY: Duration = Duration::from_secs(1);
const TEST_BUDGET: Duration = Duration::from_secs(120);

// ---- the deployment ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// A private redis-server for the values, the SQLite file for the data keys.
    Redis,
    /// Everything in the SQLite file; `REDIS_URL` unset.
    Embedded,
    /// A private redis-server for the values, a database of a private PostgreSQL server for
    /// the data keys: no SQLite file at all.
    Postgres,
}

/// One deployment: a fresh directory (the database file does not exist until a process opens
/// it), the settings every process shares, and the Redis of the Redis variant.
struct Deployment {
    backend: Backend,
    dir: TempDir,
    redis: Option<RedisServer>,
    /// The PostgreSQL database of the data keys (backend `Postgres`).
    pg_database: Option<String>,
    prefix: String,
    vars: Vec<(String, String)>,
}

impl Deployment {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis = match backend {
            Backend::Redis | Backend::Postgres => Some(
                tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap()
                    .expect("start a private redis-server"),
            ),
            Backend::Embedded => None,
        };
        let prefix = format!("mp{}", hex(&random_bytes::<6>()));
        let mut vars = vec![
            (
                "STARGAZER_MASTER_KEY".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()),
            ),
            (
                "STARGAZER_DB_PATH".to_owned(),
                dir.path().join("keys.db").display().to_string(),
            ),
            ("STARGAZER_KEY_PREFIX".to_owned(), prefix.clone()),
        ];
        if let Some(redis) = &redis {
            vars.push(("REDIS_URL".to_owned(), redis.url()));
        }
        let mut pg_database = None;
        if backend == Backend::Postgres {
            let url = tokio::task::spawn_blocking(|| PostgresServer::shared().fresh_database())
                .await
                .unwrap()
                .expect("a fresh PostgreSQL database");
            pg_database = url.rsplit('/').next().map(str::to_owned);
            vars.push(("STARGAZER_DATABASE_URL".to_owned(), url));
        }
        Self {
            backend,
            dir,
            redis,
            pg_database,
            prefix,
            vars,
        }
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("keys.db")
    }

    /// The stored hash of a user's keys, `{prefix}:user_api_keys:{user_id}`.
    fn user_hash(&self, user: u64) -> String {
        format!("{}:user_api_keys:{user}", self.prefix)
    }

    /// The binary with the shared settings, PATH, and nothing else of the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        command
    }

    /// Spawns `stargazer-keys bot` on a fake Discord of its own, without waiting for it.
    async fn spawn_bot(&self, name: &'static str) -> BotProcess {
        self.spawn_process(name, self.command(&["bot"])).await
    }

    /// Spawns a host bot, the key commands and the example `/web_search` (this test binary,
    /// run as [`host_bot_process`]), with the shared settings, and waits until it registered
    /// its commands.
    async fn start_host(&self, name: &'static str) -> BotProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "host_bot_process", "--nocapture"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env(HOST_PROCESS, "1")
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        let mut host = self.spawn_process(name, command).await;
        host.registered().await;
        host
    }

    /// Spawns `command` (a bot) on a fake Discord of its own, without waiting for it.
    async fn spawn_process(&self, name: &'static str, mut command: Command) -> BotProcess {
        let fake = FakeDiscord::start().await.expect("start a fake Discord");
        let stderr = self.dir.path().join(format!("{name}.stderr.log"));
        let stdout = self.dir.path().join(format!("{name}.stdout.log"));
        let child = command
            .env("DISCORD_TOKEN", fake.token())
            .env("DISCORD_HTTP_PROXY", fake.http_url())
            .env("DISCORD_GUILD_ID", GUILD.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn the bot");
        BotProcess {
            name,
            fake,
            child,
            stderr,
            stdout,
        }
    }

    /// Spawns a bot and waits until it has registered its commands.
    async fn start_bot(&self, name: &'static str) -> BotProcess {
        let mut bot = self.spawn_bot(name).await;
        bot.registered().await;
        bot
    }

    /// The shared value of a setting.
    fn var(&self, name: &str) -> String {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not set"))
    }

    /// Sets a shared setting for every process started from now on.
    fn set_var(&mut self, name: &str, value: &str) {
        self.unset_var(name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    fn unset_var(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    /// Spawns the CLI with some settings of its own over the shared ones, stdin closed.
    fn spawn_cli_with(&self, args: &[&str], overrides: &[(&str, &str)]) -> Child {
        let mut command = self.command(args);
        for (name, value) in overrides {
            command.env(name, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the CLI")
    }

    /// Spawns the CLI with `input` on its stdin (then closed).
    fn spawn_cli(&self, args: &[&str], input: &str) -> Child {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the CLI");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.as_bytes().to_vec();
        // A broken pipe is the CLI refusing to read on: its exit status tells the story.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        child
    }

    /// Runs the CLI to its end (at most [`WAIT`]).
    async fn cli(&self, args: &[&str], input: &str) -> Run {
        let child = self.spawn_cli(args, input);
        finish(args, child, WAIT).await
    }

    /// Runs the CLI and fails the test unless it exits 0.
    async fn cli_ok(&self, args: &[&str], input: &str) -> Run {
        let run = self.cli(args, input).await;
        assert_eq!(
            run.code,
            Some(0),
            "`stargazer-keys {}` failed ({:?}): {run:#?}\n{}",
            args.join(" "),
            self.backend,
            self.logs()
        );
        run
    }

    /// What a fresh process resolves: `resolve --json --reveal`'s source and key.
    async fn resolve(&self, user: u64, service: &str) -> (String, Option<String>) {
        let user = user.to_string();
        let run = self
            .cli_ok(
                &[
                    "resolve",
                    "--user",
                    &user,
                    "--service",
                    service,
                    "--json",
                    "--reveal",
                ],
                "",
            )
            .await;
        let value: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|err| panic!("resolve printed no JSON ({err}): {run:#?}"));
        (
            value["source"].as_str().expect("a source").to_owned(),
            value["key"].as_str().map(str::to_owned),
        )
    }

    /// What a process on another machine resolves: `resolve` run from an empty directory of
    /// its own, with every shared setting but the SQLite path (it shares only Redis and
    /// PostgreSQL). Checks that it left that directory empty.
    async fn resolve_elsewhere(&self, user: u64, service: &str) -> (String, Option<String>) {
        let elsewhere = tempfile::tempdir().unwrap();
        let user = user.to_string();
        let args = [
            "resolve",
            "--user",
            &user,
            "--service",
            service,
            "--json",
            "--reveal",
        ];
        let mut command = self.command(&args);
        command
            .env_remove("STARGAZER_DB_PATH")
            .current_dir(elsewhere.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let run = finish(&args, command.spawn().unwrap(), WAIT).await;
        assert_eq!(run.code, Some(0), "{run:#?}");
        let left: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "the other machine's directory holds {left:?}"
        );
        let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        (
            value["source"].as_str().expect("a source").to_owned(),
            value["key"].as_str().map(str::to_owned),
        )
    }

    /// What a fresh process lists for a user: `user list --json`, as (service, masked).
    async fn user_list(&self, user: u64) -> Vec<(String, Option<String>)> {
        let user = user.to_string();
        let run = self
            .cli_ok(&["user", "list", "--user", &user, "--json"], "")
            .await;
        let value: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|err| panic!("user list printed no JSON ({err}): {run:#?}"));
        let mut keys: Vec<(String, Option<String>)> = value
            .as_array()
            .expect("an array")
            .iter()
            .map(|key| {
                (
                    key["service"].as_str().unwrap().to_owned(),
                    key["masked"].as_str().map(str::to_owned),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    /// The raw stored value of a user's key for a service (sealed: `v4:…`), read from Redis
    /// or from the embedded store's `kv_hash`.
    async fn raw_get(&self, user: u64, service: &str) -> Option<String> {
        let key = self.user_hash(user);
        match &self.redis {
            Some(redis) => {
                let out = redis_cli(redis, &["--raw", "HGET", &key, service]).await;
                let value = out.trim_end_matches(['\r', '\n']);
                (!value.is_empty()).then(|| value.to_owned())
            }
            None => {
                let service = service.to_owned();
                self.sqlite(move |conn| {
                    rusqlite::OptionalExtension::optional(conn.query_row(
                        "SELECT value FROM kv_hash WHERE key = ?1 AND field = ?2",
                        rusqlite::params![key, service],
                        |row| row.get::<_, String>(0),
                    ))
                    .unwrap()
                })
                .await
            }
        }
    }

    /// Writes a raw value back, as a restore from a backup would.
    async fn raw_set(&self, user: u64, service: &str, value: &str) {
        let key = self.user_hash(user);
        match &self.redis {
            Some(redis) => {
                redis_cli(redis, &["HSET", &key, service, value]).await;
            }
            None => {
                let (service, value) = (service.to_owned(), value.to_owned());
                self.sqlite(move |conn| {
                    conn.execute(
                        "INSERT INTO kv_hash (key, field, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(key, field) DO UPDATE SET value = excluded.value",
                        rusqlite::params![key, service, value],
                    )
                    .unwrap();
                })
                .await;
            }
        }
    }

    /// Runs `query` on a connection of its own to the database file, off the runtime.
    async fn sqlite<T: Send + 'static>(
        &self,
        query: impl FnOnce(&rusqlite::Connection) -> T + Send + 'static,
    ) -> T {
        let path = self.db_path();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(WAIT).unwrap();
            query(&conn)
        })
        .await
        .unwrap()
    }

    /// Every row of the data-key table, (owner, wrapped key), by owner: from the SQLite file,
    /// or (as hex) from PostgreSQL.
    async fn wrapped_data_keys(&self) -> Vec<(String, Vec<u8>)> {
        if let Some(name) = self.pg_database.clone() {
            let out = tokio::task::spawn_blocking(move || {
                PostgresServer::shared().psql(
                    &name,
                    "SELECT user_id || ' ' || encode(encrypted_key, 'hex') FROM encryption_keys ORDER BY user_id",
                )
            })
            .await
            .unwrap()
            .expect("psql");
            return out
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(owner, key)| (owner.to_owned(), key.as_bytes().to_vec()))
                .collect();
        }
        self.sqlite(|conn| {
            conn.prepare("SELECT user_id, encrypted_key FROM encryption_keys ORDER BY user_id")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        })
        .await
    }

    /// How many owners of `before` have another wrapped key now.
    async fn owners_changed_since(&self, before: &[(String, Vec<u8>)]) -> usize {
        let now: std::collections::HashMap<String, Vec<u8>> =
            self.wrapped_data_keys().await.into_iter().collect();
        before
            .iter()
            .filter(|(owner, key)| now.get(owner) != Some(key))
            .count()
    }

    /// For the PostgreSQL deployment: no SQLite file was made, and `pg_dump` of the key store
    /// holds none of `secrets`.
    async fn assert_postgres_alone_holds_the_keys(&self, secrets: &[&str]) {
        let Some(name) = self.pg_database.clone() else {
            return;
        };
        assert!(
            !self.db_path().exists() && !self.dir.path().join("data").exists(),
            "a SQLite file was made beside PostgreSQL"
        );
        let dump = tokio::task::spawn_blocking(move || PostgresServer::shared().dump(&name))
            .await
            .unwrap()
            .expect("pg_dump");
        assert!(dump.contains("encryption_keys"), "{dump}");
        for secret in secrets {
            assert!(!dump.contains(secret), "pg_dump holds a secret");
            assert!(
                !dump.contains(&secret[3..19]),
                "pg_dump holds part of a secret"
            );
        }
    }

    /// A vault in this test's process, on the deployment's settings.
    async fn vault(&self) -> stargazer_keys::KeyVault {
        let config = stargazer_keys::Config::from_vars(self.vars.clone()).unwrap();
        stargazer_keys::KeyVault::open(config)
            .await
            .expect("open a vault on the deployment")
    }

    /// Every bot's captured output, for a failure message.
    fn logs(&self) -> String {
        logs_in(self.dir.path())
    }
}

/// Waits (at most `wait`) for a CLI process to end.
async fn finish(args: &[&str], child: Child, wait: Duration) -> Run {
    let output = tokio::time::timeout(wait, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`stargazer-keys {}` did not finish within {wait:?}",
                args.join(" ")
            )
        })
        .unwrap();
    Run::from(output)
}

async fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let output = tokio::time::timeout(
        WAIT,
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("redis-cli finished in time")
    .expect("run redis-cli");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn logs_in(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|path| {
            format!(
                "---- {} ----\n{}",
                path.file_name().unwrap().to_string_lossy(),
                std::fs::read_to_string(path).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- a bot process ----------------------------------------------------------------------------

/// A running `stargazer-keys bot` and the fake Discord it is connected to. Dropping it kills
/// the process (kill_on_drop); [`BotProcess::stop`] stops it with SIGTERM and checks the exit.
struct BotProcess {
    name: &'static str,
    fake: FakeDiscord,
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl BotProcess {
    /// The bot's stderr and stdout so far.
    fn output(&self) -> String {
        format!(
            "---- {} stderr ----\n{}\n---- {} stdout ----\n{}",
            self.name,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            self.name,
            std::fs::read_to_string(&self.stdout).unwrap_or_default()
        )
    }

    /// Waits until the bot has registered its commands in the guild, failing at once when the
    /// process exits first.
    async fn registered(&mut self) {
        let started = Instant::now();
        loop {
            let registered = self.fake.registered_commands();
            if let Some(first) = registered.first() {
                assert_eq!(first.scope, CommandScope::Guild(GUILD));
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before registering its commands:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                started.elapsed() < START_WAIT,
                "{} registered no commands within {START_WAIT:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a command and returns the bot's first answer to it.
    async fn answer(&self, caller: &Caller, command: SlashCommand) -> Callback {
        let handle = self
            .fake
            .slash(caller, command)
            .await
            .unwrap_or_else(|err| panic!("{}: inject the command: {err}", self.name));
        handle
            .callback(WAIT)
            .await
            .unwrap_or_else(|err| panic!("{} did not answer: {err}\n{}", self.name, self.output()))
    }

    /// `/set_user_api_key service` and the modal: returns the answer to the submit.
    async fn save(&self, caller: &Caller, service: &str, secret: &str) -> String {
        let modal = self
            .answer(
                caller,
                SlashCommand::new("set_user_api_key").option("service", service),
            )
            .await;
        assert!(
            modal.is_modal(),
            "{}: expected a modal, got {modal:?}",
            self.name
        );
        let reply = self
            .fake
            .submit_modal(caller, &modal, &[secret])
            .await
            .unwrap_or_else(|err| panic!("{}: submit the modal: {err}", self.name))
            .callback(WAIT)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{} did not answer the modal: {err}\n{}",
                    self.name,
                    self.output()
                )
            });
        assert!(reply.is_ephemeral(), "{}: {reply:?}", self.name);
        reply.content().unwrap_or_default().to_owned()
    }

    /// `/list_user_api_keys`: what the user sees.
    async fn list(&self, caller: &Caller) -> String {
        let reply = self
            .answer(caller, SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(reply.is_ephemeral(), "{}: {reply:?}", self.name);
        reply.content().unwrap_or_default().to_owned()
    }

    /// `/remove_user_api_key service`: what the user sees.
    async fn remove(&self, caller: &Caller, service: &str) -> String {
        let reply = self
            .answer(
                caller,
                SlashCommand::new("remove_user_api_key").option("service", service),
            )
            .await;
        assert!(reply.is_ephemeral(), "{}: {reply:?}", self.name);
        reply.content().unwrap_or_default().to_owned()
    }

    /// `/forget_my_api_keys`, then the confirm button: what the user sees.
    async fn forget(&self, caller: &Caller) -> String {
        let asked = self
            .fake
            .slash(caller, SlashCommand::new("forget_my_api_keys"))
            .await
            .unwrap_or_else(|err| panic!("{}: inject the command: {err}", self.name));
        let question = asked
            .callback(WAIT)
            .await
            .unwrap_or_else(|err| panic!("{} did not ask: {err}\n{}", self.name, self.output()));
        assert!(question.is_ephemeral(), "{}: {question:?}", self.name);
        let confirm = question
            .custom_ids()
            .into_iter()
            .find(|id| id.contains(":forget:"))
            .unwrap_or_else(|| panic!("{}: no confirm button in {question:?}", self.name));
        let erased = self
            .fake
            .press_button(caller, &asked, &confirm)
            .await
            .unwrap_or_else(|err| panic!("{}: press the button: {err}", self.name))
            .callback(WAIT)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{} did not answer the button: {err}\n{}",
                    self.name,
                    self.output()
                )
            });
        assert!(erased.is_update(), "{}: {erased:?}", self.name);
        erased.content().unwrap_or_default().to_owned()
    }

    /// Every message answer was ephemeral, and no secret is in the bot's output or in
    /// anything it sent to Discord.
    fn assert_clean(&self, secrets: &[&str]) {
        for callback in self.fake.callbacks() {
            if matches!(callback.kind, 4 | 5) {
                assert!(
                    callback.is_ephemeral(),
                    "{}: a reply is visible to everyone: {callback:?}",
                    self.name
                );
            }
        }
        for followup in self.fake.followups() {
            if followup.body.get("content").is_some() && followup.body.get("flags").is_some() {
                assert!(
                    followup.is_ephemeral(),
                    "{}: a follow-up is visible to everyone: {followup:?}",
                    self.name
                );
            }
        }
        let output = self.output();
        let requests = self.fake.requests();
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !output.contains(secret),
                "{}: a secret is in the bot's output",
                self.name
            );
            for request in &requests {
                assert!(
                    !request.contains(secret),
                    "{}: a secret went to Discord in {} {}",
                    self.name,
                    request.method,
                    request.path
                );
            }
        }
    }

    /// SIGTERM, then the process must exit 0 within [`WAIT`]; the fake Discord saw nothing
    /// wrong.
    async fn stop(mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} had already exited ({status}):\n{}",
                self.name,
                self.output()
            );
        }
        let pid = self.child.id().expect("the bot is running");
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within {WAIT:?} of SIGTERM:\n{}",
                    self.name,
                    self.output()
                )
            })
            .unwrap();
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.name,
            self.output()
        );
        let problems = self.fake.problems();
        assert!(
            problems.is_empty(),
            "{}: the fake Discord reported: {problems:#?}",
            self.name
        );
    }
}

// ---- small helpers ----------------------------------------------------------------------------

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secret(tag: &str) -> String {
    format!("sk-{tag}-{}", hex(&random_bytes::<12>()))
}

/// How a bot shows a key: its last four characters, in backticks.
fn masked(secret: &str) -> String {
    format!("`…{}`", &secret[secret.len() - 4..])
}

fn alice() -> Caller {
    Caller::in_guild(ALICE, "alice", GUILD, CHANNEL)
}

fn bob() -> Caller {
    Caller::in_guild(BOB, "bob", GUILD, CHANNEL)
}

fn found(source: &str, key: &str) -> (String, Option<String>) {
    (source.to_owned(), Some(key.to_owned()))
}

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BUDGET, body)
        .await
        .expect("the test finished within its budget");
}

/// Three tests of one scenario: `name::on_redis`, `name::on_the_embedded_store` and
/// `name::on_postgres` (Redis and PostgreSQL, no SQLite file).
macro_rules! on_every_backend {
    ($name:ident, $scenario:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis() {
                bounded($scenario(Backend::Redis)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_the_embedded_store() {
                bounded($scenario(Backend::Embedded)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                bounded($scenario(Backend::Postgres)).await;
            }
        }
    };
}

// ---- 1. a data key replaced elsewhere -------------------------------------------------------

/// Bot 2 caches Alice's data key; the operator erases her and saves a key for her under a new
/// data key; Alice saves another key through bot 2. Every key opens in every process.
async fn a_key_saved_with_a_stale_data_key_opens_everywhere(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let bot1 = dep.start_bot("bot1").await;
    let bot2 = dep.start_bot("bot2").await;
    let alice = alice();
    let user_id = ALICE.to_string();

    // (a) Bot 2 seals Alice's first key, and so caches her data key.
    let brave = secret("brave");
    let saved = bot2.save(&alice, "brave", &brave).await;
    assert!(
        saved.starts_with("Saved your Brave Search key"),
        "{saved}\n{}",
        dep.logs()
    );

    // (b) The operator erases Alice, then saves a key for her: a new data key.
    dep.cli_ok(&["user", "forget", "--user", &user_id], "")
        .await;
    let openai = secret("openai");
    dep.cli_ok(
        &["user", "set", "--user", &user_id, "--service", "openai"],
        &openai,
    )
    .await;

    // (c) Alice saves another key through bot 2, whose cache still held the erased data key.
    let openrouter = secret("openrouter");
    let saved = bot2.save(&alice, "openrouter", &openrouter).await;
    assert!(
        saved.starts_with("Saved your OpenRouter key"),
        "{saved}\n{}",
        dep.logs()
    );

    // (d) Every process reads both keys.
    assert_eq!(
        dep.resolve(ALICE, "openrouter").await,
        found("user", &openrouter),
        "{backend:?}: a fresh process does not resolve the key bot 2 saved after the CLI's forget and set\n{}",
        dep.logs()
    );
    assert_eq!(
        dep.resolve(ALICE, "openai").await,
        found("user", &openai),
        "{backend:?}: a fresh process does not resolve the key the CLI saved\n{}",
        dep.logs()
    );
    let listed = dep.user_list(ALICE).await;
    assert_eq!(
        listed,
        vec![
            (
                "openai".to_owned(),
                Some(format!("…{}", &openai[openai.len() - 4..]))
            ),
            (
                "openrouter".to_owned(),
                Some(format!("…{}", &openrouter[openrouter.len() - 4..]))
            ),
        ],
        "{backend:?}: `user list` in a fresh process"
    );
    for bot in [&bot1, &bot2] {
        let text = bot.list(&alice).await;
        assert!(
            text.contains(&masked(&openrouter)) && text.contains(&masked(&openai)),
            "{backend:?}: {}'s /list_user_api_keys does not show both keys:\n{text}\n{}",
            bot.name,
            dep.logs()
        );
        assert!(
            !text.contains("unreadable"),
            "{backend:?}: {}'s /list_user_api_keys shows an unreadable key:\n{text}",
            bot.name
        );
        assert!(!text.contains(&masked(&brave)), "{text}");
    }

    let secrets = [brave.as_str(), &openai, &openrouter];
    if backend == Backend::Postgres {
        assert_eq!(
            dep.resolve_elsewhere(ALICE, "openrouter").await,
            found("user", &openrouter),
            "a process on another machine, sharing only Redis and PostgreSQL"
        );
        dep.assert_postgres_alone_holds_the_keys(&secrets).await;
    }
    for bot in [bot1, bot2] {
        bot.assert_clean(&secrets);
        bot.stop().await;
    }
}

on_every_backend!(
    a_key_saved_by_a_bot_with_a_stale_data_key_after_a_cli_forget_opens_everywhere,
    a_key_saved_with_a_stale_data_key_opens_everywhere
);

// ---- 2. a forget elsewhere, then a restored copy ----------------------------------------------

/// Bot 2 opens Alice's key; she forgets everything through bot 1; a second later the sealed
/// value is written back, as from a backup. Neither bot 2 nor a fresh process opens it.
async fn a_forget_in_one_bot_stops_the_other_opening_a_restored_copy(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let bot1 = dep.start_bot("bot1").await;
    let bot2 = dep.start_bot("bot2").await;
    let alice = alice();

    let key = secret("brave");
    let saved = bot1.save(&alice, "brave", &key).await;
    assert!(
        saved.starts_with("Saved your Brave Search key"),
        "{saved}\n{}",
        dep.logs()
    );
    let sealed = dep
        .raw_get(ALICE, "brave")
        .await
        .expect("the sealed value is stored");
    assert!(
        sealed.starts_with("v4:") && !sealed.contains(&key),
        "{sealed}"
    );

    // Bot 2 opens it (and caches Alice's data key).
    let text = bot2.list(&alice).await;
    assert!(
        text.contains(&masked(&key)),
        "{backend:?}: bot 2 does not show the key bot 1 saved:\n{text}\n{}",
        dep.logs()
    );

    let erased = bot1.forget(&alice).await;
    assert!(erased.starts_with("Erased"), "{erased}\n{}", dep.logs());
    assert_eq!(
        dep.raw_get(ALICE, "brave").await,
        None,
        "the forget deleted the value"
    );

    tokio::time::sleep(ERASURE_DELAY).await;
    // A copy restored from a backup.
    dep.raw_set(ALICE, "brave", &sealed).await;
    assert_eq!(dep.raw_get(ALICE, "brave").await.as_deref(), Some(&*sealed));

    let text = bot2.list(&alice).await;
    assert!(
        !text.contains(&masked(&key)),
        "{backend:?}: bot 2 still opens a restored copy {ERASURE_DELAY:?} after the forget in bot 1:\n{text}\n{}",
        dep.logs()
    );
    let text = bot1.list(&alice).await;
    assert!(
        !text.contains(&masked(&key)),
        "{backend:?}: bot 1 opens a restored copy after its own forget:\n{text}"
    );
    let resolved = dep.resolve(ALICE, "brave").await;
    assert_ne!(
        resolved.1.as_deref(),
        Some(key.as_str()),
        "{backend:?}: a fresh process opens the restored copy"
    );
    assert_eq!(resolved, ("none".to_owned(), None), "{backend:?}");

    for bot in [bot1, bot2] {
        bot.assert_clean(&[&key]);
        bot.stop().await;
    }
}

on_every_backend!(
    a_forget_in_one_bot_makes_a_restored_copy_unopenable_in_the_other_within_a_second,
    a_forget_in_one_bot_stops_the_other_opening_a_restored_copy
);

// ---- 3. a removal elsewhere -------------------------------------------------------------------

/// Alice saves a key through bot 1 and removes it through bot 2: bot 1 no longer lists it and
/// a fresh process resolves the global pool's key instead.
async fn a_key_removed_in_one_bot_is_gone_everywhere(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let bot1 = dep.start_bot("bot1").await;
    let bot2 = dep.start_bot("bot2").await;
    let alice = alice();

    let pooled = secret("pooled");
    dep.cli_ok(
        &[
            "pool",
            "add",
            "--service",
            "brave",
            "--contributor",
            &ADMIN.to_string(),
        ],
        &pooled,
    )
    .await;

    let key = secret("brave");
    let saved = bot1.save(&alice, "brave", &key).await;
    assert!(
        saved.starts_with("Saved your Brave Search key"),
        "{saved}\n{}",
        dep.logs()
    );
    assert_eq!(dep.resolve(ALICE, "brave").await, found("user", &key));
    let text = bot2.list(&alice).await;
    assert!(
        text.contains(&masked(&key)),
        "{backend:?}: bot 2 does not show the key bot 1 saved:\n{text}\n{}",
        dep.logs()
    );

    let removed = bot2.remove(&alice, "brave").await;
    assert_eq!(removed, "Removed your Brave Search key.", "{}", dep.logs());

    let text = bot1.list(&alice).await;
    assert!(
        !text.contains(&masked(&key)) && text.starts_with("You have no API keys saved."),
        "{backend:?}: bot 1 still lists the key bot 2 removed:\n{text}\n{}",
        dep.logs()
    );
    assert_eq!(
        dep.resolve(ALICE, "brave").await,
        found("global_pool", &pooled),
        "{backend:?}: a fresh process resolves a removed key\n{}",
        dep.logs()
    );
    assert_eq!(dep.raw_get(ALICE, "brave").await, None);

    for bot in [bot1, bot2] {
        bot.assert_clean(&[&key, &pooled]);
        bot.stop().await;
    }
}

on_every_backend!(
    a_key_removed_in_one_bot_is_gone_from_the_other_and_from_the_cli,
    a_key_removed_in_one_bot_is_gone_everywhere
);

// ---- 4. many processes on one fresh database -------------------------------------------------

/// Twelve `user set` processes spawned at once on a database file that does not exist yet:
/// every one exits 0, and every user's key resolves afterwards.
async fn cli_processes_opening_a_fresh_database_at_once_all_save(backend: Backend) {
    let dep = Deployment::new(backend).await;
    assert!(!dep.db_path().exists());
    let keys: Vec<String> = (0..CROWD).map(|i| secret(&format!("crowd{i}"))).collect();
    let users: Vec<String> = (0..CROWD).map(|i| (CROWD_USER + i).to_string()).collect();
    let children: Vec<Child> = users
        .iter()
        .zip(&keys)
        .map(|(user, key)| {
            dep.spawn_cli(&["user", "set", "--user", user, "--service", "brave"], key)
        })
        .collect();
    let started = Instant::now();
    let mut failures = Vec::new();
    for (user, child) in users.iter().zip(children) {
        let left = CROWD_WAIT.saturating_sub(started.elapsed());
        let run = finish(&["user", "set", "--user", user], child, left).await;
        if run.code != Some(0) {
            failures.push(format!(
                "user {user}: exit {:?}: {}",
                run.code,
                run.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{backend:?}: {} of {CROWD} processes opening one fresh database at once failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            dep.resolve(CROWD_USER + i as u64, "brave").await,
            found("user", key),
            "{backend:?}: user {i} of the crowd"
        );
    }
}

on_every_backend!(
    twelve_cli_processes_opening_one_fresh_database_at_once_all_save,
    cli_processes_opening_a_fresh_database_at_once_all_save
);

/// Two bots spawned at the same moment on a database file that does not exist yet: both
/// register, and each reads what the other saved.
async fn two_bots_started_at_once_on_a_fresh_database_agree(backend: Backend) {
    let dep = Deployment::new(backend).await;
    assert!(!dep.db_path().exists());
    let mut bot1 = dep.spawn_bot("bot1").await;
    let mut bot2 = dep.spawn_bot("bot2").await;
    bot1.registered().await;
    bot2.registered().await;

    let alices = secret("alice");
    let bobs = secret("bob");
    let saved = bot1.save(&alice(), "brave", &alices).await;
    assert!(
        saved.starts_with("Saved your Brave Search key"),
        "{saved}\n{}",
        dep.logs()
    );
    let saved = bot2.save(&bob(), "brave", &bobs).await;
    assert!(
        saved.starts_with("Saved your Brave Search key"),
        "{saved}\n{}",
        dep.logs()
    );
    let text = bot2.list(&alice()).await;
    assert!(
        text.contains(&masked(&alices)),
        "{backend:?}: {text}\n{}",
        dep.logs()
    );
    let text = bot1.list(&bob()).await;
    assert!(
        text.contains(&masked(&bobs)),
        "{backend:?}: {text}\n{}",
        dep.logs()
    );
    assert_eq!(dep.resolve(ALICE, "brave").await, found("user", &alices));
    assert_eq!(dep.resolve(BOB, "brave").await, found("user", &bobs));

    for bot in [bot1, bot2] {
        bot.assert_clean(&[&alices, &bobs]);
        bot.stop().await;
    }
}

on_every_backend!(
    two_bots_started_at_once_on_a_fresh_database_both_register_and_agree,
    two_bots_started_at_once_on_a_fresh_database_agree
);

// ---- 6. a rekey while the bots run ------------------------------------------------------------

/// The operator runs `rekey` while two bots run with warm caches and Alice saves a key through
/// one of them: every key opens in both bots and in a fresh process, and no old data key is
/// left in the database.
async fn a_rekey_while_two_bots_run_loses_no_key(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let bot1 = dep.start_bot("bot1").await;
    let bot2 = dep.start_bot("bot2").await;
    let (alice, bob) = (alice(), bob());
    let alice_brave = secret("alice-brave");
    let bob_brave = secret("bob-brave");
    let alice_openrouter = secret("alice-openrouter");
    assert!(
        bot1.save(&alice, "brave", &alice_brave)
            .await
            .starts_with("Saved")
    );
    assert!(
        bot2.save(&bob, "brave", &bob_brave)
            .await
            .starts_with("Saved")
    );
    // Both bots now cache both users' data keys.
    for bot in [&bot1, &bot2] {
        assert!(bot.list(&alice).await.contains(&masked(&alice_brave)));
        assert!(bot.list(&bob).await.contains(&masked(&bob_brave)));
    }
    let wrapped_before = dep.wrapped_data_keys().await;
    let brave_before = dep.raw_get(ALICE, "brave").await;

    let rekey = dep.spawn_cli(&["rekey", "--json"], "");
    let saved = bot2.save(&alice, "openrouter", &alice_openrouter).await;
    assert!(saved.starts_with("Saved"), "{saved}\n{}", dep.logs());
    let run = finish(&["rekey"], rekey, WAIT).await;
    assert_eq!(run.code, Some(0), "{run:#?}\n{}", dep.logs());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report["owners"], 2, "{report}");
    assert_eq!(report["unreadable"], 0, "{report}");

    // Every data key and every value changed; no rekey row is left.
    let wrapped_after = dep.wrapped_data_keys().await;
    assert_eq!(
        wrapped_after.iter().map(|(o, _)| o).collect::<Vec<_>>(),
        vec![&ALICE.to_string(), &BOB.to_string()],
        "{backend:?}: the rows after the rekey"
    );
    for ((owner, before), (_, after)) in wrapped_before.iter().zip(&wrapped_after) {
        assert_ne!(before, after, "{backend:?}: {owner}'s data key");
    }
    assert_ne!(dep.raw_get(ALICE, "brave").await, brave_before);

    // Once the rekey is over, the key saved meanwhile is a key the rekey left readable:
    // saved again later through the other bot or not, every process reads every key.
    for bot in [&bot1, &bot2] {
        let text = bot.list(&alice).await;
        assert!(
            text.contains(&masked(&alice_brave))
                && text.contains(&masked(&alice_openrouter))
                && !text.contains("unreadable"),
            "{backend:?}: {}'s list after the rekey:\n{text}\n{}",
            bot.name,
            dep.logs()
        );
        let text = bot.list(&bob).await;
        assert!(
            text.contains(&masked(&bob_brave)) && !text.contains("unreadable"),
            "{backend:?}: {}: {text}",
            bot.name
        );
    }
    assert_eq!(
        dep.resolve(ALICE, "brave").await,
        found("user", &alice_brave)
    );
    assert_eq!(
        dep.resolve(ALICE, "openrouter").await,
        found("user", &alice_openrouter)
    );
    assert_eq!(dep.resolve(BOB, "brave").await, found("user", &bob_brave));

    let secrets = [alice_brave.as_str(), &bob_brave, &alice_openrouter];
    for secret in secrets {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    dep.assert_postgres_alone_holds_the_keys(&secrets).await;
    for bot in [bot1, bot2] {
        bot.assert_clean(&secrets);
        bot.stop().await;
    }
}

on_every_backend!(
    a_rekey_by_the_operator_while_two_bots_run_loses_no_key,
    a_rekey_while_two_bots_run_loses_no_key
);

/// How many users the killed rekey has to get through: enough that it is still running when
/// it is killed.
const REKEY_USERS: u64 = 300;

/// `rekey` killed with SIGKILL partway: every key still opens, and a second run finishes.
async fn a_rekey_killed_partway_loses_nothing_and_a_second_run_finishes(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let vault = dep.vault().await;
    let mut keys = Vec::new();
    for i in 0..REKEY_USERS {
        let key = secret(&format!("user{i}"));
        vault
            .set_user_api_key(CROWD_USER + i, "brave", &key)
            .await
            .unwrap();
        keys.push(key);
    }
    drop(vault);
    let before = dep.wrapped_data_keys().await;

    let mut rekey = dep.spawn_cli(&["rekey"], "");
    // Killed once some owners are done.
    let started = Instant::now();
    while dep.owners_changed_since(&before).await < 5 {
        assert!(
            rekey.try_wait().unwrap().is_none(),
            "the rekey ended before it could be killed"
        );
        assert!(started.elapsed() < WAIT, "the rekey finished no owner");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rekey.start_kill().unwrap();
    let status = rekey.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{backend:?}: the rekey was still running when it was killed"
    );
    let changed = dep.owners_changed_since(&before).await;
    assert!(changed >= 5, "{backend:?}: {changed} owners were rekeyed");
    assert!(
        changed < before.len(),
        "{backend:?}: every owner was rekeyed before the kill"
    );

    let check_all = |what: &'static str| {
        let dep = &dep;
        let keys = &keys;
        async move {
            let vault = dep.vault().await;
            for (i, key) in keys.iter().enumerate() {
                let resolved = vault
                    .get_user_api_key(Some(CROWD_USER + i as u64), "brave", None, true)
                    .await
                    .unwrap();
                assert_eq!(
                    resolved.key.expose(),
                    key.as_str(),
                    "{backend:?}: user {i} {what}"
                );
            }
        }
    };
    check_all("after the kill").await;

    let run = dep.cli_ok(&["rekey", "--json"], "").await;
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report["owners"], REKEY_USERS, "{report}");
    assert_eq!(report["unreadable"], 0, "{report}");
    check_all("after the second run").await;
    let after = dep.wrapped_data_keys().await;
    assert_eq!(
        after.len(),
        before.len(),
        "{backend:?}: no rekey row is left"
    );
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(b, a)| b.0 == a.0 && b.1 != a.1)
    );

    // `doctor` names a rekey left unfinished, and is quiet about it once it is finished.
    let vault = dep.vault().await;
    let owner = CROWD_USER.to_string();
    let stage = vault.data_keys().rekey_stage(&owner).await.unwrap();
    assert!(matches!(stage, stargazer_keys::RekeyStage::Moving { .. }));
    drop(vault);
    let doctor = dep.cli(&["doctor"], "").await;
    assert!(
        doctor.stdout.contains(
            "FAIL rekey: a rekey of 1 owner is running or was interrupted; every key still opens, and `stargazer-keys rekey` finishes it"
        ),
        "{doctor:#?}"
    );
    dep.cli_ok(&["rekey"], "").await;
    let doctor = dep.cli(&["doctor"], "").await;
    assert!(!doctor.stdout.contains("rekey"), "{doctor:#?}");
    check_all("after a third run").await;
}

on_every_backend!(
    a_rekey_killed_partway_loses_nothing_and_a_second_run_finishes_it,
    a_rekey_killed_partway_loses_nothing_and_a_second_run_finishes
);

// ---- 7. a master-key rotation while the bots run ----------------------------------------------

/// How many users hold a key before the rotation: enough rows that it takes a moment.
const ROTATION_USERS: u64 = 1_000;
/// The first user id of those who save a key while the rotation runs.
const ROTATION_NEWCOMER: u64 = 4_200_000_000_000_000_000;

/// The documented rollout, with two bots answering all along:
/// 1. every process knows the new key (old current, new previous);
/// 2. `rotate-master-key` (new current, old previous) while the bots list and save keys;
/// 3. the bots restart on the new key with the old one still known, a second rotation moves
///    what they wrapped under the old key meanwhile, and the old key is dropped.
///
/// Every list shows every key and every save succeeds, before, during and after.
async fn a_master_key_rotation_while_two_bots_run_fails_no_call(backend: Backend) {
    let mut dep = Deployment::new(backend).await;
    let old = dep.var("STARGAZER_MASTER_KEY");
    let new = base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>());
    // Step 1.
    dep.set_var("STARGAZER_PREVIOUS_MASTER_KEYS", &new);
    let vault = dep.vault().await;
    for i in 0..ROTATION_USERS {
        vault
            .set_user_api_key(CROWD_USER + i, "brave", &secret(&format!("seed{i}")))
            .await
            .unwrap();
    }
    drop(vault);
    let bot1 = dep.start_bot("bot1").await;
    let bot2 = dep.start_bot("bot2").await;
    let (alice, bob) = (alice(), bob());
    let alice_key = secret("alice");
    let bob_key = secret("bob");
    assert!(
        bot1.save(&alice, "brave", &alice_key)
            .await
            .starts_with("Saved")
    );
    assert!(
        bot2.save(&bob, "brave", &bob_key)
            .await
            .starts_with("Saved")
    );

    // Step 2: the rotation runs while both bots answer.
    let new_keys = [
        ("STARGAZER_MASTER_KEY", new.as_str()),
        ("STARGAZER_PREVIOUS_MASTER_KEYS", old.as_str()),
    ];
    let mut rotation = dep.spawn_cli_with(&["rotate-master-key", "--json"], &new_keys);
    let mut calls = 0;
    let mut during = 0;
    let mut newcomers = Vec::new();
    loop {
        let running = rotation.try_wait().unwrap().is_none();
        let text = bot1.list(&alice).await;
        assert!(
            text.contains(&masked(&alice_key)) && !text.contains("unreadable"),
            "{backend:?}: bot1's list, call {calls}:\n{text}\n{}",
            dep.logs()
        );
        let newcomer = Caller::in_guild(ROTATION_NEWCOMER + calls, "newcomer", GUILD, CHANNEL);
        let key = secret(&format!("newcomer{calls}"));
        let saved = bot2.save(&newcomer, "brave", &key).await;
        assert!(
            saved.starts_with("Saved"),
            "{backend:?}: {saved}\n{}",
            dep.logs()
        );
        newcomers.push((newcomer, key));
        calls += 1;
        during += u64::from(running);
        if !running && calls >= 4 {
            break;
        }
        assert!(calls < 400, "the rotation did not end");
    }
    assert!(during >= 1, "no round ran while the rotation did");
    let run = finish(&["rotate-master-key"], rotation, WAIT).await;
    assert_eq!(run.code, Some(0), "{run:#?}\n{}", dep.logs());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(
        report["rewrapped"].as_u64().unwrap() >= ROTATION_USERS,
        "{report}"
    );

    // Step 3: the bots restart on the new key; a second rotation moves the rows they wrapped
    // under the old one meanwhile; then the old key goes.
    for bot in [bot1, bot2] {
        bot.stop().await;
    }
    dep.set_var("STARGAZER_MASTER_KEY", &new);
    dep.set_var("STARGAZER_PREVIOUS_MASTER_KEYS", &old);
    let bot1 = dep.start_bot("bot1").await;
    dep.cli_ok(&["rotate-master-key"], "").await;
    dep.unset_var("STARGAZER_PREVIOUS_MASTER_KEYS");
    let doctor = dep.cli(&["doctor"], "").await;
    assert!(
        doctor
            .stdout
            .contains("ok   data keys open under the configured master keys")
            && doctor.stdout.contains("(current)")
            && !doctor.stdout.contains("run rotate-master-key"),
        "{backend:?}: {doctor:#?}"
    );
    let bot2 = dep.start_bot("bot2").await;
    let text = bot2.list(&alice).await;
    assert!(text.contains(&masked(&alice_key)), "{text}");
    let text = bot1.list(&bob).await;
    assert!(text.contains(&masked(&bob_key)), "{text}");
    for (newcomer, key) in &newcomers {
        let text = bot2.list(newcomer).await;
        assert!(
            text.contains(&masked(key)),
            "{backend:?}: {text}\n{}",
            dep.logs()
        );
    }
    assert_eq!(
        dep.resolve(CROWD_USER + ROTATION_USERS - 1, "brave")
            .await
            .0,
        "user"
    );
    eprintln!(
        "{backend:?}: {calls} list-and-save rounds, {during} of them while the rotation ran, none failed"
    );
    let secrets = [alice_key.as_str(), &bob_key];
    for bot in [bot1, bot2] {
        bot.assert_clean(&secrets);
        bot.stop().await;
    }
}

on_every_backend!(
    a_master_key_rotation_while_two_bots_run_fails_no_list_and_no_save,
    a_master_key_rotation_while_two_bots_run_fails_no_call
);

// ---- 8. a contributor told once by two host bots ------------------------------------------------

/// Set in the environment of this test binary when it runs as a host bot.
const HOST_PROCESS: &str = "STARGAZER_TEST_HOST_BOT";

/// Not a test of its own: the host bot process of [`a_key_benched_by_two_host_bots_dms_its_contributor_once`]
/// (this binary, started again with `--ignored --exact host_bot_process`): the key commands and
/// the example `/web_search`, run by the production runner, as a host bot runs them.
#[test]
#[ignore = "a host bot process that the multi-process tests start"]
fn host_bot_process() {
    if std::env::var_os(HOST_PROCESS).is_none() {
        return;
    }
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(stargazer_keys_commands::logging::secret_safe_filter())
        .with(tracing_subscriber::fmt::layer().with_ansi(false))
        .with(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = stargazer_keys::Config::from_env().expect("the shared settings");
        let settings = stargazer_keys_commands::bot::BotSettings::from_config(&config).unwrap();
        let vault = stargazer_keys::KeyVault::open(config)
            .await
            .expect("open the vault");
        stargazer_keys_commands::bot::run(
            settings,
            vault,
            vec![web_search_example::web_search()],
            stargazer_keys_commands::bot::shutdown_signal(),
        )
        .await
        .expect("the host bot ran");
    });
}

/// A Brave Search double that refuses every key (401), and answers only once `held` requests
/// are waiting (or two seconds passed), one every `gap`: every call draws the key before any
/// report benches it, and the reports reach the store one after the other.
async fn fake_brave_refusing_together(held: usize, gap: Duration) -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use axum::routing::get;
    let arrived = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(tokio::sync::Mutex::new(()));
    let refuse = move || {
        let (arrived, released) = (arrived.clone(), released.clone());
        async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            let waiting = Instant::now();
            while arrived.load(Ordering::SeqCst) < held
                && waiting.elapsed() < Duration::from_secs(2)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // One answer at a time, `gap` apart.
            let _turn = released.lock().await;
            tokio::time::sleep(gap).await;
            (StatusCode::UNAUTHORIZED, String::new())
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/res/v1/web/search", get(refuse)),
        )
        .await
        .unwrap();
    });
    url
}

/// Alice shared a Brave key in the global pool. Three members in each of two host bots search at
/// once; the service refuses the key in every call, so the second report on, each in its own
/// process, benches it again (later). Alice gets one DM, from one of the bots, with the key id
/// and never the key.
async fn a_key_benched_by_two_host_bots_dms_its_contributor_once(backend: Backend) {
    const CALLS_PER_HOST: u64 = 3;
    let mut dep = Deployment::new(backend).await;
    let brave =
        fake_brave_refusing_together(2 * CALLS_PER_HOST as usize, Duration::from_millis(150)).await;
    dep.set_var("BRAVE_API_BASE_URL", &brave);
    let host1 = dep.start_host("host1").await;
    let host2 = dep.start_host("host2").await;
    let shared = secret("revoked");
    dep.cli_ok(
        &[
            "pool",
            "add",
            "--service",
            "brave",
            "--contributor",
            &ALICE.to_string(),
        ],
        &shared,
    )
    .await;

    let searches = (0..2 * CALLS_PER_HOST).map(|i| {
        let host = if i < CALLS_PER_HOST { &host1 } else { &host2 };
        let member = Caller::in_guild(BOB + 10 + i, "member", GUILD, CHANNEL);
        async move {
            let handle = host
                .fake
                .slash(
                    &member,
                    SlashCommand::new("web_search").option("query", "rust"),
                )
                .await
                .unwrap();
            handle.callback(WAIT).await.unwrap();
            handle.followups(WAIT, 1).await.unwrap_or_else(|err| {
                panic!("{} sent no answer: {err}\n{}", host.name, host.output())
            })
        }
    });
    futures_util::future::join_all(searches).await;

    // The log says how many times the key was benched: more than once, by whichever process.
    let log = dep.cli_ok(&["pool", "log", "--json"], "").await;
    let entries: serde_json::Value = serde_json::from_str(log.stdout.trim()).unwrap();
    let benches = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "benched")
        .count();
    assert!(
        benches >= 2,
        "the key was benched {benches} time(s): {entries:#}\n{}",
        dep.logs()
    );

    // Every bench was announced where it was set; the DM went out once.
    let first = tokio::select! {
        dm = host1.fake.wait_direct_messages(ALICE, 1, WAIT) => dm,
        dm = host2.fake.wait_direct_messages(ALICE, 1, WAIT) => dm,
    }
    .unwrap_or_else(|err| panic!("no DM: {err}\n{}\n{}", host1.output(), host2.output()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent: Vec<_> = [&host1, &host2]
        .iter()
        .flat_map(|host| host.fake.direct_message_attempts())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let text = first[0].content().unwrap_or_default().to_owned();
    let key_id = entries[0]["key_id"].as_str().unwrap();
    assert!(text.contains(&format!("(key id `{key_id}`)")), "{text}");
    assert!(!text.contains(&shared), "the DM holds the key");
    for host in [host1, host2] {
        host.assert_clean(&[&shared]);
        host.stop().await;
    }
}

on_every_backend!(
    a_key_benched_by_two_host_bots_dms_its_contributor_once_everywhere,
    a_key_benched_by_two_host_bots_dms_its_contributor_once
);
