//! A VAE training run as the epoch driver sees it (`train::driver`): the
//! command line and the worker both train VAEs through it.

use std::path::Path;

use crate::io::datasets::ImageSet;
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, EpochTrainer};
use crate::train::error::TrainError;
use crate::train::export::ExportInfo;
use crate::vae::export::{export_vae, sample_grid};
use crate::vae::train::{EpochReport, TrainEvent, TrainVaeSpec, VaeTrainer};

/// A VAE with its training images and the held-out ones it is evaluated
/// (and its latent map drawn) on.
pub struct VaeRun {
    /// The network and its optimiser.
    pub trainer: VaeTrainer,
    /// Training images.
    pub train: ImageSet,
    /// Held-out images.
    pub test: ImageSet,
}

impl EpochTrainer for VaeRun {
    /// The batch's loss (nats per image).
    type Losses = f64;
    type Report = EpochReport;

    crate::train::driver::delegate_epoch_bookkeeping!();

    fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.trainer.spec().batch_size.max(1))
    }

    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<f64>),
    ) -> Result<Option<EpochEnd<EpochReport>>, TrainError> {
        let mut on_event = |e: TrainEvent| {
            if let TrainEvent::Batch { epoch, batch, batches, loss } = e {
                on_batch(BatchTick { epoch, batch, batches, losses: loss });
            }
        };
        let report = self.trainer.train_epoch(&self.train, &self.test, &mut on_event, cancel)?;
        let Some(report) = report else { return Ok(None) };
        Ok(Some(EpochEnd::new(report, Some(sample_grid(&self.trainer)?.0))))
    }

    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError> {
        export_vae(&self.trainer, self.train.len(), &self.test, dir, info)
    }
}

/// The display name a VAE run's model gets unless the user names it.
pub fn default_vae_name(spec: &TrainVaeSpec) -> String {
    format!("{} VAE, {}-D latent", spec.dataset.name(), spec.config.latent_dim)
}
