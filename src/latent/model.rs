//! The family-agnostic face that the latent panel, the CLI and the worker use:
//! a latent size, a batch decoder and an optional encoder.

use std::path::PathBuf;

use candle_core::{DType, Tensor};
use image::RgbImage;

use crate::io::manifest::ModelManifest;

/// Errors from loading or running a model; each names the file or model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No model with that id in the models folder.
    #[error("no model with id {id:?} (available: {available})")]
    UnknownModel { id: String, available: String },
    /// The weights file is missing, truncated or not safetensors.
    #[error("cannot load weights {path}: {detail}")]
    Weights { path: PathBuf, detail: String },
    /// The manifest disagrees with itself or with the weights.
    #[error("{path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    /// The model cannot do this (e.g. encode with a GAN).
    #[error("model {id} {what}")]
    Unsupported { id: String, what: String },
    /// A latent of the wrong length or similar caller error.
    #[error("{0}")]
    BadInput(String),
    /// An image file that cannot be read.
    #[error("cannot read image {path}: {detail}")]
    Image { path: PathBuf, detail: String },
    /// The numeric backend failed while running the model.
    #[error("model {id}: {source}")]
    Compute { id: String, source: candle_core::Error },
}

/// One image's score under a VAE: how unusual it is.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutlierScore {
    /// Index into the scored set.
    pub index: usize,
    /// Reconstruction + KL, nats per image.
    pub neg_elbo: f64,
    pub recon: f64,
    pub kl: f64,
    /// |x − x̂| per pixel, averaged over channels, `[side, side]`.
    #[serde(skip)]
    pub error_map: Vec<f32>,
}

/// An image with noise added, and the model's reconstruction of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Denoised {
    /// `[channels, side, side]` in [0, 1], as the model saw it.
    pub noisy: Vec<f32>,
    pub denoised: Vec<f32>,
}

/// A model whose outputs are images addressed by a latent vector.
pub trait LatentModel: Send + Sync {
    /// What the model is.
    fn manifest(&self) -> &ModelManifest;

    /// Decodes a batch of latents (each `latent_dim` long) into images.
    fn decode(&self, latents: &[Vec<f32>]) -> Result<Vec<RgbImage>, ModelError>;

    /// Whether [`LatentModel::encode`] is available.
    fn can_encode(&self) -> bool {
        false
    }

    /// The latent that best explains `image` (the posterior mean for a VAE).
    fn encode(&self, _image: &image::DynamicImage) -> Result<Vec<f32>, ModelError> {
        let m = self.manifest();
        Err(ModelError::Unsupported { id: m.id.clone(), what: "has no encoder".into() })
    }

    /// Every image of `images` scored by how unusual the model finds it,
    /// most unusual first (a VAE's negative ELBO); others cannot.
    fn rank_outliers(&self, _images: &crate::io::datasets::ImageSet) -> Result<Vec<OutlierScore>, ModelError> {
        Err(self.unsupported("cannot score images (outliers need a VAE)"))
    }

    /// `pixels` (`[channels, side, side]` in [0, 1]) with N(0, σ²) noise from
    /// `seed` added, then encoded and decoded (VAEs); others cannot.
    fn denoise(&self, _pixels: &[f32], _sigma: f32, _seed: u64) -> Result<Denoised, ModelError> {
        Err(self.unsupported("cannot denoise (denoising needs a VAE's encoder)"))
    }

    /// The error for something this model cannot do.
    fn unsupported(&self, what: &str) -> ModelError {
        ModelError::Unsupported { id: self.manifest().id.clone(), what: what.to_owned() }
    }

    /// Named directions in latent space, orthonormal (a GAN's principal
    /// directions once computed); empty when there are none.
    fn directions(&self) -> Vec<Vec<f32>> {
        Vec::new()
    }

    /// Latent size.
    fn latent_dim(&self) -> usize {
        self.manifest().latent_dim
    }

    /// Checks that each latent has `latent_dim` finite entries.
    fn check_latents(&self, latents: &[Vec<f32>]) -> Result<(), ModelError> {
        let dim = self.latent_dim();
        if latents.is_empty() {
            return Err(ModelError::BadInput("no latents to decode".into()));
        }
        for z in latents {
            if z.len() != dim {
                return Err(ModelError::BadInput(format!(
                    "model {} takes {dim} latent values, got {}",
                    self.manifest().id,
                    z.len()
                )));
            }
            if z.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::BadInput("latent contains a non-finite value".into()));
            }
        }
        Ok(())
    }
}

/// Checks that `manifest`'s latent size, image size and channels agree with
/// the network config's, naming both in the error.
pub fn check_manifest_shape(
    manifest: &ModelManifest,
    latent_dim: usize,
    image_size: usize,
    channels: usize,
) -> Result<(), ModelError> {
    if (manifest.latent_dim, manifest.image_size, manifest.channels) == (latent_dim, [image_size; 2], channels) {
        return Ok(());
    }
    Err(ModelError::Manifest {
        path: manifest.manifest_path(),
        detail: format!(
            "manifest says latent_dim {}, size {:?}, channels {} but its config says {latent_dim}, {image_size}, {channels}",
            manifest.latent_dim, manifest.image_size, manifest.channels
        ),
    })
}

/// The manifest's weights file as a `VarBuilder`, and a constructor for
/// errors about that file.
pub fn load_weights(
    manifest: &ModelManifest,
    device: &candle_core::Device,
) -> Result<(candle_nn::VarBuilder<'static>, impl Fn(String) -> ModelError + use<>), ModelError> {
    let path = manifest.weights_path();
    let weights_err = move |detail: String| ModelError::Weights { path: path.clone(), detail };
    let tensors =
        candle_core::safetensors::load(manifest.weights_path(), device).map_err(|e| weights_err(e.to_string()))?;
    Ok((candle_nn::VarBuilder::from_tensors(tensors, candle_core::DType::F32, device), weights_err))
}

/// [batch, channels, h, w] intensities in [0, 1] → RGB images.
pub fn tensor_to_images(t: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    let (batch, channels, h, w) = t.dims4()?;
    let data: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let plane = h * w;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    Ok((0..batch)
        .map(|b| {
            let img = &data[b * channels * plane..(b + 1) * channels * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                if channels == 1 {
                    let v = to_u8(img[i]);
                    image::Rgb([v, v, v])
                } else {
                    image::Rgb([to_u8(img[i]), to_u8(img[plane + i]), to_u8(img[2 * plane + i])])
                }
            })
        })
        .collect())
}
