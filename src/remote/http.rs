//! One remote server: its base URL, its optional API key, and an HTTP agent
//! (a connection pool). Requests are JSON; answers are read whole with a
//! size limit, or as a stream whose reader the caller drops to close the
//! connection (which is how a streamed generation is cancelled).

use std::io::Read;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::Agent;
use ureq::http::Response;

use crate::hub::config::Token;

/// Most bytes of a whole (non-streamed) answer: a batch of large images as
/// base64 PNGs fits; a server sending more is refused, not buffered.
pub const MAX_ANSWER_BYTES: u64 = 512 << 20;

/// Most characters of a server's error message repeated to the user.
const MAX_MESSAGE_CHARS: usize = 300;

/// What went wrong talking to a server. Every variant names the server (its
/// base URL); none carries the API key.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {server}: {detail}")]
    Connect { server: String, detail: String },
    #[error("{server} refused the request to {path} (HTTP {status}): check the backend's API key")]
    Unauthorized { server: String, path: String, status: u16 },
    #[error("{server} is busy (HTTP 429 on {path}); try again later or use another backend")]
    Busy { server: String, path: String },
    #[error("{server} answered HTTP {status} to {path}: {message}")]
    Status { server: String, path: String, status: u16, message: String },
    #[error("{server} answered {path} with something the studio cannot use: {detail}")]
    BadAnswer { server: String, path: String, detail: String },
    #[error("{server} stopped answering {path} mid-way: {detail}")]
    Dropped { server: String, path: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl RemoteError {
    /// Whether another backend (or this one later) may succeed where this
    /// failed: the server was unreachable, busy, broken or died mid-answer,
    /// as opposed to refusing the request itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Busy { .. } | Self::Dropped { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            Self::Unauthorized { .. } | Self::BadAnswer { .. } | Self::Invalid(_) => false,
        }
    }
}

/// A server at `base` (scheme, host, port and an optional path prefix, no trailing slash).
#[derive(Clone, Debug)]
pub struct RemoteServer {
    base: String,
    key: Option<Token>,
    agent: Agent,
}

impl RemoteServer {
    /// A server at `url` (`http://host:port` or with a prefix such as `/v1`
    /// left out: paths are added per request). `key`, if any, goes only in
    /// the `Authorization` header.
    pub fn new(url: &str, key: Option<Token>) -> Result<Self, RemoteError> {
        let base = url.trim().trim_end_matches('/').to_owned();
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        if !scheme_ok || base.len() <= "https://".len() {
            return Err(RemoteError::Invalid(format!("{url:?} is not an http:// or https:// address")));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("latent-studio/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            // A big model's prompt, or an image at many steps, can take minutes before the answer starts.
            .timeout_recv_response(Some(Duration::from_secs(600)))
            // A server that goes silent mid-stream is given up on (and the job retried elsewhere).
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Self { base, key, agent })
    }

    /// The base URL, as shown to the user.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The key it sends, if any (to tell whether it changed; never to show).
    pub fn key(&self) -> Option<&Token> {
        self.key.as_ref()
    }

    /// `GET path`, the answer parsed as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("Authorization", key.bearer());
        }
        let response = request.call().map_err(|e| self.connect_error(e))?;
        self.read_json(path, response)
    }

    /// `POST path` with a JSON body, the answer parsed as JSON.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, RemoteError> {
        let response = self.post(path, body, "application/json")?;
        self.read_json(path, response)
    }

    /// `POST path` with a JSON body, expecting an event stream: the answer's
    /// body as a reader (dropping it closes the connection).
    pub fn post_stream<B: Serialize>(&self, path: &str, body: &B) -> Result<impl Read + use<B>, RemoteError> {
        let response = self.post(path, body, "text/event-stream")?;
        let response = self.check_status(path, response)?;
        Ok(response.into_body().into_reader())
    }

    fn post(&self, path: &str, body: &impl Serialize, accept: &str) -> Result<Response<ureq::Body>, RemoteError> {
        let bytes = serde_json::to_vec(body).map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .header("Accept", accept);
        if let Some(key) = &self.key {
            request = request.header("Authorization", key.bearer());
        }
        request.send(&bytes[..]).map_err(|e| self.connect_error(e))
    }

    fn read_json<T: DeserializeOwned>(&self, path: &str, response: Response<ureq::Body>) -> Result<T, RemoteError> {
        let response = self.check_status(path, response)?;
        let bytes = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| self.dropped(path, &e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| self.bad_answer(path, &e.to_string()))
    }

    /// The response if its status is a success, else the error it means.
    fn check_status(&self, path: &str, response: Response<ureq::Body>) -> Result<Response<ureq::Body>, RemoteError> {
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let (server, path) = (self.base.clone(), path.to_owned());
        Err(match status {
            401 | 403 => RemoteError::Unauthorized { server, path, status },
            429 => RemoteError::Busy { server, path },
            _ => {
                let text = response.into_body().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
                RemoteError::Status { server, path, status, message: error_message(&text) }
            }
        })
    }

    fn connect_error(&self, error: ureq::Error) -> RemoteError {
        RemoteError::Connect { server: self.base.clone(), detail: error.to_string() }
    }

    /// The stream or answer broke off.
    pub fn dropped(&self, path: &str, detail: &str) -> RemoteError {
        RemoteError::Dropped { server: self.base.clone(), path: path.to_owned(), detail: detail.to_owned() }
    }

    /// The answer arrived but does not mean anything usable.
    pub fn bad_answer(&self, path: &str, detail: &str) -> RemoteError {
        RemoteError::BadAnswer { server: self.base.clone(), path: path.to_owned(), detail: detail.to_owned() }
    }
}

/// The message of an error answer: OpenAI's `{"error": {"message"}}`,
/// FastAPI's `{"detail"}`, A1111's `{"error", "errors"}`, or the text itself,
/// printable and short.
pub fn error_message(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = json.as_ref().and_then(|v| {
        [v.pointer("/error/message"), v.get("detail"), v.get("errors"), v.get("error"), v.get("message")]
            .into_iter()
            .flatten()
            .find(|f| !f.is_null())
            .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_owned))
    });
    let text = field.unwrap_or_else(|| body.to_owned());
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE_CHARS).collect();
    if text.trim().is_empty() { "(no message)".to_owned() } else { text.trim().to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_each_dialect() {
        assert_eq!(error_message(r#"{"error":{"message":"model not found","type":"x"}}"#), "model not found");
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(r#"{"error":"OutOfMemory","errors":"CUDA out of memory"}"#), "CUDA out of memory");
        assert_eq!(error_message("Internal Server Error\n"), "Internal Server Error");
        assert_eq!(error_message(""), "(no message)");
        assert_eq!(error_message(&"x".repeat(1000)).len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn addresses_are_checked() {
        assert!(RemoteServer::new("localhost:8080", None).is_err());
        assert!(RemoteServer::new("http://", None).is_err());
        assert_eq!(RemoteServer::new(" http://127.0.0.1:8080/ ", None).unwrap().base(), "http://127.0.0.1:8080");
    }

    #[test]
    fn retryable_failures() {
        let status =
            |status| RemoteError::Status { server: "s".into(), path: "/p".into(), status, message: "m".into() };
        assert!(status(502).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!RemoteError::Unauthorized { server: "s".into(), path: "/p".into(), status: 401 }.is_retryable());
        assert!(RemoteError::Busy { server: "s".into(), path: "/p".into() }.is_retryable());
    }
}
