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
