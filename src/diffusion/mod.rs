//! Latent text-to-image diffusion: Stable Diffusion 1.x/2.x/Turbo/XL from
//! the files artists keep (single `.safetensors` checkpoints in the
//! A1111/ComfyUI layout, `checkpoint/`) or diffusers folders
//! (`save_pretrained`: `text_encoder/` + `tokenizer/`, and `_2` for SDXL,
//! `unet/`, `vae/`, `scheduler/`), and our own emoji model.
//!
//! Networks: `clip_tokenizer`, `clip_text`, `autoencoder`, `unet` (with its
//! `unet_config`, `blocks` and `transformer`), loaded together by `nets`
//! from a folder or a single file; `tiny_decoder` (TAESD) for previews.
//! The user's files: `model_library` (their folders, by kind, with A1111's
//! hashes), `lora` (merged into the loaded weights), `prompt` (A1111's
//! emphasis, chunks, `<lora:…>` tags, embeddings). Sampling: `schedulers/`,
//! the guided loop in `sampling`, and `pipeline`, which runs a request;
//! `latent_control` (variation seeds, the latent pad, concept sliders, travel). Training: `train_autoencoder`,
//! `train_bpe`, `train` (U-Net and text encoder), `export`;
//! `random_weights` writes random models of any shape for tests and
//! benchmarks.

pub mod autoencoder;
pub mod blocks;
pub mod checkpoint;
pub mod clip_text;
pub mod clip_tokenizer;
pub mod export;
pub mod latent_control;
pub mod latent_rgb;
pub mod lora;
pub mod model_library;
pub mod nets;
pub mod pipeline;
pub mod prompt;
pub mod random_weights;
pub mod runs;
pub mod sampling;
pub mod schedulers;
pub mod stages;
pub mod tiny_decoder;
pub mod train;
pub mod train_autoencoder;
pub mod train_bpe;
pub mod transformer;
pub mod unet;
pub mod unet_config;

pub use nets::{DiffusionNets, FolderError, read_config};
