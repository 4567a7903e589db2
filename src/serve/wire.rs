//! HTTP/1.1 on the wire, without I/O: the request head (parsed by httparse), the request body's
//! framing and chunked decoding, and the response head. Kept pure so every rule is unit-tested.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{Method, Request, StatusCode, Uri, Version};

/// More than any real client sends; a head past it is refused with 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// A chunk-size line (hex digits and extensions) longer than this is not a real client.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a request cannot be served; each maps to the status the caller gets before the connection closes.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    Malformed(&'static str),
    HeadTooLarge,
}

impl WireError {
    pub fn status(&self) -> StatusCode {
        match self {
            WireError::Malformed(_) => StatusCode::BAD_REQUEST,
            WireError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The error code in the API's error shape.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Malformed(_) => "malformed_http",
            WireError::HeadTooLarge => "headers_too_large",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            WireError::Malformed(why) => why,
            WireError::HeadTooLarge => "the request head exceeds 64 KiB or 100 headers",
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum BodyFraming {
    Length(u64),
    Chunked,
}

/// A parsed request head: the request without its body, and what the connection needs to know.
#[derive(Debug)]
pub struct Head {
    pub request: Request<()>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expects_continue: bool,
}

/// Parses the head at the start of `buffer`. `Ok(None)`: more bytes are needed. On success the
/// head's bytes are removed from `buffer`; the header values share one exact-size copy, so the
/// read buffer is not kept alive by a request that waits seconds for the model.
pub fn parse_head(buffer: &mut BytesMut) -> Result<Option<Head>, WireError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buffer) {
        // However the bytes arrived: one read may hold a whole head past the limit.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => return Err(WireError::HeadTooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD_BYTES => return Err(WireError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::HeadTooLarge),
        Err(_) => return Err(WireError::Malformed("the request line or a header is not valid HTTP/1.1")),
    };
    let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| WireError::Malformed("the method is not valid"))?;
    let uri: Uri =
        parsed.path.unwrap_or_default().parse().map_err(|_| WireError::Malformed("the request target is not valid"))?;

    let values_len = parsed.headers.iter().map(|h| h.value.len()).sum();
    let mut values = Vec::with_capacity(values_len);
    for header in parsed.headers.iter() {
        values.extend_from_slice(header.value);
    }
    let values = Bytes::from(values);
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut at = 0;
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| WireError::Malformed("a header name is not valid"))?;
        let value = HeaderValue::from_maybe_shared(values.slice(at..at + header.value.len()))
            .map_err(|_| WireError::Malformed("a header value is not valid"))?;
        at += header.value.len();
        headers.append(name, value);
    }
    buffer.advance(head_len);

    let framing = body_framing(&headers)?;
    let keep_alive = wants_keep_alive(version, &headers);
    let expects_continue = version == Version::HTTP_11
        && headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(Head { request, framing, keep_alive, expects_continue }))
}

/// RFC 9112 §6.3: chunked wins only when it is the final coding and no Content-Length competes;
/// anything ambiguous is refused, because a proxy in front may have read it differently (smuggling).
fn body_framing(headers: &HeaderMap) -> Result<BodyFraming, WireError> {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(WireError::Malformed("Transfer-Encoding and Content-Length together"));
        }
        let last = codings.last().and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next()).map(str::trim);
        return match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Ok(BodyFraming::Chunked),
            _ => Err(WireError::Malformed("Transfer-Encoding must end with chunked")),
        };
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.to_str().map_err(|_| WireError::Malformed("Content-Length is not a number"))?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WireError::Malformed("Content-Length is not a number"));
            }
            let parsed: u64 = part.parse().map_err(|_| WireError::Malformed("Content-Length is not a number"))?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(WireError::Malformed("Content-Length values differ"));
            }
            length = Some(parsed);
        }
    }
    Ok(BodyFraming::Length(length.unwrap_or(0)))
}

fn wants_keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// Incremental chunked decoding: bytes are taken from the read buffer as they arrive.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub enum ChunkedState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Moves what `input` holds of a chunked body into `body`. Returns true once the last chunk and
/// the trailers are read. Decoding stops early (returning true) once `body` passes `limit`, so a
/// body past the limit costs at most `limit` bytes; the caller sees the excess and answers 413.
pub fn decode_chunked(
    state: &mut ChunkedState,
    input: &mut BytesMut,
    body: &mut BytesMut,
    limit: usize,
) -> Result<bool, WireError> {
    loop {
        match *state {
            ChunkedState::Size => {
                let Some(line) = take_line(input)? else { return Ok(false) };
                let digits = line[..].split(|&b| b == b';').next().unwrap_or_default();
                let digits =
                    std::str::from_utf8(digits).map_err(|_| WireError::Malformed("a chunk size is not hex"))?;
                let size = u64::from_str_radix(digits.trim_matches([' ', '\t']), 16)
                    .map_err(|_| WireError::Malformed("a chunk size is not hex"))?;
                *state = if size == 0 { ChunkedState::Trailer } else { ChunkedState::Data(size) };
            }
            ChunkedState::Data(remaining) => {
                if input.is_empty() {
                    return Ok(false);
                }
                let take = remaining.min(input.len() as u64) as usize;
                body.extend_from_slice(&input.split_to(take));
                *state = if take as u64 == remaining {
                    ChunkedState::DataEnd
                } else {
                    ChunkedState::Data(remaining - take as u64)
                };
                if body.len() > limit {
                    return Ok(true);
                }
            }
            ChunkedState::DataEnd => {
                if input.len() < 2 {
                    return Ok(false);
                }
                if &input[..2] != b"\r\n" {
                    return Err(WireError::Malformed("a chunk does not end with CRLF"));
                }
                input.advance(2);
                *state = ChunkedState::Size;
            }
            ChunkedState::Trailer => {
                let Some(line) = take_line(input)? else { return Ok(false) };
                if line.is_empty() {
                    *state = ChunkedState::Done;
                }
            }
            ChunkedState::Done => return Ok(true),
        }
    }
}

/// The next CRLF-terminated line without its CRLF, or None while it is incomplete.
fn take_line(input: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
    match input.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = input.split_to(end);
            input.advance(2);
            Ok(Some(line))
        }
        None if input.len() > MAX_CHUNK_LINE => Err(WireError::Malformed("a chunk-size or trailer line is too long")),
        None => Ok(None),
    }
}

/// How the response body goes out.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ResponseFraming {
    /// 1xx, 204, 304: no body and no length.
    Empty,
    /// HEAD: no body, but the length the GET would have had (axum sets it).
    HeadOnly,
    Length(u64),
    Chunked,
}

/// Writes the status line and headers. `framing` decides Content-Length / Transfer-Encoding,
/// replacing whatever the handler set, so the head always matches the bytes that follow.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    keep_alive: bool,
    request_version: Version,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(http::header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Length(len) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::HeadOnly => {
            if let Some(len) = headers.get(CONTENT_LENGTH) {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(len.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        ResponseFraming::Empty => {}
    }
    match (keep_alive, request_version) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        // HTTP/1.0 closes unless told otherwise.
        (true, Version::HTTP_10) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, _) => {}
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
