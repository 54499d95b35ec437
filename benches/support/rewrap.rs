//! A database of 100,000 data keys, prepared once and copied afresh for each rotation.

use std::path::Path;

use stargazer_keys::MasterKey;
use stargazer_keys::testkit::DataKey;

/// How many data keys.
pub const OWNERS: u64 = 100_000;
const FIRST_OWNER: u64 = 100_000;

/// The i-th owner id.
pub fn owner(i: u64) -> String {
    (FIRST_OWNER + i).to_string()
}

/// Writes a database of [`OWNERS`] data keys wrapped under `kek`, in one transaction.
pub fn prepare(path: &Path, kek: &MasterKey) {
    let mut conn = stargazer_keys::db::open(path).expect("create the database");
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO encryption_keys (user_id, encrypted_key, created_at, kek_id)
                 VALUES (?1, ?2, '2025-01-01T00:00:00Z', ?3)",
            )
            .expect("prepare");
        for i in 0..OWNERS {
            let owner = owner(i);
            let wrapped = kek.wrap(&owner, &DataKey::generate());
            insert
                .execute(rusqlite::params![owner, wrapped, kek.id().as_str()])
                .expect("insert a data key");
        }
    }
    tx.commit().expect("commit");
    // Leave everything in the main file, so a copy of it is the whole database.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}

/// A fresh copy of the prepared database at `to` (its old WAL files removed).
pub fn copy_prepared(from: &Path, to: &Path) {
    for suffix in ["-wal", "-shm"] {
        let mut companion = to.as_os_str().to_owned();
        companion.push(suffix);
        let _ = std::fs::remove_file(companion);
    }
    std::fs::copy(from, to).expect("copy the prepared database");
}
