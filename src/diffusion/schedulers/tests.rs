//! Schedules against the published formulas (computed here independently in
//! f64) and known Stable Diffusion values; every sampler given an oracle
//! denoiser must land exactly on the clean sample.

use candle_core::{Device, Tensor};

use super::*;
use crate::train::rng::SeededRng;

#[test]
fn scaled_linear_matches_the_formula_and_stable_diffusions_values() {
    let config = SchedulerConfig::default();
    let alphas = config.alphas_cumprod().unwrap();
    // β_i = (√0.00085 + i/999·(√0.012 − √0.00085))², ᾱ_t = Π(1 − β_i).
    let mut product = 1.0f64;
    for (i, a) in alphas.iter().enumerate() {
        let root = 0.00085f64.sqrt() + (0.012f64.sqrt() - 0.00085f64.sqrt()) * i as f64 / 999.0;
        product *= 1.0 - root * root;
        assert!((a - product).abs() < 1e-12, "ᾱ[{i}]");
    }
    assert!((alphas[0] - 0.99915).abs() < 1e-12);
    // Published for SD 1.x (k-diffusion, diffusers): ᾱ_999 ≈ 0.0047, σ_max ≈ 14.6146, σ_min ≈ 0.0292.
    assert!((alphas[999] - 0.004_660).abs() < 1e-5, "{}", alphas[999]);
    let sigma = |a: f64| ((1.0 - a) / a).sqrt();
    assert!((sigma(alphas[999]) - 14.6146).abs() < 1e-3, "{}", sigma(alphas[999]));
    assert!((sigma(alphas[0]) - 0.0292).abs() < 1e-3, "{}", sigma(alphas[0]));
}

#[test]
fn linear_and_cosine_schedules_match_their_formulas() {
    let linear =
        SchedulerConfig { beta_schedule: "linear".into(), beta_start: 1e-4, beta_end: 0.02, ..Default::default() };
    let betas = linear.betas().unwrap();
    assert!((betas[0] - 1e-4).abs() < 1e-15 && (betas[999] - 0.02).abs() < 1e-15);
    assert!((betas[500] - (1e-4 + (0.02 - 1e-4) * 500.0 / 999.0)).abs() < 1e-15);
    let cosine = SchedulerConfig { beta_schedule: "squaredcos_cap_v2".into(), ..Default::default() };
    let alphas = cosine.alphas_cumprod().unwrap();
    // The product telescopes: ᾱ_t = f(t+1)/f(0) with f(t) = cos²((t/T + 0.008)/1.008 · π/2), until β hits 0.999.
    let f = |t: f64| ((t / 1000.0 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
    for t in [0usize, 100, 500, 900] {
        assert!((alphas[t] - f((t + 1) as f64) / f(0.0)).abs() < 1e-9, "ᾱ[{t}]");
    }
    assert_eq!(cosine.betas().unwrap()[999], 0.999, "β is capped");
}

#[test]
fn timesteps_follow_each_spacing() {
    let leading = SchedulerConfig::default();
    let t = leading.timesteps(50).unwrap();
    assert_eq!((t.len(), t[0], t[1], t[49]), (50, 981.0, 961.0, 1.0));
    let trailing = SchedulerConfig { timestep_spacing: "trailing".into(), ..Default::default() };
    assert_eq!(trailing.timesteps(4).unwrap(), vec![999.0, 749.0, 499.0, 249.0]);
    let linspace = SchedulerConfig { timestep_spacing: "linspace".into(), ..Default::default() };
    assert_eq!(linspace.timesteps(3).unwrap(), vec![999.0, 500.0, 0.0]);
    assert!(leading.timesteps(0).is_err() && leading.timesteps(1001).is_err());
    assert!(SchedulerConfig { beta_schedule: "sigmoid".into(), ..Default::default() }.betas().is_err());
}

#[test]
fn ddpm_posterior_matches_ho_et_al() {
    // The original sampler: every training step, no offset.
    let config = SchedulerConfig { steps_offset: 0, ..Default::default() };
    let ddpm = Ddpm::new(&config, 1000).unwrap();
    let betas = config.betas().unwrap();
    let alphas = config.alphas_cumprod().unwrap();
    for i in [0usize, 10, 500, 998] {
        let t = 999 - i;
        let (c_x0, c_xt, var) = ddpm.posterior(i);
        // Eq. 7: μ̃ = √ᾱ_{t−1} β_t/(1−ᾱ_t) x₀ + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t, β̃ = (1−ᾱ_{t−1})/(1−ᾱ_t) β_t.
        let a_prev = alphas[t - 1];
        assert!((c_x0 - a_prev.sqrt() * betas[t] / (1.0 - alphas[t])).abs() < 1e-9);
        assert!((c_xt - (1.0 - betas[t]).sqrt() * (1.0 - a_prev) / (1.0 - alphas[t])).abs() < 1e-9);
        assert!((var - (1.0 - a_prev) / (1.0 - alphas[t]) * betas[t]).abs() < 1e-9);
    }
}

/// Runs `sampler` with a denoiser that knows the answer `x0`: every sampler
/// must end exactly on it.
fn run_with_oracle(
    sampler: &dyn Sampler,
    alphas: &[f64],
    x0: &Tensor,
    prediction: Prediction,
    sigmas: Option<&[f64]>,
) -> Tensor {
    let mut rng = SeededRng::new(4);
    let n = x0.elem_count();
    let draw = |rng: &mut SeededRng| Tensor::from_vec(rng.normal_vec(n), x0.shape(), &Device::Cpu).unwrap();
    let mut x = (draw(&mut rng) * sampler.init_noise_sigma()).unwrap();
    for i in 0..sampler.timesteps().len() {
        let output = match sigmas {
            // Euler: x = x₀ + σ·ε.
            Some(s) => ((&x - x0).unwrap() / s[i]).unwrap(),
            None => {
                let a = alphas[sampler.timesteps()[i] as usize];
                let eps = ((&x - (x0 * a.sqrt()).unwrap()).unwrap() / (1.0 - a).sqrt()).unwrap();
                match prediction {
                    Prediction::Epsilon => eps,
                    Prediction::V => ((eps * a.sqrt()).unwrap() - (x0 * (1.0 - a).sqrt()).unwrap()).unwrap(),
                }
            }
        };
        x = sampler.step(&output, i, &x, &draw(&mut rng)).unwrap();
    }
    x
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

#[test]
fn every_sampler_lands_on_the_clean_sample_with_an_oracle() {
    let x0 = Tensor::from_vec(SeededRng::new(1).normal_vec(64), (1, 4, 4, 4), &Device::Cpu).unwrap();
    let config = SchedulerConfig { set_alpha_to_one: true, ..Default::default() };
    let alphas = config.alphas_cumprod().unwrap();
    for steps in [1, 7, 50] {
        let ddim = Ddim::new(&config, steps, 0.0).unwrap();
        assert!(max_diff(&run_with_oracle(&ddim, &alphas, &x0, Prediction::Epsilon, None), &x0) < 1e-4, "DDIM {steps}");
        let ddim_eta = Ddim::new(&config, steps, 1.0).unwrap();
        assert!(max_diff(&run_with_oracle(&ddim_eta, &alphas, &x0, Prediction::Epsilon, None), &x0) < 1e-4);
        let ddpm = Ddpm::new(&config, steps).unwrap();
        assert!(max_diff(&run_with_oracle(&ddpm, &alphas, &x0, Prediction::Epsilon, None), &x0) < 1e-3, "DDPM {steps}");
        let euler = Euler::new(&config, steps, true).unwrap();
        let sigmas = euler.sigmas().to_vec();
        let out = run_with_oracle(&euler, &alphas, &x0, Prediction::Epsilon, Some(&sigmas));
        assert!(max_diff(&out, &x0) < 1e-4, "Euler ancestral {steps}");
    }
    let v = SchedulerConfig { prediction_type: "v_prediction".into(), ..config };
    let ddim = Ddim::new(&v, 20, 0.0).unwrap();
    assert!(max_diff(&run_with_oracle(&ddim, &alphas, &x0, Prediction::V, None), &x0) < 1e-4, "DDIM with v");
}

#[test]
fn euler_scales_inputs_and_starts_at_the_largest_sigma() {
    let config = SchedulerConfig::default();
    let euler = Euler::new(&config, 50, true).unwrap();
    let alphas = config.alphas_cumprod().unwrap();
    let sigma_981 = ((1.0 - alphas[981]) / alphas[981]).sqrt();
    assert!((euler.sigmas()[0] - sigma_981).abs() < 1e-12);
    assert_eq!(*euler.sigmas().last().unwrap(), 0.0);
    // "leading" spacing: √(σ_max² + 1), as diffusers.
    assert!((euler.init_noise_sigma() - (sigma_981 * sigma_981 + 1.0).sqrt()).abs() < 1e-12);
    let x = Tensor::ones((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let scaled: Vec<f32> = euler.scale_model_input(&x, 0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!((f64::from(scaled[0]) - 1.0 / (sigma_981 * sigma_981 + 1.0).sqrt()).abs() < 1e-6);
}

#[test]
fn a_diffusers_scheduler_config_parses() {
    // Stable Diffusion 1.5's scheduler/scheduler_config.json (unused fields ignored).
    let sd15 = r#"{"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
        "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null,
        "clip_sample": false}"#;
    let config: SchedulerConfig = serde_json::from_str(sd15).unwrap();
    assert_eq!(config, SchedulerConfig::default());
    let v = r#"{"prediction_type": "v_prediction", "timestep_spacing": "trailing"}"#;
    let config: SchedulerConfig = serde_json::from_str(v).unwrap();
    assert_eq!(config.prediction().unwrap(), Prediction::V);
    assert!(SchedulerConfig { prediction_type: "sample".into(), ..Default::default() }.prediction().is_err());
}

/// Fuzzing found it (`fuzz/regressions/diffusers_config`): a scheduler config
/// asking for 5·10¹⁶ training steps made `betas` request an allocation the
/// size of the address space, which aborts the process. It is refused.
#[test]
fn a_hostile_number_of_training_steps_is_refused() {
    let config: SchedulerConfig = serde_json::from_str("[54444444444444441]").unwrap();
    let e = config.betas().unwrap_err().to_string();
    assert!(e.contains("num_train_timesteps 54444444444444441 is more than 100000"), "{e}");
    assert!(config.timesteps(10).is_err() && config.alphas_cumprod().is_err());
    let real = SchedulerConfig { num_train_timesteps: MAX_TRAIN_TIMESTEPS, ..SchedulerConfig::default() };
    assert_eq!(real.betas().unwrap().len(), MAX_TRAIN_TIMESTEPS);
}
