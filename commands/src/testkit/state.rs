//! The state the REST side, the gateway side and the test share, and the one way to wait on it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::FakeError;
use super::payloads::Caller;
use super::records::{
    Callback, CommandRegistration, CommandScope, DirectMessage, Followup, RecordedRequest,
};

/// Milliseconds from the Unix epoch to Discord's (2015-01-01), for snowflakes.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

pub(crate) struct Shared {
    pub(crate) token: String,
    pub(crate) http_addr: SocketAddr,
    pub(crate) gateway_addr: SocketAddr,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    next_snowflake: AtomicU64,
    pub(crate) settle_delay_ms: AtomicU64,
}

/// An interaction the test injected, by token.
#[derive(Clone, Debug)]
pub(crate) struct Injected {
    pub(crate) id: u64,
    /// Interaction type: 2 command, 3 component, 4 autocomplete, 5 modal submit.
    pub(crate) kind: u64,
    pub(crate) caller: Caller,
    /// The message a component was on (its `@original` until a type 4 callback replaces it).
    pub(crate) message_id: Option<u64>,
    pub(crate) acknowledged: bool,
}

#[derive(Default)]
pub(crate) struct GatewayState {
    /// The connection that identified or resumed last: its id and its outgoing frames.
    pub(crate) current: Option<(u64, mpsc::UnboundedSender<WsMessage>)>,
    pub(crate) session_id: Option<String>,
    pub(crate) seq: u64,
    pub(crate) ready_count: u32,
    /// The last IDENTIFY's `d`, token removed.
    pub(crate) identify: Option<Value>,
    /// A close code every IDENTIFY is answered with, instead of READY.
    pub(crate) refuse_identify: Option<u16>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) problems: Vec<String>,
    pub(crate) registrations: Vec<CommandRegistration>,
    pub(crate) callbacks: Vec<Callback>,
    pub(crate) followups: Vec<Followup>,
    /// Message id -> full Message JSON, as serenity parses it.
    pub(crate) messages: HashMap<u64, Value>,
    /// Interaction token -> the message `@original` names.
    pub(crate) originals: HashMap<String, u64>,
    /// Interaction token -> follow-up message ids.
    pub(crate) token_followups: HashMap<String, Vec<u64>>,
    pub(crate) interactions: HashMap<String, Injected>,
    /// Interaction token -> when the bot last called a route with it (callback or webhook).
    pub(crate) last_activity: HashMap<String, Instant>,
    /// User id -> their DM channel with the bot (opened by `POST /users/@me/channels`, or the
    /// channel of an interaction the user sent from a DM).
    pub(crate) dm_channels: HashMap<u64, u64>,
    /// Users whose DM channel refuses the bot's messages (code 50007).
    pub(crate) dm_refused: HashSet<u64>,
    /// Every message sent to a DM channel, delivered or refused, in arrival order.
    pub(crate) direct_messages: Vec<DirectMessage>,
    pub(crate) gateway: GatewayState,
}

impl State {
    pub(crate) fn registration(&self, scope: CommandScope) -> Option<&CommandRegistration> {
        self.registrations.iter().find(|r| r.scope == scope)
    }

    /// The user whose DM channel `channel_id` is, if it is one.
    pub(crate) fn dm_recipient(&self, channel_id: u64) -> Option<u64> {
        self.dm_channels
            .iter()
            .find(|(_, channel)| **channel == channel_id)
            .map(|(user, _)| *user)
    }

    /// The name of a user the test made interact (as its [`Caller`]), if any did.
    pub(crate) fn user_name(&self, user_id: u64) -> Option<String> {
        self.interactions
            .values()
            .find(|i| i.caller.user_id() == user_id)
            .map(|i| i.caller.name().to_owned())
    }

    /// What a timeout message shows: the problems and the last requests.
    pub(crate) fn summary(&self) -> String {
        const SHOWN: usize = 25;
        let mut out = String::new();
        for problem in &self.problems {
            let _ = writeln!(out, "  problem: {problem}");
        }
        let skipped = self.requests.len().saturating_sub(SHOWN);
        if skipped > 0 {
            let _ = writeln!(out, "  ... {skipped} earlier requests");
        }
        for r in &self.requests[skipped..] {
            let _ = writeln!(out, "  {} {} -> {}", r.method, r.path, r.status);
        }
        if self.requests.is_empty() {
            out.push_str("  (no requests)\n");
        }
        let gateway = match (&self.gateway.current, self.gateway.ready_count) {
            (Some(_), _) => "connected",
            (None, 0) => "never identified",
            (None, _) => "disconnected",
        };
        let _ = write!(out, "  gateway: {gateway}, seq {}", self.gateway.seq);
        out
    }
}

impl Shared {
    pub(crate) fn new(token: String, http_addr: SocketAddr, gateway_addr: SocketAddr) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            token,
            http_addr,
            gateway_addr,
            state: Mutex::new(State::default()),
            changed: watch::Sender::new(0),
            next_snowflake: AtomicU64::new(now_ms.saturating_sub(DISCORD_EPOCH_MS) << 22),
            settle_delay_ms: AtomicU64::new(150),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what was recorded before it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the state and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let out = f(&mut self.lock());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        out
    }

    /// Reads or changes the state without waking waiters (for changes nobody waits on).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    /// A fresh, increasing id in Discord's snowflake format.
    pub(crate) fn snowflake(&self) -> u64 {
        self.next_snowflake.fetch_add(1, Ordering::Relaxed)
    }

    /// Records something the test author should know about, and prints it at once: serenity
    /// often reacts to a fake's mistake by waiting forever.
    pub(crate) fn problem(&self, message: String) {
        eprintln!("fake Discord: {message}");
        self.update(|s| s.problems.push(message));
    }

    pub(crate) fn settle_delay(&self) -> Duration {
        Duration::from_millis(self.settle_delay_ms.load(Ordering::Relaxed))
    }

    /// Waits until `check` returns `Some`, re-checking after every change, for at most
    /// `timeout`. The error names `what` and shows what the fake saw.
    pub(crate) async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, FakeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(&mut self.lock()) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self`, so it cannot close while we borrow it.
                Ok(Err(_)) | Err(_) => {
                    let summary = self.lock().summary();
                    return Err(FakeError::TimedOut(format!(
                        "{} within {timeout:?}; what the fake saw:\n{summary}",
                        what()
                    )));
                }
            }
        }
    }
}
