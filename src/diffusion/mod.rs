//! Latent text-to-image diffusion in the diffusers folder layout
//! (`save_pretrained`): `text_encoder/` + `tokenizer/` (and `_2` for SDXL),
//! `unet/`, `vae/`, `scheduler/`. Stable Diffusion 1.x/2.x/Turbo/XL weights
//! and our own emoji model are both read from such folders.
//!
//! Networks: `clip_tokenizer`, `clip_text`, `autoencoder`, `unet` (with its
//! `unet_config`, `blocks` and `transformer`), loaded together by `nets`.
//! Sampling: `schedulers/` and the guided loop in `pipeline`; a result's
//! settings in `image_record`. Training: `train_autoencoder`, `train_bpe`,
//! `train` (U-Net and text encoder), `export`; `random_weights` writes
//! random folders of any shape for tests and benchmarks.

pub mod autoencoder;
pub mod blocks;
pub mod checkpoint;
pub mod clip_text;
pub mod clip_tokenizer;
pub mod export;
pub mod lora;
pub mod model_library;
pub mod nets;
pub mod pipeline;
pub mod prompt;
pub mod random_weights;
pub mod runs;
pub mod schedulers;
pub mod tiny_decoder;
pub mod train;
pub mod train_autoencoder;
pub mod train_bpe;
pub mod transformer;
pub mod unet;
pub mod unet_config;

pub use nets::{DiffusionNets, FolderError, read_config};
