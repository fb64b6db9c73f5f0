//! The worker thread: takes requests in order, coalesces previews, runs each
//! job inside a panic guard and reports events.

use std::collections::VecDeque;
use std::path::Path;

use crossbeam_channel::{Receiver, Sender};

use super::cache::ModelCache;
use super::handle::Waker;
use super::image::ImageService;
use super::protocol::{JobId, SaveFormat, SaveTarget, WorkerEvent, WorkerRequest};
use super::skeleton::{Outcome, ServiceThread, guarded, hand_on};
use super::text::TextService;
use super::training::{spawn_gan_watch, spawn_run};
use super::vae_tools::{DenoiseInput, SHOWN_OUTLIERS, denoise_file, rank_folder};
use crate::io::export::{make_grid, upscale};
use crate::io::gif_text::encode_gif;
use crate::io::image_folder::Fit;
use crate::io::latent_map::read_latent_map;
use crate::io::output::{save_numbered, write_new_file};
use crate::io::png_meta::encode_png;
use crate::train::cancel::CancelToken;

/// A request with its job id and cancel token.
pub struct Envelope {
    /// The job.
    pub job: JobId,
    /// Set by the app to cancel.
    pub cancel: CancelToken,
    /// What to do.
    pub request: WorkerRequest,
}

/// State owned by the worker thread.
pub struct Worker {
    cache: ModelCache,
    requests: Receiver<Envelope>,
    events: EventSink,
    queue: VecDeque<Envelope>,
    /// Started on the first text request.
    text: Option<ServiceThread>,
    /// Started on the first image request.
    image: Option<ServiceThread>,
    /// The remote backends the text and image threads run remote jobs on.
    backends: super::backends::Backends,
}

/// Least time between two wake-ups of the UI for streamed text, unless the
/// app sets another ([`EventSink::set_stream_wake_interval`]): a frame per
/// token at 150+ tokens/s would take the cores the model runs on. Text then
/// appears in steps of a quarter second.
pub const STREAM_WAKE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends events and wakes the UI.
#[derive(Clone)]
pub struct EventSink {
    tx: Sender<WorkerEvent>,
    waker: Waker,
    /// When a streamed event last woke the UI.
    last_stream_wake: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Least time between two such wake-ups, in milliseconds.
    stream_interval_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventSink {
    /// A sink sending on `tx` and calling `waker` after each event.
    pub fn new(tx: Sender<WorkerEvent>, waker: Waker) -> Self {
        let interval = STREAM_WAKE_INTERVAL.as_millis() as u64;
        Self {
            tx,
            waker,
            last_stream_wake: Default::default(),
            stream_interval_ms: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(interval)),
        }
    }

    /// Sets the least time between two wake-ups for streamed text (for this
    /// sink and every clone of it).
    pub fn set_stream_wake_interval(&self, interval: std::time::Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.stream_interval_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Delivers `event`; a closed app is not an error for the worker. A
    /// streamed token wakes the UI only if the last such wake-up is at least
    /// the stream interval old: the tokens in between are drawn by the
    /// next frame, which the next token (or the final event) brings.
    pub fn send(&self, event: WorkerEvent) {
        let streamed = matches!(event, WorkerEvent::TextTokens { .. });
        let _ = self.tx.send(event);
        if streamed {
            let now = std::time::Instant::now();
            let Ok(mut last) = self.last_stream_wake.lock() else { return (self.waker)() };
            let interval = self.stream_interval_ms.load(std::sync::atomic::Ordering::Relaxed);
            if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_millis(interval)) {
                return;
            }
            *last = Some(now);
        }
        (self.waker)();
    }
}

impl Worker {
    /// A worker over `cache`, reading `requests` and reporting to `events`.
    pub fn new(
        cache: ModelCache,
        requests: Receiver<Envelope>,
        events: EventSink,
        backends: super::backends::Backends,
    ) -> Self {
        Self { cache, requests, events, queue: VecDeque::new(), text: None, image: None, backends }
    }

    /// Serves requests until `Shutdown` or until the app drops its handle.
    pub fn run(mut self) {
        loop {
            if self.queue.is_empty() {
                match self.requests.recv() {
                    Ok(env) => self.queue.push_back(env),
                    Err(_) => return,
                }
            }
            self.queue.extend(self.requests.try_iter());
            self.coalesce();
            let Some(env) = self.queue.pop_front() else {
                continue;
            };
            if matches!(env.request, WorkerRequest::Shutdown) {
                return;
            }
            if env.cancel.is_cancelled() {
                self.events.send(WorkerEvent::Cancelled { job: env.job });
                continue;
            }
            self.events.send(WorkerEvent::Started { job: env.job });
            let (job, events) = (env.job, self.events.clone());
            guarded(job, &events, || self.execute(env));
        }
    }

    /// Drops every queued preview that a newer preview of the same stream replaces.
    fn coalesce(&mut self) {
        let mut keep = VecDeque::with_capacity(self.queue.len());
        let queued: Vec<Envelope> = self.queue.drain(..).collect();
        for (i, env) in queued.iter().enumerate() {
            let newer = env
                .request
                .preview_stream()
                .is_some_and(|s| queued[i + 1..].iter().any(|later| later.request.preview_stream() == Some(s)));
            if newer {
                self.events.send(WorkerEvent::Superseded { job: env.job });
            }
            keep.push_back(!newer);
        }
        self.queue = queued.into_iter().zip(keep).filter_map(|(e, k)| k.then_some(e)).collect();
    }

    fn execute(&mut self, env: Envelope) -> Outcome {
        let job = env.job;
        Ok(Some(match env.request {
            WorkerRequest::LoadModel { model } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let manifest = m.manifest().clone();
                let latent_map = match manifest.latent_map_path() {
                    Some(path) => Some(read_latent_map(&path)?),
                    None => None,
                };
                WorkerEvent::ModelLoaded {
                    job,
                    can_encode: m.can_encode(),
                    directions: m.directions(),
                    manifest: Box::new(manifest),
                    latent_map,
                }
            }
            WorkerRequest::Decode { model, latents, .. } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let images = m.decode(&latents).map_err(|e| e.to_string())?;
                WorkerEvent::Decoded { job, images, latents }
            }
            WorkerRequest::Encode { model, image } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let img = image::open(&image).map_err(|e| format!("cannot read image {}: {e}", image.display()))?;
                let latent = m.encode(&img).map_err(|e| e.to_string())?;
                WorkerEvent::Encoded { job, latent, source: image }
            }
            WorkerRequest::Save { model, latents, settings, format, target, scale } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let images = m.decode(&latents).map_err(|e| e.to_string())?;
                // Large factors would only allocate huge images; 64× already turns 28 px into 1792.
                let scale = scale.clamp(1, 64);
                if env.cancel.is_cancelled() {
                    return Ok(Some(WorkerEvent::Cancelled { job }));
                }
                let (bytes, ext) = match format {
                    SaveFormat::Png { columns } => {
                        let img = if images.len() == 1 { images[0].clone() } else { make_grid(&images, columns, 1) };
                        (encode_png(&upscale(&img, scale), &settings.text_chunks())?, "png")
                    }
                    SaveFormat::Gif { delay_ms } => {
                        let frames: Vec<_> = images.iter().map(|i| upscale(i, scale)).collect();
                        (encode_gif(&frames, delay_ms, &settings.text_chunks())?, "gif")
                    }
                };
                let path = match target {
                    SaveTarget::Numbered { dir, stem } => save_numbered(&dir, &stem, ext, &bytes),
                    SaveTarget::Exact(path) => write_new_file(&path, &bytes).map(|()| path),
                }
                .map_err(|e| e.to_string())?;
                WorkerEvent::Saved { job, path }
            }
            WorkerRequest::Outliers { model, folder, fit } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let ranking = Box::new(rank_folder(m.as_ref(), &folder, fit, SHOWN_OUTLIERS)?);
                WorkerEvent::OutliersRanked { job, ranking }
            }
            WorkerRequest::Denoise { model, image, noise, seed } => {
                let m = self.cache.get(&model).map_err(|e| e.to_string())?;
                let input = DenoiseInput { path: &image, fit: Fit::Crop, noise, seed };
                let result = Box::new(denoise_file(m.as_ref(), &input)?);
                WorkerEvent::Denoised { job, result }
            }
            WorkerRequest::SaveText { contents, target } => {
                let path = match target {
                    SaveTarget::Numbered { dir, stem } => save_numbered(&dir, &stem, "txt", contents.as_bytes()),
                    SaveTarget::Exact(path) => write_new_file(&path, contents.as_bytes()).map(|()| path),
                }
                .map_err(|e| e.to_string())?;
                WorkerEvent::Saved { job, path }
            }
            WorkerRequest::Generate { .. } => {
                let (models_dir, events) = (self.cache.models_dir().to_owned(), self.events.clone());
                let start = || {
                    ServiceThread::spawn("text-generator", events, TextService::new(models_dir, self.backends.clone()))
                };
                return hand_on(&mut self.text, "text", start, env);
            }
            WorkerRequest::GenerateImage(_) | WorkerRequest::RenderPad(_) | WorkerRequest::RenderTravel(_) => {
                let (models_dir, events) = (self.cache.models_dir().to_owned(), self.events.clone());
                let start = || {
                    ServiceThread::spawn(
                        "image-generator",
                        events,
                        ImageService::new(models_dir, self.backends.clone()),
                    )
                };
                return hand_on(&mut self.image, "image", start, env);
            }
            WorkerRequest::Train(request) => {
                spawn_run(job, *request, env.cancel, self.events.clone())
                    .map_err(|e| format!("cannot start the training thread: {e}"))?;
                return Ok(None);
            }
            WorkerRequest::WatchGanRun { folder } => {
                spawn_gan_watch(job, folder, env.cancel, self.events.clone())
                    .map_err(|e| format!("cannot start the watching thread: {e}"))?;
                return Ok(None);
            }
            WorkerRequest::Shutdown => return Ok(None),
        }))
    }

    /// The folder models come from.
    pub fn models_dir(&self) -> &Path {
        self.cache.models_dir()
    }
}
