//! `GET /_iron/events`: the router's events as JSON over a WebSocket, for dashboards and tools.
//! The router's token (`router.apiKey`: the IC token, or the minted one) is required, in a header or
//! as the first message; heartbeats keep idle links alive.

use crate::events::now_ms;
use crate::server::Shared;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequest;
use axum::response::IntoResponse;
use std::sync::Arc;
use std::time::Duration;

const AUTH_WAIT: Duration = Duration::from_secs(5);

/// Upgrade the connection (the caller has checked the path).
pub async fn upgrade(
    shared: Arc<Shared>,
    req: axum::http::Request<axum::body::Body>,
    peer: std::net::SocketAddr,
) -> axum::response::Response {
    let authed = shared.token.check_headers(req.headers());
    // A source past its failed-auth limit that presents a wrong token in a header gets no socket
    // to guess on (as an HTTP call would not). One that sends its token as the first message is
    // let in: the right token is never refused, and a wrong one counts when it fails.
    let presented = ["authorization", "x-api-key"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    if !authed && presented {
        if let Some(wait) = shared.auth_limit.limited(peer.ip()) {
            let mut resp = axum::response::Response::new(axum::body::Body::from(format!(
                "Iron Cage router: too many failed authentications from this machine; retry in {wait} s with the router's token (router.apiKey)"
            )));
            *resp.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(wait));
            return resp;
        }
    }
    let Ok(session) = shared.ws_sessions.clone().try_acquire_owned() else {
        let mut resp = axum::response::Response::new(axum::body::Body::from(
            "Iron Cage router: too many open event sockets (maxConnections); close one or raise maxConnections",
        ));
        *resp.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return resp;
    };
    match WebSocketUpgrade::from_request(req, &()).await {
        // A frame is read whole before the message limit applies (and before auth): bound both.
        Ok(ws) => ws
            .max_message_size(64 * 1024)
            .max_frame_size(64 * 1024)
            .on_upgrade(move |socket| async move {
                // Held for as long as the socket is open.
                let _session = session;
                serve(shared, socket, authed, peer).await
            })
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// Accept `{"type":"auth","token":"ic_…"}` or the bare token as the first text message.
fn first_message_token(text: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return v.get("token").and_then(|t| t.as_str()).map(str::to_string);
    }
    Some(text.trim().to_string())
}

async fn serve(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    authed: bool,
    peer: std::net::SocketAddr,
) {
    if !authed {
        let ok = match tokio::time::timeout(AUTH_WAIT, socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                first_message_token(t.as_str()).is_some_and(|tok| shared.token.matches(&tok))
            }
            _ => false,
        };
        if !ok {
            let frame = axum::extract::ws::CloseFrame { code: 4001, reason: "Invalid API key: send the router's token (router.apiKey) in the Authorization header or as the first message".into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
            shared.stats.on_blocked("auth");
            // Counted with the HTTP failures from this source (the socket is closed either way).
            let _ = shared.auth_limit.on_failure(peer.ip());
            return;
        }
    }
    let mut sub = shared.events.subscribe();
    let _ = socket
        .send(Message::Text(
            format!(
                r#"{{"type":"hello","tsMs":{},"port":{}}}"#,
                now_ms(),
                shared.port
            )
            .into(),
        ))
        .await;
    let heartbeat_every = Duration::from_millis(shared.cfg.ws_heartbeat_ms);
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    // A client that stops reading fills the socket's buffers and a send waits for it: past this,
    // the client is taken for gone (its events would be lost to the bus's lag anyway).
    let patience = send_patience(heartbeat_every);
    loop {
        tokio::select! {
            _ = shared.stopping.cancelled() => {
                let frame = axum::extract::ws::CloseFrame { code: 1001, reason: "the Iron Cage router stopped".into() };
                let _ = tokio::time::timeout(patience, socket.send(Message::Close(Some(frame)))).await;
                break;
            }
            ev = sub.recv() => {
                let Some(ev) = ev else { break };
                let text = Message::Text(ev.json().to_owned().into());
                if !send_within(&mut socket, text, patience, &shared.stopping).await {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                let hb = format!(r#"{{"type":"heartbeat","tsMs":{}}}"#, now_ms());
                if !send_within(&mut socket, Message::Text(hb.into()), patience, &shared.stopping).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                _ => {}
            },
        }
    }
}

/// How long one send may wait for a client to take it: two heartbeats, and at least 5 s.
pub(crate) fn send_patience(heartbeat: Duration) -> Duration {
    (heartbeat * 2).max(Duration::from_secs(5))
}

/// Sends `m` unless the client has not taken it within `patience` or the router stops first;
/// false when the link is to be dropped.
async fn send_within(
    socket: &mut WebSocket,
    m: Message,
    patience: Duration,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => {
            // The loop's stop branch sends the close frame.
            true
        }
        sent = tokio::time::timeout(patience, socket.send(m)) => matches!(sent, Ok(Ok(()))),
    }
}
