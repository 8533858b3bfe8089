//! One `GET /api/keys` to the Iron Cage key server, and what its answer means: a key, an outage
//! (the cache may serve its stale key), or a refusal (the cached key must go).

use crate::key_error::{KeyError, KeyErrorKind};
use crate::key_wire::{describe_reqwest, parse_key_response, read_limited, server_message};
use crate::provider_key::ProviderKey;

/// A key server answer larger than this is not a key answer.
const MAX_KEY_RESPONSE_BYTES: usize = 64 * 1024;

/// Asks the key server at `server_url` for the key behind `ic_token`.
pub(crate) async fn fetch_key(
    http: &reqwest::Client,
    server_url: &str,
    timeout_ms: u64,
    ic_token: &str,
) -> Result<ProviderKey, KeyError> {
    let url = format!("{server_url}/api/keys");
    let resp = http
        .get(&url)
        .bearer_auth(ic_token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            let why = if e.is_timeout() {
                format!("no answer within {timeout_ms} ms (keyServerTimeoutMs)")
            } else {
                describe_reqwest(&e)
            };
            KeyError::unavailable(format!(
                "could not reach the key server at {server_url}: {why}"
            ))
        })?;
    let status = resp.status();
    let body = read_limited(resp, MAX_KEY_RESPONSE_BYTES)
        .await
        .map_err(|e| KeyError::unavailable(format!("key server at {server_url}: {e}")))?;
    if !status.is_success() {
        return Err(error_answer(status.as_u16(), &body));
    }
    parse_key_response(&body)
}

/// The error for a key server answer with status `code`: a refusal for an answer about this
/// token's key, an outage for anything else.
fn error_answer(code: u16, body: &[u8]) -> KeyError {
    let server_msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error").and_then(|e| {
                e.as_str().map(str::to_string).or_else(|| {
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
            })
        })
        .map(|m| server_message(&m))
        .unwrap_or_else(|| "no error message".into());
    // An answer about this token's key (not an outage): the key must not be used any more.
    let refusal = match code {
        401 => Some("the Iron Cage token was revoked or is not valid. Fix: create a new token in the Iron Cage dashboard and start the router with it (apiKey)"),
        403 => Some("the provider key is disabled in the Iron Cage dashboard. Fix: enable it, or assign another provider key to the token's project"),
        404 => Some("no provider key is assigned to this token's project. Fix: assign one in the Iron Cage dashboard"),
        400 => Some("the Iron Cage token is not assigned to a project. Fix: assign it to a project in the Iron Cage dashboard"),
        _ => None,
    };
    if let Some(why) = refusal {
        return KeyError(
            format!("Iron Cage key server answered {code}: {server_msg}: {why}. Calls are refused until the key server hands out a key again."),
            KeyErrorKind::Refused,
        );
    }
    let hint = match code {
        429 => " (the key server is rate limiting; retry later)",
        _ => "",
    };
    KeyError::unavailable(format!("key server answered {code}: {server_msg}{hint}"))
}
