//! Push to a dashboard (`dashboardUrl`): the router connects as a WebSocket client, authenticates
//! with its first message, then sends STATE_UPDATE, AGENT_EVENT, COST_ALERT and HEARTBEAT messages.
//! It reconnects with exponential backoff (1 s to 30 s) and keeps a bounded buffer while offline.

use crate::events::{now_ms, RouterEvent, Subscription};
use crate::server::Shared;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const BUFFER: usize = 1000;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Translate a router event into the dashboard protocol (`None`: not sent).
fn to_message(shared: &Shared, ev: &RouterEvent) -> Vec<serde_json::Value> {
    let agent = shared.policies.ledger.agent_id.clone();
    let ts = now_ms();
    let budget = shared.policies.cost.ledger.status();
    let spent = budget.spent as f64 / 1e6;
    let limit = budget.limit.map(|l| l as f64 / 1e6);
    match ev {
        RouterEvent::Response {
            model,
            tokens,
            cost_usd,
            status,
            ..
        } => vec![
            json!({ "type": "AGENT_EVENT", "timestamp": ts, "agent_id": agent, "event": "llm_call",
                    "data": { "model": model, "tokens": tokens.input + tokens.cache_read + tokens.cache_write + tokens.output,
                              "input_tokens": tokens.input, "output_tokens": tokens.output, "cost_usd": cost_usd, "status": status } }),
            json!({ "type": "STATE_UPDATE", "timestamp": ts, "agent_id": agent, "state": "running",
                    "data": { "budget_spent": spent, "budget_limit": limit,
                              "requests": shared.stats.requests() } }),
        ],
        RouterEvent::Budget {
            level,
            spent_usd,
            limit_usd,
            percent,
            ..
        } => vec![json!({
            "type": "COST_ALERT", "timestamp": ts, "agent_id": agent,
            "severity": if level == "exceeded" { "critical" } else { "warning" },
            "data": { "budget_spent": spent_usd, "budget_limit": limit_usd, "percentage": percent } })],
        RouterEvent::Request { .. } => vec![],
        other => vec![
            json!({ "type": "AGENT_EVENT", "timestamp": ts, "agent_id": agent, "event": other.kind(), "data": other }),
        ],
    }
}

/// Run the push link until `stop` is cancelled.
pub async fn run(shared: Arc<Shared>, url: String, stop: CancellationToken) {
    let mut sub: Subscription = shared.events.subscribe();
    let mut buffer: VecDeque<String> = VecDeque::new();
    let mut backoff = MIN_BACKOFF;
    let heartbeat_every = Duration::from_millis(shared.cfg.ws_heartbeat_ms);
    // An outage is reported once (an `error` event), at its second failed attempt (a moment's
    // failure is not one; and the first attempt runs before JS subscribed), until a link stays
    // up again.
    let mut down_reported = false;
    let mut failed_attempts = 0u32;
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async_with_config(url.as_str(), Some(link_limits()), false)) => c,
        };
        let failure = match &connected {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(connect_failure(e)),
            Err(_) => Some("it did not complete the WebSocket handshake within 10 s".to_string()),
        };
        if let Ok(Ok((ws, _))) = connected {
            shared
                .stats
                .dashboard_connects
                .fetch_add(1, Ordering::Relaxed);
            let up_since = Instant::now();
            match session(&shared, ws, &mut sub, &mut buffer, heartbeat_every, &stop).await {
                Session::Stopped => return,
                Session::Dropped => {}
            }
            // Only a link that stayed up starts the backoff over: a dashboard that accepts and
            // then closes at once (it refuses the token, say) is retried like one that is down,
            // not in a tight loop.
            if up_since.elapsed() >= STABLE_LINK {
                backoff = MIN_BACKOFF;
                down_reported = false;
                failed_attempts = 0;
                shared
                    .errors
                    .clear(crate::error_events::DASHBOARD_UNREACHABLE);
            }
        }
        failed_attempts += 1;
        if !down_reported && failed_attempts >= 2 {
            let why = failure.unwrap_or_else(|| {
                "the link was closed by the dashboard or broke (a dashboard that refuses the token closes it at once)".to_string()
            });
            down_reported = shared.errors.report(
                &shared.events,
                crate::error_events::DASHBOARD_UNREACHABLE,
                format!(
                    "the dashboard link (dashboardUrl) is down: {why}. Events are kept for it (the newest 1,000) and the router reconnects with backoff up to 30 s"
                ),
            );
        }
        // Offline: keep collecting (bounded) until the next attempt.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut wait => break,
                ev = sub.recv() => match ev {
                    Some(ev) => push_bounded(&shared, &mut buffer, &ev),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Why a connect attempt failed, in words that never quote the URL (it may carry credentials).
fn connect_failure(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) => format!("could not connect ({})", io.kind()),
        E::Http(resp) => format!(
            "the dashboard answered the WebSocket handshake with HTTP {}",
            resp.status().as_u16()
        ),
        E::Tls(_) => "the TLS handshake failed".to_string(),
        E::Url(_) => "the URL cannot be used for a WebSocket link".to_string(),
        _ => "the WebSocket handshake failed".to_string(),
    }
}

/// How long a link must stay up for the next reconnect to start from the shortest wait again.
const STABLE_LINK: Duration = Duration::from_secs(10);

enum Session {
    /// The router is stopping (or its events ended).
    Stopped,
    /// The link failed or the dashboard closed it.
    Dropped,
}

/// One connected link: AUTH, what was buffered, then events and heartbeats until it drops.
async fn session<S>(
    shared: &Shared,
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    sub: &mut Subscription,
    buffer: &mut VecDeque<String>,
    heartbeat_every: Duration,
    stop: &CancellationToken,
) -> Session
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // A dashboard that stops reading (or a half-open link) fills the socket's buffers and a send
    // waits for it: past this the link is taken for dropped, reconnected, and events buffered.
    let patience = crate::ws_events::send_patience(heartbeat_every);
    let auth = json!({ "type": "AUTH", "token": shared.cfg.ic_token, "agent_id": shared.policies.ledger.agent_id }).to_string();
    match send_within(&mut ws, auth, patience, stop).await {
        Sent::Done => {}
        Sent::Failed => return Session::Dropped,
        Sent::Stopped => return Session::Stopped,
    }
    while let Some(m) = buffer.front() {
        match send_within(&mut ws, m.clone(), patience, stop).await {
            Sent::Done => {}
            Sent::Failed => return Session::Dropped,
            Sent::Stopped => return Session::Stopped,
        }
        buffer.pop_front();
    }
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    let mut ok = true;
    while ok {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(patience, ws.close(None)).await;
                return Session::Stopped;
            }
            ev = sub.recv() => {
                let Some(ev) = ev else { return Session::Stopped };
                for m in to_message(shared, &ev) {
                    let text = m.to_string();
                    // After a failed send, keep the rest of this event's messages for the next link.
                    if !ok {
                        push_one(shared, buffer, text);
                        continue;
                    }
                    match send_within(&mut ws, text.clone(), patience, stop).await {
                        Sent::Done => {}
                        Sent::Failed => {
                            push_one(shared, buffer, text);
                            ok = false;
                        }
                        Sent::Stopped => return Session::Stopped,
                    }
                }
            }
            _ = heartbeat.tick() => {
                let hb = json!({ "type": "HEARTBEAT", "timestamp": now_ms() }).to_string();
                match send_within(&mut ws, hb, patience, stop).await {
                    Sent::Done => {}
                    Sent::Failed => ok = false,
                    Sent::Stopped => return Session::Stopped,
                }
            }
            incoming = ws.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => ok = false,
                _ => {}
            },
        }
    }
    Session::Dropped
}

/// How a send to the dashboard ended.
enum Sent {
    Done,
    /// The link failed, or the dashboard took longer than the patience to take the message.
    Failed,
    /// The router is stopping.
    Stopped,
}

async fn send_within<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    text: String,
    patience: Duration,
    stop: &CancellationToken,
) -> Sent
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::select! {
        _ = stop.cancelled() => Sent::Stopped,
        sent = tokio::time::timeout(patience, ws.send(Message::Text(text.into()))) => match sent {
            Ok(Ok(())) => Sent::Done,
            _ => Sent::Failed,
        },
    }
}

fn push_bounded(shared: &Shared, buffer: &mut VecDeque<String>, ev: &RouterEvent) {
    for m in to_message(shared, ev) {
        push_one(shared, buffer, m.to_string());
    }
}

/// Buffers one message for the next link; the oldest goes (and is counted) when the buffer is full.
fn push_one(shared: &Shared, buffer: &mut VecDeque<String>, text: String) {
    if buffer.len() >= BUFFER {
        buffer.pop_front();
        shared
            .stats
            .dashboard_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
    buffer.push_back(text);
}

/// The dashboard only sends small control messages: bound what one may cost (the library's defaults
/// are a 64 MiB message and 16 MiB frames).
fn link_limits() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(1024 * 1024))
        .max_frame_size(Some(256 * 1024))
}
