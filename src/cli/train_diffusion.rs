//! `train diffusion …`: trains the denoiser and text encoder of our emoji
//! latent diffusion model on latents from OUT/vae (`train autoencoder`),
//! with a progress bar, a checkpoint every epoch, resume, sample grids for
//! fixed prompts, and exports the model folder (diffusers layout + card).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::train_gan::batch_bar;
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::export::{CARD_PROMPTS, CARD_SEEDS, log_command, write_model_files};
use crate::diffusion::nets::load_autoencoder;
use crate::diffusion::train::{DiffusionTrainer, LatentCaptions, TrainDiffusionSpec};
use crate::diffusion::train_autoencoder::encode_means;
use crate::diffusion::train_bpe::train_clip_bpe;
use crate::io::emoji::load_emoji_with_captions;
use crate::io::png_meta::encode_png;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::log as train_log;

/// Flags of `train diffusion`.
#[derive(Args, Debug)]
pub struct TrainDiffusionArgs {
    /// Model folder holding vae/ from `train autoencoder`; gets tokenizer/, unet/,
    /// text_encoder/, scheduler/, the card and samples. Checkpoint: OUT/checkpoint-diffusion.
    #[arg(long)]
    out: PathBuf,
    /// Total epochs (with --resume: train on up to this many).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Latents per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    /// Decay of the weight average the samples and the exported model use
    /// (new runs: 0.999; with --resume: switches it on for a run without one).
    #[arg(long)]
    ema: Option<f64>,
    /// BPE merges learned from the captions.
    #[arg(long, default_value_t = 1500)]
    merges: usize,
    /// Tokens per prompt (start and end included).
    #[arg(long, default_value_t = 24)]
    max_len: usize,
    /// Write a sample grid every K epochs (0: only at the end).
    #[arg(long, default_value_t = 5)]
    sample_every: usize,
    /// Seed of initialisation, batches, timesteps and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue from OUT/checkpoint-diffusion.
    #[arg(long)]
    resume: bool,
    /// Where scripts/fetch-data.sh put the data (emoji).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

/// Runs `train diffusion`; `command` is the command line for the model card.
pub fn run(args: TrainDiffusionArgs, command: String) -> anyhow::Result<()> {
    let out = &args.out;
    if !args.resume && out.join("unet").exists() {
        bail!(
            "{} already holds a U-Net; choose another --out (models are never overwritten) or add --resume",
            out.display()
        );
    }
    log_command(out, &command)?;
    let device = default_device();
    let vae = load_autoencoder(&out.join("vae"), &device)
        .context("train the autoencoder first (latent-studio train autoencoder --out …)")?;
    let (split, captions) = load_emoji_with_captions(&args.data_dir.join("emoji"), 32)?;
    let train = split.train.limited(args.limit);
    let train_captions = &captions.train[..train.len()];
    let tok_dir = out.join("tokenizer");
    if !args.resume || !tok_dir.join("vocab.json").exists() {
        train_clip_bpe(train_captions, args.merges)
            .save(&tok_dir, args.max_len)
            .with_context(|| format!("cannot write {}", tok_dir.display()))?;
    }
    let tokenizer = ClipTokenizer::from_dir(&tok_dir)?;
    let checkpoint = out.join("checkpoint-diffusion");
    let mut trainer = if args.resume {
        DiffusionTrainer::resume(&checkpoint, args.epochs, args.ema, &device).context("cannot resume")?
    } else {
        let defaults = TrainDiffusionSpec::emoji(tokenizer.vocab_size(), tokenizer.max_len(), args.epochs, args.seed);
        let spec = TrainDiffusionSpec {
            batch_size: args.batch_size,
            lr: args.lr,
            ema_decay: args.ema.or(defaults.ema_decay),
            ..defaults
        };
        DiffusionTrainer::new(spec, &device)?
    };
    let spec = trainer.spec().clone();
    eprintln!("encoding {} images with {}", train.len(), out.join("vae").display());
    let latents = vae.to_diffusion(&encode_means(&vae, &train, &device)?)?;
    let data = LatentCaptions::new(latents, train_captions, &tokenizer)?;
    let progress = out.join("progress");
    std::fs::create_dir_all(&progress).with_context(|| format!("cannot create {}", progress.display()))?;
    eprintln!("training the denoiser in {}, epochs {}..={}", out.display(), trainer.history().len() + 1, spec.epochs);
    let cancel = CancelToken::new();
    let started = Instant::now();
    while !trainer.finished() {
        let bar = batch_bar(train.len() / spec.batch_size, trainer.history().len() + 1);
        let report = trainer.train_epoch(
            &data,
            &mut |b, _, loss| {
                bar.set_position(b as u64);
                bar.set_message(format!("loss {loss:.4}"));
            },
            &cancel,
        )?;
        bar.finish_and_clear();
        if let Some(r) = &report {
            eprintln!("epoch {}: loss {:.4}, {:.1} s", r.epoch, r.loss, r.seconds);
            let log = progress.join("diffusion.jsonl");
            let line = serde_json::to_string(r)? + "\n";
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
                .with_context(|| format!("cannot write {}", log.display()))?;
        }
        trainer.save_checkpoint(&checkpoint)?;
        let epoch = trainer.history().len();
        if args.sample_every > 0 && epoch % args.sample_every == 0 && !trainer.finished() {
            let grid = trainer.sample_grid(&vae, &tokenizer, &CARD_PROMPTS, &CARD_SEEDS, 25, 4.0)?;
            let path = train_log::grid_path(&progress, epoch);
            std::fs::write(&path, encode_png(&grid, &[]).map_err(anyhow::Error::msg)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    trainer.export(out)?;
    let grid = trainer.sample_grid(&vae, &tokenizer, &CARD_PROMPTS, &CARD_SEEDS, 25, 4.0)?;
    write_model_files(out, &trainer, &grid, &command, started.elapsed().as_secs_f64())?;
    eprintln!("wrote the model folder {}", out.display());
    Ok(())
}
