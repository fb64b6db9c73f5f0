//! `train diffusion …`: trains the denoiser and text encoder of our emoji
//! latent diffusion model through the epoch driver (after `train
//! autoencoder`): BPE tokenizer from the captions, latents encoded once,
//! a checkpoint every epoch, sample grids and a loss log in OUT/progress,
//! then the diffusers folders and the model card.

use clap::Args;

use super::train_args::{DataArgs, LimitArgs, ProgressLines, RunArgs, model_folder, report_skipped};
use crate::diffusion::export::log_command;
use crate::diffusion::runs::DiffusionLog;
use crate::diffusion::stages::{DiffusionSettings, DiffusionStart, check_diffusion_data, open_diffusion_run};
use crate::io::datasets::{DataSource, DatasetName};
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
    /// Width of the networks: U-Net levels of WIDTH and 2·WIDTH channels,
    /// a text encoder WIDTH wide (a multiple of 32).
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Tokens per prompt (start and end included).
    #[arg(long, default_value_t = 24)]
    max_len: usize,
    /// Write a sample grid every K epochs (0: only at the end).
    #[arg(long, default_value_t = 5)]
    sample_every: usize,
    #[command(flatten)]
    data: DataArgs,
    /// Start from a finished latent diffusion model (a model id or folder):
    /// its autoencoder, tokenizer, U-Net and text encoder, fine-tuned on your images.
    #[arg(long, conflicts_with_all = ["merges", "max_len", "width"])]
    from: Option<String>,
    #[command(flatten)]
    limit: LimitArgs,
}

/// Runs `train diffusion`; `command` is the command line for the model card.
pub fn run(args: TrainDiffusionArgs, command: String, models_dir: &std::path::Path) -> anyhow::Result<()> {
    args.run.refuse_existing("unet")?;
    let out = &args.run.out;
    let source = args.data.source_or(DatasetName::Emoji)?;
    check_diffusion_data(&source)?;
    log_command(out, &command)?;
    let device = default_device();
    let (loaded, captions) = source.load_captioned(&args.run.data_dir)?;
    report_skipped(&loaded.skipped);
    let train = loaded.split.train.limited(args.limit.limit);
    let train_captions = &captions.train[..train.len()];
    let start = match (&args.from, args.run.resume) {
        (_, true) => DiffusionStart::Resume,
        (Some(base), false) => DiffusionStart::FineTune { base: model_folder(models_dir, base) },
        (None, false) => DiffusionStart::New { merges: args.merges, max_len: args.max_len, width: args.width },
    };
    let settings = DiffusionSettings {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        ema: args.ema,
        seed: args.run.seed,
        sample_every: args.sample_every,
    };
    eprintln!("encoding {} images with {}", train.len(), out.join("vae").display());
    let mut run = open_diffusion_run(out, &start, &settings, (&train, train_captions), &source, &device)?;
    let name = match &source {
        DataSource::Named(_) => "Emoji latent diffusion".to_owned(),
        other => format!("{} latent diffusion", other.name()),
    };
    // The diffusers export takes its id from the folder; the card records the command.
    let plan = RunPlan::new(out, ExportInfo { id: "emoji-ldm", name: &name, command: &command })
        .with_checkpoint(out.join("checkpoint-diffusion"));
    let log = DiffusionLog::create(out)?;
    eprintln!(
        "training the denoiser in {}, epochs {}..={}",
        out.display(),
        run.trainer.history().len() + 1,
        run.trainer.spec().epochs
    );
    drive(&mut run, &plan, &CancelToken::new(), &mut (log, ProgressLines::new()))?;
    eprintln!("wrote the model folder {}", out.display());
    Ok(())
}
