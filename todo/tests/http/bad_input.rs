//! Hostile requests against a real server on loopback: a table of bad inputs, each with its
//! documented 4xx and a JSON error naming the problem (sent as raw HTTP so nothing normalises
//! them), and a seeded random storm of requests that must never get a 500 or kill the server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sluicegate_todo::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::serve::Serve;

/// A real `serve` process on the built-in config.
async fn serve(data_dir: &std::path::Path) -> Serve {
    Serve::with_config(&Config::builtin(), data_dir)
}

/// A response read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap().trim(), 16).ok())
            .expect("chunk size line");
        if size == 0 {
            return out;
        }
        data = &data[eol + 2..];
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Sends `head` (request line and headers, without the final blank line), then `body`,
/// with `Connection: close`, and reads the whole answer. Nothing is normalised.
async fn raw(addr: SocketAddr, head: &[u8], body: &[u8], chunked: bool) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = head.to_vec();
    req.extend_from_slice(b"\r\nHost: localhost\r\nConnection: close\r\n");
    if chunked {
        req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for part in body.chunks(8192) {
            req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            req.extend_from_slice(part);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
    } else {
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
    }
    // The server may answer (413) and close before reading a big body: ignore write errors.
    let _ = s.write_all(&req).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 16384];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after the answer was read (unread body discarded) is fine.
                Err(_) if !buf.is_empty() => break,
                Err(e) => panic!("reading the answer: {e}"),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no complete answer within 20 s");
    let split = find(&buf, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no header end in answer: {:?}",
            String::from_utf8_lossy(&buf)
        )
    });
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = dechunk(&resp.body);
    }
    resp
}

/// One hostile request and what it must get.
struct Row {
    what: &'static str,
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    chunked: bool,
    status: u16,
    /// Words the error message must contain (case-insensitive); empty for a success.
    mentions: Vec<String>,
}

fn row(what: &'static str, method: &'static str, target: impl Into<String>) -> Row {
    Row {
        what,
        method,
        target: target.into(),
        content_type: None,
        body: Vec::new(),
        chunked: false,
        status: 0,
        mentions: Vec::new(),
    }
}

impl Row {
    fn json(mut self, body: impl Into<Vec<u8>>) -> Row {
        self.content_type = Some("application/json");
        self.body = body.into();
        self
    }
    fn content_type(mut self, ct: &'static str) -> Row {
        self.content_type = Some(ct);
        self
    }
    fn chunked(mut self) -> Row {
        self.chunked = true;
        self
    }
    fn expect(mut self, status: u16, mentions: &[&str]) -> Row {
        self.status = status;
        self.mentions = mentions.iter().map(|m| m.to_string()).collect();
        self
    }
}

const ENTRIES: &str = "/lists/a/entries";
const GOOD: &str = r#"{"date":"2026-11-23","title":"Dentist"}"#;

fn post(what: &'static str, body: impl Into<Vec<u8>>) -> Row {
    row(what, "POST", ENTRIES).json(body)
}

fn entry(date: &str, title: &str) -> String {
    json!({"date": date, "title": title}).to_string()
}

fn table() -> Vec<Row> {
    let big_title = "x".repeat(70 * 1024);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let name_10k = "n".repeat(10 * 1024);
    let name_256 = "n".repeat(256);
    let name_257 = "n".repeat(257);
    vec![
        // Bodies of POST.
        post("malformed JSON", "{not json").expect(400, &["body"]),
        post("truncated JSON", r#"{"date":"2026-11-23""#).expect(400, &["body"]),
        post("empty JSON body", "").expect(400, &["body"]),
        post("JSON array", "[]").expect(400, &["body"]),
        post("JSON string", r#""Dentist""#).expect(400, &["body"]),
        post("JSON null", "null").expect(400, &["body"]),
        post("deeply nested JSON", deep).expect(400, &["body"]),
        post(
            "invalid UTF-8 in JSON",
            b"{\"date\":\"2026-11-23\",\"title\":\"\xff\"}".to_vec(),
        )
        .expect(400, &["body"]),
        post("date of wrong type", r#"{"date":20261123,"title":"x"}"#).expect(400, &["date"]),
        post(
            "title of wrong type",
            r#"{"date":"2026-11-23","title":true}"#,
        )
        .expect(400, &["title"]),
        post("title as array", r#"{"date":"2026-11-23","title":["x"]}"#).expect(400, &["title"]),
        post("missing title", r#"{"date":"2026-11-23"}"#).expect(400, &["title"]),
        post("missing date", r#"{"title":"x"}"#).expect(400, &["date"]),
        post(
            "unknown field",
            r#"{"date":"2026-11-23","title":"x","colour":"red"}"#,
        )
        .expect(400, &["colour"]),
        post(
            "duplicate field",
            r#"{"date":"2026-11-23","title":"x","title":"y"}"#,
        )
        .expect(400, &["title"]),
        post(
            "an id in a new entry",
            r#"{"date":"2026-12-02","title":"x","id":1}"#,
        )
        .expect(400, &["unknown field", "id"]),
        post(
            "a positional JSON array",
            r#"["2026-12-02","positional",null]"#,
        )
        .expect(400, &["body", "object"]),
        post("a one-element JSON array", r#"["2026-12-02"]"#).expect(400, &["body", "object"]),
        post("a title of only spaces", entry("2026-12-02", "   "))
            .expect(400, &["title", "whitespace"]),
        post("a title of only a tab", entry("2026-12-02", "\t")).expect(400, &["title"]),
        row("no content type", "POST", ENTRIES)
            .json(GOOD)
            .content_type("text/plain")
            .expect(415, &["content-type"]),
        post("body over 64 KiB", entry("2026-11-23", &big_title)).expect(413, &["64 KiB"]),
        post("chunked body over 64 KiB", entry("2026-11-23", &big_title))
            .chunked()
            .expect(413, &["64 KiB"]),
        row(
            "huge body on a route without one",
            "DELETE",
            "/lists/a/entries/1",
        )
        .json(entry("2026-11-23", &big_title))
        .expect(413, &["64 KiB"]),
        post("impossible date", entry("2026-02-30", "x")).expect(400, &["date", "2026-02-30"]),
        post("month 13", entry("2026-13-01", "x")).expect(400, &["date", "2026-13-01"]),
        post("date as a word", entry("tomorrow", "x")).expect(400, &["date", "tomorrow"]),
        post("empty date", entry("", "x")).expect(400, &["date"]),
        post("short date", entry("2026-1-1", "x")).expect(400, &["date", "2026-1-1"]),
        post("signed year", entry("+2026-01-01", "x")).expect(400, &["date"]),
        post("empty title", entry("2026-11-23", "")).expect(400, &["title", "empty"]),
        post("1025-char title", entry("2026-11-23", &"t".repeat(1025)))
            .expect(400, &["title", "1025"]),
        post("title with NUL", entry("2026-11-23", "a\u{0}b")).expect(400, &["title", "control"]),
        post("title with newline", entry("2026-11-23", "a\nb")).expect(400, &["title", "control"]),
        post(
            "1024-char title is fine",
            entry("2026-11-23", &"t".repeat(1024)),
        )
        .expect(201, &[]),
        // PATCH and DELETE ids and bodies (list "a" has entries 1 and 2 from the setup).
        row("negative id (PATCH)", "PATCH", "/lists/a/entries/-1")
            .json(r#"{"title":"x"}"#)
            .expect(400, &["id", "-1"]),
        row("zero id (PATCH)", "PATCH", "/lists/a/entries/0")
            .json(r#"{"title":"x"}"#)
            .expect(400, &["id", "0"]),
        row("non-numeric id (PATCH)", "PATCH", "/lists/a/entries/abc")
            .json(r#"{"title":"x"}"#)
            .expect(400, &["id", "abc"]),
        row(
            "id over u64 (PATCH)",
            "PATCH",
            "/lists/a/entries/18446744073709551616",
        )
        .json(r#"{"title":"x"}"#)
        .expect(400, &["id", "18446744073709551616"]),
        row("fractional id (PATCH)", "PATCH", "/lists/a/entries/1.5")
            .json(r#"{"title":"x"}"#)
            .expect(400, &["id"]),
        row("negative id (DELETE)", "DELETE", "/lists/a/entries/-1").expect(400, &["id", "-1"]),
        row("zero id (DELETE)", "DELETE", "/lists/a/entries/0").expect(400, &["id"]),
        row("non-numeric id (DELETE)", "DELETE", "/lists/a/entries/abc")
            .expect(400, &["id", "abc"]),
        row(
            "id over u64 (DELETE)",
            "DELETE",
            "/lists/a/entries/99999999999999999999999",
        )
        .expect(400, &["id"]),
        row("unknown id (PATCH)", "PATCH", "/lists/a/entries/99")
            .json(r#"{"title":"x"}"#)
            .expect(404, &["99"]),
        row("unknown id (DELETE)", "DELETE", "/lists/a/entries/99").expect(404, &["99"]),
        row(
            "largest id, unknown (DELETE)",
            "DELETE",
            "/lists/a/entries/9223372036854775807",
        )
        .expect(404, &["9223372036854775807"]),
        row(
            "id over int64 (DELETE)",
            "DELETE",
            "/lists/a/entries/9223372036854775808",
        )
        .expect(400, &["id", "9223372036854775808"]),
        row(
            "after over int64",
            "GET",
            "/lists/a/entries?after=9223372036854775808",
        )
        .expect(400, &["after", "9223372036854775808"]),
        row("empty patch", "PATCH", "/lists/a/entries/1")
            .json("{}")
            .expect(400, &["date", "title"]),
        row("patch with a bad date", "PATCH", "/lists/a/entries/1")
            .json(r#"{"date":"2026-02-30"}"#)
            .expect(400, &["date", "2026-02-30"]),
        row("patch with an empty title", "PATCH", "/lists/a/entries/1")
            .json(r#"{"title":""}"#)
            .expect(400, &["title"]),
        row(
            "patch with a title of wrong type",
            "PATCH",
            "/lists/a/entries/1",
        )
        .json(r#"{"title":5}"#)
        .expect(400, &["title"]),
        // (`done` was this row's unknown field until entries got the done flag.)
        row("patch with an unknown field", "PATCH", "/lists/a/entries/1")
            .json(r#"{"title":"x","priority":1}"#)
            .expect(400, &["priority"]),
        row(
            "patch with a done flag of wrong type",
            "PATCH",
            "/lists/a/entries/1",
        )
        .json(r#"{"done":"yes"}"#)
        .expect(400, &["done"]),
        row("patch with a null done flag", "PATCH", "/lists/a/entries/1")
            .json(r#"{"done":null}"#)
            .expect(400, &["done"]),
        row(
            "patch with a null title",
            "PATCH",
            "/lists/a/entries/1?ack=none",
        )
        .json(r#"{"title":null}"#)
        .expect(400, &["title", "null"]),
        row("patch with a null date", "PATCH", "/lists/a/entries/1")
            .json(r#"{"date":null,"title":"x"}"#)
            .expect(400, &["date", "null"]),
        row(
            "patch with a title of only spaces",
            "PATCH",
            "/lists/a/entries/1",
        )
        .json(r#"{"title":"  "}"#)
        .expect(400, &["title", "whitespace"]),
        row("patch with a JSON array", "PATCH", "/lists/a/entries/1")
            .json(r#"["2026-12-02","x"]"#)
            .expect(400, &["body", "object"]),
        row("patch with malformed JSON", "PATCH", "/lists/a/entries/1")
            .json("{")
            .expect(400, &["body"]),
        // List names.
        // A valid name that was never written reaches the list: 404 naming it.
        row(
            "name with %2F is a valid name",
            "GET",
            "/lists/a%2Fb/entries",
        )
        .expect(404, &["no list named \"a/b\""]),
        row("name .. is a valid name", "GET", "/lists/../entries")
            .expect(404, &["no list named \"..\""]),
        row(
            "name %2E%2E is a valid name",
            "GET",
            "/lists/%2E%2E/entries",
        )
        .expect(404, &["no list named \"..\""]),
        row(
            "name ..%2F..%2Fetc is a valid name",
            "POST",
            "/lists/..%2F..%2Fetc/entries",
        )
        .json(GOOD)
        .expect(201, &[]),
        row(
            "256-byte name is fine",
            "GET",
            format!("/lists/{name_256}/entries"),
        )
        .expect(404, &["no list named"]),
        row("name with NUL", "GET", "/lists/a%00b/entries").expect(400, &["list", "control"]),
        row("name with NUL (POST)", "POST", "/lists/%00/entries")
            .json(GOOD)
            .expect(400, &["list", "control"]),
        row("name with U+0001", "GET", "/lists/a%01b/entries").expect(400, &["list", "control"]),
        row("name with newline", "GET", "/lists/a%0Ab/entries").expect(400, &["list", "control"]),
        row("name with DEL", "GET", "/lists/a%7Fb/entries").expect(400, &["list", "control"]),
        row("name with U+0085", "GET", "/lists/a%C2%85b/entries").expect(400, &["list", "control"]),
        row("257-byte name", "GET", format!("/lists/{name_257}/entries"))
            .expect(400, &["list", "257"]),
        row("10 KB name", "GET", format!("/lists/{name_10k}/entries"))
            .expect(400, &["list", "10240"]),
        row(
            "10 KB name (POST)",
            "POST",
            format!("/lists/{name_10k}/entries"),
        )
        .json(GOOD)
        .expect(400, &["list", "10240"]),
        row("invalid percent-encoding %ZZ", "GET", "/lists/a%ZZ/entries")
            .expect(400, &["percent", "%ZZ"]),
        row("truncated percent-encoding", "GET", "/lists/a%4/entries").expect(400, &["percent"]),
        row("lone percent sign", "POST", "/lists/%/entries")
            .json(GOOD)
            .expect(400, &["percent"]),
        row(
            "percent-encoded invalid UTF-8",
            "GET",
            "/lists/%C3%28/entries",
        )
        .expect(400, &["list", "UTF-8"]),
        row("percent-encoded 0xFF", "DELETE", "/lists/%FF/entries/1").expect(400, &["UTF-8"]),
        // Routes and methods.
        row("unknown route", "GET", "/nowhere").expect(404, &["route"]),
        row("root", "GET", "/").expect(404, &["route"]),
        row("lists with a trailing slash", "GET", "/lists/").expect(404, &["route"]),
        row("empty list name", "GET", "/lists//entries").expect(400, &["list", "empty"]),
        row("list with a trailing slash", "GET", "/lists/a/").expect(404, &["route"]),
        row("POST on a list", "POST", "/lists/a")
            .json(GOOD)
            .expect(405, &["method"]),
        row("PUT on lists", "PUT", "/lists")
            .json(GOOD)
            .expect(405, &["method"]),
        row("trailing slash", "GET", "/lists/a/entries/").expect(404, &["route"]),
        row("too deep", "GET", "/lists/a/entries/1/x").expect(404, &["route"]),
        row("PUT on entries", "PUT", ENTRIES)
            .json(GOOD)
            .expect(405, &["method"]),
        row("DELETE on entries", "DELETE", ENTRIES).expect(405, &["method"]),
        row("PUT on an entry", "PUT", "/lists/a/entries/1")
            .json(GOOD)
            .expect(405, &["method"]),
        row("GET of an unknown entry", "GET", "/lists/a/entries/99").expect(404, &["99"]),
        row("GET of entry 0", "GET", "/lists/a/entries/0").expect(400, &["id", "0"]),
        row(
            "GET of an entry with a query",
            "GET",
            "/lists/a/entries/1?ack=none",
        )
        .expect(400, &["query", "ack"]),
        row("GET /lists with a bad limit", "GET", "/lists?limit=0")
            .expect(400, &["limit", "page size"]),
        row("GET /lists with an unknown query", "GET", "/lists?x=1").expect(400, &["query", "x"]),
        row("GET a list with a query", "GET", "/lists/a?x=1").expect(400, &["query", "x"]),
        row("GET a list with a bad name", "GET", "/lists/a%00").expect(400, &["list", "control"]),
        row("POST on an entry", "POST", "/lists/a/entries/1")
            .json(GOOD)
            .expect(405, &["method"]),
        row("POST on healthz", "POST", "/healthz").expect(405, &["method"]),
        row("DELETE on metrics", "DELETE", "/metrics").expect(405, &["method"]),
        row("OPTIONS on entries", "OPTIONS", ENTRIES).expect(405, &["method"]),
        row("unknown method", "BREW", ENTRIES).expect(405, &["method"]),
        // Query strings.
        row("unknown ack", "POST", "/lists/a/entries?ack=maybe")
            .json(GOOD)
            .expect(400, &["ack", "maybe"]),
        row("empty ack", "POST", "/lists/a/entries?ack=")
            .json(GOOD)
            .expect(400, &["ack"]),
        row("upper-case ack", "POST", "/lists/a/entries?ack=DURABLE")
            .json(GOOD)
            .expect(400, &["ack", "DURABLE"]),
        row("two acks", "POST", "/lists/a/entries?ack=none&ack=durable")
            .json(GOOD)
            .expect(400, &["ack"]),
        row(
            "ack with bad percent-encoding",
            "DELETE",
            "/lists/a/entries/1?ack=%ZZ",
        )
        .expect(400, &["ack"]),
        row("bad ack on PATCH", "PATCH", "/lists/a/entries/1?ack=1")
            .json(r#"{"title":"x"}"#)
            .expect(400, &["ack"]),
        row(
            "unknown query parameter (GET)",
            "GET",
            "/lists/a/entries?colour=red",
        )
        .expect(400, &["query", "colour"]),
        row("ack on a read", "GET", "/lists/a/entries?ack=none").expect(400, &["query", "ack"]),
        row(
            "unknown query parameter (POST)",
            "POST",
            "/lists/a/entries?acks=none",
        )
        .json(GOOD)
        .expect(400, &["query", "acks"]),
        row(
            "unknown query parameter (PATCH)",
            "PATCH",
            "/lists/a/entries/1?force=1",
        )
        .json(r#"{"title":"x"}"#)
        .expect(400, &["query", "force"]),
        row(
            "unknown query parameter (DELETE)",
            "DELETE",
            "/lists/a/entries/1?force=1",
        )
        .expect(400, &["query", "force"]),
        row("zero limit", "GET", "/lists/a/entries?limit=0").expect(400, &["limit", "0"]),
        row("limit over 1000", "GET", "/lists/a/entries?limit=1001")
            .expect(400, &["limit", "1001"]),
        row("word limit", "GET", "/lists/a/entries?limit=all").expect(400, &["limit", "all"]),
        row("negative after", "GET", "/lists/a/entries?after=-1").expect(400, &["after", "-1"]),
        row("bad from", "GET", "/lists/a/entries?from=2026-02-30")
            .expect(400, &["from", "2026-02-30"]),
        row("bad to", "GET", "/lists/a/entries?to=soon").expect(400, &["to", "soon"]),
        row(
            "done filter not a flag",
            "GET",
            "/lists/a/entries?done=maybe",
        )
        .expect(400, &["done", "maybe"]),
        row("list delete with a query", "DELETE", "/lists/a?ack=durable")
            .expect(400, &["query", "ack"]),
        row(
            "impossible date query",
            "GET",
            "/lists/a/entries?date=2026-02-30",
        )
        .expect(400, &["date", "2026-02-30"]),
        row(
            "month 13 date query",
            "GET",
            "/lists/a/entries?date=2026-13-01",
        )
        .expect(400, &["date", "2026-13-01"]),
        row("word date query", "GET", "/lists/a/entries?date=tomorrow")
            .expect(400, &["date", "tomorrow"]),
        row("empty date query", "GET", "/lists/a/entries?date=").expect(400, &["date"]),
        row(
            "two date queries",
            "GET",
            "/lists/a/entries?date=2026-01-01&date=2026-01-02",
        )
        .expect(400, &["date"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_documented_status_and_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(dir.path()).await;
    for _ in 0..2 {
        let setup = raw(
            r.addr,
            b"POST /lists/a/entries?ack=durable HTTP/1.1\r\nContent-Type: application/json",
            GOOD.as_bytes(),
            false,
        )
        .await;
        assert_eq!(setup.status, 201);
    }
    let mut failures = Vec::new();
    let rows = table();
    let count = rows.len();
    for row in rows {
        let mut head = format!("{} {} HTTP/1.1", row.method, row.target).into_bytes();
        if let Some(ct) = row.content_type {
            head.extend_from_slice(format!("\r\nContent-Type: {ct}").as_bytes());
        }
        let resp = raw(r.addr, &head, &row.body, row.chunked).await;
        let body = String::from_utf8_lossy(&resp.body).to_string();
        let shown_target: String = row.target.chars().take(80).collect();
        let mut problems = Vec::new();
        if resp.status != row.status {
            problems.push(format!("status {} (want {})", resp.status, row.status));
        }
        if row.status >= 400 {
            let is_json = resp
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json"));
            let message = serde_json::from_slice::<Value>(&resp.body)
                .ok()
                .and_then(|v| {
                    let obj = v.as_object()?;
                    // A refusal says what the request did; bad input is never applied.
                    let outcome_ok = match obj.get("outcome") {
                        None => obj.len() == 1,
                        Some(o) => obj.len() == 2 && o == "not_applied",
                    };
                    outcome_ok
                        .then(|| obj.get("error")?.as_str().map(str::to_string))
                        .flatten()
                });
            match message {
                Some(m) if is_json => {
                    // No Rust type names from serde ("expected struct NewEntry with 3 elements").
                    for leak in [
                        "struct",
                        "NewEntry",
                        "EntryPatch",
                        "AckQuery",
                        "ReadQuery",
                        "Failed to deserialize",
                    ] {
                        if m.contains(leak) {
                            problems.push(format!("error leaks {leak:?}"));
                        }
                    }
                    for want in &row.mentions {
                        if !m.to_lowercase().contains(&want.to_lowercase()) {
                            problems.push(format!("error does not mention {want:?}"));
                        }
                    }
                }
                _ => problems.push("body is not JSON {\"error\": \"...\"}".to_string()),
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({} {shown_target}): {}; body {:?}",
                row.what,
                row.method,
                problems.join(", "),
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    // The server is still serving, and the bad requests changed nothing.
    let list = raw(r.addr, b"GET /lists/a/entries HTTP/1.1", b"", false).await;
    assert_eq!(list.status, 200);
    let entries: Value = serde_json::from_slice(&list.body).unwrap();
    let titles: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 3, "two setup entries and the 1024-char one");
    assert_eq!(&titles[..2], ["Dentist", "Dentist"]);
    r.shutdown();
    assert!(
        failures.is_empty(),
        "{} of {count} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("bad input: {count} hostile requests, each with its documented status");
}

/// Pieces of hostile path segments.
const SEGS: &[&str] = &[
    "a",
    "b",
    "c",
    "list",
    "..",
    ".",
    "%2F",
    "%2f",
    "%00",
    "%01",
    "%1F",
    "%7F",
    "%ZZ",
    "%",
    "%4",
    "%C3%28",
    "%FF",
    "%E6%97%A5",
    "%C2%85",
    "%20",
    "~",
    "%2E%2E",
    "%2e",
    "1",
    "0",
    "-1",
    "1.5",
    "18446744073709551616",
    "18446744073709551615",
    "entries",
    "lists",
    "healthz",
    "metrics",
    "%C3%A9",
    "%25",
    "+",
    ";",
    "=",
    "&",
    "@",
    ":",
    "%3F",
    "%23",
    "%0A",
    "%0D%0A",
];
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "POST", "PATCH", "PATCH", "DELETE", "DELETE", "PUT",
    "HEAD", "OPTIONS", "BREW",
];
const QUERIES: &[&str] = &[
    "",
    "",
    "",
    "",
    "?ack=none",
    "?ack=applied",
    "?ack=durable",
    "?ack=x",
    "?ack=",
    "?ack",
    "?date=2026-01-01",
    "?date=2026-02-30",
    "?date=x",
    "?date=",
    "?ack=%ZZ",
    "?date=%00",
    "?&&",
    "?=",
    "?ack=none&ack=none",
    "?x=1",
    "?date=2026-01-01&ack=none",
    "?%ZZ=%ZZ",
];
const DATES: &[&str] = &[
    "2026-01-01",
    "2026-11-23",
    "2024-02-29",
    "2026-02-30",
    "2026-13-01",
    "0000-01-01",
    "9999-12-31",
    "tomorrow",
    "",
    "2026-1-1",
    "+2026-01-01",
    "2026-01-01T00:00:00",
];
const KEYS: &[&str] = &["date", "title", "id", "x", "", "DATE"];

fn random_title(rng: &mut StdRng) -> String {
    match rng.gen_range(0..8) {
        0 => String::new(),
        1 => "t".repeat(1025),
        2 => "t".repeat(1024),
        3 => "a\u{0}b".into(),
        4 => "日本語 ✓".into(),
        5 => "\u{7f}\u{85}".into(),
        _ => format!("title {}", rng.gen::<u32>()),
    }
}

fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => match rng.gen_range(0..4) {
            0 => json!(rng.gen::<i64>()),
            1 => json!(rng.gen::<f64>() * 1e300),
            2 => json!(u64::MAX),
            _ => json!(rng.gen_range(-3i64..5)),
        },
        3 => json!(DATES[rng.gen_range(0..DATES.len())]),
        4 => json!(random_title(rng)),
        5 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.gen_range(0..4))
                .map(|_| {
                    (
                        KEYS[rng.gen_range(0..KEYS.len())].to_string(),
                        random_json(rng, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

/// A random request; `raw` ones bypass reqwest's URL normalisation.
#[derive(Clone, Debug)]
struct FuzzRequest {
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    raw: bool,
}

fn segment(rng: &mut StdRng) -> String {
    match rng.gen_range(0..20) {
        0 => "n".repeat(300),
        1 => "n".repeat(10 * 1024),
        2..=9 => ["a", "b", "c"][rng.gen_range(0..3)].to_string(),
        _ => (0..rng.gen_range(1..4))
            .map(|_| SEGS[rng.gen_range(0..SEGS.len())])
            .collect(),
    }
}

fn random_request(rng: &mut StdRng) -> FuzzRequest {
    let mut method = METHODS[rng.gen_range(0..METHODS.len())];
    let fitting = rng.gen_range(0..10) < 7;
    let path = match rng.gen_range(0..20) {
        0..=7 => {
            if fitting {
                method = ["GET", "POST"][rng.gen_range(0..2)];
            }
            format!("/lists/{}/entries", segment(rng))
        }
        8..=13 => {
            if fitting {
                method = ["PATCH", "DELETE"][rng.gen_range(0..2)];
            }
            let id = if rng.gen::<bool>() {
                rng.gen_range(1..6).to_string()
            } else {
                segment(rng)
            };
            format!("/lists/{}/entries/{id}", segment(rng))
        }
        14 => "/healthz".to_string(),
        15 => format!("/lists/{}", segment(rng)),
        _ => (0..rng.gen_range(0..5))
            .map(|_| format!("/{}", segment(rng)))
            .collect::<String>(),
    };
    let path = if path.is_empty() { "/".into() } else { path };
    let query = QUERIES[rng.gen_range(0..QUERIES.len())];
    let body: Vec<u8> = match rng.gen_range(0..12) {
        0 => Vec::new(),
        1..=5 => json!({
            "date": DATES[rng.gen_range(0..DATES.len())],
            "title": random_title(rng),
        })
        .to_string()
        .into_bytes(),
        6..=8 => random_json(rng, 3).to_string().into_bytes(),
        9 => (0..rng.gen_range(0..200))
            .map(|_| rng.gen::<u8>())
            .collect(),
        10 => {
            let mut b = random_json(rng, 3).to_string().into_bytes();
            b.truncate(rng.gen_range(0..=b.len()));
            b
        }
        _ => {
            if rng.gen_range(0..10) == 0 {
                entry("2026-01-01", &"x".repeat(70 * 1024)).into_bytes()
            } else {
                format!(r#"{{"title":"{}"}}"#, random_title(rng).replace('\0', "")).into_bytes()
            }
        }
    };
    let content_type = match rng.gen_range(0..20) {
        0 => None,
        1 => Some("text/plain"),
        2 => Some("application/json; charset=utf-8"),
        _ => Some("application/json"),
    };
    FuzzRequest {
        method,
        target: format!("{path}{query}"),
        content_type,
        body,
        raw: rng.gen_range(0..10) == 0,
    }
}

/// Status and body, or a description of a transport failure.
type Answer = Result<(u16, Vec<u8>), String>;

/// Sends one request.
async fn send(client: &reqwest::Client, addr: SocketAddr, req: &FuzzRequest) -> Answer {
    if req.raw {
        let mut head = format!("{} {} HTTP/1.1", req.method, req.target).into_bytes();
        if let Some(ct) = req.content_type {
            head.extend_from_slice(format!("\r\nContent-Type: {ct}").as_bytes());
        }
        let r = raw(addr, &head, &req.body, false).await;
        return Ok((r.status, r.body));
    }
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut b = client
        .request(method, format!("http://{addr}{}", req.target))
        .body(req.body.clone());
    if let Some(ct) = req.content_type {
        b = b.header("content-type", ct);
    }
    let resp = b.send().await.map_err(|e| format!("send: {e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_vec();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_hostile_requests_never_get_a_500_and_leave_the_server_serving() {
    let count: usize = std::env::var("SLUICEGATE_FUZZ_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("SLUICEGATE_FUZZ_REQUESTS is a number"))
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("SLUICEGATE_FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("SLUICEGATE_FUZZ_SEED is a number"))
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("fuzz: {count} requests, seed {seed} (replay with SLUICEGATE_FUZZ_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let requests: Vec<FuzzRequest> = (0..count).map(|_| random_request(&mut rng)).collect();

    let dir = tempfile::tempdir().unwrap();
    let r = serve(dir.path()).await;
    let addr = r.addr;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let started = Instant::now();
    let results: Vec<(FuzzRequest, Answer)> = futures::stream::iter(requests)
        .map(|req| {
            let client = &client;
            async move {
                let res = send(client, addr, &req).await;
                (req, res)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut failures = Vec::new();
    for (req, res) in &results {
        let shown = format!(
            "{} {} {:?} body {:?}",
            req.method,
            req.target.chars().take(120).collect::<String>(),
            req.content_type,
            String::from_utf8_lossy(&req.body[..req.body.len().min(120)])
        );
        match res {
            Err(e) => failures.push(format!("{shown}: transport error {e}")),
            Ok((status, body)) => {
                *by_status.entry(*status).or_default() += 1;
                if *status >= 500 && *status != 503 && *status != 504 {
                    failures.push(format!(
                        "{shown}: status {status}, body {:?}",
                        String::from_utf8_lossy(body)
                    ));
                } else if *status >= 400 && req.method != "HEAD" {
                    let ok = serde_json::from_slice::<Value>(body)
                        .ok()
                        .is_some_and(|v| v["error"].is_string());
                    if !ok {
                        failures.push(format!(
                            "{shown}: status {status} without a JSON error: {:?}",
                            String::from_utf8_lossy(body)
                        ));
                    }
                }
            }
        }
    }

    // Still serving: health, and a normal write read back.
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let created = client
        .post(format!("http://{addr}/lists/after-the-storm/entries"))
        .json(&json!({"date": "2026-11-23", "title": "still here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let back: Value = client
        .get(format!(
            "http://{addr}/lists/after-the-storm/entries?date=2026-11-23"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        back,
        json!([{"id": 1, "date": "2026-11-23", "title": "still here", "done": false}])
    );
    r.shutdown();

    println!(
        "fuzz: {} requests in {:.1} s, statuses {by_status:?}",
        results.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} bad answers, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Reads one response with a `Content-Length` off a kept-alive connection.
async fn read_one(s: &mut TcpStream) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while find(&buf, b"\r\n\r\n").is_none() {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = resp.header("content-length")?.parse().ok()?;
    resp.body = vec![0; len];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut resp.body))
        .await
        .ok()?
        .ok()?;
    Some(resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_body_on_a_route_that_ignores_it_keeps_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(dir.path()).await;
    // Routes that never look at the body: a read, a delete, an unknown route, a 405.
    for target in [
        "GET /lists/a/entries",
        "DELETE /lists/a/entries/7",
        "GET /nowhere",
        "PUT /lists/a/entries",
    ] {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        let head = format!(
            "{target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        // The body comes in a later segment, as from a client that streams it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b"{}").await.unwrap();
        let first = read_one(&mut s).await.expect("first answer");
        assert!(first.status < 500, "{target}: {}", first.status);
        // The same connection serves the next request.
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let second = read_one(&mut s).await;
        assert_eq!(
            second.map(|r| r.status),
            Some(200),
            "{target}: the server answered without reading the body and closed the connection \
             (first answer: {}, connection: {:?})",
            first.status,
            first.header("connection")
        );
    }
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_its_4xx_and_a_closed_connection() {
    // These never reach the router, so their answers come from hyper itself: an empty
    // body rather than the API's JSON error (the documented exception).
    let dir = tempfile::tempdir().unwrap();
    let r = serve(dir.path()).await;
    let long_uri = format!("GET /lists/{}/entries HTTP/1.1", "n".repeat(70_000));
    let big_header = format!("GET /healthz HTTP/1.1\r\nX-Big: {}", "h".repeat(500_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "raw control character in the target",
            b"GET /lists/a\x01b/entries HTTP/1.1".to_vec(),
            400,
        ),
        (
            "raw NUL in the target",
            b"GET /lists/a\x00b/entries HTTP/1.1".to_vec(),
            400,
        ),
        (
            "raw space in the target",
            b"GET /lists/a b/entries HTTP/1.1".to_vec(),
            400,
        ),
        (
            "raw 0xFF in the target",
            b"GET /lists/\xff/entries HTTP/1.1".to_vec(),
            400,
        ),
        ("garbage request line", b"GARBAGE".to_vec(), 400),
        (
            "negative content length",
            b"POST /lists/a/entries HTTP/1.1\r\nContent-Length: -5".to_vec(),
            400,
        ),
        ("70 KB target", long_uri.into_bytes(), 414),
        ("500 KB header", big_header.into_bytes(), 431),
    ];
    for (what, head, status) in cases {
        // `raw` adds Content-Length: 0; a duplicate length is itself a 400, so the
        // negative-length case still gets its 400 either way.
        let resp = raw(r.addr, &head, b"", false).await;
        assert_eq!(resp.status, status, "{what}");
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
    }
    let health = raw(r.addr, b"GET /healthz HTTP/1.1", b"", false).await;
    assert_eq!(health.status, 200);
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413_and_connection_close() {
    // The server never reads the rest of such a body, so the connection cannot be reused;
    // without "Connection: close" a keep-alive client reuses it and its next request fails
    // with a broken pipe (seen in the random storm before the fix).
    let dir = tempfile::tempdir().unwrap();
    let r = serve(dir.path()).await;
    let body = entry("2026-11-23", &"x".repeat(70 * 1024));
    for chunked in [false, true] {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        let mut req = b"POST /lists/a/entries HTTP/1.1\r\nHost: localhost\r\n\
            Content-Type: application/json\r\n"
            .to_vec();
        if chunked {
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for part in body.as_bytes().chunks(8192) {
                req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                req.extend_from_slice(part);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
        } else {
            req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            req.extend_from_slice(body.as_bytes());
        }
        let _ = s.write_all(&req).await;
        let resp = read_one(&mut s).await.expect("an answer");
        assert_eq!(resp.status, 413, "chunked: {chunked}");
        assert_eq!(
            resp.header("connection"),
            Some("close"),
            "chunked: {chunked}"
        );
        let error: Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("64 KiB"),
            "{error}"
        );
    }
    r.shutdown();
}
