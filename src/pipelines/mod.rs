//! Plain functions and loops that run models: latent walks, text generation,
//! sampling, training, seeded noise.

pub mod adam;
pub mod cancel;
pub mod checkpoint;
pub mod export_diffusion;
pub mod export_gan;
pub mod export_model;
pub mod export_text_model;
pub mod gan_directions;
pub mod gan_diversity;
pub mod generate;
pub mod image_record;
pub mod latent;
pub mod random_diffusion;
pub mod rng;
pub mod sampling;
pub mod schedulers;
pub mod text_export;
pub mod train_autoencoder;
pub mod train_clip_bpe;
pub mod train_diffusion;
pub mod train_gan;
pub mod train_log;
pub mod train_text;
pub mod train_vae;
pub mod txt2img;
