//! The emoji latent diffusion model's two training runs as the epoch driver
//! sees them (`train::driver`): the autoencoder, then the denoiser with its
//! text encoder. Each one's export writes what `train autoencoder` and
//! `train diffusion` leave in the model folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::diffusion::autoencoder::Autoencoder;
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::export::{AutoencoderRecord, CARD_SEEDS, ModelCard, write_model_files};
use crate::diffusion::train::{DiffusionEpoch, DiffusionTrainer, LatentCaptions};
use crate::diffusion::train_autoencoder::{AutoencoderEpoch, AutoencoderTrainer};
use crate::io::datasets::DataSource;
use crate::io::datasets::ImageSet;
use crate::io::export::make_grid;
use crate::io::png_meta::encode_png;
use crate::latent::model::tensor_to_images;
use crate::train::batch::batch_tensor;
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, EpochTrainer, TrainObserver};
use crate::train::error::{TrainError, file_err};
use crate::train::export::ExportInfo;
use crate::train::log::grid_path;

/// Held-out images shown over their reconstructions in `reconstructions.png`.
const RECONSTRUCTIONS: usize = 16;
/// Denoising steps of the sample grids.
const GRID_STEPS: usize = 25;
/// Guidance of the sample grids.
const GRID_GUIDANCE: f64 = 4.0;

/// The autoencoder with its training and held-out images.
pub struct AutoencoderRun {
    /// The network and its optimiser.
    pub trainer: AutoencoderTrainer,
    /// Training images.
    pub train: ImageSet,
    /// Held-out images (the reconstruction grid).
    pub test: ImageSet,
}

impl EpochTrainer for AutoencoderRun {
    /// The batch's L1 error.
    type Losses = f64;
    type Report = AutoencoderEpoch;

    crate::train::driver::delegate_epoch_bookkeeping!();

    fn batches_per_epoch(&self) -> usize {
        self.train.len() / self.trainer.spec().batch_size.max(1)
    }

    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<f64>),
    ) -> Result<Option<EpochEnd<AutoencoderEpoch>>, TrainError> {
        let epoch = self.trainer.history().len() + 1;
        let report = self.trainer.train_epoch(
            &self.train,
            &mut |batch, batches, l1| on_batch(BatchTick { epoch, batch, batches, losses: l1 }),
            cancel,
        )?;
        Ok(report.map(|report| EpochEnd::new(report, None)))
    }

    /// Writes `dir/vae` (diffusers layout), the run's record in
    /// `dir/progress` and `dir/reconstructions.png`.
    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError> {
        let config = self.trainer.export(&dir.join("vae"), &self.train)?;
        let mut record = AutoencoderRecord::read(dir);
        record.commands.push(info.command.to_owned());
        record.history = self.trainer.history().to_vec();
        record.spec = Some(self.trainer.spec().clone());
        record.parameters = self.trainer.parameter_count();
        record.scaling_factor = config.scaling_factor;
        record.write(dir)?;
        // Held-out images (top) over their reconstructions from the posterior mean (bottom).
        let idx: Vec<usize> = (0..RECONSTRUCTIONS.min(self.test.len())).collect();
        let originals = batch_tensor(&self.test, &idx, self.trainer.device())?;
        let model = self.trainer.model();
        let mean = model.encode(&originals.affine(2.0, -1.0)?)?.mean;
        let recon = ((model.decode(&mean)?.clamp(-1.0, 1.0)? + 1.0)? * 0.5)?;
        let mut images = tensor_to_images(&originals)?;
        images.extend(tensor_to_images(&recon)?);
        let path = dir.join("reconstructions.png");
        let png = encode_png(&make_grid(&images, RECONSTRUCTIONS, 1), &[]).map_err(|e| file_err(&path, e))?;
        std::fs::write(&path, png).map_err(|e| file_err(&path, e))
    }
}

/// The denoiser and text encoder with their data: the training set's
/// latents and captions, the autoencoder that decodes samples, and the
/// tokenizer of the prompts.
pub struct DiffusionRun {
    /// The networks and their optimiser.
    pub trainer: DiffusionTrainer,
    /// Latents and tokenized captions of the training images.
    pub data: LatentCaptions,
    /// The trained autoencoder.
    pub vae: Autoencoder,
    /// The prompts' tokenizer.
    pub tokenizer: ClipTokenizer,
    /// A sample grid every this many epochs (0: none until the end).
    pub sample_every: usize,
    /// When training started (the card's training time).
    pub started: Instant,
    /// The rows of the sample grids (seeds are the columns).
    pub prompts: Vec<String>,
    /// Where the images came from (the card).
    pub source: DataSource,
}

impl DiffusionRun {
    fn grid(&self) -> Result<image::RgbImage, TrainError> {
        let prompts: Vec<&str> = self.prompts.iter().map(String::as_str).collect();
        self.trainer.sample_grid(&self.vae, &self.tokenizer, &prompts, &CARD_SEEDS, GRID_STEPS, GRID_GUIDANCE)
    }
}

impl EpochTrainer for DiffusionRun {
    /// The batch's noise-prediction loss.
    type Losses = f64;
    type Report = DiffusionEpoch;

    crate::train::driver::delegate_epoch_bookkeeping!();

    fn batches_per_epoch(&self) -> usize {
        self.data.ids.len() / self.trainer.spec().batch_size.max(1)
    }

    fn train_one_epoch(
        &mut self,
        cancel: &CancelToken,
        on_batch: &mut dyn FnMut(BatchTick<f64>),
    ) -> Result<Option<EpochEnd<DiffusionEpoch>>, TrainError> {
        let epoch = self.trainer.history().len() + 1;
        let report = self.trainer.train_epoch(
            &self.data,
            &mut |batch, batches, loss| on_batch(BatchTick { epoch, batch, batches, losses: loss }),
            cancel,
        )?;
        let Some(report) = report else { return Ok(None) };
        // The last epoch's grid is the card's, drawn at export.
        let due = self.sample_every > 0 && epoch.is_multiple_of(self.sample_every) && !self.trainer.finished();
        let grid = if due { Some(self.grid()?) } else { None };
        Ok(Some(EpochEnd::new(report, grid)))
    }

    /// Writes the diffusers folders, the card and its sample grid.
    fn export(&self, dir: &Path, info: &ExportInfo) -> Result<(), TrainError> {
        self.trainer.export(dir)?;
        let grid = self.grid()?;
        let card = ModelCard {
            name: info.name,
            command: info.command,
            seconds: self.started.elapsed().as_secs_f64(),
            source: &self.source,
            prompts: &self.prompts,
            images: self.data.ids.len(),
        };
        write_model_files(dir, &self.trainer, &grid, &card)
    }
}

/// Appends each epoch's report to `progress/diffusion.jsonl` and writes its
/// sample grid, when there is one, as `progress/epoch-NNN.png`.
pub struct DiffusionLog {
    progress: PathBuf,
}

impl DiffusionLog {
    /// A log in `out/progress`, created if missing.
    pub fn create(out: &Path) -> Result<Self, TrainError> {
        let progress = out.join("progress");
        std::fs::create_dir_all(&progress).map_err(|e| file_err(&progress, e))?;
        Ok(Self { progress })
    }
}

impl TrainObserver<f64, DiffusionEpoch> for DiffusionLog {
    fn epoch_done(&mut self, end: &EpochEnd<DiffusionEpoch>) -> Result<(), TrainError> {
        let log = self.progress.join("diffusion.jsonl");
        let line = serde_json::to_string(&end.report).map_err(|e| file_err(&log, e))? + "\n";
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .map_err(|e| file_err(&log, e))?;
        if let Some(grid) = &end.grid {
            let path = grid_path(&self.progress, end.report.epoch);
            let png = encode_png(grid, &[]).map_err(|e| file_err(&path, e))?;
            std::fs::write(&path, png).map_err(|e| file_err(&path, e))?;
        }
        Ok(())
    }
}
