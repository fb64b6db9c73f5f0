//! Messages between the app (UI thread) and the worker thread.

use std::path::PathBuf;

use image::RgbImage;

use super::train_plan::TrainRequest;
use super::vae_tools::{DenoiseResult, OutlierRanking};
use crate::diffusion::pipeline::ImageRequest;
use crate::io::image_folder::Fit;
use crate::io::image_record::ImageRecord;
use crate::io::latent_map::LatentMap;
use crate::io::manifest::ModelManifest;
use crate::io::png_meta::ImageSettings;
use crate::spec::latent_control::{AnimationFormat, LatentRecipe, TravelPlan};
use crate::spec::text::KvPrecision;
pub use crate::spec::text::TextModelRef;
use crate::spec::train::{EpochSummary, TrainTick};
use crate::text::generate::{GenerateSpec, Generated};

/// Identifies one job from request to its final event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// How a save request lays out its images.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveFormat {
    /// One PNG: a single image, or a grid with this many columns.
    Png { columns: usize },
    /// A looping animated GIF, one frame per latent.
    Gif { delay_ms: u32 },
}

/// Where a save request writes.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveTarget {
    /// `DIR/STEM-NNNN.EXT` with the first free number.
    Numbered { dir: PathBuf, stem: String },
    /// Exactly this path, which must not exist yet.
    Exact(PathBuf),
}

/// A diffusion model to run: an installed one, or a diffusers folder the user opened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageModelRef {
    /// Installed model id (a manifest of the diffusion family).
    Id(String),
    /// A folder in the diffusers layout anywhere on disk.
    Dir(PathBuf),
    /// A single-file checkpoint (A1111/ComfyUI layout), optionally with a separate VAE file.
    File { file: PathBuf, vae: Option<PathBuf> },
    /// A checkpoint of the A1111-compatible backends (their title for it).
    Remote { model: String },
}

impl std::fmt::Display for ImageModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Dir(path) => write!(
                f,
                "{}",
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
            ),
            Self::Remote { model } => write!(f, "{model} (remote)"),
            // A1111 names a checkpoint by its file stem.
            Self::File { file, .. } => write!(
                f,
                "{}",
                file.file_stem().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned())
            ),
        }
    }
}

/// One image to generate.
#[derive(Clone, Debug)]
pub struct ImageJob {
    pub model: ImageModelRef,
    pub request: ImageRequest,
    /// img2img: the init image.
    pub init: Option<PathBuf>,
    /// The initial latent, when not the seed's, and where it came from.
    pub noise: Option<(Vec<f32>, String)>,
    /// Preview every this many steps (0: none).
    pub preview_every: usize,
    /// Where the finished PNG is written (numbered, never overwriting).
    pub output_dir: PathBuf,
    /// Where the prompt's `<lora:name>` files are looked up (the library's folders).
    pub lora_dirs: Vec<PathBuf>,
    /// A tiny preview decoder (TAESD) for the previews, if the library has one for this model.
    pub preview_decoder: Option<PathBuf>,
    /// Folders of textual-inversion embeddings (the library's).
    pub embedding_dirs: Vec<PathBuf>,
}

/// One image from the latent pad (and concept sliders) of a diffusion model.
#[derive(Clone, Debug)]
pub struct PadJob {
    pub model: ImageModelRef,
    /// Sampling settings (steps, sampler, guidance, size, negative prompt);
    /// prompts and seeds come from the pad.
    pub base: ImageRequest,
    pub latent: LatentRecipe,
    /// Also write the PNG (numbered, never overwriting) into this folder.
    pub output_dir: Option<PathBuf>,
    /// A tiny decoder (TAESD) for a one-step preview before the full render
    /// (Stable Diffusion models, whose full render takes seconds).
    pub preview_decoder: Option<PathBuf>,
}

/// A travel through keyframes of a diffusion model, written as one animation.
#[derive(Clone, Debug)]
pub struct TravelJob {
    pub model: ImageModelRef,
    /// Sampling settings (a deterministic sampler); prompts and seeds come from the keyframes.
    pub base: ImageRequest,
    pub plan: TravelPlan,
    pub format: AnimationFormat,
    /// The folder the animation is written into (numbered, never overwriting).
    pub output_dir: PathBuf,
}

/// One token as the text panel shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenPiece {
    /// Token id (`None` from a server that does not give ids).
    pub id: Option<u32>,
    /// What the token stands for on its own (`piece` of the tokenizer).
    pub piece: String,
    /// Its probability, where a remote server reported it.
    pub probability: Option<f32>,
}

/// Work the app asks of the worker.
#[derive(Clone, Debug)]
pub enum WorkerRequest {
    /// Load a model (and its latent map) into the cache.
    LoadModel { model: String },
    /// Decode latents into images. Pending previews with the same `stream`
    /// are coalesced: only the newest is computed.
    Decode { model: String, latents: Vec<Vec<f32>>, preview: Option<String> },
    /// Encode an image file into the model's latent space.
    Encode { model: String, image: PathBuf },
    /// Decode and write a file; never coalesced or dropped.
    Save {
        model: String,
        latents: Vec<Vec<f32>>,
        settings: ImageSettings,
        format: SaveFormat,
        target: SaveTarget,
        scale: u32,
    },
    /// Write generated text (with its settings) to a new file.
    SaveText { contents: String, target: SaveTarget },
    /// Generate text on the text thread; tokens stream back as events.
    /// `kv_cache` is how our engine keeps the model's cache (a change reloads it).
    Generate { model: TextModelRef, spec: GenerateSpec, kv_cache: KvPrecision },
    /// Generate an image on the image thread (jobs run in order); steps,
    /// previews and the saved result come back as events.
    GenerateImage(Box<ImageJob>),
    /// Render the latent pad at its cursor on the image thread, which keeps
    /// every prompt's text states between renders.
    RenderPad(Box<PadJob>),
    /// Render a travel frame by frame on the image thread (frames come back
    /// as they are done) and write it as a GIF or APNG.
    RenderTravel(Box<TravelJob>),
    /// Train a model of any family on its own thread into a run folder,
    /// which ends as `latent-studio train … --out` leaves its folder
    /// (checkpoints, progress files, the exported model); losses, epoch
    /// reports and sample grids arrive as events.
    Train(Box<TrainRequest>),
    /// Rank the images below `folder` by how unusual the VAE `model` finds them.
    Outliers { model: String, folder: PathBuf, fit: Fit },
    /// Add noise (standard deviation `noise`, from `seed`) to the image at
    /// `image` and encode and decode it with the VAE `model`; queued ones
    /// are coalesced as a slider moves.
    Denoise { model: String, image: PathBuf, noise: f32, seed: u64 },
    /// Follow a GAN run of `latent-studio train gan` in `folder` (its
    /// `progress/` log and grids) and report it as a training run would be.
    WatchGanRun { folder: PathBuf },
    /// Stop the worker after the jobs before it.
    Shutdown,
}

impl WorkerRequest {
    /// The model the request runs on, if it names one.
    pub fn model(&self) -> Option<&str> {
        match self {
            Self::LoadModel { model }
            | Self::Decode { model, .. }
            | Self::Encode { model, .. }
            | Self::Save { model, .. }
            | Self::Outliers { model, .. }
            | Self::Denoise { model, .. } => Some(model),
            Self::Train(_)
            | Self::WatchGanRun { .. }
            | Self::Generate { .. }
            | Self::GenerateImage(_)
            | Self::RenderPad(_)
            | Self::RenderTravel(_)
            | Self::SaveText { .. }
            | Self::Shutdown => None,
        }
    }

    /// The thread that runs this request. The one list of what runs where:
    /// the inference thread hands everything else on, and the handle knows
    /// which jobs outlive it.
    pub fn thread(&self) -> WorkerThread {
        match self {
            Self::LoadModel { .. }
            | Self::Decode { .. }
            | Self::Encode { .. }
            | Self::Save { .. }
            | Self::SaveText { .. }
            | Self::Outliers { .. }
            | Self::Denoise { .. }
            | Self::Shutdown => WorkerThread::Inference,
            Self::Generate { .. } => WorkerThread::Text,
            Self::GenerateImage(_) | Self::RenderPad(_) | Self::RenderTravel(_) => WorkerThread::Image,
            Self::Train(_) | Self::WatchGanRun { .. } => WorkerThread::Training,
        }
    }

    /// The coalescing key of a preview decode.
    pub fn preview_stream(&self) -> Option<&str> {
        match self {
            Self::Decode { preview: Some(stream), .. } => Some(stream),
            Self::Denoise { .. } => Some("denoise"),
            _ => None,
        }
    }
}

/// Where a request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerThread {
    /// The inference thread itself (decoding, encoding, saving).
    Inference,
    /// The text thread, which owns the loaded language model.
    Text,
    /// The image thread, which owns the loaded diffusion pipeline.
    Image,
    /// A thread of its own per job (training, following a run).
    Training,
}

/// What the worker reports back. Every job ends with exactly one terminal
/// event: `ModelLoaded`, `Decoded`, `Encoded`, `Saved`, `TrainingDone`,
/// `TextDone`, `ImageDone`, `Failed`, `Cancelled` or `Superseded`.
#[derive(Clone, Debug)]
pub enum WorkerEvent {
    /// The job left the queue and is running.
    Started { job: JobId },
    /// Partial progress of a long job.
    Progress { job: JobId, step: usize, total: usize, message: String },
    /// A model is loaded.
    ModelLoaded {
        job: JobId,
        manifest: Box<ModelManifest>,
        latent_map: Option<LatentMap>,
        can_encode: bool,
        /// Named latent directions (a GAN's principal directions), orthonormal.
        directions: Vec<Vec<f32>>,
    },
    /// Images decoded from the request's latents, in order.
    Decoded { job: JobId, images: Vec<RgbImage>, latents: Vec<Vec<f32>> },
    /// The latent of an image file.
    Encoded { job: JobId, latent: Vec<f32>, source: PathBuf },
    /// A file was written.
    Saved { job: JobId, path: PathBuf },
    /// A folder ranked by how unusual its images are (terminal).
    OutliersRanked { job: JobId, ranking: Box<OutlierRanking> },
    /// An image with noise and denoised (terminal).
    Denoised { job: JobId, result: Box<DenoiseResult> },
    /// A training run (or its next stage, `stage` naming it when a run has
    /// several) began in `folder`, with `done` of `planned` epochs behind it.
    TrainStage { job: JobId, folder: PathBuf, stage: String, done: usize, planned: usize },
    /// Training steps' losses (the mean of those since the last such event).
    TrainBatch { job: JobId, tick: TrainTick },
    /// An epoch finished and was checkpointed; `grid` shows its samples from
    /// fixed seeds, `text` the character GPT's seeded sample.
    TrainEpoch { job: JobId, summary: EpochSummary, grid: Option<RgbImage>, text: Option<String> },
    /// Training ended (all epochs, or cancelled after a checkpoint).
    TrainingDone { job: JobId, epochs: usize },
    /// Generation began: the model's name and the prompt as the model sees it.
    TextStarted { job: JobId, model_name: String, prompt: Vec<TokenPiece> },
    /// A new token and the text it completes (empty mid-character); `token`
    /// is `None` for text flushed at the end without a new token.
    TextTokens { job: JobId, token: Option<TokenPiece>, text: String },
    /// Generation ended (also when cancelled: the partial text is kept).
    TextDone { job: JobId, generated: Box<Generated> },
    /// A preview of the image being denoised.
    ImagePreview { job: JobId, step: usize, image: RgbImage },
    /// An image is finished; `saved` is where its PNG went, or why it could not be written.
    ImageDone { job: JobId, image: RgbImage, record: Box<ImageRecord>, noise: Vec<f32>, saved: Result<PathBuf, String> },
    /// The latent pad's one-step preview through the tiny decoder; the full
    /// render follows unless the job is cancelled for a newer pad state.
    PadPreview { job: JobId, image: RgbImage, millis: f64 },
    /// The latent pad's image; `saved` when it was asked to be written.
    PadRendered {
        job: JobId,
        image: RgbImage,
        record: Box<ImageRecord>,
        millis: f64,
        saved: Option<Result<PathBuf, String>>,
    },
    /// A travel's frame `index` is rendered.
    TravelFrameRendered { job: JobId, index: usize, image: RgbImage },
    /// A travel is rendered; `saved` is where its file went, or why it could not be written.
    TravelDone { job: JobId, saved: Result<PathBuf, String> },
    /// The job failed; `error` says what and which file.
    Failed { job: JobId, error: String },
    /// The job was cancelled before it finished.
    Cancelled { job: JobId },
    /// A newer preview replaced this one before it ran.
    Superseded { job: JobId },
}

impl WorkerEvent {
    /// The job the event belongs to.
    pub fn job(&self) -> JobId {
        match self {
            Self::Started { job }
            | Self::Progress { job, .. }
            | Self::ModelLoaded { job, .. }
            | Self::Decoded { job, .. }
            | Self::Encoded { job, .. }
            | Self::Saved { job, .. }
            | Self::OutliersRanked { job, .. }
            | Self::Denoised { job, .. }
            | Self::TrainStage { job, .. }
            | Self::TrainBatch { job, .. }
            | Self::TrainEpoch { job, .. }
            | Self::TrainingDone { job, .. }
            | Self::TextStarted { job, .. }
            | Self::TextTokens { job, .. }
            | Self::TextDone { job, .. }
            | Self::ImagePreview { job, .. }
            | Self::ImageDone { job, .. }
            | Self::PadRendered { job, .. }
            | Self::PadPreview { job, .. }
            | Self::TravelFrameRendered { job, .. }
            | Self::TravelDone { job, .. }
            | Self::Failed { job, .. }
            | Self::Cancelled { job }
            | Self::Superseded { job } => *job,
        }
    }

    /// Whether this is the job's last event.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            Self::Started { .. }
                | Self::Progress { .. }
                | Self::TrainStage { .. }
                | Self::TrainBatch { .. }
                | Self::TrainEpoch { .. }
                | Self::TextStarted { .. }
                | Self::TextTokens { .. }
                | Self::ImagePreview { .. }
                | Self::PadPreview { .. }
                | Self::TravelFrameRendered { .. }
        )
    }
}
