//! The job table: what each job is for and how far it got.

use std::collections::BTreeMap;

use super::commands::Slot;
use crate::worker::{JobId, WorkerEvent};

/// What a job's result is used for.
#[derive(Clone, Debug, PartialEq)]
pub enum Purpose {
    /// Loading the selected model.
    LoadModel,
    /// Decoding the current latent.
    Preview,
    /// Decoding the interpolation strip.
    Strip,
    /// Decoding the grid of seeds.
    Grid,
    /// Encoding an image into a slot.
    Encode(Slot),
    /// Writing a file.
    Save,
    /// Training a model.
    Train,
    /// Generating text.
    Generate,
    /// Generating an image.
    Image,
    /// Ranking outliers or denoising with a VAE.
    Analyse,
    /// Rendering the latent pad.
    Pad,
}

/// Where a job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Waiting for the worker.
    Queued,
    /// Running; `total` is 0 when unknown.
    Running { step: usize, total: usize, message: String },
    /// Finished successfully.
    Done,
    /// Failed with a message naming the cause.
    Failed(String),
    /// Cancelled or superseded.
    Cancelled,
}

/// One job.
#[derive(Clone, Debug)]
pub struct Job {
    /// Short description for the status bar.
    pub label: String,
    /// What its result is for.
    pub purpose: Purpose,
    /// Progress.
    pub state: JobState,
    /// The model the job ran on, if any.
    pub model: Option<String>,
}

/// All jobs of this session, newest last.
#[derive(Default)]
pub struct JobTable {
    jobs: BTreeMap<JobId, Job>,
}

/// How many finished jobs to keep for the status bar.
const KEEP_FINISHED: usize = 50;

impl JobTable {
    /// Records a submitted job.
    pub fn add(&mut self, job: JobId, purpose: Purpose, label: impl Into<String>, model: Option<String>) {
        self.jobs.insert(job, Job { label: label.into(), purpose, state: JobState::Queued, model });
        self.prune();
    }

    /// The job, if known.
    pub fn get(&self, job: JobId) -> Option<&Job> {
        self.jobs.get(&job)
    }

    /// Updates the state from a worker event; returns the job's purpose.
    pub fn apply(&mut self, event: &WorkerEvent) -> Option<Purpose> {
        let job = self.jobs.get_mut(&event.job())?;
        job.state = match event {
            WorkerEvent::Started { .. } => JobState::Running { step: 0, total: 0, message: String::new() },
            WorkerEvent::Progress { step, total, message, .. } => {
                JobState::Running { step: *step, total: *total, message: message.clone() }
            }
            WorkerEvent::TrainStage { .. }
            | WorkerEvent::TrainBatch { .. }
            | WorkerEvent::TrainEpoch { .. }
            | WorkerEvent::ImagePreview { .. } => job.state.clone(),
            WorkerEvent::Failed { error, .. } => JobState::Failed(error.clone()),
            WorkerEvent::Cancelled { .. } | WorkerEvent::Superseded { .. } => JobState::Cancelled,
            _ => JobState::Done,
        };
        Some(job.purpose.clone())
    }

    /// Jobs that have not finished, oldest first.
    pub fn active(&self) -> impl Iterator<Item = (JobId, &Job)> {
        self.jobs
            .iter()
            .filter(|(_, j)| matches!(j.state, JobState::Queued | JobState::Running { .. }))
            .map(|(id, j)| (*id, j))
    }

    /// Whether a job with this purpose is queued or running.
    pub fn any_active(&self, purpose: &Purpose) -> bool {
        self.active().any(|(_, j)| &j.purpose == purpose)
    }

    fn prune(&mut self) {
        let finished: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| !matches!(j.state, JobState::Queued | JobState::Running { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEEP_FINISHED)) {
            self.jobs.remove(id);
        }
    }
}
