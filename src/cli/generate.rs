//! `generate …` (text-to-image and image-to-image with a progress bar) and
//! `info FILE.png` (the settings stored in an image, ours or another tool's).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::model_args::{ModelArgs, SamplingArgs};
use crate::diffusion::lora::active::LoraRequest;
use crate::diffusion::model_library::hashes::record_hashes;
use crate::diffusion::pipeline::GenerateInputs;
use crate::io::image_record::{ImageRecord, read_image_record};
use crate::io::npy::{NpyArray, npy_bytes, read_npy};
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::spec::image::{ImageRequest, SamplerKind, VariationSeed};
use crate::train::cancel::CancelToken;

/// Flags of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub(super) source: ModelArgs,
    #[arg(long)]
    pub(super) prompt: String,
    #[command(flatten)]
    pub(super) sampling: SamplingArgs,
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// A1111's variation seed: start from the seed's noise slerped towards this seed's.
    #[arg(long, requires = "variation_strength")]
    pub(super) variation_seed: Option<u64>,
    /// How far towards the variation seed's noise (0: none, 1: all of it).
    #[arg(long, requires = "variation_seed")]
    pub(super) variation_strength: Option<f64>,
    /// img2img: start from this image.
    #[arg(long)]
    pub(super) init_image: Option<PathBuf>,
    /// img2img: share of the schedule to run (1 = ignore the image's content).
    #[arg(long, default_value_t = 0.75)]
    pub(super) strength: f64,
    /// Start from this initial latent (float32 .npy, shape [1, c, h, w] or [c, h, w]) instead of the seed's.
    #[arg(long)]
    pub(super) noise: Option<PathBuf>,
    /// The per-step noise of stochastic samplers (Euler a, DDPM, LCM): float32
    /// .npy of shape [steps, 1, c, h, w], row i used at step i (to compare with another implementation).
    #[arg(long)]
    pub(super) step_noise: Option<PathBuf>,
    /// A LoRA to merge, as FILE:WEIGHT (or FILE for weight 1); repeatable.
    #[arg(long, value_parser = parse_lora)]
    pub(super) lora: Vec<(PathBuf, f64)>,
    /// Where the prompt's <lora:name:weight> tags are looked up (name.safetensors); repeatable.
    #[arg(long)]
    pub(super) lora_dir: Vec<PathBuf>,
    /// Textual-inversion embeddings (A1111's .safetensors) used by name in prompts; repeatable.
    #[arg(long)]
    pub(super) embeddings_dir: Vec<PathBuf>,
    /// A tiny preview decoder (TAESD/TAESDXL in diffusers' AutoencoderTiny
    /// layout: a folder or its .safetensors) for the --preview-every images.
    #[arg(long)]
    pub(super) preview_decoder: Option<PathBuf>,
    /// Decode the final image with the preview decoder too (fast, lower quality).
    #[arg(long, requires = "preview_decoder")]
    pub(super) preview_decoder_final: bool,
    /// Also write the initial latent the run started from as .npy.
    #[arg(long)]
    pub(super) save_noise: Option<PathBuf>,
    /// Write a preview of the predicted image every K steps (OUT-step-NNN.png).
    #[arg(long, default_value_t = 0)]
    pub(super) preview_every: usize,
    /// Images in one call (--backend only; the second is OUT-2.png, and so on).
    #[arg(long, default_value_t = 1)]
    pub(super) batch: usize,
    #[command(flatten)]
    pub(super) backend: super::backend_args::BackendArgs,
    /// The PNG to write (never overwritten).
    #[arg(long)]
    pub(super) out: PathBuf,
}

impl GenerateArgs {
    /// The request the flags describe (`native` as the size when none is
    /// given) and the init image, read.
    pub(super) fn request_and_init(&self, native: usize) -> anyhow::Result<(ImageRequest, Option<image::RgbImage>)> {
        let mut request = self.sampling.request_at(native, &self.prompt, self.seed, SamplerKind::EulerAncestral);
        request.strength = self.strength;
        request.variation =
            self.variation_seed.zip(self.variation_strength).map(|(seed, strength)| VariationSeed { seed, strength });
        let init = match &self.init_image {
            Some(path) => Some(
                image::open(path).with_context(|| format!("cannot read the init image {}", path.display()))?.to_rgb8(),
            ),
            None => None,
        };
        Ok((request, init))
    }

    /// The init image's file name, as the record keeps it.
    pub(super) fn init_name(&self) -> Option<String> {
        self.init_image.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())
    }
}

pub(super) fn parse_lora(s: &str) -> Result<(PathBuf, f64), String> {
    match s.rsplit_once(':') {
        Some((path, weight)) if !path.is_empty() && weight.parse::<f64>().is_ok() => {
            Ok((PathBuf::from(path), weight.parse().unwrap_or(1.0)))
        }
        _ => Ok((PathBuf::from(s), 1.0)),
    }
}

/// Runs `generate`.
pub fn generate(models_dir: &Path, args: GenerateArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} exists; the studio never overwrites (choose another --out)", args.out.display());
    }
    if let Some(pool) = args.backend.pool(crate::spec::backend::BackendKind::A1111)? {
        return super::generate_remote::generate_remote(&pool, &args);
    }
    anyhow::ensure!(args.batch == 1, "--batch is for --backend; here, run generate once per seed");
    let (pipeline, model_name) = args.source.load(models_dir)?;
    let (request, init) = args.request_and_init(pipeline.native_size().unwrap_or(512))?;
    let noise = match &args.noise {
        Some(path) => Some(read_npy(path)?.data),
        None => None,
    };
    let step_noise = match &args.step_noise {
        Some(path) => Some(read_npy(path)?.data),
        None => None,
    };
    let bar = ProgressBar::new(request.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("step [{bar:30}] {pos}/{len} ({per_sec}, ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let stem = args.out.with_extension("");
    let mut preview_error = None;
    let mut on_step = |report: crate::diffusion::pipeline::StepReport| {
        bar.set_length(report.total as u64);
        bar.set_position(report.step as u64);
        if let Some(preview) = report.preview {
            let path = PathBuf::from(format!("{}-step-{:03}.png", stem.display(), report.step));
            let written =
                encode_png(&preview, &[]).map_err(anyhow::Error::msg).and_then(|png| Ok(write_new_file(&path, &png)?));
            if let Err(e) = written {
                preview_error.get_or_insert(e);
            }
        }
    };
    let started = std::time::Instant::now();
    let loras = args.lora.iter().map(|(path, weight)| LoraRequest {
        path: path.clone(),
        text_weight: *weight,
        unet_weight: *weight,
    });
    let inputs = GenerateInputs {
        init: init.as_ref(),
        noise,
        step_noise,
        preview_every: args.preview_every,
        loras: loras.collect(),
        lora_dirs: args.lora_dir.clone(),
        preview_decoder: args.preview_decoder.clone(),
        preview_decoder_final: args.preview_decoder_final,
        embedding_dirs: args.embeddings_dir.clone(),
    };
    // One image, then the process ends: free each network once it is done.
    let generated = pipeline.generate_once(&request, inputs, &mut on_step, &CancelToken::new())?;
    bar.finish_and_clear();
    if let Some(e) = preview_error {
        return Err(e.context("cannot write a preview"));
    }
    let Some(generated) = generated else { bail!("cancelled") };
    for report in &generated.loras {
        if !report.unused.is_empty() || report.unsupported > 0 {
            eprintln!(
                "{}: {} layers merged; {} named no layer of this model, {} tensors of kinds not merged",
                report.path.display(),
                report.applied,
                report.unused.len(),
                report.unsupported
            );
        }
    }
    let lora_files: Vec<PathBuf> = generated.loras.iter().map(|r| r.path.clone()).collect();
    let (model_hash, lora_hashes) = record_hashes(args.source.model_file.as_deref(), &lora_files);
    let record = ImageRecord {
        request,
        model: model_name,
        model_hash,
        lora_hashes,
        init_image: args.init_name(),
        noise_origin: args.noise.as_ref().and_then(|p| p.file_name()).map(|n| format!("file {}", n.to_string_lossy())),
        latent: None,
        served: None,
    };
    let png = encode_png(&generated.image, &record.chunks()).map_err(anyhow::Error::msg)?;
    write_new_file(&args.out, &png)?;
    if let Some(path) = &args.save_noise {
        let [c, h, w] = generated.latent_shape;
        let array = NpyArray { shape: vec![1, c, h, w], data: generated.noise };
        write_new_file(path, &npy_bytes(&array))?;
    }
    eprintln!("wrote {} in {:.1} s", args.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `info`: prints the settings stored in the image.
pub fn info(path: &Path, json: bool) -> anyhow::Result<()> {
    let Some(record) = read_image_record(path).map_err(anyhow::Error::msg)? else {
        bail!(
            "{} holds no generation settings (no parameters or {} chunk)",
            path.display(),
            crate::io::image_record::RECORD_KEY
        );
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!("{}", record.to_params().to_a1111());
    }
    Ok(())
}
