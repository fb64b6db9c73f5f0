//! Training runs on its own named thread so the worker keeps decoding. Each
//! run goes through the same epoch driver as `latent-studio train …`, into a
//! run folder that ends like the command line's: checkpoint, progress files,
//! exported model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{JobId, WorkerEvent};
use super::run::EventSink;
use super::skeleton::{JobError, guarded};
use crate::gan::run::{GanLosses, GanRun, GanRunLog, default_gan_name};
use crate::gan::train::{GanTrainer, TrainGanSpec};
use crate::spec::train::GanEpochReport;
use crate::train::cancel::CancelToken;
use crate::train::driver::{BatchTick, EpochEnd, RunPlan, TrainObserver, drive};
use crate::train::error::TrainError;
use crate::train::export::ExportInfo;
use crate::train::log::{LogFollower, LogLine, grid_path};
use crate::vae::run::{VaeRun, default_vae_name};
use crate::vae::train::{EpochReport, TrainVaeSpec, VaeTrainer};

/// Starts training into the run folder `out`; every outcome arrives as an event for `job`.
pub fn spawn_vae_training(
    job: JobId,
    spec: TrainVaeSpec,
    data_dir: PathBuf,
    out: PathBuf,
    limit: Option<usize>,
    cancel: CancelToken,
    events: EventSink,
) -> std::io::Result<()> {
    spawn_training("vae-trainer", job, cancel, events, move |cancel, sink| {
        train_vae(job, spec, &data_dir, &out, limit, cancel, sink)
    })
}

/// Starts GAN training into a new numbered folder under `runs_dir`; every
/// outcome arrives as an event for `job`.
pub fn spawn_gan_training(
    job: JobId,
    spec: TrainGanSpec,
    data_dir: PathBuf,
    runs_dir: PathBuf,
    limit: Option<usize>,
    cancel: CancelToken,
    events: EventSink,
) -> std::io::Result<()> {
    spawn_training("gan-trainer", job, cancel, events, move |cancel, sink| {
        train_gan(job, spec, &data_dir, &runs_dir, limit, cancel, sink)
    })
}

/// Runs `body` on a thread named `name` (its candle work on a low-priority
/// pool) and turns its outcome — epochs done and planned, an error, a panic —
/// into the job's terminal event.
fn spawn_training(
    name: &'static str,
    job: JobId,
    cancel: CancelToken,
    events: EventSink,
    body: impl FnOnce(&CancelToken, &EventSink) -> Result<(usize, usize), JobError> + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let run = || {
            guarded(job, &events, || {
                let (done, planned) = body(&cancel, &events)?;
                // Cancelled means stopped early: a cancel that lands after the last epoch changes nothing.
                Ok(Some(if done < planned && cancel.is_cancelled() {
                    WorkerEvent::Cancelled { job }
                } else {
                    WorkerEvent::TrainingDone { job, epochs: done }
                }))
            })
        };
        match training_pool(name) {
            Some(pool) => pool.install(run),
            None => run(),
        };
    })?;
    Ok(())
}

/// A rayon pool for candle's kernels whose threads run at a lower priority
/// than the UI and the inference worker: on a 2-core machine training would
/// otherwise take the cores away from the UI thread mid-frame. Training still
/// gets every idle cycle. `None` (use the global pool) if it cannot be built.
fn training_pool(name: &'static str) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(|_| lower_this_threads_priority())
        .build()
        .ok()
}

/// Raises the calling thread's nice value (Linux schedules threads separately).
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; failure only leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

fn train_vae(
    job: JobId,
    spec: TrainVaeSpec,
    data_dir: &Path,
    out: &Path,
    limit: Option<usize>,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<(usize, usize), JobError> {
    let split = spec.dataset.load(data_dir).map_err(|e| e.to_string())?.split;
    let command = vae_command(&spec, out, limit);
    let name = default_vae_name(&spec);
    let trainer = VaeTrainer::new(spec, &crate::nn::default_device()).map_err(|e| e.to_string())?;
    let mut run = VaeRun { trainer, train: split.train.limited(limit), test: split.test };
    let id = folder_name(out, "vae");
    let plan = RunPlan::new(out, ExportInfo { id: &id, name: &name, command: &command });
    let mut observer = VaeEvents { job, events, last_progress: Instant::now() - Duration::from_secs(1) };
    let outcome = drive(&mut run, &plan, cancel, &mut observer).map_err(|e| e.to_string())?;
    Ok((outcome.epochs, outcome.planned))
}

fn train_gan(
    job: JobId,
    spec: TrainGanSpec,
    data_dir: &Path,
    runs_dir: &Path,
    limit: Option<usize>,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<(usize, usize), JobError> {
    let split = spec.dataset.load(data_dir).map_err(|e| e.to_string())?.split;
    let out = fresh_folder(runs_dir, "gan-run")
        .map_err(|e| format!("cannot create a folder in {}: {e}", runs_dir.display()))?;
    events.send(WorkerEvent::GanStarted { job, folder: out.clone() });
    let command = gan_command(&spec, &out, limit);
    let name = default_gan_name(&spec);
    let trainer = GanTrainer::new(spec, &crate::nn::default_device()).map_err(|e| e.to_string())?;
    let mut run = GanRun { trainer, train: split.train.limited(limit), test: split.test };
    let id = folder_name(&out, "gan");
    let plan = RunPlan::new(&out, ExportInfo { id: &id, name: &name, command: &command });
    let log = GanRunLog::create(&out).map_err(|e| e.to_string())?;
    let outcome = drive(&mut run, &plan, cancel, &mut (log, GanEvents { job, events })).map_err(|e| e.to_string())?;
    Ok((outcome.epochs, outcome.planned))
}

/// A VAE run's events for the app: throttled batch progress, each epoch's report.
struct VaeEvents<'a> {
    job: JobId,
    events: &'a EventSink,
    last_progress: Instant,
}

impl TrainObserver<f64, EpochReport> for VaeEvents<'_> {
    fn batch(&mut self, t: &BatchTick<f64>) -> Result<(), TrainError> {
        // At most ~20 progress events a second: the UI needs no more.
        if self.last_progress.elapsed() > Duration::from_millis(50) || t.batch == t.batches {
            self.last_progress = Instant::now();
            let message = format!("epoch {}, loss {:.2}", t.epoch, t.losses);
            self.events.send(WorkerEvent::Progress { job: self.job, step: t.batch, total: t.batches, message });
        }
        Ok(())
    }

    fn epoch_done(&mut self, end: &EpochEnd<EpochReport>) -> Result<(), TrainError> {
        self.events.send(WorkerEvent::TrainingEpoch { job: self.job, report: end.report.clone() });
        Ok(())
    }

    fn exporting(&mut self) {
        self.events.send(exporting(self.job));
    }
}

/// A GAN run's events for the Train view: every batch's losses, each epoch's report and grid.
struct GanEvents<'a> {
    job: JobId,
    events: &'a EventSink,
}

impl TrainObserver<GanLosses, GanEpochReport> for GanEvents<'_> {
    fn batch(&mut self, t: &BatchTick<GanLosses>) -> Result<(), TrainError> {
        let (job, GanLosses { d_loss, g_loss }) = (self.job, t.losses);
        self.events.send(WorkerEvent::GanBatch {
            job,
            epoch: t.epoch,
            batch: t.batch,
            batches: t.batches,
            d_loss,
            g_loss,
        });
        Ok(())
    }

    fn epoch_done(&mut self, end: &EpochEnd<GanEpochReport>) -> Result<(), TrainError> {
        if let Some(grid) = &end.grid {
            let (job, report) = (self.job, end.report.clone());
            self.events.send(WorkerEvent::GanEpoch { job, report, grid: grid.clone() });
        }
        Ok(())
    }

    fn exporting(&mut self) {
        self.events.send(exporting(self.job));
    }
}

/// Tells the app the run is writing its model folder.
fn exporting(job: JobId) -> WorkerEvent {
    WorkerEvent::Progress { job, step: 0, total: 0, message: "exporting the model".into() }
}

/// The last component of `dir`, the id its exported model gets.
fn folder_name(dir: &Path, fallback: &str) -> String {
    dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| fallback.into())
}

/// The `latent-studio train vae` command that makes the same run, for the model card.
fn vae_command(spec: &TrainVaeSpec, out: &Path, limit: Option<usize>) -> String {
    let c = &spec.config;
    format!(
        "latent-studio train vae {} --latent-dim {} --hidden {} --base-channels {} --epochs {} \
         --batch-size {} --lr {} --beta {} --seed {} --out {}{}",
        spec.dataset.cli_flags(),
        c.latent_dim,
        c.hidden,
        c.base_channels,
        spec.epochs,
        spec.batch_size,
        spec.lr,
        spec.beta,
        spec.seed,
        out.display(),
        limit.map(|n| format!(" --limit {n}")).unwrap_or_default()
    )
}

/// The `latent-studio train gan` command that makes the same run, for the model card.
fn gan_command(spec: &TrainGanSpec, out: &Path, limit: Option<usize>) -> String {
    let c = &spec.config;
    format!(
        "latent-studio train gan {} --latent-dim {} --base-channels {} --epochs {} --batch-size {} \
         --lr {} --real-label {} --seed {} --out {}{}",
        spec.dataset.cli_flags(),
        c.latent_dim,
        c.base_channels,
        spec.epochs,
        spec.batch_size,
        spec.lr,
        spec.real_label,
        spec.seed,
        out.display(),
        limit.map(|n| format!(" --limit {n}")).unwrap_or_default()
    )
}

/// Creates `root/stem-N` for the first N not taken, so no earlier run is overwritten.
fn fresh_folder(root: &std::path::Path, stem: &str) -> std::io::Result<PathBuf> {
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

/// How often a watched run's log is read.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Follows a command-line GAN run in `folder`, sending its batches, epochs
/// and sample grids as events for `job` until it is done or cancelled.
pub fn spawn_gan_watch(job: JobId, folder: PathBuf, cancel: CancelToken, events: EventSink) -> std::io::Result<()> {
    std::thread::Builder::new().name("gan-watcher".into()).spawn(move || {
        guarded(job, &events, || {
            Ok(Some(match watch(job, &folder, &cancel, &events)? {
                Some(epochs) => WorkerEvent::TrainingDone { job, epochs },
                None => WorkerEvent::Cancelled { job },
            }))
        });
    })?;
    Ok(())
}

/// `Some(epochs)` when the run finished, `None` when the watch was cancelled.
fn watch(job: JobId, folder: &Path, cancel: &CancelToken, events: &EventSink) -> Result<Option<usize>, JobError> {
    let progress = folder.join("progress");
    if !progress.is_dir() {
        return Err(format!(
            "{} holds no GAN run: progress/ is missing (latent-studio train gan --out FOLDER writes it)",
            folder.display()
        )
        .into());
    }
    events.send(WorkerEvent::GanStarted { job, folder: folder.to_owned() });
    let mut follower = LogFollower::new(&progress);
    while !cancel.is_cancelled() {
        for line in follower.poll()? {
            match line {
                LogLine::Batch { epoch, batch, batches, d_loss, g_loss } => {
                    events.send(WorkerEvent::GanBatch { job, epoch, batch, batches, d_loss, g_loss })
                }
                LogLine::Epoch { report } => {
                    let path = grid_path(&progress, report.epoch);
                    let grid = image::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    events.send(WorkerEvent::GanEpoch { job, report, grid: grid.to_rgb8() });
                }
                LogLine::Done { epochs } => return Ok(Some(epochs)),
            }
        }
        std::thread::sleep(WATCH_INTERVAL);
    }
    Ok(None)
}
