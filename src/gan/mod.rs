//! Generative adversarial networks: the DCGAN generator and discriminator
//! (`network`), a generator as a `LatentModel` (`model`), adversarial
//! training (`train`), the exported model folder (`export`) with its
//! mode-collapse check (`diversity`), and GANSpace latent directions
//! (`directions`).

pub mod directions;
pub mod diversity;
pub mod export;
pub mod model;
pub mod network;
pub mod run;
pub mod train;
