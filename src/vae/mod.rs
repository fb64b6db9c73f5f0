//! Variational autoencoders: the network (`network`: encoder, decoder,
//! reparameterisation, ELBO), a trained VAE as a `LatentModel` (`model`),
//! training (`train`) and the model folder it exports (`export`).

pub mod export;
pub mod model;
pub mod network;
pub mod outliers;
pub mod run;
pub mod train;
