//! The fake gateway: HELLO, IDENTIFY -> READY, RESUME -> RESUMED, heartbeats, and dispatches
//! the test injects. Frames are plain JSON text; serenity asks for payload compression
//! (`compress: true` in IDENTIFY), which lets a server compress, never requires it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::payloads;
use super::state::Shared;
use super::{APPLICATION_ID, BOT_USER_ID, FakeError};

/// What HELLO tells the client; serenity heartbeats at this pace (with jitter).
const HEARTBEAT_INTERVAL_MS: u64 = 41_250;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) ends every connection with it.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(stream, Arc::clone(&shared)));
    }
}

fn frame(value: &Value) -> WsMessage {
    WsMessage::Text(value.to_string())
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut query = None;
    // The signature tungstenite's handshake callback requires.
    #[allow(clippy::result_large_err)]
    let capture = |request: &Request, response: Response| {
        query = request.uri().query().map(str::to_owned);
        Ok(response)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, capture).await {
        Ok(ws) => ws,
        Err(e) => {
            shared.problem(format!("gateway handshake failed: {e}"));
            return;
        }
    };
    let query = query.unwrap_or_default();
    if query.contains("compress=") || query.contains("encoding=etf") {
        shared.problem(format!(
            "the client asked for `{query}`; the fake only speaks uncompressed JSON text frames"
        ));
    }

    let connection_id = shared.snowflake();
    let (mut sink, mut incoming) = ws.split();
    let (tx, mut outgoing) = mpsc::unbounded_channel::<WsMessage>();
    let hello = json!({ "op": 10, "s": null, "t": null, "d": { "heartbeat_interval": HEARTBEAT_INTERVAL_MS } });
    if sink.send(frame(&hello)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            received = incoming.next() => match received {
                Some(Ok(WsMessage::Text(text))) => on_text(&shared, connection_id, &tx, &text),
                Some(Ok(WsMessage::Binary(_))) => {
                    shared.problem("the client sent a binary (ETF?) gateway frame; the fake reads JSON text".into());
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            Some(message) = outgoing.recv() => {
                let closing = matches!(message, WsMessage::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
        }
    }
    shared.update(|s| {
        if s.gateway
            .current
            .as_ref()
            .is_some_and(|(id, _)| *id == connection_id)
        {
            s.gateway.current = None;
        }
    });
}

fn on_text(shared: &Shared, connection_id: u64, tx: &mpsc::UnboundedSender<WsMessage>, text: &str) {
    let Ok(payload) = serde_json::from_str::<Value>(text) else {
        shared.problem(format!(
            "the client sent a gateway frame that is not JSON: {text}"
        ));
        return;
    };
    let d = &payload["d"];
    match payload["op"].as_u64() {
        Some(1) => {
            let _ = tx.send(frame(&json!({ "op": 11, "s": null, "t": null, "d": null })));
        }
        Some(2) => identify(shared, connection_id, tx, d),
        Some(6) => resume(shared, connection_id, tx, d),
        // Presence updates, member requests, voice: nothing to do for a fake.
        _ => {}
    }
}

fn identify(shared: &Shared, connection_id: u64, tx: &mpsc::UnboundedSender<WsMessage>, d: &Value) {
    let token = d["token"].as_str().unwrap_or_default();
    if token.trim_start_matches("Bot ") != shared.token {
        shared.problem("IDENTIFY with a token that is not the fake's; closed with 4004".into());
        let _ = tx.send(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::Library(4004),
            reason: "Authentication failed.".into(),
        })));
        return;
    }
    if let Some(code) = shared.read(|s| s.gateway.refuse_identify) {
        let _ = tx.send(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::Library(code),
            reason: "Refused by the test.".into(),
        })));
        return;
    }
    let session_id = format!("fake-session-{}", shared.snowflake());
    let mut ready = json!({
        "v": 10,
        "user": payloads::user_json(BOT_USER_ID, "fake-bot", true),
        "guilds": [],
        "session_id": session_id,
        "resume_gateway_url": format!("ws://{}", shared.gateway_addr),
        "application": { "id": APPLICATION_ID.to_string(), "flags": 0 },
    });
    if let Some(shard) = d.get("shard").filter(|s| s.is_array()) {
        ready["shard"] = shard.clone();
    }
    let mut identify = d.clone();
    if let Some(map) = identify.as_object_mut() {
        map.remove("token");
    }
    shared.update(|s| {
        s.gateway.session_id = Some(session_id);
        s.gateway.seq = 1;
        s.gateway.ready_count += 1;
        s.gateway.identify = Some(identify);
        s.gateway.current = Some((connection_id, tx.clone()));
        let _ = tx.send(frame(&json!({ "op": 0, "s": 1, "t": "READY", "d": ready })));
    });
}

fn resume(shared: &Shared, connection_id: u64, tx: &mpsc::UnboundedSender<WsMessage>, d: &Value) {
    shared.update(|s| {
        let known = s.gateway.session_id.is_some()
            && d["session_id"].as_str() == s.gateway.session_id.as_deref();
        if known {
            s.gateway.seq += 1;
            s.gateway.current = Some((connection_id, tx.clone()));
            let _ = tx.send(frame(
                &json!({ "op": 0, "s": s.gateway.seq, "t": "RESUMED", "d": {} }),
            ));
        } else {
            // Not resumable: the client identifies again.
            let _ = tx.send(frame(&json!({ "op": 9, "s": null, "t": null, "d": false })));
        }
    });
}

/// Sends a dispatch to the bot once a session is live, waiting at most `timeout` for one.
pub(crate) async fn dispatch(
    shared: &Shared,
    event: &str,
    data: &Value,
    timeout: Duration,
) -> Result<(), FakeError> {
    shared
        .wait_for(
            timeout,
            || format!("no bot session on the fake gateway to send {event} to"),
            |s| {
                let (_, tx) = s.gateway.current.as_ref()?;
                let seq = s.gateway.seq + 1;
                tx.send(frame(&json!({ "op": 0, "s": seq, "t": event, "d": data })))
                    .ok()?;
                s.gateway.seq = seq;
                Some(())
            },
        )
        .await
}

/// Leaves a gap of `count` sequence numbers before the next dispatch.
pub(crate) fn skip_sequence_numbers(shared: &Shared, count: u64) {
    shared.update(|s| s.gateway.seq += count);
}

/// Asks the bot to reconnect (op 7); serenity reconnects and resumes the session.
pub(crate) fn request_reconnect(shared: &Shared) {
    shared.update(|s| {
        if let Some((_, tx)) = s.gateway.current.take() {
            let _ = tx.send(frame(&json!({ "op": 7, "s": null, "t": null, "d": null })));
        }
    });
}
