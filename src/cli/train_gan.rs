//! `train gan …`: trains a DCGAN through the epoch driver with a progress
//! bar; the run's log and sample grids go to OUT/progress (what the Train
//! view's "Watch a run…" follows), a checkpoint to OUT/checkpoint every
//! epoch, and the model folder to OUT at the end.

use anyhow::Context;
use clap::Args;

use super::train_args::{DataArgs, LimitArgs, ModelNameArgs, ProgressLines, RunArgs, load_data, model_folder};
use crate::gan::network::GanConfig;
use crate::gan::run::{GanRun, GanRunLog, default_gan_name};
use crate::gan::train::{GanTrainer, TrainGanSpec};
use crate::nn::default_device;
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;

/// Flags of `train gan`.
#[derive(Args, Debug)]
pub struct TrainGanArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Total epochs (with --resume: train on up to this many).
    #[arg(long, default_value_t = 25)]
    epochs: usize,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    names: ModelNameArgs,
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
    /// Start from a finished DCGAN (a model id or folder; its shape wins over
    /// --latent-dim and --base-channels): fine-tuning on your images.
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    limit: LimitArgs,
}

/// Runs `train gan`; `command` is the command line for the model card.
pub fn run(args: TrainGanArgs, command: String, models_dir: &std::path::Path) -> anyhow::Result<()> {
    args.run.refuse_existing_model()?;
    let out = &args.run.out;
    let device = default_device();
    let checkpoint = out.join("checkpoint");
    let source = args.data.source()?;
    let split = load_data(&source, &args.run.data_dir)?;
    let trainer = if args.run.resume {
        GanTrainer::resume(&checkpoint, args.epochs, &device).context("cannot resume")?
    } else {
        let config = GanConfig {
            image_size: split.train.side,
            channels: split.train.channels,
            latent_dim: args.latent_dim,
            base_channels: args.base_channels,
        };
        let start = match &args.from {
            Some(base) => TrainGanSpec::fine_tune(&model_folder(models_dir, base), source, args.epochs, args.run.seed)?,
            None => TrainGanSpec::dcgan(source, config, args.epochs, args.run.seed),
        };
        let spec = TrainGanSpec { batch_size: args.batch_size, lr: args.lr, real_label: args.real_label, ..start };
        GanTrainer::new(spec, &device)?
    };
    let spec = trainer.spec().clone();
    let mut gan = GanRun { trainer, train: split.train.limited(args.limit.limit), test: split.test };
    let log = GanRunLog::create(out)?;
    eprintln!(
        "training {} on {} images, epochs {}..={}",
        out.display(),
        gan.train.len(),
        gan.trainer.history().len() + 1,
        spec.epochs
    );
    let (id, name) = args.names.resolve(out, "gan", || default_gan_name(&spec));
    let plan = RunPlan::new(out, ExportInfo { id: &id, name: &name, command: &command });
    let progress = ProgressLines::new();
    drive(&mut gan, &plan, &CancelToken::new(), &mut (log, progress))?;
    eprintln!("wrote model {id} to {}", out.display());
    Ok(())
}
