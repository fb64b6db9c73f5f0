//! Trains the denoiser of a latent diffusion model and its text encoder,
//! jointly, on latents already encoded by a trained autoencoder: ε-prediction
//! with the model's noise schedule, captions dropped to the empty prompt at a
//! fixed rate so classifier-free guidance works, AdamW, checkpoints that
//! resume exactly. `export` writes the diffusers folders beside the
//! autoencoder's and tokenizer's, so the result loads like any SD model.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::diffusion::autoencoder::Autoencoder;
use crate::diffusion::clip_text::{ClipTextConfig, ClipTextModel};
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::export::{
    strip_prefix, write_model_index, write_scheduler_folder, write_text_encoder_folder, write_unet_folder,
};
use crate::diffusion::sampling::{Conditioning, StepNoise, denoise, to_rgb};
use crate::diffusion::schedulers::{SamplerKind, SchedulerConfig, build_sampler};
use crate::diffusion::unet::Unet;
use crate::diffusion::unet_config::{PerBlock, UnetConfig};
use crate::io::export::make_grid;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::cancel::CancelToken;
use crate::train::checkpoint::{
    CheckpointState, OptimizerSteps, load_checkpoint_tensors, read_checkpoint_state, save_checkpoint,
};
use crate::train::error::TrainError;
use crate::train::init::{load_matching, named_vars, reseed_parameters};
use crate::train::rng::SeededRng;

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainDiffusionSpec {
    pub unet: UnetConfig,
    pub text: ClipTextConfig,
    pub scheduler: SchedulerConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Share of captions replaced by the empty prompt.
    pub uncond_rate: f64,
    /// Decay of the weights' exponential moving average, which samples and
    /// the exported model use; `None` uses the trained weights as they are.
    #[serde(default)]
    pub ema_decay: Option<f64>,
    pub seed: u64,
    /// A finished model folder (diffusers layout) whose U-Net and text
    /// encoder this run starts from (fine-tuning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<std::path::PathBuf>,
}

impl TrainDiffusionSpec {
    /// Our emoji model: a two-level U-Net over 4 × 8 × 8 latents with
    /// cross-attention at both levels, and a two-layer text encoder.
    pub fn emoji(vocab_size: usize, max_len: usize, epochs: usize, seed: u64) -> Self {
        Self::with_width(vocab_size, max_len, 64, epochs, seed)
    }

    /// The emoji model's shape at another `width` (a multiple of 32): U-Net
    /// levels of `width` and `2·width` channels, a text encoder `width` wide.
    pub fn with_width(vocab_size: usize, max_len: usize, width: usize, epochs: usize, seed: u64) -> Self {
        let unet = UnetConfig {
            block_out_channels: vec![width, 2 * width],
            attention_head_dim: PerBlock::All(4),
            norm_num_groups: 32,
            cross_attention_dim: width,
            ..UnetConfig::tiny(4, width)
        };
        let text = ClipTextConfig {
            hidden_size: width,
            intermediate_size: 4 * width,
            max_position_embeddings: max_len,
            ..ClipTextConfig::tiny(vocab_size)
        };
        Self {
            unet,
            text,
            scheduler: SchedulerConfig::default(),
            epochs,
            batch_size: 64,
            lr: 3e-4,
            uncond_rate: 0.1,
            ema_decay: Some(0.999),
            seed,
            base: None,
        }
    }
}

/// One epoch's mean loss.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiffusionEpoch {
    pub epoch: usize,
    /// Mean squared error of the predicted noise.
    pub loss: f64,
    pub seconds: f64,
}

impl crate::train::report::Reported for DiffusionEpoch {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("noise loss", self.loss)]
    }
    fn line(&self) -> String {
        format!("epoch {}: noise-prediction loss {:.4}, {:.1} s", self.epoch, self.loss, self.seconds)
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn epoch(&self) -> usize {
        self.epoch
    }
}

/// Encoded training data: scaled latents [n, c, h, w] and each image's caption tokens.
pub struct LatentCaptions {
    pub latents: Tensor,
    pub ids: Vec<Vec<u32>>,
    /// Tokens of the empty prompt.
    pub empty: Vec<u32>,
}

impl LatentCaptions {
    /// Tokenizes the captions for `latents` (one per row).
    pub fn new(latents: Tensor, captions: &[String], tokenizer: &ClipTokenizer) -> Result<Self, TrainError> {
        if latents.dim(0)? != captions.len() {
            return Err(TrainError::Invalid(format!("{} latents but {} captions", latents.dim(0)?, captions.len())));
        }
        let ids = captions.iter().map(|c| tokenizer.encode(c)).collect();
        Ok(Self { latents, ids, empty: tokenizer.encode("") })
    }
}

/// What a checkpoint of this trainer holds beside its tensors.
type DiffusionCheckpoint = CheckpointState<TrainDiffusionSpec, DiffusionEpoch>;

/// A denoiser and text encoder being trained.
pub struct DiffusionTrainer {
    varmap: VarMap,
    unet: Unet,
    text: ClipTextModel,
    opt: Adam,
    spec: TrainDiffusionSpec,
    alphas_cumprod: Vec<f64>,
    history: Vec<DiffusionEpoch>,
    device: Device,
}

impl DiffusionTrainer {
    /// Fresh networks, initialised from the seed.
    pub fn new(spec: TrainDiffusionSpec, device: &Device) -> Result<Self, TrainError> {
        let invalid = |e: crate::spec::InvalidSetting| TrainError::Invalid(e.0);
        spec.unet.plan().map_err(invalid)?;
        spec.text.validate().map_err(invalid)?;
        if spec.text.hidden_size != spec.unet.cross_attention_dim {
            return Err(TrainError::Invalid(format!(
                "text width {} ≠ cross_attention_dim {}",
                spec.text.hidden_size, spec.unet.cross_attention_dim
            )));
        }
        if spec.batch_size == 0 {
            return Err(TrainError::Invalid("batch size must be positive".into()));
        }
        let alphas_cumprod = spec.scheduler.alphas_cumprod().map_err(|e| TrainError::Invalid(e.to_string()))?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let unet = Unet::new(&spec.unet, vb.pp("unet"))?;
        let text = ClipTextModel::new(&spec.text, vb.pp("text_encoder"))?;
        reseed_parameters(&varmap, spec.seed)?;
        if let Some(base) = &spec.base {
            load_matching(&varmap, &base.join("unet/diffusion_pytorch_model.safetensors"), "unet.", "")?;
            load_matching(&varmap, &base.join("text_encoder/model.safetensors"), "text_encoder.", "")?;
        }
        let mut opt =
            Adam::new(named_vars(&varmap), AdamConfig { lr: spec.lr, weight_decay: 0.01, ..Default::default() })?;
        if let Some(decay) = spec.ema_decay {
            opt.keep_average(decay)?;
        }
        Ok(Self { varmap, unet, text, opt, spec, alphas_cumprod, history: Vec::new(), device: device.clone() })
    }

    /// Continues from a checkpoint folder; `epochs` may be raised to train
    /// further, and `ema_decay` switches a weight average on (it starts from
    /// the checkpoint's weights if the run had none).
    pub fn resume(dir: &Path, epochs: usize, ema_decay: Option<f64>, device: &Device) -> Result<Self, TrainError> {
        let (state, dir): (DiffusionCheckpoint, _) = read_checkpoint_state(dir)?;
        let mut spec = state.spec;
        spec.epochs = epochs.max(state.history.len());
        spec.ema_decay = ema_decay.or(spec.ema_decay);
        // The checkpoint holds every weight: the base model need not be there any more.
        let base = spec.base.take();
        let mut t = Self::new(spec, device)?;
        t.spec.base = base;
        load_checkpoint_tensors(&dir, &mut t.varmap, &mut [(&mut t.opt, state.progress.optimizer_steps)], device)?;
        t.history = state.history;
        Ok(t)
    }

    /// Writes weights, optimiser state and history into `dir` (replaced whole).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = DiffusionCheckpoint {
            spec: self.spec.clone(),
            progress: OptimizerSteps { optimizer_steps: self.opt.steps() },
            history: self.history.clone(),
        };
        save_checkpoint(dir, &self.varmap, &[&self.opt], &state)
    }

    /// Epochs finished so far.
    pub fn history(&self) -> &[DiffusionEpoch] {
        &self.history
    }

    /// The run's settings.
    pub fn spec(&self) -> &TrainDiffusionSpec {
        &self.spec
    }

    /// Whether all planned epochs are done.
    pub fn finished(&self) -> bool {
        self.history.len() >= self.spec.epochs
    }

    /// Runs the next epoch; `on_batch` gets (batch, batches, loss). `None` if cancelled.
    pub fn train_epoch(
        &mut self,
        data: &LatentCaptions,
        on_batch: &mut dyn FnMut(usize, usize, f64),
        cancel: &CancelToken,
    ) -> Result<Option<DiffusionEpoch>, TrainError> {
        let n = data.latents.dim(0)?;
        if n < self.spec.batch_size {
            return Err(TrainError::Invalid(format!(
                "{n} latents are fewer than one batch of {}",
                self.spec.batch_size
            )));
        }
        let started = Instant::now();
        let epoch = self.history.len() + 1;
        let mut order: Vec<usize> = (0..n).collect();
        SeededRng::new(self.spec.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        let mut rng = SeededRng::new(self.spec.seed.wrapping_add(9_000_011 * epoch as u64));
        let batches = n / self.spec.batch_size;
        let mut sum = 0.0;
        for (b, idx) in order.chunks_exact(self.spec.batch_size).enumerate() {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let loss = self.train_step(data, idx, &mut rng)?;
            sum += loss;
            on_batch(b + 1, batches, loss);
        }
        let report = DiffusionEpoch { epoch, loss: sum / batches as f64, seconds: started.elapsed().as_secs_f64() };
        self.history.push(report.clone());
        Ok(Some(report))
    }

    /// One AdamW step on the latents `idx`, each at its own random
    /// timestep; returns the loss before it.
    pub fn train_step(&mut self, data: &LatentCaptions, idx: &[usize], rng: &mut SeededRng) -> Result<f64, TrainError> {
        let rows = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect::<Vec<_>>(), idx.len(), &self.device)?;
        let clean = data.latents.index_select(&rows, 0)?; // [b, c, h, w]
        let ids: Vec<u32> = idx
            .iter()
            .flat_map(|&i| if rng.uniform() < self.spec.uncond_rate { data.empty.clone() } else { data.ids[i].clone() })
            .collect();
        let context = self.text.forward(&Tensor::from_vec(ids, (idx.len(), data.empty.len()), &self.device)?)?.0;
        let timesteps: Vec<usize> = idx.iter().map(|_| rng.below(self.alphas_cumprod.len())).collect();
        let per_sample = |f: &dyn Fn(f64) -> f64| {
            let v: Vec<f32> = timesteps.iter().map(|&t| f(self.alphas_cumprod[t]) as f32).collect();
            Tensor::from_vec(v, (idx.len(), 1, 1, 1), &self.device)
        };
        let (signal, noise) = (per_sample(&|a| a.sqrt())?, per_sample(&|a| (1.0 - a).sqrt())?);
        let eps = Tensor::from_vec(rng.normal_vec(clean.elem_count()), clean.shape(), &self.device)?;
        let noisy = (clean.broadcast_mul(&signal)? + eps.broadcast_mul(&noise)?)?;
        let timesteps: Vec<f64> = timesteps.iter().map(|&t| t as f64).collect();
        let predicted = self.unet.forward(&noisy, &timesteps, &context, None)?;
        let loss = (predicted - eps)?.sqr()?.mean_all()?;
        self.opt.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }

    /// Denoised latents for each prompt, one per seed ([seeds, c, h, w] per
    /// prompt): DDIM with guidance from the seeds' noise.
    pub fn sample_latents(
        &self,
        tokenizer: &ClipTokenizer,
        prompts: &[&str],
        seeds: &[u64],
        steps: usize,
        guidance: f64,
    ) -> Result<Vec<Tensor>, TrainError> {
        let sampler = build_sampler(SamplerKind::Ddim, &self.spec.scheduler, steps)
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        let (c, side) = (self.spec.unet.in_channels, self.spec.unet.sample_size.unwrap_or(8));
        let cancel = CancelToken::new();
        let mut out = Vec::new();
        for prompt in prompts {
            // Guidance needs the empty prompt's states too; without it the prompt's alone.
            let prompts = if guidance > 1.0 { vec!["", prompt] } else { vec![*prompt] };
            let ids: Vec<u32> = prompts.iter().flat_map(|p| tokenizer.encode(p)).collect();
            let ids = Tensor::from_vec(ids, (prompts.len(), tokenizer.max_len()), &self.device)?;
            let cond = Conditioning { context: self.text.forward(&ids)?.0, added: None };
            let mut latents = Vec::new();
            for &seed in seeds {
                let mut rng = SeededRng::new(seed);
                let x = Tensor::from_vec(rng.normal_vec(c * side * side), (1, c, side, side), &self.device)?;
                let done = denoise(
                    &self.unet,
                    sampler.as_ref(),
                    x,
                    0,
                    &cond,
                    guidance,
                    &mut StepNoise::Seeded(&mut rng),
                    &mut |_, _| Ok(()),
                    &cancel,
                )?;
                latents.extend(done);
            }
            out.push(Tensor::cat(&latents, 0)?);
        }
        Ok(out)
    }

    /// Runs `f` with the variables set to their averages (if kept), then puts the trained values back.
    fn with_averaged_weights<R>(&self, f: impl FnOnce() -> Result<R, TrainError>) -> Result<R, TrainError> {
        let Some(averages) = self.opt.averages() else { return f() };
        let vars: std::collections::HashMap<String, candle_core::Var> = named_vars(&self.varmap).into_iter().collect();
        let mut trained = Vec::with_capacity(averages.len());
        for (name, average) in averages {
            let Some(var) = vars.get(name) else { continue };
            trained.push((var.clone(), var.as_tensor().copy()?));
            var.set(average)?;
        }
        let out = f();
        for (var, value) in trained {
            var.set(&value)?;
        }
        out
    }

    /// One image per (prompt, seed) as a grid with a row per prompt, from the averaged weights.
    pub fn sample_grid(
        &self,
        vae: &Autoencoder,
        tokenizer: &ClipTokenizer,
        prompts: &[&str],
        seeds: &[u64],
        steps: usize,
        guidance: f64,
    ) -> Result<RgbImage, TrainError> {
        let latents = self.with_averaged_weights(|| self.sample_latents(tokenizer, prompts, seeds, steps, guidance))?;
        let mut images = Vec::new();
        for latents in latents {
            images.extend(to_rgb(&vae.decode(&vae.from_diffusion(&latents)?)?)?);
        }
        Ok(make_grid(&images, seeds.len(), 1))
    }

    /// Writes `unet/`, `text_encoder/`, `scheduler/` and `model_index.json`
    /// into `dir` as diffusers and transformers lay them out (the averaged weights, if kept).
    pub fn export(&self, dir: &Path) -> Result<(), TrainError> {
        self.with_averaged_weights(|| self.export_current(dir))
    }

    fn export_current(&self, dir: &Path) -> Result<(), TrainError> {
        let vars = named_vars(&self.varmap);
        write_unet_folder(&dir.join("unet"), &self.spec.unet, &strip_prefix(&vars, "unet."))?;
        write_text_encoder_folder(&dir.join("text_encoder"), &self.spec.text, &strip_prefix(&vars, "text_encoder."))?;
        write_scheduler_folder(&dir.join("scheduler"), &self.spec.scheduler)?;
        write_model_index(dir, false)
    }
}
