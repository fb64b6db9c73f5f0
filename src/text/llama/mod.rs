//! Llama-family models on our own quantized kernels (`latent_kernels`), for
//! GGUF files whose tensor types those kernels cover (F32/F16/BF16, Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants). `gguf_llama` falls back to
//! candle-transformers for the rest.

pub mod forward;
pub mod kv_cache;
pub mod team;
pub mod weights;

pub use forward::{ForwardError, LlamaRunner};
pub use kv_cache::KvPrecision;
pub use weights::{GgufError, LlamaConfig, LlamaWeights, unsupported_reason};
