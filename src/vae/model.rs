//! A trained VAE loaded from a models folder, behind [`LatentModel`].

use candle_core::{Device, Tensor};
use image::{DynamicImage, RgbImage};

use crate::io::manifest::{Family, ModelManifest};
use crate::latent::model::{
    Denoised, LatentModel, ModelError, OutlierScore, check_manifest_shape, load_weights, tensor_to_images,
};
use crate::vae::network::{Vae, VaeConfig};

/// A VAE ready to encode and decode.
pub struct VaeModel {
    manifest: ModelManifest,
    vae: Vae,
    device: Device,
}

impl VaeModel {
    /// Loads the weights named by `manifest`, checking the manifest against
    /// the configuration and every tensor's shape.
    pub fn load(manifest: ModelManifest, device: &Device) -> Result<Self, ModelError> {
        let bad = |detail: String| ModelError::Manifest { path: manifest.manifest_path(), detail };
        if manifest.family != Family::Vae {
            return Err(bad(format!("family is {}, not vae", manifest.family.name())));
        }
        let config: VaeConfig =
            serde_json::from_value(manifest.config.clone()).map_err(|e| bad(format!("invalid VAE config: {e}")))?;
        config.validate().map_err(|e| bad(e.0))?;
        check_manifest_shape(&manifest, config.latent_dim, config.image_size, config.channels)?;
        let (vb, weights_err) = load_weights(&manifest, device)?;
        let vae = Vae::new(&config, vb).map_err(|e| weights_err(format!("does not fit the manifest's config: {e}")))?;
        Ok(Self { manifest, vae, device: device.clone() })
    }

    fn compute(&self, e: candle_core::Error) -> ModelError {
        ModelError::Compute { id: self.manifest.id.clone(), source: e }
    }

    /// The network itself, for benchmarks and tests.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }
}

/// Resizes any image to the model's input and returns [1, channels, size, size] in [0, 1].
pub fn image_to_tensor(
    image: &DynamicImage,
    size: usize,
    channels: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let resized = image.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle);
    let data: Vec<f32> = if channels == 1 {
        resized.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0).collect()
    } else {
        let rgb = resized.to_rgb8();
        (0..3).flat_map(|c| rgb.pixels().map(move |p| p.0[c] as f32 / 255.0).collect::<Vec<_>>()).collect()
    };
    Tensor::from_vec(data, (1, channels, size, size), device)
}

impl LatentModel for VaeModel {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn decode(&self, latents: &[Vec<f32>]) -> Result<Vec<RgbImage>, ModelError> {
        self.check_latents(latents)?;
        let dim = self.latent_dim();
        let flat: Vec<f32> = latents.iter().flatten().copied().collect();
        let run = || -> candle_core::Result<Vec<RgbImage>> {
            let z = Tensor::from_vec(flat, (latents.len(), dim), &self.device)?;
            tensor_to_images(&self.vae.decoder.decode(&z)?)
        };
        run().map_err(|e| self.compute(e))
    }

    fn can_encode(&self) -> bool {
        true
    }

    fn encode(&self, image: &DynamicImage) -> Result<Vec<f32>, ModelError> {
        let cfg = &self.vae.config;
        let run = || -> candle_core::Result<Vec<f32>> {
            let xs = image_to_tensor(image, cfg.image_size, cfg.channels, &self.device)?;
            let (mean, _) = self.vae.encoder.forward(&xs)?;
            mean.flatten_all()?.to_vec1()
        };
        run().map_err(|e| self.compute(e))
    }

    fn rank_outliers(&self, images: &crate::io::datasets::ImageSet) -> Result<Vec<OutlierScore>, ModelError> {
        super::outliers::rank_outliers(&self.vae, images, &self.device).map_err(|e| self.compute(e))
    }

    fn denoise(&self, pixels: &[f32], sigma: f32, seed: u64) -> Result<Denoised, ModelError> {
        if !(0.0..=1.0).contains(&sigma) {
            return Err(ModelError::BadInput(format!("noise {sigma} is outside 0–1")));
        }
        super::denoise::denoise(&self.vae, pixels, sigma, seed, &self.device).map_err(|e| self.compute(e))
    }
}
