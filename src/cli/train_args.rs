//! What every `train …` command shares: the flags of a run (declared once,
//! flattened into each command) and the progress bar the epoch driver feeds.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::io::datasets::{DataSource, DatasetName, Split};
use crate::io::image_folder::{Fit, FolderSpec};
use crate::io::manifest::MANIFEST_FILE;
use crate::train::driver::{BatchTick, EpochEnd, TrainObserver};
use crate::train::error::TrainError;

/// Where a run writes and whether it continues.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Model folder to write (weights, manifest, card); checkpoints and progress files go inside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the checkpoint in OUT.
    #[arg(long)]
    pub resume: bool,
    /// Seed of initialisation, shuffling and sampling noise (the same seed gives the same run).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where scripts/fetch-data.sh put the data.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
}

impl RunArgs {
    /// Refuses to start afresh over a model folder holding `marker`: models are never overwritten.
    pub fn refuse_existing(&self, marker: &str) -> anyhow::Result<()> {
        if !self.resume && self.out.join(marker).exists() {
            bail!(
                "{} already holds a model; choose another --out (models are never overwritten) or add --resume",
                self.out.display()
            );
        }
        Ok(())
    }

    /// [`RunArgs::refuse_existing`] for a model folder with a manifest.
    pub fn refuse_existing_model(&self) -> anyhow::Result<()> {
        self.refuse_existing(MANIFEST_FILE)
    }
}

/// Where the images come from: a data set the studio knows, or a folder of the user's.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// A known data set (fetch it with scripts/fetch-data.sh).
    #[arg(long, value_enum, conflicts_with = "data", required_unless_present = "data")]
    pub dataset: Option<DatasetName>,
    /// A folder of your images (PNG, JPEG, WebP, GIF; any sizes; subfolders are classes).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: side of the square images the model sees (28, 32, 48, 64, …).
    #[arg(long, default_value_t = 32)]
    pub side: usize,
    /// With --data: grey images instead of colour.
    #[arg(long)]
    pub grey: bool,
    /// With --data: how other shapes become squares.
    #[arg(long, value_enum, default_value = "crop")]
    pub fit: Fit,
    /// With --data: add each training image mirrored left to right.
    #[arg(long)]
    pub flip: bool,
}

impl DataArgs {
    pub fn source(&self) -> anyhow::Result<DataSource> {
        match (&self.dataset, &self.data) {
            (Some(name), None) => Ok(DataSource::Named(*name)),
            (None, Some(folder)) => {
                let spec = FolderSpec {
                    folder: folder.clone(),
                    side: self.side,
                    channels: if self.grey { 1 } else { 3 },
                    fit: self.fit,
                    flip: self.flip,
                };
                spec.check().map_err(anyhow::Error::msg)?;
                Ok(DataSource::Folder(spec))
            }
            _ => bail!("give either --dataset NAME or --data FOLDER"),
        }
    }
}

/// Reads the images, saying on stderr which files were left out and why.
pub fn load_data(source: &DataSource, data_dir: &Path) -> anyhow::Result<Split> {
    let loaded = source.load(data_dir)?;
    if !loaded.skipped.is_empty() {
        eprintln!("skipped {} files:", loaded.skipped.len());
        for s in loaded.skipped.iter().take(20) {
            eprintln!("  {}: {}", s.path.display(), s.reason);
        }
        if loaded.skipped.len() > 20 {
            eprintln!("  … and {} more", loaded.skipped.len() - 20);
        }
    }
    Ok(loaded.split)
}

/// What the exported model is called.
#[derive(Args, Debug)]
pub struct ModelNameArgs {
    /// Model id (default: the folder name).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
}

impl ModelNameArgs {
    /// The id (default: `out`'s folder name, else `fallback`) and the display name (default: `name`).
    pub fn resolve(&self, out: &Path, fallback: &str, name: impl FnOnce() -> String) -> (String, String) {
        let folder = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| fallback.into());
        (self.id.clone().unwrap_or(folder), self.name.clone().unwrap_or_else(name))
    }
}

/// How much of the data to use.
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
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

/// The terminal's view of a run: a bar per epoch with the batch's losses,
/// then a line with the epoch's report.
pub struct ProgressLines<L, R> {
    bar: Option<ProgressBar>,
    losses: fn(&L) -> String,
    report: fn(&R) -> String,
}

impl<L, R> ProgressLines<L, R> {
    /// Shows losses and reports as these functions write them.
    pub fn new(losses: fn(&L) -> String, report: fn(&R) -> String) -> Self {
        Self { bar: None, losses, report }
    }
}

impl<L, R> TrainObserver<L, R> for ProgressLines<L, R> {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        self.bar = Some(batch_bar(batches, epoch));
    }

    fn batch(&mut self, tick: &BatchTick<L>) -> Result<(), TrainError> {
        if let Some(bar) = &self.bar {
            bar.set_position(tick.batch as u64);
            bar.set_message((self.losses)(&tick.losses));
        }
        Ok(())
    }

    fn epoch_done(&mut self, end: &EpochEnd<R>) -> Result<(), TrainError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{}", (self.report)(&end.report));
        Ok(())
    }

    fn exporting(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
