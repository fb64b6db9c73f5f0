//! Training runs on its own named thread so the worker keeps decoding.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{JobId, WorkerEvent};
use super::run::EventSink;
use super::skeleton::guarded;
use crate::gan::train::{GanTrainEvent, GanTrainer, TrainGanSpec};
use crate::io::datasets::load;
use crate::train::cancel::CancelToken;
use crate::train::log::{LogFollower, LogLine, grid_path};
use crate::vae::train::{TrainEvent, TrainVaeSpec, VaeTrainer};

/// Starts training; every outcome arrives as an event for `job`.
pub fn spawn_vae_training(
    job: JobId,
    spec: TrainVaeSpec,
    data_dir: PathBuf,
    checkpoint_dir: PathBuf,
    limit: Option<usize>,
    cancel: CancelToken,
    events: EventSink,
) -> std::io::Result<()> {
    spawn_training("vae-trainer", job, cancel, events, move |cancel, sink| {
        train(job, spec, &data_dir, &checkpoint_dir, limit, cancel, sink)
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
    body: impl FnOnce(&CancelToken, &EventSink) -> Result<(usize, usize), String> + Send + 'static,
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

fn train(
    job: JobId,
    spec: TrainVaeSpec,
    data_dir: &std::path::Path,
    checkpoint_dir: &std::path::Path,
    limit: Option<usize>,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<(usize, usize), String> {
    let split = load(spec.dataset, data_dir).map_err(|e| e.to_string())?;
    let train = split.train.limited(limit);
    let mut trainer = VaeTrainer::new(spec, &crate::nn::default_device()).map_err(|e| e.to_string())?;
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    while !trainer.finished() && !cancel.is_cancelled() {
        let mut on_event = |e: TrainEvent| match e {
            // At most ~20 progress events a second: the UI needs no more.
            TrainEvent::Batch { epoch, batch, batches, loss }
                if last_progress.elapsed() > Duration::from_millis(50) || batch == batches =>
            {
                last_progress = Instant::now();
                events.send(WorkerEvent::Progress {
                    job,
                    step: batch,
                    total: batches,
                    message: format!("epoch {epoch}, loss {loss:.2}"),
                });
            }
            TrainEvent::Epoch(report) => events.send(WorkerEvent::TrainingEpoch { job, report }),
            TrainEvent::Batch { .. } => {}
        };
        let done = trainer.train_epoch(&train, &split.test, &mut on_event, cancel).map_err(|e| e.to_string())?;
        if done.is_some() {
            trainer.save_checkpoint(checkpoint_dir).map_err(|e| e.to_string())?;
        }
    }
    Ok((trainer.history().len(), trainer.spec().epochs))
}

fn train_gan(
    job: JobId,
    spec: TrainGanSpec,
    data_dir: &std::path::Path,
    runs_dir: &std::path::Path,
    limit: Option<usize>,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<(usize, usize), String> {
    let split = load(spec.dataset, data_dir).map_err(|e| e.to_string())?;
    let train = split.train.limited(limit);
    let folder = fresh_folder(runs_dir, "gan-run")
        .map_err(|e| format!("cannot create a folder in {}: {e}", runs_dir.display()))?;
    events.send(WorkerEvent::GanStarted { job, folder: folder.clone() });
    let checkpoint = folder.join("checkpoint");
    let mut trainer = GanTrainer::new(spec, &crate::nn::default_device()).map_err(|e| e.to_string())?;
    while !trainer.finished() && !cancel.is_cancelled() {
        let mut on_event = |e: GanTrainEvent| match e {
            GanTrainEvent::Batch { epoch, batch, batches, d_loss, g_loss } => {
                events.send(WorkerEvent::GanBatch { job, epoch, batch, batches, d_loss, g_loss })
            }
            GanTrainEvent::Epoch { report, grid } => events.send(WorkerEvent::GanEpoch { job, report, grid }),
        };
        let done = trainer.train_epoch(&train, &mut on_event, cancel).map_err(|e| e.to_string())?;
        if done.is_some() {
            trainer.save_checkpoint(&checkpoint).map_err(|e| e.to_string())?;
        }
    }
    Ok((trainer.history().len(), trainer.spec().epochs))
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
fn watch(job: JobId, folder: &Path, cancel: &CancelToken, events: &EventSink) -> Result<Option<usize>, String> {
    let progress = folder.join("progress");
    if !progress.is_dir() {
        return Err(format!(
            "{} holds no GAN run: progress/ is missing (latent-studio train gan --out FOLDER writes it)",
            folder.display()
        ));
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
