//! Reading a request body: bounded in size (`maxBodyBytes`) and in time, so that a client cannot
//! hold a connection slot by sending its body slowly or not at all.

use crate::error::RouterError;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Reads the request body, bounded in size and in time: no pause longer than `idle` (the header
/// read timeout) and all of it within `BODY_TOTAL` or `idle`, whichever is longer. A client that
/// sent its headers and then trickles or stalls its body would otherwise hold a connection slot
/// (`maxConnections`) for as long as it likes.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, RouterError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(RouterError::BodyTooLarge { limit });
    }
    let deadline = Instant::now() + idle.max(BODY_TOTAL);
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => {
                let why = if Instant::now() >= deadline {
                    format!("not all of it within {} s", idle.max(BODY_TOTAL).as_secs())
                } else {
                    format!("nothing for {} ms", idle.as_millis())
                };
                return Err(RouterError::BodyTimeout(why));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(RouterError::BadRequestBody(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if have + data.len() > limit {
            return Err(RouterError::BodyTooLarge { limit });
        }
        // Most bodies come in one piece: keep it as it came, copy only when more follow.
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    rest.reserve(
                        declared
                            .map_or(0, |d| d as usize)
                            .min(limit)
                            .max(f.len() + data.len()),
                    );
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(rest),
    })
}

/// The longest a request body may take to arrive (unless the header read timeout is longer).
const BODY_TOTAL: Duration = Duration::from_secs(60);
