//! Training runs on its own named thread so the worker keeps decoding. Each
//! run goes through the same epoch driver as `latent-studio train …`, into a
//! run folder that ends like the command line's: checkpoint, progress files,
//! exported model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{JobId, WorkerEvent};
use super::run::EventSink;
use super::skeleton::{JobError, guarded};
use super::train_plan::{TrainPlan, TrainRequest};
use crate::gan::run::GanLosses;
use crate::spec::train::TrainTick;
use crate::train::cancel::CancelToken;
use crate::train::log::{LogFollower, LogLine, grid_path};
use crate::train::report::Reported;

/// Starts the run `request` on a training thread of its own; every outcome
/// arrives as an event for `job`.
pub fn spawn_run(job: JobId, request: TrainRequest, cancel: CancelToken, events: EventSink) -> std::io::Result<()> {
    let name = match request.plan {
        TrainPlan::Vae(_) => "vae-trainer",
        TrainPlan::Gan(_) => "gan-trainer",
        TrainPlan::Diffusion(_) => "ldm-trainer",
        TrainPlan::Text(_) => "gpt-trainer",
    };
    spawn_training(name, job, cancel, events, move |cancel, sink| super::train_runs::train(job, request, cancel, sink))
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
    let (stage, done, planned) = (String::new(), 0, 0);
    events.send(WorkerEvent::TrainStage { job, folder: folder.to_owned(), stage, done, planned });
    let mut follower = LogFollower::new(&progress);
    while !cancel.is_cancelled() {
        for line in follower.poll()? {
            match line {
                LogLine::Batch { epoch, batch, batches, d_loss, g_loss } => {
                    let values = GanLosses { d_loss, g_loss }.values();
                    let tick = TrainTick { epoch, batch, batches, values };
                    events.send(WorkerEvent::TrainBatch { job, tick })
                }
                LogLine::Epoch { report } => {
                    let path = grid_path(&progress, report.epoch);
                    let grid = image::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let summary = report.summary();
                    events.send(WorkerEvent::TrainEpoch { job, summary, grid: Some(grid.to_rgb8()), text: None });
                }
                LogLine::Done { epochs } => return Ok(Some(epochs)),
            }
        }
        std::thread::sleep(WATCH_INTERVAL);
    }
    Ok(None)
}
