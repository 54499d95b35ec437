//! Several processes on one deployment, with real processes: the other processes are this test
//! binary run again (the ignored `helper_vault_process`), each with a vault of its own on the
//! same SQLite file and the same storage.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use stargazer_keys::{Config, KeySource, KeyVault};
use support::*;

/// The settings of the helper's vault, one `NAME=value` a line.
const VARS_ENV: &str = "STARGAZER_PROCESSES_VARS";
/// What the helper does, one step a line: `set USER SERVICE SECRET`, `forget USER`,
/// `resolve USER SERVICE` (prints `resolved SOURCE KEY` or `resolved none`), or `start_at MS`
/// (waits until that Unix time in milliseconds, so several helpers open at once).
const STEPS_ENV: &str = "STARGAZER_PROCESSES_STEPS";

/// Not a test: one other process of a deployment, run by the tests below. (Its first line of
/// output shares a line with libtest's `test helper_vault_process ...`.)
#[tokio::test]
#[ignore = "a helper process, started by the multi-process tests"]
async fn helper_vault_process() {
    let (Ok(vars), Ok(steps)) = (std::env::var(VARS_ENV), std::env::var(STEPS_ENV)) else {
        return;
    };
    let mut vault = None;
    let vars: Vec<(String, String)> = vars
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for step in steps.lines() {
        let words: Vec<&str> = step.split_whitespace().collect();
        if let ["start_at", at] = words[..] {
            let at: u128 = at.parse().unwrap();
            while unix_ms() < at {
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        if vault.is_none() {
            let config = Config::from_vars(vars.clone()).unwrap();
            vault = Some(KeyVault::open(config).await.expect("the vault opens"));
        }
        let vault = vault.as_ref().unwrap();
        match words[..] {
            ["set", user, service, secret] => {
                vault
                    .set_user_api_key(user.parse().unwrap(), service, secret)
                    .await
                    .expect("the key is saved");
            }
            ["migrate"] => {
                vault.migrate().await.unwrap();
            }
            ["forget", user] => {
                vault.forget_user(user.parse().unwrap()).await.unwrap();
            }
            ["resolve", user, service] => {
                match vault
                    .get_user_api_key(Some(user.parse().unwrap()), service, None, false)
                    .await
                {
                    Some(found) => println!("resolved {} {}", found.source(), found.key.expose()),
                    None => println!("resolved none"),
                }
            }
            _ => panic!("unknown step {step:?}"),
        }
    }
    println!("helper done");
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The settings of a fixture's vault, for a helper process.
fn vars_of(fx: &Fixture) -> String {
    let mut vars = vec![
        format!("STARGAZER_MASTER_KEY={}", fx.master_key),
        format!("STARGAZER_DB_PATH={}", fx.db_path.display()),
        format!("STARGAZER_KEY_PREFIX={}", fx.prefix),
    ];
    if let Some(url) = &fx.redis_url {
        vars.push(format!("REDIS_URL={url}"));
    }
    vars.join("\n")
}

fn helper(vars: &str, steps: &[String]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "helper_vault_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VARS_ENV, vars)
        .env(STEPS_ENV, steps.join("\n"));
    command
}

/// Runs a helper process to its end, failing the test when it fails.
async fn run_helper(vars: &str, steps: &[String]) -> String {
    let mut command = helper(vars, steps);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_helper_ok(&output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_helper_ok(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("helper done"),
        "the helper failed: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a fresh process resolves for the user's own key.
async fn resolved_elsewhere(fx: &Fixture, user: u64, service: &str) -> String {
    let out = run_helper(&vars_of(fx), &[format!("resolve {user} {service}")]).await;
    out.lines()
        .find_map(|line| line.split_once("resolved ").map(|(_, found)| found))
        .expect("the helper resolved")
        .to_owned()
}

async fn own_key(vault: &KeyVault, user: u64, service: &str) -> Option<String> {
    vault
        .get_user_api_key(Some(user), service, None, false)
        .await
        .filter(|found| found.source() == KeySource::User)
        .map(|found| found.key.expose().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_replaced_by_another_process_neither_hides_its_values_nor_loses_new_ones() {
    for backend in [Backend::Redis, Backend::Embedded] {
        let fx = Fixture::new(backend).await;
        let alice = 800_000_000_001;
        // This process caches Alice's data key.
        fx.vault
            .set_user_api_key(alice, "brave", &secret("brave"))
            .await
            .unwrap();
        // Another process erases her and saves a key under her new data key.
        let openai = secret("openai");
        run_helper(
            &vars_of(&fx),
            &[
                format!("forget {alice}"),
                format!("set {alice} openai {openai}"),
            ],
        )
        .await;
        // At once, well inside the cache's lease: the value sealed elsewhere opens here, and
        // a key saved here is sealed under the key the store holds now.
        assert_eq!(
            own_key(&fx.vault, alice, "openai").await.as_deref(),
            Some(openai.as_str()),
            "{backend:?}"
        );
        let openrouter = secret("openrouter");
        fx.vault
            .set_user_api_key(alice, "openrouter", &openrouter)
            .await
            .unwrap();
        assert_eq!(
            resolved_elsewhere(&fx, alice, "openrouter").await,
            format!("user {openrouter}"),
            "{backend:?}"
        );
        let listed = fx.vault.list_user_api_keys(alice).await.unwrap();
        assert_eq!(listed.len(), 2, "{backend:?}: {listed:?}");
        assert!(listed.iter().all(|key| key.masked.is_some()), "{listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_in_another_process_stops_this_one_opening_a_restored_copy_within_a_second() {
    for backend in [Backend::Redis, Backend::Embedded] {
        let fx = Fixture::new(backend).await;
        let alice = 800_000_000_002;
        let key = secret("brave");
        fx.vault
            .set_user_api_key(alice, "brave", &key)
            .await
            .unwrap();
        assert_eq!(own_key(&fx.vault, alice, "brave").await, Some(key.clone()));
        let hash = stargazer_keys::storage::Layout::new(fx.prefix.clone()).user_keys_key(alice);
        let sealed = fx.storage().hget(&hash, "brave").await.unwrap().unwrap();

        run_helper(&vars_of(&fx), &[format!("forget {alice}")]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A copy restored from a backup.
        fx.storage().hset(&hash, "brave", &sealed).await.unwrap();

        assert_eq!(
            own_key(&fx.vault, alice, "brave").await,
            None,
            "{backend:?}"
        );
        let listed = fx.vault.list_user_api_keys(alice).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].masked, None,
            "{backend:?}: the copy does not open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_that_open_one_fresh_database_at_once_all_start() {
    const PROCESSES: u64 = 12;
    for backend in [Backend::Redis, Backend::Embedded] {
        for round in 0..3 {
            // A fixture's vault would create the file: take its settings, then a fresh file.
            let fx = Fixture::new(backend).await;
            let fresh = fx.dir.path().join(format!("fresh-{round}.db"));
            let vars = vars_of(&fx).replace(
                &format!("STARGAZER_DB_PATH={}", fx.db_path.display()),
                &format!("STARGAZER_DB_PATH={}", fresh.display()),
            );
            let start_at = unix_ms() + 1_500;
            let keys: Vec<String> = (0..PROCESSES).map(|i| secret(&format!("p{i}"))).collect();
            let children: Vec<_> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let steps = [
                        format!("start_at {start_at}"),
                        format!("set {} brave {key}", 900_000_000_000 + i as u64),
                    ];
                    helper(&vars, &steps)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let outputs = tokio::task::spawn_blocking(move || {
                children
                    .into_iter()
                    .map(|child| child.wait_with_output().unwrap())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            for output in &outputs {
                assert_helper_ok(output);
            }
            let check = run_helper(
                &vars,
                &(0..PROCESSES)
                    .map(|i| format!("resolve {} brave", 900_000_000_000 + i))
                    .collect::<Vec<_>>(),
            )
            .await;
            let resolved: Vec<&str> = check
                .lines()
                .filter_map(|line| line.split_once("resolved user ").map(|(_, key)| key))
                .collect();
            assert_eq!(
                resolved,
                keys.iter().map(String::as_str).collect::<Vec<_>>(),
                "{backend:?}, round {round}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_migrate_in_another_process_this_one_refuses_planted_legacy_values() {
    for backend in [Backend::Redis, Backend::Embedded] {
        let fx = Fixture::new(backend).await;
        let alice = 800_000_000_003;
        let hash = stargazer_keys::storage::Layout::new(fx.prefix.clone()).user_keys_key(alice);
        // Before any migration, the original bot's plaintext values are read.
        let original = secret("original");
        fx.storage().hset(&hash, "brave", &original).await.unwrap();
        assert_eq!(
            own_key(&fx.vault, alice, "brave").await,
            Some(original.clone())
        );

        run_helper(&vars_of(&fx), &["migrate".to_owned()]).await;
        // The migrated value still opens; a value planted afterwards does not, once this
        // process has read the marker again (within 5 s).
        let planted = secret("planted");
        fx.storage().hset(&hash, "openai", &planted).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert_eq!(
            own_key(&fx.vault, alice, "brave").await,
            Some(original),
            "{backend:?}"
        );
        assert_eq!(
            own_key(&fx.vault, alice, "openai").await,
            None,
            "{backend:?}"
        );
    }
}
