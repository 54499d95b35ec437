//! The shared-key quota against a raw INCR over the same kind of connection.
//!
//! `cargo bench --bench quota`. Target: `check_and_increment` ≤ 2.3 × `raw_incr`. The `diag_*`
//! figures send the same commands raw, to split the protocol's cost from the vault's own.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main};
use support::{Fixture, NO_LIMIT, TOOL, USER};

const PERMIT_TOOL: &str = "image_generation";

fn quota(c: &mut criterion::Criterion) {
    let rt = support::runtime();
    let fx = Fixture::start(&rt, 10_000);
    let (vault, raw) = (&fx.vault, &fx.raw);
    let counter = vault.layout().usage_key(USER, "raw_tool");
    rt.block_on(async {
        // Each path reaches Redis: a failure would be swallowed (fail-open) and look fast.
        vault.increment_default_key_usage(USER, TOOL).await;
        let check = vault.check_default_key_limit(USER, TOOL, NO_LIMIT).await;
        assert_eq!(check.current, 1);
        let permit = vault
            .reserve_default_key_use(USER, PERMIT_TOOL, NO_LIMIT)
            .await
            .expect("admitted");
        assert!(permit.is_recorded());
        permit.commit();
    });

    let mut group = c.benchmark_group("quota");
    group.bench_function("raw_incr", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::raw_incr(raw, &counter).await) })
    });
    group.bench_function("check_and_increment", |b| {
        b.to_async(&rt).iter(|| async {
            let check = vault.check_default_key_limit(USER, TOOL, NO_LIMIT).await;
            if check.allowed {
                vault.increment_default_key_usage(USER, TOOL).await;
            }
            black_box(check)
        })
    });
    group.bench_function("permit", |b| {
        b.to_async(&rt).iter(|| async {
            vault
                .reserve_default_key_use(USER, PERMIT_TOOL, NO_LIMIT)
                .await
                .expect("admitted")
                .commit()
        })
    });

    // Diagnostics: the commands of `check_and_increment`, sent raw, and two other ways to count.
    group.bench_function("diag_raw_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::raw_get(raw, &counter).await) })
    });
    group.bench_function("diag_raw_multi_incr_expire_nx", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::raw_count(raw, &counter, true).await) })
    });
    group.bench_function("diag_raw_get_then_multi", |b| {
        b.to_async(&rt).iter(|| async {
            black_box((
                support::raw_get(raw, &counter).await,
                support::raw_count(raw, &counter, true).await,
            ))
        })
    });
    group.bench_function("diag_raw_pipeline_incr_expire_nx", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::raw_count(raw, &counter, false).await) })
    });
    let incr_script = redis::Script::new(support::INCR_SCRIPT);
    group.bench_function("diag_raw_incr_expire_script", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(support::raw_incr_script(raw, &incr_script, &counter).await)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = quota
}
criterion_main!(benches);
