//! What a Redis Cluster adds to the storage contract: scans that walk every master, scripts
//! that a node has not cached yet, and a master going down and coming back. The contract tests
//! here run on every backend, so the three stay alike; the outage tests use a private cluster.

mod support;
use support::*;

use std::time::{Duration, Instant};

use stargazer_keys::config::QuotaWindow;
use stargazer_keys::testkit::RedisCluster;
use stargazer_keys::{KeySource, KeyVault};

const ALICE: u64 = 111_111_111_111;
/// What a call may take with a master down: well inside Discord's 3 s to answer.
const QUICKLY: Duration = Duration::from_secs(2);
/// How long a stopped master may take to be serving again after its restart.
const RECOVERY: Duration = Duration::from_secs(20);
const DAY: u64 = 86_400;
/// The operator's key, which resolution falls back to.
const ENV_KEY: &str = "env-fallback-key-0000";

contract!(
    a_scan_lists_every_matching_key_once_across_pages,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        // Several SCAN pages (COUNT 1000) on every master of the cluster.
        let mut expected = Vec::new();
        for i in 0..4_000 {
            let key = format!("{}:scanned:{i}", fx.prefix);
            fx.storage().set(&key, "1").await.unwrap();
            expected.push(key);
        }
        for i in 0..50 {
            let other = format!("{}:other:{i}", fx.prefix);
            fx.storage().hset(&other, "f", "v").await.unwrap();
        }
        expected.sort();

        let scanned = fx
            .storage()
            .scan(&format!("{}:scanned:*", fx.prefix))
            .await
            .unwrap();

        assert_eq!(scanned.len(), expected.len());
        assert_eq!(scanned, expected);
    }
);

contract!(
    scripts_run_on_nodes_that_have_not_cached_them,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        flush_script_caches(&fx).await;
        let key = format!("{}:counter", fx.prefix);
        let hash = format!("{}:hash", fx.prefix);
        fx.storage().hset(&hash, "field", "old").await.unwrap();

        let reserved = fx
            .storage()
            .reserve(&key, 5, DAY, QuotaWindow::Fixed)
            .await
            .unwrap();
        flush_script_caches(&fx).await;
        let refunded = fx.storage().refund(&key).await.unwrap();
        flush_script_caches(&fx).await;
        let replaced = fx
            .storage()
            .hreplace(&hash, "field", "old", "new")
            .await
            .unwrap();

        assert_eq!((reserved.admitted, reserved.count), (true, 1));
        assert_eq!(refunded, 0);
        assert!(replaced);
        assert_eq!(
            fx.storage().hget(&hash, "field").await.unwrap().as_deref(),
            Some("new")
        );

        flush_script_caches(&fx).await;
        let kept = fx.storage().hdel_if(&hash, "field", "old").await.unwrap();
        assert!(!kept, "a field whose value changed is not deleted");
        assert!(fx.storage().hget(&hash, "field").await.unwrap().is_some());
        let deleted = fx.storage().hdel_if(&hash, "field", "new").await.unwrap();
        assert!(deleted);
        assert_eq!(fx.storage().hget(&hash, "field").await.unwrap(), None);
    }
);

/// SCRIPT FLUSH on every Redis node of the fixture (nothing for the embedded store).
async fn flush_script_caches(fx: &Fixture) {
    for url in fx.redis_urls() {
        let mut conn = node_connection(&url).await;
        let _: String = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

async fn node_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The index of the master that serves `key`: the others answer MOVED.
async fn owner(cluster: &RedisCluster, key: &str) -> usize {
    for (index, node) in cluster.nodes().iter().enumerate() {
        let mut conn = node_connection(&node.url()).await;
        let exists: redis::RedisResult<bool> =
            redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
        if exists.is_ok() {
            return index;
        }
    }
    panic!("no master serves {key}");
}

/// Resolves the user's own key (no pools: one key, so one master), failing the test if the
/// call is slow.
async fn resolve_own(vault: &KeyVault, user: u64) -> Option<(KeySource, String)> {
    let started = Instant::now();
    let resolved = tokio::time::timeout(
        QUICKLY,
        vault.get_user_api_key(Some(user), "brave", None, false),
    )
    .await
    .unwrap_or_else(|_| panic!("resolution took {:?} with a master down", started.elapsed()));
    resolved.map(|r| (r.source(), r.key.expose().to_owned()))
}

/// A private cluster that keeps serving the live masters' slots while one is down, a vault on
/// it with an environment key, users with keys spread over the masters, and which master
/// (the victim) holds the first user's keys.
struct Outage {
    cluster: RedisCluster,
    fx: Fixture,
    victim: usize,
    /// Each user, their key and the master that holds it.
    users: Vec<(u64, String, usize)>,
    /// A tool whose counter for [`ALICE`] is on a live master, and one whose counter is on
    /// the victim.
    live_tool: String,
    dead_tool: String,
}

impl Outage {
    async fn prepare() -> Outage {
        let cluster = RedisCluster::start().expect("start a private Redis Cluster");
        // The default refuses every slot while one is uncovered.
        for node in cluster.nodes() {
            let mut conn = node_connection(&node.url()).await;
            let _: String = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-require-full-coverage")
                .arg("no")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let fx = Fixture::builder(Backend::Cluster)
            .redis_url(cluster.urls())
            .env("BRAVE_API_KEY", ENV_KEY)
            .open()
            .await;
        let layout = fx.vault.layout().clone();
        let mut users = Vec::new();
        for user in (0..12).map(|i| ALICE + i) {
            let key = secret("own");
            fx.vault
                .set_user_api_key(user, "brave", &key)
                .await
                .unwrap();
            let node = owner(&cluster, &layout.user_keys_key(user)).await;
            users.push((user, key, node));
        }
        let victim = users[0].2;
        let (mut live_tool, mut dead_tool) = (None, None);
        for tool in (0..40).map(|i| format!("tool{i}")) {
            if owner(&cluster, &layout.usage_key(ALICE, &tool)).await == victim {
                dead_tool.get_or_insert(tool);
            } else {
                live_tool.get_or_insert(tool);
            }
        }
        // The live masters must run the quota script without the victim's help.
        flush_script_caches(&fx).await;
        Outage {
            cluster,
            fx,
            victim,
            users,
            live_tool: live_tool.unwrap(),
            dead_tool: dead_tool.unwrap(),
        }
    }

    /// With the victim down: its users get the environment key and its counters fail open,
    /// quickly; everything on the live masters works.
    async fn assert_degrades_to_the_victims_keys(&self) {
        for (user, key, node) in &self.users {
            let expected = if *node == self.victim {
                (KeySource::Env, ENV_KEY.to_owned())
            } else {
                (KeySource::User, key.clone())
            };
            assert_eq!(
                resolve_own(&self.fx.vault, *user).await,
                Some(expected),
                "user {user} on master {node}, victim {}",
                self.victim
            );
        }

        let started = Instant::now();
        let live = self
            .fx
            .vault
            .reserve_default_key_use(ALICE, &self.live_tool, None)
            .await
            .expect("under the limit");
        assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
        assert!(live.is_recorded(), "the counter's master is up");
        live.refund().await;

        let started = Instant::now();
        let dead = self
            .fx
            .vault
            .reserve_default_key_use(ALICE, &self.dead_tool, None)
            .await
            .expect("fail-open admits");
        assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
        assert!(!dead.is_recorded(), "the counter's master is down");
        dead.commit();

        // A scan must see every master: it fails rather than list part of the keys.
        let started = Instant::now();
        let scanned = self
            .fx
            .storage()
            .scan(&format!("{}:*", self.fx.prefix))
            .await;
        assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
        assert!(scanned.is_err(), "a partial scan: {scanned:?}");
    }

    /// Writes and reads of the victim's keys work again on the same vault.
    async fn assert_the_victim_serves_again(&self) {
        let deadline = Instant::now() + RECOVERY;
        let again = secret("again");
        while self
            .fx
            .vault
            .set_user_api_key(ALICE, "brave", &again)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the victim never served again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            resolve_own(&self.fx.vault, ALICE).await,
            Some((KeySource::User, again))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_master_stopped_its_keys_fall_back_to_env_and_the_others_keep_working() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut outage = Outage::prepare().await;
        let victim = outage.victim;

        outage.cluster.nodes_mut()[victim].stop();
        outage.assert_degrades_to_the_victims_keys().await;

        // Back on the same port, the master rejoins from its nodes.conf, empty (no
        // persistence).
        outage.cluster.nodes_mut()[victim]
            .restart()
            .expect("restart the master");
        outage.assert_the_victim_serves_again().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_master_hung_calls_give_up_at_the_timeouts_and_the_others_keep_working() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let outage = Outage::prepare().await;
        let victim = &outage.cluster.nodes()[outage.victim];

        victim.pause().expect("freeze the master");
        outage.assert_degrades_to_the_victims_keys().await;

        victim.resume().expect("thaw the master");
        outage.assert_the_victim_serves_again().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_opened_while_the_cluster_is_down_falls_back_to_env_then_uses_it() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut cluster = RedisCluster::start().expect("start a private Redis Cluster");
        for node in cluster.nodes_mut() {
            node.stop();
        }

        let fx = Fixture::builder(Backend::Cluster)
            .redis_url(cluster.urls())
            .env("BRAVE_API_KEY", ENV_KEY)
            .open()
            .await;
        assert_eq!(
            resolve_own(&fx.vault, ALICE).await,
            Some((KeySource::Env, ENV_KEY.to_owned()))
        );

        // Back on the same ports, the masters re-form the cluster from their nodes.conf.
        for node in cluster.nodes_mut() {
            node.restart().expect("restart a master");
        }
        let deadline = Instant::now() + RECOVERY;
        let own = secret("own");
        while let Err(err) = fx.vault.set_user_api_key(ALICE, "brave", &own).await {
            assert!(
                Instant::now() < deadline,
                "the cluster never served the vault: {err}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            resolve_own(&fx.vault, ALICE).await,
            Some((KeySource::User, own))
        );
    })
    .await
    .expect("test timed out");
}
