//! Fixtures shared by the benchmarks: a tokio runtime shaped like the machine (two workers), a
//! vault on a real SQLite file and a private redis-server, the raw reads the baselines send to
//! the same server over the same kind of connection, and an interleaved A/B timer.

#![allow(dead_code)]

pub mod crowd;
pub mod rewrap;

use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::Criterion;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{Catalogue, Config, KeyVault, Pool};
use tempfile::TempDir;

/// The service every benchmark resolves.
pub const SERVICE: &str = "brave";
/// HRANDFIELD's count, as the vault sends it.
pub const POOL_SAMPLE: usize = 8;
/// How many keys the global pool holds.
pub const GLOBAL_POOL_KEYS: usize = 4;
/// Has a key of their own.
pub const USER: u64 = 1_001;
/// Has none: resolution falls through the channel's empty pool to the global pool.
pub const POOL_USER: u64 = 1_002;
/// Its pool is empty.
pub const CHANNEL: u64 = 2_001;
/// The tool the quota benchmarks count.
pub const TOOL: &str = "web_search";
/// A daily limit no benchmark reaches, so no iteration is ever refused.
pub const NO_LIMIT: Option<u32> = Some(u32::MAX);
/// The vault's default connect and response timeouts, so the raw baseline pays for them too.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A pool draw as Redis returns it: (key id, sealed value).
pub type Entries = Vec<(String, String)>;

/// A multi-thread runtime with two workers (the machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

/// Criterion with short measurements, so the whole `cargo bench` stays within a few minutes;
/// the command line still overrides every setting.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args()
}

/// A fresh base64 master key.
pub fn master_key_b64() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The settings of a benchmark vault, as an operator would write them.
pub fn config(
    master_key: &str,
    db_path: &Path,
    redis_url: Option<&str>,
    data_key_cache: usize,
) -> Config {
    let mut vars = vec![
        ("STARGAZER_MASTER_KEY".to_owned(), master_key.to_owned()),
        (
            "STARGAZER_DB_PATH".to_owned(),
            db_path.display().to_string(),
        ),
        ("STARGAZER_KEY_PREFIX".to_owned(), "bench".to_owned()),
        // The flow section reserves shared-key uses through the configured limit.
        (
            "DEFAULT_KEY_DAILY_LIMIT".to_owned(),
            "4000000000".to_owned(),
        ),
        (
            "STARGAZER_DATA_KEY_CACHE".to_owned(),
            data_key_cache.to_string(),
        ),
    ];
    if let Some(url) = redis_url {
        vars.push(("REDIS_URL".to_owned(), url.to_owned()));
    }
    Config::from_vars(vars).expect("valid benchmark settings")
}

/// Opens a vault with the built-in catalogue.
pub async fn open_vault(config: Config) -> KeyVault {
    KeyVault::open_with_catalogue(config, Catalogue::builtin())
        .await
        .expect("open the vault")
}

/// A raw connection to the same server, configured as the vault's own.
pub async fn raw_connection(url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect to the private redis-server")
}

/// A secret that looks like a Brave Search key.
pub fn secret(tag: impl std::fmt::Display) -> String {
    format!("BSA-bench-{tag}-0123456789abcdef")
}

/// A vault on a private redis-server and its own SQLite file, where [`USER`] has a key and the
/// global pool holds [`GLOBAL_POOL_KEYS`] keys; and a raw connection to the same server.
pub struct Fixture {
    /// The vault (Redis backend).
    pub vault: KeyVault,
    /// A raw connection to the vault's Redis.
    pub raw: ConnectionManager,
    /// The vault's settings, to open it again.
    pub config: Config,
    /// [`USER`]'s hash.
    pub user_hash: String,
    /// [`POOL_USER`]'s (empty) hash.
    pub pool_user_hash: String,
    /// [`CHANNEL`]'s (empty) pool of [`SERVICE`].
    pub channel_pool: String,
    /// The global pool of [`SERVICE`].
    pub global_pool: String,
    pub dir: TempDir,
    pub server: RedisServer,
}

impl Fixture {
    /// Starts a server, opens the vault with a data-key cache of `data_key_cache` entries and
    /// stores the keys.
    pub fn start(rt: &tokio::runtime::Runtime, data_key_cache: usize) -> Self {
        let server = RedisServer::start().expect("start a private redis-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(
            &master_key_b64(),
            &dir.path().join("keys.db"),
            Some(&server.url()),
            data_key_cache,
        );
        let (vault, raw) = rt.block_on(async {
            let vault = open_vault(config.clone()).await;
            vault
                .set_user_api_key(USER, SERVICE, &secret("user"))
                .await
                .expect("set the user's key");
            for i in 0..GLOBAL_POOL_KEYS {
                vault
                    .add_pool_key(Pool::Global, SERVICE, &secret(i), 1)
                    .await
                    .expect("add a pool key");
            }
            (vault, raw_connection(&server.url()).await)
        });
        let layout = vault.layout();
        Self {
            user_hash: layout.user_keys_key(USER),
            pool_user_hash: layout.user_keys_key(POOL_USER),
            channel_pool: layout.channel_pool_key(CHANNEL, SERVICE),
            global_pool: layout.global_pool_key(SERVICE),
            vault,
            raw,
            config,
            dir,
            server,
        }
    }

    /// The pools a resolution in [`CHANNEL`] draws from, in order.
    pub fn pools(&self) -> [&str; 2] {
        [&self.channel_pool, &self.global_pool]
    }

    /// An embedded vault (`REDIS_URL` unset) on a second SQLite file of the same kind, where
    /// [`USER`] has a key.
    pub fn embedded(&self, rt: &tokio::runtime::Runtime) -> KeyVault {
        let mut config = self.config.clone();
        config.redis_urls.clear();
        config.db_path = self.dir.path().join("embedded.db");
        rt.block_on(async {
            let vault = open_vault(config).await;
            vault
                .set_user_api_key(USER, SERVICE, &secret("user"))
                .await
                .expect("set the user's key (embedded)");
            vault
        })
    }
}

/// One raw HGET, decoded as the vault decodes it.
pub async fn raw_hget(conn: &ConnectionManager, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(&mut conn.clone())
        .await
        .expect("HGET")
}

/// HGET of the user's field and HRANDFIELD `key 8 WITHVALUES` of each pool, in one pipeline:
/// the reads the vault sent for one resolution before "only my key".
pub async fn raw_pipeline3(
    conn: &ConnectionManager,
    user_hash: &str,
    pools: [&str; 2],
) -> (Option<String>, Entries, Entries) {
    raw_pipeline(user_hash, pools, false)
        .query_async(&mut conn.clone())
        .await
        .expect("pipeline")
}

/// [`raw_pipeline3`] plus the HMGET of the user's settings (whether they turned shared keys
/// off, since "only my key") and the HMGET of the pools' own daily limits (since per-pool
/// limits) that a resolution sends: what a resolution must read now, benches aside.
pub async fn raw_pipeline_full(
    conn: &ConnectionManager,
    user_hash: &str,
    pools: [&str; 2],
) -> (
    Option<String>,
    Vec<Option<String>>,
    Entries,
    Entries,
    Vec<Option<String>>,
) {
    raw_pipeline(user_hash, pools, true)
        .query_async(&mut conn.clone())
        .await
        .expect("pipeline")
}

/// The reads of one resolution, with or without the user's settings and the pools' limits.
fn raw_pipeline(user_hash: &str, pools: [&str; 2], settings: bool) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("HGET").arg(user_hash).arg(SERVICE);
    if settings {
        pipe.cmd("HMGET")
            .arg(format!("{{{user_hash}}}:settings"))
            .arg(format!("shared_keys:{SERVICE}"))
            .arg("shared_keys:*");
    }
    for pool in pools {
        pipe.cmd("HRANDFIELD")
            .arg(pool)
            .arg(POOL_SAMPLE)
            .arg("WITHVALUES");
    }
    if settings {
        pipe.cmd("HMGET")
            .arg(format!("bench:pool_daily_limits:{SERVICE}"))
            .arg(format!("channel:{CHANNEL}"))
            .arg("global");
    }
    pipe
}

/// One raw INCR.
pub async fn raw_incr(conn: &ConnectionManager, key: &str) -> u64 {
    redis::cmd("INCR")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .expect("INCR")
}

/// One raw GET.
pub async fn raw_get(conn: &ConnectionManager, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .expect("GET")
}

/// INCR and EXPIRE 86400 NX in one pipeline, as the vault counts a use: inside MULTI/EXEC when
/// `atomic` (what the vault sends), else as two plain commands.
pub async fn raw_count(conn: &ConnectionManager, key: &str, atomic: bool) -> u64 {
    let mut pipe = redis::pipe();
    if atomic {
        pipe.atomic();
    }
    pipe.cmd("INCR").arg(key);
    pipe.cmd("EXPIRE").arg(key).arg(86_400).arg("NX").ignore();
    let (count,): (u64,) = pipe
        .query_async(&mut conn.clone())
        .await
        .expect("INCR EXPIRE");
    count
}

/// A prototype of counting a use as one server-side script (not what the vault sends today):
/// INCR and EXPIRE (NX in a fixed window) atomically, as one command instead of a MULTI of two.
pub const INCR_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if ARGV[2] == 'rolling' then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
end
return n
";

/// Runs [`INCR_SCRIPT`] raw on `key` in a fixed window.
pub async fn raw_incr_script(conn: &ConnectionManager, script: &redis::Script, key: &str) -> u64 {
    script
        .key(key)
        .arg(86_400)
        .arg("fixed")
        .invoke_async(&mut conn.clone())
        .await
        .expect("the INCR script")
}

/// A prototype of resolution as one server-side script (not what the vault sends today): the
/// user's value when there is one, else the draw of the first pool that has entries. Returns
/// `{0, value}`, `{i, field, value, ...}` for the i-th pool, or `{-1}`. It measures what
/// resolving without fetching the pools an answer does not need would cost.
pub const RESOLVE_SCRIPT: &str = r"
local first = 1
if ARGV[3] == '1' then
  local value = redis.call('HGET', KEYS[1], ARGV[1])
  if value then return {0, value} end
  first = 2
end
for i = first, #KEYS do
  local entries = redis.call('HRANDFIELD', KEYS[i], ARGV[2], 'WITHVALUES')
  if #entries > 0 then
    table.insert(entries, 1, i - first + 1)
    return entries
  end
end
return {-1}
";

/// Runs [`RESOLVE_SCRIPT`] raw for `user_hash` (when given) and `pools`; returns which source
/// answered (0 = the user, i = the i-th pool, -1 = none) and the strings it returned.
pub async fn raw_resolve_script(
    conn: &ConnectionManager,
    script: &redis::Script,
    user_hash: Option<&str>,
    pools: &[&str],
) -> (i64, Vec<String>) {
    let mut invocation = script.prepare_invoke();
    if let Some(hash) = user_hash {
        invocation.key(hash);
    }
    for pool in pools {
        invocation.key(*pool);
    }
    let reply = invocation
        .arg(SERVICE)
        .arg(POOL_SAMPLE)
        .arg(if user_hash.is_some() { "1" } else { "0" })
        .invoke_async::<Vec<redis::Value>>(&mut conn.clone())
        .await
        .expect("the resolve script");
    let mut parts = reply.into_iter();
    let source = parts
        .next()
        .map(|v| redis::from_redis_value(v).expect("an index"))
        .unwrap_or(-1);
    let strings = parts
        .map(|v| redis::from_redis_value(v).expect("a string"))
        .collect();
    (source, strings)
}

/// Times `a` and `b` in alternating blocks of `block` calls, `rounds` times, and returns the
/// median time per call of each. Alternating keeps a load that comes and goes (other builds on
/// the machine) from landing on one side only, so the ratio of the two holds under noise.
pub async fn paired<A, FA, B, FB>(
    mut a: A,
    mut b: B,
    block: u32,
    rounds: usize,
) -> (Duration, Duration)
where
    A: FnMut() -> FA,
    FA: Future,
    B: FnMut() -> FB,
    FB: Future,
{
    for _ in 0..block {
        black_box(a().await);
        black_box(b().await);
    }
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..block {
            black_box(a().await);
        }
        times_a.push(start.elapsed() / block);
        let start = Instant::now();
        for _ in 0..block {
            black_box(b().await);
        }
        times_b.push(start.elapsed() / block);
    }
    (median(times_a), median(times_b))
}

/// The median of some durations.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
