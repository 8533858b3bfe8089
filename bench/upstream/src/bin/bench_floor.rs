//! The floor of a proxy built on the router's stack: a hyper HTTP/1.1 server on a two-worker tokio
//! runtime that forwards each request to the upstream over a keep-alive connection of its own (one
//! upstream connection per client connection, so no pool) and sends the answer back, with no policy,
//! no parsing and no accounting. `bench/floor.mjs` measures it beside nginx and the router to tell
//! how much of the router's cost per request is the stack and how much is the router.
//!
//! `bench_floor PORT UPSTREAM_PORT [THREADS] [per-core]` prints `listening PORT` and serves until
//! killed; `per-core` runs one single-threaded runtime per thread on a shared port instead of one
//! multi-threaded runtime (the design nginx's workers have).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::Mutex;

type Upstream = Arc<Mutex<Option<SendRequest<Full<Bytes>>>>>;

async fn connect(port: u16) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

async fn forward(
    req: Request<Incoming>,
    upstream: Upstream,
    port: u16,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let mut out = Request::builder().method(parts.method).uri(parts.uri);
    for (k, v) in parts.headers.iter() {
        out = out.header(k, v);
    }
    let out = out.body(Full::new(body)).map_err(std::io::Error::other)?;
    let mut slot = upstream.lock().await;
    if slot.as_ref().is_none_or(|s| s.is_closed()) {
        *slot = Some(connect(port).await?);
    }
    let send = slot.as_mut().expect("connected");
    send.ready().await.map_err(std::io::Error::other)?;
    let resp = send
        .send_request(out)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Serves the client connections `listener` accepts, each with its own upstream connection.
async fn serve(listener: tokio::net::TcpListener, up: u16) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let upstream: Upstream = Arc::new(Mutex::new(None));
            let svc = service_fn(move |req| forward(req, upstream.clone(), up));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// A listener on `port` that shares the port with the other threads' (`SO_REUSEPORT`: the kernel
/// spreads new connections over them).
fn shared_port_listener(port: u16) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("bind");
    socket.listen(1024).expect("listen")
}

/// One single-threaded runtime per thread, each accepting on its own listener of the same port
/// and serving its connections to the end on that thread (as nginx's workers do).
fn per_core(port: u16, up: u16, threads: usize) {
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<u16>();
    let start = |bind: u16| {
        let bound = bound_tx.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = shared_port_listener(bind);
                let _ = bound.send(listener.local_addr().expect("addr").port());
                serve(listener, up).await;
            });
        })
    };
    let mut handles = vec![start(port)];
    let chosen = bound_rx.recv().expect("first listener");
    handles.extend((1..threads).map(|_| start(chosen)));
    // Every listener is bound before the port is announced: connections made earlier would all
    // go to the first.
    for _ in 1..threads {
        bound_rx.recv().expect("listener");
    }
    println!("listening {chosen}");
    for h in handles {
        let _ = h.join();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let up: u16 = args
        .get(2)
        .and_then(|p| p.parse().ok())
        .expect("UPSTREAM_PORT");
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    if args.get(4).map(String::as_str) == Some("per-core") {
        return per_core(port, up, threads);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        println!("listening {}", listener.local_addr().expect("addr").port());
        serve(listener, up).await;
    });
}
