//! [`KeyContext`]: what a sibling command module needs to use a key for the user who invoked it.

use std::fmt;
use std::future::Future;

use stargazer_keys::i18n::Locale;
use stargazer_keys::{Caller, KeyFailure, KeyUseError, KeyVault, LimitCheck, ResolvedKey};

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
    /// The user's language, then the server's: the missing-key and limit messages are in it.
    pub locale: Locale,
}

impl fmt::Debug for KeyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyContext")
            .field("user_id", &self.user_id)
            .field("channel_id", &self.channel_id)
            .field("guild_id", &self.guild_id)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

impl KeyContext {
    /// The context of a poise command invocation, in the user's language (then the
    /// server's).
    pub fn from_poise<U: HasKeyVault, E>(ctx: Context<'_, U, E>) -> Self {
        Self {
            vault: ctx.data().key_vault().clone(),
            user_id: ctx.author().id.get(),
            channel_id: Some(ctx.channel_id().get()),
            guild_id: ctx.guild_id().map(|id| id.get()),
            locale: crate::text::locale_of(ctx),
        }
    }

    /// A context from plain ids (for callers outside poise), in English until
    /// [`KeyContext::with_locale`].
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
            locale: Locale::english(),
        }
    }

    /// This context, its messages in `locale`.
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }

    /// The vault.
    pub fn vault(&self) -> &KeyVault {
        &self.vault
    }

    /// The key for `service`: the user's own, this channel's pool, this server's pool, the
    /// global pool, or the operator's environment.
    pub async fn api_key(&self, service: &str) -> Option<ResolvedKey> {
        self.vault
            .get_user_api_key_in(
                Some(self.user_id),
                service,
                self.channel_id,
                self.guild_id,
                true,
            )
            .await
    }

    /// Whether the shared-key daily limit applies to a call with `key`.
    pub async fn limit_applies(&self, key: &ResolvedKey) -> bool {
        self.vault
            .default_key_limit_applies(Some(self.user_id), !key.source().is_shared())
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

    /// The message for a service with no key, in the user's language. (It does not know a
    /// user's choice to use only their own key: [`KeyContext::with_api_key`] gives the message
    /// that does.)
    pub fn missing_key_message(&self, service: &str) -> String {
        self.vault
            .catalogue()
            .missing_key_text(self.vault.texts(), &self.locale, service)
    }

    /// The caller, as the core knows it.
    pub fn caller(&self) -> Caller {
        Caller::new(self.user_id, self.channel_id, self.guild_id).with_locale(self.locale.clone())
    }

    /// The one call for sibling tools ([`KeyVault::with_api_key`] for this invocation):
    /// resolves the key for `service`; when it is shared and the limit applies to this user,
    /// reserves one use of `tool` (or returns the limit message); runs `call`; keeps the use
    /// when `call` succeeded and gives it back when it failed. Returns the missing-key message
    /// when nothing resolves.
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
        self.vault
            .with_api_key(&self.caller(), service, tool, call)
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
        self.vault
            .with_api_key_reporting(&self.caller(), service, tool, call)
            .await
    }
}
