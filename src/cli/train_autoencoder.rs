//! `train autoencoder …`: trains the emoji KL autoencoder of our latent
//! diffusion model, with a progress bar, a checkpoint every epoch and resume,
//! then writes OUT/vae (diffusers layout) and a reconstruction grid.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::train_gan::batch_bar;
use crate::diffusion::export::AutoencoderRecord;
use crate::diffusion::train_autoencoder::{AutoencoderTrainer, TrainAutoencoderSpec};
use crate::io::emoji::load_emoji_with_captions;
use crate::io::export::make_grid;
use crate::io::png_meta::encode_png;
use crate::latent::model::tensor_to_images;
use crate::nn::default_device;
use crate::train::batch::batch_tensor;
use crate::train::cancel::CancelToken;

/// Flags of `train autoencoder`.
#[derive(Args, Debug)]
pub struct TrainAutoencoderArgs {
    /// Model folder: writes OUT/vae; the checkpoint goes to OUT/checkpoint-autoencoder.
    #[arg(long)]
    out: PathBuf,
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
    /// Seed of initialisation, batches and sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue from OUT/checkpoint-autoencoder.
    #[arg(long)]
    resume: bool,
    /// Where scripts/fetch-data.sh put the data (emoji).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

/// Runs `train autoencoder`.
pub fn run(args: TrainAutoencoderArgs, command: String) -> anyhow::Result<()> {
    let out = &args.out;
    let vae_dir = out.join("vae");
    if !args.resume && vae_dir.exists() {
        bail!(
            "{} already exists; choose another --out (models are never overwritten) or add --resume",
            vae_dir.display()
        );
    }
    crate::diffusion::export::log_command(out, &command)?;
    let device = default_device();
    let checkpoint = out.join("checkpoint-autoencoder");
    let (split, _) = load_emoji_with_captions(&args.data_dir.join("emoji"), 32)?;
    let mut trainer = if args.resume {
        AutoencoderTrainer::resume(&checkpoint, args.epochs, &device).context("cannot resume")?
    } else {
        let spec = TrainAutoencoderSpec {
            batch_size: args.batch_size,
            lr: args.lr,
            kl_weight: args.kl_weight,
            ..TrainAutoencoderSpec::emoji(args.epochs, args.seed)
        };
        AutoencoderTrainer::new(spec, &device)?
    };
    let spec = trainer.spec().clone();
    let train = split.train.limited(args.limit);
    eprintln!(
        "training the autoencoder in {} on {} images, epochs {}..={}",
        out.display(),
        train.len(),
        trainer.history().len() + 1,
        spec.epochs
    );
    let cancel = CancelToken::new();
    while !trainer.finished() {
        let bar = batch_bar(train.len() / spec.batch_size, trainer.history().len() + 1);
        let report = trainer.train_epoch(
            &train,
            &mut |b, _, l1| {
                bar.set_position(b as u64);
                bar.set_message(format!("L1 {l1:.4}"));
            },
            &cancel,
        )?;
        bar.finish_and_clear();
        if let Some(r) = report {
            eprintln!("epoch {}: L1 {:.4}, KL {:.3} per latent value, {:.1} s", r.epoch, r.l1, r.kl, r.seconds);
        }
        trainer.save_checkpoint(&checkpoint)?;
    }
    let config = trainer.export(&vae_dir, &train)?;
    let mut record = AutoencoderRecord::read(out);
    record.commands.push(command);
    record.history = trainer.history().to_vec();
    record.spec = Some(spec.clone());
    record.parameters = trainer.parameter_count();
    record.scaling_factor = config.scaling_factor;
    record.write(out)?;
    eprintln!("wrote {} (scaling_factor {:.4})", vae_dir.display(), config.scaling_factor);
    // Held-out images (top) over their reconstructions from the posterior mean (bottom).
    let idx: Vec<usize> = (0..16.min(split.test.len())).collect();
    let originals = batch_tensor(&split.test, &idx, &device)?;
    let mean = trainer.model().encode(&originals.affine(2.0, -1.0)?)?.mean;
    let recon = ((trainer.model().decode(&mean)?.clamp(-1.0, 1.0)? + 1.0)? * 0.5)?;
    let mut images = tensor_to_images(&originals)?;
    images.extend(tensor_to_images(&recon)?);
    let path = out.join("reconstructions.png");
    std::fs::write(&path, encode_png(&make_grid(&images, 16, 1), &[]).map_err(anyhow::Error::msg)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let l1 = trainer.history().last().map_or(f64::NAN, |r| r.l1);
    eprintln!("wrote {} (last epoch's L1 {l1:.4})", path.display());
    Ok(())
}
