//! The key-use flow of the core (`KeyVault::with_api_key`), on every backend: a shared key's
//! use is counted only when the call succeeds and the limit applies, and the reservation the
//! flow makes alongside the resolution is given back whenever the limit turns out not to apply.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use stargazer_keys::i18n::Locale;
use stargazer_keys::{Caller, KeySource, KeyUseError, KeyVault, Pool};
use support::*;

const USER: u64 = 515_151_515_151;
const ADMIN: u64 = 999;
const CHANNEL: u64 = 777;
const TOOL: &str = "web_search";

fn caller(user_id: u64) -> Caller {
    Caller::new(user_id, Some(CHANNEL), None)
}

/// Runs one call that succeeds, returning the source of the key it was given.
async fn call_ok(vault: &KeyVault, user_id: u64) -> Result<KeySource, KeyUseError<Infallible>> {
    vault
        .with_api_key(&caller(user_id), "brave", TOOL, |key| async move {
            Ok(key.source())
        })
        .await
}

async fn limited(backend: Backend, limit: &str) -> Fixture {
    Fixture::builder(backend)
        .env("DEFAULT_KEY_DAILY_LIMIT", limit)
        .open()
        .await
}

contract!(
    a_shared_key_counts_each_successful_call_up_to_the_limit_and_then_refuses_without_calling,
    |backend| async move {
        let fx = limited(backend, "2").await;
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        let calls = AtomicUsize::new(0);

        for expected in 1..=2 {
            assert_eq!(
                call_ok(&fx.vault, USER).await.unwrap(),
                KeySource::GlobalPool
            );
            assert_eq!(tool_uses(&fx.vault, USER, TOOL).await, expected);
        }
        let refused = fx
            .vault
            .with_api_key(&caller(USER), "brave", TOOL, |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            })
            .await
            .unwrap_err();

        assert!(matches!(refused, KeyUseError::LimitReached(_)), "{refused}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the call did not run");
        assert_eq!(tool_uses(&fx.vault, USER, TOOL).await, 2);
    }
);

contract!(
    the_users_own_key_is_never_counted_not_even_on_the_first_call,
    |backend| async move {
        let fx = limited(backend, "1").await;
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        fx.vault
            .set_user_api_key(USER, "brave", &secret("own"))
            .await
            .unwrap();
        // A fresh process: it does not know yet that the user has a key of their own.
        let vault = fx.second_vault().await;

        for _ in 0..3 {
            assert_eq!(call_ok(&vault, USER).await.unwrap(), KeySource::User);
        }

        assert_eq!(tool_uses(&vault, USER, TOOL).await, 0);
    }
);

contract!(
    a_call_with_no_key_anywhere_counts_nothing,
    |backend| async move {
        let fx = limited(backend, "1").await;

        let err = call_ok(&fx.vault, USER).await.unwrap_err();

        assert!(matches!(err, KeyUseError::MissingKey(_)), "{err}");
        assert_eq!(tool_uses(&fx.vault, USER, TOOL).await, 0);
        // The one use of the day is still there for a key added later.
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        assert_eq!(
            call_ok(&fx.vault, USER).await.unwrap(),
            KeySource::GlobalPool
        );
    }
);

contract!(
    a_user_with_the_bypass_privilege_uses_a_shared_key_uncounted,
    |backend| async move {
        let fx = limited(backend, "1").await;
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        let bypass = 1u64 << stargazer_keys::BYPASS_RATELIMIT_BIT;
        fx.storage()
            .set(&fx.vault.layout().privileges_key(USER), &bypass.to_string())
            .await
            .unwrap();

        for _ in 0..3 {
            assert_eq!(
                call_ok(&fx.vault, USER).await.unwrap(),
                KeySource::GlobalPool
            );
        }

        assert_eq!(tool_uses(&fx.vault, USER, TOOL).await, 0);
    }
);

contract!(
    a_failed_call_with_a_shared_key_gives_its_use_back,
    |backend| async move {
        let fx = limited(backend, "1").await;
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();

        let failed = fx
            .vault
            .with_api_key(&caller(USER), "brave", TOOL, |_| async {
                Err::<(), _>("the service answered 500")
            })
            .await
            .unwrap_err();

        assert!(matches!(failed, KeyUseError::Call(_)));
        assert_eq!(tool_uses(&fx.vault, USER, TOOL).await, 0);
        assert_eq!(
            call_ok(&fx.vault, USER).await.unwrap(),
            KeySource::GlobalPool
        );
    }
);

contract!(
    a_german_caller_reads_the_missing_key_and_limit_messages_in_german_and_an_operator_can_reword_them,
    |backend| async move {
        let overrides = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(overrides.path().join("de")).unwrap();
        std::fs::write(
            overrides.path().join("de/bot.ftl"),
            "limit-own-key-signup = Hol dir deinen eigenen: { $url } (`/set_user_api_key service:{ $id }`).\n",
        )
        .unwrap();
        let fx = Fixture::builder(backend)
            .env("DEFAULT_KEY_DAILY_LIMIT", "1")
            .env("STARGAZER_LOCALES_DIR", overrides.path().to_str().unwrap())
            .open()
            .await;
        // The user's language first; a server in English does not change it.
        let german = caller(USER).with_locale(Locale::discord(Some("de"), Some("en-US")));
        let call = |caller: Caller| {
            let vault = fx.vault.clone();
            async move {
                vault
                    .with_api_key(&caller, "brave", TOOL, |_| async { Ok::<_, Infallible>(()) })
                    .await
            }
        };

        let missing = call(german.clone()).await.unwrap_err();
        assert_eq!(
            missing.to_string(),
            "Für dich ist kein API-Schlüssel für Brave Search verfügbar. Einen bekommst du unter \
             https://brave.com/search/api/. Füge deinen eigenen mit `/set_user_api_key \
             service:brave` hinzu: Du fügst ihn in ein privates Formular ein, und er gilt für \
             dich auf jedem Server."
        );

        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap();
        call(german.clone()).await.unwrap();
        let limit = call(german.clone()).await.unwrap_err();
        let text = limit.to_string();
        assert!(matches!(limit, KeyUseError::LimitReached(_)), "{text}");
        assert!(
            text.starts_with(
                "Du hast web_search einmal mit dem geteilten Schlüssel des Bots für Brave Search \
                 genutzt, und das Tageslimit ist 1. Der Zähler wird in "
            ),
            "{text}"
        );
        assert!(text.contains(" zurückgesetzt. "), "{text}");
        // The operator's sentence replaced the shipped one.
        assert!(
            text.ends_with(
                "Hol dir deinen eigenen: https://brave.com/search/api/ (`/set_user_api_key service:brave`)."
            ),
            "{text}"
        );

        // A user whose language the bot does not speak, in a German server, reads German; one
        // in a DM reads English.
        let french_in_german_server =
            caller(USER).with_locale(Locale::discord(Some("fr"), Some("de")));
        assert!(call(french_in_german_server).await.unwrap_err().to_string().starts_with("Du hast"));
        let french_alone = caller(USER).with_locale(Locale::discord(Some("fr"), None));
        assert!(
            call(french_alone)
                .await
                .unwrap_err()
                .to_string()
                .starts_with("You have used web_search once with the bot's shared Brave Search key")
        );
    }
);
