use super::*;

fn parse(raw: &str) -> Result<Option<Head>, WireError> {
    parse_head(&mut BytesMut::from(raw))
}

fn head(raw: &str) -> Head {
    parse(raw).unwrap().expect("a complete head")
}

#[test]
fn a_complete_head_becomes_a_request_and_leaves_the_body_in_the_buffer() {
    let mut buffer = BytesMut::from(
        "POST /sendChatMessage?x=1 HTTP/1.1\r\nHost: a\r\nAccept: a/b\r\naccept: c/d\r\nContent-Length: 2\r\n\r\n{}",
    );
    let head = parse_head(&mut buffer).unwrap().unwrap();
    assert_eq!(&buffer[..], b"{}");
    assert_eq!(head.request.method(), Method::POST);
    assert_eq!(head.request.uri(), "/sendChatMessage?x=1");
    assert_eq!(head.request.version(), Version::HTTP_11);
    let accepts: Vec<_> = head.request.headers().get_all("accept").iter().collect();
    assert_eq!(accepts, ["a/b", "c/d"]);
    assert_eq!(head.request.headers()["host"], "a");
    assert_eq!(head.framing, BodyFraming::Length(2));
    assert!(head.keep_alive);
    assert!(!head.expects_continue);
}

#[test]
fn an_incomplete_head_asks_for_more_and_consumes_nothing() {
    let mut buffer = BytesMut::from("GET /health HTTP/1.1\r\nHost: a\r\n");
    assert!(parse_head(&mut buffer).unwrap().is_none());
    assert_eq!(buffer.len(), 31);
}

#[test]
fn oversized_and_malformed_heads_are_refused() {
    let huge = format!("GET / HTTP/1.1\r\nx-big: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
    assert_eq!(parse(&huge).unwrap_err(), WireError::HeadTooLarge);
    assert_eq!(parse(&format!("{huge}\r\n")).unwrap_err(), WireError::HeadTooLarge, "complete but too large");
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
    assert_eq!(parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(), WireError::HeadTooLarge);
    assert_eq!(parse(&huge).unwrap_err().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    for bad in ["GET / HTTP/1.1\r\nbad header\r\n\r\n", "G@T / HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n"] {
        let error = parse(bad).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
}

#[test]
fn body_framing_follows_rfc_9112_and_refuses_ambiguity() {
    let framing = |headers: &str| parse(&format!("POST / HTTP/1.1\r\n{headers}\r\n")).map(|h| h.unwrap().framing);
    assert_eq!(framing(""), Ok(BodyFraming::Length(0)));
    assert_eq!(framing("content-length: 10\r\n"), Ok(BodyFraming::Length(10)));
    assert_eq!(framing("content-length: 10, 10\r\ncontent-length: 10\r\n"), Ok(BodyFraming::Length(10)));
    assert_eq!(framing("transfer-encoding: chunked\r\n"), Ok(BodyFraming::Chunked));
    assert_eq!(framing("transfer-encoding: gzip, Chunked\r\n"), Ok(BodyFraming::Chunked));
    for bad in [
        "content-length: 10\r\ncontent-length: 11\r\n",
        "content-length: -1\r\n",
        "content-length: +5\r\n",
        "content-length: 0x10\r\n",
        "transfer-encoding: chunked\r\ncontent-length: 3\r\n",
        "transfer-encoding: chunked, gzip\r\n",
    ] {
        assert!(matches!(framing(bad), Err(WireError::Malformed(_))), "{bad:?}");
    }
}

#[test]
fn keep_alive_and_expect_continue_follow_the_version() {
    assert!(!head("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\ncontent-length: 5\r\n\r\n").expects_continue);
    assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\ncontent-length: 5\r\n\r\n").expects_continue);
}

fn decode_all(pieces: &[&str], limit: usize) -> Result<(bool, Vec<u8>, Vec<u8>), WireError> {
    let (mut state, mut input, mut body) = (ChunkedState::default(), BytesMut::new(), BytesMut::new());
    let mut done = false;
    for piece in pieces {
        input.extend_from_slice(piece.as_bytes());
        done = decode_chunked(&mut state, &mut input, &mut body, limit)?;
        if done {
            break;
        }
    }
    Ok((done, body.to_vec(), input.to_vec()))
}

#[test]
fn chunked_bodies_decode_across_any_split_and_leave_the_next_request() {
    let whole = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nGET /next";
    let (done, body, rest) = decode_all(&[whole], 1000).unwrap();
    assert!(done);
    assert_eq!(body, b"hello, world");
    assert_eq!(rest, b"GET /next");
    // Byte by byte: every state must wait for its missing bytes.
    let bytes: Vec<String> = whole[..whole.len() - 9].chars().map(String::from).collect();
    let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
    let (done, body, rest) = decode_all(&pieces, 1000).unwrap();
    assert!(done);
    assert_eq!(body, b"hello, world");
    assert!(rest.is_empty());
    let (done, _, _) = decode_all(&["5\r\nhello\r\n"], 1000).unwrap();
    assert!(!done, "no last chunk yet");
}

#[test]
fn chunked_decoding_stops_past_the_limit_and_refuses_garbage() {
    let (done, body, _) = decode_all(&["a\r\n0123456789\r\na\r\n0123456789\r\n"], 12).unwrap();
    assert!(done, "stops once past the limit");
    assert!(body.len() > 12 && body.len() <= 20);
    assert!(decode_all(&["zz\r\n"], 100).is_err());
    assert!(decode_all(&["3\r\nabcXX"], 100).is_err(), "chunk without CRLF");
    assert!(decode_all(&[&"1".repeat(MAX_CHUNK_LINE + 1)], 100).is_err());
}

fn encoded(
    status: StatusCode,
    headers: &[(&str, &str)],
    framing: ResponseFraming,
    keep_alive: bool,
    v: Version,
) -> String {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    let mut out = Vec::new();
    encode_head(&mut out, status, &map, framing, keep_alive, v, b"Sun, 29 Nov 2026 02:00:00 GMT");
    String::from_utf8(out).unwrap()
}

#[test]
fn the_response_head_states_exactly_the_framing_that_follows() {
    let head = encoded(
        StatusCode::OK,
        &[("content-type", "application/json"), ("content-length", "999"), ("x-a", "1")],
        ResponseFraming::Length(12),
        true,
        Version::HTTP_11,
    );
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-a: 1\r\ndate: Sun, 29 Nov 2026 02:00:00 GMT\r\n\
         content-length: 12\r\n\r\n"
    );
    let chunked = encoded(StatusCode::OK, &[], ResponseFraming::Chunked, false, Version::HTTP_11);
    assert!(chunked.contains("transfer-encoding: chunked\r\n") && chunked.ends_with("connection: close\r\n\r\n"));
    let head_only =
        encoded(StatusCode::OK, &[("content-length", "42")], ResponseFraming::HeadOnly, true, Version::HTTP_11);
    assert!(head_only.contains("content-length: 42\r\n"));
    let empty =
        encoded(StatusCode::NO_CONTENT, &[("content-length", "0")], ResponseFraming::Empty, true, Version::HTTP_11);
    assert!(empty.starts_with("HTTP/1.1 204 No Content\r\n") && !empty.contains("content-length"));
    let old = encoded(StatusCode::OK, &[], ResponseFraming::Length(0), true, Version::HTTP_10);
    assert!(old.contains("connection: keep-alive\r\n"));
    let dated = encoded(StatusCode::OK, &[("date", "x")], ResponseFraming::Length(0), true, Version::HTTP_11);
    assert_eq!(dated.matches("date:").count(), 1);
}
