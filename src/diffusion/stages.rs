//! Opening the latent diffusion model's two training stages on any
//! captioned images, for `train autoencoder`, `train diffusion` and the
//! Train view alike: the autoencoder (unless fine-tuning, which keeps the
//! base model's), then the U-Net with its text encoder and a tokenizer
//! learned from the captions (or the base model's).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::diffusion::clip_text::ClipTextConfig;
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::nets::{load_autoencoder, read_config};
use crate::diffusion::runs::{AutoencoderRun, DiffusionRun};
use crate::diffusion::schedulers::SchedulerConfig;
use crate::diffusion::train::{DiffusionTrainer, LatentCaptions, TrainDiffusionSpec};
use crate::diffusion::train_autoencoder::{AutoencoderTrainer, TrainAutoencoderSpec, encode_means};
use crate::diffusion::train_bpe::train_clip_bpe;
use crate::diffusion::unet_config::UnetConfig;
use crate::io::datasets::{DataSource, ImageSet, Split};
use crate::train::error::{TrainError, file_err};

/// How the U-Net stage begins.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum DiffusionStart {
    /// Fresh networks `width` wide (64 is the emoji model's; see
    /// `TrainDiffusionSpec::with_width`) and a BPE tokenizer of `merges`
    /// merges learned from the captions, `max_len` tokens per prompt.
    New { merges: usize, max_len: usize, width: usize },
    /// The U-Net, text encoder, tokenizer and autoencoder of the finished
    /// model folder `base`.
    FineTune { base: PathBuf },
    /// The checkpoint in the run folder.
    Resume,
}

/// The U-Net stage's settings (a resumed run keeps its checkpoint's, but for `epochs` and `ema`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiffusionSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Decay of the weight average (`None`: the default for new runs, the checkpoint's on resume).
    pub ema: Option<f64>,
    pub seed: u64,
    /// A sample grid every this many epochs (0: only at the end).
    pub sample_every: usize,
}

/// The autoencoder's spec for `side`×`side` colour images (latents a
/// quarter of the side), its three levels `channels` wide (the emoji
/// model's are 16, 32, 64; multiples of 8).
pub fn autoencoder_spec(side: usize, channels: [usize; 3], epochs: usize, seed: u64) -> TrainAutoencoderSpec {
    let mut spec = TrainAutoencoderSpec::emoji(epochs, seed);
    spec.config.sample_size = Some(side);
    spec.config.block_out_channels = channels.to_vec();
    spec
}

/// The emoji autoencoder's widths.
pub const AUTOENCODER_CHANNELS: [usize; 3] = [16, 32, 64];

/// The autoencoder stage: `spec` (or the checkpoint in `checkpoint`, trained
/// on up to `spec.epochs`) on `split`. A set smaller than a batch trains in
/// one batch of all its images.
pub fn open_autoencoder_run(
    mut spec: TrainAutoencoderSpec,
    resume: Option<&Path>,
    split: Split,
    device: &Device,
) -> Result<AutoencoderRun, TrainError> {
    spec.batch_size = spec.batch_size.min(split.train.len()).max(1);
    let trainer = match resume {
        Some(dir) => AutoencoderTrainer::resume(dir, spec.epochs, device)?,
        None => AutoencoderTrainer::new(spec, device)?,
    };
    Ok(AutoencoderRun { trainer, train: split.train, test: split.test })
}

/// Checks that diffusion can train on `source`: colour images with captions.
pub fn check_diffusion_data(source: &DataSource) -> Result<(), TrainError> {
    let (side, channels) = source.image_shape();
    if channels != 3 {
        return Err(TrainError::Invalid("latent diffusion trains on colour images; leave grey off".into()));
    }
    if !side.is_multiple_of(8) {
        return Err(TrainError::Invalid(format!(
            "latent diffusion needs a side that is a multiple of 8 (32, 48, 64), not {side}"
        )));
    }
    Ok(())
}

/// The U-Net stage in the model folder `out`, which holds `vae/` (from the
/// autoencoder stage) unless fine-tuning, whose base model's autoencoder and
/// tokenizer are copied in. The checkpoint is `out/checkpoint-diffusion`.
pub fn open_diffusion_run(
    out: &Path,
    start: &DiffusionStart,
    settings: &DiffusionSettings,
    data: (&ImageSet, &[String]),
    source: &DataSource,
    device: &Device,
) -> Result<DiffusionRun, TrainError> {
    let (train, captions) = data;
    let tok_dir = out.join("tokenizer");
    match start {
        DiffusionStart::FineTune { base } => {
            for part in ["vae", "tokenizer"] {
                if !out.join(part).exists() {
                    copy_folder(&base.join(part), &out.join(part))?;
                }
            }
        }
        DiffusionStart::New { merges, max_len, .. } => {
            train_clip_bpe(captions, *merges).save(&tok_dir, *max_len).map_err(|e| file_err(&tok_dir, e))?;
        }
        DiffusionStart::Resume => {}
    }
    let vae = load_autoencoder(&out.join("vae"), device).map_err(|e| {
        TrainError::Invalid(format!("{e}; train the autoencoder first (latent-studio train autoencoder --out …)"))
    })?;
    let tokenizer = ClipTokenizer::from_dir(&tok_dir).map_err(|e| file_err(&tok_dir, e))?;
    let checkpoint = out.join("checkpoint-diffusion");
    let trainer = match start {
        DiffusionStart::Resume => DiffusionTrainer::resume(&checkpoint, settings.epochs, settings.ema, device)?,
        DiffusionStart::New { .. } => {
            let defaults =
                TrainDiffusionSpec::emoji(tokenizer.vocab_size(), tokenizer.max_len(), settings.epochs, settings.seed);
            DiffusionTrainer::new(fitted(defaults, settings, train.len(), train.side), device)?
        }
        DiffusionStart::FineTune { base } => {
            let config = |part: &str, file: &str| base.join(part).join(file);
            let read = |e: crate::diffusion::FolderError| TrainError::Invalid(e.to_string());
            let unet: UnetConfig = read_config(&config("unet", "config.json")).map_err(read)?;
            let text: ClipTextConfig = read_config(&config("text_encoder", "config.json")).map_err(read)?;
            let scheduler: SchedulerConfig =
                read_config(&config("scheduler", "scheduler_config.json")).map_err(read)?;
            let defaults = TrainDiffusionSpec {
                unet,
                text,
                scheduler,
                base: Some(base.clone()),
                ..TrainDiffusionSpec::emoji(tokenizer.vocab_size(), tokenizer.max_len(), settings.epochs, settings.seed)
            };
            DiffusionTrainer::new(fitted(defaults, settings, train.len(), train.side), device)?
        }
    };
    let latents = vae.to_diffusion(&encode_means(&vae, train, device)?)?;
    let data = LatentCaptions::new(latents, captions, &tokenizer)?;
    Ok(DiffusionRun {
        trainer,
        data,
        vae,
        tokenizer,
        sample_every: settings.sample_every,
        started: Instant::now(),
        prompts: grid_prompts(source, captions),
        source: source.clone(),
    })
}

/// `spec` with the run's settings, its U-Net sized for `side`, and a batch
/// no larger than the training set.
fn fitted(spec: TrainDiffusionSpec, s: &DiffusionSettings, images: usize, side: usize) -> TrainDiffusionSpec {
    let mut spec = TrainDiffusionSpec {
        batch_size: s.batch_size.min(images).max(1),
        lr: s.lr,
        ema_decay: s.ema.or(spec.ema_decay),
        ..spec
    };
    spec.unet.sample_size = Some(side / 4);
    spec
}

/// The prompts of the sample grids: the card's for emoji, else the first
/// six different captions of the training images.
pub fn grid_prompts(source: &DataSource, captions: &[String]) -> Vec<String> {
    if matches!(source, DataSource::Named(_)) {
        return crate::diffusion::export::CARD_PROMPTS.map(String::from).to_vec();
    }
    let mut prompts: Vec<String> = Vec::new();
    for c in captions {
        if prompts.len() < 6 && !prompts.contains(c) {
            prompts.push(c.clone());
        }
    }
    prompts
}

/// Copies the files of `from` into a new folder `to` (one level: the model folders' parts are flat).
fn copy_folder(from: &Path, to: &Path) -> Result<(), TrainError> {
    let entries = std::fs::read_dir(from).map_err(|e| file_err(from, e))?;
    std::fs::create_dir_all(to).map_err(|e| file_err(to, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            let target = to.join(entry.file_name());
            std::fs::copy(&path, &target).map_err(|e| file_err(&target, e))?;
        }
    }
    Ok(())
}
