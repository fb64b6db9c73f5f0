//! `train vae …`: trains a VAE with a progress bar, checkpoints every epoch and
//! exports a model folder at the end.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::io::datasets::{DatasetName, load};
use crate::io::manifest::MANIFEST_FILE;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::export::ExportInfo;
use crate::vae::export::export_vae;
use crate::vae::network::VaeConfig;
use crate::vae::train::{TrainEvent, TrainVaeSpec, VaeTrainer};

/// What to train.
#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// A convolutional VAE on 28×28 grey images.
    Vae {
        /// Training data (fetch it with scripts/fetch-data.sh).
        #[arg(long, value_enum)]
        dataset: DatasetName,
        /// Latent dimensions.
        #[arg(long)]
        latent_dim: usize,
        /// Total epochs (with --resume: train on up to this many).
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Model folder to write (weights, manifest, card); checkpoints go to OUT/checkpoint.
        #[arg(long)]
        out: PathBuf,
        /// Model id (default: the folder name).
        #[arg(long)]
        id: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Images per optimiser step.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// AdamW learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Weight of the KL term (1 = plain VAE).
        #[arg(long, default_value_t = 1.0)]
        beta: f64,
        /// Seed of the latent (the same seed always gives the same latent).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Width of the fully connected layer.
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        /// Channels of the first convolution.
        #[arg(long, default_value_t = 32)]
        base_channels: usize,
        /// Use only the first N training images (quick runs).
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from OUT/checkpoint.
        #[arg(long)]
        resume: bool,
        /// Where scripts/fetch-data.sh put the data.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// A character-level GPT on a text corpus.
    Text(super::train_text::TrainTextArgs),
    /// A DCGAN on images (emoji: 32×32 RGB).
    Gan(super::train_gan::TrainGanArgs),
    /// The KL autoencoder of our emoji latent diffusion model.
    Autoencoder(super::train_autoencoder::TrainAutoencoderArgs),
    /// The denoiser and text encoder of our emoji latent diffusion model (after `train autoencoder`).
    Diffusion(super::train_diffusion::TrainDiffusionArgs),
}

/// Trains a model as the command asks.
pub fn run(cmd: TrainCommand) -> anyhow::Result<()> {
    // The command line as the user typed it, for the model card.
    let command = std::env::args().map(shell_word).collect::<Vec<_>>().join(" ");
    let command = command.replacen(&std::env::args().next().unwrap_or_default(), "latent-studio", 1);
    match cmd {
        TrainCommand::Text(args) => super::train_text::run(args, command),
        TrainCommand::Gan(args) => super::train_gan::run(args, command),
        TrainCommand::Autoencoder(args) => super::train_autoencoder::run(args, command),
        TrainCommand::Diffusion(args) => super::train_diffusion::run(args, command),
        vae => train_vae(vae, command),
    }
}

fn train_vae(cmd: TrainCommand, command: String) -> anyhow::Result<()> {
    let TrainCommand::Vae {
        dataset,
        latent_dim,
        epochs,
        out,
        id,
        name,
        batch_size,
        lr,
        beta,
        seed,
        hidden,
        base_channels,
        limit,
        resume,
        data_dir,
    } = cmd
    else {
        bail!("not a VAE training command");
    };
    if !resume && out.join(MANIFEST_FILE).exists() {
        bail!(
            "{} already holds a model; choose another --out (models are never overwritten) or add --resume",
            out.display()
        );
    }
    let device = default_device();
    let checkpoint = out.join("checkpoint");
    let mut trainer = if resume {
        VaeTrainer::resume(&checkpoint, epochs, &device).context("cannot resume")?
    } else {
        let config = VaeConfig { latent_dim, hidden, base_channels, ..VaeConfig::mnist(latent_dim) };
        VaeTrainer::new(TrainVaeSpec { dataset, config, epochs, batch_size, lr, beta, seed }, &device)?
    };
    let spec = trainer.spec().clone();
    if resume && (spec.dataset != dataset || spec.config.latent_dim != latent_dim) {
        eprintln!(
            "resuming with the checkpoint's settings: --dataset {} --latent-dim {}",
            spec.dataset.name(),
            spec.config.latent_dim
        );
    }
    let split = load(spec.dataset, &data_dir)?;
    let train = split.train.limited(limit);
    eprintln!(
        "training {} on {} images ({} held out), epochs {}..={}",
        out.display(),
        train.len(),
        split.test.len(),
        trainer.history().len() + 1,
        trainer.spec().epochs
    );
    let cancel = CancelToken::new();
    while !trainer.finished() {
        let bar = ProgressBar::new(train.len().div_ceil(spec.batch_size.max(1)) as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches, loss {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix((trainer.history().len() + 1).to_string());
        let mut on_event = |e: TrainEvent| {
            if let TrainEvent::Batch { batch, loss, .. } = e {
                bar.set_position(batch as u64);
                bar.set_message(format!("{loss:.2}"));
            }
        };
        let report = trainer.train_epoch(&train, &split.test, &mut on_event, &cancel)?;
        bar.finish_and_clear();
        if let Some(r) = report {
            eprintln!(
                "epoch {}: train {:.2}, held-out {:.2} (recon {:.2}, KL {:.2}) nats/image, {:.1} s",
                r.epoch, r.train_loss, r.val_loss, r.val_recon, r.val_kl, r.seconds
            );
        }
        trainer.save_checkpoint(&checkpoint)?;
    }
    let folder = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "vae".into());
    let id = id.unwrap_or(folder);
    let name = name.unwrap_or_else(|| format!("{} VAE, {}-D latent", spec.dataset.name(), spec.config.latent_dim));
    export_vae(&trainer, &split.test, &out, &ExportInfo { id: &id, name: &name, command: &command })?;
    eprintln!("wrote model {id} to {}", out.display());
    Ok(())
}

fn shell_word(s: String) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,".contains(c)) { s } else { format!("'{s}'") }
}
