//! Latent Studio: a local-first desktop studio for generative models.
//!
//! The GUI in layers (`app` → `ui`, `app` → `worker`), the machine-learning
//! core by family (`vae`, `gan`, `text`, `diffusion`) on shared layers
//! (`nn` ops, `train` machinery, the `latent` interface), files and formats
//! in `io`. `library` finds a model by id and loads it with its family; `cli`
//! runs every feature headless. See ARCHITECTURE.md for the allowed import
//! directions.

pub mod app;
pub mod cli;
pub mod diffusion;
pub mod fuzzing;
pub mod gan;
pub mod history;
pub mod hub;
pub mod io;
pub mod latent;
pub mod library;
pub mod nn;
pub mod remote;
pub mod runtime;
pub mod serve;
pub mod spec;
pub mod text;
pub mod train;
pub mod ui;
pub mod vae;
pub mod worker;
