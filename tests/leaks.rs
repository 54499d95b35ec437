//! No secret leaks: every log line at TRACE (events and span fields), every error and Debug form,
//! and the Redis server's own log, after a full round of core operations and failures; and the
//! Debug form of every public type that holds a secret is redacted.

mod support;

use std::fmt::{self, Write as _};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use stargazer_keys::storage::ResolveReply;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::testkit::{DataKey, SealContext, StoredValue};
use stargazer_keys::{ApiKey, Config, DataKeyStore, KeyVault, Keyring, MasterKey, Pool};
use support::*;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

// ----- a subscriber that records everything -----------------------------------------------

/// Every event and every span field of this process, at every level, as text.
struct Capture {
    text: Mutex<String>,
    next_span: AtomicU64,
}

/// Writes fields as `name=value` with their Debug form (Display for `%` fields).
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Capture {
    fn append(&self, head: fmt::Arguments<'_>, record: impl FnOnce(&mut Fields<'_>)) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        let _ = text.write_fmt(head);
        record(&mut Fields(&mut text));
        text.push('\n');
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let meta = span.metadata();
        self.append(
            format_args!("SPAN {} {} {}:", meta.level(), meta.target(), meta.name()),
            |fields| span.record(fields),
        );
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.append(format_args!("SPAN {span:?} +"), |fields| {
            values.record(fields)
        });
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        self.append(
            format_args!("{} {}:", meta.level(), meta.target()),
            |fields| event.record(fields),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Installs the capturing subscriber for the whole process (once) and returns it.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            text: Mutex::new(String::new()),
            next_span: AtomicU64::new(0),
        }));
        tracing::subscriber::set_global_default(ForwardTo(capture))
            .expect("no other subscriber in this test binary");
        capture
    })
}

/// `&'static Capture` as an owned subscriber.
struct ForwardTo(&'static Capture);

impl Subscriber for ForwardTo {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(meta)
    }
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.0.enabled(meta)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.0.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.0.record(span, values)
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.0.record_follows_from(span, follows)
    }
    fn event(&self, event: &Event<'_>) {
        self.0.event(event)
    }
    fn enter(&self, span: &Id) {
        self.0.enter(span)
    }
    fn exit(&self, span: &Id) {
        self.0.exit(span)
    }
}

// ----- what to look for -------------------------------------------------------------------

/// The secrets of a test, and everything it saw, to search for them.
#[derive(Default)]
struct Exposure {
    secrets: Vec<String>,
    seen: String,
}

impl Exposure {
    fn secret(&mut self, tag: &str) -> String {
        let secret = secret(tag);
        self.secrets.push(secret.clone());
        secret
    }

    /// Adds the Debug form (and the Display form of errors) of what an operation returned.
    fn saw<T: fmt::Debug, E: fmt::Display + fmt::Debug>(&mut self, result: &Result<T, E>) {
        match result {
            Ok(value) => writeln!(self.seen, "{value:?}"),
            Err(err) => writeln!(self.seen, "{err} / {err:?}"),
        }
        .unwrap();
    }

    fn saw_debug(&mut self, value: &impl fmt::Debug) {
        writeln!(self.seen, "{value:?}").unwrap();
    }

    /// Fails naming the first secret found in `text`, whole or by 16 of its characters.
    fn assert_absent_from(&self, text: &str, what: &str) {
        for secret in &self.secrets {
            let chars: Vec<char> = secret.chars().collect();
            for window in chars.windows(16.min(chars.len())) {
                let window: String = window.iter().collect();
                if let Some(at) = text.find(&window) {
                    let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
                    panic!(
                        "{what} shows {window:?} of a secret, in:\n{}",
                        &text[from..to]
                    );
                }
            }
        }
    }
}

const ALICE: u64 = 111_000_000_001;
const BOB: u64 = 111_000_000_002;
const CAROL: u64 = 111_000_000_003;
const DAVE: u64 = 111_000_000_004;
const EVE: u64 = 111_000_000_005;
const CHANNEL: u64 = 222_000_000_001;
const ADMIN: u64 = 999;
const TOOL: &str = "web_search";

/// A copy of a stored value with one base64 character changed.
fn tampered(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_an_error_or_a_debug_form_through_every_core_operation() {
    let logs = capture();
    tokio::time::timeout(Duration::from_secs(60), async {
        let log_dir = tempfile::tempdir().unwrap();
        let redis_log = log_dir.path().join("redis.log");
        let redis_log_arg = redis_log.display().to_string();
        let mut server =
            RedisServer::start_with_args(&["--logfile", &redis_log_arg, "--loglevel", "debug"])
                .expect("start a private redis-server");
        let mut exposure = Exposure::default();
        let env_key = exposure.secret("env");
        let fx = Fixture::builder(Backend::Redis)
            .redis_url(server.url())
            .env("BRAVE_API_KEY", &env_key)
            .open()
            .await;
        exposure.secrets.push(fx.master_key.clone());
        let vault = &fx.vault;
        let layout = vault.layout().clone();
        let store = fx.storage();

        // Users' keys, pools, Gitea.
        let (alice_brave, alice_openai, bob_openai) = (
            exposure.secret("alice-brave"),
            exposure.secret("alice-openai"),
            exposure.secret("bob-openai"),
        );
        exposure.saw(&vault.set_user_api_key(ALICE, "brave", &alice_brave).await);
        exposure.saw(&vault.set_user_api_key(ALICE, "openai", &alice_openai).await);
        exposure.saw(&vault.set_user_api_key(BOB, "openai", &bob_openai).await);
        let gitea_token = exposure.secret("gitea");
        exposure.saw(
            &vault
                .set_gitea_credentials(ALICE, &gitea_token, Some("https://git.example/"))
                .await,
        );
        for pool in [Pool::Global, Pool::Channel(CHANNEL)] {
            for service in ["brave", "openai"] {
                let key = exposure.secret("pooled");
                exposure.saw(&vault.add_pool_key(pool, service, &key, ADMIN).await);
                // Twice: the idempotent path.
                exposure.saw(&vault.add_pool_key(pool, service, &key, ADMIN).await);
            }
        }

        // Resolution through every tier, draws, listings, Gitea.
        for (user, channel, pools) in [
            (Some(ALICE), Some(CHANNEL), true),
            (Some(CAROL), Some(CHANNEL), true),
            (Some(CAROL), None, true),
            (Some(CAROL), None, false),
            (None, None, true),
        ] {
            for service in ["brave", "openai", "gemini"] {
                let resolved = vault.get_user_api_key(user, service, channel, pools).await;
                exposure.saw_debug(&resolved);
            }
        }
        exposure.saw_debug(&vault.get_pool_api_key("brave").await);
        exposure.saw_debug(&vault.get_channel_pool_api_key(CHANNEL, "openai").await);
        exposure.saw(&vault.list_pool_keys(Pool::Global, None).await);
        exposure.saw(
            &vault
                .list_pool_keys(Pool::Channel(CHANNEL), Some("brave"))
                .await,
        );
        exposure.saw(&vault.list_user_api_keys(ALICE).await);
        exposure.saw_debug(&vault.get_gitea_credentials(Some(ALICE), None, true).await);

        // The quota.
        exposure.saw_debug(&vault.check_default_key_limit(CAROL, TOOL, None).await);
        vault.increment_default_key_usage(CAROL, TOOL).await;
        let permit = vault.reserve_default_key_use(CAROL, TOOL, Some(2)).await;
        exposure.saw_debug(&permit);
        if let Ok(permit) = permit {
            permit.refund().await;
        }
        exposure.saw_debug(&vault.default_key_limit_applies(Some(CAROL), false).await);

        // Migration over legacy plaintext values.
        let (plain_user, plain_pool) =
            (exposure.secret("plain-user"), exposure.secret("plain-pool"));
        store
            .hset(&layout.user_keys_key(DAVE), "brave", &plain_user)
            .await
            .unwrap();
        store
            .hset(
                &layout.global_pool_key("gemini"),
                "legacy000001",
                &plain_pool,
            )
            .await
            .unwrap();
        exposure.saw_debug(
            &vault
                .get_user_api_key(Some(DAVE), "brave", None, false)
                .await,
        );
        exposure.saw(&vault.migrate().await);
        exposure.saw_debug(
            &vault
                .get_user_api_key(Some(DAVE), "brave", None, false)
                .await,
        );
        exposure.saw_debug(&vault.get_pool_api_key("gemini").await);

        // Values that do not open: tampered, moved to another service or user, an unknown
        // format wrapped around a secret.
        let alice_sealed = store
            .hget(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap()
            .unwrap();
        store
            .hset(
                &layout.user_keys_key(ALICE),
                "brave",
                &tampered(&alice_sealed),
            )
            .await
            .unwrap();
        store
            .hset(&layout.user_keys_key(ALICE), "gemini", &alice_sealed)
            .await
            .unwrap();
        store
            .hset(&layout.user_keys_key(BOB), "brave", &alice_sealed)
            .await
            .unwrap();
        let in_unknown_format = exposure.secret("v9");
        store
            .hset(
                &layout.user_keys_key(EVE),
                "brave",
                &format!("v9:{in_unknown_format}"),
            )
            .await
            .unwrap();
        for (user, service) in [
            (ALICE, "brave"),
            (ALICE, "gemini"),
            (BOB, "brave"),
            (EVE, "brave"),
        ] {
            exposure.saw_debug(
                &vault
                    .get_user_api_key(Some(user), service, None, true)
                    .await,
            );
        }
        exposure.saw(&vault.list_user_api_keys(ALICE).await);
        exposure.saw(&vault.list_user_api_keys(EVE).await);
        exposure.saw(&vault.migrate().await);

        // Input refused on purpose.
        let refused = [
            exposure.secret("unknown-service"),
            format!("{} {}", exposure.secret("with"), exposure.secret("space")),
            format!("{}\0", exposure.secret("with-nul")),
            format!("{}\n{}", exposure.secret("two"), exposure.secret("lines")),
        ];
        for secret in &refused {
            exposure.saw(&vault.set_user_api_key(ALICE, "nosuchservice", secret).await);
            exposure.saw(&vault.set_user_api_key(ALICE, "brave", secret).await);
            exposure.saw(
                &vault
                    .add_pool_key(Pool::Global, "brave", secret, ADMIN)
                    .await,
            );
            exposure.saw(
                &vault
                    .set_gitea_credentials(ALICE, secret, Some("not a url"))
                    .await,
            );
        }

        // A rekey: every value opened and sealed again.
        let rekeyed = vault.rekey(|_, _| ControlFlow::Continue(())).await;
        exposure.saw(&rekeyed);
        assert!(rekeyed.is_ok(), "{rekeyed:?}");

        // A master-key rotation, on a second store over the same file.
        let new_master = MasterKey::generate();
        exposure
            .secrets
            .push(new_master.to_base64().expose_secret().to_owned());
        let old_master = MasterKey::from_base64(&fx.master_key).unwrap();
        let db_path = fx.db_path.clone();
        let rotated = tokio::task::spawn_blocking(move || {
            let second =
                DataKeyStore::open(&db_path, Keyring::new(new_master, vec![old_master]), 100)?;
            second.rotate(|_, _| ControlFlow::Continue(()))
        })
        .await
        .unwrap();
        exposure.saw(&rotated);
        assert!(rotated.is_ok());

        // Erasing a user.
        exposure.saw(&vault.forget_user(BOB).await);

        // Redis stopped: every call fails or falls back.
        server.stop();
        let late = exposure.secret("while-down");
        exposure.saw_debug(
            &vault
                .get_user_api_key(Some(ALICE), "openai", None, true)
                .await,
        );
        exposure.saw_debug(
            &vault
                .get_user_api_key(Some(CAROL), "brave", Some(CHANNEL), true)
                .await,
        );
        exposure.saw(&vault.set_user_api_key(ALICE, "brave", &late).await);
        exposure.saw(
            &vault
                .add_pool_key(Pool::Global, "brave", &late, ADMIN)
                .await,
        );
        exposure.saw(&vault.set_gitea_credentials(ALICE, &late, None).await);
        exposure.saw(&vault.list_user_api_keys(ALICE).await);
        exposure.saw(&vault.list_pool_keys(Pool::Global, None).await);
        exposure.saw(&vault.migrate().await);
        exposure.saw(&vault.forget_user(ALICE).await);
        exposure.saw_debug(&vault.get_pool_api_key("brave").await);
        exposure.saw_debug(&vault.get_gitea_credentials(Some(ALICE), None, true).await);
        exposure.saw_debug(&vault.check_default_key_limit(CAROL, TOOL, None).await);
        vault.increment_default_key_usage(CAROL, TOOL).await;
        exposure.saw_debug(&vault.reserve_default_key_use(CAROL, TOOL, None).await);
        exposure.saw(&vault.default_key_usage(CAROL, None).await);
        exposure.saw_debug(vault);
        exposure.saw_debug(vault.config());
        exposure.saw_debug(vault.data_keys());

        let logs = logs.text.lock().unwrap().clone();
        // The capture works: the failures above were logged.
        for expected in [
            "does not open",
            "falling back to the environment",
            "fail-open",
            "format v9",
        ] {
            assert!(
                logs.contains(expected),
                "no {expected:?} in the logs:\n{logs}"
            );
        }
        exposure.assert_absent_from(&logs, "the logs at TRACE");
        exposure.assert_absent_from(&exposure.seen, "a result, an error or a Debug form");
        drop(server);
        let redis_log = std::fs::read_to_string(&redis_log).unwrap_or_default();
        assert!(
            redis_log.contains("Ready to accept connections"),
            "{redis_log}"
        );
        exposure.assert_absent_from(&redis_log, "the redis-server log");
    })
    .await
    .expect("test timed out");
}

// ----- Debug forms ------------------------------------------------------------------------

/// A random secret of letters that never occur in hex or base64 ids: `sk-` and 32 of g..z.
fn letters_secret() -> String {
    let bytes: [u8; 32] = rand_bytes();
    let tail: String = bytes.iter().map(|b| (b'g' + b % 20) as char).collect();
    format!("sk-{tail}")
}

/// `debug` shows none of `secret` beyond the four characters a masked form ends with.
fn assert_redacted(debug: &str, secret: &str, what: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(5) {
        let window: String = window.iter().collect();
        assert!(
            !debug.contains(&window),
            "the Debug form of {what} shows {window:?}: {debug}"
        );
    }
}

/// Whether `debug` shows none of `secret` beyond the four characters a masked form ends with.
fn is_redacted(debug: &str, secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(5)
        .all(|w| !debug.contains(&w.iter().collect::<String>()))
}

fn master_text() -> String {
    MasterKey::generate().to_base64().expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debug_form_of_every_type_that_holds_a_secret_is_redacted() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (current, previous) = (master_text(), master_text());
        let (env_secret, token_secret, discord_secret) =
            (letters_secret(), letters_secret(), letters_secret());
        let redis_password = letters_secret();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keys.db");
        let config = Config::from_vars([
            ("STARGAZER_MASTER_KEY", current.clone()),
            ("STARGAZER_PREVIOUS_MASTER_KEYS", previous.clone()),
            ("STARGAZER_DB_PATH", db.display().to_string()),
            ("BRAVE_API_KEY", env_secret.clone()),
            ("GITEA_TOKEN", token_secret.clone()),
            ("DISCORD_TOKEN", discord_secret.clone()),
        ])
        .unwrap();
        let mut with_redis = config.clone();
        with_redis.redis_urls = vec![format!("redis://:{redis_password}@127.0.0.1:1/")];
        let config_secrets = [
            &current,
            &previous,
            &env_secret,
            &token_secret,
            &discord_secret,
        ];
        for (what, debug) in [
            ("Config", format!("{config:?}")),
            ("Config with a Redis password", format!("{with_redis:?}")),
            ("EnvSnapshot", format!("{:?}", config.env)),
            ("Keyring", format!("{:?}", config.keyring().unwrap())),
            ("MasterKey", format!("{:?}", config.master_key)),
        ] {
            for secret in config_secrets.iter().chain([&&redis_password]) {
                assert_redacted(&debug, secret, what);
            }
        }
        assert_eq!(format!("{:?}", DataKey::generate()), "DataKey(..)");

        let key = letters_secret();
        let api_key = ApiKey::new(key.clone());
        assert_eq!(
            format!("{api_key:?}"),
            format!("ApiKey(…{})", &key[key.len() - 4..])
        );
        assert_eq!(format!("{:?}", ApiKey::new("sk-short")), "ApiKey(…)");

        let vault = KeyVault::open(config).await.unwrap();
        vault.set_user_api_key(ALICE, "brave", &key).await.unwrap();
        let gitea = letters_secret();
        vault
            .set_gitea_credentials(ALICE, &gitea, Some("https://git.example"))
            .await
            .unwrap();
        let pooled = letters_secret();
        let added = vault
            .add_pool_key(Pool::Global, "openai", &pooled, ADMIN)
            .await
            .unwrap();
        let resolved = vault
            .get_user_api_key(Some(ALICE), "brave", None, true)
            .await
            .unwrap();
        let credentials = vault
            .get_gitea_credentials(Some(ALICE), None, true)
            .await
            .unwrap();
        let permit = vault
            .reserve_default_key_use(ALICE, TOOL, None)
            .await
            .unwrap();
        for (what, debug, secret) in [
            ("ResolvedKey", format!("{resolved:?}"), &key),
            ("GiteaCredentials", format!("{credentials:?}"), &gitea),
            ("PoolAdd", format!("{added:?}"), &pooled),
            (
                "list_pool_keys",
                format!(
                    "{:?}",
                    vault.list_pool_keys(Pool::Global, None).await.unwrap()
                ),
                &pooled,
            ),
            (
                "list_user_api_keys",
                format!("{:?}", vault.list_user_api_keys(ALICE).await.unwrap()),
                &key,
            ),
            ("KeyVault", format!("{vault:?}"), &key),
            ("DataKeyStore", format!("{:?}", vault.data_keys()), &key),
            ("QuotaPermit", format!("{permit:?}"), &key),
        ] {
            assert_redacted(&debug, secret, what);
            for secret in config_secrets {
                assert_redacted(&debug, secret, what);
            }
        }
        permit.commit();

        // Errors built from secret-bearing input.
        let bad_key = letters_secret();
        for (what, err) in [
            (
                "KeyError (space)",
                vault
                    .set_user_api_key(ALICE, "brave", &format!("{bad_key} x"))
                    .await
                    .unwrap_err(),
            ),
            (
                "KeyError (NUL)",
                vault
                    .set_user_api_key(ALICE, "brave", &format!("{bad_key}\0"))
                    .await
                    .unwrap_err(),
            ),
            (
                "KeyError (too long)",
                vault
                    .set_user_api_key(ALICE, "brave", &bad_key.repeat(200))
                    .await
                    .unwrap_err(),
            ),
            (
                "KeyError (unknown service)",
                vault
                    .set_user_api_key(ALICE, "nosuch", &bad_key)
                    .await
                    .unwrap_err(),
            ),
            (
                "KeyError (base URL)",
                vault
                    .set_gitea_credentials(ALICE, &bad_key, Some(&format!("https://{bad_key} x")))
                    .await
                    .unwrap_err(),
            ),
        ] {
            assert_redacted(&format!("{err} {err:?}"), &bad_key, what);
        }
        let ctx = SealContext {
            prefix: "stargazer",
            owner: "1",
            service: "brave",
            key_id: None,
        };
        let sealed = DataKey::generate().seal(&ctx, bad_key.as_bytes());
        for value in [
            sealed.clone(),
            tampered(&sealed),
            format!("v9:{bad_key}"),
            format!("v4:{bad_key}!"),
        ] {
            let err = StoredValue::parse(&value)
                .and_then(|v| v.open(Some(&DataKey::generate()), &ctx).map(drop))
                .unwrap_err();
            assert_redacted(&format!("{err} {err:?}"), &bad_key, "OpenError");
        }
        let short_key =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 31]);
        for (setting, text) in [
            ("STARGAZER_MASTER_KEY", short_key.clone()),
            ("STARGAZER_MASTER_KEY", format!("{bad_key}!")),
            (
                "STARGAZER_PREVIOUS_MASTER_KEYS",
                format!("{current},{short_key}"),
            ),
        ] {
            let err = Config::from_vars([
                ("STARGAZER_MASTER_KEY", current.as_str()),
                (setting, text.as_str()),
            ])
            .unwrap_err();
            for secret in [&short_key, &bad_key, &current] {
                assert_redacted(&format!("{err} {err:?}"), secret, "ConfigError");
            }
        }
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, format!("{bad_key}\n")).unwrap();
        let err =
            Config::from_vars([("STARGAZER_MASTER_KEY_FILE", key_file.display().to_string())])
                .unwrap_err();
        assert_redacted(
            &format!("{err} {err:?}"),
            &bad_key,
            "ConfigError (key file)",
        );
    })
    .await
    .expect("test timed out");
}

/// A pool key pasted where its key id belongs (`/pool remove key_id:`) comes back in the
/// error, which the commands' error hook logs at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_given_as_a_pool_key_id_is_not_echoed_in_the_error() {
    let fx = Fixture::new(Backend::Embedded).await;
    let pasted = letters_secret();

    let err = fx
        .vault
        .remove_pool_key(Pool::Global, "brave", &pasted)
        .await
        .unwrap_err();

    assert_redacted(&format!("{err} {err:?}"), &pasted, "KeyError::InvalidKeyId");
}

/// `StoredValue` and `ResolveReply` are public and hold what storage had: for a legacy value,
/// the secret in clear.
#[test]
fn the_debug_form_of_a_stored_value_in_clear_is_redacted() {
    let legacy = letters_secret();

    let parsed = StoredValue::parse(&legacy).unwrap();
    let reply = ResolveReply {
        user: Some(legacy.clone()),
        pools: vec![vec![("legacy000001".to_owned(), legacy.clone())]],
        ..ResolveReply::default()
    };

    assert!(is_redacted(&format!("{parsed:?}"), &legacy), "{parsed:?}");
    assert!(is_redacted(&format!("{reply:?}"), &legacy), "{reply:?}");
}
