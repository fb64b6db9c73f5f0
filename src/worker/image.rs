//! Image generation runs on its own named thread, which owns the loaded
//! diffusion pipeline and works through its queue in order: a long
//! denoising never holds up latent decoding, and queued images wait their
//! turn. Each job's cancel token is checked before every step.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};

use super::protocol::{ImageJob, ImageModelRef, WorkerEvent, WorkerRequest};
use super::run::{Envelope, EventSink, panic_message};
use crate::diffusion::pipeline::DiffusionPipeline;
use crate::io::image_record::ImageRecord;
use crate::io::output::save_numbered;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::train::cancel::CancelToken;

/// The app-facing end: image requests go in, events come out through the sink.
pub struct ImageThread {
    requests: Sender<Envelope>,
}

impl ImageThread {
    /// Starts the thread; installed models come from `models_dir`.
    pub fn spawn(models_dir: PathBuf, events: EventSink) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("image-generator".into())
            .spawn(move || ImageWorker { models_dir, loaded: None, events }.run(rx))?;
        Ok(Self { requests: tx })
    }

    /// Queues a `GenerateImage` request; gives it back if the thread is gone.
    pub fn submit(&self, env: Envelope) -> Result<(), Envelope> {
        self.requests.send(env).map_err(|e| e.0)
    }
}

struct ImageWorker {
    models_dir: PathBuf,
    loaded: Option<(ImageModelRef, DiffusionPipeline)>,
    events: EventSink,
}

impl ImageWorker {
    fn run(mut self, requests: Receiver<Envelope>) {
        for env in requests {
            let job = env.job;
            if env.cancel.is_cancelled() {
                self.events.send(WorkerEvent::Cancelled { job });
                continue;
            }
            let WorkerRequest::GenerateImage(spec) = env.request else {
                self.events.send(WorkerEvent::Failed { job, error: "the image thread only generates images".into() });
                continue;
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| self.generate(job, &spec, &env.cancel)));
            let event = match outcome {
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => WorkerEvent::Cancelled { job },
                Ok(Err(error)) => WorkerEvent::Failed { job, error },
                Err(panic) => {
                    self.loaded = None;
                    WorkerEvent::Failed { job, error: format!("internal error: {}", panic_message(&panic)) }
                }
            };
            self.events.send(event);
        }
    }

    fn pipeline(&mut self, which: &ImageModelRef) -> Result<&DiffusionPipeline, String> {
        if self.loaded.as_ref().is_none_or(|(r, _)| r != which) {
            self.loaded = None; // free the old model before loading the next
            let dir = match which {
                ImageModelRef::Id(id) => find_manifest(&self.models_dir, id).map_err(|e| e.to_string())?.dir,
                ImageModelRef::Dir(dir) => dir.clone(),
            };
            let pipeline = DiffusionPipeline::load(&dir, &crate::nn::default_device()).map_err(|e| e.to_string())?;
            self.loaded = Some((which.clone(), pipeline));
        }
        self.loaded.as_ref().map(|(_, p)| p).ok_or_else(|| "the model is not loaded".to_owned())
    }

    fn generate(
        &mut self,
        job: super::JobId,
        spec: &ImageJob,
        cancel: &CancelToken,
    ) -> Result<Option<WorkerEvent>, String> {
        let events = self.events.clone();
        let total = spec.request.steps;
        events.send(WorkerEvent::Progress { job, step: 0, total, message: format!("loading {}", spec.model) });
        let pipeline = self.pipeline(&spec.model)?;
        let init = match &spec.init {
            Some(path) => Some(
                image::open(path).map_err(|e| format!("cannot read the init image {}: {e}", path.display()))?.to_rgb8(),
            ),
            None => None,
        };
        events.send(WorkerEvent::Progress { job, step: 0, total, message: String::new() });
        let mut on_step = |report: crate::diffusion::pipeline::StepReport| {
            events.send(WorkerEvent::Progress { job, step: report.step, total: report.total, message: String::new() });
            if let Some(image) = report.preview {
                events.send(WorkerEvent::ImagePreview { job, step: report.step, image });
            }
        };
        let noise = spec.noise.as_ref().map(|(n, _)| n.clone());
        let generated = pipeline
            .generate(&spec.request, init.as_ref(), noise, spec.preview_every, &mut on_step, cancel)
            .map_err(|e| e.to_string())?;
        let Some(generated) = generated else { return Ok(None) };
        let record = ImageRecord {
            request: spec.request.clone(),
            model: spec.model.to_string(),
            init_image: spec.init.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
            noise_origin: spec.noise.as_ref().map(|(_, origin)| origin.clone()),
        };
        // The image reaches the panel even if it cannot be written.
        let saved = encode_png(&generated.image, &record.chunks())
            .and_then(|png| save_numbered(&spec.output_dir, "image", "png", &png).map_err(|e| e.to_string()));
        Ok(Some(WorkerEvent::ImageDone {
            job,
            image: generated.image,
            record: Box::new(record),
            noise: generated.noise,
            saved,
        }))
    }
}
