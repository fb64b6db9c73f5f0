//! Latent Studio: a local-first desktop studio for generative models.
//!
//! Layers, from the bottom: `models` (networks) → `pipelines` (functions that
//! run them) → `worker` (the background thread that owns them) → `app`
//! (state and job table) → `ui` (egui panels). `io` is shared file handling.
//! See ARCHITECTURE.md.

pub mod app;
pub mod cli;
pub mod io;
pub mod models;
pub mod pipelines;
pub mod runtime;
pub mod ui;
pub mod worker;
