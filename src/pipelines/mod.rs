//! Plain functions and loops that run models: latent walks, training, seeded noise.

pub mod adam;
pub mod cancel;
pub mod export_model;
pub mod latent;
pub mod rng;
pub mod train_vae;
