//! `generate …` (text-to-image and image-to-image with a progress bar) and
//! `info FILE.png` (the settings stored in an image, ours or another tool's).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::diffusion::checkpoint::{SingleFileSpec, clip_vocab_path};
use crate::diffusion::lora::active::LoraRequest;
use crate::diffusion::model_library::hashes::record_hashes;
use crate::diffusion::pipeline::{DiffusionPipeline, GenerateInputs, ImageRequest};
use crate::diffusion::schedulers::SamplerKind;
use crate::io::image_record::{ImageRecord, read_image_record};
use crate::io::npy::{NpyArray, npy_bytes, read_npy};
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;

/// Flags of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Installed diffusion model id (see `latent-studio models`).
    #[arg(long, conflicts_with_all = ["model_dir", "model_file"], required_unless_present_any = ["model_dir", "model_file"])]
    model: Option<String>,
    /// A diffusers model folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/).
    #[arg(long, conflicts_with = "model_file")]
    model_dir: Option<PathBuf>,
    /// A single-file checkpoint (.safetensors in the A1111/ComfyUI layout: SD 1.x, 2.x, XL).
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// With --model-file: a diffusers folder whose config.json files and
    /// tokenizers describe the checkpoint (needed for non-standard shapes).
    #[arg(long, requires = "model_file")]
    config: Option<PathBuf>,
    /// With --model-file: an autoencoder file replacing the checkpoint's own.
    #[arg(long, requires = "model_file")]
    vae: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    /// What to steer away from (the unconditional side of guidance).
    #[arg(long, default_value = "")]
    negative: String,
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// A1111's name ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "LCM",
    /// "DDIM", "DDPM") or a short one (euler-a, euler, dpmpp-2m, dpmpp-2m-karras, lcm, ddim, ddpm).
    #[arg(long, default_value = "euler-a", value_parser = parse_sampler)]
    sampler: SamplerKind,
    /// Classifier-free guidance scale (≤ 1: prompt only, as SD-Turbo wants).
    #[arg(long, default_value_t = 7.5)]
    cfg: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image width (default: the model's native size).
    #[arg(long)]
    width: Option<usize>,
    /// Image height (default: the model's native size).
    #[arg(long)]
    height: Option<usize>,
    /// img2img: start from this image.
    #[arg(long)]
    init_image: Option<PathBuf>,
    /// img2img: share of the schedule to run (1 = ignore the image's content).
    #[arg(long, default_value_t = 0.75)]
    strength: f64,
    /// Start from this initial latent (float32 .npy, shape [1, c, h, w] or [c, h, w]) instead of the seed's.
    #[arg(long)]
    noise: Option<PathBuf>,
    /// The per-step noise of stochastic samplers (Euler a, DDPM, LCM): float32
    /// .npy of shape [steps, 1, c, h, w], row i used at step i (to compare with another implementation).
    #[arg(long)]
    step_noise: Option<PathBuf>,
    /// A LoRA to merge, as FILE:WEIGHT (or FILE for weight 1); repeatable.
    #[arg(long, value_parser = parse_lora)]
    lora: Vec<(PathBuf, f64)>,
    /// Where the prompt's <lora:name:weight> tags are looked up (name.safetensors); repeatable.
    #[arg(long)]
    lora_dir: Vec<PathBuf>,
    /// Textual-inversion embeddings (A1111's .safetensors) used by name in prompts; repeatable.
    #[arg(long)]
    embeddings_dir: Vec<PathBuf>,
    /// A tiny preview decoder (TAESD/TAESDXL in diffusers' AutoencoderTiny
    /// layout: a folder or its .safetensors) for the --preview-every images.
    #[arg(long)]
    preview_decoder: Option<PathBuf>,
    /// Decode the final image with the preview decoder too (fast, lower quality).
    #[arg(long, requires = "preview_decoder")]
    preview_decoder_final: bool,
    /// Also write the initial latent the run started from as .npy.
    #[arg(long)]
    save_noise: Option<PathBuf>,
    /// Write a preview of the predicted image every K steps (OUT-step-NNN.png).
    #[arg(long, default_value_t = 0)]
    preview_every: usize,
    /// The PNG to write (never overwritten).
    #[arg(long)]
    out: PathBuf,
}

fn parse_lora(s: &str) -> Result<(PathBuf, f64), String> {
    match s.rsplit_once(':') {
        Some((path, weight)) if !path.is_empty() && weight.parse::<f64>().is_ok() => {
            Ok((PathBuf::from(path), weight.parse().unwrap_or(1.0)))
        }
        _ => Ok((PathBuf::from(s), 1.0)),
    }
}

fn parse_sampler(s: &str) -> Result<SamplerKind, String> {
    let names = SamplerKind::ALL.map(|k| format!("\"{}\"", k.a1111_name())).join(", ");
    SamplerKind::parse(s).ok_or_else(|| format!("unknown sampler {s:?}: choose one of {names}"))
}

/// Runs `generate`.
pub fn generate(models_dir: &Path, args: GenerateArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!("{} exists; the studio never overwrites (choose another --out)", args.out.display());
    }
    let name_of = |path: &Path, stem: bool| {
        let name = if stem { path.file_stem() } else { path.file_name() };
        name.map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
    };
    let device = default_device();
    let (pipeline, model_name) = match (&args.model, &args.model_dir, &args.model_file) {
        (Some(id), _, _) => (DiffusionPipeline::load(&find_manifest(models_dir, id)?.dir, &device)?, id.clone()),
        (None, Some(dir), _) => (DiffusionPipeline::load(dir, &device)?, name_of(dir, false)),
        (None, None, Some(file)) => {
            let vocab = Some(clip_vocab_path(models_dir));
            let spec = SingleFileSpec { file: file.clone(), config: args.config.clone(), vae: args.vae.clone(), vocab };
            (DiffusionPipeline::load_single_file(&spec, &device)?, name_of(file, true))
        }
        (None, None, None) => bail!("give --model ID, --model-dir DIR or --model-file FILE"),
    };
    let native = pipeline.native_size().unwrap_or(512);
    let request = ImageRequest {
        prompt: args.prompt.clone(),
        negative: args.negative.clone(),
        steps: args.steps,
        sampler: args.sampler,
        guidance: args.cfg,
        width: args.width.unwrap_or(native),
        height: args.height.unwrap_or(native),
        seed: args.seed,
        strength: args.strength,
    };
    let init = match &args.init_image {
        Some(path) => {
            Some(image::open(path).with_context(|| format!("cannot read the init image {}", path.display()))?.to_rgb8())
        }
        None => None,
    };
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
    let (model_hash, lora_hashes) = record_hashes(args.model_file.as_deref(), &lora_files);
    let record = ImageRecord {
        request,
        model: model_name,
        model_hash,
        lora_hashes,
        init_image: args.init_image.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
        noise_origin: args.noise.as_ref().and_then(|p| p.file_name()).map(|n| format!("file {}", n.to_string_lossy())),
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
