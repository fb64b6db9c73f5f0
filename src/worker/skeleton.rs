//! What every worker thread shares: a named thread, a request loop that
//! drops cancelled jobs, a panic guard that turns any failure into the job's
//! one terminal event, and a one-model cache. The inference thread, the text
//! and image threads and each training thread are built from these.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::Sender;

use super::protocol::{JobId, WorkerEvent};
use super::run::{Envelope, EventSink};

/// What a job returns: its terminal event, `None` when another thread sends
/// it (the job was handed on), or why it failed.
pub type Outcome = Result<Option<WorkerEvent>, JobError>;

/// Why a job failed, as the user reads it in its `Failed` event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

impl From<String> for JobError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<crate::io::error::FileError> for JobError {
    fn from(e: crate::io::error::FileError) -> Self {
        Self(e.to_string())
    }
}

impl From<crate::io::error::EncodeError> for JobError {
    fn from(e: crate::io::error::EncodeError) -> Self {
        Self(e.to_string())
    }
}

/// Runs `body` for `job` and sends the job's terminal event: `Failed` for an
/// error or a panic. Returns true if it panicked, so that the caller can drop
/// state the panic may have left half-updated.
pub fn guarded(job: JobId, events: &EventSink, body: impl FnOnce() -> Outcome) -> bool {
    let (event, panicked) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(event)) => (event, false),
        Ok(Err(JobError(error))) => (Some(WorkerEvent::Failed { job, error }), false),
        Err(panic) => {
            (Some(WorkerEvent::Failed { job, error: format!("internal error: {}", panic_message(&panic)) }), true)
        }
    };
    if let Some(event) = event {
        events.send(event);
    }
    panicked
}

/// The text of a panic payload.
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// The work of a thread that serves a queue of requests.
pub trait Service: Send + 'static {
    /// Runs one request.
    fn run(&mut self, env: Envelope, events: &EventSink) -> Outcome;
    /// Called after `run` panicked: forget state that may be half-updated.
    fn reset(&mut self) {}
}

/// A named thread working through its queue in order, one job at a time.
pub struct ServiceThread {
    requests: Sender<Envelope>,
}

impl ServiceThread {
    /// Starts `service` on a thread called `name`.
    pub fn spawn<S: Service>(name: &str, events: EventSink, mut service: S) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Envelope>();
        std::thread::Builder::new().name(name.into()).spawn(move || {
            for env in rx {
                let job = env.job;
                if env.cancel.is_cancelled() {
                    events.send(WorkerEvent::Cancelled { job });
                    continue;
                }
                if guarded(job, &events, || service.run(env, &events)) {
                    service.reset();
                }
            }
        })?;
        Ok(Self { requests: tx })
    }

    /// Queues a request; gives it back if the thread is gone.
    pub fn submit(&self, env: Envelope) -> Result<(), Box<Envelope>> {
        self.requests.send(env).map_err(|e| Box::new(e.0))
    }
}

/// Hands `env` to the thread in `slot`, starting it with `start` the first time.
pub fn hand_on(
    slot: &mut Option<ServiceThread>,
    what: &str,
    start: impl FnOnce() -> std::io::Result<ServiceThread>,
    env: Envelope,
) -> Outcome {
    let thread = match slot.take() {
        Some(thread) => thread,
        None => start().map_err(|e| format!("cannot start the {what} thread: {e}"))?,
    };
    let thread = slot.insert(thread);
    thread.submit(env).map_err(|_| format!("the {what} thread stopped; restart the studio"))?;
    Ok(None)
}

/// The model a thread keeps loaded: one at a time, replaced when another is asked for.
pub struct LoadedModel<K, M> {
    slot: Option<(K, M)>,
}

impl<K, M> Default for LoadedModel<K, M> {
    fn default() -> Self {
        Self { slot: None }
    }
}

impl<K: PartialEq + Clone, M> LoadedModel<K, M> {
    /// The model for `key`, loading it (after freeing the previous one) if it is not the one held.
    pub fn get_or_load<E>(&mut self, key: &K, load: impl FnOnce(&K) -> Result<M, E>) -> Result<&mut M, E> {
        let held = match self.slot.take() {
            Some((k, model)) if k == *key => (k, model),
            other => {
                // Free the old model, and give its pages back, before loading the next.
                if other.is_some() {
                    drop(other);
                    crate::nn::memory::release_freed_memory();
                }
                (key.clone(), load(key)?)
            }
        };
        Ok(&mut self.slot.insert(held).1)
    }

    /// Forgets the model (after a panic it may be mid-update).
    pub fn clear(&mut self) {
        self.slot = None;
    }

    /// The loaded model, if any.
    pub fn current(&self) -> Option<&M> {
        self.slot.as_ref().map(|(_, model)| model)
    }
}
