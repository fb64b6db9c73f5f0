//! The Hugging Face Hub: its settings (`config.rs`, from the same
//! environment as Python's `huggingface_hub`), its cache layout
//! (`cache.rs`, shared with Python tools), the HTTP client (`http.rs`,
//! `client.rs`: repo descriptions and file metadata), resumable checked
//! downloads (`download.rs`), what is installed (`installed.rs`), the
//! catalogue of known-good models (`catalogue.rs`), a repo's description
//! from its API (`repo_info.rs`) and the quantization a GGUF file name
//! announces (`quant.rs`).

pub mod cache;
pub mod catalogue;
pub mod client;
pub mod config;
pub mod download;
pub mod http;
pub mod installed;
pub mod pull;
pub mod quant;
pub mod repo_info;

pub use http::{Hub, HubError};
