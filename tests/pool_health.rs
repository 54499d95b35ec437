//! Pool key health: benches of rate-limited and revoked pool keys, per-key daily counters, and
//! checking keys with their service on save, against a real redis-server (and the cluster and
//! the embedded store where the behaviour is the storage's).

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stargazer_keys::KeyUsage;
use stargazer_keys::{
    BenchReason, KeyCheck, KeyError, KeyOrigin, KeyOutcome, KeySource, Pool, PoolKeyRef,
    ResolvedKey,
};
use support::*;

const ALICE: u64 = 111_111_111_111;
const CHANNEL: u64 = 333_333_333_333;
const ADMIN: u64 = 999;
const ENV_KEY: &str = "env-brave-key-000000";

/// Resolves Alice's brave key in CHANNEL, as a sibling tool would.
async fn draw(fx: &Fixture) -> Option<ResolvedKey> {
    fx.vault
        .get_user_api_key(Some(ALICE), "brave", Some(CHANNEL), true)
        .await
}

/// Draws `times` times and returns every (source, key) seen.
async fn draws(fx: &Fixture, times: usize) -> Vec<(KeySource, String)> {
    let mut seen = Vec::new();
    for _ in 0..times {
        let found = draw(fx).await.expect("a key resolves");
        seen.push((found.source(), found.key.expose().to_owned()));
    }
    seen
}

/// Adds `secret` to `pool` and returns the resolved form a caller would hold for it.
/// The key id of a key drawn from a pool.
fn pool_key_id(key: &ResolvedKey) -> String {
    key.pool_key().expect("a pool key").key_id.to_string()
}

async fn pooled(fx: &Fixture, pool: Pool, secret: &str) -> ResolvedKey {
    let added = fx
        .vault
        .add_pool_key(pool, "brave", secret, ADMIN)
        .await
        .unwrap();
    ResolvedKey {
        key: stargazer_keys::ApiKey::new(secret),
        origin: KeyOrigin::Pool(PoolKeyRef {
            pool,
            key_id: added.key_id,
        }),
    }
}

contract!(
    a_rate_limited_key_is_not_drawn_until_its_retry_after_has_passed_then_is_again,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let (limited, other) = (secret("limited"), secret("other"));
        let limited_key = pooled(&fx, Pool::Global, &limited).await;
        pooled(&fx, Pool::Global, &other).await;

        fx.vault
            .report_key_outcome(
                "brave",
                &limited_key,
                KeyOutcome::RateLimited {
                    retry_after: Some(Duration::from_secs(2)),
                },
            )
            .await;
        for (source, key) in draws(&fx, 20).await {
            assert_eq!(source, KeySource::GlobalPool);
            assert_eq!(key, other, "the benched key was drawn");
        }
        let listed = fx
            .vault
            .list_pool_keys(Pool::Global, Some("brave"))
            .await
            .unwrap();
        let benched = listed
            .iter()
            .find(|k| k.key_id == pool_key_id(&limited_key));
        let bench = benched.unwrap().bench.expect("listed as benched");
        assert_eq!(bench.reason, BenchReason::RateLimited);

        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let seen = draws(&fx, 30).await;
        assert!(
            seen.iter().any(|(_, key)| *key == limited),
            "the key is drawn again once its bench has passed"
        );
        assert!(
            fx.vault
                .pool_key_benches(Pool::Global, "brave")
                .await
                .unwrap()
                .is_empty()
        );
    }
);

contract!(
    a_revoked_key_is_not_drawn_and_the_listing_says_why,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let (revoked, good) = (secret("revoked"), secret("good"));
        let pool = Pool::Channel(CHANNEL);
        let revoked_key = pooled(&fx, pool, &revoked).await;
        pooled(&fx, pool, &good).await;

        fx.vault
            .report_key_outcome("brave", &revoked_key, KeyOutcome::Unauthorized)
            .await;
        for (source, key) in draws(&fx, 20).await {
            assert_eq!(
                (source, key.as_str()),
                (KeySource::ChannelPool, good.as_str())
            );
        }
        let listed = fx.vault.list_pool_keys(pool, None).await.unwrap();
        assert_eq!(listed.len(), 2);
        let entry = listed
            .iter()
            .find(|k| k.key_id == pool_key_id(&revoked_key))
            .unwrap();
        let bench = entry.bench.expect("the revoked key is listed as benched");
        assert_eq!(bench.reason, BenchReason::Unauthorized);
        assert_eq!(
            bench.reason.describe(),
            "refused by the service as unauthorized or revoked (401/403)"
        );
        let left = bench.until - time::OffsetDateTime::now_utc();
        assert!(
            left > time::Duration::hours(23) && left <= time::Duration::hours(24),
            "benched for STARGAZER_POOL_BENCH_SECS (a day): {left}"
        );
        assert!(
            listed
                .iter()
                .filter(|k| k.key_id != pool_key_id(&revoked_key))
                .all(|k| k.bench.is_none())
        );
    }
);

contract!(
    with_every_pooled_key_benched_resolution_falls_through_to_the_next_tier,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("BRAVE_API_KEY", ENV_KEY)
            .open()
            .await;
        let channel_key = pooled(&fx, Pool::Channel(CHANNEL), &secret("channel")).await;
        let global = secret("global");
        let global_key = pooled(&fx, Pool::Global, &global).await;

        fx.vault
            .report_key_outcome("brave", &channel_key, KeyOutcome::QuotaExhausted)
            .await;
        let found = draw(&fx).await.unwrap();
        assert_eq!(
            (found.source(), found.key.expose()),
            (KeySource::GlobalPool, global.as_str())
        );
        assert_eq!(found.pool_key().map(|p| p.pool), Some(Pool::Global));

        fx.vault
            .report_key_outcome(
                "brave",
                &global_key,
                KeyOutcome::RateLimited { retry_after: None },
            )
            .await;
        let found = draw(&fx).await.unwrap();
        assert_eq!(
            (found.source(), found.key.expose()),
            (KeySource::Env, ENV_KEY)
        );
        assert!(fx.vault.get_pool_api_key("brave").await.is_none());
        assert!(
            fx.vault
                .get_channel_pool_api_key(CHANNEL, "brave")
                .await
                .is_none()
        );
    }
);

contract!(
    counters_per_key_match_the_outcomes_reported,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let first = pooled(&fx, Pool::Global, &secret("first")).await;
        let second = pooled(&fx, Pool::Global, &secret("second")).await;
        let outcomes = [
            (&first, KeyOutcome::Success),
            (&first, KeyOutcome::Success),
            (&first, KeyOutcome::Success),
            (&first, KeyOutcome::Inconclusive),
            (
                &first,
                KeyOutcome::RateLimited {
                    retry_after: Some(Duration::from_secs(1)),
                },
            ),
            (&second, KeyOutcome::Unauthorized),
            (&second, KeyOutcome::Unauthorized),
        ];
        for (key, outcome) in outcomes {
            fx.vault.report_key_outcome("brave", key, outcome).await;
        }
        let usage = fx
            .vault
            .pool_key_usage_today(Pool::Global, "brave")
            .await
            .unwrap();
        let id = pool_key_id;
        assert_eq!(
            usage[&id(&first)],
            KeyUsage {
                uses: 5,
                failures: 1
            }
        );
        assert_eq!(
            usage[&id(&second)],
            KeyUsage {
                uses: 2,
                failures: 2
            }
        );
        let listed = fx
            .vault
            .list_pool_keys(Pool::Global, Some("brave"))
            .await
            .unwrap();
        for key in listed {
            let expected = usage[key.key_id.as_str()];
            assert_eq!(
                (key.uses_today, key.failures_today),
                (expected.uses, expected.failures)
            );
        }
    }
);

contract!(
    outcomes_of_own_and_environment_keys_change_nothing,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("BRAVE_API_KEY", ENV_KEY)
            .open()
            .await;
        let env_key = draw(&fx).await.unwrap();
        assert_eq!(env_key.source(), KeySource::Env);
        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("own"))
            .await
            .unwrap();
        let own = draw(&fx).await.unwrap();
        assert_eq!(own.source(), KeySource::User);
        let before = fx.dump().await;
        for key in [&env_key, &own] {
            fx.vault
                .report_key_outcome("brave", key, KeyOutcome::Unauthorized)
                .await;
        }
        assert_eq!(fx.dump().await, before, "nothing was counted or benched");
        assert_eq!(draw(&fx).await.unwrap().source(), KeySource::User);
    }
);

contract!(
    a_shorter_bench_never_shortens_a_longer_one_and_removal_clears_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let key = pooled(&fx, Pool::Global, &secret("key")).await;
        fx.vault
            .report_key_outcome("brave", &key, KeyOutcome::Unauthorized)
            .await;
        fx.vault
            .report_key_outcome(
                "brave",
                &key,
                KeyOutcome::RateLimited {
                    retry_after: Some(Duration::from_secs(1)),
                },
            )
            .await;
        let benches = fx
            .vault
            .pool_key_benches(Pool::Global, "brave")
            .await
            .unwrap();
        assert_eq!(
            benches[&pool_key_id(&key)].reason,
            BenchReason::Unauthorized
        );

        let key_id = pool_key_id(&key);
        assert!(
            fx.vault
                .remove_pool_key(Pool::Global, "brave", &key_id)
                .await
                .unwrap()
        );
        assert!(
            fx.vault
                .pool_key_benches(Pool::Global, "brave")
                .await
                .unwrap()
                .is_empty()
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_benches_and_counters_expire_under_the_prefix() {
    let fx = Fixture::new(Backend::Redis).await;
    let key = pooled(&fx, Pool::Global, &secret("key")).await;
    fx.vault
        .report_key_outcome(
            "brave",
            &key,
            KeyOutcome::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            },
        )
        .await;
    let layout = fx.vault.layout();
    let bench_key = layout.global_pool_bench_key("brave");
    let usage_key = layout.global_pool_usage_key("brave", time::OffsetDateTime::now_utc().date());
    assert!(bench_key.starts_with(&format!("{}:", fx.prefix)));
    let bench_ttl = fx.storage().ttl(&bench_key).await.unwrap().unwrap();
    assert!((28..=30).contains(&bench_ttl), "{bench_ttl}");
    let usage_ttl = fx.storage().ttl(&usage_key).await.unwrap().unwrap();
    assert!((172_790..=172_800).contains(&usage_ttl), "{usage_ttl}");
}

// ---- checking keys on save -------------------------------------------------------------------

/// A fake service on 127.0.0.1: answers every request with `response` (or never answers, when
/// it is `None`) and records each request's head.
struct FakeService {
    origin: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeService {
    fn start(response: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    match response {
                        Some(response) => {
                            let _ = stream.write_all(response.as_bytes());
                        }
                        None => std::thread::sleep(Duration::from_secs(5)),
                    }
                });
            }
        });
        Self { origin, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

const UNAUTHORIZED: &str =
    "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
const TOO_MANY: &str =
    "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

async fn checking_fixture(service: &FakeService) -> Fixture {
    Fixture::builder(Backend::Redis)
        .env("STARGAZER_VALIDATE_KEYS", "true")
        .env("STARGAZER_VALIDATE_TIMEOUT_MS", "300")
        .env("STARGAZER_VALIDATE_BASE_URL_OPENAI", &service.origin)
        .env("STARGAZER_VALIDATE_BASE_URL_BRAVE", &service.origin)
        .open()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_service_refuses_with_401_is_not_stored() {
    let service = FakeService::start(Some(UNAUTHORIZED));
    let fx = checking_fixture(&service).await;
    let key = secret("refused");

    let refused = fx
        .vault
        .set_user_api_key(ALICE, "openai", &key)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, KeyError::KeyRejected { service, status } if service == "OpenAI" && status == "401 Unauthorized"),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "OpenAI refused this key (401 Unauthorized), so it was not saved: check that you copied all of it and that it has not been revoked"
    );
    let pool_refused = fx
        .vault
        .add_pool_key(Pool::Global, "openai", &key, ADMIN)
        .await;
    assert!(matches!(pool_refused, Err(KeyError::KeyRejected { .. })));

    assert!(fx.vault.list_user_api_keys(ALICE).await.unwrap().is_empty());
    assert!(
        fx.vault
            .list_pool_keys(Pool::Global, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(fx.dump().await.is_empty(), "nothing was stored");
    // The key went to the configured API only, as OpenAI expects it.
    let requests = service.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert!(
            request.starts_with("GET /v1/models HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_lowercase()
                .contains(&format!("authorization: bearer {key}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_check_times_out_is_saved_with_a_note() {
    let service = FakeService::start(None);
    let fx = checking_fixture(&service).await;
    let key = secret("slow");
    let saved = fx
        .vault
        .set_user_api_key(ALICE, "brave", &key)
        .await
        .unwrap();
    assert_eq!(
        saved.check,
        KeyCheck::Unverified("it did not answer within 0.3 s".to_owned())
    );
    assert_eq!(
        saved.check.note("Brave Search").unwrap(),
        "It could not be checked with Brave Search (it did not answer within 0.3 s), so it was saved unchecked."
    );
    assert_eq!(draw(&fx).await.unwrap().key.expose(), key);
    let request = &service.requests()[0];
    assert!(
        request.starts_with("GET /res/v1/web/search?q=test&count=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_lowercase()
            .contains(&format!("x-subscription-token: {key}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_check_saves_the_key_with_a_note_and_a_good_key_is_confirmed() {
    let limited = FakeService::start(Some(TOO_MANY));
    let fx = checking_fixture(&limited).await;
    let added = fx
        .vault
        .add_pool_key(Pool::Global, "openai", &secret("pooled"), ADMIN)
        .await
        .unwrap();
    assert!(added.added);
    assert_eq!(
        added.check,
        KeyCheck::Unverified("it answered 429 Too Many Requests".to_owned())
    );

    let fine = FakeService::start(Some(OK));
    let fx = checking_fixture(&fine).await;
    let saved = fx
        .vault
        .set_user_api_key(ALICE, "openai", &secret("fine"))
        .await
        .unwrap();
    assert_eq!(saved.check, KeyCheck::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_not_checked_unless_the_setting_is_on() {
    let service = FakeService::start(Some(UNAUTHORIZED));
    let fx = Fixture::builder(Backend::Redis)
        .env("STARGAZER_VALIDATE_BASE_URL_OPENAI", &service.origin)
        .open()
        .await;
    let saved = fx
        .vault
        .set_user_api_key(ALICE, "openai", &secret("unchecked"))
        .await
        .unwrap();
    assert_eq!(saved.check, KeyCheck::NotChecked);
    assert!(service.requests().is_empty());
}
