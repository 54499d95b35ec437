//! Complete interaction payloads, as Discord sends them and serenity 0.12.5 parses them, and
//! the Discord objects (users, members, messages) they are made of.

use poise::serenity_prelude as serenity;
use serde_json::{Map, Value, json};
use serenity::Permissions;
use serenity::model::permissions::PRESET_GENERAL;

use super::APPLICATION_ID;
use super::records::{CommandRegistration, CommandScope, LOADING, ShownModal};

/// The command id used when the bot did not register the command invoked.
pub const FALLBACK_COMMAND_ID: u64 = 1_233_000_000_000_000_100;

/// A `joined_at` for every member: any valid timestamp will do.
const JOINED_AT: &str = "2024-01-01T00:00:00.000000+00:00";
/// What Discord allows a bot to upload without boosts (10 MiB).
const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// Who triggers an interaction, and where: a member in a guild channel, or a user in a DM.
///
/// ```
/// use poise::serenity_prelude::Permissions;
/// use stargazer_keys_commands::testkit::Caller;
///
/// let admin = Caller::in_guild(10, "ada", 20, 30).with_permissions(Permissions::MANAGE_CHANNELS);
/// let dm = Caller::in_dm(11, "bob", 31);
/// assert_eq!(admin.guild_id(), Some(20));
/// assert_eq!(dm.guild_id(), None);
/// ```
#[derive(Clone, Debug)]
pub struct Caller {
    user_id: u64,
    name: String,
    guild_id: Option<u64>,
    channel_id: u64,
    permissions: Permissions,
    app_permissions: Permissions,
    roles: Vec<u64>,
    locale: String,
    guild_locale: String,
}

impl Caller {
    /// A member of guild `guild_id` in its text channel `channel_id`, with an everyday member's
    /// permissions there (serenity's `PRESET_GENERAL`: no `MANAGE_*`, no `ADMINISTRATOR`).
    pub fn in_guild(user_id: u64, name: &str, guild_id: u64, channel_id: u64) -> Self {
        Self {
            user_id,
            name: name.to_owned(),
            guild_id: Some(guild_id),
            channel_id,
            permissions: PRESET_GENERAL,
            app_permissions: PRESET_GENERAL,
            roles: Vec::new(),
            locale: "en-US".to_owned(),
            guild_locale: "en-US".to_owned(),
        }
    }

    /// A user in their DM channel `channel_id` with the bot: no guild, no member.
    pub fn in_dm(user_id: u64, name: &str, channel_id: u64) -> Self {
        Self {
            guild_id: None,
            ..Self::in_guild(user_id, name, 0, channel_id)
        }
    }

    /// Sets exactly the caller's permissions in the channel (`member.permissions`, which
    /// Discord resolves per channel). Add `PRESET_GENERAL` yourself to keep the everyday ones.
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Sets the bot's permissions in the channel (`app_permissions`).
    pub fn with_app_permissions(mut self, permissions: Permissions) -> Self {
        self.app_permissions = permissions;
        self
    }

    /// Sets the member's role ids.
    pub fn with_roles(mut self, roles: &[u64]) -> Self {
        self.roles = roles.to_vec();
        self
    }

    /// Sets the user's client locale (default `en-US`).
    pub fn with_locale(mut self, locale: &str) -> Self {
        self.locale = locale.to_owned();
        self
    }

    /// Sets the server's preferred locale, sent as `guild_locale` (default `en-US`; a DM
    /// sends none).
    pub fn with_guild_locale(mut self, locale: &str) -> Self {
        self.guild_locale = locale.to_owned();
        self
    }

    /// The user's id.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// The guild, or `None` in a DM.
    pub fn guild_id(&self) -> Option<u64> {
        self.guild_id
    }

    /// The channel the interaction comes from.
    pub fn channel_id(&self) -> u64 {
        self.channel_id
    }

    /// The user's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The value of one slash command option.
///
/// Built with `.into()` from `&str`, `String`, `i32`, `i64`, `u32`, `f64` and `bool`. When the
/// bot registered the command, the fake checks the value against the registered option type;
/// for an option with choices, a string naming a choice stands for that choice's value.
/// User, channel, role and attachment options need `resolved` data the fake does not build:
/// send such a payload with [`FakeDiscord::inject`](super::FakeDiscord::inject).
#[derive(Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// Option type 3.
    String(String),
    /// Option type 4.
    Integer(i64),
    /// Option type 10.
    Number(f64),
    /// Option type 5.
    Boolean(bool),
}

impl From<&str> for OptionValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for OptionValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for OptionValue {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}

impl From<i32> for OptionValue {
    fn from(value: i32) -> Self {
        Self::Integer(value.into())
    }
}

impl From<u32> for OptionValue {
    fn from(value: u32) -> Self {
        Self::Integer(value.into())
    }
}

impl From<f64> for OptionValue {
    fn from(value: f64) -> Self {
        Self::Number(value)
    }
}

impl From<bool> for OptionValue {
    fn from(value: bool) -> Self {
        Self::Boolean(value)
    }
}

impl OptionValue {
    fn natural_type(&self) -> u64 {
        match self {
            Self::String(_) => 3,
            Self::Integer(_) => 4,
            Self::Boolean(_) => 5,
            Self::Number(_) => 10,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::String(s) => json!(s),
            Self::Integer(i) => json!(i),
            Self::Number(n) => json!(n),
            Self::Boolean(b) => json!(b),
        }
    }
}

/// A slash command invocation: the command path, its options and, for autocomplete, the option
/// being typed.
///
/// ```
/// use stargazer_keys_commands::testkit::SlashCommand;
///
/// let add = SlashCommand::new("pool channel add").option("service", "openrouter");
/// let same = SlashCommand::from_path(&["pool", "channel", "add"]).option("service", "openrouter");
/// let typing = SlashCommand::new("set_user_api_key").focused("service", "open");
/// # let _ = (add, same, typing);
/// ```
#[derive(Clone, Debug)]
pub struct SlashCommand {
    path: Vec<String>,
    options: Vec<(String, OptionValue)>,
    focused: Option<(String, String)>,
}

impl SlashCommand {
    /// The command and its subcommand group and subcommand, separated by spaces, as a user
    /// types them: `"ping"`, `"pool add"`, `"pool channel add"`.
    pub fn new(path: &str) -> Self {
        Self::from_path(&path.split_whitespace().collect::<Vec<_>>())
    }

    /// The same from its segments: `&["pool", "channel", "add"]`.
    pub fn from_path(path: &[&str]) -> Self {
        assert!(
            (1..=3).contains(&path.len()),
            "a slash command path has 1 to 3 segments (command, group, subcommand), got {path:?}"
        );
        Self {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            options: Vec::new(),
            focused: None,
        }
    }

    /// Adds an option of the (innermost) subcommand.
    pub fn option(mut self, name: &str, value: impl Into<OptionValue>) -> Self {
        self.options.push((name.to_owned(), value.into()));
        self
    }

    /// Marks option `name` as the one being typed, with what was typed so far (Discord sends
    /// the partial value as a string whatever the option's type). Only for autocomplete.
    pub fn focused(mut self, name: &str, partial: &str) -> Self {
        self.focused = Some((name.to_owned(), partial.to_owned()));
        self
    }

    pub(crate) fn name(&self) -> &str {
        &self.path[0]
    }

    pub(crate) fn display(&self) -> String {
        format!("/{}", self.path.join(" "))
    }
}

/// A Discord user object.
pub(crate) fn user_json(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(),
        "username": name,
        "discriminator": "0",
        "global_name": if bot { Value::Null } else { json!(name) },
        "avatar": null,
        "bot": bot,
        "public_flags": 0,
        "flags": 0,
    })
}

fn member_json(caller: &Caller) -> Value {
    json!({
        "user": user_json(caller.user_id, &caller.name, false),
        "nick": null,
        "avatar": null,
        "roles": caller.roles.iter().map(u64::to_string).collect::<Vec<_>>(),
        "joined_at": JOINED_AT,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "permissions": caller.permissions.bits().to_string(),
        "communication_disabled_until": null,
    })
}

/// The fields every interaction type shares: ids, token, caller, channel, locale.
pub(crate) fn base_interaction(
    caller: &Caller,
    kind: u64,
    id: u64,
    token: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id.to_string()));
    m.insert("application_id".into(), json!(APPLICATION_ID.to_string()));
    m.insert("type".into(), json!(kind));
    m.insert("token".into(), json!(token));
    m.insert("version".into(), json!(1));
    m.insert("channel_id".into(), json!(caller.channel_id.to_string()));
    m.insert("locale".into(), json!(caller.locale));
    m.insert("entitlements".into(), json!([]));
    m.insert("attachment_size_limit".into(), json!(ATTACHMENT_SIZE_LIMIT));
    m.insert(
        "app_permissions".into(),
        json!(caller.app_permissions.bits().to_string()),
    );
    match caller.guild_id {
        Some(guild_id) => {
            m.insert("guild_id".into(), json!(guild_id.to_string()));
            m.insert("guild_locale".into(), json!(caller.guild_locale));
            m.insert("member".into(), member_json(caller));
            m.insert(
                "channel".into(),
                json!({
                    "id": caller.channel_id.to_string(),
                    "type": 0,
                    "guild_id": guild_id.to_string(),
                    "name": "general",
                    "position": 0,
                    "flags": 0,
                    "parent_id": null,
                    "nsfw": false,
                    "permissions": caller.permissions.bits().to_string(),
                }),
            );
            m.insert("context".into(), json!(0));
            m.insert(
                "authorizing_integration_owners".into(),
                json!({ "0": guild_id.to_string() }),
            );
        }
        None => {
            let user = user_json(caller.user_id, &caller.name, false);
            m.insert(
                "channel".into(),
                json!({
                    "id": caller.channel_id.to_string(),
                    "type": 1,
                    "flags": 0,
                    "recipients": [user.clone()],
                }),
            );
            m.insert("user".into(), user);
            m.insert("context".into(), json!(1));
            // A guild-installed app used in a DM: Discord sends guild id "0".
            m.insert("authorizing_integration_owners".into(), json!({ "0": "0" }));
        }
    }
    m
}

/// The registered command `name` visible to `caller`: its JSON and whether it is a guild command.
fn find_registered<'a>(
    registrations: &'a [CommandRegistration],
    caller: &Caller,
    name: &str,
) -> Option<(&'a Value, bool)> {
    let in_scope = |scope: CommandScope| {
        registrations
            .iter()
            .find(|r| r.scope == scope)
            .and_then(|r| r.command(name))
    };
    let in_guild = caller
        .guild_id
        .and_then(|g| in_scope(CommandScope::Guild(g)));
    in_guild
        .map(|c| (c, true))
        .or_else(|| in_scope(CommandScope::Global).map(|c| (c, false)))
}

fn registered_elsewhere(registrations: &[CommandRegistration], name: &str) -> Vec<String> {
    registrations
        .iter()
        .filter(|r| r.command(name).is_some())
        .map(|r| match r.scope {
            CommandScope::Global => "globally".to_owned(),
            CommandScope::Guild(g) => format!("in guild {g}"),
        })
        .collect()
}

fn option_names(options: &[Value]) -> String {
    let names: Vec<&str> = options.iter().filter_map(|o| o["name"].as_str()).collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// The `data` of a command (type 2) or autocomplete (type 4) interaction. Checked against the
/// registration when the bot registered the command; panics, naming the mistake, where
/// Discord would never send such an interaction.
pub(crate) fn command_data(
    registrations: &[CommandRegistration],
    caller: &Caller,
    cmd: &SlashCommand,
    autocomplete: bool,
) -> Value {
    let shown = cmd.display();
    let registered = find_registered(registrations, caller, cmd.name());
    if registered.is_none() {
        let elsewhere = registered_elsewhere(registrations, cmd.name());
        assert!(
            elsewhere.is_empty(),
            "fake Discord: {shown} is registered only {}, so the caller (guild {:?}) cannot see it",
            elsewhere.join(" and "),
            caller.guild_id
        );
    }
    if autocomplete {
        assert!(
            cmd.focused.is_some(),
            "fake Discord: an autocomplete interaction needs `.focused(name, partial)`"
        );
    } else {
        assert!(
            cmd.focused.is_none(),
            "fake Discord: `.focused(..)` belongs to autocomplete, not to {shown}"
        );
    }

    // Walk the subcommand path down the registered option tree.
    let mut level: Option<Vec<Value>> =
        registered.map(|(c, _)| c["options"].as_array().cloned().unwrap_or_default());
    for (depth, segment) in cmd.path.iter().enumerate().skip(1) {
        if let Some(options) = &level {
            let found = options.iter().find(|o| {
                o["name"] == segment.as_str() && matches!(o["type"].as_u64(), Some(1 | 2))
            });
            let Some(found) = found else {
                panic!(
                    "fake Discord: /{} has no subcommand `{segment}` (it has: {})",
                    cmd.path[..depth].join(" "),
                    option_names(options)
                );
            };
            level = Some(found["options"].as_array().cloned().unwrap_or_default());
        }
    }
    if let Some(options) = &level {
        let subcommands: Vec<&Value> = options
            .iter()
            .filter(|o| matches!(o["type"].as_u64(), Some(1 | 2)))
            .collect();
        assert!(
            subcommands.is_empty(),
            "fake Discord: {shown} cannot be run itself, it needs a subcommand (one of: {})",
            subcommands
                .iter()
                .filter_map(|o| o["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let mut leaf: Vec<Value> = Vec::new();
    for (name, value) in &cmd.options {
        let (kind, value) = match &level {
            Some(options) => {
                let Some(reg) = options.iter().find(|o| o["name"] == name.as_str()) else {
                    panic!(
                        "fake Discord: {shown} has no option `{name}` (it takes: {})",
                        option_names(options)
                    );
                };
                coerce(&shown, name, reg, value)
            }
            None => (value.natural_type(), value.to_json()),
        };
        leaf.push(json!({ "name": name, "type": kind, "value": value }));
    }
    if let Some((name, partial)) = &cmd.focused {
        let kind = match &level {
            Some(options) => {
                let Some(reg) = options.iter().find(|o| o["name"] == name.as_str()) else {
                    panic!(
                        "fake Discord: {shown} has no option `{name}` (it takes: {})",
                        option_names(options)
                    );
                };
                assert!(
                    reg["autocomplete"] == true,
                    "fake Discord: option `{name}` of {shown} is not registered with autocomplete, so Discord would never ask"
                );
                reg["type"].as_u64().unwrap_or(3)
            }
            None => 3,
        };
        leaf.retain(|o| o["name"] != name.as_str());
        leaf.push(json!({ "name": name, "type": kind, "value": partial, "focused": true }));
    } else if let Some(options) = &level {
        for reg in options.iter().filter(|o| o["required"] == true) {
            let name = reg["name"].as_str().unwrap_or_default();
            assert!(
                cmd.options.iter().any(|(n, _)| n == name),
                "fake Discord: {shown} misses its required option `{name}`; Discord would not send it"
            );
        }
    }

    // Wrap the leaf options in the subcommand and group, innermost first.
    let mut options = leaf;
    for (depth, segment) in cmd.path.iter().enumerate().skip(1).rev() {
        let kind = if depth == cmd.path.len() - 1 { 1 } else { 2 };
        options = vec![json!({ "name": segment, "type": kind, "options": options })];
    }

    let mut data = json!({
        "id": registered
            .and_then(|(c, _)| c["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| FALLBACK_COMMAND_ID.to_string()),
        "name": cmd.name(),
        "type": 1,
        "options": options,
    });
    if let (Some((_, true)), Some(guild_id)) = (registered, caller.guild_id) {
        data["guild_id"] = json!(guild_id.to_string());
    }
    data
}

/// The option type and JSON value Discord would send for `value` given the registration `reg`.
fn coerce(shown: &str, name: &str, reg: &Value, value: &OptionValue) -> (u64, Value) {
    let kind = reg["type"].as_u64().unwrap_or(3);
    if let (OptionValue::String(s), Some(choices)) = (value, reg["choices"].as_array())
        && let Some(choice) = choices.iter().find(|c| c["name"] == s.as_str())
    {
        return (kind, choice["value"].clone());
    }
    let json = match (kind, value) {
        (3, OptionValue::String(_))
        | (4, OptionValue::Integer(_))
        | (5, OptionValue::Boolean(_))
        | (10, OptionValue::Number(_) | OptionValue::Integer(_)) => value.to_json(),
        (3 | 4 | 5 | 10, _) => panic!(
            "fake Discord: option `{name}` of {shown} is registered as type {kind} ({}), but the test gave {value:?}",
            option_type_name(kind)
        ),
        _ => panic!(
            "fake Discord: option `{name}` of {shown} has type {kind} ({}), which needs `resolved` data this \
             helper does not build; send the payload with FakeDiscord::inject",
            option_type_name(kind)
        ),
    };
    (kind, json)
}

fn option_type_name(kind: u64) -> &'static str {
    match kind {
        3 => "string",
        4 => "integer",
        5 => "boolean",
        6 => "user",
        7 => "channel",
        8 => "role",
        9 => "mentionable",
        10 => "number",
        11 => "attachment",
        _ => "unknown",
    }
}

/// The `data` of a modal submit answering `modal` with `values`, in input order. With
/// `client_checks`, panics where Discord's client would refuse to submit.
pub(crate) fn modal_submit_data(modal: &ShownModal, values: &[&str], client_checks: bool) -> Value {
    assert!(
        values.len() <= modal.inputs.len(),
        "fake Discord: {} values for modal {:?}, which has {} inputs",
        values.len(),
        modal.title,
        modal.inputs.len()
    );
    let rows: Vec<Value> = modal
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let value = values.get(i).copied().unwrap_or("");
            let len = value.chars().count() as u64;
            assert!(
                !(client_checks && input.required && value.is_empty()),
                "fake Discord: input {i} ({:?}) of modal {:?} is required; Discord would not submit it empty",
                input.label,
                modal.title
            );
            if client_checks && !value.is_empty() {
                assert!(
                    input.min_length.is_none_or(|min| len >= min) && input.max_length.is_none_or(|max| len <= max),
                    "fake Discord: input {i} ({:?}) of modal {:?} takes {:?}..={:?} characters, got {len}; \
                     Discord would not submit it",
                    input.label,
                    modal.title,
                    input.min_length,
                    input.max_length
                );
            }
            json!({
                "type": 1,
                "components": [{ "type": 4, "custom_id": input.custom_id, "value": value }],
            })
        })
        .collect();
    json!({ "custom_id": modal.custom_id, "components": rows })
}

/// Why serenity would drop this `INTERACTION_CREATE` payload, if it would.
///
/// serenity logs and drops an event it cannot parse, so a broken fixture looks like a bot that
/// never answers. Every injection of [`FakeDiscord`](super::FakeDiscord) runs this first.
///
/// ```
/// use serde_json::json;
/// use stargazer_keys_commands::testkit::validate_interaction;
///
/// let err = validate_interaction(&json!({ "type": 2, "id": "1" })).unwrap_err();
/// assert!(err.contains("missing field"), "{err}");
/// ```
pub fn validate_interaction(payload: &Value) -> Result<(), String> {
    serde_json::from_value::<serenity::Interaction>(payload.clone()).map_err(|e| e.to_string())?;
    let frame = json!({ "op": 0, "s": 1, "t": "INTERACTION_CREATE", "d": payload });
    match serde_json::from_value::<serenity::GatewayEvent>(frame) {
        Ok(serenity::GatewayEvent::Dispatch(_, serenity::Event::InteractionCreate(_))) => Ok(()),
        Ok(other) => Err(format!(
            "the gateway frame parses as {other:?}, not INTERACTION_CREATE"
        )),
        Err(e) => Err(format!("the gateway frame does not parse: {e}")),
    }
}

/// Panics with the serde error when serenity could not parse `payload`.
pub(crate) fn assert_valid(payload: &Value) {
    if let Err(e) = validate_interaction(payload) {
        panic!(
            "fake Discord: serenity cannot parse this INTERACTION_CREATE payload and would drop it \
             silently: {e}\npayload: {payload:#}"
        );
    }
}

/// What goes into a stored message from a callback's `data` or a webhook body.
pub(crate) struct MessageParts<'a> {
    pub(crate) id: u64,
    pub(crate) channel_id: u64,
    pub(crate) body: &'a Value,
    /// Message type: 20 for a slash command's reply, 0 otherwise.
    pub(crate) kind: u64,
    pub(crate) extra_flags: u64,
    pub(crate) interaction: Option<(u64, u64, &'a Caller)>,
}

/// A full Message object, as Discord returns it for interaction responses and follow-ups.
pub(crate) fn message_json(bot_id: u64, parts: MessageParts<'_>) -> Value {
    let body = parts.body;
    let mut message = json!({
        "id": parts.id.to_string(),
        "channel_id": parts.channel_id.to_string(),
        "author": user_json(bot_id, "fake-bot", true),
        "content": body["content"].as_str().unwrap_or_default(),
        "timestamp": now_timestamp(),
        "edited_timestamp": null,
        "tts": body["tts"].as_bool().unwrap_or(false),
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": body["embeds"].as_array().cloned().unwrap_or_default(),
        "components": body["components"].as_array().cloned().unwrap_or_default(),
        "pinned": false,
        "type": parts.kind,
        "flags": super::records::flags(body) | parts.extra_flags,
        "webhook_id": APPLICATION_ID.to_string(),
        "application_id": APPLICATION_ID.to_string(),
    });
    if let Some((interaction_id, interaction_type, caller)) = parts.interaction {
        message["interaction_metadata"] = json!({
            "id": interaction_id.to_string(),
            "type": interaction_type,
            "user": user_json(caller.user_id, &caller.name, false),
            "authorizing_integration_owners": match caller.guild_id {
                Some(g) => json!({ "0": g.to_string() }),
                None => json!({ "0": "0" }),
            },
        });
    }
    message
}

/// A message the bot posted in a DM channel with `POST /channels/{id}/messages`: no guild, no
/// webhook, no interaction.
pub(crate) fn channel_message_json(bot_id: u64, id: u64, channel_id: u64, body: &Value) -> Value {
    let mut message = message_json(
        bot_id,
        MessageParts {
            id,
            channel_id,
            body,
            kind: 0,
            extra_flags: 0,
            interaction: None,
        },
    );
    if let Some(map) = message.as_object_mut() {
        map.remove("webhook_id");
        map.remove("application_id");
    }
    message
}

/// A DM channel (type 1) between the bot and `recipient`, as `POST /users/@me/channels`
/// answers it.
pub(crate) fn dm_channel_json(channel_id: u64, recipient: Value) -> Value {
    json!({
        "id": channel_id.to_string(),
        "type": 1,
        "last_message_id": null,
        "flags": 0,
        "recipients": [recipient],
    })
}

/// Applies an edit body to a stored message: the fields Discord lets an edit change.
pub(crate) fn apply_edit(message: &mut Value, body: &Value) {
    for field in ["content", "embeds", "components"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            message[field] = v.clone();
        }
    }
    // The first edit of a deferred ("thinking...") message ends the loading state.
    let flags = super::records::flags(message);
    if flags & LOADING != 0 {
        message["flags"] = json!(flags & !LOADING);
    } else {
        message["edited_timestamp"] = json!(now_timestamp());
    }
}

fn now_timestamp() -> String {
    serenity::Timestamp::now().to_string()
}
