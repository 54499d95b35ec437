//! A fake Discord for end-to-end tests (feature `testkit`): the real serenity client and poise
//! framework connect to it on 127.0.0.1, the test injects interactions and asserts on what the
//! bot answered.
//!
//! - REST (axum): the gateway URL, the current user and application, command registration
//!   (global and per guild), interaction callbacks, follow-ups and their edits. Every request
//!   is recorded ([`FakeDiscord::requests`]); a route the fake lacks answers 404, is printed,
//!   and listed by [`FakeDiscord::unhandled_requests`]. Answers Discord would refuse (a second
//!   callback for one interaction, a follow-up before the callback) are refused the same way.
//! - Direct messages: `POST /users/@me/channels` opens a user's DM channel (one per user), and
//!   `POST /channels/{id}/messages` there is recorded ([`FakeDiscord::direct_messages`],
//!   [`FakeDiscord::wait_direct_messages`]), or refused as for a user who closed their DMs
//!   ([`FakeDiscord::refuse_direct_messages_to`]).
//! - Gateway (tokio-tungstenite): HELLO, IDENTIFY -> READY, heartbeats, RESUME, and the
//!   `INTERACTION_CREATE` dispatches the test injects.
//! - Payloads: [`FakeDiscord::slash`], [`FakeDiscord::autocomplete`],
//!   [`FakeDiscord::submit_modal`] and [`FakeDiscord::press_button`] build complete
//!   interactions, checked against the commands the bot registered, and panic with serde's
//!   message if serenity could not parse them (serenity drops such events silently).
//! - Every wait takes a timeout and fails with [`FakeError`], naming what was awaited and
//!   listing what the fake saw instead.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use poise::serenity_prelude as serenity;
//! use stargazer_keys_commands::testkit::{Caller, FakeDiscord, SlashCommand};
//!
//! type Error = Box<dyn std::error::Error + Send + Sync>;
//!
//! /// Answers pong.
//! #[poise::command(slash_command)]
//! async fn ping(ctx: poise::Context<'_, (), Error>) -> Result<(), Error> {
//!     ctx.send(poise::CreateReply::default().content("pong").ephemeral(true)).await?;
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! const GUILD: u64 = 1_000_000_000_000_000_001;
//! let fake = FakeDiscord::start().await?;
//! let framework = poise::Framework::builder()
//!     .options(poise::FrameworkOptions { commands: vec![ping()], ..Default::default() })
//!     // Not `FrameworkOptions::initialize_owners`: the builder overwrites it with this.
//!     .initialize_owners(false)
//!     .setup(|ctx, _ready, framework| {
//!         Box::pin(async move {
//!             let guild = serenity::GuildId::new(GUILD);
//!             poise::builtins::register_in_guild(ctx, &framework.options().commands, guild).await?;
//!             Ok(())
//!         })
//!     })
//!     .build();
//! let http = serenity::HttpBuilder::new(fake.token())
//!     .proxy(fake.http_url())
//!     .ratelimiter_disabled(true)
//!     .build();
//! let mut client = serenity::ClientBuilder::new_with_http(http, serenity::GatewayIntents::non_privileged())
//!     .framework(framework)
//!     .await?;
//! let shards = client.shard_manager.clone();
//! tokio::spawn(async move { client.start().await });
//!
//! fake.wait_registered(Duration::from_secs(20)).await?;
//! let alice = Caller::in_guild(42, "alice", GUILD, 7);
//! let ping = fake.slash(&alice, SlashCommand::new("ping")).await?;
//! let reply = ping.callback(Duration::from_secs(5)).await?;
//! assert!(reply.is_ephemeral());
//! assert_eq!(reply.content(), Some("pong"));
//! shards.shutdown_all().await;
//! # Ok(())
//! # }
//! ```

mod bot;
mod gateway;
mod payloads;
mod records;
mod rest;
mod state;

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use bot::TestBot;
pub use payloads::{Caller, FALLBACK_COMMAND_ID, OptionValue, SlashCommand, validate_interaction};
pub use records::{
    Callback, CommandRegistration, CommandScope, DirectMessage, Followup, FollowupKind, ModalInput,
    RecordedRequest, ShownModal,
};

use state::{Injected, Shared};

/// The application id the fake reports (READY, `/oauth2/applications/@me`, webhooks).
pub const APPLICATION_ID: u64 = 1_233_000_000_000_000_001;
/// The bot user's id.
pub const BOT_USER_ID: u64 = 1_233_000_000_000_000_002;
/// The application owner `/oauth2/applications/@me` names (for `initialize_owners: true`).
pub const OWNER_USER_ID: u64 = 1_233_000_000_000_000_003;

/// How long an injection waits for the bot to hold a gateway session.
const SESSION_WAIT: Duration = Duration::from_secs(20);

/// Why a wait on the fake Discord ended without what it waited for.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Nothing matching arrived in time; the message lists what the fake saw instead.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// The test asked for something the bot never sent, such as a button that is not there.
    #[error("{0}")]
    NotFound(String),
}

/// Aborts the server tasks when the last clone of the [`FakeDiscord`] goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A fake Discord on 127.0.0.1: REST and gateway for a real serenity client. Cheap to clone;
/// the servers stop when the last clone is dropped.
#[derive(Clone)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDiscord")
            .field("http", &self.shared.http_addr)
            .field("gateway", &self.shared.gateway_addr)
            .finish()
    }
}

impl FakeDiscord {
    /// Starts the REST server and the gateway, each on a free port of 127.0.0.1.
    pub async fn start() -> io::Result<Self> {
        let http = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let gateway = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let shared = Arc::new(Shared::new(
            fake_token(),
            http.local_addr()?,
            gateway.local_addr()?,
        ));

        let router = rest::router(Arc::clone(&shared));
        let rest_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(http, router).await {
                eprintln!("fake Discord: the REST server stopped: {e}");
            }
        });
        let gateway_task = tokio::spawn(gateway::accept_loop(gateway, Arc::clone(&shared)));
        Ok(Self {
            shared,
            _tasks: Arc::new(Tasks(vec![rest_task, gateway_task])),
        })
    }

    /// The base URL for serenity's `HttpBuilder::proxy` (`http://127.0.0.1:PORT`): serenity
    /// replaces `https://discord.com` with it, so requests arrive as `/api/v10/...`. Use it
    /// with `.ratelimiter_disabled(true)`, without which serenity ignores the proxy.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.shared.http_addr)
    }

    /// The gateway URL `GET /gateway` reports (`ws://127.0.0.1:PORT`).
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.shared.gateway_addr)
    }

    /// The bot token the fake accepts (REST `Authorization` and gateway IDENTIFY).
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// [`APPLICATION_ID`].
    pub fn application_id(&self) -> u64 {
        APPLICATION_ID
    }

    /// [`BOT_USER_ID`].
    pub fn bot_user_id(&self) -> u64 {
        BOT_USER_ID
    }

    /// How long a modal submit or button press waits after the bot's last request on the
    /// interaction it follows up (default 150 ms). serenity registers a collector only after
    /// the REST calls that showed the modal or button return (a bot often also fetches the
    /// message to filter on its id), so an instant press would arrive before anyone listens and
    /// be lost; a human is never that fast.
    pub fn set_settle_delay(&self, delay: Duration) {
        self.shared
            .settle_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Waits until the bot has identified on the gateway and holds a live session.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), FakeError> {
        self.shared
            .wait_for(
                timeout,
                || "the bot did not identify on the fake gateway".to_owned(),
                |s| s.gateway.current.as_ref().map(|_| ()),
            )
            .await
    }

    /// How many times the bot identified (each gives a READY; resumes do not count).
    pub fn identify_count(&self) -> u32 {
        self.shared.read(|s| s.gateway.ready_count)
    }

    /// The last IDENTIFY payload (`d`), token removed.
    pub fn identify_payload(&self) -> Option<Value> {
        self.shared.read(|s| s.gateway.identify.clone())
    }

    /// The command sets registered so far, one per scope (a later `PUT` to a scope replaces
    /// its set), in the order of their latest registration.
    pub fn registered_commands(&self) -> Vec<CommandRegistration> {
        self.shared.read(|s| s.registrations.clone())
    }

    /// Waits for the first command registration and returns the registrations so far.
    pub async fn wait_registered(
        &self,
        timeout: Duration,
    ) -> Result<Vec<CommandRegistration>, FakeError> {
        self.shared
            .wait_for(
                timeout,
                || "the bot registered no commands".to_owned(),
                |s| (!s.registrations.is_empty()).then(|| s.registrations.clone()),
            )
            .await
    }

    /// Every REST request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.read(|s| s.requests.clone())
    }

    /// The requests no route of the fake matched (answered 404).
    pub fn unhandled_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .read(|s| s.requests.iter().filter(|r| !r.routed).cloned().collect())
    }

    /// Everything the fake found wrong, in order: unknown routes, refused callbacks, answers
    /// of its own that serenity would not parse, gateway misuse. Empty in a healthy test.
    pub fn problems(&self) -> Vec<String> {
        self.shared.read(|s| s.problems.clone())
    }

    /// Every interaction callback so far, in arrival order.
    pub fn callbacks(&self) -> Vec<Callback> {
        self.shared.read(|s| s.callbacks.clone())
    }

    /// Every webhook call (follow-ups, edits, deletions) so far, in arrival order.
    pub fn followups(&self) -> Vec<Followup> {
        self.shared.read(|s| s.followups.clone())
    }

    /// The DM channel of `user_id` with the bot, once the bot opened it (`POST
    /// /users/@me/channels`) or the user sent an interaction from a DM ([`Caller::in_dm`]'s
    /// channel). It stays the same for that user.
    pub fn dm_channel(&self, user_id: u64) -> Option<u64> {
        self.shared.read(|s| s.dm_channels.get(&user_id).copied())
    }

    /// Makes every message the bot sends to `user_id`'s DM channel fail from now on as Discord
    /// fails it for a user who closed their DMs or blocked the bot: 403, code 50007 "Cannot
    /// send messages to this user". Opening the channel still succeeds, as on Discord. The
    /// refused messages are not in [`FakeDiscord::direct_messages`]; they are in
    /// [`FakeDiscord::direct_message_attempts`], with `delivered` false.
    pub fn refuse_direct_messages_to(&self, user_id: u64) {
        self.shared.update(|s| s.dm_refused.insert(user_id));
    }

    /// The direct messages delivered so far (every user), in arrival order.
    pub fn direct_messages(&self) -> Vec<DirectMessage> {
        self.shared.read(|s| {
            s.direct_messages
                .iter()
                .filter(|m| m.delivered)
                .cloned()
                .collect()
        })
    }

    /// Every message the bot sent to a DM channel, delivered or refused
    /// ([`DirectMessage::delivered`]), in arrival order.
    pub fn direct_message_attempts(&self) -> Vec<DirectMessage> {
        self.shared.read(|s| s.direct_messages.clone())
    }

    /// Waits until `n` direct messages were delivered to `user_id`, and returns the first `n`,
    /// in order. Refused messages do not count.
    pub async fn wait_direct_messages(
        &self,
        user_id: u64,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<DirectMessage>, FakeError> {
        self.shared
            .wait_for(
                timeout,
                || format!("fewer than {n} direct messages delivered to user {user_id}"),
                |s| {
                    let theirs: Vec<DirectMessage> = s
                        .direct_messages
                        .iter()
                        .filter(|m| m.delivered && m.user_id == user_id)
                        .take(n)
                        .cloned()
                        .collect();
                    (theirs.len() == n).then_some(theirs)
                },
            )
            .await
    }

    /// The slash command interaction `caller` would send for `command`, without sending it:
    /// a base to alter for [`FakeDiscord::inject`]. Panics where Discord would never send it.
    pub fn slash_payload(&self, caller: &Caller, command: &SlashCommand) -> Value {
        self.command_payload(caller, command, false)
    }

    /// Invokes a slash command as `caller`. Option names and types are checked against the
    /// commands the bot registered (the registered id is used; [`FALLBACK_COMMAND_ID`] when the
    /// bot registered none by that name).
    ///
    /// # Panics
    ///
    /// When Discord would never send this interaction (unknown subcommand or option, missing
    /// required option, wrong option type), or serenity could not parse the payload.
    pub async fn slash(
        &self,
        caller: &Caller,
        command: SlashCommand,
    ) -> Result<InteractionHandle, FakeError> {
        let payload = self.slash_payload(caller, &command);
        self.send(payload, caller, None).await
    }

    /// Sends the autocomplete request (type 4) Discord makes while `caller` types the option
    /// marked with [`SlashCommand::focused`]; the bot's answer is a type 8 callback.
    ///
    /// # Panics
    ///
    /// As [`FakeDiscord::slash`], and when no option is focused or the focused option is not
    /// registered with autocomplete.
    pub async fn autocomplete(
        &self,
        caller: &Caller,
        command: SlashCommand,
    ) -> Result<InteractionHandle, FakeError> {
        let payload = self.command_payload(caller, &command, true);
        self.send(payload, caller, None).await
    }

    fn command_payload(
        &self,
        caller: &Caller,
        command: &SlashCommand,
        autocomplete: bool,
    ) -> Value {
        let id = self.shared.snowflake();
        let token = interaction_token(id);
        let kind = if autocomplete { 4 } else { 2 };
        // Cloned out so that a panic on a bad fixture never happens under the state lock.
        let registrations = self.registered_commands();
        let data = payloads::command_data(&registrations, caller, command, autocomplete);
        let mut payload = payloads::base_interaction(caller, kind, id, &token);
        payload.insert("data".into(), data);
        Value::Object(payload)
    }

    /// Submits the modal a type 9 callback showed, as `caller`, with `values` for its inputs in
    /// order (missing trailing values are left empty).
    ///
    /// # Panics
    ///
    /// When `modal` is not a modal callback, or Discord's client would refuse the values
    /// (a required input empty, a length out of bounds, more values than inputs).
    pub async fn submit_modal(
        &self,
        caller: &Caller,
        modal: &Callback,
        values: &[&str],
    ) -> Result<InteractionHandle, FakeError> {
        self.submit_modal_as(caller, modal, values, true).await
    }

    /// Submits a modal with values Discord's own client would refuse to send (an empty required
    /// input, a value over its maximum length): what a modified client or a direct API call can
    /// still deliver, so the bot's own checks are what stands.
    pub async fn submit_modal_unchecked(
        &self,
        caller: &Caller,
        modal: &Callback,
        values: &[&str],
    ) -> Result<InteractionHandle, FakeError> {
        self.submit_modal_as(caller, modal, values, false).await
    }

    async fn submit_modal_as(
        &self,
        caller: &Caller,
        modal: &Callback,
        values: &[&str],
        client_checks: bool,
    ) -> Result<InteractionHandle, FakeError> {
        let Some(shown) = modal.modal() else {
            panic!(
                "fake Discord: submit_modal needs a modal callback (type 9), got type {}: {}",
                modal.kind, modal.data
            );
        };
        self.settle(&modal.token).await;
        // A modal shown from a button carries that button's message; one from a command none.
        let message_id = self.shared.read(|s| {
            s.interactions
                .get(&modal.token)
                .filter(|i| i.kind == 3)
                .and_then(|i| i.message_id)
        });
        let id = self.shared.snowflake();
        let token = interaction_token(id);
        let mut payload = payloads::base_interaction(caller, 5, id, &token);
        payload.insert(
            "data".into(),
            payloads::modal_submit_data(&shown, values, client_checks),
        );
        if let Some(message) =
            message_id.and_then(|m| self.shared.read(|s| s.messages.get(&m).cloned()))
        {
            payload.insert("message".into(), message);
        }
        self.send(Value::Object(payload), caller, message_id).await
    }

    /// Presses, as `caller`, the button `custom_id` on a message the bot sent in answer to
    /// `on` (its callback message, or one of its follow-ups, as last edited).
    pub async fn press_button(
        &self,
        caller: &Caller,
        on: &InteractionHandle,
        custom_id: &str,
    ) -> Result<InteractionHandle, FakeError> {
        let found = self.shared.read(|s| {
            let mut ids: Vec<u64> = s.originals.get(&on.token).copied().into_iter().collect();
            ids.extend(
                s.token_followups
                    .get(&on.token)
                    .into_iter()
                    .flatten()
                    .copied(),
            );
            let mut seen = Vec::new();
            for id in ids {
                let Some(message) = s.messages.get(&id) else {
                    continue;
                };
                let buttons: Vec<&Value> = records::components(message)
                    .filter(|c| c["type"] == 2)
                    .collect();
                if let Some(button) = buttons.iter().find(|b| b["custom_id"] == custom_id) {
                    return Ok((id, message.clone(), button["disabled"] == true));
                }
                seen.extend(
                    buttons
                        .iter()
                        .filter_map(|b| b["custom_id"].as_str())
                        .map(str::to_owned),
                );
            }
            Err(seen)
        });
        let (message_id, message, disabled) = match found {
            Ok(found) => found,
            Err(seen) => {
                return Err(FakeError::NotFound(format!(
                    "no button `{custom_id}` on the messages answering interaction {} (buttons there: {seen:?})",
                    on.id
                )));
            }
        };
        if disabled {
            return Err(FakeError::NotFound(format!(
                "button `{custom_id}` is disabled; Discord would not send a press"
            )));
        }
        self.settle(&on.token).await;
        let id = self.shared.snowflake();
        let token = interaction_token(id);
        let mut payload = payloads::base_interaction(caller, 3, id, &token);
        payload.insert(
            "data".into(),
            serde_json::json!({ "custom_id": custom_id, "component_type": 2 }),
        );
        payload.insert("message".into(), message);
        self.send(Value::Object(payload), caller, Some(message_id))
            .await
    }

    /// Injects a raw `INTERACTION_CREATE` payload, for shapes the helpers do not build. Its
    /// `id`, `token` and `type` are read from the payload; pass a `caller` matching it so
    /// replies land in the right channel.
    ///
    /// # Panics
    ///
    /// When serenity could not parse `payload` (see [`validate_interaction`]).
    pub async fn inject(
        &self,
        caller: &Caller,
        payload: Value,
    ) -> Result<InteractionHandle, FakeError> {
        let message_id = payload["message"]["id"]
            .as_str()
            .and_then(|m| m.parse().ok());
        self.send(payload, caller, message_id).await
    }

    /// Makes the next dispatch skip `count` sequence numbers (its `s` is the last one sent plus
    /// `count + 1`), as when the bot missed events: serenity warns "Sequence off" while it
    /// handles that dispatch, and handles it all the same.
    pub fn skip_sequence_numbers(&self, count: u64) {
        gateway::skip_sequence_numbers(&self.shared, count);
    }

    /// Asks the bot to reconnect (gateway op 7); serenity reconnects and resumes, and
    /// injections wait until it has.
    pub fn request_reconnect(&self) {
        gateway::request_reconnect(&self.shared);
    }

    /// Answers every IDENTIFY from now on by closing the gateway with `code` (4004
    /// authentication failed, 4013 invalid intents, 4014 disallowed intents, ...).
    pub fn refuse_identify_with(&self, code: u16) {
        self.shared
            .update(|s| s.gateway.refuse_identify = Some(code));
    }

    /// Waits until the bot has been quiet on `token` for the settle delay (giving up on
    /// quiet after 20 rounds, for a bot that never stops calling).
    async fn settle(&self, token: &str) {
        let mut waited_for = None;
        for _ in 0..20 {
            let last = self.shared.read(|s| s.last_activity.get(token).copied());
            if last.is_none() || last == waited_for {
                return;
            }
            waited_for = last;
            if let Some(last) = last {
                tokio::time::sleep_until((last + self.shared.settle_delay()).into()).await;
            }
        }
    }

    async fn send(
        &self,
        payload: Value,
        caller: &Caller,
        message_id: Option<u64>,
    ) -> Result<InteractionHandle, FakeError> {
        payloads::assert_valid(&payload);
        let id = payload["id"]
            .as_str()
            .and_then(|i| i.parse().ok())
            .unwrap_or_default();
        let token = payload["token"].as_str().unwrap_or_default().to_owned();
        let kind = payload["type"].as_u64().unwrap_or_default();
        self.shared.update(|s| {
            if let Some(m) = message_id {
                s.originals.insert(token.clone(), m);
            }
            // Discord has one DM channel per user and bot: the one this user writes from.
            if caller.guild_id().is_none() {
                s.dm_channels
                    .entry(caller.user_id())
                    .or_insert(caller.channel_id());
            }
            s.interactions.insert(
                token.clone(),
                Injected {
                    id,
                    kind,
                    caller: caller.clone(),
                    message_id,
                    acknowledged: false,
                },
            );
        });
        gateway::dispatch(&self.shared, "INTERACTION_CREATE", &payload, SESSION_WAIT).await?;
        Ok(InteractionHandle {
            fake: self.clone(),
            id,
            token,
        })
    }
}

/// An interaction the test injected: await what the bot answered to it.
#[derive(Clone, Debug)]
pub struct InteractionHandle {
    fake: FakeDiscord,
    id: u64,
    token: String,
}

impl InteractionHandle {
    /// The interaction id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The interaction token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Waits for the bot's callback to this interaction.
    pub async fn callback(&self, timeout: Duration) -> Result<Callback, FakeError> {
        let token = self.token.clone();
        self.fake
            .shared
            .wait_for(
                timeout,
                || format!("no callback for interaction {}", self.id),
                |s| s.callbacks.iter().find(|c| c.token == token).cloned(),
            )
            .await
    }

    /// Waits until `n` follow-ups, edits or deletions were made on this interaction's token,
    /// and returns the first `n`, in order.
    pub async fn followups(&self, timeout: Duration, n: usize) -> Result<Vec<Followup>, FakeError> {
        let token = self.token.clone();
        self.fake
            .shared
            .wait_for(
                timeout,
                || {
                    format!(
                        "fewer than {n} follow-ups or edits for interaction {}",
                        self.id
                    )
                },
                |s| {
                    let mine: Vec<Followup> = s
                        .followups
                        .iter()
                        .filter(|f| f.token == token)
                        .take(n)
                        .cloned()
                        .collect();
                    (mine.len() == n).then_some(mine)
                },
            )
            .await
    }

    /// The message `@original` names for this interaction now (after edits), as serenity
    /// would receive it from `GET .../messages/@original`.
    pub fn original_message(&self) -> Option<Value> {
        self.fake.shared.read(|s| {
            s.originals
                .get(&self.token)
                .and_then(|m| s.messages.get(m))
                .cloned()
        })
    }
}

fn interaction_token(id: u64) -> String {
    format!("fake-interaction-token-{id}")
}

/// A token shaped like Discord's (base64 user id, timestamp, HMAC), so validation passes.
fn fake_token() -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.ZmFrZQ.{}",
        engine.encode(BOT_USER_ID.to_string()),
        engine.encode("fake-discord-token-hmac")
    )
}
