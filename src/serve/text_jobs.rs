//! The text side of `serve`: one generator thread owning the loaded model
//! (with its KV cache, so a client's next chat turn reuses its prefix), fed
//! by a bounded queue. A full queue is refused at once (the client gets a
//! 429), a job whose client went away is cancelled (its connection's
//! receiver is gone, or it was cancelled while queued), and a job past its
//! time limit stops where it is.

use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::library::{find_manifest, load_text_model_with};
use crate::spec::text::{GenerateSpec, Generated};
use crate::text::generate::{CachedTokens, generate_with_logprobs};
use crate::text::model::TextModel;
use crate::train::cancel::CancelToken;

/// One generation asked for by a client.
pub struct TextJob {
    /// Installed model id.
    pub model: String,
    pub spec: GenerateSpec,
    /// Where its text goes; a send that fails means the client is gone.
    pub events: Sender<TextEvent>,
    pub cancel: CancelToken,
    /// The generation stops (as if at its token limit) at this time.
    pub deadline: Instant,
    /// Report each token's log-probability with this many alternatives.
    pub logprobs: Option<usize>,
}

/// A token's log-probability as a client reads it: texts, not ids.
#[derive(Clone, Debug)]
pub struct PieceLogprobs {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// What a job reports to its connection.
#[derive(Debug)]
pub enum TextEvent {
    /// New text (possibly empty mid-character), one per token, with the
    /// token's log-probabilities when the job asked for them.
    Piece(String, Option<PieceLogprobs>),
    /// The generation ended; `Generated` has the whole text and counts.
    Done(Box<Generated>),
    /// It could not run; the message names the model or the cause.
    Failed(String),
}

/// The queue in front of the generator thread.
#[derive(Clone)]
pub struct TextQueue {
    jobs: Sender<TextJob>,
}

impl TextQueue {
    /// Starts the generator thread with room for `capacity` waiting jobs.
    pub fn start(models_dir: PathBuf, capacity: usize) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::bounded(capacity);
        std::thread::Builder::new().name("serve-text".into()).spawn(move || run(&models_dir, &queue))?;
        Ok(Self { jobs })
    }

    /// Queues `job`, or hands it back if the queue is full.
    pub fn submit(&self, job: TextJob) -> Result<(), Box<TextJob>> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => Box::new(job),
        })
    }

    /// Jobs waiting (not counting the one running).
    pub fn waiting(&self) -> usize {
        self.jobs.len()
    }
}

/// The loaded model, its id, what its KV cache holds, and (once a client
/// asked for log-probabilities) every token's text.
struct Loaded {
    id: String,
    model: Box<dyn TextModel>,
    cached: CachedTokens,
    texts: Vec<String>,
}

fn run(models_dir: &std::path::Path, queue: &Receiver<TextJob>) {
    let mut loaded: Option<Loaded> = None;
    for job in queue {
        if job.cancel.is_cancelled() {
            continue;
        }
        let events = job.events.clone();
        // A panic in a model must not end the server: the job fails, the model is dropped.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(models_dir, &mut loaded, &job)));
        let event = match outcome {
            Ok(Ok(generated)) => TextEvent::Done(Box::new(generated)),
            Ok(Err(message)) => TextEvent::Failed(message),
            Err(_) => {
                loaded = None;
                TextEvent::Failed(format!("the studio failed running {} (an internal error)", job.model))
            }
        };
        let _ = events.send(event);
    }
}

fn run_job(models_dir: &std::path::Path, loaded: &mut Option<Loaded>, job: &TextJob) -> Result<Generated, String> {
    if loaded.as_ref().is_none_or(|l| l.id != job.model) {
        *loaded = None;
        let manifest = find_manifest(models_dir, &job.model).map_err(|e| e.to_string())?;
        let model = load_text_model_with(&manifest, &crate::nn::default_device(), Default::default())
            .map_err(|e| e.to_string())?;
        *loaded = Some(Loaded { id: job.model.clone(), model, cached: CachedTokens::default(), texts: Vec::new() });
    }
    let Some(Loaded { model, cached, texts, .. }) = loaded.as_mut() else {
        return Err("no model".into());
    };
    if job.logprobs.is_some() && texts.is_empty() {
        // Each token's own text, for log-probabilities named as clients read them.
        let codec = model.codec();
        *texts = (0..codec.vocab_size() as u32).map(|id| codec.decode(&[id]).unwrap_or_default()).collect();
    }
    let text_of = |id: u32| texts.get(id as usize).cloned().unwrap_or_default();
    generate_with_logprobs(model.as_mut(), cached, &job.spec, &job.cancel, job.logprobs, &mut |_, lp, text| {
        let piece = lp.map(|lp| PieceLogprobs {
            token: text_of(lp.id),
            logprob: lp.logprob,
            top: lp.top.iter().map(|&(id, logprob)| (text_of(id), logprob)).collect(),
        });
        let gone = job.events.send(TextEvent::Piece(text.to_owned(), piece)).is_err();
        if gone || Instant::now() >= job.deadline {
            job.cancel.cancel();
        }
    })
    .map_err(|e| e.to_string())
}
