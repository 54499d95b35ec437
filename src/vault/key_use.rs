//! Using a key for one call: resolve, pass the quota gate of a shared key, call, keep or give
//! back the use, report what the call said about a pool key. Every sibling tool's call takes
//! this path; `KeyContext` in the commands crate is a thin adapter over it.

use std::fmt;
use std::future::Future;

use super::resolve::Resolution;
use super::{KeyVault, PoolKeyRef, ResolvedKey};
use crate::catalogue::Service;
use crate::health::KeyOutcome;
use crate::i18n::Locale;
use crate::ids::{IntoServiceId, IntoToolName};
use crate::messages::{default_key_limit_text, pool_limit_error};
use crate::quota::BYPASS_RATELIMIT_BIT;

/// Who is calling, and where: the plain ids of one invocation, and the languages its messages
/// are written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The invoking user.
    pub user_id: u64,
    /// The channel of the invocation.
    pub channel_id: Option<u64>,
    /// The guild of the invocation (none in DMs).
    pub guild_id: Option<u64>,
    /// The user's language, then the server's ([`Locale::discord`]); the missing-key and
    /// limit messages are in the first of them the bot speaks, else in English.
    pub locale: Locale,
}

impl Caller {
    /// A caller in `channel_id` of `guild_id` (none in a DM), whose messages are in English.
    pub fn new(user_id: u64, channel_id: Option<u64>, guild_id: Option<u64>) -> Self {
        Self {
            user_id,
            channel_id,
            guild_id,
            locale: Locale::english(),
        }
    }

    /// This caller, reading `locale`.
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
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
/// [`KeyVault::with_api_key_reporting`]: a 429 (with its Retry-After), a 402, a 401/403, or
/// nothing about the key at all ([`KeyOutcome::Inconclusive`]).
///
/// ```
/// use stargazer_keys::{KeyFailure, KeyOutcome};
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

impl KeyVault {
    /// The one call for sibling tools: resolves the caller's key for `service`; when it is
    /// shared and the limit applies to this user, reserves one use of `tool` (or returns the
    /// limit message); runs `call`; keeps the use when `call` succeeded and gives it back when
    /// it failed. Returns the missing-key message when nothing resolves.
    ///
    /// For a pooled key, the call is counted in the key's daily uses; a failed call counts as
    /// [`KeyOutcome::Inconclusive`] (it benches nothing). To bench a rate-limited or revoked
    /// pool key, use [`KeyVault::with_api_key_reporting`] with an error that says what it
    /// means for the key.
    ///
    /// ```no_run
    /// # use stargazer_keys::{Caller, KeyUseError, KeyVault};
    /// # async fn search(key: &str, query: &str) -> Result<String, std::io::Error> { Ok(String::new()) }
    /// # async fn demo(vault: KeyVault, query: String) -> Result<String, KeyUseError<std::io::Error>> {
    /// let caller = Caller::new(42, Some(7), Some(1));
    /// let answer = vault
    ///     .with_api_key(&caller, "brave", "web_search", |resolved| async move {
    ///         search(resolved.key.expose(), &query).await
    ///     })
    ///     .await?;
    /// # Ok(answer)
    /// # }
    /// ```
    pub async fn with_api_key<T, Err, F, Fut>(
        &self,
        caller: &Caller,
        service: impl IntoServiceId,
        tool: impl IntoToolName,
        call: F,
    ) -> Result<T, KeyUseError<Err>>
    where
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        self.use_key(caller, service, tool, call, |_| KeyOutcome::Inconclusive)
            .await
    }

    /// [`KeyVault::with_api_key`], and the call's error tells what happened to the key
    /// ([`KeyFailure`]): a pooled key the service rate-limited (429), refused (401/403) or
    /// found out of credit (402) is benched, so the next calls, in every process of the bot,
    /// draw another key (or fall through to the next tier). Success is counted as a use.
    pub async fn with_api_key_reporting<T, Err, F, Fut>(
        &self,
        caller: &Caller,
        service: impl IntoServiceId,
        tool: impl IntoToolName,
        call: F,
    ) -> Result<T, KeyUseError<Err>>
    where
        Err: KeyFailure,
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        self.use_key(caller, service, tool, call, Err::key_outcome)
            .await
    }

    async fn use_key<T, Err, F, Fut>(
        &self,
        caller: &Caller,
        service: impl IntoServiceId,
        tool: impl IntoToolName,
        call: F,
        classify: impl FnOnce(&Err) -> KeyOutcome,
    ) -> Result<T, KeyUseError<Err>>
    where
        F: FnOnce(ResolvedKey) -> Fut,
        Fut: Future<Output = Result<T, Err>>,
    {
        let misconfigured = |err: &dyn fmt::Display| {
            self.texts().text(
                &caller.locale,
                "key-error-misconfigured",
                &[("detail", err.to_string().into())],
            )
        };
        let tool = match tool.into_tool_name() {
            Ok(tool) => tool,
            Err(err) => {
                tracing::error!(error = %err, "a key was asked for with a bad tool name; refused");
                return Err(KeyUseError::InvalidTool(misconfigured(&err)));
            }
        };
        let service = match service.into_service_id() {
            Ok(service) => service,
            Err(err) => {
                tracing::error!(error = %err, "a key was asked for with a bad service id; refused");
                return Err(KeyUseError::MissingKey(misconfigured(&err)));
            }
        };
        let (service, tool) = (&service, &tool);
        let user = caller.user_id;
        let resolve = self.resolution(
            Some(user),
            service,
            caller.channel_id,
            caller.guild_id,
            true,
        );
        // The quota gate's two reads go out with the resolution, in the same round trip,
        // unless the user is known to have their own key (or is a bot admin): then no gate.
        let speculate = !self.config().admin_user_ids.contains(&user)
            && !self.inner.own_key_hints.has_own_key(user, service);
        let (resolved, gate) = if speculate {
            let gate = async {
                tokio::join!(
                    self.user_privileges(user),
                    self.reserve_default_key_use(user, tool, None)
                )
            };
            let (resolved, gate) = tokio::join!(resolve, gate);
            (resolved, Some(gate))
        } else {
            (resolve.await, None)
        };
        let (resolved, pool_limit, shared_keys_off) = match resolved {
            Resolution::Found(key, limit) => (Some(key), limit, false),
            Resolution::SharedKeysOff => (None, None, true),
            Resolution::Nothing => (None, None, false),
        };
        let applies = match &resolved {
            Some(resolved) if resolved.source().is_shared() => match &gate {
                Some((privileges, _)) => privileges & (1 << BYPASS_RATELIMIT_BIT) == 0,
                None => self.default_key_limit_applies(Some(user), false).await,
            },
            _ => false,
        };
        // A key from a pool whose admins set a limit counts against that pool's counter, not
        // the tool's (whose speculative reservation is given back meanwhile).
        let limited_pool = match (&resolved, pool_limit) {
            (Some(resolved), Some(limit)) if applies => resolved
                .pool_key()
                .map(|pooled| (pooled.pool, self.capped_pool_limit(limit))),
            _ => None,
        };
        let reservation = match (limited_pool, gate) {
            (Some((pool, limit)), gate) => {
                let give_back = async {
                    if let Some((_, Ok(unneeded))) = gate {
                        unneeded.refund().await;
                    }
                };
                let reserve = self.reserve_pool_key_use(user, pool, service, limit);
                let ((), reserved) = tokio::join!(give_back, reserve);
                Some(reserved.map_err(|reached| (reached, Some(pool))))
            }
            (None, Some((_, reservation))) if applies => Some(reservation.map_err(|r| (r, None))),
            (None, Some((_, Ok(unneeded)))) => {
                // Reserved for a call the limit does not apply to (the user's own key, no key
                // at all, a privileged user): given back before anyone reads the counter.
                unneeded.refund().await;
                None
            }
            (None, Some((_, Err(_)))) => None,
            (None, None) if applies => Some(
                self.reserve_default_key_use(user, tool, None)
                    .await
                    .map_err(|r| (r, None)),
            ),
            (None, None) => None,
        };
        let Some(resolved) = resolved else {
            let (texts, locale) = (self.texts(), &caller.locale);
            return Err(KeyUseError::MissingKey(if shared_keys_off {
                self.catalogue()
                    .shared_keys_off_text(texts, locale, service)
            } else {
                self.catalogue().missing_key_text(texts, locale, service)
            }));
        };
        let permit = match reservation {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err((reached, pool))) => {
                let entry = self
                    .catalogue()
                    .get(service)
                    .cloned()
                    .unwrap_or_else(|| Service::new(service.clone(), service.as_str()));
                let (texts, locale) = (self.texts(), &caller.locale);
                return Err(KeyUseError::LimitReached(match pool {
                    Some(pool) => pool_limit_error(texts, locale, pool, &entry, &reached),
                    None => default_key_limit_text(texts, locale, tool, &entry, &reached),
                }));
            }
        };
        // What identifies a pool key outlives the call, which takes the key itself.
        let pooled: Option<PoolKeyRef> = resolved.pool_key().cloned();
        let result = call(resolved).await;
        if let Some(pooled) = pooled {
            match &result {
                // Counting a use benches nothing: off the path of the call.
                Ok(_) => {
                    let (vault, service) = (self.clone(), service.clone());
                    tokio::spawn(async move {
                        vault
                            .report_key_outcome_by(user, &service, &pooled, KeyOutcome::Success)
                            .await;
                    });
                }
                Err(err) => {
                    self.report_key_outcome_by(user, service, &pooled, classify(err))
                        .await;
                }
            }
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
                    if !permit.is_recorded() || self.record_default_key_failure(user, tool).await {
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
