//! The Hugging Face Hub: its settings (`config.rs`, from the same
//! environment as Python's `huggingface_hub`), its cache layout
//! (`cache.rs`, shared with Python tools), a repo's description from its
//! API (`repo_info.rs`) and the quantization a GGUF file name announces
//! (`quant.rs`).

pub mod cache;
pub mod config;
pub mod quant;
pub mod repo_info;
