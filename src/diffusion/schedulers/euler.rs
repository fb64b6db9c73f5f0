//! Euler and Euler ancestral (Karras et al. 2022's σ view, as in k-diffusion
//! and diffusers' `EulerDiscreteScheduler`/`EulerAncestralDiscreteScheduler`):
//! the sample lives at noise level σ = √((1 − ᾱ)/ᾱ); each step is an Euler
//! step of the probability-flow ODE, down to the next σ (Euler) or to σ_down
//! with fresh noise σ_up added (ancestral).

use candle_core::{Result, Tensor};

use super::{Prediction, Sampler, ScheduleError, SchedulerConfig};

/// σ of every training step, √((1 − ᾱ)/ᾱ).
pub fn training_sigmas(config: &SchedulerConfig) -> std::result::Result<Vec<f64>, ScheduleError> {
    Ok(config.alphas_cumprod()?.iter().map(|a| ((1.0 - a) / a).sqrt()).collect())
}

/// σ at a (possibly fractional) timestep, interpolated linearly as numpy's `interp` does.
pub fn sigma_at(table: &[f64], t: f64) -> f64 {
    let t = t.clamp(0.0, (table.len() - 1) as f64);
    let (lo, hi) = (t.floor() as usize, t.ceil() as usize);
    table[lo] + (table[hi] - table[lo]) * (t - lo as f64)
}

/// The clean-sample estimate at noise level σ (the sample is x₀ + σ·ε).
pub fn denoised_at(prediction: Prediction, output: &Tensor, sample: &Tensor, s: f64) -> Result<Tensor> {
    match prediction {
        Prediction::Epsilon => sample - (output * s)?,
        Prediction::V => (sample / (s * s + 1.0))? - (output * (s / (s * s + 1.0).sqrt()))?,
    }
}

/// An Euler run of a given number of steps.
pub struct Euler {
    timesteps: Vec<f64>,
    /// σ at each step, then 0.
    sigmas: Vec<f64>,
    prediction: Prediction,
    init_sigma: f64,
    ancestral: bool,
}

impl Euler {
    /// `steps` steps; `ancestral` adds fresh noise at every step ("Euler a").
    pub fn new(config: &SchedulerConfig, steps: usize, ancestral: bool) -> std::result::Result<Self, ScheduleError> {
        let table = training_sigmas(config)?;
        let timesteps = config.timesteps(steps)?;
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| sigma_at(&table, t)).collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(0.0, f64::max);
        let init_sigma = match config.timestep_spacing.as_str() {
            "linspace" | "trailing" => max,
            _ => (max * max + 1.0).sqrt(),
        };
        Ok(Self { timesteps, sigmas, prediction: config.prediction()?, init_sigma, ancestral })
    }

    /// σ at each step, then 0.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl Sampler for Euler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_sigma
    }

    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        let s = self.sigmas[i];
        sample / (s * s + 1.0).sqrt()
    }

    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let (from, to) = (self.sigmas[i], self.sigmas[i + 1]);
        let denoised = self.denoised(output, i, sample)?;
        let derivative = ((sample - &denoised)? / from)?;
        if !self.ancestral {
            return sample + (derivative * (to - from))?;
        }
        let up = (to * to * (from * from - to * to) / (from * from)).max(0.0).sqrt();
        let down = (to * to - up * up).max(0.0).sqrt();
        let next = (sample + (derivative * (down - from))?)?;
        if up > 0.0 { next + (noise * up)? } else { Ok(next) }
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        denoised_at(self.prediction, output, sample, self.sigmas[i])
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        clean + (noise * self.sigmas[i])?
    }
}
