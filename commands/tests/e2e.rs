//! End to end: the real bot (the code `stargazer-keys bot` runs) against the fake Discord of
//! the `testkit` feature, a real redis-server (or the embedded store) and a real SQLite file.
//! Every test is bounded in time; every log line of the bot is captured at TRACE level and
//! searched for the secrets the tests submit.

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/web_search.rs"]
mod web_search_example;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use poise::serenity_prelude::Permissions;
use stargazer_keys::testkit::{LogCapture, RedisServer};
use stargazer_keys::{Config, KeySource, KeyVault, Pool};
use stargazer_keys_commands::bot::{self, BotSettings};
use stargazer_keys_commands::testkit::{Caller, CommandScope, FakeDiscord, SlashCommand, TestBot};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

const GUILD: u64 = 1_100_000_000_000_000_001;
const CHANNEL: u64 = 1_100_000_000_000_000_002;
const OTHER_CHANNEL: u64 = 1_100_000_000_000_000_003;
const DM_CHANNEL: u64 = 1_100_000_000_000_000_004;
const ALICE: u64 = 2_100_000_000_000_000_001;
const BOB: u64 = 2_100_000_000_000_000_002;
const ADMIN: u64 = 2_100_000_000_000_000_009;
const WAIT: Duration = Duration::from_secs(10);
const TEST_BUDGET: Duration = Duration::from_secs(90);
/// Modals of these tests time out quickly, so the unanswered-modal test is short.
const MODAL_TIMEOUT_SECS: u64 = 2;

// ---- captured logs --------------------------------------------------------------------------

/// What this test binary logs, captured twice: by the bot's own layer, and by a host bot's
/// subscriber.
struct Logs {
    /// Through the bot's own secret-safe layer, at TRACE.
    bot: LogCapture,
    /// Through what a host bot that embeds the commands would install: a plain `fmt` layer at
    /// TRACE, with the one public filter added to the registry.
    host: LogCapture,
}

/// Every log line of every bot in this test binary.
fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs {
            bot: LogCapture::default(),
            host: LogCapture::default(),
        };
        let bot = logs.bot.clone();
        let host = logs.host.clone();
        let _ = tracing_subscriber::registry()
            .with(stargazer_keys_commands::logging::secret_safe_filter())
            .with(stargazer_keys_commands::logging::layer(
                move || bot.clone(),
                EnvFilter::new("trace"),
            ))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || host.clone())
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
            )
            .try_init();
        logs
    })
}

fn captured_logs() -> String {
    logs().bot.text()
}

fn host_logs() -> String {
    logs().host.text()
}

// ---- the harness ------------------------------------------------------------------------------

/// Where the bot keeps its keys in a test.
enum Store {
    /// The redis-server shared by this test binary.
    SharedRedis,
    /// A private redis-server the test can stop and restart.
    PrivateRedis(RedisServer),
    /// The embedded store in the SQLite file.
    Embedded,
}

/// The production bot (`bot::run`) on a fake Discord, with its vault and stores.
struct Bot {
    bot: TestBot,
    vault: KeyVault,
    redis: Option<RedisServer>,
    _dir: TempDir,
}

impl std::ops::Deref for Bot {
    type Target = TestBot;
    fn deref(&self) -> &TestBot {
        &self.bot
    }
}

impl Bot {
    async fn start() -> Self {
        Self::start_with(Store::SharedRedis, &[]).await
    }

    async fn start_with(store: Store, env: &[(&str, String)]) -> Self {
        logs();
        let fake = FakeDiscord::start().await.expect("start the fake Discord");
        let dir = tempfile::tempdir().unwrap();
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let mut prefix = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut prefix);
        let mut vars: Vec<(String, String)> = vec![
            ("DISCORD_TOKEN".into(), fake.token().to_owned()),
            ("DISCORD_HTTP_PROXY".into(), fake.http_url()),
            ("DISCORD_GUILD_ID".into(), GUILD.to_string()),
            (
                "STARGAZER_MASTER_KEY".into(),
                base64::engine::general_purpose::STANDARD.encode(key),
            ),
            (
                "STARGAZER_DB_PATH".into(),
                dir.path().join("keys.db").display().to_string(),
            ),
            (
                "STARGAZER_KEY_PREFIX".into(),
                format!("e2e{}", hex(&prefix)),
            ),
            ("ADMIN_USER_IDS".into(), ADMIN.to_string()),
            (
                "STARGAZER_MODAL_TIMEOUT_SECS".into(),
                MODAL_TIMEOUT_SECS.to_string(),
            ),
            ("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS".into(), "500".into()),
        ];
        let redis = match store {
            Store::SharedRedis => {
                vars.push(("REDIS_URL".into(), RedisServer::shared().url()));
                None
            }
            Store::PrivateRedis(server) => {
                vars.push(("REDIS_URL".into(), server.url()));
                Some(server)
            }
            Store::Embedded => None,
        };
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let config = Config::from_vars(vars).expect("valid settings");
        let settings = BotSettings::from_config(&config).expect("valid bot settings");
        let vault = KeyVault::open(config).await.expect("open the vault");
        let vault_for_bot = vault.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let run = bot::run(
                settings,
                vault_for_bot,
                vec![web_search_example::web_search()],
                async {
                    let _ = stopped.await;
                },
            );
            if let Err(err) = run.await {
                eprintln!("the bot stopped: {err}");
            }
        });
        let bot = TestBot::running(
            fake,
            move || {
                let _ = stop.send(());
            },
            task,
            WAIT,
        )
        .await;
        let registered = bot.fake.registered_commands();
        let global = env
            .iter()
            .any(|(k, v)| *k == "DISCORD_GUILD_ID" && v.is_empty());
        let expected = if global {
            CommandScope::Global
        } else {
            CommandScope::Guild(GUILD)
        };
        assert_eq!(registered[0].scope, expected);
        Bot {
            bot,
            vault,
            redis,
            _dir: dir,
        }
    }

    /// Asserts that no secret appears in anything the bot sent to Discord, in what it
    /// registered, or in its logs (its own, and a host bot's).
    fn assert_no_leak(&self, secrets: &[&str]) {
        let logs = captured_logs();
        let host_logs = host_logs();
        for secret in secrets {
            assert!(!secret.is_empty());
            for request in self.fake.requests() {
                assert!(
                    !request.contains(secret),
                    "a secret went to Discord in {} {}",
                    request.method,
                    request.path
                );
            }
            for registration in self.fake.registered_commands() {
                assert!(
                    !serde_json::to_string(&registration.commands)
                        .unwrap()
                        .contains(secret)
                );
            }
            assert!(!logs.contains(secret), "a secret is in the bot's logs");
            assert!(
                !host_logs.contains(secret),
                "a secret is in a host bot's logs"
            );
        }
    }

    async fn stop(self) {
        self.bot.stop().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secret(tag: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!("sk-{tag}-{}", hex(&bytes))
}

fn masked(secret: &str) -> String {
    format!("…{}", &secret[secret.len() - 4..])
}

fn alice() -> Caller {
    Caller::in_guild(ALICE, "alice", GUILD, CHANNEL)
}

fn bob() -> Caller {
    Caller::in_guild(BOB, "bob", GUILD, CHANNEL)
}

fn admin() -> Caller {
    Caller::in_guild(ADMIN, "admin", GUILD, CHANNEL)
}

fn moderator() -> Caller {
    Caller::in_guild(BOB, "bob", GUILD, CHANNEL)
        .with_permissions(Permissions::VIEW_CHANNEL | Permissions::MANAGE_CHANNELS)
}

fn server_manager() -> Caller {
    Caller::in_guild(BOB, "bob", GUILD, CHANNEL)
        .with_permissions(Permissions::VIEW_CHANNEL | Permissions::MANAGE_GUILD)
}

fn set_key(service: &str) -> SlashCommand {
    SlashCommand::new("set_user_api_key").option("service", service)
}

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BUDGET, body)
        .await
        .expect("the test finished within its budget");
}

async fn resolve(vault: &KeyVault, user: u64, service: &str) -> Option<(KeySource, String)> {
    vault
        .get_user_api_key(Some(user), service, Some(CHANNEL), true)
        .await
        .map(|r| (r.source(), r.key.expose().to_owned()))
}

// ---- user keys ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_user_api_key_saves_the_key_from_the_modal_and_never_echoes_it() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("brave");
        let modal = bot.answer(&alice(), set_key("brave")).await;
        let shown = modal.modal().expect("the first response is the modal");
        assert_eq!(shown.inputs.len(), 1);
        assert_eq!(shown.inputs[0].max_length, Some(4000));
        let reply = bot
            .fake
            .submit_modal(&alice(), &modal, &[&format!("  {key}\n")])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(reply.kind, 4, "answered on the submit interaction itself");
        assert!(reply.is_ephemeral());
        assert_eq!(
            reply.content().unwrap(),
            format!(
                "Saved your Brave Search key ({}). It now works for you in every server and DM; remove it with `/remove_user_api_key service:brave`.",
                masked(&key)
            )
        );
        assert_eq!(resolve(&bot.vault, ALICE, "brave").await, Some((KeySource::User, key.clone())));
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_asks_for_a_token_and_an_optional_base_url() {
    bounded(async {
        let bot = Bot::start().await;
        let token = secret("gitea");
        let modal = bot.answer(&alice(), set_key("gitea")).await;
        let shown = modal.modal().unwrap();
        assert_eq!(shown.inputs.len(), 2);
        assert!(shown.inputs[0].required && !shown.inputs[1].required);
        let reply = bot
            .fake
            .submit_modal(&alice(), &modal, &[&token, "https://git.example.org/"])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(
            reply
                .content()
                .unwrap()
                .starts_with("Saved your Gitea key (…"),
            "{reply:?}"
        );
        let credentials = bot
            .vault
            .get_gitea_credentials(Some(ALICE), None, true)
            .await
            .unwrap();
        assert_eq!(credentials.token.expose(), token);
        assert_eq!(credentials.base_url, "https://git.example.org");
        bot.assert_no_leak(&[&token]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_reason_and_earlier_keys_stay() {
    bounded(async {
        let bot = Bot::start().await;
        let kept = secret("kept");
        bot.vault.set_user_api_key(ALICE, "openai", &kept).await.unwrap();
        let oversized = "k".repeat(4_001);
        let cases: [(&str, bool, &str); 5] = [
            ("   ", true, "The key is empty: paste the key itself."),
            ("two words", true, "The key contains spaces or line breaks: paste the key alone, on one line."),
            ("nul\u{0}byte", true, "The key contains control characters (such as NUL): paste the key alone."),
            // What Discord's own client would not send, a modified one can.
            ("", false, "The key is empty: paste the key itself."),
            (&oversized, false, "The key is 4001 characters long; the limit is 4000."),
        ];
        for (value, client_would_send, expected) in cases {
            let modal = bot.answer(&alice(), set_key("openai")).await;
            let submit = if client_would_send {
                bot.fake.submit_modal(&alice(), &modal, &[value]).await
            } else {
                bot.fake.submit_modal_unchecked(&alice(), &modal, &[value]).await
            };
            let reply = submit.unwrap().callback(WAIT).await.unwrap();
            assert!(reply.is_ephemeral());
            assert_eq!(reply.content(), Some(expected));
        }
        let unknown = bot.answer(&alice(), set_key("nosuchservice")).await;
        assert!(!unknown.is_modal(), "an unknown service gets no modal");
        assert!(unknown.is_ephemeral());
        assert_eq!(
            unknown.content(),
            Some("There is no service called `nosuchservice`; the services are: anthropic, brave, elevenlabs, gemini, gitea, github, openai, openrouter, youtube.")
        );
        let keys = bot.vault.list_user_api_keys(ALICE).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(resolve(&bot.vault, ALICE, "openai").await, Some((KeySource::User, kept.clone())));
        bot.assert_no_leak(&[&kept, "two words", "nul\u{0}byte"]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modal_left_unanswered_writes_nothing_and_leaves_no_wait_behind() {
    bounded(async {
        let bot = Bot::start().await;
        let modal = bot.answer(&alice(), set_key("brave")).await;
        assert!(modal.is_modal());
        assert!(stargazer_keys_commands::modal::open_modals() >= 1);
        // Past the modal's timeout, the wait is gone...
        let mut open = usize::MAX;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            open = stargazer_keys_commands::modal::open_modals();
            if open == 0 {
                break;
            }
        }
        assert_eq!(open, 0, "a modal wait outlived its timeout");
        // ...so a late submit is not answered and saves nothing.
        let late = bot
            .fake
            .submit_modal(&alice(), &modal, &["sk-late-submit-0000000000"])
            .await
            .unwrap();
        assert!(late.callback(Duration::from_secs(1)).await.is_err());
        assert!(
            bot.vault
                .list_user_api_keys(ALICE)
                .await
                .unwrap()
                .is_empty()
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_user_api_key_autocompletes_own_services_and_removes_one() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("brave");
        bot.vault
            .set_user_api_key(ALICE, "brave", &key)
            .await
            .unwrap();
        bot.vault
            .set_user_api_key(ALICE, "openai", &secret("openai"))
            .await
            .unwrap();
        let suggestions = bot
            .fake
            .autocomplete(
                &alice(),
                SlashCommand::new("remove_user_api_key").focused("service", "br"),
            )
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(suggestions.kind, 8);
        let choices = suggestions.choices();
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].0, format!("Brave Search ({})", masked(&key)));
        assert_eq!(choices[0].1, "brave");

        let removed = bot
            .answer(
                &alice(),
                SlashCommand::new("remove_user_api_key").option("service", "brave"),
            )
            .await;
        assert!(removed.is_ephemeral());
        assert_eq!(removed.content(), Some("Removed your Brave Search key."));
        let again = bot
            .answer(
                &alice(),
                SlashCommand::new("remove_user_api_key").option("service", "brave"),
            )
            .await;
        assert_eq!(
            again.content(),
            Some("You had no Brave Search key saved, so nothing changed.")
        );
        assert_eq!(bot.vault.list_user_api_keys(ALICE).await.unwrap().len(), 1);
        bot.assert_no_leak(&[&key]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_autocomplete_offers_the_catalogue_and_at_most_25() {
    bounded(async {
        let bot = Bot::start().await;
        let all = bot
            .fake
            .autocomplete(&alice(), set_key("").focused("service", ""))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        let choices = all.choices();
        assert!(!choices.is_empty() && choices.len() <= 25);
        assert!(
            choices
                .iter()
                .any(|(name, value)| name == "Brave Search (brave)" && value == "brave")
        );
        let open = bot
            .fake
            .autocomplete(&alice(), set_key("").focused("service", "open"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        let values: Vec<_> = open.choices().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["openai", "openrouter"]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_user_api_keys_shows_masked_keys_and_the_shared_fallbacks_here() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("brave");
        let pooled = secret("pooled");
        bot.vault.set_user_api_key(ALICE, "brave", &key).await.unwrap();
        bot.vault.add_pool_key(Pool::Channel(CHANNEL), "openai", &pooled, ADMIN).await.unwrap();
        let reply = bot.answer(&alice(), SlashCommand::new("list_user_api_keys")).await;
        assert!(reply.is_ephemeral());
        let text = reply.content().unwrap();
        assert!(text.starts_with("Your API keys (only you can see this):\n• **Brave Search** (`brave`): `"), "{text}");
        assert!(text.contains(&format!("`{}`, saved <t:", masked(&key))), "{text}");
        assert!(text.contains("Shared keys you can use here without your own: OpenAI (this channel's pool)."), "{text}");
        let elsewhere = bot
            .answer(&Caller::in_guild(BOB, "bob", GUILD, OTHER_CHANNEL), SlashCommand::new("list_user_api_keys"))
            .await;
        assert_eq!(
            elsewhere.content(),
            Some("You have no API keys saved. Add one with `/set_user_api_key`.\n\nNo shared keys are available in this channel.")
        );
        bot.assert_no_leak(&[&key, &pooled]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_my_api_keys_erases_only_after_the_confirm_button() {
    bounded(async {
        let bot = Bot::start().await;
        bot.vault.set_user_api_key(ALICE, "brave", &secret("a")).await.unwrap();
        bot.vault.set_user_api_key(ALICE, "openai", &secret("b")).await.unwrap();

        let asked = bot.slash(&alice(), SlashCommand::new("forget_my_api_keys")).await;
        let question = asked.callback(WAIT).await.unwrap();
        assert!(question.is_ephemeral());
        assert_eq!(question.custom_ids().len(), 2);
        let cancel = question.custom_ids().into_iter().find(|id| id.contains(":keep:")).unwrap();
        let cancelled = bot.fake.press_button(&alice(), &asked, &cancel).await.unwrap().callback(WAIT).await.unwrap();
        assert!(cancelled.is_update());
        assert_eq!(cancelled.content(), Some("Cancelled; nothing was erased."));
        assert_eq!(bot.vault.list_user_api_keys(ALICE).await.unwrap().len(), 2);

        let asked = bot.slash(&alice(), SlashCommand::new("forget_my_api_keys")).await;
        let question = asked.callback(WAIT).await.unwrap();
        let confirm = question.custom_ids().into_iter().find(|id| id.contains(":forget:")).unwrap();
        let erased = bot.fake.press_button(&alice(), &asked, &confirm).await.unwrap().callback(WAIT).await.unwrap();
        assert_eq!(
            erased.content(),
            Some("Erased your 2 API keys and their encryption key. Nothing of them can be read any more.")
        );
        assert!(bot.vault.list_user_api_keys(ALICE).await.unwrap().is_empty());
        assert!(bot.vault.data_keys().get(&ALICE.to_string()).await.unwrap().is_none());
        bot.stop().await;
    })
    .await;
}

// ---- pools ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_admin_adds_lists_and_removes_global_pool_keys() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("shared");
        let added = bot
            .through_modal(&admin(), SlashCommand::new("pool add").option("service", "openrouter"), &[&key])
            .await;
        assert!(added.is_ephemeral());
        let text = added.content().unwrap();
        assert!(text.starts_with(&format!("Added a OpenRouter key ({}, id `", masked(&key))), "{text}");
        let listed = bot.vault.list_pool_keys(Pool::Global, Some("openrouter")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].contributor, Some(ADMIN));
        let key_id = listed[0].key_id.clone();
        assert!(text.ends_with(&format!("id `{key_id}`) to the global pool.")), "{text}");
        assert_eq!(resolve(&bot.vault, BOB, "openrouter").await, Some((KeySource::GlobalPool, key.clone())));

        let again = bot
            .through_modal(&admin(), SlashCommand::new("pool add").option("service", "openrouter"), &[&key])
            .await;
        assert_eq!(
            again.content().unwrap(),
            format!("That OpenRouter key is already in the global pool (id `{key_id}`), so nothing changed.")
        );

        let list = bot.answer(&admin(), SlashCommand::new("pool list")).await;
        let text = list.content().unwrap();
        assert!(text.starts_with("The global pool (only you can see this):\n"), "{text}");
        assert!(text.contains(&format!("• **OpenRouter** `{key_id}` `{}`, added by <@{ADMIN}> <t:", masked(&key))), "{text}");

        let ids = bot
            .fake
            .autocomplete(
                &admin(),
                SlashCommand::new("pool remove").option("service", "openrouter").focused("key_id", ""),
            )
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(ids.choices().len(), 1);
        assert_eq!(ids.choices()[0].1, key_id.as_str());

        let removed = bot
            .answer(&admin(), SlashCommand::new("pool remove").option("service", "openrouter").option("key_id", key_id.as_str()))
            .await;
        assert_eq!(
            removed.content().unwrap(),
            format!("Removed the OpenRouter key `{key_id}` from the global pool.")
        );
        assert!(resolve(&bot.vault, BOB, "openrouter").await.is_none());
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_commands_by_a_non_admin_are_refused_without_a_modal() {
    bounded(async {
        let bot = Bot::start().await;
        for command in [
            SlashCommand::new("pool add").option("service", "brave"),
            SlashCommand::new("pool list"),
            SlashCommand::new("pool remove").option("service", "brave").option("key_id", "0123456789ab"),
        ] {
            let reply = bot.answer(&alice(), command).await;
            assert!(!reply.is_modal());
            assert!(reply.is_ephemeral());
            assert_eq!(
                reply.content(),
                Some("Only bot admins can manage the global pool. To share a key in this channel, use `/pool channel add` (it needs the Manage Channels permission).")
            );
        }
        // Even a channel manager is not a bot admin.
        let reply = bot.answer(&moderator(), SlashCommand::new("pool add").option("service", "brave")).await;
        assert!(!reply.is_modal());
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_pools_need_manage_channels_in_that_channel_and_a_server() {
    bounded(async {
        let bot = Bot::start().await;
        let refused = bot
            .answer(
                &alice(),
                SlashCommand::new("pool channel add").option("service", "brave"),
            )
            .await;
        assert!(!refused.is_modal());
        assert!(refused.is_ephemeral());
        assert_eq!(
            refused.content(),
            Some("You need the Manage Channels permission in this channel to manage its key pool.")
        );

        let key = secret("channel");
        let added = bot
            .through_modal(
                &moderator(),
                SlashCommand::new("pool channel add").option("service", "brave"),
                &[&key],
            )
            .await;
        assert!(
            added
                .content()
                .unwrap()
                .ends_with("to this channel's pool."),
            "{added:?}"
        );
        assert_eq!(
            resolve(&bot.vault, ALICE, "brave").await,
            Some((KeySource::ChannelPool, key.clone()))
        );
        assert!(
            bot.vault
                .get_user_api_key(Some(ALICE), "brave", Some(OTHER_CHANNEL), true)
                .await
                .is_none(),
            "another channel does not see it"
        );

        let listed = bot
            .answer(&moderator(), SlashCommand::new("pool channel list"))
            .await;
        let key_id = bot
            .vault
            .list_pool_keys(Pool::Channel(CHANNEL), None)
            .await
            .unwrap()[0]
            .key_id
            .clone();
        assert!(listed.content().unwrap().contains(key_id.as_str()));
        let removed = bot
            .answer(
                &moderator(),
                SlashCommand::new("pool channel remove")
                    .option("service", "brave")
                    .option("key_id", key_id.as_str()),
            )
            .await;
        assert_eq!(
            removed.content().unwrap(),
            format!("Removed the Brave Search key `{key_id}` from this channel's pool.")
        );
        assert!(resolve(&bot.vault, ALICE, "brave").await.is_none());
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pools_need_manage_server_and_serve_every_channel_of_the_server() {
    bounded(async {
        let bot = Bot::start().await;
        for caller in [alice(), moderator()] {
            let refused = bot
                .answer(
                    &caller,
                    SlashCommand::new("pool server add").option("service", "brave"),
                )
                .await;
            assert!(!refused.is_modal(), "Manage Channels is not Manage Server");
            assert!(refused.is_ephemeral());
            assert_eq!(
                refused.content(),
                Some(
                    "You need the Manage Server permission in this server to manage its key pool."
                )
            );
        }

        let key = secret("server");
        let added = bot
            .through_modal(
                &server_manager(),
                SlashCommand::new("pool server add").option("service", "brave"),
                &[&key],
            )
            .await;
        assert!(
            added.content().unwrap().ends_with("to this server's pool."),
            "{added:?}"
        );
        for channel in [CHANNEL, OTHER_CHANNEL] {
            assert_eq!(
                bot.vault
                    .get_user_api_key_in(Some(ALICE), "brave", Some(channel), Some(GUILD), true)
                    .await
                    .map(|r| (r.source(), r.key.expose().to_owned())),
                Some((KeySource::GuildPool, key.clone())),
                "every channel of the server"
            );
        }
        let shown = bot
            .answer(&alice(), SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(
            shown
                .content()
                .unwrap()
                .contains("Brave Search (this server's pool)"),
            "{shown:?}"
        );

        let key_id = bot
            .vault
            .list_pool_keys(Pool::Guild(GUILD), None)
            .await
            .unwrap()[0]
            .key_id
            .clone();
        let listed = bot
            .answer(&server_manager(), SlashCommand::new("pool server list"))
            .await;
        assert!(listed.content().unwrap().contains(key_id.as_str()));
        let refused = bot
            .answer(&alice(), SlashCommand::new("pool server list"))
            .await;
        assert!(!refused.content().unwrap().contains(key_id.as_str()));
        let removed = bot
            .answer(
                &server_manager(),
                SlashCommand::new("pool server remove")
                    .option("service", "brave")
                    .option("key_id", key_id.as_str()),
            )
            .await;
        assert_eq!(
            removed.content().unwrap(),
            format!("Removed the Brave Search key `{key_id}` from this server's pool.")
        );
        assert!(
            bot.vault
                .get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true)
                .await
                .is_none()
        );
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_pools_are_refused_in_direct_messages_even_to_bot_admins() {
    bounded(async {
        // Registered globally, as in production, so the commands exist in DMs.
        let bot = Bot::start_with(Store::SharedRedis, &[("DISCORD_GUILD_ID", String::new())]).await;
        let in_dm = Caller::in_dm(ADMIN, "admin", DM_CHANNEL);
        for command in [
            SlashCommand::new("pool channel add").option("service", "brave"),
            SlashCommand::new("pool channel list"),
        ] {
            let reply = bot.answer(&in_dm, command).await;
            assert!(!reply.is_modal());
            assert!(reply.is_ephemeral());
            assert_eq!(
                reply.content(),
                Some("Channel pools exist only in server channels, and this is a direct message.")
            );
        }
        for command in [
            SlashCommand::new("pool server add").option("service", "brave"),
            SlashCommand::new("pool server list"),
        ] {
            let reply = bot.answer(&in_dm, command).await;
            assert!(!reply.is_modal());
            assert!(reply.is_ephemeral());
            assert_eq!(
                reply.content(),
                Some("Server pools exist only in servers, and this is a direct message.")
            );
        }
        // The user's own keys work in DMs.
        let key = secret("dm");
        let saved = bot.through_modal(&in_dm, set_key("brave"), &[&key]).await;
        assert!(
            saved
                .content()
                .unwrap()
                .starts_with("Saved your Brave Search key")
        );
        assert_eq!(
            resolve(&bot.vault, ADMIN, "brave").await,
            Some((KeySource::User, key.clone()))
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_key_submitted_after_the_manage_channels_permission_was_removed_is_refused_and_not_stored()
 {
    bounded(async {
        let bot = Bot::start().await;
        let modal = bot
            .answer(&moderator(), SlashCommand::new("pool channel add").option("service", "brave"))
            .await;
        assert!(modal.is_modal(), "a member with Manage Channels gets the modal: {modal:?}");
        // While the modal is open, a guild admin takes Manage Channels away from Bob.
        let demoted = Caller::in_guild(BOB, "bob", GUILD, CHANNEL).with_permissions(Permissions::VIEW_CHANNEL);
        let key = secret("demoted");
        let reply = bot
            .fake
            .submit_modal(&demoted, &modal, &[&key])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(reply.is_ephemeral());
        assert_eq!(
            reply.content(),
            Some("You no longer have the Manage Channels permission in this channel, so the key was not added to its pool.")
        );
        assert!(bot.vault.list_pool_keys(Pool::Channel(CHANNEL), None).await.unwrap().is_empty());
        assert!(resolve(&bot.vault, ALICE, "brave").await.is_none());
        bot.assert_no_leak(&[&key]);
        bot.stop().await;
    })
    .await;
}

/// Every string in a JSON value, keys included.
fn json_strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(json_strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_name_is_echoed_with_its_control_and_bidi_characters_escaped() {
    bounded(async {
        let bot = Bot::start().await;
        let unknown = bot.answer(&alice(), set_key("bad\u{0}\u{1b}[31mname")).await;
        assert!(!unknown.is_modal());
        assert!(unknown.is_ephemeral());
        assert_eq!(
            unknown.content(),
            Some(r"There is no service called `bad\u{0}\u{1b}[31mname`; the services are: anthropic, brave, elevenlabs, gemini, gitea, github, openai, openrouter, youtube.")
        );
        let reversed = bot.answer(&alice(), set_key("exe.\u{202e}brave")).await;
        assert_eq!(
            reversed.content(),
            Some(r"There is no service called `exe.\u{202e}brave`; the services are: anthropic, brave, elevenlabs, gemini, gitea, github, openai, openrouter, youtube.")
        );
        // Nothing the bot sent to Discord holds a raw control or bidi character (JSON escapes
        // them on the wire, so look at the decoded strings).
        for request in bot.fake.requests() {
            for text in request.body.iter().flat_map(json_strings) {
                assert!(
                    !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                    "{} {} sent {text:?}",
                    request.method,
                    request.path
                );
            }
        }
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_a_bidi_override_or_a_zero_width_space_is_refused_and_the_earlier_key_stays() {
    bounded(async {
        let bot = Bot::start().await;
        let kept = secret("kept");
        bot.vault.set_user_api_key(ALICE, "openai", &kept).await.unwrap();
        let refused = "The key contains invisible formatting characters (such as a right-to-left override or a zero-width space): copy the key again from its source and paste it alone.";
        for value in ["sk-abc\u{202e}fed", "sk-abc\u{200b}def"] {
            let reply = bot.through_modal(&alice(), set_key("openai"), &[value]).await;
            assert!(reply.is_ephemeral());
            assert_eq!(reply.content(), Some(refused), "{value:?}");
        }
        let pooled = bot
            .through_modal(&admin(), SlashCommand::new("pool add").option("service", "openai"), &["sk-pool\u{202e}key"])
            .await;
        assert_eq!(pooled.content(), Some(refused));
        assert_eq!(bot.vault.list_user_api_keys(ALICE).await.unwrap().len(), 1);
        assert_eq!(resolve(&bot.vault, ALICE, "openai").await, Some((KeySource::User, kept.clone())));
        assert!(bot.vault.list_pool_keys(Pool::Global, None).await.unwrap().is_empty());
        bot.assert_no_leak(&[&kept]);
        bot.stop().await;
    })
    .await;
}

// ---- the example sibling command -----------------------------------------------------------

/// A stand-in for Brave Search on 127.0.0.1: 401 without a key or with a key tagged
/// `revoked`, 429 (Retry-After: 30) with a key tagged `limited`, 500 for the query "fail".
async fn fake_brave() -> String {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    async fn search(
        headers: HeaderMap,
        Query(params): Query<std::collections::HashMap<String, String>>,
    ) -> (StatusCode, String) {
        let Some(key) = headers
            .get("X-Subscription-Token")
            .and_then(|v| v.to_str().ok())
        else {
            return (StatusCode::UNAUTHORIZED, String::new());
        };
        if key.contains("-revoked-") {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        let query = params.get("q").cloned().unwrap_or_default();
        if query == "fail" {
            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
        }
        let title = format!("{query} (key {})", &key[key.len() - 4..]);
        let body = serde_json::json!({"web": {"results": [{"title": title, "url": "https://example.org/"}]}});
        (StatusCode::OK, body.to_string())
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/res/v1/web/search", get(search)),
        )
        .await
        .unwrap();
    });
    url
}

/// Runs `/web_search query` and returns what the user sees.
async fn web_search(bot: &Bot, caller: &Caller, query: &str) -> String {
    let handle = bot
        .slash(
            caller,
            SlashCommand::new("web_search").option("query", query),
        )
        .await;
    let deferred = handle.callback(WAIT).await.unwrap();
    assert!(
        deferred.is_deferred() && deferred.is_ephemeral(),
        "{deferred:?}"
    );
    let followups = handle.followups(WAIT, 1).await.unwrap();
    followups[0].content().unwrap().to_owned()
}

async fn usage(vault: &KeyVault, user: u64) -> u64 {
    vault
        .check_default_key_limit(user, "web_search", None)
        .await
        .current
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_stops_at_the_daily_limit_of_a_shared_key() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[("BRAVE_API_BASE_URL", brave), ("DEFAULT_KEY_DAILY_LIMIT", "2".into())],
        )
        .await;
        let shared = secret("shared");
        bot.vault.add_pool_key(Pool::Global, "brave", &shared, ADMIN).await.unwrap();
        for round in 1..=2 {
            let text = web_search(&bot, &alice(), "rust").await;
            assert_eq!(text, format!("• [rust (key {})](<https://example.org/>)", &shared[shared.len() - 4..]));
            assert_eq!(usage(&bot.vault, ALICE).await, round);
        }
        let limited = web_search(&bot, &alice(), "rust").await;
        assert!(
            limited.starts_with("You have used web_search 2 times with the bot's shared Brave Search key, and the daily limit is 2. It resets in "),
            "{limited}"
        );
        assert!(limited.ends_with("To keep going now, add your own key with `/set_user_api_key service:brave` (get one at https://brave.com/search/api/); your own key has no daily limit."));
        assert_eq!(usage(&bot.vault, ALICE).await, 2, "a refused call is not counted");
        // Another user has a limit of their own.
        assert!(web_search(&bot, &bob(), "rust").await.starts_with("• [rust"));
        bot.assert_no_leak(&[&shared]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_never_limits_the_users_own_key() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[
                ("BRAVE_API_BASE_URL", brave),
                ("DEFAULT_KEY_DAILY_LIMIT", "1".into()),
            ],
        )
        .await;
        bot.vault
            .add_pool_key(Pool::Global, "brave", &secret("shared"), ADMIN)
            .await
            .unwrap();
        let own = secret("own");
        bot.vault
            .set_user_api_key(ALICE, "brave", &own)
            .await
            .unwrap();
        for _ in 0..4 {
            let text = web_search(&bot, &alice(), "own").await;
            assert!(
                text.contains(&format!("(key {})", &own[own.len() - 4..])),
                "{text}"
            );
        }
        assert_eq!(usage(&bot.vault, ALICE).await, 0);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_resolves_through_all_five_tiers_in_order() {
    bounded(async {
        let brave = fake_brave().await;
        let env_key = secret("env");
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[
                ("BRAVE_API_BASE_URL", brave),
                ("BRAVE_API_KEY", env_key.clone()),
            ],
        )
        .await;
        let (own, channel, server, global) = (
            secret("own"),
            secret("channel"),
            secret("server"),
            secret("global"),
        );
        bot.vault
            .set_user_api_key(ALICE, "brave", &own)
            .await
            .unwrap();
        let mut tiers = Vec::new();
        for (pool, key) in [
            (Pool::Channel(CHANNEL), &channel),
            (Pool::Guild(GUILD), &server),
            (Pool::Global, &global),
        ] {
            let add = bot.vault.add_pool_key(pool, "brave", key, ADMIN).await;
            tiers.push((pool, add.unwrap().key_id, key));
        }
        let used = |key: &str| format!("(key {})", &key[key.len() - 4..]);

        let text = web_search(&bot, &alice(), "tiers").await;
        assert!(text.contains(&used(&own)), "the user's own key: {text}");
        assert!(bot.vault.remove_user_api_key(ALICE, "brave").await.unwrap());
        for (pool, key_id, key) in &tiers {
            let text = web_search(&bot, &alice(), "tiers").await;
            assert!(text.contains(&used(key)), "{pool} answers next: {text}");
            assert!(
                bot.vault
                    .remove_pool_key(*pool, "brave", key_id)
                    .await
                    .unwrap()
            );
        }
        let text = web_search(&bot, &alice(), "tiers").await;
        assert!(
            text.contains(&used(&env_key)),
            "the environment last: {text}"
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_keys_off_stops_the_fall_through_and_the_message_says_how_to_undo_it() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(Store::SharedRedis, &[("BRAVE_API_BASE_URL", brave)]).await;
        let shared = secret("shared");
        bot.vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &shared, ADMIN)
            .await
            .unwrap();
        let used = format!("(key {})", &shared[shared.len() - 4..]);
        assert!(web_search(&bot, &alice(), "before").await.contains(&used));

        let off = bot
            .answer(
                &alice(),
                SlashCommand::new("shared_keys")
                    .option("use", false)
                    .option("service", "brave"),
            )
            .await;
        assert!(off.is_ephemeral());
        assert_eq!(
            off.content(),
            Some("Shared keys are off for your Brave Search calls: they use only your own Brave Search key. Turn them back on with `/shared_keys use:True service:brave`.")
        );
        let refused = web_search(&bot, &alice(), "after").await;
        assert!(!refused.contains(&used), "{refused}");
        assert!(
            refused.starts_with("You turned shared keys off, so your calls use only your own Brave Search key, and you have none saved."),
            "{refused}"
        );
        assert!(refused.contains("`/shared_keys use:True service:brave`"), "{refused}");
        assert!(
            web_search(&bot, &bob(), "others").await.contains(&used),
            "another user's calls still use shared keys"
        );
        let listed = bot
            .answer(&alice(), SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(
            listed
                .content()
                .unwrap()
                .contains("You turned shared keys off for Brave Search"),
            "{listed:?}"
        );

        let on = bot
            .answer(
                &alice(),
                SlashCommand::new("shared_keys").option("use", true),
            )
            .await;
        assert!(on.content().unwrap().starts_with("Your calls may use shared keys again"));
        assert!(web_search(&bot, &alice(), "again").await.contains(&used));
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_admin_unbenches_a_revoked_key_and_draws_use_it_again() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("server");
        let added = bot
            .vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &key, BOB)
            .await
            .unwrap();
        let drawn = bot
            .vault
            .get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true)
            .await
            .unwrap();
        bot.vault
            .report_key_outcome("brave", &drawn, stargazer_keys::KeyOutcome::from_http_status(402, None))
            .await;
        assert!(
            bot.vault
                .get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true)
                .await
                .is_none(),
            "benched"
        );
        let unbench = || {
            SlashCommand::new("pool server unbench")
                .option("service", "brave")
                .option("key_id", added.key_id.as_str())
        };
        let refused = bot.answer(&alice(), unbench()).await;
        assert_eq!(
            refused.content(),
            Some("You need the Manage Server permission in this server to manage its key pool.")
        );
        let done = bot.answer(&server_manager(), unbench()).await;
        assert_eq!(
            done.content().unwrap(),
            format!(
                "The Brave Search key `{}` of this server's pool is off the bench: draws use it again.",
                added.key_id
            )
        );
        assert!(
            bot.vault
                .get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true)
                .await
                .is_some(),
            "drawn again"
        );
        let again = bot.answer(&server_manager(), unbench()).await;
        assert!(again.content().unwrap().ends_with("was not benched, so nothing changed."));
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_pools_log_shows_who_added_benched_unbenched_and_removed_which_key() {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("logged");
        bot.through_modal(
            &server_manager(),
            SlashCommand::new("pool server add").option("service", "brave"),
            &[&key],
        )
        .await;
        let key_id = bot
            .vault
            .list_pool_keys(Pool::Guild(GUILD), None)
            .await
            .unwrap()[0]
            .key_id
            .clone();
        let drawn = bot
            .vault
            .get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true)
            .await
            .unwrap();
        bot.vault
            .report_key_outcome(
                "brave",
                &drawn,
                stargazer_keys::KeyOutcome::from_http_status(429, Some("60")),
            )
            .await;
        for command in ["pool server unbench", "pool server remove"] {
            bot.answer(
                &server_manager(),
                SlashCommand::new(command)
                    .option("service", "brave")
                    .option("key_id", key_id.as_str()),
            )
            .await;
        }
        let refused = bot
            .answer(&alice(), SlashCommand::new("pool server log"))
            .await;
        assert!(!refused.content().unwrap().contains(key_id.as_str()));
        let log = bot
            .answer(&server_manager(), SlashCommand::new("pool server log"))
            .await;
        let text = log.content().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "What happened in this server's pool, newest first:"
        );
        let line = |what: &str| format!("the Brave Search key `{key_id}` was {what}");
        assert!(
            lines[1].ends_with(&line(&format!("removed by <@{BOB}>"))),
            "{text}"
        );
        assert!(
            lines[2].ends_with(&line(&format!("unbenched by <@{BOB}>"))),
            "{text}"
        );
        assert!(
            lines[3].ends_with(&line("benched (rate-limited by the service (429))")),
            "{text}"
        );
        assert!(
            lines[4].ends_with(&line(&format!("added by <@{BOB}>"))),
            "{text}"
        );
        assert_eq!(lines.len(), 5, "{text}");
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_pools_own_daily_limit_applies_to_calls_that_draw_from_it() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[
                ("BRAVE_API_BASE_URL", brave),
                ("STARGAZER_POOL_DAILY_LIMIT_MAX", "30".into()),
            ],
        )
        .await;
        let key = secret("server");
        bot.vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &key, BOB)
            .await
            .unwrap();
        let limit = |uses: u32| {
            SlashCommand::new("pool server limit")
                .option("service", "brave")
                .option("uses", uses)
        };
        let refused = bot.answer(&alice(), limit(100)).await;
        assert_eq!(
            refused.content(),
            Some("You need the Manage Server permission in this server to manage its key pool.")
        );
        let too_high = bot.answer(&server_manager(), limit(31)).await;
        assert_eq!(
            too_high.content(),
            Some("The limit was not changed: 31 uses a day is above the most this bot allows a pool to set (30, STARGAZER_POOL_DAILY_LIMIT_MAX).")
        );
        let set = bot.answer(&server_manager(), limit(1)).await;
        assert_eq!(
            set.content(),
            Some("Each member may now use the Brave Search keys of this server's pool once a day (every tool together).")
        );

        let first = web_search(&bot, &alice(), "rust").await;
        assert_eq!(first, format!("• [rust (key {})](<https://example.org/>)", &key[key.len() - 4..]));
        let second = web_search(&bot, &alice(), "rust").await;
        assert!(
            second.starts_with("You have used a key of this server's shared Brave Search pool once today, and its admins allow 1 a day for each member. It resets in "),
            "{second}"
        );
        assert!(second.ends_with("add your own key with `/set_user_api_key service:brave` (get one at https://brave.com/search/api/); your own key has no daily limit."), "{second}");
        assert_eq!(usage(&bot.vault, ALICE).await, 0, "the tool's own counter is untouched");
        // Bob's count is his own.
        assert!(web_search(&bot, &bob(), "rust").await.starts_with("• [rust"));

        let view = bot.answer(&alice(), SlashCommand::new("list_user_api_keys")).await;
        let view = view.content().unwrap();
        assert!(view.contains("Your uses today of pools with their own limit:\n• this server's Brave Search pool: 1 of 1, resets in "), "{view}");
        let listed = bot
            .answer(&server_manager(), SlashCommand::new("pool server list"))
            .await;
        assert!(
            listed.content().unwrap().ends_with("Each member may use its Brave Search keys once a day."),
            "{listed:?}"
        );
        bot.assert_no_leak(&[&key]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_user_api_keys_shows_todays_shared_key_uses_and_when_they_reset() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(Store::SharedRedis, &[("BRAVE_API_BASE_URL", brave)]).await;
        bot.vault
            .add_pool_key(Pool::Global, "brave", &secret("shared"), ADMIN)
            .await
            .unwrap();
        for query in ["one", "two"] {
            web_search(&bot, &alice(), query).await;
        }
        let shown = bot
            .answer(&alice(), SlashCommand::new("list_user_api_keys"))
            .await;
        let text = shown.content().unwrap();
        assert!(text.contains("Your shared-key uses today:"), "{text}");
        assert!(
            text.contains("• `web_search`: 2 of 20, resets in "),
            "{text}"
        );
        let bobs = bot
            .answer(&bob(), SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(!bobs.content().unwrap().contains("uses today"), "{bobs:?}");
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_does_not_count_a_failed_call() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(Store::SharedRedis, &[("BRAVE_API_BASE_URL", brave)]).await;
        bot.vault
            .add_pool_key(Pool::Global, "brave", &secret("shared"), ADMIN)
            .await
            .unwrap();
        let failed = web_search(&bot, &alice(), "fail").await;
        assert_eq!(
            failed,
            "Brave Search answered 500 Internal Server Error; please try again later."
        );
        assert_eq!(usage(&bot.vault, ALICE).await, 0);
        web_search(&bot, &alice(), "works").await;
        assert_eq!(usage(&bot.vault, ALICE).await, 1);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_says_how_to_add_a_key_when_there_is_none() {
    bounded(async {
        let bot = Bot::start_with(Store::Embedded, &[]).await;
        let text = web_search(&bot, &alice(), "anything").await;
        assert_eq!(
            text,
            "No Brave Search API key is available to you. You can get one at https://brave.com/search/api/. Add yours with `/set_user_api_key service:brave`: you paste it into a private form, and it works for you in every server."
        );
        bot.stop().await;
    })
    .await;
}

// ---- languages ----------------------------------------------------------------------------

/// A member whose Discord client is in German, in a server whose language is English.
fn german(user_id: u64, name: &str) -> Caller {
    Caller::in_guild(user_id, name, GUILD, CHANNEL).with_locale("de")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_user_reads_the_form_replies_refusals_listing_and_the_tools_messages_in_german() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[
                ("BRAVE_API_BASE_URL", brave),
                ("DEFAULT_KEY_DAILY_LIMIT", "1".into()),
            ],
        )
        .await;
        let anna = german(ALICE, "anna");

        // The command descriptions were registered in German, the names in English.
        let registered = bot.fake.registered_commands();
        let set = registered[0]
            .commands
            .iter()
            .find(|c| c["name"] == "set_user_api_key")
            .expect("set_user_api_key is registered");
        assert_eq!(
            set["description_localizations"]["de"],
            "Speichere deinen eigenen API-Schlüssel für einen Dienst; er gilt für dich überall."
        );
        assert_eq!(
            set["description"],
            "Save your own API key for a service; it works for you in every server and DM."
        );

        // The sibling tool with no key anywhere.
        assert_eq!(
            web_search(&bot, &anna, "rust").await,
            "Für dich ist kein API-Schlüssel für Brave Search verfügbar. Einen bekommst du unter \
             https://brave.com/search/api/. Füge deinen eigenen mit `/set_user_api_key \
             service:brave` hinzu: Du fügst ihn in ein privates Formular ein, und er gilt für \
             dich auf jedem Server."
        );

        // The form, a refused value, then the key.
        let modal = bot.answer(&anna, set_key("brave")).await;
        let shown = modal.modal().expect("the first response is the modal");
        assert_eq!(shown.title, "Dein Schlüssel für Brave Search");
        assert_eq!(shown.inputs[0].label, "API-Schlüssel für Brave Search");
        let refused = bot
            .fake
            .submit_modal(&anna, &modal, &["   "])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(
            refused.content(),
            Some("Der Schlüssel ist leer: Füge den Schlüssel selbst ein.")
        );
        // The answer to a form follows the language its submit carries (the user switched
        // their client to English while the form was open).
        let modal = bot.answer(&anna, set_key("brave")).await;
        let switched = bot
            .fake
            .submit_modal(&anna.clone().with_locale("en-US"), &modal, &["   "])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(
            switched.content(),
            Some("The key is empty: paste the key itself.")
        );
        let key = secret("brave");
        let modal = bot.answer(&anna, set_key("brave")).await;
        let saved = bot
            .fake
            .submit_modal(&anna, &modal, &[&key])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(
            saved.content().unwrap(),
            format!(
                "Dein Schlüssel für Brave Search ({}) ist gespeichert. Er gilt jetzt für dich auf \
                 jedem Server und in DMs; entfernen kannst du ihn mit \
                 `/remove_user_api_key service:brave`.",
                masked(&key)
            )
        );

        // A refusal: the global pool is for bot admins.
        let pool = bot
            .answer(
                &anna,
                SlashCommand::new("pool add").option("service", "brave"),
            )
            .await;
        assert!(!pool.is_modal());
        assert_eq!(
            pool.content(),
            Some(
                "Nur die Admins des Bots können den globalen Pool verwalten. Um einen Schlüssel \
                 in diesem Kanal zu teilen, nutze `/pool channel add` (dafür brauchst du die \
                 Berechtigung „Kanäle verwalten“)."
            )
        );

        // The listing.
        let listed = bot
            .answer(&anna, SlashCommand::new("list_user_api_keys"))
            .await;
        let text = listed.content().unwrap();
        assert!(
            text.starts_with("Deine API-Schlüssel (nur du siehst das):\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "• **Brave Search** (`brave`): `{}` (gespeichert: <t:",
                masked(&key)
            )),
            "{text}"
        );

        // The sibling tool's daily-limit message, for a German member using the shared key.
        let shared = secret("shared");
        bot.vault
            .add_pool_key(Pool::Global, "brave", &shared, ADMIN)
            .await
            .unwrap();
        let bernd = german(BOB, "bernd");
        assert!(
            web_search(&bot, &bernd, "eins")
                .await
                .starts_with("• [eins")
        );
        let limited = web_search(&bot, &bernd, "zwei").await;
        assert!(
            limited.starts_with(
                "Du hast web_search einmal mit dem geteilten Schlüssel des Bots für Brave Search \
                 genutzt, und das Tageslimit ist 1. Der Zähler wird in "
            ),
            "{limited}"
        );
        assert!(
            limited.ends_with(
                "zurückgesetzt. Um jetzt weiterzumachen, füge deinen eigenen Schlüssel mit \
                 `/set_user_api_key service:brave` hinzu (einen bekommst du unter \
                 https://brave.com/search/api/); dein eigener Schlüssel hat kein Tageslimit."
            ),
            "{limited}"
        );

        // A user whose language the bot does not speak reads the server's; the English run of
        // the same command is unchanged.
        let in_german_server = Caller::in_guild(ADMIN, "admin", GUILD, CHANNEL)
            .with_locale("fr")
            .with_guild_locale("de");
        let none = bot
            .answer(&in_german_server, SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(
            none.content().unwrap().starts_with(
                "Du hast keine API-Schlüssel gespeichert. Füge einen mit `/set_user_api_key` hinzu."
            ),
            "{none:?}"
        );
        let english = bot
            .answer(&admin(), SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(
            english
                .content()
                .unwrap()
                .starts_with("You have no API keys saved. Add one with `/set_user_api_key`."),
            "{english:?}"
        );
        bot.assert_no_leak(&[&key, &shared]);
        bot.assert_every_reply_ephemeral();
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_command_benches_a_key_revoked_for_two_users_and_the_pool_list_says_why() {
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(
            Store::SharedRedis,
            &[
                ("BRAVE_API_BASE_URL", brave),
                ("BRAVE_API_KEY", "env-brave-key-00000000".into()),
            ],
        )
        .await;
        let revoked = secret("revoked");
        bot.vault
            .add_pool_key(Pool::Global, "brave", &revoked, ADMIN)
            .await
            .unwrap();
        let key_id = bot.vault.list_pool_keys(Pool::Global, None).await.unwrap()[0]
            .key_id
            .clone();

        let refused = "Brave Search answered 401 Unauthorized; please try again later.";
        assert_eq!(web_search(&bot, &alice(), "rust").await, refused);
        // One user's failures alone never bench a shared key: Alice draws it again.
        assert_eq!(web_search(&bot, &alice(), "rust").await, refused);
        // Another user's call failing too benches it: the next call falls through to the
        // operator's key.
        assert_eq!(web_search(&bot, &bob(), "rust").await, refused);
        let text = web_search(&bot, &alice(), "rust").await;
        assert_eq!(text, "• [rust (key 0000)](<https://example.org/>)");
        assert_eq!(
            resolve(&bot.vault, BOB, "brave")
                .await
                .map(|(source, _)| source),
            Some(KeySource::Env)
        );

        let list = bot.answer(&admin(), SlashCommand::new("pool list")).await;
        let text = list.content().unwrap();
        assert!(
            text.contains(&format!(
                "• **Brave Search** `{key_id}` `{}`, added by <@{ADMIN}> <t:",
                masked(&revoked)
            )),
            "{text}"
        );
        assert!(
            text.contains("; today 3 uses, 3 failed; **benched** until <t:"),
            "{text}"
        );
        assert!(
            text.trim_end()
                .ends_with(":R>): refused by the service as unauthorized or revoked (401/403)"),
            "{text}"
        );
        bot.assert_no_leak(&[&revoked]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributor_gets_one_dm_when_their_key_is_benched_as_revoked_unless_they_turned_it_off()
{
    const CAROL: u64 = 2_100_000_000_000_000_003;
    const DAVE: u64 = 2_100_000_000_000_000_004;
    bounded(async {
        let brave = fake_brave().await;
        let bot = Bot::start_with(Store::SharedRedis, &[("BRAVE_API_BASE_URL", brave)]).await;
        let carol = Caller::in_guild(CAROL, "carol", GUILD, CHANNEL);
        let off = bot
            .answer(&carol, SlashCommand::new("pool_key_dms").option("enabled", false))
            .await;
        assert_eq!(
            off.content(),
            Some("You will no longer get DMs about keys you shared. Turn them back on with `/pool_key_dms enabled:True`.")
        );
        bot.fake.refuse_direct_messages_to(DAVE);
        // Drawn in this order: Carol's (opted out), Dave's (DMs closed), Bob's.
        let (carols, daves, bobs) = (secret("revoked"), secret("revoked"), secret("revoked"));
        for (pool, key, contributor) in [
            (Pool::Channel(CHANNEL), &carols, CAROL),
            (Pool::Guild(GUILD), &daves, DAVE),
            (Pool::Global, &bobs, BOB),
        ] {
            bot.vault.add_pool_key(pool, "brave", key, contributor).await.unwrap();
        }
        let bob_key_id = bot.vault.list_pool_keys(Pool::Global, None).await.unwrap()[0]
            .key_id
            .clone();
        // Two users' failed calls bench a key; three keys, one after the other.
        for _ in 0..3 {
            web_search(&bot, &alice(), "rust").await;
            web_search(&bot, &bob(), "rust").await;
        }
        assert!(
            bot.vault.get_user_api_key_in(Some(ALICE), "brave", Some(CHANNEL), Some(GUILD), true).await.is_none(),
            "every key is benched"
        );

        let dms = bot.fake.wait_direct_messages(BOB, 1, WAIT).await.unwrap();
        let text = dms[0].content().unwrap();
        assert_eq!(
            text,
            format!(
                "The Brave Search key you shared in the bot's global pool (key id `{bob_key_id}`) was benched until <t:{}:f>: refused by the service as unauthorized or revoked (401/403). Calls skip it until then. The service refused it as unauthorized or revoked: check it at the service, or remove it from the pool if you revoked it. Once it works again, whoever manages the pool can put it back with `/pool unbench service:brave key_id:{bob_key_id}`.\nTo stop these messages: `/pool_key_dms enabled:False`.",
                text.split("<t:").nth(1).and_then(|rest| rest.split(':').next()).unwrap()
            )
        );
        // The notices are sent in the order of the benches: by the time Bob's arrived, Carol's
        // was skipped and Dave's tried once, refused, and logged.
        let attempts = bot.fake.direct_message_attempts();
        let to = |user: u64| attempts.iter().filter(|dm| dm.user_id == user).count();
        assert_eq!((to(CAROL), to(DAVE), to(BOB)), (0, 1, 1), "{attempts:?}");
        assert!(!attempts.iter().find(|dm| dm.user_id == DAVE).unwrap().delivered);
        let logs = captured_logs();
        assert!(
            logs.lines().any(|line| line.contains("could not DM a contributor")
                && line.contains(&DAVE.to_string())),
            "the failed DM is logged"
        );
        bot.assert_no_leak(&[&carols, &daves, &bobs]);
        bot.stop().await;
    })
    .await;
}

// ---- logs -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_bots_own_subscriber_with_the_secret_safe_filter_logs_no_modal_key_across_a_sequence_gap()
 {
    bounded(async {
        let bot = Bot::start().await;
        let key = secret("gap");
        let modal = bot.answer(&alice(), set_key("brave")).await;
        assert!(modal.is_modal());
        // The submit arrives after a gap in the gateway's sequence numbers: serenity warns
        // "Sequence off" inside its spans that carry the whole event, the key included.
        bot.fake.skip_sequence_numbers(3);
        let saved = bot
            .fake
            .submit_modal(&alice(), &modal, &[&key])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(
            saved
                .content()
                .unwrap()
                .starts_with("Saved your Brave Search key"),
            "{saved:?}"
        );
        assert_eq!(
            resolve(&bot.vault, ALICE, "brave").await,
            Some((KeySource::User, key.clone()))
        );
        let host = host_logs();
        assert!(
            host.contains("connected to Discord"),
            "the host's subscriber records the bot's logs"
        );
        assert!(!host.contains(&key), "the key is in a host bot's logs");
        bot.assert_no_leak(&[&key]);
        bot.stop().await;
    })
    .await;
}

// ---- faults ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_keeps_answering_while_redis_restarts_and_recovers_without_a_restart() {
    bounded(async {
        let server = RedisServer::start().unwrap();
        let bot = Bot::start_with(Store::PrivateRedis(server), &[]).await;
        let key = secret("before");
        let saved = bot.through_modal(&alice(), set_key("brave"), &[&key]).await;
        assert!(saved.content().unwrap().starts_with("Saved"));

        let mut bot = bot;
        bot.redis.as_mut().unwrap().stop();
        let down = bot
            .answer(&alice(), SlashCommand::new("list_user_api_keys"))
            .await;
        assert!(down.is_ephemeral());
        let text = down.content().unwrap();
        assert!(
            text.starts_with(
                "The key store is unavailable, so nothing was changed: Redis is unreachable"
            ),
            "{text}"
        );
        let refused = bot
            .through_modal(&alice(), set_key("openai"), &[&secret("during")])
            .await;
        assert!(
            refused
                .content()
                .unwrap()
                .starts_with("The key store is unavailable"),
            "{refused:?}"
        );

        bot.redis.as_mut().unwrap().restart().unwrap();
        let mut recovered = None;
        for _ in 0..20 {
            let reply = bot
                .answer(&alice(), SlashCommand::new("list_user_api_keys"))
                .await;
            if !reply
                .content()
                .unwrap()
                .starts_with("The key store is unavailable")
            {
                recovered = Some(reply);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let recovered = recovered.expect("the bot recovers once Redis is back");
        // The restarted server kept nothing (no persistence in this test): an empty list.
        assert!(
            recovered
                .content()
                .unwrap()
                .starts_with("You have no API keys saved.")
        );
        let after = secret("after");
        let saved = bot
            .through_modal(&alice(), set_key("brave"), &[&after])
            .await;
        assert!(saved.content().unwrap().starts_with("Saved"));
        assert_eq!(
            resolve(&bot.vault, ALICE, "brave").await,
            Some((KeySource::User, after.clone()))
        );
        assert_eq!(bot.fake.identify_count(), 1, "the bot was not restarted");
        bot.assert_no_leak(&[&key, &after]);
        bot.stop().await;
    })
    .await;
}

// ---- the binary -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_binary_connects_registers_and_stops_cleanly_on_sigterm() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", fake.token().to_owned()),
                ("DISCORD_HTTP_PROXY", fake.http_url()),
                ("DISCORD_GUILD_ID", GUILD.to_string()),
                ("RUST_LOG", "trace".to_owned()),
            ],
        );
        fake.wait_registered(Duration::from_secs(30))
            .await
            .expect("the binary registers");
        // No master key was configured: the first start made one, readable by its owner only.
        let key_file = dir.path().join("data/master.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let key = secret("binary");
        let modal = fake
            .slash(&alice(), set_key("brave"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        let saved = fake
            .submit_modal(&alice(), &modal, &[&key])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(
            saved
                .content()
                .unwrap()
                .starts_with("Saved your Brave Search key")
        );

        let pid = child.id().unwrap() as i32;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("the bot exits soon after SIGTERM")
            .unwrap();
        assert!(output.status.success(), "exit status {:?}", output.status);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no master key is configured, so a new one was written to"),
            "{stderr}"
        );
        assert!(stderr.contains("shutting down"), "{stderr}");
        assert!(
            !stderr.contains(&key),
            "the secret is in the binary's TRACE logs"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains(&key));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_binary_stops_on_sigterm_while_discord_does_not_answer() {
    bounded(async {
        // A "Discord" that accepts connections and never answers: the bot's first request
        // (the gateway URL) hangs, as it does when Discord is unreachable.
        let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = blackhole.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in blackhole.incoming().flatten() {
                held.push(stream);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", "abc.def.ghi".to_owned()),
                ("DISCORD_HTTP_PROXY", format!("http://{address}")),
                ("RUST_LOG", "info".to_owned()),
            ],
        );
        let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        // Started: the key store is open and the client is asking for the gateway.
        let mut seen = String::new();
        while !dir.path().join("data/master.key").exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        let pid = child.id().unwrap() as i32;
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("the bot exits after SIGTERM although Discord never answered")
            .unwrap();

        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut seen)
            .await
            .unwrap();
        assert!(status.success(), "exit status {status:?}: {seen}");
        assert!(seen.contains("shutting down"), "{seen}");
        assert!(!seen.contains("abc.def.ghi"), "the token is in the logs");
    })
    .await;
}

/// The bot binary, started in `dir` with these settings (and nothing else from the
/// environment but PATH), its output piped.
fn bot_binary(dir: &std::path::Path, env: &[(&str, String)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stargazer-keys"));
    command
        .arg("bot")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_discord_refuses_stops_the_bot_with_exit_code_2_naming_the_setting() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wrong = "d3Jvbmc.wrong.token-of-another-bot";
        let child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", wrong.to_owned()),
                ("DISCORD_HTTP_PROXY", fake.http_url()),
            ],
        );

        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("the bot stops on its own")
            .unwrap();

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("Discord refused the bot token"), "{stderr}");
        assert!(stderr.contains("set DISCORD_TOKEN"), "{stderr}");
        assert!(!stderr.contains(wrong), "the token is printed: {stderr}");
        assert!(
            fake.identify_count() == 0,
            "no gateway connection was tried"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_discord_is_logged_once_with_the_next_try_and_sigterm_still_stops_the_bot() {
    bounded(async {
        // A port nothing listens on: every try is refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let dir = tempfile::tempdir().unwrap();
        let mut child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", "abc.def.ghi".to_owned()),
                ("DISCORD_HTTP_PROXY", format!("http://{address}")),
                ("RUST_LOG", "info".to_owned()),
            ],
        );
        // Long enough for the tries after 1 s and 2 s more.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let pid = child.id().unwrap() as i32;
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
            .await
            .unwrap();
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("the bot exits after SIGTERM")
            .unwrap();

        assert!(status.success(), "exit status {status:?}: {stderr}");
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("cannot reach Discord"))
            .collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(warnings[0].contains("trying again in 1 s"), "{stderr}");
        assert!(!stderr.contains("abc.def.ghi"), "the token is printed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_with_a_configured_master_key_creates_the_default_data_directory() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key: [u8; 32] = rand::random();
        let mut child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", fake.token().to_owned()),
                ("DISCORD_HTTP_PROXY", fake.http_url()),
                ("DISCORD_GUILD_ID", GUILD.to_string()),
                (
                    "STARGAZER_MASTER_KEY",
                    base64::engine::general_purpose::STANDARD.encode(key),
                ),
            ],
        );

        fake.wait_registered(Duration::from_secs(30))
            .await
            .expect("the bot starts and registers");

        let data = dir.path().join("data");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&data).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        assert!(data.join("stargazer-keys.db").exists());
        assert!(
            !data.join("master.key").exists(),
            "the configured key is used, none is made"
        );
        child.start_kill().unwrap();
        let _ = child.wait().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_closed_with_an_unrecoverable_code_stops_the_bot_naming_what_to_fix() {
    bounded(async {
        for (code, names) in [
            (4004, "set DISCORD_TOKEN"),
            (4013, "invalid intents"),
            (4014, "Privileged Gateway Intents"),
        ] {
            let fake = FakeDiscord::start().await.unwrap();
            fake.refuse_identify_with(code);
            let dir = tempfile::tempdir().unwrap();
            let child = bot_binary(
                dir.path(),
                &[
                    ("DISCORD_TOKEN", fake.token().to_owned()),
                    ("DISCORD_HTTP_PROXY", fake.http_url()),
                ],
            );

            let output = tokio::time::timeout(WAIT, child.wait_with_output())
                .await
                .expect("the bot stops on its own")
                .unwrap();

            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{code}: {stderr}");
            assert!(
                stderr.contains(&format!("closed the gateway with {code}")),
                "{stderr}"
            );
            assert!(stderr.contains(names), "{code}: {stderr}");
            assert!(!stderr.contains(fake.token()), "the token is printed");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_for_a_member_who_may_not_manage_the_pool_answers_with_no_choices() {
    bounded(async {
        let bot = Bot::start().await;
        bot.vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        let path = "pool channel remove";

        let refused = bot
            .fake
            .autocomplete(
                &bob(),
                SlashCommand::new(path)
                    .option("service", "brave")
                    .focused("key_id", ""),
            )
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .expect("an answer, not a spinner that fails");
        let allowed = bot
            .fake
            .autocomplete(
                &moderator(),
                SlashCommand::new(path)
                    .option("service", "brave")
                    .focused("key_id", ""),
            )
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();

        assert!(refused.choices().is_empty(), "{:?}", refused.choices());
        assert_eq!(allowed.choices().len(), 1);
        bot.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_binary_serves_metrics_that_count_a_scenario_without_ids_or_keys() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _child = bot_binary(
            dir.path(),
            &[
                ("DISCORD_TOKEN", fake.token().to_owned()),
                ("DISCORD_HTTP_PROXY", fake.http_url()),
                ("DISCORD_GUILD_ID", GUILD.to_string()),
                ("STARGAZER_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ],
        );
        fake.wait_registered(Duration::from_secs(30))
            .await
            .expect("the binary registers");

        // A key saved through the modal, a refused pool command, and a listing.
        let key = secret("metrics");
        let modal = fake
            .slash(&alice(), set_key("brave"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        fake.submit_modal(&alice(), &modal, &[&key])
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        fake.slash(
            &bob(),
            SlashCommand::new("pool add").option("service", "brave"),
        )
        .await
        .unwrap()
        .callback(WAIT)
        .await
        .unwrap();
        fake.slash(&alice(), SlashCommand::new("list_user_api_keys"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();

        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();

        let count = |line: &str| {
            text.lines()
                .find(|l| l.starts_with(line))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(
            count("stargazer_command_invocations_total{command=\"set_user_api_key\"}").as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            count("stargazer_command_refusals_total{command=\"pool add\"}").as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(
            text.contains("stargazer_resolutions_total{source="),
            "{text}"
        );
        assert!(text.contains("stargazer_storage_seconds"), "{text}");
        for private in [ALICE.to_string(), BOB.to_string(), key.clone()] {
            assert!(!text.contains(&private), "{private} is in the metrics");
        }
    })
    .await;
}
