//! The request target a call may go out with: only GET, POST and DELETE (provider APIs use no
//! other method), and only a path the provider resolves to itself.

use crate::error::RouterError;

/// Only the methods provider APIs use go out with the key, and only to a path: TRACE could make
/// something in front of the provider echo the request, key and all, and an asterisk-form (`*`)
/// target appended to a base URL with a port (`http://host:4000*`) would name another port.
pub(crate) fn check_method_and_target(
    parts: &axum::http::request::Parts,
) -> Result<(), RouterError> {
    use axum::http::Method;
    if !matches!(parts.method, Method::GET | Method::POST | Method::DELETE) {
        return Err(RouterError::MethodNotAllowed {
            method: parts.method.as_str().chars().take(32).collect(),
        });
    }
    let path = parts.uri.path();
    if !path.starts_with('/') {
        return Err(RouterError::BadRequestTarget(
            "Iron Cage accepts only a path (origin-form, starting with '/') as the request target; this request named no path (an asterisk-form '*' target)",
        ));
    }
    if !plain_path(path) {
        return Err(RouterError::BadRequestTarget(
            "Iron Cage does not forward a path with '.' or '..' segments (also written %2e, or between encoded separators %2F, %5C): the provider could resolve it to another endpoint than the one the budget and PII policy checked; send the path as the SDK builds it (e.g. /v1/chat/completions)",
        ));
    }
    Ok(())
}

/// A path a server resolves to itself: no `.` or `..` segment, also with its dots percent-encoded
/// (`%2e`) or between separators a server might decode before resolving (`%2F`, `%5C`, `\\`).
/// An encoded slash inside a segment is fine (`/v1/models/meta-llama%2FLlama-3.1-8B`).
fn plain_path(path: &str) -> bool {
    let b = path.as_bytes();
    if !b.iter().any(|&c| c == b'.' || c == b'%') {
        return true;
    }
    b.split(|&c| c == b'/' || c == b'\\')
        .flat_map(split_encoded_separators)
        .all(|seg| !is_dot_segment(seg))
}

/// A segment split at `%2F` / `%5C` (any case).
fn split_encoded_separators(seg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= seg.len() {
        let sep = seg[i] == b'%'
            && matches!(
                (seg[i + 1], seg[i + 2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c')
            );
        if sep {
            out.push(&seg[start..i]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&seg[start..]);
    out
}

/// `.` or `..`, each dot possibly written `%2e` / `%2E`.
fn is_dot_segment(seg: &[u8]) -> bool {
    let mut rest = seg;
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3
            && rest[0] == b'%'
            && rest[1] == b'2'
            && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_paths_are_forwarded() {
        for ok in [
            "/v1/chat/completions",
            "/v1/files/file-abc.jsonl",
            "/v1/models/gpt-4.1",
            "/v1/a..b",
            "/v1/x%20y",
            "/",
            // An encoded slash inside a segment: a model id with a slash in it.
            "/v1/models/meta-llama%2FLlama-3.1-8B-Instruct",
        ] {
            assert!(super::plain_path(ok), "{ok}");
        }
        for bad in [
            "/v1/uploads/../chat/completions",
            "/v1/uploads/%2e%2e/chat/completions",
            "/v1/uploads/.%2E/messages",
            "/v1/./chat/completions",
            "/v1/uploads/..",
            "/v1/uploads%2F..%2Fchat/completions",
            "/v1/uploads%2f..%5cchat/completions",
            "/v1/uploads\\..\\chat/completions",
        ] {
            assert!(!super::plain_path(bad), "{bad}");
        }
    }
}
