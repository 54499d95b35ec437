//! Encryption at rest, against a real SQLite file: data keys issued by the [`DataKeyStore`] seal
//! secrets that open only where they were sealed, master-key rotation rewraps every data key, and
//! deleting an owner's data key shreds its secrets.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;
use secrecy::ExposeSecret;
use stargazer_keys::KekUsage;
use stargazer_keys::storage::{EmbeddedStore, Layout, StorageBackend};
use stargazer_keys::testkit::{DataKey, SealContext, SealedFormat, StoredValue, UnwrapError};
use stargazer_keys::{Checkpoint, DataKeyError, DataKeyStore, Keyring, MasterKey, OpenError};
use tempfile::TempDir;

const PREFIX: &str = "stargazer";
/// Large enough that no test evicts a data key it will use again.
const CACHE: usize = 20_000;
/// Owners in the rotation tests.
const MANY: usize = 10_000;
/// How the secrets of the on-disk test start.
const SECRET_PREFIX: &str = "sk-live-";

/// A database file in its own temporary directory.
struct TempDb {
    _dir: TempDir,
    path: PathBuf,
}

impl TempDb {
    /// The write-ahead log beside the database file.
    fn wal(&self) -> PathBuf {
        PathBuf::from(format!("{}-wal", self.path.display()))
    }
}

fn temp_db() -> TempDb {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("stargazer-keys.db");
    TempDb { _dir: dir, path }
}

fn open_store(path: &Path, keyring: Keyring) -> DataKeyStore {
    DataKeyStore::open(path, keyring, CACHE).expect("the store opens")
}

fn only(key: &MasterKey) -> Keyring {
    Keyring::new(key.clone(), vec![])
}

fn user_ctx<'a>(owner: &'a str, service: &'a str) -> SealContext<'a> {
    SealContext {
        prefix: PREFIX,
        owner,
        service,
        key_id: None,
    }
}

fn pool_ctx<'a>(owner: &'a str, service: &'a str, key_id: &'a str) -> SealContext<'a> {
    SealContext {
        prefix: PREFIX,
        owner,
        service,
        key_id: Some(key_id),
    }
}

/// Opens `value` with the data key the store holds for the context's owner, as a reader would.
fn open_in(store: &DataKeyStore, ctx: &SealContext<'_>, value: &str) -> Result<String, OpenError> {
    let data_key = store.get(ctx.owner).expect("SQLite answers");
    StoredValue::parse(value)?
        .open(data_key.as_deref(), ctx)
        .map(|secret| secret.expose_secret().to_owned())
}

fn seal_in(store: &DataKeyStore, ctx: &SealContext<'_>, secret: &str) -> String {
    store
        .get_or_create(ctx.owner)
        .expect("a data key")
        .seal(ctx, secret.as_bytes())
}

/// The decoded bytes of a `v4:` value.
fn v4_body(value: &str) -> Vec<u8> {
    let body = value.strip_prefix("v4:").expect("a v4 value");
    URL_SAFE_NO_PAD.decode(body).expect("valid base64")
}

/// A `v4:` value of these bytes.
fn v4_value(body: &[u8]) -> String {
    format!("v4:{}", URL_SAFE_NO_PAD.encode(body))
}

/// `count` owners, each with a data key from `store` and one sealed secret:
/// (owner, sealed value, secret).
fn seal_one_secret_per_owner(store: &DataKeyStore, count: usize) -> Vec<(String, String, String)> {
    (0..count)
        .map(|i| {
            let owner = (100_000_000 + i).to_string();
            let secret = format!("sk-test-{i:05}-0123456789abcdef");
            let sealed = seal_in(store, &user_ctx(&owner, "brave"), &secret);
            (owner, sealed, secret)
        })
        .collect()
}

fn assert_all_open(store: &DataKeyStore, sealed: &[(String, String, String)]) {
    for (owner, value, secret) in sealed {
        let opened = open_in(store, &user_ctx(owner, "brave"), value);
        assert_eq!(opened.as_deref(), Ok(secret.as_str()), "owner {owner}");
    }
}

fn usage(kek: &MasterKey, rows: usize) -> KekUsage {
    KekUsage {
        kek_id: kek.id().to_string(),
        rows: rows as u64,
    }
}

#[test]
fn a_secret_sealed_with_a_stored_data_key_opens_after_the_store_is_reopened() {
    let db = temp_db();
    let master = MasterKey::generate();
    let ctx = user_ctx("4242", "brave");
    let sealed = seal_in(
        &open_store(&db.path, only(&master)),
        &ctx,
        "BSA-round-trip-secret",
    );

    let reopened = open_store(&db.path, only(&master));

    assert!(sealed.starts_with("v4:"));
    assert_eq!(
        open_in(&reopened, &ctx, &sealed).as_deref(),
        Ok("BSA-round-trip-secret")
    );
}

#[test]
fn get_or_create_returns_the_same_data_key_for_an_owner_every_time() {
    let db = temp_db();
    let master = MasterKey::generate();
    let store = open_store(&db.path, only(&master));
    let ctx = user_ctx("4242", "brave");
    let sealed = seal_in(&store, &ctx, "first-key-secret");

    let again = open_store(&db.path, only(&master))
        .get_or_create("4242")
        .expect("a data key");

    let opened = StoredValue::parse(&sealed)
        .unwrap()
        .open(Some(&again), &ctx);
    assert_eq!(opened.unwrap().expose_secret(), "first-key-secret");
    assert_eq!(store.kek_usage().unwrap(), vec![usage(&master, 1)]);
}

#[test]
fn any_flipped_byte_of_a_sealed_value_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("4242", "brave");
    let body = v4_body(&seal_in(&store, &ctx, "BSA-flip-me"));

    // Every byte: nonce, ciphertext and tag.
    for at in 0..body.len() {
        let mut flipped = body.clone();
        flipped[at] ^= 0x01;
        assert_eq!(
            open_in(&store, &ctx, &v4_value(&flipped)),
            Err(OpenError::Authentication),
            "byte {at}"
        );
    }
}

#[test]
fn any_changed_base64_character_of_a_sealed_value_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("4242", "brave");
    let sealed = seal_in(&store, &ctx, "BSA-flip-my-text");

    // Every character after `v4:` but the last, whose spare low bits make it a base64 question.
    for at in 3..sealed.len() - 1 {
        let mut chars: Vec<char> = sealed.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let changed: String = chars.into_iter().collect();
        assert_eq!(
            open_in(&store, &ctx, &changed),
            Err(OpenError::Authentication),
            "character {at}"
        );
    }
}

#[test]
fn a_value_too_short_for_a_nonce_and_a_tag_fails_as_truncated() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("4242", "brave");
    let body = v4_body(&seal_in(&store, &ctx, "BSA-cut-me-short"));

    for len in [0, 1, 12, 27] {
        assert_eq!(
            open_in(&store, &ctx, &v4_value(&body[..len])),
            Err(OpenError::Truncated),
            "{len} bytes"
        );
    }
}

#[test]
fn a_value_cut_inside_its_tag_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("4242", "brave");
    let body = v4_body(&seal_in(&store, &ctx, "BSA-cut-my-tag"));

    assert_eq!(
        open_in(&store, &ctx, &v4_value(&body[..body.len() - 1])),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_value_that_is_not_base64_fails_as_bad_base64() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("4242", "brave");
    let sealed = seal_in(&store, &ctx, "BSA-mangle-my-base64");
    let body = v4_body(&sealed);

    let mangled = [
        "v4:not base64 at all!".to_owned(),
        // `v4:` is urlsafe and unpadded: the standard alphabet and padding are refused.
        format!("v4:{}", STANDARD.encode([0xfb; 40])),
        // 31 bytes encode with padding.
        format!("v4:{}", URL_SAFE.encode(&body[..31])),
        format!("{sealed}*"),
        "v2:%%%%".to_owned(),
    ];
    for value in &mangled {
        assert_eq!(
            open_in(&store, &ctx, value),
            Err(OpenError::BadBase64),
            "{value}"
        );
    }
}

#[test]
fn a_value_moved_to_another_users_hash_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let sealed = seal_in(&store, &user_ctx("1001", "brave"), "BSA-of-user-1001");
    store.get_or_create("2002").unwrap();

    assert_eq!(
        open_in(&store, &user_ctx("2002", "brave"), &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_value_opened_as_another_owner_with_the_right_data_key_still_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let data_key = store.get_or_create("1001").unwrap();
    let sealed = data_key.seal(&user_ctx("1001", "brave"), b"BSA-of-user-1001");

    let opened = StoredValue::parse(&sealed)
        .unwrap()
        .open(Some(&data_key), &user_ctx("2002", "brave"));
    assert_eq!(opened.unwrap_err(), OpenError::Authentication);
}

#[test]
fn a_value_moved_to_another_service_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let sealed = seal_in(&store, &user_ctx("1001", "brave"), "BSA-for-brave-only");

    assert_eq!(
        open_in(&store, &user_ctx("1001", "openai"), &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_value_moved_under_another_key_prefix_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let sealed = seal_in(&store, &user_ctx("1001", "brave"), "BSA-in-stargazer");
    let other_prefix = SealContext {
        prefix: "otherbot",
        ..user_ctx("1001", "brave")
    };

    assert_eq!(
        open_in(&store, &other_prefix, &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_pool_value_moved_to_another_key_id_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let pool_key = store.get_or_create("pool:global").unwrap();
    let id_a = pool_key.key_id(b"BSA-pool-key-a");
    let id_b = pool_key.key_id(b"BSA-pool-key-b");
    let sealed = pool_key.seal(&pool_ctx("pool:global", "brave", &id_a), b"BSA-pool-key-a");

    assert_eq!(
        open_in(&store, &pool_ctx("pool:global", "brave", &id_a), &sealed).as_deref(),
        Ok("BSA-pool-key-a")
    );
    assert_eq!(
        open_in(&store, &pool_ctx("pool:global", "brave", &id_b), &sealed),
        Err(OpenError::Authentication)
    );
    assert_eq!(
        open_in(&store, &user_ctx("pool:global", "brave"), &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_pool_value_moved_to_another_pool_fails_authentication() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let global = store.get_or_create("pool:global").unwrap();
    let id = global.key_id(b"BSA-global-pool-key");
    let sealed = global.seal(
        &pool_ctx("pool:global", "brave", &id),
        b"BSA-global-pool-key",
    );
    store.get_or_create("pool:channel:42").unwrap();

    assert_eq!(
        open_in(&store, &pool_ctx("pool:channel:42", "brave", &id), &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn a_value_of_an_unknown_format_version_is_refused() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    let ctx = user_ctx("1001", "brave");
    let sealed = seal_in(&store, &ctx, "BSA-from-the-future");
    let future = sealed.replacen("v4:", "v5:", 1);

    assert_eq!(
        open_in(&store, &ctx, &future),
        Err(OpenError::UnsupportedVersion("v5".to_owned()))
    );
}

#[test]
fn a_store_opened_with_another_master_key_is_refused_naming_the_rows_and_their_kek_id() {
    let db = temp_db();
    let original = MasterKey::generate();
    let store = open_store(&db.path, only(&original));
    for owner in ["1001", "1002", "1003"] {
        store.get_or_create(owner).unwrap();
    }
    drop(store);

    let err = DataKeyStore::open(&db.path, only(&MasterKey::generate()), CACHE).unwrap_err();

    let DataKeyError::UnknownMasterKeys(unknown) = &err else {
        panic!("expected UnknownMasterKeys, got {err:?}");
    };
    assert_eq!(unknown, &vec![usage(&original, 3)]);
    let message = err.to_string();
    assert!(message.contains("3 data keys"), "{message}");
    assert!(message.contains(original.id().as_str()), "{message}");
}

#[test]
fn a_data_key_wrapped_by_one_master_key_does_not_unwrap_under_another() {
    let wrapped = MasterKey::generate().wrap("1001", &DataKey::generate());

    let err = MasterKey::generate().unwrap("1001", &wrapped).unwrap_err();

    assert_eq!(err, UnwrapError::Authentication);
}

#[test]
fn a_data_key_wrapped_for_one_owner_does_not_unwrap_for_another() {
    let master = MasterKey::generate();
    let wrapped = master.wrap("1001", &DataKey::generate());

    assert!(master.unwrap("1001", &wrapped).is_ok());
    assert_eq!(
        master.unwrap("2002", &wrapped).unwrap_err(),
        UnwrapError::Authentication
    );
}

#[test]
fn after_rotating_10_000_data_keys_every_secret_opens_under_the_new_master_key_alone() {
    let db = temp_db();
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let sealed = seal_one_secret_per_owner(&open_store(&db.path, only(&old)), MANY);

    let report = open_store(&db.path, Keyring::new(new.clone(), vec![old.clone()]))
        .rotate(|_, _| ControlFlow::Continue(()))
        .expect("the rotation completes");

    assert_eq!(report.rewrapped(), MANY as u64);
    assert_eq!(
        report.rewrapped_from.get(old.id().as_str()),
        Some(&(MANY as u64))
    );
    let new_only = open_store(&db.path, only(&new));
    assert_eq!(new_only.kek_usage().unwrap(), vec![usage(&new, MANY)]);
    assert_all_open(&new_only, &sealed);
}

#[test]
fn an_interrupted_rotation_leaves_every_row_under_the_old_master_key() {
    let db = temp_db();
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let sealed = seal_one_secret_per_owner(&open_store(&db.path, only(&old)), MANY);
    let mut calls = 0;

    let result =
        open_store(&db.path, Keyring::new(new, vec![old.clone()])).rotate(|done, total| {
            calls += 1;
            assert_eq!(total, MANY as u64);
            if done == 5_000 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });

    assert!(
        matches!(result, Err(DataKeyError::Interrupted)),
        "{result:?}"
    );
    assert_eq!(calls, 5_000);
    let old_only = open_store(&db.path, only(&old));
    assert_eq!(old_only.kek_usage().unwrap(), vec![usage(&old, MANY)]);
    assert_all_open(&old_only, &sealed);
}

#[test]
fn a_rotation_after_a_completed_one_rewraps_nothing() {
    let db = temp_db();
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    seal_one_secret_per_owner(&open_store(&db.path, only(&old)), 50);
    let store = open_store(&db.path, Keyring::new(new.clone(), vec![old]));
    store.rotate(|_, _| ControlFlow::Continue(())).unwrap();
    let mut calls = 0;

    let second = store
        .rotate(|_, _| {
            calls += 1;
            ControlFlow::Continue(())
        })
        .unwrap();

    assert_eq!(second.rewrapped(), 0);
    assert_eq!(second.already_current, 50);
    assert_eq!(calls, 0);
    assert_eq!(store.kek_usage().unwrap(), vec![usage(&new, 50)]);
}

#[test]
fn deleting_an_owner_crypto_shreds_every_value_sealed_for_it() {
    let db = temp_db();
    let master = MasterKey::generate();
    let store = open_store(&db.path, only(&master));
    let ctx = user_ctx("1001", "brave");
    let sealed = seal_in(&store, &ctx, "BSA-to-be-forgotten");
    let kept = seal_in(&store, &user_ctx("2002", "brave"), "BSA-of-a-neighbour");

    let erasure = store.delete("1001").unwrap();
    assert!(erasure.existed);
    assert_eq!(erasure.checkpoint, Checkpoint::Complete);

    assert!(store.get("1001").unwrap().is_none());
    assert_eq!(open_in(&store, &ctx, &sealed), Err(OpenError::NoDataKey));
    let reopened = open_store(&db.path, only(&master));
    assert!(reopened.get("1001").unwrap().is_none());
    assert_eq!(
        open_in(&reopened, &user_ctx("2002", "brave"), &kept).as_deref(),
        Ok("BSA-of-a-neighbour")
    );
    // A fresh data key for the same owner does not bring the value back.
    reopened.get_or_create("1001").unwrap();
    assert_eq!(
        open_in(&reopened, &ctx, &sealed),
        Err(OpenError::Authentication)
    );
}

#[test]
fn deleting_an_owner_without_a_data_key_reports_there_was_none() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));

    assert!(!store.delete("1001").unwrap().existed);
}

#[tokio::test]
async fn no_secret_appears_in_the_sqlite_file_or_its_write_ahead_log() {
    let db = temp_db();
    let keys = open_store(&db.path, only(&MasterKey::generate()));
    let storage = EmbeddedStore::open(&db.path).expect("the embedded store opens");
    let layout = Layout::new(PREFIX);
    let mut secrets = HashSet::new();
    let mut stored = Vec::new();
    for user_id in 1_000..1_300u64 {
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(random));
        let owner = user_id.to_string();
        let sealed = seal_in(&keys, &user_ctx(&owner, "openai"), &secret);
        storage
            .hset(&layout.user_keys_key(user_id), "openai", &sealed)
            .await
            .expect("the value is stored");
        secrets.insert(secret);
        stored.push(sealed);
    }

    // Read while both connections are open: closing the last one deletes the write-ahead log.
    let mut on_disk = std::fs::read(&db.path).expect("the database file");
    if let Ok(log) = std::fs::read(db.wal()) {
        on_disk.extend_from_slice(&log);
    }

    let secret_len = secrets.iter().next().unwrap().len();
    let leaked = on_disk
        .windows(secret_len)
        // Every secret starts with the prefix; checking it first keeps debug builds fast.
        .filter(|window| window.starts_with(SECRET_PREFIX.as_bytes()))
        .map(String::from_utf8_lossy)
        .find(|window| secrets.contains(window.as_ref()));
    assert_eq!(leaked, None);
    // The search does look at the right bytes: the sealed values are there.
    assert!(contains(&on_disk, stored.last().unwrap().as_bytes()));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// What the original bot left: its table, one user's data key wrapped with no associated data,
/// and a `v2:` value sealed with that data key. Returns the value.
fn write_original_bot_database(
    path: &Path,
    master: &MasterKey,
    user: &str,
    secret: &str,
) -> String {
    let master_bytes = STANDARD.decode(master.to_base64().expose_secret()).unwrap();
    let kek = Aes256Gcm::new_from_slice(&master_bytes).unwrap();
    let mut data_key = [0u8; 32];
    OsRng.fill_bytes(&mut data_key);

    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut wrapped = nonce.to_vec();
    wrapped.extend(kek.encrypt(&nonce, data_key.as_slice()).unwrap());
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE encryption_keys (user_id TEXT PRIMARY KEY, encrypted_key BLOB, created_at TEXT);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO encryption_keys (user_id, encrypted_key, created_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![user, wrapped, "2024-05-01T12:00:00"],
    )
    .unwrap();

    let dek = Aes256Gcm::new_from_slice(&data_key).unwrap();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut sealed = nonce.to_vec();
    sealed.extend(dek.encrypt(&nonce, secret.as_bytes()).unwrap());
    format!("v2:{}", URL_SAFE.encode(sealed))
}

#[test]
fn a_v2_value_of_the_original_bot_opens_through_its_database() {
    let db = temp_db();
    let master = MasterKey::generate();
    let value = write_original_bot_database(&db.path, &master, "1001", "BSA-from-the-original");

    let store = open_store(&db.path, only(&master));

    let parsed = StoredValue::parse(&value).unwrap();
    assert_eq!(parsed.format(), SealedFormat::V2);
    assert_eq!(
        open_in(&store, &user_ctx("1001", "brave"), &value).as_deref(),
        Ok("BSA-from-the-original")
    );
    // The original bot's rows name no master key.
    let legacy = KekUsage {
        kek_id: String::new(),
        rows: 1,
    };
    assert_eq!(store.kek_usage().unwrap(), vec![legacy]);
}

#[test]
fn a_rotation_rewraps_the_original_bots_data_keys_under_the_current_master_key() {
    let db = temp_db();
    let original = MasterKey::generate();
    let new = MasterKey::generate();
    let value = write_original_bot_database(&db.path, &original, "1001", "BSA-from-the-original");

    let report = open_store(&db.path, Keyring::new(new.clone(), vec![original]))
        .rotate(|_, _| ControlFlow::Continue(()))
        .unwrap();

    assert_eq!(report.rewrapped_from.get(""), Some(&1));
    let new_only = open_store(&db.path, only(&new));
    assert_eq!(new_only.kek_usage().unwrap(), vec![usage(&new, 1)]);
    assert_eq!(
        open_in(&new_only, &user_ctx("1001", "brave"), &value).as_deref(),
        Ok("BSA-from-the-original")
    );
}

/// Copies owner `from`'s row to owner `to` (as someone with write access to the file could).
fn copy_row(db: &std::path::Path, from: &str, to: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
             SELECT ?2, encrypted_key, created_at, kek_id FROM encryption_keys WHERE user_id = ?1",
            [from, to],
        )
        .unwrap();
}

#[test]
fn rewrapping_the_original_bots_rows_binds_their_owner() {
    let db = temp_db();
    let master = MasterKey::generate();
    write_original_bot_database(&db.path, &master, "1001", "BSA-from-the-original");
    drop(open_store(&db.path, only(&master))); // upgrades the original table
    // The hole: an original row copied to another owner opens there.
    copy_row(&db.path, "1001", "2002");
    assert!(
        open_store(&db.path, only(&master))
            .get("2002")
            .unwrap()
            .is_some()
    );

    let store = open_store(&db.path, only(&master));
    let report = store.rewrap_legacy().unwrap();
    assert_eq!(report.rewrapped_from.get(""), Some(&2));
    assert_eq!(store.kek_usage().unwrap(), vec![usage(&master, 2)]);

    copy_row(&db.path, "1001", "3003");
    let err = open_store(&db.path, only(&master)).get("3003").unwrap_err();
    assert!(matches!(err, DataKeyError::Unwrap { .. }), "{err:?}");
    // A second run finds nothing left to rewrap.
    assert_eq!(store.rewrap_legacy().unwrap().rewrapped(), 0);
}

#[test]
fn a_database_of_the_original_bot_is_refused_under_another_master_key() {
    let db = temp_db();
    write_original_bot_database(&db.path, &MasterKey::generate(), "1001", "BSA-original");

    let err = DataKeyStore::open(&db.path, only(&MasterKey::generate()), CACHE).unwrap_err();

    assert!(matches!(err, DataKeyError::LegacyUnreadable(1)), "{err:?}");
}

#[test]
fn deleting_an_owner_leaves_no_copy_of_its_wrapped_data_key_in_the_file() {
    let db = temp_db();
    let store = open_store(&db.path, only(&MasterKey::generate()));
    for user_id in 5_000..5_050 {
        store.get_or_create(&user_id.to_string()).unwrap();
    }
    store.get_or_create("1001").unwrap();
    let wrapped: Vec<u8> = store.with_connection(|conn| {
        conn.query_row(
            "SELECT encrypted_key FROM encryption_keys WHERE user_id = '1001'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    });

    store.delete("1001").unwrap();
    // Fold the write-ahead log into the file, as closing the last connection does.
    store.with_connection(|conn| {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap()
    });

    for file in [db.path.clone(), db.wal()] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!contains(&bytes, &wrapped), "{}", file.display());
    }
}
