//! A mode-collapse check for a generator: how far apart its samples are from
//! each other, and how close they come to the training images, each next to
//! the same figure for real images.

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::gan::network::Generator;
use crate::io::datasets::ImageSet;
use crate::train::batch::batch_tensor;
use crate::train::rng::SeededRng;

/// Distances are Euclidean over pixels in [0, 1], per image (3·32·32 values
/// for the emoji model).
#[derive(Clone, Debug, Serialize)]
pub struct Diversity {
    /// Samples and real images compared.
    pub samples: usize,
    /// Mean distance between two generated images.
    pub sample_pairwise: f64,
    /// Mean distance between two held-out real images.
    pub real_pairwise: f64,
    /// Median distance from a generated image to its nearest training image.
    pub sample_to_train_nn: f64,
    /// Median distance from a held-out real image to its nearest training image.
    pub real_to_train_nn: f64,
}

/// Measures `samples` generated images (latents from `seed`) against up to
/// `samples` held-out images and the whole training set.
pub fn measure(
    generator: &Generator,
    latent_dim: usize,
    train: &ImageSet,
    test: &ImageSet,
    samples: usize,
    seed: u64,
) -> candle_core::Result<Diversity> {
    let device = Device::Cpu;
    let z = Tensor::from_vec(SeededRng::new(seed).normal_vec(samples * latent_dim), (samples, latent_dim), &device)?;
    let mut generated = Vec::new();
    for chunk in 0..samples.div_ceil(250) {
        let z = z.narrow(0, chunk * 250, 250.min(samples - chunk * 250))?;
        generated.push(((generator.forward_t(&z, false)? + 1.0)? * 0.5)?.flatten_from(1)?);
    }
    let generated = Tensor::cat(&generated, 0)?;
    let held_out: Vec<usize> = (0..test.len().min(samples)).collect();
    let real = batch_tensor(test, &held_out, &device)?.flatten_from(1)?;
    let all: Vec<usize> = (0..train.len()).collect();
    let train = batch_tensor(train, &all, &device)?.flatten_from(1)?;
    Ok(Diversity {
        samples,
        sample_pairwise: mean_pairwise(&generated)?,
        real_pairwise: mean_pairwise(&real)?,
        sample_to_train_nn: median_nearest(&generated, &train)?,
        real_to_train_nn: median_nearest(&real, &train)?,
    })
}

/// Images compared by the check after every epoch.
const EPOCH_SAMPLES: usize = 64;

/// The quick check after each epoch: mean distance between 64 generated
/// images (fixed latents from `seed`) over that between up to 64 real ones
/// (held out, or training images when fewer than two are held out); `None`
/// with fewer than two real images.
pub fn spread_ratio(
    generator: &Generator,
    latent_dim: usize,
    test: &ImageSet,
    train: &ImageSet,
    seed: u64,
) -> candle_core::Result<Option<f64>> {
    let test = if test.len() >= 2 { test } else { train };
    if test.len() < 2 {
        return Ok(None);
    }
    let device = Device::Cpu;
    let z = Tensor::from_vec(
        SeededRng::new(seed).normal_vec(EPOCH_SAMPLES * latent_dim),
        (EPOCH_SAMPLES, latent_dim),
        &device,
    )?;
    let generated = ((generator.forward_t(&z, false)? + 1.0)? * 0.5)?.flatten_from(1)?;
    let held_out: Vec<usize> = (0..test.len().min(EPOCH_SAMPLES)).collect();
    let real = batch_tensor(test, &held_out, &device)?.flatten_from(1)?;
    let real_spread = mean_pairwise(&real)?;
    (real_spread > 0.0).then(|| mean_pairwise(&generated).map(|g| g / real_spread)).transpose()
}

/// Squared distances between the rows of `a` [n, d] and `b` [m, d], [n, m].
fn squared_distances(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let a2 = a.sqr()?.sum_keepdim(1)?; // [n, 1]
    let b2 = b.sqr()?.sum_keepdim(1)?.t()?; // [1, m]
    let cross = a.matmul(&b.t()?)?;
    (a2.broadcast_add(&b2)? - (cross * 2.0)?)?.relu()
}

fn mean_pairwise(x: &Tensor) -> candle_core::Result<f64> {
    let n = x.dim(0)?;
    let d: Vec<Vec<f32>> = squared_distances(x, x)?.sqrt()?.to_vec2()?;
    let total: f64 = (0..n).flat_map(|i| ((i + 1)..n).map(move |j| (i, j))).map(|(i, j)| f64::from(d[i][j])).sum();
    Ok(total / (n * (n - 1) / 2).max(1) as f64)
}

fn median_nearest(x: &Tensor, train: &Tensor) -> candle_core::Result<f64> {
    let mut nearest: Vec<f32> = squared_distances(x, train)?.min(1)?.sqrt()?.to_vec1()?;
    nearest.sort_by(f32::total_cmp);
    Ok(nearest.get(nearest.len() / 2).copied().map_or(0.0, f64::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_a_direct_computation() {
        let a = Tensor::new(&[[0f32, 0.0], [3.0, 4.0], [6.0, 8.0]], &Device::Cpu).unwrap();
        assert!((mean_pairwise(&a).unwrap() - (5.0 + 10.0 + 5.0) / 3.0).abs() < 1e-5);
        let train = Tensor::new(&[[0f32, 1.0], [6.0, 8.0]], &Device::Cpu).unwrap();
        // Nearest distances: 1, √18 ≈ 4.24 (closer than [6, 8] at 5), 0 → median 1.
        assert!((median_nearest(&a, &train).unwrap() - 1.0).abs() < 1e-5);
    }
}
