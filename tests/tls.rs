//! TLS to the servers a deployment on several machines uses: Redis (`rediss://`) and
//! PostgreSQL, each a private server started with a certificate of a test CA.

mod support;

use stargazer_keys::testkit::{PostgresServer, RedisServer, TestCertificates};
use stargazer_keys::{Config, KeyError, KeySource};
use support::*;

const ALICE: u64 = 111_111_111_111;

fn tls_redis() -> (TestCertificates, RedisServer) {
    let certificates = TestCertificates::generate().expect("make test certificates");
    let server = RedisServer::start_tls(&certificates).expect("start redis-server with TLS");
    (certificates, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_on_rediss_trusting_the_ca_file_saves_and_resolves() {
    let (certificates, server) = tls_redis();
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    let fx = Fixture::builder(Backend::Redis)
        .redis_url(server.url())
        .env(
            "STARGAZER_TLS_CA_FILE",
            &certificates.ca_path().display().to_string(),
        )
        .open()
        .await;
    let key = secret("over-tls");
    fx.vault
        .set_user_api_key(ALICE, "brave", &key)
        .await
        .unwrap();
    let resolved = fx
        .vault
        .get_user_api_key(Some(ALICE), "brave", None, false)
        .await
        .unwrap();
    assert_eq!(resolved.source(), KeySource::User);
    assert_eq!(resolved.key.expose(), key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_ca_is_not_trusted_is_refused() {
    let (_certificates, server) = tls_redis();
    // The system's certificates do not include the test CA.
    let fx = Fixture::builder(Backend::Redis)
        .redis_url(server.url())
        .open()
        .await;
    let err = fx
        .vault
        .set_user_api_key(ALICE, "brave", &secret("refused"))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Storage(_)), "{err:?}");
    // Plain Redis spoken to the TLS port is no better.
    let plain = server.url().replacen("rediss://", "redis://", 1);
    let fx = Fixture::builder(Backend::Redis)
        .redis_url(plain)
        .open()
        .await;
    assert!(
        fx.vault
            .set_user_api_key(ALICE, "brave", &secret("plain"))
            .await
            .is_err()
    );
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err =
        Config::from_vars([("STARGAZER_TLS_CA_FILE", missing.display().to_string())]).unwrap_err();
    assert_eq!(err.setting, "STARGAZER_TLS_CA_FILE");
    assert!(err.to_string().contains("cannot be read"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err =
        Config::from_vars([("STARGAZER_TLS_CA_FILE", empty.display().to_string())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "STARGAZER_TLS_CA_FILE names {}, which holds no certificate (-----BEGIN CERTIFICATE-----)",
            empty.display()
        )
    );
}

/// A PostgreSQL server offering TLS with a certificate of a fresh test CA, and a database.
fn tls_postgres() -> (TestCertificates, PostgresServer, String) {
    let certificates = TestCertificates::generate().expect("make test certificates");
    let server = PostgresServer::start_tls(&certificates).expect("start PostgreSQL with TLS");
    let url = server.fresh_database().expect("a database");
    (certificates, server, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys_in_postgres_over_verified_tls_save_and_resolve() {
    let (certificates, server, _) = tls_postgres();
    for sslmode in ["verify-full", "require"] {
        let url = server.fresh_database().unwrap();
        let fx = Fixture::builder(Backend::Redis)
            .env(
                "STARGAZER_DATABASE_URL",
                &format!("{url}?sslmode={sslmode}"),
            )
            .env(
                "STARGAZER_TLS_CA_FILE",
                &certificates.ca_path().display().to_string(),
            )
            .open()
            .await;
        let store = fx.vault.data_keys();
        assert!(
            store.location().await.ends_with(", TLS"),
            "{sslmode}: {}",
            store.location().await
        );
        let key = secret("pg-tls");
        fx.vault
            .set_user_api_key(ALICE, "brave", &key)
            .await
            .unwrap();
        let resolved = fx
            .second_vault()
            .await
            .get_user_api_key(Some(ALICE), "brave", None, false)
            .await
            .unwrap();
        assert_eq!(resolved.key.expose(), key, "{sslmode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_whose_certificate_is_not_trusted_is_refused_at_open() {
    let (_certificates, _server, url) = tls_postgres();
    let config = Config::from_vars([
        ("STARGAZER_MASTER_KEY", master_key_b64()),
        (
            "STARGAZER_DATABASE_URL",
            format!("{url}?sslmode=verify-full"),
        ),
        ("REDIS_URL", RedisServer::shared().url()),
    ])
    .unwrap();
    let err = stargazer_keys::KeyVault::open(config).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot reach the PostgreSQL key store at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("certificate"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_connects_without_tls_and_says_so() {
    let (_certificates, _server, url) = tls_postgres();
    let fx = Fixture::builder(Backend::Redis)
        .env("STARGAZER_DATABASE_URL", &format!("{url}?sslmode=disable"))
        .open()
        .await;
    assert!(
        fx.vault
            .data_keys()
            .location()
            .await
            .ends_with(", not encrypted")
    );
}
