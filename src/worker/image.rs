//! Image generation runs on its own named thread, which owns the loaded
//! diffusion pipeline and works through its queue in order: a long
//! denoising never holds up latent decoding, and queued images wait their
//! turn. Each job's cancel token is checked before every step.

use std::path::PathBuf;

use std::time::Instant;

use image::RgbImage;

use super::protocol::{ImageJob, ImageModelRef, PadJob, TravelJob, WorkerEvent, WorkerRequest};
use super::run::{Envelope, EventSink};
use super::skeleton::{JobError, LoadedModel, Outcome, Service};
use crate::diffusion::checkpoint::{SingleFileSpec, clip_vocab_path};
use crate::diffusion::latent_control::scene::LatentScene;
use crate::diffusion::latent_control::travel::{encode_travel, render_travel, travel_record};
use crate::diffusion::model_library::hashes::record_hashes;
use crate::diffusion::pipeline::{DiffusionPipeline, GenerateInputs, ImageRequest};
use crate::io::image_record::ImageRecord;
use crate::io::output::save_numbered;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::train::cancel::CancelToken;

/// The image thread's work: image requests in order, each with the
/// pipeline it names (kept loaded between requests).
pub struct ImageService {
    models_dir: PathBuf,
    backends: super::backends::Backends,
    loaded: LoadedModel<ImageModelRef, DiffusionPipeline>,
    /// The latent pad's encoded prompts, and the model they belong to.
    scene: (Option<ImageModelRef>, LatentScene),
}

impl ImageService {
    /// A service loading installed models from `models_dir`.
    pub fn new(models_dir: PathBuf, backends: super::backends::Backends) -> Self {
        Self { models_dir, backends, loaded: LoadedModel::default(), scene: (None, LatentScene::default()) }
    }
}

impl Service for ImageService {
    fn run(&mut self, env: Envelope, events: &EventSink) -> Outcome {
        let job = env.job;
        let done = match env.request {
            WorkerRequest::GenerateImage(spec) => self.generate(job, &spec, &env.cancel, events)?,
            WorkerRequest::RenderPad(spec) => self.render_pad(job, &spec, &env.cancel, events)?,
            WorkerRequest::RenderTravel(spec) => self.render_travel(job, &spec, &env.cancel, events)?,
            _ => return Err("the image thread only generates images".into()),
        };
        Ok(Some(done.unwrap_or(WorkerEvent::Cancelled { job })))
    }

    fn reset(&mut self) {
        self.loaded.clear();
        self.scene = (None, LatentScene::default());
    }
}

impl ImageService {
    fn pipeline(&mut self, which: &ImageModelRef) -> Result<&DiffusionPipeline, JobError> {
        let models_dir = &self.models_dir;
        let pipeline = self.loaded.get_or_load(which, |which| {
            let device = crate::nn::default_device();
            let dir = match which {
                ImageModelRef::Id(id) => find_manifest(models_dir, id).map_err(|e| e.to_string())?.dir,
                ImageModelRef::Dir(dir) => dir.clone(),
                ImageModelRef::File { file, vae } => {
                    let vocab = Some(clip_vocab_path(models_dir));
                    let spec = SingleFileSpec { file: file.clone(), config: None, vae: vae.clone(), vocab };
                    return DiffusionPipeline::load_single_file(&spec, &device).map_err(|e| e.to_string());
                }
                ImageModelRef::Remote { model } => {
                    return Err(format!("{model} runs on its server; the pad and travel need a model on this machine"));
                }
            };
            DiffusionPipeline::load(&dir, &device).map_err(|e| e.to_string())
        })?;
        Ok(pipeline)
    }

    /// The pipeline for `model` and the text states encoded for it so far.
    fn scene(&mut self, model: &ImageModelRef) -> Result<(&DiffusionPipeline, &mut LatentScene), JobError> {
        if self.scene.0.as_ref() != Some(model) {
            self.scene = (Some(model.clone()), LatentScene::default());
        }
        self.pipeline(model)?;
        match (self.loaded.current(), &mut self.scene.1) {
            (Some(pipeline), scene) => Ok((pipeline, scene)),
            (None, _) => Err("the model did not stay loaded".into()),
        }
    }

    /// A travel, frame by frame, then its file.
    fn render_travel(
        &mut self,
        job: super::JobId,
        spec: &TravelJob,
        cancel: &CancelToken,
        events: &EventSink,
    ) -> Result<Option<WorkerEvent>, JobError> {
        let total = spec.plan.frames;
        events.send(WorkerEvent::Progress { job, step: 0, total, message: format!("loading {}", spec.model) });
        let (pipeline, scene) = self.scene(&spec.model)?;
        let mut on_frame = |index: usize, image: &RgbImage| {
            events.send(WorkerEvent::Progress { job, step: index + 1, total, message: String::new() });
            events.send(WorkerEvent::TravelFrameRendered { job, index, image: image.clone() });
        };
        let frames = render_travel(pipeline, scene, &spec.base, &spec.plan, &mut on_frame, cancel);
        let Some(frames) = frames.map_err(|e| e.to_string())? else { return Ok(None) };
        let record = travel_record(&spec.plan, &spec.base, spec.model.to_string());
        let saved =
            encode_travel(&frames, &spec.plan, &record, spec.format).map_err(|e| e.to_string()).and_then(|bytes| {
                save_numbered(&spec.output_dir, "travel", spec.format.extension(), &bytes).map_err(|e| e.to_string())
            });
        Ok(Some(WorkerEvent::TravelDone { job, saved }))
    }

    /// The latent pad at its cursor (prompts encoded once per model and settings).
    fn render_pad(
        &mut self,
        job: super::JobId,
        spec: &PadJob,
        cancel: &CancelToken,
        events: &EventSink,
    ) -> Result<Option<WorkerEvent>, JobError> {
        let started = Instant::now();
        let (pipeline, scene) = self.scene(&spec.model)?;
        let (request, noise, cond) =
            scene.recipe_start(pipeline, &spec.base, &spec.latent).map_err(|e| e.to_string())?;
        if let Some(decoder) = spec.preview_decoder.clone().filter(|_| request.steps > 1 && spec.output_dir.is_none()) {
            // One step, decoded by the tiny decoder: something on screen at once.
            let quick = ImageRequest { steps: 1, ..request.clone() };
            let inputs = GenerateInputs {
                noise: Some(noise.clone()),
                preview_decoder: Some(decoder),
                preview_decoder_final: true,
                ..GenerateInputs::default()
            };
            let preview = pipeline.generate_conditioned(&quick, inputs, &cond, &mut |_| {}, cancel);
            let Some(preview) = preview.map_err(|e| e.to_string())? else { return Ok(None) };
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            events.send(WorkerEvent::PadPreview { job, image: preview.image, millis });
        }
        let generated = LatentScene::render(pipeline, &request, noise, &cond, &mut |_| {}, cancel);
        let Some(generated) = generated.map_err(|e| e.to_string())? else { return Ok(None) };
        let record = ImageRecord::from_latent(request, spec.model.to_string(), spec.latent.clone());
        let saved = spec.output_dir.as_ref().map(|dir| {
            encode_png(&generated.image, &record.chunks())
                .map_err(|e| e.to_string())
                .and_then(|png| save_numbered(dir, "pad", "png", &png).map_err(|e| e.to_string()))
        });
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Some(WorkerEvent::PadRendered { job, image: generated.image, record: Box::new(record), millis, saved }))
    }

    fn generate(
        &mut self,
        job: super::JobId,
        spec: &ImageJob,
        cancel: &CancelToken,
        events: &EventSink,
    ) -> Result<Option<WorkerEvent>, JobError> {
        if let ImageModelRef::Remote { model } = &spec.model {
            let pool = self.backends.a1111();
            return super::remote_image::generate_remote(&pool, job, spec, model, cancel, events);
        }
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
        let inputs = GenerateInputs {
            init: init.as_ref(),
            noise: spec.noise.as_ref().map(|(n, _)| n.clone()),
            preview_every: spec.preview_every,
            lora_dirs: spec.lora_dirs.clone(),
            preview_decoder: spec.preview_decoder.clone(),
            embedding_dirs: spec.embedding_dirs.clone(),
            ..GenerateInputs::default()
        };
        let generated =
            pipeline.generate_with(&spec.request, inputs, &mut on_step, cancel).map_err(|e| e.to_string())?;
        let Some(generated) = generated else { return Ok(None) };
        let checkpoint = match &spec.model {
            ImageModelRef::File { file, .. } => Some(file.as_path()),
            _ => None,
        };
        let lora_files: Vec<PathBuf> = generated.loras.iter().map(|r| r.path.clone()).collect();
        let (model_hash, lora_hashes) = record_hashes(checkpoint, &lora_files);
        let record = ImageRecord {
            request: spec.request.clone(),
            model: spec.model.to_string(),
            init_image: spec.init.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
            noise_origin: spec.noise.as_ref().map(|(_, origin)| origin.clone()),
            model_hash,
            lora_hashes,
            latent: None,
            served: None,
        };
        // The image reaches the panel even if it cannot be written.
        let saved = encode_png(&generated.image, &record.chunks())
            .map_err(|e| e.to_string())
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
