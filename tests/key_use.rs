//! The key-use flow of the core (`KeyVault::with_api_key`), on every backend: a shared key's
//! use is counted only when the call succeeds and the limit applies, and the reservation the
//! flow makes alongside the resolution is given back whenever the limit turns out not to apply.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use stargazer_keys::{Caller, KeySource, KeyUseError, KeyVault, Pool};
use support::*;

const USER: u64 = 515_151_515_151;
const ADMIN: u64 = 999;
const CHANNEL: u64 = 777;
const TOOL: &str = "web_search";

fn caller(user_id: u64) -> Caller {
    Caller {
        user_id,
        channel_id: Some(CHANNEL),
        guild_id: None,
    }
}

/// Runs one call that succeeds, returning the source of the key it was given.
async fn call_ok(vault: &KeyVault, user_id: u64) -> Result<KeySource, KeyUseError<Infallible>> {
    vault
        .with_api_key(&caller(user_id), "brave", TOOL, |key| async move {
            Ok(key.source())
        })
        .await
}

/// Today's shared-key uses of `TOOL` by the user.
async fn uses(vault: &KeyVault, user_id: u64) -> u64 {
    vault
        .default_key_usage(user_id, Some(TOOL))
        .await
        .unwrap()
        .first()
        .map_or(0, |usage| usage.count)
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
            assert_eq!(uses(&fx.vault, USER).await, expected);
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
        assert_eq!(uses(&fx.vault, USER).await, 2);
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

        assert_eq!(uses(&vault, USER).await, 0);
    }
);

contract!(
    a_call_with_no_key_anywhere_counts_nothing,
    |backend| async move {
        let fx = limited(backend, "1").await;

        let err = call_ok(&fx.vault, USER).await.unwrap_err();

        assert!(matches!(err, KeyUseError::MissingKey(_)), "{err}");
        assert_eq!(uses(&fx.vault, USER).await, 0);
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

        assert_eq!(uses(&fx.vault, USER).await, 0);
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
        assert_eq!(uses(&fx.vault, USER).await, 0);
        assert_eq!(
            call_ok(&fx.vault, USER).await.unwrap(),
            KeySource::GlobalPool
        );
    }
);
