//! `doctor` and `bot` know Redis: a server too old for `EXPIRE … NX` is refused by name, the
//! scripts are loaded on every node, and a server that can lose keys (eviction of any key, no
//! persistence) is warned about, naming the setting to change.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use secrecy::ExposeSecret as _;
use stargazer_keys::MasterKey;
use stargazer_keys::testkit::RedisServer;
use support::Setup;

fn keyed_with_redis(url: String) -> Setup {
    let key = MasterKey::generate().to_base64().expose_secret().to_owned();
    let mut setup = Setup::new();
    setup
        .set("STARGAZER_MASTER_KEY", key)
        .set("REDIS_URL", url)
        .set("STARGAZER_KEY_PREFIX", "cli_redis");
    setup
}

/// A stand-in for a Redis 6.2 server on a loopback port: it answers the RESP commands a client
/// sends (PING, INFO, SCRIPT LOAD, CONFIG GET, ...) as such a server would, and nothing more.
fn old_redis() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_old_redis(stream));
        }
    });
    url
}

fn serve_old_redis(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        // One command: `*N` then N bulk strings.
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let Some(count) = line
            .trim()
            .strip_prefix('*')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return;
        };
        let mut args = Vec::new();
        for _ in 0..count {
            let mut header = String::new();
            let mut value = String::new();
            reader.read_line(&mut header).unwrap();
            reader.read_line(&mut value).unwrap();
            args.push(value.trim_end_matches("\r\n").to_owned());
        }
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match name.as_str() {
            "PING" => "+PONG\r\n".to_owned(),
            "INFO" => {
                let info = "# Server\r\nredis_version:6.2.14\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n";
                format!("${}\r\n{info}\r\n", info.len())
            }
            "SCRIPT" => "$40\r\n0000000000000000000000000000000000000000\r\n".to_owned(),
            "CONFIG" => "*2\r\n$4\r\nsave\r\n$0\r\n\r\n".to_owned(),
            _ => "+OK\r\n".to_owned(),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn doctor_fails_on_a_redis_too_old_for_counting_and_says_what_it_needs() {
    let setup = keyed_with_redis(old_redis());

    let run = setup.run(&["doctor"]);

    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains(
            "FAIL redis: the server is Redis 6.2.14, and stargazer-keys needs 7.0 or newer"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn the_bot_refuses_to_start_on_a_redis_too_old_for_counting() {
    let mut setup = keyed_with_redis(old_redis());
    // Never reached: the check comes before Discord.
    setup
        .set("DISCORD_TOKEN", "abc.def.ghi")
        .set("DISCORD_HTTP_PROXY", "http://127.0.0.1:9");

    let run = setup.run_for_at_most(&["bot"], std::time::Duration::from_secs(30));

    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.one_error_line()
            .contains("is Redis 6.2.14, and stargazer-keys needs 7.0 or newer"),
        "{run:#?}"
    );
}

#[test]
fn doctor_passes_a_current_redis_and_warns_when_it_can_lose_keys() {
    let safe = RedisServer::start_with_args(&["--appendonly", "yes"]).unwrap();
    let risky = RedisServer::start_with_args(&["--maxmemory-policy", "allkeys-lru"]).unwrap();

    let safe_run = keyed_with_redis(safe.url()).run(&["doctor"]);
    let risky_run = keyed_with_redis(risky.url()).run(&["doctor"]);

    assert_eq!(safe_run.code, Some(0), "{safe_run:#?}");
    assert!(
        safe_run
            .stdout
            .contains("ok   redis: the server is Redis 7."),
        "{}",
        safe_run.stdout
    );
    assert!(
        safe_run
            .stdout
            .contains("ok   redis: the scripts load on the server"),
        "{}",
        safe_run.stdout
    );
    assert!(!safe_run.stdout.contains("warn"), "{}", safe_run.stdout);
    // Warnings do not fail the check: the operator may mean it.
    assert_eq!(risky_run.code, Some(0), "{risky_run:#?}");
    assert!(
        risky_run
            .stdout
            .contains("warn redis: the server has maxmemory-policy allkeys-lru")
            && risky_run
                .stdout
                .contains("set maxmemory-policy to noeviction"),
        "{}",
        risky_run.stdout
    );
    assert!(
        risky_run.stdout.contains("keeps nothing on disk")
            && risky_run.stdout.contains("set appendonly yes"),
        "{}",
        risky_run.stdout
    );
}

#[test]
fn doctor_json_gives_every_check_with_its_status() {
    let setup = keyed_with_redis(old_redis());

    let run = setup.run(&["doctor", "--json"]);

    assert_eq!(run.code, Some(1), "{run:#?}");
    let checks: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    let status_of = |check: &str| {
        checks
            .iter()
            .filter(|c| c["check"] == check)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(status_of("settings"), ["ok"]);
    assert!(
        status_of("redis").contains(&"fail".to_owned()),
        "{checks:#?}"
    );
    assert!(
        checks
            .iter()
            .all(|c| ["ok", "fail", "warn", "skip"].contains(&c["status"].as_str().unwrap())),
        "{checks:#?}"
    );
}

#[test]
fn doctor_checks_every_master_of_a_cluster() {
    let cluster = stargazer_keys::testkit::RedisCluster::start().unwrap();

    let run = keyed_with_redis(cluster.urls()).run(&["doctor"]);

    assert_eq!(run.code, Some(0), "{run:#?}");
    let versions = run
        .stdout
        .lines()
        .filter(|line| {
            line.starts_with("ok   redis: the master 127.0.0.1:") && line.contains("is Redis 7.")
        })
        .count();
    let scripts = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("ok   redis: the scripts load on the master 127.0.0.1:"))
        .count();
    assert_eq!((versions, scripts), (3, 3), "{}", run.stdout);
}
