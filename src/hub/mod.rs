//! The Hugging Face Hub: its settings (`config.rs`, from the same
//! environment as Python's `huggingface_hub`), its cache layout
//! (`cache.rs`, shared with Python tools) and the quantization a GGUF file
//! name announces (`quant.rs`).

pub mod cache;
pub mod config;
pub mod quant;
