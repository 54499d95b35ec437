//! Key resolution against raw Redis reads of the same keys over the same kind of connection.
//!
//! `cargo bench --bench resolve`. Targets: `user_key` ≤ 1.3 × `raw_hget`,
//! `global_pool` ≤ 1.3 × `raw_pipeline3`. The `diag_*` figures show where the difference goes.

mod support;

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main};
use rusqlite::{Connection, OptionalExtension};
use stargazer_keys::KeySource;
use stargazer_keys::testkit::{SealContext, StoredValue};
use support::{CHANNEL, Fixture, POOL_USER, SERVICE, USER};

fn select_value(conn: &Connection, key: &str, field: &str) -> Option<String> {
    conn.prepare_cached("SELECT value FROM kv_hash WHERE key = ?1 AND field = ?2")
        .and_then(|mut stmt| stmt.query_row([key, field], |row| row.get(0)).optional())
        .expect("SELECT")
}

fn resolve(c: &mut criterion::Criterion) {
    let rt = support::runtime();
    let fx = Fixture::start(&rt, 10_000);
    let embedded = fx.embedded(&rt);
    let (vault, raw) = (&fx.vault, &fx.raw);
    let script = redis::Script::new(support::RESOLVE_SCRIPT);

    // Each path resolves as intended, and its data key is in the cache from here on.
    rt.block_on(async {
        for (vault, user, source) in [
            (vault, USER, KeySource::User),
            (vault, POOL_USER, KeySource::GlobalPool),
            (&embedded, USER, KeySource::User),
        ] {
            let found = vault
                .get_user_api_key(Some(user), SERVICE, Some(CHANNEL), true)
                .await
                .expect("a key resolves");
            assert_eq!(found.source(), source);
        }
        let (user, channel, global) =
            support::raw_pipeline3(raw, &fx.pool_user_hash, fx.pools()).await;
        assert!(user.is_none() && channel.is_empty());
        assert_eq!(global.len(), support::GLOBAL_POOL_KEYS);
        let (source, strings) =
            support::raw_resolve_script(raw, &script, Some(&fx.user_hash), &fx.pools()).await;
        assert_eq!((source, strings.len()), (0, 1));
        let (source, strings) =
            support::raw_resolve_script(raw, &script, Some(&fx.pool_user_hash), &fx.pools()).await;
        assert_eq!((source, strings.len()), (2, 2 * support::GLOBAL_POOL_KEYS));
    });

    let mut group = c.benchmark_group("resolve");
    group.bench_function("raw_hget", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::raw_hget(raw, &fx.user_hash, SERVICE).await) })
    });
    group.bench_function("user_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                vault
                    .get_user_api_key(Some(USER), SERVICE, Some(CHANNEL), true)
                    .await,
            )
        })
    });
    group.bench_function("raw_pipeline3", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(support::raw_pipeline3(raw, &fx.pool_user_hash, fx.pools()).await)
        })
    });
    group.bench_function("global_pool", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                vault
                    .get_user_api_key(Some(POOL_USER), SERVICE, Some(CHANNEL), true)
                    .await,
            )
        })
    });
    group.bench_function("embedded_user_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                embedded
                    .get_user_api_key(Some(USER), SERVICE, Some(CHANNEL), true)
                    .await,
            )
        })
    });

    // Diagnostics: where the time of the figures above goes.
    group.bench_function("diag_user_key_no_pools", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                vault
                    .get_user_api_key(Some(USER), SERVICE, None, false)
                    .await,
            )
        })
    });
    group.bench_function("diag_raw_pipeline3_user", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(support::raw_pipeline3(raw, &fx.user_hash, fx.pools()).await)
        })
    });
    group.bench_function("diag_raw_script_user", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                support::raw_resolve_script(raw, &script, Some(&fx.user_hash), &fx.pools()).await,
            )
        })
    });
    group.bench_function("diag_raw_script_global_pool", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                support::raw_resolve_script(raw, &script, Some(&fx.pool_user_hash), &fx.pools())
                    .await,
            )
        })
    });
    let sealed = rt
        .block_on(support::raw_hget(raw, &fx.user_hash, SERVICE))
        .expect("the user's sealed value");
    let owner = USER.to_string();
    let data_key = vault.data_keys().cached(&owner).expect("a cached data key");
    let context = SealContext {
        prefix: vault.layout().prefix(),
        owner: &owner,
        service: SERVICE,
        key_id: None,
    };
    group.bench_function("diag_open_sealed", |b| {
        b.iter(|| {
            let value = StoredValue::parse(black_box(&sealed)).expect("parse");
            black_box(value.open(Some(&data_key), &context).expect("open"))
        })
    });
    group.bench_function("diag_data_key_cache_hit", |b| {
        b.iter(|| black_box(vault.data_keys().cached(black_box(&owner))))
    });
    let embedded_db = &embedded.config().db_path;
    let embedded_user_hash = embedded.layout().user_keys_key(USER);
    let direct = Connection::open(embedded_db).expect("open the embedded file");
    group.bench_function("diag_embedded_raw_select", |b| {
        b.iter(|| black_box(select_value(&direct, &embedded_user_hash, SERVICE)))
    });
    // The embedded backend's pool draw binds its LIMIT: SQLite then re-prepares the statement
    // on every run (a bound LIMIT is a planner input), where a literal LIMIT does not.
    let draw = |sql: &str, key: &str, limit: Option<i64>| -> usize {
        let mut stmt = direct.prepare_cached(sql).expect("prepare");
        let rows = match limit {
            Some(limit) => stmt.query(rusqlite::params![key, limit]),
            None => stmt.query([key]),
        };
        let mut rows = rows.expect("query");
        let mut n = 0;
        while rows.next().expect("row").is_some() {
            n += 1;
        }
        n
    };
    let pool_keys = [
        embedded.layout().channel_pool_key(CHANNEL, SERVICE),
        embedded.layout().global_pool_key(SERVICE),
    ];
    group.bench_function("diag_embedded_raw_draw_bound_limit", |b| {
        b.iter(|| {
            for key in &pool_keys {
                black_box(draw(
                    "SELECT field, value FROM kv_hash WHERE key = ?1 ORDER BY random() LIMIT ?2",
                    key,
                    Some(support::POOL_SAMPLE as i64),
                ));
            }
        })
    });
    group.bench_function("diag_embedded_raw_draw_literal_limit", |b| {
        b.iter(|| {
            for key in &pool_keys {
                black_box(draw(
                    "SELECT field, value FROM kv_hash WHERE key = ?1 ORDER BY random() LIMIT 8",
                    key,
                    None,
                ));
            }
        })
    });
    let shared = Arc::new(Mutex::new(
        Connection::open(embedded_db).expect("open the embedded file"),
    ));
    group.bench_function("diag_embedded_raw_select_spawn_blocking", |b| {
        b.to_async(&rt).iter(|| {
            let (shared, key) = (Arc::clone(&shared), embedded_user_hash.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let conn = shared.lock().expect("lock");
                    select_value(&conn, &key, SERVICE)
                })
                .await
                .expect("join")
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = resolve
}
criterion_main!(benches);
