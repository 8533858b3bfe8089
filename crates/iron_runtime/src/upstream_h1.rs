//! The upstream HTTP/1.1 client: pooled keep-alive connections (plain TCP for loopback, rustls
//! with the webpki roots otherwise), one write per request, and a response body read straight from
//! the socket in large reads. A streamed answer therefore reaches the relay as whatever has
//! arrived (dozens of SSE events per read) rather than one channel hand-off per chunk, which is
//! what a general-purpose client with a connection task costs on a burst.
//!
//! Rules that protect the key: no redirects are followed, no proxy environment variables are read,
//! and a connection is reused only for the origin (scheme, host, port) it was opened to.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// A chunk-size line or trailer section longer than this is not HTTP.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;
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

/// Where a connection goes: it is reused only for the same origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

struct Pool {
    idle: Mutex<HashMap<Origin, Vec<(Conn, Instant)>>>,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
}

impl Pool {
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.get_mut(origin)?;
        let now = Instant::now();
        while let Some((conn, since)) = conns.pop() {
            if now.duration_since(since) < IDLE_TIMEOUT && conn.idle_and_open() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, origin: Origin, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
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
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                // The ring provider supports the default versions; this branch is unreachable.
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        H1Client {
            pool: Arc::new(Pool {
                idle: Mutex::new(HashMap::new()),
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                connect_timeout,
            }),
        }
    }

    /// Sends one request and returns the response head with its body still to be read. A pooled
    /// connection that turns out to be closed is replaced by a new one once (the request never
    /// reached a server that answered).
    pub async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
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
        let origin = Origin {
            https,
            host: authority.host().to_string(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        };
        let request = encode_request(method, uri, authority.as_str(), headers, body);
        let head_only = *method == Method::HEAD;
        if let Some(conn) = self.pool.checkout(&origin) {
            match exchange(conn, &request, head_only).await {
                Ok(parts) => return Ok(self.response(origin, parts)),
                Err(Exchange::Stale(_)) => {}
                Err(Exchange::Failed(e)) => return Err(H1Error::Io(e)),
            }
        }
        let conn = self.pool.connect(&origin).await?;
        match exchange(conn, &request, head_only).await {
            Ok(parts) => Ok(self.response(origin, parts)),
            Err(Exchange::Stale(e) | Exchange::Failed(e)) => Err(H1Error::Io(e)),
        }
    }

    /// Closes pooled connections idle for longer than the idle timeout (or closed by the provider).
    pub fn sweep(&self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for conns in idle.values_mut() {
            conns.retain(|(conn, since)| {
                now.duration_since(*since) < IDLE_TIMEOUT && conn.idle_and_open()
            });
        }
        idle.retain(|_, conns| !conns.is_empty());
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

/// The request line, `host`, the given headers, `content-length` and the body, in one buffer.
fn encode_request(
    method: &Method,
    uri: &Uri,
    authority: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Vec<u8> {
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = Vec::with_capacity(256 + headers.len() * 48 + body.len());
    for part in [
        method.as_str(),
        " ",
        target,
        " HTTP/1.1\r\nhost: ",
        host,
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        if name == "host" || name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(*method, Method::GET | Method::HEAD) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// How one request/response exchange failed.
enum Exchange {
    /// Nothing came back on a connection that may have been closed while idle: safe to retry.
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

async fn exchange(mut conn: Conn, request: &[u8], head_only: bool) -> Result<Head, Exchange> {
    let sent = async {
        conn.write_all(request).await?;
        conn.flush().await
    };
    if let Err(e) = sent.await {
        return Err(Exchange::Stale(format!("sending the request failed: {e}")));
    }
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

enum Parsed {
    /// A 1xx answer of this many bytes, to skip.
    Interim(usize),
    Final {
        len: usize,
        status: StatusCode,
        headers: HeaderMap,
        framing: Framing,
        keep_alive: bool,
    },
}

/// Parses a response head at the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8], head_only: bool) -> Result<Option<Parsed>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the response head is not valid HTTP/1.1: {e}")),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| format!("invalid response status {code}"))?;
    if status.is_informational() && code != 101 {
        return Ok(Some(Parsed::Interim(len)));
    }
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = resp.version != Some(1);
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid response header name {:?}", h.name))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| format!("invalid value for response header {name}"))?;
        let text = value.to_str().unwrap_or("");
        if name == "content-length" {
            let n = text
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("invalid content-length {text:?}"))?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        } else if name == "transfer-encoding" {
            encoded = true;
            chunked = text
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name == "connection" {
            close |= text
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
        headers.append(name, value);
    }
    let framing = if head_only || code == 204 || code == 304 {
        Framing::Length(0)
    } else if encoded {
        // Transfer-encoding wins over content-length; anything but chunked last runs to close.
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Eof
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Eof
    };
    let keep_alive = !close && !matches!(framing, Framing::Eof);
    Ok(Some(Parsed::Final {
        len,
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body runs until the connection closes.
    Eof,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// What decoding the buffered bytes gave.
enum Decoded {
    /// Body bytes (possibly empty when more input is needed).
    Data(Bytes),
    /// The body is complete; these are its last bytes (possibly empty).
    End(Bytes),
}

/// Decodes as much of `buf` as possible.
fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Decoded, String> {
    match framing {
        Framing::Length(left) => {
            let take = (*left).min(buf.len() as u64) as usize;
            let data = buf.split_to(take).freeze();
            *left -= take as u64;
            Ok(if *left == 0 {
                Decoded::End(data)
            } else {
                Decoded::Data(data)
            })
        }
        Framing::Eof => Ok(Decoded::Data(buf.split().freeze())),
        Framing::Chunked(state) => {
            let mut out = BytesMut::new();
            loop {
                match *state {
                    Chunk::Size => {
                        let Some(end) = find_crlf(buf) else {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err("a chunk-size line is too long".into());
                            }
                            return Ok(Decoded::Data(out.freeze()));
                        };
                        let line = std::str::from_utf8(&buf[..end])
                            .map_err(|_| "a chunk-size line is not text".to_string())?;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        if hex.is_empty() || hex.len() > 15 {
                            return Err(format!("invalid chunk size {hex:?}"));
                        }
                        let size = u64::from_str_radix(hex, 16)
                            .map_err(|_| format!("invalid chunk size {hex:?}"))?;
                        buf.advance(end + 2);
                        *state = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Ok(Decoded::Data(out.freeze()));
                        }
                        let take = left.min(buf.len() as u64) as usize;
                        if out.is_empty() && take == left as usize && buf.len() == take {
                            // The common case of one whole chunk: hand it over without a copy.
                            *state = Chunk::DataEnd;
                            return Ok(Decoded::Data(buf.split_to(take).freeze()));
                        }
                        out.extend_from_slice(&buf[..take]);
                        buf.advance(take);
                        *state = if take as u64 == left {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - take as u64)
                        };
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Decoded::Data(out.freeze()));
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err("a chunk is not followed by CRLF".into());
                        }
                        buf.advance(2);
                        *state = Chunk::Size;
                    }
                    Chunk::Trailers => {
                        // Trailer fields are skipped; an empty line ends the body.
                        let Some(end) = find_crlf(buf) else {
                            if buf.len() > MAX_TRAILERS {
                                return Err("the trailer section is too long".into());
                            }
                            return Ok(Decoded::Data(out.freeze()));
                        };
                        buf.advance(end + 2);
                        if end == 0 {
                            return Ok(Decoded::End(out.freeze()));
                        }
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, input: &[&[u8]]) -> Result<(Vec<u8>, bool), String> {
        let mut f = framing;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input {
            buf.extend_from_slice(piece);
            loop {
                match decode(&mut f, &mut buf)? {
                    Decoded::End(d) => {
                        out.extend_from_slice(&d);
                        return Ok((out, true));
                    }
                    Decoded::Data(d) if d.is_empty() => break,
                    Decoded::Data(d) => out.extend_from_slice(&d),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_cut() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 1..wire.len() {
            let pieces: Vec<&[u8]> = wire.chunks(cut).collect();
            let (out, end) = decode_all(Framing::Chunked(Chunk::Size), &pieces).expect("decodes");
            assert_eq!(out, b"hello, world", "cut {cut}");
            assert!(end, "cut {cut}");
        }
        let bad = decode_all(Framing::Chunked(Chunk::Size), &[b"zz\r\n"]);
        assert!(bad.is_err());
        let no_crlf = decode_all(Framing::Chunked(Chunk::Size), &[b"2\r\nabXY"]);
        assert!(no_crlf.is_err());
        let long = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert!(decode_all(Framing::Chunked(Chunk::Size), &[&long]).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Any bytes, cut anywhere: decoding never panics and never yields more than came in.
        #[test]
        fn any_bytes_decode_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cut in 1usize..64,
            wire_like in proptest::prelude::any::<bool>(),
        ) {
            let mut input = bytes;
            if wire_like {
                // Mostly valid framing with noise in it.
                input = [b"a\r\n0123456789\r\n".as_slice(), &input, b"\r\n0\r\n\r\n"].concat();
            }
            let pieces: Vec<&[u8]> = input.chunks(cut).collect();
            if let Ok((out, _)) = decode_all(Framing::Chunked(Chunk::Size), &pieces) {
                proptest::prop_assert!(out.len() <= input.len());
            }
        }
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let (out, end) = decode_all(Framing::Length(5), &[b"hel", b"loEXTRA"]).expect("ok");
        assert_eq!((out.as_slice(), end), (&b"hello"[..], true));
        let (out, end) = decode_all(Framing::Length(5), &[b"hel"]).expect("ok");
        assert_eq!((out.as_slice(), end), (&b"hel"[..], false));
    }

    #[test]
    fn heads_set_framing_and_reuse() {
        let parse = |s: &str, head_only: bool| match parse_head(s.as_bytes(), head_only) {
            Ok(Some(Parsed::Final {
                framing,
                keep_alive,
                status,
                ..
            })) => (status.as_u16(), framing, keep_alive),
            Ok(Some(Parsed::Interim(_))) => (100, Framing::Eof, false),
            other => panic!("{s:?}: {}", matches!(other, Ok(None))),
        };
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", false),
            (200, Framing::Length(3), true)
        );
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
                false
            ),
            (200, Framing::Chunked(Chunk::Size), true)
        );
        assert_eq!(
            parse(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\n",
                false
            ),
            (200, Framing::Length(3), false)
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\n\r\n", false),
            (200, Framing::Eof, false)
        );
        assert!(!parse("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false).2);
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true),
            (200, Framing::Length(0), true)
        );
        assert_eq!(
            parse("HTTP/1.1 204 No Content\r\n\r\n", false).1,
            Framing::Length(0)
        );
        assert_eq!(parse("HTTP/1.1 100 Continue\r\n\r\n", false).0, 100);
        assert!(parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false)
            .expect("partial")
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n", false).is_err());
    }

    #[test]
    fn requests_carry_host_length_and_no_hop_headers() {
        let uri: Uri = "http://127.0.0.1:8080/v1/chat?x=1".parse().expect("uri");
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer k"));
        h.insert("content-length", HeaderValue::from_static("999"));
        let wire = encode_request(
            &Method::POST,
            &uri,
            "127.0.0.1:8080",
            &h,
            &Bytes::from_static(b"{}"),
        );
        let text = String::from_utf8(wire).expect("text");
        assert_eq!(
            text,
            "POST /v1/chat?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nauthorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}"
        );
        let get = encode_request(
            &Method::GET,
            &uri,
            "127.0.0.1:8080",
            &HeaderMap::new(),
            &Bytes::new(),
        );
        assert!(!String::from_utf8_lossy(&get).contains("content-length"));
    }
}
