//! The one epoch loop every training run goes through, from the command line
//! or from the studio's Train view: train an epoch, checkpoint it, tell the
//! observers, and when the planned epochs are done export the model folder.
//! A run started anywhere therefore leaves the same folder behind: its
//! checkpoint, its progress files and its exported model.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::train::cancel::CancelToken;
use crate::train::error::TrainError;
use crate::train::export::ExportInfo;

/// One finished batch.
#[derive(Clone, Debug)]
pub struct BatchTick<L> {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// The batch's losses.
    pub losses: L,
}

/// One finished epoch: its report and, for image models, the sample grid
/// of the run's fixed latents.
#[derive(Clone, Debug)]
pub struct EpochEnd<R> {
    /// The epoch's metrics.
    pub report: R,
    /// Samples after the epoch, when the family makes them.
    pub grid: Option<RgbImage>,
    /// A text sample after the epoch (the character GPT's).
    pub text: Option<String>,
}

impl<R> EpochEnd<R> {
    /// An epoch's report with its image samples, if any.
    pub fn new(report: R, grid: Option<RgbImage>) -> Self {
        Self { report, grid, text: None }
    }
}

/// A model being trained epoch by epoch, with its data.
pub trait EpochTrainer {
    /// What each batch reports.
    type Losses;
    /// What each epoch reports.
    type Report;
    /// Whether the planned training is done.
    fn finished(&self) -> bool;
    /// Epochs (or evaluation rounds) finished so far.
    fn epochs_done(&self) -> usize;
    /// Epochs planned in all.
    fn epochs_planned(&self) -> usize;
    /// Batches in the next epoch.
    fn batches_per_epoch(&self) -> usize;
    /// Trains one epoch; `None` when `cancel` stopped it part way (the
    /// trainer's state is then not worth saving).
    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<Self::Losses>),
    ) -> Result<Option<EpochEnd<Self::Report>>, TrainError>;
    /// Writes a checkpoint folder the run can resume from.
    fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError>;
    /// Writes the finished model folder.
    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError>;
}

/// The `EpochTrainer` methods that only ask `self.trainer`, for runs whose
/// trainer has `finished()`, `history()`, `spec().epochs` and
/// `save_checkpoint(dir)` (the VAE, GAN, autoencoder and diffusion trainers).
macro_rules! delegate_epoch_bookkeeping {
    () => {
        fn finished(&self) -> bool {
            self.trainer.finished()
        }

        fn epochs_done(&self) -> usize {
            self.trainer.history().len()
        }

        fn epochs_planned(&self) -> usize {
            self.trainer.spec().epochs
        }

        fn save_checkpoint(&self, dir: &std::path::Path) -> Result<(), $crate::train::error::TrainError> {
            self.trainer.save_checkpoint(dir)
        }
    };
}

pub(crate) use delegate_epoch_bookkeeping;

/// Who watches a run: a progress bar, the Train view, the run's log files.
/// Every method has a default that does nothing.
pub trait TrainObserver<L, R> {
    /// An epoch begins.
    fn epoch_started(&mut self, _epoch: usize, _batches: usize) {}
    /// A batch finished.
    fn batch(&mut self, _tick: &BatchTick<L>) -> Result<(), TrainError> {
        Ok(())
    }
    /// An epoch finished and its checkpoint is written.
    fn epoch_done(&mut self, _end: &EpochEnd<R>) -> Result<(), TrainError> {
        Ok(())
    }
    /// The planned epochs are done; the model folder is being written.
    fn exporting(&mut self) {}
    /// The run is complete and exported.
    fn finished(&mut self, _epochs: usize) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Nobody watching.
impl<L, R> TrainObserver<L, R> for () {}

/// An observer lent to a run.
impl<L, R, T: TrainObserver<L, R> + ?Sized> TrainObserver<L, R> for &mut T {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        (**self).epoch_started(epoch, batches);
    }
    fn batch(&mut self, tick: &BatchTick<L>) -> Result<(), TrainError> {
        (**self).batch(tick)
    }
    fn epoch_done(&mut self, end: &EpochEnd<R>) -> Result<(), TrainError> {
        (**self).epoch_done(end)
    }
    fn exporting(&mut self) {
        (**self).exporting();
    }
    fn finished(&mut self, epochs: usize) -> Result<(), TrainError> {
        (**self).finished(epochs)
    }
}

/// Two observers of one run, told in order.
impl<L, R, A: TrainObserver<L, R>, B: TrainObserver<L, R>> TrainObserver<L, R> for (A, B) {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        self.0.epoch_started(epoch, batches);
        self.1.epoch_started(epoch, batches);
    }
    fn batch(&mut self, tick: &BatchTick<L>) -> Result<(), TrainError> {
        self.0.batch(tick)?;
        self.1.batch(tick)
    }
    fn epoch_done(&mut self, end: &EpochEnd<R>) -> Result<(), TrainError> {
        self.0.epoch_done(end)?;
        self.1.epoch_done(end)
    }
    fn exporting(&mut self) {
        self.0.exporting();
        self.1.exporting();
    }
    fn finished(&mut self, epochs: usize) -> Result<(), TrainError> {
        self.0.finished(epochs)?;
        self.1.finished(epochs)
    }
}

/// Where a run writes: the model folder `out`, its checkpoint folder, and
/// what the exported model is called.
pub struct RunPlan<'a> {
    /// The model folder.
    pub out: &'a Path,
    /// The checkpoint folder (by default `out/checkpoint`).
    pub checkpoint: PathBuf,
    /// Name, id and command for the exported folder.
    pub info: ExportInfo<'a>,
}

impl<'a> RunPlan<'a> {
    /// A run in `out` with its checkpoint in `out/checkpoint`.
    pub fn new(out: &'a Path, info: ExportInfo<'a>) -> Self {
        Self { out, checkpoint: out.join("checkpoint"), info }
    }

    /// The same run with its checkpoint in `dir`.
    pub fn with_checkpoint(self, dir: PathBuf) -> Self {
        Self { checkpoint: dir, ..self }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// Epochs finished (and checkpointed).
    pub epochs: usize,
    /// Epochs planned.
    pub planned: usize,
    /// The planned training was done and the model folder written.
    pub exported: bool,
}

/// Trains until the planned epochs are done or `cancel` is set: each
/// finished epoch is checkpointed before the observers hear of it; a
/// completed run is exported. An observer's error stops the run before the
/// epoch it concerns is checkpointed.
pub fn drive<T: EpochTrainer>(
    trainer: &mut T,
    plan: &RunPlan,
    cancel: &CancelToken,
    observer: &mut dyn TrainObserver<T::Losses, T::Report>,
) -> Result<RunOutcome, TrainError> {
    while !trainer.finished() && !cancel.is_cancelled() {
        observer.epoch_started(trainer.epochs_done() + 1, trainer.batches_per_epoch());
        let mut failed = None;
        let end = trainer.train_one_epoch(cancel, &mut |tick| {
            if failed.is_none() {
                failed = observer.batch(&tick).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let Some(end) = end else { break };
        trainer.save_checkpoint(&plan.checkpoint)?;
        observer.epoch_done(&end)?;
    }
    let (epochs, planned) = (trainer.epochs_done(), trainer.epochs_planned());
    let exported = trainer.finished();
    if exported {
        observer.exporting();
        trainer.export(plan.out, &plan.info)?;
        observer.finished(epochs)?;
    }
    Ok(RunOutcome { epochs, planned, exported })
}
