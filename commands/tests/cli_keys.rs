//! The operator's key commands end to end: `user`, `pool`, `resolve`, `migrate` and `usage`,
//! run as a process with a clean environment in a temporary directory, against the embedded
//! store in the real SQLite file and against a private redis-server.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use stargazer_keys::storage::{EmbeddedStore, Layout, StorageBackend as _};
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::{Config, KeyVault, MasterKey};

mod support;

use support::{Run, Setup};

const USER_KEY: &str = "BSA-user-own-key-0000001111";
const CHANNEL_KEY: &str = "BSA-channel-pool-key-22223333";
const GLOBAL_KEY: &str = "BSA-global-pool-key-44445555";
const ENV_KEY: &str = "BSA-operator-env-key-66667777";

impl Setup {
    /// The embedded store in `data/stargazer-keys.db`, with a master key.
    fn keyed() -> Self {
        let key = MasterKey::generate().to_base64().expose_secret().to_owned();
        let mut setup = Self::new();
        setup.set("STARGAZER_MASTER_KEY", key);
        setup
    }

    /// Redis at `redis`, under a prefix of this test's own.
    fn with_redis(redis: &RedisServer, prefix: &str) -> Self {
        let mut setup = Self::keyed();
        setup
            .set("REDIS_URL", redis.url())
            .set("STARGAZER_KEY_PREFIX", prefix);
        setup
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:#?}");
        run.stdout
    }

    /// Runs with `--json` output and parses it.
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Stores a user's key through `user set`.
    fn set_user_key(&self, user: &str, service: &str, secret: &str) -> Run {
        self.run_with_stdin(
            &["user", "set", "--user", user, "--service", service],
            format!("{secret}\n"),
        )
    }

    /// Adds a pool key through `pool add`.
    fn add_pool_key(&self, service: &str, channel: Option<&str>, secret: &str) -> Run {
        let mut args = vec!["pool", "add", "--service", service];
        if let Some(channel) = channel {
            args.extend(["--channel", channel]);
        }
        self.run_with_stdin(&args, format!("{secret}\n"))
    }

    fn resolve(&self, args: &[&str]) -> Value {
        let mut all = vec!["resolve", "--json"];
        all.extend(args);
        self.json(&all)
    }

    fn config(&self) -> Config {
        Config::from_vars(self.vars.clone()).unwrap()
    }
}

impl Run {
    /// The single `error:` line of a refused run (status 1, nothing on stdout).
    fn refused_line(&self) -> &str {
        assert_eq!(self.stdout, "", "{self:#?}");
        self.one_error_line()
    }

    /// The `error:` line of a command line clap refused (status 2); clap adds only its
    /// `For more information` tip.
    fn usage_error_line(&self) -> &str {
        assert_eq!(self.code, Some(2), "{self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        let mut lines = self.stderr.lines().filter(|line| !line.is_empty());
        let first = lines.next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{self:#?}");
        for rest in lines {
            assert!(rest.starts_with("For more information"), "{self:#?}");
        }
        first
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

// --help

#[test]
fn help_lists_the_key_subcommands_with_a_description() {
    let run = Setup::keyed().run(&["--help"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    for (name, words) in [
        ("user", "user's own keys"),
        ("pool", "global pool"),
        ("resolve", "which key a user would get"),
        ("migrate", "older formats"),
        ("usage", "shared-key uses"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} is not listed: {run:#?}"));
        assert!(line.contains(words), "{line}");
    }
}

// user set and resolve

#[test]
fn user_set_reads_the_key_from_stdin_and_resolve_finds_it() {
    let setup = Setup::keyed();

    let run = setup.set_user_key("42", "brave", USER_KEY);

    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(
        run.stdout,
        "Saved the Brave Search key …1111 for user 42.\n"
    );
    assert!(!run.mentions(USER_KEY), "{run:#?}");
    assert_eq!(
        setup.resolve(&["--user", "42", "--service", "brave"]),
        json!({"source": "user", "key": "…1111"})
    );
    assert_eq!(
        setup.resolve(&["--user", "42", "--service", "brave", "--reveal"]),
        json!({"source": "user", "key": USER_KEY})
    );
    assert_eq!(
        setup.ok(&["resolve", "--user", "42", "--service", "brave"]),
        "source: user\nkey: …1111\n"
    );
}

/// What user `user` gets for Brave Search in channel 77.
fn for_user(setup: &Setup, user: &str) -> Value {
    setup.resolve(&["--user", user, "--service", "brave", "--channel", "77"])
}

/// user -> channel pool -> global pool -> environment -> none, as each tier is removed.
fn resolution_falls_through_the_tiers(mut setup: Setup) {
    setup.set("BRAVE_API_KEY", ENV_KEY);
    assert_eq!(setup.set_user_key("1", "brave", USER_KEY).code, Some(0));
    assert_eq!(
        setup.add_pool_key("brave", Some("77"), CHANNEL_KEY).code,
        Some(0)
    );
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));

    assert_eq!(
        for_user(&setup, "1"),
        json!({"source": "user", "key": "…1111"})
    );
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "channel_pool", "key": "…3333"})
    );
    assert_eq!(
        setup.resolve(&["--user", "2", "--service", "brave", "--no-pools"]),
        json!({"source": "env", "key": "…7777"})
    );

    let channel_pool = setup.json(&["pool", "list", "--channel", "77", "--json"]);
    let key_id = channel_pool[0]["key_id"].as_str().unwrap();
    let removed = setup.ok(&[
        "pool",
        "remove",
        "--service",
        "brave",
        "--channel",
        "77",
        "--key-id",
        key_id,
    ]);
    assert!(
        removed.starts_with("Removed the Brave Search key"),
        "{removed}"
    );
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "global_pool", "key": "…5555"})
    );

    let global_pool = setup.json(&["pool", "list", "--json"]);
    let key_id = global_pool[0]["key_id"].as_str().unwrap();
    setup.ok(&["pool", "remove", "--service", "brave", "--key-id", key_id]);
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "env", "key": "…7777"})
    );

    setup.unset("BRAVE_API_KEY");
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "none", "key": null})
    );
    assert_eq!(
        setup.ok(&["resolve", "--user", "2", "--service", "brave"]),
        "source: none\nkey: none\n"
    );
    assert_eq!(
        for_user(&setup, "1"),
        json!({"source": "user", "key": "…1111"})
    );
}

#[test]
fn resolution_falls_from_user_to_channel_pool_to_global_pool_to_env_to_none() {
    resolution_falls_through_the_tiers(Setup::keyed());
}

#[test]
fn resolution_falls_through_the_tiers_against_redis() {
    let redis = RedisServer::start().unwrap();
    resolution_falls_through_the_tiers(Setup::with_redis(&redis, "cli-keys-tiers"));
}

#[test]
fn a_server_pool_is_added_listed_resolved_and_removed_with_guild() {
    let setup = Setup::keyed();
    let added = setup.run_with_stdin(
        &["pool", "add", "--service", "brave", "--guild", "88"],
        format!("{CHANNEL_KEY}\n"),
    );
    assert_eq!(added.code, Some(0), "{added:#?}");
    assert!(added.stdout.contains("the pool of server 88"), "{added:#?}");
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));

    let in_server = |user: &str| {
        setup.resolve(&[
            "--user",
            user,
            "--service",
            "brave",
            "--channel",
            "77",
            "--guild",
            "88",
        ])
    };
    assert_eq!(
        in_server("2"),
        json!({"source": "guild_pool", "key": "…3333"})
    );
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "global_pool", "key": "…5555"}),
        "without --guild, no server pool"
    );
    let listed = setup.json(&["pool", "list", "--guild", "88", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        setup.json(&["pool", "list", "--guild", "89", "--json"]),
        json!([])
    );
    let key_id = listed[0]["key_id"].as_str().unwrap();
    setup.ok(&[
        "pool",
        "remove",
        "--service",
        "brave",
        "--guild",
        "88",
        "--key-id",
        key_id,
    ]);
    assert_eq!(
        in_server("2"),
        json!({"source": "global_pool", "key": "…5555"})
    );
    let both = setup.run(&["pool", "list", "--guild", "88", "--channel", "77"]);
    assert_eq!(both.code, Some(2), "{both:#?}");
    assert!(both.stderr.contains("cannot be used with"), "{both:#?}");
}

#[test]
fn user_shared_keys_off_stops_the_fall_through_for_that_user() {
    let mut setup = Setup::keyed();
    setup.set("BRAVE_API_KEY", ENV_KEY);
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));
    let off = setup.ok(&[
        "user",
        "shared-keys",
        "--user",
        "2",
        "--service",
        "brave",
        "off",
    ]);
    assert_eq!(
        off,
        "Shared keys are off for user 2's Brave Search calls.\n"
    );
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "none", "key": null}),
        "no pool, not the operator's key"
    );
    assert_eq!(
        for_user(&setup, "3"),
        json!({"source": "global_pool", "key": "…5555"})
    );
    assert_eq!(setup.set_user_key("2", "brave", USER_KEY).code, Some(0));
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "user", "key": "…1111"})
    );
    setup.ok(&["user", "remove", "--user", "2", "--service", "brave"]);
    let on = setup.ok(&["user", "shared-keys", "--user", "2", "on"]);
    assert_eq!(on, "Shared keys are on for all of user 2's calls.\n");
    assert_eq!(
        for_user(&setup, "2"),
        json!({"source": "global_pool", "key": "…5555"})
    );
    let bad = setup.run(&["user", "shared-keys", "--user", "2", "maybe"]);
    assert_eq!(bad.code, Some(2), "{bad:#?}");
}

#[test]
fn pool_limit_sets_shows_and_clears_a_servers_limit_within_the_operators_maximum() {
    let mut setup = Setup::keyed();
    setup.set("STARGAZER_POOL_DAILY_LIMIT_MAX", "30");
    let run = setup.run_with_stdin(
        &["pool", "add", "--service", "brave", "--guild", "88"],
        format!("{GLOBAL_KEY}\n"),
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    let limit = |extra: &[&str]| {
        let mut args = vec!["pool", "limit", "--service", "brave", "--guild", "88"];
        args.extend(extra);
        setup.run(&args)
    };
    assert_eq!(
        limit(&["--uses", "5"]).stdout,
        "Each user may make 5 calls a day with the Brave Search keys of the pool of server 88 (every tool together).\n"
    );
    let too_high = limit(&["--uses", "31"]);
    assert_eq!(too_high.code, Some(1), "{too_high:#?}");
    assert_eq!(
        too_high.refused_line(),
        "error: 31 uses a day is above the most this bot allows a pool to set (30, STARGAZER_POOL_DAILY_LIMIT_MAX)"
    );
    assert!(
        limit(&[]).stdout.starts_with("Each user may make 5 calls"),
        "the refused limit changed nothing"
    );
    let vault = block_on(KeyVault::open(setup.config())).unwrap();
    assert_eq!(
        block_on(vault.pool_daily_limit(stargazer_keys::Pool::Guild(88), "brave")).unwrap(),
        Some(5)
    );
    assert!(limit(&["--clear"]).stdout.starts_with(
        "The Brave Search keys of the pool of server 88 follow the tools' daily limits"
    ));
    let both = limit(&["--uses", "2", "--clear"]);
    assert_eq!(both.code, Some(2), "{both:#?}");
    assert!(
        both.stderr
            .starts_with("error: the argument '--uses <N>' cannot be used with '--clear'"),
        "{both:#?}"
    );
}

#[test]
fn pool_unbench_says_whether_the_key_was_benched() {
    let setup = Setup::keyed();
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));
    let listed = setup.json(&["pool", "list", "--json"]);
    let key_id = listed[0]["key_id"].as_str().unwrap().to_owned();
    let vault = block_on(KeyVault::open(setup.config())).unwrap();
    let drawn = block_on(vault.get_user_api_key(Some(2), "brave", None, true)).unwrap();
    block_on(vault.report_key_outcome(
        "brave",
        &drawn,
        stargazer_keys::KeyOutcome::from_http_status(401, None),
    ));
    let benched = setup.json(&["pool", "list", "--json"]);
    assert_eq!(benched[0]["bench_reason"], "unauthorized");
    let args = [
        "pool",
        "unbench",
        "--service",
        "brave",
        "--key-id",
        key_id.as_str(),
    ];
    assert_eq!(
        setup.ok(&args),
        format!(
            "The Brave Search key {key_id} of the global pool is off the bench: draws use it again.\n"
        )
    );
    assert_eq!(
        setup.json(&["pool", "list", "--json"])[0]["bench_reason"],
        Value::Null
    );
    assert!(
        setup
            .ok(&args)
            .ends_with("was not benched; nothing changed.\n")
    );

    let log = setup.json(&["pool", "log", "--json"]);
    let seen: Vec<(&str, &Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["action"].as_str().unwrap(), &entry["reason"]))
        .collect();
    assert_eq!(
        seen,
        [
            ("unbenched", &Value::Null),
            ("benched", &json!("unauthorized")),
            ("added", &Value::Null)
        ]
    );
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["key_id"] == key_id
                && entry["service"] == "brave"
                && entry["actor"].is_null())
    );
    assert_eq!(
        setup.ok(&["pool", "log", "--guild", "88"]),
        "Nothing has happened in the pool of server 88 yet.\n"
    );
}

#[test]
fn user_and_pool_keys_round_trip_through_redis() {
    let redis = RedisServer::start().unwrap();
    let setup = Setup::with_redis(&redis, "cli-keys-round-trip");
    assert_eq!(setup.set_user_key("5", "brave", USER_KEY).code, Some(0));
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));

    let users = setup.json(&["user", "list", "--user", "5", "--json"]);
    assert_eq!(users[0]["masked"], "…1111");
    let pool = setup.json(&["pool", "list", "--json"]);
    assert_eq!(pool[0]["masked"], "…5555");
    assert_eq!(
        setup.resolve(&["--user", "5", "--service", "brave", "--reveal"]),
        json!({"source": "user", "key": USER_KEY})
    );

    // The value lives in Redis, under this test's prefix, sealed.
    let stored = block_on(async {
        stargazer_keys::storage::connect(&setup.config())
            .await
            .unwrap()
            .hget("cli-keys-round-trip:user_api_keys:5", "brave")
            .await
            .unwrap()
            .unwrap()
    });
    assert!(stored.starts_with("v4:"), "{stored}");
    assert!(!stored.contains(USER_KEY), "{stored}");
}

// Listings

#[test]
fn user_list_json_is_an_array_of_objects_without_secrets() {
    let setup = Setup::keyed();
    setup.set_user_key("7", "brave", USER_KEY);
    setup.set_user_key("7", "openrouter", "sk-or-v1-openrouter-key-8888");

    let run = setup.run(&["user", "list", "--user", "7", "--json"]);

    assert_eq!(run.code, Some(0), "{run:#?}");
    let keys: Value = serde_json::from_str(&run.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let fields: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["display_name", "masked", "service", "set_at"]);
        // RFC 3339 in UTC, to the second: 2025-01-31T12:00:00Z.
        let set_at = key["set_at"].as_str().unwrap();
        assert_eq!(set_at.len(), 20, "{set_at}");
        assert_eq!((&set_at[10..11], &set_at[19..]), ("T", "Z"), "{set_at}");
    }
    assert_eq!(keys[0]["service"], "brave");
    assert_eq!(keys[0]["display_name"], "Brave Search");
    assert_eq!(keys[0]["masked"], "…1111");
    assert_eq!(keys[1]["service"], "openrouter");
    assert!(!run.mentions(USER_KEY), "{run:#?}");

    let text = setup.run(&["user", "list", "--user", "7"]);
    assert!(text.stdout.starts_with("SERVICE"), "{text:#?}");
    assert!(text.stdout.contains("Brave Search"), "{text:#?}");
    assert!(text.stdout.contains("…1111"), "{text:#?}");
    assert!(!text.mentions(USER_KEY), "{text:#?}");

    assert_eq!(
        setup.json(&["user", "list", "--user", "8", "--json"]),
        json!([])
    );
    assert_eq!(
        setup.ok(&["user", "list", "--user", "8"]),
        "User 8 has no keys.\n"
    );
}

#[test]
fn pool_list_json_entries_carry_their_key_id_and_contributor() {
    let setup = Setup::keyed();
    let added = setup.add_pool_key("brave", None, GLOBAL_KEY);
    assert!(!added.mentions(GLOBAL_KEY), "{added:#?}");
    setup.add_pool_key("openrouter", None, "sk-or-v1-global-pool-key-9999");
    let by_member = setup.run_with_stdin(
        &[
            "pool",
            "add",
            "--service",
            "brave",
            "--channel",
            "31",
            "--contributor",
            "5",
        ],
        CHANNEL_KEY,
    );
    assert_eq!(by_member.code, Some(0), "{by_member:#?}");

    let global = setup.json(&["pool", "list", "--json"]);
    let global = global.as_array().unwrap();
    assert_eq!(global.len(), 2, "{global:?}");
    for key in global {
        let fields: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [
                "added_at",
                "bench_reason",
                "benched_until",
                "contributor",
                "failures_today",
                "key_id",
                "masked",
                "service",
                "uses_today"
            ]
        );
        assert_eq!(key["uses_today"], 0);
        assert_eq!(key["bench_reason"], Value::Null);
        let key_id = key["key_id"].as_str().unwrap();
        assert_eq!(key_id.len(), 12, "{key_id}");
        assert!(added.stdout.contains(key_id) || key["service"] == "openrouter");
        assert_eq!(key["contributor"], Value::Null);
    }
    assert_eq!(global[0]["service"], "brave");
    assert_eq!(global[0]["masked"], "…5555");

    let channel = setup.json(&["pool", "list", "--channel", "31", "--json"]);
    assert_eq!(channel.as_array().unwrap().len(), 1, "{channel}");
    assert_eq!(channel[0]["contributor"], "5");
    assert_eq!(channel[0]["masked"], "…3333");
    assert_eq!(
        setup.json(&["pool", "list", "--service", "openrouter", "--json"])[0]["masked"],
        "…9999"
    );

    let text = setup.run(&["pool", "list"]);
    assert!(text.stdout.starts_with("KEY ID"), "{text:#?}");
    assert!(!text.mentions(GLOBAL_KEY), "{text:#?}");
    assert_eq!(
        setup.ok(&["pool", "list", "--channel", "32"]),
        "There are no keys in the pool of channel 32.\n"
    );
}

#[test]
fn adding_a_pool_key_twice_says_it_is_already_in_the_pool() {
    let setup = Setup::keyed();
    let first = setup.add_pool_key("brave", None, GLOBAL_KEY);
    let second = setup.add_pool_key("brave", None, GLOBAL_KEY);

    assert_eq!(first.code, Some(0), "{first:#?}");
    assert!(
        first
            .stdout
            .starts_with("Added the Brave Search key …5555 to the global pool as key ")
    );
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert!(
        second.stdout.contains("is already in the global pool"),
        "{second:#?}"
    );
    let key_id = setup.json(&["pool", "list", "--json"])[0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.stdout.contains(&key_id) && second.stdout.contains(&key_id));
    assert_eq!(
        setup
            .json(&["pool", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn resolve_reveals_the_key_only_with_reveal() {
    let mut setup = Setup::keyed();
    setup.set("BRAVE_API_KEY", ENV_KEY);
    setup.set_user_key("3", "brave", USER_KEY);
    setup.add_pool_key("brave", None, GLOBAL_KEY);
    for args in [
        &["user", "list", "--user", "3"][..],
        &["user", "list", "--user", "3", "--json"],
        &["pool", "list"],
        &["pool", "list", "--json"],
        &["resolve", "--user", "3", "--service", "brave"],
        &["resolve", "--user", "3", "--service", "brave", "--json"],
        &["resolve", "--user", "4", "--service", "brave", "--json"],
        &["resolve", "--user", "4", "--service", "brave", "--no-pools"],
    ] {
        let run = setup.run(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:#?}");
        for secret in [USER_KEY, GLOBAL_KEY, ENV_KEY] {
            assert!(!run.mentions(secret), "{args:?} leaked a key: {run:#?}");
        }
    }
    let revealed = setup.run(&["resolve", "--user", "4", "--service", "brave", "--reveal"]);
    assert_eq!(
        revealed.stdout,
        format!("source: global_pool\nkey: {GLOBAL_KEY}\n")
    );
    assert_eq!(revealed.stderr, "");
}

// Refusals: one line, a failure status, nothing written.

/// A user key and a pool key, stored before a refused command.
fn setup_with_earlier_keys() -> Setup {
    let setup = Setup::keyed();
    assert_eq!(setup.set_user_key("10", "brave", USER_KEY).code, Some(0));
    assert_eq!(setup.add_pool_key("brave", None, GLOBAL_KEY).code, Some(0));
    setup
}

/// The earlier keys are there, unchanged, and nothing else.
fn assert_only_earlier_keys(setup: &Setup) {
    let users = setup.json(&["user", "list", "--user", "10", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["service"], "brave");
    assert_eq!(users[0]["masked"], "…1111");
    assert_eq!(
        setup.json(&["user", "list", "--user", "11", "--json"]),
        json!([])
    );
    let pool = setup.json(&["pool", "list", "--json"]);
    assert_eq!(pool.as_array().unwrap().len(), 1, "{pool}");
    assert_eq!(pool[0]["masked"], "…5555");
    assert_eq!(
        setup.json(&["pool", "list", "--channel", "12", "--json"]),
        json!([])
    );
    assert_eq!(
        setup.resolve(&["--user", "10", "--service", "brave", "--reveal"]),
        json!({"source": "user", "key": USER_KEY})
    );
}

/// `user set` (over the earlier key and for a new user) and `pool add` (global and channel)
/// all refuse `input` with one line containing `words`.
fn assert_input_refused(input: &[u8], words: &str) {
    let setup = setup_with_earlier_keys();
    for args in [
        &["user", "set", "--user", "10", "--service", "brave"][..],
        &["user", "set", "--user", "11", "--service", "brave"],
        &["pool", "add", "--service", "brave"],
        &["pool", "add", "--service", "brave", "--channel", "12"],
    ] {
        let run = setup.run_with_stdin(args, input);
        let line = run.refused_line();
        assert!(line.contains(words), "{args:?}: {line}");
        let text = String::from_utf8_lossy(input);
        assert!(
            text.trim().len() < 8 || !run.mentions(text.trim()),
            "the refused key leaked: {run:#?}"
        );
    }
    assert_only_earlier_keys(&setup);
}

#[test]
fn empty_stdin_is_refused_and_nothing_is_written() {
    assert_input_refused(b"", "no key on stdin");
}

#[test]
fn whitespace_only_stdin_is_refused_and_nothing_is_written() {
    assert_input_refused(b"  \t \r\n\n", "no key on stdin");
}

#[test]
fn a_key_with_a_nul_byte_is_refused_and_nothing_is_written() {
    assert_input_refused(b"BSA-before\0after-nul-0000\n", "control characters");
}

#[test]
fn a_key_with_a_space_inside_is_refused_and_nothing_is_written() {
    assert_input_refused(b"BSA-two words-0000\n", "spaces");
}

#[test]
fn a_key_over_4000_characters_is_refused_and_nothing_is_written() {
    assert_input_refused("k".repeat(4_001).as_bytes(), "limit is 4000");
}

#[test]
fn bytes_that_are_not_text_are_refused_and_nothing_is_written() {
    assert_input_refused(b"BSA-\xff\xfe-0000\n", "not UTF-8");
}

#[test]
fn ten_megabytes_on_stdin_are_refused_quickly_and_nothing_is_written() {
    let setup = setup_with_earlier_keys();
    let flood = vec![b'k'; 10 * 1024 * 1024];
    for args in [
        &["user", "set", "--user", "10", "--service", "brave"][..],
        &["pool", "add", "--service", "brave"],
    ] {
        let started = Instant::now();
        let run = setup.run_with_stdin(args, flood.clone());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let line = run.refused_line();
        assert!(line.contains("more than 64 KiB"), "{line}");
    }
    assert_only_earlier_keys(&setup);
}

#[test]
fn an_unknown_service_is_refused_with_the_list_of_services() {
    let setup = setup_with_earlier_keys();
    for args in [
        &["user", "set", "--user", "10", "--service", "bravo"][..],
        &["pool", "add", "--service", "bravo"],
        &["pool", "list", "--service", "bravo"],
        &["resolve", "--user", "10", "--service", "bravo"],
        &["user", "remove", "--user", "10", "--service", "bravo"],
        &["user", "set", "--user", "10", "--service", "Brave Search"],
    ] {
        let run = setup.run_with_stdin(args, "BSA-some-other-key-0000\n");
        let line = run.refused_line();
        assert!(
            line.contains("there is no service called"),
            "{args:?}: {line}"
        );
        assert!(line.contains("brave, elevenlabs, gemini"), "{line}");
    }
    assert_only_earlier_keys(&setup);
}

#[test]
fn ids_that_are_not_discord_ids_are_refused_naming_the_flag() {
    let setup = setup_with_earlier_keys();
    for (bad, reason) in [
        ("abc", "not a Discord id"),
        ("0", "ids start at 1"),
        ("99999999999999999999999", "too large for a Discord id"),
        ("12ab", "not a Discord id"),
    ] {
        for (flag, args) in [
            (
                "--user",
                vec!["user", "set", "--service", "brave", "--user", bad],
            ),
            ("--user", vec!["user", "forget", "--user", bad]),
            (
                "--channel",
                vec!["pool", "add", "--service", "brave", "--channel", bad],
            ),
            (
                "--contributor",
                vec!["pool", "add", "--service", "brave", "--contributor", bad],
            ),
            (
                "--channel",
                vec![
                    "resolve",
                    "--user",
                    "10",
                    "--service",
                    "brave",
                    "--channel",
                    bad,
                ],
            ),
            ("--user", vec!["usage", "show", "--user", bad]),
        ] {
            let run = setup.run_with_stdin(&args, "BSA-some-other-key-0000\n");
            let line = run.usage_error_line();
            assert!(line.contains(&format!("'{flag} <ID>'")), "{line}");
            assert!(line.contains(reason), "{line}");
        }
    }
    assert_only_earlier_keys(&setup);
}

#[test]
fn a_base_url_is_only_for_gitea() {
    let setup = setup_with_earlier_keys();
    let run = setup.run_with_stdin(
        &[
            "user",
            "set",
            "--user",
            "10",
            "--service",
            "brave",
            "--base-url",
            "https://x.example",
        ],
        "BSA-some-other-key-0000\n",
    );
    assert!(run.refused_line().contains("only for --service gitea"));
    assert_only_earlier_keys(&setup);
}

#[test]
fn gitea_credentials_keep_their_base_url_and_resolve_to_the_token() {
    let setup = Setup::keyed();
    let token = "gitea-token-0123456789abcd";
    let run = setup.run_with_stdin(
        &[
            "user",
            "set",
            "--user",
            "20",
            "--service",
            "gitea",
            "--base-url",
            "https://git.example/",
        ],
        token,
    );
    assert_eq!(
        run.stdout,
        "Saved the Gitea key …abcd (for https://git.example) for user 20.\n"
    );
    assert_eq!(
        setup.ok(&["resolve", "--user", "20", "--service", "gitea"]),
        "source: user\nkey: …abcd\nbase url: https://git.example\n"
    );
    assert_eq!(
        setup.resolve(&["--user", "20", "--service", "gitea", "--reveal"]),
        json!({"source": "user", "key": token})
    );

    let nul = setup.run_with_stdin(
        &[
            "user",
            "set",
            "--user",
            "21",
            "--service",
            "gitea",
            "--base-url",
            "https://git.example",
        ],
        "gitea-\0-token-0000",
    );
    assert!(nul.refused_line().contains("control characters"));
    assert_eq!(
        setup.json(&["user", "list", "--user", "21", "--json"]),
        json!([])
    );
}

// remove and forget

#[test]
fn user_remove_says_whether_there_was_a_key_and_exits_0_either_way() {
    let setup = setup_with_earlier_keys();
    assert_eq!(
        setup.ok(&["user", "remove", "--user", "10", "--service", "brave"]),
        "Removed the Brave Search key of user 10.\n"
    );
    assert_eq!(
        setup.ok(&["user", "remove", "--user", "10", "--service", "brave"]),
        "User 10 had no Brave Search key; nothing changed.\n"
    );
    assert_eq!(
        setup.json(&["user", "list", "--user", "10", "--json"]),
        json!([])
    );
}

#[test]
fn pool_remove_of_a_key_id_the_pool_lacks_says_so() {
    let setup = setup_with_earlier_keys();
    assert_eq!(
        setup.ok(&[
            "pool",
            "remove",
            "--service",
            "brave",
            "--key-id",
            "0123456789ab"
        ]),
        "There is no Brave Search key 0123456789ab in the global pool; nothing changed.\n"
    );
    let bad = setup.run(&["pool", "remove", "--service", "brave", "--key-id", "*"]);
    assert!(bad.refused_line().contains("is not a key id"));
    assert_only_earlier_keys(&setup);
}

#[test]
fn user_forget_erases_every_key_and_says_how_many() {
    let setup = setup_with_earlier_keys();
    setup.set_user_key("10", "openrouter", "sk-or-v1-openrouter-key-8888");

    assert_eq!(
        setup.ok(&["user", "forget", "--user", "10"]),
        "Erased 2 keys of user 10 and destroyed their data key: copies in backups can no longer be opened.\n"
    );
    assert_eq!(
        setup.json(&["user", "list", "--user", "10", "--json"]),
        json!([])
    );
    // The pool the user may have fed is the pool's, not the user's.
    assert_eq!(
        setup.resolve(&["--user", "10", "--service", "brave"]),
        json!({"source": "global_pool", "key": "…5555"})
    );
}

#[test]
fn read_only_commands_create_no_database() {
    let setup = Setup::keyed();
    for args in [
        &["user", "list", "--user", "1"][..],
        &["pool", "list"],
        &["resolve", "--user", "1", "--service", "brave"],
        &["usage", "show", "--user", "1"],
    ] {
        let run = setup.run(args);
        let line = run.refused_line();
        assert!(line.contains("does not exist"), "{args:?}: {line}");
        assert!(line.contains("STARGAZER_DB_PATH"), "{line}");
    }
    assert!(!setup.db_path().exists());
}

// migrate

#[test]
fn migrate_rewrites_a_plaintext_value_once() {
    let setup = Setup::keyed();
    let db = setup.db_path();
    let user_keys = Layout::new("stargazer").user_keys_key(30);
    let secret = "plain-secret-from-the-original-bot-0042";
    block_on(async {
        EmbeddedStore::open(&db)
            .unwrap()
            .hset(&user_keys, "brave", secret)
            .await
            .unwrap();
    });

    assert!(
        setup
            .run(&["doctor"])
            .stdout
            .contains("ok   legacy values: read (v2: and plaintext values still open;"),
        "doctor tells that legacy values are still read"
    );
    let first = setup.json(&["migrate", "--json"]);
    assert_eq!(
        first,
        json!({
            "rewritten": 1,
            "from_v2": 0,
            "from_plaintext": 1,
            "already_v4": 0,
            "unreadable": 0,
            "changed_meanwhile": 0,
            "legacy_hashes": [{"key": user_keys, "values": 1}],
            "left_in_pools": [],
            "legacy_data_keys_rewrapped": 0,
            "unreadable_by_hash": {},
            "legacy_values": "refused from now on",
        })
    );
    let stored = block_on(async {
        EmbeddedStore::open(&db)
            .unwrap()
            .hget(&user_keys, "brave")
            .await
            .unwrap()
            .unwrap()
    });
    assert!(stored.starts_with("v4:"), "{stored}");

    let doctor = setup.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("ok   legacy values: refused (migrate has run)"),
        "{doctor:#?}"
    );
    let second = setup.json(&["migrate", "--json"]);
    assert_eq!(second["rewritten"], 0);
    assert_eq!(second["already_v4"], 1);
    assert_eq!(
        setup.ok(&["migrate"]),
        "Nothing to rewrite: 1 value was already v4.\n\
         Values in the original bot's formats are refused from now on, by every process.\n"
    );
    assert_eq!(
        setup.resolve(&["--user", "30", "--service", "brave", "--reveal"]),
        json!({"source": "user", "key": secret})
    );
}

// usage

#[test]
fn usage_show_and_reset_round_trip() {
    let setup = Setup::keyed();
    block_on(async {
        let vault = KeyVault::open(setup.config()).await.unwrap();
        for _ in 0..3 {
            vault.increment_default_key_usage(9, "web_search").await;
        }
        vault.increment_default_key_usage(9, "summarize").await;
    });

    let usage = setup.json(&[
        "usage",
        "show",
        "--user",
        "9",
        "--tool",
        "web_search",
        "--json",
    ]);
    let resets_in = usage[0]["resets_in_seconds"].as_u64().unwrap();
    assert!((86_000..=86_400).contains(&resets_in), "{usage}");
    assert_eq!(
        usage,
        json!([{"tool": "web_search", "count": 3, "limit": 20, "resets_in_seconds": resets_in}])
    );
    let all = setup.json(&["usage", "show", "--user", "9", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let text = setup.ok(&["usage", "show", "--user", "9"]);
    assert!(text.starts_with("TOOL"), "{text}");
    let row = text.lines().find(|l| l.starts_with("web_search")).unwrap();
    assert!(
        row.contains(" 3 ") && row.contains(" 20 ") && row.ends_with("24 hours"),
        "{row}"
    );

    assert_eq!(
        setup.ok(&["usage", "reset", "--user", "9", "--tool", "web_search"]),
        "Reset the web_search count of user 9 to 0.\n"
    );
    assert_eq!(
        setup.json(&[
            "usage",
            "show",
            "--user",
            "9",
            "--tool",
            "web_search",
            "--json"
        ]),
        json!([{"tool": "web_search", "count": 0, "limit": 20, "resets_in_seconds": null}])
    );
    assert_eq!(
        setup.ok(&["usage", "reset", "--user", "9", "--tool", "web_search"]),
        "User 9 had no web_search count; nothing changed.\n"
    );
    assert_eq!(
        setup.json(&["usage", "show", "--user", "9", "--json"])[0]["tool"],
        "summarize"
    );
    let bad = setup.run(&["usage", "reset", "--user", "9", "--tool", "Web Search"]);
    assert!(bad.refused_line().contains("is not a valid tool name"));
}

// A key typed at a terminal

/// A key typed by hand, long and distinctive, so any echo of it shows on the screen.
const TYPED_KEY: &str = "BSA-typed-at-a-terminal-99995555";

/// Quotes `text` for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A private tmux server (its socket in the test's directory) whose one pane runs the binary
/// with only the setup's settings, as an operator at a terminal would; killed when dropped.
struct Terminal {
    socket: std::path::PathBuf,
}

impl Terminal {
    /// Starts `stargazer-keys ARGS` in a pane 150 columns wide; `None`, with a note, when tmux
    /// is not installed (`scripts/test` installs it).
    fn start(setup: &Setup, args: &[&str]) -> Option<Terminal> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            println!("NOTE: tmux is not installed, so the test at a terminal was skipped");
            return None;
        }
        let mut command = vec!["exec env -i".to_owned()];
        let path = std::env::var("PATH").unwrap_or_default();
        command.extend(
            std::iter::once(("PATH".to_owned(), path))
                .chain(setup.vars.iter().cloned())
                .map(|(k, v)| sh_quote(&format!("{k}={v}"))),
        );
        command.extend(
            std::iter::once(support::BIN)
                .chain(args.iter().copied())
                .map(sh_quote),
        );
        let script = setup.dir.path().join("at-a-terminal.sh");
        std::fs::write(
            &script,
            format!(
                "cd {}\n({})\necho \"[exit $?]\"\nsleep 600\n",
                sh_quote(&setup.dir.path().display().to_string()),
                command.join(" ")
            ),
        )
        .unwrap();
        let terminal = Terminal {
            socket: setup.dir.path().join("tmux.sock"),
        };
        let run = format!("sh {}", sh_quote(&script.display().to_string()));
        let out = terminal.tmux(&[
            "new-session",
            "-d",
            "-s",
            "keys",
            "-x",
            "150",
            "-y",
            "40",
            &run,
        ]);
        assert!(out.status.success(), "tmux did not start: {out:?}");
        Some(terminal)
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap()
    }

    /// What the pane shows, scrollback included.
    fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "keys"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once it shows `text`.
    fn wait_for(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal did not show {text:?} within {limit:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the pane's terminal has echo off (`stty` reads the settings of its tty).
    fn echo_is_off(&self) -> bool {
        let out = self.tmux(&["display-message", "-p", "-t", "keys", "#{pane_tty}"]);
        let tty = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        std::process::Command::new("stty")
            .args(["-a", "-F", &tty])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .any(|flag| flag == "-echo")
            })
    }

    /// Types `text` and Enter.
    fn type_line(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "keys", "-l", text])
                .status
                .success()
        );
        assert!(
            self.tmux(&["send-keys", "-t", "keys", "Enter"])
                .status
                .success()
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// Runs `stargazer-keys ARGS` at a terminal, types [`TYPED_KEY`] at its prompt, and returns the
/// screen once the command ended (`None` without tmux). Like a person, it types once the prompt
/// has switched echo off; a build that never does gets the key typed after 5 s anyway.
fn type_the_key_at_a_terminal(setup: &Setup, args: &[&str]) -> Option<String> {
    let terminal = Terminal::start(setup, args)?;
    terminal.wait_for("Paste the key", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !terminal.echo_is_off() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    terminal.type_line(TYPED_KEY);
    let screen = terminal.wait_for("[exit ", Duration::from_secs(60));
    assert!(
        !screen.contains(TYPED_KEY) && !screen.contains("typed-at-a-terminal"),
        "the terminal showed the key:\n{screen}"
    );
    assert!(screen.contains("[exit 0]"), "{screen}");
    assert!(screen.contains("it is not shown as you type"), "{screen}");
    println!("the terminal showed:\n{}", screen.trim_end());
    Some(screen)
}

#[test]
fn user_set_at_a_terminal_does_not_show_the_typed_key_and_saves_it() {
    let setup = Setup::keyed();
    let args = ["user", "set", "--user", "42", "--service", "brave"];
    let Some(screen) = type_the_key_at_a_terminal(&setup, &args) else {
        return;
    };
    assert!(
        screen.contains("Saved the Brave Search key …5555 for user 42."),
        "{screen}"
    );
    assert_eq!(
        setup.resolve(&["--user", "42", "--service", "brave", "--reveal"]),
        json!({"source": "user", "key": TYPED_KEY})
    );
}

#[test]
fn pool_add_at_a_terminal_does_not_show_the_typed_key_and_saves_it() {
    let setup = Setup::keyed();
    let args = ["pool", "add", "--service", "brave"];
    let Some(screen) = type_the_key_at_a_terminal(&setup, &args) else {
        return;
    };
    assert!(
        screen.contains("Added the Brave Search key …5555 to"),
        "{screen}"
    );
    assert_eq!(
        setup.resolve(&["--user", "7", "--service", "brave", "--reveal"]),
        json!({"source": "global_pool", "key": TYPED_KEY})
    );
}

#[test]
fn a_database_made_by_user_set_under_umask_022_is_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let setup = Setup::keyed();
    let mut child = setup
        .command_under_umask(
            "022",
            &["user", "set", "--user", "42", "--service", "brave"],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), USER_KEY.as_bytes()).unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{run:#?}");
    let mode = std::fs::metadata(setup.db_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
}
