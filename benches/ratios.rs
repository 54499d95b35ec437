//! Every target as a ratio, each side timed in alternating blocks against its baseline
//! (see `support::paired`), so load that comes and goes on a shared machine falls on both sides
//! alike. Prints one line per target, marked `met` or `MISSED`.
//!
//! `cargo bench --bench ratios` (all), or `cargo bench --bench ratios -- resolve` (the sections
//! whose name contains the word: `resolve`, `quota`, `concurrency`, `rotation`, `cold`).

mod support;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use stargazer_keys::{Caller, DataKeyStore, Keyring, MasterKey};
use support::crowd::{Crowd, RawRead, USERS, resolve_all};
use support::rewrap::{OWNERS, copy_prepared, prepare};
use support::{CHANNEL, Fixture, NO_LIMIT, POOL_USER, SERVICE, TOOL, USER, paired};

/// Calls per block and blocks per side for the single-call ratios (~2 × 10,000 calls).
const BLOCK: u32 = 500;
const ROUNDS: usize = 21;
/// Rounds of the 64-task comparisons: each side runs one batch of 10,000 resolutions a round.
const CROWD_ROUNDS: usize = 25;

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Prints `what`: `a / b = ratio` and whether it is within `limit`.
fn report(what: &str, a: Duration, b: Duration, limit: f64) {
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    let verdict = if ratio <= limit { "met" } else { "MISSED" };
    println!(
        "{what:<48} {:>10} / {:>10} = {ratio:.2}   (target ≤ {limit}: {verdict})",
        micros(a),
        micros(b)
    );
}

/// Prints a diagnostic ratio (no target).
fn explain(what: &str, a: Duration, b: Duration) {
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  {what:<46} {:>10} / {:>10} = {ratio:.2}",
        micros(a),
        micros(b)
    );
}

fn resolve_and_quota(rt: &tokio::runtime::Runtime, sections: &[String]) {
    let fx = Fixture::start(rt, 10_000);
    let (vault, raw) = (&fx.vault, &fx.raw);
    let script = redis::Script::new(support::RESOLVE_SCRIPT);
    let resolve = |user| vault.get_user_api_key(Some(user), SERVICE, Some(CHANNEL), true);
    let pools = fx.pools();
    rt.block_on(async {
        if wanted(sections, "resolve") {
            let (a, b) = paired(
                || resolve(USER),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            report("resolve: user_key / raw_hget", a, b, 1.10);
            let (a, b) = paired(
                || resolve(POOL_USER),
                || support::raw_pipeline3(raw, &fx.pool_user_hash, fx.pools()),
                BLOCK,
                ROUNDS,
            )
            .await;
            report("resolve: global_pool / raw_pipeline3", a, b, 1.20);
            let (a, b) = paired(
                || resolve(POOL_USER),
                || support::raw_pipeline_full(raw, &fx.pool_user_hash, fx.pools()),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain(
                "global_pool / raw_pipeline_full (+ the settings and limits HMGETs)",
                a,
                b,
            );
            let (a, b) = paired(
                || vault.get_user_api_key(Some(USER), SERVICE, None, false),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("user_key without pools / raw_hget", a, b);
            let (a, b) = paired(
                || support::raw_pipeline3(raw, &fx.user_hash, fx.pools()),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw pipeline3 of a user with a key / raw_hget", a, b);
            let (a, b) = paired(
                || support::raw_resolve_script(raw, &script, Some(&fx.user_hash), &pools),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw script, user with a key / raw_hget", a, b);
            let (a, b) = paired(
                || support::raw_resolve_script(raw, &script, Some(&fx.pool_user_hash), &pools),
                || support::raw_pipeline3(raw, &fx.pool_user_hash, fx.pools()),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw script, pool user / raw_pipeline3", a, b);
        }
        if wanted(sections, "flow") {
            // The whole path of a sibling tool's call, the call itself doing nothing.
            let flow = |user_id| async move {
                let caller = Caller::new(user_id, Some(CHANNEL), None);
                vault
                    .with_api_key(&caller, SERVICE, TOOL, |key| async move {
                        Ok::<_, std::convert::Infallible>(key.key.expose().len())
                    })
                    .await
                    .expect("a key, within the limit")
            };
            let (a, b) = paired(
                || flow(USER),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            report("flow: own key / raw_hget", a, b, 1.3);
            let (a, b) = paired(
                || flow(POOL_USER),
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            report("flow: shared key / raw_hget", a, b, 2.3);
        }
        if wanted(sections, "quota") {
            let counter = vault.layout().usage_key(USER, "raw_tool");
            let counter = counter.as_str();
            let check_and_increment = || async {
                let check = vault.check_default_key_limit(USER, TOOL, NO_LIMIT).await;
                if check.allowed {
                    vault.increment_default_key_usage(USER, TOOL).await;
                }
                check
            };
            let (a, b) = paired(
                check_and_increment,
                || support::raw_incr(raw, counter),
                BLOCK,
                ROUNDS,
            )
            .await;
            report("quota: check_and_increment / raw_incr", a, b, 2.3);
            let raw_get_then_count = |atomic| async move {
                (
                    support::raw_get(raw, counter).await,
                    support::raw_count(raw, counter, atomic).await,
                )
            };
            let (a, b) = paired(
                || raw_get_then_count(true),
                || support::raw_incr(raw, counter),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw GET + MULTI INCR EXPIRE NX EXEC / raw_incr", a, b);
            let permit = || async {
                vault
                    .reserve_default_key_use(USER, "image_generation", NO_LIMIT)
                    .await
                    .expect("admitted")
                    .commit()
            };
            let (a, b) = paired(permit, || support::raw_incr(raw, counter), BLOCK, ROUNDS).await;
            explain("permit (reserve + commit) / raw_incr", a, b);
            let (a, b) = paired(
                || raw_get_then_count(false),
                || support::raw_incr(raw, counter),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw GET + INCR EXPIRE NX (no MULTI) / raw_incr", a, b);
            let incr_script = redis::Script::new(support::INCR_SCRIPT);
            let raw_get_then_script = || async {
                (
                    support::raw_get(raw, counter).await,
                    support::raw_incr_script(raw, &incr_script, counter).await,
                )
            };
            let (a, b) = paired(
                raw_get_then_script,
                || support::raw_incr(raw, counter),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain("raw GET + INCR-EXPIRE script / raw_incr", a, b);
        }
    });
}

fn concurrency(rt: &tokio::runtime::Runtime) {
    let crowd = Crowd::start(rt);
    let vault = &crowd.fixture.vault;
    let per_sec = |d: Duration| USERS as f64 / d.as_secs_f64();
    rt.block_on(async {
        let (a, b) = paired(
            || resolve_all(vault, true),
            || crowd.raw_read_all(RawRead::Hget),
            1,
            CROWD_ROUNDS,
        )
        .await;
        let share = per_sec(a) / per_sec(b);
        let verdict = if share >= 0.8 { "met" } else { "MISSED" };
        println!(
            "{:<48} {:>7.0}/s / {:>7.0}/s = {:.0} %   (target ≥ 80 %: {verdict})",
            "concurrency: resolve_64_tasks / raw_hget_64_tasks",
            per_sec(a),
            per_sec(b),
            share * 100.0
        );
        for (what, fallback, read) in [
            ("no pools / raw_hget", false, RawRead::Hget),
            ("with pools / raw pipeline3", true, RawRead::Pipeline3),
        ] {
            let (a, b) = paired(
                || resolve_all(vault, fallback),
                || crowd.raw_read_all(read),
                1,
                CROWD_ROUNDS,
            )
            .await;
            println!(
                "  {what:<46} {:>7.0}/s / {:>7.0}/s = {:.0} %",
                per_sec(a),
                per_sec(b),
                100.0 * per_sec(a) / per_sec(b)
            );
        }
        let (a, b) = paired(
            || crowd.raw_read_all(RawRead::Script),
            || crowd.raw_read_all(RawRead::Hget),
            1,
            CROWD_ROUNDS,
        )
        .await;
        println!(
            "  {:<46} {:>7.0}/s / {:>7.0}/s = {:.0} %",
            "raw script / raw_hget",
            per_sec(a),
            per_sec(b),
            100.0 * per_sec(a) / per_sec(b)
        );
    });
}

fn rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let prepared = dir.path().join("prepared.db");
    prepare(&prepared, &old);
    let keyring = Keyring::new(new, vec![old]);
    let run_db = dir.path().join("run.db");
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            copy_prepared(&prepared, &run_db);
            let store = DataKeyStore::open(&run_db, keyring.clone(), 16).expect("open");
            let start = Instant::now();
            let report = store
                .rotate(|_, _| ControlFlow::Continue(()))
                .expect("rotate");
            assert_eq!(report.rewrapped(), OWNERS);
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[1];
    let verdict = if median < Duration::from_secs(10) {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "{:<48} {:>8.2} s   (target < 10 s: {verdict})",
        "rotation: rewrap 100,000 data keys (median of 3)",
        median.as_secs_f64()
    );
}

/// A resolution whose data key is not cached, so it reads the key store (SQLite or
/// PostgreSQL) as well as Redis: two users resolved in turn by a vault that caches one key.
fn cold(rt: &tokio::runtime::Runtime) {
    let fx = Fixture::start(rt, 1);
    let postgres = stargazer_keys::testkit::PostgresServer::start().expect("start PostgreSQL");
    let url = postgres.fresh_database().expect("a database");
    let other = USER + 1;
    let open = |config: stargazer_keys::Config| {
        rt.block_on(async {
            let vault = support::open_vault(config).await;
            for user in [USER, other] {
                vault
                    .set_user_api_key(user, SERVICE, &support::secret(user))
                    .await
                    .expect("set a key");
            }
            vault
        })
    };
    let mut pg_config = fx.config.clone();
    pg_config.database_url = Some(stargazer_keys::config::DatabaseUrl::parse(&url).unwrap());
    pg_config.key_prefix = "benchpg".to_owned();
    let pg = open(pg_config);
    let mut sqlite_config = fx.config.clone();
    sqlite_config.db_path = fx.dir.path().join("cold.db");
    sqlite_config.key_prefix = "benchsqlite".to_owned();
    let sqlite = open(sqlite_config);
    let raw = &fx.raw;
    rt.block_on(async {
        for (name, vault) in [("PostgreSQL", &pg), ("SQLite", &sqlite)] {
            let turn = std::cell::Cell::new(0u64);
            let (a, b) = paired(
                || {
                    turn.set(turn.get() + 1);
                    let user = if turn.get().is_multiple_of(2) {
                        USER
                    } else {
                        other
                    };
                    vault.get_user_api_key(Some(user), SERVICE, None, false)
                },
                || support::raw_hget(raw, &fx.user_hash, SERVICE),
                BLOCK,
                ROUNDS,
            )
            .await;
            explain(
                &format!("cold user_key ({name} key store) / raw_hget"),
                a,
                b,
            );
        }
    });
}

fn wanted(sections: &[String], name: &str) -> bool {
    sections.is_empty() || sections.iter().any(|s| name.contains(s.as_str()))
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument picks sections.
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let rt = support::runtime();
    if wanted(&sections, "resolve") || wanted(&sections, "flow") || wanted(&sections, "quota") {
        resolve_and_quota(&rt, &sections);
    }
    if wanted(&sections, "concurrency") {
        concurrency(&rt);
    }
    if wanted(&sections, "rotation") {
        rotation();
    }
    if wanted(&sections, "cold") {
        cold(&rt);
    }
}
