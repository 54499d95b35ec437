//! Logging that cannot leak a secret, whatever `RUST_LOG` says.
//!
//! serenity records whole gateway events (a modal submit's values included) as fields of its
//! INFO-level `handle_event` span, logs undecodable payloads at WARN, and its HTTP spans carry
//! request bodies; websocket and HTTP crates log frames at TRACE. So, enforced in code: no
//! serenity span is ever recorded, serenity's gateway logs only errors, and the transport crates
//! log at INFO at most.
//!
//! A host bot that embeds the commands keeps its own subscriber and adds this with one call,
//! [`secret_safe_filter`]; without it, serenity's gateway spans put a modal's key into the host's
//! logs as soon as anything is logged inside them (serenity's own "Sequence off" warning, for
//! one).

use std::io::{self, IsTerminal as _};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterFn, LevelFilter};
use tracing_subscriber::prelude::*;

/// Transport crates whose DEBUG and TRACE logs may show raw frames or bodies.
const TRANSPORT: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "rustls",
];

/// Whether a span or event may be recorded at all (on top of `RUST_LOG`).
pub fn is_secret_safe(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    if target.starts_with("serenity") {
        if meta.is_span() {
            return false;
        }
        if target.starts_with("serenity::gateway") && *meta.level() != Level::ERROR {
            return false;
        }
    }
    if TRANSPORT
        .iter()
        .any(|t| target == *t || (target.starts_with(t) && target[t.len()..].starts_with("::")))
    {
        return *meta.level() <= Level::INFO;
    }
    true
}

/// The filter of [`secret_safe_filter`]: drops what [`is_secret_safe`] refuses.
pub type SecretSafeFilter = FilterFn<fn(&Metadata<'_>) -> bool>;

/// The filter that keeps secrets out of a host bot's logs, whatever else the host logs and at
/// whatever level: no serenity span, serenity's gateway only at ERROR, transport crates at INFO
/// at most ([`is_secret_safe`]).
///
/// Add it to the host's own subscriber as a layer, and it filters every layer of it (a per-layer
/// filter, `layer.with_filter(secret_safe_filter())`, works too):
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// tracing_subscriber::registry()
///     .with(stargazer_keys_commands::logging::secret_safe_filter())
///     .with(tracing_subscriber::fmt::layer())
///     .with(tracing_subscriber::EnvFilter::from_default_env())
///     .init();
/// ```
pub fn secret_safe_filter() -> SecretSafeFilter {
    FilterFn::new(is_secret_safe as fn(&Metadata<'_>) -> bool)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`) and by [`is_secret_safe`].
pub fn init() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let _ = tracing_subscriber::registry()
        .with(layer(io::stderr, filter))
        .try_init();
}

/// The bot's log layer: `writer`, filtered by `filter` and, whatever it says, by
/// [`is_secret_safe`]. Tests capture the logs with their own writer this way.
pub fn layer<S, W>(writer: W, filter: EnvFilter) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(io::stderr().is_terminal())
        .with_filter(secret_safe_filter())
        .with_filter(filter)
}
