//! `bench …`: in-process timings printed as tables (warm-up, many runs, median and p95).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::Subcommand;

use crate::io::datasets::DatasetName;
use crate::latent::interpolate::{Interpolation, interpolate, seeded_latent};
use crate::library::find_manifest;
use crate::train::rng::SeededRng;
use crate::vae::model::VaeModel;
use crate::vae::network::VaeConfig;
use crate::vae::train::{TrainVaeSpec, VaeTrainer};

/// What to measure.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Serving overhead: first-token latency and tokens/s through `serve`
    /// against the same engine in-process, then many streams at once.
    Serve(Box<super::bench_serve::BenchServeArgs>),
    /// Seconds per denoising step and per image of a diffusion model (DDIM by default).
    Diffusion(Box<super::bench_diffusion::BenchDiffusionArgs>),
    /// The latent pad's latency from a new cursor or slider position to pixels.
    Pad(Box<super::bench_pad::BenchPadArgs>),
    /// The History over 10,000 files: indexing, refresh, search, UI frames while scrolling.
    History(super::bench_history::BenchHistoryArgs),
    /// Decode latency of a VAE (one image, a 16-frame strip, a batch of 64),
    /// one training step, and UI frame time while training.
    Latent {
        /// Model id (see `latent-studio models`).
        #[arg(long)]
        model: String,
        /// Timed runs per row.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// UI frames to time while a training job runs (0 skips that row).
        #[arg(long, default_value_t = 600)]
        frames: usize,
        /// Where scripts/fetch-data.sh put the training data.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Print the timings as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Write inputs and outputs as safetensors for benches/torch_vae.py to check against.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Download throughput from the Hub HF_ENDPOINT names (a local stand-in
    /// for benchmarks) into a fresh cache, and the UI's frame time meanwhile.
    Hub {
        /// Repo id.
        #[arg(long)]
        repo: String,
        /// The file to pull.
        #[arg(long)]
        file: String,
        /// Timed pulls.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// UI frames to time on the Models view while pulling (0 skips that row).
        #[arg(long, default_value_t = 300)]
        frames: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prompt-processing and generation speed of a language model (tokens/s).
    Text {
        #[command(flatten)]
        model: super::text::ModelChoice,
        /// Prompt length of the pp test.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// Tokens generated in the tg test.
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Timed rounds (after one warm-up).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// DCGAN training speed (discriminator + generator step) in real images/s, emoji network.
    Gan {
        /// Real images per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed steps (after two warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Also write the initial weights, the first batch and the first two steps' losses here.
        #[arg(long)]
        dump: Option<std::path::PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Training speed of every family (VAE, DCGAN, the latent diffusion model's two stages, the character GPT).
    Train {
        /// Where scripts/fetch-data.sh put emoji/ and shakespeare/.
        #[arg(long, default_value = "data")]
        data_dir: std::path::PathBuf,
        /// Emoji images per epoch.
        #[arg(long, default_value_t = 1024)]
        images: usize,
        /// UI frames of the Train view to time during a GAN run (0 skips them).
        #[arg(long, default_value_t = 600)]
        frames: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// candle's built-in convolutions against the GEMM ones: per conv layer of the shipped VAEs and whole-model work.
    Conv {
        /// Model id whose layers and weights are timed (a VAE).
        #[arg(long, default_value = "fashion-16d")]
        model: String,
        /// Timed runs per cell.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Allocate the patch-matrix buffers on every call instead of reusing them.
        #[arg(long)]
        fresh_buffers: bool,
        /// Print the timings as one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a benchmark and prints its table.
pub fn run(cmd: BenchCommand, models_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Diffusion(args) => super::bench_diffusion::bench_diffusion(models_dir, *args),
        BenchCommand::Pad(args) => super::bench_pad::bench_pad(models_dir, *args),
        BenchCommand::History(args) => super::bench_history::bench_history(args),
        BenchCommand::Latent { model, runs, frames, data_dir, json, dump } => {
            bench_latent(models_dir, &model, runs, json, dump.as_deref())?;
            if frames > 0 {
                print_ui_frame_times(models_dir, &model, frames, &data_dir)?;
            }
            Ok(())
        }
        BenchCommand::Hub { repo, file, runs, frames, json } => {
            super::bench_hub::bench_hub(models_dir, &repo, &file, runs.max(1), frames, json)
        }
        BenchCommand::Serve(args) => super::bench_serve::bench_serve(models_dir, &args),
        BenchCommand::Text { model, prompt_tokens, gen_tokens, runs, json } => {
            super::bench_text::bench_text(models_dir, &model, prompt_tokens, gen_tokens, runs.max(1), json)
        }
        BenchCommand::Gan { batch, steps, dump, json } => {
            super::bench_gan::bench_gan(batch.max(2), steps.max(1), dump.as_deref(), json)
        }
        BenchCommand::Train { data_dir, images, frames, json } => {
            super::bench_train::bench_train(models_dir, &data_dir, images.max(64), frames, json)
        }
        BenchCommand::Conv { model, runs, fresh_buffers, json } => {
            super::bench_conv::bench_conv(models_dir, &model, runs, fresh_buffers, json)
        }
    }
}

pub use crate::spec::latency::percentiles;

pub(super) fn time_runs(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    for _ in 0..runs.div_ceil(10) {
        f()?;
    }
    let mut samples = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f().map(|()| t.elapsed())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (p50, p95) = percentiles(&mut samples);
    Ok((ms(p50), ms(p95)))
}

/// The UI's frame times while a VAE trains, as table rows.
fn print_ui_frame_times(models_dir: &Path, model: &str, frames: usize, data_dir: &Path) -> anyhow::Result<()> {
    let Some(t) = crate::app::frame_bench::frame_times_during_training(models_dir, model, frames, data_dir)? else {
        println!(
            "| UI frame CPU time during training | skipped: no training data in {} (run scripts/fetch-data.sh) | | |",
            data_dir.display()
        );
        return Ok(());
    };
    match t.cpu {
        Some((p50, p99)) => println!(
            "| UI frame CPU time (UI thread) while training + dragging ({} frames) | {p50:.3} | p99 {p99:.3} | p99 < 4 ms |",
            t.frames
        ),
        None => println!("| UI frame CPU time (UI thread) while training + dragging | n/a on this OS | | p99 < 4 ms |"),
    }
    println!("| UI frame wall time, same frames | {:.3} | p99 {:.3} | |", t.wall.0, t.wall.1);
    eprintln!("training job during the run: {}", t.training);
    Ok(())
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_latent(models_dir: &Path, id: &str, runs: usize, json: bool, dump: Option<&Path>) -> anyhow::Result<()> {
    let manifest = find_manifest(models_dir, id)?;
    let weights = manifest.weights_path();
    let config: VaeConfig = serde_json::from_value(manifest.config.clone()).context("bench latent needs a VAE")?;
    let model = VaeModel::load(manifest, &Device::Cpu)?;
    let decoder = &model.vae().decoder;
    let dim = config.latent_dim;
    let batch = |latents: &[Vec<f32>]| -> candle_core::Result<Tensor> {
        Tensor::from_vec(latents.iter().flatten().copied().collect(), (latents.len(), dim), &Device::Cpu)
    };
    let one = batch(&[seeded_latent(1, dim)])?;
    let strip = batch(&interpolate(&seeded_latent(1, dim), &seeded_latent(2, dim), 16, Interpolation::Slerp))?;
    let many = batch(&(0..64).map(|s| seeded_latent(s, dim)).collect::<Vec<_>>())?;
    // Tensor-level decode (what PyTorch is timed on) and the studio's full path (to RGB images).
    let one_latent = vec![seeded_latent(1, dim)];
    let decode_1 = time_runs(runs, || {
        drop(decoder.decode(&one)?.to_vec1_flat()?);
        Ok(())
    })?;
    let decode_1_rgb = time_runs(runs, || {
        drop(crate::latent::model::LatentModel::decode(&model, &one_latent)?);
        Ok(())
    })?;
    let decode_16 = time_runs(runs, || {
        drop(decoder.decode(&strip)?.to_vec1_flat()?);
        Ok(())
    })?;
    let decode_64 = time_runs(runs.div_ceil(4), || {
        drop(decoder.decode(&many)?.to_vec1_flat()?);
        Ok(())
    })?;

    // One training step from the shipped weights on decoded images.
    let xs = decoder.decode(&many)?;
    let eps = Tensor::from_vec(SeededRng::new(99).normal_vec(64 * dim), (64, dim), &Device::Cpu)?;
    let spec = TrainVaeSpec {
        dataset: DatasetName::Mnist.into(),
        config: config.clone(),
        epochs: 1,
        batch_size: 64,
        lr: 1e-3,
        beta: 1.0,
        seed: 0,
    };
    let mut trainer = VaeTrainer::new(spec.clone(), &Device::Cpu)?;
    trainer.load_weights(&weights)?;
    let first_loss = trainer.train_step(&xs, &eps)?;
    let train_64 =
        time_runs(runs.div_ceil(10).max(10), || trainer.train_step(&xs, &eps).map(|_| ()).map_err(Into::into))?;

    if let Some(path) = dump {
        let fresh = {
            let mut t = VaeTrainer::new(spec, &Device::Cpu)?;
            t.load_weights(&weights)?;
            t
        };
        let (mean, _) = fresh.vae().encoder.forward(&xs)?;
        // Five AdamW steps from the shipped weights, then the loss: checks backward and the optimiser.
        let mut stepped = fresh;
        for _ in 0..5 {
            stepped.train_step(&xs, &eps)?;
        }
        let loss_after_5 = stepped.train_step(&xs, &eps)?;
        let tensors: HashMap<String, Tensor> = [
            ("strip_latents", strip.clone()),
            ("strip_images", decoder.decode(&strip)?),
            ("train_x", xs.clone()),
            ("train_eps", eps.clone()),
            ("train_loss", Tensor::new(&[first_loss as f32], &Device::Cpu)?),
            ("loss_after_5_steps", Tensor::new(&[loss_after_5 as f32], &Device::Cpu)?),
            ("encoder_mean", mean),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        candle_core::safetensors::save(&tensors, path).with_context(|| format!("cannot write {}", path.display()))?;
    }

    let threads = candle_core::utils::get_num_threads();
    if json {
        let row = |(p50, p95): (f64, f64)| serde_json::json!({ "p50_ms": p50, "p95_ms": p95 });
        let out = serde_json::json!({
            "model": id, "threads": threads, "runs": runs,
            "decode_1": row(decode_1), "decode_1_rgb": row(decode_1_rgb), "decode_16": row(decode_16),
            "decode_64": row(decode_64), "train_step_64": row(train_64),
        });
        println!("{out}");
        return Ok(());
    }
    println!("bench latent --model {id} ({runs} runs, {threads} threads)\n");
    println!("| work | p50 ms | p95 ms | target |");
    println!("|---|---|---|---|");
    println!("| decode 1 image (tensor) | {:.3} | {:.3} | |", decode_1.0, decode_1.1);
    println!(
        "| decode 1 image to RGB (what the UI gets) | {:.3} | {:.3} | p95 < 8 ms |",
        decode_1_rgb.0, decode_1_rgb.1
    );
    println!("| decode 16-frame strip | {:.3} | {:.3} | < 16 ms |", decode_16.0, decode_16.1);
    println!("| decode batch of 64 | {:.3} | {:.3} | |", decode_64.0, decode_64.1);
    println!("| training step, batch 64 (fwd + bwd + AdamW) | {:.3} | {:.3} | |", train_64.0, train_64.1);
    Ok(())
}

/// Forces the computation and copies the result out, as a user of the output would.
trait Flat {
    fn to_vec1_flat(&self) -> candle_core::Result<Vec<f32>>;
}

impl Flat for Tensor {
    fn to_vec1_flat(&self) -> candle_core::Result<Vec<f32>> {
        self.flatten_all()?.to_vec1()
    }
}
