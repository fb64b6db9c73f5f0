//! Adversarial training of a DCGAN: the non-saturating loss with one-sided
//! label smoothing (real images are labelled 0.9), Adam with β₁ = 0.5 for
//! both networks, a sample grid from fixed latents after every epoch, and
//! checkpoints that resume exactly.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::gan::network::{Discriminator, GanConfig, Generator, bce_with_logits_mean};
use crate::io::datasets::{DataSource, ImageSet};
use crate::io::export::make_grid;
use crate::latent::model::tensor_to_images;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::batch::batch_tensor;
use crate::train::cancel::CancelToken;
use crate::train::checkpoint::{
    CheckpointState, OptimizerSteps, load_checkpoint_tensors, read_checkpoint_state, save_checkpoint,
};
use crate::train::error::TrainError;
use crate::train::init::{load_matching, named_vars};
use crate::train::rng::SeededRng;

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainGanSpec {
    /// Data set (recorded in the manifest).
    pub dataset: DataSource,
    /// Network shape.
    pub config: GanConfig,
    /// Total number of epochs.
    pub epochs: usize,
    /// Real images per step (and as many generated ones).
    pub batch_size: usize,
    /// Adam's learning rate for both networks.
    pub lr: f64,
    /// Target for real images in the discriminator's loss (1 = no smoothing).
    pub real_label: f64,
    /// Seed for initialisation, shuffling, latents and the sample grid.
    pub seed: u64,
    /// A finished model folder whose generator this run starts from
    /// (fine-tuning; the discriminator starts fresh, as the export holds none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<std::path::PathBuf>,
}

impl TrainGanSpec {
    /// DCGAN's published settings (lr 2·10⁻⁴, batch 64) with label smoothing 0.9.
    pub fn dcgan(dataset: impl Into<DataSource>, config: GanConfig, epochs: usize, seed: u64) -> Self {
        Self { dataset: dataset.into(), config, epochs, batch_size: 64, lr: 2e-4, real_label: 0.9, seed, base: None }
    }
}

impl TrainGanSpec {
    /// Fine-tuning the DCGAN in the model folder `base` on `dataset`: its
    /// shape, its generator's weights, DCGAN's settings. The data must have
    /// the model's image size and channels.
    pub fn fine_tune(base: &Path, dataset: DataSource, epochs: usize, seed: u64) -> Result<Self, TrainError> {
        let manifest = crate::io::manifest::read_manifest(base).map_err(|e| TrainError::Invalid(e.to_string()))?;
        let config: GanConfig = manifest
            .config
            .get("gan")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .ok_or_else(|| TrainError::Invalid(format!("{} is not a DCGAN model folder", base.display())))?;
        let (side, channels) = dataset.image_shape();
        if (side, channels) != (config.image_size, config.channels) {
            return Err(TrainError::Invalid(format!(
                "{} makes {}×{} images with {} channels; train it on data of that shape (here {side}×{side}, {channels})",
                manifest.id, config.image_size, config.image_size, config.channels
            )));
        }
        Ok(Self { base: Some(base.to_owned()), ..Self::dcgan(dataset, config, epochs, seed) })
    }
}

pub use crate::spec::train::GanEpochReport;

/// Progress reported while training.
#[derive(Clone, Debug)]
pub enum GanTrainEvent {
    /// A batch finished.
    Batch { epoch: usize, batch: usize, batches: usize, d_loss: f64, g_loss: f64 },
    /// An epoch finished; `grid` shows the fixed latents' images.
    Epoch { report: GanEpochReport, grid: RgbImage },
}

/// Losses of one step, before the updates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanStep {
    pub d_loss: f64,
    pub g_loss: f64,
    pub d_real: f64,
    pub d_fake: f64,
}

/// What a checkpoint of this trainer holds beside its tensors.
type GanCheckpoint = CheckpointState<TrainGanSpec, GanEpochReport>;

/// Latents of the sample grid (rows × columns).
pub const GRID: usize = 8;

/// A GAN being trained: both networks, their optimisers and the history.
pub struct GanTrainer {
    varmap: VarMap,
    generator: Generator,
    discriminator: Discriminator,
    opt_g: Adam,
    opt_d: Adam,
    spec: TrainGanSpec,
    history: Vec<GanEpochReport>,
    grid_latents: Tensor,
    device: Device,
}

impl GanTrainer {
    /// Fresh networks with DCGAN's initialisation (weights N(0, 0.02), batch
    /// norm scales N(1, 0.02), biases 0), drawn from the project's seeded
    /// generator.
    pub fn new(spec: TrainGanSpec, device: &Device) -> Result<Self, TrainError> {
        spec.config.validate().map_err(|e| TrainError::Invalid(e.0))?;
        if spec.batch_size < 2 {
            return Err(TrainError::Invalid("batch size must be at least 2 (batch normalisation)".into()));
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let generator = Generator::new(&spec.config, vb.pp("generator"))?;
        let discriminator = Discriminator::new(&spec.config, vb.pp("discriminator"))?;
        initialise(&varmap, spec.seed)?;
        if let Some(base) = &spec.base {
            load_matching(&varmap, &base.join("model.safetensors"), "generator.", "generator.")?;
        }
        let trainable = |prefix: &str| {
            named_vars(&varmap).into_iter().filter(|(n, _)| n.starts_with(prefix) && !n.contains("running_")).collect()
        };
        let adam = AdamConfig { lr: spec.lr, beta1: 0.5, ..Default::default() };
        let opt_g = Adam::new(trainable("generator."), adam)?;
        let opt_d = Adam::new(trainable("discriminator."), adam)?;
        let dim = spec.config.latent_dim;
        let grid = SeededRng::new(spec.seed ^ 0x6A1D).normal_vec(GRID * GRID * dim);
        let grid_latents = Tensor::from_vec(grid, (GRID * GRID, dim), device)?;
        Ok(Self {
            varmap,
            generator,
            discriminator,
            opt_g,
            opt_d,
            spec,
            history: Vec::new(),
            grid_latents,
            device: device.clone(),
        })
    }

    /// Continues from a checkpoint folder; `epochs` may be raised to train further.
    pub fn resume(dir: &Path, epochs: usize, device: &Device) -> Result<Self, TrainError> {
        let (state, dir): (GanCheckpoint, _) = read_checkpoint_state(dir)?;
        let mut spec = state.spec;
        spec.epochs = epochs.max(state.history.len());
        // The checkpoint holds every weight: the base model need not be there any more.
        let base = spec.base.take();
        let mut t = Self::new(spec, device)?;
        t.spec.base = base;
        let steps = state.progress.optimizer_steps;
        load_checkpoint_tensors(&dir, &mut t.varmap, &mut [(&mut t.opt_g, steps), (&mut t.opt_d, steps)], device)?;
        t.history = state.history;
        Ok(t)
    }

    /// Writes both networks (with batch-norm statistics), both optimisers and
    /// the history into `dir` (replaced whole).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = GanCheckpoint {
            spec: self.spec.clone(),
            progress: OptimizerSteps { optimizer_steps: self.opt_g.steps() },
            history: self.history.clone(),
        };
        save_checkpoint(dir, &self.varmap, &[&self.opt_g, &self.opt_d], &state)
    }

    /// Epochs finished so far.
    pub fn history(&self) -> &[GanEpochReport] {
        &self.history
    }

    /// Replaces the latest epoch's report (the run adds its mode-collapse check).
    pub fn set_last_report(&mut self, report: GanEpochReport) {
        if let Some(last) = self.history.last_mut() {
            *last = report;
        }
    }

    /// The run's settings.
    pub fn spec(&self) -> &TrainGanSpec {
        &self.spec
    }

    /// The generator being trained.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The discriminator being trained.
    pub fn discriminator(&self) -> &Discriminator {
        &self.discriminator
    }

    /// Every variable (both networks, batch-norm statistics included).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the networks live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether all planned epochs are done.
    pub fn finished(&self) -> bool {
        self.history.len() >= self.spec.epochs
    }

    /// Runs the next epoch over `train` (images in [0, 1]). Returns `None` if
    /// cancelled; the caller keeps the last checkpoint.
    pub fn train_epoch(
        &mut self,
        train: &ImageSet,
        on_event: &mut dyn FnMut(GanTrainEvent),
        cancel: &CancelToken,
    ) -> Result<Option<GanEpochReport>, TrainError> {
        let cfg = &self.spec.config;
        if (train.side, train.channels) != (cfg.image_size, cfg.channels) {
            return Err(TrainError::Invalid(format!(
                "the data has {0}×{0} images with {1} channel(s), the model makes {2}×{2} with {3}",
                train.side, train.channels, cfg.image_size, cfg.channels
            )));
        }
        if train.len() < self.spec.batch_size {
            return Err(TrainError::Invalid(format!("{} images are fewer than one batch", train.len())));
        }
        let started = Instant::now();
        let epoch = self.history.len() + 1;
        let mut order: Vec<usize> = (0..train.len()).collect();
        SeededRng::new(self.spec.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        // Whole batches only: batch normalisation on a last batch of one or two is noise.
        let batches = order.len() / self.spec.batch_size;
        let mut noise = SeededRng::new(self.spec.seed.wrapping_add(1_000_003 * epoch as u64));
        let mut sums = [0.0; 4];
        for (b, idx) in order.chunks_exact(self.spec.batch_size).enumerate() {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let real = batch_tensor(train, idx, &self.device)?.affine(2.0, -1.0)?;
            let dim = self.spec.config.latent_dim;
            let z = Tensor::from_vec(noise.normal_vec(idx.len() * dim), (idx.len(), dim), &self.device)?;
            let step = self.train_step(&real, &z)?;
            for (s, v) in sums.iter_mut().zip([step.d_loss, step.g_loss, step.d_real, step.d_fake]) {
                *s += v;
            }
            on_event(GanTrainEvent::Batch { epoch, batch: b + 1, batches, d_loss: step.d_loss, g_loss: step.g_loss });
        }
        let n = batches as f64;
        let report = GanEpochReport {
            epoch,
            d_loss: sums[0] / n,
            g_loss: sums[1] / n,
            d_real: sums[2] / n,
            d_fake: sums[3] / n,
            seconds: started.elapsed().as_secs_f64(),
            diversity: None,
        };
        self.history.push(report.clone());
        on_event(GanTrainEvent::Epoch { report: report.clone(), grid: self.sample_grid()? });
        Ok(Some(report))
    }

    /// One discriminator step then one generator step on `real` images (in
    /// [−1, 1]) and latents `z`; the losses are from before the updates.
    pub fn train_step(&mut self, real: &Tensor, z: &Tensor) -> Result<GanStep, TrainError> {
        let fake = self.generator.forward_t(z, true)?;
        // Discriminator: real → real_label, generated (detached) → 0.
        let real_logits = self.discriminator.forward(real)?;
        let fake_logits = self.discriminator.forward(&fake.detach())?;
        let d_loss =
            (bce_with_logits_mean(&real_logits, self.spec.real_label)? + bce_with_logits_mean(&fake_logits, 0.0)?)?;
        self.opt_d.backward_step(&d_loss)?;
        // Generator, non-saturating: maximise log D(G(z)) with the updated
        // discriminator, whose own weight gradients are not needed here.
        let g_loss = bce_with_logits_mean(&self.discriminator.frozen().forward(&fake)?, 1.0)?;
        self.opt_g.backward_step(&g_loss)?;
        let mean_prob = |l: &Tensor| -> candle_core::Result<f64> {
            Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        Ok(GanStep {
            d_loss: d_loss.to_scalar::<f32>()? as f64,
            g_loss: g_loss.to_scalar::<f32>()? as f64,
            d_real: mean_prob(&real_logits)?,
            d_fake: mean_prob(&fake_logits)?,
        })
    }

    /// The fixed latents' images in an 8 × 8 grid (generator in inference mode).
    pub fn sample_grid(&self) -> Result<RgbImage, TrainError> {
        let images = generated_images(&self.generator, &self.grid_latents)?;
        Ok(make_grid(&images, GRID, 1))
    }
}

/// Generator output for `z` as images (inference mode: running statistics).
pub fn generated_images(generator: &Generator, z: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    let x = ((generator.forward_t(z, false)? + 1.0)? * 0.5)?;
    tensor_to_images(&x)
}

/// DCGAN's initialisation over every variable, in name order.
fn initialise(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let mut vars = named_vars(varmap);
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = SeededRng::new(seed);
    for (name, var) in vars {
        if name.contains("running_") {
            continue; // batch-norm statistics keep 0 and 1
        }
        let n = var.elem_count();
        let norm_layer = name.contains("_norm.");
        let fresh: Vec<f32> = if name.ends_with("bias") {
            vec![0.0; n]
        } else if norm_layer {
            (0..n).map(|_| (1.0 + 0.02 * rng.normal()) as f32).collect()
        } else {
            (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
        };
        var.set(&Tensor::from_vec(fresh, var.shape(), var.device())?)?;
    }
    Ok(())
}
