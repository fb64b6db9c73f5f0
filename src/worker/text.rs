//! Text generation runs on its own named thread, which owns the loaded
//! language model: a long generation never holds up latent decoding, and the
//! model (mutable state: its KV cache) is used by one thread only.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::{Receiver, Sender};

use super::protocol::{TextModelRef, TokenPiece, WorkerEvent, WorkerRequest};
use super::run::{Envelope, EventSink, panic_message};
use crate::library::{find_manifest, load_text_model};
use crate::text::generate::{GenerateSpec, generate, prompt_ids};
use crate::text::gguf_llama::GgufLlama;
use crate::text::model::{TextModel, TextModelError};

/// The app-facing end: generation requests go in, events come out through the sink.
pub struct TextThread {
    requests: Sender<Envelope>,
}

impl TextThread {
    /// Starts the thread; models come from `models_dir`.
    pub fn spawn(models_dir: std::path::PathBuf, events: EventSink) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("text-generator".into())
            .spawn(move || TextWorker { models_dir, loaded: None, events }.run(rx))?;
        Ok(Self { requests: tx })
    }

    /// Hands a `Generate` request over; false if the thread is gone.
    pub fn submit(&self, env: Envelope) -> Result<(), Envelope> {
        self.requests.send(env).map_err(|e| e.0)
    }
}

struct TextWorker {
    models_dir: std::path::PathBuf,
    /// The model last used, kept loaded.
    loaded: Option<(TextModelRef, Box<dyn TextModel>)>,
    events: EventSink,
}

impl TextWorker {
    fn run(mut self, requests: Receiver<Envelope>) {
        for env in requests {
            let job = env.job;
            if env.cancel.is_cancelled() {
                self.events.send(WorkerEvent::Cancelled { job });
                continue;
            }
            let WorkerRequest::Generate { model, spec } = env.request else {
                self.events.send(WorkerEvent::Failed { job, error: "the text thread only generates text".into() });
                continue;
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| self.generate(job, &model, &spec, &env.cancel)));
            let event = match outcome {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => WorkerEvent::Failed { job, error: e.to_string() },
                Err(panic) => {
                    // The model may be mid-update: load it afresh next time.
                    self.loaded = None;
                    WorkerEvent::Failed { job, error: format!("internal error: {}", panic_message(&panic)) }
                }
            };
            self.events.send(event);
        }
    }

    fn model(&mut self, which: &TextModelRef) -> Result<&mut dyn TextModel, TextModelError> {
        if self.loaded.as_ref().is_none_or(|(r, _)| r != which) {
            self.loaded = None; // free the old model before loading the next
            let device = crate::nn::default_device();
            let model: Box<dyn TextModel> = match which {
                TextModelRef::Id(id) => {
                    let manifest = find_manifest(&self.models_dir, id)
                        .map_err(|e| TextModelError::Io { path: self.models_dir.join(id), detail: e.to_string() })?;
                    load_text_model(&manifest, &device)?
                }
                TextModelRef::File(path) => Box::new(GgufLlama::load(path, &device)?),
            };
            return Ok(self.loaded.insert((which.clone(), model)).1.as_mut());
        }
        match &mut self.loaded {
            Some((_, model)) => Ok(model.as_mut()),
            None => {
                Err(TextModelError::Io { path: which.to_string().into(), detail: "the model is not loaded".into() })
            }
        }
    }

    fn generate(
        &mut self,
        job: super::JobId,
        which: &TextModelRef,
        spec: &GenerateSpec,
        cancel: &crate::train::cancel::CancelToken,
    ) -> Result<WorkerEvent, TextModelError> {
        let events = self.events.clone();
        let model = self.model(which)?;
        let prompt =
            prompt_ids(model, spec)?.into_iter().map(|id| TokenPiece { id, piece: model.codec().piece(id) }).collect();
        events.send(WorkerEvent::TextStarted { job, model_name: model.name().to_owned(), prompt });
        let generated = generate(model, spec, cancel, &mut |token, text| {
            let piece = token.map(|(id, piece)| TokenPiece { id, piece: piece.to_owned() });
            events.send(WorkerEvent::TextTokens { job, token: piece, text: text.to_owned() });
        })?;
        Ok(WorkerEvent::TextDone { job, generated: Box::new(generated) })
    }
}
