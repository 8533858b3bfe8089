//! Why a provider key could not be had, and the router error each reason becomes.

/// Why a key could not be had; the message is safe to show (never contains a key).
#[derive(Debug, Clone)]
pub struct KeyError(pub String, pub KeyErrorKind);

/// What kind of failure a [`KeyError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyErrorKind {
    /// The key server could not be asked or gave no usable answer (unreachable, slow, 5xx, 429,
    /// malformed): a cached key is still served for the stale grace.
    Unavailable,
    /// The key server answered that this token may not have a key (401 token revoked or invalid,
    /// 403 key disabled, 404 no key assigned, 400 token not in a project): the cached key is
    /// dropped at once.
    Refused,
    /// The router stopped before the fetch ended: nothing went wrong at the key server, and the
    /// caller gets the router's `ROUTER_STOPPED`, as calls the stop ended elsewhere do.
    Stopped,
}

impl KeyError {
    /// A failure to get an answer (not a refusal).
    pub fn unavailable(message: impl Into<String>) -> KeyError {
        KeyError(message.into(), KeyErrorKind::Unavailable)
    }

    /// Whether the key server refused the key (rather than failing to answer).
    pub fn is_refusal(&self) -> bool {
        self.1 == KeyErrorKind::Refused
    }

    /// Whether the fetch ended because the router stopped.
    pub fn is_stopped(&self) -> bool {
        self.1 == KeyErrorKind::Stopped
    }

    /// The router's answer to a request that could not get a key.
    pub fn into_router_error(self) -> crate::error::RouterError {
        match self.1 {
            KeyErrorKind::Refused => crate::error::RouterError::KeyRefused(self.0),
            KeyErrorKind::Unavailable => crate::error::RouterError::KeyServer(self.0),
            KeyErrorKind::Stopped => crate::error::RouterError::RouterStopped,
        }
    }
}
