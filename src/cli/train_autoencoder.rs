//! `train autoencoder …`: trains the emoji KL autoencoder of our latent
//! diffusion model through the epoch driver, with a progress bar, a
//! checkpoint every epoch and resume, then writes OUT/vae (diffusers layout)
//! and a reconstruction grid.

use anyhow::Context;
use clap::Args;

use super::train_args::{DataArgs, LimitArgs, ProgressLines, RunArgs, report_skipped};
use crate::diffusion::export::log_command;
use crate::diffusion::stages::{AUTOENCODER_CHANNELS, autoencoder_spec, check_diffusion_data, open_autoencoder_run};
use crate::diffusion::train_autoencoder::TrainAutoencoderSpec;
use crate::io::datasets::DatasetName;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;

/// Flags of `train autoencoder` (OUT/vae is written; the checkpoint goes to OUT/checkpoint-autoencoder).
#[derive(Args, Debug)]
pub struct TrainAutoencoderArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    data: DataArgs,
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
    /// Widths of the three levels (multiples of 8).
    #[arg(long, value_delimiter = ',', default_values_t = AUTOENCODER_CHANNELS)]
    channels: Vec<usize>,
    #[command(flatten)]
    limit: LimitArgs,
}

/// Runs `train autoencoder`.
pub fn run(args: TrainAutoencoderArgs, command: String) -> anyhow::Result<()> {
    args.run.refuse_existing("vae")?;
    let out = &args.run.out;
    let source = args.data.source_or(DatasetName::Emoji)?;
    check_diffusion_data(&source)?;
    log_command(out, &command)?;
    let device = default_device();
    let name = format!("{} autoencoder", source.name());
    // The diffusers export takes its names from the folder; the card records the command.
    let plan = RunPlan::new(out, ExportInfo { id: "vae", name: &name, command: &command })
        .with_checkpoint(out.join("checkpoint-autoencoder"));
    let (loaded, _) = source.load_captioned(&args.run.data_dir)?;
    report_skipped(&loaded.skipped);
    let mut split = loaded.split;
    split.train = split.train.limited(args.limit.limit);
    let (side, _) = source.image_shape();
    let channels: [usize; 3] = args.channels.as_slice().try_into().context("--channels takes three widths")?;
    let spec = TrainAutoencoderSpec {
        batch_size: args.batch_size,
        lr: args.lr,
        kl_weight: args.kl_weight,
        ..autoencoder_spec(side, channels, args.epochs, args.run.seed)
    };
    let resume = args.run.resume.then_some(plan.checkpoint.as_path());
    let mut ae = open_autoencoder_run(spec, resume, split, &device).context("cannot start")?;
    eprintln!(
        "training the autoencoder in {} on {} images, epochs {}..={}",
        out.display(),
        ae.train.len(),
        ae.trainer.history().len() + 1,
        ae.trainer.spec().epochs
    );
    drive(&mut ae, &plan, &CancelToken::new(), &mut ProgressLines::new())?;
    let l1 = ae.trainer.history().last().map_or(f64::NAN, |r| r.l1);
    eprintln!(
        "wrote {} and {} (last epoch's L1 {l1:.4})",
        out.join("vae").display(),
        out.join("reconstructions.png").display()
    );
    Ok(())
}
