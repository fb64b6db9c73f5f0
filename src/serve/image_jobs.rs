//! The image side of `serve`: one thread owning the loaded diffusion
//! pipeline, fed by a bounded queue, with A1111's shared progress (the
//! running job's step and latest preview, for `/sdapi/v1/progress`) and its
//! interrupt (which stops the running job; its image so far is returned).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use image::RgbImage;

use crate::diffusion::pipeline::{DiffusionPipeline, GenerateInputs, StepReport};
use crate::io::image_record::ImageRecord;
use crate::library::find_manifest;
use crate::spec::image::ImageRequest;
use crate::train::cancel::CancelToken;

/// One txt2img or img2img call.
pub struct ImageJob {
    /// Installed diffusion model id.
    pub model: String,
    pub request: ImageRequest,
    /// img2img's image.
    pub init: Option<RgbImage>,
    /// Images, at seeds `seed`, `seed + 1`, …
    pub count: usize,
    pub done: Sender<Result<ImagesDone, String>>,
    pub cancel: CancelToken,
}

/// The images of a job, each with its record; `interrupted` when the user
/// interrupted it (the last image is then the preview it had reached).
pub struct ImagesDone {
    pub images: Vec<(RgbImage, ImageRecord)>,
    pub interrupted: bool,
}

/// What `/sdapi/v1/progress` reports.
#[derive(Clone, Default)]
pub struct ImageProgress {
    pub active: bool,
    pub step: usize,
    pub steps: usize,
    /// Images done of the running job, and its total.
    pub image: usize,
    pub images: usize,
    pub preview: Option<RgbImage>,
    /// The running job's token (the interrupt cancels it).
    pub cancel: Option<CancelToken>,
}

/// The queue in front of the image thread, with its shared progress.
#[derive(Clone)]
pub struct ImageQueue {
    jobs: Sender<ImageJob>,
    pub progress: Arc<Mutex<ImageProgress>>,
}

impl ImageQueue {
    /// Starts the image thread with room for `capacity` waiting jobs;
    /// `<lora:NAME>` tags are looked up in `lora_dirs`.
    pub fn start(models_dir: PathBuf, lora_dirs: Vec<PathBuf>, capacity: usize) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::bounded(capacity);
        let progress = Arc::new(Mutex::new(ImageProgress::default()));
        let shared = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("serve-images".into())
            .spawn(move || run(&models_dir, &lora_dirs, &queue, &shared))?;
        Ok(Self { jobs, progress })
    }

    /// Queues `job`, or hands it back if the queue is full.
    pub fn submit(&self, job: ImageJob) -> Result<(), Box<ImageJob>> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => Box::new(job),
        })
    }

    /// Jobs waiting (not counting the one running).
    pub fn waiting(&self) -> usize {
        self.jobs.len()
    }

    /// A snapshot of the progress.
    pub fn snapshot(&self) -> ImageProgress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Stops the running job (A1111's interrupt); `false` if none runs.
    pub fn interrupt(&self) -> bool {
        let cancel = self.progress.lock().ok().and_then(|p| p.cancel.clone());
        cancel.inspect(CancelToken::cancel).is_some()
    }
}

fn run(models_dir: &Path, lora_dirs: &[PathBuf], queue: &Receiver<ImageJob>, progress: &Mutex<ImageProgress>) {
    let mut loaded: Option<(String, DiffusionPipeline)> = None;
    for job in queue {
        if job.cancel.is_cancelled() {
            continue;
        }
        update(progress, |p| {
            *p = ImageProgress {
                active: true,
                steps: job.request.steps,
                images: job.count,
                cancel: Some(job.cancel.clone()),
                ..Default::default()
            }
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(models_dir, lora_dirs, &mut loaded, &job, progress)
        }));
        let result = outcome.unwrap_or_else(|_| {
            loaded = None;
            Err(format!("the studio failed running {} (an internal error)", job.model))
        });
        update(progress, |p| *p = ImageProgress::default());
        let _ = job.done.send(result);
    }
}

fn run_job(
    models_dir: &Path,
    lora_dirs: &[PathBuf],
    loaded: &mut Option<(String, DiffusionPipeline)>,
    job: &ImageJob,
    progress: &Mutex<ImageProgress>,
) -> Result<ImagesDone, String> {
    if loaded.as_ref().is_none_or(|(id, _)| *id != job.model) {
        *loaded = None;
        let manifest = find_manifest(models_dir, &job.model).map_err(|e| e.to_string())?;
        let pipeline =
            DiffusionPipeline::load(&manifest.dir, &crate::nn::default_device()).map_err(|e| e.to_string())?;
        *loaded = Some((job.model.clone(), pipeline));
    }
    let Some((_, pipeline)) = loaded.as_ref() else { return Err("no model".into()) };
    let mut images = Vec::new();
    let mut last_preview = None;
    for i in 0..job.count {
        let request = ImageRequest { seed: job.request.seed.wrapping_add(i as u64), ..job.request.clone() };
        let inputs = GenerateInputs {
            init: job.init.as_ref(),
            preview_every: (request.steps / 10).max(1),
            lora_dirs: lora_dirs.to_vec(),
            ..GenerateInputs::default()
        };
        let mut on_step = |report: StepReport| {
            if let Some(preview) = &report.preview {
                last_preview = Some(preview.clone());
            }
            update(progress, |p| {
                p.step = report.step;
                p.steps = report.total;
                p.image = i;
                if let Some(preview) = &report.preview {
                    p.preview = Some(preview.clone());
                }
            });
        };
        let generated =
            pipeline.generate_with(&request, inputs, &mut on_step, &job.cancel).map_err(|e| e.to_string())?;
        let record = ImageRecord {
            request: request.clone(),
            model: job.model.clone(),
            init_image: job.init.as_ref().map(|_| "init image".to_owned()),
            noise_origin: None,
            model_hash: None,
            lora_hashes: Vec::new(),
            latent: None,
            served: None,
        };
        match generated {
            Some(generated) => images.push((generated.image, record)),
            None => {
                images.extend(last_preview.take().map(|preview| (preview, record)));
                return Ok(ImagesDone { images, interrupted: true });
            }
        }
    }
    Ok(ImagesDone { images, interrupted: false })
}

/// Changes the shared progress (a poisoned lock leaves it as it was).
fn update(progress: &Mutex<ImageProgress>, change: impl FnOnce(&mut ImageProgress)) {
    if let Ok(mut p) = progress.lock() {
        change(&mut p);
    }
}
