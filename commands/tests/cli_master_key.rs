//! The operator binary end to end: `gen-master-key`, `rotate-master-key` and `doctor`, run as
//! a process with a clean environment in a temporary directory, checked against the real SQLite
//! file (and a private redis-server).

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine as _;
use secrecy::ExposeSecret as _;
use stargazer_keys::testkit::RedisServer;
use stargazer_keys::testkit::{SealContext, StoredValue};
use stargazer_keys::{DataKeyStore, Keyring, MasterKey};

mod support;

use support::{Run, Setup};

impl Run {
    fn doctor_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn line_starting(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starts with {prefix:?}: {self:#?}"))
    }
}

fn key_text(key: &MasterKey) -> String {
    key.to_base64().expose_secret().to_owned()
}

fn seal_context(owner: &str) -> SealContext<'_> {
    SealContext {
        prefix: "stargazer",
        owner,
        service: "openrouter",
        key_id: None,
    }
}

/// A secret sealed under its owner's data key, as the vault would store it.
struct Sealed {
    owner: String,
    value: String,
    secret: String,
}

/// Creates data keys for `count` owners under `keyring`'s current key and seals a secret with
/// each. Owner ids start at `first`.
fn seed(db: &Path, keyring: Keyring, first: u64, count: u64) -> Vec<Sealed> {
    let store = DataKeyStore::open(db, keyring, 16).unwrap();
    (first..first + count)
        .map(|n| {
            let owner = if n == 0 {
                "pool:global".to_owned()
            } else {
                n.to_string()
            };
            let secret = format!("sk-or-v1-secret-number-{n:06}");
            let value = store
                .get_or_create(&owner)
                .unwrap()
                .seal(&seal_context(&owner), secret.as_bytes());
            Sealed {
                owner,
                value,
                secret,
            }
        })
        .collect()
}

/// Checks that every sealed secret opens with a store keyed by `key` alone.
fn assert_all_open_with(db: &Path, key: &MasterKey, sealed: &[Sealed]) {
    let store = DataKeyStore::open(db, Keyring::new(key.clone(), vec![]), 16).unwrap();
    for s in sealed {
        let data_key = store
            .get(&s.owner)
            .unwrap()
            .expect("the owner keeps a data key");
        let opened = StoredValue::parse(&s.value)
            .unwrap()
            .open(Some(&data_key), &seal_context(&s.owner))
            .unwrap();
        assert_eq!(opened.expose_secret(), s.secret);
    }
}

fn only_key(key: &MasterKey) -> Keyring {
    Keyring::new(key.clone(), vec![])
}

fn kek_rows(db: &Path, keyring: Keyring) -> Vec<(String, u64)> {
    DataKeyStore::open_unchecked(db, keyring, 1)
        .unwrap()
        .kek_usage()
        .unwrap()
        .into_iter()
        .map(|u| (u.kek_id, u.rows))
        .collect()
}

use stargazer_keys::testkit::{chmod, mode_of};

/// Writes a new master key to `path` with `mode`; returns its text.
fn key_file(path: &Path, mode: u32) -> String {
    let key = key_text(&MasterKey::generate());
    std::fs::write(path, format!("{key}\n")).unwrap();
    chmod(path, mode);
    key
}

/// The refusal of a master key file that group or others may open: it names the file and its
/// mode and says how to fix it, as ssh does for a private key.
fn key_file_refusal(path: &Path, mode: u32) -> String {
    let p = path.display();
    format!(
        "{p} has mode {mode:04o}, which lets group or others open it; run `chmod 600 {p}` so that only its owner can read it"
    )
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// --help

#[test]
fn help_lists_every_subcommand_with_a_description() {
    let run = Setup::new().run(&["--help"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    for (name, words) in [
        ("bot", "Run the Discord bot"),
        ("gen-master-key", "new random master key"),
        ("rotate-master-key", "Rewrap every data key"),
        ("doctor", "Check the settings"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|line| line.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} is not listed: {run:#?}"));
        assert!(line.contains(words), "{line}");
    }
}

#[test]
fn a_usage_error_keeps_clap_exit_status_2() {
    let run = Setup::new().run(&["rotate-master-key", "--no-such-flag"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
}

// gen-master-key

#[test]
fn gen_master_key_prints_a_44_character_base64_key_of_32_bytes() {
    let run = Setup::new().run(&["gen-master-key"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{run:#?}");
    assert_eq!(lines[0].len(), 44);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(lines[0])
        .unwrap();
    assert_eq!(bytes.len(), 32);
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(run.stderr.contains("STARGAZER_MASTER_KEY"), "{run:#?}");
    assert!(
        run.stderr.contains("STARGAZER_PREVIOUS_MASTER_KEYS"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("rotate-master-key"), "{run:#?}");
}

#[test]
fn gen_master_key_prints_a_different_key_each_run() {
    let setup = Setup::new();
    assert_ne!(
        setup.run(&["gen-master-key"]).stdout,
        setup.run(&["gen-master-key"]).stdout
    );
}

#[test]
fn gen_master_key_reads_no_settings() {
    let mut setup = Setup::new();
    setup.set("QUOTA_WINDOW", "daily");
    let run = setup.run(&["gen-master-key"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
}

// Bad settings: one line naming the setting, never the bad key.

fn assert_refused(setting: &str, value: &str) -> Run {
    let mut setup = Setup::new();
    setup.set(setting, value);
    let run = setup.run(&["rotate-master-key"]);
    let line = run.one_error_line();
    assert!(line.contains(setting), "{line}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    run
}

fn assert_key_refused(setting: &str, key: &str) {
    let run = assert_refused(setting, key);
    assert!(!run.mentions(key), "the key text leaked: {run:#?}");
}

#[test]
fn a_master_key_of_the_wrong_length_is_refused_in_one_line() {
    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    assert_key_refused("STARGAZER_MASTER_KEY", &short);
}

#[test]
fn a_master_key_that_is_not_base64_is_refused_in_one_line() {
    assert_key_refused("STARGAZER_MASTER_KEY", "this is not base64 at all!!");
}

#[test]
fn an_unreadable_master_key_file_is_refused_in_one_line() {
    let run = assert_refused(
        "STARGAZER_MASTER_KEY_FILE",
        "/nonexistent/stargazer/master.key",
    );
    assert!(run.stderr.contains("cannot be read"), "{run:#?}");
}

#[test]
fn a_previous_master_key_of_the_wrong_length_is_refused_in_one_line() {
    let short = base64::engine::general_purpose::STANDARD.encode([9u8; 31]);
    assert_key_refused("STARGAZER_PREVIOUS_MASTER_KEYS", &short);
}

#[test]
fn admin_user_ids_that_are_not_numbers_are_refused_in_one_line() {
    assert_refused("ADMIN_USER_IDS", "abc");
}

#[test]
fn an_unknown_quota_window_is_refused_in_one_line() {
    assert_refused("QUOTA_WINDOW", "daily");
}

#[test]
fn settings_from_a_dot_env_file_are_read() {
    let setup = Setup::new();
    std::fs::write(setup.dir.path().join(".env"), "QUOTA_WINDOW=daily\n").unwrap();
    let line = setup
        .run(&["rotate-master-key"])
        .one_error_line()
        .to_owned();
    assert!(line.contains("QUOTA_WINDOW"), "{line}");
}

#[test]
fn a_malformed_dot_env_file_is_one_line_naming_its_line_but_not_its_text() {
    let setup = Setup::new();
    std::fs::write(
        setup.dir.path().join(".env"),
        "# settings\nQUOTA_WINDOW=fixed\nSTARGAZER_MASTER_KEY secret-looking-text\n",
    )
    .unwrap();
    let run = setup.run(&["gen-master-key"]);
    let line = run.one_error_line();
    assert!(line.contains(".env line 3"), "{line}");
    assert!(!run.mentions("secret-looking-text"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
}

#[test]
fn a_master_key_file_open_to_others_is_refused_in_one_line_naming_it_its_mode_and_chmod_600() {
    let mut setup = Setup::new();
    let path = setup.dir.path().join("mounted-master.key");
    let key = key_file(&path, 0o644);
    setup.set("STARGAZER_MASTER_KEY_FILE", path.display().to_string());

    let run = setup.run(&["rotate-master-key"]);

    let p = path.display();
    assert_eq!(
        run.one_error_line(),
        format!(
            "error: STARGAZER_MASTER_KEY_FILE names {p}, whose mode 0644 lets group or others open it; run `chmod 600 {p}` so that only its owner can read it"
        )
    );
    assert!(!run.mentions(&key), "the key leaked: {run:#?}");
    assert_eq!(mode_of(&path), 0o644, "the file is left as it is");
}

#[test]
fn the_bot_refuses_a_default_master_key_file_open_to_others_at_start() {
    let mut setup = Setup::new();
    let path = setup.dir.path().join("data").join("master.key");
    let key = key_file(&path, 0o640);
    setup.set("DISCORD_TOKEN", "not-a-real-token").set(
        "DISCORD_HTTP_PROXY",
        format!("http://127.0.0.1:{}", closed_port()),
    );

    // Without the check, the bot would start and keep trying to reach Discord.
    let run = setup.run_for_at_most(&["bot"], Duration::from_secs(20));

    assert_eq!(
        run.one_error_line(),
        format!(
            "error: STARGAZER_MASTER_KEY is not set, and the default key file {}",
            key_file_refusal(&path, 0o640)
        )
    );
    assert!(!run.mentions(&key), "the key leaked: {run:#?}");
    assert!(!setup.db_path().exists(), "nothing was created");
}

/// Kills the process when dropped, so a failing test leaves no bot running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_bots_first_start_under_umask_022_makes_data_0700_and_every_file_in_it_0600() {
    let mut setup = Setup::new();
    let data = setup.dir.path().join("data");
    std::fs::remove_dir(&data).unwrap();
    setup.set("DISCORD_TOKEN", "not-a-real-token").set(
        "DISCORD_HTTP_PROXY",
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let files = [
        data.join("master.key"),
        setup.db_path(),
        data.join("stargazer-keys.db-wal"),
        data.join("stargazer-keys.db-shm"),
    ];

    let bot = KillOnDrop(
        setup
            .command_under_umask("022", &["bot"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The bot keeps the database open while it tries to reach Discord (at a closed port).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !files.iter().all(|file| file.exists()) {
        assert!(
            Instant::now() < deadline,
            "the bot did not make {files:?} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(mode_of(&data), 0o700, "{}", data.display());
    for file in &files {
        assert_eq!(mode_of(file), 0o600, "{}", file.display());
    }
    drop(bot);
}

// rotate-master-key

#[test]
fn rotate_master_key_moves_every_data_key_to_the_current_key() {
    let (a, b, c) = (
        MasterKey::generate(),
        MasterKey::generate(),
        MasterKey::generate(),
    );
    let mut setup = Setup::new();
    let db = setup.db_path();
    let mut sealed = seed(&db, only_key(&a), 0, 200);
    sealed.extend(seed(
        &db,
        Keyring::new(c.clone(), vec![a.clone()]),
        200,
        100,
    ));
    sealed.extend(seed(
        &db,
        Keyring::new(b.clone(), vec![a.clone(), c.clone()]),
        300,
        50,
    ));

    setup.set("STARGAZER_MASTER_KEY", key_text(&b)).set(
        "STARGAZER_PREVIOUS_MASTER_KEYS",
        format!("{}, {}", key_text(&a), key_text(&c)),
    );
    let run = setup.run(&["rotate-master-key"]);

    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stderr, "", "{run:#?}");
    let summary = &run.stdout;
    assert!(
        summary.contains(&format!(
            "Rewrapped 300 data keys under master key {}",
            b.id()
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("200 from master key {}", a.id())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("100 from master key {}", c.id())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "50 data keys were already under master key {}",
            b.id()
        )),
        "{summary}"
    );
    assert!(
        summary.contains("STARGAZER_PREVIOUS_MASTER_KEYS can now be emptied"),
        "{summary}"
    );
    for key in [&a, &b, &c] {
        assert!(
            !run.mentions(&key_text(key)),
            "a master key leaked: {run:#?}"
        );
    }
    assert_all_open_with(&db, &b, &sealed);
    assert_eq!(kek_rows(&db, only_key(&b)), [(b.id().to_string(), 350)]);
}

#[test]
fn rotate_master_key_prints_a_json_summary() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let mut setup = Setup::new();
    seed(&setup.db_path(), only_key(&a), 1, 3);
    setup
        .set("STARGAZER_MASTER_KEY", key_text(&b))
        .set("STARGAZER_PREVIOUS_MASTER_KEYS", key_text(&a));
    let run = setup.run(&["rotate-master-key", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "rewrapped": 3,
            "already_current": 0,
            "current_kek_id": b.id().to_string(),
            "from": { a.id().to_string(): 3 },
        })
    );
}

#[test]
fn rotate_master_key_refuses_rows_of_an_unconfigured_key_and_changes_nothing() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let mut setup = Setup::new();
    let db = setup.db_path();
    let sealed = seed(&db, only_key(&a), 1, 120);
    setup.set("STARGAZER_MASTER_KEY", key_text(&b));

    let run = setup.run(&["rotate-master-key"]);

    let line = run.one_error_line();
    assert!(line.contains(a.id().as_str()), "{line}");
    assert!(line.contains("120 data keys"), "{line}");
    assert!(line.contains("nothing was changed"), "{line}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert_eq!(kek_rows(&db, only_key(&a)), [(a.id().to_string(), 120)]);
    assert_all_open_with(&db, &a, &sealed);
}

#[test]
fn rotate_master_key_without_a_master_key_says_which_setting_to_set() {
    let setup = Setup::new();
    seed(&setup.db_path(), only_key(&MasterKey::generate()), 1, 2);
    let line = setup
        .run(&["rotate-master-key"])
        .one_error_line()
        .to_owned();
    assert!(line.contains("STARGAZER_MASTER_KEY is not set"), "{line}");
    assert!(line.contains("gen-master-key"), "{line}");
}

#[test]
fn rotate_master_key_without_a_database_creates_none() {
    let mut setup = Setup::new();
    setup.set("STARGAZER_MASTER_KEY", key_text(&MasterKey::generate()));
    let line = setup
        .run(&["rotate-master-key"])
        .one_error_line()
        .to_owned();
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.contains("STARGAZER_DB_PATH"), "{line}");
    assert!(!setup.db_path().exists());
}

// doctor

fn assert_only_ok_or_skip(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
    for line in run.doctor_lines() {
        assert!(
            line.starts_with("ok   ") || line.starts_with("skip "),
            "{line}\n{run:#?}"
        );
    }
}

#[test]
fn doctor_passes_on_a_healthy_embedded_setup() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let mut setup = Setup::new();
    let db = setup.db_path();
    seed(&db, only_key(&a), 1, 5);
    seed(&db, Keyring::new(b.clone(), vec![a.clone()]), 10, 3);
    setup
        .set("STARGAZER_MASTER_KEY", key_text(&b))
        .set("STARGAZER_PREVIOUS_MASTER_KEYS", key_text(&a));

    let run = setup.run(&["doctor"]);

    assert_only_ok_or_skip(&run);
    assert_eq!(run.stderr, "", "{run:#?}");
    assert!(run.line_starting("ok   settings").len() > 12);
    assert!(
        run.line_starting("ok   files: only their owner can open")
            .contains(&db.display().to_string())
    );
    assert!(
        run.line_starting("ok   database")
            .contains(&db.display().to_string())
    );
    let master = run.line_starting("ok   master key");
    assert!(master.contains(b.id().as_str()), "{master}");
    let usage = run.line_starting("ok   data keys:");
    assert!(
        usage.contains(&format!("3 under master key {} (current)", b.id())),
        "{usage}"
    );
    assert!(
        usage.contains(&format!(
            "5 under master key {} (run rotate-master-key",
            a.id()
        )),
        "{usage}"
    );
    run.line_starting("ok   data keys open");
    assert_eq!(
        run.line_starting("ok   storage"),
        format!(
            "ok   storage: embedded store in {} (REDIS_URL unset)",
            db.display()
        )
    );
    for key in [&a, &b] {
        assert!(
            !run.mentions(&key_text(key)),
            "a master key leaked: {run:#?}"
        );
    }
}

#[test]
fn doctor_uses_the_default_key_file_when_no_key_is_configured() {
    let setup = Setup::new();
    let path = setup.dir.path().join("data").join("master.key");
    let (key, _) = stargazer_keys::config::load_or_create_master_key_file(&path).unwrap();
    seed(&setup.db_path(), only_key(&key), 1, 2);

    let run = setup.run(&["doctor"]);

    assert_only_ok_or_skip(&run);
    let master = run.line_starting("ok   master key");
    assert!(master.contains(key.id().as_str()), "{master}");
    assert!(master.contains(&path.display().to_string()), "{master}");
}

#[test]
fn doctor_fails_on_rows_of_an_unconfigured_key_with_its_id_and_row_count() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let mut setup = Setup::new();
    seed(&setup.db_path(), only_key(&a), 1, 7);
    setup.set("STARGAZER_MASTER_KEY", key_text(&b));

    let run = setup.run(&["doctor"]);

    assert_eq!(run.code, Some(1), "{run:#?}");
    let fail = run.line_starting("FAIL data keys");
    assert!(
        fail.contains(&format!("7 data keys are wrapped by master key {}", a.id())),
        "{fail}"
    );
    assert!(fail.contains("not configured"), "{fail}");
}

#[test]
fn doctor_without_a_master_key_fails_naming_the_setting() {
    let setup = Setup::new();
    seed(&setup.db_path(), only_key(&MasterKey::generate()), 1, 2);
    let run = setup.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let fail = run.line_starting("FAIL master key");
    assert!(fail.contains("STARGAZER_MASTER_KEY is not set"), "{fail}");
    assert!(!setup.dir.path().join("data").join("master.key").exists());
}

#[test]
fn doctor_fails_on_a_database_file_open_to_others_naming_it_and_chmod_600() {
    let mut setup = Setup::new();
    let key = MasterKey::generate();
    let db = setup.db_path();
    seed(&db, only_key(&key), 1, 2);
    setup.set("STARGAZER_MASTER_KEY", key_text(&key));
    chmod(&db, 0o644);

    let run = setup.run(&["doctor"]);

    assert_eq!(run.code, Some(1), "{run:#?}");
    let p = db.display();
    assert_eq!(
        run.line_starting("FAIL files"),
        format!("FAIL files: {p} has mode 0644, open to group or others (run `chmod 600 {p}`)")
    );
    // Opening the database (as every command does) made it private, and said so.
    assert_eq!(mode_of(&db), 0o600);
    assert!(run.stderr.contains("it is now 0600"), "{run:#?}");
    assert_only_ok_or_skip(&setup.run(&["doctor"]));
}

#[test]
fn doctor_fails_on_a_master_key_file_open_to_others_naming_it_and_chmod_600() {
    // The default key file, used when no key is configured.
    let setup = Setup::new();
    let path = setup.dir.path().join("data").join("master.key");
    let (key, _) = stargazer_keys::config::load_or_create_master_key_file(&path).unwrap();
    seed(&setup.db_path(), only_key(&key), 1, 2);
    chmod(&path, 0o644);
    let run = setup.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(
        run.line_starting("FAIL master key"),
        format!(
            "FAIL master key: STARGAZER_MASTER_KEY is not set, and the default key file {}",
            key_file_refusal(&path, 0o644)
        )
    );
    assert!(!run.mentions(&key_text(&key)), "the key leaked: {run:#?}");

    // STARGAZER_MASTER_KEY_FILE.
    let mut setup = Setup::new();
    let path = setup.dir.path().join("mounted-master.key");
    let key = key_file(&path, 0o604);
    setup.set("STARGAZER_MASTER_KEY_FILE", path.display().to_string());
    let run = setup.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let fail = run.line_starting("FAIL settings");
    assert!(fail.contains("STARGAZER_MASTER_KEY_FILE"), "{fail}");
    let p = path.display();
    assert!(
        fail.contains(&format!(
            "names {p}, whose mode 0604 lets group or others open it; run `chmod 600 {p}`"
        )),
        "{fail}"
    );
    assert!(!run.mentions(&key), "the key leaked: {run:#?}");
}

#[test]
fn doctor_fails_on_a_database_directory_others_can_write_in() {
    let mut setup = Setup::new();
    let key = MasterKey::generate();
    seed(&setup.db_path(), only_key(&key), 1, 2);
    setup.set("STARGAZER_MASTER_KEY", key_text(&key));
    let data = setup.dir.path().join("data");
    chmod(&data, 0o777);

    let run = setup.run(&["doctor"]);

    assert_eq!(run.code, Some(1), "{run:#?}");
    let d = data.display();
    assert_eq!(
        run.line_starting("FAIL files"),
        format!(
            "FAIL files: the directory {d} has mode 0777, so group or others can replace the files in it (run `chmod 700 {d}`)"
        )
    );
    chmod(&data, 0o700);
}

#[test]
fn doctor_reports_bad_settings_without_the_key_text() {
    let mut setup = Setup::new();
    let short = base64::engine::general_purpose::STANDARD.encode([3u8; 20]);
    setup.set("STARGAZER_MASTER_KEY", short.clone());
    let run = setup.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.line_starting("FAIL settings")
            .contains("STARGAZER_MASTER_KEY")
    );
    assert!(!run.mentions(&short), "{run:#?}");
}

#[test]
fn doctor_names_the_languages_and_fails_on_a_broken_locales_directory() {
    let mut setup = Setup::new();
    let key = MasterKey::generate();
    seed(&setup.db_path(), only_key(&key), 1, 1);
    setup.set("STARGAZER_MASTER_KEY", key_text(&key));
    let run = setup.run(&["doctor"]);
    assert_eq!(
        run.line_starting("ok   languages"),
        "ok   languages: en, de (shipped; STARGAZER_LOCALES_DIR unset)"
    );

    let locales = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(locales.path().join("fr")).unwrap();
    std::fs::write(
        locales.path().join("fr/keys.ftl"),
        "key-error-empty = La clé est vide.\n",
    )
    .unwrap();
    setup.set(
        "STARGAZER_LOCALES_DIR",
        locales.path().display().to_string(),
    );
    let run = setup.run(&["doctor"]);
    assert!(
        run.line_starting("ok   languages: en, de, fr")
            .contains("laid over them")
    );

    std::fs::write(
        locales.path().join("fr/broken.ftl"),
        "broken = { $unclosed\n",
    )
    .unwrap();
    let run = setup.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let failed = run.line_starting("FAIL languages");
    assert!(
        failed.contains("broken.ftl") && failed.contains("line 1"),
        "{failed}"
    );
}

#[test]
fn doctor_passes_with_a_running_redis() {
    // Persistent, as a deployment's should be (doctor warns about one that keeps nothing).
    let redis = RedisServer::start_with_args(&["--appendonly", "yes"]).unwrap();
    let mut setup = Setup::new();
    let key = MasterKey::generate();
    seed(&setup.db_path(), only_key(&key), 1, 2);
    setup
        .set("STARGAZER_MASTER_KEY", key_text(&key))
        .set("REDIS_URL", redis.url());

    let run = setup.run(&["doctor"]);

    assert_only_ok_or_skip(&run);
    let storage = run.line_starting("ok   storage");
    assert!(
        storage.contains(&format!(
            "Redis at 127.0.0.1:{} (not encrypted) answers PING",
            redis.port()
        )),
        "{storage}"
    );
}

#[test]
fn doctor_fails_quickly_when_redis_does_not_answer() {
    let mut setup = Setup::new();
    let key = MasterKey::generate();
    seed(&setup.db_path(), only_key(&key), 1, 2);
    setup.set("STARGAZER_MASTER_KEY", key_text(&key)).set(
        "REDIS_URL",
        format!("redis://:hunter2@127.0.0.1:{}/", closed_port()),
    );

    let started = Instant::now();
    let run = setup.run(&["doctor"]);

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    let fail = run.line_starting("FAIL storage");
    assert!(fail.contains("does not answer PING"), "{fail}");
    assert!(
        !run.mentions("hunter2"),
        "the Redis password leaked: {run:#?}"
    );
    run.line_starting("ok   data keys open");
}

#[test]
fn the_bot_without_a_token_says_so_in_one_line() {
    let setup = Setup::new();
    let run = setup.run(&["bot"]);
    assert_eq!(
        run.one_error_line(),
        "error: DISCORD_TOKEN is not set: put the bot token from the Discord developer portal in it"
    );
    assert!(
        !setup.db_path().exists(),
        "no database before the settings are checked"
    );
    assert!(
        !setup.dir.path().join("data/master.key").exists(),
        "no key file before the settings are checked"
    );
}

#[test]
fn the_bot_refuses_bad_discord_settings_in_one_line() {
    for (setting, value) in [
        ("DISCORD_GUILD_ID", "general"),
        ("DISCORD_HTTP_PROXY", "127.0.0.1:8080"),
        ("STARGAZER_MODAL_TIMEOUT_SECS", "3600"),
    ] {
        let mut setup = Setup::new();
        setup.set("DISCORD_TOKEN", "not-a-real-token");
        setup.set(setting, value);
        let run = setup.run(&["bot"]);
        assert!(run.one_error_line().contains(setting), "{run:#?}");
        assert!(!run.mentions("not-a-real-token"), "{run:#?}");
    }
}

// PostgreSQL: copy-data-keys, doctor, and the bot's master key

/// A Redis of its own and the settings of a SQLite deployment with two users' keys in it.
fn sqlite_deployment_with_two_users(redis: &RedisServer) -> (Setup, [String; 2]) {
    let mut setup = Setup::new();
    setup
        .set("STARGAZER_MASTER_KEY", key_text(&MasterKey::generate()))
        .set("REDIS_URL", redis.url())
        .set("STARGAZER_KEY_PREFIX", "copytest");
    let keys = [
        format!("sk-copy-one-{}", hex_of(12)),
        format!("sk-copy-two-{}", hex_of(12)),
    ];
    for (user, key) in ["1001", "1002"].iter().zip(&keys) {
        let run = setup.run_with_stdin(
            &["user", "set", "--user", user, "--service", "brave"],
            key.as_str(),
        );
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
    (setup, keys)
}

fn hex_of(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn resolved_key(setup: &Setup, user: &str) -> Option<String> {
    let run = setup.run(&[
        "resolve",
        "--user",
        user,
        "--service",
        "brave",
        "--json",
        "--reveal",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    value["key"].as_str().map(str::to_owned)
}

#[test]
fn copy_data_keys_moves_a_deployment_to_postgres_once_and_every_key_resolves_there() {
    let redis = RedisServer::start().unwrap();
    let (mut setup, keys) = sqlite_deployment_with_two_users(&redis);
    let postgres = stargazer_keys::testkit::PostgresServer::shared();
    let url = postgres.fresh_database().unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    setup.set("STARGAZER_DATABASE_URL", &url);

    let run = setup.run(&["copy-data-keys", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(report["already_there"], 0, "{report}");
    assert_eq!(
        report["to"],
        format!("127.0.0.1:{}/{database}", postgres.port()),
        "{report}"
    );
    // Again: nothing to copy, nothing refused.
    let run = setup.run(&["copy-data-keys", "--json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        (report["copied"].as_u64(), report["already_there"].as_u64()),
        (Some(0), Some(2))
    );

    // From another directory with no SQLite file at all, the keys resolve from PostgreSQL.
    std::fs::remove_dir_all(setup.dir.path().join("data")).unwrap();
    for (user, key) in ["1001", "1002"].iter().zip(&keys) {
        assert_eq!(resolved_key(&setup, user).as_deref(), Some(key.as_str()));
    }
    assert!(
        !setup.dir.path().join("data").exists(),
        "a SQLite file was made"
    );

    let doctor = setup.run(&["doctor"]);
    assert!(
        doctor
            .line_starting("ok   data keys: 2 in all")
            .ends_with(&format!(
                "(PostgreSQL 127.0.0.1:{}/{database}, not encrypted)",
                postgres.port()
            )),
        "{doctor:#?}"
    );
    assert!(
        doctor
            .stdout
            .contains("ok   data keys open under the configured master keys")
    );
    assert!(
        doctor.stdout.contains("skip files: no local file"),
        "{doctor:#?}"
    );
    assert_eq!(doctor.code, Some(0), "{doctor:#?}");
    let dump = postgres.dump(&database).unwrap();
    for key in &keys {
        assert!(!dump.contains(key.as_str()) && !dump.contains(&key[3..19]));
    }
}

#[test]
fn copy_data_keys_refuses_owners_with_another_key_in_postgres_and_copies_nothing() {
    let redis = RedisServer::start().unwrap();
    let (mut first, _) = sqlite_deployment_with_two_users(&redis);
    let url = stargazer_keys::testkit::PostgresServer::shared()
        .fresh_database()
        .unwrap();
    first.set("STARGAZER_DATABASE_URL", &url);
    assert_eq!(first.run(&["copy-data-keys"]).code, Some(0));

    // Another deployment with the same master key, user 1002 and a user 1003 of its own.
    let mut second = Setup::new();
    for (name, value) in &first.vars {
        if name != "STARGAZER_DB_PATH" && name != "STARGAZER_DATABASE_URL" {
            second.set(name, value.clone());
        }
    }
    second.set("STARGAZER_KEY_PREFIX", "copytest2");
    for user in ["1002", "1003"] {
        let run = second.run_with_stdin(
            &["user", "set", "--user", user, "--service", "brave"],
            format!("sk-other-{}", hex_of(12)),
        );
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
    second.set("STARGAZER_DATABASE_URL", &url);
    let run = second.run(&["copy-data-keys"]);
    assert_eq!(
        run.one_error_line(),
        "error: cannot copy the data keys: 1 owners (such as 1002) already have a different data key in PostgreSQL, so values sealed under the copied keys would not open there; nothing was copied"
    );
    // User 1003 was not copied either.
    let doctor = first.run(&["doctor"]);
    assert!(
        doctor
            .line_starting("ok   data keys: 2 in all")
            .contains("PostgreSQL"),
        "{doctor:#?}"
    );
}

#[test]
fn an_unreachable_postgres_is_named_by_host_port_and_database_never_by_its_password() {
    let mut setup = Setup::new();
    let port = closed_port();
    setup
        .set("STARGAZER_MASTER_KEY", key_text(&MasterKey::generate()))
        .set(
            "STARGAZER_DATABASE_URL",
            format!("postgres://bot:hunter2secret@127.0.0.1:{port}/keys?connect_timeout=2"),
        );
    let doctor = setup.run(&["doctor"]);
    assert_eq!(doctor.code, Some(1), "{doctor:#?}");
    let line = doctor.line_starting("FAIL data keys: ");
    assert!(line.contains(&format!("127.0.0.1:{port}/keys")), "{line}");
    assert!(!doctor.mentions("hunter2secret"), "{doctor:#?}");

    let run = setup.run(&["user", "list", "--user", "1001"]);
    let line = run.one_error_line();
    assert!(line.contains(&format!("127.0.0.1:{port}/keys")), "{line}");
    assert!(!line.contains("hunter2secret"), "{line}");

    setup.set(
        "STARGAZER_DATABASE_URL",
        "mysql://bot:hunter2secret@127.0.0.1/keys",
    );
    let run = setup.run(&["user", "list", "--user", "1001"]);
    assert_eq!(
        run.one_error_line(),
        "error: STARGAZER_DATABASE_URL must be a PostgreSQL URL, postgres://user:password@host:port/database"
    );
}

#[test]
fn the_bot_on_postgres_wants_a_configured_master_key_and_makes_no_key_file() {
    let mut setup = Setup::new();
    let url = stargazer_keys::testkit::PostgresServer::shared()
        .fresh_database()
        .unwrap();
    setup
        .set("STARGAZER_DATABASE_URL", url)
        .set("DISCORD_TOKEN", "not-a-real-token")
        .set(
            "DISCORD_HTTP_PROXY",
            format!("http://127.0.0.1:{}", closed_port()),
        );
    let run = setup.run_for_at_most(&["bot"], Duration::from_secs(30));
    let line = run.one_error_line();
    assert!(
        line.starts_with("error: STARGAZER_MASTER_KEY must be set when STARGAZER_DATABASE_URL is"),
        "{line}"
    );
    assert!(!setup.dir.path().join("data").join("master.key").exists());
}
