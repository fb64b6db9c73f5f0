//! `train gan …`: trains a DCGAN with a progress bar, writes the fixed-latent
//! sample grid and a checkpoint every epoch, and exports a model folder.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::gan::export::export_gan;
use crate::gan::network::GanConfig;
use crate::gan::train::{GanTrainEvent, GanTrainer, TrainGanSpec};
use crate::io::datasets::{DatasetName, load};
use crate::io::manifest::MANIFEST_FILE;
use crate::io::png_meta::encode_png;
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::export::ExportInfo;
use crate::train::log::{self as train_log, LogLine};

/// Flags of `train gan`.
#[derive(Args, Debug)]
pub struct TrainGanArgs {
    /// Training images (fetch them with scripts/fetch-data.sh).
    #[arg(long, value_enum)]
    dataset: DatasetName,
    /// Total epochs (with --resume: train on up to this many).
    #[arg(long, default_value_t = 25)]
    epochs: usize,
    /// Model folder to write; checkpoints go to OUT/checkpoint, sample grids to OUT/progress.
    #[arg(long)]
    out: PathBuf,
    /// Model id (default: the folder name).
    #[arg(long)]
    id: Option<String>,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Latent dimensions.
    #[arg(long, default_value_t = 64)]
    latent_dim: usize,
    /// Feature maps of the generator's last hidden layer (doubling towards 4×4).
    #[arg(long, default_value_t = 64)]
    base_channels: usize,
    /// Real images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate (both networks).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Target for real images (one-sided label smoothing; 1 turns it off).
    #[arg(long, default_value_t = 0.9)]
    real_label: f64,
    /// Seed of initialisation, batches and latents.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue from OUT/checkpoint.
    #[arg(long)]
    resume: bool,
    /// Where scripts/fetch-data.sh put the data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

/// Runs `train gan`; `command` is the command line for the model card.
pub fn run(args: TrainGanArgs, command: String) -> anyhow::Result<()> {
    let out = &args.out;
    if !args.resume && out.join(MANIFEST_FILE).exists() {
        bail!(
            "{} already holds a model; choose another --out (models are never overwritten) or add --resume",
            out.display()
        );
    }
    let device = default_device();
    let checkpoint = out.join("checkpoint");
    let split = load(args.dataset, &args.data_dir)?;
    let mut trainer = if args.resume {
        GanTrainer::resume(&checkpoint, args.epochs, &device).context("cannot resume")?
    } else {
        let config = GanConfig {
            image_size: split.train.side,
            channels: split.train.channels,
            latent_dim: args.latent_dim,
            base_channels: args.base_channels,
        };
        let spec = TrainGanSpec {
            batch_size: args.batch_size,
            lr: args.lr,
            real_label: args.real_label,
            ..TrainGanSpec::dcgan(args.dataset, config, args.epochs, args.seed)
        };
        GanTrainer::new(spec, &device)?
    };
    let spec = trainer.spec().clone();
    let train = split.train.limited(args.limit);
    let progress = out.join("progress");
    std::fs::create_dir_all(&progress).with_context(|| format!("cannot create {}", progress.display()))?;
    eprintln!(
        "training {} on {} images, epochs {}..={}",
        out.display(),
        train.len(),
        trainer.history().len() + 1,
        spec.epochs
    );
    let cancel = CancelToken::new();
    while !trainer.finished() {
        let bar = batch_bar(train.len() / spec.batch_size, trainer.history().len() + 1);
        let mut grid = None;
        // The log lets the studio's Train view follow this run (Watch a run…).
        let mut log_error = None;
        let mut on_event = |e: GanTrainEvent| match e {
            GanTrainEvent::Batch { epoch, batch, batches, d_loss, g_loss } => {
                bar.set_position(batch as u64);
                bar.set_message(format!("D {d_loss:.3}, G {g_loss:.3}"));
                let line = LogLine::Batch { epoch, batch, batches, d_loss, g_loss };
                if let Err(e) = train_log::append(&progress, &line) {
                    log_error.get_or_insert(e);
                }
            }
            GanTrainEvent::Epoch { grid: g, .. } => grid = Some(g),
        };
        let report = trainer.train_epoch(&train, &mut on_event, &cancel)?;
        bar.finish_and_clear();
        if let Some(e) = log_error {
            bail!("cannot write the training log in {}: {e}", progress.display());
        }
        if let (Some(r), Some(grid)) = (report, grid) {
            eprintln!(
                "epoch {}: D {:.3}, G {:.3}, D(real) {:.2}, D(fake) {:.2}, {:.1} s",
                r.epoch, r.d_loss, r.g_loss, r.d_real, r.d_fake, r.seconds
            );
            let path = train_log::grid_path(&progress, r.epoch);
            let png = encode_png(&grid, &[]).map_err(anyhow::Error::msg)?;
            std::fs::write(&path, png).with_context(|| format!("cannot write {}", path.display()))?;
            train_log::append(&progress, &LogLine::Epoch { report: r })?;
        }
        trainer.save_checkpoint(&checkpoint)?;
    }
    let folder = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "gan".into());
    let id = args.id.unwrap_or(folder);
    let name = args.name.unwrap_or_else(|| format!("{} DCGAN", spec.dataset.name()));
    export_gan(&trainer, &train, &split.test, out, &ExportInfo { id: &id, name: &name, command: &command })?;
    train_log::append(&progress, &LogLine::Done { epochs: trainer.history().len() })?;
    eprintln!("wrote model {id} to {}", out.display());
    Ok(())
}

/// A progress bar over an epoch's batches, with a message slot for the losses.
pub(crate) fn batch_bar(batches: usize, epoch: usize) -> ProgressBar {
    let bar = ProgressBar::new(batches as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches, {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(epoch.to_string());
    bar
}
