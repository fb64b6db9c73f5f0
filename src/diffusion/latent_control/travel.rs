//! A travel rendered and written: every frame from `LatentScene::travel_start`
//! with a deterministic sampler (a sampler that draws fresh noise each step
//! would make neighbouring frames flicker instead of morph), then one GIF or
//! APNG that carries the travel's recipe.

use image::RgbImage;

use crate::diffusion::latent_control::scene::LatentScene;
use crate::diffusion::pipeline::{DiffusionPipeline, GenerateError};
use crate::io::error::EncodeError;
use crate::io::export::encode_apng;
use crate::io::gif_text::encode_gif;
use crate::io::image_record::{ImageRecord, RECORD_KEY};
use crate::spec::image::ImageRequest;
use crate::spec::latent_control::{AnimationFormat, LatentRecipe, TravelPlan};
use crate::train::cancel::CancelToken;

/// Renders every frame of `plan` with `base`'s sampling settings, telling
/// `on_frame` about each as it is done; `Ok(None)` when cancelled.
pub fn render_travel(
    pipeline: &DiffusionPipeline,
    scene: &mut LatentScene,
    base: &ImageRequest,
    plan: &TravelPlan,
    on_frame: &mut dyn FnMut(usize, &RgbImage),
    cancel: &CancelToken,
) -> Result<Option<Vec<RgbImage>>, GenerateError> {
    plan.validate().map_err(GenerateError::Invalid)?;
    if !base.sampler.is_deterministic() {
        return Err(GenerateError::Invalid(format!(
            "{} draws new noise every step, so frames would not morph smoothly; choose a deterministic sampler (ddim, euler, dpmpp-2m, dpmpp-2m-karras)",
            base.sampler.a1111_name()
        )));
    }
    let mut frames = Vec::with_capacity(plan.frames);
    for index in 0..plan.frames {
        let (request, noise, cond) = scene.travel_start(pipeline, base, &plan.frame(index), &plan.concepts)?;
        let Some(generated) = LatentScene::render(pipeline, &request, noise, &cond, &mut |_| {}, cancel)? else {
            return Ok(None);
        };
        on_frame(index, &generated.image);
        frames.push(generated.image);
    }
    Ok(Some(frames))
}

/// The record a travel file carries: the first keyframe's request and the
/// whole path (`info` shows it; the Latent view restores the keyframes from it).
pub fn travel_record(plan: &TravelPlan, base: &ImageRequest, model: String) -> ImageRecord {
    let latent =
        LatentRecipe { concepts: plan.concepts.clone(), travel: Some(plan.frame(0)), ..LatentRecipe::default() };
    let first = &plan.keyframes[0];
    let request = ImageRequest { prompt: first.prompt.clone(), seed: first.seed, variation: None, ..base.clone() };
    ImageRecord::from_latent(request, model, latent)
}

/// The travel file's bytes. Only our record is written: A1111's `parameters`
/// would describe the first keyframe's still image, not the animation.
pub fn encode_travel(
    frames: &[RgbImage],
    plan: &TravelPlan,
    record: &ImageRecord,
    format: AnimationFormat,
) -> Result<Vec<u8>, EncodeError> {
    let chunks: Vec<(String, String)> = record.chunks().into_iter().filter(|(k, _)| k == RECORD_KEY).collect();
    match format {
        AnimationFormat::Gif => encode_gif(frames, plan.delay_ms(), &chunks),
        AnimationFormat::Apng => encode_apng(frames, plan.delay_ms(), &chunks),
    }
}
