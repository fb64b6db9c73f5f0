//! The app's side of the worker: submit without blocking, cancel, drain events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::cache::ModelCache;
use super::protocol::{JobId, WorkerEvent, WorkerRequest, WorkerThread};
use super::run::{Envelope, EventSink, Worker};
use crate::latent::model::LatentModel;
use crate::train::cancel::CancelToken;

/// How many requests may wait in the channel; more wait app-side in `overflow`.
const QUEUE_CAPACITY: usize = 32;

/// Called by the worker after each event so that the UI repaints.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Owns the channels to the worker thread.
pub struct WorkerHandle {
    requests: Sender<Envelope>,
    events: Receiver<WorkerEvent>,
    tokens: HashMap<JobId, CancelToken>,
    overflow: VecDeque<Envelope>,
    next_id: u64,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Jobs that run on a thread other than the inference thread
    /// ([`WorkerRequest::thread`]).
    own_thread: HashSet<JobId>,
    /// Those of them the inference thread has handed on (it sent `Started`):
    /// they outlive a dead inference thread and report for themselves.
    handed_on: HashSet<JobId>,
    /// The worker's event sink (shared settings only: it is the worker's to send on).
    sink: EventSink,
    /// The remote backends, shared with the text and image threads.
    backends: super::backends::Backends,
}

impl WorkerHandle {
    /// Starts the worker thread over `models_dir`.
    pub fn spawn(models_dir: PathBuf, waker: Waker) -> std::io::Result<Self> {
        Self::spawn_with(ModelCache::new(models_dir, crate::nn::default_device()), waker)
    }

    /// Starts the worker with models already in its cache (tests, opened files).
    pub fn spawn_with_models(
        models_dir: PathBuf,
        models: Vec<Arc<dyn LatentModel>>,
        waker: Waker,
    ) -> std::io::Result<Self> {
        let mut cache = ModelCache::new(models_dir, crate::nn::default_device());
        for m in models {
            cache.insert(m);
        }
        Self::spawn_with(cache, waker)
    }

    fn spawn_with(cache: ModelCache, waker: Waker) -> std::io::Result<Self> {
        let (req_tx, req_rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let backends = super::backends::Backends::start(Arc::clone(&waker));
        let sink = EventSink::new(ev_tx, waker);
        let worker = Worker::new(cache, req_rx, sink.clone(), backends.clone());
        let thread = std::thread::Builder::new().name("inference-worker".into()).spawn(move || worker.run())?;
        Ok(Self {
            requests: req_tx,
            events: ev_rx,
            tokens: HashMap::new(),
            overflow: VecDeque::new(),
            next_id: 1,
            thread: Some(thread),
            own_thread: HashSet::new(),
            handed_on: HashSet::new(),
            sink,
            backends,
        })
    }

    /// The remote backends remote jobs run on (set them from the settings).
    pub fn backends(&self) -> &super::backends::Backends {
        &self.backends
    }

    /// Sets the least time between two wake-ups of the UI by streamed text
    /// (a software renderer's frames cost the models' cores; see `app::studio`).
    pub fn set_stream_wake_interval(&self, interval: std::time::Duration) {
        self.sink.set_stream_wake_interval(interval);
    }

    /// Queues `request` and returns its job id. Never blocks: when the channel
    /// is full the request waits here and is sent on a later [`WorkerHandle::poll`].
    pub fn submit(&mut self, request: WorkerRequest) -> JobId {
        let job = JobId(self.next_id);
        self.next_id += 1;
        let cancel = CancelToken::new();
        self.tokens.insert(job, cancel.clone());
        if request.thread() != WorkerThread::Inference {
            self.own_thread.insert(job);
        }
        self.overflow.push_back(Envelope { job, cancel, request });
        self.flush();
        job
    }

    /// Asks `job` to stop: dropped if still queued, stopped at its next check if running.
    pub fn cancel(&mut self, job: JobId) {
        if let Some(token) = self.tokens.get(&job) {
            token.cancel();
        }
    }

    fn flush(&mut self) {
        while let Some(env) = self.overflow.pop_front() {
            match self.requests.try_send(env) {
                Ok(()) => {}
                Err(TrySendError::Full(env)) => {
                    self.overflow.push_front(env);
                    return;
                }
                Err(TrySendError::Disconnected(env)) => {
                    // The worker is gone; the job fails in `poll`.
                    self.overflow.push_front(env);
                    return;
                }
            }
        }
    }

    /// Sends waiting requests and returns the events that have arrived.
    pub fn poll(&mut self) -> Vec<WorkerEvent> {
        self.flush();
        // Read before draining: whatever a dead thread sent is then in the channel.
        let dead = self.thread.as_ref().is_some_and(|t| t.is_finished());
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            self.note(&e);
            out.push(e);
        }
        // A worker that died outside a job's panic guard would leave its jobs
        // open forever: end them so the UI can say so. Jobs it had already
        // handed on to their own threads carry on.
        if dead {
            self.overflow.clear();
            let orphans: Vec<JobId> = self.tokens.keys().filter(|j| !self.handed_on.contains(j)).copied().collect();
            for job in orphans {
                let event =
                    WorkerEvent::Failed { job, error: "the inference worker stopped; restart the studio".into() };
                self.note(&event);
                out.push(event);
            }
        }
        out
    }

    /// Keeps the job sets up to date with `event`.
    fn note(&mut self, event: &WorkerEvent) {
        let job = event.job();
        if event.is_terminal() {
            self.tokens.remove(&job);
            self.own_thread.remove(&job);
            self.handed_on.remove(&job);
        } else if matches!(event, WorkerEvent::Started { .. }) && self.own_thread.contains(&job) {
            self.handed_on.insert(job);
        }
    }

    /// Blocks until the next event (tests and the CLI; never the UI thread).
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Option<WorkerEvent> {
        self.flush();
        let e = self.events.recv_timeout(timeout).ok()?;
        self.note(&e);
        Some(e)
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.requests.try_send(Envelope {
            job: JobId(0),
            cancel: CancelToken::new(),
            request: WorkerRequest::Shutdown,
        });
        for token in self.tokens.values() {
            token.cancel();
        }
        // Joining could wait for a long decode; the thread ends on its own.
        drop(self.thread.take());
    }
}
