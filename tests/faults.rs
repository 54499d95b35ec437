//! Faults, with real processes: Redis killed and restarted under load, the SQLite file locked
//! by another process, and a database directory that is read-only or missing.

mod support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stargazer_keys::OpenVaultError;
use stargazer_keys::db::DbError;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{Checkpoint, Config, DataKeyError, KeyError, KeySource, KeyVault};
use support::*;

const ENV_KEY: &str = "env-brave-fallback-key-0000";
const TOOL: &str = "web_search";
/// The built-in daily limit.
const LIMIT: u64 = 20;

/// Runs a test body, failing it when it takes longer than `limit`.
async fn bounded<T>(limit: Duration, body: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test took longer than {limit:?}"))
}

/// (source, key) of a resolution.
async fn resolve(vault: &KeyVault, user: u64) -> Option<(KeySource, String)> {
    vault
        .get_user_api_key(Some(user), "brave", None, true)
        .await
        .map(|r| (r.source(), r.key.expose().to_owned()))
}

/// Uses counted for `user` (read with a limit no test reaches).
async fn counted(vault: &KeyVault, user: u64) -> u64 {
    vault
        .check_default_key_limit(user, TOOL, Some(u32::MAX))
        .await
        .current
}

// ----- Redis killed and restarted under load ----------------------------------------------

/// Users with a key stored before the outage.
const STORED_FIRST: u64 = 500_000_000_000;
const STORED: u64 = 100;
/// Users whose key is written during the load (one per write task).
const WRITTEN_FIRST: u64 = 600_000_000_000;
/// A user over the daily limit before the outage.
const OVER_LIMIT: u64 = 499_999_999_999;
/// Concurrent tasks, started over [`LOAD_SPREAD`].
const TASKS: usize = 1_000;
const LOAD_SPREAD: Duration = Duration::from_millis(1_500);
const KILL_AFTER: Duration = Duration::from_millis(300);
const DOWN_FOR: Duration = Duration::from_millis(600);

/// What one task of the load saw.
#[derive(Debug)]
enum Outcome {
    Resolved(KeySource),
    Checked,
    Reserved {
        user: u64,
        recorded: bool,
    },
    Counted,
    Written {
        user: u64,
        secret: String,
    },
    WriteRefused,
    /// An answer that must never be given, described.
    Wrong(String),
}

async fn one_task(i: usize, vault: KeyVault, stored: Arc<HashMap<u64, String>>) -> Outcome {
    let counter_user = STORED_FIRST + (i as u64 % 10);
    match i % 10 {
        0..=3 => {
            let user = STORED_FIRST + (i as u64 % STORED);
            match resolve(&vault, user).await {
                Some((KeySource::User, key)) if key == stored[&user] => {
                    Outcome::Resolved(KeySource::User)
                }
                Some((KeySource::Env, key)) if key == ENV_KEY => Outcome::Resolved(KeySource::Env),
                other => Outcome::Wrong(format!("user {user} resolved to {other:?}")),
            }
        }
        4 | 5 => {
            let check = vault.check_default_key_limit(OVER_LIMIT, TOOL, None).await;
            // Up: the real count, refused. Down: fail-open, allowed with nothing counted.
            if (check.allowed && check.current == 0) || (!check.allowed && check.current >= LIMIT) {
                Outcome::Checked
            } else {
                Outcome::Wrong(format!("the over-limit user was checked as {check:?}"))
            }
        }
        6 => match vault
            .reserve_default_key_use(counter_user, TOOL, Some(u32::MAX))
            .await
        {
            Ok(permit) => {
                let recorded = permit.is_recorded();
                permit.commit();
                Outcome::Reserved {
                    user: counter_user,
                    recorded,
                }
            }
            Err(reached) => Outcome::Wrong(format!("a reservation was refused: {reached:?}")),
        },
        7 => {
            vault.increment_default_key_usage(counter_user, TOOL).await;
            Outcome::Counted
        }
        _ => {
            let user = WRITTEN_FIRST + i as u64;
            let key = secret("written");
            match vault.set_user_api_key(user, "brave", &key).await {
                Ok(_) => Outcome::Written { user, secret: key },
                Err(err)
                    if err
                        .to_string()
                        .starts_with("the key store is unavailable, so nothing was changed") =>
                {
                    Outcome::WriteRefused
                }
                Err(err) => Outcome::Wrong(format!("a write failed unclearly: {err}")),
            }
        }
    }
}

/// Whether the server persists every write before acknowledging it.
async fn config_value(url: &str, name: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, value): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(&mut conn)
        .await
        .unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_under_1000_concurrent_calls_loses_no_acknowledged_write() {
    bounded(Duration::from_secs(90), async {
        let mut server =
            RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"])
                .expect("start a persistent redis-server");
        assert_eq!(config_value(&server.url(), "appendonly").await, "yes");
        assert_eq!(config_value(&server.url(), "appendfsync").await, "always");
        let fx = Fixture::builder(Backend::Redis)
            .redis_url(server.url())
            .env("BRAVE_API_KEY", ENV_KEY)
            .open()
            .await;
        let vault = fx.vault.clone();
        let mut stored = HashMap::new();
        for user in STORED_FIRST..STORED_FIRST + STORED {
            let key = secret("stored");
            vault.set_user_api_key(user, "brave", &key).await.unwrap();
            stored.insert(user, key);
        }
        let stored = Arc::new(stored);
        for _ in 0..LIMIT {
            vault.increment_default_key_usage(OVER_LIMIT, TOOL).await;
        }
        assert!(!vault.check_default_key_limit(OVER_LIMIT, TOOL, None).await.allowed);

        let load: Vec<_> = (0..TASKS)
            .map(|i| {
                let (vault, stored) = (vault.clone(), Arc::clone(&stored));
                let start = LOAD_SPREAD * i as u32 / TASKS as u32;
                tokio::spawn(async move {
                    tokio::time::sleep(start).await;
                    one_task(i, vault, stored).await
                })
            })
            .collect();

        tokio::time::sleep(KILL_AFTER).await;
        server.stop();
        let down_at = Instant::now();
        assert_eq!(
            resolve(&vault, STORED_FIRST).await,
            Some((KeySource::Env, ENV_KEY.to_owned())),
            "with Redis down, resolution falls back to the environment key"
        );
        let check = vault.check_default_key_limit(OVER_LIMIT, TOOL, None).await;
        assert!(
            check.allowed && check.current == 0,
            "with Redis down, the quota check allows: {check:?}"
        );
        tokio::time::sleep(DOWN_FOR.saturating_sub(down_at.elapsed())).await;
        server.restart().expect("restart redis-server");

        // The same vault, not reopened, finds the stored keys again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match resolve(&vault, STORED_FIRST).await {
                Some((KeySource::User, key)) => {
                    assert_eq!(key, stored[&STORED_FIRST]);
                    break;
                }
                other => assert!(
                    Instant::now() < deadline,
                    "10 s after the restart, resolution still gives {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut outcomes = Vec::with_capacity(TASKS);
        for (i, task) in load.into_iter().enumerate() {
            let outcome = bounded(Duration::from_secs(30), task)
                .await
                .unwrap_or_else(|err| panic!("task {i} panicked: {err}"));
            outcomes.push(outcome);
        }
        let wrong: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Wrong(what) => Some(what),
                _ => None,
            })
            .collect();
        assert!(wrong.is_empty(), "wrong answers under load: {wrong:#?}");
        let count = |source| {
            outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Resolved(s) if *s == source))
                .count()
        };
        assert!(
            count(KeySource::User) > 0 && count(KeySource::Env) > 0,
            "the load spans the outage: {} user keys, {} environment keys",
            count(KeySource::User),
            count(KeySource::Env)
        );
        println!(
            "load: {} user keys, {} env fallbacks, {} writes acknowledged, {} refused, {} checks, {} counts",
            count(KeySource::User),
            count(KeySource::Env),
            outcomes.iter().filter(|o| matches!(o, Outcome::Written { .. })).count(),
            outcomes.iter().filter(|o| matches!(o, Outcome::WriteRefused)).count(),
            outcomes.iter().filter(|o| matches!(o, Outcome::Checked)).count(),
            outcomes.iter().filter(|o| matches!(o, Outcome::Counted)).count(),
        );

        // Every acknowledged write is there: before the kill (persisted), during the load.
        let written = outcomes.iter().filter_map(|o| match o {
            Outcome::Written { user, secret } => Some((*user, secret)),
            _ => None,
        });
        for (user, key) in stored.iter().map(|(u, k)| (*u, k)).chain(written) {
            assert_eq!(
                resolve(&vault, user).await,
                Some((KeySource::User, key.clone())),
                "the acknowledged key of user {user}"
            );
        }
        let mut recorded: HashMap<u64, u64> = HashMap::new();
        for outcome in &outcomes {
            if let Outcome::Reserved {
                user,
                recorded: true,
            } = outcome
            {
                *recorded.entry(*user).or_default() += 1;
            }
        }
        for (user, reservations) in recorded {
            let count = counted(&vault, user).await;
            assert!(
                count >= reservations,
                "user {user}: {reservations} recorded reservations, but the counter says {count}"
            );
        }
        assert!(
            !vault.check_default_key_limit(OVER_LIMIT, TOOL, None).await.allowed,
            "the counter of the over-limit user survives the restart"
        );

        // Counting works again.
        let before = counted(&vault, STORED_FIRST).await;
        vault.increment_default_key_usage(STORED_FIRST, TOOL).await;
        assert_eq!(counted(&vault, STORED_FIRST).await, before + 1);
    })
    .await;
}

// ----- the SQLite file locked by another process ------------------------------------------

/// Names the database files the lock-holding helper locks, one per line.
const LOCK_FILES_ENV: &str = "STARGAZER_FAULTS_LOCK_FILES";
/// `read`: the helper holds a read transaction (which blocks checkpoints) instead of the write
/// lock.
const LOCK_MODE_ENV: &str = "STARGAZER_FAULTS_LOCK_MODE";
/// What the helper prints once it holds every lock.
const LOCKED: &str = "STARGAZER-FAULTS-LOCKS-HELD";

/// Not a test: the other process of the lock tests. It takes `BEGIN EXCLUSIVE` (or, in `read`
/// mode, opens a read transaction) on every file named in [`LOCK_FILES_ENV`], says so, and
/// holds the locks until its stdin has a line or closes.
#[test]
#[ignore = "a helper process, started by the SQLite lock test"]
fn helper_hold_sqlite_locks() {
    let Ok(files) = std::env::var(LOCK_FILES_ENV) else {
        return;
    };
    let read = std::env::var(LOCK_MODE_ENV).is_ok_and(|mode| mode == "read");
    let held: Vec<rusqlite::Connection> = files
        .lines()
        .map(|path| {
            let conn = rusqlite::Connection::open(path).unwrap();
            if read {
                // A read transaction holds its snapshot from its first read until it ends.
                conn.execute_batch("BEGIN").unwrap();
                conn.query_row("SELECT COUNT(*) FROM encryption_keys", [], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap();
            } else {
                conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
            }
            conn
        })
        .collect();
    println!("{LOCKED}");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(held);
}

/// A child process of this test binary holding SQLite locks; killed if the test fails.
struct LockHolder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LockHolder {
    /// Holds the write lock of every file.
    fn lock(files: &[&Path]) -> LockHolder {
        Self::start(files, "exclusive")
    }

    /// Holds a read transaction open on every file.
    fn read(files: &[&Path]) -> LockHolder {
        Self::start(files, "read")
    }

    fn start(files: &[&Path], mode: &str) -> LockHolder {
        let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "helper_hold_sqlite_locks",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCK_FILES_ENV, list.join("\n"))
            .env(LOCK_MODE_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the lock-holding process");
        let stdin = child.stdin.take();
        let mut holder = LockHolder { child, stdin };
        let stdout = holder.child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let held = lines.any(|line| line.is_ok_and(|l| l.contains(LOCKED)));
        assert!(held, "the helper process did not take the locks");
        // Keep reading, so the helper's last lines never meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        holder
    }

    /// Releases the locks and waits for the process to end.
    fn release(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the lock holder did not exit within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A vault on Redis and one on the embedded store, each with a Brave key of `user`'s (returned
/// in that order).
async fn both_backends_with_a_key(user: u64) -> (Fixture, Fixture, Vec<String>) {
    let on_redis = Fixture::new(Backend::Redis).await;
    let embedded = Fixture::new(Backend::Embedded).await;
    let mut keys = Vec::new();
    for fx in [&on_redis, &embedded] {
        let key = secret("user");
        fx.vault
            .set_user_api_key(user, "brave", &key)
            .await
            .unwrap();
        keys.push(key);
    }
    (on_redis, embedded, keys)
}

/// A write that waits for the lock, then fails: (how long it took, the error).
async fn timed_write(vault: KeyVault, user: u64, key: String) -> (Duration, KeyError) {
    let started = Instant::now();
    let err = vault
        .set_user_api_key(user, "brave", &key)
        .await
        .expect_err("the write fails while the file is locked");
    (started.elapsed(), err)
}

fn assert_locked_error(err: &KeyError, elapsed: Duration, what: &str) {
    let locked = matches!(
        err,
        KeyError::DataKeys(DataKeyError::Db(DbError::Locked))
            | KeyError::Storage(stargazer_keys::storage::StorageError::Db(DbError::Locked))
    );
    assert!(locked, "{what}: expected the lock error, got {err:?}");
    let message = err.to_string();
    assert!(
        message.contains("locked by another process"),
        "{what}: {message}"
    );
    assert!(message.contains("nothing was changed"), "{what}: {message}");
    assert!(
        elapsed >= stargazer_keys::db::BUSY_TIMEOUT - Duration::from_millis(500),
        "{what}: failed after {elapsed:?}, before the busy timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_waits_for_a_sqlite_lock_held_by_another_process_then_fails_naming_it() {
    // The busy timeout (5 s) is waited twice: new data keys on both backends together, then
    // a value in the embedded store (whose reads would queue behind that write).
    bounded(Duration::from_secs(60), async {
        let (alice, bob) = (700_000_000_001, 700_000_000_002);
        let (on_redis, embedded, alice_keys) = both_backends_with_a_key(alice).await;
        let before = [on_redis.dump().await, embedded.dump().await];

        let lock = tokio::task::spawn_blocking({
            let files = [on_redis.db_path.clone(), embedded.db_path.clone()];
            move || LockHolder::lock(&[&files[0], &files[1]])
        })
        .await
        .unwrap();

        // Bob has no data key yet: making one needs the lock (both backends).
        let new_owner = [&on_redis, &embedded]
            .map(|fx| tokio::spawn(timed_write(fx.vault.clone(), bob, secret("b"))));

        // Meanwhile, keys whose data key is cached resolve as usual, and quickly.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (fx, key) in [&on_redis, &embedded].into_iter().zip(&alice_keys) {
                let started = Instant::now();
                assert_eq!(
                    resolve(&fx.vault, alice).await,
                    Some((KeySource::User, key.clone())),
                    "{:?}: a cached key while the file is locked",
                    fx.backend
                );
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "{:?}: resolution took {:?} while the file is locked",
                    fx.backend,
                    started.elapsed()
                );
            }
        }
        assert!(
            new_owner.iter().all(|write| !write.is_finished()),
            "the writes wait for the lock"
        );
        for (write, backend) in new_owner.into_iter().zip(["Redis", "embedded"]) {
            let (elapsed, err) = write.await.unwrap();
            assert_locked_error(&err, elapsed, &format!("a new data key ({backend})"));
        }
        // The embedded store also writes the values themselves to the file.
        let (elapsed, err) = timed_write(embedded.vault.clone(), alice, secret("a2")).await;
        assert_locked_error(&err, elapsed, "a value in the embedded store");

        assert_eq!(
            [on_redis.dump().await, embedded.dump().await],
            before,
            "nothing was written"
        );
        for fx in [&on_redis, &embedded] {
            assert!(
                fx.vault
                    .data_keys()
                    .get(&bob.to_string())
                    .await
                    .unwrap()
                    .is_none(),
                "{:?}: no data key was made",
                fx.backend
            );
        }

        tokio::task::spawn_blocking(move || lock.release())
            .await
            .unwrap();
        for fx in [&on_redis, &embedded] {
            let key = secret("bob");
            fx.vault
                .set_user_api_key(bob, "brave", &key)
                .await
                .unwrap_or_else(|err| {
                    panic!("{:?}: after the lock is released: {err}", fx.backend)
                });
            assert_eq!(resolve(&fx.vault, bob).await, Some((KeySource::User, key)));
        }
    })
    .await;
}

/// The wrapped data key of `owner`, as the table holds it.
fn wrapped_data_key(fx: &Fixture, owner: u64) -> Vec<u8> {
    rusqlite::Connection::open(&fx.db_path)
        .unwrap()
        .query_row(
            "SELECT encrypted_key FROM encryption_keys WHERE user_id = ?1",
            [owner.to_string()],
            |row| row.get(0),
        )
        .unwrap()
}

/// Whether `bytes` occur in the database file or its write-ahead log.
fn on_disk(fx: &Fixture, bytes: &[u8]) -> bool {
    file_bytes(&fx.db_path)
        .windows(bytes.len())
        .any(|window| window == bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forget_with_the_database_locked_changes_nothing_and_says_so() {
    bounded(Duration::from_secs(60), async {
        let alice = 700_000_000_011;
        let (on_redis, embedded, keys) = both_backends_with_a_key(alice).await;
        let before = [on_redis.dump().await, embedded.dump().await];
        let wrapped = [&on_redis, &embedded].map(|fx| wrapped_data_key(fx, alice));

        let lock = tokio::task::spawn_blocking({
            let files = [on_redis.db_path.clone(), embedded.db_path.clone()];
            move || LockHolder::lock(&[&files[0], &files[1]])
        })
        .await
        .unwrap();
        let forgets = [&on_redis, &embedded].map(|fx| {
            let vault = fx.vault.clone();
            tokio::spawn(async move { vault.forget_user(alice).await })
        });
        for (forget, fx) in forgets.into_iter().zip([&on_redis, &embedded]) {
            let err = forget
                .await
                .unwrap()
                .expect_err("forget fails while the file is locked");
            assert!(
                matches!(err, KeyError::DataKeys(DataKeyError::Db(DbError::Locked))),
                "{:?}: {err:?}",
                fx.backend
            );
            assert!(err.to_string().contains("nothing was changed"), "{err}");
        }
        tokio::task::spawn_blocking(move || lock.release())
            .await
            .unwrap();

        // The sentence is true: the values and the data key are all still there, and open.
        assert_eq!([on_redis.dump().await, embedded.dump().await], before);
        for ((fx, key), wrapped) in [&on_redis, &embedded].into_iter().zip(&keys).zip(&wrapped) {
            assert_eq!(&wrapped_data_key(fx, alice), wrapped, "{:?}", fx.backend);
            assert_eq!(
                resolve(&fx.vault, alice).await,
                Some((KeySource::User, key.clone()))
            );
            let forgotten = fx.vault.forget_user(alice).await.unwrap();
            assert_eq!((forgotten.keys, forgotten.data_key_destroyed), (1, true));
            assert_eq!(resolve(&fx.vault, alice).await, None);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_blocked_by_a_reader_is_reported_and_finished_once_the_reader_leaves() {
    bounded(Duration::from_secs(60), async {
        let alice = 700_000_000_021;
        for backend in [Backend::Redis, Backend::Embedded] {
            let fx = Fixture::new(backend).await;
            fx.vault
                .set_user_api_key(alice, "brave", &secret("alice"))
                .await
                .unwrap();
            let wrapped = wrapped_data_key(&fx, alice);
            assert!(on_disk(&fx, &wrapped));

            let reader = tokio::task::spawn_blocking({
                let file = fx.db_path.clone();
                move || LockHolder::read(&[&file])
            })
            .await
            .unwrap();
            let forgotten = fx.vault.forget_user(alice).await.unwrap();
            assert_eq!(
                forgotten.checkpoint,
                Checkpoint::Blocked,
                "{backend:?}: the checkpoint cannot complete under an open read"
            );
            assert!(forgotten.data_key_destroyed);
            assert!(
                on_disk(&fx, &wrapped),
                "{backend:?}: the report is true: the wrapped key is still on disk"
            );
            assert!(
                fx.vault
                    .data_keys()
                    .get(&alice.to_string())
                    .await
                    .unwrap()
                    .is_none()
            );

            tokio::task::spawn_blocking(move || reader.release())
                .await
                .unwrap();
            // The store's watcher retries the checkpoint in the background.
            let deadline = Instant::now() + Duration::from_secs(10);
            while on_disk(&fx, &wrapped) {
                assert!(
                    Instant::now() < deadline,
                    "{backend:?}: the wrapped key is still on disk 10 s after the reader left"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
}

/// Runs `ACL SETUSER default {rule}` on a private server.
fn acl(server: &RedisServer, rule: &str) {
    let status = Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "ACL",
            "SETUSER",
            "default",
            rule,
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run redis-cli");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_that_cannot_delete_the_values_says_the_key_is_destroyed_and_a_rerun_finishes() {
    bounded(Duration::from_secs(60), async {
        let alice = 700_000_000_031;
        let server = RedisServer::start().expect("start a private redis-server");
        let fx = Fixture::builder(Backend::Redis)
            .redis_url(server.url())
            .open()
            .await;
        let key = secret("alice");
        fx.vault
            .set_user_api_key(alice, "brave", &key)
            .await
            .unwrap();
        let before = fx.dump().await;

        // Reads work, deletes are refused: the data key goes, the values cannot.
        acl(&server, "-del");
        let err = fx
            .vault
            .forget_user(alice)
            .await
            .expect_err("DEL is refused");
        assert!(
            matches!(err, KeyError::ValuesRemain { keys: 1, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("was destroyed, so no copy of it can be opened any more")
                && message.contains("run the erasure again"),
            "{message}"
        );
        assert!(!message.contains("nothing was changed"), "{message}");
        // True: the value is still stored, and opens nowhere.
        assert_eq!(fx.dump().await, before);
        assert!(
            fx.vault
                .data_keys()
                .get(&alice.to_string())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(resolve(&fx.vault, alice).await, None);

        acl(&server, "+del");
        let forgotten = fx.vault.forget_user(alice).await.unwrap();
        assert_eq!((forgotten.keys, forgotten.data_key_destroyed), (1, false));
        assert!(fx.dump().await.is_empty());
    })
    .await;
}

// ----- a read-only or missing database directory ------------------------------------------

fn config_for(db_path: &Path) -> Config {
    Config::from_vars([
        ("STARGAZER_MASTER_KEY", master_key_b64()),
        ("STARGAZER_DB_PATH", db_path.display().to_string()),
    ])
    .unwrap()
}

/// The error message of opening a vault on `db_path` (the embedded store, so SQLite only).
async fn open_error(db_path: &Path) -> (OpenVaultError, String) {
    let err = KeyVault::open(config_for(db_path))
        .await
        .expect_err("the vault does not open");
    let message = err.to_string();
    (err, message)
}

fn assert_one_line_naming(message: &str, dir: &Path) {
    assert!(!message.contains('\n'), "one line: {message:?}");
    assert!(
        message.contains(&dir.display().to_string()),
        "the message names {}: {message}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_directory_is_refused_in_one_sentence_naming_it() {
    bounded(Duration::from_secs(30), async {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("not").join("there");

        let (err, message) = open_error(&dir.join("keys.db")).await;

        assert!(
            matches!(
                &err,
                OpenVaultError::DataKeys(DataKeyError::Db(DbError::MissingDirectory(d))) if *d == dir
            ),
            "{err:?}"
        );
        assert_one_line_naming(&message, &dir);
        assert!(message.contains("does not exist"), "{message}");
        assert!(message.contains("STARGAZER_DB_PATH"), "{message}");
        assert!(!root.path().join("not").exists(), "nothing was created");
    })
    .await;
}

/// Sets the mode bits of `path`.
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether this process can create a file in `dir` (root can, whatever its mode says).
fn can_write_in(dir: &Path) -> bool {
    let probe = dir.join(".write-probe");
    let created = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    created
}

/// A read-only directory `ro` inside a fresh temporary directory, holding `existing.db` (a
/// database made while it was writable, and writable itself) and no `fresh.db`.
fn read_only_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let existing = dir.join("existing.db");
    stargazer_keys::db::open(&existing).unwrap();
    chmod(&existing, 0o666);
    chmod(root.path(), 0o755);
    chmod(&dir, 0o555);
    (root, dir)
}

/// Opening a vault in a read-only directory fails in one line naming it, for a new database
/// and for one made before the directory became read-only.
async fn assert_read_only_dir_refused(dir: &Path) {
    for name in ["fresh.db", "existing.db"] {
        let (err, message) = open_error(&dir.join(name)).await;
        println!("{name}: {message}");
        assert!(
            matches!(
                &err,
                OpenVaultError::DataKeys(DataKeyError::Db(_)) | OpenVaultError::Storage(_)
            ),
            "{name}: {err:?}"
        );
        assert_one_line_naming(&message, dir);
    }
    assert!(!dir.join("fresh.db").exists(), "nothing was created");
}

/// Names the read-only directory the unprivileged helper checks.
const READ_ONLY_DIR_ENV: &str = "STARGAZER_FAULTS_READ_ONLY_DIR";

/// Not a test: run by the read-only test as user `nobody` when the test runs as root, for whom
/// mode bits do not stop a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper process, started by the read-only directory test when it runs as root"]
async fn helper_check_read_only_dir_unprivileged() {
    let Ok(dir) = std::env::var(READ_ONLY_DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    assert!(!can_write_in(&dir), "the helper can write in {dir:?}");
    bounded(Duration::from_secs(30), assert_read_only_dir_refused(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_directory_is_refused_in_one_line_naming_it() {
    bounded(Duration::from_secs(30), async {
        let (root, dir) = read_only_dir();
        if !can_write_in(&dir) {
            assert_read_only_dir_refused(&dir).await;
            chmod(&dir, 0o755);
            return;
        }
        // Root ignores mode bits: run the check as `nobody`, when setpriv can drop to it.
        let run = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "helper_check_read_only_dir_unprivileged",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(READ_ONLY_DIR_ENV, &dir)
            .output();
        chmod(&dir, 0o755);
        match run {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("running 1 test") => {
                let report = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.status.success() && report.contains("1 passed"),
                    "the read-only check failed as nobody:\n{report}"
                );
                println!("checked as nobody:\n{report}");
            }
            other => println!(
                "NOTE: running as root, which writes in read-only directories, and setpriv could not drop to nobody ({:?}); the read-only assertion was skipped",
                other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            ),
        }
        drop(root);
    })
    .await;
}
