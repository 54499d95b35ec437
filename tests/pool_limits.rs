//! A pool's own daily limit per user, on every storage backend: a call that draws from a pool
//! with a limit counts against that pool's counter (not the tool's), within the operator's
//! maximum; a pool without one keeps the tools' limit and counter.

mod support;

use std::convert::Infallible;

use stargazer_keys::{Caller, KeyError, KeySource, KeyUseError, KeyVault, Pool};
use support::*;

const ALICE: u64 = 121_212_121_212;
const BOB: u64 = 343_434_343_434;
const ADMIN: u64 = 999;
const CHANNEL: u64 = 777;
const GUILD: u64 = 888;
const OTHER_GUILD: u64 = 889;
const TOOL: &str = "web_search";

fn in_guild(user_id: u64, guild: u64) -> Caller {
    Caller::new(user_id, Some(CHANNEL), Some(guild))
}

/// One successful call with `tool`: the source of the key it was given, or why it did not run.
async fn call(vault: &KeyVault, caller: Caller, tool: &str) -> Result<KeySource, String> {
    vault
        .with_api_key(&caller, "brave", tool, |key| async move {
            Ok::<_, Infallible>(key.source())
        })
        .await
        .map_err(|err| match err {
            KeyUseError::LimitReached(text) => format!("limit: {text}"),
            other => format!("other: {other}"),
        })
}

/// Today's uses of `pool`'s keys by the user, as the usage view lists them.
async fn pool_uses(vault: &KeyVault, user_id: u64, pool: Pool) -> u64 {
    vault
        .pool_key_usage(user_id)
        .await
        .unwrap()
        .into_iter()
        .find(|usage| usage.pool == pool && usage.service.as_str() == "brave")
        .map_or(0, |usage| usage.count)
}

async fn with_pools(backend: Backend, vars: &[(&str, &str)]) -> Fixture {
    let mut builder = Fixture::builder(backend).env("DEFAULT_KEY_DAILY_LIMIT", "10");
    for (name, value) in vars {
        builder = builder.env(name, value);
    }
    let fx = builder.open().await;
    for pool in [Pool::Guild(GUILD), Pool::Global] {
        fx.vault
            .add_pool_key(pool, "brave", &secret(&format!("{pool:?}")), ADMIN)
            .await
            .unwrap();
    }
    fx
}

contract!(
    a_server_pools_limit_counts_its_own_uses_and_leaves_the_tools_counter_alone,
    |backend| async move {
        let fx = with_pools(backend, &[("STARGAZER_POOL_DAILY_LIMIT_MAX", "50")]).await;
        fx.vault
            .set_pool_daily_limit(Pool::Guild(GUILD), "brave", Some(2))
            .await
            .unwrap();
        assert_eq!(
            fx.vault
                .pool_daily_limit(Pool::Guild(GUILD), "brave")
                .await
                .unwrap(),
            Some(2)
        );

        // Two tools, one pool: its limit is for every tool together.
        assert_eq!(
            call(&fx.vault, in_guild(ALICE, GUILD), TOOL).await,
            Ok(KeySource::GuildPool)
        );
        assert_eq!(
            call(&fx.vault, in_guild(ALICE, GUILD), "image_search").await,
            Ok(KeySource::GuildPool)
        );
        let refused = call(&fx.vault, in_guild(ALICE, GUILD), TOOL)
            .await
            .unwrap_err();
        assert!(refused.starts_with("limit: "), "{refused}");
        assert!(
            refused.contains("this server's shared Brave Search pool 2 times today")
                && refused.contains("allow 2 a day for each member"),
            "the message names the pool and its limit: {refused}"
        );
        assert_eq!(pool_uses(&fx.vault, ALICE, Pool::Guild(GUILD)).await, 2);
        assert_eq!(
            tool_uses(&fx.vault, ALICE, TOOL).await,
            0,
            "the speculative reservation on the tool's counter was given back"
        );

        // Elsewhere the global pool and the tool's limit still serve Alice; Bob has his own
        // count in the server.
        assert_eq!(
            call(&fx.vault, in_guild(ALICE, OTHER_GUILD), TOOL).await,
            Ok(KeySource::GlobalPool)
        );
        assert_eq!(tool_uses(&fx.vault, ALICE, TOOL).await, 1);
        assert_eq!(
            call(&fx.vault, in_guild(BOB, GUILD), TOOL).await,
            Ok(KeySource::GuildPool)
        );
    }
);

contract!(
    a_limit_above_the_operators_maximum_is_refused_and_a_cleared_one_gives_back_the_tools_limit,
    |backend| async move {
        let fx = with_pools(backend, &[("STARGAZER_POOL_DAILY_LIMIT_MAX", "3")]).await;
        let pool = Pool::Guild(GUILD);
        fx.vault
            .set_pool_daily_limit(pool, "brave", Some(3))
            .await
            .unwrap();

        let err = fx
            .vault
            .set_pool_daily_limit(pool, "brave", Some(4))
            .await
            .unwrap_err();
        assert!(
            matches!(err, KeyError::PoolLimitTooHigh { limit: 4, max: 3 }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("STARGAZER_POOL_DAILY_LIMIT_MAX"),
            "{err}"
        );
        assert_eq!(
            fx.vault.pool_daily_limit(pool, "brave").await.unwrap(),
            Some(3),
            "a refused limit leaves the earlier one"
        );

        // Cleared, the tool's limit and counter apply again.
        fx.vault
            .set_pool_daily_limit(pool, "brave", None)
            .await
            .unwrap();
        assert_eq!(
            fx.vault.pool_daily_limit(pool, "brave").await.unwrap(),
            None
        );
        assert_eq!(
            call(&fx.vault, in_guild(ALICE, GUILD), TOOL).await,
            Ok(KeySource::GuildPool)
        );
        assert_eq!(tool_uses(&fx.vault, ALICE, TOOL).await, 1);
        assert_eq!(pool_uses(&fx.vault, ALICE, pool).await, 0);
    }
);

contract!(
    a_limit_of_zero_refuses_every_call_of_the_pool_but_never_an_own_key,
    |backend| async move {
        let fx = with_pools(backend, &[]).await;
        let pool = Pool::Guild(GUILD);
        fx.vault
            .set_pool_daily_limit(pool, "brave", Some(0))
            .await
            .unwrap();
        let refused = call(&fx.vault, in_guild(ALICE, GUILD), TOOL)
            .await
            .unwrap_err();
        assert!(
            refused.contains("not open to members") && refused.contains("daily limit to 0"),
            "{refused}"
        );

        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("alice-own"))
            .await
            .unwrap();
        assert_eq!(
            call(&fx.vault, in_guild(ALICE, GUILD), TOOL).await,
            Ok(KeySource::User)
        );
        assert_eq!(pool_uses(&fx.vault, ALICE, pool).await, 0);
    }
);

contract!(
    lowering_the_operators_maximum_caps_a_limit_set_before,
    |backend| async move {
        let fx = with_pools(backend, &[("STARGAZER_POOL_DAILY_LIMIT_MAX", "50")]).await;
        fx.vault
            .set_pool_daily_limit(Pool::Guild(GUILD), "brave", Some(40))
            .await
            .unwrap();
        let lowered = fx
            .reopen_with(&[("STARGAZER_POOL_DAILY_LIMIT_MAX", "1")])
            .await;
        assert_eq!(
            lowered
                .pool_daily_limit(Pool::Guild(GUILD), "brave")
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            call(&lowered, in_guild(ALICE, GUILD), TOOL).await,
            Ok(KeySource::GuildPool)
        );
        let refused = call(&lowered, in_guild(ALICE, GUILD), TOOL)
            .await
            .unwrap_err();
        assert!(refused.contains("allow 1 a day"), "{refused}");
    }
);

contract!(
    bot_admins_are_not_limited_by_a_pools_limit,
    |backend| async move {
        let fx = with_pools(backend, &[("ADMIN_USER_IDS", "121212121212")]).await;
        fx.vault
            .set_pool_daily_limit(Pool::Guild(GUILD), "brave", Some(1))
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                call(&fx.vault, in_guild(ALICE, GUILD), TOOL).await,
                Ok(KeySource::GuildPool)
            );
        }
        assert_eq!(pool_uses(&fx.vault, ALICE, Pool::Guild(GUILD)).await, 0);
    }
);
