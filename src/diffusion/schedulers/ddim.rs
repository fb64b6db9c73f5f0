//! DDIM (Song et al. 2021): x₀ from the model, then a step to the previous
//! timestep along the predicted noise direction; η = 0 is deterministic.

use candle_core::{Result, Tensor};

use super::{Prediction, Sampler, ScheduleError, SchedulerConfig, estimates, noised};

/// A DDIM run of a given number of steps.
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<f64>,
    /// ᾱ after the last step: 1 with `set_alpha_to_one`, else ᾱ₀.
    final_alpha: f64,
    step_ratio: usize,
    prediction: Prediction,
    eta: f64,
}

impl Ddim {
    /// `steps` steps with stochasticity `eta` (0: deterministic, 1: DDPM-like).
    pub fn new(config: &SchedulerConfig, steps: usize, eta: f64) -> std::result::Result<Self, ScheduleError> {
        let alphas_cumprod = config.alphas_cumprod()?;
        let final_alpha = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        Ok(Self {
            timesteps: config.timesteps(steps)?,
            final_alpha,
            step_ratio: config.num_train_timesteps / steps,
            prediction: config.prediction()?,
            eta,
            alphas_cumprod,
        })
    }

    fn alpha_at(&self, t: i64) -> f64 {
        if t >= 0 { self.alphas_cumprod[t as usize] } else { self.final_alpha }
    }
}

impl Sampler for Ddim {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let t = self.timesteps[i] as i64;
        let (a_t, a_prev) = (self.alpha_at(t), self.alpha_at(t - self.step_ratio as i64));
        let (x0, eps) = estimates(self.prediction, output, sample, a_t)?;
        // σ² = (1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev), scaled by η.
        let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
        let std = self.eta * variance.max(0.0).sqrt();
        let direction = (eps * (1.0 - a_prev - std * std).max(0.0).sqrt())?;
        let prev = ((x0 * a_prev.sqrt())? + direction)?;
        if std > 0.0 { prev + (noise * std)? } else { Ok(prev) }
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        Ok(estimates(self.prediction, output, sample, self.alpha_at(self.timesteps[i] as i64))?.0)
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        noised(clean, noise, self.alpha_at(self.timesteps[i] as i64))
    }
}
