//! The body of a training thread: open the run folder, build the family's
//! run as its `latent-studio train …` command does, and drive it through
//! the same epoch driver, reporting every batch and epoch as events. A run
//! in a folder that already holds checkpoints continues from them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{JobId, WorkerEvent};
use super::run::EventSink;
use super::skeleton::JobError;
use super::train_commands::{diffusion_command, gan_command, limit_flag, text_command, vae_command};
use super::train_plan::{DiffusionPlan, RunFolder, TrainPlan, TrainRequest};
use crate::diffusion::export::log_command;
use crate::diffusion::runs::DiffusionLog;
use crate::diffusion::stages::{
    DiffusionSettings, DiffusionStart, autoencoder_spec, check_diffusion_data, open_autoencoder_run, open_diffusion_run,
};
use crate::gan::run::{GanRun, GanRunLog, default_gan_name};
use crate::gan::train::{GanTrainer, TrainGanSpec};
use crate::io::text_corpus::CharCorpus;
use crate::spec::train::TrainTick;
use crate::text::run::CharGptRun;
use crate::text::train::{TextTrainer, TrainTextSpec};
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, EpochTrainer, RunPlan, TrainObserver, drive};
use crate::train::error::TrainError;
use crate::train::export::ExportInfo;
use crate::train::report::Reported;
use crate::vae::run::{VaeRun, default_vae_name};
use crate::vae::train::{TrainVaeSpec, VaeTrainer};

/// Trains `request`; returns the epochs done and planned in its last stage.
pub(super) fn train(
    job: JobId,
    request: TrainRequest,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<(usize, usize), JobError> {
    let TrainRequest { plan, data_dir, folder, limit, until } = request;
    let (out, resume) = open_folder(&folder, plan.stem())?;
    let run = RunContext { job, events, cancel, out: &out, data_dir: &data_dir, resume, limit, until };
    match plan {
        TrainPlan::Vae(spec) => run.vae(spec),
        TrainPlan::Gan(spec) => run.gan(spec),
        TrainPlan::Diffusion(plan) => run.diffusion(plan),
        TrainPlan::Text(spec) => run.text(spec),
    }
}

/// The run folder, and whether it continues an earlier run.
fn open_folder(folder: &RunFolder, stem: &str) -> Result<(PathBuf, bool), JobError> {
    match folder {
        RunFolder::Fresh(root) => fresh_folder(root, &format!("{stem}-run"))
            .map(|dir| (dir, false))
            .map_err(|e| format!("cannot create a folder in {}: {e}", root.display()).into()),
        RunFolder::Exact(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok((dir.clone(), false))
        }
        RunFolder::Resume(dir) if dir.is_dir() => Ok((dir.clone(), true)),
        RunFolder::Resume(dir) => {
            Err(format!("{} is gone: the paused run cannot continue without its checkpoints", dir.display()).into())
        }
    }
}

/// What every family's run needs to know.
struct RunContext<'a> {
    job: JobId,
    events: &'a EventSink,
    cancel: &'a CancelToken,
    out: &'a Path,
    data_dir: &'a Path,
    resume: bool,
    limit: Option<usize>,
    until: Option<usize>,
}

fn text_err(e: impl std::fmt::Display) -> JobError {
    e.to_string().into()
}

impl RunContext<'_> {
    /// Drives one stage of the run, telling the app as it goes.
    fn stage<T: EpochTrainer>(
        &self,
        name: &str,
        run: &mut T,
        plan: &RunPlan,
        log: &mut dyn TrainObserver<T::Losses, T::Report>,
    ) -> Result<(usize, usize), JobError>
    where
        T::Losses: Reported,
        T::Report: Reported,
    {
        self.events.send(WorkerEvent::TrainStage {
            job: self.job,
            folder: self.out.to_owned(),
            stage: name.to_owned(),
            done: run.epochs_done(),
            planned: run.epochs_planned(),
        });
        let mut observer = (log, TrainEvents::new(self.job, self.events));
        let outcome = drive(run, plan, self.cancel, &mut observer).map_err(text_err)?;
        Ok((outcome.epochs, outcome.planned))
    }

    fn id(&self) -> String {
        self.out.file_name().map_or_else(|| "model".to_owned(), |f| f.to_string_lossy().into_owned())
    }

    fn vae(&self, spec: TrainVaeSpec) -> Result<(usize, usize), JobError> {
        let device = crate::nn::default_device();
        let checkpoint = self.out.join("checkpoint");
        let trainer = if self.resume {
            VaeTrainer::resume(&checkpoint, self.until.unwrap_or(spec.epochs), &device)
        } else {
            VaeTrainer::new(spec, &device)
        }
        .map_err(text_err)?;
        let spec = trainer.spec().clone();
        let split = spec.dataset.load(self.data_dir).map_err(text_err)?.split;
        let command = vae_command(&spec, self.out, self.limit);
        let (id, name) = (self.id(), default_vae_name(&spec));
        let plan = RunPlan::new(self.out, ExportInfo { id: &id, name: &name, command: &command });
        let mut run = VaeRun { trainer, train: split.train.limited(self.limit), test: split.test };
        self.stage("", &mut run, &plan, &mut ())
    }

    fn gan(&self, spec: TrainGanSpec) -> Result<(usize, usize), JobError> {
        let device = crate::nn::default_device();
        let checkpoint = self.out.join("checkpoint");
        let trainer = if self.resume {
            GanTrainer::resume(&checkpoint, self.until.unwrap_or(spec.epochs), &device)
        } else {
            GanTrainer::new(spec, &device)
        }
        .map_err(text_err)?;
        let spec = trainer.spec().clone();
        let split = spec.dataset.load(self.data_dir).map_err(text_err)?.split;
        let command = gan_command(&spec, self.out, self.limit);
        let (id, name) = (self.id(), default_gan_name(&spec));
        let plan = RunPlan::new(self.out, ExportInfo { id: &id, name: &name, command: &command });
        let mut log = GanRunLog::create(self.out).map_err(text_err)?;
        let mut run = GanRun { trainer, train: split.train.limited(self.limit), test: split.test };
        self.stage("", &mut run, &plan, &mut log)
    }

    fn text(&self, spec: TrainTextSpec) -> Result<(usize, usize), JobError> {
        let device = crate::nn::default_device();
        let text = spec.corpus.read(self.data_dir).map_err(text_err)?;
        let corpus = CharCorpus::from_text(&text);
        let checkpoint = self.out.join("checkpoint");
        let trainer = if self.resume {
            let steps = self.until.map_or(spec.steps, |rounds| rounds * spec.eval_every.max(1));
            TextTrainer::resume(&checkpoint, steps, &device)
        } else {
            let config = crate::text::gpt::GptConfig { vocab: corpus.vocab.len(), ..spec.config };
            TextTrainer::new(TrainTextSpec { config, ..spec }, corpus.vocab.clone(), &device)
        }
        .map_err(text_err)?;
        if trainer.alphabet() != corpus.vocab.as_slice() {
            return Err("the text's alphabet differs from the checkpoint's; was the data changed?".into());
        }
        let spec = trainer.spec().clone();
        let command = text_command(&spec, self.out);
        let id = self.id();
        let name = format!("{} characters GPT", spec.corpus.name());
        let plan = RunPlan::new(self.out, ExportInfo { id: &id, name: &name, command: &command });
        self.stage("", &mut CharGptRun { trainer, corpus }, &plan, &mut ())
    }

    fn diffusion(&self, p: DiffusionPlan) -> Result<(usize, usize), JobError> {
        let device = crate::nn::default_device();
        check_diffusion_data(&p.source).map_err(text_err)?;
        let (loaded, captions) = p.source.load_captioned(self.data_dir).map_err(text_err)?;
        let mut split = loaded.split;
        split.train = split.train.limited(self.limit);
        let train_captions = &captions.train[..split.train.len()];
        let fine_tune = matches!(p.start, DiffusionStart::FineTune { .. });
        if !fine_tune && !self.out.join("vae").join("config.json").is_file() {
            if self.until.is_some() {
                return Err("the autoencoder has not finished training: resume the run to train it".into());
            }
            let checkpoint = self.out.join("checkpoint-autoencoder");
            let resume = self.resume && checkpoint.exists();
            let (side, _) = p.source.image_shape();
            let spec = autoencoder_spec(side, p.autoencoder_channels, p.autoencoder_epochs, p.settings.seed);
            let [c0, c1, c2] = p.autoencoder_channels;
            let command = format!(
                "latent-studio train autoencoder {} --channels {c0},{c1},{c2} --epochs {} --seed {} --out {}{}",
                p.source.cli_flags(),
                p.autoencoder_epochs,
                p.settings.seed,
                self.out.display(),
                limit_flag(self.limit)
            );
            if !resume {
                log_command(self.out, &command).map_err(text_err)?;
            }
            let name = format!("{} autoencoder", p.source.name());
            let plan = RunPlan::new(self.out, ExportInfo { id: "vae", name: &name, command: &command })
                .with_checkpoint(checkpoint.clone());
            let mut run = open_autoencoder_run(spec, resume.then_some(checkpoint.as_path()), split.clone(), &device)
                .map_err(text_err)?;
            let (done, planned) = self.stage("autoencoder", &mut run, &plan, &mut ())?;
            if done < planned {
                return Ok((done, planned + p.settings.epochs));
            }
        }
        let checkpoint = self.out.join("checkpoint-diffusion");
        let start = if self.resume && checkpoint.exists() { DiffusionStart::Resume } else { p.start.clone() };
        let settings = DiffusionSettings { epochs: self.until.unwrap_or(p.settings.epochs), ..p.settings.clone() };
        let command = diffusion_command(&p, self.out, self.limit);
        if start != DiffusionStart::Resume {
            log_command(self.out, &command).map_err(text_err)?;
        }
        let data = (&split.train, train_captions);
        let mut run = open_diffusion_run(self.out, &start, &settings, data, &p.source, &device).map_err(text_err)?;
        let (id, name) = (self.id(), format!("{} latent diffusion", p.source.name()));
        let plan =
            RunPlan::new(self.out, ExportInfo { id: &id, name: &name, command: &command }).with_checkpoint(checkpoint);
        let mut log = DiffusionLog::create(self.out).map_err(text_err)?;
        self.stage("U-Net", &mut run, &plan, &mut log)
    }
}

/// A run's events for the Train view: the batches' losses (at most about
/// 20 points a second, each the mean of the batches since the last), each
/// epoch's summary and sample grid.
struct TrainEvents<'a> {
    job: JobId,
    events: &'a EventSink,
    last: Instant,
    sums: Vec<(&'static str, f64)>,
    count: usize,
}

/// The shortest time between two batch events.
const BATCH_EVENT_INTERVAL: Duration = Duration::from_millis(50);

impl<'a> TrainEvents<'a> {
    fn new(job: JobId, events: &'a EventSink) -> Self {
        Self { job, events, last: Instant::now() - BATCH_EVENT_INTERVAL, sums: Vec::new(), count: 0 }
    }
}

impl<L: Reported, R: Reported> TrainObserver<L, R> for TrainEvents<'_> {
    fn batch(&mut self, t: &BatchTick<L>) -> Result<(), TrainError> {
        let values = t.losses.values();
        if self.count == 0 {
            self.sums = values.iter().map(|(name, _)| (*name, 0.0)).collect();
        }
        for ((_, sum), (_, v)) in self.sums.iter_mut().zip(&values) {
            *sum += v;
        }
        self.count += 1;
        if self.last.elapsed() >= BATCH_EVENT_INTERVAL || t.batch == t.batches {
            let n = self.count as f64;
            let values = self.sums.iter().map(|(name, sum)| (*name, sum / n)).collect();
            let tick = TrainTick { epoch: t.epoch, batch: t.batch, batches: t.batches, values };
            self.events.send(WorkerEvent::TrainBatch { job: self.job, tick });
            (self.count, self.last) = (0, Instant::now());
        }
        Ok(())
    }

    fn epoch_done(&mut self, end: &EpochEnd<R>) -> Result<(), TrainError> {
        let summary = end.report.summary();
        let (grid, text) = (end.grid.clone(), end.text.clone());
        self.events.send(WorkerEvent::TrainEpoch { job: self.job, summary, grid, text });
        Ok(())
    }

    fn exporting(&mut self) {
        let message = "exporting the model".to_owned();
        self.events.send(WorkerEvent::Progress { job: self.job, step: 0, total: 0, message });
    }
}

/// Creates `root/stem-N` for the first N not taken, so no earlier run is overwritten.
fn fresh_folder(root: &Path, stem: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    let mut n = 1;
    loop {
        let dir = root.join(format!("{stem}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
}
