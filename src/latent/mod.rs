//! The family-agnostic latent interface: what the Latent view and the latent
//! CLI commands use for any model that turns a latent vector into an image
//! (`LatentModel`), and the latent arithmetic shared by every family (seeded
//! latents, lerp/slerp, truncation).

pub mod interpolate;
pub mod model;
