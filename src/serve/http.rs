//! HTTP/1.1 for `serve`, on plain `TcpStream`s, with every limit a hostile
//! client could push against: the head has a size cap and a deadline (a
//! client sending one byte every few seconds is cut off at the deadline,
//! not per byte), the body a size cap per route and a deadline, writes a
//! timeout (a client that stops reading loses its connection, which
//! cancels its job). Bodies must come with `Content-Length`; keep-alive and
//! pipelining work; streamed answers use chunked transfer encoding.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Most bytes of a request's head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// Most headers one request may have.
const MAX_HEADERS: usize = 64;

/// Time limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its head.
    pub head: Duration,
    /// For the whole body.
    pub body: Duration,
    /// How long an idle keep-alive connection is kept.
    pub idle: Duration,
    /// How long one write may wait for a client that does not read.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            write: Duration::from_secs(20),
        }
    }
}

/// A request's head as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Header names lower-cased, values as sent (printable ASCII and UTF-8).
    pub headers: Vec<(String, String)>,
    /// `Content-Length`, 0 without one.
    pub content_length: usize,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expects_continue: bool,
}

impl Head {
    /// A header's value by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read; each maps to the status sent back (if any).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the client closed the connection")]
    Closed,
    #[error("the client was too slow")]
    TimedOut,
    #[error("{0}")]
    BadRequest(String),
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("a request body needs a Content-Length (chunked uploads are not accepted)")]
    LengthRequired,
    #[error("{0}")]
    Io(std::io::Error),
}

impl HttpError {
    /// The status to answer with, or `None` when the connection is simply dropped.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Closed | Self::Io(_) => None,
            Self::TimedOut => Some(408),
            Self::BadRequest(_) => Some(400),
            Self::HeadTooLarge => Some(431),
            Self::BodyTooLarge { .. } => Some(413),
            Self::LengthRequired => Some(411),
        }
    }
}

/// Parses a complete head (`bytes` ends with the blank line).
pub fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::BadRequest("an incomplete request head".into())),
        Err(e) => return Err(HttpError::BadRequest(format!("a malformed request: {e}"))),
    }
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err(HttpError::BadRequest("a malformed request line".into()));
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_owned()))
        .collect();
    let find = |name: &str| headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    if find("transfer-encoding").iter().any(|v| !v.eq_ignore_ascii_case("identity")) {
        return Err(HttpError::LengthRequired);
    }
    let content_length = match find("content-length").as_slice() {
        [] => 0,
        [one] => one.parse().map_err(|_| HttpError::BadRequest(format!("Content-Length {one:?} is not a number")))?,
        _ => return Err(HttpError::BadRequest("more than one Content-Length".into())),
    };
    let connection = find("connection").join(",").to_ascii_lowercase();
    let keep_alive = if version == 0 { connection.contains("keep-alive") } else { !connection.contains("close") };
    let expects_continue = find("expect").iter().any(|v| v.eq_ignore_ascii_case("100-continue"));
    let path = target.split('?').next().unwrap_or("").to_owned();
    Ok(Head { method: method.to_owned(), path, headers, content_length, keep_alive, expects_continue })
}

/// One client's connection: the socket and the bytes read past the last request.
pub struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
    timeouts: Timeouts,
}

impl Connection {
    pub fn new(stream: TcpStream, timeouts: Timeouts) -> std::io::Result<Self> {
        stream.set_write_timeout(Some(timeouts.write))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, pending: Vec::new(), timeouts })
    }

    /// The socket, to write the answer.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads the next request's head: `Err(Closed)` when the client closes
    /// (or stays idle past the keep-alive time) between requests.
    pub fn read_head(&mut self) -> Result<Head, HttpError> {
        let mut deadline = (!self.pending.is_empty()).then(|| Instant::now() + self.timeouts.head);
        let idle_until = Instant::now() + self.timeouts.idle;
        loop {
            if let Some(end) = find_head_end(&self.pending) {
                let head = parse_head(&self.pending[..end]);
                self.pending.drain(..end);
                return head;
            }
            if self.pending.len() > MAX_HEAD_BYTES {
                return Err(HttpError::HeadTooLarge);
            }
            // Until a request starts, the connection is idle; from its first byte, the head's deadline runs.
            let until = deadline.unwrap_or(idle_until);
            let read = self.read_some(until, MAX_HEAD_BYTES + 4 - self.pending.len());
            match read {
                Ok(0) | Err(HttpError::TimedOut) if deadline.is_none() => return Err(HttpError::Closed),
                Ok(0) => return Err(HttpError::BadRequest("the connection ended inside a request".into())),
                Ok(_) => {
                    deadline.get_or_insert_with(|| Instant::now() + self.timeouts.head);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads `head`'s body, at most `limit` bytes (answering `100 Continue`
    /// first if the client waits for it).
    pub fn read_body(&mut self, head: &Head, limit: usize) -> Result<Vec<u8>, HttpError> {
        if head.content_length > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
        if head.expects_continue && self.pending.is_empty() && head.content_length > 0 {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(HttpError::Io)?;
        }
        let deadline = Instant::now() + self.timeouts.body;
        while self.pending.len() < head.content_length {
            if self.read_some(deadline, head.content_length - self.pending.len())? == 0 {
                return Err(HttpError::BadRequest("the connection ended inside the body".into()));
            }
        }
        let rest = self.pending.split_off(head.content_length);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    /// Reads at most `max` (≥ 1) bytes into `pending`, waiting until `deadline` at most.
    fn read_some(&mut self, deadline: Instant, max: usize) -> Result<usize, HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::TimedOut);
        }
        self.stream.set_read_timeout(Some(left)).map_err(HttpError::Io)?;
        let mut buf = [0u8; 16 << 10];
        let want = max.clamp(1, buf.len());
        match self.stream.read(&mut buf[..want]) {
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(HttpError::TimedOut)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.read_some(deadline, max),
            Err(e) => Err(HttpError::Io(e)),
        }
    }
}

/// The index just past the blank line ending a head, if `bytes` holds one.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The reason phrase of the statuses `serve` sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes a whole answer.
pub fn write_response(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra_headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// A streamed answer in chunked transfer encoding (server-sent events).
pub struct ChunkedWriter<'a> {
    out: &'a mut TcpStream,
}

impl<'a> ChunkedWriter<'a> {
    /// Sends the head of a `200` event stream.
    pub fn start_event_stream(out: &'a mut TcpStream, keep_alive: bool) -> std::io::Result<Self> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             Transfer-Encoding: chunked\r\nConnection: {}\r\n\r\n",
            if keep_alive { "keep-alive" } else { "close" }
        );
        out.write_all(head.as_bytes())?;
        out.flush()?;
        Ok(Self { out })
    }

    /// Sends one chunk (empty bytes send nothing: an empty chunk would end the stream).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.out.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
        self.out.write_all(bytes)?;
        self.out.write_all(b"\r\n")?;
        self.out.flush()
    }

    /// Ends the stream.
    pub fn finish(self) -> std::io::Result<()> {
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_their_framing() {
        let head =
            parse_head(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            (head.method.as_str(), head.path.as_str(), head.content_length),
            ("POST", "/v1/chat/completions", 12)
        );
        assert!(head.keep_alive && !head.expects_continue);
        assert_eq!(head.header("host"), Some("a"));
        let head = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!head.keep_alive, "HTTP/1.0 closes by default");
        let head = parse_head(b"POST / HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!head.keep_alive && head.expects_continue);
    }

    #[test]
    fn framing_a_smuggler_could_use_is_refused() {
        let chunked = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(chunked, Err(HttpError::LengthRequired)));
        let two = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(two, Err(HttpError::BadRequest(_))));
        let negative = parse_head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        assert!(matches!(negative, Err(HttpError::BadRequest(_))));
        assert!(matches!(parse_head(b"GARBAGE\r\n\r\n"), Err(HttpError::BadRequest(_))));
    }
}
