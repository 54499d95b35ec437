//! 10,000 distinct users with keys of their own, resolved from 64 tasks at once.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use stargazer_keys::{KeySource, KeyVault};

use super::{CHANNEL, Entries, Fixture, POOL_SAMPLE, SERVICE};

/// How many distinct users.
pub const USERS: u64 = 10_000;
/// How many tasks share them.
pub const TASKS: u64 = 64;
const FIRST_USER: u64 = 100_000;

/// The users task `task` of [`TASKS`] takes.
fn users_of(task: u64) -> impl Iterator<Item = u64> {
    (task..USERS)
        .step_by(TASKS as usize)
        .map(|i| FIRST_USER + i)
}

/// How the raw baselines read one user's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawRead {
    /// One HGET.
    Hget,
    /// HGET and HRANDFIELD of the channel and global pools in one pipeline, as the vault sends.
    Pipeline3,
    /// The prototype resolve script.
    Script,
}

/// A [`Fixture`] whose vault also holds a key for each of [`USERS`] users, and a cache big
/// enough for all their data keys.
pub struct Crowd {
    pub fixture: Fixture,
    hashes: Arc<Vec<String>>,
    pools: Arc<[String; 2]>,
    script: Arc<redis::Script>,
}

impl Crowd {
    /// Sets every user up (from 64 tasks) and checks that each one resolves.
    pub fn start(rt: &tokio::runtime::Runtime) -> Self {
        // Twice the users: the warm figures never unwrap a data key.
        let fixture = Fixture::start(rt, 2 * USERS as usize);
        let layout = fixture.vault.layout();
        let crowd = Self {
            hashes: Arc::new(
                (0..USERS)
                    .map(|i| layout.user_keys_key(FIRST_USER + i))
                    .collect(),
            ),
            pools: Arc::new([fixture.channel_pool.clone(), fixture.global_pool.clone()]),
            script: Arc::new(redis::Script::new(super::RESOLVE_SCRIPT)),
            fixture,
        };
        rt.block_on(async {
            crowd.set_up_users().await;
            assert_eq!(resolve_all(&crowd.fixture.vault, true).await, USERS);
            for read in [RawRead::Hget, RawRead::Pipeline3, RawRead::Script] {
                assert_eq!(crowd.raw_read_all(read).await, USERS, "{read:?}");
            }
        });
        crowd
    }

    async fn set_up_users(&self) {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let vault = self.fixture.vault.clone();
                tokio::spawn(async move {
                    for user in users_of(task) {
                        vault
                            .set_user_api_key(user, SERVICE, &super::secret(user))
                            .await
                            .expect("set a user's key");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a set-up task");
        }
    }

    /// Reads every user's sealed value raw from 64 tasks; returns how many were there.
    pub async fn raw_read_all(&self, read: RawRead) -> u64 {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let conn = self.fixture.raw.clone();
                let (hashes, pools, script) = (
                    Arc::clone(&self.hashes),
                    Arc::clone(&self.pools),
                    Arc::clone(&self.script),
                );
                tokio::spawn(async move {
                    let mut found = 0;
                    for i in (task..USERS).step_by(TASKS as usize) {
                        let hash = &hashes[i as usize];
                        let value = raw_read(&conn, read, hash, &pools, &script).await;
                        found += u64::from(value.is_some());
                    }
                    found
                })
            })
            .collect();
        let mut found = 0;
        for task in tasks {
            found += task.await.expect("a reading task");
        }
        found
    }
}

async fn raw_read(
    conn: &ConnectionManager,
    read: RawRead,
    hash: &str,
    pools: &[String; 2],
    script: &redis::Script,
) -> Option<String> {
    match read {
        RawRead::Hget => super::raw_hget(conn, hash, SERVICE).await,
        RawRead::Pipeline3 => {
            let mut pipe = redis::pipe();
            pipe.cmd("HGET").arg(hash).arg(SERVICE);
            for pool in pools {
                pipe.cmd("HRANDFIELD")
                    .arg(pool)
                    .arg(POOL_SAMPLE)
                    .arg("WITHVALUES");
            }
            let (value, _, _): (Option<String>, Entries, Entries) =
                pipe.query_async(&mut conn.clone()).await.expect("pipeline");
            value
        }
        RawRead::Script => {
            let pools = [pools[0].as_str(), pools[1].as_str()];
            let (source, mut strings) =
                super::raw_resolve_script(conn, script, Some(hash), &pools).await;
            (source == 0).then(|| strings.swap_remove(0))
        }
    }
}

/// Resolves every user's key from 64 tasks (in [`CHANNEL`], falling back to the pools or not);
/// returns how many resolved to the user's own key.
pub async fn resolve_all(vault: &KeyVault, fallback_to_pool: bool) -> u64 {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let vault = vault.clone();
            tokio::spawn(async move {
                let mut own = 0;
                for user in users_of(task) {
                    let found = vault
                        .get_user_api_key(Some(user), SERVICE, Some(CHANNEL), fallback_to_pool)
                        .await;
                    own += u64::from(found.is_some_and(|f| f.source() == KeySource::User));
                }
                own
            })
        })
        .collect();
    let mut own = 0;
    for task in tasks {
        own += task.await.expect("a resolving task");
    }
    own
}
