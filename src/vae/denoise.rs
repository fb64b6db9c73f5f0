//! Denoising with a VAE: Gaussian noise is added to an image, which is then
//! encoded (posterior mean) and decoded. The decoder can only draw what it
//! learned, so noise unlike the training images is left out.

use candle_core::{Device, Tensor};

use super::network::Vae;
use crate::train::rng::SeededRng;

pub use crate::latent::model::Denoised;

/// Adds N(0, σ²) noise (from `seed`) to `pixels` (`[channels, side, side]`
/// in [0, 1], clamped after), encodes and decodes.
pub fn denoise(vae: &Vae, pixels: &[f32], sigma: f32, seed: u64, device: &Device) -> candle_core::Result<Denoised> {
    let (side, channels) = (vae.config.image_size, vae.config.channels);
    if pixels.len() != channels * side * side {
        candle_core::bail!("the image has {} values, the model takes {channels}×{side}×{side}", pixels.len());
    }
    let noise = SeededRng::new(seed).normal_vec(pixels.len());
    let noisy: Vec<f32> = pixels.iter().zip(&noise).map(|(p, n)| (p + sigma * n).clamp(0.0, 1.0)).collect();
    let xs = Tensor::from_slice(&noisy, (1, channels, side, side), device)?;
    let (mean, _) = vae.encoder.forward(&xs)?;
    let denoised = vae.decoder.decode(&mean)?.flatten_all()?.to_vec1()?;
    Ok(Denoised { noisy, denoised })
}

/// `[channels, side, side]` in [0, 1] as an RGB image (grey repeated).
pub fn to_rgb(pixels: &[f32], channels: usize, side: usize) -> image::RgbImage {
    image::RgbImage::from_fn(side as u32, side as u32, |x, y| {
        let at = y as usize * side + x as usize;
        let value = |c: usize| (pixels[c * side * side + at].clamp(0.0, 1.0) * 255.0).round() as u8;
        if channels == 1 { image::Rgb([value(0); 3]) } else { image::Rgb([value(0), value(1), value(2)]) }
    })
}
