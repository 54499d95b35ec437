//! The one call sibling modules make (`KeyContext::with_api_key`), against hostile use: calls
//! made to fail, one user failing a shared key on purpose, and a bad tool name. Against a real
//! redis-server and against the embedded store in a real SQLite file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::ExposeSecret as _;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{Config, KeyOutcome, KeyVault, MasterKey, Pool};
use stargazer_keys_commands::{KeyContext, KeyFailure, KeyUseError};
use tempfile::TempDir;

const ALICE: u64 = 3_100_000_000_000_000_001;
const BOB: u64 = 3_100_000_000_000_000_002;
const ADMIN: u64 = 3_100_000_000_000_000_009;
const CHANNEL: u64 = 3_100_000_000_000_000_003;
const TOOL: &str = "web_search";
const REFUNDS: u64 = 2;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Redis,
    Embedded,
}

/// A vault with one key in the global Brave pool; each failure refunds up to [`REFUNDS`].
async fn vault(backend: Backend) -> (KeyVault, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut prefix = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut prefix);
    let prefix: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
    let mut vars = vec![
        (
            "STARGAZER_MASTER_KEY".to_owned(),
            MasterKey::generate().to_base64().expose_secret().to_owned(),
        ),
        (
            "STARGAZER_DB_PATH".to_owned(),
            dir.path().join("keys.db").display().to_string(),
        ),
        ("STARGAZER_KEY_PREFIX".to_owned(), format!("use{prefix}")),
        (
            "STARGAZER_DAILY_FAILURE_REFUNDS".to_owned(),
            REFUNDS.to_string(),
        ),
        ("DEFAULT_KEY_DAILY_LIMIT".to_owned(), "100".to_owned()),
    ];
    if let Backend::Redis = backend {
        vars.push(("REDIS_URL".to_owned(), RedisServer::shared().url()));
    }
    let vault = KeyVault::open(Config::from_vars(vars).unwrap())
        .await
        .expect("open the vault");
    vault
        .add_pool_key(Pool::Global, "brave", "BSA-shared-pool-key-0000111", ADMIN)
        .await
        .unwrap();
    (vault, dir)
}

fn context(vault: &KeyVault, user: u64) -> KeyContext {
    KeyContext::new(vault.clone(), user, Some(CHANNEL), None)
}

/// A call the service refused because of the key (401).
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the service refused the key")
    }
}

impl KeyFailure for Refused {
    fn key_outcome(&self) -> KeyOutcome {
        KeyOutcome::from_http_status(401, None)
    }
}

async fn fail_once(vault: &KeyVault, user: u64) {
    let result = context(vault, user)
        .with_api_key_reporting("brave", TOOL, |_| async { Err::<(), _>(Refused) })
        .await;
    assert!(
        matches!(result, Err(KeyUseError::Call(Refused))),
        "{result:?}"
    );
}

async fn uses(vault: &KeyVault, user: u64) -> u64 {
    vault
        .check_default_key_limit(user, TOOL, None)
        .await
        .current
}

async fn failed_calls_beyond_the_daily_refunds_count_as_uses(backend: Backend) {
    let (vault, _dir) = vault(backend).await;
    for _ in 0..5 {
        let result = context(&vault, ALICE)
            .with_api_key("brave", TOOL, |_| async { Err::<(), _>("timed out") })
            .await;
        assert!(matches!(result, Err(KeyUseError::Call(_))));
    }
    assert_eq!(uses(&vault, ALICE).await, 5 - REFUNDS, "{backend:?}");
    context(&vault, ALICE)
        .with_api_key("brave", TOOL, |_| async { Ok::<_, String>(()) })
        .await
        .unwrap();
    assert_eq!(uses(&vault, ALICE).await, 5 - REFUNDS + 1, "{backend:?}");
    // Another user's refunds are their own.
    for _ in 0..2 {
        let _ = context(&vault, BOB)
            .with_api_key("brave", TOOL, |_| async { Err::<(), _>("timed out") })
            .await;
    }
    assert_eq!(uses(&vault, BOB).await, 0, "{backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_beyond_the_daily_refunds_count_as_uses_on_redis() {
    failed_calls_beyond_the_daily_refunds_count_as_uses(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_beyond_the_daily_refunds_count_as_uses_on_the_embedded_store() {
    failed_calls_beyond_the_daily_refunds_count_as_uses(Backend::Embedded).await;
}

async fn one_users_failures_never_bench_a_shared_key(backend: Backend) {
    let (vault, _dir) = vault(backend).await;
    for _ in 0..3 {
        fail_once(&vault, ALICE).await;
    }
    assert!(
        vault
            .pool_key_benches(Pool::Global, "brave")
            .await
            .unwrap()
            .is_empty(),
        "{backend:?}: one user's failures benched the key"
    );
    let still = context(&vault, BOB)
        .api_key("brave")
        .await
        .expect("the key");
    assert_eq!(still.key.expose(), "BSA-shared-pool-key-0000111");

    // A second user's call failing too benches it.
    fail_once(&vault, BOB).await;
    let benches = vault.pool_key_benches(Pool::Global, "brave").await.unwrap();
    assert_eq!(benches.len(), 1, "{backend:?}");
    assert!(context(&vault, BOB).api_key("brave").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_failures_never_bench_a_shared_key_and_a_second_users_do_on_redis() {
    one_users_failures_never_bench_a_shared_key(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_failures_never_bench_a_shared_key_and_a_second_users_do_on_the_embedded_store() {
    one_users_failures_never_bench_a_shared_key(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tool_name_is_refused_before_any_key_is_used() {
    let (vault, _dir) = vault(Backend::Embedded).await;
    let calls = Arc::new(AtomicUsize::new(0));
    for tool in ["", "web search", "tool:with:colons", "glob*"] {
        let counted = Arc::clone(&calls);
        let result = context(&vault, ALICE)
            .with_api_key("brave", tool, |_| async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            })
            .await;
        let Err(KeyUseError::InvalidTool(message)) = result else {
            panic!("{tool:?}: {result:?}");
        };
        assert!(message.contains("misconfigured"), "{message}");
        // The core refuses too, for callers that reserve uses themselves.
        assert!(
            vault
                .reserve_default_key_use(ALICE, tool, None)
                .await
                .is_err()
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no call ran");
}
