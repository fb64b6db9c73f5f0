//! Files: data sets, model manifests, PNG with metadata, GIF export, output paths.

pub mod base64_image;
pub mod chart;
pub mod conversations;
pub mod datasets;
pub mod directions;
pub mod emoji;
pub mod error;
pub mod export;
pub mod gif_text;
pub mod image_folder;
pub mod image_record;
pub mod latent_map;
pub mod manifest;
pub mod npy;
pub mod output;
pub mod png_meta;
pub mod sd_params;
pub mod sse;
pub mod text_corpus;
