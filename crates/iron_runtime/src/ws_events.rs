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
    let mut heartbeat = tokio::time::interval(Duration::from_millis(shared.cfg.ws_heartbeat_ms));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = shared.stopping.cancelled() => {
                let frame = axum::extract::ws::CloseFrame { code: 1001, reason: "the Iron Cage router stopped".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break;
            }
            ev = sub.recv() => {
                let Some(ev) = ev else { break };
                if socket.send(Message::Text(ev.json().to_owned().into())).await.is_err() {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                let hb = format!(r#"{{"type":"heartbeat","tsMs":{}}}"#, now_ms());
                if socket.send(Message::Text(hb.into())).await.is_err() {
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
