//! The Models view's worker: one `hub-downloads` thread that fetches
//! queued pulls in order (one at a time, so each gets the full line), and
//! short helper threads that read repo descriptions and list or delete
//! what the hub cache holds. Nothing here blocks the caller: commands go
//! over a channel, pause and cancel through a shared table the download
//! checks after every chunk, and events come back through [`Downloads::poll`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Waker;
use crate::hub::Hub;
use crate::hub::cache::{RepoCache, RepoId};
use crate::hub::config::HubConfig;
use crate::hub::download::{Flow, Outcome};
use crate::hub::installed::{InstalledRepo, delete, installed};
use crate::hub::pull::{PullPlan, pull};
use crate::hub::repo_info::RepoInfo;

/// Progress is reported at most this often (the last chunk always).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A queued pull's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DownloadId(pub u64);

/// How a pull ended.
#[derive(Clone, Debug, PartialEq)]
pub enum DownloadEnd {
    /// The snapshot folder.
    Done(PathBuf),
    Paused,
    Cancelled,
    Failed(String),
}

/// What the downloads worker reports.
#[derive(Clone, Debug, PartialEq)]
pub enum DownloadEvent {
    /// A repo's description (for the file list), or why there is none.
    Described {
        repo: String,
        revision: String,
        result: Result<RepoInfo, String>,
    },
    /// A pull began (or resumed) on the downloads thread.
    Started {
        id: DownloadId,
    },
    Progress {
        id: DownloadId,
        file: String,
        done: u64,
        total: u64,
    },
    Finished {
        id: DownloadId,
        end: DownloadEnd,
    },
    /// What the hub cache holds now.
    Installed(Vec<InstalledRepo>),
    /// A delete or listing failed.
    Error(String),
}

struct Job {
    id: DownloadId,
    /// The Hub settings when it was queued.
    hub: Hub,
    plan: PullPlan,
    /// The revision the user named (`main`), recorded as pointing at the plan's commit.
    branch: String,
}

/// The app's handle on the downloads worker.
pub struct Downloads {
    hub: Hub,
    jobs: Sender<Job>,
    events_tx: Sender<DownloadEvent>,
    events: Receiver<DownloadEvent>,
    controls: Arc<Mutex<HashMap<DownloadId, Flow>>>,
    waker: Waker,
    next_id: u64,
}

impl Downloads {
    /// Starts the downloads thread for the Hub `config` describes.
    pub fn spawn(config: HubConfig, waker: Waker) -> std::io::Result<Self> {
        let hub = Hub::new(config);
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let controls: Arc<Mutex<HashMap<DownloadId, Flow>>> = Arc::default();
        let thread = Worker { events: events_tx.clone(), controls: controls.clone(), waker: waker.clone() };
        std::thread::Builder::new().name("hub-downloads".into()).spawn(move || {
            for job in jobs_rx {
                thread.run(job);
            }
        })?;
        Ok(Self { hub, jobs: jobs_tx, events_tx, events, controls, waker, next_id: 1 })
    }

    pub fn config(&self) -> &HubConfig {
        self.hub.config()
    }

    /// Uses new settings (a token, say) for what is asked from now on.
    pub fn set_config(&mut self, config: HubConfig) {
        self.hub = Hub::new(config);
    }

    /// Reads `repo`'s description off this thread.
    pub fn describe(&self, repo: &str, revision: &str) {
        let (hub, events, waker) = (self.hub.clone(), self.events_tx.clone(), self.waker.clone());
        let (repo, revision) = (repo.trim().to_owned(), revision.trim().to_owned());
        self.helper("hub-describe", move || {
            let result = RepoId::parse(&repo)
                .map_err(|e| e.to_string())
                .and_then(|id| hub.repo_info(&id, &revision).map_err(|e| e.to_string()));
            let _ = events.send(DownloadEvent::Described { repo, revision, result });
            waker();
        });
    }

    /// Queues a pull; it starts when those before it end.
    pub fn enqueue(&mut self, plan: PullPlan, branch: &str) -> DownloadId {
        let id = self.new_id();
        self.requeue(id, plan, branch);
        id
    }

    /// A number for a pull that is not queued yet (one restored from the settings).
    pub fn new_id(&mut self) -> DownloadId {
        let id = DownloadId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Queues a paused or failed pull again under its id (resuming from its partial files).
    pub fn requeue(&mut self, id: DownloadId, plan: PullPlan, branch: &str) {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let _ = self.jobs.send(Job { id, hub: self.hub.clone(), plan, branch: branch.to_owned() });
    }

    /// Queues a paused pull that was cancelled, so the thread deletes its partial files.
    pub fn requeue_cancelled(&mut self, id: DownloadId, plan: PullPlan, branch: &str) {
        self.cancel(id);
        let _ = self.jobs.send(Job { id, hub: self.hub.clone(), plan, branch: branch.to_owned() });
    }

    /// Pauses a running or queued pull (its partial file is kept).
    pub fn pause(&self, id: DownloadId) {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner).insert(id, Flow::Pause);
    }

    /// Stops a pull and deletes its partial file.
    pub fn cancel(&self, id: DownloadId) {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner).insert(id, Flow::Cancel);
    }

    /// Lists the hub cache off this thread (an `Installed` event).
    pub fn refresh_installed(&self) {
        let (cache_dir, events, waker) = (self.config().cache_dir.clone(), self.events_tx.clone(), self.waker.clone());
        self.helper("hub-list", move || {
            let _ = events.send(DownloadEvent::Installed(installed(&cache_dir)));
            waker();
        });
    }

    /// Deletes a repo from the hub cache off this thread, then lists it again.
    pub fn delete(&self, repo: RepoId) {
        let (cache_dir, events, waker) = (self.config().cache_dir.clone(), self.events_tx.clone(), self.waker.clone());
        self.helper("hub-delete", move || {
            if let Err(e) = delete(&cache_dir, &repo) {
                let _ = events.send(DownloadEvent::Error(format!("deleting {repo} failed: {e}")));
            }
            let _ = events.send(DownloadEvent::Installed(installed(&cache_dir)));
            waker();
        });
    }

    fn helper(&self, name: &str, work: impl FnOnce() + Send + 'static) {
        if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(work) {
            let _ = self.events_tx.send(DownloadEvent::Error(format!("cannot start a thread: {e}")));
        }
    }

    /// The events that have arrived (never blocks).
    pub fn poll(&self) -> Vec<DownloadEvent> {
        self.events.try_iter().collect()
    }

    /// Waits for the next event (tests; never the UI thread).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<DownloadEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

/// The downloads thread's side.
struct Worker {
    events: Sender<DownloadEvent>,
    controls: Arc<Mutex<HashMap<DownloadId, Flow>>>,
    waker: Waker,
}

impl Worker {
    fn send(&self, event: DownloadEvent) {
        let _ = self.events.send(event);
        (self.waker)();
    }

    fn control(&self, id: DownloadId) -> Flow {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner).get(&id).copied().unwrap_or(Flow::Continue)
    }

    fn run(&self, job: Job) {
        let id = job.id;
        // Paused or cancelled while it waited in the queue.
        let end = match self.control(id) {
            Flow::Pause => DownloadEnd::Paused,
            Flow::Cancel => {
                drop_partials(&job.hub, &job.plan);
                DownloadEnd::Cancelled
            }
            Flow::Continue => {
                self.send(DownloadEvent::Started { id });
                let mut last = Instant::now();
                let mut report = |p: &crate::hub::pull::PullProgress| {
                    if last.elapsed() >= PROGRESS_EVERY || p.done == p.total {
                        last = Instant::now();
                        self.send(DownloadEvent::Progress { id, file: p.file.clone(), done: p.done, total: p.total });
                    }
                    self.control(id)
                };
                match pull(&job.hub, &job.plan, &job.branch, &mut report) {
                    Ok(Outcome::Done(path)) => DownloadEnd::Done(path),
                    Ok(Outcome::Paused) => DownloadEnd::Paused,
                    Ok(Outcome::Cancelled) => DownloadEnd::Cancelled,
                    Err(e) => DownloadEnd::Failed(e.to_string()),
                }
            }
        };
        // The listing first: the app refreshes its pickers from it when the pull ends.
        self.send(DownloadEvent::Installed(installed(&job.hub.config().cache_dir)));
        self.send(DownloadEvent::Finished { id, end });
    }
}

/// Deletes the partial blobs a paused pull left (named by their sha256).
fn drop_partials(hub: &Hub, plan: &PullPlan) {
    let cache = RepoCache::new(&hub.config().cache_dir, &plan.repo);
    for sha in plan.files.iter().filter_map(|f| f.sha256.as_deref()) {
        let _ = std::fs::remove_file(cache.incomplete_blob(sha));
    }
}
