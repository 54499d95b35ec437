//! 64 tasks resolving the keys of 10,000 distinct users, against 64 tasks sending raw HGETs of
//! the same hashes over the same kind of connection.
//!
//! `cargo bench --bench concurrency`. Target: `resolve_64_tasks` throughput ≥ 70 % of
//! `raw_hget_64_tasks`. `resolve_64_tasks_cold` starts each iteration with an empty data-key
//! cache (a freshly opened vault), so every resolution also reads and unwraps a data key.

mod support;

use std::time::{Duration, Instant};

use criterion::{SamplingMode, Throughput, criterion_group, criterion_main};
use support::crowd::{Crowd, RawRead, USERS, resolve_all};

fn concurrency(c: &mut criterion::Criterion) {
    let rt = support::runtime();
    let crowd = Crowd::start(&rt);
    let (vault, config) = (&crowd.fixture.vault, &crowd.fixture.config);

    let mut group = c.benchmark_group("concurrency");
    group
        .throughput(Throughput::Elements(USERS))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("raw_hget_64_tasks", |b| {
        b.to_async(&rt).iter(|| crowd.raw_read_all(RawRead::Hget))
    });
    group.bench_function("resolve_64_tasks", |b| {
        b.to_async(&rt).iter(|| resolve_all(vault, true))
    });
    group.bench_function("resolve_64_tasks_cold", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let fresh = support::open_vault(config.clone()).await;
                fresh.storage().ping().await.expect("Redis answers");
                let start = Instant::now();
                let own = resolve_all(&fresh, true).await;
                total += start.elapsed();
                assert_eq!(own, USERS);
            }
            total
        })
    });

    // Diagnostics: the vault without its pool reads, and the raw reads of the vault's pipeline
    // and of the prototype script.
    group.bench_function("diag_resolve_64_tasks_no_pools", |b| {
        b.to_async(&rt).iter(|| resolve_all(vault, false))
    });
    group.bench_function("diag_raw_pipeline3_64_tasks", |b| {
        b.to_async(&rt)
            .iter(|| crowd.raw_read_all(RawRead::Pipeline3))
    });
    group.bench_function("diag_raw_script_64_tasks", |b| {
        b.to_async(&rt).iter(|| crowd.raw_read_all(RawRead::Script))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = concurrency
}
criterion_main!(benches);
