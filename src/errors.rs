//! Errors thrown to JS carry a stable `code` (`err.code`), the same codes the HTTP bodies use.

/// A JS error with `code` set to `code`.
pub fn coded(code: &str, message: impl Into<String>) -> napi::Error<String> {
    napi::Error::new(code.to_string(), message.into())
}

/// Run `f`, turning a panic into a JS error instead of letting it cross the boundary.
pub fn guard<T>(
    what: &str,
    f: impl FnOnce() -> napi::Result<T, String>,
) -> napi::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(coded(
            "INTERNAL",
            format!("iron-cage internal error in {what}; please report it"),
        )),
    }
}
