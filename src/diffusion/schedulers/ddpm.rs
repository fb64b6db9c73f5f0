//! DDPM (Ho et al. 2020) ancestral sampling: the posterior q(x_{t−1} | x_t, x₀)
//! with x₀ from the model, variance β̃ ("fixed_small"), over a subset of the
//! training timesteps.

use candle_core::{Result, Tensor};

use super::{Prediction, Sampler, ScheduleError, SchedulerConfig, estimates, noised};

/// A DDPM run of a given number of steps.
pub struct Ddpm {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<f64>,
    step_ratio: usize,
    prediction: Prediction,
}

impl Ddpm {
    /// `steps` steps (1000 is the original sampler; fewer skip timesteps).
    pub fn new(config: &SchedulerConfig, steps: usize) -> std::result::Result<Self, ScheduleError> {
        Ok(Self {
            alphas_cumprod: config.alphas_cumprod()?,
            timesteps: config.timesteps(steps)?,
            step_ratio: config.num_train_timesteps / steps,
            prediction: config.prediction()?,
        })
    }

    /// The posterior's mean coefficients (on x₀, on x_t) and variance at step `i`.
    pub fn posterior(&self, i: usize) -> (f64, f64, f64) {
        let t = self.timesteps[i] as i64;
        let prev = t - self.step_ratio as i64;
        let a_t = self.alphas_cumprod[t as usize];
        let a_prev = if prev >= 0 { self.alphas_cumprod[prev as usize] } else { 1.0 };
        let beta = 1.0 - a_t / a_prev; // β of the whole skipped stretch
        let c_x0 = a_prev.sqrt() * beta / (1.0 - a_t);
        let c_xt = (1.0 - beta).sqrt() * (1.0 - a_prev) / (1.0 - a_t);
        let variance = ((1.0 - a_prev) / (1.0 - a_t) * beta).max(1e-20);
        (c_x0, c_xt, variance)
    }
}

impl Sampler for Ddpm {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let a_t = self.alphas_cumprod[self.timesteps[i] as usize];
        let (x0, _) = estimates(self.prediction, output, sample, a_t)?;
        let (c_x0, c_xt, variance) = self.posterior(i);
        let mean = ((x0 * c_x0)? + (sample * c_xt)?)?;
        // No noise is added on the way to t = 0.
        if self.timesteps[i] > 0.0 { mean + (noise * variance.sqrt())? } else { Ok(mean) }
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        Ok(estimates(self.prediction, output, sample, self.alphas_cumprod[self.timesteps[i] as usize])?.0)
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        noised(clean, noise, self.alphas_cumprod[self.timesteps[i] as usize])
    }
}
