//! Hostile input: property tests over every parser of untrusted text (sealed values, Gitea
//! values and base URLs, settings), and hostile service names and secrets through the vault,
//! against every storage backend.

mod support;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use secrecy::ExposeSecret as _;
use stargazer_keys::GiteaPolicy;
use stargazer_keys::testkit::{DataKey, SealContext, StoredValue};
use stargazer_keys::{Config, KeyError, MasterKey, OpenError, Pool};
use support::*;

/// Enough cases to find the edges, few enough that the file runs in seconds.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // This file is the only one these tests own: a failure prints its input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any text: arbitrary Unicode, bytes made text, printable ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[ -~]{0,80}",
    ]
}

/// Text that looks like a sealed value: version prefixes with base64 (valid or not) after them.
fn sealed_looking() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<u8>(), 0..120).prop_map(|b| format!("v4:{}", URL_SAFE_NO_PAD.encode(b))),
        vec(any::<u8>(), 0..120).prop_map(|b| format!("v4:{}", URL_SAFE.encode(b))),
        vec(any::<u8>(), 0..120).prop_map(|b| format!("v2:{}", URL_SAFE.encode(b))),
        vec(any::<u8>(), 0..120).prop_map(|b| format!("v2:{}", URL_SAFE_NO_PAD.encode(b))),
        vec(any::<u8>(), 0..120).prop_map(|b| format!("v2:{}", STANDARD.encode(b))),
        "v[0-9]{1,3}:[A-Za-z0-9_=+/-]{0,160}",
        "v[24]:.{0,80}",
    ]
}

// ----- sealed values ----------------------------------------------------------------------

/// A seal context that owns its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ctx {
    prefix: String,
    owner: String,
    service: String,
    key_id: Option<String>,
}

impl Ctx {
    fn seal(&self) -> SealContext<'_> {
        SealContext {
            prefix: &self.prefix,
            owner: &self.owner,
            service: &self.service,
            key_id: self.key_id.as_deref(),
        }
    }
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![Just("stargazer".to_owned()), "[a-z0-9:._-]{0,12}"]
}

fn owner() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,20}",
        Just("pool:global".to_owned()),
        "pool:channel:[0-9]{1,20}",
    ]
}

fn service() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,32}"
}

fn key_id() -> impl Strategy<Value = Option<String>> {
    option::of("[0-9a-f]{12}")
}

fn ctx() -> impl Strategy<Value = Ctx> {
    (prefix(), owner(), service(), key_id()).prop_map(|(prefix, owner, service, key_id)| Ctx {
        prefix,
        owner,
        service,
        key_id,
    })
}

/// Moves the last character of `from` to the front of `to`: the same bytes, another split.
fn shift(from: &mut String, to: &mut String) {
    if let Some(c) = from.pop() {
        to.insert(0, c);
    }
}

/// A context and another one: random, one part changed, or the same bytes split differently.
fn two_contexts() -> impl Strategy<Value = (Ctx, Ctx)> {
    ctx().prop_flat_map(|a| {
        let other = prop_oneof![
            ctx(),
            prefix().prop_map({
                let a = a.clone();
                move |prefix| Ctx {
                    prefix,
                    ..a.clone()
                }
            }),
            owner().prop_map({
                let a = a.clone();
                move |owner| Ctx { owner, ..a.clone() }
            }),
            service().prop_map({
                let a = a.clone();
                move |service| Ctx {
                    service,
                    ..a.clone()
                }
            }),
            key_id().prop_map({
                let a = a.clone();
                move |key_id| Ctx {
                    key_id,
                    ..a.clone()
                }
            }),
            (0..3usize).prop_map({
                let a = a.clone();
                move |boundary| {
                    let mut b = a.clone();
                    match boundary {
                        0 => shift(&mut b.prefix, &mut b.owner),
                        1 => shift(&mut b.owner, &mut b.service),
                        _ => {
                            let mut id = b.key_id.take().unwrap_or_default();
                            shift(&mut b.service, &mut id);
                            b.key_id = Some(id);
                        }
                    }
                    b
                }
            }),
            Just(Ctx {
                owner: a.service.clone(),
                service: a.owner.clone(),
                ..a.clone()
            }),
        ];
        (Just(a), other)
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_stored_value_parses_or_is_refused_and_never_opens_without_its_key(
        value in prop_oneof![any_text(), sealed_looking()],
        context in ctx(),
    ) {
        let data_key = DataKey::generate();
        match StoredValue::parse(&value) {
            Err(err) => {
                prop_assert!(
                    matches!(
                        err,
                        OpenError::BadBase64 | OpenError::Truncated | OpenError::UnsupportedVersion(_)
                    ),
                    "{err:?}"
                );
                if let OpenError::UnsupportedVersion(version) = &err {
                    let expected = format!("{version}:");
                    prop_assert!(value.starts_with(&expected), "{:?}", value);
                }
            }
            Ok(StoredValue::Plaintext(text)) => {
                prop_assert_eq!(text, value.as_str());
                let opened = StoredValue::Plaintext(text).open(None, &context.seal()).unwrap();
                prop_assert_eq!(opened.expose_secret(), value.as_str());
            }
            Ok(sealed) => {
                // Random bytes never authenticate, and nothing opens without a data key.
                prop_assert_eq!(
                    sealed.open(Some(&data_key), &context.seal()).unwrap_err(),
                    OpenError::Authentication
                );
                prop_assert_eq!(
                    sealed.open(None, &context.seal()).unwrap_err(),
                    OpenError::NoDataKey
                );
            }
        }
    }

    #[test]
    fn a_sealed_value_opens_only_in_the_context_it_was_sealed_for(
        (sealed_for, other) in two_contexts(),
        secret in any::<String>(),
    ) {
        prop_assume!(sealed_for != other);
        let data_key = DataKey::generate();
        let sealed = data_key.seal(&sealed_for.seal(), secret.as_bytes());
        let value = StoredValue::parse(&sealed).unwrap();

        let opened = value.open(Some(&data_key), &sealed_for.seal()).unwrap();
        prop_assert_eq!(opened.expose_secret(), secret.as_str());
        prop_assert_eq!(
            value.open(Some(&data_key), &other.seal()).unwrap_err(),
            OpenError::Authentication
        );
        prop_assert_eq!(
            value.open(Some(&DataKey::generate()), &sealed_for.seal()).unwrap_err(),
            OpenError::Authentication
        );
    }
}

// ----- Gitea values and base URLs ---------------------------------------------------------

/// Stored Gitea values: any text, JSON with strings or other types, JSON-looking junk.
fn gitea_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        (any::<String>(), option::of(any::<String>())).prop_map(|(token, base_url)| {
            serde_json::json!({ "token": token, "base_url": base_url }).to_string()
        }),
        ("[ -~]{0,20}", "[ a-z./:]{0,30}").prop_map(|(token, base_url)| {
            serde_json::json!({ "token": token, "base_url": base_url }).to_string()
        }),
        Just(r#"{"token": 5}"#.to_owned()),
        Just(r#"{"token": ["a"], "base_url": {}}"#.to_owned()),
        Just(r#"{"base_url": "https://x"}"#.to_owned()),
        "\\{.{0,60}",
    ]
}

/// Base URLs: any text, and http(s) prefixes followed by anything.
fn base_url() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        "https?://.{0,220}",
        "\\s{0,2}https?:/{0,4}[a-z0-9./?# ]{0,12}/{0,3}\\s{0,2}",
        "https?://[a-z]{190,210}",
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_gitea_value_parses_to_a_trimmed_token_or_to_nothing(
        value in gitea_value(),
        default_base in any_text(),
    ) {
        let policy = GiteaPolicy::new(&default_base, None, None);
        if let Some((token, base)) = policy.parse_value(&value, false) {
            let token = token.expose();
            prop_assert!(!token.is_empty());
            prop_assert_eq!(token, token.trim());
            prop_assert!(!base.ends_with('/'), "{base:?}");
        }
    }

    #[test]
    fn an_accepted_base_url_is_clean_http(url in base_url()) {
        if let Ok(accepted) = GiteaPolicy::default().check_base_url(&url) {
            prop_assert!(
                accepted.starts_with("https:") || accepted.starts_with("http:"),
                "{url:?} -> {accepted:?}"
            );
            prop_assert!(accepted.len() <= 200, "{url:?}");
            prop_assert!(
                !accepted.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{url:?}"
            );
            prop_assert!(!accepted.ends_with('/'), "{url:?}");
        }
    }

    #[test]
    fn an_accepted_base_url_keeps_its_host(url in base_url()) {
        if let Ok(accepted) = GiteaPolicy::default().check_base_url(&url) {
            let host = accepted.split_once("://").map(|(_, rest)| rest);
            prop_assert!(
                host.is_some_and(|h| !h.is_empty() && !h.starts_with('/')),
                "{url:?} -> {accepted:?}"
            );
        }
    }
}

#[test]
fn a_base_url_of_slashes_only_is_refused() {
    for url in ["https:///", "http:////", "https://///"] {
        assert!(
            GiteaPolicy::default().check_base_url(url).is_err(),
            "{url:?} -> {:?}",
            GiteaPolicy::default().check_base_url(url)
        );
    }
}

// ----- settings ---------------------------------------------------------------------------

/// Every setting `Config::from_vars` reads, but the master key file (a path; see below).
const SETTINGS: &[&str] = &[
    "STARGAZER_MASTER_KEY",
    "STARGAZER_PREVIOUS_MASTER_KEYS",
    "STARGAZER_DB_PATH",
    "STARGAZER_DATA_KEY_CACHE",
    "REDIS_URL",
    "STARGAZER_REDIS_CONNECT_TIMEOUT_MS",
    "STARGAZER_REDIS_RESPONSE_TIMEOUT_MS",
    "STARGAZER_KEY_PREFIX",
    "ADMIN_USER_IDS",
    "QUOTA_WINDOW",
    "DEFAULT_KEY_DAILY_LIMIT",
    "STARGAZER_DAILY_FAILURE_REFUNDS",
    "STARGAZER_TOOL_DAILY_LIMITS",
    "STARGAZER_SERVICES_FILE",
    "STARGAZER_POOL_BENCH_SECS",
    "STARGAZER_POOL_MAX_KEYS",
    "STARGAZER_LEGACY_VALUES",
    "STARGAZER_ORIGINAL_POOL_KEY",
    "STARGAZER_POOL_RATE_LIMIT_BENCH_SECS",
    "STARGAZER_VALIDATE_KEYS",
    "STARGAZER_VALIDATE_TIMEOUT_MS",
    "STARGAZER_VALIDATE_BASE_URL_OPENAI",
];

/// The name a refusal gives `setting`: its own, or the family's for per-service settings
/// (whose message then names the variable).
fn setting_name(setting: &str) -> &str {
    if setting.starts_with("STARGAZER_VALIDATE_BASE_URL_") {
        "STARGAZER_VALIDATE_BASE_URL_<SERVICE>"
    } else {
        setting
    }
}

/// Setting values: anything, and near misses of numbers, lists and words.
fn setting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9 ,=a-z_:.-]{0,40}",
        "-?[0-9]{1,30}",
        "[a-z_]{1,10}=-?[0-9]{0,25}(,[a-z_ ]{0,10}=?[0-9x]{0,5}){0,3}",
        "(fixed|rolling|FIXED|Rolling| fixed |fix)",
    ]
}

/// A master key's text that is almost right: base64 of the wrong length, base64-ish text,
/// anything, or a real key with a character added or changed.
fn bad_master_key_text() -> impl Strategy<Value = String> {
    let real = || MasterKey::generate().to_base64().expose_secret().to_owned();
    prop_oneof![
        vec(any::<u8>(), 0..64)
            .prop_filter("not 32 bytes", |b| b.len() != 32)
            .prop_map(|b| STANDARD.encode(b)),
        "[A-Za-z0-9+/=_-]{8,80}",
        any::<String>(),
        (0..44usize, "[!-~]").prop_map(move |(at, c)| {
            let mut key = real();
            key.replace_range(at..=at, &c);
            key
        }),
        "[!-~]{1,3}".prop_map(move |extra| format!("{}{extra}", real())),
    ]
}

/// The message does not contain `text` (trimmed, when 8 characters or more), nor any 12
/// characters of it.
fn assert_not_echoed(message: &str, text: &str) -> Result<(), TestCaseError> {
    let text: Vec<char> = text.trim().chars().collect();
    if text.len() >= 8 {
        let whole: String = text.iter().collect();
        prop_assert!(!message.contains(&whole), "{message:?} echoes {whole:?}");
    }
    for window in text.windows(12) {
        let window: String = window.iter().collect();
        prop_assert!(!message.contains(&window), "{message:?} echoes {window:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_bad_setting_alone_is_refused_naming_it(
        setting in proptest::sample::select(SETTINGS),
        value in setting_value(),
    ) {
        if let Err(err) = Config::from_vars([(setting, value.as_str())]) {
            prop_assert_eq!(err.setting, setting_name(setting), "{}", err);
            prop_assert!(err.to_string().starts_with(err.setting), "{}", err);
            prop_assert!(err.to_string().contains(setting), "{}", err);
            prop_assert!(!err.to_string().contains('\n'), "{}", err);
        }
    }

    #[test]
    fn any_settings_together_are_read_or_refused_naming_one_of_them(
        values in vec(setting_value(), SETTINGS.len()),
        secret_env in any::<String>(),
    ) {
        let mut vars: Vec<(&str, &str)> = SETTINGS
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        vars.push(("BRAVE_API_KEY", &secret_env));
        match Config::from_vars(vars) {
            Ok(config) => {
                // Debug never shows an environment value.
                let debug = format!("{config:?}");
                assert_not_echoed(&debug, &secret_env)?;
            }
            Err(err) => {
                prop_assert!(
                    SETTINGS.iter().any(|s| setting_name(s) == err.setting),
                    "{}",
                    err
                );
                prop_assert!(err.to_string().starts_with(err.setting), "{}", err);
            }
        }
    }

    #[test]
    fn a_bad_master_key_is_refused_naming_its_setting_without_echoing_it(
        text in bad_master_key_text(),
    ) {
        if let Err(err) = Config::from_vars([("STARGAZER_MASTER_KEY", text.as_str())]) {
            prop_assert_eq!(err.setting, "STARGAZER_MASTER_KEY");
            assert_not_echoed(&err.to_string(), &text)?;
            assert_not_echoed(&format!("{err:?}"), &text)?;
        }
    }

    #[test]
    fn a_bad_previous_master_key_is_refused_naming_its_setting_without_echoing_any(
        bad in bad_master_key_text(),
        good_before in any::<bool>(),
    ) {
        let current = MasterKey::generate().to_base64().expose_secret().to_owned();
        let good = MasterKey::generate().to_base64().expose_secret().to_owned();
        let list = if good_before { format!("{good},{bad}") } else { format!("{bad}, {good}") };
        let parsed = Config::from_vars([
            ("STARGAZER_MASTER_KEY", current.as_str()),
            ("STARGAZER_PREVIOUS_MASTER_KEYS", list.as_str()),
        ]);
        if let Err(err) = parsed {
            prop_assert_eq!(err.setting, "STARGAZER_PREVIOUS_MASTER_KEYS");
            for text in bad.split(',').chain([good.as_str(), current.as_str()]) {
                assert_not_echoed(&err.to_string(), text)?;
                assert_not_echoed(&format!("{err:?}"), text)?;
            }
        }
    }

    #[test]
    fn a_bad_master_key_file_is_refused_naming_its_setting_without_echoing_its_content(
        content in bad_master_key_text(),
        name in "[A-Za-z0-9._-]{1,20}",
        write in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&name);
        if write {
            let _ = std::fs::write(&path, &content);
        }
        let parsed = Config::from_vars([(
            "STARGAZER_MASTER_KEY_FILE",
            path.display().to_string(),
        )]);
        if let Err(err) = parsed {
            prop_assert_eq!(err.setting, "STARGAZER_MASTER_KEY_FILE");
            prop_assert!(err.to_string().contains(&path.display().to_string()), "{}", err);
            assert_not_echoed(&err.to_string(), &content)?;
        }
    }
}

// ----- hostile service names and secrets through the vault --------------------------------

const USER: u64 = 123_456_789_012;
const CHANNEL: u64 = 210_987_654_321;
const ADMIN: u64 = 999;

/// Service names that cannot be service ids.
fn hostile_service_names() -> Vec<String> {
    [
        "",
        ":",
        "brave:x",
        "*",
        "brave*",
        "{",
        "}",
        "{brave}",
        "brave}",
        " ",
        "brave ",
        " brave",
        "bra ve",
        "Brave",
        "BRAVE",
        "ключ",
        "brave\u{0}",
        "\u{0}",
        "brave\n",
        "🔑",
        "bräve",
        "brave/../x",
        "brave?",
        "[brave]",
        "brave\\",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["a".repeat(33), "b".repeat(1_000), "c".repeat(10 << 20)])
    .collect()
}

/// The error of a refused service name: `InvalidService`, one short sentence.
fn assert_invalid_service(err: &KeyError, name: &str, call: &str) {
    let shown: String = name.chars().take(20).collect();
    assert!(
        matches!(err, KeyError::InvalidService(_)),
        "{call}({shown:?}): {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("is not a valid service name"),
        "{call}({shown:?}): {message}"
    );
    assert!(
        message.len() < 250,
        "{call}({shown:?}): a {}-byte message",
        message.len()
    );
}

contract!(
    hostile_service_names_are_refused_by_every_call_and_nothing_is_written,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("BRAVE_API_KEY", "env-brave-key-0000000000")
            .open()
            .await;
        let kept = secret("kept");
        fx.vault
            .set_user_api_key(USER, "brave", &kept)
            .await
            .unwrap();
        let before = fx.dump().await;
        let key = secret("hostile");
        for name in hostile_service_names() {
            let vault = &fx.vault;
            let name = name.as_str();
            let err = vault.set_user_api_key(USER, name, &key).await.unwrap_err();
            assert_invalid_service(&err, name, "set_user_api_key");
            for pool in [Pool::Global, Pool::Channel(CHANNEL)] {
                let err = vault
                    .add_pool_key(pool, name, &key, ADMIN)
                    .await
                    .unwrap_err();
                assert_invalid_service(&err, name, "add_pool_key");
                let err = vault
                    .remove_pool_key(pool, name, "0123456789ab")
                    .await
                    .unwrap_err();
                assert_invalid_service(&err, name, "remove_pool_key");
                let err = vault.list_pool_keys(pool, Some(name)).await.unwrap_err();
                assert_invalid_service(&err, name, "list_pool_keys");
            }
            let err = vault.remove_user_api_key(USER, name).await.unwrap_err();
            assert_invalid_service(&err, name, "remove_user_api_key");
            // Resolution refuses too: not even the environment tier answers.
            assert!(
                vault
                    .get_user_api_key(Some(USER), name, Some(CHANNEL), true)
                    .await
                    .is_none()
            );
            assert!(vault.get_pool_api_key(name).await.is_none());
            assert!(
                vault
                    .get_channel_pool_api_key(CHANNEL, name)
                    .await
                    .is_none()
            );
        }
        assert_eq!(fx.dump().await, before, "nothing was written");
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(USER), "brave", None, false)
                .await
                .unwrap()
                .key
                .expose(),
            kept
        );
    }
);

/// Recognises the error a refused input must give.
type Expected = fn(&KeyError) -> bool;

/// Secrets the vault must refuse: NUL bytes anywhere, 10 MB (with and without NUL bytes).
fn hostile_secrets() -> Vec<(String, Expected)> {
    let ten_mb = 10 << 20;
    vec![
        ("\0".to_owned(), |e| {
            matches!(e, KeyError::KeyHasControlCharacters)
        }),
        ("sk-nul\0inside-0000000000".to_owned(), |e| {
            matches!(e, KeyError::KeyHasControlCharacters)
        }),
        ("\0sk-leading-nul-00000000".to_owned(), |e| {
            matches!(e, KeyError::KeyHasControlCharacters)
        }),
        ("sk-trailing-nul-0000000\0".to_owned(), |e| {
            matches!(e, KeyError::KeyHasControlCharacters)
        }),
        (
            "x".repeat(ten_mb),
            |e| matches!(e, KeyError::KeyTooLong(n) if *n == 10 << 20),
        ),
        ("\0".repeat(ten_mb), |e| {
            matches!(e, KeyError::KeyTooLong(_))
        }),
        (format!("sk-{}\0", "y".repeat(ten_mb)), |e| {
            matches!(e, KeyError::KeyTooLong(_))
        }),
    ]
}

/// A short message that shows none of the secret.
fn assert_short_and_silent(err: &KeyError, secret: &str, call: &str) {
    let message = format!("{err} {err:?}");
    assert!(
        message.len() < 300,
        "{call}: a {}-byte message",
        message.len()
    );
    let tail: String = secret.chars().rev().take(12).collect();
    let tail: String = tail.chars().rev().collect();
    if tail.chars().any(|c| c != '\0') {
        assert!(!message.contains(&tail), "{call}: {message}");
    }
}

contract!(
    secrets_with_nul_bytes_or_of_10_mb_are_refused_and_nothing_is_written,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let kept = secret("kept");
        fx.vault
            .set_user_api_key(USER, "brave", &kept)
            .await
            .unwrap();
        let before = fx.dump().await;
        let owners_before = fx.vault.data_keys().kek_usage().await.unwrap();
        let fresh_user = USER + 1;
        for (secret, expected) in hostile_secrets() {
            let shown: String = secret.chars().take(12).collect();
            let calls = [
                (
                    "set_user_api_key",
                    fx.vault.set_user_api_key(USER, "openai", &secret).await,
                ),
                (
                    "set_user_api_key, new user",
                    fx.vault
                        .set_user_api_key(fresh_user, "brave", &secret)
                        .await,
                ),
                (
                    "set_gitea_credentials",
                    fx.vault.set_gitea_credentials(USER, &secret, None).await,
                ),
                (
                    "set_gitea_credentials with a base URL",
                    fx.vault
                        .set_gitea_credentials(USER, &secret, Some("https://gitea.example"))
                        .await,
                ),
            ];
            for (call, result) in calls {
                let err = result.unwrap_err();
                assert!(expected(&err), "{call}({shown:?}...): {err:?}");
                assert_short_and_silent(&err, &secret, call);
            }
            for pool in [Pool::Global, Pool::Channel(CHANNEL)] {
                let err = fx
                    .vault
                    .add_pool_key(pool, "brave", &secret, ADMIN)
                    .await
                    .unwrap_err();
                assert!(expected(&err), "add_pool_key({shown:?}...): {err:?}");
                assert_short_and_silent(&err, &secret, "add_pool_key");
            }
        }
        for url in [
            "https://gitea.example/\0".to_owned(),
            "https://gitea\0.example".to_owned(),
            format!("https://{}", "g".repeat(10 << 20)),
        ] {
            let err = fx
                .vault
                .set_gitea_credentials(USER, "gitea-token-0000000000", Some(&url))
                .await
                .unwrap_err();
            assert!(matches!(err, KeyError::InvalidBaseUrl(_)), "{err:?}");
            assert!(err.to_string().len() < 200);
        }

        assert_eq!(fx.dump().await, before, "nothing was written to storage");
        assert_eq!(
            fx.vault.data_keys().kek_usage().await.unwrap(),
            owners_before,
            "no data key was made"
        );
        let owners: BTreeSet<String> = [fresh_user.to_string(), Pool::Global.owner_id()]
            .into_iter()
            .collect();
        for owner in owners {
            assert!(
                fx.vault.data_keys().get(&owner).await.unwrap().is_none(),
                "{owner}"
            );
        }
        assert_eq!(
            fx.vault
                .get_user_api_key(Some(USER), "brave", None, false)
                .await
                .unwrap()
                .key
                .expose(),
            kept
        );
    }
);

// ----- Gitea values planted in storage --------------------------------------------------------

contract!(
    planted_gitea_values_are_checked_again_when_read,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        // Whoever can write to storage plants values in the formats that are still read.
        let planted_own = r#"{"token":"tok\r\nX-Injected:1","base_url":"gopher://169.254.169.254:6379/_FLUSHALL"}"#;
        fx.storage()
            .hset(&layout.user_keys_key(USER), "gitea", planted_own)
            .await
            .unwrap();
        let planted_pool =
            r#"{"token":"gitea-token-0123456789abcd","base_url":"https://evil.example"}"#;
        fx.storage()
            .hset(
                &layout.channel_pool_key(CHANNEL, "gitea"),
                "0123456789ab",
                planted_pool,
            )
            .await
            .unwrap();

        let own = fx.vault.get_gitea_credentials(Some(USER), None, true).await;
        assert!(own.is_none(), "{:?}", own.map(|c| c.base_url));
        let pooled = fx
            .vault
            .get_gitea_credentials(Some(USER + 1), Some(CHANNEL), true)
            .await;
        assert!(pooled.is_none(), "{:?}", pooled.map(|c| c.base_url));

        // A user's own token may name any public host; the pool's may not.
        fx.storage()
            .hset(&layout.user_keys_key(USER), "gitea", planted_pool)
            .await
            .unwrap();
        let own = fx
            .vault
            .get_gitea_credentials(Some(USER), None, true)
            .await
            .expect("a user's own token for a public host");
        assert_eq!(own.base_url, "https://evil.example");
    }
);

// ----- pool size and draws ----------------------------------------------------------------------

contract!(
    a_pool_holds_at_most_the_configured_number_of_keys,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("STARGAZER_POOL_MAX_KEYS", "3")
            .open()
            .await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let added = fx
                .vault
                .add_pool_key(
                    Pool::Channel(CHANNEL),
                    "brave",
                    &secret(&format!("k{i}")),
                    ADMIN,
                )
                .await
                .unwrap();
            ids.push(added.key_id);
        }
        let err = fx
            .vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &secret("k3"), ADMIN)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::PoolFull { max: 3, .. }), "{err:?}");
        assert!(err.to_string().contains("STARGAZER_POOL_MAX_KEYS"), "{err}");
        // Other pools and services have their own room.
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("g"), ADMIN)
            .await
            .unwrap();
        fx.vault
            .remove_pool_key(Pool::Channel(CHANNEL), "brave", &ids[0])
            .await
            .unwrap();
        fx.vault
            .add_pool_key(Pool::Channel(CHANNEL), "brave", &secret("k4"), ADMIN)
            .await
            .unwrap();
    }
);

contract!(
    a_usable_pool_key_is_found_when_every_drawn_key_fails,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        // Twenty values that do not open, under well-formed key ids, and one good key.
        for _ in 0..20 {
            fx.storage()
                .hset(
                    &layout.global_pool_key("brave"),
                    &hex::encode(rand_bytes::<6>()),
                    "v4:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                )
                .await
                .unwrap();
        }
        let good = secret("good");
        fx.vault
            .add_pool_key(Pool::Global, "brave", &good, ADMIN)
            .await
            .unwrap();
        for _ in 0..30 {
            let found = fx
                .vault
                .get_user_api_key(Some(USER), "brave", None, true)
                .await
                .expect("the one usable key is found");
            assert_eq!(found.key.expose(), good, "{backend:?}");
        }
    }
);

contract!(pool_draws_reach_every_key, |backend| async move {
    let fx = Fixture::new(backend).await;
    let mut keys = BTreeSet::new();
    for i in 0..30 {
        let key = secret(&format!("d{i}"));
        fx.vault
            .add_pool_key(Pool::Global, "brave", &key, ADMIN)
            .await
            .unwrap();
        keys.insert(key);
    }
    let mut drawn = BTreeSet::new();
    for _ in 0..400 {
        let key = fx.vault.get_pool_api_key("brave").await.expect("a key");
        drawn.insert(key.expose().to_owned());
    }
    assert_eq!(drawn, keys, "{backend:?}: some keys are never drawn");
});

// ----- planted legacy values ---------------------------------------------------------------------

contract!(
    legacy_values_are_refused_when_the_operator_says_so,
    |backend| async move {
        let fx = Fixture::builder(backend)
            .env("STARGAZER_LEGACY_VALUES", "refuse")
            .open()
            .await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        let planted = secret("planted");
        fx.storage()
            .hset(&layout.user_keys_key(USER), "openai", &planted)
            .await
            .unwrap();
        fx.storage()
            .hset(&layout.global_pool_key("openai"), "0123456789ab", &planted)
            .await
            .unwrap();
        assert!(
            fx.vault
                .get_user_api_key(Some(USER), "openai", None, true)
                .await
                .is_none(),
            "{backend:?}: a planted plaintext value resolved"
        );
    }
);

contract!(
    migrate_leaves_a_planted_pool_entry_for_the_operator_who_can_remove_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        let planted = secret("attacker");
        fx.storage()
            .hset(&layout.global_pool_key("openai"), "x", &planted)
            .await
            .unwrap();
        let hashes = fx.vault.legacy_hashes().await.unwrap();
        assert_eq!(hashes.len(), 1);
        assert_eq!(hashes[0].key, layout.global_pool_key("openai"));

        let report = fx.vault.migrate().await.unwrap();
        assert_eq!(
            report.from_plaintext, 0,
            "{backend:?}: the entry was laundered"
        );
        assert_eq!(
            report.left_in_pools,
            vec![format!("{} \"x\"", layout.global_pool_key("openai"))]
        );
        // Left as it was, and refused from now on, in this process and by the marker.
        assert_eq!(
            fx.storage()
                .hget(&layout.global_pool_key("openai"), "x")
                .await
                .unwrap()
                .as_deref(),
            Some(planted.as_str())
        );
        assert!(fx.vault.get_pool_api_key("openai").await.is_none());
        assert!(!fx.vault.legacy_values_allowed().await);

        // Listed, and removable, though `x` is no key id.
        let listed = fx
            .vault
            .list_pool_keys(Pool::Global, Some("openai"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_id, "x");
        assert_eq!(listed[0].masked, None);
        assert!(
            fx.vault
                .remove_pool_key(Pool::Global, "openai", "x")
                .await
                .unwrap()
        );
        assert!(
            fx.dump()
                .await
                .iter()
                .all(|(key, _, _)| key != &layout.global_pool_key("openai"))
        );
    }
);

// ----- the original bot's pool values -----------------------------------------------------------

/// How the original bot's pool key is supplied in a test.
#[derive(Debug, Clone, Copy)]
enum OriginalPoolKey {
    /// `STARGAZER_ORIGINAL_POOL_KEY`.
    Setting,
    /// A data-key row under the owner id `stargazer:api_key_pool`.
    Row,
    /// SHA-256 of the master key followed by the salt.
    Derived,
}

/// A vault whose global Brave pool holds a `v2:` value sealed as the original bot would have,
/// under a pool key supplied as `how`; returns the fixture and the secret.
async fn original_pool_value(backend: Backend, how: OriginalPoolKey) -> (Fixture, String) {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let master = master_key_b64();
    let key: [u8; 32] = match how {
        OriginalPoolKey::Setting | OriginalPoolKey::Row => rand_bytes(),
        OriginalPoolKey::Derived => {
            let mut hash = sha2::Sha256::new();
            hash.update(STANDARD.decode(&master).unwrap());
            hash.update(b"stargazer:api_key_pool");
            hash.finalize().into()
        }
    };
    let owners: Vec<(&str, [u8; 32])> = match how {
        OriginalPoolKey::Row => vec![("stargazer:api_key_pool", key)],
        _ => vec![("1001", rand_bytes())],
    };
    seed_original_database(&dir.path().join("keys.db"), &master, &owners);
    let mut builder = Fixture::builder(backend).existing(dir, master);
    if let OriginalPoolKey::Setting = how {
        builder = builder.env("STARGAZER_ORIGINAL_POOL_KEY", &STANDARD.encode(key));
    }
    let fx = builder.open().await;
    let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
    let secret = secret("original-pool");
    fx.storage()
        .hset(
            &layout.global_pool_key("brave"),
            "a1b2c3d4e5f6",
            &seal_v2(&key, &secret),
        )
        .await
        .unwrap();
    (fx, secret)
}

contract!(
    the_original_bots_pool_values_open_under_each_supported_pool_key_and_migrate,
    |backend| async move {
        for how in [
            OriginalPoolKey::Setting,
            OriginalPoolKey::Row,
            OriginalPoolKey::Derived,
        ] {
            let (fx, secret) = original_pool_value(backend, how).await;
            let drawn = fx.vault.get_pool_api_key("brave").await;
            assert_eq!(
                drawn.as_ref().map(|key| key.expose()),
                Some(secret.as_str()),
                "{backend:?}, {how:?}"
            );
            let report = fx.vault.migrate().await.unwrap();
            assert_eq!((report.from_v2, report.unreadable), (1, 0), "{how:?}");
            let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
            let stored = fx
                .storage()
                .hget(&layout.global_pool_key("brave"), "a1b2c3d4e5f6")
                .await
                .unwrap()
                .unwrap();
            assert!(stored.starts_with("v4:"), "{how:?}");
            assert_eq!(
                fx.vault
                    .get_pool_api_key("brave")
                    .await
                    .map(|key| key.expose().to_owned()),
                Some(secret)
            );
        }
    }
);

contract!(
    migrate_reports_each_pool_value_it_cannot_open_and_keeps_it,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        let unknown = seal_v2(&rand_bytes(), &secret("lost"));
        fx.storage()
            .hset(
                &layout.channel_pool_key(CHANNEL, "brave"),
                "a1b2c3d4e5f6",
                &unknown,
            )
            .await
            .unwrap();
        let report = fx.vault.migrate().await.unwrap();
        assert_eq!(
            report
                .unreadable_by_hash
                .get(&layout.channel_pool_key(CHANNEL, "brave")),
            Some(&1),
            "{backend:?}: {report:?}"
        );
        assert_eq!(
            fx.storage()
                .hget(&layout.channel_pool_key(CHANNEL, "brave"), "a1b2c3d4e5f6")
                .await
                .unwrap(),
            Some(unknown),
            "never deleted"
        );
    }
);

contract!(
    a_pool_key_kept_under_the_original_bots_id_can_be_benched,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let layout = stargazer_keys::storage::Layout::new(fx.prefix.clone());
        let original = secret("original");
        fx.storage()
            .hset(&layout.global_pool_key("brave"), "legacy_key_01", &original)
            .await
            .unwrap();
        fx.vault.migrate().await.unwrap();
        let drawn = fx
            .vault
            .get_user_api_key(Some(USER), "brave", None, true)
            .await
            .expect("the migrated key");
        assert_eq!(
            drawn.pool_key().map(|p| p.key_id.as_str()),
            Some("legacy_key_01")
        );
        fx.vault
            .report_key_outcome("brave", &drawn, stargazer_keys::KeyOutcome::Unauthorized)
            .await;
        let benches = fx
            .vault
            .pool_key_benches(Pool::Global, "brave")
            .await
            .unwrap();
        assert!(
            benches.contains_key("legacy_key_01"),
            "{backend:?}: {benches:?}"
        );
    }
);
