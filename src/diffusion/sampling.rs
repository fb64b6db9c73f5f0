//! The sampling loop shared by generation and training previews: seeded
//! initial noise, the guided denoising loop over any `Sampler` with its
//! per-step noise seeded or given, and the conversions between images and
//! the autoencoder's [−1, 1] tensors.

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::diffusion::schedulers::Sampler;
use crate::diffusion::unet::Unet;
use crate::latent::model::tensor_to_images;
use crate::train::cancel::CancelToken;
use crate::train::rng::SeededRng;

/// The seeded initial latent noise: the same seed gives the same numbers on
/// every device, because they are drawn here on the CPU.
pub fn initial_noise(seed: u64, len: usize) -> Vec<f32> {
    SeededRng::new(seed).normal_vec(len)
}

/// What the U-Net is conditioned on: the text states and, for SDXL, the
/// added input (pooled text and size numbers). Under guidance each holds
/// [unconditional; conditional] rows, else the conditional row alone.
#[derive(Clone, Debug)]
pub struct Conditioning {
    pub context: Tensor,
    pub added: Option<Tensor>,
}

/// Where stochastic samplers' per-step noise comes from.
pub enum StepNoise<'a> {
    /// Drawn from the generation's seeded generator, one draw per step.
    Seeded(&'a mut SeededRng),
    /// Given: `[steps, …]` values, row `i` for step `i` (`--step-noise`),
    /// so a run can be compared with another implementation's draws.
    Given(&'a [f32]),
}

impl StepNoise<'_> {
    fn draw(&mut self, step: usize, len: usize) -> candle_core::Result<Vec<f32>> {
        match self {
            StepNoise::Seeded(rng) => Ok(rng.normal_vec(len)),
            StepNoise::Given(values) => match values.get(step * len..(step + 1) * len) {
                Some(row) => Ok(row.to_vec()),
                None => candle_core::bail!("the step noise has no values for step {}", step + 1),
            },
        }
    }
}

/// Guidance-weighted denoising from `x` at step `first` to the end, under
/// `cond` (see [`Conditioning`]). Stochastic samplers take their noise
/// from `step_noise`. `on_step(i, x0)` gets each step's clean-sample estimate.
/// `None` if cancelled.
#[allow(clippy::too_many_arguments)]
pub fn denoise(
    unet: &Unet,
    sampler: &dyn Sampler,
    mut x: Tensor,
    first: usize,
    cond: &Conditioning,
    guidance: f64,
    step_noise: &mut StepNoise,
    on_step: &mut dyn FnMut(usize, &Tensor) -> candle_core::Result<()>,
    cancel: &CancelToken,
) -> candle_core::Result<Option<Tensor>> {
    let guided = guidance > 1.0;
    let batch = x.dim(0)?;
    for (i, &t) in sampler.timesteps().iter().enumerate().skip(first) {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let input = sampler.scale_model_input(&x, i)?;
        let input = if guided { Tensor::cat(&[&input, &input], 0)? } else { input };
        let output = unet.forward(&input, &[t], &cond.context, cond.added.as_ref())?;
        let output = if guided {
            let (uncond, cond) = (output.narrow(0, 0, batch)?, output.narrow(0, batch, batch)?);
            (&uncond + ((cond - &uncond)? * guidance)?)?
        } else {
            output
        };
        let noise = Tensor::from_vec(step_noise.draw(i, x.elem_count())?, x.shape(), x.device())?;
        on_step(i, &sampler.denoised(&output, i, &x)?)?;
        x = sampler.step(&output, i, &x, &noise)?;
    }
    Ok(Some(x))
}

/// Images [batch, 3, h, w] in [−1, 1] → RGB.
pub fn to_rgb(images: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    tensor_to_images(&((images.clamp(-1.0, 1.0)? + 1.0)? * 0.5)?)
}

/// RGB → [1, 3, h, w] in [−1, 1].
pub fn from_rgb(image: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut data = vec![0f32; 3 * w * h];
    for (i, p) in image.pixels().enumerate() {
        for c in 0..3 {
            data[c * w * h + i] = p[c] as f32 / 127.5 - 1.0;
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), device)
}
