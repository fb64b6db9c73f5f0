//! Other machines' servers as backends: OpenAI-compatible text servers
//! (llama.cpp's server, vLLM, Ollama, LM Studio, another studio's `serve`)
//! and AUTOMATIC1111-compatible image servers. Each client speaks its
//! protocol over plain HTTP/1.1 ([`http`]), streams where the protocol
//! streams (server-sent events, `io::sse`), and reports failures that name
//! the server, never the API key.

pub mod a1111;
pub mod detect;
pub mod http;
pub mod keys;
pub mod openai;
pub mod pool;

pub use http::{RemoteError, RemoteServer};
