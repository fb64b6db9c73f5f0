//! Latent-space arithmetic shared by every model family: seeded latents and
//! interpolation between two endpoints.

use serde::{Deserialize, Serialize};

use crate::train::rng::SeededRng;

/// How to move between two latents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Interpolation {
    /// Straight line: `(1-t)·a + t·b`.
    #[default]
    Lerp,
    /// Great-circle path, which keeps the norm typical of Gaussian latents.
    Slerp,
}

impl Interpolation {
    /// The lower-case name used on the command line and in file metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lerp => "lerp",
            Self::Slerp => "slerp",
        }
    }
}

impl std::str::FromStr for Interpolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lerp" => Ok(Self::Lerp),
            "slerp" => Ok(Self::Slerp),
            other => Err(format!("unknown interpolation method {other:?} (expected lerp or slerp)")),
        }
    }
}

/// The standard-normal latent that `seed` stands for.
pub fn seeded_latent(seed: u64, dim: usize) -> Vec<f32> {
    SeededRng::new(seed).normal_vec(dim)
}

/// The truncation trick: `z` pulled towards the prior's mean (0 for the
/// standard normal) by ψ; ψ = 1 leaves it, ψ = 0 gives the mean latent.
/// Lower ψ trades variety for typical, cleaner images.
pub fn truncate(z: &[f32], psi: f32) -> Vec<f32> {
    z.iter().map(|v| v * psi).collect()
}

/// Linear interpolation at `t` in [0, 1].
pub fn lerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + (y - x) * t).collect()
}

/// Spherical interpolation at `t` in [0, 1]. Falls back to lerp when the two
/// vectors are (anti)parallel or zero, where the great circle is undefined.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na < 1e-12 || nb < 1e-12 {
        return lerp(a, b, t);
    }
    let cos = (dot / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let sin = omega.sin();
    if sin.abs() < 1e-6 {
        return lerp(a, b, t);
    }
    let t = t as f64;
    let wa = ((1.0 - t) * omega).sin() / sin;
    let wb = (t * omega).sin() / sin;
    a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32).collect()
}

/// `frames` latents from `a` to `b` inclusive (a single frame is `a`).
pub fn interpolate(a: &[f32], b: &[f32], frames: usize, method: Interpolation) -> Vec<Vec<f32>> {
    (0..frames)
        .map(|i| {
            let t = if frames > 1 { i as f32 / (frames - 1) as f32 } else { 0.0 };
            match method {
                Interpolation::Lerp => lerp(a, b, t),
                Interpolation::Slerp => slerp(a, b, t),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn endpoints_are_exact() {
        let a = seeded_latent(1, 8);
        let b = seeded_latent(2, 8);
        for method in [Interpolation::Lerp, Interpolation::Slerp] {
            let path = interpolate(&a, &b, 5, method);
            assert_eq!(path.len(), 5);
            for (x, y) in path[0].iter().zip(&a) {
                assert!((x - y).abs() < 1e-6);
            }
            for (x, y) in path[4].iter().zip(&b) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn slerp_between_unit_vectors_stays_on_the_sphere() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        let mid = slerp(&a, &b, 0.5);
        assert!((norm(&mid) - 1.0).abs() < 1e-6);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((mid[0] - h).abs() < 1e-6 && (mid[1] - h).abs() < 1e-6);
        // Lerp cuts the corner instead.
        assert!((norm(&lerp(&a, &b, 0.5)) - h).abs() < 1e-6);
    }

    #[test]
    fn parallel_vectors_fall_back_to_lerp() {
        let a = [1.0, 2.0];
        let b = [2.0, 4.0];
        assert_eq!(slerp(&a, &b, 0.5), lerp(&a, &b, 0.5));
    }
}
