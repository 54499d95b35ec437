//! Counters and histograms, through the `metrics` facade: nothing is recorded unless the host
//! installs a recorder (the bot does, with `STARGAZER_METRICS_ADDR`). Labels never carry a user
//! id, a key id or a secret: only a source, a reason, a result or a backend.

use crate::health::BenchReason;
use crate::storage::BackendKind;
use crate::vault::KeySource;

/// One resolution: where the key came from (`none` when nothing resolved), and how long it took.
pub(crate) fn resolution(source: Option<KeySource>, seconds: f64) {
    let source = source.map_or("none", |source| source.as_str());
    metrics::counter!("stargazer_resolutions_total", "source" => source).increment(1);
    metrics::histogram!("stargazer_resolve_seconds").record(seconds);
}

/// A stored value that did not open.
pub(crate) fn value_unopened() {
    metrics::counter!("stargazer_values_unopened_total").increment(1);
}

/// A quota check or reservation: allowed or refused.
pub(crate) fn quota_check(allowed: bool) {
    let result = if allowed { "allowed" } else { "refused" };
    metrics::counter!("stargazer_quota_checks_total", "result" => result).increment(1);
}

/// A shared-key use given back.
pub(crate) fn use_refunded() {
    metrics::counter!("stargazer_uses_refunded_total").increment(1);
}

/// A pool key benched.
pub(crate) fn pool_bench(reason: BenchReason) {
    metrics::counter!("stargazer_pool_benches_total", "reason" => reason.as_str()).increment(1);
}

/// One call to the storage backend: how long it took, and whether it failed.
pub(crate) fn storage_call(backend: BackendKind, seconds: f64, failed: bool) {
    let backend = match backend {
        BackendKind::Redis => "redis",
        BackendKind::RedisCluster => "redis_cluster",
        BackendKind::Embedded => "embedded",
    };
    metrics::histogram!("stargazer_storage_seconds", "backend" => backend).record(seconds);
    if failed {
        metrics::counter!("stargazer_storage_errors_total", "backend" => backend).increment(1);
    }
}
