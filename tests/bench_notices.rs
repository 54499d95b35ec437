//! Announcing a pool key benched for a long reason, so its contributor can be told: once per
//! bench however many vaults report it, only for revoked or out-of-credit keys, again after an
//! unbench; and the contributor's choice to hear about it. On every backend.

mod support;

use std::time::Duration;

use stargazer_keys::{BenchNotice, BenchReason, KeyOutcome, KeyVault, Pool, ResolvedKey};
use support::*;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

const BOB: u64 = 565_656_565_656;
const GUILD: u64 = 787;

async fn with_server_key(backend: Backend) -> (Fixture, ResolvedKey) {
    let fx = Fixture::new(backend).await;
    fx.vault
        .add_pool_key(Pool::Guild(GUILD), "brave", &secret("shared"), BOB)
        .await
        .unwrap();
    let drawn = fx
        .vault
        .get_user_api_key_in(Some(1), "brave", None, Some(GUILD), true)
        .await
        .unwrap();
    (fx, drawn)
}

/// Every notice waiting in `notices`.
fn drained(notices: &mut Receiver<BenchNotice>) -> Vec<BenchNotice> {
    let mut out = Vec::new();
    loop {
        match notices.try_recv() {
            Ok(notice) => out.push(notice),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return out,
            Err(TryRecvError::Lagged(n)) => panic!("lagged {n}"),
        }
    }
}

async fn revoke(vault: &KeyVault, key: &ResolvedKey) {
    vault
        .report_key_outcome("brave", key, KeyOutcome::from_http_status(401, None))
        .await;
}

contract!(
    a_revoked_key_is_announced_once_with_its_pool_and_id_and_a_rate_limit_never,
    |backend| async move {
        let (fx, drawn) = with_server_key(backend).await;
        let mut notices = fx.vault.bench_notices();
        fx.vault
            .report_key_outcome(
                "brave",
                &drawn,
                KeyOutcome::from_http_status(429, Some("5")),
            )
            .await;
        assert_eq!(drained(&mut notices), [], "a rate limit passes by itself");

        revoke(&fx.vault, &drawn).await;
        let notices = drained(&mut notices);
        let pooled = drawn.pool_key().unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        let notice = &notices[0];
        assert_eq!(
            (
                notice.pool,
                notice.service.as_str(),
                &notice.key_id,
                notice.reason
            ),
            (
                Pool::Guild(GUILD),
                "brave",
                &pooled.key_id,
                BenchReason::Unauthorized
            )
        );
        assert!(notice.until > time::OffsetDateTime::now_utc() + Duration::from_secs(3600));
        assert_eq!(
            fx.vault
                .pool_key_contributor(Pool::Guild(GUILD), "brave", &pooled.key_id)
                .await
                .unwrap(),
            Some(BOB)
        );
    }
);

contract!(
    two_vaults_reporting_one_bench_announce_it_once_and_an_unbench_rearms_it,
    |backend| async move {
        let (fx, drawn) = with_server_key(backend).await;
        let other = fx.second_vault().await;
        let (mut here, mut there) = (fx.vault.bench_notices(), other.bench_notices());
        revoke(&fx.vault, &drawn).await;
        // A later report extends the bench in the other vault, which claims nothing new.
        tokio::time::sleep(Duration::from_millis(5)).await;
        revoke(&other, &drawn).await;
        let count = drained(&mut here).len() + drained(&mut there).len();
        assert_eq!(count, 1, "one announcement for one bench");

        let key_id = drawn.pool_key().unwrap().key_id.clone();
        assert!(
            other
                .clear_pool_key_bench(Pool::Guild(GUILD), "brave", &key_id)
                .await
                .unwrap()
        );
        revoke(&other, &drawn).await;
        assert_eq!(
            drained(&mut there).len(),
            1,
            "benched again, announced again"
        );
        assert_eq!(drained(&mut here).len(), 0);
    }
);

contract!(
    a_vault_without_a_listener_claims_nothing,
    |backend| async move {
        let (fx, drawn) = with_server_key(backend).await;
        let listening = fx.second_vault().await;
        let mut notices = listening.bench_notices();
        revoke(&fx.vault, &drawn).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        revoke(&listening, &drawn).await;
        assert_eq!(drained(&mut notices).len(), 1);
    }
);

contract!(
    a_contributor_turns_the_messages_off_and_on_and_forgetting_them_resets_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        assert!(
            fx.vault.bench_dms_enabled(BOB).await.unwrap(),
            "on by default"
        );
        fx.vault.set_bench_dms(BOB, false).await.unwrap();
        assert!(!fx.vault.bench_dms_enabled(BOB).await.unwrap());
        assert!(
            !fx.second_vault()
                .await
                .bench_dms_enabled(BOB)
                .await
                .unwrap(),
            "every process reads the choice"
        );
        fx.vault.set_bench_dms(BOB, true).await.unwrap();
        assert!(fx.vault.bench_dms_enabled(BOB).await.unwrap());
        fx.vault.set_bench_dms(BOB, false).await.unwrap();
        fx.vault.forget_user(BOB).await.unwrap();
        assert!(fx.vault.bench_dms_enabled(BOB).await.unwrap());
    }
);
