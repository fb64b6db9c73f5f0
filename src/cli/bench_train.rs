//! `bench train`: how fast each family trains in the studio, through the
//! same runs the Train view and `latent-studio train …` drive: the VAE, the
//! DCGAN, the latent diffusion model's autoencoder and U-Net (fine-tuning
//! emoji-ldm, as a user would on their own folder) on emoji images, and the
//! character GPT on Shakespeare. Each row times one epoch after a warm-up
//! epoch, per-epoch work (evaluation, samples) included.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use crate::diffusion::stages::{
    AUTOENCODER_CHANNELS, DiffusionSettings, DiffusionStart, autoencoder_spec, open_autoencoder_run, open_diffusion_run,
};
use crate::gan::network::GanConfig;
use crate::gan::run::GanRun;
use crate::gan::train::{GanTrainer, TrainGanSpec};
use crate::io::datasets::{DataSource, DatasetName, Split};
use crate::io::text_corpus::{CharCorpus, CorpusName, TextSource};
use crate::nn::default_device;
use crate::text::gpt::GptConfig;
use crate::text::run::CharGptRun;
use crate::text::train::{TextTrainer, TrainTextSpec};
use crate::train::cancel::CancelToken;
use crate::train::driver::EpochTrainer;
use crate::vae::network::VaeConfig;
use crate::vae::run::VaeRun;
use crate::vae::train::{TrainVaeSpec, VaeTrainer};

/// One family's training speed.
#[derive(serde::Serialize)]
struct Row {
    family: &'static str,
    what: String,
    /// Items per timed epoch (images, or characters for the GPT).
    items: usize,
    seconds: f64,
    per_second: f64,
    unit: &'static str,
}

/// Times one epoch (after a warm-up epoch) of `run`, which trains on `items` items.
fn time_epoch<T: EpochTrainer>(run: &mut T, items: usize) -> anyhow::Result<(f64, f64)> {
    let cancel = CancelToken::new();
    run.train_one_epoch(&cancel, &mut |_| {})?;
    let start = Instant::now();
    run.train_one_epoch(&cancel, &mut |_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((seconds, items as f64 / seconds))
}

/// Runs the benchmark on `images` emoji images and prints a table (or JSON),
/// then times `frames` UI frames of the Train view during a GAN run.
pub fn bench_train(models_dir: &Path, data_dir: &Path, images: usize, frames: usize, json: bool) -> anyhow::Result<()> {
    let device = default_device();
    let emoji = DataSource::Named(DatasetName::Emoji);
    let (loaded, captions) = emoji.load_captioned(data_dir).context("the emoji images (scripts/fetch-data.sh)")?;
    let train = loaded.split.train.limited(Some(images));
    let n = train.len();
    let split = || Split { train: train.clone(), test: loaded.split.test.clone().limited(Some(256)) };
    let mut rows = Vec::new();
    let mut row = |family, what: String, (seconds, per_second): (f64, f64), items, unit| {
        eprintln!("{family}: {per_second:.0} {unit}");
        rows.push(Row { family, what, items, seconds, per_second, unit });
    };

    let config = VaeConfig { image_size: 32, channels: 3, latent_dim: 16, hidden: 128, base_channels: 32 };
    let spec = TrainVaeSpec { dataset: emoji.clone(), config, epochs: 2, batch_size: 64, lr: 1e-3, beta: 1.0, seed: 0 };
    let s = split();
    let mut vae = VaeRun { trainer: VaeTrainer::new(spec, &device)?, train: s.train, test: s.test };
    row("VAE", "32×32 RGB, latent 16, batch 64".into(), time_epoch(&mut vae, n)?, n, "images/s");

    let spec = TrainGanSpec::dcgan(emoji.clone(), GanConfig::emoji(), 2, 0);
    let s = split();
    let mut gan = GanRun { trainer: GanTrainer::new(spec, &device)?, train: s.train, test: s.test };
    row("DCGAN", "emoji network, batch 64 (D + G step)".into(), time_epoch(&mut gan, n)?, n, "images/s");

    let spec = autoencoder_spec(32, AUTOENCODER_CHANNELS, 2, 0);
    let mut ae = open_autoencoder_run(spec, None, split(), &device)?;
    row("LDM autoencoder", "32×32 ↔ 4×8×8, batch 32".into(), time_epoch(&mut ae, n)?, n, "images/s");

    let base = models_dir.join("emoji-ldm");
    if base.join("unet").is_dir() {
        // The run folder gets copies of the base's autoencoder and tokenizer.
        let out = std::env::temp_dir().join(format!("latent-studio-bench-train-{}", std::process::id()));
        let start = DiffusionStart::FineTune { base };
        let settings = DiffusionSettings { epochs: 2, batch_size: 64, lr: 3e-4, ema: None, seed: 0, sample_every: 0 };
        let data = (&train, &captions.train[..n]);
        let timed = open_diffusion_run(&out, &start, &settings, data, &emoji, &device)
            .map_err(anyhow::Error::from)
            .and_then(|mut unet| time_epoch(&mut unet, n));
        let _ = std::fs::remove_dir_all(&out);
        row("LDM U-Net", "emoji-ldm U-Net + text encoder, batch 64".into(), timed?, n, "images/s");
    } else {
        eprintln!("LDM U-Net: skipped, no emoji-ldm in {}", models_dir.display());
    }

    let source = TextSource::Named(CorpusName::Shakespeare);
    match source.read(data_dir) {
        Ok(text) => {
            let corpus = CharCorpus::from_text(&text);
            let config = GptConfig { vocab: corpus.vocab.len(), context: 128, layers: 4, heads: 4, width: 192 };
            let spec = TrainTextSpec {
                corpus: source,
                config,
                steps: 40,
                batch_size: 32,
                lr: 2e-3,
                eval_every: 20,
                eval_windows: 128,
                seed: 0,
            };
            let trainer = TextTrainer::new(spec, corpus.vocab.clone(), &device)?;
            let chars = 20 * 32 * 128;
            let what = "4 layers × 192, context 128, batch 32; 20 steps + evaluation".into();
            row("Character GPT", what, time_epoch(&mut CharGptRun { trainer, corpus }, chars)?, chars, "chars/s");
        }
        Err(e) => eprintln!("Character GPT: skipped ({e})"),
    }

    let ui =
        if frames > 0 { Some(crate::app::frame_bench::frame_times_in_train_view(data_dir, frames)?) } else { None };
    if json {
        let ui =
            ui.map(|t| serde_json::json!({ "frames": t.frames, "cpu_ms_p50_p99": t.cpu, "wall_ms_p50_p99": t.wall }));
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "families": rows, "ui_frames": ui }))?);
        return Ok(());
    }
    let threads = candle_core::utils::get_num_threads();
    println!("bench train ({n} emoji images per epoch, {threads} threads; one epoch after a warm-up epoch)\n");
    println!("| family | network | per epoch | throughput |\n|---|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {:.2} s | {:.0} {} |", r.family, r.what, r.seconds, r.per_second, r.unit);
    }
    if let Some(t) = ui {
        println!("\nThe Train view while it trains the emoji DCGAN ({} frames at 60 Hz):\n", t.frames);
        println!("| UI frame | p50 ms | p99 ms |\n|---|---|---|");
        if let Some((p50, p99)) = t.cpu {
            println!("| CPU time of the UI thread | {p50:.3} | {p99:.3} |");
        }
        println!("| wall time | {:.3} | {:.3} |", t.wall.0, t.wall.1);
        println!("\n{}", t.training);
    }
    Ok(())
}
