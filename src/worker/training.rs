//! Training runs on its own named thread so the worker keeps decoding.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::protocol::{JobId, WorkerEvent};
use super::run::{EventSink, panic_message};
use crate::io::datasets::load;
use crate::pipelines::cancel::CancelToken;
use crate::pipelines::train_vae::{TrainEvent, TrainVaeSpec, VaeTrainer};

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
    std::thread::Builder::new().name("vae-trainer".into()).spawn(move || {
        let sink = events.clone();
        let run =
            || catch_unwind(AssertUnwindSafe(|| train(job, spec, &data_dir, &checkpoint_dir, limit, &cancel, &sink)));
        let result = match training_pool() {
            Some(pool) => pool.install(run),
            None => run(),
        };
        let event = match result {
            // Cancelled means stopped early: a cancel that lands after the last epoch changes nothing.
            Ok(Ok((done, planned))) if done < planned && cancel.is_cancelled() => WorkerEvent::Cancelled { job },
            Ok(Ok((epochs, _))) => WorkerEvent::TrainingDone { job, epochs },
            Ok(Err(error)) => WorkerEvent::Failed { job, error },
            Err(p) => WorkerEvent::Failed { job, error: format!("internal error: {}", panic_message(&p)) },
        };
        events.send(event);
    })?;
    Ok(())
}

/// A rayon pool for candle's kernels whose threads run at a lower priority
/// than the UI and the inference worker: on a 2-core machine training would
/// otherwise take the cores away from the UI thread mid-frame. Training still
/// gets every idle cycle. `None` (use the global pool) if it cannot be built.
fn training_pool() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .thread_name(|i| format!("vae-trainer-{i}"))
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
    let train = match limit {
        Some(n) => split.train.truncated(n),
        None => split.train,
    };
    let mut trainer = VaeTrainer::new(spec, &crate::models::default_device()).map_err(|e| e.to_string())?;
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
