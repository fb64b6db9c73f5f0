//! `train diffusion …`: trains the denoiser and text encoder of our emoji
//! latent diffusion model through the epoch driver (after `train
//! autoencoder`): BPE tokenizer from the captions, latents encoded once,
//! a checkpoint every epoch, sample grids and a loss log in OUT/progress,
//! then the diffusers folders and the model card.

use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::train_args::{LimitArgs, ProgressLines, RunArgs};
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::export::log_command;
use crate::diffusion::nets::load_autoencoder;
use crate::diffusion::runs::{DiffusionLog, DiffusionRun};
use crate::diffusion::train::{DiffusionEpoch, DiffusionTrainer, LatentCaptions, TrainDiffusionSpec};
use crate::diffusion::train_autoencoder::encode_means;
use crate::diffusion::train_bpe::train_clip_bpe;
use crate::io::emoji::load_emoji_with_captions;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;

/// Flags of `train diffusion`. OUT holds vae/ from `train autoencoder` and
/// gets tokenizer/, unet/, text_encoder/, scheduler/, the card and samples;
/// the checkpoint goes to OUT/checkpoint-diffusion.
#[derive(Args, Debug)]
pub struct TrainDiffusionArgs {
    #[command(flatten)]
    run: RunArgs,
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
    #[command(flatten)]
    limit: LimitArgs,
}

/// Runs `train diffusion`; `command` is the command line for the model card.
pub fn run(args: TrainDiffusionArgs, command: String) -> anyhow::Result<()> {
    args.run.refuse_existing("unet")?;
    let out = &args.run.out;
    log_command(out, &command)?;
    let device = default_device();
    let vae = load_autoencoder(&out.join("vae"), &device)
        .context("train the autoencoder first (latent-studio train autoencoder --out …)")?;
    let (split, captions) = load_emoji_with_captions(&args.run.data_dir.join("emoji"), 32)?;
    let train = split.train.limited(args.limit.limit);
    let train_captions = &captions.train[..train.len()];
    let tok_dir = out.join("tokenizer");
    if !args.run.resume || !tok_dir.join("vocab.json").exists() {
        train_clip_bpe(train_captions, args.merges)
            .save(&tok_dir, args.max_len)
            .with_context(|| format!("cannot write {}", tok_dir.display()))?;
    }
    let tokenizer = ClipTokenizer::from_dir(&tok_dir)?;
    // The diffusers export takes its names from the folder; the card records the command.
    let plan = RunPlan::new(out, ExportInfo { id: "emoji-ldm", name: "emoji latent diffusion", command: &command })
        .with_checkpoint(out.join("checkpoint-diffusion"));
    let trainer = if args.run.resume {
        DiffusionTrainer::resume(&plan.checkpoint, args.epochs, args.ema, &device).context("cannot resume")?
    } else {
        let defaults =
            TrainDiffusionSpec::emoji(tokenizer.vocab_size(), tokenizer.max_len(), args.epochs, args.run.seed);
        let spec = TrainDiffusionSpec {
            batch_size: args.batch_size,
            lr: args.lr,
            ema_decay: args.ema.or(defaults.ema_decay),
            ..defaults
        };
        DiffusionTrainer::new(spec, &device)?
    };
    eprintln!("encoding {} images with {}", train.len(), out.join("vae").display());
    let latents = vae.to_diffusion(&encode_means(&vae, &train, &device)?)?;
    let data = LatentCaptions::new(latents, train_captions, &tokenizer)?;
    let log = DiffusionLog::create(out)?;
    eprintln!(
        "training the denoiser in {}, epochs {}..={}",
        out.display(),
        trainer.history().len() + 1,
        trainer.spec().epochs
    );
    let mut run =
        DiffusionRun { trainer, data, vae, tokenizer, sample_every: args.sample_every, started: Instant::now() };
    let progress = ProgressLines::new(
        |loss: &f64| format!("loss {loss:.4}"),
        |r: &DiffusionEpoch| format!("epoch {}: loss {:.4}, {:.1} s", r.epoch, r.loss, r.seconds),
    );
    drive(&mut run, &plan, &CancelToken::new(), &mut (log, progress))?;
    eprintln!("wrote the model folder {}", out.display());
    Ok(())
}
