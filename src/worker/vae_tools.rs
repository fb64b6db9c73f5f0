//! What a VAE is for beyond sampling, for the Latent view: rank a folder's
//! images by how unusual the model finds them (with per-pixel error heat
//! maps for the most unusual), and remove noise from an image.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::skeleton::JobError;
use crate::io::datasets::ImageSet;
use crate::io::image_folder::{Fit, FolderSpec, Skipped, load_folder, prepare_file};
use crate::latent::model::LatentModel;
use crate::vae::denoise::to_rgb;
use crate::vae::outliers::heat_map;

/// Rows the Latent view shows with their image and heat map.
pub const SHOWN_OUTLIERS: usize = 24;

/// One image of a ranked folder.
#[derive(Clone, Debug)]
pub struct OutlierRow {
    pub path: PathBuf,
    /// Reconstruction + KL, nats per image.
    pub neg_elbo: f64,
    pub recon: f64,
    pub kl: f64,
    /// The image as the model saw it, and where it reconstructs badly (the first rows only).
    pub pictures: Option<(RgbImage, RgbImage)>,
}

/// A folder ranked under a model, most unusual first.
#[derive(Clone, Debug)]
pub struct OutlierRanking {
    pub model: String,
    pub folder: PathBuf,
    pub rows: Vec<OutlierRow>,
    pub skipped: Vec<Skipped>,
}

impl OutlierRanking {
    /// The ranking as `latent-studio outliers --json` writes it.
    pub fn to_json(&self) -> String {
        let rows: Vec<_> = self
            .rows
            .iter()
            .enumerate()
            .map(|(rank, r)| {
                serde_json::json!({
                    "rank": rank + 1, "file": r.path.display().to_string(),
                    "neg_elbo": r.neg_elbo, "recon": r.recon, "kl": r.kl,
                })
            })
            .collect();
        serde_json::to_string_pretty(&rows).unwrap_or_default()
    }
}

/// Every image below `folder` (held-out ones too: ranking is not training),
/// scored under `model`; the first `pictured` rows carry their image and heat map.
pub fn rank_folder(
    model: &dyn LatentModel,
    folder: &Path,
    fit: Fit,
    pictured: usize,
) -> Result<OutlierRanking, JobError> {
    let m = model.manifest();
    let (side, channels) = (m.image_size[0], m.channels);
    let spec = FolderSpec { folder: folder.to_owned(), side, channels, fit, flip: false };
    let data = load_folder(&spec).map_err(|e| e.to_string())?;
    let mut images = ImageSet { side, channels, ..ImageSet::default() };
    for set in [&data.train, &data.test] {
        images.pixels.extend_from_slice(&set.pixels);
        images.labels.extend_from_slice(&set.labels);
    }
    let files: Vec<&PathBuf> = data.train_files.iter().chain(&data.test_files).collect();
    let scores = model.rank_outliers(&images).map_err(|e| e.to_string())?;
    let rows = scores
        .iter()
        .enumerate()
        .map(|(rank, s)| OutlierRow {
            path: files[s.index].clone(),
            neg_elbo: s.neg_elbo,
            recon: s.recon,
            kl: s.kl,
            pictures: (rank < pictured)
                .then(|| (to_rgb(images.image(s.index), channels, side), heat_map(&s.error_map, side))),
        })
        .collect();
    Ok(OutlierRanking { model: m.id.clone(), folder: folder.to_owned(), rows, skipped: data.skipped })
}

/// The image at `path` as the model sees it, with noise, and denoised.
#[derive(Clone, Debug)]
pub struct DenoiseResult {
    pub input: RgbImage,
    pub noisy: RgbImage,
    pub denoised: RgbImage,
    /// Mean squared error to the input of the noisy and of the denoised image.
    pub errors: (f32, f32),
}

/// What to denoise: an image file fitted to the model, the noise and its seed.
pub struct DenoiseInput<'a> {
    pub path: &'a Path,
    pub fit: Fit,
    pub noise: f32,
    pub seed: u64,
}

/// Adds noise to the image, then encodes and decodes it.
pub fn denoise_file(model: &dyn LatentModel, input: &DenoiseInput) -> Result<DenoiseResult, JobError> {
    let DenoiseInput { path, fit, noise, seed } = *input;
    let m = model.manifest();
    let (side, channels) = (m.image_size[0], m.channels);
    let spec = FolderSpec { folder: PathBuf::new(), side, channels, fit, flip: false };
    let pixels = prepare_file(path, &spec).map_err(|e| format!("{}: {e}", path.display()))?;
    let result = model.denoise(&pixels, noise, seed).map_err(|e| e.to_string())?;
    let mse = |a: &[f32]| a.iter().zip(&pixels).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / pixels.len() as f32;
    Ok(DenoiseResult {
        input: to_rgb(&pixels, channels, side),
        noisy: to_rgb(&result.noisy, channels, side),
        denoised: to_rgb(&result.denoised, channels, side),
        errors: (mse(&result.noisy), mse(&result.denoised)),
    })
}
