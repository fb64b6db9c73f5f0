//! Variational autoencoders: the network (`network`: encoder, decoder,
//! reparameterisation, ELBO), a trained VAE as a `LatentModel` (`model`),
//! training (`train`), the model folder it exports (`export`), and what a
//! VAE is for besides sampling: ranking outliers (`outliers`) and removing
//! noise (`denoise`).

pub mod denoise;
pub mod export;
pub mod model;
pub mod network;
pub mod outliers;
pub mod run;
pub mod train;
