//! Gitea values through the operator's commands: where a token may be sent (the security
//! review's base URLs), JSON typed into the token field, and the hosts shared tokens may name.

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use stargazer_keys::MasterKey;

mod support;

use support::{Run, Setup};

const TOKEN: &str = "gitea-token-0123456789abcd";
const CHANNEL: &str = "1100000000000000002";

fn keyed() -> Setup {
    let mut setup = Setup::new();
    setup.set(
        "STARGAZER_MASTER_KEY",
        MasterKey::generate().to_base64().expose_secret().to_owned(),
    );
    setup
}

fn set_with_base_url(setup: &Setup, user: &str, base_url: &str) -> Run {
    setup.run_with_stdin(
        &[
            "user",
            "set",
            "--user",
            user,
            "--service",
            "gitea",
            "--base-url",
            base_url,
        ],
        TOKEN,
    )
}

fn set_value(setup: &Setup, user: &str, value: &str) -> Run {
    setup.run_with_stdin(
        &["user", "set", "--user", user, "--service", "gitea"],
        value.to_owned(),
    )
}

fn add_to_channel_pool(setup: &Setup, value: &str) -> Run {
    setup.run_with_stdin(
        &[
            "pool",
            "add",
            "--service",
            "gitea",
            "--channel",
            CHANNEL,
            "--contributor",
            "42",
        ],
        value.to_owned(),
    )
}

fn listed(setup: &Setup, user: &str) -> Value {
    let run = setup.run(&["user", "list", "--user", user, "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    serde_json::from_str(&run.stdout).unwrap()
}

fn refused(run: &Run) -> String {
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(!run.mentions(TOKEN), "the token is echoed: {run:#?}");
    run.stderr.clone()
}

#[test]
fn the_reviews_base_urls_are_refused_and_nothing_is_stored() {
    let setup = keyed();
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data", "https://"),
        (
            "https://169.254.169.254/latest/meta-data",
            "local or private",
        ),
        ("http://127.0.0.1:6379", "https://"),
        ("https://127.0.0.1:6379", "local or private"),
        ("https://[::1]:22", "local or private"),
        ("https://0x7f000001", "local or private"),
        ("https://[::ffff:10.0.0.1]", "local or private"),
        ("https://localhost:3000", "local or private"),
        ("https://git.neko.li@evil.example", "user name or password"),
        ("gopher://169.254.169.254:6379/_FLUSHALL", "https://"),
        ("https://git.example/?next=x", "query"),
    ] {
        let stderr = refused(&set_with_base_url(&setup, "20", url));
        assert!(stderr.contains(why), "{url}: {stderr}");
        assert!(!stderr.contains(url), "{url} is echoed: {stderr}");
    }
    // Refused before the database was even opened.
    assert!(!setup.db_path().exists());
}

#[test]
fn json_typed_into_the_token_field_gets_the_checks_of_the_two_fields() {
    let setup = keyed();
    for (value, why) in [
        (
            r#"{"token":"tok\r\nX-Injected:1","base_url":"gopher://169.254.169.254:6379/_FLUSHALL"}"#,
            "spaces or line breaks",
        ),
        (
            r#"{"token":"gitea-token-0123456789abcd","base_url":"gopher://169.254.169.254:6379/_FLUSHALL"}"#,
            "https://",
        ),
        (
            r#"{"token":"gitea-token-0123456789abcd","base_url":"https://10.1.2.3"}"#,
            "local or private",
        ),
        (
            r#"{"token":"gitea-token-0123456789abcd","#,
            "is JSON, but not",
        ),
    ] {
        let stderr = refused(&set_value(&setup, "21", value));
        assert!(stderr.contains(why), "{value}: {stderr}");
    }
    assert_eq!(listed(&setup, "21"), json!([]));

    let good = r#"{"token":"gitea-token-0123456789abcd","base_url":"https://git.example/"}"#;
    let run = set_value(&setup, "21", good);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("…abcd"), "{run:#?}");
    assert_eq!(
        listed(&setup, "21")[0]["masked"],
        "…abcd",
        "the token's end, not the JSON's"
    );
    assert_eq!(
        setup
            .run(&["resolve", "--user", "21", "--service", "gitea"])
            .stdout,
        "source: user\nkey: …abcd\nbase url: https://git.example\n"
    );
}

#[test]
fn a_shared_gitea_token_may_only_name_the_hosts_the_operator_allows() {
    let mut setup = keyed();
    let evil = r#"{"token":"gitea-token-0123456789abcd","base_url":"https://evil.example"}"#;
    let stderr = refused(&add_to_channel_pool(&setup, evil));
    assert!(stderr.contains("STARGAZER_GITEA_POOL_HOSTS"), "{stderr}");
    // The default instance's host is allowed by default.
    let default_host = r#"{"token":"gitea-token-0123456789abcd","base_url":"https://git.neko.li"}"#;
    assert_eq!(add_to_channel_pool(&setup, default_host).code, Some(0));

    setup.set(
        "STARGAZER_GITEA_POOL_HOSTS",
        "git.example, Gitea.Example.Org",
    );
    let listed_host =
        r#"{"token":"gitea-token-9999999999abcd","base_url":"https://gitea.example.org/"}"#;
    assert_eq!(add_to_channel_pool(&setup, listed_host).code, Some(0));
    refused(&add_to_channel_pool(&setup, evil));
    // A user's own token is the user's business: any public host.
    assert_eq!(set_value(&setup, "22", evil).code, Some(0));
}

#[test]
fn plain_http_is_only_for_hosts_the_operator_lists() {
    let mut setup = keyed();
    refused(&set_with_base_url(&setup, "23", "http://gitea.lan"));
    setup.set("STARGAZER_GITEA_HTTP_HOSTS", "gitea.lan,127.0.0.1");
    assert_eq!(
        set_with_base_url(&setup, "23", "http://gitea.lan/").code,
        Some(0)
    );
    assert_eq!(
        set_with_base_url(&setup, "24", "http://127.0.0.1:3000").code,
        Some(0)
    );
    refused(&set_with_base_url(&setup, "25", "http://git.example"));
}
