//! A sibling command module built on stargazer-keys: `/web_search query` searches the web with
//! Brave Search using the caller's own key, or a shared one within the daily limit.
//!
//! The whole pattern is the call to [`KeyContext::with_api_key_reporting`]: resolve the key
//! (user -> channel pool -> global pool -> environment), reserve a use of the shared-key quota
//! when it applies, run the request, count the use only when it succeeded, tell the vault what
//! the answer means for a pooled key (429 with its Retry-After, 402, 401/403: the key is
//! benched and the next calls draw another), and turn a missing key or a spent quota into the
//! sentence the user should see.
//!
//! Run it as a bot with the key commands beside it:
//! `cargo run -p stargazer-keys-commands --example web_search` (same settings as
//! `stargazer-keys bot`; `BRAVE_API_BASE_URL` points the search elsewhere, e.g. a test double).

use serde::Deserialize;
use stargazer_keys::KeyOutcome;
use stargazer_keys_commands::{CommandError, Context, HasKeyVault, KeyContext, KeyFailure};

/// The tool name the shared-key quota counts.
const TOOL: &str = "web_search";
/// The catalogue service whose key it uses.
const SERVICE: &str = "brave";

/// Search the web with Brave Search.
#[poise::command(slash_command)]
pub async fn web_search<U: HasKeyVault, E: From<CommandError>>(
    ctx: Context<'_, U, E>,
    #[description = "What to search for"] query: String,
) -> Result<(), E> {
    // Acknowledge first: the search may take longer than Discord's 3 seconds.
    ctx.defer_ephemeral().await.map_err(CommandError::from)?;
    let keys = KeyContext::from_poise(ctx);
    let base_url = keys
        .vault()
        .config()
        .env
        .get("BRAVE_API_BASE_URL")
        .unwrap_or("https://api.search.brave.com")
        .to_owned();
    let outcome = keys
        .with_api_key_reporting(SERVICE, TOOL, |resolved| async move {
            brave_search(&base_url, resolved.key.expose(), &query).await
        })
        .await;
    // A missing key, a spent quota and a failed call each come with their user-facing sentence.
    let text = match outcome {
        Ok(results) if results.is_empty() => "No results.".to_owned(),
        Ok(results) => results
            .iter()
            .take(5)
            .map(|r| format!("• [{}](<{}>)", r.title, r.url))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => err.to_string(),
    };
    ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
        .await
        .map_err(CommandError::from)?;
    Ok(())
}

/// One search result.
#[derive(Debug, Deserialize)]
pub struct SearchResult {
    /// The page title.
    pub title: String,
    /// The page URL.
    pub url: String,
}

#[derive(Deserialize)]
struct BraveResponse {
    web: Option<BraveWeb>,
}

#[derive(Deserialize)]
struct BraveWeb {
    results: Vec<SearchResult>,
}

/// Why a search failed; never holds the key (it travels in a header, not the URL).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Brave answered with an error status (and, for a 429, maybe a Retry-After).
    #[error("Brave Search answered {status}; please try again later.")]
    Status {
        /// The status.
        status: reqwest::StatusCode,
        /// The Retry-After header, when sent.
        retry_after: Option<String>,
    },
    /// Brave could not be reached or answered something unexpected.
    #[error("Brave Search could not be reached; please try again later.")]
    Unreachable,
}

impl KeyFailure for SearchError {
    /// 429 (with Retry-After), 402 and 401/403 are about the key; the rest are not.
    fn key_outcome(&self) -> KeyOutcome {
        match self {
            SearchError::Status {
                status,
                retry_after,
            } => KeyOutcome::from_http_status(status.as_u16(), retry_after.as_deref()),
            SearchError::Unreachable => KeyOutcome::Inconclusive,
        }
    }
}

/// Calls the Brave Search API at `base` (`https://api.search.brave.com` in production).
pub async fn brave_search(
    base: &str,
    key: &str,
    query: &str,
) -> Result<Vec<SearchResult>, SearchError> {
    let response = reqwest::Client::new()
        .get(format!("{}/res/v1/web/search", base.trim_end_matches('/')))
        .query(&[("q", query)])
        .header("X-Subscription-Token", key)
        .header("Accept", "application/json")
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|_| SearchError::Unreachable)?;
    if !response.status().is_success() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Err(SearchError::Status {
            status: response.status(),
            retry_after,
        });
    }
    let body: BraveResponse = response
        .json()
        .await
        .map_err(|_| SearchError::Unreachable)?;
    Ok(body.web.map(|web| web.results).unwrap_or_default())
}

#[allow(
    dead_code,
    reason = "the end-to-end tests include this file without its main"
)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tracing_subscriber::prelude::*;
    // The host's own subscriber, with the one call that keeps the keys typed into modals out of
    // every log (serenity's gateway spans carry whole events).
    tracing_subscriber::registry()
        .with(stargazer_keys_commands::logging::secret_safe_filter())
        .with(tracing_subscriber::fmt::layer())
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = stargazer_keys::Config::from_env()?;
    let settings = stargazer_keys_commands::bot::BotSettings::from_config(&config)?;
    let vault = stargazer_keys::KeyVault::open(config).await?;
    stargazer_keys_commands::bot::run(
        settings,
        vault,
        vec![web_search()],
        stargazer_keys_commands::bot::shutdown_signal(),
    )
    .await?;
    Ok(())
}
