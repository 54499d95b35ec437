//! "Only my key": a user's choice that their calls never use a shared key, on every backend.

mod support;

use stargazer_keys::{Caller, KeySource, KeyUseError, Pool};
use support::*;

const ALICE: u64 = 111_111_111_111;
const BOB: u64 = 222_222_222_222;
const CHANNEL: u64 = 333_333_333_333;
const GUILD: u64 = 555_555_555_555;
const ADMIN: u64 = 999;

/// A vault where every shared tier has a Brave Search and an OpenAI key.
async fn every_shared_tier(backend: Backend) -> Fixture {
    let fx = Fixture::builder(backend)
        .env("BRAVE_API_KEY", "env-brave-key-000000")
        .env("OPENAI_API_KEY", "env-openai-key-00000")
        .open()
        .await;
    for service in ["brave", "openai"] {
        for pool in [Pool::Channel(CHANNEL), Pool::Guild(GUILD), Pool::Global] {
            fx.vault
                .add_pool_key(pool, service, &secret(service), ADMIN)
                .await
                .unwrap();
        }
    }
    fx
}

async fn source(fx: &Fixture, user: u64, service: &str) -> Option<KeySource> {
    fx.vault
        .get_user_api_key_in(Some(user), service, Some(CHANNEL), Some(GUILD), true)
        .await
        .map(|r| r.source())
}

key_contract!(
    shared_keys_off_for_a_service_stops_every_shared_tier_for_it_only,
    |backend| async move {
        let fx = every_shared_tier(backend).await;
        assert_eq!(
            source(&fx, ALICE, "brave").await,
            Some(KeySource::ChannelPool)
        );
        fx.vault
            .set_shared_keys(ALICE, Some("brave"), false)
            .await
            .unwrap();
        assert_eq!(source(&fx, ALICE, "brave").await, None, "no pool, no env");
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(ALICE), "brave", None, false)
                .await
                .map(|r| r.source()),
            None,
            "not the operator's key either"
        );
        assert_eq!(
            source(&fx, ALICE, "openai").await,
            Some(KeySource::ChannelPool)
        );
        assert_eq!(
            source(&fx, BOB, "brave").await,
            Some(KeySource::ChannelPool),
            "only hers"
        );

        let own = secret("own");
        fx.vault
            .set_user_api_key(ALICE, "brave", &own)
            .await
            .unwrap();
        assert_eq!(source(&fx, ALICE, "brave").await, Some(KeySource::User));
        assert!(fx.vault.remove_user_api_key(ALICE, "brave").await.unwrap());
        assert_eq!(source(&fx, ALICE, "brave").await, None, "a removed own key");

        fx.vault
            .set_shared_keys(ALICE, Some("brave"), true)
            .await
            .unwrap();
        assert_eq!(
            source(&fx, ALICE, "brave").await,
            Some(KeySource::ChannelPool)
        );
    }
);

key_contract!(
    shared_keys_off_for_every_service_yields_to_a_services_own_choice,
    |backend| async move {
        let fx = every_shared_tier(backend).await;
        fx.vault
            .set_shared_keys(ALICE, None::<&str>, false)
            .await
            .unwrap();
        assert_eq!(source(&fx, ALICE, "brave").await, None);
        assert_eq!(source(&fx, ALICE, "openai").await, None);
        fx.vault
            .set_shared_keys(ALICE, Some("openai"), true)
            .await
            .unwrap();
        assert_eq!(
            source(&fx, ALICE, "openai").await,
            Some(KeySource::ChannelPool)
        );
        assert_eq!(source(&fx, ALICE, "brave").await, None);
        let choice = fx.vault.shared_key_choice(ALICE).await.unwrap();
        assert!(choice.off_for_all);
        assert_eq!(choice.on, ["openai"]);
        assert!(!choice.allows("brave") && choice.allows("openai"));

        fx.vault
            .set_shared_keys(ALICE, None::<&str>, true)
            .await
            .unwrap();
        assert_eq!(
            fx.vault.shared_key_choice(ALICE).await.unwrap(),
            Default::default()
        );
        assert_eq!(
            source(&fx, ALICE, "brave").await,
            Some(KeySource::ChannelPool)
        );

        fx.vault
            .set_shared_keys(ALICE, None::<&str>, false)
            .await
            .unwrap();
        fx.vault.forget_user(ALICE).await.unwrap();
        assert_eq!(
            source(&fx, ALICE, "brave").await,
            Some(KeySource::ChannelPool),
            "an erased user's choice goes with their keys"
        );
    }
);

key_contract!(
    a_tool_call_with_shared_keys_off_and_no_own_key_says_why_and_counts_nothing,
    |backend| async move {
        let fx = every_shared_tier(backend).await;
        fx.vault
            .set_shared_keys(ALICE, Some("brave"), false)
            .await
            .unwrap();
        let caller = Caller::new(ALICE, Some(CHANNEL), Some(GUILD));
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result = fx
            .vault
            .with_api_key(&caller, "brave", "web_search", |_| async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .await;
        let Err(KeyUseError::MissingKey(message)) = result else {
            panic!("expected the missing-key message, got {result:?}");
        };
        assert!(message.contains("You turned shared keys off"), "{message}");
        assert!(
            message.contains("`/set_user_api_key service:brave`"),
            "{message}"
        );
        assert!(
            message.contains("`/shared_keys use:True service:brave`"),
            "{message}"
        );
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        let usage = fx.vault.default_key_usage(ALICE, None).await.unwrap();
        assert!(usage.iter().all(|tool| tool.count == 0), "{usage:?}");
    }
);

key_contract!(
    gitea_with_shared_keys_off_never_falls_to_the_operators_token_file,
    |backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gitea_token");
        std::fs::write(&file, "operator-gitea-token-0000").unwrap();
        let fx = Fixture::builder(backend)
            .env("GITEA_TOKEN_FILE", file.to_str().unwrap())
            .open()
            .await;
        let found = |vault: stargazer_keys::KeyVault| async move {
            vault
                .get_gitea_credentials_in(Some(ALICE), None, None, true)
                .await
                .map(|c| c.source)
        };
        assert_eq!(
            found(fx.vault.clone()).await,
            Some(stargazer_keys::GiteaSource::TokenFile)
        );
        fx.vault
            .set_shared_keys(ALICE, Some("gitea"), false)
            .await
            .unwrap();
        assert_eq!(found(fx.vault.clone()).await, None);
    }
);
