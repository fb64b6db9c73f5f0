//! `train …`: the command group; `train vae` trains a VAE through the epoch
//! driver (progress bar, a checkpoint every epoch, the model folder at the end).

use anyhow::Context;
use clap::{Args, Subcommand};

use super::train_args::{DataArgs, LimitArgs, ModelNameArgs, ProgressLines, RunArgs, load_data};
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;
use crate::vae::network::VaeConfig;
use crate::vae::run::{VaeRun, default_vae_name};
use crate::vae::train::{TrainVaeSpec, VaeTrainer};

/// What to train.
#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// A convolutional VAE on a data set or your folder of images.
    Vae(TrainVaeArgs),
    /// A character-level GPT on a text corpus.
    Text(super::train_text::TrainTextArgs),
    /// A DCGAN on a data set (emoji: 32×32 RGB) or your folder of images.
    Gan(super::train_gan::TrainGanArgs),
    /// The KL autoencoder of our emoji latent diffusion model.
    Autoencoder(super::train_autoencoder::TrainAutoencoderArgs),
    /// The denoiser and text encoder of our emoji latent diffusion model (after `train autoencoder`).
    Diffusion(super::train_diffusion::TrainDiffusionArgs),
}

/// Trains a model as the command asks.
pub fn run(cmd: TrainCommand, models_dir: &std::path::Path) -> anyhow::Result<()> {
    // The command line as the user typed it, for the model card.
    let command = std::env::args().map(shell_word).collect::<Vec<_>>().join(" ");
    let command = command.replacen(&std::env::args().next().unwrap_or_default(), "latent-studio", 1);
    match cmd {
        TrainCommand::Text(args) => super::train_text::run(args, command),
        TrainCommand::Gan(args) => super::train_gan::run(args, command, models_dir),
        TrainCommand::Autoencoder(args) => super::train_autoencoder::run(args, command),
        TrainCommand::Diffusion(args) => super::train_diffusion::run(args, command, models_dir),
        TrainCommand::Vae(args) => train_vae(args, command),
    }
}

/// Flags of `train vae`.
#[derive(Args, Debug)]
pub struct TrainVaeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Latent dimensions.
    #[arg(long)]
    latent_dim: usize,
    /// Total epochs (with --resume: train on up to this many).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    names: ModelNameArgs,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Weight of the KL term (1 = plain VAE).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Width of the fully connected layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Channels of the first convolution.
    #[arg(long, default_value_t = 32)]
    base_channels: usize,
    #[command(flatten)]
    limit: LimitArgs,
}

fn train_vae(args: TrainVaeArgs, command: String) -> anyhow::Result<()> {
    let TrainVaeArgs { data, latent_dim, epochs, run, names, batch_size, lr, beta, hidden, base_channels, limit } =
        args;
    let dataset = data.source()?;
    run.refuse_existing_model()?;
    let out = &run.out;
    let device = default_device();
    let checkpoint = out.join("checkpoint");
    let trainer = if run.resume {
        VaeTrainer::resume(&checkpoint, epochs, &device).context("cannot resume")?
    } else {
        let (image_size, channels) = dataset.image_shape();
        let config = VaeConfig { image_size, channels, latent_dim, hidden, base_channels };
        let spec = TrainVaeSpec { dataset: dataset.clone(), config, epochs, batch_size, lr, beta, seed: run.seed };
        VaeTrainer::new(spec, &device)?
    };
    let spec = trainer.spec().clone();
    if run.resume && (spec.dataset != dataset || spec.config.latent_dim != latent_dim) {
        eprintln!(
            "resuming with the checkpoint's settings: {} --latent-dim {}",
            spec.dataset.cli_flags(),
            spec.config.latent_dim
        );
    }
    let split = load_data(&spec.dataset, &run.data_dir)?;
    let mut vae = VaeRun { trainer, train: split.train.limited(limit.limit), test: split.test };
    eprintln!(
        "training {} on {} images ({} held out), epochs {}..={}",
        out.display(),
        vae.train.len(),
        vae.test.len(),
        vae.trainer.history().len() + 1,
        spec.epochs
    );
    let (id, name) = names.resolve(out, "vae", || default_vae_name(&spec));
    let plan = RunPlan::new(out, ExportInfo { id: &id, name: &name, command: &command });
    let mut progress = ProgressLines::new();
    drive(&mut vae, &plan, &CancelToken::new(), &mut progress)?;
    eprintln!("wrote model {id} to {}", out.display());
    Ok(())
}

fn shell_word(s: String) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,".contains(c)) { s } else { format!("'{s}'") }
}
