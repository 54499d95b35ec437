//! `rekey` on every backend: every owner gets a new data key, every value is sealed again under
//! it, nothing from before opens a current value, and a rekey stopped at any point loses
//! nothing and finishes when run again.

mod support;

use std::ops::ControlFlow;
use std::sync::Arc;

use stargazer_keys::RekeyStage;
use stargazer_keys::testkit::{DataKey, SealContext, StoredValue};
use stargazer_keys::{KeySource, KeyVault, Pool, RekeyError};
use support::*;

const ALICE: u64 = 111_111_111_111;
const BOB: u64 = 222_222_222_222;
const CHANNEL: u64 = 333_333_333_333;
const ADMIN: u64 = 999;

/// What a deployment holds before a rekey: two users with two keys each, a global pool key and
/// a channel pool key.
struct Stored {
    alice_brave: String,
    alice_openai: String,
    bob_brave: String,
    bob_openai: String,
    global: (String, String),
    channel: (String, String),
}

async fn store_some_keys(vault: &KeyVault) -> Stored {
    let stored = Stored {
        alice_brave: secret("alice-brave"),
        alice_openai: secret("alice-openai"),
        bob_brave: secret("bob-brave"),
        bob_openai: secret("bob-openai"),
        global: (String::new(), secret("global-youtube")),
        channel: (String::new(), secret("channel-youtube")),
    };
    for (user, service, key) in [
        (ALICE, "brave", &stored.alice_brave),
        (ALICE, "openai", &stored.alice_openai),
        (BOB, "brave", &stored.bob_brave),
        (BOB, "openai", &stored.bob_openai),
    ] {
        vault.set_user_api_key(user, service, key).await.unwrap();
    }
    let global = vault
        .add_pool_key(Pool::Global, "youtube", &stored.global.1, ADMIN)
        .await
        .unwrap();
    let channel = vault
        .add_pool_key(Pool::Channel(CHANNEL), "youtube", &stored.channel.1, ADMIN)
        .await
        .unwrap();
    Stored {
        global: (global.key_id.to_string(), stored.global.1),
        channel: (channel.key_id.to_string(), stored.channel.1),
        ..stored
    }
}

/// Every stored key resolves, through `vault`, to what was stored.
async fn assert_all_resolve(vault: &KeyVault, stored: &Stored) {
    for (user, service, key) in [
        (ALICE, "brave", &stored.alice_brave),
        (ALICE, "openai", &stored.alice_openai),
        (BOB, "brave", &stored.bob_brave),
        (BOB, "openai", &stored.bob_openai),
    ] {
        let resolved = vault
            .get_user_api_key(Some(user), service, None, true)
            .await
            .unwrap();
        assert_eq!(resolved.source(), KeySource::User, "{user} {service}");
        assert_eq!(resolved.key.expose(), key.as_str(), "{user} {service}");
    }
    let channel = vault
        .get_user_api_key(Some(ALICE), "youtube", Some(CHANNEL), true)
        .await
        .unwrap();
    assert_eq!(channel.source(), KeySource::ChannelPool);
    assert_eq!(channel.key.expose(), stored.channel.1.as_str());
    assert_eq!(
        channel.pool_key().map(|p| p.key_id.as_str()),
        Some(stored.channel.0.as_str())
    );
    let global = vault
        .get_user_api_key(Some(ALICE), "youtube", None, true)
        .await
        .unwrap();
    assert_eq!(global.source(), KeySource::GlobalPool);
    assert_eq!(global.key.expose(), stored.global.1.as_str());
    assert_eq!(
        global.pool_key().map(|p| p.key_id.as_str()),
        Some(stored.global.0.as_str())
    );
}

/// The data key of every owner, as the store holds it now.
async fn data_keys(fx: &Fixture) -> Vec<(String, Arc<DataKey>)> {
    let store = data_key_store(fx);
    let mut keys = Vec::new();
    for owner in [
        ALICE.to_string(),
        BOB.to_string(),
        Pool::Global.owner_id(),
        Pool::Channel(CHANNEL).owner_id(),
    ] {
        let key = store
            .reload(&owner)
            .await
            .unwrap()
            .expect("the owner has a data key");
        keys.push((owner, key));
    }
    keys
}

/// Whether any stored value of the fixture opens under any of `keys`.
async fn any_value_opens_under(fx: &Fixture, keys: &[(String, Arc<DataKey>)]) -> bool {
    let user_hash = |user: u64| format!("{}:user_api_keys:{user}", fx.prefix);
    let mut values: Vec<(String, String, Option<String>, String)> = Vec::new();
    for user in [ALICE, BOB] {
        for (service, value) in fx.storage().hgetall(&user_hash(user)).await.unwrap() {
            values.push((user.to_string(), service, None, value));
        }
    }
    for (pool, hash) in [
        (
            Pool::Global,
            format!("{}:global_api_pool:youtube", fx.prefix),
        ),
        (
            Pool::Channel(CHANNEL),
            format!("{}:channel_api_pool:{CHANNEL}:youtube", fx.prefix),
        ),
    ] {
        for (key_id, value) in fx.storage().hgetall(&hash).await.unwrap() {
            values.push((pool.owner_id(), "youtube".to_owned(), Some(key_id), value));
        }
    }
    assert!(values.len() >= 6, "every value is still stored");
    values.iter().any(|(owner, service, key_id, value)| {
        let context = SealContext {
            prefix: &fx.prefix,
            owner,
            service,
            key_id: key_id.as_deref(),
        };
        let stored = StoredValue::parse(value).unwrap();
        keys.iter()
            .any(|(_, key)| stored.open(Some(key), &context).is_ok())
    })
}

key_contract!(
    after_a_rekey_every_key_opens_and_no_old_data_key_opens_any_value,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let stored = store_some_keys(&fx.vault).await;
        // Another process, its cache warm with the old data keys.
        let other = fx.second_vault().await;
        assert_all_resolve(&other, &stored).await;
        let old = data_keys(&fx).await;
        assert!(any_value_opens_under(&fx, &old).await);

        let mut calls = Vec::new();
        let report = fx
            .vault
            .rekey(|done, total| {
                calls.push((done, total));
                ControlFlow::Continue(())
            })
            .await
            .unwrap();

        assert_eq!(report.owners, 4);
        assert_eq!(report.values_moved, 6);
        assert_eq!(report.already_moved, 0);
        assert_eq!(report.unreadable, 0);
        assert_eq!(calls, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
        let new = data_keys(&fx).await;
        for ((owner, old), (_, new)) in old.iter().zip(&new) {
            assert!(!old.same_key(new), "{owner} has a new data key");
        }
        assert!(
            !any_value_opens_under(&fx, &old).await,
            "no old data key opens a current value"
        );
        assert_all_resolve(&fx.vault, &stored).await;
        assert_all_resolve(&other, &stored).await;
        assert_all_resolve(&fx.second_vault().await, &stored).await;
        // No rekey row is left: the owners are exactly the four.
        let mut owners = data_key_store(&fx).owners().await.unwrap();
        owners.sort();
        let mut expected: Vec<String> = new.iter().map(|(owner, _)| owner.clone()).collect();
        expected.sort();
        assert_eq!(owners, expected);

        // Pool key ids are kept, and the same key added again is found by its secret.
        let again = fx
            .vault
            .add_pool_key(Pool::Global, "youtube", &stored.global.1, ADMIN)
            .await
            .unwrap();
        assert!(!again.added);
        assert_eq!(again.key_id, stored.global.0);
        let listed = fx
            .vault
            .list_pool_keys(Pool::Global, Some("youtube"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].contributor, Some(ADMIN), "the payload is kept");
        assert!(listed[0].added_at.is_some());
    }
);

key_contract!(
    an_interrupted_rekey_loses_nothing_and_a_second_run_finishes_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let stored = store_some_keys(&fx.vault).await;
        let old = data_keys(&fx).await;

        let err = fx
            .vault
            .rekey(|done, _| {
                if done == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, RekeyError::Interrupted { done: 2, total: 4 }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("running it again finishes the rest")
        );
        assert_all_resolve(&fx.vault, &stored).await;
        assert_all_resolve(&fx.second_vault().await, &stored).await;

        let report = fx
            .vault
            .rekey(|_, _| ControlFlow::Continue(()))
            .await
            .unwrap();
        assert_eq!(report.owners, 4);
        assert!(!any_value_opens_under(&fx, &old).await);
        assert_all_resolve(&fx.vault, &stored).await;
        assert_all_resolve(&fx.second_vault().await, &stored).await;
    }
);

key_contract!(
    a_rekey_stopped_between_its_writes_leaves_every_key_readable_and_writable,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let stored = store_some_keys(&fx.vault).await;
        let store = data_key_store(&fx);
        let alice = ALICE.to_string();
        let other = fx.second_vault().await;
        assert_all_resolve(&other, &stored).await;

        // Stopped after the new key was stored, before any value moved: one value moved by
        // hand, as a run killed in the middle of Alice's values leaves them.
        let RekeyStage::Moving { old, new } = store.rekey_stage(&alice).await.unwrap() else {
            panic!("a fresh rekey starts by moving values");
        };
        let hash = format!("{}:user_api_keys:{ALICE}", fx.prefix);
        let value = fx.storage().hget(&hash, "brave").await.unwrap().unwrap();
        let context = SealContext {
            prefix: &fx.prefix,
            owner: &alice,
            service: "brave",
            key_id: None,
        };
        let payload = StoredValue::parse(&value)
            .unwrap()
            .open(Some(&old), &context)
            .unwrap();
        use secrecy::ExposeSecret as _;
        let moved = new.seal(&context, payload.expose_secret().as_bytes());
        fx.storage().hset(&hash, "brave", &moved).await.unwrap();
        assert_all_resolve(&other, &stored).await;
        assert_all_resolve(&fx.second_vault().await, &stored).await;

        // A key saved now, by a process whose cache holds the old key, is sealed under the
        // new one, which survives the rekey.
        let later = secret("alice-later");
        other
            .set_user_api_key(ALICE, "gemini", &later)
            .await
            .unwrap();
        let sealed = fx.storage().hget(&hash, "gemini").await.unwrap().unwrap();
        let gemini = SealContext {
            service: "gemini",
            ..context
        };
        assert!(
            StoredValue::parse(&sealed)
                .unwrap()
                .open(Some(&new), &gemini)
                .is_ok()
        );

        // Stopped after the new key became the data key, before the old one was erased.
        assert!(store.rekey_promote(&alice).await.unwrap());
        assert!(matches!(
            store.rekey_stage(&alice).await.unwrap(),
            RekeyStage::Retiring { .. }
        ));
        assert_all_resolve(&other, &stored).await;
        assert_all_resolve(&fx.second_vault().await, &stored).await;

        let report = fx
            .vault
            .rekey(|_, _| ControlFlow::Continue(()))
            .await
            .unwrap();
        assert_eq!(report.owners, 4);
        // Alice's openai value was still under her old key (brave and gemini were under the
        // new one), and everyone else's were under theirs.
        assert_eq!(report.values_moved, 5);
        assert_all_resolve(&other, &stored).await;
        let resolved = other
            .get_user_api_key(Some(ALICE), "gemini", None, true)
            .await
            .unwrap();
        assert_eq!(resolved.key.expose(), later.as_str());
        let alice_now = store.reload(&alice).await.unwrap().unwrap();
        assert!(
            alice_now.same_key(&new),
            "the resumed rekey kept the key it started"
        );
        assert!(!any_value_opens_under(&fx, &[(alice.clone(), old)]).await);
    }
);

key_contract!(
    forgetting_a_user_in_the_middle_of_a_rekey_erases_both_keys,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let stored = store_some_keys(&fx.vault).await;
        let store = data_key_store(&fx);
        let alice = ALICE.to_string();
        let RekeyStage::Moving { .. } = store.rekey_stage(&alice).await.unwrap() else {
            panic!("a fresh rekey starts by moving values");
        };

        let forgotten = fx.vault.forget_user(ALICE).await.unwrap();
        assert_eq!(forgotten.keys, 2);
        assert!(!store.owners().await.unwrap().contains(&alice));
        assert!(store.rekey_keys(&alice).await.unwrap().is_empty());
        assert!(matches!(
            store.rekey_stage(&alice).await.unwrap(),
            RekeyStage::NoKey
        ));

        let report = fx
            .vault
            .rekey(|_, _| ControlFlow::Continue(()))
            .await
            .unwrap();
        assert_eq!(report.owners, 3);
        let resolved = fx
            .vault
            .get_user_api_key(Some(BOB), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(resolved.key.expose(), stored.bob_brave.as_str());
        assert!(fx.vault.list_user_api_keys(ALICE).await.unwrap().is_empty());
    }
);

key_contract!(
    a_rekey_is_refused_while_values_of_the_original_bot_remain,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        store_some_keys(&fx.vault).await;
        let hash = format!("{}:user_api_keys:{BOB}", fx.prefix);
        fx.storage()
            .hset(&hash, "youtube", "sk-plaintext-of-the-original-bot")
            .await
            .unwrap();
        let before = data_keys(&fx).await;

        let err = fx
            .vault
            .rekey(|_, _| ControlFlow::Continue(()))
            .await
            .unwrap_err();
        assert!(matches!(err, RekeyError::LegacyValues(1)), "{err:?}");
        assert!(
            err.to_string()
                .contains("run `stargazer-keys migrate` first")
        );
        let after = data_keys(&fx).await;
        for ((owner, before), (_, after)) in before.iter().zip(&after) {
            assert!(before.same_key(after), "{owner}'s data key is untouched");
        }
    }
);
