//! Text generation runs on its own named thread, which owns the loaded
//! language model: a long generation never holds up latent decoding, and the
//! model (mutable state: its KV cache) is used by one thread only.

use super::protocol::{TextModelRef, TokenPiece, WorkerEvent, WorkerRequest};
use super::run::{Envelope, EventSink};
use super::skeleton::{JobError, LoadedModel, Outcome, Service};
use crate::library::{find_manifest, load_text_model_with};
use crate::text::generate::{CachedTokens, GenerateSpec, generate_reusing, prompt_ids};
use crate::text::gguf_llama::{GgufLlama, LoadOptions};
use crate::text::llama::KvPrecision;
use crate::text::model::{TextModel, TextModelError};

/// The text thread's work: generation requests, each run with the model it
/// names (kept loaded between requests, with its KV cache: a conversation's
/// next turn, a regenerated answer or an edited late message computes only
/// the tokens after what the previous request already fed).
pub struct TextService {
    models_dir: std::path::PathBuf,
    backends: super::backends::Backends,
    loaded: LoadedModel<(TextModelRef, KvPrecision), (Box<dyn TextModel>, CachedTokens)>,
}

impl TextService {
    /// A service loading installed models from `models_dir`.
    pub fn new(models_dir: std::path::PathBuf, backends: super::backends::Backends) -> Self {
        Self { models_dir, backends, loaded: LoadedModel::default() }
    }
}

impl Service for TextService {
    fn run(&mut self, env: Envelope, events: &EventSink) -> Outcome {
        let WorkerRequest::Generate { model, spec, kv_cache } = env.request else {
            return Err("the text thread only generates text".into());
        };
        if let TextModelRef::Remote { model, .. } = &model {
            return remote_generate(&self.backends.openai(), env.job, model, &spec, &env.cancel, events);
        }
        let which = (model, kv_cache);
        self.generate(env.job, &which, &spec, &env.cancel, events).map(Some).map_err(|e| JobError(e.to_string()))
    }

    fn reset(&mut self) {
        self.loaded.clear();
    }
}

impl TextService {
    fn model(
        &mut self,
        which: &(TextModelRef, KvPrecision),
    ) -> Result<&mut (Box<dyn TextModel>, CachedTokens), TextModelError> {
        let models_dir = &self.models_dir;
        let model = self.loaded.get_or_load(which, |(which, kv_cache)| {
            let device = crate::nn::default_device();
            let options = LoadOptions { kv_cache: *kv_cache, ..Default::default() };
            let model: Box<dyn TextModel> = match which {
                TextModelRef::Id(id) => {
                    let manifest = find_manifest(models_dir, id)
                        .map_err(|e| TextModelError::Io { path: models_dir.join(id), detail: e.to_string() })?;
                    load_text_model_with(&manifest, &device, options)?
                }
                TextModelRef::File(path) => Box::new(GgufLlama::load_with(path, &device, options)?),
                TextModelRef::Remote { model, .. } => {
                    return Err(TextModelError::Refused { name: model.clone(), detail: "runs on its server".into() });
                }
            };
            Ok::<_, TextModelError>((model, CachedTokens::default()))
        })?;
        Ok(model)
    }

    fn generate(
        &mut self,
        job: super::JobId,
        which: &(TextModelRef, KvPrecision),
        spec: &GenerateSpec,
        cancel: &crate::train::cancel::CancelToken,
        events: &EventSink,
    ) -> Result<WorkerEvent, TextModelError> {
        let (model, cached) = self.model(which)?;
        let model = model.as_mut();
        let prompt = prompt_ids(model, spec)?
            .into_iter()
            .map(|id| TokenPiece { id: Some(id), piece: model.codec().piece(id), probability: None })
            .collect();
        events.send(WorkerEvent::TextStarted { job, model_name: model.name().to_owned(), prompt });
        let generated = generate_reusing(model, cached, spec, cancel, &mut |token, text| {
            let piece =
                token.map(|(id, piece)| TokenPiece { id: Some(id), piece: piece.to_owned(), probability: None });
            events.send(WorkerEvent::TextTokens { job, token: piece, text: text.to_owned() });
        })?;
        Ok(WorkerEvent::TextDone { job, generated: Box::new(generated) })
    }
}

/// A generation on the OpenAI-compatible backends that have `model` (the
/// least-loaded healthy one; the next if it fails, the answer then starting
/// over), its text streamed as the local engine's is. Cancelling closes the
/// stream. Where the server returns log-probabilities, the token view shows
/// each token with its probability.
fn remote_generate(
    pool: &crate::remote::pool::Pool,
    job: super::JobId,
    model: &str,
    spec: &GenerateSpec,
    cancel: &crate::train::cancel::CancelToken,
    events: &EventSink,
) -> Outcome {
    let request = crate::remote::openai::RemoteText { model: model.to_owned(), top_logprobs: 1 };
    let mut on_attempt = |url: &str, _: usize| {
        let model_name = format!("{model} @ {}", crate::spec::backend::short_url(url));
        events.send(WorkerEvent::TextStarted { job, model_name, prompt: Vec::new() });
    };
    let (generated, _) = pool
        .run(Some(model), &mut on_attempt, &mut |server| {
            crate::remote::openai::generate(server, &request, spec, &|| cancel.is_cancelled(), &mut |tokens, text| {
                let token = tokens.first().map(|t| TokenPiece {
                    id: t.id,
                    piece: t.text.clone(),
                    probability: Some(t.logprob.exp()),
                });
                events.send(WorkerEvent::TextTokens { job, token, text: text.to_owned() });
            })
        })
        .map_err(|e| JobError(e.to_string()))?;
    Ok(Some(WorkerEvent::TextDone { job, generated: Box::new(generated) }))
}
