//! Latent consistency sampling (Luo et al. 2023; diffusers'
//! `LCMScheduler`, A1111's "LCM"): a consistency model (or an SD model with
//! an LCM-LoRA) maps any noisy latent straight to a clean estimate, so a few
//! steps suffice: estimate, re-noise to the next, coarser timestep, repeat.
//! Timesteps come from the 50-step grid the model was distilled on.

use candle_core::{Result, Tensor};

use super::{Prediction, Sampler, ScheduleError, SchedulerConfig, estimates, noised};

/// The distillation grid's length (diffusers' `original_inference_steps`).
const ORIGINAL_STEPS: usize = 50;
/// The consistency boundary condition's σ_data and timestep scaling.
const SIGMA_DATA: f64 = 0.5;
const TIMESTEP_SCALING: f64 = 10.0;

/// An LCM run.
pub struct Lcm {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<f64>,
    prediction: Prediction,
}

impl Lcm {
    /// `steps` steps (up to 50).
    pub fn new(config: &SchedulerConfig, steps: usize) -> std::result::Result<Self, ScheduleError> {
        let alphas_cumprod = config.alphas_cumprod()?;
        let n = alphas_cumprod.len();
        let k = n / ORIGINAL_STEPS;
        if steps == 0 || steps > ORIGINAL_STEPS || k == 0 {
            return Err(ScheduleError(format!("LCM takes 1 to {ORIGINAL_STEPS} steps, not {steps}")));
        }
        // The grid k−1, 2k−1, …, noisiest first; `steps` evenly spaced indices into it.
        let grid: Vec<usize> = (1..=ORIGINAL_STEPS).rev().map(|i| i * k - 1).collect();
        let timesteps = (0..steps)
            .map(|i| grid[(i as f64 * ORIGINAL_STEPS as f64 / steps as f64).floor() as usize] as f64)
            .collect();
        Ok(Self { alphas_cumprod, timesteps, prediction: config.prediction()? })
    }

    /// The consistency parameterisation's skip and output weights at timestep `t`.
    fn boundary(t: f64) -> (f64, f64) {
        let scaled = t * TIMESTEP_SCALING;
        let denominator = scaled * scaled + SIGMA_DATA * SIGMA_DATA;
        (SIGMA_DATA * SIGMA_DATA / denominator, scaled / denominator.sqrt())
    }
}

impl Sampler for Lcm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let denoised = self.denoised(output, i, sample)?;
        match self.timesteps.get(i + 1) {
            Some(&next) => noised(&denoised, noise, self.alphas_cumprod[next as usize]),
            None => Ok(denoised),
        }
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let t = self.timesteps[i];
        let (x0, _) = estimates(self.prediction, output, sample, self.alphas_cumprod[t as usize])?;
        let (skip, out) = Self::boundary(t);
        (x0 * out)? + (sample * skip)?
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        noised(clean, noise, self.alphas_cumprod[self.timesteps[i] as usize])
    }
}
