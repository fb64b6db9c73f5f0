//! A trained GAN generator loaded from a models folder, behind
//! [`LatentModel`]. A GAN has no encoder: `can_encode` is false.

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::Deserialize;

use crate::gan::network::{GanConfig, Generator};
use crate::io::directions::{DIRECTIONS_FILE, read_directions};
use crate::io::manifest::{Family, ModelManifest};
use crate::latent::model::tensor_to_images;
use crate::latent::model::{LatentModel, ModelError, check_manifest_shape, load_weights};

#[derive(Deserialize)]
struct GanManifestConfig {
    gan: GanConfig,
}

/// A generator ready to decode latents.
pub struct GanModel {
    manifest: ModelManifest,
    generator: Generator,
    config: GanConfig,
    directions: Vec<Vec<f32>>,
    device: Device,
}

impl GanModel {
    /// Loads the generator named by `manifest`, checking the manifest against
    /// its configuration and every tensor's shape.
    pub fn load(manifest: ModelManifest, device: &Device) -> Result<Self, ModelError> {
        let bad = |detail: String| ModelError::Manifest { path: manifest.manifest_path(), detail };
        if manifest.family != Family::Gan {
            return Err(bad(format!("family is {}, not gan", manifest.family.name())));
        }
        let GanManifestConfig { gan: config } =
            serde_json::from_value(manifest.config.clone()).map_err(|e| bad(format!("invalid GAN config: {e}")))?;
        config.validate().map_err(|e| bad(e.0))?;
        check_manifest_shape(&manifest, config.latent_dim, config.image_size, config.channels)?;
        let (vb, weights_err) = load_weights(&manifest, device)?;
        let generator = Generator::new(&config, vb.pp("generator"))
            .map_err(|e| weights_err(format!("does not fit the manifest's config: {e}")))?;
        let directions = match read_directions(&manifest.dir).map_err(|e| bad(e.detail))? {
            Some(d) if d.vectors.iter().any(|v| v.len() != config.latent_dim) => {
                return Err(bad(format!(
                    "{DIRECTIONS_FILE} holds vectors of another length than {}",
                    config.latent_dim
                )));
            }
            Some(d) => d.vectors,
            None => Vec::new(),
        };
        Ok(Self { manifest, generator, config, directions, device: device.clone() })
    }

    /// The generator, for directions and tests.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Its configuration.
    pub fn config(&self) -> &GanConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl LatentModel for GanModel {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    fn directions(&self) -> Vec<Vec<f32>> {
        self.directions.clone()
    }

    fn decode(&self, latents: &[Vec<f32>]) -> Result<Vec<RgbImage>, ModelError> {
        self.check_latents(latents)?;
        let dim = self.latent_dim();
        let flat: Vec<f32> = latents.iter().flatten().copied().collect();
        let run = || -> candle_core::Result<Vec<RgbImage>> {
            let z = Tensor::from_vec(flat, (latents.len(), dim), &self.device)?;
            // Inference mode: batch norm uses the running statistics, so an
            // image does not depend on what else is in the batch.
            let x = ((self.generator.forward_t(&z, false)? + 1.0)? * 0.5)?;
            tensor_to_images(&x)
        };
        run().map_err(|e| ModelError::Compute { id: self.manifest.id.clone(), source: e })
    }
}
