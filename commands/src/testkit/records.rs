//! What the fake Discord saw the bot do: requests, registrations, interaction callbacks,
//! webhook calls and direct messages, with small predicates for the assertions tests make most
//! often.

use serde_json::Value;

/// One HTTP request the bot sent to the fake REST API, whatever its route.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent, e.g. `/api/v10/interactions/123/tok/callback`.
    pub path: String,
    /// The JSON body (for a multipart request, its `payload_json` part), if there was one.
    pub body: Option<Value>,
    /// The whole body as text (lossy UTF-8), for leak checks that must see everything.
    pub raw_body: String,
    /// The status the fake answered with.
    pub status: u16,
    /// False when no route of the fake matched (it answered 404): a route the fake lacks, or a
    /// request Discord would not know either.
    pub routed: bool,
}

impl RecordedRequest {
    /// True when `needle` occurs anywhere in the path or the body.
    pub fn contains(&self, needle: &str) -> bool {
        self.path.contains(needle) || self.raw_body.contains(needle)
    }
}

/// Where a set of application commands was registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandScope {
    /// `PUT /applications/{app}/commands`.
    Global,
    /// `PUT /applications/{app}/guilds/{guild}/commands`.
    Guild(u64),
}

/// The commands registered in one scope, as the fake answered them (each with its `id`,
/// `application_id`, `version`, `type`, ...). A later `PUT` to the same scope replaces it.
#[derive(Clone, Debug)]
pub struct CommandRegistration {
    /// Global or one guild.
    pub scope: CommandScope,
    /// The command objects, in the order the bot sent them.
    pub commands: Vec<Value>,
}

impl CommandRegistration {
    /// The top-level command names.
    pub fn names(&self) -> Vec<&str> {
        self.commands
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect()
    }

    /// The command object named `name`, if registered here.
    pub fn command(&self, name: &str) -> Option<&Value> {
        self.commands.iter().find(|c| c["name"] == name)
    }
}

/// The bot's answer to one interaction: the body of `POST /interactions/{id}/{token}/callback`.
#[derive(Clone, Debug)]
pub struct Callback {
    /// The interaction answered.
    pub interaction_id: u64,
    /// That interaction's token.
    pub token: String,
    /// The callback type: 4 message, 5 deferred message, 6 deferred update, 7 update message,
    /// 8 autocomplete result, 9 modal.
    pub kind: u64,
    /// The callback's `data` (`Value::Null` when absent).
    pub data: Value,
}

impl Callback {
    /// A message (type 4) or deferred message (type 5) only the caller sees (flag 64).
    pub fn is_ephemeral(&self) -> bool {
        matches!(self.kind, 4 | 5) && flags(&self.data) & EPHEMERAL != 0
    }

    /// The bot showed a modal (type 9).
    pub fn is_modal(&self) -> bool {
        self.kind == 9
    }

    /// The bot deferred: "thinking..." (type 5) or a silent acknowledgement (type 6).
    pub fn is_deferred(&self) -> bool {
        matches!(self.kind, 5 | 6)
    }

    /// The bot updated the message a component was on (type 7).
    pub fn is_update(&self) -> bool {
        self.kind == 7
    }

    /// The message text of a type 4 or 7 callback.
    pub fn content(&self) -> Option<&str> {
        self.data["content"].as_str()
    }

    /// The autocomplete choices (type 8) as `(name, value)`.
    pub fn choices(&self) -> Vec<(String, Value)> {
        self.data["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["value"].clone(),
                )
            })
            .collect()
    }

    /// The modal the bot showed (type 9), with its text inputs in order.
    pub fn modal(&self) -> Option<ShownModal> {
        if !self.is_modal() {
            return None;
        }
        let inputs = components(&self.data)
            .filter(|c| c["type"] == 4)
            .map(|c| ModalInput {
                custom_id: c["custom_id"].as_str().unwrap_or_default().to_owned(),
                label: c["label"].as_str().unwrap_or_default().to_owned(),
                required: c["required"].as_bool().unwrap_or(true),
                min_length: c["min_length"].as_u64(),
                max_length: c["max_length"].as_u64(),
                paragraph: c["style"] == 2,
            })
            .collect();
        Some(ShownModal {
            interaction_id: self.interaction_id,
            custom_id: self.data["custom_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            title: self.data["title"].as_str().unwrap_or_default().to_owned(),
            inputs,
        })
    }

    /// The `custom_id`s of the buttons and select menus in a type 4 or 7 message.
    pub fn custom_ids(&self) -> Vec<String> {
        custom_ids(&self.data)
    }
}

/// What a webhook call on an interaction token did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowupKind {
    /// `POST /webhooks/{app}/{token}`: a new follow-up message.
    Create,
    /// `PATCH .../messages/@original`.
    EditOriginal,
    /// `PATCH .../messages/{id}`.
    Edit(u64),
    /// `DELETE .../messages/@original`.
    DeleteOriginal,
    /// `DELETE .../messages/{id}`.
    Delete(u64),
}

/// A follow-up message, or an edit or deletion of a message, on one interaction token.
#[derive(Clone, Debug)]
pub struct Followup {
    /// The interaction token used.
    pub token: String,
    /// Create, edit or delete.
    pub kind: FollowupKind,
    /// The message created, edited or deleted, when the fake knew it.
    pub message_id: Option<u64>,
    /// The request body (`Value::Null` for deletions).
    pub body: Value,
}

impl Followup {
    /// A new follow-up only the caller sees (flag 64). Edits keep the original's visibility, and
    /// so does the first follow-up after a deferred response, which replaces the "thinking..."
    /// message: ask the callback ([`Callback::is_ephemeral`]) then.
    pub fn is_ephemeral(&self) -> bool {
        flags(&self.body) & EPHEMERAL != 0
    }

    /// The message text sent or set by this call.
    pub fn content(&self) -> Option<&str> {
        self.body["content"].as_str()
    }

    /// The `custom_id`s of the buttons and select menus in the body.
    pub fn custom_ids(&self) -> Vec<String> {
        custom_ids(&self.body)
    }
}

/// One `POST /channels/{channel_id}/messages` the bot sent to a user's DM channel: a message
/// Discord delivered, or one it refused because the user does not accept direct messages
/// ([`FakeDiscord::refuse_direct_messages_to`](super::FakeDiscord::refuse_direct_messages_to)).
#[derive(Clone, Debug)]
pub struct DirectMessage {
    /// The user the DM channel belongs to.
    pub user_id: u64,
    /// The DM channel the message was sent to.
    pub channel_id: u64,
    /// The id of the message created; `None` when Discord refused it.
    pub message_id: Option<u64>,
    /// False when Discord refused the message (403, code 50007): the user never saw it.
    pub delivered: bool,
    /// The request body (for a multipart request, its `payload_json` part).
    pub body: Value,
}

impl DirectMessage {
    /// The message text sent.
    pub fn content(&self) -> Option<&str> {
        self.body["content"].as_str()
    }

    /// The `custom_id`s of the buttons and select menus in the message.
    pub fn custom_ids(&self) -> Vec<String> {
        custom_ids(&self.body)
    }
}

/// A modal the bot showed, read from its type 9 callback.
#[derive(Clone, Debug)]
pub struct ShownModal {
    /// The interaction the modal answered.
    pub interaction_id: u64,
    /// The modal's `custom_id` (poise and serenity use the interaction id).
    pub custom_id: String,
    /// The title the user sees.
    pub title: String,
    /// Its text inputs, in order.
    pub inputs: Vec<ModalInput>,
}

/// One text input of a [`ShownModal`].
#[derive(Clone, Debug)]
pub struct ModalInput {
    /// The input's `custom_id` (`"0"`, `"1"`, ... for serenity's quick modals).
    pub custom_id: String,
    /// Its label.
    pub label: String,
    /// Discord refuses to submit the modal while a required input is empty.
    pub required: bool,
    /// Minimum length Discord enforces, if set.
    pub min_length: Option<u64>,
    /// Maximum length Discord enforces, if set.
    pub max_length: Option<u64>,
    /// A paragraph (multi-line) input rather than a short one.
    pub paragraph: bool,
}

/// The `flags` bit of an ephemeral message.
pub(crate) const EPHEMERAL: u64 = 1 << 6;
/// The `flags` bit of a deferred ("thinking...") message.
pub(crate) const LOADING: u64 = 1 << 7;

pub(crate) fn flags(message: &Value) -> u64 {
    message["flags"].as_u64().unwrap_or(0)
}

/// The components inside the action rows of a message or modal.
pub(crate) fn components(message: &Value) -> impl Iterator<Item = &Value> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
}

pub(crate) fn custom_ids(message: &Value) -> Vec<String> {
    components(message)
        .filter_map(|c| c["custom_id"].as_str())
        .map(str::to_owned)
        .collect()
}
