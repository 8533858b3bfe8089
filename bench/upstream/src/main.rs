//! Fake OpenAI- and Anthropic-shaped upstream for benchmarks: answers every POST at once, JSON or SSE.
//!
//! `bench_upstream PORT [THREADS]` prints `listening PORT` and serves until killed.
//! Routing: a path containing `/messages` is Anthropic-shaped, anything else OpenAI chat-shaped.
//! A body containing `"stream":true` (spaces allowed) gets an SSE answer. Query parameters:
//! `chunks=N` (SSE content chunks, default 20), `delay_us=N` (pause between chunks, default 0) and
//! `lead=1` (deltas " token" with the space first, as real tokens come, instead of "token ").
//! Bodies are prebuilt per request from string pieces; nothing is parsed beyond the substring checks,
//! so the upstream costs as little as possible next to the proxies under test.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

const OPENAI_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream. This answer is short and fixed."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":14,"total_tokens":134}}"#;
const ANTHROPIC_JSON: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[{"type":"text","text":"Hello from the benchmark upstream. This answer is short and fixed."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":120,"output_tokens":14}}"#;

fn query_num(query: Option<&str>, key: &str, default: u64) -> u64 {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn wants_stream(body: &[u8]) -> bool {
    let Some(i) = body.windows(8).position(|w| w == b"\"stream\"") else {
        return false;
    };
    let rest = &body[i + 8..];
    let rest: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b':')
        .take(4)
        .collect();
    rest == b"true"
}

/// The SSE frames of one answer: head, `chunks` deltas, tail (with usage when asked for).
fn sse_frames(anthropic: bool, chunks: u64, usage: bool) -> (Bytes, Bytes, Bytes) {
    if anthropic {
        let head = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-20241022\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":120,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        );
        let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token \"}}\n\n";
        let tail = format!(
            "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{chunks}}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        (
            Bytes::from_static(head.as_bytes()),
            Bytes::from_static(delta.as_bytes()),
            Bytes::from(tail),
        )
    } else {
        let head = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
        let delta = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token \"},\"finish_reason\":null}]}\n\n";
        let mut tail = String::from("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        if usage {
            tail.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{{\"prompt_tokens\":120,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n", chunks + 120));
        }
        tail.push_str("data: [DONE]\n\n");
        (
            Bytes::from_static(head.as_bytes()),
            Bytes::from_static(delta.as_bytes()),
            Bytes::from(tail),
        )
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let anthropic = req.uri().path().contains("/messages");
    let query = req.uri().query().map(str::to_owned);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !wants_stream(&body) {
        let json = if anthropic {
            ANTHROPIC_JSON
        } else {
            OPENAI_JSON
        };
        let resp = Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(json.as_bytes())).boxed())
            .unwrap_or_default();
        return Ok(resp);
    }
    let chunks = query_num(query.as_deref(), "chunks", 20);
    let delay = Duration::from_micros(query_num(query.as_deref(), "delay_us", 0));
    let usage = body.windows(13).any(|w| w == b"include_usage");
    let (head, mut delta, tail) = sse_frames(anthropic, chunks, usage);
    // `lead=1`: the space before the word, as real model tokens have it (" token").
    if query_num(query.as_deref(), "lead", 0) == 1 {
        let text = String::from_utf8_lossy(&delta).replace("token ", " token");
        delta = Bytes::from(text);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(head))).await.is_err() {
            return;
        }
        for _ in 0..chunks {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(delta.clone()))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Frame::data(tail))).await;
    });
    let resp = Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap_or_default();
    Ok(resp)
}

/// An mpsc receiver as a response body (hyper polls it frame by frame).
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        println!("listening {port}");
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(sock), service_fn(handle))
                    .await;
            });
        }
    });
}
