//! What a VAE is for, beyond sampling: finding the unusual images of a
//! collection. Each image is scored by its negative ELBO under the model
//! (reconstruction nats plus KL nats, at the posterior mean, so the score
//! is the same on every run); images unlike the training data reconstruct
//! badly and score high. A per-pixel error map shows where.

use candle_core::{Device, Tensor};

use super::network::{Vae, bce_with_logits, kl_divergence};
use crate::io::datasets::ImageSet;

/// Images scored per forward pass.
const BATCH: usize = 64;

pub use crate::latent::model::OutlierScore;

/// Scores every image of `images` under `vae`, highest (most unusual) first.
pub fn rank_outliers(vae: &Vae, images: &ImageSet, device: &Device) -> candle_core::Result<Vec<OutlierScore>> {
    let (side, channels) = (vae.config.image_size, vae.config.channels);
    if images.side != side || images.channels != channels {
        candle_core::bail!(
            "the images are {}×{}×{}, the model takes {channels}×{side}×{side}",
            images.channels,
            images.side,
            images.side
        );
    }
    let mut scores = Vec::with_capacity(images.len());
    let per_image = images.image_len();
    for start in (0..images.len()).step_by(BATCH) {
        let n = BATCH.min(images.len() - start);
        let pixels = &images.pixels[start * per_image..(start + n) * per_image];
        let xs = Tensor::from_slice(pixels, (n, channels, side, side), device)?;
        let (mean, logvar) = vae.encoder.forward(&xs)?;
        let logits = vae.decoder.forward(&mean)?;
        let recon: Vec<f32> = bce_with_logits(&logits, &xs)?.to_vec1()?;
        let kl: Vec<f32> = kl_divergence(&mean, &logvar)?.to_vec1()?;
        let decoded = candle_nn::ops::sigmoid(&logits)?;
        let error = (decoded - &xs)?.abs()?.mean(1)?; // [n, side, side]
        let error: Vec<f32> = error.flatten_all()?.to_vec1()?;
        for i in 0..n {
            let (r, k) = (f64::from(recon[i]), f64::from(kl[i]));
            scores.push(OutlierScore {
                index: start + i,
                neg_elbo: r + k,
                recon: r,
                kl: k,
                error_map: error[i * side * side..(i + 1) * side * side].to_vec(),
            });
        }
    }
    scores.sort_by(|a, b| b.neg_elbo.total_cmp(&a.neg_elbo).then(a.index.cmp(&b.index)));
    Ok(scores)
}

/// An error map as a heat image: black where the reconstruction is exact,
/// through red to yellow where it is off by the most in this map.
pub fn heat_map(error: &[f32], side: usize) -> image::RgbImage {
    let max = error.iter().copied().fold(1e-6f32, f32::max);
    image::RgbImage::from_fn(side as u32, side as u32, |x, y| {
        let t = (error[y as usize * side + x as usize] / max).clamp(0.0, 1.0);
        let red = (t * 2.0).min(1.0);
        let green = (t * 2.0 - 1.0).max(0.0);
        image::Rgb([(red * 255.0) as u8, (green * 255.0) as u8, 0])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vae::network::VaeConfig;

    #[test]
    fn scores_are_the_terms_of_the_elbo_and_sorted() {
        let cfg = VaeConfig::tiny();
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let vae = Vae::new(&cfg, vb).unwrap();
        let n = 70; // more than one batch
        let pixels: Vec<f32> = (0..n * 64).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let set = ImageSet { pixels, labels: vec![0; n], side: 8, channels: 1 };
        let scores = rank_outliers(&vae, &set, &Device::Cpu).unwrap();
        assert_eq!(scores.len(), n);
        assert!(scores.windows(2).all(|w| w[0].neg_elbo >= w[1].neg_elbo));
        for s in &scores {
            assert!((s.neg_elbo - s.recon - s.kl).abs() < 1e-9 && s.kl >= -1e-4 && s.recon > 0.0);
            assert_eq!(s.error_map.len(), 64);
        }
        let wrong = ImageSet { side: 4, ..set };
        assert!(rank_outliers(&vae, &wrong, &Device::Cpu).is_err());
        assert_eq!(heat_map(&[0.0, 1.0, 0.5, 0.25], 2).get_pixel(1, 0).0, [255, 255, 0]);
    }
}
