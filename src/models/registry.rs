//! Finds a model by id in the models folder and loads it with the right family.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::latent_model::{LatentModel, ModelError};
use super::vae_model::VaeModel;
use crate::io::manifest::{Family, ModelManifest, discover};

/// The manifest of model `id` under `root`.
pub fn find_manifest(root: &Path, id: &str) -> Result<ModelManifest, ModelError> {
    let (found, failed) = discover(root);
    if let Some(m) = found.iter().find(|m| m.id == id) {
        return Ok(m.clone());
    }
    // A broken manifest in a folder named like the id is the likely culprit: say so.
    if let Some(e) = failed.iter().find(|e| e.path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == id)) {
        return Err(ModelError::Manifest { path: e.path.clone(), detail: e.detail.clone() });
    }
    let available = found.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ");
    Err(ModelError::UnknownModel { id: id.to_owned(), available: format!("{available} in {}", root.display()) })
}

/// Loads a model that can decode latents into images.
pub fn load_latent_model(manifest: ModelManifest, device: &Device) -> Result<Arc<dyn LatentModel>, ModelError> {
    match manifest.family {
        Family::Vae => Ok(Arc::new(VaeModel::load(manifest, device)?)),
        other => Err(ModelError::Unsupported {
            id: manifest.id.clone(),
            what: format!("is a {} model, which this version cannot load", other.name()),
        }),
    }
}
