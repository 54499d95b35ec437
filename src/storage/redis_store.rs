//! The Redis backend: one `ConnectionManager` (or a cluster connection), cloned per call,
//! with explicit connect and response timeouts.
//!
//! On a cluster, each command goes to the master of its key's hash slot. Every multi-command
//! operation here touches one key (the quota's MULTI, the Lua scripts), except two: a key
//! resolution, whose reads are sent all at once instead of as one pipeline, and a scan, which
//! walks every master.

use std::time::Duration;

use futures_util::future::join_all;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, Script, ServerErrorKind, Value};

use super::{
    BackendKind, BoxFuture, Reservation, ResolveReply, ResolveRequest, ServerFacts, StorageBackend,
    StorageError,
};
use crate::config::QuotaWindow;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis storage: a single server, or a cluster when several node URLs are given.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// Replicas every key write waits for (`WAIT`), and how long; 0: none.
    durable_replicas: u32,
    durable_wait: Duration,
    reserve: LuaScript,
    refund: LuaScript,
    hreplace: LuaScript,
    hdel_if: LuaScript,
    hset_until: LuaScript,
}

/// A Lua script over one key, run by its hash (EVALSHA) and, on a node that does not know it
/// yet, in full (EVAL, which also caches it there). Both go to the key's node. Unlike
/// `Script::invoke_async`, this never sends SCRIPT LOAD, which a cluster client sends to every
/// node: one node down would then fail scripts on all the others.
#[derive(Debug, Clone)]
struct LuaScript {
    source: &'static str,
    hash: String,
}

impl LuaScript {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            hash: Script::new(source).get_hash().to_owned(),
        }
    }

    /// EVALSHA of the script over `key`, or with `in_full`, EVAL.
    fn invocation(&self, in_full: bool, key: &str, args: &[&str]) -> Cmd {
        let (mut cmd, body) = if in_full {
            (redis::cmd("EVAL"), self.source)
        } else {
            (redis::cmd("EVALSHA"), self.hash.as_str())
        };
        cmd.arg(body).arg(1).arg(key).arg(args);
        cmd
    }
}

/// The cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has
/// a non-empty one, modulo 16384 (the cluster specification's algorithm).
fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one server (one URL) or a cluster (several), lazily: this succeeds while
    /// Redis is down, and the first command reports the outage.
    ///
    /// `rediss://` URLs connect over TLS (rustls), trusting `tls_ca` (PEM certificates) when
    /// given, else the system's certificates.
    pub async fn connect(
        urls: &[String],
        connect_timeout: Duration,
        response_timeout: Duration,
        tls_ca: Option<&[u8]>,
    ) -> Result<Self, StorageError> {
        let certificates = || redis::TlsCertificates {
            client_tls: None,
            root_cert: tls_ca.map(<[u8]>::to_vec),
        };
        let conn = match urls {
            [] => return Err(StorageError::Unsupported("REDIS_URL names no Redis node")),
            [url] => {
                let client = if tls_ca.is_some() && url.starts_with("rediss://") {
                    redis::Client::build_with_tls(url.as_str(), certificates())?
                } else {
                    redis::Client::open(url.as_str())?
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Conn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            nodes => {
                let mut builder =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(connect_timeout)
                        .response_timeout(response_timeout)
                        .retries(2);
                if tls_ca.is_some() && nodes.iter().any(|url| url.starts_with("rediss://")) {
                    builder = builder.certs(certificates());
                }
                let client = builder.build()?;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                Conn::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(Self {
            conn,
            durable_replicas: 0,
            durable_wait: Duration::ZERO,
            reserve: LuaScript::new(RESERVE_SCRIPT),
            refund: LuaScript::new(REFUND_SCRIPT),
            hreplace: LuaScript::new(HREPLACE_SCRIPT),
            hdel_if: LuaScript::new(HDEL_IF_SCRIPT),
            hset_until: LuaScript::new(HSET_UNTIL_SCRIPT),
        })
    }

    /// Makes every write of a key (stored values, never counters) wait until `replicas`
    /// replicas of its master hold it, for at most `wait` (`WAIT`); a write they do not
    /// confirm in time fails with [`StorageError::NotReplicated`]. 0 turns it off.
    pub fn durable(mut self, replicas: u32, wait: Duration) -> Self {
        self.durable_replicas = replicas;
        self.durable_wait = wait;
        self
    }

    /// After a write of `key`: with durable writes on, `WAIT` on the key's master (the
    /// connection the write went over).
    async fn confirm(&self, key: &str) -> Result<(), StorageError> {
        if self.durable_replicas == 0 {
            return Ok(());
        }
        let wait_ms = u64::try_from(self.durable_wait.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.durable_replicas).arg(wait_ms);
        let acked: i64 = match &self.conn {
            Conn::Single(conn) => cmd.query_async(&mut conn.clone()).await?,
            Conn::Cluster(conn) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    redis::cluster_routing::Route::new(
                        cluster_slot(key),
                        redis::cluster_routing::SlotAddr::Master,
                    ),
                ));
                let reply = conn.clone().route_command(cmd, route).await?;
                redis::from_redis_value(reply)?
            }
        };
        let acked = u32::try_from(acked).unwrap_or(0);
        if acked < self.durable_replicas {
            return Err(StorageError::NotReplicated {
                wanted: self.durable_replicas,
                acked,
                wait_ms,
            });
        }
        Ok(())
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StorageError> {
        self.timed(async { Ok(cmd.query_async(&mut self.conn()).await?) })
            .await
    }

    /// Runs one call of the store, recording how long it took and whether it failed.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.record(started, result.is_err());
        result
    }

    /// Records one call of the store that began at `started`.
    fn record(&self, started: std::time::Instant, failed: bool) {
        crate::metrics::storage_call(self.kind(), started.elapsed().as_secs_f64(), failed);
    }

    /// Runs a one-key script: EVALSHA, then EVAL where the node does not know the script.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &LuaScript,
        key: &str,
        args: &[&str],
    ) -> Result<T, StorageError> {
        let by_hash = script.invocation(false, key, args);
        let started = std::time::Instant::now();
        match by_hash.query_async(&mut self.conn()).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.query(&script.invocation(true, key, args)).await
            }
            result => {
                let result = result.map_err(StorageError::from);
                self.record(started, result.is_err());
                result
            }
        }
    }

    /// Sends commands in one round trip: a pipeline on a single server; on a cluster, where a
    /// pipeline cannot span hash slots, every command at once, each to its own master.
    async fn query_all(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>, StorageError> {
        self.timed(self.query_all_untimed(cmds)).await
    }

    async fn query_all_untimed(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>, StorageError> {
        match &self.conn {
            Conn::Single(conn) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                Ok(pipe.query_async(&mut conn.clone()).await?)
            }
            Conn::Cluster(conn) => join_all(cmds.into_iter().map(|cmd| {
                let mut conn = conn.clone();
                async move { cmd.query_async::<Value>(&mut conn).await }
            }))
            .await
            .into_iter()
            .map(|reply| reply.map_err(StorageError::from))
            .collect(),
        }
    }

    /// Every key matching `pattern` on one server, or on every master of a cluster (the
    /// masters as the servers see them, not as the client last did: a master the client has
    /// dropped must fail the scan, not shorten it).
    async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = match self.masters().await? {
            None => self.scan_node(None, pattern).await?,
            Some(masters) => {
                let pages = join_all(
                    masters
                        .iter()
                        .map(|master| self.scan_node(Some(master), pattern)),
                )
                .await;
                let mut keys = Vec::new();
                for page in pages {
                    keys.extend(page?);
                }
                keys
            }
        };
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Every key matching `pattern` on one node: a single server (`master` = `None`) or the
    /// cluster master at this (host, port). SCAN cursors belong to one node, so each node is
    /// walked on its own.
    async fn scan_node(
        &self,
        master: Option<&(String, u16)>,
        pattern: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let page = self.on_node(master, scan).await?;
            let (next, batch): (u64, Vec<String>) = redis::from_redis_value(page)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

impl RedisStore {
    /// The masters of the cluster as the servers see them (`CLUSTER SLOTS`); `None` for one
    /// server.
    async fn masters(&self) -> Result<Option<Vec<(String, u16)>>, StorageError> {
        match &self.conn {
            Conn::Single(_) => Ok(None),
            Conn::Cluster(conn) => {
                let slots = conn
                    .clone()
                    .route_command(
                        redis::cmd("CLUSTER").arg("SLOTS").to_owned(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                    )
                    .await?;
                Ok(Some(cluster_masters(slots)?))
            }
        }
    }

    /// Runs `cmd` on one server, or on the cluster master at (host, port).
    async fn on_node(
        &self,
        master: Option<&(String, u16)>,
        cmd: Cmd,
    ) -> Result<Value, StorageError> {
        match (&self.conn, master) {
            (Conn::Cluster(conn), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                Ok(conn
                    .clone()
                    .route_command(cmd, routing)
                    .await?
                    .extract_error()?)
            }
            _ => self.query(&cmd).await,
        }
    }

    /// What one node says of itself.
    async fn node_facts(
        &self,
        master: Option<&(String, u16)>,
    ) -> Result<ServerFacts, StorageError> {
        let info: String =
            redis::from_redis_value(self.on_node(master, redis::cmd("INFO").to_owned()).await?)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let mut scripts = Ok(());
        for source in [
            RESERVE_SCRIPT,
            REFUND_SCRIPT,
            HREPLACE_SCRIPT,
            HDEL_IF_SCRIPT,
            HSET_UNTIL_SCRIPT,
        ] {
            let load = redis::cmd("SCRIPT").arg("LOAD").arg(source).to_owned();
            if let Err(err) = self.on_node(master, load).await {
                scripts = Err(err.to_string());
                break;
            }
        }
        let save = self
            .on_node(
                master,
                redis::cmd("CONFIG").arg("GET").arg("save").to_owned(),
            )
            .await
            .ok()
            .and_then(|reply| redis::from_redis_value::<Vec<String>>(reply).ok())
            .and_then(|pair| pair.get(1).cloned());
        let aof = field("aof_enabled") == "1";
        Ok(ServerFacts {
            node: master
                .map(|(host, port)| format!("{host}:{port}"))
                .unwrap_or_default(),
            version: field("redis_version"),
            scripts,
            maxmemory_policy: field("maxmemory_policy"),
            persistent: match save {
                Some(save) => Some(aof || !save.trim().is_empty()),
                None if aof => Some(true),
                None => None,
            },
        })
    }
}

/// The distinct masters of a `CLUSTER SLOTS` reply, as (host, port); an error unless they
/// serve every slot between them.
fn cluster_masters(slots: Value) -> Result<Vec<(String, u16)>, StorageError> {
    const SLOTS: i64 = 16_384;
    let unexpected = || StorageError::Redis("unexpected CLUSTER SLOTS reply".to_owned());
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(slots)?;
    let mut masters: Vec<(String, u16)> = Vec::new();
    let mut covered = 0;
    for range in ranges {
        let [start, end, master, ..] = range.as_slice() else {
            return Err(unexpected());
        };
        let (start, end): (i64, i64) = (
            redis::from_redis_value_ref(start)?,
            redis::from_redis_value_ref(end)?,
        );
        let (host, port): (String, u16) = match master {
            Value::Array(node) if node.len() >= 2 => (
                redis::from_redis_value_ref(&node[0])?,
                redis::from_redis_value_ref(&node[1])?,
            ),
            _ => return Err(unexpected()),
        };
        if host.is_empty() || host == "?" {
            return Err(StorageError::Redis(
                "a cluster master's address is not known yet".to_owned(),
            ));
        }
        covered += end - start + 1;
        if !masters.contains(&(host.clone(), port)) {
            masters.push((host, port));
        }
    }
    if covered != SLOTS {
        return Err(StorageError::Redis(format!(
            "the cluster serves {covered} of its {SLOTS} slots, so a scan would miss keys"
        )));
    }
    Ok(masters)
}

fn window_arg(window: QuotaWindow) -> &'static str {
    match window {
        QuotaWindow::Fixed => "fixed",
        QuotaWindow::Rolling => "rolling",
    }
}

impl StorageBackend for RedisStore {
    fn server_facts(&self) -> BoxFuture<'_, Result<Vec<ServerFacts>, StorageError>> {
        Box::pin(async move {
            match self.masters().await? {
                None => Ok(vec![self.node_facts(None).await?]),
                Some(masters) => {
                    let mut facts = Vec::new();
                    for master in &masters {
                        facts.push(self.node_facts(Some(master)).await?);
                    }
                    Ok(facts)
                }
            }
        })
    }

    fn kind(&self) -> BackendKind {
        match self.conn {
            Conn::Single(_) => BackendKind::Redis,
            Conn::Cluster(_) => BackendKind::RedisCluster,
        }
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move { self.query::<String>(&redis::cmd("PING")).await.map(drop) })
    }

    fn hget<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async move { self.query(redis::cmd("HGET").arg(key).arg(field)).await })
    }

    fn hset<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            self.query::<i64>(redis::cmd("HSET").arg(key).arg(field).arg(value))
                .await?;
            self.confirm(key).await
        })
    }

    fn hset_nx<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let added = self
                .query(redis::cmd("HSETNX").arg(key).arg(field).arg(value))
                .await?;
            self.confirm(key).await?;
            Ok(added)
        })
    }

    fn hreplace<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let replaced = self
                .eval(&self.hreplace, key, &[field, expected, value])
                .await?;
            self.confirm(key).await?;
            Ok(replaced)
        })
    }

    fn hdel_if<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let removed = self.eval(&self.hdel_if, key, &[field, expected]).await?;
            self.confirm(key).await?;
            Ok(removed)
        })
    }

    fn hdel<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let removed = self.query(redis::cmd("HDEL").arg(key).arg(field)).await?;
            self.confirm(key).await?;
            Ok(removed)
        })
    }

    fn hlen<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move { self.query(redis::cmd("HLEN").arg(key)).await })
    }

    fn hgetall<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        Box::pin(async move {
            let mut entries: Vec<(String, String)> =
                self.query(redis::cmd("HGETALL").arg(key)).await?;
            entries.sort();
            Ok(entries)
        })
    }

    fn hrandfield<'a>(
        &'a self,
        key: &'a str,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        Box::pin(async move {
            self.query(
                redis::cmd("HRANDFIELD")
                    .arg(key)
                    .arg(count)
                    .arg("WITHVALUES"),
            )
            .await
        })
    }

    fn del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let deleted = self.query(redis::cmd("DEL").arg(key)).await?;
            self.confirm(key).await?;
            Ok(deleted)
        })
    }

    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        Box::pin(self.scan_keys(pattern))
    }

    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest,
    ) -> BoxFuture<'a, Result<ResolveReply, StorageError>> {
        Box::pin(async move {
            let mut cmds = Vec::with_capacity(3 + request.pools.len() + request.pool_benches.len());
            if let Some((key, field)) = &request.user {
                let mut cmd = redis::cmd("HGET");
                cmd.arg(key).arg(field);
                cmds.push(cmd);
            }
            if let Some((key, fields)) = &request.user_settings {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(key).arg(fields);
                cmds.push(cmd);
            }
            for pool in &request.pools {
                let mut cmd = redis::cmd("HRANDFIELD");
                cmd.arg(pool).arg(request.sample).arg("WITHVALUES");
                cmds.push(cmd);
            }
            if let Some((key, fields)) = &request.pool_limits {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(key).arg(fields);
                cmds.push(cmd);
            }
            // The benches ride in the same pipeline (on a cluster, the same parallel batch).
            for bench in &request.pool_benches {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(bench);
                cmds.push(cmd);
            }
            let mut replies = self.query_all(cmds).await?.into_iter();
            let mut reply = ResolveReply::default();
            if request.user.is_some() {
                let value = replies.next().unwrap_or(Value::Nil);
                reply.user = redis::from_redis_value(value)?;
            }
            if request.user_settings.is_some() {
                let value = replies.next().unwrap_or(Value::Nil);
                reply.user_settings = redis::from_redis_value(value)?;
            }
            for _ in &request.pools {
                let value = replies.next().unwrap_or(Value::Nil);
                reply.pools.push(redis::from_redis_value(value)?);
            }
            if request.pool_limits.is_some() {
                let value = replies.next().unwrap_or(Value::Nil);
                reply.pool_limits = redis::from_redis_value(value)?;
            }
            for value in replies {
                reply.pool_benches.push(redis::from_redis_value(value)?);
            }
            Ok(reply)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async move { self.query(redis::cmd("GET").arg(key)).await })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            self.query::<String>(redis::cmd("SET").arg(key).arg(value))
                .await
                .map(drop)
        })
    }

    fn incr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("INCR").arg(key);
            let expire = pipe.cmd("EXPIRE").arg(key).arg(ttl_secs);
            if window == QuotaWindow::Fixed {
                // NX: the window starts at the first use; a counter left without a TTL gets one.
                expire.arg("NX");
            }
            expire.ignore();
            let (count,): (u64,) = pipe.query_async(&mut self.conn()).await?;
            Ok(count)
        })
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<Reservation, StorageError>> {
        Box::pin(async move {
            let (admitted, count): (u8, u64) = self
                .eval(
                    &self.reserve,
                    key,
                    &[
                        &limit.to_string(),
                        &ttl_secs.to_string(),
                        window_arg(window),
                    ],
                )
                .await?;
            Ok(Reservation {
                admitted: admitted == 1,
                count,
            })
        })
    }

    fn refund<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move { self.eval(&self.refund, key, &[]).await })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        Box::pin(async move {
            let ttl: i64 = self.query(redis::cmd("TTL").arg(key)).await?;
            Ok(u64::try_from(ttl).ok())
        })
    }

    fn hset_until<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
        until_ms: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let set: u8 = self
                .eval(
                    &self.hset_until,
                    key,
                    &[field, value, &until_ms.to_string(), &now_ms.to_string()],
                )
                .await?;
            Ok(set == 1)
        })
    }

    fn hincr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        increments: &'a [(String, i64)],
        ttl_secs: u64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (field, by) in increments {
                pipe.cmd("HINCRBY").arg(key).arg(field).arg(*by).ignore();
            }
            pipe.cmd("EXPIRE").arg(key).arg(ttl_secs).ignore();
            let () = pipe.query_async(&mut self.conn()).await?;
            Ok(())
        })
    }
}

// ----- the Lua scripts (the embedded store does the same in SQL) -------------------------------

/// Lua: INCR; over the limit, give the unit back and only repair a missing TTL (a refused try
/// must not push a rolling window out); else refresh (rolling) or set (fixed) the TTL.
const RESERVE_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  if redis.call('TTL', KEYS[1]) == -1 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  return {0, n - 1}
end
if ARGV[3] == 'rolling' or redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {1, n}
";

/// Lua: DECR, but never below zero and never on a missing key.
const REFUND_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

/// Lua: HDEL only when the field still holds the expected value.
const HDEL_IF_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// Lua: [`StorageBackend::hset_until`]. Values are `{unix ms};...`; Lua numbers are doubles,
/// exact for millisecond times.
const HSET_UNTIL_SCRIPT: &str = r"
local untilms = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local set = 1
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local at = tonumber(string.match(current, '^(%d+);'))
  if at and at > now and at >= untilms then
    set = 0
  end
end
if set == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local latest = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local at = tonumber(string.match(all[i + 1], '^(%d+);')) or 0
  if at <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif at > latest then
    latest = at
  end
end
if latest > 0 then
  redis.call('PEXPIREAT', KEYS[1], latest)
end
return set
";

/// Lua: HSET only when the field still holds the expected value.
const HREPLACE_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
";

#[cfg(test)]
mod tests {
    use super::cluster_slot;

    #[test]
    fn cluster_slots_follow_the_specification() {
        // What `CLUSTER KEYSLOT` answered on redis-server 7.0.
        for (key, slot) in [
            ("foo", 12182),
            ("bar", 5061),
            ("somekey", 11058),
            ("foo{hash_tag}", 2515),
            ("{user1000}.following", 3443),
            ("123456789", 12739),
            ("foo{}{bar}", 8363),
        ] {
            assert_eq!(cluster_slot(key), slot, "{key}");
        }
    }
}
