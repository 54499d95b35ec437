//! The files on disk are their owner's alone: the data directory (0700), the master key file,
//! the database and its `-wal` and `-shm` (0600), whatever the umask; a master key file open to
//! group or others is refused, as ssh refuses such a private key.
//!
//! The umask is process-wide, so the test that depends on it runs a child process of this test
//! binary under `umask 022` and never changes its own.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::ExposeSecret as _;
use stargazer_keys::config::{load_or_create_master_key_file, read_default_master_key_file};
use stargazer_keys::{Config, KeyVault, MasterKey, db};

/// Names the directory the helper process makes its files in.
const ROOT_ENV: &str = "STARGAZER_FILES_ROOT";
const HELPER: &str = "helper_make_every_file_under_the_inherited_umask";

use stargazer_keys::testkit::{chmod, mode_of};

/// The files the bot makes on its first start, in `root`: `data/`, `data/master.key`, and the
/// database with its `-wal` and `-shm`.
fn first_start_files(root: &Path) -> Vec<PathBuf> {
    let data = root.join("data");
    let mut files = vec![data.clone(), data.join("master.key")];
    files.extend(db::files(&data.join("stargazer-keys.db")));
    files
}

/// Not a test: run by the umask test in a child process under `umask 022`. Starts as the bot
/// does with no configured key and no `data/` directory (creating the key file, then the
/// vault on the embedded store), saves a key, and prints each file's mode while the database
/// is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper process, started by the umask test"]
async fn helper_make_every_file_under_the_inherited_umask() {
    let Ok(root) = std::env::var(ROOT_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let files = first_start_files(&root);
    let (_, created) = load_or_create_master_key_file(&files[1]).unwrap();
    assert!(created);
    let config = Config::from_vars([
        ("STARGAZER_MASTER_KEY_FILE", files[1].display().to_string()),
        ("STARGAZER_DB_PATH", files[2].display().to_string()),
    ])
    .unwrap();
    let vault = KeyVault::open(config).await.unwrap();
    vault
        .set_user_api_key(42, "brave", "BSA-a-key-written-to-the-wal-0000")
        .await
        .unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(umask) = status.lines().find_map(|l| l.strip_prefix("Umask:")) {
        println!("umask {}", umask.trim());
    }
    for file in &files {
        println!("mode {:04o} {}", mode_of(file), file.display());
    }
    println!("helper done");
    drop(vault);
}

#[test]
fn the_data_directory_key_file_database_wal_and_shm_are_private_under_umask_022() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 022; exec "$0" "$@""#)
        .arg(std::env::current_exe().unwrap())
        .args([
            HELPER,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT_ENV, root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("helper done"),
        "the helper failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(umask) = stdout.lines().find_map(|l| l.strip_prefix("umask ")) {
        assert_eq!(umask, "0022", "{stdout}");
    }
    let files = first_start_files(root.path());
    for (i, file) in files.iter().enumerate() {
        let expected = if i == 0 { "0700" } else { "0600" };
        assert!(
            stdout.contains(&format!("mode {expected} {}\n", file.display())),
            "{} is not {expected}:\n{stdout}",
            file.display()
        );
    }
}

#[test]
fn an_existing_database_wal_and_shm_open_to_others_are_made_0600_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    // An open connection keeps the -wal and -shm in place.
    let first = db::open(&path).unwrap();
    for file in db::files(&path) {
        chmod(&file, 0o644);
    }

    let second = db::open(&path).unwrap();

    for file in db::files(&path) {
        assert_eq!(mode_of(&file), 0o600, "{}", file.display());
    }
    let version: i64 = second
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, db::SCHEMA_VERSION);
    drop((first, second));
}

/// A master key in `path` with mode `mode`; returns its text.
fn key_file(path: &Path, mode: u32) -> String {
    let key = MasterKey::generate().to_base64().expose_secret().to_owned();
    std::fs::write(path, format!("{key}\n")).unwrap();
    chmod(path, mode);
    key
}

/// A refusal is one sentence that names the file and its mode and says `chmod 600 FILE`,
/// without the key.
fn assert_refusal(message: &str, path: &Path, mode: u32, key: &str) {
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains(&format!("mode {mode:04o}")), "{message}");
    assert!(
        message.contains(&format!("`chmod 600 {}`", path.display())),
        "{message}"
    );
    assert!(!message.contains(key), "the key leaked: {message}");
}

const LOOSE_MODES: [u32; 5] = [0o644, 0o640, 0o604, 0o660, 0o666];

#[test]
fn a_master_key_file_open_to_group_or_others_is_refused_naming_it_its_mode_and_chmod_600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let settings = |path: &Path| {
        Config::from_vars([
            ("STARGAZER_MASTER_KEY_FILE", path.display().to_string()),
            ("STARGAZER_DB_PATH", "unused.db".to_owned()),
        ])
    };
    for mode in LOOSE_MODES {
        let key = key_file(&path, mode);
        let err = settings(&path).expect_err("a loose key file is refused");
        assert_eq!(err.setting, "STARGAZER_MASTER_KEY_FILE");
        assert_refusal(&err.to_string(), &path, mode, &key);
        std::fs::remove_file(&path).unwrap();
    }
    for mode in [0o600, 0o400] {
        key_file(&path, mode);
        let config = settings(&path).unwrap();
        assert!(config.master_key.is_some(), "mode {mode:04o}");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn a_default_master_key_file_open_to_group_or_others_is_refused_naming_it_its_mode_and_chmod_600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    for mode in LOOSE_MODES {
        let key = key_file(&path, mode);
        for err in [
            read_default_master_key_file(&path).err(),
            load_or_create_master_key_file(&path).err(),
        ] {
            let err = err.expect("a loose key file is refused");
            assert_eq!(err.setting, "STARGAZER_MASTER_KEY");
            assert_refusal(&err.to_string(), &path, mode, &key);
        }
        assert_eq!(mode_of(&path), mode, "the file is left as it is");
        std::fs::remove_file(&path).unwrap();
    }
    key_file(&path, 0o600);
    read_default_master_key_file(&path).unwrap();
    let (_, created) = load_or_create_master_key_file(&path).unwrap();
    assert!(!created);
}
