//! Relay: bytes go to the client as they arrive; a side parser (`relay_sse`) reads SSE events
//! (usage, the injected usage chunk, the PII filter) without holding back more than one partial
//! event. Settle runs when the relay ends,
//! whatever the reason (complete, client abort, a client that stopped reading, upstream break,
//! timeout): the idle and total timeouts bound the wait for the client as well as for the provider.

use crate::client_sink::{ClientSink, Piece};
use crate::error::RouterError;
use crate::exchange::Exchange;
use crate::forward::client_response_headers;
use crate::forward::{body_stream, describe_error, UpstreamResponse};
use crate::relay_sse::{
    flush_filtered_tail, process_sse, SideParser, SseStop, MAX_SSE_EVENT, SEND_EVERY,
};
use crate::safety_policy::api_shape;
use crate::server::Shared;
use crate::settle::{settle, Metered};
use axum::body::Body;
use axum::http::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use iron_cost::StreamUsage;
use iron_safety::ApiShape;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A non-streamed answer up to this size (by its `content-length`) is read whole and sent at once.
const WHOLE_ANSWER_MAX: usize = 256 * 1024;
pub(crate) const MAX_JSON_COPY: usize = 64 * 1024 * 1024;

/// How a relayed response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Complete,
    ClientAborted,
    /// The router stopped (`stop()`) and did not wait for the rest of the answer.
    RouterStopped,
    /// The client read nothing for the idle timeout, or was still behind when the total timeout
    /// ran out ("idle" or "total"): handled as a client that left.
    ClientTimeout(&'static str),
    UpstreamBroken(String),
    Timeout(&'static str),
    StreamTooLarge,
    Blocked(String),
}

impl Ending {
    /// A wait bounded by `deadline` ran out: the total timeout once it has passed, else the idle one.
    pub(crate) fn timed_out(deadline: Instant) -> Ending {
        Ending::Timeout(if Instant::now() >= deadline {
            "total"
        } else {
            "idle"
        })
    }

    /// The outcome name used in events and the ledger.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::ClientAborted => "client_aborted",
            Ending::RouterStopped => "router_stopped",
            Ending::ClientTimeout(_) => "client_timeout",
            Ending::UpstreamBroken(_) => "upstream_error",
            Ending::Timeout(_) => "timeout",
            Ending::StreamTooLarge => "upstream_error",
            Ending::Blocked(_) => "blocked",
        }
    }
}

/// Response header naming the call's id (as in events, `/_iron/*` and the state file).
pub const REQUEST_ID_HEADER: &str = "x-iron-cage-request-id";
/// Response header with a whole (non-streamed) answer's cost in USD, when the model is priced.
pub const COST_HEADER: &str = "x-iron-cage-cost-usd";

/// Sets [`COST_HEADER`] to `micros` as USD with six decimals (`0.022500`).
pub(crate) fn set_cost_header(headers: &mut axum::http::HeaderMap, micros: u64) {
    let usd = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    if let Ok(v) = axum::http::HeaderValue::from_str(&usd) {
        headers.insert(COST_HEADER, v);
    }
}

/// Start relaying `upstream` to the client; returns the response whose body streams from a task.
/// A non-streamed JSON answer that the response PII policy must inspect is read whole first.
pub async fn relay(
    shared: Arc<Shared>,
    mut ex: Exchange,
    upstream: UpstreamResponse,
) -> Response<Body> {
    let status = upstream.status();
    let is_sse = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    // A body relayed unchanged keeps its length (no chunked encoding); SSE events may be rewritten.
    let mut headers = client_response_headers(upstream.headers(), !is_sse);
    // The id events, the audit trail and the ledger know this call by.
    headers.insert(REQUEST_ID_HEADER, axum::http::HeaderValue::from(ex.id));
    let shape = api_shape(ex.answer_api);
    // These run as part of the call, which runs on when its client leaves (see `run_to_end`), so
    // a client that leaves cannot cut them short before they settle.
    if !status.is_success() {
        // A provider's error may quote the key it was sent: read it (bounded) and redact it.
        return crate::relay_buffered::relay_error_body(shared, ex, upstream, headers).await;
    }
    // An answer of no known shape is read whole when it is JSON (every string is checked); other
    // media (audio, images as bytes) pass as they are.
    let json = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let inspect = shared.policies.safety.response_active && (shape != ApiShape::Other || json);
    // A small answer that is not a stream goes out whole: head and body in one write, without a
    // relay task (the client cannot use half a JSON document anyway).
    let small = upstream
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n <= WHOLE_ANSWER_MAX);
    // A compressed answer (the router asked for `identity`) cannot be searched for the key: it is
    // read whole and withheld (see `relay_whole_json`).
    let encoded = crate::relay_buffered::compressed(upstream.headers()).is_some();
    if encoded || (!is_sse && (inspect || small)) {
        return crate::relay_buffered::relay_whole_json(shared, ex, upstream, headers, inspect)
            .await;
    }
    // The breaker learns a relayed answer's success from its head: a half-open probe frees its
    // slot now rather than when the stream ends, minutes later perhaps (see
    // `Permit::record_stream_head`); a failure later in the stream is still recorded at settle.
    if let Some(permit) = ex.permit.as_mut() {
        let _ = permit.record_stream_head();
    }
    let (tx, rx) = mpsc::channel::<Piece>(16);
    let timeouts = shared.policies.timeouts;
    let cut = Arc::new(AtomicBool::new(false));
    let client = ClientSink {
        tx,
        deadline: ex.started + timeouts.total,
        idle: timeouts.idle,
        cut: cut.clone(),
        stopped: None,
        guard: ex.guard.take(),
    };
    tokio::spawn(run(shared, ex, upstream, client, is_sse, status.as_u16()));
    let stream = futures_util::stream::unfold(Some((rx, cut)), |state| async move {
        let (mut rx, cut) = state?;
        match rx.recv().await {
            Some(item) => Some((item, Some((rx, cut)))),
            // The relay gave up on a client that stopped reading: what it still reads ends broken,
            // not as a complete answer.
            None if cut.load(Ordering::Acquire) => Some((Err(std::io::Error::other("Iron Cage stopped relaying: the client read nothing for the idle timeout, or the total timeout ran out")), None)),
            None => None,
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

async fn run(
    shared: Arc<Shared>,
    mut ex: Exchange,
    upstream: UpstreamResponse,
    mut client: ClientSink,
    is_sse: bool,
    status: u16,
) {
    let success = (200..300).contains(&status);
    let timeouts = shared.policies.timeouts;
    let deadline = ex.started + timeouts.total;
    let mut body = body_stream(upstream);
    let mut ttft: Option<u64> = None;
    let track_usage = success && ex.api.is_billable();
    let mut sse = is_sse.then(|| {
        let shape = api_shape(ex.answer_api);
        SideParser::new(
            shape,
            track_usage.then(StreamUsage::new),
            (success && shared.policies.safety.response_active)
                .then(|| shared.policies.safety.engine.sse_filter(shape)),
        )
    });
    let mut json_copy: Option<Vec<u8>> = (!is_sse && track_usage).then(Vec::new);
    let mut copy_overflowed = false;

    // One timer for the whole relay, reset per chunk (not a new timer per chunk).
    let idle_timer = tokio::time::sleep(timeouts.idle);
    tokio::pin!(idle_timer);
    let ending = loop {
        // Checked here too: an upstream that always has more ready would never let the timer win.
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break Ending::Timeout("total");
        };
        let wait = timeouts.idle.min(left);
        idle_timer
            .as_mut()
            .reset(tokio::time::Instant::now() + wait);
        // The body's end first: a client that read a whole answer lets go of it at its last byte,
        // so when both are ready the answer is complete, not aborted.
        let next = tokio::select! {
            biased;
            n = body.next() => Ok(n),
            _ = client.tx.closed() => break Ending::ClientAborted,
            _ = ex.stop.cancelled() => break Ending::RouterStopped,
            _ = &mut idle_timer => Err(()),
        };
        // Each piece is whatever one socket read brought (a burst arrives dozens of events at a
        // time: see `upstream_h1`).
        let chunk = match next {
            Err(_) => break Ending::timed_out(deadline),
            Ok(None) => break Ending::Complete,
            Ok(Some(Err(e))) => break Ending::UpstreamBroken(describe_error(&e)),
            Ok(Some(Ok(c))) => c,
        };
        if ttft.is_none() {
            ttft = Some(ex.started.elapsed().as_millis() as u64);
        }
        let out = match sse.as_mut() {
            Some(p) => {
                // A burst goes out in pieces as it is processed: the client reads one while the
                // relay parses the next.
                let mut input: &[u8] = &chunk;
                let stop = loop {
                    match process_sse(p, &ex, input, SEND_EVERY) {
                        Ok((out, more)) => {
                            input = &[];
                            if !out.is_empty() {
                                if let Err(e) = client.send(Ok(out)).await {
                                    break Some(e);
                                }
                                // Let the client connection write this piece now: the socket
                                // may hold the rest of a burst, and this task would process
                                // all of it before a task woken on this worker ran.
                                tokio::task::yield_now().await;
                            }
                            if !more {
                                break None;
                            }
                        }
                        Err((out, SseStop::TooLarge)) => {
                            let _ = client.send(Ok(out)).await;
                            break Some(Ending::StreamTooLarge);
                        }
                        Err((out, SseStop::Blocked(message))) => {
                            let _ = client.send(Ok(out)).await;
                            break Some(Ending::Blocked(message));
                        }
                    }
                };
                if let Some(ending) = stop {
                    break ending;
                }
                Bytes::new()
            }
            None => {
                if let Some(copy) = json_copy.as_mut() {
                    if copy.len() + chunk.len() <= MAX_JSON_COPY {
                        copy.extend_from_slice(&chunk);
                    } else {
                        // Too large to read for its usage: priced at its hold, not $0.
                        json_copy = None;
                        copy_overflowed = true;
                    }
                }
                chunk
            }
        };
        if !out.is_empty() {
            if let Err(e) = client.send(Ok(out)).await {
                break e;
            }
            tokio::task::yield_now().await;
        }
    };
    drop(body);

    // End the client's stream cleanly: a provider-shaped SSE error event, or a broken body for JSON.
    match (&ending, sse.as_mut()) {
        (Ending::Complete, Some(p)) => {
            let rest = p.splitter.take_rest();
            if p.filter.is_none() {
                if !rest.is_empty() {
                    let _ = client.send(Ok(rest)).await;
                }
            } else if let Some(message) = flush_filtered_tail(p, &ex, rest, &mut client).await {
                let e = RouterError::PiiBlocked { message };
                let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
            }
        }
        (Ending::Timeout(what), Some(_)) => {
            let what = if *what == "total" {
                "the total timeout ran out in the middle of the stream".to_string()
            } else {
                format!("no data for the {what} timeout in the middle of the stream")
            };
            let e = RouterError::UpstreamTimeout {
                host: ex.host.clone(),
                what,
            };
            let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
        }
        (Ending::RouterStopped, Some(_)) => {
            let e = RouterError::RouterStopped;
            let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
        }
        (Ending::UpstreamBroken(reason), Some(_)) => {
            let e = RouterError::UpstreamUnreachable {
                host: ex.host.clone(),
                reason: format!("stream broke: {reason}"),
            };
            let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
        }
        (Ending::StreamTooLarge, Some(_)) => {
            let e = RouterError::UpstreamUnreachable {
                host: ex.host.clone(),
                reason: format!("an SSE event exceeded {MAX_SSE_EVENT} bytes"),
            };
            let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
        }
        (Ending::Blocked(message), _) => {
            let e = RouterError::PiiBlocked {
                message: message.clone(),
            };
            let _ = client.send(Ok(Bytes::from(e.sse_event(ex.shape)))).await;
        }
        (Ending::Timeout(_) | Ending::UpstreamBroken(_), None) => {
            let _ = client
                .send(Err(std::io::Error::other("upstream body ended early")))
                .await;
        }
        _ => {}
    }
    client.finish(ex.id).await;
    // A client that stopped reading the end of a complete answer did not get it.
    let ending = match (ending, &client.stopped) {
        (Ending::Complete, Some(e @ Ending::ClientTimeout(_))) => e.clone(),
        (ending, _) => ending,
    };
    if let Ending::ClientTimeout(what) = ending {
        tracing::info!(target: "iron_cage", request_id = ex.id, timeout = what, "the client stopped reading the answer: its upstream stream is closed and the call settled");
    }
    let saw_error_event = sse.as_ref().is_some_and(|p| p.saw_error_event);
    if let Some(f) = sse.as_ref().and_then(|p| p.filter.as_ref()) {
        crate::safety_policy::report(&shared.events, ex.id, "response", &f.detections());
    }
    let usage = match (sse.and_then(|p| p.usage), json_copy) {
        (Some(su), _) => Metered::Stream(su),
        (None, Some(copy)) => Metered::Json(copy),
        (None, None) if copy_overflowed => Metered::Unreadable,
        _ => Metered::Nothing,
    };
    settle(
        &shared,
        &mut ex,
        status,
        &ending,
        ttft,
        saw_error_event,
        usage,
    );
    // Strict persistence: the ledger row is committed before the client sees the end of the body.
    shared.policies.ledger.commit_if_strict().await;
    drop(client);
}
