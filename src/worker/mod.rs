//! The background inference worker: a named thread that owns the models.
//! The app talks to it only through [`WorkerHandle`].

pub mod backends;
pub mod cache;
pub mod downloads;
pub mod handle;
mod image;
pub mod protocol;
mod remote_image;
pub mod run;
pub mod skeleton;
mod text;
mod train_commands;
pub mod train_plan;
mod train_runs;
mod training;
pub mod vae_tools;

pub use handle::{Waker, WorkerHandle};
pub use protocol::{
    ImageJob, ImageModelRef, JobId, PadJob, SaveFormat, SaveTarget, TextModelRef, TokenPiece, TravelJob, WorkerEvent,
    WorkerRequest, WorkerThread,
};
