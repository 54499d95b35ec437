//! The Redis backend: one `ConnectionManager` (or a cluster connection), cloned per call,
//! with explicit connect and response timeouts.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::{
    BackendKind, BoxFuture, HREPLACE_SCRIPT, REFUND_SCRIPT, RESERVE_SCRIPT, Reservation,
    ResolveReply, ResolveRequest, StorageBackend, StorageError,
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
    reserve: Script,
    refund: Script,
    hreplace: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one server (one URL) or a cluster (several). A single server is connected
    /// lazily: this succeeds while Redis is down, and the first command reports the outage.
    pub async fn connect(
        urls: &[String],
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let conn = match urls {
            [] => return Err(StorageError::Unsupported("REDIS_URL names no Redis node")),
            [url] => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Conn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            nodes => {
                let client =
                    redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(connect_timeout)
                        .response_timeout(response_timeout)
                        .retries(2)
                        .build()?;
                Conn::Cluster(client.get_async_connection().await?)
            }
        };
        Ok(Self {
            conn,
            reserve: Script::new(RESERVE_SCRIPT),
            refund: Script::new(REFUND_SCRIPT),
            hreplace: Script::new(HREPLACE_SCRIPT),
        })
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StorageError> {
        Ok(cmd.query_async(&mut self.conn()).await?)
    }
}

fn window_arg(window: QuotaWindow) -> &'static str {
    match window {
        QuotaWindow::Fixed => "fixed",
        QuotaWindow::Rolling => "rolling",
    }
}

impl StorageBackend for RedisStore {
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
                .await
                .map(drop)
        })
    }

    fn hset_nx<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            self.query(redis::cmd("HSETNX").arg(key).arg(field).arg(value))
                .await
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
            Ok(self
                .hreplace
                .key(key)
                .arg(field)
                .arg(expected)
                .arg(value)
                .invoke_async(&mut self.conn())
                .await?)
        })
    }

    fn hdel<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move { self.query(redis::cmd("HDEL").arg(key).arg(field)).await })
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
        Box::pin(async move { self.query(redis::cmd("DEL").arg(key)).await })
    }

    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        Box::pin(async move {
            if let Conn::Cluster(_) = self.conn {
                return Err(StorageError::Unsupported(
                    "scanning every node of a Redis Cluster is not supported yet; run this against each master's URL",
                ));
            }
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = self
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
    }

    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest,
    ) -> BoxFuture<'a, Result<ResolveReply, StorageError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            if let Some((key, field)) = &request.user {
                pipe.cmd("HGET").arg(key).arg(field);
            }
            for pool in &request.pools {
                pipe.cmd("HRANDFIELD")
                    .arg(pool)
                    .arg(request.sample)
                    .arg("WITHVALUES");
            }
            let mut replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
            let mut reply = ResolveReply::default();
            let mut replies = replies.drain(..);
            if request.user.is_some() {
                let value = replies.next().unwrap_or(Value::Nil);
                reply.user = redis::from_redis_value(value)?;
            }
            for value in replies {
                reply.pools.push(redis::from_redis_value(value)?);
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
                .reserve
                .key(key)
                .arg(limit)
                .arg(ttl_secs)
                .arg(window_arg(window))
                .invoke_async(&mut self.conn())
                .await?;
            Ok(Reservation {
                admitted: admitted == 1,
                count,
            })
        })
    }

    fn refund<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move { Ok(self.refund.key(key).invoke_async(&mut self.conn()).await?) })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        Box::pin(async move {
            let ttl: i64 = self.query(redis::cmd("TTL").arg(key)).await?;
            Ok(u64::try_from(ttl).ok())
        })
    }
}
