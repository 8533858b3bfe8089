//! The router's lifecycle: bind 127.0.0.1:0 directly, serve HTTP/1.1 connections with limits, stop
//! gracefully. `Router::start` is synchronous (no network), so the JS constructor never blocks.

use crate::auth::TokenCheck;
use crate::config::{ConfigError, KeySource, RouterConfig};
use crate::events::EventBus;
use crate::keys::KeyCache;
use crate::pipeline;
use crate::provider::Provider;
use crate::stats::Stats;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

/// State shared by every request of one router.
pub struct Shared {
    pub cfg: RouterConfig,
    pub token: TokenCheck,
    pub keys: KeyCache,
    pub http: crate::forward::UpstreamClient,
    pub events: EventBus,
    pub port: u16,
    pub next_request_id: AtomicU64,
    pub stats: Stats,
    pub policies: crate::policies::Policies,
    pub auth_limit: crate::auth_limit::AuthLimiter,
    /// Events of refusals before the token check, at most once a second per reason.
    pub refusals: crate::error_events::Throttle,
    /// Open `/_iron/events` sockets, bounded like connections (`maxConnections`): an upgraded
    /// socket leaves the connection count when hyper hands it over.
    pub ws_sessions: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the router stops: what outlives the connection set (upgraded event sockets)
    /// ends with it.
    pub stopping: CancellationToken,
    /// Provider calls still being made or settled (each runs on when its client's connection
    /// goes, see `run_to_end`): `stop` lets them settle before the state store closes.
    pub calls: CallsInFlight,
    /// `error` events, rate-limited per code.
    pub errors: crate::error_events::ErrorEvents,
    /// Cancelled when a stopping router stops waiting for calls in flight: they end at once,
    /// with the outcome `router_stopped` (see [`CallStop`]).
    pub abandon_calls: CancellationToken,
}

/// What stops one call: its connection's token, cancelled when the router stops and the client
/// is still waiting after the stop grace (the client then gets a 503 `ROUTER_STOPPED`, or an SSE
/// error event if the stream had begun), a child of [`Shared::abandon_calls`], cancelled when the
/// stop stops waiting for calls whose clients had left.
#[derive(Clone)]
pub struct CallStop(pub CancellationToken);

impl CallStop {
    /// The token for `req` (put there by the connection that received it).
    pub fn of<B>(shared: &Shared, req: &hyper::Request<B>) -> CancellationToken {
        req.extensions()
            .get::<CallStop>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| shared.abandon_calls.child_token())
    }
}

/// A count of calls in flight that can be waited on until it reaches zero.
#[derive(Default)]
pub struct CallsInFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One call in flight; dropping it (the call settled, or its task ended any other way) counts it out.
pub struct CallGuard<'a>(&'a CallsInFlight);

impl CallsInFlight {
    /// Counts a call in until the returned guard is dropped.
    pub fn enter(&self) -> CallGuard<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        CallGuard(self)
    }

    /// Calls in flight now.
    pub fn now(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no call is in flight, at most `limit`; whether that happened.
    pub async fn settled_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.now() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.now() == 0;
            }
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Shared {
    /// The counters behind `router.stats()` and `/_iron/stats`, with the event bus's dropped count
    /// and the state writer's progress.
    pub fn stats_snapshot(&self) -> crate::stats::StatsSnapshot {
        let mut snap = self.stats.snapshot();
        snap.events_dropped = self.events.dropped();
        snap.dashboard_dropped = self
            .stats
            .dashboard_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        let store = self.policies.ledger.store.stats();
        snap.ledger = crate::stats::LedgerStats {
            committed: store.committed,
            pending: store.pending,
            dropped: store.dropped,
            failed: store.failed,
        };
        snap
    }
}

/// Why a router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    /// Another router (in this process or another) runs the agent id in the state file.
    #[error("{0}")]
    AgentInUse(String),
}

impl StartError {
    /// Stable code for JS.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Config(_) => "INVALID_OPTIONS",
            StartError::Bind(_) => "BIND_FAILED",
            StartError::AgentInUse(_) => "AGENT_ID_IN_USE",
        }
    }
}

/// A running router. Dropping it stops the server (best effort); `stop()` is the orderly way.
pub struct Router {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    running: Arc<AtomicBool>,
    provider: watch::Receiver<crate::keys::KnownProvider>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Budget figures for the JS `budgetStatus` property.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatusView {
    pub spent_micros: u64,
    pub reserved_micros: u64,
    pub limit_micros: Option<u64>,
}

const STOP_GRACE: Duration = Duration::from_millis(1500);
/// After the stop grace, how long a connection whose calls were stopped has to write their answers.
const CUT_GRACE: Duration = Duration::from_millis(500);

pub use crate::keys::STOPPED_BEFORE_KEY;

impl Router {
    /// Bind and start serving. Must be called inside a tokio runtime. Does no network I/O itself: the
    /// first key fetch runs in the background and `ready()` reports its outcome.
    pub fn start(cfg: RouterConfig) -> Result<Router, StartError> {
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(StartError::Bind)?;
        std_listener
            .set_nonblocking(true)
            .map_err(StartError::Bind)?;
        let port = std_listener.local_addr().map_err(StartError::Bind)?.port();
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(StartError::Bind)?;
        let events = EventBus::new(4096);
        let policies = crate::policies::Policies::from_config(&cfg, &events)?;
        let first_request_id = policies.ledger.first_request_id()?;
        let http = crate::forward::build_client(&policies);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            token: TokenCheck::new(&cfg.client_token),
            keys: KeyCache::new(cfg.key_source.clone(), cfg.ic_token.clone(), events.clone()),
            http,
            events,
            port,
            next_request_id: AtomicU64::new(first_request_id),
            stats: Stats::default(),
            policies,
            auth_limit: Default::default(),
            refusals: Default::default(),
            ws_sessions: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
            stopping: cancel.clone(),
            calls: CallsInFlight::default(),
            errors: Default::default(),
            abandon_calls: CancellationToken::new(),
            cfg,
        });
        let running = Arc::new(AtomicBool::new(true));
        let server = tokio::spawn(serve(listener, shared.clone(), cancel.clone()));
        // Pooled provider connections left idle are closed in the background, not kept open
        // until the next call.
        let sweeper = shared.clone();
        let stop_sweeping = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = stop_sweeping.cancelled() => break,
                    _ = tick.tick() => sweeper.http.sweep(),
                }
            }
        });
        if shared.cfg.raw.state_path.is_some() {
            tokio::spawn(crate::error_events::watch_state_file(
                shared.clone(),
                cancel.clone(),
            ));
        }
        if let Some(url) = shared.cfg.raw.dashboard_url.clone() {
            tokio::spawn(crate::dashboard::run(shared.clone(), url, cancel.clone()));
        }
        let provider = shared.keys.provider_watch();
        if let KeySource::Server { .. } = &shared.cfg.key_source {
            let warm = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = warm.keys.get().await {
                    warm.keys.note_failure(&e.0);
                }
            });
        }
        Ok(Router {
            shared,
            cancel,
            running,
            provider,
            server: Mutex::new(Some(server)),
        })
    }

    /// Parse options JSON and start.
    /// Option errors never quote a key (see [`ConfigError::scrubbed`]).
    pub fn start_json(options: &str) -> Result<Router, StartError> {
        let config = RouterConfig::from_json(options).map_err(|e| e.scrubbed(options))?;
        Router::start(config).map_err(|e| match e {
            StartError::Config(c) => StartError::Config(c.scrubbed(options)),
            // It names the state file and the agent id, which are the user's own text.
            StartError::AgentInUse(m) => {
                let c = ConfigError {
                    field: String::new(),
                    message: m,
                }
                .scrubbed(options);
                StartError::AgentInUse(c.message)
            }
            other => other,
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `http://127.0.0.1:<port>/v1`, for OpenAI SDKs.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.shared.port)
    }

    /// `http://127.0.0.1:<port>`, for the Anthropic SDK (it appends `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    /// The token clients must present (the IC token, or a minted local one in static-key mode or
    /// with `mintClientToken`).
    pub fn api_key(&self) -> &str {
        &self.shared.cfg.client_token
    }

    /// True until `stop()`.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The provider as known now: `None` while the first key fetch runs; then the provider of
    /// the last key fetched (it follows a rotation to another provider), or why it is unknown
    /// while no key could be fetched yet.
    pub fn provider_now(&self) -> Option<Result<Provider, String>> {
        self.provider.borrow().clone()
    }

    /// Wait for the first key fetch: the provider, or why it is unknown. Returns at once (with
    /// [`STOPPED_BEFORE_KEY`]) when the router stops first.
    pub async fn ready(&self) -> Result<Provider, String> {
        let mut rx = self.provider.clone();
        tokio::select! {
            known = rx.wait_for(Option::is_some) => match known {
                Ok(v) => v.clone().unwrap_or_else(|| Err(STOPPED_BEFORE_KEY.into())),
                Err(_) => Err(STOPPED_BEFORE_KEY.into()),
            },
            _ = self.shared.stopping.cancelled() => {
                self.provider.borrow().clone().unwrap_or_else(|| Err(STOPPED_BEFORE_KEY.into()))
            }
        }
    }

    /// The event bus (subscribe for events).
    pub fn events(&self) -> &EventBus {
        &self.shared.events
    }

    /// Shared state, for the binding and tests.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Micro-USD spent through this router.
    pub fn total_spent_micros(&self) -> u64 {
        self.shared.policies.cost.ledger.status().spent
    }

    /// Spent, reserved and limit in micro-USD.
    pub fn budget_status(&self) -> BudgetStatusView {
        let s = self.shared.policies.cost.ledger.status();
        BudgetStatusView {
            spent_micros: s.spent,
            reserved_micros: s.reserved,
            limit_micros: s.limit,
        }
    }

    /// Set the budget in USD (`None` removes the limit).
    pub fn set_budget_usd(&self, usd: Option<f64>) -> Result<(), String> {
        let limit = match usd {
            None => None,
            Some(u) if u.is_finite() && u >= 0.0 => Some((u * 1e6).round() as u64),
            Some(u) => {
                return Err(format!(
                    "budget must be a non-negative number of USD, got {u}"
                ))
            }
        };
        let cost = &self.shared.policies.cost;
        let t = cost.ledger.set_limit(limit);
        cost.report(t);
        Ok(())
    }

    /// Stop accepting, let in-flight requests finish for a short grace, then close. Idempotent.
    pub async fn stop(&self) {
        self.stop_within(STOP_GRACE).await;
    }

    /// Stop accepting, give provider calls in flight up to `calls_grace` to settle (a call whose
    /// client left still runs to its end, to be charged and recorded), then close.
    pub async fn stop_within(&self, calls_grace: Duration) -> Unsettled {
        self.stop_settling(calls_grace, std::future::pending())
            .await
    }

    /// As [`Router::stop_within`], but the wait for calls in flight also ends when `cut`
    /// completes (a user who will not wait). Calls still at the provider then are not waited for:
    /// their budget holds are what is known of their cost. With `statePath` and `agentId` those
    /// holds are charged in the state file at once (ledger rows `unsettled`, after the store
    /// closed, so a call settling meanwhile cannot be charged twice), and always in memory
    /// (`budget_status()`: spent, nothing reserved). Then those calls end at once, each with a
    /// `response` event whose outcome is `router_stopped`.
    pub async fn stop_settling(
        &self,
        calls_grace: Duration,
        cut: impl std::future::Future<Output = ()>,
    ) -> Unsettled {
        self.running.store(false, Ordering::SeqCst);
        self.cancel.cancel();
        // A key fetch under way is not waited for: nothing will use the key.
        self.shared.keys.stop();
        // Pooled provider connections close now, those of calls still settling when they end.
        self.shared.http.close();
        let handle = self.server.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            let _ = h.await;
        }
        tokio::select! {
            _ = self.shared.calls.settled_within(calls_grace) => {}
            _ = cut => {}
        }
        let calls = self.shared.calls.now();
        // The holds of calls not waited for are charged in memory as in the state file: the
        // provider may have them and bill them. Their settling later changes nothing.
        let held_micros = self.shared.policies.cost.ledger.close_charging_holds();
        let charged = self
            .shared
            .policies
            .shutdown_charging_left_holds(calls > 0)
            .await;
        // They end now, each with a `response` event (outcome `router_stopped`).
        self.shared.abandon_calls.cancel();
        Unsettled {
            calls,
            held_micros,
            charged_in_state_file: charged,
        }
    }
}

/// Provider calls a stopping router did not wait for (they were still at the provider).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsettled {
    /// How many.
    pub calls: usize,
    /// Their budget holds (what the router knows of their cost; 0 without a budget).
    pub held_micros: u64,
    /// The holds were charged in the state file (`statePath` and `agentId`).
    pub charged_in_state_file: bool,
}

impl Drop for Router {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        self.cancel.cancel();
        self.shared.keys.stop();
        self.shared.http.close();
        self.shared.abandon_calls.cancel();
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let limit = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let conn_cancel = CancellationToken::new();
    // Cancelled when connections still open after the stop grace have their calls stopped.
    let cut_open = CancellationToken::new();
    let mut conns = tokio::task::JoinSet::new();
    let workers = crate::conn_workers::get();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            conns.spawn(reject_over_limit(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The connection is served to its end on one connection thread (see `conn_workers`); its
        // socket moves to that thread's reactor.
        let (stream, home) = match workers {
            Some(w) => match stream.into_std() {
                Ok(s) => (Accepted::Moving(s), Some(w.next())),
                Err(_) => continue,
            },
            None => (Accepted::Here(stream), None),
        };
        let shared = shared.clone();
        let header_timeout = Duration::from_millis(shared.cfg.header_read_timeout_ms);
        let stop = conn_cancel.clone();
        let cut = cut_open.clone();
        let call_stop = shared.abandon_calls.child_token();
        let conn_calls = call_stop.clone();
        let serve_conn = async move {
            let Some(stream) = stream.register() else {
                return;
            };
            let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                req.extensions_mut().insert(CallStop(conn_calls.clone()));
                async move {
                    Ok::<_, std::convert::Infallible>(pipeline::handle(shared, req, peer).await)
                }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_headers(128)
                .max_buf_size(64 * 1024)
                .max_header_size(64 * 1024);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = cut.cancelled() => {
                            // Its client still waits: its calls answer now (a 503, or an SSE
                            // error event), so that it gets an answer rather than a reset.
                            call_stop.cancel();
                            let _ = tokio::time::timeout(CUT_GRACE, conn.as_mut()).await;
                        }
                    }
                }
            }
            drop(permit);
        };
        match home {
            Some(handle) => conns.spawn_on(serve_conn, handle),
            None => conns.spawn(serve_conn),
        };
    }
    drop(listener);
    conn_cancel.cancel();
    if tokio::time::timeout(STOP_GRACE, drain(&mut conns))
        .await
        .is_err()
    {
        cut_open.cancel();
        let more = CUT_GRACE + Duration::from_millis(100);
        if tokio::time::timeout(more, drain(&mut conns)).await.is_err() {
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        }
    }
}

/// An accepted connection: registered with this runtime, or on its way to a connection thread's.
enum Accepted {
    Here(tokio::net::TcpStream),
    Moving(std::net::TcpStream),
}

impl Accepted {
    /// The stream, registered with the runtime this runs on; `None` if that fails (out of
    /// resources: the connection is closed, and its client sees a reset it can retry).
    fn register(self) -> Option<tokio::net::TcpStream> {
        match self {
            Accepted::Here(s) => Some(s),
            Accepted::Moving(s) => tokio::net::TcpStream::from_std(s).ok(),
        }
    }
}

async fn drain(conns: &mut tokio::task::JoinSet<()>) {
    while conns.join_next().await.is_some() {}
}

async fn reject_over_limit(stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":{"message":"Iron Cage router is at its connection limit (maxConnections); retry shortly or raise maxConnections","type":"server_error","param":null,"code":"too_many_connections"}}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{}",
        body.len(),
        body
    );
    let mut s = stream;
    let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(resp.as_bytes())).await;
}
