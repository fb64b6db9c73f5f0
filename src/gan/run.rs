//! A GAN training run as the epoch driver sees it (`train::driver`), and the
//! log files it leaves in `OUT/progress` for "Watch a run…" to follow. The
//! command line and the Train view both run GANs through these.

use std::path::{Path, PathBuf};

use crate::gan::diversity::spread_ratio;
use crate::gan::export::export_gan;
use crate::gan::train::{GanTrainEvent, GanTrainer, TrainGanSpec};
use crate::io::datasets::ImageSet;
use crate::io::png_meta::encode_png;
use crate::spec::train::GanEpochReport;
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, EpochTrainer, TrainObserver};
use crate::train::error::{TrainError, file_err};
use crate::train::export::ExportInfo;
use crate::train::log::{self as train_log, LogLine};

/// A batch's losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanLosses {
    /// Discriminator loss.
    pub d_loss: f64,
    /// Generator loss.
    pub g_loss: f64,
}

impl crate::train::report::Reported for GanLosses {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("D", self.d_loss), ("G", self.g_loss)]
    }
    fn line(&self) -> String {
        format!("D {:.3}, G {:.3}", self.d_loss, self.g_loss)
    }
}

/// A GAN with the images it trains on and those its export checks against.
pub struct GanRun {
    /// The networks and their optimisers.
    pub trainer: GanTrainer,
    /// Training images.
    pub train: ImageSet,
    /// Held-out images (the mode-collapse check).
    pub test: ImageSet,
}

impl EpochTrainer for GanRun {
    type Losses = GanLosses;
    type Report = GanEpochReport;

    crate::train::driver::delegate_epoch_bookkeeping!();

    fn batches_per_epoch(&self) -> usize {
        self.train.len() / self.trainer.spec().batch_size.max(1)
    }

    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<GanLosses>),
    ) -> Result<Option<EpochEnd<GanEpochReport>>, TrainError> {
        let mut grid = None;
        let report = self.trainer.train_epoch(
            &self.train,
            &mut |e| match e {
                GanTrainEvent::Batch { epoch, batch, batches, d_loss, g_loss } => {
                    on_batch(BatchTick { epoch, batch, batches, losses: GanLosses { d_loss, g_loss } })
                }
                GanTrainEvent::Epoch { grid: g, .. } => grid = Some(g),
            },
            cancel,
        )?;
        let Some(mut report) = report else { return Ok(None) };
        let spec = self.trainer.spec();
        report.diversity = spread_ratio(
            self.trainer.generator(),
            spec.config.latent_dim,
            &self.test,
            &self.train,
            spec.seed ^ 0xC011,
        )?;
        self.trainer.set_last_report(report.clone());
        Ok(Some(EpochEnd::new(report, grid)))
    }

    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError> {
        export_gan(&self.trainer, &self.train, &self.test, dir, info)
    }
}

/// The display name a GAN run's model gets unless the user names it.
pub fn default_gan_name(spec: &TrainGanSpec) -> String {
    format!("{} DCGAN", spec.dataset.name())
}

/// Writes a run's `progress/losses.jsonl` (every batch and epoch) and each
/// epoch's sample grid, which the Train view follows while the run goes on.
pub struct GanRunLog {
    progress: PathBuf,
}

impl GanRunLog {
    /// A log in `out/progress`, created if missing.
    pub fn create(out: &Path) -> Result<Self, TrainError> {
        let progress = out.join("progress");
        std::fs::create_dir_all(&progress).map_err(|e| file_err(&progress, e))?;
        Ok(Self { progress })
    }

    fn append(&self, line: &LogLine) -> Result<(), TrainError> {
        train_log::append(&self.progress, line).map_err(|e| file_err(&self.progress.join(train_log::LOG_FILE), e))
    }
}

impl TrainObserver<GanLosses, GanEpochReport> for GanRunLog {
    fn batch(&mut self, t: &BatchTick<GanLosses>) -> Result<(), TrainError> {
        let GanLosses { d_loss, g_loss } = t.losses;
        self.append(&LogLine::Batch { epoch: t.epoch, batch: t.batch, batches: t.batches, d_loss, g_loss })
    }

    fn epoch_done(&mut self, end: &EpochEnd<GanEpochReport>) -> Result<(), TrainError> {
        // The grid first: a follower opens it when it reads the epoch's line.
        if let Some(grid) = &end.grid {
            let path = train_log::grid_path(&self.progress, end.report.epoch);
            let png = encode_png(grid, &[]).map_err(|e| file_err(&path, e))?;
            std::fs::write(&path, png).map_err(|e| file_err(&path, e))?;
        }
        self.append(&LogLine::Epoch { report: end.report.clone() })
    }

    fn finished(&mut self, epochs: usize) -> Result<(), TrainError> {
        self.append(&LogLine::Done { epochs })
    }
}
