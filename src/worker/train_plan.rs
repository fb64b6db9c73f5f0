//! What the Train view asks the worker to train: one family's settings,
//! the data, and the run folder (a fresh one, or one to continue). Plain
//! data with serde, so an unfinished run is remembered in the settings and
//! resumed after the studio restarts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diffusion::stages::{DiffusionSettings, DiffusionStart};
use crate::gan::train::TrainGanSpec;
use crate::io::datasets::DataSource;
use crate::text::train::TrainTextSpec;
use crate::vae::train::TrainVaeSpec;

/// One family's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TrainPlan {
    Vae(TrainVaeSpec),
    Gan(TrainGanSpec),
    /// The autoencoder (unless fine-tuning), then the U-Net with its text encoder.
    Diffusion(DiffusionPlan),
    Text(TrainTextSpec),
}

/// The latent diffusion model's two stages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffusionPlan {
    /// Captioned colour images.
    pub source: DataSource,
    /// Epochs of the autoencoder stage (skipped when fine-tuning).
    pub autoencoder_epochs: usize,
    /// Widths of the autoencoder's three levels.
    pub autoencoder_channels: [usize; 3],
    /// New networks, or a finished model to fine-tune.
    pub start: DiffusionStart,
    /// The U-Net stage's settings.
    pub settings: DiffusionSettings,
}

impl TrainPlan {
    /// The family's short name: run folders are `{stem}-run-N`.
    pub fn stem(&self) -> &'static str {
        match self {
            TrainPlan::Vae(_) => "vae",
            TrainPlan::Gan(_) => "gan",
            TrainPlan::Diffusion(_) => "ldm",
            TrainPlan::Text(_) => "gpt",
        }
    }

    /// Epochs (evaluation rounds for the GPT) of the run's last stage.
    pub fn epochs(&self) -> usize {
        match self {
            TrainPlan::Vae(s) => s.epochs,
            TrainPlan::Gan(s) => s.epochs,
            TrainPlan::Diffusion(p) => p.settings.epochs,
            TrainPlan::Text(s) => s.steps.div_ceil(s.eval_every.max(1)),
        }
    }
}

/// Where a run writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RunFolder {
    /// A new folder `{stem}-run-N` under this one (the first N not taken).
    Fresh(PathBuf),
    /// This folder, new or empty.
    Exact(PathBuf),
    /// Continue the run in this folder from its checkpoints.
    Resume(PathBuf),
}

impl RunFolder {
    /// The folder, once known (a fresh one is only known once made).
    pub fn known(&self) -> Option<&Path> {
        match self {
            RunFolder::Fresh(_) => None,
            RunFolder::Exact(dir) | RunFolder::Resume(dir) => Some(dir),
        }
    }
}

/// A training run for the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub plan: TrainPlan,
    /// Where the named data sets are (`emoji/`, `mnist/`, …).
    pub data_dir: PathBuf,
    pub folder: RunFolder,
    /// Training images (or nothing) to use at most.
    pub limit: Option<usize>,
    /// With `Resume`: stop after this many epochs in all instead of the
    /// planned number; `Some(0)` exports the model from the last checkpoint.
    #[serde(default)]
    pub until: Option<usize>,
}
