//! What every `train …` command shares: the flags of a run (declared once,
//! flattened into each command) and the progress bar the epoch driver feeds.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::io::datasets::{DataSource, DatasetName, Split};
use crate::io::image_folder::{Fit, FolderSpec, Skipped};
use crate::io::manifest::MANIFEST_FILE;
use crate::train::driver::{BatchTick, EpochEnd, TrainObserver};
use crate::train::error::TrainError;
use crate::train::report::Reported;

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
    #[arg(long, value_enum, conflicts_with = "data")]
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
        if self.dataset.is_none() && self.data.is_none() {
            bail!("give either --dataset NAME or --data FOLDER");
        }
        self.source_or(DatasetName::Emoji)
    }

    /// The source, `default` when neither --dataset nor --data is given.
    pub fn source_or(&self, default: DatasetName) -> anyhow::Result<DataSource> {
        match (&self.dataset, &self.data) {
            (None, None) => Ok(DataSource::Named(default)),
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
    report_skipped(&loaded.skipped);
    Ok(loaded.split)
}

/// Says on stderr which files a folder left out and why.
pub fn report_skipped(skipped: &[Skipped]) {
    if !skipped.is_empty() {
        eprintln!("skipped {} files:", skipped.len());
        for s in skipped.iter().take(20) {
            eprintln!("  {}: {}", s.path.display(), s.reason);
        }
        if skipped.len() > 20 {
            eprintln!("  … and {} more", skipped.len() - 20);
        }
    }
}

/// The folder of `--from`: a folder as given, else the model with that id in `models_dir`.
pub fn model_folder(models_dir: &Path, id_or_folder: &str) -> PathBuf {
    let path = PathBuf::from(id_or_folder);
    if path.is_dir() { path } else { models_dir.join(id_or_folder) }
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
/// then a line with the epoch's report (and its warning).
#[derive(Default)]
pub struct ProgressLines {
    bar: Option<ProgressBar>,
}

impl ProgressLines {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<L: Reported, R: Reported> TrainObserver<L, R> for ProgressLines {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        self.bar = Some(batch_bar(batches, epoch));
    }

    fn batch(&mut self, tick: &BatchTick<L>) -> Result<(), TrainError> {
        if let Some(bar) = &self.bar {
            bar.set_position(tick.batch as u64);
            bar.set_message(tick.losses.line());
        }
        Ok(())
    }

    fn epoch_done(&mut self, end: &EpochEnd<R>) -> Result<(), TrainError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let warning = end.report.warning().map(|w| format!("\n  warning: {w}")).unwrap_or_default();
        eprintln!("{}{warning}", end.report.line());
        Ok(())
    }

    fn exporting(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
