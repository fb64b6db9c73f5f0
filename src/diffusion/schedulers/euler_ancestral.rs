//! Euler ancestral (Karras et al. 2022's σ view, as in k-diffusion and
//! diffusers): the sample lives at noise level σ = √((1 − ᾱ)/ᾱ); each step
//! takes an Euler step down to σ_down and adds fresh noise σ_up.

use candle_core::{Result, Tensor};

use super::{Prediction, Sampler, ScheduleError, SchedulerConfig};

/// An Euler-ancestral run of a given number of steps.
pub struct EulerAncestral {
    timesteps: Vec<f64>,
    /// σ at each step, then 0.
    sigmas: Vec<f64>,
    prediction: Prediction,
    init_sigma: f64,
}

impl EulerAncestral {
    /// `steps` steps.
    pub fn new(config: &SchedulerConfig, steps: usize) -> std::result::Result<Self, ScheduleError> {
        let alphas_cumprod = config.alphas_cumprod()?;
        let full: Vec<f64> = alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
        let timesteps = config.timesteps(steps)?;
        // σ at (possibly fractional) timesteps, interpolated linearly as diffusers does.
        let at = |t: f64| {
            let t = t.clamp(0.0, (full.len() - 1) as f64);
            let (lo, hi) = (t.floor() as usize, t.ceil() as usize);
            full[lo] + (full[hi] - full[lo]) * (t - lo as f64)
        };
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| at(t)).collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(0.0, f64::max);
        let init_sigma = match config.timestep_spacing.as_str() {
            "linspace" | "trailing" => max,
            _ => (max * max + 1.0).sqrt(),
        };
        Ok(Self { timesteps, sigmas, prediction: config.prediction()?, init_sigma })
    }

    /// σ at each step, then 0.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl Sampler for EulerAncestral {
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
        let up = (to * to * (from * from - to * to) / (from * from)).max(0.0).sqrt();
        let down = (to * to - up * up).max(0.0).sqrt();
        let derivative = ((sample - &denoised)? / from)?;
        let next = (sample + (derivative * (down - from))?)?;
        if up > 0.0 { next + (noise * up)? } else { Ok(next) }
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let s = self.sigmas[i];
        match self.prediction {
            Prediction::Epsilon => sample - (output * s)?,
            Prediction::V => (sample / (s * s + 1.0))? - (output * (s / (s * s + 1.0).sqrt()))?,
        }
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        clean + (noise * self.sigmas[i])?
    }
}
