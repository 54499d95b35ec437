//! The bot: settings, the poise framework with our commands, and the serenity client. The same
//! code runs `stargazer-keys bot` and the end-to-end tests (against a fake Discord).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use poise::serenity_prelude as serenity;
use secrecy::{ExposeSecret, SecretString};
use stargazer_keys::{Config, ConfigError, KeyVault};

use crate::{CommandError, DEFAULT_MODAL_TIMEOUT, HasKeyVault};

/// The bot's error type.
pub type Error = CommandError;

/// The settings of the Discord side.
#[derive(Clone)]
pub struct BotSettings {
    /// `DISCORD_TOKEN`.
    pub token: SecretString,
    /// `DISCORD_GUILD_ID`: register the commands in this guild only (instant), else globally.
    pub guild_id: Option<u64>,
    /// `DISCORD_HTTP_PROXY`: the base URL every REST call goes to instead of Discord (a
    /// rate-limit proxy, or a test double); serenity's own rate limiter is then off.
    pub http_proxy: Option<String>,
    /// `STARGAZER_MODAL_TIMEOUT_SECS`: how long a secret-entry modal waits (default 300).
    pub modal_timeout: Duration,
    /// `STARGAZER_METRICS_ADDR`: where to serve Prometheus metrics (`/metrics`); off when unset.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl fmt::Debug for BotSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotSettings")
            .field("guild_id", &self.guild_id)
            .field("http_proxy", &self.http_proxy)
            .field("modal_timeout", &self.modal_timeout)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

impl BotSettings {
    /// Reads the Discord settings from the environment captured in `config`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let env = &config.env;
        let token = env
            .get("DISCORD_TOKEN")
            .map(|t| SecretString::from(t.trim().to_owned()))
            .ok_or_else(|| {
                invalid(
                    "DISCORD_TOKEN",
                    "is not set: put the bot token from the Discord developer portal in it",
                )
            })?;
        let guild_id = env
            .get("DISCORD_GUILD_ID")
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|id| *id != 0)
                    .ok_or_else(|| {
                        invalid(
                            "DISCORD_GUILD_ID",
                            format!("must be a Discord server id (a number), not {:?}", v.trim()),
                        )
                    })
            })
            .transpose()?;
        let http_proxy = env
            .get("DISCORD_HTTP_PROXY")
            .map(|text| {
                let refused = || {
                    invalid(
                        "DISCORD_HTTP_PROXY",
                        "must be a base URL starting with http:// or https://, without a user name, password, query or fragment",
                    )
                };
                let url = url::Url::parse(text.trim()).map_err(|_| refused())?;
                let clean = matches!(url.scheme(), "http" | "https")
                    && url.has_host()
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none();
                if clean {
                    Ok(url.as_str().trim_end_matches('/').to_owned())
                } else {
                    Err(refused())
                }
            })
            .transpose()?;
        let metrics_addr = env
            .get("STARGAZER_METRICS_ADDR")
            .map(|v| {
                v.trim().parse::<std::net::SocketAddr>().map_err(|_| {
                    invalid(
                        "STARGAZER_METRICS_ADDR",
                        "must be an address and port to serve metrics on, such as 127.0.0.1:9464",
                    )
                })
            })
            .transpose()?;
        let modal_timeout = env
            .get("STARGAZER_MODAL_TIMEOUT_SECS")
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=900).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        invalid(
                            "STARGAZER_MODAL_TIMEOUT_SECS",
                            "must be a number of seconds from 1 to 900 (Discord's interaction token lasts 15 minutes)",
                        )
                    })
            })
            .transpose()?
            .unwrap_or(DEFAULT_MODAL_TIMEOUT);
        Ok(Self {
            token,
            guild_id,
            http_proxy,
            modal_timeout,
            metrics_addr,
        })
    }
}

/// The data of the stand-alone bot.
pub struct BotData {
    vault: KeyVault,
    modal_timeout: Duration,
}

impl HasKeyVault for BotData {
    fn key_vault(&self) -> &KeyVault {
        &self.vault
    }

    fn modal_timeout(&self) -> Duration {
        self.modal_timeout
    }
}

/// Why the bot stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The client could not be built or its connection failed for good.
    #[error("the Discord client failed: {0}")]
    Client(Box<serenity::Error>),
    /// Discord closed the gateway with a code no reconnection can fix.
    #[error("{}", gateway_refusal(*.0))]
    GatewayRefused(u16),
    /// The metrics endpoint cannot be served.
    #[error("cannot serve metrics at STARGAZER_METRICS_ADDR: {0}")]
    Metrics(String),
    /// Discord refused the token (401): a setting to fix, not a failure to retry.
    #[error(
        "Discord refused the bot token (401 Unauthorized): set DISCORD_TOKEN to the token of the bot's Developer Portal page (Bot, Reset Token)"
    )]
    TokenRefused,
}

impl BotError {
    /// Whether the operator must change a setting before the bot can start (exit code 2).
    pub fn is_setting(&self) -> bool {
        matches!(self, BotError::TokenRefused | BotError::GatewayRefused(_))
    }
}

/// The sentence for a gateway closed with `code`, naming what to fix.
fn gateway_refusal(code: u16) -> String {
    match code {
        4004 => "Discord closed the gateway with 4004 (authentication failed): set DISCORD_TOKEN to the token of the bot's Developer Portal page (Bot, Reset Token)".to_owned(),
        4013 => "Discord closed the gateway with 4013 (invalid intents): the gateway intents asked for are not valid; check the intents the host bot adds".to_owned(),
        4014 => "Discord closed the gateway with 4014 (disallowed intents): enable the privileged intents the bot asks for on its Developer Portal page (Bot, Privileged Gateway Intents), or stop asking for them".to_owned(),
        other => format!("Discord closed the gateway with {other}, which no reconnection can fix"),
    }
}

impl From<serenity::Error> for BotError {
    fn from(err: serenity::Error) -> Self {
        use serenity::GatewayError as G;
        match err {
            serenity::Error::Gateway(G::InvalidAuthentication) => BotError::GatewayRefused(4004),
            serenity::Error::Gateway(G::InvalidGatewayIntents) => BotError::GatewayRefused(4013),
            serenity::Error::Gateway(G::DisallowedGatewayIntents) => BotError::GatewayRefused(4014),
            other => BotError::Client(Box::new(other)),
        }
    }
}

/// Runs the bot with our commands plus `extra` ones (a host's sibling commands) until
/// `shutdown` completes, then closes the gateway connections cleanly.
pub async fn run(
    settings: BotSettings,
    vault: KeyVault,
    extra: Vec<poise::Command<BotData, Error>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BotError> {
    let mut commands = crate::commands_in::<BotData, Error>(vault.texts());
    commands.extend(extra);
    let guild_id = settings.guild_id;
    let data = BotData {
        vault,
        modal_timeout: settings.modal_timeout,
    };
    if let Some(addr) = settings.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|err| BotError::Metrics(err.to_string()))?;
        tracing::info!(%addr, "serving Prometheus metrics (STARGAZER_METRICS_ADDR)");
    }
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands,
            pre_command: |ctx| {
                Box::pin(async move {
                    let command = ctx.command().qualified_name.clone();
                    metrics::counter!("stargazer_command_invocations_total", "command" => command)
                        .increment(1);
                })
            },
            on_error: |err| Box::pin(crate::on_error(err)),
            ..Default::default()
        })
        // Set on the builder: it overrides FrameworkOptions::initialize_owners.
        .initialize_owners(false)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let commands = &framework.options().commands;
                match guild_id {
                    Some(guild) => {
                        poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(guild))
                            .await?;
                        tracing::info!(guild, "registered the commands in one guild");
                    }
                    None => {
                        poise::builtins::register_globally(ctx, commands).await?;
                        tracing::info!("registered the commands globally (they may take up to an hour to appear)");
                    }
                }
                tracing::info!(user = %ready.user.name, "connected to Discord");
                crate::spawn_contributor_dms(data.vault.clone(), ctx.http.clone());
                Ok(data)
            })
        })
        .build();

    let token = settings.token.expose_secret();
    let http = match &settings.http_proxy {
        Some(proxy) => serenity::HttpBuilder::new(token)
            .proxy(proxy.as_str())
            .ratelimiter_disabled(true)
            .build(),
        None => serenity::HttpBuilder::new(token).build(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    // One authenticated call first: a refused token is a sentence, not a gateway loop.
    tokio::select! {
        checked = check_token(&http) => checked?,
        () = until_stopped(stopped.clone()) => return Ok(()),
    }
    // Building the client already talks to Discord: a stop meanwhile ends the bot at once.
    let builder = serenity::ClientBuilder::new_with_http(http, serenity::GatewayIntents::GUILDS)
        .framework(framework);
    let mut client = tokio::select! {
        built = builder => built?,
        () = until_stopped(stopped.clone()) => return Ok(()),
    };
    let shards = client.shard_manager.clone();
    let running = client.start();
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => result?,
        () = until_stopped(stopped) => {
            // The gateway gets a clean close when Discord answers; an unreachable Discord
            // (connects that hang, retries that back off) must not keep the process alive.
            let close = async {
                shards.shutdown_all().await;
                (&mut running).await
            };
            match tokio::time::timeout(SHUTDOWN_GRACE, close).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(
                    "the gateway did not close within {} s; stopping without it",
                    SHUTDOWN_GRACE.as_secs()
                ),
            }
        }
    }
    Ok(())
}

/// Checks the token with `GET /users/@me`. Discord unreachable is logged once, with the cause
/// and when the next try is, and tried again with a backoff capped at a minute; a 401 is
/// [`BotError::TokenRefused`].
async fn check_token(http: &serenity::Http) -> Result<(), BotError> {
    let mut wait = Duration::from_secs(1);
    let mut failing = false;
    loop {
        // The HTTP client has no timeout of its own: a Discord that never answers would
        // otherwise keep this first call waiting, silently, for ever.
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, http.get_current_user())
            .await
            .unwrap_or(Err(serenity::Error::Other("no answer within 10 s")));
        match answer {
            Ok(user) => {
                if failing {
                    tracing::info!("Discord answers again");
                }
                tracing::debug!(user = %user.name, "the token is accepted");
                return Ok(());
            }
            Err(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)))
                if response.status_code == serenity::StatusCode::UNAUTHORIZED =>
            {
                return Err(BotError::TokenRefused);
            }
            Err(err) => {
                let cause = causes(&err);
                if failing {
                    tracing::debug!(
                        cause,
                        seconds = wait.as_secs(),
                        "Discord still does not answer"
                    );
                } else {
                    tracing::warn!(
                        "cannot reach Discord ({cause}); trying again in {} s, and with a growing wait (at most {} s) until it answers",
                        wait.as_secs(),
                        MAX_RETRY_WAIT.as_secs()
                    );
                    failing = true;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
        }
    }
}

/// An error and its sources, `: `-joined (serenity's own sentence for a failed request is only
/// "Error while sending HTTP request."; the cause, such as a failed DNS lookup, is beneath).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string().trim_end_matches('.').to_owned();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(next.trim_end_matches('.')) {
            text.push_str(": ");
            text.push_str(next.trim_end_matches('.'));
        }
        source = cause.source();
    }
    text
}

/// How long one try to reach Discord may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between two tries to reach Discord.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// How long a shutdown waits for the gateway connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives while the bot is still starting is kept,
/// and stops it as soon as it runs, instead of killing the process outright.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    tracing::warn!(
                        "cannot listen for SIGINT and SIGTERM; stop the bot with SIGKILL"
                    );
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
