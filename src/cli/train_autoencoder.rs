//! `train autoencoder …`: trains the emoji KL autoencoder of our latent
//! diffusion model through the epoch driver, with a progress bar, a
//! checkpoint every epoch and resume, then writes OUT/vae (diffusers layout)
//! and a reconstruction grid.

use anyhow::Context;
use clap::Args;

use super::train_args::{LimitArgs, ProgressLines, RunArgs};
use crate::diffusion::export::log_command;
use crate::diffusion::runs::AutoencoderRun;
use crate::diffusion::train_autoencoder::{AutoencoderEpoch, AutoencoderTrainer, TrainAutoencoderSpec};
use crate::io::emoji::load_emoji_with_captions;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;

/// Flags of `train autoencoder` (OUT/vae is written; the checkpoint goes to OUT/checkpoint-autoencoder).
#[derive(Args, Debug)]
pub struct TrainAutoencoderArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Total epochs (with --resume: train on up to this many).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Weight of the KL term per latent element.
    #[arg(long, default_value_t = 1e-5)]
    kl_weight: f64,
    #[command(flatten)]
    limit: LimitArgs,
}

/// Runs `train autoencoder`.
pub fn run(args: TrainAutoencoderArgs, command: String) -> anyhow::Result<()> {
    args.run.refuse_existing("vae")?;
    let out = &args.run.out;
    log_command(out, &command)?;
    let device = default_device();
    // The diffusers export takes its names from the folder; the card records the command.
    let plan = RunPlan::new(out, ExportInfo { id: "vae", name: "emoji autoencoder", command: &command })
        .with_checkpoint(out.join("checkpoint-autoencoder"));
    let (split, _) = load_emoji_with_captions(&args.run.data_dir.join("emoji"), 32)?;
    let trainer = if args.run.resume {
        AutoencoderTrainer::resume(&plan.checkpoint, args.epochs, &device).context("cannot resume")?
    } else {
        let spec = TrainAutoencoderSpec {
            batch_size: args.batch_size,
            lr: args.lr,
            kl_weight: args.kl_weight,
            ..TrainAutoencoderSpec::emoji(args.epochs, args.run.seed)
        };
        AutoencoderTrainer::new(spec, &device)?
    };
    let mut ae = AutoencoderRun { trainer, train: split.train.limited(args.limit.limit), test: split.test };
    eprintln!(
        "training the autoencoder in {} on {} images, epochs {}..={}",
        out.display(),
        ae.train.len(),
        ae.trainer.history().len() + 1,
        ae.trainer.spec().epochs
    );
    let mut progress = ProgressLines::new(
        |l1: &f64| format!("L1 {l1:.4}"),
        |r: &AutoencoderEpoch| {
            format!("epoch {}: L1 {:.4}, KL {:.3} per latent value, {:.1} s", r.epoch, r.l1, r.kl, r.seconds)
        },
    );
    drive(&mut ae, &plan, &CancelToken::new(), &mut progress)?;
    let l1 = ae.trainer.history().last().map_or(f64::NAN, |r| r.l1);
    eprintln!(
        "wrote {} and {} (last epoch's L1 {l1:.4})",
        out.join("vae").display(),
        out.join("reconstructions.png").display()
    );
    Ok(())
}
