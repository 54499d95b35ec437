//! The storage contract: the same behaviours against Redis (a private redis-server) and the
//! embedded store (the SQLite file).

mod support;

use stargazer_keys::GiteaSource;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{KeyError, KeySource, Pool};
use support::*;

const ALICE: u64 = 111_111_111_111;
const BOB: u64 = 222_222_222_222;
const CHANNEL: u64 = 333_333_333_333;
const OTHER_CHANNEL: u64 = 444_444_444_444;
const ADMIN: u64 = 999;

/// Recognises the error a refused input must give.
type Expected = fn(&KeyError) -> bool;

key_contract!(
    a_user_key_round_trips_and_resolves_as_the_users_own,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let key = secret("brave");
        let info = fx
            .vault
            .set_user_api_key(ALICE, "brave", &format!("  {key}\n"))
            .await
            .unwrap();
        assert_eq!(
            info.masked.as_deref(),
            Some(&key[key.len() - 4..])
                .map(|t| format!("…{t}"))
                .as_deref()
        );

        let resolved = fx
            .vault
            .get_user_api_key(Some(ALICE), "brave", Some(CHANNEL), true)
            .await
            .unwrap();
        assert_eq!(resolved.key.expose(), key);
        assert_eq!(resolved.source(), KeySource::User);

        let listed = fx.vault.list_user_api_keys(ALICE).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].service, "brave");
        assert_eq!(listed[0].display_name, "Brave Search");
        assert_eq!(listed[0].masked, info.masked);
        assert!(listed[0].set_at.is_some());
    }
);

key_contract!(
    resolution_goes_user_then_channel_pool_then_global_pool_then_env,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("BRAVE_API_KEY", "env-brave-key-000000")
            .open()
            .await;
        let (user, channel, global) = (secret("user"), secret("channel"), secret("global"));
        fx.vault
            .set_user_api_key(ALICE, "brave", &user)
            .await
            .unwrap();
        fx.vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &channel, ADMIN)
            .await
            .unwrap();
        let global_add = fx
            .vault
            .add_pool_key(Pool::Global, "brave", &global, ADMIN)
            .await
            .unwrap();

        let resolve = |user: Option<u64>, channel: Option<u64>, pools: bool| {
            let vault = fx.vault.clone();
            async move {
                vault
                    .get_user_api_key(user, "brave", channel, pools)
                    .await
                    .map(|r| (r.source(), r.key.expose().to_owned()))
            }
        };
        assert_eq!(
            resolve(Some(ALICE), Some(CHANNEL), true).await,
            Some((KeySource::User, user.clone()))
        );
        assert_eq!(
            resolve(Some(BOB), Some(CHANNEL), true).await,
            Some((KeySource::ChannelPool, channel.clone()))
        );
        assert_eq!(
            resolve(Some(BOB), Some(OTHER_CHANNEL), true).await,
            Some((KeySource::GlobalPool, global.clone()))
        );
        assert_eq!(
            resolve(None, None, true).await,
            Some((KeySource::GlobalPool, global.clone()))
        );
        assert_eq!(
            resolve(Some(BOB), Some(CHANNEL), false).await,
            Some((KeySource::Env, "env-brave-key-000000".to_owned())),
            "fallback_to_pool=false skips both pools"
        );

        assert!(
            fx.vault
                .remove_pool_key(Pool::Global, "brave", &global_add.key_id)
                .await
                .unwrap()
        );
        assert_eq!(
            resolve(Some(BOB), None, true).await,
            Some((KeySource::Env, "env-brave-key-000000".to_owned()))
        );
        assert!(fx.vault.remove_user_api_key(ALICE, "brave").await.unwrap());
        assert_eq!(
            resolve(Some(ALICE), Some(CHANNEL), true).await,
            Some((KeySource::ChannelPool, channel))
        );
    }
);

key_contract!(
    nothing_resolves_when_no_tier_has_a_key,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        assert!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", Some(CHANNEL), true)
                .await
                .is_none()
        );
    }
);

key_contract!(
    channel_pools_are_isolated_per_channel,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let key = secret("chan");
        fx.vault
            .add_pool_key(Pool::Channel(CHANNEL), "openai", &key, ADMIN)
            .await
            .unwrap();
        assert_eq!(
            fx.vault
                .get_channel_pool_api_key(CHANNEL, "openai")
                .await
                .unwrap()
                .expose(),
            key
        );
        assert!(
            fx.vault
                .get_channel_pool_api_key(OTHER_CHANNEL, "openai")
                .await
                .is_none()
        );
        assert!(fx.vault.get_pool_api_key("openai").await.is_none());
        assert!(
            fx.vault
                .list_pool_keys(Pool::Channel(OTHER_CHANNEL), None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            fx.vault
                .list_pool_keys(Pool::Channel(CHANNEL), None)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

key_contract!(
    a_sealed_value_copied_to_another_user_service_or_pool_never_opens_there,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = fx.vault.layout().clone();
        let store = fx.storage();
        let alice_key = secret("alice");
        fx.vault
            .set_user_api_key(ALICE, "brave", &alice_key)
            .await
            .unwrap();
        // Bob has a data key too, so only the binding can stop the copy.
        fx.vault
            .set_user_api_key(BOB, "openai", &secret("bob"))
            .await
            .unwrap();
        let sealed = store
            .hget(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap()
            .unwrap();

        store
            .hset(&layout.user_keys_key(BOB), "brave", &sealed)
            .await
            .unwrap();
        assert!(
            fx.vault
                .get_user_api_key(Some(BOB), "brave", None, true)
                .await
                .is_none(),
            "another user's hash"
        );
        store
            .hset(&layout.user_keys_key(ALICE), "openai", &sealed)
            .await
            .unwrap();
        assert!(
            fx.vault
                .get_user_api_key(Some(ALICE), "openai", None, true)
                .await
                .is_none(),
            "another service's field"
        );

        let pooled = secret("pooled");
        let added = fx
            .vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &pooled, ADMIN)
            .await
            .unwrap();
        fx.vault
            .add_pool_key(
                Pool::Channel(OTHER_CHANNEL),
                "brave",
                &secret("other"),
                ADMIN,
            )
            .await
            .unwrap();
        let pool_value = store
            .hget(&layout.channel_pool_key(CHANNEL, "brave"), &added.key_id)
            .await
            .unwrap()
            .unwrap();
        store
            .hdel(
                &layout.channel_pool_key(OTHER_CHANNEL, "brave"),
                &fx.vault
                    .list_pool_keys(Pool::Channel(OTHER_CHANNEL), Some("brave"))
                    .await
                    .unwrap()[0]
                    .key_id,
            )
            .await
            .unwrap();
        store
            .hset(
                &layout.channel_pool_key(OTHER_CHANNEL, "brave"),
                &added.key_id,
                &pool_value,
            )
            .await
            .unwrap();
        assert!(
            fx.vault
                .get_channel_pool_api_key(OTHER_CHANNEL, "brave")
                .await
                .is_none(),
            "another channel's pool"
        );
        store
            .hset(&layout.global_pool_key("brave"), &added.key_id, &pool_value)
            .await
            .unwrap();
        assert!(
            fx.vault.get_pool_api_key("brave").await.is_none(),
            "the global pool"
        );
        store
            .hset(
                &layout.channel_pool_key(CHANNEL, "brave"),
                "0123456789ab",
                &pool_value,
            )
            .await
            .unwrap();
        store
            .hdel(&layout.channel_pool_key(CHANNEL, "brave"), &added.key_id)
            .await
            .unwrap();
        assert!(
            fx.vault
                .get_channel_pool_api_key(CHANNEL, "brave")
                .await
                .is_none(),
            "another key id"
        );
    }
);

key_contract!(
    a_tampered_user_value_falls_through_to_the_pools,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = fx.vault.layout().clone();
        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("mine"))
            .await
            .unwrap();
        let global = secret("global");
        fx.vault
            .add_pool_key(Pool::Global, "brave", &global, ADMIN)
            .await
            .unwrap();
        let sealed = fx
            .storage()
            .hget(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap()
            .unwrap();
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        fx.storage()
            .hset(&layout.user_keys_key(ALICE), "brave", &tampered)
            .await
            .unwrap();

        let resolved = fx
            .vault
            .get_user_api_key(Some(ALICE), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(
            (resolved.source(), resolved.key.expose()),
            (KeySource::GlobalPool, global.as_str())
        );
        let listed = fx.vault.list_user_api_keys(ALICE).await.unwrap();
        assert_eq!(
            listed[0].masked, None,
            "a value that does not open lists as unreadable"
        );
    }
);

key_contract!(
    adding_the_same_pool_key_twice_changes_nothing,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let key = secret("dup");
        let first = fx
            .vault
            .add_pool_key(Pool::Global, "openrouter", &key, 7)
            .await
            .unwrap();
        let before = fx.dump().await;
        let second = fx
            .vault
            .add_pool_key(Pool::Global, "openrouter", &key, 8)
            .await
            .unwrap();
        assert!(first.added);
        assert!(!second.added);
        assert_eq!(first.key_id, second.key_id);
        assert_eq!(first.key_id.len(), 12);
        assert!(first.key_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fx.dump().await, before);

        let listed = fx
            .vault
            .list_pool_keys(Pool::Global, Some("openrouter"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_id, first.key_id);
        assert_eq!(listed[0].contributor, Some(7));
        assert_eq!(listed[0].masked.as_deref(), Some(first.masked.as_str()));
        assert!(listed[0].added_at.is_some());
    }
);

key_contract!(
    a_pool_draw_only_returns_entries_that_open,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let good = secret("good");
        fx.vault
            .add_pool_key(Pool::Global, "gemini", &good, 1)
            .await
            .unwrap();
        let pool_key = fx.vault.layout().global_pool_key("gemini");
        for i in 0..5 {
            fx.storage()
                .hset(
                    &pool_key,
                    &format!("deadbeef000{i}"),
                    "v4:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                )
                .await
                .unwrap();
        }
        for _ in 0..10 {
            assert_eq!(
                fx.vault.get_pool_api_key("gemini").await.unwrap().expose(),
                good
            );
        }
    }
);

key_contract!(
    refused_input_writes_nothing_and_keeps_earlier_keys,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let kept = secret("kept");
        fx.vault
            .set_user_api_key(ALICE, "brave", &kept)
            .await
            .unwrap();
        let before = fx.dump().await;
        let long = "x".repeat(4_001);
        let cases: Vec<(&str, &str, Expected)> = vec![
            ("brave", "", |e| matches!(e, KeyError::EmptyKey)),
            ("brave", "  \n\t ", |e| matches!(e, KeyError::EmptyKey)),
            ("brave", "two words", |e| {
                matches!(e, KeyError::KeyHasWhitespace)
            }),
            ("brave", "nul\0byte", |e| {
                matches!(e, KeyError::KeyHasControlCharacters)
            }),
            ("brave", &long, |e| matches!(e, KeyError::KeyTooLong(4_001))),
            ("nosuchservice", "sk-valid-000000000000", |e| {
                matches!(e, KeyError::UnknownService(_))
            }),
            ("bad:name", "sk-valid-000000000000", |e| {
                matches!(e, KeyError::InvalidService(_))
            }),
            ("{x}", "sk-valid-000000000000", |e| {
                matches!(e, KeyError::InvalidService(_))
            }),
            ("ключ", "sk-valid-000000000000", |e| {
                matches!(e, KeyError::InvalidService(_))
            }),
        ];
        for (service, input, expected) in cases {
            let err = fx
                .vault
                .set_user_api_key(ALICE, service, input)
                .await
                .unwrap_err();
            assert!(expected(&err), "{service:?}: unexpected {err:?}");
            let err = fx
                .vault
                .add_pool_key(Pool::Global, service, input, ADMIN)
                .await
                .unwrap_err();
            assert!(expected(&err), "pool {service:?}: unexpected {err:?}");
        }
        assert_eq!(fx.dump().await, before);
        let resolved = fx
            .vault
            .get_user_api_key(Some(ALICE), "brave", None, false)
            .await
            .unwrap();
        assert_eq!(resolved.key.expose(), kept);
    }
);

key_contract!(
    forget_user_erases_every_key_and_its_data_key,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = fx.vault.layout().clone();
        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("a"))
            .await
            .unwrap();
        fx.vault
            .set_user_api_key(ALICE, "openai", &secret("b"))
            .await
            .unwrap();
        let pooled = secret("pooled-by-alice");
        fx.vault
            .add_pool_key(Pool::Global, "brave", &pooled, ALICE)
            .await
            .unwrap();
        let sealed = fx
            .storage()
            .hget(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap()
            .unwrap();

        let forgotten = fx.vault.forget_user(ALICE).await.unwrap();
        assert_eq!(forgotten.keys, 2);
        assert!(forgotten.data_key_destroyed);
        assert_eq!(forgotten.checkpoint, stargazer_keys::Checkpoint::Complete);
        assert!(fx.vault.list_user_api_keys(ALICE).await.unwrap().is_empty());
        assert!(
            fx.vault
                .data_keys()
                .get(&ALICE.to_string())
                .await
                .unwrap()
                .is_none()
        );
        // A copy restored from a backup no longer opens: the data key is gone.
        fx.storage()
            .hset(&layout.user_keys_key(ALICE), "brave", &sealed)
            .await
            .unwrap();
        let resolved = fx
            .vault
            .get_user_api_key(Some(ALICE), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(
            (resolved.source(), resolved.key.expose()),
            (KeySource::GlobalPool, pooled.as_str()),
            "the pool key Alice gave survives"
        );
    }
);

key_contract!(
    no_secret_is_stored_in_clear_in_storage_or_in_the_sqlite_file,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let mut secrets = Vec::new();
        for (i, service) in ["brave", "openai", "anthropic", "gemini"]
            .into_iter()
            .enumerate()
        {
            let (user, pooled, chan) = (secret("u"), secret("g"), secret("c"));
            fx.vault
                .set_user_api_key(ALICE + i as u64, service, &user)
                .await
                .unwrap();
            fx.vault
                .add_pool_key(Pool::Global, service, &pooled, ADMIN)
                .await
                .unwrap();
            fx.vault
                .add_pool_key(Pool::Channel(CHANNEL), service, &chan, ADMIN)
                .await
                .unwrap();
            secrets.extend([user, pooled, chan]);
        }
        fx.vault
            .set_gitea_credentials(BOB, "gitea-token-0123456789", Some("https://gitea.example"))
            .await
            .unwrap();
        secrets.push("gitea-token-0123456789".into());
        let dump = fx.dump().await;
        let layout = fx.vault.layout().clone();
        let sealed: Vec<_> = dump
            .iter()
            .filter(|(key, _, _)| layout.parse_hash_key(key).is_some())
            .collect();
        assert!(sealed.len() >= 13);
        for (_, _, value) in sealed {
            assert!(value.starts_with("v4:"), "a stored value is not sealed");
        }
        let keys = fx.key_store_bytes();
        assert!(!keys.is_empty());
        for secret in &secrets {
            assert!(dump.iter().all(|(k, f, v)| !k.contains(secret)
                && !f.contains(secret)
                && !v.contains(secret)));
            assert!(
                !contains(&keys, secret),
                "a secret is in the key store (SQLite file or pg_dump)"
            );
            // Nor a long piece of it.
            assert!(!contains(&keys, &secret[3..19]));
        }
    }
);

key_contract!(
    gitea_credentials_resolve_through_every_tier,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("gitea_token");
        std::fs::write(&token_file, "file-token-0000000000\n").unwrap();
        let fx = Fixture::builder(backend)
            .env("GITEA_TOKEN_FILE", token_file.to_str().unwrap())
            .env("GITEA_BASE_URL", "https://gitea.internal/")
            .open()
            .await;
        let from_file = fx
            .vault
            .get_gitea_credentials(Some(ALICE), None, true)
            .await
            .unwrap();
        assert_eq!(from_file.token.expose(), "file-token-0000000000");
        assert_eq!(from_file.base_url, "https://gitea.internal");
        assert_eq!(from_file.source, GiteaSource::TokenFile);

        fx.vault
            .add_pool_key(Pool::Global, "gitea", "plain-pool-token-00000", ADMIN)
            .await
            .unwrap();
        let pooled = fx
            .vault
            .get_gitea_credentials(Some(ALICE), None, true)
            .await
            .unwrap();
        assert_eq!(
            (pooled.token.expose(), pooled.base_url.as_str()),
            ("plain-pool-token-00000", "https://gitea.internal")
        );
        assert_eq!(pooled.source, GiteaSource::Key(KeySource::GlobalPool));

        fx.vault
            .set_gitea_credentials(
                ALICE,
                "alice-token-000000000",
                Some("https://git.alice.dev/"),
            )
            .await
            .unwrap();
        let own = fx
            .vault
            .get_gitea_credentials(Some(ALICE), None, true)
            .await
            .unwrap();
        assert_eq!(
            (own.token.expose(), own.base_url.as_str()),
            ("alice-token-000000000", "https://git.alice.dev")
        );
        assert_eq!(own.source, GiteaSource::Key(KeySource::User));
        let listed = fx.vault.list_user_api_keys(ALICE).await.unwrap();
        assert!(listed[0].masked.is_some());

        let err = fx
            .vault
            .set_gitea_credentials(ALICE, "t0ken-000000000000", Some("not a url"))
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::InvalidBaseUrl(_)));
    }
);

key_contract!(
    migrate_rewrites_v2_and_plaintext_values_once,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let master = master_key_b64();
        let dek: [u8; 32] = rand_bytes();
        seed_original_database(
            &dir.path().join("keys.db"),
            &master,
            &[(&ALICE.to_string(), dek)],
        );
        let fx = Fixture::builder(backend).existing(dir, master).open().await;
        if let stargazer_keys::KeyStore::Postgres(pg) = fx.vault.data_keys() {
            // As an operator moving to PostgreSQL does: the original rows copied over.
            let sqlite = stargazer_keys::DataKeyStore::open_unchecked(
                &fx.db_path,
                fx.vault.data_keys().keyring().clone(),
                10,
            )
            .unwrap();
            assert_eq!(
                pg.copy_rows(&sqlite.rows().unwrap()).await.unwrap().copied,
                1
            );
        }
        let layout = fx.vault.layout().clone();
        let (v2_secret, plain_user, plain_pool) =
            (secret("v2"), secret("plainuser"), secret("plainpool"));
        fx.storage()
            .hset(
                &layout.user_keys_key(ALICE),
                "brave",
                &seal_v2(&dek, &v2_secret),
            )
            .await
            .unwrap();
        fx.storage()
            .hset(&layout.user_keys_key(BOB), "openai", &plain_user)
            .await
            .unwrap();
        fx.storage()
            .hset(
                &layout.global_pool_key("brave"),
                "legacyid0001",
                &plain_pool,
            )
            .await
            .unwrap();
        fx.vault
            .set_user_api_key(BOB, "anthropic", &secret("already"))
            .await
            .unwrap();

        // The original bot's values are read as they are.
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", None, false)
                .await
                .unwrap()
                .key
                .expose(),
            v2_secret
        );

        let report = fx.vault.migrate().await.unwrap();
        assert_eq!(report.legacy_data_keys_rewrapped, 1);
        assert!(
            fx.vault
                .data_keys()
                .kek_usage()
                .await
                .unwrap()
                .iter()
                .all(|usage| !usage.kek_id.is_empty()),
            "every data key is now wrapped with its owner bound"
        );
        assert_eq!(
            (
                report.from_v2,
                report.from_plaintext,
                report.already_v4,
                report.unreadable
            ),
            (1, 2, 1, 0)
        );
        for (key, _, value) in fx.dump().await {
            if key == layout.legacy_values_key() {
                assert_eq!(value, "refuse", "migrate leaves its marker");
            } else {
                assert!(value.starts_with("v4:"), "{key}");
            }
        }
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", None, false)
                .await
                .unwrap()
                .key
                .expose(),
            v2_secret
        );
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(BOB), "openai", None, false)
                .await
                .unwrap()
                .key
                .expose(),
            plain_user
        );
        assert_eq!(
            fx.vault.get_pool_api_key("brave").await.unwrap().expose(),
            plain_pool
        );

        let before = fx.dump().await;
        let again = fx.vault.migrate().await.unwrap();
        assert_eq!(
            (again.from_v2, again.from_plaintext, again.already_v4),
            (0, 0, 4)
        );
        assert_eq!(fx.dump().await, before, "a second run changes nothing");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_resolution_falls_back_to_env_and_writes_fail_clearly() {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut server = RedisServer::start().unwrap();
        let fx = Fixture::builder(Backend::Redis)
            .redis_url(server.url())
            .env("BRAVE_API_KEY", "env-fallback-key-0000")
            .open()
            .await;
        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("own"))
            .await
            .unwrap();
        server.stop();

        let started = std::time::Instant::now();
        let resolved = fx
            .vault
            .get_user_api_key(Some(ALICE), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(
            (resolved.source(), resolved.key.expose()),
            (KeySource::Env, "env-fallback-key-0000")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));

        let err = fx
            .vault
            .set_user_api_key(ALICE, "openai", &secret("x"))
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::Storage(_)), "{err:?}");
        assert!(
            err.to_string().starts_with(
                "the key store is unavailable, so nothing was changed: Redis is unreachable"
            ),
            "{err}"
        );

        server.restart().unwrap();
        let mut source = None;
        for _ in 0..30 {
            source = fx
                .vault
                .get_user_api_key(Some(ALICE), "brave", None, true)
                .await
                .map(|r| r.source());
            if source == Some(KeySource::Env) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            break;
        }
        // The restarted server is empty (no persistence): Alice's key is gone with it, but
        // writes and reads work again without reopening the vault.
        let key = secret("again");
        let mut written = false;
        for _ in 0..30 {
            if fx
                .vault
                .set_user_api_key(ALICE, "brave", &key)
                .await
                .is_ok()
            {
                written = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            written,
            "writes work again after Redis restarts (last source {source:?})"
        );
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", None, true)
                .await
                .unwrap()
                .key
                .expose(),
            key
        );
    })
    .await
    .expect("test timed out");
}

key_contract!(
    a_remembered_own_key_removed_or_altered_elsewhere_falls_through_to_the_pools,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = fx.vault.layout().clone();
        let own = secret("own");
        let pooled = secret("pooled");
        fx.vault
            .set_user_api_key(ALICE, "brave", &own)
            .await
            .unwrap();
        fx.vault
            .add_pool_key(Pool::Global, "brave", &pooled, ADMIN)
            .await
            .unwrap();
        let resolve = || {
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", Some(CHANNEL), true)
        };
        // The second resolution takes the short path (the user's field only).
        for _ in 0..2 {
            assert_eq!(resolve().await.unwrap().key.expose(), own);
        }
        // Altered behind the vault's back (another process, a tampering): the pools answer.
        let sealed = fx
            .storage()
            .hget(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap()
            .unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        fx.storage()
            .hset(
                &layout.user_keys_key(ALICE),
                "brave",
                &String::from_utf8(tampered).unwrap(),
            )
            .await
            .unwrap();
        let found = resolve().await.unwrap();
        assert_eq!(
            (found.source(), found.key.expose()),
            (KeySource::GlobalPool, pooled.as_str())
        );
        // Restored, remembered again, then removed elsewhere: the pools answer again.
        fx.storage()
            .hset(&layout.user_keys_key(ALICE), "brave", &sealed)
            .await
            .unwrap();
        assert_eq!(resolve().await.unwrap().source(), KeySource::User);
        assert_eq!(resolve().await.unwrap().source(), KeySource::User);
        fx.storage()
            .hdel(&layout.user_keys_key(ALICE), "brave")
            .await
            .unwrap();
        let found = resolve().await.unwrap();
        assert_eq!(
            (found.source(), found.key.expose()),
            (KeySource::GlobalPool, pooled.as_str())
        );
        // Another user never gets Alice's key through the hint.
        fx.vault
            .set_user_api_key(ALICE, "brave", &own)
            .await
            .unwrap();
        assert_eq!(resolve().await.unwrap().source(), KeySource::User);
        let bob = fx
            .vault
            .get_user_api_key(Some(BOB), "brave", Some(CHANNEL), true)
            .await
            .unwrap();
        assert_eq!(
            (bob.source(), bob.key.expose()),
            (KeySource::GlobalPool, pooled.as_str())
        );
    }
);
