//! The fake REST API: the routes a poise bot uses (and direct messages), answered with JSON
//! serenity parses; every request recorded; anything else a loud 404.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use poise::serenity_prelude as serenity;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::payloads::{self, MessageParts};
use super::records::{
    Callback, CommandRegistration, CommandScope, DirectMessage, Followup, FollowupKind, LOADING,
    RecordedRequest, flags,
};
use super::state::{Shared, State};
use super::{APPLICATION_ID, BOT_USER_ID, OWNER_USER_ID};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What a route answers.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    routed: bool,
}

impl Reply {
    fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            routed: true,
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            routed: true,
        }
    }

    /// A Discord-style JSON error.
    fn error(status: StatusCode, code: u64, message: &str) -> Self {
        Self {
            status,
            body: Some(json!({ "code": code, "message": message })),
            routed: true,
        }
    }

    fn unknown_interaction() -> Self {
        Self::error(StatusCode::NOT_FOUND, 10062, "Unknown interaction")
    }

    fn unknown_webhook() -> Self {
        Self::error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
    }

    fn unknown_message() -> Self {
        Self::error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
    }

    fn unknown_channel() -> Self {
        Self::error(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let json_body = parse_body(&headers, &raw_body);

    let reply = route(&shared, &method, uri.path(), &headers, json_body.as_ref());
    if !reply.routed {
        shared.problem(format!(
            "no route for {method} {path_and_query}; answered 404 (add the route to the fake if the bot needs it)"
        ));
    }
    shared.update(|s| {
        if let Some(token) = interaction_token_in(uri.path()) {
            s.last_activity.insert(token.to_owned(), Instant::now());
        }
        s.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path_and_query,
            body: json_body,
            raw_body,
            status: reply.status.as_u16(),
            routed: reply.routed,
        });
    });
    match reply.body {
        Some(body) => (reply.status, axum::Json(body)).into_response(),
        None => reply.status.into_response(),
    }
}

/// The interaction token of a callback or webhook path.
fn interaction_token_in(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/v10/interactions/")
        .or_else(|| path.strip_prefix("/api/v10/webhooks/"))?;
    rest.split('/').nth(1)
}

/// The JSON body, or the `payload_json` part of a multipart body (messages with attachments).
fn parse_body(headers: &HeaderMap, raw: &str) -> Option<Value> {
    if raw.is_empty() {
        return None;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/") {
        let part = raw.split("name=\"payload_json\"").nth(1)?;
        let start = part.find("\r\n\r\n")? + 4;
        let end = part[start..]
            .find("\r\n--")
            .map_or(part.len(), |e| start + e);
        return serde_json::from_str(&part[start..end]).ok();
    }
    serde_json::from_str(raw).ok()
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Reply {
    let not_found = Reply {
        status: StatusCode::NOT_FOUND,
        body: Some(json!({ "code": 0, "message": "404: Not Found" })),
        routed: false,
    };
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return not_found;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let app = APPLICATION_ID.to_string();

    // Interaction callbacks and webhooks are authorised by their token; the rest by the bot's.
    let token_routes = matches!(segments.first(), Some(&("interactions" | "webhooks")));
    if !token_routes {
        let expected = format!("Bot {}", shared.token);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            shared.problem(format!(
                "{method} {path} without the bot token in Authorization; answered 401"
            ));
            return Reply::error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }

    let null = Value::Null;
    let body = body.unwrap_or(&null);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["gateway"]) => Reply::json(json!({ "url": gateway_url(shared) })),
        ("GET", ["gateway", "bot"]) => Reply::json(checked::<serenity::BotGateway>(
            shared,
            "GET /gateway/bot",
            json!({
                "url": gateway_url(shared),
                "shards": 1,
                "session_start_limit": { "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1 },
            }),
        )),
        ("GET", ["oauth2", "applications", "@me"]) => {
            Reply::json(checked::<serenity::CurrentApplicationInfo>(
                shared,
                "GET /oauth2/applications/@me",
                application_json(),
            ))
        }
        ("GET", ["users", "@me"]) => {
            Reply::json(payloads::user_json(BOT_USER_ID, "fake-bot", true))
        }
        ("PUT", ["applications", a, "commands"]) if *a == app => {
            register(shared, CommandScope::Global, body)
        }
        ("GET", ["applications", a, "commands"]) if *a == app => {
            list_commands(shared, CommandScope::Global)
        }
        ("PUT", ["applications", a, "guilds", guild, "commands"]) if *a == app => {
            match guild.parse() {
                Ok(guild) => register(shared, CommandScope::Guild(guild), body),
                Err(_) => not_found,
            }
        }
        ("GET", ["applications", a, "guilds", guild, "commands"]) if *a == app => {
            match guild.parse() {
                Ok(guild) => list_commands(shared, CommandScope::Guild(guild)),
                Err(_) => not_found,
            }
        }
        ("POST", ["interactions", id, token, "callback"]) => match id.parse() {
            Ok(id) => callback(shared, id, token, body),
            Err(_) => Reply::unknown_interaction(),
        },
        ("POST", ["webhooks", a, token]) if *a == app => create_followup(shared, token, body),
        (m @ ("GET" | "PATCH" | "DELETE"), ["webhooks", a, token, "messages", message])
            if *a == app =>
        {
            webhook_message(shared, m, token, message, body)
        }
        (_, ["webhooks", ..]) => Reply::unknown_webhook(),
        ("POST", ["users", "@me", "channels"]) => open_dm_channel(shared, body),
        ("POST", ["channels", channel, "messages"]) => match channel.parse() {
            Ok(channel) => send_channel_message(shared, channel, body),
            Err(_) => Reply::unknown_channel(),
        },
        _ => not_found,
    }
}

fn gateway_url(shared: &Shared) -> String {
    format!("ws://{}", shared.gateway_addr)
}

fn application_json() -> Value {
    json!({
        "id": APPLICATION_ID.to_string(),
        "name": "fake-bot",
        "icon": null,
        "description": "A bot under test, talking to a fake Discord.",
        "rpc_origins": [],
        "bot_public": false,
        "bot_require_code_grant": false,
        "owner": payloads::user_json(OWNER_USER_ID, "owner", false),
        "verify_key": "0000000000000000000000000000000000000000000000000000000000000000",
        "team": null,
        "flags": 0,
        "bot": payloads::user_json(BOT_USER_ID, "fake-bot", true),
    })
}

/// Returns `value`, after checking that serenity parses it as `T`; a failure is a bug of the
/// fake and is reported as a problem (serenity would fail in a way that looks unrelated).
fn checked<T: DeserializeOwned>(shared: &Shared, what: &str, value: Value) -> Value {
    if let Err(e) = serde_json::from_value::<T>(value.clone()) {
        shared.problem(format!(
            "the fake's answer to {what} does not parse as serenity's {}: {e}",
            std::any::type_name::<T>()
        ));
    }
    value
}

/// Answers a bulk overwrite with the commands as Discord stores them, each with its id.
fn register(shared: &Shared, scope: CommandScope, body: &Value) -> Reply {
    let Some(sent) = body.as_array() else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: expected an array of commands",
        );
    };
    let commands: Vec<Value> = shared.read(|s| {
        let previous = s
            .registration(scope)
            .map(|r| r.commands.clone())
            .unwrap_or_default();
        sent.iter()
            .map(|command| {
                // Discord keeps a command's id when it is overwritten under the same name.
                let id = previous
                    .iter()
                    .find(|p| p["name"] == command["name"])
                    .and_then(|p| p["id"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| shared.snowflake().to_string());
                stored_command(command, &id, shared.snowflake(), scope)
            })
            .collect()
    });
    let commands = checked::<Vec<serenity::Command>>(
        shared,
        "the command registration",
        Value::from(commands),
    );
    let list = commands.as_array().cloned().unwrap_or_default();
    shared.update(|s| {
        s.registrations.retain(|r| r.scope != scope);
        s.registrations.push(CommandRegistration {
            scope,
            commands: list,
        });
    });
    Reply::json(commands)
}

/// A command object as Discord returns it: the sent fields plus the ones Discord fills in.
fn stored_command(sent: &Value, id: &str, version: u64, scope: CommandScope) -> Value {
    let mut command = sent.clone();
    let defaults = [
        ("type", json!(1)),
        ("description", json!("")),
        ("options", json!([])),
        ("default_member_permissions", Value::Null),
        ("nsfw", json!(false)),
        ("integration_types", json!([0])),
        ("contexts", Value::Null),
    ];
    if let Some(map) = command.as_object_mut() {
        // serenity's builder sends `null` for unset fields Discord answers with a default.
        map.retain(|_, v| !v.is_null());
        for (field, default) in defaults {
            map.entry(field).or_insert(default);
        }
        map.insert("id".into(), json!(id));
        map.insert("application_id".into(), json!(APPLICATION_ID.to_string()));
        map.insert("version".into(), json!(version.to_string()));
        if let CommandScope::Guild(guild) = scope {
            map.insert("guild_id".into(), json!(guild.to_string()));
        }
    }
    command
}

fn list_commands(shared: &Shared, scope: CommandScope) -> Reply {
    Reply::json(Value::from(shared.read(|s| {
        s.registration(scope)
            .map(|r| r.commands.clone())
            .unwrap_or_default()
    })))
}

/// The interaction response: validated as Discord would, recorded, and turned into messages.
fn callback(shared: &Shared, id: u64, token: &str, body: &Value) -> Reply {
    let kind = body["type"].as_u64().unwrap_or(0);
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let outcome = shared.update(|s| {
        let Some(injected) = s.interactions.get(token).filter(|i| i.id == id).cloned() else {
            return Err(Reply::unknown_interaction());
        };
        if injected.acknowledged {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                40060,
                "Interaction has already been acknowledged.",
            ));
        }
        let allowed = match injected.kind {
            4 => kind == 8,
            2 => matches!(kind, 4 | 5 | 9),
            3 => matches!(kind, 4..=7 | 9),
            5 if injected.message_id.is_some() => matches!(kind, 4..=7),
            5 => matches!(kind, 4..=6),
            _ => false,
        };
        if !allowed {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                50035,
                &format!(
                    "Invalid Form Body: callback type {kind} cannot answer interaction type {}",
                    injected.kind
                ),
            ));
        }
        if let Some(i) = s.interactions.get_mut(token) {
            i.acknowledged = true;
        }
        s.callbacks.push(Callback {
            interaction_id: id,
            token: token.to_owned(),
            kind,
            data: data.clone(),
        });
        match kind {
            4 | 5 => {
                let message_id = shared.snowflake();
                let message = payloads::message_json(
                    BOT_USER_ID,
                    MessageParts {
                        id: message_id,
                        channel_id: injected.caller.channel_id(),
                        body: &data,
                        kind: if injected.kind == 2 { 20 } else { 0 },
                        extra_flags: if kind == 5 { LOADING } else { 0 },
                        interaction: Some((id, injected.kind, &injected.caller)),
                    },
                );
                s.messages.insert(message_id, message);
                s.originals.insert(token.to_owned(), message_id);
            }
            7 => {
                if let Some(message) = injected.message_id.and_then(|m| s.messages.get_mut(&m)) {
                    payloads::apply_edit(message, &data);
                }
            }
            _ => {}
        }
        Ok(())
    });
    match outcome {
        Ok(()) => Reply::no_content(),
        Err(reply) => {
            let message = reply
                .body
                .as_ref()
                .map(|b| b["message"].to_string())
                .unwrap_or_default();
            shared.problem(format!(
                "callback type {kind} for interaction {id} refused as Discord would: {} {message}",
                reply.status.as_u16()
            ));
            reply
        }
    }
}

fn create_followup(shared: &Shared, token: &str, body: &Value) -> Reply {
    let created = shared.update(|s| {
        let injected = s
            .interactions
            .get(token)
            .filter(|i| i.acknowledged)
            .cloned()?;
        // After a deferred response, the first follow-up replaces the "thinking..." message.
        let loading = s
            .originals
            .get(token)
            .copied()
            .filter(|id| s.messages.get(id).is_some_and(|m| flags(m) & LOADING != 0));
        if let Some(message_id) = loading {
            let stored = s.messages.get_mut(&message_id)?;
            payloads::apply_edit(stored, body);
            let message = stored.clone();
            s.followups.push(Followup {
                token: token.to_owned(),
                kind: FollowupKind::Create,
                message_id: Some(message_id),
                body: body.clone(),
            });
            return Some(message);
        }
        let message_id = shared.snowflake();
        let message = payloads::message_json(
            BOT_USER_ID,
            MessageParts {
                id: message_id,
                channel_id: injected.caller.channel_id(),
                body,
                kind: 0,
                extra_flags: 0,
                interaction: Some((injected.id, injected.kind, &injected.caller)),
            },
        );
        s.messages.insert(message_id, message.clone());
        s.token_followups
            .entry(token.to_owned())
            .or_default()
            .push(message_id);
        s.followups.push(Followup {
            token: token.to_owned(),
            kind: FollowupKind::Create,
            message_id: Some(message_id),
            body: body.clone(),
        });
        Some(message)
    });
    match created {
        Some(message) => Reply::json(checked::<serenity::Message>(
            shared,
            "a follow-up message",
            message,
        )),
        None => {
            shared.problem(format!(
                "follow-up on token {token} before the interaction was acknowledged (or for an unknown \
                 interaction); answered 404 Unknown Webhook as Discord does"
            ));
            Reply::unknown_webhook()
        }
    }
}

/// `GET|PATCH|DELETE /webhooks/{app}/{token}/messages/{@original|id}`.
fn webhook_message(
    shared: &Shared,
    method: &str,
    token: &str,
    message: &str,
    body: &Value,
) -> Reply {
    let original = message == "@original";
    let outcome = shared.update(|s| {
        let message_id = resolve_message(s, token, message)?;
        let kind = match (method, original) {
            ("GET", _) => return s.messages.get(&message_id).cloned().map(Some),
            ("PATCH", true) => FollowupKind::EditOriginal,
            ("PATCH", false) => FollowupKind::Edit(message_id),
            (_, true) => FollowupKind::DeleteOriginal,
            (_, false) => FollowupKind::Delete(message_id),
        };
        s.followups.push(Followup {
            token: token.to_owned(),
            kind,
            message_id: Some(message_id),
            body: body.clone(),
        });
        if method == "DELETE" {
            s.messages.remove(&message_id);
            return Some(None);
        }
        let stored = s.messages.get_mut(&message_id)?;
        payloads::apply_edit(stored, body);
        Some(Some(stored.clone()))
    });
    match outcome {
        Some(Some(message)) => Reply::json(checked::<serenity::Message>(
            shared,
            "an interaction message",
            message,
        )),
        Some(None) => Reply::no_content(),
        None => Reply::unknown_message(),
    }
}

/// The id of the message `@original` or `id` names on this token, if it exists.
fn resolve_message(s: &State, token: &str, message: &str) -> Option<u64> {
    let id = if message == "@original" {
        *s.originals.get(token)?
    } else {
        let id = message.parse().ok()?;
        s.token_followups.get(token)?.contains(&id).then_some(id)?
    };
    s.messages.contains_key(&id).then_some(id)
}

/// `POST /users/@me/channels`: the DM channel with `recipient_id`, opened on first use and the
/// same ever after.
fn open_dm_channel(shared: &Shared, body: &Value) -> Reply {
    // serenity sends the id as a string; Discord takes a number too.
    let recipient = match &body["recipient_id"] {
        Value::String(id) => id.parse::<u64>().ok(),
        id => id.as_u64(),
    };
    let Some(user_id) = recipient else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: recipient_id must be a snowflake",
        );
    };
    let (channel_id, name) = shared.update(|s| {
        let channel_id = *s
            .dm_channels
            .entry(user_id)
            .or_insert_with(|| shared.snowflake());
        let name = s
            .user_name(user_id)
            .unwrap_or_else(|| format!("user-{user_id}"));
        (channel_id, name)
    });
    let recipient = payloads::user_json(user_id, &name, false);
    Reply::json(checked::<serenity::PrivateChannel>(
        shared,
        "POST /users/@me/channels",
        payloads::dm_channel_json(channel_id, recipient),
    ))
}

/// `POST /channels/{id}/messages`, for the DM channels the fake knows: recorded as a
/// [`DirectMessage`], delivered unless the user refuses DMs. The fake knows no guild channel.
fn send_channel_message(shared: &Shared, channel_id: u64, body: &Value) -> Reply {
    let sent = shared.update(|s| {
        let user_id = s.dm_recipient(channel_id)?;
        let delivered = !s.dm_refused.contains(&user_id);
        let message_id = delivered.then(|| shared.snowflake());
        s.direct_messages.push(DirectMessage {
            user_id,
            channel_id,
            message_id,
            delivered,
            body: body.clone(),
        });
        Some(message_id)
    });
    match sent {
        Some(Some(message_id)) => Reply::json(checked::<serenity::Message>(
            shared,
            "a direct message",
            payloads::channel_message_json(BOT_USER_ID, message_id, channel_id, body),
        )),
        Some(None) => Reply::error(
            StatusCode::FORBIDDEN,
            50007,
            "Cannot send messages to this user",
        ),
        None => {
            shared.problem(format!(
                "POST /channels/{channel_id}/messages: the fake knows no such channel (only the DM \
                 channels of `POST /users/@me/channels` and of DM callers); answered 404 Unknown Channel"
            ));
            Reply::unknown_channel()
        }
    }
}
