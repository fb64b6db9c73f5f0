//! Sliders along a few fixed directions of the starting noise: orthonormal
//! unit vectors (Gram–Schmidt over seeded Gaussian draws, the same for every
//! image of a size), each moved by its slider's value in standard
//! deviations of the noise. At 0 a slider changes nothing.

use crate::train::rng::SeededRng;

/// Seeds of the directions' draws (fixed: a value means the same move in every session).
const FIRST_SEED: u64 = 0x6e6f_6973_6500;

/// The first `count` orthonormal directions for noise of `len` values.
pub fn directions(len: usize, count: usize) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(count);
    for k in 0..count as u64 {
        let mut v: Vec<f64> = SeededRng::new(FIRST_SEED + k).normal_vec(len).into_iter().map(f64::from).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        basis.push(v);
    }
    basis
}

/// `noise` moved by `values[k]` along direction k; all zeros give it back unchanged.
pub fn apply(noise: Vec<f32>, values: &[f64]) -> Vec<f32> {
    if values.iter().all(|&v| v == 0.0) {
        return noise;
    }
    let basis = directions(noise.len(), values.len());
    let mut moved: Vec<f64> = noise.iter().map(|&v| f64::from(v)).collect();
    for (d, &value) in basis.iter().zip(values).filter(|(_, v)| **v != 0.0) {
        moved.iter_mut().zip(d).for_each(|(x, y)| *x += value * y);
    }
    moved.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::latent_control::NOISE_DIRECTIONS;

    #[test]
    fn directions_are_orthonormal_and_zero_is_a_no_op() {
        let basis = directions(256, NOISE_DIRECTIONS);
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-12, "{i}·{j} = {dot}");
            }
        }
        let noise = SeededRng::new(3).normal_vec(256);
        assert_eq!(apply(noise.clone(), &[0.0; NOISE_DIRECTIONS]), noise);
        let moved = apply(noise.clone(), &[2.0, 0.0, 0.0, 0.0]);
        let along: f64 = moved.iter().zip(&noise).zip(&basis[0]).map(|((m, n), d)| f64::from(m - n) * d).sum();
        assert!((along - 2.0).abs() < 1e-5, "moved {along} along the first direction");
    }
}
