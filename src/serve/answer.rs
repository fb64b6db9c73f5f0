//! Answers and errors in each protocol's dialect: OpenAI's
//! `{"error": {"message", "type", "code"}}`, A1111's FastAPI
//! `{"detail": …}` (and `{"error", "errors"}` for failures).

use std::io::Write;
use std::net::TcpStream;

use serde_json::{Value, json};

use super::http::write_response;

/// Which protocol's error shape a route answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    A1111,
}

/// A request that fails, with the status and message the client gets.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// OpenAI's `type` and `code`.
    kind: &'static str,
    code: Option<&'static str>,
    /// The client is gone (a write failed): nothing can be sent.
    pub gone: bool,
}

impl ApiError {
    fn new(status: u16, message: String, kind: &'static str, code: Option<&'static str>) -> Self {
        Self { status, message, kind, code, gone: false }
    }

    /// A request the server will not run as asked.
    pub fn bad(message: String) -> Self {
        Self::new(400, message, "invalid_request_error", None)
    }

    pub fn model_not_found(model: &str) -> Self {
        let message = format!("the model {model:?} does not exist here (see GET /v1/models)");
        Self::new(404, message, "invalid_request_error", Some("model_not_found"))
    }

    /// The queue is full: try again later.
    pub fn busy(message: &str) -> Self {
        Self::new(429, format!("{message}; try again shortly"), "rate_limit_exceeded", Some("queue_full"))
    }

    /// The job ran and failed.
    pub fn failed(message: String) -> Self {
        Self::new(500, message, "server_error", None)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "a valid API key is required (Authorization: Bearer …)".into(),
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(404, format!("no route {path}"), "invalid_request_error", None)
    }

    pub fn status(status: u16, message: String) -> Self {
        Self::new(status, message, "invalid_request_error", None)
    }

    /// Writing to the client failed: it is gone.
    pub fn gone(_: std::io::Error) -> Self {
        Self { gone: true, ..Self::new(499, "the client went away".into(), "client_closed", None) }
    }

    /// The error's body in `dialect`.
    pub fn body(&self, dialect: Dialect) -> Value {
        match dialect {
            Dialect::OpenAi => {
                json!({ "error": { "message": self.message, "type": self.kind, "param": null, "code": self.code } })
            }
            Dialect::A1111 if self.status >= 500 => {
                json!({ "error": "Error", "detail": "", "body": "", "errors": self.message })
            }
            Dialect::A1111 => json!({ "detail": self.message }),
        }
    }

    /// Sends the error (a 429 with `Retry-After`).
    pub fn write(&self, out: &mut TcpStream, dialect: Dialect, keep_alive: bool) -> std::io::Result<()> {
        let body = serde_json::to_vec(&self.body(dialect)).unwrap_or_default();
        let retry: &[(&str, String)] = if self.status == 429 { &[("Retry-After", "1".to_owned())] } else { &[] };
        write_response(out, self.status, "application/json", &body, keep_alive, retry)
    }
}

/// Sends `value` as JSON with `status`.
pub fn write_json(out: &mut impl Write, status: u16, value: &Value, keep_alive: bool) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    write_response(out, status, "application/json", &body, keep_alive, &[])
}

/// Whether the client closed its side (checked without blocking while its
/// answer is being computed, so a departed client's job is cancelled).
pub fn client_gone(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let gone = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    gone || stream.set_nonblocking(false).is_err()
}
