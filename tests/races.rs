//! Writes that race an erasure or a rekey, made to lose the race at the worst moment on every
//! backend: the real storage, wrapped so that another process's erasure of the owner's data
//! key lands right after a sealed value is written and before the vault checks its key; and a
//! rekey that stops between two owners while a value is written to a hash it has not seen.

mod support;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use stargazer_keys::storage::{
    BackendKind, BoxFuture, Reservation, ResolveReply, ResolveRequest, StorageBackend, StorageError,
};
use stargazer_keys::{
    Catalogue, Config, KeyError, KeySource, KeyStore, KeyVault, Pool, QuotaWindow,
};
use support::*;

const USER: u64 = 424_242_424_242;
const ADMIN: u64 = 999;

/// The fixture's real storage, which erases `owner`'s data key (as `user forget` in another
/// process would) right after each of the next `erasures` hash writes.
struct ErasedAfterWrites {
    storage: Arc<dyn StorageBackend>,
    keys: KeyStore,
    owner: String,
    erasures: AtomicUsize,
}

impl ErasedAfterWrites {
    fn after<'a, T: Send + 'a>(
        &'a self,
        write: BoxFuture<'a, Result<T, StorageError>>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        Box::pin(async move {
            let written = write.await?;
            let left = self.erasures.load(Ordering::SeqCst);
            if left > 0 {
                self.erasures.store(left - 1, Ordering::SeqCst);
                self.keys
                    .delete(&self.owner)
                    .await
                    .expect("erase the data key");
            }
            Ok(written)
        })
    }
}

impl StorageBackend for ErasedAfterWrites {
    fn kind(&self) -> BackendKind {
        self.storage.kind()
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        self.storage.ping()
    }
    fn hget<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        self.storage.hget(key, field)
    }
    fn hset<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.after(self.storage.hset(key, field, value))
    }
    fn hset_nx<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.after(self.storage.hset_nx(key, field, value))
    }
    fn hreplace<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.after(self.storage.hreplace(key, field, expected, value))
    }
    fn hdel_if<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        expected: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.storage.hdel_if(key, field, expected)
    }
    fn hdel<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.storage.hdel(key, field)
    }
    fn hgetall<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        self.storage.hgetall(key)
    }
    fn hlen<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.storage.hlen(key)
    }
    fn hrandfield<'a>(
        &'a self,
        key: &'a str,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StorageError>> {
        self.storage.hrandfield(key, count)
    }
    fn del<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.storage.del(key)
    }
    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        self.storage.scan(pattern)
    }
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest,
    ) -> BoxFuture<'a, Result<ResolveReply, StorageError>> {
        self.storage.resolve(request)
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        self.storage.get(key)
    }
    fn set<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.storage.set(key, value)
    }
    fn incr_with_ttl<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.storage.incr_with_ttl(key, ttl_secs, window)
    }
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        ttl_secs: u64,
        window: QuotaWindow,
    ) -> BoxFuture<'a, Result<Reservation, StorageError>> {
        self.storage.reserve(key, limit, ttl_secs, window)
    }
    fn refund<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.storage.refund(key)
    }
    fn ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
        self.storage.ttl(key)
    }
}

/// A vault on the fixture's data whose writes lose `erasures` races with an erasure of
/// `owner`'s data key.
async fn racing_vault(fx: &Fixture, owner: &str, erasures: usize) -> KeyVault {
    let config = Config::from_vars(fx.vars.clone()).unwrap();
    let keys = fx.second_vault().await.data_keys().clone();
    let storage = ErasedAfterWrites {
        storage: second_storage(fx).await,
        keys: fx.vault.data_keys().clone(),
        owner: owner.to_owned(),
        erasures: AtomicUsize::new(erasures),
    };
    KeyVault::from_parts(config, keys, Arc::new(storage), Catalogue::builtin())
}

key_contract!(
    a_pool_add_that_loses_its_data_key_once_leaves_one_entry_and_it_opens,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let owner = Pool::Global.owner_id();
        let vault = racing_vault(&fx, &owner, 1).await;
        let key = secret("pooled");

        let added = vault
            .add_pool_key(Pool::Global, "brave", &key, ADMIN)
            .await
            .unwrap();

        assert!(added.added);
        let listed = fx
            .second_vault()
            .await
            .list_pool_keys(Pool::Global, Some("brave"))
            .await
            .unwrap();
        assert_eq!(
            listed.len(),
            1,
            "no entry of the lost try is left: {listed:?}"
        );
        assert_eq!(listed[0].key_id, added.key_id);
        let resolved = fx
            .second_vault()
            .await
            .get_user_api_key(Some(USER), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(resolved.source(), KeySource::GlobalPool);
        assert_eq!(resolved.key.expose(), key);
    }
);

key_contract!(
    a_pool_add_that_keeps_losing_its_data_key_leaves_nothing_and_says_so,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let owner = Pool::Global.owner_id();
        let vault = racing_vault(&fx, &owner, usize::MAX).await;

        let err = vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled"), ADMIN)
            .await
            .unwrap_err();

        assert!(matches!(err, KeyError::DataKeyChurn), "{err:?}");
        assert!(err.to_string().contains("it was not saved"), "{err}");
        let hash = format!("{}:global_api_pool:brave", fx.prefix);
        assert_eq!(
            fx.storage().hlen(&hash).await.unwrap(),
            0,
            "every try is taken back"
        );
    }
);

key_contract!(
    a_user_key_that_loses_its_data_key_once_is_saved_under_the_new_one,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let vault = racing_vault(&fx, &USER.to_string(), 1).await;
        let key = secret("own");

        vault.set_user_api_key(USER, "brave", &key).await.unwrap();

        let resolved = fx
            .second_vault()
            .await
            .get_user_api_key(Some(USER), "brave", None, true)
            .await
            .unwrap();
        assert_eq!(resolved.source(), KeySource::User);
        assert_eq!(resolved.key.expose(), key);
    }
);

key_contract!(
    a_user_key_that_keeps_losing_its_data_key_leaves_the_hash_as_it_was,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        let vault = racing_vault(&fx, &USER.to_string(), usize::MAX).await;

        let err = vault
            .set_user_api_key(USER, "brave", &secret("own"))
            .await
            .unwrap_err();

        assert!(matches!(err, KeyError::DataKeyChurn), "{err:?}");
        let hash = format!("{}:user_api_keys:{USER}", fx.prefix);
        assert_eq!(fx.storage().hlen(&hash).await.unwrap(), 0);
    }
);

key_contract!(
    a_key_written_to_a_hash_a_running_rekey_has_not_seen_is_moved_too,
    |backend| async move {
        let fx = Fixture::new(backend).await;
        // Owners are rekeyed in order: the user first, the global pool last.
        fx.vault
            .set_user_api_key(USER, "brave", &secret("own"))
            .await
            .unwrap();
        fx.vault
            .add_pool_key(Pool::Global, "brave", &secret("pooled-brave"), ADMIN)
            .await
            .unwrap();
        let (reached, on_reached) = tokio::sync::oneshot::channel();
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let vault = fx.vault.clone();
        let rekey = tokio::spawn(async move {
            let mut reached = Some(reached);
            vault
                .rekey(move |done, _| {
                    if let Some(reached) = reached.take() {
                        assert_eq!(done, 1);
                        reached.send(()).unwrap();
                        wait.recv().unwrap();
                    }
                    ControlFlow::Continue(())
                })
                .await
        });
        on_reached.await.unwrap();
        // A hash the rekey did not see when it began, under the pool's old data key.
        let openai = secret("pooled-openai");
        fx.vault
            .add_pool_key(Pool::Global, "openai", &openai, ADMIN)
            .await
            .unwrap();
        go_on.send(()).unwrap();

        let report = rekey.await.unwrap().unwrap();

        assert_eq!(report.owners, 2);
        assert_eq!(report.values_moved, 3);
        assert_eq!(report.unreadable, 0);
        let resolved = fx
            .second_vault()
            .await
            .get_user_api_key(Some(USER), "openai", None, true)
            .await
            .unwrap();
        assert_eq!(resolved.source(), KeySource::GlobalPool);
        assert_eq!(resolved.key.expose(), openai);
    }
);
