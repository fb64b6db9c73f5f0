//! Text-to-image (and image-to-image) with a latent diffusion model from a
//! diffusers folder or a single file: prompts → text states, seeded CPU
//! noise → latents, the sampler's loop with classifier-free guidance
//! (`sampling.rs`), the autoencoder back to pixels. Previews of the
//! clean-image estimate every few steps; a cancel token checked before every
//! step. A studio keeps the pipeline loaded (`generate_with`); a one-shot
//! run frees each network when its part is done (`generate_once`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::diffusion::autoencoder::Autoencoder;
use crate::diffusion::checkpoint::{SingleFileSource, SingleFileSpec};
use crate::diffusion::latent_control::variation::a1111_slerp;
use crate::diffusion::latent_rgb::LatentRgb;
use crate::diffusion::lora::LoraReport;
use crate::diffusion::lora::active::{ActiveLoras, LoraRequest, find_lora};
use crate::diffusion::nets::{DiffusionNets, FolderError, read_config};
use crate::diffusion::prompt::embeddings::EmbeddingSet;
use crate::diffusion::prompt::extra::take_extras;
use crate::diffusion::schedulers::{Sampler, ScheduleError, SchedulerConfig, build_sampler};
use crate::diffusion::tiny_decoder::TinyDecoder;
use crate::train::cancel::CancelToken;
use crate::train::rng::SeededRng;

/// Why a generation could not run.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("{0}")]
    Invalid(String),
    #[error("generation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

pub use crate::diffusion::sampling::{Conditioning, StepNoise, denoise, from_rgb, initial_noise, to_rgb};
pub use crate::spec::image::ImageRequest;

/// One finished step, for progress bars and previews.
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub total: usize,
    /// The clean image the model currently predicts, when a preview was due.
    pub preview: Option<RgbImage>,
}

/// What a generation starts from besides its request.
#[derive(Default)]
pub struct GenerateInputs<'a> {
    /// img2img's init image.
    pub init: Option<&'a RgbImage>,
    /// The initial latent noise (else the seed's).
    pub noise: Option<Vec<f32>>,
    /// Stochastic samplers' per-step noise, `[steps, c, h, w]` (else the seed's draws).
    pub step_noise: Option<Vec<f32>>,
    /// A preview every this many steps (0: none).
    pub preview_every: usize,
    /// LoRAs to merge besides those the prompt names.
    pub loras: Vec<LoraRequest>,
    /// Where the prompt's `<lora:name>` files are looked up.
    pub lora_dirs: Vec<PathBuf>,
    /// A tiny preview decoder (TAESD) for every step's preview.
    pub preview_decoder: Option<PathBuf>,
    /// Decode the final image with the preview decoder too (fast, lower quality).
    pub preview_decoder_final: bool,
    /// Folders of textual-inversion embeddings, used by name in prompts.
    pub embedding_dirs: Vec<PathBuf>,
}

/// A finished image.
pub struct Generated {
    pub image: RgbImage,
    /// The initial latent noise [c, h, w], row-major (what `--noise` reads back).
    pub noise: Vec<f32>,
    pub latent_shape: [usize; 3],
    /// What each merged LoRA did (layers applied, names unused).
    pub loras: Vec<LoraReport>,
}

/// One generation between its phases (see `generate_with`).
struct Run {
    /// The starting latents (noise, or the noised init image).
    x: Tensor,
    first: usize,
    total: usize,
    guidance: f64,
    sampler: Box<dyn Sampler>,
    rng: SeededRng,
    step_noise: Option<Vec<f32>>,
    preview_every: usize,
    /// The tiny decoder when it also decodes the final image.
    tiny: Option<Arc<TinyDecoder>>,
    noise: Vec<f32>,
    shape: [usize; 3],
    loras: Vec<LoraReport>,
}

impl Run {
    /// The finished image from clean latents.
    fn finish(self, vae: &Autoencoder, latents: &Tensor) -> Result<Option<Generated>, GenerateError> {
        let images = match &self.tiny {
            Some(tiny) => tiny.decode(latents)?,
            None => vae.decode(&vae.from_diffusion(latents)?)?,
        };
        let image = to_rgb(&images)?
            .into_iter()
            .next()
            .ok_or_else(|| GenerateError::Invalid("the decoder returned no image".into()))?;
        Ok(Some(Generated { image, noise: self.noise, latent_shape: self.shape, loras: self.loras }))
    }
}

/// Latents with at most this many positions are previewed through the decoder itself.
const DECODED_PREVIEW_POSITIONS: usize = 32 * 32;

/// A model folder ready to generate.
pub struct DiffusionPipeline {
    nets: DiffusionNets,
    scheduler: SchedulerConfig,
    dir: PathBuf,
    latent_rgb: OnceLock<LatentRgb>,
    /// An empty negative prompt conditions on zeros (SDXL pipelines' `force_zeros_for_empty_prompt`).
    zero_empty_negative: bool,
    loras: ActiveLoras,
    /// The tiny preview decoder in use, if any.
    preview_decoder: RwLock<Option<Arc<TinyDecoder>>>,
    /// The textual-inversion embeddings in use and the folders they came from.
    embeddings: RwLock<(Vec<PathBuf>, Arc<EmbeddingSet>)>,
}

impl DiffusionPipeline {
    /// Loads the folder's networks and `scheduler/scheduler_config.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, GenerateError> {
        let nets = DiffusionNets::load(dir, device)?;
        let scheduler: SchedulerConfig = read_config(&dir.join("scheduler").join("scheduler_config.json"))?;
        scheduler.alphas_cumprod()?;
        scheduler.prediction()?;
        // diffusers' SDXL pipelines default to true; SD 1.x/2.x have no such setting.
        let index: serde_json::Value = read_config(&dir.join("model_index.json")).unwrap_or_default();
        let sdxl = nets.towers.len() > 1;
        let zero_empty_negative = index.get("force_zeros_for_empty_prompt").and_then(|v| v.as_bool()).unwrap_or(sdxl);
        Ok(Self {
            nets,
            scheduler,
            dir: dir.to_owned(),
            latent_rgb: OnceLock::new(),
            zero_empty_negative,
            loras: ActiveLoras::default(),
            preview_decoder: RwLock::new(None),
            embeddings: RwLock::new((Vec::new(), Arc::default())),
        })
    }

    /// Loads a single-file checkpoint (see `diffusion::checkpoint`).
    pub fn load_single_file(spec: &SingleFileSpec, device: &Device) -> Result<Self, GenerateError> {
        let source = SingleFileSource::open(spec)?;
        let nets = DiffusionNets::from_source(&source, device)?;
        let scheduler = source.scheduler().clone();
        scheduler.alphas_cumprod()?;
        scheduler.prediction()?;
        let zero_empty_negative = nets.towers.len() > 1;
        Ok(Self {
            nets,
            scheduler,
            dir: spec.file.clone(),
            latent_rgb: OnceLock::new(),
            zero_empty_negative,
            loras: ActiveLoras::default(),
            preview_decoder: RwLock::new(None),
            embeddings: RwLock::new((Vec::new(), Arc::default())),
        })
    }

    /// Merges the LoRAs of a request: `explicit` ones and those its prompt
    /// names with `<lora:name:weight>`, looked up in `lora_dirs`. Only a
    /// change of set or weight touches the weights.
    pub fn use_loras(
        &self,
        request: &ImageRequest,
        explicit: &[LoraRequest],
        lora_dirs: &[PathBuf],
    ) -> Result<Vec<LoraReport>, GenerateError> {
        let mut wanted = explicit.to_vec();
        for tag in take_extras(&request.prompt).loras {
            let Some(path) = find_lora(lora_dirs, &tag.name) else {
                let dirs: Vec<String> = lora_dirs.iter().map(|d| d.display().to_string()).collect();
                let looked = if dirs.is_empty() {
                    "no LoRA folder is set".to_owned()
                } else {
                    format!("not in {}", dirs.join(", "))
                };
                return Err(GenerateError::Invalid(format!(
                    "the prompt's <lora:{}> was not found: {looked}",
                    tag.name
                )));
            };
            wanted.push(LoraRequest { path, text_weight: tag.text_weight, unet_weight: tag.unet_weight });
        }
        self.loras.ensure(&self.nets, &wanted).map_err(|e| GenerateError::Invalid(e.to_string()))
    }

    /// Reads the textual-inversion embeddings in `dirs` that fit this model
    /// (again only when the folders change); returns the files skipped and why.
    pub fn use_embeddings(&self, dirs: &[PathBuf]) -> Vec<(PathBuf, String)> {
        if let Ok(current) = self.embeddings.read()
            && current.0 == dirs
        {
            return current.1.skipped.clone();
        }
        let widths: Vec<usize> = self.nets.towers.iter().map(|t| t.encoder.config().hidden_size).collect();
        let set = Arc::new(EmbeddingSet::load(dirs, &widths));
        let skipped = set.skipped.clone();
        if let Ok(mut slot) = self.embeddings.write() {
            *slot = (dirs.to_vec(), set);
        }
        skipped
    }

    /// Uses the tiny preview decoder at `path` (loaded once; `None`: the
    /// full decoder or the fitted colour map, as before).
    pub fn use_preview_decoder(&self, path: Option<&Path>) -> Result<Option<Arc<TinyDecoder>>, GenerateError> {
        let current = self.preview_decoder.read().ok().and_then(|t| t.clone());
        let wanted = match (path, current) {
            (None, _) => None,
            (Some(path), Some(current)) if current.path() == path => Some(current),
            (Some(path), _) => Some(Arc::new(TinyDecoder::load(path, &self.nets.device)?)),
        };
        if let Ok(mut slot) = self.preview_decoder.write() {
            slot.clone_from(&wanted);
        }
        Ok(wanted)
    }

    /// The loaded networks.
    pub fn nets(&self) -> &DiffusionNets {
        &self.nets
    }

    /// The noise schedule.
    pub fn scheduler(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    /// The folder (or single file) it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image side the model was trained at (its U-Net's `sample_size` × the autoencoder's factor).
    pub fn native_size(&self) -> Option<usize> {
        self.nets.unet.config().sample_size.map(|s| s * self.nets.vae.config().downscale())
    }

    /// Latent shape [c, h, w] for an image size, or why the size does not fit.
    pub fn latent_shape(&self, width: usize, height: usize) -> Result<[usize; 3], GenerateError> {
        let (c, f) = self.nets.latent_geometry();
        if width == 0 || height == 0 || !width.is_multiple_of(f) || !height.is_multiple_of(f) {
            return Err(GenerateError::Invalid(format!(
                "size {width}×{height}: width and height must be positive multiples of {f}"
            )));
        }
        Ok([c, height / f, width / f])
    }

    /// The conditioning for a request: the prompt's (and, under guidance,
    /// first the negative prompt's) text states, plus SDXL's added input for
    /// the image size. Like diffusers' SDXL pipeline, an empty negative
    /// prompt is all zeros when the folder asks for it
    /// (`force_zeros_for_empty_prompt`, on unless `model_index.json` says otherwise).
    pub fn conditioning(&self, request: &ImageRequest) -> candle_core::Result<Conditioning> {
        let guided = request.guidance > 1.0;
        // `<lora:…>` tags are not text for the encoder (`use_loras` merged them).
        let (prompt, negative) = (take_extras(&request.prompt).text, take_extras(&request.negative).text);
        let prompts: Vec<&str> = if guided { vec![&negative, &prompt] } else { vec![&prompt] };
        let embeddings = self.embeddings.read().map(|e| e.1.clone()).unwrap_or_default();
        let (mut context, mut pooled) = self.nets.encode_prompts_with(&prompts, &embeddings)?;
        if guided && request.negative.is_empty() && self.zero_empty_negative {
            let zero_first = |t: &Tensor| Tensor::cat(&[&t.narrow(0, 0, 1)?.zeros_like()?, &t.narrow(0, 1, 1)?], 0);
            context = zero_first(&context)?;
            pooled = pooled.as_ref().map(zero_first).transpose()?;
        }
        let unet = &self.nets.unet;
        let added = match (unet.takes_added_input(), pooled) {
            (false, _) => None,
            (true, Some(pooled)) => {
                let (h, w) = (request.height as f64, request.width as f64);
                Some(unet.added_input(&pooled, &[h, w, 0.0, 0.0, h, w])?)
            }
            (true, None) => {
                candle_core::bail!("the U-Net needs a pooled text embedding; no text encoder has text_projection")
            }
        };
        Ok(Conditioning { context, added })
    }

    /// Generates one image. `noise` replaces the seed's initial latent;
    /// `init` turns the run into img2img at `request.strength`; a preview
    /// comes every `preview_every` steps (0: none). `None` if cancelled.
    pub fn generate(
        &self,
        request: &ImageRequest,
        init: Option<&RgbImage>,
        noise: Option<Vec<f32>>,
        preview_every: usize,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Generated>, GenerateError> {
        let inputs = GenerateInputs { init, noise, preview_every, ..GenerateInputs::default() };
        self.generate_with(request, inputs, on_step, cancel)
    }

    /// As `generate`, with every input spelled out (`step_noise` replaces
    /// the per-step draws of stochastic samplers).
    pub fn generate_with(
        &self,
        request: &ImageRequest,
        inputs: GenerateInputs,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Generated>, GenerateError> {
        let mut run = self.prepare(request, inputs)?;
        let cond = self.conditioning(request)?;
        let Some(latents) = self.sample(&mut run, &cond, on_step, cancel)? else {
            return Ok(None);
        };
        run.finish(&self.nets.vae, &latents)
    }

    /// As `generate_with` under a conditioning made elsewhere (the latent
    /// pad's blend, concept sliders); the request's prompt then only names
    /// LoRAs to merge, which must have been merged before `cond` was encoded.
    pub fn generate_conditioned(
        &self,
        request: &ImageRequest,
        inputs: GenerateInputs,
        cond: &Conditioning,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Generated>, GenerateError> {
        let mut run = self.prepare(request, inputs)?;
        let Some(latents) = self.sample(&mut run, cond, on_step, cancel)? else {
            return Ok(None);
        };
        run.finish(&self.nets.vae, &latents)
    }

    /// As `generate_with` for a process that makes one image and exits, as
    /// stable-diffusion.cpp's CLI does: each network is freed once its part
    /// is done (the text towers before the first step, the U-Net before
    /// decoding) and the autoencoder, not needed in between, is read again
    /// for decoding, so the peak is the U-Net's and not the whole model's.
    pub fn generate_once(
        mut self,
        request: &ImageRequest,
        inputs: GenerateInputs,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Generated>, GenerateError> {
        let mut run = self.prepare(request, inputs)?;
        // LoRAs are merged: the registry and the LoRA set, which hold the
        // layers' tensors too, are not needed again.
        self.nets.weights.clear();
        self.loras = ActiveLoras::default();
        self.nets.vae.release();
        crate::nn::memory::release_freed_memory();
        let cond = self.conditioning(request)?;
        self.nets.towers.clear();
        crate::nn::memory::release_freed_memory();
        let Some(latents) = self.sample(&mut run, &cond, on_step, cancel)? else {
            return Ok(None);
        };
        let DiffusionNets { unet, vae, .. } = self.nets;
        drop(unet);
        crate::nn::widen::release_widened();
        crate::nn::memory::release_freed_memory();
        run.finish(&vae, &latents)
    }

    /// Everything settled before the first step but the conditioning: LoRAs
    /// merged, noise drawn, the init image encoded.
    fn prepare(&self, request: &ImageRequest, inputs: GenerateInputs) -> Result<Run, GenerateError> {
        let GenerateInputs {
            init,
            noise,
            step_noise,
            preview_every,
            loras,
            lora_dirs,
            preview_decoder,
            preview_decoder_final,
            embedding_dirs,
        } = inputs;
        self.use_embeddings(&embedding_dirs);
        let lora_reports = self.use_loras(request, &loras, &lora_dirs)?;
        let tiny = self.use_preview_decoder(preview_decoder.as_deref())?;
        let shape = self.latent_shape(request.width, request.height)?;
        let len = shape.iter().product();
        let device = &self.nets.device;
        let mut rng = SeededRng::new(request.seed);
        // Drawn even when `noise` replaces it, so the samplers' later noise is the seed's either way.
        let seed_noise = match request.variation.filter(|v| v.strength != 0.0) {
            Some(v) => a1111_slerp(v.strength, &rng.normal_vec(len), &SeededRng::new(v.seed).normal_vec(len), shape),
            None => rng.normal_vec(len),
        };
        let noise = match noise {
            Some(n) if n.len() != len => {
                return Err(GenerateError::Invalid(format!(
                    "the noise has {} values; a {}×{} image needs {shape:?} = {len}",
                    n.len(),
                    request.width,
                    request.height
                )));
            }
            Some(n) => n,
            None => seed_noise,
        };
        let sampler = build_sampler(request.sampler, &self.scheduler, request.steps)?;
        let start = Tensor::from_vec(noise.clone(), (1, shape[0], shape[1], shape[2]), device)?;
        let (x, first) = match init {
            None => ((start * sampler.init_noise_sigma())?, 0),
            Some(image) => {
                if !(request.strength > 0.0 && request.strength <= 1.0) {
                    return Err(GenerateError::Invalid(format!("strength {} is outside (0, 1]", request.strength)));
                }
                let resized = image::imageops::resize(
                    image,
                    request.width as u32,
                    request.height as u32,
                    image::imageops::FilterType::Lanczos3,
                );
                let clean = self.nets.vae.to_diffusion(&self.nets.vae.encode(&from_rgb(&resized, device)?)?.mean)?;
                // diffusers: run the last ⌊steps · strength⌋ steps.
                let run = ((request.steps as f64 * request.strength) as usize).clamp(1, request.steps);
                let first = request.steps - run;
                (sampler.add_noise(&clean, &start, first)?, first)
            }
        };
        Ok(Run {
            x,
            first,
            total: request.steps - first,
            guidance: request.guidance,
            sampler,
            rng,
            step_noise,
            preview_every,
            tiny: tiny.filter(|_| preview_decoder_final),
            noise,
            shape,
            loras: lora_reports,
        })
    }

    /// The sampler's loop from the prepared start to clean latents under
    /// `cond` (`None` if cancelled).
    fn sample(
        &self,
        run: &mut Run,
        cond: &Conditioning,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Tensor>, GenerateError> {
        let (first, total, preview_every) = (run.first, run.total, run.preview_every);
        let mut on_x0 = |i: usize, x0: &Tensor| -> candle_core::Result<()> {
            let step = i - first + 1;
            let due = preview_every > 0 && step.is_multiple_of(preview_every) && step < total;
            let preview = if due { Some(self.preview(x0)?) } else { None };
            on_step(StepReport { step, total, preview });
            Ok(())
        };
        let mut step_noise = match &run.step_noise {
            Some(values) => StepNoise::Given(values),
            None => StepNoise::Seeded(&mut run.rng),
        };
        let latents = denoise(
            &self.nets.unet,
            run.sampler.as_ref(),
            run.x.clone(),
            first,
            cond,
            run.guidance,
            &mut step_noise,
            &mut on_x0,
            cancel,
        )?;
        Ok(latents)
    }

    /// A picture of a clean-latent estimate: decoded for small latents, else
    /// the fitted linear colour projection (one pixel per latent position).
    pub fn preview(&self, x0: &Tensor) -> candle_core::Result<RgbImage> {
        let (_, c, h, w) = x0.dims4()?;
        let tiny = self.preview_decoder.read().ok().and_then(|t| t.clone());
        if let Some(tiny) = tiny {
            let images = tiny.decode(&x0.narrow(0, 0, 1)?)?;
            return to_rgb(&images)?.into_iter().next().ok_or_else(|| candle_core::Error::Msg("no preview".into()));
        }
        let vae = &self.nets.vae;
        if h * w <= DECODED_PREVIEW_POSITIONS {
            let images = vae.decode(&vae.from_diffusion(&x0.narrow(0, 0, 1)?)?)?;
            return to_rgb(&images)?.into_iter().next().ok_or_else(|| candle_core::Error::Msg("no preview".into()));
        }
        let map = match self.latent_rgb.get() {
            Some(m) => m,
            None => {
                let fitted = LatentRgb::fit(vae, c, x0.device())?;
                self.latent_rgb.get_or_init(|| fitted)
            }
        };
        map.project(&x0.to_dtype(DType::F32)?)
    }
}
