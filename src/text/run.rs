//! A character-GPT training run as the epoch driver sees it
//! (`train::driver`): one "epoch" is the steps up to the next evaluation.

use std::path::Path;

use crate::io::text_corpus::CharCorpus;
use crate::text::export::{export_char_gpt, sample_text};

/// Characters of the sample shown after every evaluation.
const SAMPLE_CHARACTERS: usize = 200;
use crate::text::train::{EvalReport, TextTrainer};
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, EpochTrainer};
use crate::train::error::TrainError;
use crate::train::export::ExportInfo;

/// The GPT with its corpus.
pub struct CharGptRun {
    /// The network and its optimiser.
    pub trainer: TextTrainer,
    /// Training and held-out text.
    pub corpus: CharCorpus,
}

impl CharGptRun {
    /// Steps left until the next evaluation.
    fn chunk(&self) -> usize {
        let spec = self.trainer.spec();
        spec.eval_every.max(1).min(spec.steps.saturating_sub(self.trainer.step()))
    }
}

impl EpochTrainer for CharGptRun {
    /// A step's loss (nats per character).
    type Losses = f64;
    type Report = EvalReport;

    fn finished(&self) -> bool {
        self.trainer.step() >= self.trainer.spec().steps
    }

    fn epochs_done(&self) -> usize {
        self.trainer.history().len()
    }

    fn epochs_planned(&self) -> usize {
        let spec = self.trainer.spec();
        self.epochs_done() + spec.steps.saturating_sub(self.trainer.step()).div_ceil(spec.eval_every.max(1))
    }

    fn batches_per_epoch(&self) -> usize {
        self.chunk()
    }

    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<f64>),
    ) -> Result<Option<EpochEnd<EvalReport>>, TrainError> {
        let (first, batches, epoch) = (self.trainer.step(), self.chunk(), self.epochs_done() + 1);
        let report = self.trainer.train_until_eval(&self.corpus, &mut |step, loss| {
            on_batch(BatchTick { epoch, batch: step - first, batches, losses: loss });
            !cancel.is_cancelled()
        })?;
        // A chunk cut short by a cancel is not a finished evaluation round.
        if cancel.is_cancelled() && report.step != first + batches {
            return Ok(None);
        }
        let (prompt, sample) = sample_text(&self.trainer, SAMPLE_CHARACTERS)?;
        Ok(Some(EpochEnd { report, grid: None, text: Some(format!("{prompt}{sample}")) }))
    }

    fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        self.trainer.save_checkpoint(dir)
    }

    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError> {
        export_char_gpt(&self.trainer, (self.corpus.train.len(), self.corpus.valid.len()), dir, info)
    }
}
