//! Training loop for the VAE: shuffled mini-batches, AdamW, a held-out
//! evaluation each epoch, checkpoints that resume exactly, and export of the
//! finished model (weights, manifest, latent map, model card).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::io::datasets::{DataSource, ImageSet};
use crate::train::adam::{Adam, AdamConfig};
use crate::train::batch::batch_tensor;
use crate::train::cancel::CancelToken;
use crate::train::checkpoint::{
    CheckpointState, OptimizerSteps, load_checkpoint_tensors, read_checkpoint_state, save_checkpoint,
};
use crate::train::error::{TrainError, file_err};
use crate::train::init::{named_vars, reseed_parameters};
use crate::train::rng::SeededRng;
use crate::vae::network::{Vae, VaeConfig, vae_loss};

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainVaeSpec {
    /// Data set (recorded in the manifest).
    pub dataset: DataSource,
    /// Network shape.
    pub config: VaeConfig,
    /// Total number of epochs.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Weight of the KL term.
    pub beta: f64,
    /// Seed for initialisation, shuffling and sampling noise.
    pub seed: u64,
}

/// Metrics after one epoch (losses are nats per image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Held-out negative ELBO (recon + β·KL).
    pub val_loss: f64,
    /// Held-out reconstruction term.
    pub val_recon: f64,
    /// Held-out KL term.
    pub val_kl: f64,
    /// Wall-clock seconds for the epoch including evaluation.
    pub seconds: f64,
}

impl crate::train::report::Reported for EpochReport {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("held-out", self.val_loss), ("recon", self.val_recon), ("KL", self.val_kl)]
    }
    fn line(&self) -> String {
        format!(
            "epoch {}: train {:.2}, held-out {:.2} (recon {:.2}, KL {:.2}) nats/image, {:.1} s",
            self.epoch, self.train_loss, self.val_loss, self.val_recon, self.val_kl, self.seconds
        )
    }
    fn warning(&self) -> Option<String> {
        self.collapse_warning()
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// Below this held-out KL (nats per image) the decoder has stopped using the latent.
pub const POSTERIOR_COLLAPSE_KL: f64 = 0.1;

impl EpochReport {
    /// A warning when the posterior has collapsed onto the prior, else `None`.
    pub fn collapse_warning(&self) -> Option<String> {
        (self.val_kl < POSTERIOR_COLLAPSE_KL).then(|| {
            format!(
                "posterior collapse? the held-out KL is {:.3} nats per image, so the latent carries almost \
                 nothing; try a smaller --beta or a smaller decoder",
                self.val_kl
            )
        })
    }
}

/// Progress reported while training.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// A batch finished.
    Batch { epoch: usize, batch: usize, batches: usize, loss: f64 },
    /// An epoch finished and was checkpointed.
    Epoch(EpochReport),
}

/// What a checkpoint of this trainer holds beside its tensors.
type VaeCheckpoint = CheckpointState<TrainVaeSpec, EpochReport>;

/// A VAE being trained, with its optimiser and history.
pub struct VaeTrainer {
    varmap: VarMap,
    vae: Vae,
    opt: Adam,
    spec: TrainVaeSpec,
    history: Vec<EpochReport>,
    device: Device,
}

impl VaeTrainer {
    /// A freshly initialised network. Initialisation is seeded through the
    /// project's own generator so that a seed gives the same run everywhere.
    pub fn new(spec: TrainVaeSpec, device: &Device) -> Result<Self, TrainError> {
        spec.config.validate().map_err(|e| TrainError::Invalid(e.0))?;
        if spec.batch_size == 0 {
            return Err(TrainError::Invalid("batch size must be positive".into()));
        }
        let varmap = VarMap::new();
        let vae = Vae::new(&spec.config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        reseed_parameters(&varmap, spec.seed)?;
        let opt = Adam::new(named_vars(&varmap), AdamConfig { lr: spec.lr, ..Default::default() })?;
        Ok(Self { varmap, vae, opt, spec, history: Vec::new(), device: device.clone() })
    }

    /// Continues from a checkpoint folder written by [`VaeTrainer::save_checkpoint`].
    /// `epochs` may be raised to train further than first planned.
    pub fn resume(dir: &Path, epochs: usize, device: &Device) -> Result<Self, TrainError> {
        let (state, dir): (VaeCheckpoint, _) = read_checkpoint_state(dir)?;
        let mut spec = state.spec;
        spec.epochs = epochs.max(state.history.len());
        let mut trainer = Self::new(spec, device)?;
        load_checkpoint_tensors(
            &dir,
            &mut trainer.varmap,
            &mut [(&mut trainer.opt, state.progress.optimizer_steps)],
            device,
        )?;
        trainer.history = state.history;
        Ok(trainer)
    }

    /// Writes weights, optimiser moments and history into `dir` (replaced whole).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = VaeCheckpoint {
            spec: self.spec.clone(),
            progress: OptimizerSteps { optimizer_steps: self.opt.steps() },
            history: self.history.clone(),
        };
        save_checkpoint(dir, &self.varmap, &[&self.opt], &state)
    }

    /// Epochs finished so far.
    pub fn history(&self) -> &[EpochReport] {
        &self.history
    }

    /// The run's settings.
    pub fn spec(&self) -> &TrainVaeSpec {
        &self.spec
    }

    /// The device the network lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The network being trained.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The trainable variables, for saving the final weights.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Whether all planned epochs are done.
    pub fn finished(&self) -> bool {
        self.history.len() >= self.spec.epochs
    }

    /// Runs the next epoch. Returns `None` if cancelled mid-epoch (the
    /// partial epoch is discarded by the caller, which keeps the last checkpoint).
    pub fn train_epoch(
        &mut self,
        train: &ImageSet,
        test: &ImageSet,
        on_event: &mut dyn FnMut(TrainEvent),
        cancel: &CancelToken,
    ) -> Result<Option<EpochReport>, TrainError> {
        let cfg = self.spec.config.clone();
        let shape = |set: &ImageSet| (set.side, set.channels);
        if shape(train) != (cfg.image_size, cfg.channels) || shape(test) != shape(train) {
            return Err(TrainError::Invalid(format!(
                "the data has {0}×{0} images with {1} channel(s) (held-out: {2}×{2}, {3}) but the model expects {4}×{4} with {5}",
                train.side, train.channels, test.side, test.channels, cfg.image_size, cfg.channels
            )));
        }
        if train.is_empty() {
            return Err(TrainError::Invalid("no training images".into()));
        }
        let started = Instant::now();
        let epoch = self.history.len() + 1;
        let mut order: Vec<usize> = (0..train.len()).collect();
        SeededRng::new(self.spec.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        let batches = order.len().div_ceil(self.spec.batch_size);
        let mut noise = SeededRng::new(self.spec.seed.wrapping_add(1_000_003 * epoch as u64));
        let mut total = 0.0;
        for (b, idx) in order.chunks(self.spec.batch_size).enumerate() {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let xs = batch_tensor(train, idx, &self.device)?;
            let eps = Tensor::from_vec(
                noise.normal_vec(idx.len() * cfg.latent_dim),
                (idx.len(), cfg.latent_dim),
                &self.device,
            )?;
            let value = self.train_step(&xs, &eps)?;
            total += value;
            on_event(TrainEvent::Batch { epoch, batch: b + 1, batches, loss: value });
        }
        let (val_loss, val_recon, val_kl) = self.evaluate(test)?;
        let report = EpochReport {
            epoch,
            train_loss: total / batches as f64,
            val_loss,
            val_recon,
            val_kl,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.history.push(report.clone());
        on_event(TrainEvent::Epoch(report.clone()));
        Ok(Some(report))
    }

    /// One optimiser step on images `xs` ([n, c, s, s]) with noise `eps`
    /// ([n, latent]); returns the batch loss before the update.
    pub fn train_step(&mut self, xs: &Tensor, eps: &Tensor) -> Result<f64, TrainError> {
        let out = self.vae.forward(xs, eps)?;
        let loss = vae_loss(&out, xs, self.spec.beta)?;
        self.opt.backward_step(&loss.total)?;
        Ok(loss.total.to_scalar::<f32>()? as f64)
    }

    /// Replaces the weights with those of a saved model (benchmarks start
    /// from shipped weights to compare with other frameworks).
    pub fn load_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        self.varmap.load(path).map_err(|e| file_err(path, e))
    }

    /// Held-out (loss, recon, KL) per image, with noise from a fixed seed so
    /// that epochs are comparable.
    pub fn evaluate(&self, set: &ImageSet) -> Result<(f64, f64, f64), TrainError> {
        let dim = self.spec.config.latent_dim;
        let mut noise = SeededRng::new(0xE7A1);
        let (mut recon, mut kl, mut n) = (0.0, 0.0, 0usize);
        let idx: Vec<usize> = (0..set.len()).collect();
        for chunk in idx.chunks(256) {
            let xs = batch_tensor(set, chunk, &self.device)?;
            let eps = Tensor::from_vec(noise.normal_vec(chunk.len() * dim), (chunk.len(), dim), &self.device)?;
            let out = self.vae.forward(&xs, &eps)?;
            let loss = vae_loss(&out, &xs, self.spec.beta)?;
            recon += loss.recon.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            kl += loss.kl.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            n += chunk.len();
        }
        let n = n.max(1) as f64;
        Ok(((recon + self.spec.beta * kl) / n, recon / n, kl / n))
    }

    /// Posterior means of every image in `set`, in order.
    pub fn encode_means(&self, set: &ImageSet) -> Result<Vec<Vec<f32>>, TrainError> {
        let idx: Vec<usize> = (0..set.len()).collect();
        let mut out = Vec::with_capacity(set.len());
        for chunk in idx.chunks(256) {
            let xs = batch_tensor(set, chunk, &self.device)?;
            let (mean, _) = self.vae.encoder.forward(&xs)?;
            out.extend(mean.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_set(n: usize, seed: u64) -> ImageSet {
        // Two classes of 8×8 images: a bright left half or a bright top half, with noise.
        let mut rng = SeededRng::new(seed);
        let mut set = ImageSet { side: 8, ..Default::default() };
        for i in 0..n {
            let class = (i % 2) as u8;
            for y in 0..8 {
                for x in 0..8 {
                    let on = if class == 0 { x < 4 } else { y < 4 };
                    let v = if on { 0.9 } else { 0.1 } + 0.05 * rng.normal() as f32;
                    set.pixels.push(v.clamp(0.0, 1.0));
                }
            }
            set.labels.push(class);
        }
        set
    }

    fn spec() -> TrainVaeSpec {
        TrainVaeSpec {
            dataset: crate::io::datasets::DatasetName::Mnist.into(),
            config: VaeConfig::tiny(),
            epochs: 3,
            batch_size: 16,
            lr: 1e-2,
            beta: 1.0,
            seed: 5,
        }
    }

    #[test]
    fn training_lowers_the_held_out_loss() -> Result<(), TrainError> {
        let (train, test) = (toy_set(256, 1), toy_set(64, 2));
        let mut t = VaeTrainer::new(spec(), &Device::Cpu)?;
        let (before, _, _) = t.evaluate(&test)?;
        let cancel = CancelToken::new();
        for _ in 0..3 {
            t.train_epoch(&train, &test, &mut |_| {}, &cancel)?;
        }
        let after = t.history().last().map(|r| r.val_loss).unwrap_or(f64::NAN);
        assert!(after < 0.8 * before, "held-out loss {before} → {after}");
        Ok(())
    }

    #[test]
    fn resume_continues_exactly() -> Result<(), TrainError> {
        let (train, test) = (toy_set(64, 1), toy_set(16, 2));
        let cancel = CancelToken::new();
        let dir = tempfile::tempdir().map_err(|e| TrainError::Invalid(e.to_string()))?;
        let mut straight = VaeTrainer::new(spec(), &Device::Cpu)?;
        straight.train_epoch(&train, &test, &mut |_| {}, &cancel)?;
        straight.save_checkpoint(dir.path())?;
        straight.train_epoch(&train, &test, &mut |_| {}, &cancel)?;
        let mut resumed = VaeTrainer::resume(dir.path(), 3, &Device::Cpu)?;
        resumed.train_epoch(&train, &test, &mut |_| {}, &cancel)?;
        assert_eq!(resumed.history().len(), 2);
        assert_eq!(resumed.history()[1].val_loss, straight.history()[1].val_loss);
        Ok(())
    }

    #[test]
    fn cancel_stops_before_the_next_batch() -> Result<(), TrainError> {
        let (train, test) = (toy_set(64, 1), toy_set(16, 2));
        let cancel = CancelToken::new();
        let mut t = VaeTrainer::new(spec(), &Device::Cpu)?;
        let mut batches = 0;
        let stop = cancel.clone();
        let out = t.train_epoch(
            &train,
            &test,
            &mut |_| {
                batches += 1;
                stop.cancel();
            },
            &cancel,
        )?;
        assert!(out.is_none());
        assert_eq!(batches, 1);
        assert!(t.history().is_empty());
        Ok(())
    }

    #[test]
    fn same_seed_same_weights() -> Result<(), TrainError> {
        let a = VaeTrainer::new(spec(), &Device::Cpu)?;
        let b = VaeTrainer::new(spec(), &Device::Cpu)?;
        let first = |t: &VaeTrainer| {
            named_vars(t.varmap())
                .into_iter()
                .map(|(k, v)| {
                    (k, v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("weights readable"))
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(first(&a) == first(&b), "two trainers with one seed start from different weights");
        Ok(())
    }
}
