//! The provider key: fetched from the Iron Cage key server (`GET /api/keys`) and cached for a TTL.
//! One fetch runs at a time. Past the TTL the cached key is served while a background fetch
//! refreshes it, and for a grace period when the key server cannot be reached, is slow or fails
//! (5xx, 429). A refusal (401 token revoked, 403 key disabled, 404 no key, 400 no project) drops it
//! at once. A provider 401 fetches the key again (rotation) at most once per few seconds.

use crate::config::KeySource;
use crate::events::{EventBus, RouterEvent};
pub use crate::key_error::{KeyError, KeyErrorKind};
pub use crate::key_wire::{describe_reqwest, parse_key_response, sanitize};
use crate::provider::Provider;
pub use crate::provider_key::ProviderKey;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key last fetched and when: its age says whether it is fresh, stale or gone.
struct Cached {
    key: ProviderKey,
    fetched_at: Instant,
}

/// The outcome of one key fetch, shared by every caller waiting for it (`None` until it is known).
type Flight = tokio::sync::watch::Receiver<Option<Result<ProviderKey, KeyError>>>;

/// Why a fetch was started (for the event it emits).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// No usable key: callers wait for this fetch.
    Needed,
    /// The TTL ran out: callers go on with the cached key meanwhile.
    Background,
    /// The provider answered 401 to a call made with the cached key.
    ProviderRefused,
}

/// What the cache knows, behind one lock that is never held across an await.
#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// The fetch under way, if any: at most one at a time.
    inflight: Option<Flight>,
    /// When a fetch last failed for want of an answer: the stale key is served without asking
    /// again for `RETRY_FAILED_REFRESH_AFTER`.
    last_failure: Option<Instant>,
    /// The key server's last refusal, repeated without asking again for `REPEAT_REFUSAL_FOR`.
    refusal: Option<(Instant, KeyError)>,
    /// When a provider 401 last caused a fetch (at most one per `REFETCH_ON_401_EVERY`).
    last_401_fetch: Option<Instant>,
}

struct Inner {
    source: KeySource,
    ic_token: String,
    http: reqwest::Client,
    state: Mutex<State>,
    events: EventBus,
    fetch_count: Arc<AtomicU64>,
    /// The provider as last known (see [`KnownProvider`]).
    provider: tokio::sync::watch::Sender<KnownProvider>,
    /// Cancelled when the router stops: a fetch under way ends at once.
    stopped: tokio_util::sync::CancellationToken,
}

/// What is known of the provider: `None` until the first fetch ends, then the provider of the
/// last key fetched, or (while no key was ever fetched) why the last fetch failed. A failure after
/// a key was fetched keeps that key's provider: it is still the provider of the token.
pub type KnownProvider = Option<Result<Provider, String>>;

/// Why the provider is unknown when the router stopped before the first key fetch ended.
pub const STOPPED_BEFORE_KEY: &str = "the router stopped before the key was fetched";

/// Cache of the one key behind this router's IC token.
pub struct KeyCache {
    inner: Arc<Inner>,
    /// `GET /api/keys` requests made so far.
    pub fetch_count: Arc<AtomicU64>,
    /// In static mode, the one key, built once.
    static_key: Option<ProviderKey>,
}

/// After a fetch failed for want of an answer, the stale key is served this long before asking again.
const RETRY_FAILED_REFRESH_AFTER: Duration = Duration::from_secs(5);
/// After the key server refused the key, requests are refused this long before asking again (a
/// revoked token in a retry loop must not become a request to the key server per call).
const REPEAT_REFUSAL_FOR: Duration = Duration::from_secs(5);
/// A provider 401 fetches the key again at most this often (a key the provider refuses for good
/// must not hammer the key server).
const REFETCH_ON_401_EVERY: Duration = Duration::from_secs(5);

impl KeyCache {
    /// A cache for `source`; nothing is fetched until asked.
    pub fn new(source: KeySource, ic_token: String, events: EventBus) -> Self {
        let timeout = match &source {
            KeySource::Server { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
            KeySource::Static { .. } => Duration::from_secs(10),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .no_proxy()
            .build()
            .expect("reqwest client with static settings");
        let static_key = match &source {
            KeySource::Static {
                key,
                base_url,
                provider,
            } => {
                let base = base_url
                    .clone()
                    .unwrap_or_else(|| provider.default_base_url().to_string());
                Some(ProviderKey::new(*provider, key, base))
            }
            KeySource::Server { .. } => None,
        };
        let fetch_count = Arc::new(AtomicU64::new(0));
        let known = static_key.as_ref().map(|k| Ok(k.provider));
        KeyCache {
            static_key,
            fetch_count: fetch_count.clone(),
            inner: Arc::new(Inner {
                source,
                ic_token,
                http,
                state: Mutex::new(State::default()),
                events,
                fetch_count,
                provider: tokio::sync::watch::channel(known).0,
                stopped: tokio_util::sync::CancellationToken::new(),
            }),
        }
    }

    /// Follow the provider as it becomes known and changes (a rotation to another provider).
    pub fn provider_watch(&self) -> tokio::sync::watch::Receiver<KnownProvider> {
        self.inner.provider.subscribe()
    }

    /// Record why the provider is unknown when a caller's fetch failed without reaching the
    /// cache (it was refused again without asking, or ended without an answer).
    pub fn note_failure(&self, why: &str) {
        self.inner.note_failure(why);
    }

    /// The router stopped: a fetch under way ends now (its waiters get an error), and no event
    /// is emitted for it.
    pub fn stop(&self) {
        self.inner.stopped.cancel();
        self.inner.provider.send_if_modified(|known| {
            let first = known.is_none();
            if first {
                *known = Some(Err(STOPPED_BEFORE_KEY.to_string()));
            }
            first
        });
    }

    /// The key. Fresh from cache; past the TTL but within the stale grace, the cached key at once
    /// while one background fetch refreshes it; with no usable key, callers wait for one shared
    /// fetch (bounded by `keyServerTimeoutMs`). A refusal by the key server drops the cached key.
    pub async fn get(&self) -> Result<ProviderKey, KeyError> {
        let (ttl, grace) = match &self.inner.source {
            KeySource::Static {
                key,
                base_url,
                provider,
            } => {
                return Ok(self.static_key.clone().unwrap_or_else(|| {
                    let base = base_url
                        .clone()
                        .unwrap_or_else(|| provider.default_base_url().to_string());
                    ProviderKey::new(*provider, key, base)
                }))
            }
            KeySource::Server {
                ttl_secs,
                stale_grace_secs,
                ..
            } => (
                Duration::from_secs(*ttl_secs),
                Duration::from_secs(*stale_grace_secs),
            ),
        };
        let flight = {
            let mut st = self.inner.lock();
            let recently_failed = st
                .last_failure
                .is_some_and(|at| at.elapsed() < RETRY_FAILED_REFRESH_AFTER);
            if let Some(c) = &st.cached {
                let age = c.fetched_at.elapsed();
                if age < ttl {
                    return Ok(c.key.clone());
                }
                if age < ttl + grace {
                    let key = c.key.clone();
                    // A refresh failed moments ago: serve the stale key rather than hammering the server.
                    if recently_failed {
                        return Ok(key);
                    }
                    // Stale while revalidating (with a TTL of 0, every request waits for a fetch).
                    if !ttl.is_zero() {
                        if st.inflight.is_none() {
                            self.inner.start_fetch(&mut st, Cause::Background);
                        }
                        return Ok(key);
                    }
                }
            }
            if st.inflight.is_none() {
                if let Some((at, e)) = &st.refusal {
                    if at.elapsed() < REPEAT_REFUSAL_FOR {
                        return Err(e.clone());
                    }
                }
            }
            match &st.inflight {
                Some(f) => f.clone(),
                None => self.inner.start_fetch(&mut st, Cause::Needed),
            }
        };
        match Inner::wait(flight).await {
            Ok(key) => Ok(key),
            // With a TTL of 0 the cached key is served when the key server cannot be asked (not
            // when the router stopped: the call is answered as stopped, never sent on).
            Err(e) if !e.is_refusal() && !e.is_stopped() => {
                let st = self.inner.lock();
                match &st.cached {
                    Some(c) if c.fetched_at.elapsed() < ttl + grace => Ok(c.key.clone()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// After the provider answered 401 to a call made with `used`: fetch the key again (sharing a
    /// fetch under way, at most one per `REFETCH_ON_401_EVERY`) and return the key to retry the
    /// call with, when the key server now has another one for the same provider and base URL.
    /// `None` (pass the 401 on) when the key did not change, could not be fetched, or moved to
    /// another upstream, and always in static mode.
    pub async fn refetch_after_401(&self, used: &ProviderKey) -> Option<ProviderKey> {
        if !matches!(self.inner.source, KeySource::Server { .. }) {
            return None;
        }
        let flight = {
            let mut st = self.inner.lock();
            match (&st.inflight, &st.cached) {
                (Some(f), _) => f.clone(),
                // Another call's 401 already brought a new key.
                (None, Some(c)) if c.key.expose() != used.expose() => {
                    return replacement(used, &c.key);
                }
                _ => {
                    if st
                        .last_401_fetch
                        .is_some_and(|at| at.elapsed() < REFETCH_ON_401_EVERY)
                    {
                        return None;
                    }
                    st.last_401_fetch = Some(Instant::now());
                    self.inner.start_fetch(&mut st, Cause::ProviderRefused)
                }
            }
        };
        match Inner::wait(flight).await {
            Ok(key) => replacement(used, &key),
            Err(_) => None,
        }
    }
}

/// `new` when it can replace `used` in a call already built for `used`'s upstream.
fn replacement(used: &ProviderKey, new: &ProviderKey) -> Option<ProviderKey> {
    (new.expose() != used.expose()
        && new.provider == used.provider
        && new.base_url == used.base_url)
        .then(|| new.clone())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A fetch task that ended without settling (its runtime shutting down) must not block
        // every later fetch.
        if st
            .inflight
            .as_ref()
            .is_some_and(|f| f.has_changed().is_err())
        {
            st.inflight = None;
        }
        st
    }

    /// Start the one fetch (the caller holds the lock and saw none under way); it runs in its own
    /// task, so that a caller going away does not cancel it.
    fn start_fetch(self: &Arc<Self>, st: &mut State, cause: Cause) -> Flight {
        let (tx, rx) = tokio::sync::watch::channel(None);
        st.inflight = Some(rx.clone());
        let inner = self.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                r = inner.fetch() => inner.settle(r, cause),
                _ = inner.stopped.cancelled() => Err(KeyError(STOPPED_BEFORE_KEY.into(), KeyErrorKind::Stopped)),
            };
            let _ = tx.send(Some(result));
        });
        rx
    }

    /// A fetch failed: the provider stays as known, or becomes unknown for `why`.
    fn note_failure(&self, why: &str) {
        self.provider.send_if_modified(|known| match known {
            Some(Ok(_)) => false,
            Some(Err(old)) if old == why => false,
            _ => {
                *known = Some(Err(why.to_string()));
                true
            }
        });
    }

    /// Wait for a fetch's outcome.
    async fn wait(mut flight: Flight) -> Result<ProviderKey, KeyError> {
        let outcome = match flight.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        // The fetch task ended without an outcome (`lock` lets the next caller start another).
        outcome.unwrap_or_else(|| {
            Err(KeyError::unavailable(
                "the key fetch ended without an answer",
            ))
        })
    }

    /// Record a fetch's outcome in the cache and tell the world.
    fn settle(
        &self,
        result: Result<ProviderKey, KeyError>,
        cause: Cause,
    ) -> Result<ProviderKey, KeyError> {
        let mut st = self.lock();
        st.inflight = None;
        match result {
            Ok(key) => {
                let previous = st.cached.take().map(|c| c.key);
                st.cached = Some(Cached {
                    key: key.clone(),
                    fetched_at: Instant::now(),
                });
                st.last_failure = None;
                st.refusal = None;
                drop(st);
                let provider = key.provider;
                self.provider.send_if_modified(|known| {
                    let changed = *known != Some(Ok(provider));
                    *known = Some(Ok(provider));
                    changed
                });
                let refreshed = previous.is_some();
                let changed = previous.is_some_and(|p| p.expose() != key.expose());
                tracing::info!(target: "iron_cage", provider = key.provider.as_str(), refreshed, changed, "provider key fetched from the key server");
                let message = (cause == Cause::ProviderRefused).then(|| {
                    if changed {
                        "the provider refused the cached key (401); the key server has a new one, used from now on".to_string()
                    } else {
                        "the provider refused the cached key (401); the key server still has the same key".to_string()
                    }
                });
                self.events.emit(RouterEvent::Key {
                    ts_ms: crate::events::now_ms(),
                    action: if refreshed { "refreshed" } else { "fetched" }.into(),
                    provider: Some(key.provider.as_str().into()),
                    message,
                });
                Ok(key)
            }
            Err(e) if e.is_refusal() => {
                // An answer, not an outage: the key must not be used any more.
                let dropped = st.cached.take().is_some();
                st.refusal = Some((Instant::now(), e.clone()));
                st.last_failure = None;
                drop(st);
                self.note_failure(&e.0);
                tracing::warn!(target: "iron_cage", error = %e.0, dropped, "the key server refused the provider key; could not get the provider key");
                self.events.emit(RouterEvent::Key {
                    ts_ms: crate::events::now_ms(),
                    action: "failed".into(),
                    provider: None,
                    message: Some(if dropped {
                        format!("{} The cached key was dropped.", e.0)
                    } else {
                        e.0.clone()
                    }),
                });
                Err(e)
            }
            Err(e) => {
                st.last_failure = Some(Instant::now());
                let grace = match &self.source {
                    KeySource::Server {
                        ttl_secs,
                        stale_grace_secs,
                        ..
                    } => Duration::from_secs(*ttl_secs + *stale_grace_secs),
                    KeySource::Static { .. } => Duration::ZERO,
                };
                let stale = st
                    .cached
                    .as_ref()
                    .filter(|c| c.fetched_at.elapsed() < grace)
                    .map(|c| c.key.provider);
                drop(st);
                match stale {
                    Some(provider) => {
                        tracing::warn!(target: "iron_cage", error = %e.0, "key refresh failed; serving the cached key");
                        self.events.emit(RouterEvent::Key {
                            ts_ms: crate::events::now_ms(),
                            action: "stale".into(),
                            provider: Some(provider.as_str().into()),
                            message: Some(format!(
                                "key refresh failed, serving the cached key: {}",
                                e.0
                            )),
                        });
                    }
                    None => {
                        self.note_failure(&e.0);
                        tracing::warn!(target: "iron_cage", error = %e.0, "could not get the provider key");
                        self.events.emit(RouterEvent::Key {
                            ts_ms: crate::events::now_ms(),
                            action: "failed".into(),
                            provider: None,
                            message: Some(e.0.clone()),
                        });
                    }
                }
                Err(e)
            }
        }
    }

    /// One `GET /api/keys`, counted in `fetch_count`.
    async fn fetch(&self) -> Result<ProviderKey, KeyError> {
        let KeySource::Server {
            server_url,
            timeout_ms,
            ..
        } = &self.source
        else {
            return Err(KeyError::unavailable("no key server configured"));
        };
        self.fetch_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::key_fetch::fetch_key(&self.http, server_url, *timeout_ms, &self.ic_token).await
    }
}
