//! DPM-Solver++ 2M (Lu et al. 2022; A1111's "DPM++ 2M", diffusers'
//! `DPMSolverMultistepScheduler` with `algorithm_type="dpmsolver++"`,
//! `solver_order=2`, the midpoint form and a final step to σ = 0), on its
//! own timestep grid or on Karras et al.'s σ schedule (ρ = 7, "Karras").
//! A multistep method: each step combines this step's clean-sample estimate
//! with the previous one's, so the sampler remembers the last estimate.

use std::sync::Mutex;

use candle_core::{Result, Tensor};

use super::euler::{sigma_at, training_sigmas};
use super::{Prediction, Sampler, ScheduleError, SchedulerConfig, estimates};

/// A DPM++ 2M run.
pub struct DpmSolver2m {
    timesteps: Vec<f64>,
    /// σ at each step, then 0.
    sigmas: Vec<f64>,
    prediction: Prediction,
    /// The previous step's index and clean-sample estimate.
    previous: Mutex<Option<(usize, Tensor)>>,
}

/// Karras et al.'s σ schedule: `n` values from `max` to `min`, evenly spaced in σ^(1/ρ).
pub fn karras_sigmas(min: f64, max: f64, n: usize, rho: f64) -> Vec<f64> {
    let (lo, hi) = (min.powf(1.0 / rho), max.powf(1.0 / rho));
    (0..n)
        .map(|i| {
            let ramp = if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
            (hi + ramp * (lo - hi)).powf(rho)
        })
        .collect()
}

/// The (fractional) timestep of a σ, interpolating in log σ as diffusers does.
pub fn sigma_to_t(table: &[f64], sigma: f64) -> f64 {
    let logs: Vec<f64> = table.iter().map(|s| s.ln()).collect();
    let log_sigma = sigma.max(1e-10).ln();
    let below = logs.iter().take_while(|&&l| l <= log_sigma).count();
    let low = below.saturating_sub(1).min(logs.len() - 2);
    let w = ((logs[low] - log_sigma) / (logs[low] - logs[low + 1])).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

impl DpmSolver2m {
    /// `steps` steps; `karras` takes σ from Karras's schedule between the
    /// model's smallest and largest σ.
    pub fn new(config: &SchedulerConfig, steps: usize, karras: bool) -> std::result::Result<Self, ScheduleError> {
        let table = training_sigmas(config)?;
        let n = table.len();
        if steps == 0 || steps > n {
            return Err(ScheduleError(format!("{steps} steps: choose 1 to {n}")));
        }
        let (timesteps, mut sigmas): (Vec<f64>, Vec<f64>) = if karras {
            let sigmas = karras_sigmas(table[0], table[n - 1], steps, 7.0);
            (sigmas.iter().map(|&s| sigma_to_t(&table, s).round_ties_even()).collect(), sigmas)
        } else {
            let timesteps = dpm_timesteps(config, n, steps)?;
            let sigmas = timesteps.iter().map(|&t| sigma_at(&table, t)).collect();
            (timesteps, sigmas)
        };
        sigmas.push(0.0);
        Ok(Self { timesteps, sigmas, prediction: config.prediction()?, previous: Mutex::new(None) })
    }

    /// σ at each step, then 0.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

/// The multistep schedulers' own grids: `steps + 1` points with the last dropped.
fn dpm_timesteps(config: &SchedulerConfig, n: usize, steps: usize) -> std::result::Result<Vec<f64>, ScheduleError> {
    Ok(match config.timestep_spacing.as_str() {
        "linspace" => {
            (0..steps).map(|i| ((steps - i) as f64 * (n - 1) as f64 / steps as f64).round_ties_even()).collect()
        }
        "leading" => {
            let ratio = n / (steps + 1);
            (1..=steps).rev().map(|i| (i * ratio + config.steps_offset) as f64).collect()
        }
        "trailing" => {
            let ratio = n as f64 / steps as f64;
            (0..steps).map(|i| (n as f64 - i as f64 * ratio).round_ties_even() - 1.0).collect()
        }
        other => return Err(ScheduleError(format!("timestep_spacing \"{other}\" is not supported"))),
    })
}

/// α and σ of the variance-preserving process at noise level σ_k (x = α·x₀ + σ·ε).
fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn lambda(sigma: f64) -> f64 {
    let (a, s) = alpha_sigma(sigma);
    a.ln() - s.ln()
}

impl Sampler for DpmSolver2m {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(&self, output: &Tensor, i: usize, sample: &Tensor, _noise: &Tensor) -> Result<Tensor> {
        let x0 = self.denoised(output, i, sample)?;
        let (s, t) = (self.sigmas[i], self.sigmas[i + 1]);
        let (_, sigma_s) = alpha_sigma(s);
        let (alpha_t, sigma_t) = alpha_sigma(t);
        let mut previous =
            self.previous.lock().map_err(|_| candle_core::Error::Msg("sampler state poisoned".into()))?;
        let last = i + 1 == self.timesteps.len();
        let next = if t == 0.0 {
            // The final step to σ = 0 lands on the estimate itself (first order).
            x0.clone()
        } else {
            let h = lambda(t) - lambda(s);
            let decay = (-h).exp_m1(); // e^(−h) − 1
            let first = ((sample * (sigma_t / sigma_s))? - (&x0 * (alpha_t * decay))?)?;
            match previous.as_ref().filter(|(j, _)| *j + 1 == i && !last) {
                None => first,
                Some((_, x0_prev)) => {
                    let r = (lambda(s) - lambda(self.sigmas[i - 1])) / h;
                    let d1 = ((&x0 - x0_prev)? / r)?;
                    (first - (d1 * (0.5 * alpha_t * decay))?)?
                }
            }
        };
        *previous = Some((i, x0));
        Ok(next)
    }

    fn denoised(&self, output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let (alpha, _) = alpha_sigma(self.sigmas[i]);
        Ok(estimates(self.prediction, output, sample, alpha * alpha)?.0)
    }

    fn add_noise(&self, clean: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        let (alpha, sigma) = alpha_sigma(self.sigmas[i]);
        (clean * alpha)? + (noise * sigma)?
    }
}
