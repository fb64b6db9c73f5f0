//! Diffusion noise schedules and samplers, following diffusers' scheduler
//! configs (`scheduler/scheduler_config.json` in a model folder) and their
//! published formulas: the β schedule, ᾱ (alphas_cumprod), inference
//! timesteps, and one denoising step each for DDPM, DDIM, Euler (plain and
//! ancestral), DPM++ 2M (own grid or Karras σ) and LCM.

mod ddim;
mod ddpm;
pub mod dpm_solver;
pub mod euler;
mod lcm;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

pub use ddim::Ddim;
pub use ddpm::Ddpm;
pub use dpm_solver::DpmSolver2m;
pub use euler::Euler;
pub use lcm::Lcm;

/// The fields of a diffusers scheduler config that the samplers use; other
/// fields in the file are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: String,
    /// `epsilon` or `v_prediction`.
    pub prediction_type: String,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: String,
    pub steps_offset: usize,
    /// DDIM: ᾱ before the first training step is 1 (else ᾱ₀).
    pub set_alpha_to_one: bool,
}

impl Default for SchedulerConfig {
    /// Stable Diffusion 1.x/2.x's schedule.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: "scaled_linear".into(),
            prediction_type: "epsilon".into(),
            timestep_spacing: "leading".into(),
            steps_offset: 1,
            set_alpha_to_one: false,
        }
    }
}

/// What the denoiser predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    /// The noise ε.
    Epsilon,
    /// v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho 2022).
    V,
}

/// Errors in a scheduler config.
#[derive(Debug, thiserror::Error)]
#[error("scheduler config: {0}")]
pub struct ScheduleError(pub String);

/// The most training timesteps a schedule may have: real models use 1000;
/// a hostile config must not ask for an allocation the size of the address space.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

impl SchedulerConfig {
    /// `num_train_timesteps`, checked to be a schedule we can hold.
    fn train_timesteps(&self) -> std::result::Result<usize, ScheduleError> {
        match self.num_train_timesteps {
            n if n < 2 => Err(ScheduleError(format!("num_train_timesteps {n} is too small"))),
            n if n > MAX_TRAIN_TIMESTEPS => {
                Err(ScheduleError(format!("num_train_timesteps {n} is more than {MAX_TRAIN_TIMESTEPS}")))
            }
            n => Ok(n),
        }
    }

    /// The β of every training step.
    pub fn betas(&self) -> std::result::Result<Vec<f64>, ScheduleError> {
        let n = self.train_timesteps()?;
        let lin = |a: f64, b: f64| (0..n).map(move |i| a + (b - a) * i as f64 / (n - 1) as f64);
        Ok(match self.beta_schedule.as_str() {
            "linear" => lin(self.beta_start, self.beta_end).collect(),
            "scaled_linear" => lin(self.beta_start.sqrt(), self.beta_end.sqrt()).map(|b| b * b).collect(),
            "squaredcos_cap_v2" => {
                // Nichol & Dhariwal 2021: ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), β capped at 0.999.
                let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (0..n)
                    .map(|i| (1.0 - alpha_bar((i + 1) as f64 / n as f64) / alpha_bar(i as f64 / n as f64)).min(0.999))
                    .collect()
            }
            other => return Err(ScheduleError(format!("beta_schedule \"{other}\" is not supported"))),
        })
    }

    /// ᾱₜ = Π (1 − βₛ) for s ≤ t.
    pub fn alphas_cumprod(&self) -> std::result::Result<Vec<f64>, ScheduleError> {
        let mut product = 1.0;
        Ok(self
            .betas()?
            .into_iter()
            .map(|b| {
                product *= 1.0 - b;
                product
            })
            .collect())
    }

    /// The prediction type.
    pub fn prediction(&self) -> std::result::Result<Prediction, ScheduleError> {
        match self.prediction_type.as_str() {
            "epsilon" => Ok(Prediction::Epsilon),
            "v_prediction" => Ok(Prediction::V),
            other => Err(ScheduleError(format!("prediction_type \"{other}\" is not supported"))),
        }
    }

    /// The training timesteps an inference run of `steps` visits, noisiest first.
    pub fn timesteps(&self, steps: usize) -> std::result::Result<Vec<f64>, ScheduleError> {
        let n = self.train_timesteps()?;
        if steps == 0 || steps > n {
            return Err(ScheduleError(format!("{steps} steps: choose 1 to {n}")));
        }
        Ok(match self.timestep_spacing.as_str() {
            "leading" => {
                let ratio = n / steps;
                // The offset could push the first step past the schedule's end (at 1000 steps).
                (0..steps).rev().map(|i| (i * ratio + self.steps_offset).min(n - 1) as f64).collect()
            }
            "trailing" => {
                let ratio = n as f64 / steps as f64;
                // numpy's round: half to even.
                (0..steps).map(|i| (n as f64 - i as f64 * ratio).round_ties_even() - 1.0).collect()
            }
            "linspace" => {
                (0..steps)
                    .rev()
                    .map(|i| {
                        if steps == 1 {
                            0.0
                        } else {
                            (i as f64 * (n - 1) as f64 / (steps - 1) as f64).round_ties_even()
                        }
                    })
                    .collect()
            }
            other => return Err(ScheduleError(format!("timestep_spacing \"{other}\" is not supported"))),
        })
    }
}

/// The clean-sample and noise estimates from a model output at ᾱ.
pub(crate) fn estimates(
    prediction: Prediction,
    output: &Tensor,
    sample: &Tensor,
    alpha_bar: f64,
) -> Result<(Tensor, Tensor)> {
    let (a, s) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
    match prediction {
        Prediction::Epsilon => Ok((((sample - (output * s)?)? / a)?, output.clone())),
        Prediction::V => Ok((((sample * a)? - (output * s)?)?, ((output * a)? + (sample * s)?)?)),
    }
}

/// One sampler's run over its timesteps.
pub trait Sampler {
    /// Training timesteps of the run, noisiest first (what the model is told).
    fn timesteps(&self) -> &[f64];
    /// Scale of the initial noise (1 for DDPM/DDIM, σ_max-ish for Euler).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }
    /// The model's input at step `i` (the sample itself, but Euler divides by √(σ² + 1)).
    fn scale_model_input(&self, sample: &Tensor, _i: usize) -> Result<Tensor> {
        Ok(sample.clone())
    }
    /// The sample after step `i` from the model's output; `noise` (standard
    /// normal, drawn by the caller) is used by stochastic samplers.
    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, noise: &Tensor) -> Result<Tensor>;
    /// The clean-sample estimate behind the model's output at step `i` (what previews show).
    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor>;
    /// A clean sample noised to the level step `i` expects (img2img's start).
    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor>;
}

/// √ᾱ·x₀ + √(1−ᾱ)·ε, the forward process at ᾱ.
pub(crate) fn noised(clean: &Tensor, noise: &Tensor, alpha_bar: f64) -> Result<Tensor> {
    (clean * alpha_bar.sqrt())? + (noise * (1.0 - alpha_bar).sqrt())?
}

#[cfg(test)]
mod tests;

pub use crate::spec::image::SamplerKind;

/// The sampler for `steps` steps of the model's schedule.
pub fn build_sampler(
    kind: SamplerKind,
    config: &SchedulerConfig,
    steps: usize,
) -> std::result::Result<Box<dyn Sampler + Send + Sync>, ScheduleError> {
    Ok(match kind {
        SamplerKind::Ddim => Box::new(Ddim::new(config, steps, 0.0)?),
        SamplerKind::Ddpm => Box::new(Ddpm::new(config, steps)?),
        SamplerKind::Euler => Box::new(Euler::new(config, steps, false)?),
        SamplerKind::EulerAncestral => Box::new(Euler::new(config, steps, true)?),
        SamplerKind::DpmPp2m => Box::new(DpmSolver2m::new(config, steps, false)?),
        SamplerKind::DpmPp2mKarras => Box::new(DpmSolver2m::new(config, steps, true)?),
        SamplerKind::Lcm => Box::new(Lcm::new(config, steps)?),
    })
}
