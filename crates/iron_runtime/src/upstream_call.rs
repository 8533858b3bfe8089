//! Breaker admission and the upstream call, retried only where it is safe: before any byte has reached
//! the client, on connection errors, 5xx and 529, with backoff and jitter, honouring `retry-after`,
//! bounded in count and total time, and re-admitted by the breaker before every attempt.

use crate::error::RouterError;
use crate::forward::{self, SendError};
use crate::pipeline::Denial;
use crate::provider::Provider;
use crate::server::Shared;
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use iron_reliability::{is_retryable_status, retry_after_from_headers, Outcome, Permit, Rejected};
use std::time::{Instant, SystemTime};

/// One upstream call to make.
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub provider: Provider,
    pub host: &'a str,
    /// The model asked for (empty when the request names none): rate limits are per model.
    pub model: &'a str,
    pub shape: Provider,
    /// When the request arrived: the total timeout bounds every attempt and every wait.
    pub started: Instant,
    /// The key `headers` carry: a provider 401 to it makes the router fetch the key again.
    pub key: &'a crate::keys::ProviderKey,
}

/// The response head, and the breaker permit to record once the body has been relayed (`None` when
/// the outcome was already recorded, e.g. a 5xx returned after the last retry).
pub struct Answer {
    pub response: crate::forward::UpstreamResponse,
    pub permit: Option<Permit>,
    pub retries: u32,
    /// The key the answer was asked with, when a provider 401 made the router fetch a new one
    /// (the relay keeps both out of what it passes on).
    pub rekeyed_to: Option<crate::keys::ProviderKey>,
}

fn circuit_denial(provider: Provider, host: &str, r: Rejected, shape: Provider) -> Denial {
    let secs = r.retry_after_secs();
    let message = format!(
        "Iron Cage circuit breaker is {} for {provider} at {host}: the provider has been failing, so calls fail fast instead of waiting. The next probe is allowed in {secs} s; retry after that.",
        r.state.as_str().replace('_', "-"),
    );
    Denial {
        error: RouterError::CircuitOpen {
            message,
            retry_after_secs: secs,
        },
        shape,
        reason: "circuit",
        retried: false,
        unanswered: false,
    }
}

fn send_denial(e: SendError, host: &str, shape: Provider, retried: bool) -> Denial {
    let host = host.to_string();
    let error = match e {
        SendError::Timeout(what) => RouterError::UpstreamTimeout {
            host,
            what: what.into(),
        },
        SendError::Connect(reason) | SendError::Other(reason) => {
            RouterError::UpstreamUnreachable { host, reason }
        }
        SendError::AfterWrite(reason) => RouterError::UpstreamUnreachable {
            host,
            reason: format!("{reason} (after the request was sent: the provider may have it, so it was not sent again)"),
        },
    };
    Denial {
        error,
        shape,
        reason: "upstream",
        retried,
        unanswered: false,
    }
}

/// A small xorshift generator for jitter (no need for cryptographic randomness here).
fn jitter_source() -> impl FnMut() -> f64 {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37);
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Admit, send, and retry where safe. Errors are provider-shaped denials.
pub async fn call_upstream(shared: &Shared, mut call: Call<'_>) -> Result<Answer, Denial> {
    let rel = &shared.policies.reliability;
    let first_byte = shared.policies.timeouts.first_byte;
    let provider_name = call.provider.as_str();
    let started = call.started;
    let deadline = started + shared.policies.timeouts.total;
    let mut rng = jitter_source();
    let mut attempt: u32 = 0;
    let mut rekeyed = false;
    let mut rekeyed_to: Option<crate::keys::ProviderKey> = None;
    // A model the provider answered 429 with retry-after for is not called again before that
    // time (at most a minute).
    if let Some(left) = rel.throttle.remaining(provider_name, call.host, call.model) {
        let secs = left.as_millis().div_ceil(1000).max(1) as u64;
        let what = if call.model.is_empty() {
            String::new()
        } else {
            format!(" for {}", call.model)
        };
        let message = format!(
            "{provider_name} at {} asked callers to slow down{what} (429 with retry-after); Iron Cage holds these calls for {secs} s more",
            call.host
        );
        return Err(Denial {
            error: RouterError::TooManyRequests {
                message,
                retry_after_secs: secs,
            },
            shape: call.shape,
            reason: "rate_limited",
            retried: false,
            unanswered: false,
        });
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(send_denial(
                SendError::Timeout("the total timeout ran out before the provider answered"),
                call.host,
                call.shape,
                attempt > 0,
            ));
        }
        let permit = rel
            .breakers
            .try_acquire(provider_name, call.host)
            .map_err(|r| circuit_denial(call.provider, call.host, r, call.shape))?;
        let sent = forward::send(
            &shared.http,
            call.method.clone(),
            call.url,
            call.headers.clone(),
            call.body.clone(),
            first_byte.min(left),
        )
        .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = {
                    let h = response.headers();
                    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
                    retry_after_from_headers(
                        get("retry-after-ms"),
                        get("retry-after"),
                        SystemTime::now(),
                    )
                };
                // The provider refused the key (rotated on the Iron Cage server?): with a new key
                // from the key server the call is made once more; it was refused, so not billed.
                if status == 401 && !rekeyed {
                    rekeyed = true;
                    let refetch = shared.keys.refetch_after_401(call.key);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Ok(Some(new_key)) = tokio::time::timeout(left, refetch).await {
                        if new_key.replace_auth(&mut call.headers) {
                            rekeyed_to = Some(new_key.clone());
                            // A 401 is an answer, not a provider failure.
                            let _ = permit.record(Outcome::Ignored);
                            drop(response);
                            continue;
                        }
                    }
                }
                // A redirect is neither followed nor passed on: the client's SDK would follow it and
                // send the prompt to an address the router never checked (or the call unbudgeted).
                if matches!(status, 301 | 302 | 303 | 307 | 308) {
                    let _ = permit.record(Outcome::Failure);
                    return Err(Denial {
                        error: RouterError::UpstreamUnreachable {
                            host: call.host.to_string(),
                            reason: format!("the provider answered {status}, a redirect; Iron Cage neither follows redirects nor passes them on (the client would send the request to an address it never checked). Check the provider base URL"),
                        },
                        shape: call.shape,
                        reason: "upstream",
                        retried: attempt > 0,
                        unanswered: false,
                    });
                }
                if status == 429 {
                    if let Some(d) = retry_after {
                        rel.throttle
                            .record_throttle(provider_name, call.host, call.model, d);
                    }
                }
                // The provider's own `x-should-retry: false` (as its SDKs read it) wins.
                let provider_says_no = response
                    .headers()
                    .get("x-should-retry")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"false"));
                if !is_retryable_status(status) || provider_says_no {
                    return Ok(Answer {
                        response,
                        permit: Some(permit),
                        retries: attempt,
                        rekeyed_to,
                    });
                }
                // The breaker counts calls, not attempts: a failure that is retried is recorded
                // by the attempt that ends the call.
                let next =
                    next_delay_within(rel, attempt, retry_after, started, deadline, &mut rng);
                let _ = permit.record(if next.is_some() {
                    Outcome::Ignored
                } else {
                    Outcome::Failure
                });
                match next {
                    Some(delay) => {
                        drop(response);
                        attempt += 1;
                        shared.stats.on_retry();
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        // The router has retried already: the SDK must not multiply the attempts.
                        let mut response = response;
                        if attempt > 0 {
                            response.headers_mut().insert(
                                "x-should-retry",
                                axum::http::HeaderValue::from_static("false"),
                            );
                        }
                        return Ok(Answer {
                            response,
                            permit: None,
                            retries: attempt,
                            rekeyed_to,
                        });
                    }
                }
            }
            Err(e) => {
                // A timeout waiting for the answer's head, or a connection that failed after the
                // request was written: the provider has the request and may still be generating
                // (and billing) it; another attempt would be a second call.
                if matches!(e, SendError::Timeout(_) | SendError::AfterWrite(_)) {
                    let _ = permit.record(Outcome::Failure);
                    let mut d = send_denial(e, call.host, call.shape, attempt > 0);
                    d.unanswered = true;
                    return Err(d);
                }
                let next = next_delay_within(rel, attempt, None, started, deadline, &mut rng);
                let _ = permit.record(if next.is_some() {
                    Outcome::Ignored
                } else {
                    Outcome::Failure
                });
                match next {
                    Some(delay) => {
                        attempt += 1;
                        shared.stats.on_retry();
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(send_denial(e, call.host, call.shape, attempt > 0)),
                }
            }
        }
    }
}

/// The retry policy's next delay, refused when waiting would pass the total timeout.
fn next_delay_within(
    rel: &crate::policies::Reliability,
    attempt: u32,
    retry_after: Option<std::time::Duration>,
    started: Instant,
    deadline: Instant,
    rng: &mut impl FnMut() -> f64,
) -> Option<std::time::Duration> {
    let delay = rel
        .retry
        .next_delay(attempt, retry_after, started.elapsed(), rng)?;
    (Instant::now() + delay < deadline).then_some(delay)
}
