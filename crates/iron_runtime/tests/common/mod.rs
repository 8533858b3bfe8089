//! Loopback fakes for the router's integration tests: an Iron Cage key server and an LLM provider, each
//! on 127.0.0.1:0, plus a client and helpers that bound every test in time.
#![allow(dead_code)]

pub mod raw;
pub mod sse_answers;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use iron_runtime::Router;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Iron Cage token every test router uses.
pub const IC: &str = "ic_test_token_4f9a2c";
/// Real provider keys the fake key server hands out.
pub const OPENAI_KEY: &str = "sk-real-openai-7d1e";
pub const ANTHROPIC_KEY: &str = "sk-ant-real-anthropic-93bc";

/// Run `f`, failing the test if it takes longer than `secs` seconds.
pub async fn bounded<F: Future>(secs: u64, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs} s"),
    }
}

/// A server task aborted when its owner is dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn spawn_app(app: axum::Router) -> (u16, Task) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind fake server");
    let port = listener.local_addr().expect("local addr").port();
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, Task(handle))
}

/// A port on 127.0.0.1 nothing listens on.
pub fn closed_port() -> u16 {
    // Bound but never listening, and kept for the rest of the process: connections are refused,
    // and no server another test starts can be given the port (a port merely freed again could
    // be, and then answered 404 where a test expected a refused connection).
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let port = s.local_addr().expect("addr").port();
    std::mem::forget(s);
    port
}

// ---------------------------------------------------------------------------------------------
// Fake Iron Cage key server: GET /api/keys
// ---------------------------------------------------------------------------------------------

struct KeyState {
    reply: Mutex<(u16, String)>,
    delay_ms: AtomicU64,
    count: AtomicU64,
    auth_seen: Mutex<Vec<String>>,
}

/// `GET /api/keys` answering a configurable status and body, counting calls.
pub struct FakeKeyServer {
    pub port: u16,
    state: Arc<KeyState>,
    _task: Task,
}

async fn key_handler(State(s): State<Arc<KeyState>>, headers: HeaderMap) -> Response {
    s.count.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Ok(mut a) = s.auth_seen.lock() {
        a.push(auth.clone());
    }
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (status, body) = if auth != format!("Bearer {IC}") {
        (401, r#"{"error":"Invalid token"}"#.to_string())
    } else {
        s.reply
            .lock()
            .map(|r| r.clone())
            .unwrap_or((500, String::new()))
    };
    json_response(status, body)
}

fn json_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

impl FakeKeyServer {
    /// A key server answering `status` with `body` to a request bearing [`IC`].
    pub async fn start(status: u16, body: serde_json::Value) -> FakeKeyServer {
        let state = Arc::new(KeyState {
            reply: Mutex::new((status, body.to_string())),
            delay_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
            auth_seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/api/keys", axum::routing::get(key_handler))
            .with_state(state.clone());
        let (port, task) = spawn_app(app).await;
        FakeKeyServer {
            port,
            state,
            _task: task,
        }
    }

    /// A key server handing out `api_key` (with `provider` if given) whose base_url is `provider_url`.
    pub async fn with_key(
        api_key: &str,
        provider: Option<&str>,
        provider_url: &str,
    ) -> FakeKeyServer {
        let mut body = serde_json::json!({ "api_key": api_key, "base_url": provider_url });
        if let Some(p) = provider {
            body["provider"] = serde_json::Value::String(p.to_string());
        }
        FakeKeyServer::start(200, body).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Change what the next fetches receive.
    pub fn set_reply(&self, status: u16, body: serde_json::Value) {
        if let Ok(mut r) = self.state.reply.lock() {
            *r = (status, body.to_string());
        }
    }

    /// Delay every answer by `ms`.
    pub fn set_delay_ms(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// `GET /api/keys` calls received so far.
    pub fn count(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Authorization headers received, in order.
    pub fn auth_seen(&self) -> Vec<String> {
        self.state
            .auth_seen
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Fake provider: records every request, answers JSON or a paced SSE stream
// ---------------------------------------------------------------------------------------------

/// What the fake provider answers.
#[derive(Clone)]
pub enum Reply {
    Json { status: u16, body: String },
    Sse { events: Vec<String>, gap: Duration },
}

/// One request as the provider received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct ProviderState {
    reply: Mutex<Reply>,
    seen: Mutex<Vec<Seen>>,
    /// When set, only requests bearing this key (`Authorization: Bearer` or `x-api-key`) get the
    /// reply; others get the provider's 401.
    valid_key: Mutex<Option<String>>,
}

/// A provider on 127.0.0.1 that records requests.
pub struct FakeProvider {
    pub port: u16,
    state: Arc<ProviderState>,
    _task: Task,
}

async fn provider_handler(State(s): State<Arc<ProviderState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let valid_key = s.valid_key.lock().map(|k| k.clone()).unwrap_or(None);
    let refused = valid_key.is_some_and(|k| {
        seen.header("authorization") != format!("Bearer {k}") && seen.header("x-api-key") != k
    });
    if let Ok(mut v) = s.seen.lock() {
        v.push(seen);
    }
    if refused {
        return json_response(
            401,
            r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.to_string(),
        );
    }
    let reply = s.reply.lock().map(|r| r.clone()).unwrap_or(Reply::Json {
        status: 500,
        body: String::new(),
    });
    match reply {
        Reply::Json { status, body } => {
            let mut r = json_response(status, body);
            r.headers_mut()
                .insert("x-fake-provider", HeaderValue::from_static("yes"));
            r.headers_mut()
                .insert("set-cookie", HeaderValue::from_static("upstream=1"));
            r
        }
        Reply::Sse { events, gap } => {
            let stream = futures_util::stream::unfold(
                (events.into_iter(), true),
                move |(mut it, first)| async move {
                    let ev = it.next()?;
                    if !first {
                        tokio::time::sleep(gap).await;
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(ev)), (it, false)))
                },
            );
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/event-stream"),
            );
            r.headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-cache"));
            r
        }
    }
}

impl FakeProvider {
    /// A provider answering every request with `reply`.
    pub async fn start(reply: Reply) -> FakeProvider {
        let state = Arc::new(ProviderState {
            reply: Mutex::new(reply),
            seen: Mutex::new(Vec::new()),
            valid_key: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(provider_handler)
            .with_state(state.clone());
        let (port, task) = spawn_app(app).await;
        FakeProvider {
            port,
            state,
            _task: task,
        }
    }

    /// A provider answering 200 with `body`.
    pub async fn json(body: serde_json::Value) -> FakeProvider {
        FakeProvider::start(Reply::Json {
            status: 200,
            body: body.to_string(),
        })
        .await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Accept only `key` from now on (`None`: any key); other keys get a 401.
    pub fn set_valid_key(&self, key: Option<&str>) {
        if let Ok(mut k) = self.state.valid_key.lock() {
            *k = key.map(str::to_string);
        }
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// The only request received (fails the test if there were more or none).
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(
            seen.len(),
            1,
            "expected exactly one upstream request, got {}",
            seen.len()
        );
        seen.into_iter().next().expect("one request")
    }
}

// ---------------------------------------------------------------------------------------------
// Router and client helpers
// ---------------------------------------------------------------------------------------------

/// Start a router on the key server with extra options merged in.
pub fn start_router(ks: &FakeKeyServer, extra: serde_json::Value) -> Router {
    let mut opts = serde_json::json!({ "apiKey": IC, "serverUrl": ks.url() });
    if let (Some(o), Some(e)) = (opts.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    Router::start_json(&opts.to_string()).expect("router starts")
}

/// A client that ignores proxy environment variables.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// POST a JSON body with the IC token as a Bearer header.
pub async fn post(router: &Router, path: &str, body: &serde_json::Value) -> reqwest::Response {
    post_with(
        router,
        path,
        body.to_string(),
        &[("authorization", &format!("Bearer {IC}"))],
    )
    .await
}

/// POST a JSON body with the IC token on the given client: calls on one keep-alive client
/// connection are served on one connection thread (and share its pool of provider connections).
pub async fn post_on(
    agent: &reqwest::Client,
    router: &Router,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    agent
        .post(format!("http://127.0.0.1:{}{path}", router.port()))
        .header("authorization", format!("Bearer {IC}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("router answers")
}

/// POST raw bytes with the given headers.
pub async fn post_with(
    router: &Router,
    path: &str,
    body: String,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("http://127.0.0.1:{}{path}", router.port()))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("router answers")
}

/// Status and body parsed as JSON.
pub async fn status_json(resp: reqwest::Response) -> (u16, serde_json::Value, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json, text)
}

/// Send raw HTTP/1.1 bytes and return the whole answer as text (the request should say `Connection: close`).
pub async fn raw(port: u16, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal OpenAI chat body.
pub fn chat_body(model: &str) -> serde_json::Value {
    serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] })
}

/// A minimal Anthropic messages body.
pub fn messages_body(model: &str) -> serde_json::Value {
    serde_json::json!({ "model": model, "max_tokens": 16, "messages": [{ "role": "user", "content": "hi" }] })
}

/// A plausible OpenAI chat completion.
pub fn chat_completion() -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hello" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6 }
    })
}

/// `base` with the members of `extra` added or replaced (both JSON objects).
#[allow(dead_code)]
pub fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

/// The cost of the next settled call: its `response` event's `costMicros`.
#[allow(dead_code)]
pub async fn next_cost(events: &mut iron_runtime::events::Subscription) -> u64 {
    loop {
        let ev = events.recv().await.expect("event bus open");
        if let iron_runtime::RouterEvent::Response { cost_micros, .. } = &**ev {
            return *cost_micros;
        }
    }
}
