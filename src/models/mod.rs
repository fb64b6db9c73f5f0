//! Model families: configuration, construction from weights, forward passes.
//! Nothing here knows about the UI or threads.

pub mod attention_op;
pub mod char_gpt;
pub mod conv;
pub mod conv_op;
pub mod diffusion;
pub mod epilogue;
pub mod gan;
pub mod gan_model;
pub mod geglu_op;
pub mod gguf_llama;
pub mod gguf_tokenizer;
pub mod gpt;
pub mod latent_model;
pub mod layer_op;
pub mod linear;
pub mod llama;
pub mod matrix;
pub mod norm_op;
pub mod registry;
pub mod text_model;
pub mod unfold;
pub mod vae;
pub mod vae_model;

/// The device models run on: the first GPU when built with `cuda` or `metal`
/// and one is present, else the CPU.
pub fn default_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = candle_core::Device::new_metal(0) {
        return d;
    }
    candle_core::Device::Cpu
}
