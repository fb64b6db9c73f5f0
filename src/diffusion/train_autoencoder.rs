//! Trains the KL autoencoder of a latent diffusion model on a folder of images
//! (the emoji set): L1 reconstruction plus a light KL term towards N(0, I),
//! AdamW, checkpoints that resume exactly. `export` writes the diffusers
//! `vae/` folder with the latents' `scaling_factor` measured on the data.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::diffusion::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::io::datasets::ImageSet;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::batch::batch_tensor;
use crate::train::cancel::CancelToken;
use crate::train::checkpoint::{
    CheckpointState, OptimizerSteps, load_checkpoint_tensors, read_checkpoint_state, save_checkpoint,
};
use crate::train::error::{TrainError, file_err};
use crate::train::init::{named_vars, reseed_parameters};
use crate::train::rng::SeededRng;

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainAutoencoderSpec {
    pub config: AutoencoderConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Weight of the KL term per latent element, against the mean absolute pixel error.
    pub kl_weight: f64,
    pub seed: u64,
}

impl TrainAutoencoderSpec {
    /// The emoji autoencoder: 32×32 RGB ↔ 4 × 8 × 8 latents.
    pub fn emoji(epochs: usize, seed: u64) -> Self {
        let config = AutoencoderConfig {
            block_out_channels: vec![16, 32, 64],
            norm_num_groups: 8,
            sample_size: Some(32),
            ..AutoencoderConfig::tiny()
        };
        Self { config, epochs, batch_size: 32, lr: 1e-3, kl_weight: 1e-5, seed }
    }
}

/// One epoch's averages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AutoencoderEpoch {
    pub epoch: usize,
    /// Mean absolute error per pixel value, images in [−1, 1].
    pub l1: f64,
    /// KL per latent element.
    pub kl: f64,
    pub seconds: f64,
}

impl crate::train::report::Reported for AutoencoderEpoch {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("L1", self.l1), ("KL", self.kl)]
    }
    fn line(&self) -> String {
        format!("epoch {}: L1 {:.4}, KL {:.3} per latent value, {:.1} s", self.epoch, self.l1, self.kl, self.seconds)
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// What a checkpoint of this trainer holds beside its tensors.
type AutoencoderCheckpoint = CheckpointState<TrainAutoencoderSpec, AutoencoderEpoch>;

/// An autoencoder being trained.
pub struct AutoencoderTrainer {
    varmap: VarMap,
    model: Autoencoder,
    opt: Adam,
    spec: TrainAutoencoderSpec,
    history: Vec<AutoencoderEpoch>,
    device: Device,
}

impl AutoencoderTrainer {
    /// A fresh network, initialised from the seed.
    pub fn new(spec: TrainAutoencoderSpec, device: &Device) -> Result<Self, TrainError> {
        spec.config.validate().map_err(|e| TrainError::Invalid(e.0))?;
        let varmap = VarMap::new();
        let model = Autoencoder::new(&spec.config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        reseed_parameters(&varmap, spec.seed)?;
        let opt = Adam::new(named_vars(&varmap), AdamConfig { lr: spec.lr, ..Default::default() })?;
        Ok(Self { varmap, model, opt, spec, history: Vec::new(), device: device.clone() })
    }

    /// Continues from a checkpoint folder; `epochs` may be raised to train further.
    pub fn resume(dir: &Path, epochs: usize, device: &Device) -> Result<Self, TrainError> {
        let (state, dir): (AutoencoderCheckpoint, _) = read_checkpoint_state(dir)?;
        let mut spec = state.spec;
        spec.epochs = epochs.max(state.history.len());
        let mut t = Self::new(spec, device)?;
        load_checkpoint_tensors(&dir, &mut t.varmap, &mut [(&mut t.opt, state.progress.optimizer_steps)], device)?;
        t.history = state.history;
        Ok(t)
    }

    /// Writes weights, optimiser state and history into `dir` (replaced whole).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = AutoencoderCheckpoint {
            spec: self.spec.clone(),
            progress: OptimizerSteps { optimizer_steps: self.opt.steps() },
            history: self.history.clone(),
        };
        save_checkpoint(dir, &self.varmap, &[&self.opt], &state)
    }

    /// Epochs finished so far.
    pub fn history(&self) -> &[AutoencoderEpoch] {
        &self.history
    }

    /// The run's settings.
    pub fn spec(&self) -> &TrainAutoencoderSpec {
        &self.spec
    }

    /// The network being trained.
    pub fn model(&self) -> &Autoencoder {
        &self.model
    }

    /// The device the network lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trained values.
    pub fn parameter_count(&self) -> usize {
        named_vars(&self.varmap).iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Whether all planned epochs are done.
    pub fn finished(&self) -> bool {
        self.history.len() >= self.spec.epochs
    }

    /// Runs the next epoch over `train` (pixels in [0, 1]); `on_batch` gets
    /// (batch, batches, loss). `None` if cancelled.
    pub fn train_epoch(
        &mut self,
        train: &ImageSet,
        on_batch: &mut dyn FnMut(usize, usize, f64),
        cancel: &CancelToken,
    ) -> Result<Option<AutoencoderEpoch>, TrainError> {
        if train.channels != self.spec.config.in_channels || train.len() < self.spec.batch_size {
            return Err(TrainError::Invalid(format!(
                "{} images with {} channels do not fill a batch of {} for a {}-channel autoencoder",
                train.len(),
                train.channels,
                self.spec.batch_size,
                self.spec.config.in_channels
            )));
        }
        let started = Instant::now();
        let epoch = self.history.len() + 1;
        let mut order: Vec<usize> = (0..train.len()).collect();
        SeededRng::new(self.spec.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        let mut noise = SeededRng::new(self.spec.seed.wrapping_add(7_000_003 * epoch as u64));
        let batches = order.len() / self.spec.batch_size;
        let (mut l1_sum, mut kl_sum) = (0.0, 0.0);
        for (b, idx) in order.chunks_exact(self.spec.batch_size).enumerate() {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let images = batch_tensor(train, idx, &self.device)?.affine(2.0, -1.0)?;
            let (l1, kl) = self.train_step(&images, &mut noise)?;
            l1_sum += l1;
            kl_sum += kl;
            on_batch(b + 1, batches, l1);
        }
        let report = AutoencoderEpoch {
            epoch,
            l1: l1_sum / batches as f64,
            kl: kl_sum / batches as f64,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.history.push(report.clone());
        Ok(Some(report))
    }

    /// One AdamW step on images in [−1, 1]; returns (L1, KL per latent element) before it.
    pub fn train_step(&mut self, images: &Tensor, noise: &mut SeededRng) -> Result<(f64, f64), TrainError> {
        let posterior = self.model.encode(images)?;
        let eps =
            Tensor::from_vec(noise.normal_vec(posterior.mean.elem_count()), posterior.mean.shape(), &self.device)?;
        let recon = self.model.decode(&posterior.sample(&eps)?)?;
        let l1 = (recon - images)?.abs()?.mean_all()?;
        let per_image = posterior.mean.elem_count() / posterior.mean.dim(0)?;
        let kl = (posterior.kl()? / per_image as f64)?;
        let loss = (&l1 + (&kl * self.spec.kl_weight)?)?;
        self.opt.backward_step(&loss)?;
        Ok((l1.to_scalar::<f32>()? as f64, kl.to_scalar::<f32>()? as f64))
    }

    /// Posterior means of `set`, unscaled, [n, c, h/f, w/f], in batches.
    pub fn encode_means(&self, set: &ImageSet) -> Result<Tensor, TrainError> {
        encode_means(&self.model, set, &self.device)
    }

    /// Writes the diffusers `vae/` folder: `config.json` (with the
    /// `scaling_factor` that gives `set`'s latents unit variance) and the weights.
    pub fn export(&self, dir: &Path, set: &ImageSet) -> Result<AutoencoderConfig, TrainError> {
        let latents = self.encode_means(set)?;
        let std = latents.flatten_all()?.to_vec1::<f32>()?;
        let n = std.len() as f64;
        let mean = std.iter().map(|v| *v as f64).sum::<f64>() / n;
        let var = std.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
        let config = AutoencoderConfig { scaling_factor: 1.0 / var.sqrt().max(1e-6), ..self.spec.config.clone() };
        write_vae_folder(dir, &config, &self.varmap)?;
        Ok(config)
    }
}

/// Posterior means of `set` (pixels in [0, 1]), unscaled, in batches of 64.
pub fn encode_means(model: &Autoencoder, set: &ImageSet, device: &Device) -> Result<Tensor, TrainError> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let parts = idx
        .chunks(64)
        .map(|chunk| model.encode(&batch_tensor(set, chunk, device)?.affine(2.0, -1.0)?).map(|p| p.mean))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// `config.json` as diffusers' `AutoencoderKL` writes it, and the weights.
pub fn write_vae_folder(dir: &Path, config: &AutoencoderConfig, varmap: &VarMap) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let n = config.block_out_channels.len();
    let mut json = serde_json::to_value(config).map_err(|e| file_err(dir, e))?;
    json["_class_name"] = "AutoencoderKL".into();
    json["down_block_types"] = vec!["DownEncoderBlock2D"; n].into();
    json["up_block_types"] = vec!["UpDecoderBlock2D"; n].into();
    json["act_fn"] = "silu".into();
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| file_err(&path, e))?;
    std::fs::write(&path, text).map_err(|e| file_err(&path, e))?;
    let weights = dir.join("diffusion_pytorch_model.safetensors");
    varmap.save(&weights).map_err(|e| file_err(&weights, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n: usize) -> ImageSet {
        // 16×16 RGB: a coloured square at one of four places on white.
        let mut set = ImageSet { side: 16, channels: 3, ..Default::default() };
        for i in 0..n {
            let (ox, oy) = ((i % 2) * 8, (i / 2 % 2) * 8);
            for c in 0..3 {
                for y in 0..16 {
                    for x in 0..16 {
                        let inside = (ox..ox + 8).contains(&x) && (oy..oy + 8).contains(&y);
                        set.pixels.push(if inside { [0.9, 0.2, 0.1][(i + c) % 3] } else { 1.0 });
                    }
                }
            }
            set.labels.push(0);
        }
        set
    }

    fn tiny_spec() -> TrainAutoencoderSpec {
        let config = AutoencoderConfig { block_out_channels: vec![8, 16], ..AutoencoderConfig::tiny() };
        TrainAutoencoderSpec { config, epochs: 8, batch_size: 8, lr: 3e-3, kl_weight: 1e-5, seed: 3 }
    }

    #[test]
    fn learns_to_reconstruct_and_resumes_exactly() {
        let set = blobs(32);
        let mut t = AutoencoderTrainer::new(tiny_spec(), &Device::Cpu).unwrap();
        let first = t.train_epoch(&set, &mut |_, _, _| {}, &CancelToken::new()).unwrap().unwrap();
        for _ in 0..5 {
            t.train_epoch(&set, &mut |_, _, _| {}, &CancelToken::new()).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        t.save_checkpoint(dir.path()).unwrap();
        let last = t.history().last().unwrap().l1;
        assert!(last < first.l1 * 0.6, "L1 {} → {last}", first.l1);
        let a = t.train_epoch(&set, &mut |_, _, _| {}, &CancelToken::new()).unwrap().unwrap();
        let mut resumed = AutoencoderTrainer::resume(dir.path(), 8, &Device::Cpu).unwrap();
        let b = resumed.train_epoch(&set, &mut |_, _, _| {}, &CancelToken::new()).unwrap().unwrap();
        assert_eq!((a.l1, a.kl), (b.l1, b.kl));
        let vae_dir = dir.path().join("vae");
        let config = t.export(&vae_dir, &set).unwrap();
        let latents = t.encode_means(&set).unwrap();
        let scaled: Vec<f32> = (latents * config.scaling_factor).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let var = scaled.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / scaled.len() as f64;
        assert!((0.5..2.0).contains(&var), "scaled latent second moment {var}");
        assert!(vae_dir.join("config.json").is_file());
    }
}
