//! The upstream HTTP/1.1 client: pooled keep-alive connections (plain TCP for loopback, rustls
//! with the webpki roots otherwise), one write per request, and a response body read straight from
//! the socket in large reads. A streamed answer therefore reaches the relay as whatever has
//! arrived (dozens of SSE events per read) rather than one channel hand-off per chunk, which is
//! what a general-purpose client with a connection task costs on a burst.
//!
//! Rules that protect the key: no redirects are followed, no proxy environment variables are read,
//! and a connection is reused only for the origin (scheme, host, port) it was opened to.

use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use wire::{decode, encode_request, parse_head, Decoded, Framing, Parsed};

mod wire;

/// Largest response head accepted.
/// `progress` of a send: connecting (nothing written yet).
pub const CONNECTING: u8 = 0;
/// Connected, the request being written.
pub const SENDING: u8 = 1;
/// The whole request written: the provider may have it.
pub const SENT: u8 = 2;

const MAX_HEAD: usize = 64 * 1024;
/// Room made for a read of the response head, and of the body (a burst arrives in pieces this big).
const HEAD_READ: usize = 8 * 1024;
const BODY_READ: usize = 32 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// Why a request got no response head.
#[derive(Debug)]
pub enum H1Error {
    /// No connection could be made (DNS, refused, TLS handshake).
    Connect(String),
    /// The connect timeout ran out.
    ConnectTimeout,
    /// The connection failed while sending or before the head arrived.
    Io(String),
}

/// A connection to an upstream: plain TCP or TLS over TCP.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// An idle connection is usable when the peer has sent nothing since (no close, no stray
    /// bytes): the read must report "would block".
    fn idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where a connection goes: it is reused only for the same origin, and only on the connection
/// thread whose runtime its socket is registered with (see `conn_workers`): used from another,
/// each of its reads and writes would wake that thread to wake this one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
    slot: usize,
}

struct Pool {
    idle: Mutex<HashMap<Origin, Vec<(Conn, Instant)>>>,
    /// Set when the router stops: connections are closed after their call instead of pooled.
    closed: AtomicBool,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
}

/// A pooled connection may serve another request: not idle too long, not closed by the peer.
fn still_usable(conn: &Conn, since: Instant, now: Instant) -> bool {
    now.duration_since(since) < IDLE_TIMEOUT && conn.idle_and_open()
}

impl Pool {
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.get_mut(origin)?;
        let now = Instant::now();
        while let Some((conn, since)) = conns.pop() {
            if still_usable(&conn, since, now) {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, origin: Origin, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `close` empties the pool with: none slips in after it.
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let conns = idle.entry(origin).or_default();
        let now = Instant::now();
        // The oldest come first: drop those that have been idle too long.
        let expired = conns
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
            .count();
        conns.drain(..expired);
        if conns.len() < MAX_IDLE_PER_ORIGIN {
            conns.push((conn, now));
        }
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, H1Error> {
        match tokio::time::timeout(self.connect_timeout, self.connect_now(origin)).await {
            Ok(r) => r,
            Err(_) => Err(H1Error::ConnectTimeout),
        }
    }

    async fn connect_now(&self, origin: &Origin) -> Result<Conn, H1Error> {
        let host = origin.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![(ip, origin.port).into()],
            Err(_) => tokio::net::lookup_host((host, origin.port))
                .await
                .map_err(|e| H1Error::Connect(format!("could not resolve {host}: {e}")))?
                .collect(),
        };
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            let why = last.map_or("no address".to_string(), |e| e.to_string());
            H1Error::Connect(format!(
                "could not connect to {host}:{}: {why}",
                origin.port
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        if !origin.https {
            return Ok(Conn::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            H1Error::Connect(format!("tls: {host} is not a valid server name: {e}"))
        })?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| H1Error::Connect(format!("tls handshake with {host} failed: {e}")))?;
        Ok(Conn::Tls(Box::new(tls)))
    }
}

/// The pooled upstream client (cheap to clone).
#[derive(Clone)]
pub struct H1Client {
    pool: Arc<Pool>,
}

impl H1Client {
    /// A client whose new connections (TCP and TLS handshake) must be ready within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> H1Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        H1Client {
            pool: Arc::new(Pool {
                idle: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                connect_timeout,
            }),
        }
    }

    /// Sends one request and returns the response head with its body still to be read. A pooled
    /// connection that turns out to be closed is replaced by a new one once (the request never
    /// reached a server that answered).
    ///
    /// `progress` says how far the request got on the connection whose answer is awaited
    /// ([`CONNECTING`], [`SENDING`], [`SENT`]; back to connecting if a pooled connection turns out
    /// stale): a caller that gives up waiting can tell "nothing sent" (safe to retry) from "sent,
    /// no answer yet".
    pub async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
        progress: &AtomicU8,
    ) -> Result<Response<UpstreamBody>, H1Error> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(H1Error::Connect(format!(
                    "unsupported scheme {:?}",
                    other.unwrap_or("")
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| H1Error::Connect("the upstream URL has no host".into()))?;
        // A port that does not parse is an error, never the scheme's default: the key would go
        // to another service on the same host.
        let port = match authority.as_str().rsplit_once(':') {
            Some((_, p)) if !p.ends_with(']') => authority.port_u16().ok_or_else(|| {
                H1Error::Connect("the upstream URL's port is not a number".into())
            })?,
            _ => {
                if https {
                    443
                } else {
                    80
                }
            }
        };
        let origin = Origin {
            https,
            host: authority.host().to_string(),
            port,
            slot: crate::conn_workers::slot(),
        };
        let request = encode_request(method, uri, authority.as_str(), headers, body);
        let head_only = *method == Method::HEAD;
        if let Some(conn) = self.pool.checkout(&origin) {
            match exchange(conn, &request, head_only, progress).await {
                Ok(parts) => return Ok(self.response(origin, parts)),
                // A reused connection that failed before a byte of answer came back: the
                // provider closed it while idle and its close crossed our request (a keep-alive
                // timeout; the check at checkout misses a close still in flight). The provider
                // did not read the request, so a new connection gets it, once. (A provider that
                // read a whole request and hung up without a byte looks the same, and gets it
                // twice: far rarer than the race. A fresh connection, or one that broke off in
                // the answer's head, is never sent again: see `forward::send`.)
                Err(Exchange::Stale(_)) => progress.store(CONNECTING, Ordering::Release),
                Err(Exchange::Failed(e)) => return Err(H1Error::Io(e)),
            }
        }
        let conn = self.pool.connect(&origin).await?;
        match exchange(conn, &request, head_only, progress).await {
            Ok(parts) => Ok(self.response(origin, parts)),
            Err(Exchange::Stale(e) | Exchange::Failed(e)) => Err(H1Error::Io(e)),
        }
    }

    /// Closes pooled connections idle for longer than the idle timeout (or closed by the provider).
    pub fn sweep(&self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for conns in idle.values_mut() {
            conns.retain(|(conn, since)| still_usable(conn, *since, now));
        }
        idle.retain(|_, conns| !conns.is_empty());
    }

    /// Closes every pooled connection and pools none from now on (the router stopped): a
    /// connection still serving a call is closed when that call ends.
    pub fn close(&self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        self.pool.closed.store(true, Ordering::Release);
        let conns = std::mem::take(&mut *idle);
        drop(idle);
        drop(conns);
    }

    /// Connections waiting in the pool (for tests and stats).
    pub fn idle_connections(&self) -> usize {
        let idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }

    fn response(&self, origin: Origin, head: Head) -> Response<UpstreamBody> {
        let body = UpstreamBody {
            conn: Some(head.conn),
            buf: head.rest,
            framing: head.framing,
            reusable: head.keep_alive,
            done: false,
            home: Some((Arc::downgrade(&self.pool), origin)),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp
    }
}

/// How one request/response exchange failed.
enum Exchange {
    /// Nothing came back on a connection that may have been closed while idle: a reused
    /// connection's request goes once more on a new one (see `H1Client::send`).
    Stale(String),
    Failed(String),
}

/// A parsed response head, the connection and the bytes read past the head.
struct Head {
    conn: Conn,
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
    rest: BytesMut,
}

async fn exchange(
    mut conn: Conn,
    request: &[u8],
    head_only: bool,
    progress: &AtomicU8,
) -> Result<Head, Exchange> {
    progress.store(SENDING, Ordering::Release);
    let sent = async {
        conn.write_all(request).await?;
        conn.flush().await
    };
    if let Err(e) = sent.await {
        return Err(Exchange::Stale(format!("sending the request failed: {e}")));
    }
    progress.store(SENT, Ordering::Release);
    let mut buf = BytesMut::with_capacity(HEAD_READ);
    loop {
        match read_more(&mut conn, &mut buf).await {
            Ok(0) if buf.is_empty() => {
                return Err(Exchange::Stale(
                    "the connection closed before the response began".into(),
                ))
            }
            Ok(0) => {
                return Err(Exchange::Failed(
                    "the connection closed in the middle of the response head".into(),
                ))
            }
            Err(e) if buf.is_empty() => {
                return Err(Exchange::Stale(format!("reading the response failed: {e}")))
            }
            Err(e) => {
                return Err(Exchange::Failed(format!(
                    "reading the response failed: {e}"
                )))
            }
            Ok(_) => {}
        }
        loop {
            match parse_head(&buf, head_only).map_err(Exchange::Failed)? {
                None if buf.len() > MAX_HEAD => {
                    return Err(Exchange::Failed(format!(
                        "the response head is larger than {MAX_HEAD} bytes"
                    )))
                }
                None => break,
                Some(Parsed::Interim(n)) => buf.advance(n),
                Some(Parsed::Final {
                    len,
                    status,
                    headers,
                    framing,
                    keep_alive,
                }) => {
                    buf.advance(len);
                    return Ok(Head {
                        conn,
                        status,
                        headers,
                        framing,
                        keep_alive,
                        rest: buf,
                    });
                }
            }
            if buf.is_empty() {
                break;
            }
        }
    }
}

async fn read_more(conn: &mut Conn, buf: &mut BytesMut) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    make_room(buf, HEAD_READ);
    conn.read_buf(buf).await
}

/// Grows `buf` only when little room is left (a realloc per read would copy what is buffered).
fn make_room(buf: &mut BytesMut, size: usize) {
    if buf.capacity() - buf.len() < size / 8 {
        buf.reserve(size);
    }
}

/// The body of an upstream response: a stream of whatever has arrived, decoded. The connection
/// goes back to the pool only once the body has been read to its end.
pub struct UpstreamBody {
    conn: Option<Conn>,
    buf: BytesMut,
    framing: Framing,
    reusable: bool,
    done: bool,
    home: Option<(Weak<Pool>, Origin)>,
}

impl UpstreamBody {
    fn finish(&mut self) {
        self.done = true;
        let conn = self.conn.take();
        if let (Some(conn), true, true) = (conn, self.reusable, self.buf.is_empty()) {
            if let Some((pool, origin)) = self.home.take() {
                if let Some(pool) = pool.upgrade() {
                    pool.put(origin, conn);
                }
            }
        }
    }

    fn fail(&mut self, why: String) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        self.conn = None;
        Poll::Ready(Some(Err(io::Error::other(why))))
    }
}

impl futures_util::Stream for UpstreamBody {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match decode(&mut this.framing, &mut this.buf) {
                Err(why) => return this.fail(format!("invalid response body: {why}")),
                Ok(Decoded::End(data)) => {
                    this.finish();
                    if !data.is_empty() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                    return Poll::Ready(None);
                }
                Ok(Decoded::Data(data)) if !data.is_empty() => {
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::Data(_)) => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            make_room(&mut this.buf, BODY_READ);
            match tokio_util::io::poll_read_buf(Pin::new(conn), cx, &mut this.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(format!("reading the body failed: {e}")),
                Poll::Ready(Ok(0)) => {
                    if this.framing == Framing::Eof {
                        this.reusable = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    return this.fail("the connection closed before the body was complete".into());
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}
