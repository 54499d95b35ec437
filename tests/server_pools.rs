//! Server pools: the tier between a channel's pool and the global pool, on every backend.

mod support;

use stargazer_keys::{KeyOutcome, KeySource, Pool};
use support::*;

const ALICE: u64 = 111_111_111_111;
const BOB: u64 = 222_222_222_222;
const CHANNEL: u64 = 333_333_333_333;
const GUILD: u64 = 555_555_555_555;
const OTHER_GUILD: u64 = 666_666_666_666;
const ADMIN: u64 = 999;

/// Where a resolution for `user` in `channel` of `guild` lands: the source and the key.
async fn resolve(
    fx: &Fixture,
    user: u64,
    channel: Option<u64>,
    guild: Option<u64>,
) -> Option<(KeySource, String)> {
    fx.vault
        .get_user_api_key_in(Some(user), "brave", channel, guild, true)
        .await
        .map(|r| (r.source(), r.key.expose().to_owned()))
}

key_contract!(
    resolution_goes_user_channel_server_global_env_and_each_tier_removed_falls_to_the_next,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("BRAVE_API_KEY", "env-brave-key-000000")
            .open()
            .await;
        let (user, channel, server, global) = (
            secret("user"),
            secret("channel"),
            secret("server"),
            secret("global"),
        );
        fx.vault
            .set_user_api_key(ALICE, "brave", &user)
            .await
            .unwrap();
        let channel_add = fx
            .vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &channel, ADMIN)
            .await
            .unwrap();
        let server_add = fx
            .vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &server, ADMIN)
            .await
            .unwrap();
        let global_add = fx
            .vault
            .add_pool_key(Pool::Global, "brave", &global, ADMIN)
            .await
            .unwrap();
        let here = (Some(CHANNEL), Some(GUILD));

        assert_eq!(
            resolve(&fx, ALICE, here.0, here.1).await,
            Some((KeySource::User, user))
        );
        assert!(fx.vault.remove_user_api_key(ALICE, "brave").await.unwrap());
        assert_eq!(
            resolve(&fx, ALICE, here.0, here.1).await,
            Some((KeySource::ChannelPool, channel))
        );
        assert!(
            fx.vault
                .remove_pool_key(Pool::Channel(CHANNEL), "brave", &channel_add.key_id)
                .await
                .unwrap()
        );
        assert_eq!(
            resolve(&fx, ALICE, here.0, here.1).await,
            Some((KeySource::GuildPool, server.clone()))
        );
        assert_eq!(
            resolve(&fx, ALICE, here.0, Some(OTHER_GUILD)).await,
            Some((KeySource::GlobalPool, global.clone())),
            "another server's pool is not this one"
        );
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", here.0, true)
                .await
                .map(|r| r.source()),
            Some(KeySource::GlobalPool),
            "a call without a server never draws from a server's pool"
        );
        assert!(
            fx.vault
                .remove_pool_key(Pool::Guild(GUILD), "brave", &server_add.key_id)
                .await
                .unwrap()
        );
        assert_eq!(
            resolve(&fx, ALICE, here.0, here.1).await,
            Some((KeySource::GlobalPool, global))
        );
        assert!(
            fx.vault
                .remove_pool_key(Pool::Global, "brave", &global_add.key_id)
                .await
                .unwrap()
        );
        assert_eq!(
            resolve(&fx, ALICE, here.0, here.1).await,
            Some((KeySource::Env, "env-brave-key-000000".to_owned()))
        );
        assert_eq!(
            fx.vault
                .get_user_api_key_in(Some(BOB), "brave", here.0, here.1, false)
                .await
                .map(|r| r.source()),
            Some(KeySource::Env),
            "fallback_to_pool = false skips every pool"
        );
    }
);

key_contract!(
    a_server_pool_is_stored_under_the_layout_and_sealed_for_that_server_only,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = fx.vault.layout().clone();
        let store = fx.storage();
        let key = secret("server");
        let added = fx
            .vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &key, BOB)
            .await
            .unwrap();
        assert!(added.added);
        let hash = format!("{}:guild_api_pool:{GUILD}:brave", layout.prefix());
        let sealed = store
            .hget(&hash, &added.key_id)
            .await
            .unwrap()
            .expect("the value is in {prefix}:guild_api_pool:{guild}:{service}");
        assert!(sealed.starts_with("v4:"), "sealed, not in clear");

        // Copied into another server's pool, or the global one, it opens nowhere.
        fx.vault
            .add_pool_key(Pool::Guild(OTHER_GUILD), "brave", &secret("other"), ADMIN)
            .await
            .unwrap();
        let other = format!("{}:guild_api_pool:{OTHER_GUILD}:brave", layout.prefix());
        store.del(&other).await.unwrap();
        store.hset(&other, &added.key_id, &sealed).await.unwrap();
        assert_eq!(
            resolve(&fx, ALICE, None, Some(OTHER_GUILD)).await,
            None,
            "another server's pool"
        );
        store
            .hset(&layout.global_pool_key("brave"), &added.key_id, &sealed)
            .await
            .unwrap();
        assert_eq!(
            resolve(&fx, ALICE, None, None).await,
            None,
            "the global pool"
        );

        let listed = fx
            .vault
            .list_pool_keys(Pool::Guild(GUILD), None)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_id, added.key_id);
        assert_eq!(listed[0].contributor, Some(BOB));
        assert_eq!(listed[0].masked.as_deref(), Some(&*added.masked));
        assert!(
            fx.vault
                .list_pool_keys(Pool::Guild(OTHER_GUILD), Some("openai"))
                .await
                .unwrap()
                .is_empty()
        );
    }
);

key_contract!(
    a_revoked_server_pool_key_is_benched_and_the_next_tier_answers,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let server = secret("server");
        let global = secret("global");
        fx.vault
            .add_pool_key(Pool::Guild(GUILD), "brave", &server, ADMIN)
            .await
            .unwrap();
        fx.vault
            .add_pool_key(Pool::Global, "brave", &global, ADMIN)
            .await
            .unwrap();
        let drawn = fx
            .vault
            .get_user_api_key_in(Some(ALICE), "brave", None, Some(GUILD), true)
            .await
            .unwrap();
        assert_eq!(drawn.source(), KeySource::GuildPool);
        // The operator's own report benches at once.
        fx.vault
            .report_key_outcome("brave", &drawn, KeyOutcome::from_http_status(401, None))
            .await;
        assert_eq!(
            resolve(&fx, ALICE, None, Some(GUILD)).await,
            Some((KeySource::GlobalPool, global))
        );
        let benches = fx
            .vault
            .pool_key_benches(Pool::Guild(GUILD), "brave")
            .await
            .unwrap();
        let key_id = drawn.pool_key().unwrap().key_id.as_str();
        assert!(benches.contains_key(key_id));
        assert!(
            fx.vault
                .clear_pool_key_bench(Pool::Guild(GUILD), "brave", key_id)
                .await
                .unwrap()
        );
        assert_eq!(
            resolve(&fx, ALICE, None, Some(GUILD)).await,
            Some((KeySource::GuildPool, server))
        );
    }
);
