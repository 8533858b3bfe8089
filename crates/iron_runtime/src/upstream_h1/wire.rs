//! The HTTP/1.1 wire format of the upstream client: the request bytes, the response head, and
//! the body's framing (content-length, chunked, read-to-close), decoded from whatever has been read.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use bytes::{Buf, Bytes, BytesMut};

const MAX_HEADERS: usize = 128;
/// A chunk-size line or trailer section longer than this is not HTTP.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;

/// The request line, `host`, the given headers, `content-length` and the body, in one buffer.
pub(super) fn encode_request(
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

pub(super) enum Parsed {
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
pub(super) fn parse_head(buf: &[u8], head_only: bool) -> Result<Option<Parsed>, String> {
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
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body runs until the connection closes.
    Eof,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// What decoding the buffered bytes gave.
pub(super) enum Decoded {
    /// Body bytes (possibly empty when more input is needed).
    Data(Bytes),
    /// The body is complete; these are its last bytes (possibly empty).
    End(Bytes),
}

/// Decodes as much of `buf` as possible.
pub(super) fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Decoded, String> {
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
