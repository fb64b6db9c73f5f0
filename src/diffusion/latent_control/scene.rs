//! Making images from latent controls: the text states of every prompt
//! involved are encoded once and kept (a pad drag re-encodes nothing), the
//! noises and conditionings are blended, and the pipeline samples from the
//! blend like any generation.

use std::collections::HashMap;

use crate::diffusion::latent_control::{concepts, directions, pad};
use crate::diffusion::pipeline::{DiffusionPipeline, GenerateError, GenerateInputs, Generated, StepReport};
use crate::diffusion::sampling::Conditioning;
use crate::latent::interpolate::slerp;
use crate::spec::image::ImageRequest;
use crate::spec::latent_control::{ConceptSlider, LatentRecipe, PadRecipe, TravelFrame};
use crate::train::cancel::CancelToken;
use crate::train::rng::SeededRng;

/// The text states encoded so far, by prompt, for one pipeline and one set
/// of sampling settings (negative prompt, guidance, size). Whoever swaps
/// the pipeline calls [`LatentScene::clear`].
#[derive(Default)]
pub struct LatentScene {
    /// (negative prompt, guided, width, height) the cache was filled for.
    settings: Option<(String, bool, usize, usize)>,
    texts: HashMap<String, Conditioning>,
}

impl LatentScene {
    /// Forgets every encoded prompt (another model was loaded).
    pub fn clear(&mut self) {
        self.settings = None;
        self.texts.clear();
    }

    /// The conditioning of `prompt` under `base`'s negative prompt and
    /// guidance, encoded once.
    pub fn conditioning(
        &mut self,
        pipeline: &DiffusionPipeline,
        base: &ImageRequest,
        prompt: &str,
    ) -> candle_core::Result<Conditioning> {
        let settings = (base.negative.clone(), base.guidance > 1.0, base.width, base.height);
        if self.settings.as_ref() != Some(&settings) {
            self.texts.clear();
            self.settings = Some(settings);
        }
        if let Some(cond) = self.texts.get(prompt) {
            return Ok(cond.clone());
        }
        let request = ImageRequest { prompt: prompt.to_owned(), ..base.clone() };
        let cond = pipeline.conditioning(&request)?;
        self.texts.insert(prompt.to_owned(), cond.clone());
        Ok(cond)
    }

    /// `cond` moved by the concept sliders.
    pub fn with_concepts(
        &mut self,
        pipeline: &DiffusionPipeline,
        base: &ImageRequest,
        cond: &Conditioning,
        sliders: &[ConceptSlider],
    ) -> candle_core::Result<Conditioning> {
        let mut moves = Vec::new();
        for s in sliders.iter().filter(|s| s.value != 0.0) {
            let positive = self.conditioning(pipeline, base, &s.positive)?;
            let negative = self.conditioning(pipeline, base, &s.negative)?;
            moves.push((concepts::direction(&positive, &negative)?, s.value));
        }
        concepts::apply(cond, &moves)
    }

    /// The initial noise of `seed` at `base`'s size (what a plain generation draws).
    pub fn seed_noise(pipeline: &DiffusionPipeline, base: &ImageRequest, seed: u64) -> Result<Vec<f32>, GenerateError> {
        let len = pipeline.latent_shape(base.width, base.height)?.iter().product();
        Ok(SeededRng::new(seed).normal_vec(len))
    }

    /// What the pad gives at its cursor: the request (the lead point's
    /// prompt and seed), the blended noise and the blended, slider-moved conditioning.
    pub fn pad_start(
        &mut self,
        pipeline: &DiffusionPipeline,
        base: &ImageRequest,
        recipe: &PadRecipe,
        sliders: &[ConceptSlider],
    ) -> Result<(ImageRequest, Vec<f32>, Conditioning), GenerateError> {
        recipe.validate().map_err(GenerateError::Invalid)?;
        let weights = recipe.weights();
        let lead = recipe.lead();
        let (mut noises, mut conds) = (Vec::new(), Vec::new());
        for (point, &w) in recipe.points.iter().zip(&weights) {
            // Points without weight add nothing: not encoded, not drawn.
            noises.push(if w == 0.0 { Vec::new() } else { Self::seed_noise(pipeline, base, point.seed)? });
            conds.push(if w == 0.0 { None } else { Some(self.conditioning(pipeline, base, &point.prompt)?) });
        }
        let kept: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] != 0.0).collect();
        let noise_refs: Vec<&[f32]> = kept.iter().map(|&i| noises[i].as_slice()).collect();
        let cond_refs: Vec<&Conditioning> = kept.iter().filter_map(|&i| conds[i].as_ref()).collect();
        let kept_weights: Vec<f64> = kept.iter().map(|&i| weights[i]).collect();
        let noise = pad::blend_noise(&noise_refs, &kept_weights);
        let cond = pad::blend_conditioning(&cond_refs, &kept_weights)?;
        let cond = self.with_concepts(pipeline, base, &cond, sliders)?;
        let request = ImageRequest { prompt: lead.prompt.clone(), seed: lead.seed, variation: None, ..base.clone() };
        Ok((request, noise, cond))
    }

    /// What a whole recipe's pad gives at its cursor: [`Self::pad_start`]
    /// with the noise moved along the noise directions.
    pub fn recipe_start(
        &mut self,
        pipeline: &DiffusionPipeline,
        base: &ImageRequest,
        recipe: &LatentRecipe,
    ) -> Result<(ImageRequest, Vec<f32>, Conditioning), GenerateError> {
        let Some(pad) = &recipe.pad else { return Err(GenerateError::Invalid("the recipe has no pad".into())) };
        let (request, noise, cond) = self.pad_start(pipeline, base, pad, &recipe.concepts)?;
        Ok((request, directions::apply(noise, &recipe.noise_directions), cond))
    }

    /// A travel frame's start: the slerp of its keyframes' noises, the blend
    /// of their conditionings, each moved by the sliders at the keyframe's
    /// values (blended likewise); the nearer keyframe's seed and prompt.
    pub fn travel_start(
        &mut self,
        pipeline: &DiffusionPipeline,
        base: &ImageRequest,
        frame: &TravelFrame,
        sliders: &[ConceptSlider],
    ) -> Result<(ImageRequest, Vec<f32>, Conditioning), GenerateError> {
        frame.validate().map_err(GenerateError::Invalid)?;
        let (first, t) = frame.segment();
        let ends = [&frame.keyframes[first], frame.keyframes.get(first + 1).unwrap_or(&frame.keyframes[first])];
        let mut conds = Vec::new();
        for key in ends {
            let at_key: Vec<ConceptSlider> = sliders
                .iter()
                .enumerate()
                .map(|(i, s)| ConceptSlider { value: key.concepts.get(i).copied().unwrap_or(s.value), ..s.clone() })
                .collect();
            let cond = self.conditioning(pipeline, base, &key.prompt)?;
            conds.push(self.with_concepts(pipeline, base, &cond, &at_key)?);
        }
        // Exactly the first noise at t = 0 and the second at t = 1.
        let (a, b) = (Self::seed_noise(pipeline, base, ends[0].seed)?, Self::seed_noise(pipeline, base, ends[1].seed)?);
        let noise = slerp(&a, &b, t as f32);
        let cond = pad::blend_conditioning(&[&conds[0], &conds[1]], &[1.0 - t, t])?;
        let lead = if t < 0.5 { ends[0] } else { ends[1] };
        let request = ImageRequest { prompt: lead.prompt.clone(), seed: lead.seed, variation: None, ..base.clone() };
        Ok((request, noise, cond))
    }

    /// Samples from a start made by `pad_start` or `travel_start`.
    pub fn render(
        pipeline: &DiffusionPipeline,
        request: &ImageRequest,
        noise: Vec<f32>,
        cond: &Conditioning,
        on_step: &mut dyn FnMut(StepReport),
        cancel: &CancelToken,
    ) -> Result<Option<Generated>, GenerateError> {
        let inputs = GenerateInputs { noise: Some(noise), ..GenerateInputs::default() };
        pipeline.generate_conditioned(request, inputs, cond, on_step, cancel)
    }
}
