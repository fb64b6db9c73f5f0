//! Talking to the Hub over HTTP as `huggingface_hub` does: the token sent
//! only to the Hub's own host, `Accept-Encoding: identity` so sizes and
//! ranges count the file's bytes, redirects followed by hand (a renamed
//! repo's relative redirect keeps the token; a CDN's absolute one drops
//! it), and the Hub's `X-Error-Code` turned into a message that names the
//! repo and file.

use std::time::Duration;

use ureq::http::Response;
use ureq::{Agent, Body};

use super::cache::RepoId;
use super::config::HubConfig;

/// At most this many redirects per request (renamed repos, then the CDN).
const MAX_REDIRECTS: usize = 10;

/// What went wrong talking to the Hub or writing its files.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("offline (HF_HUB_OFFLINE is set) and {what} is not in the hub cache")]
    Offline { what: String },
    #[error("cannot reach {server}: {detail}")]
    Connect { server: String, detail: String },
    #[error(
        "{repo} was not found on {server} (if it is private or gated, set HF_TOKEN or log in with `hf auth login`)"
    )]
    RepoNotFound { repo: String, server: String },
    #[error("{repo} is gated: ask for access on its page, then set HF_TOKEN")]
    Gated { repo: String },
    #[error("{repo} has no revision {revision:?}")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{repo} has no file {path:?} at that revision")]
    EntryNotFound { repo: String, path: String },
    #[error("{url} answered {status}{message}")]
    Status { url: String, status: u16, message: String },
    #[error("{url} answered something the studio cannot use: {detail}")]
    BadAnswer { url: String, detail: String },
    #[error(
        "{repo}/{path} did not match the Hub's checksum (expected {expected}, got {actual}); the download was deleted"
    )]
    Checksum { repo: String, path: String, expected: String, actual: String },
    #[error(
        "no room left writing {path} ({detail}): the disk is full or the file too large for it; \
         the {kept} bytes so far are kept and the download resumes once there is room"
    )]
    DiskFull { path: String, kept: u64, detail: String },
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
}

impl HubError {
    pub(crate) fn file(path: &std::path::Path, error: &std::io::Error) -> Self {
        HubError::File { path: path.display().to_string(), detail: error.to_string() }
    }
}

/// A Hub connection: settings plus one HTTP agent (its connection pool).
#[derive(Clone, Debug)]
pub struct Hub {
    config: HubConfig,
    agent: Agent,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        let agent: Agent = Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(format!("latent-studio/{}; hf_hub/rust", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            // A stalled transfer fails (and resumes) instead of hanging.
            .timeout_per_read(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self { config, agent }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The endpoint's `scheme://host[:port]`, where the token may go.
    fn endpoint_origin(&self) -> &str {
        origin(&self.config.endpoint)
    }

    /// `GET`/`HEAD` `url`, following redirects: all of them when `follow_all`,
    /// else only relative ones (as `huggingface_hub` does for metadata, so the
    /// CDN's address is read from `Location` instead of fetched).
    pub(crate) fn request(
        &self,
        method: Method,
        url: &str,
        range_from: Option<u64>,
        follow_all: bool,
    ) -> Result<Response<Body>, HubError> {
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = match method {
                Method::Get => self.agent.get(&url),
                Method::Head => self.agent.head(&url),
            }
            .header("Accept-Encoding", "identity");
            if let Some(token) = &self.config.token
                && origin(&url) == self.endpoint_origin()
            {
                request = request.header("Authorization", token.bearer());
            }
            if let Some(from) = range_from.filter(|&n| n > 0) {
                request = request.header("Range", format!("bytes={from}-"));
            }
            let response = request.call().map_err(|e| self.connect_error(&url, e))?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = header(&response, "location") else {
                return Err(HubError::BadAnswer { url, detail: "a redirect without Location".into() });
            };
            let relative = location.starts_with('/');
            if !follow_all && !relative {
                return Ok(response);
            }
            url = if relative { format!("{}{location}", origin(&url)) } else { location };
        }
        Err(HubError::BadAnswer { url, detail: format!("more than {MAX_REDIRECTS} redirects") })
    }

    fn connect_error(&self, url: &str, error: ureq::Error) -> HubError {
        HubError::Connect { server: origin(url).to_owned(), detail: error.to_string() }
    }

    /// Turns an error status into the Hub's meaning of it.
    pub(crate) fn status_error(&self, response: &Response<Body>, url: &str, repo: &RepoId, path: &str) -> HubError {
        let status = response.status().as_u16();
        let repo_name = repo.to_string();
        match header(response, "x-error-code").as_deref() {
            Some("RepoNotFound") => {
                HubError::RepoNotFound { repo: repo_name, server: self.endpoint_origin().to_owned() }
            }
            Some("GatedRepo") => HubError::Gated { repo: repo_name },
            Some("RevisionNotFound") => HubError::RevisionNotFound { repo: repo_name, revision: path.to_owned() },
            Some("EntryNotFound") => HubError::EntryNotFound { repo: repo_name, path: path.to_owned() },
            _ if status == 401 => HubError::RepoNotFound { repo: repo_name, server: self.endpoint_origin().to_owned() },
            _ if status == 403 => HubError::Gated { repo: repo_name },
            _ => {
                let message = header(response, "x-error-message")
                    .map(|m| format!(": {}", m.chars().filter(|c| !c.is_control()).take(200).collect::<String>()))
                    .unwrap_or_default();
                HubError::Status { url: url.to_owned(), status, message }
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    Get,
    Head,
}

/// A header's value as text, if present and printable.
pub(crate) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `scheme://host[:port]` of an absolute URL (the whole text if it has no path).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Percent-encodes `text` for a URL path (`/` kept when `keep_slash`), as
/// Python's `quote` does.
pub(crate) fn quote(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let plain =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') || (keep_slash && byte == b'/');
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_quoting() {
        assert_eq!(origin("https://huggingface.co/a/b/resolve/main/x"), "https://huggingface.co");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(quote("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(quote("unet/model v2.safetensors", true), "unet/model%20v2.safetensors");
    }
}
