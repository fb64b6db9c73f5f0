//! Flags shared by the commands that sample a diffusion model (`generate`,
//! `pad`, `travel`): which model, and how to sample it.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use crate::diffusion::checkpoint::{SingleFileSpec, clip_vocab_path};
use crate::diffusion::pipeline::{DiffusionPipeline, ImageRequest};
use crate::diffusion::schedulers::SamplerKind;
use crate::library::find_manifest;
use crate::nn::default_device;

/// Which diffusion model to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Installed diffusion model id (see `latent-studio models`).
    /// With --backend: the server's checkpoint (default: its current one).
    #[arg(long, conflicts_with_all = ["model_dir", "model_file"])]
    pub model: Option<String>,
    /// A diffusers model folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/).
    #[arg(long, conflicts_with = "model_file")]
    pub model_dir: Option<PathBuf>,
    /// A single-file checkpoint (.safetensors in the A1111/ComfyUI layout: SD 1.x, 2.x, XL).
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// With --model-file: a diffusers folder whose config.json files and
    /// tokenizers describe the checkpoint (needed for non-standard shapes).
    #[arg(long, requires = "model_file")]
    pub config: Option<PathBuf>,
    /// With --model-file: an autoencoder file replacing the checkpoint's own.
    #[arg(long, requires = "model_file")]
    pub vae: Option<PathBuf>,
}

impl ModelArgs {
    /// The pipeline and the model's name for the image's metadata.
    pub fn load(&self, models_dir: &Path) -> anyhow::Result<(DiffusionPipeline, String)> {
        let name_of = |path: &Path, stem: bool| {
            let name = if stem { path.file_stem() } else { path.file_name() };
            name.map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
        };
        let device = default_device();
        Ok(match (&self.model, &self.model_dir, &self.model_file) {
            (Some(id), _, _) => (DiffusionPipeline::load(&find_manifest(models_dir, id)?.dir, &device)?, id.clone()),
            (None, Some(dir), _) => (DiffusionPipeline::load(dir, &device)?, name_of(dir, false)),
            (None, None, Some(file)) => {
                let vocab = Some(clip_vocab_path(models_dir));
                let spec =
                    SingleFileSpec { file: file.clone(), config: self.config.clone(), vae: self.vae.clone(), vocab };
                (DiffusionPipeline::load_single_file(&spec, &device)?, name_of(file, true))
            }
            (None, None, None) => bail!("give --model ID, --model-dir DIR or --model-file FILE"),
        })
    }
}

/// How to sample.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// What to steer away from (the unconditional side of guidance).
    #[arg(long, default_value = "")]
    pub negative: String,
    #[arg(long, default_value_t = 25)]
    pub steps: usize,
    /// A1111's name ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "LCM",
    /// "DDIM", "DDPM") or a short one (euler-a, euler, dpmpp-2m, dpmpp-2m-karras,
    /// lcm, ddim, ddpm). Default: Euler a (`travel`: DDIM).
    #[arg(long, value_parser = parse_sampler)]
    pub sampler: Option<SamplerKind>,
    /// Classifier-free guidance scale (≤ 1: prompt only, as SD-Turbo wants).
    #[arg(long, default_value_t = 7.5)]
    pub cfg: f64,
    /// Image width (default: the model's native size).
    #[arg(long)]
    pub width: Option<usize>,
    /// Image height (default: the model's native size).
    #[arg(long)]
    pub height: Option<usize>,
}

impl SamplingArgs {
    /// A request with these settings for `prompt` and `seed` (size: the
    /// model's native one unless given; `sampler` unless one is given).
    pub fn request(&self, pipeline: &DiffusionPipeline, prompt: &str, seed: u64, sampler: SamplerKind) -> ImageRequest {
        self.request_at(pipeline.native_size().unwrap_or(512), prompt, seed, sampler)
    }

    /// [`Self::request`] with `native` as the size when none is given.
    pub fn request_at(&self, native: usize, prompt: &str, seed: u64, sampler: SamplerKind) -> ImageRequest {
        ImageRequest {
            negative: self.negative.clone(),
            steps: self.steps,
            sampler: self.sampler.unwrap_or(sampler),
            guidance: self.cfg,
            width: self.width.unwrap_or(native),
            height: self.height.unwrap_or(native),
            ..ImageRequest::new(prompt, seed)
        }
    }
}

pub fn parse_sampler(s: &str) -> Result<SamplerKind, String> {
    let names = SamplerKind::ALL.map(|k| format!("\"{}\"", k.a1111_name())).join(", ");
    SamplerKind::parse(s).ok_or_else(|| format!("unknown sampler {s:?}: choose one of {names}"))
}
