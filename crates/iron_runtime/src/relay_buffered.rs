//! Answers read whole before the client sees them: provider errors (which may quote the key they
//! were sent), JSON answers the response PII policy must inspect, and small answers that are not
//! streams (sent in one write). All run as part of the call, which runs on when its client leaves
//! (`run_to_end`), so a client that leaves cannot skip settling.

use crate::error::RouterError;
use crate::exchange::Exchange;
use crate::forward::{body_stream, describe_error, UpstreamResponse};
use crate::relay::{Ending, MAX_JSON_COPY};
use crate::safety_policy::api_shape;
use crate::server::Shared;
use crate::settle::{settle, Metered};
use axum::body::Body;
use axum::http::Response;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Instant;

const MAX_ERROR_BODY: usize = 1024 * 1024;

/// A provider error answer, read whole (bounded) so that secrets it may quote are redacted.
pub(crate) async fn relay_error_body(
    shared: Arc<Shared>,
    mut ex: Exchange,
    upstream: UpstreamResponse,
    mut headers: axum::http::HeaderMap,
) -> Response<Body> {
    let status = upstream.status();
    let deadline = ex.started + shared.policies.timeouts.total;
    let idle = shared.policies.timeouts.idle;
    let mut body = body_stream(upstream);
    let mut buf: Vec<u8> = Vec::new();
    let ending = loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, body.next()).await {
            Err(_) => break Ending::timed_out(deadline),
            Ok(None) => break Ending::Complete,
            Ok(Some(Err(e))) => break Ending::UpstreamBroken(describe_error(&e)),
            Ok(Some(Ok(c))) => {
                let room = MAX_ERROR_BODY.saturating_sub(buf.len());
                buf.extend_from_slice(&c[..c.len().min(room)]);
                if room <= c.len() {
                    break Ending::Complete;
                }
            }
        }
    };
    drop(body);
    let clean = match compressed(&headers) {
        // The router asks for uncompressed answers: a compressed error cannot be checked for the
        // key it may quote (nor for PII), and redaction over its bytes would only corrupt it.
        Some(encoding) => {
            headers.remove(axum::http::header::CONTENT_ENCODING);
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            withheld_error(status.as_u16(), &encoding, ex.shape)
        }
        None => {
            let text = String::from_utf8_lossy(&buf);
            // Keys and tokens always go; personal data is the response policy's, when it is on
            // (an e-mail becomes `[EMAIL]` as in any answer, not the log redactor's mark).
            let response_policy = shared.policies.safety.response_active;
            let clean = if response_policy {
                crate::logging::redact_credentials(&text)
            } else {
                crate::logging::redact(&text)
            }
            .into_bytes();
            // The forms of the call's key the log redactor does not know (`\/`, `\uXXXX`).
            let mut clean = keep_key_out(&mut ex, clean);
            // Providers quote the input in validation errors: the response policy checks every
            // string.
            if response_policy {
                clean = check_error_body(&shared, &ex, clean);
            }
            clean
        }
    };
    settle(
        &shared,
        &mut ex,
        status.as_u16(),
        &ending,
        None,
        false,
        Metered::Nothing,
    );
    shared.policies.ledger.commit_if_strict().await;
    headers.remove(axum::http::header::CONTENT_LENGTH);
    headers.insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(clean.len()),
    );
    let mut resp = Response::new(Body::from(clean));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The `content-encoding` of an answer that is compressed (anything but `identity`).
pub(crate) fn compressed(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get(axum::http::header::CONTENT_ENCODING)?;
    let v = String::from_utf8_lossy(v.as_bytes())
        .trim()
        .to_ascii_lowercase();
    (!v.is_empty() && v != "identity").then_some(v)
}

/// The body sent in place of a provider error that came compressed: the provider's status stays
/// (with Anthropic's error type for it), the message says why its own text is not there.
fn withheld_error(status: u16, encoding: &str, shape: crate::provider::Provider) -> Vec<u8> {
    let encoding: String = encoding
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ',' || *c == ' ')
        .take(40)
        .collect();
    let message = format!(
        "The provider answered {status} with a compressed body ({encoding}). Iron Cage asks providers for uncompressed answers and cannot check a compressed one for keys and PII, so the provider's message was withheld; the status is the provider's."
    );
    let doc = match shape {
        crate::provider::Provider::OpenAi => serde_json::json!({
            "error": { "message": message, "type": "upstream_error", "param": null, "code": "compressed_error_body" }
        }),
        crate::provider::Provider::Anthropic => {
            // The type Anthropic gives this status, so a client reading it sees the right kind.
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            serde_json::json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// An error answer with the response policy applied to every string of it (JSON), or to all of it
/// (text): values are redacted whatever their action, since an error cannot be half-sent; one
/// the policy blocks withholds the provider's message.
fn check_error_body(shared: &Shared, ex: &Exchange, body: Vec<u8>) -> Vec<u8> {
    let (mut doc, is_json) = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => (v, true),
        Err(_) => (
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()),
            false,
        ),
    };
    let verdict = shared
        .policies
        .safety
        .engine
        .inspect_response(iron_safety::ApiShape::Other, &mut doc);
    crate::safety_policy::report(&shared.events, ex.id, "response", &verdict.detections);
    if verdict.blocked {
        let message = "The provider's error message contained a value the Iron Cage PII policy blocks; it was withheld.";
        return crate::error::RouterError::PiiBlocked {
            message: message.into(),
        }
        .body(ex.shape)
        .to_string()
        .into_bytes();
    }
    if !verdict.modified {
        return body;
    }
    match doc {
        serde_json::Value::String(s) if !is_json => s.into_bytes(),
        v => serde_json::to_vec(&v).unwrap_or(body),
    }
}

/// A whole JSON answer, read before the client sees any of it: inspected by the response PII
/// policy when `inspect`, else only metered (a small answer, sent in one piece).
pub(crate) async fn relay_whole_json(
    shared: Arc<Shared>,
    mut ex: Exchange,
    upstream: UpstreamResponse,
    mut headers: axum::http::HeaderMap,
    inspect: bool,
) -> Response<Body> {
    let status = upstream.status();
    let timeouts = shared.policies.timeouts;
    let deadline = ex.started + timeouts.total;
    let mut body = body_stream(upstream);
    let mut buf: Vec<u8> = Vec::new();
    let mut ttft = None;
    let ending = loop {
        let wait = timeouts
            .idle
            .min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, body.next()).await {
            Err(_) => break Ending::timed_out(deadline),
            Ok(None) => break Ending::Complete,
            Ok(Some(Err(e))) => break Ending::UpstreamBroken(describe_error(&e)),
            Ok(Some(Ok(c))) => {
                ttft.get_or_insert(ex.started.elapsed().as_millis() as u64);
                if buf.len() + c.len() > MAX_JSON_COPY {
                    break Ending::StreamTooLarge;
                }
                buf.extend_from_slice(&c);
            }
        }
    };
    drop(body);
    // One parse serves both usage and the PII policy.
    let mut usage = None;
    let mut unreadable = false;
    let kind = crate::cost_policy::api_kind(ex.api);
    let encoded = compressed(&headers);
    let outcome: Result<Vec<u8>, RouterError> = match &ending {
        // Asked for `identity`, the provider compressed it anyway: neither the key nor PII can be
        // looked for in it, so it is not passed on (as a compressed error is not).
        Ending::Complete if encoded.is_some() => Err(RouterError::UpstreamUnreachable {
            host: ex.host.clone(),
            reason: format!(
                "it answered with a compressed body ({}) although Iron Cage asked for an uncompressed one; Iron Cage cannot check a compressed answer for the provider key or PII, so it was withheld. Check what sits between Iron Cage and the provider",
                encoded.as_deref().unwrap_or("").chars().take(40).collect::<String>()
            ),
        }),
        Ending::Complete if !inspect => {
            if ex.api.is_billable() {
                usage = iron_cost::usage_from_bytes(kind, &buf);
                // No usage because the answer is not JSON at all (not merely without usage): the
                // provider billed a call we cannot read, so it is priced at its hold, not $0.
                unreadable = usage.is_none()
                    && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_err();
            }
            Ok(buf)
        }
        Ending::Complete => match shared
            .policies
            .safety
            .engine
            .read_response_unchanged(api_shape(ex.answer_api), &buf)
        {
            // The common case, read without a tree: nothing to redact or block.
            Some(iron_safety::UnchangedAnswer {
                verdict,
                usage: read,
            }) => {
                // The same pass read the answer's usage (and OpenAI's service tier beside it),
                // except for shapes it does not parse.
                usage = match (read, kind) {
                    (
                        iron_safety::UsageRead::Read {
                            usage,
                            service_tier,
                        },
                        iron_cost::ApiKind::OpenAiChat
                        | iron_cost::ApiKind::OpenAiCompletions
                        | iron_cost::ApiKind::AnthropicMessages,
                    ) => iron_cost::usage_from_member_with_tier(
                        kind,
                        usage.as_ref(),
                        service_tier.as_ref(),
                    ),
                    _ => iron_cost::usage_from_bytes(kind, &buf),
                };
                crate::safety_policy::report(
                    &shared.events,
                    ex.id,
                    "response",
                    &verdict.detections,
                );
                Ok(buf)
            }
            None => inspect_tree(&shared, &ex, kind, buf, &mut usage),
        },
        Ending::Timeout(what) => Err(RouterError::UpstreamTimeout {
            host: ex.host.clone(),
            what: format!("the answer did not complete within the {what} timeout"),
        }),
        Ending::StreamTooLarge => Err(RouterError::UpstreamUnreachable {
            host: ex.host.clone(),
            reason: format!("its answer is larger than {} MiB, the most Iron Cage reads whole to check it; ask for less per call (fewer inputs, a base64 encoding_format for embeddings)", MAX_JSON_COPY >> 20),
        }),
        _ => Err(RouterError::UpstreamUnreachable {
            host: ex.host.clone(),
            reason: "the answer broke off".into(),
        }),
    };
    // Only billable calls are metered, as on the streaming path.
    let metered = if unreadable {
        Metered::Unreadable
    } else if inspect || ex.api.is_billable() {
        Metered::Known(usage)
    } else {
        Metered::Nothing
    };
    let status_code = status.as_u16();
    // The client gets the router's answer in place of the provider's: the books say so.
    if let Err(e) = &outcome {
        ex.client_status = Some(e.status(ex.shape).as_u16());
    }
    // How the call ended for the books: the provider answered (and bills it) even when the client
    // gets the router's refusal instead.
    let ending = match (&ending, &outcome) {
        (Ending::Complete, Err(e @ RouterError::PiiBlocked { .. })) => {
            Ending::Blocked(e.to_string())
        }
        // An answer that is not JSON: priced at its hold (the usage cannot be read), a provider fault.
        (Ending::Complete, Err(RouterError::UpstreamUnreachable { reason, .. })) => {
            Ending::UpstreamBroken(reason.clone())
        }
        _ => ending,
    };
    let cost = settle(&shared, &mut ex, status_code, &ending, ttft, false, metered);
    shared.policies.ledger.commit_if_strict().await;
    match outcome {
        Ok(bytes) => {
            let bytes = keep_key_out(&mut ex, bytes);
            headers.insert(
                axum::http::header::CONTENT_LENGTH,
                axum::http::HeaderValue::from(bytes.len()),
            );
            // A whole answer is settled before it goes out: its cost goes with it.
            if let Some(micros) = cost {
                crate::relay::set_cost_header(&mut headers, micros);
            }
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp
        }
        Err(e) => {
            // The router's refusal of an answer the provider gave (and bills): still this call,
            // with what it cost.
            let mut resp = e.into_response(ex.shape);
            resp.headers_mut().insert(
                crate::relay::REQUEST_ID_HEADER,
                axum::http::HeaderValue::from(ex.id),
            );
            // The provider produced (and bills) this answer: an SDK's retry would be a second
            // billed call, and the answer would be refused again (broken off, compressed, too large).
            resp.headers_mut().insert(
                "x-should-retry",
                axum::http::HeaderValue::from_static("false"),
            );
            if let Some(micros) = cost {
                crate::relay::set_cost_header(resp.headers_mut(), micros);
            }
            resp
        }
    }
}

/// A whole answer with the key(s) its call was sent with replaced (see `key_guard`).
fn keep_key_out(ex: &mut Exchange, bytes: Vec<u8>) -> Vec<u8> {
    let Some(g) = ex.guard.as_mut() else {
        return bytes;
    };
    let bytes = g.whole(bytes);
    if g.redacted {
        tracing::warn!(target: "iron_cage", request_id = ex.id, "the provider's answer held the provider key; Iron Cage replaced it with [REDACTED]");
    }
    bytes
}

/// The response PII policy on a parsed tree: redact in place (and re-encode only then) or block.
fn inspect_tree(
    shared: &Shared,
    ex: &Exchange,
    kind: iron_cost::ApiKind,
    buf: Vec<u8>,
    usage: &mut Option<iron_cost::Usage>,
) -> Result<Vec<u8>, RouterError> {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&buf) else {
        // Not JSON (a cut-off answer, say): its text cannot be checked, so it is not passed on
        // (the filter fails closed, as it does for a broken stream).
        return Err(RouterError::UpstreamUnreachable {
            host: ex.host.clone(),
            reason: "its answer was not valid JSON, so Iron Cage's response PII policy could not check it and did not pass it on".into(),
        });
    };
    *usage = iron_cost::usage_from_response(kind, &doc);
    let verdict = shared
        .policies
        .safety
        .engine
        .inspect_response(api_shape(ex.answer_api), &mut doc);
    crate::safety_policy::report(&shared.events, ex.id, "response", &verdict.detections);
    if verdict.blocked {
        let message = verdict
            .message
            .unwrap_or_else(|| "Response blocked by Iron Cage PII policy".into());
        Err(RouterError::PiiBlocked { message })
    } else if verdict.modified {
        let mut out = Vec::with_capacity(buf.len() + 256);
        serde_json::to_writer(&mut out, &doc)
            .map(|()| out)
            .map_err(|e| RouterError::Internal(e.to_string()))
    } else {
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withheld_anthropic_error_keeps_the_type_of_its_status() {
        for (status, kind) in [
            (429, "rate_limit_error"),
            (400, "invalid_request_error"),
            (500, "api_error"),
            (529, "overloaded_error"),
        ] {
            let body = withheld_error(status, "gzip", crate::provider::Provider::Anthropic);
            let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(doc["error"]["type"], kind, "{status}");
            assert!(doc["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("compressed"));
        }
    }
}
