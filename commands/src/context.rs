//! [`KeyContext`]: what a sibling command module needs to use a key for the user who invoked it.

use std::fmt;
use std::future::Future;

use stargazer_keys::catalogue::Service;
use stargazer_keys::{KeyOutcome, KeyVault, LimitCheck, ResolvedKey, default_key_limit_error};

use crate::{Context, HasKeyVault};

/// Who is calling, where, and the vault: built from the interaction, used for one call.
///
/// ```no_run
/// # use stargazer_keys_commands::{KeyContext, KeyUseError};
/// # async fn search(key: &str, query: &str) -> Result<String, std::io::Error> { Ok(String::new()) }
/// # async fn demo(keys: KeyContext, query: String) -> Result<String, KeyUseError<std::io::Error>> {
/// // Resolve the user's Brave key (or a shared one, within the daily limit), run the call,
/// // and count the use only when it succeeded.
/// let answer = keys
///     .with_api_key("brave", "web_search", |resolved| async move {
///         search(resolved.key.expose(), &query).await
///     })
///     .await?;
/// # Ok(answer)
/// # }
/// ```
#[derive(Clone)]
pub struct KeyContext {
    vault: KeyVault,
    /// The invoking user.
    pub user_id: u64,
    /// The channel of the invocation.
    pub channel_id: Option<u64>,
    /// The guild of the invocation (none in DMs).
    pub guild_id: Option<u64>,
}

impl fmt::Debug for KeyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyContext")
            .field("user_id", &self.user_id)
            .field("channel_id", &self.channel_id)
            .field("guild_id", &self.guild_id)
            .finish_non_exhaustive()
    }
}

/// Why a call with a key did not run, or failed. `Display` is the sentence for the user.
#[derive(Debug)]
pub enum KeyUseError<E> {
    /// No key resolved: the message names the service, where to get a key and the command.
    MissingKey(String),
    /// The shared-key daily limit is spent: the message says when it resets and how to lift it.
    LimitReached(String),
    /// The call itself failed (its use was given back, up to the daily number of failures
    /// given back: see [`KeyVault::record_default_key_failure`]).
    Call(E),
    /// The tool name cannot name a quota counter: a bug of the calling module, refused
    /// before any key is resolved.
    InvalidTool(String),
}

impl<E: fmt::Display> fmt::Display for KeyUseError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyUseError::MissingKey(text)
            | KeyUseError::LimitReached(text)
            | KeyUseError::InvalidTool(text) => f.write_str(text),
            KeyUseError::Call(err) => err.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for KeyUseError<E> {}

/// What a sibling tool's error says about the key it used, for
/// [`KeyContext::with_api_key_reporting`]: a 429 (with its Retry-After), a 402, a 401/403, or
/// nothing about the key at all ([`KeyOutcome::Inconclusive`]).
///
/// ```
/// use stargazer_keys::KeyOutcome;
/// use stargazer_keys_commands::KeyFailure;
///
/// struct HttpError { status: u16, retry_after: Option<String> }
///
/// impl KeyFailure for HttpError {
///     fn key_outcome(&self) -> KeyOutcome {
///         KeyOutcome::from_http_status(self.status, self.retry_after.as_deref())
///     }
/// }
/// ```
pub trait KeyFailure {
    /// The outcome to report for the key that was used.
    fn key_outcome(&self) -> KeyOutcome;
}

impl KeyContext {
    /// The context of a poise command invocation.
    pub fn from_poise<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Self {
        Self {
            vault: ctx.data().key_vault().clone(),
            user_id: ctx.author().id.get(),
            channel_id: Some(ctx.channel_id().get()),
            guild_id: ctx.guild_id().map(|id| id.get()),
        }
    }

    /// A context from plain ids (for callers outside poise).
    pub fn new(
        vault: KeyVault,
        user_id: u64,
        channel_id: Option<u64>,
        guild_id: Option<u64>,
    ) -> Self {
        Self {
            vault,
            user_id,
            channel_id,
            guild_id,
        }
    }

    /// The vault.
    pub fn vault(&self) -> &KeyVault {
        &self.vault
    }

    /// The key for `service`: the user's own, this channel's pool, the global pool, or the
    /// operator's environment.
    pub async fn api_key(&self, service: &str) -> Option<ResolvedKey> {
        self.vault
            .get_user_api_key(Some(self.user_id), service, self.channel_id, true)
            .await
    }

    /// Whether the shared-key daily limit applies to a call with `key`.
    pub async fn limit_applies(&self, key: &ResolvedKey) -> bool {
        self.vault
            .default_key_limit_applies(Some(self.user_id), !key.source.is_shared())
            .await
    }

    /// The user's standing against the daily limit of `tool` (fail-open).
    pub async fn check_limit(&self, tool: &str) -> LimitCheck {
        self.vault
            .check_default_key_limit(self.user_id, tool, None)
            .await
    }

    /// Counts one shared-key use of `tool` (errors are logged and swallowed).
    pub async fn count_use(&self, tool: &str) {
        self.vault
            .increment_default_key_usage(self.user_id, tool)
            .await;
    }

    /// The message for a service with no key.
    pub fn missing_key_message(&self, service: &str) -> String {
        self.vault.catalogue().missing_api_key_error(service)
    }

    /// The one call for sibling tools: resolves the key for `service`; when it is shared and
    /// the limit applies to this user, reserves one use of `tool` (or returns the limit
    /// message); runs `call`; keeps the use when `call` succeeded and gives it back when it
    /// failed. Returns the missing-key message when nothing resolves.
    ///
    /// For a pooled key, the call is counted in the key's daily uses; a failed call counts as
    /// [`KeyOutcome::Inconclusive`] (it benches nothing). To bench a rate-limited or revoked
    /// pool key, use [`KeyContext::with_api_key_reporting`] with an error that says what it
    /// means for the key.
    pub async fn with_api_key<T, Err, F, Fut>(
        &self,
        service: &str,
        tool: &str,
        call: F,
    ) -> Result<T, KeyUseError<Err>>
    where
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        self.run_with_key(service, tool, call, |_| KeyOutcome::Inconclusive)
            .await
    }

    /// [`KeyContext::with_api_key`], and the call's error tells what happened to the key
    /// ([`KeyFailure`]): a pooled key the service rate-limited (429), refused (401/403) or
    /// found out of credit (402) is benched, so the next calls, in every process of the bot,
    /// draw another key (or fall through to the next tier). Success is counted as a use.
    ///
    /// ```no_run
    /// # use stargazer_keys::KeyOutcome;
    /// # use stargazer_keys_commands::{KeyContext, KeyFailure, KeyUseError};
    /// # #[derive(Debug)] struct ApiError(u16);
    /// # impl KeyFailure for ApiError {
    /// #     fn key_outcome(&self) -> KeyOutcome { KeyOutcome::from_http_status(self.0, None) }
    /// # }
    /// # async fn call(key: &str) -> Result<String, ApiError> { Ok(String::new()) }
    /// # async fn demo(keys: KeyContext) -> Result<String, KeyUseError<ApiError>> {
    /// keys.with_api_key_reporting("openai", "chat", |resolved| async move {
    ///     call(resolved.key.expose()).await
    /// })
    /// .await
    /// # }
    /// ```
    pub async fn with_api_key_reporting<T, Err, F, Fut>(
        &self,
        service: &str,
        tool: &str,
        call: F,
    ) -> Result<T, KeyUseError<Err>>
    where
        Err: KeyFailure,
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        self.run_with_key(service, tool, call, Err::key_outcome)
            .await
    }

    async fn run_with_key<T, Err, F, Fut>(
        &self,
        service: &str,
        tool: &str,
        call: F,
        classify: impl FnOnce(&Err) -> KeyOutcome,
    ) -> Result<T, KeyUseError<Err>>
    where
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        if let Err(err) = stargazer_keys::quota::validate_tool_name(tool) {
            tracing::error!(error = %err, "a key was asked for with a bad tool name; refused");
            return Err(KeyUseError::InvalidTool(format!(
                "This command is misconfigured ({err}), so it did not run; tell the bot's operator."
            )));
        }
        let Some(resolved) = self.api_key(service).await else {
            return Err(KeyUseError::MissingKey(self.missing_key_message(service)));
        };
        let permit = if self.limit_applies(&resolved).await {
            match self
                .vault
                .reserve_default_key_use(self.user_id, tool, None)
                .await
            {
                Ok(permit) => Some(permit),
                Err(reached) => {
                    let entry = self
                        .vault
                        .catalogue()
                        .get(service)
                        .cloned()
                        .unwrap_or_else(|| Service::new(service, service));
                    return Err(KeyUseError::LimitReached(default_key_limit_error(
                        tool,
                        &entry,
                        reached.current,
                        reached.limit,
                        reached.resets_in,
                    )));
                }
            }
        } else {
            None
        };
        // The key's identity outlives the call, which takes the key itself.
        let used = ResolvedKey {
            key: stargazer_keys::ApiKey::new(""),
            source: resolved.source,
            key_id: resolved.key_id.clone(),
            pool: resolved.pool,
        };
        let result = call(resolved).await;
        let outcome = match &result {
            Ok(_) => KeyOutcome::Success,
            Err(err) => classify(err),
        };
        if used.pool.is_some() {
            self.vault
                .report_key_outcome_by(self.user_id, service, &used, outcome)
                .await;
        }
        match result {
            Ok(value) => {
                if let Some(permit) = permit {
                    permit.commit();
                }
                Ok(value)
            }
            Err(err) => {
                if let Some(permit) = permit {
                    if !permit.is_recorded()
                        || self
                            .vault
                            .record_default_key_failure(self.user_id, tool)
                            .await
                    {
                        permit.refund().await;
                    } else {
                        permit.commit();
                    }
                }
                Err(KeyUseError::Call(err))
            }
        }
    }
}
