//! A pool's log: who added, removed, benched or unbenched which key, on every backend.

mod support;

use stargazer_keys::{BenchReason, KeyOutcome, POOL_LOG_MAX, Pool, PoolAction};
use support::*;

const ALICE: u64 = 111_111_111_111;
const BOB: u64 = 222_222_222_222;
const GUILD: u64 = 555_555_555_555;
const ADMIN: u64 = 999;

key_contract!(
    every_change_to_a_pool_is_logged_newest_first_with_who_and_never_the_key,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let pool = Pool::Guild(GUILD);
        let key = secret("server");
        let added = fx
            .vault
            .add_pool_key(pool, "brave", &key, BOB)
            .await
            .unwrap();
        let again = fx
            .vault
            .add_pool_key(pool, "brave", &key, BOB)
            .await
            .unwrap();
        assert!(!again.added, "the same key twice is one entry");
        let drawn = fx
            .vault
            .get_user_api_key_in(Some(ALICE), "brave", None, Some(GUILD), true)
            .await
            .unwrap();
        fx.vault
            .report_key_outcome("brave", &drawn, KeyOutcome::from_http_status(401, None))
            .await;
        assert!(
            fx.vault
                .clear_pool_key_bench_by(pool, "brave", &added.key_id, Some(ADMIN))
                .await
                .unwrap()
        );
        assert!(
            fx.vault
                .remove_pool_key_by(pool, "brave", &added.key_id, Some(ADMIN))
                .await
                .unwrap()
        );

        let log = fx.vault.pool_log(pool, 10).await.unwrap();
        let seen: Vec<(PoolAction, Option<u64>)> = log
            .iter()
            .map(|entry| (entry.action, entry.actor))
            .collect();
        assert_eq!(
            seen,
            [
                (PoolAction::Removed, Some(ADMIN)),
                (PoolAction::Unbenched, Some(ADMIN)),
                (PoolAction::Benched(BenchReason::Unauthorized), None),
                (PoolAction::Added, Some(BOB)),
            ]
        );
        assert!(
            log.iter()
                .all(|entry| entry.key_id == added.key_id && entry.service == "brave")
        );
        assert!(log.windows(2).all(|pair| pair[0].at >= pair[1].at));
        assert!(
            fx.vault
                .pool_log(Pool::Global, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let stored = fx.dump().await;
        assert!(
            stored.iter().all(|(_, _, value)| !value.contains(&key)),
            "no key in storage in clear"
        );
    }
);

contract!(
    a_pools_log_keeps_only_its_newest_entries,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let pool = Pool::Global;
        let key = secret("churn");
        let rounds = POOL_LOG_MAX / 2 + 40;
        for _ in 0..rounds {
            let added = fx
                .vault
                .add_pool_key(pool, "brave", &key, ADMIN)
                .await
                .unwrap();
            fx.vault
                .remove_pool_key(pool, "brave", &added.key_id)
                .await
                .unwrap();
        }
        let log = fx.vault.pool_log(pool, usize::MAX).await.unwrap();
        assert_eq!(log.len(), POOL_LOG_MAX);
        assert_eq!(log[0].action, PoolAction::Removed, "the newest is kept");
        let stored = fx
            .storage()
            .hlen(&format!("{}:pool_log:global", fx.vault.layout().prefix()))
            .await
            .unwrap();
        assert!(
            stored as usize <= POOL_LOG_MAX + POOL_LOG_MAX / 4,
            "{stored}"
        );
    }
);

contract!(
    unbenching_text_that_is_no_key_id_refuses_without_echoing_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let pasted = "sk-live-pasted-by-mistake-0123456789";
        let err = fx
            .vault
            .clear_pool_key_bench_by(Pool::Global, "brave", pasted, Some(ADMIN))
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("0123456789"), "{err}");
        assert!(
            fx.vault
                .pool_log(Pool::Global, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);
