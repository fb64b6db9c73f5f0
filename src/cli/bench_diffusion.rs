//! `bench diffusion`: seconds per denoising step and per image for a
//! diffusers folder (or `--random-sd-mid DIR`, which first writes the
//! mid-sized SD-shaped model with random weights there), DDIM by default.
//! `benches/torch_diffusion.py` runs diffusers on the same folder and the
//! same initial noise (`--dump-noise`) and compares the images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::DType;
use clap::Args;

use crate::diffusion::checkpoint::family::Family;
use crate::diffusion::checkpoint::write::write_single_file;
use crate::diffusion::checkpoint::{SingleFileSpec, clip_vocab_path};
use crate::diffusion::pipeline::{DiffusionPipeline, Generated, ImageRequest, StepReport};
use crate::diffusion::random_weights::{RandomModel, write_random_model};
use crate::diffusion::schedulers::SamplerKind;
use crate::diffusion::tiny_decoder::TinyDecoder;
use crate::io::npy::{NpyArray, npy_bytes};
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;

/// Flags of `bench diffusion`.
#[derive(Args, Debug)]
pub struct BenchDiffusionArgs {
    /// Installed diffusion model id.
    #[arg(long)]
    model: Option<String>,
    /// A diffusers folder.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Write the mid-sized SD-shaped model (random weights, seed 0) into this folder first, then time it.
    #[arg(long)]
    random_sd_mid: Option<PathBuf>,
    /// Write a full-size SD 1.5-shaped model (random weights, CLIP's vocabulary) into this folder
    /// and, beside it, the same as one fp16 file in A1111's layout (DIR.fp16.safetensors); time the folder.
    #[arg(long)]
    random_sd15: Option<PathBuf>,
    /// Write a full-size SDXL-base-shaped model (random weights) into this folder and beside it
    /// its fp16 single file (DIR.fp16.safetensors); time the single file.
    #[arg(long)]
    random_sdxl: Option<PathBuf>,
    /// A single-file checkpoint to time instead of a folder.
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// With --model-file: the diffusers folder describing it (else the standard shapes).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "a red heart")]
    prompt: String,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 7.5)]
    cfg: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side (default: the model's native size).
    #[arg(long)]
    size: Option<usize>,
    #[arg(long, default_value = "ddim")]
    sampler: String,
    /// Timed images (after one warm-up image).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also time one preview per way of drawing it at this size: the full
    /// decoder, the fitted colour map and this tiny decoder (TAESD layout;
    /// `random` writes one with random weights next to the model).
    #[arg(long)]
    preview_decoder: Option<PathBuf>,
    /// Write the initial latent as .npy (for the diffusers side).
    #[arg(long)]
    dump_noise: Option<PathBuf>,
    /// Write the last image as PNG.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints the time of one preview of the final latent's size each way.
fn time_previews(pipeline: &DiffusionPipeline, generated: &Generated, tiny: &Path) -> anyhow::Result<()> {
    let [c, h, w] = generated.latent_shape;
    let device = &pipeline.nets().device;
    let x0 = candle_core::Tensor::from_vec(generated.noise.clone(), (1, c, h, w), device)?;
    let vae = &pipeline.nets().vae;
    let time = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        f()?; // warm-up
        let started = Instant::now();
        f()?;
        Ok(started.elapsed().as_secs_f64())
    };
    let full = time(&|| Ok(vae.decode(&vae.from_diffusion(&x0)?).map(|_| ())?))?;
    pipeline.use_preview_decoder(None)?;
    let colours = time(&|| Ok(pipeline.preview(&x0).map(|_| ())?))?;
    pipeline.use_preview_decoder(Some(tiny))?;
    let taesd = time(&|| Ok(pipeline.preview(&x0).map(|_| ())?))?;
    pipeline.use_preview_decoder(None)?;
    println!(
        "preview of a {}×{} latent: full decoder {full:.3} s, colour map {colours:.4} s, tiny decoder {taesd:.3} s",
        w, h
    );
    Ok(())
}

/// The process's peak resident memory so far (Linux's VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A full-size standard-shaped folder and its fp16 single file, unless already written.
fn write_random_standard(dir: &Path, family: Family, clip_vocab: &Path) -> anyhow::Result<PathBuf> {
    if !dir.join("unet").exists() {
        write_random_model(dir, &RandomModel::standard(family, 0, clip_vocab))
            .with_context(|| format!("cannot write {}", dir.display()))?;
    }
    let file = dir.with_extension("fp16.safetensors");
    if !file.exists() {
        write_single_file(dir, family, DType::F16, &file)?;
    }
    eprintln!("folder {} and single file {}", dir.display(), file.display());
    Ok(file)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Runs `bench diffusion`.
pub fn bench_diffusion(models_dir: &Path, args: BenchDiffusionArgs) -> anyhow::Result<()> {
    let mut model_file = args.model_file.clone();
    if let Some(dir) = &args.random_sdxl {
        model_file = Some(write_random_standard(dir, Family::Sdxl, &clip_vocab_path(models_dir))?);
    }
    let dir = match (&args.model, &args.model_dir, &args.random_sd_mid, &args.random_sd15, &model_file) {
        (Some(id), ..) => find_manifest(models_dir, id)?.dir,
        (None, Some(dir), ..) => dir.clone(),
        (None, None, Some(dir), ..) => {
            if !dir.join("unet").exists() {
                write_random_model(dir, &RandomModel::sd_mid(0))
                    .with_context(|| format!("cannot write {}", dir.display()))?;
            }
            dir.clone()
        }
        (None, None, None, Some(dir), _) => {
            write_random_standard(dir, Family::Sd1, &clip_vocab_path(models_dir))?;
            dir.clone()
        }
        (None, None, None, None, Some(file)) => file.clone(),
        _ => anyhow::bail!("give --model, --model-dir, --model-file, --random-sd-mid or --random-sd15"),
    };
    let device = default_device();
    let load_started = Instant::now();
    let pipeline = match &model_file {
        Some(file) => {
            let vocab = Some(clip_vocab_path(models_dir));
            let spec = SingleFileSpec { file: file.clone(), config: args.config.clone(), vae: None, vocab };
            DiffusionPipeline::load_single_file(&spec, &device)?
        }
        None => DiffusionPipeline::load(&dir, &device)?,
    };
    let load_s = load_started.elapsed().as_secs_f64();
    let size = args.size.or(pipeline.native_size()).unwrap_or(512);
    let sampler = SamplerKind::parse(&args.sampler).with_context(|| format!("unknown sampler {}", args.sampler))?;
    let request = ImageRequest {
        steps: args.steps,
        guidance: args.cfg,
        width: size,
        height: size,
        sampler,
        ..ImageRequest::new(&args.prompt, args.seed)
    };
    let (mut step_s, mut image_s) = (Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..=args.rounds.max(1) {
        let mut stamps = Vec::new();
        let started = Instant::now();
        let generated = pipeline
            .generate(&request, None, None, 0, &mut |_: StepReport| stamps.push(Instant::now()), &CancelToken::new())?
            .context("cancelled")?;
        let total = started.elapsed().as_secs_f64();
        if round > 0 {
            image_s.push(total);
            step_s.extend(stamps.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()));
        }
        last = Some(generated);
    }
    let generated = last.context("no image")?;
    if let Some(path) = &args.dump_noise {
        let [c, h, w] = generated.latent_shape;
        write_new_file(path, &npy_bytes(&NpyArray { shape: vec![1, c, h, w], data: generated.noise.clone() }))?;
    }
    if let Some(path) = &args.out {
        write_new_file(path, &encode_png(&generated.image, &[]).map_err(anyhow::Error::msg)?)?;
    }
    let (s_step, s_image) = (median(step_s), median(image_s));
    if let Some(path) = &args.preview_decoder {
        let path = if path.as_os_str() == "random" {
            let file = std::env::temp_dir().join("latent-studio-random-taesd.safetensors");
            TinyDecoder::write_random(&file, 0)?;
            file
        } else {
            path.clone()
        };
        time_previews(&pipeline, &generated, &path)?;
    }
    if args.json {
        let row = serde_json::json!({
            "model": dir.display().to_string(), "size": size, "steps": args.steps, "cfg": args.cfg,
            "sampler": sampler.cli_name(), "threads": rayon::current_num_threads(),
            "load_s": load_s, "s_per_step": s_step, "s_per_image": s_image, "peak_rss_mb": peak_rss_mb(),
        });
        println!("{row}");
    } else {
        let peak = peak_rss_mb().map_or("?".into(), |mb| format!("{mb:.0}"));
        println!("| model | size | steps | load s | s/step | s/image | peak MB |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {} | {size}×{size} | {} | {load_s:.2} | {s_step:.4} | {s_image:.3} | {peak} |",
            dir.display(),
            args.steps
        );
    }
    Ok(())
}
