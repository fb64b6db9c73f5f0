//! Quantized matrix–vector products for GGUF weights, with SIMD kernels chosen
//! at run time. candle 0.11's CPU path has no SIMD kernel for Q4_1 (the format
//! SmolLM2 ships in), which made generation six times slower than llama.cpp;
//! K-quant files (Q4_K_M, Q5_K_M) add Q4_K, Q5_K, Q6_K, Q5_0 and Q5_1.
//!
//! A crate of its own so that it is compiled optimised in test builds too
//! (`[profile.dev.package.latent-kernels]`): unoptimised SIMD intrinsics run
//! tens of times slower, and the model tests run real weights through them.

pub mod activation;
pub mod blocks;
mod dot;
#[cfg(target_arch = "x86_64")]
mod dot_avx2;
#[cfg(target_arch = "x86_64")]
mod dot_avx2_q5k;
#[cfg(target_arch = "x86_64")]
mod dot_avx512_q5_0;
pub mod format;
pub mod qmatrix;
pub mod softmax;
pub mod vector;
pub mod vector_f16;

pub use format::{ActFormat, WeightFormat};
pub use half::f16;
pub use qmatrix::{Activations, QMatrix};
pub use softmax::{exp_shifted, softmax, softmax_scaled};
pub use vector::{axpy, axpy_rows, dot, dot_rows};
pub use vector_f16::{axpy_f16, axpy_rows_f16, dot_f16, dot_rows_f16, store_f16};
