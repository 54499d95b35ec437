//! The daily quota on shared keys, against a real redis-server and the embedded SQLite store:
//! counting, atomic permits, the fixed and rolling windows, who the limit applies to, fail-open
//! when Redis is down, the operator's usage view, and the sentences users see.

mod support;
use support::*;

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stargazer_keys::ToolUsage;
use stargazer_keys::human_duration;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{
    Catalogue, KeyVault, LimitCheck, LimitReached, QuotaPermit, Service, ServiceId, ToolName,
    default_key_limit_error, missing_api_key_error,
};
use tokio::sync::Barrier;

const USER: u64 = 4242;
const TOOL: &str = "web_search";
/// A counter's TTL just after it was set: a day, give or take the second it takes to read it.
const FRESH_TTL: RangeInclusive<u64> = 86_399..=86_400;
/// Two whole seconds between uses, so TTLs in whole seconds differ on both backends.
const BETWEEN_USES: Duration = Duration::from_millis(2_100);
/// What a fail-open call may take with Redis down: well inside Discord's 3 s to answer.
const QUICKLY: Duration = Duration::from_secs(1);

// ----- helpers ----------------------------------------------------------------------------

/// A use of a shared key, counted after the fact or reserved up front.
#[derive(Debug, Clone, Copy)]
enum Use {
    Increment,
    Reservation,
}

async fn use_once(vault: &KeyVault, how: Use) {
    match how {
        Use::Increment => vault.increment_default_key_usage(USER, TOOL).await,
        Use::Reservation => vault
            .reserve_default_key_use(USER, TOOL, None)
            .await
            .expect("under the limit")
            .commit(),
    }
}

/// A fixture with this `QUOTA_WINDOW`, or the default one.
async fn fixture_with_window(backend: Backend, window: Option<&str>) -> Fixture {
    let builder = Fixture::builder(backend);
    match window {
        Some(window) => builder.env("QUOTA_WINDOW", window),
        None => builder,
    }
    .open()
    .await
}

fn usage_key(fixture: &Fixture) -> String {
    fixture.vault.layout().usage_key(USER, TOOL)
}

/// The counter's TTL, read from storage.
async fn ttl(fixture: &Fixture) -> Option<u64> {
    fixture
        .storage()
        .ttl(&usage_key(fixture))
        .await
        .expect("storage answers")
}

async fn uses(fixture: &Fixture, count: usize) {
    for _ in 0..count {
        fixture.vault.increment_default_key_usage(USER, TOOL).await;
    }
}

async fn check(vault: &KeyVault) -> LimitCheck {
    vault.check_default_key_limit(USER, TOOL, None).await
}

/// `calls` reservations of the default limit, all released at once from their own tasks.
async fn reserve_concurrently(
    vault: &KeyVault,
    calls: usize,
) -> (Vec<QuotaPermit>, Vec<LimitReached>) {
    let start = Arc::new(Barrier::new(calls));
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let (vault, start) = (vault.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                vault.reserve_default_key_use(USER, TOOL, None).await
            })
        })
        .collect();
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.expect("the task finishes") {
            Ok(permit) => admitted.push(permit),
            Err(reached) => refused.push(reached),
        }
    }
    (admitted, refused)
}

/// The counter's TTL right after a first use, [`BETWEEN_USES`] later, and right after a
/// second use then.
async fn ttls_around_a_later_use(backend: Backend, window: Option<&str>, how: Use) -> [u64; 3] {
    let fixture = fixture_with_window(backend, window).await;
    use_once(&fixture.vault, how).await;
    let first = ttl(&fixture).await.expect("the first use sets a TTL");
    tokio::time::sleep(BETWEEN_USES).await;
    let before = ttl(&fixture).await.expect("the TTL is still there");
    use_once(&fixture.vault, how).await;
    let after = ttl(&fixture).await.expect("the TTL is still there");
    [first, before, after]
}

/// With no `QUOTA_WINDOW`: the window is fixed.
async fn assert_fixed_window_keeps_the_first_ttl(backend: Backend, how: Use) {
    let [first, before, after] = ttls_around_a_later_use(backend, None, how).await;

    assert!(FRESH_TTL.contains(&first), "first use: TTL {first}");
    assert!(
        after <= before,
        "{how:?} moved the TTL from {before} to {after}"
    );
    assert!(
        after < first,
        "TTL {after} after a later {how:?}, {first} at first"
    );
}

async fn assert_rolling_window_refreshes_the_ttl(backend: Backend, how: Use) {
    let [first, before, after] = ttls_around_a_later_use(backend, Some("rolling"), how).await;

    assert!(FRESH_TTL.contains(&first), "first use: TTL {first}");
    assert!(
        before < first,
        "the TTL did not run down: {first} then {before}"
    );
    assert!(
        FRESH_TTL.contains(&after),
        "{how:?} left the TTL at {after}"
    );
}

/// A counter at 5 with no expiry (a crash between INCR and EXPIRE) gets a day's TTL from the
/// next use, in both windows.
async fn assert_next_use_sets_the_missing_ttl(backend: Backend, how: Use) {
    for window in ["fixed", "rolling"] {
        let fixture = fixture_with_window(backend, Some(window)).await;
        fixture
            .storage()
            .set(&usage_key(&fixture), "5")
            .await
            .expect("storage answers");
        assert_eq!(ttl(&fixture).await, None, "the raw counter has no expiry");

        use_once(&fixture.vault, how).await;

        let after = ttl(&fixture).await;
        assert!(
            after.is_some_and(|t| FRESH_TTL.contains(&t)),
            "{window} window, {how:?}: TTL {after:?}"
        );
        assert_eq!(
            check(&fixture.vault).await.current,
            6,
            "{window} window, {how:?}"
        );
    }
}

/// Whether the limit applies to a user whose privilege mask is `mask` (`None`: no mask).
async fn limit_applies_with_mask(backend: Backend, mask: Option<&str>) -> bool {
    let fixture = Fixture::new(backend).await;
    if let Some(mask) = mask {
        fixture
            .storage()
            .set(&fixture.vault.layout().privileges_key(USER), mask)
            .await
            .expect("storage answers");
    }
    fixture
        .vault
        .default_key_limit_applies(Some(USER), false)
        .await
}

// ----- reservations -----------------------------------------------------------------------

contract!(
    concurrent_reservations_admit_exactly_the_limit,
    |backend| async move {
        // A generous response timeout: under load a timed-out call would fail open and admit.
        let fixture = Fixture::builder(backend)
            .env("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS", "10000")
            .open()
            .await;

        let (admitted, refused) = reserve_concurrently(&fixture.vault, 200).await;

        assert_eq!(admitted.len(), 20);
        assert_eq!(refused.len(), 180);
        assert!(admitted.iter().all(|p| p.is_recorded() && p.limit == 20));
        let mut counts: Vec<u64> = admitted.iter().map(|p| p.count).collect();
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=20).collect::<Vec<u64>>(),
            "each permit has its own unit"
        );
        assert!(refused.iter().all(|r| r.current == 20 && r.limit == 20));
        assert_eq!(
            check(&fixture.vault).await,
            LimitCheck {
                allowed: false,
                current: 20,
                limit: 20
            }
        );
        assert_eq!(
            fixture.dump().await,
            [(usage_key(&fixture), String::new(), "20".to_owned())]
        );
        admitted.into_iter().for_each(QuotaPermit::commit);
    }
);

contract!(
    refunding_permits_gives_their_uses_back,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("STARGAZER_REDIS_RESPONSE_TIMEOUT_MS", "10000")
            .open()
            .await;
        let (mut admitted, _) = reserve_concurrently(&fixture.vault, 200).await;
        assert_eq!(admitted.len(), 20);

        for permit in admitted.drain(..5) {
            permit.refund().await;
        }

        assert_eq!(
            check(&fixture.vault).await,
            LimitCheck {
                allowed: true,
                current: 15,
                limit: 20
            }
        );
        let next = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, None)
            .await
            .expect("a refunded use can be taken again");
        assert_eq!(next.count, 16);
        next.commit();
        admitted.into_iter().for_each(QuotaPermit::commit);
    }
);

contract!(
    a_refund_never_takes_the_counter_below_zero,
    |backend| async move {
        let fixture = Fixture::new(backend).await;
        let mut permits = Vec::new();
        for _ in 0..3 {
            permits.push(
                fixture
                    .vault
                    .reserve_default_key_use(USER, TOOL, None)
                    .await
                    .expect("under the limit"),
            );
        }
        assert!(
            fixture
                .vault
                .reset_default_key_usage(USER, TOOL)
                .await
                .expect("storage answers")
        );

        for permit in permits {
            permit.refund().await;
        }

        assert_eq!(check(&fixture.vault).await.current, 0);
        let raw = fixture.storage().get(&usage_key(&fixture)).await.unwrap();
        assert!(
            matches!(raw.as_deref(), None | Some("0")),
            "counter {raw:?}"
        );
        let next = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, None)
            .await
            .expect("under the limit");
        assert_eq!(next.count, 1, "the refunds left no debt");
        next.commit();
    }
);

contract!(
    a_reservation_over_the_limit_says_the_count_limit_and_reset_time,
    |backend| async move {
        let fixture = Fixture::new(backend).await;
        for _ in 0..3 {
            fixture
                .vault
                .reserve_default_key_use(USER, TOOL, Some(3))
                .await
                .expect("under the limit")
                .commit();
        }

        let refused = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, Some(3))
            .await
            .expect_err("the fourth use is over the limit");

        assert_eq!((refused.current, refused.limit), (3, 3));
        let resets_in = refused.resets_in.expect("the counter has a TTL").as_secs();
        assert!(FRESH_TTL.contains(&resets_in), "resets in {resets_in} s");
        assert_eq!(
            check(&fixture.vault).await.current,
            3,
            "a refusal counts nothing"
        );
    }
);

// ----- windows ----------------------------------------------------------------------------

contract!(
    by_default_a_later_increment_keeps_the_ttl_of_the_first_use,
    |backend| assert_fixed_window_keeps_the_first_ttl(backend, Use::Increment)
);

contract!(
    by_default_a_later_reservation_keeps_the_ttl_of_the_first_use,
    |backend| assert_fixed_window_keeps_the_first_ttl(backend, Use::Reservation)
);

contract!(
    in_a_rolling_window_a_later_increment_refreshes_the_ttl,
    |backend| assert_rolling_window_refreshes_the_ttl(backend, Use::Increment)
);

contract!(
    in_a_rolling_window_a_later_reservation_refreshes_the_ttl,
    |backend| assert_rolling_window_refreshes_the_ttl(backend, Use::Reservation)
);

contract!(
    a_counter_left_without_ttl_gets_one_on_the_next_increment,
    |backend| assert_next_use_sets_the_missing_ttl(backend, Use::Increment)
);

contract!(
    a_counter_left_without_ttl_gets_one_on_the_next_reservation,
    |backend| assert_next_use_sets_the_missing_ttl(backend, Use::Reservation)
);

contract!(
    in_a_rolling_window_a_refused_reservation_does_not_push_the_reset_out,
    |backend| async move {
        let fixture = fixture_with_window(backend, Some("rolling")).await;
        let key = fixture.vault.layout().usage_key(USER, TOOL);
        for _ in 0..3 {
            fixture
                .vault
                .reserve_default_key_use(USER, TOOL, Some(3))
                .await
                .expect("under the limit")
                .commit();
        }
        tokio::time::sleep(BETWEEN_USES).await;
        let before = fixture.storage().ttl(&key).await.unwrap().unwrap();
        let refused = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, Some(3))
            .await
            .expect_err("over the limit");
        let after = fixture.storage().ttl(&key).await.unwrap().unwrap();
        assert!(
            after <= before,
            "the refused try moved the TTL from {before} to {after}"
        );
        assert_eq!((refused.current, refused.limit), (3, 3));
    }
);

contract!(
    tool_names_beyond_service_id_rules_are_still_counted,
    |backend| async move {
        let fixture = Fixture::new(backend).await;
        for tool in [
            "WebSearch",
            "a_tool_name_that_is_longer_than_thirty_two_characters",
        ] {
            for _ in 0..2 {
                fixture
                    .vault
                    .reserve_default_key_use(USER, tool, Some(2))
                    .await
                    .expect("under the limit")
                    .commit();
            }
            assert!(
                fixture
                    .vault
                    .reserve_default_key_use(USER, tool, Some(2))
                    .await
                    .is_err(),
                "{tool} was not limited"
            );
        }
    }
);

// ----- checks and limits ------------------------------------------------------------------

contract!(
    with_no_counter_the_check_allows_with_the_default_limit_of_20,
    |backend| async move {
        let fixture = Fixture::new(backend).await;

        assert_eq!(
            check(&fixture.vault).await,
            LimitCheck {
                allowed: true,
                current: 0,
                limit: 20
            }
        );
    }
);

contract!(
    the_check_allows_the_20th_use_and_refuses_the_21st,
    |backend| async move {
        let fixture = Fixture::new(backend).await;

        uses(&fixture, 19).await;
        let after_19 = check(&fixture.vault).await;
        uses(&fixture, 1).await;
        let after_20 = check(&fixture.vault).await;

        assert_eq!(
            after_19,
            LimitCheck {
                allowed: true,
                current: 19,
                limit: 20
            }
        );
        assert_eq!(
            after_20,
            LimitCheck {
                allowed: false,
                current: 20,
                limit: 20
            }
        );
    }
);

contract!(
    default_key_daily_limit_sets_every_tools_limit,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("DEFAULT_KEY_DAILY_LIMIT", "5")
            .open()
            .await;

        uses(&fixture, 5).await;

        assert_eq!(
            check(&fixture.vault).await,
            LimitCheck {
                allowed: false,
                current: 5,
                limit: 5
            }
        );
        let other = fixture
            .vault
            .check_default_key_limit(USER, "image_gen", None)
            .await;
        assert_eq!(other.limit, 5);
    }
);

contract!(
    a_tool_daily_limit_overrides_the_default_for_that_tool_only,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("DEFAULT_KEY_DAILY_LIMIT", "5")
            .env("STARGAZER_TOOL_DAILY_LIMITS", "web_search=3, image_gen=7")
            .open()
            .await;

        uses(&fixture, 3).await;

        assert_eq!(
            check(&fixture.vault).await,
            LimitCheck {
                allowed: false,
                current: 3,
                limit: 3
            }
        );
        let vault = &fixture.vault;
        assert_eq!(
            vault
                .check_default_key_limit(USER, "image_gen", None)
                .await
                .limit,
            7
        );
        assert_eq!(
            vault
                .check_default_key_limit(USER, "summarize", None)
                .await
                .limit,
            5
        );
    }
);

contract!(
    an_explicit_daily_limit_wins_over_the_settings,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("DEFAULT_KEY_DAILY_LIMIT", "5")
            .env("STARGAZER_TOOL_DAILY_LIMITS", "web_search=3")
            .open()
            .await;
        uses(&fixture, 3).await;

        let checked = fixture
            .vault
            .check_default_key_limit(USER, TOOL, Some(4))
            .await;
        let permit = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, Some(4))
            .await
            .expect("the explicit limit admits a 4th use");

        assert_eq!(
            checked,
            LimitCheck {
                allowed: true,
                current: 3,
                limit: 4
            }
        );
        assert_eq!((permit.count, permit.limit), (4, 4));
        permit.commit();
    }
);

// ----- who the limit applies to -----------------------------------------------------------

contract!(
    the_limit_does_not_apply_to_the_callers_own_key,
    |backend| async move {
        let fixture = Fixture::new(backend).await;

        assert!(
            !fixture
                .vault
                .default_key_limit_applies(Some(USER), true)
                .await
        );
    }
);

contract!(
    the_limit_does_not_apply_without_a_caller,
    |backend| async move {
        let fixture = Fixture::new(backend).await;

        assert!(!fixture.vault.default_key_limit_applies(None, false).await);
    }
);

contract!(
    the_limit_does_not_apply_to_bot_admins,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("ADMIN_USER_IDS", "111, 222")
            .open()
            .await;

        assert!(
            !fixture
                .vault
                .default_key_limit_applies(Some(222), false)
                .await
        );
        assert!(
            fixture
                .vault
                .default_key_limit_applies(Some(333), false)
                .await
        );
    }
);

contract!(
    the_limit_does_not_apply_with_the_bypass_ratelimit_bit,
    |backend| async move {
        let all_bits = u64::MAX.to_string();
        for mask in ["4096", "4097", " 4096\n", all_bits.as_str()] {
            assert!(
                !limit_applies_with_mask(backend, Some(mask)).await,
                "mask {mask:?}"
            );
        }
    }
);

contract!(
    the_limit_applies_to_users_without_the_bypass_bit,
    |backend| async move {
        for mask in [None, Some("0"), Some("2048"), Some("8192"), Some("4095")] {
            assert!(
                limit_applies_with_mask(backend, mask).await,
                "mask {mask:?}"
            );
        }
    }
);

contract!(
    a_privilege_mask_that_is_not_a_number_counts_as_no_privileges,
    |backend| async move {
        for mask in ["lots", "", "4096.0", "0x1000"] {
            assert!(
                limit_applies_with_mask(backend, Some(mask)).await,
                "mask {mask:?}"
            );
        }
    }
);

// ----- the operator's view ----------------------------------------------------------------

contract!(
    usage_of_one_tool_shows_its_count_limit_and_reset_time,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("STARGAZER_TOOL_DAILY_LIMITS", "web_search=3")
            .open()
            .await;
        uses(&fixture, 2).await;

        let usage = fixture
            .vault
            .default_key_usage(USER, Some(TOOL))
            .await
            .expect("storage answers");

        let [
            ToolUsage {
                tool,
                count,
                limit,
                resets_in,
            },
        ] = usage.as_slice()
        else {
            panic!("one entry expected: {usage:?}");
        };
        assert_eq!((tool.as_str(), *count, *limit), (TOOL, 2, 3));
        let resets_in = resets_in.expect("the counter has a TTL").as_secs();
        assert!(FRESH_TTL.contains(&resets_in), "resets in {resets_in} s");
    }
);

contract!(
    usage_of_an_unused_tool_shows_zero_and_no_reset_time,
    |backend| async move {
        let fixture = Fixture::new(backend).await;

        let usage = fixture
            .vault
            .default_key_usage(USER, Some("image_gen"))
            .await
            .expect("storage answers");

        assert_eq!(
            usage,
            [ToolUsage {
                tool: ToolName::from_str("image_gen").expect("a valid tool name"),
                count: 0,
                limit: 20,
                resets_in: None
            }]
        );
    }
);

contract!(
    usage_of_every_tool_lists_the_users_live_counters_by_tool,
    |backend| async move {
        let fixture = Fixture::builder(backend)
            .env("STARGAZER_TOOL_DAILY_LIMITS", "web_search=3")
            .open()
            .await;
        uses(&fixture, 2).await;
        fixture
            .vault
            .increment_default_key_usage(USER, "image_gen")
            .await;
        // Another user whose id starts with the same digits.
        fixture
            .vault
            .increment_default_key_usage(USER * 10, "summarize")
            .await;

        let usage = fixture
            .vault
            .default_key_usage(USER, None)
            .await
            .expect("storage answers");

        let listed: Vec<(&str, u64, u32)> = usage
            .iter()
            .map(|u| (u.tool.as_str(), u.count, u.limit))
            .collect();
        assert_eq!(listed, [("image_gen", 1, 20), ("web_search", 2, 3)]);
        for entry in &usage {
            let resets_in = entry.resets_in.expect("the counter has a TTL").as_secs();
            assert!(FRESH_TTL.contains(&resets_in), "{entry:?}");
        }
    }
);

contract!(resetting_usage_deletes_the_counter, |backend| async move {
    let fixture = Fixture::new(backend).await;
    uses(&fixture, 20).await;
    fixture
        .vault
        .increment_default_key_usage(USER, "image_gen")
        .await;

    let reset = fixture.vault.reset_default_key_usage(USER, TOOL).await;
    let reset_again = fixture.vault.reset_default_key_usage(USER, TOOL).await;

    assert!(reset.expect("storage answers"), "there was a counter");
    assert!(!reset_again.expect("storage answers"), "it is gone");
    assert_eq!(
        check(&fixture.vault).await,
        LimitCheck {
            allowed: true,
            current: 0,
            limit: 20
        }
    );
    let image_gen_key = fixture.vault.layout().usage_key(USER, "image_gen");
    assert_eq!(
        fixture.dump().await,
        [(image_gen_key, String::new(), "1".to_owned())],
        "only the other tool's counter is left"
    );
});

// ----- Redis down -------------------------------------------------------------------------

/// A vault on a private redis-server, which the test may stop and restart.
async fn private_redis() -> (RedisServer, Fixture) {
    let server = RedisServer::start().expect("start a private redis-server");
    let fixture = Fixture::builder(Backend::Redis)
        .redis_url(server.url())
        .open()
        .await;
    uses(&fixture, 20).await;
    assert!(
        !check(&fixture.vault).await.allowed,
        "Redis counts before the outage"
    );
    (server, fixture)
}

/// Runs `call`, failing the test if it takes longer than [`QUICKLY`].
async fn quickly<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let result = tokio::time::timeout(QUICKLY, call).await;
    result.unwrap_or_else(|_| panic!("{what} took {:?} with Redis down", started.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_check_allows_quickly() {
    let (mut server, fixture) = private_redis().await;
    server.stop();

    let checked = quickly("the check", check(&fixture.vault)).await;

    assert_eq!(
        checked,
        LimitCheck {
            allowed: true,
            current: 0,
            limit: 20
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_counting_returns_quickly_without_error() {
    let (mut server, fixture) = private_redis().await;
    server.stop();

    quickly(
        "counting",
        fixture.vault.increment_default_key_usage(USER, TOOL),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_reservation_admits_quickly_without_recording() {
    let (mut server, fixture) = private_redis().await;
    server.stop();

    let reserved = quickly(
        "the reservation",
        fixture.vault.reserve_default_key_use(USER, TOOL, None),
    )
    .await;

    let permit = reserved.expect("fail-open admits");
    assert!(!permit.is_recorded());
    quickly("the refund", permit.refund()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_comes_back_counting_works_again() {
    let (mut server, fixture) = private_redis().await;
    server.stop();
    fixture.vault.increment_default_key_usage(USER, TOOL).await;

    server.restart().expect("restart redis-server");
    let deadline = Instant::now() + Duration::from_secs(3);
    let permit = loop {
        let permit = fixture
            .vault
            .reserve_default_key_use(USER, TOOL, None)
            .await
            .expect("the restarted server has no counters");
        if permit.is_recorded() {
            break permit;
        }
        assert!(
            Instant::now() < deadline,
            "Redis still unreachable after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    fixture.vault.increment_default_key_usage(USER, TOOL).await;

    // The server keeps nothing across a restart: these are the only two uses.
    assert_eq!(permit.count, 1);
    permit.commit();
    assert_eq!(check(&fixture.vault).await.current, 2);
}

// ----- what users read --------------------------------------------------------------------

const THREE_HOURS_TWELVE: Duration = Duration::from_secs(3 * 3600 + 12 * 60);

fn brave() -> Service {
    Catalogue::builtin()
        .get("brave")
        .expect("a built-in service")
        .clone()
}

#[test]
fn the_missing_key_message_names_the_service_its_signup_page_and_the_command() {
    assert_eq!(
        missing_api_key_error("brave"),
        "No Brave Search API key is available to you. You can get one at \
         https://brave.com/search/api/. Add yours with `/set_user_api_key service:brave`: you \
         paste it into a private form, and it works for you in every server."
    );
}

#[test]
fn the_missing_key_message_for_a_service_without_signup_page_skips_it() {
    let catalogue =
        Catalogue::builtin().with_service(Service::new(ServiceId::from_static("x"), "X"));

    assert_eq!(
        catalogue.missing_api_key_error("x"),
        "No X API key is available to you. Add yours with `/set_user_api_key service:x`: you \
         paste it into a private form, and it works for you in every server."
    );
}

#[test]
fn the_missing_key_message_for_an_unknown_service_sends_the_user_to_the_operator() {
    assert_eq!(
        missing_api_key_error("foo"),
        "No API key for `foo` is set up on this bot, and it does not take keys for `foo` yet; \
         ask the bot's operator to add the service."
    );
}

#[test]
fn the_limit_message_gives_the_count_the_limit_the_reset_time_and_the_way_out() {
    assert_eq!(
        default_key_limit_error("web_search", &brave(), 20, 20, Some(THREE_HOURS_TWELVE)),
        "You have used web_search 20 times with the bot's shared Brave Search key, and the \
         daily limit is 20. It resets in 3 hours 12 minutes. To keep going now, add your own \
         key with `/set_user_api_key service:brave` (get one at \
         https://brave.com/search/api/); your own key has no daily limit."
    );
}

#[test]
fn the_limit_message_says_once_for_a_single_use() {
    assert_eq!(
        default_key_limit_error("web_search", &brave(), 1, 1, Some(THREE_HOURS_TWELVE)),
        "You have used web_search once with the bot's shared Brave Search key, and the daily \
         limit is 1. It resets in 3 hours 12 minutes. To keep going now, add your own key with \
         `/set_user_api_key service:brave` (get one at https://brave.com/search/api/); your \
         own key has no daily limit."
    );
}

#[test]
fn the_limit_message_without_a_reset_time_says_within_a_day() {
    assert_eq!(
        default_key_limit_error("web_search", &brave(), 20, 20, None),
        "You have used web_search 20 times with the bot's shared Brave Search key, and the \
         daily limit is 20. It resets within 24 hours. To keep going now, add your own key \
         with `/set_user_api_key service:brave` (get one at https://brave.com/search/api/); \
         your own key has no daily limit."
    );
}

#[test]
fn the_limit_message_for_a_service_without_signup_page_skips_it() {
    assert_eq!(
        default_key_limit_error(
            "web_search",
            &Service::new(ServiceId::from_static("x"), "X"),
            20,
            20,
            Some(THREE_HOURS_TWELVE)
        ),
        "You have used web_search 20 times with the bot's shared X key, and the daily limit is \
         20. It resets in 3 hours 12 minutes. To keep going now, add your own key with \
         `/set_user_api_key service:x`; your own key has no daily limit."
    );
}

#[test]
fn reset_times_read_in_whole_minutes_rounded_up() {
    assert_eq!(human_duration(THREE_HOURS_TWELVE), "3 hours 12 minutes");
    assert_eq!(human_duration(Duration::from_secs(86_399)), "24 hours");
    assert_eq!(human_duration(Duration::from_secs(61)), "2 minutes");
    assert_eq!(
        human_duration(Duration::from_secs(3_600 + 1)),
        "1 hour 1 minute"
    );
}
