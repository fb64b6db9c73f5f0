//! Finds a model by id in the models folder and loads it with the right family.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use crate::gan::model::GanModel;
use crate::hub::installed::discover_with_hub;
use crate::io::manifest::{Family, ModelManifest};
use crate::latent::model::{LatentModel, ModelError};
use crate::text::char_gpt::{CharGpt, CharGptManifest};
use crate::text::gguf_llama::{GgufLlama, LoadOptions};
use crate::text::model::{TextModel, TextModelError};
use crate::vae::model::VaeModel;

/// The manifest of model `id` under `root`.
pub fn find_manifest(root: &Path, id: &str) -> Result<ModelManifest, ModelError> {
    // Downloaded GGUF files too, from the cache `huggingface_hub` would use.
    let (found, failed) = discover_with_hub(root, &crate::hub::config::HubConfig::from_env().cache_dir);
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

/// Loads a language model: a manifest of the text family whose weights are a GGUF file.
pub fn load_text_model(manifest: &ModelManifest, device: &Device) -> Result<Box<dyn TextModel>, TextModelError> {
    load_text_model_with(manifest, device, LoadOptions::default())
}

/// [`load_text_model`] with a choice of engine and KV cache for GGUF models.
pub fn load_text_model_with(
    manifest: &ModelManifest,
    device: &Device,
    options: LoadOptions,
) -> Result<Box<dyn TextModel>, TextModelError> {
    if manifest.family != Family::Text {
        return Err(TextModelError::Format {
            path: manifest.manifest_path(),
            detail: format!("model {} is a {} model, not a language model", manifest.id, manifest.family.name()),
        });
    }
    let path = manifest.weights_path();
    if !path.is_file() {
        return Err(TextModelError::Io {
            path,
            detail: "the weights are not there; scripts/fetch-models.sh downloads them".into(),
        });
    }
    let format = manifest.config.get("format").and_then(|f| f.as_str()).unwrap_or("gguf");
    match format {
        "gguf" => Ok(Box::new(GgufLlama::load_with(&path, device, options)?)),
        "char-gpt" => {
            let config: CharGptManifest =
                serde_json::from_value(manifest.config.clone()).map_err(|e| TextModelError::Format {
                    path: manifest.manifest_path(),
                    detail: format!("invalid char-gpt config: {e}"),
                })?;
            Ok(Box::new(CharGpt::load(&manifest.name, &config, &path, device)?))
        }
        other => Err(TextModelError::Format {
            path: manifest.manifest_path(),
            detail: format!("unknown text model format \"{other}\""),
        }),
    }
}

/// Loads a model that can decode latents into images.
pub fn load_latent_model(manifest: ModelManifest, device: &Device) -> Result<Arc<dyn LatentModel>, ModelError> {
    match manifest.family {
        Family::Vae => Ok(Arc::new(VaeModel::load(manifest, device)?)),
        Family::Gan => Ok(Arc::new(GanModel::load(manifest, device)?)),
        other => Err(ModelError::Unsupported {
            id: manifest.id.clone(),
            what: format!("is a {} model, which this version cannot load", other.name()),
        }),
    }
}
