//! Where a job runs: here, or on a remote server speaking one of the two
//! settled protocols.

use serde::{Deserialize, Serialize};

/// The protocol of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackendKind {
    /// This machine's own models.
    Local,
    /// An OpenAI-compatible text server (`/v1`): llama.cpp's server, vLLM,
    /// Ollama, LM Studio, another studio's `serve`.
    OpenAi,
    /// An AUTOMATIC1111-compatible image server (`/sdapi/v1`): A1111, Forge,
    /// stable-diffusion.cpp's `sd-server`, another studio's `serve`.
    A1111,
}

impl BackendKind {
    /// The name on the command line (`--backend-kind`) and in the settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::OpenAi => "openai",
            Self::A1111 => "a1111",
        }
    }
}

/// A remote server the user added: what it speaks and where. Its API key,
/// if any, is kept apart (owner-only file), never in these settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackendConfig {
    /// The protocol.
    pub kind: BackendKind,
    /// Base URL (`http://host:port`), without a trailing slash.
    pub url: String,
}

/// How a backend is doing, as the UI shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendHealth {
    /// Not asked yet.
    Unknown,
    Healthy,
    /// Failed `failures` times in a row; asked again in `retry_in_secs`.
    Paused {
        failures: u32,
        retry_in_secs: u64,
        error: String,
    },
}

/// One backend's state, models and load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendView {
    pub config: BackendConfig,
    pub health: BackendHealth,
    /// Its models (text ids, or image checkpoints).
    pub models: Vec<String>,
    /// An image server's LoRAs.
    pub loras: Vec<String>,
    /// Jobs it runs for us now.
    pub in_flight: usize,
    /// Jobs it finished for us.
    pub done: usize,
}

/// Short form of a backend's URL for menus (`host:port`).
pub fn short_url(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/')
}
