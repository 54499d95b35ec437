//! Settings: a bad value names its setting and never echoes a master key; good values parse.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use stargazer_keys::config::{DEFAULT_DB_PATH, DEFAULT_PREFIX, load_or_create_master_key_file};
use stargazer_keys::{Config, ConfigError, MasterKey, QuotaWindow};

fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().copied())
}

fn parse_err(vars: &[(&str, &str)]) -> ConfigError {
    parse(vars).expect_err("the settings are refused")
}

/// The refusal names `setting`, and its message does not contain `secret_text`.
fn assert_refused_without_echo(err: &ConfigError, setting: &str, secret_text: &str) {
    assert_eq!(err.setting, setting, "{err}");
    let message = err.to_string();
    assert!(message.starts_with(setting), "{message}");
    assert!(!message.contains(secret_text), "{message}");
}

fn base64_key() -> String {
    MasterKey::generate().to_base64().expose_secret().to_owned()
}

#[test]
fn a_master_key_of_the_wrong_length_is_refused_without_echoing_it() {
    let short = STANDARD.encode(b"only-sixteen-byt");

    let err = parse_err(&[("STARGAZER_MASTER_KEY", &short)]);

    assert_refused_without_echo(&err, "STARGAZER_MASTER_KEY", &short);
    assert!(err.reason.contains("32 bytes"), "{err}");
}

#[test]
fn a_master_key_that_is_not_base64_is_refused_without_echoing_it() {
    let text = "correct horse battery staple!!";

    let err = parse_err(&[("STARGAZER_MASTER_KEY", text)]);

    assert_refused_without_echo(&err, "STARGAZER_MASTER_KEY", text);
    assert!(err.reason.contains("base64"), "{err}");
}

#[test]
fn a_bad_previous_master_key_is_refused_without_echoing_it() {
    let bad = STANDARD.encode([7u8; 31]);
    let list = format!("{},{bad}", base64_key());

    let err = parse_err(&[
        ("STARGAZER_MASTER_KEY", &base64_key()),
        ("STARGAZER_PREVIOUS_MASTER_KEYS", &list),
    ]);

    assert_refused_without_echo(&err, "STARGAZER_PREVIOUS_MASTER_KEYS", &bad);
}

#[test]
fn a_master_key_and_a_master_key_file_together_are_refused() {
    let key = base64_key();

    let err = parse_err(&[
        ("STARGAZER_MASTER_KEY", &key),
        ("STARGAZER_MASTER_KEY_FILE", "/run/secrets/master.key"),
    ]);

    assert_refused_without_echo(&err, "STARGAZER_MASTER_KEY", &key);
}

#[test]
fn an_unreadable_master_key_file_is_refused_naming_the_file_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.key");

    let err = parse_err(&[("STARGAZER_MASTER_KEY_FILE", missing.to_str().unwrap())]);

    assert_eq!(err.setting, "STARGAZER_MASTER_KEY_FILE", "{err}");
    assert!(err.reason.contains("cannot be read"), "{err}");
}

#[test]
fn a_master_key_file_with_bad_content_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let content = STANDARD.encode([9u8; 24]);
    std::fs::write(&path, &content).unwrap();

    let err = parse_err(&[("STARGAZER_MASTER_KEY_FILE", path.to_str().unwrap())]);

    assert_refused_without_echo(&err, "STARGAZER_MASTER_KEY_FILE", &content);
}

#[test]
fn a_malformed_admin_user_ids_is_refused_naming_it() {
    let err = parse_err(&[("ADMIN_USER_IDS", "123456789012345678, alice")]);

    assert_eq!(err.setting, "ADMIN_USER_IDS", "{err}");
    assert!(err.reason.contains("alice"), "{err}");
}

#[test]
fn an_unknown_quota_window_is_refused_naming_it() {
    let err = parse_err(&[("QUOTA_WINDOW", "weekly")]);

    assert_eq!(err.setting, "QUOTA_WINDOW", "{err}");
    assert!(err.reason.contains("weekly"), "{err}");
}

#[test]
fn a_non_numeric_daily_limit_is_refused_naming_it() {
    let err = parse_err(&[("DEFAULT_KEY_DAILY_LIMIT", "twenty")]);

    assert_eq!(err.setting, "DEFAULT_KEY_DAILY_LIMIT", "{err}");
}

#[test]
fn valid_settings_parse() {
    let current = MasterKey::generate();
    let previous = MasterKey::generate();
    let current_text = current.to_base64().expose_secret().to_owned();
    let previous_text = previous.to_base64().expose_secret().to_owned();

    let config = parse(&[
        ("STARGAZER_MASTER_KEY", &current_text),
        ("STARGAZER_PREVIOUS_MASTER_KEYS", &previous_text),
        ("STARGAZER_DB_PATH", "/var/lib/stargazer/keys.db"),
        ("STARGAZER_DATA_KEY_CACHE", "500"),
        ("REDIS_URL", "redis://a:6379, redis://b:6379"),
        ("STARGAZER_REDIS_CONNECT_TIMEOUT_MS", "250"),
        ("STARGAZER_KEY_PREFIX", "mybot"),
        ("ADMIN_USER_IDS", "123456789012345678, 42"),
        ("QUOTA_WINDOW", "Rolling"),
        ("DEFAULT_KEY_DAILY_LIMIT", "5"),
        ("STARGAZER_TOOL_DAILY_LIMITS", "web_search=3, image = 1"),
    ])
    .expect("the settings parse");

    let keyring = config.keyring().unwrap();
    assert_eq!(keyring.current().id(), current.id());
    assert!(keyring.get(previous.id().as_str()).is_some());
    assert_eq!(config.db_path, Path::new("/var/lib/stargazer/keys.db"));
    assert_eq!(config.data_key_cache, 500);
    assert_eq!(config.redis_urls, ["redis://a:6379", "redis://b:6379"]);
    assert_eq!(config.redis_connect_timeout, Duration::from_millis(250));
    assert_eq!(config.key_prefix, "mybot");
    assert_eq!(
        config.admin_user_ids.iter().copied().collect::<Vec<_>>(),
        [42, 123456789012345678]
    );
    assert_eq!(config.quota_window, QuotaWindow::Rolling);
    assert_eq!(config.daily_limit("web_search"), 3);
    assert_eq!(config.daily_limit("image"), 1);
    assert_eq!(config.daily_limit("anything_else"), 5);
}

#[test]
fn no_settings_give_the_defaults() {
    let config = parse(&[]).expect("no settings are valid settings");

    assert!(config.master_key.is_none());
    assert!(config.keyring().is_err());
    assert_eq!(config.db_path, Path::new(DEFAULT_DB_PATH));
    assert_eq!(config.key_prefix, DEFAULT_PREFIX);
    assert!(config.redis_urls.is_empty());
    assert!(config.admin_user_ids.is_empty());
    assert_eq!(config.quota_window, QuotaWindow::Fixed);
    assert_eq!(
        config.default_master_key_file(),
        Path::new("data/master.key")
    );
}

#[test]
fn a_missing_master_key_file_is_created_with_mode_0600_and_read_back_as_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("master.key");

    let (created, was_created) = load_or_create_master_key_file(&path).unwrap();
    let (loaded, was_created_again) = load_or_create_master_key_file(&path).unwrap();

    assert!(was_created);
    assert!(!was_created_again);
    assert_eq!(loaded.id(), created.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let config = parse(&[("STARGAZER_MASTER_KEY_FILE", path.to_str().unwrap())]).unwrap();
    assert_eq!(config.master_key.unwrap().id(), created.id());
}

#[test]
fn a_check_origin_is_parsed_as_a_url_and_refused_unless_https_or_this_machine() {
    let setting = "STARGAZER_VALIDATE_BASE_URL_BRAVE";
    for (origin, kept) in [
        ("https://api.example.com/", "https://api.example.com"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        // Another spelling of a loopback address is still this machine.
        ("http://0x7f000001:9", "http://127.0.0.1:9"),
        ("http://[::1]:9", "http://[::1]:9"),
    ] {
        let config = parse(&[(setting, origin)]).unwrap_or_else(|err| panic!("{origin}: {err}"));
        assert_eq!(config.validate_base_urls["brave"], kept);
    }
    for origin in [
        "http://api.example.com",
        "http://127.0.0.1.evil.example",
        "https://user@api.example.com",
        "https://api.example.com/path",
        "https://api.example.com?x=1",
        "gopher://127.0.0.1:6379",
        "https://api.example.com\u{1b}[31m",
    ] {
        let err = parse_err(&[(setting, origin)]);
        assert!(err.to_string().contains(setting), "{origin}: {err}");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
    }
}

#[test]
fn a_database_url_for_another_machine_requires_tls_unless_told_otherwise() {
    use tokio_postgres::config::SslMode;
    let mode = |url: &str| {
        stargazer_keys::testkit::connection_config(url)
            .unwrap()
            .get_ssl_mode()
    };

    assert_eq!(
        mode("postgres://bot:pw@db.example.net/keys"),
        SslMode::Require
    );
    assert_eq!(
        mode("postgres://bot:pw@127.0.0.1:15432/keys"),
        SslMode::Prefer
    );
    assert_eq!(mode("postgres://bot:pw@localhost/keys"), SslMode::Prefer);
    assert_eq!(mode("postgres://bot:pw@[::1]/keys"), SslMode::Prefer);
    assert_eq!(
        mode("postgres://bot:pw@db.example.net/keys?sslmode=disable"),
        SslMode::Disable
    );
    assert_eq!(
        mode("postgres://bot:pw@db.example.net/keys?sslmode=verify-full"),
        SslMode::Require
    );
}

#[test]
fn sslmode_prefer_for_another_machine_is_refused_as_downgradable() {
    let url = "postgres://bot:s3cret-pw@db.example.net/keys?sslmode=prefer";

    let err = parse_err(&[("STARGAZER_DATABASE_URL", url)]);

    assert_refused_without_echo(&err, "STARGAZER_DATABASE_URL", "s3cret-pw");
    assert!(err.reason.contains("sslmode=require"), "{err}");
    // On this machine there is no path to be on.
    parse(&[(
        "STARGAZER_DATABASE_URL",
        "postgres://bot:pw@127.0.0.1/keys?sslmode=prefer",
    )])
    .unwrap();
}

#[test]
fn a_database_url_that_does_not_parse_names_the_option_but_never_the_password() {
    let bad_value = "postgres://bot:s3cret-pw@db.example.net/keys?sslmode=sometimes";
    let bad_port = "postgres://bot:s3cret-pw@db.example.net:54x/keys";
    let unknown = "postgres://bot:s3cret-pw@db.example.net/keys?colour=blue";
    let broken = "postgres://bot:s3cret-pw@db.example.net/keys?sslmode";

    let cases = [
        (bad_value, "invalid value for option `sslmode`"),
        (bad_port, "invalid value for option `port`"),
        (unknown, "unknown option `colour`"),
        (broken, "percent-encode"),
    ];
    for (url, expected) in cases {
        let err = parse_err(&[("STARGAZER_DATABASE_URL", url)]);
        assert_refused_without_echo(&err, "STARGAZER_DATABASE_URL", "s3cret-pw");
        assert!(err.reason.contains(expected), "{url}: {err}");
    }
}
